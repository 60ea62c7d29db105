//! Text corpora for `charter tokens`: the built-in multilingual corpus, JSONL, ShareGPT and
//! plain-text files, and directories of them. A corpus is read and checked completely before
//! anything is counted; a bad file is an error naming it (and the line, where there is one).
//!
//! Also the definition of what a word, a character and a byte are, so that every tokenizer's
//! count is divided by the same numbers.

use std::path::{Path, PathBuf};

use unicode_segmentation::UnicodeSegmentation;

/// The built-in multilingual corpus (JSONL, `{"id", "lang", "text"}` per line); see
/// `corpus/LICENSE.md`.
pub const MULTILINGUAL_JSONL: &str = include_str!("../corpus/multilingual.jsonl");
/// Where the built-in multilingual corpus comes from and under which licence.
pub const MULTILINGUAL_LICENSE: &str = "charter built-in multilingual corpus: parallel passages in 10 languages and 4 code snippets, written and translated for charter by its authors, CC0-1.0";

/// How [`word_count`] counts, in words for reports.
pub const WORD_DEFINITION: &str = "Unicode (UAX #29) word segments that contain a letter or digit, by the default rules without dictionaries: spaces and punctuation separate words; each Chinese character and each Japanese kana or kanji counts as one word, a run of katakana as one; Thai, Lao, Khmer and Burmese text without spaces counts as one word per run. Per-word figures therefore compare languages written with spaces (and code) with each other; for Chinese and Japanese they are per character, and tokens per UTF-8 byte or per character are the script-neutral measures";

/// One document of a corpus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// `builtin:en-train`, `FILE:LINE`, `FILE` or the JSONL `id`.
    pub id: String,
    /// Language or class, when the corpus says.
    pub label: Option<String>,
    pub text: String,
}

/// A corpus: documents in a fixed order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corpus {
    /// `builtin`, or the path given.
    pub name: String,
    pub license: Option<String>,
    pub documents: Vec<Document>,
}

/// Words, characters (Unicode scalar values) and UTF-8 bytes of a text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TextMeasure {
    pub words: u64,
    pub characters: u64,
    pub bytes: u64,
}

/// Words of `text`, as [`WORD_DEFINITION`] says.
pub fn word_count(text: &str) -> u64 {
    text.unicode_words().count() as u64
}

/// Words, characters and bytes of `text`.
pub fn measure(text: &str) -> TextMeasure {
    TextMeasure {
        words: word_count(text),
        characters: text.chars().count() as u64,
        bytes: text.len() as u64,
    }
}

/// A corpus that cannot be read, naming the file (and line).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corpus {path}{}: {what}", line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct CorpusError {
    pub path: String,
    pub line: Option<usize>,
    pub what: String,
}

fn error(path: &Path, line: Option<usize>, what: impl Into<String>) -> CorpusError {
    CorpusError {
        path: path.display().to_string(),
        line,
        what: what.into(),
    }
}

impl Corpus {
    /// The built-in multilingual corpus.
    pub fn builtin() -> Self {
        let documents = parse_jsonl(MULTILINGUAL_JSONL, Path::new("builtin"))
            .expect("the built-in corpus is valid JSONL (tested)");
        Corpus {
            name: "builtin".into(),
            license: Some(MULTILINGUAL_LICENSE.into()),
            documents,
        }
    }

    /// `builtin`, a file or a directory:
    /// - `*.jsonl`: one document per line, `{"text" | "prompt" | "messages", "id"?, "label" |
    ///   "lang" | "class"?}` (the contents of `messages` are joined by blank lines);
    /// - `*.json`: ShareGPT (`[{"conversations": [{"from", "value"}, ...]}, ...]`): each turn is
    ///   a document labelled by its role (`user`, `assistant`, `system`);
    /// - any other file: plain UTF-8 text, one document per paragraph (blank-line separated);
    /// - a directory: every file below it, in path order, read as above; a plain-text file in
    ///   a subdirectory is one whole document labelled with the subdirectory's name (e.g.
    ///   `corpus/de/a.txt` → `de`), one directly in the directory is split into paragraphs.
    pub fn load(spec: &str) -> Result<Self, CorpusError> {
        if spec == "builtin" {
            return Ok(Self::builtin());
        }
        let path = Path::new(spec);
        let meta = std::fs::metadata(path).map_err(|e| {
            error(
                path,
                None,
                format!("cannot read: {e} (expected `builtin`, a .jsonl, .json or text file, or a directory)"),
            )
        })?;
        let documents = if meta.is_dir() {
            let mut files = Vec::new();
            walk(path, &mut files).map_err(|e| error(path, None, format!("cannot list: {e}")))?;
            files.sort();
            let mut docs = Vec::new();
            for f in &files {
                let rel = f.strip_prefix(path).unwrap_or(f);
                let sub = rel
                    .parent()
                    .and_then(|p| p.components().next())
                    .map(|c| c.as_os_str().to_string_lossy().into_owned());
                docs.extend(read_file(f, sub)?);
            }
            docs
        } else {
            read_file(path, None)?
        };
        if documents.is_empty() {
            return Err(error(
                path,
                None,
                "holds no non-empty document; expected at least one",
            ));
        }
        Ok(Corpus {
            name: spec.to_string(),
            license: None,
            documents,
        })
    }

