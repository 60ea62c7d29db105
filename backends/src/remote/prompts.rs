//! Prompt text for remote APIs, and token counts of text.
//!
//! A remote server tokenises what it is sent with its own tokenizer, so a synthetic prompt of N
//! tokens has to be text that the server's tokenizer turns into N tokens. Random token ids
//! decoded to text do not survive that: pieces merge with their neighbours and fragments
//! re-tokenise into several tokens (64 random SmolLM2 ids came back as 115–158 tokens). With a
//! tokenizer (`--tokenizer`, which must be the server's), charter instead writes the prompt as
//! words that are each one token after another word (checked in context when the tokenizer is
//! loaded), then encodes the whole text and adds or drops words until the count is exactly N.
//! Without a tokenizer it sends N common English words and records the length as an
//! `estimate`.
//!
//! Output text is counted as a continuation of the prompt: SentencePiece tokenizers in the
//! Llama style prepend `▁` to the text they encode, so output that starts with a space (the
//! first generated token `▁at` streamed as `" at"`) would count the space twice (`▁` + `▁at`).
//! Such tokenizers are recognised by encoding `" a"` and `"a"`; one leading space of the output
//! is then left to the tokenizer's own prefix.

use std::collections::HashSet;
use std::sync::Arc;

use tokenizers::Tokenizer;

use crate::{LoadError, PromptTokenSource};

/// Words for synthetic prompts when no tokenizer is configured: each is about one token in
/// BPE vocabularies, so N words are roughly N tokens (an estimate).
pub(super) const WORDS: &[&str] = &[
    "the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "was", "with", "be", "by",
    "on", "not", "he", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an",
    "had", "they", "you", "were", "their", "one", "all", "we", "can", "her", "has", "there",
    "been", "if", "more", "when", "will", "would", "who", "so", "no", "time", "about", "many",
    "then", "them", "some", "these", "may", "two", "first", "water", "could", "people", "made",
    "over", "day", "work", "world", "life", "long", "down", "place", "good", "year", "number",
    "great", "small", "house", "light", "word", "city", "state",
];

/// The word every candidate is tried after: a candidate must add exactly one token to it.
const ANCHOR: &str = "a";
/// Enough words for varied prompts; the scan stops there.
const MAX_WORDS: usize = 4096;
/// Fewer stable words than this: the tokenizer is not one synthetic text can be built from.
const MIN_WORDS: usize = 16;

/// How prompts become text and how text is counted, for one remote backend.
pub(super) struct PromptText {
    tokenizer: Option<Arc<Tokenizer>>,
    /// Words that add exactly one token after another word.
    words: Vec<String>,
    /// Of those, the ones that are one token at the very start of a text too.
    first_words: Vec<String>,
    /// The tokenizer puts a space marker in front of the text it encodes (Llama-style
    /// SentencePiece): a leading space of continuation text is already that marker.
    prepends_space: bool,
}

impl PromptText {
    /// Without a tokenizer: the built-in word list, lengths estimated.
    pub fn estimated() -> Self {
        let words: Vec<String> = WORDS.iter().map(|w| w.to_string()).collect();
        Self {
            tokenizer: None,
            first_words: words.clone(),
            words,
            prepends_space: false,
        }
    }

    /// With the server's tokenizer: find the words synthetic prompts are made of.
    pub fn with_tokenizer(tok: Arc<Tokenizer>, source_name: &str) -> Result<Self, LoadError> {
        let count = |s: &str| tok.encode(s, false).map(|e| e.len()).unwrap_or(usize::MAX);
        let anchor = count(ANCHOR);
        let mut seen = HashSet::new();
        let (mut words, mut first_words) = (Vec::new(), Vec::new());
        for id in 0..tok.get_vocab_size(false) as u32 {
            if words.len() >= MAX_WORDS {
                break;
            }
            let Ok(piece) = tok.decode(&[id], true) else {
                continue;
            };
            let w = piece.trim();
            let plain = w.len() >= 2
                && w.len() <= 12
                && w.starts_with(|c: char| c.is_ascii_lowercase())
                && w.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
            if !plain || !seen.insert(w.to_string()) {
                continue;
            }
            if count(&format!("{ANCHOR} {w}")) != anchor + 1 {
                continue;
            }
            if count(w) == 1 {
                first_words.push(w.to_string());
            }
            words.push(w.to_string());
        }
        if words.len() < MIN_WORDS {
            return Err(LoadError::Tokenizer {
                source_name: source_name.to_string(),
                what: format!(
                    "found only {} words that are one token each; synthetic prompt text of a known length cannot be built with it",
                    words.len()
                ),
            });
        }
        if first_words.is_empty() {
            first_words = words.clone();
        }
        let prepends_space = [" a", " the"]
            .iter()
            .all(|s| count(s) > count(s.trim_start()));
        Ok(Self {
            tokenizer: Some(tok),
            words,
            first_words,
            prepends_space,
        })
    }

    /// Number of stable words found (for the record).
    pub fn word_count(&self) -> usize {
        self.words.len()
    }

    /// Tokens of prompt text as the tokenizer counts it (no special tokens added), or the
    /// whitespace-separated words without a tokenizer.
    pub fn count(&self, text: &str) -> (u64, PromptTokenSource) {
        match &self.tokenizer {
            Some(t) => match t.encode(text, false) {
                Ok(e) => (e.len() as u64, PromptTokenSource::Tokenizer),
                Err(_) => (words_in(text), PromptTokenSource::Estimate),
            },
            None => (words_in(text), PromptTokenSource::Estimate),
        }
    }

    /// Tokens of generated text, counted as the continuation it is (see the module docs);
    /// `None` without a tokenizer.
    pub fn count_output(&self, text: &str) -> Option<u64> {
        let t = self.tokenizer.as_ref()?;
        let text = if self.prepends_space {
            text.strip_prefix(' ').unwrap_or(text)
        } else {
            text
        };
        t.encode(text, false).ok().map(|e| e.len() as u64)
    }

    /// Text for a synthetic prompt of `ids.len()` tokens (the ids only choose the words), with
    /// its length and how that length is known. With a tokenizer the length is its exact count
    /// of the text, which is `ids.len()` unless the tokenizer defeats the adjustment (then the
    /// count says what was sent).
    pub fn synthetic(&self, ids: &[u32]) -> (String, u64, PromptTokenSource) {
        let n = ids.len();
        if n == 0 {
            return (String::new(), 0, PromptTokenSource::Estimate);
        }
        let word = |i: usize| -> &str {
            let pick = ids[i % n] as usize + i / n;
            if i == 0 {
                &self.first_words[pick % self.first_words.len()]
            } else {
                &self.words[pick % self.words.len()]
            }
        };
        let text = |k: usize| -> String {
            let mut s = String::with_capacity(k * 7);
            for i in 0..k {
                if i > 0 {
                    s.push(' ');
                }
                s.push_str(word(i));
            }
            s
        };
        let Some(tok) = &self.tokenizer else {
            return (text(n), n as u64, PromptTokenSource::Estimate);
        };
        let count = |s: &str| tok.encode(s, false).map(|e| e.len()).unwrap_or(0);
        // Every word after the first adds one token: move the word count by the difference
        // until the text has exactly n tokens (one step in practice).
        let mut k = n;
        let mut tried = HashSet::new();
        let mut best = (text(k), usize::MAX);
        while tried.insert(k) {
            let s = text(k);
            let c = count(&s);
            if c == n {
                return (s, n as u64, PromptTokenSource::Tokenizer);
            }
            if c.abs_diff(n) < best.1.abs_diff(n) {
                best = (s, c);
            }
            k = (k as i64 + n as i64 - c as i64).max(1) as usize;
        }
        let c = best.1 as u64;
        (best.0, c, PromptTokenSource::Tokenizer)
    }
}

fn words_in(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sentencepiece(words: &[&str]) -> Tokenizer {
        let json = crate::testing::sentencepiece_tokenizer_json(words);
        Tokenizer::from_bytes(serde_json::to_vec(&json).unwrap()).unwrap()
    }

    const SP_WORDS: &[&str] = &[
        "the", "at", "of", "and", "to", "in", "is", "that", "for", "it", "was", "with", "be", "on",
        "not", "this", "are", "or", "from", "which", "but", "have", "had", "they", "you", "were",
        "their", "one", "all", "we", "can", "her", "has", "there", "been", "more",
    ];

    #[test]
    fn sentencepiece_output_with_a_leading_space_counts_once() {
        let tok = Arc::new(sentencepiece(SP_WORDS));
        // The encoder prepends ▁: " at" is ▁ + ▁at, the bug this module exists for.
        assert_eq!(tok.encode(" at the", false).unwrap().len(), 3);
        let p = PromptText::with_tokenizer(tok, "sp").unwrap();
        assert!(p.prepends_space);
        assert_eq!(p.count_output(" at the"), Some(2));
        assert_eq!(p.count_output("at the"), Some(2));
    }

    #[test]
    fn synthetic_text_has_the_requested_length() {
        let tok = Arc::new(sentencepiece(SP_WORDS));
        let p = PromptText::with_tokenizer(Arc::clone(&tok), "sp").unwrap();
        for n in [1usize, 2, 16, 64, 300] {
            let ids: Vec<u32> = (0..n as u32)
                .map(|i| i.wrapping_mul(2_654_435_761))
                .collect();
            let (text, count, source) = p.synthetic(&ids);
            assert_eq!(source, PromptTokenSource::Tokenizer);
            assert_eq!(count, n as u64, "{text:?}");
            assert_eq!(tok.encode(text.as_str(), false).unwrap().len(), n);
        }
        let (text, count, source) = PromptText::estimated().synthetic(&[3, 1, 4, 1, 5]);
        assert_eq!((count, source), (5, PromptTokenSource::Estimate));
        assert_eq!(text.split_whitespace().count(), 5);
    }

    #[test]
    fn a_tokenizer_without_plain_words_is_refused() {
        let tok = Arc::new(sentencepiece(&[]));
        let e = PromptText::with_tokenizer(tok, "odd.json").err().unwrap();
        assert!(e.to_string().contains("odd.json"), "{e}");
    }
}