    /// Distinct labels in order of first appearance.
    pub fn labels(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for d in &self.documents {
            if let Some(l) = &d.label {
                if !out.contains(l) {
                    out.push(l.clone());
                }
            }
        }
        out
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let p = entry.path();
        if entry.file_type()?.is_dir() {
            walk(&p, out)?;
        } else {
            out.push(p);
        }
    }
    Ok(())
}

/// One file's documents; `dir_label` is the subdirectory a file in a directory lies in.
fn read_file(path: &Path, dir_label: Option<String>) -> Result<Vec<Document>, CorpusError> {
    let bytes = std::fs::read(path).map_err(|e| error(path, None, format!("cannot read: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        error(
            path,
            None,
            format!(
                "not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })?;
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "jsonl" => parse_jsonl(&text, path),
        "json" => parse_sharegpt(&text, path),
        _ => Ok(match dir_label {
            Some(label) if !text.trim().is_empty() => vec![Document {
                id: path.display().to_string(),
                label: Some(label),
                text,
            }],
            Some(_) => Vec::new(),
            None => paragraphs(&text, path),
        }),
    }
}

/// Blank-line separated paragraphs, each with the line it starts on.
fn paragraphs(text: &str, path: &Path) -> Vec<Document> {
    let mut out = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    let mut start = 0;
    let mut flush = |current: &mut Vec<&str>, start: usize| {
        if !current.is_empty() {
            out.push(Document {
                id: format!("{}:{start}", path.display()),
                label: None,
                text: current.join("\n"),
            });
            current.clear();
        }
    };
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            flush(&mut current, start);
        } else {
            if current.is_empty() {
                start = i + 1;
            }
            current.push(line);
        }
    }
    flush(&mut current, start);
    out
}

#[derive(serde::Deserialize)]
struct Message {
    content: String,
}

#[derive(serde::Deserialize)]
struct JsonlDoc {
    id: Option<String>,
    text: Option<String>,
    prompt: Option<String>,
    messages: Option<Vec<Message>>,
    label: Option<String>,
    lang: Option<String>,
    class: Option<String>,
}

fn parse_jsonl(text: &str, path: &Path) -> Result<Vec<Document>, CorpusError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let d: JsonlDoc = serde_json::from_str(raw).map_err(|e| {
            let what = e.to_string().replace(" at line 1 column ", " at column ");
            error(
                path,
                Some(line),
                format!("malformed JSONL line: {what} (expected {{\"text\": \"...\", \"lang\": \"..\"}}, {{\"prompt\": ...}} or {{\"messages\": [...]}})"),
            )
        })?;
        let body = match (d.text, d.prompt, d.messages) {
            (Some(t), None, None) | (None, Some(t), None) => t,
            (None, None, Some(m)) => m
                .iter()
                .map(|m| m.content.as_str())
                .collect::<Vec<_>>()
                .join("\n\n"),
            (None, None, None) => {
                return Err(error(
                    path,
                    Some(line),
                    "has no `text`, `prompt` or `messages`",
                ))
            }
            _ => {
                return Err(error(
                    path,
                    Some(line),
                    "has more than one of `text`, `prompt` and `messages`; expected one",
                ))
            }
        };
        if body.trim().is_empty() {
            continue;
        }
        let id = match d.id {
            Some(id) if path == Path::new("builtin") => format!("builtin:{id}"),
            Some(id) => id,
            None => format!("{}:{line}", path.display()),
        };
        out.push(Document {
            id,
            label: d.label.or(d.lang).or(d.class),
            text: body,
        });
    }
    Ok(out)
}

#[derive(serde::Deserialize)]
struct ShareGptConversation {
    conversations: Vec<ShareGptTurn>,
}

#[derive(serde::Deserialize)]
struct ShareGptTurn {
    from: String,
    value: String,
}

fn parse_sharegpt(text: &str, path: &Path) -> Result<Vec<Document>, CorpusError> {
    let convs: Vec<ShareGptConversation> = serde_json::from_str(text).map_err(|e| {
        error(
            path,
            Some(e.line()),
            format!("malformed ShareGPT file: {e} (expected a JSON array of {{\"conversations\": [{{\"from\": \"human\", \"value\": \"...\"}}, ...]}})"),
        )
    })?;
    let mut out = Vec::new();
    for (ci, c) in convs.iter().enumerate() {
        for (ti, t) in c.conversations.iter().enumerate() {
            let role = match t.from.as_str() {
                "human" | "user" => "user",
                "gpt" | "assistant" | "chatgpt" | "bard" => "assistant",
                "system" => "system",
                other => other,
            };
            if t.value.trim().is_empty() {
                continue;
            }
            out.push(Document {
                id: format!("{}#{ci}.{ti}", path.display()),
                label: Some(role.to_string()),
                text: t.value.clone(),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_corpus_has_ten_languages_and_code_in_four_documents_each() {
        let c = Corpus::builtin();
        let labels = c.labels();
        assert_eq!(
            labels,
            ["en", "de", "fr", "es", "ru", "zh", "ja", "ko", "ar", "hi", "code"]
        );
        for l in &labels {
            let n = c
                .documents
                .iter()
                .filter(|d| d.label.as_deref() == Some(l))
                .count();
            assert_eq!(n, 4, "{l}");
        }
        assert!(c.documents.iter().all(|d| d.id.starts_with("builtin:")));
        assert!(c.license.as_deref().unwrap().contains("CC0"));
    }

    #[test]
    fn words_follow_uax29() {
        assert_eq!(word_count("The quick brown fox."), 4);
        assert_eq!(word_count("can't stop, won't stop"), 4);
        assert_eq!(word_count("  \n\t "), 0);
        // Each Han character is a word; punctuation is not.
        assert_eq!(word_count("我们团队。"), 4);
        assert_eq!(word_count("Привет, мир"), 2);
        let m = measure("naïve 日本");
        assert_eq!((m.words, m.characters, m.bytes), (3, 8, 13));
    }

    #[test]
    fn files_and_directories_load_with_labels() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        std::fs::create_dir_all(d.join("de")).unwrap();
        std::fs::write(d.join("de/a.txt"), "Guten Morgen.\n\nZweiter Absatz.").unwrap();
        std::fs::write(d.join("notes.txt"), "one\ntwo\n\n\nthree\n").unwrap();
        std::fs::write(
            d.join("x.jsonl"),
            "{\"text\": \"hello\", \"class\": \"greeting\"}\n\n{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"assistant\", \"content\": \"b\"}]}\n",
        )
        .unwrap();
        std::fs::write(
            d.join("s.json"),
            r#"[{"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello there"}]}]"#,
        )
        .unwrap();
        let c = Corpus::load(d.to_str().unwrap()).unwrap();
        let got: Vec<(Option<&str>, &str)> = c
            .documents
            .iter()
            .map(|d| (d.label.as_deref(), d.text.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (Some("de"), "Guten Morgen.\n\nZweiter Absatz."),
                (None, "one\ntwo"),
                (None, "three"),
                (Some("user"), "hi"),
                (Some("assistant"), "hello there"),
                (Some("greeting"), "hello"),
                (None, "a\n\nb"),
            ]
        );
        assert!(
            c.documents[2].id.ends_with("notes.txt:5"),
            "{}",
            c.documents[2].id
        );
    }

    #[test]
    fn bad_corpora_name_the_file_and_line() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("nope.jsonl");
        let e = Corpus::load(missing.to_str().unwrap()).unwrap_err();
        assert!(e.to_string().contains("nope.jsonl"), "{e}");
        let bad = tmp.path().join("bad.jsonl");
        std::fs::write(&bad, "{\"text\": \"ok\"}\n{\"text\": 3}\n").unwrap();
        let e = Corpus::load(bad.to_str().unwrap()).unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
        assert!(e.to_string().contains("bad.jsonl:2"), "{e}");
        let empty = tmp.path().join("empty.txt");
        std::fs::write(&empty, "\n\n").unwrap();
        let e = Corpus::load(empty.to_str().unwrap()).unwrap_err();
        assert!(e.to_string().contains("no non-empty document"), "{e}");
        let latin1 = tmp.path().join("latin1.txt");
        std::fs::write(&latin1, b"caf\xe9").unwrap();
        let e = Corpus::load(latin1.to_str().unwrap()).unwrap_err();
        assert!(e.to_string().contains("not UTF-8"), "{e}");
    }
}
