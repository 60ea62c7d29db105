//! Trace replay: production request traces (Mooncake and Bailian JSONL, Azure LLM inference and
//! BurstGPT CSV) read into rows of arrival time, input and output lengths and, where the trace
//! has them, prefix-block hash ids and chat ids.
//!
//! A replay issues row i at `(t_i − t_first) / speed` seconds (the first row of the window at 0)
//! with a synthetic prompt of exactly the row's input length and an output cap of its output
//! length. Prompt block j of a row with hash ids is derived from `(seed, hash_ids[j])` alone, so
//! rows that share leading hash ids share exactly those prompt tokens (what a server's prefix
//! cache would see in production) and rows that do not, do not; tokens beyond the hashed blocks
//! come from `(seed, the row's ordinal in the file)`, so a row's prompt does not depend on the
//! window or on which other rows are replayed.
//!
//! The whole file is read and checked before a run: a malformed row is an error naming the file,
//! its line and the field expected.
//!
//! Bailian rows can also be replayed as conversations ([`TraceOptions::sessions`]): rows linked
//! by `parent_chat_id` form one conversation ([`Trace::conversations`]), whose first turn
//! arrives at its timestamp and whose later turns follow the previous turn's response (see
//! `crate::sessions`).

use std::path::{Path, PathBuf};

use rand::Rng;

use crate::prompts::request_rng;

/// Trace file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceFormat {
    /// Mooncake JSONL: `timestamp` (ms), `input_length`, `output_length`, `hash_ids` (512-token blocks).
    Mooncake,
    /// Alibaba Bailian (Qwen) JSONL: `chat_id`, `parent_chat_id`, `timestamp` (s), `input_length`,
    /// `output_length`, `turn`, `hash_ids` (16-token blocks).
    Bailian,
    /// Azure LLM inference CSV: `TIMESTAMP` (date and time), `ContextTokens`, `GeneratedTokens`.
    Azure,
    /// BurstGPT CSV: `Timestamp` (s), `Request tokens`, `Response tokens` (other columns ignored).
    Burstgpt,
}

impl TraceFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            TraceFormat::Mooncake => "mooncake",
            TraceFormat::Bailian => "bailian",
            TraceFormat::Azure => "azure",
            TraceFormat::Burstgpt => "burstgpt",
        }
    }

    /// Tokens per `hash_ids` block in the published traces of this format.
    pub fn default_block_tokens(self) -> u32 {
        match self {
            TraceFormat::Bailian => 16,
            _ => 512,
        }
    }

    /// One line saying what a row of this format holds, for errors.
    fn expected(self) -> &'static str {
        match self {
            TraceFormat::Mooncake => "a Mooncake row {\"timestamp\": MS, \"input_length\": N, \"output_length\": N, \"hash_ids\": [...]}",
            TraceFormat::Bailian => "a Bailian row {\"chat_id\": N, \"parent_chat_id\": N, \"timestamp\": S, \"input_length\": N, \"output_length\": N, \"turn\": N, \"hash_ids\": [...]}",
            TraceFormat::Azure => "an Azure row TIMESTAMP,ContextTokens,GeneratedTokens (e.g. 2023-11-16 18:15:46.6805900,4808,10)",
            TraceFormat::Burstgpt => "a BurstGPT row with Timestamp (s), Request tokens, Response tokens",
        }
    }
}

impl std::fmt::Display for TraceFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A slice of a trace by time: rows with `start ≤ t < end`, `t` in seconds from the file's
/// first row (`START..END`, each a duration such as `90s` or `10m`, or seconds; either may be
/// left out).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct TraceWindow {
    pub start_s: Option<f64>,
    pub end_s: Option<f64>,
}

impl std::str::FromStr for TraceWindow {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!("`{s}`: expected START..END (durations such as 90s or 10m, or seconds; either may be left out, e.g. 60s..)")
        };
        let (a, b) = s.trim().split_once("..").ok_or_else(bad)?;
        let side = |v: &str| -> Result<Option<f64>, String> {
            let v = v.trim();
            if v.is_empty() {
                return Ok(None);
            }
            if let Ok(x) = v.parse::<f64>() {
                return (x.is_finite() && x >= 0.0)
                    .then_some(Some(x))
                    .ok_or_else(bad);
            }
            humantime::parse_duration(v)
                .map(|d| Some(d.as_secs_f64()))
                .map_err(|_| bad())
        };
        let w = TraceWindow {
            start_s: side(a)?,
            end_s: side(b)?,
        };
        match (w.start_s, w.end_s) {
            (None, None) => Err(bad()),
            (Some(x), Some(y)) if y <= x => {
                Err(format!("`{s}`: the end must come after the start"))
            }
            _ => Ok(w),
        }
    }
}

impl std::fmt::Display for TraceWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let side = |v: Option<f64>| v.map(|x| format!("{x}s")).unwrap_or_default();
        write!(f, "{}..{}", side(self.start_s), side(self.end_s))
    }
}

/// A chat turn of a Bailian row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChatTurn {
    pub chat_id: i64,
    /// -1 for the first request of a chat.
    pub parent_chat_id: i64,
    pub turn: u32,
}

/// One request of a trace.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceRow {
    /// Position among the file's rows (0-based): what the prompt's unhashed tokens derive from.
    pub ordinal: u64,
    /// Line in the file (1-based).
    pub line: usize,
    /// Seconds after the file's first row.
    pub at_s: f64,
    pub input_tokens: u32,
    pub output_tokens: u32,
    pub hash_ids: Vec<u64>,
    pub chat: Option<ChatTurn>,
}

/// How to read and replay a trace.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TraceOptions {
    /// `None`: detected from the content.
    pub format: Option<TraceFormat>,
    /// Time compression: 2 replays twice as fast.
    pub speed: f64,
    pub window: Option<TraceWindow>,
    /// Tokens per hash-id block [default: the format's].
    pub block_tokens: Option<u32>,
    /// Link Bailian rows into conversations by `parent_chat_id` (only conversations whose
    /// first turn falls in the window are kept, with their turns that do).
    pub sessions: bool,
}

impl Default for TraceOptions {
    fn default() -> Self {
        Self {
            format: None,
            speed: 1.0,
            window: None,
            block_tokens: None,
            sessions: false,
        }
    }
}

/// A trace read and sliced, ready to replay.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    pub path: PathBuf,
    pub format: TraceFormat,
    pub sha256: String,
    /// Rows in the file (before the window).
    pub rows_in_file: u64,
    /// The rows replayed, in time order.
    pub rows: Vec<TraceRow>,
    pub speed: f64,
    pub window: Option<TraceWindow>,
    pub block_tokens: u32,
    /// With [`TraceOptions::sessions`]: each conversation's rows (indices into `rows`) in turn
    /// order, conversations in the order of their first turns; empty otherwise.
    pub conversations: Vec<Vec<usize>>,
}

/// A trace-file problem, naming the file and line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{path}{}: {what}", line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct TraceError {
    pub path: String,
    pub line: Option<usize>,
    pub what: String,
}

#[derive(serde::Deserialize)]
struct MooncakeLine {
    timestamp: f64,
    input_length: u32,
    output_length: u32,
    #[serde(default)]
    hash_ids: Vec<u64>,
}

#[derive(serde::Deserialize)]
struct BailianLine {
    chat_id: i64,
    parent_chat_id: i64,
    timestamp: f64,
    input_length: u32,
    output_length: u32,
    turn: u32,
    #[serde(default)]
    hash_ids: Vec<u64>,
}

#[derive(serde::Deserialize)]
struct AzureLine {
    #[serde(rename = "TIMESTAMP")]
    timestamp: String,
    #[serde(rename = "ContextTokens")]
    context_tokens: u32,
    #[serde(rename = "GeneratedTokens")]
    generated_tokens: u32,
}

#[derive(serde::Deserialize)]
struct BurstGptLine {
    #[serde(rename = "Timestamp")]
    timestamp: f64,
    #[serde(rename = "Request tokens")]
    request_tokens: u32,
    #[serde(rename = "Response tokens")]
    response_tokens: u32,
}

/// A row as read, before times are made relative: (line, absolute time in s, input, output,
/// hash ids, chat).
type RawRow = (usize, f64, u32, u32, Vec<u64>, Option<ChatTurn>);

impl Trace {
    /// Read, check and slice the trace at `path`.
    pub fn load(path: &Path, opts: TraceOptions) -> Result<Self, TraceError> {
        let origin = path.display().to_string();
        let err = |line: Option<usize>, what: String| TraceError {
            path: origin.clone(),
            line,
            what,
        };
        if !(opts.speed.is_finite() && opts.speed > 0.0) {
            return Err(err(
                None,
                format!("trace speed {}: expected a positive number", opts.speed),
            ));
        }
        let bytes =
            std::fs::read(path).map_err(|e| err(None, format!("cannot read trace file: {e}")))?;
        let sha256 = {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(&bytes))
        };
        let text = String::from_utf8(bytes)
            .map_err(|e| err(None, format!("trace file is not UTF-8 text: {e}")))?;
        let format = match opts.format {
            Some(f) => f,
            None => detect(&text).ok_or_else(|| {
                err(None, "cannot tell the trace format from its first line; expected Mooncake or Bailian JSONL, or an Azure or BurstGPT CSV header (or give --trace-format)".into())
            })?,
        };
        let raw = parse(&text, format, &origin)?;
        let rows_in_file = raw.len() as u64;
        if raw.is_empty() {
            return Err(err(
                None,
                format!("trace file has no rows; expected {}", format.expected()),
            ));
        }
        let roots = if opts.sessions {
            Some(conversation_roots(&raw, format).map_err(|(line, what)| err(line, what))?)
        } else {
            None
        };
        let t0 = raw[0].1;
        let mut rows = Vec::new();
        let mut last = f64::NEG_INFINITY;
        // Sessions: conversation of each root ordinal kept (its first turn is in the window).
        let mut conversation_of_root = std::collections::HashMap::new();
        let mut conversations: Vec<Vec<usize>> = Vec::new();
        for (ordinal, (line, t, input, output, hash_ids, chat)) in raw.into_iter().enumerate() {
            if t < last {
                return Err(err(
                    Some(line),
                    "timestamp is earlier than the row before; expected rows in time order".into(),
                ));
            }
            last = t;
            let at_s = t - t0;
            if let Some(w) = opts.window {
                if w.start_s.is_some_and(|s| at_s < s) || w.end_s.is_some_and(|e| at_s >= e) {
                    continue;
                }
            }
            if let Some(roots) = &roots {
                let root = roots[ordinal];
                let c = if root == ordinal {
                    conversations.push(Vec::new());
                    *conversation_of_root
                        .entry(root)
                        .or_insert(conversations.len() - 1)
                } else {
                    match conversation_of_root.get(&root) {
                        Some(&c) => c,
                        // The conversation began before the window: none of it is replayed.
                        None => continue,
                    }
                };
                conversations[c].push(rows.len());
            }
            rows.push(TraceRow {
                ordinal: ordinal as u64,
                line,
                at_s,
                // A request needs at least one prompt token and asks for at least one.
                input_tokens: input.max(1),
                output_tokens: output.max(1),
                hash_ids,
                chat,
            });
        }
        if rows.is_empty() {
            return Err(err(
                None,
                format!(
                    "no row falls in the window {}; the trace spans {:.3}s",
                    opts.window.map(|w| w.to_string()).unwrap_or_default(),
                    last - t0
                ),
            ));
        }
        Ok(Trace {
            path: path.to_path_buf(),
            format,
            sha256,
            rows_in_file,
            rows,
            speed: opts.speed,
            window: opts.window,
            block_tokens: opts
                .block_tokens
                .unwrap_or_else(|| format.default_block_tokens())
                .max(1),
            conversations,
        })
    }

    /// Offsets (as [`Trace::offsets`]) of each conversation's first turn, in order.
    pub fn conversation_offsets(&self) -> Vec<f64> {
        let offsets = self.offsets();
        self.conversations.iter().map(|c| offsets[c[0]]).collect()
    }

    /// When each row is issued: seconds after the level starts (the first row at 0), compressed
    /// by the speed.
    pub fn offsets(&self) -> Vec<f64> {
        let first = self.rows[0].at_s;
        self.rows
            .iter()
            .map(|r| (r.at_s - first) / self.speed)
            .collect()
    }

    /// Seconds from the first to the last row, as replayed.
    pub fn replay_span_s(&self) -> f64 {
        self.offsets().last().copied().unwrap_or(0.0)
    }

    /// Mean arrival rate of the replay, requests/s (the row count over the span; the row count
    /// per second when every row has the same time).
    pub fn mean_rate(&self) -> f64 {
        rate_of(&self.offsets())
    }

    /// Mean arrival rate of the conversations (their first turns), sessions/s, as
    /// [`Trace::mean_rate`] counts rows.
    pub fn conversation_rate(&self) -> f64 {
        rate_of(&self.conversation_offsets())
    }

    /// The prompt's blocks of the row `index` (mod the rows): (hash id or `None` for tokens
    /// unique to the row, tokens).
    pub fn blocks(&self, index: u64) -> Vec<(Option<u64>, u32)> {
        let row = self.row(index);
        let mut left = row.input_tokens;
        let mut out = Vec::with_capacity(row.hash_ids.len() + 1);
        for &h in &row.hash_ids {
            if left == 0 {
                break;
            }
            let n = left.min(self.block_tokens);
            out.push((Some(h), n));
            left -= n;
        }
        if left > 0 {
            out.push((None, left));
        }
        out
    }

    /// Row `index` (mod the rows: a replay longer than the trace starts over).
    pub fn row(&self, index: u64) -> &TraceRow {
        &self.rows[(index % self.rows.len() as u64) as usize]
    }

    /// The prompt token ids of row `index`: each hash-id block from `(seed, hash id)`, the rest
    /// from `(seed, the row's ordinal)`.
    pub fn prompt_ids(&self, index: u64, seed: u64, vocab: &[u32]) -> Vec<u32> {
        let row = self.row(index);
        let mut ids = Vec::with_capacity(row.input_tokens as usize);
        for (hash, n) in self.blocks(index) {
            let mut rng = match hash {
                Some(h) => request_rng(seed ^ BLOCK_SALT, h),
                None => request_rng(seed ^ ROW_SALT, row.ordinal),
            };
            ids.extend(random_ids(&mut rng, n, vocab));
        }
        ids
    }
}

/// Arrivals over the span of non-decreasing `offsets` (their count per second when they all
/// fall at once).
fn rate_of(offsets: &[f64]) -> f64 {
    let span = offsets.last().copied().unwrap_or(0.0) - offsets.first().copied().unwrap_or(0.0);
    let n = offsets.len() as f64;
    if span > 0.0 {
        (n - 1.0).max(1.0) / span
    } else {
        n
    }
}

/// The ordinal of each row's conversation root: rows follow their `parent_chat_id` to the
/// earlier row of that `chat_id`; a first turn (`parent_chat_id` < 0) is its own root, and so is
/// a row whose parent already has a later turn (a branch, e.g. a regenerated answer: replayed
/// as a conversation of its own whose first prompt is the row's whole prompt). An error is
/// (line, what).
fn conversation_roots(
    raw: &[RawRow],
    format: TraceFormat,
) -> Result<Vec<usize>, (Option<usize>, String)> {
    use std::collections::{HashMap, HashSet};
    let mut by_chat: HashMap<i64, (usize, usize)> = HashMap::new(); // chat id → (line, root)
    let mut continued: HashSet<i64> = HashSet::new();
    let mut roots = Vec::with_capacity(raw.len());
    for (ordinal, (line, _, _, _, _, chat)) in raw.iter().enumerate() {
        let Some(chat) = chat else {
            return Err((None, format!("{format} traces have no session ids; trace sessions need a Bailian trace (chat_id, parent_chat_id)")));
        };
        let root = if chat.parent_chat_id < 0 {
            ordinal
        } else {
            match by_chat.get(&chat.parent_chat_id) {
                None => {
                    return Err((
                        Some(*line),
                        format!(
                            "parent_chat_id {} names no earlier row's chat_id (expected -1 for a first turn, or the chat_id of an earlier row)",
                            chat.parent_chat_id
                        ),
                    ))
                }
                Some(_) if !continued.insert(chat.parent_chat_id) => ordinal,
                Some(&(_, root)) => root,
            }
        };
        if let Some((first, _)) = by_chat.insert(chat.chat_id, (*line, root)) {
            return Err((
                Some(*line),
                format!(
                    "chat_id {} was already used at line {first}; expected one row per chat_id",
                    chat.chat_id
                ),
            ));
        }
        roots.push(root);
    }
    Ok(roots)
}

/// Salts that keep block and row token streams apart from each other and from synthetic prompts.
const BLOCK_SALT: u64 = 0xB10C_B10C_B10C_B10C;
const ROW_SALT: u64 = 0x7ACE_7ACE_7ACE_7ACE;

/// `n` ids drawn uniformly from `vocab` (none when it is empty).
pub fn random_ids(rng: &mut impl Rng, n: u32, vocab: &[u32]) -> Vec<u32> {
    if vocab.is_empty() {
        return Vec::new();
    }
    (0..n)
        .map(|_| vocab[rng.random_range(0..vocab.len())])
        .collect()
}

/// The format of a trace from its first non-empty line.
fn detect(text: &str) -> Option<TraceFormat> {
    let first = text.lines().find(|l| !l.trim().is_empty())?.trim();
    if first.starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(first).ok()?;
        return Some(if v.get("chat_id").is_some() {
            TraceFormat::Bailian
        } else {
            TraceFormat::Mooncake
        });
    }
    if first.contains("ContextTokens") {
        Some(TraceFormat::Azure)
    } else if first.contains("Request tokens") {
        Some(TraceFormat::Burstgpt)
    } else {
        None
    }
}

fn parse(text: &str, format: TraceFormat, origin: &str) -> Result<Vec<RawRow>, TraceError> {
    let err = |line: usize, what: String| TraceError {
        path: origin.to_string(),
        line: Some(line),
        what: format!("{what} (expected {})", format.expected()),
    };
    let mut out = Vec::new();
    match format {
        TraceFormat::Mooncake | TraceFormat::Bailian => {
            for (i, raw) in text.lines().enumerate() {
                let line = i + 1;
                if raw.trim().is_empty() {
                    continue;
                }
                // serde counts within this one line: report the column only.
                let bad = |e: serde_json::Error| {
                    err(
                        line,
                        e.to_string().replace(" at line 1 column ", " at column "),
                    )
                };
                let row = if format == TraceFormat::Mooncake {
                    let l: MooncakeLine = serde_json::from_str(raw).map_err(bad)?;
                    (
                        line,
                        l.timestamp / 1000.0,
                        l.input_length,
                        l.output_length,
                        l.hash_ids,
                        None,
                    )
                } else {
                    let l: BailianLine = serde_json::from_str(raw).map_err(bad)?;
                    let chat = ChatTurn {
                        chat_id: l.chat_id,
                        parent_chat_id: l.parent_chat_id,
                        turn: l.turn,
                    };
                    (
                        line,
                        l.timestamp,
                        l.input_length,
                        l.output_length,
                        l.hash_ids,
                        Some(chat),
                    )
                };
                if !(row.1.is_finite() && row.1 >= 0.0) {
                    return Err(err(line, "`timestamp` is negative or not finite".into()));
                }
                out.push(row);
            }
        }
        TraceFormat::Azure | TraceFormat::Burstgpt => {
            let mut reader = csv::ReaderBuilder::new()
                .trim(csv::Trim::All)
                .from_reader(text.as_bytes());
            let headers = reader
                .headers()
                .map_err(|e| err(1, format!("unreadable CSV header: {e}")))?
                .clone();
            for record in reader.records() {
                let record = record.map_err(|e| {
                    let line = e.position().map_or(0, |p| p.line() as usize);
                    err(line, format!("malformed CSV row: {e}"))
                })?;
                let line = record.position().map_or(0, |p| p.line() as usize);
                let bad = |e: csv::Error| {
                    let what = match e.kind() {
                        csv::ErrorKind::Deserialize { err, .. } => err.to_string(),
                        _ => e.to_string(),
                    };
                    err(line, what)
                };
                let row = if format == TraceFormat::Azure {
                    let l: AzureLine = record.deserialize(Some(&headers)).map_err(bad)?;
                    let t = humantime::parse_rfc3339_weak(&l.timestamp)
                        .ok()
                        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                        .ok_or_else(|| {
                            err(
                                line,
                                format!("`TIMESTAMP` {:?} is not a date and time", l.timestamp),
                            )
                        })?;
                    (
                        line,
                        t.as_secs_f64(),
                        l.context_tokens,
                        l.generated_tokens,
                        Vec::new(),
                        None,
                    )
                } else {
                    let l: BurstGptLine = record.deserialize(Some(&headers)).map_err(bad)?;
                    if !(l.timestamp.is_finite() && l.timestamp >= 0.0) {
                        return Err(err(line, "`Timestamp` is negative or not finite".into()));
                    }
                    (
                        line,
                        l.timestamp,
                        l.request_tokens,
                        l.response_tokens,
                        Vec::new(),
                        None,
                    )
                };
                out.push(row);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str, format: TraceFormat) -> Result<Vec<RawRow>, TraceError> {
        parse(text, format, "t")
    }

    #[test]
    fn detects_each_format_from_its_first_line() {
        let m = "{\"timestamp\": 0, \"input_length\": 5, \"output_length\": 2, \"hash_ids\": [1]}";
        assert_eq!(detect(m), Some(TraceFormat::Mooncake));
        let b = "\n{\"chat_id\": 1, \"parent_chat_id\": -1, \"timestamp\": 0.5, \"input_length\": 5, \"output_length\": 2, \"turn\": 1, \"hash_ids\": []}";
        assert_eq!(detect(b), Some(TraceFormat::Bailian));
        assert_eq!(
            detect("TIMESTAMP,ContextTokens,GeneratedTokens\n"),
            Some(TraceFormat::Azure)
        );
        assert_eq!(
            detect("Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"),
            Some(TraceFormat::Burstgpt)
        );
        assert_eq!(detect("a,b,c\n"), None);
    }

    #[test]
    fn bad_rows_name_the_line_and_the_field() {
        let e = parsed(
            "{\"timestamp\": 0, \"input_length\": 5, \"output_length\": 2}\n\n{\"timestamp\": 3, \"output_length\": 2}\n",
            TraceFormat::Mooncake,
        )
        .unwrap_err();
        assert_eq!(e.line, Some(3));
        assert!(e.what.contains("missing field `input_length`"), "{e}");
        assert!(e.to_string().starts_with("t:3: "), "{e}");
        let e = parsed(
            "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,4808,10\n2023-11-16 18:15:50.2,lots,10\n",
            TraceFormat::Azure,
        )
        .unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        assert!(e.what.contains("ContextTokens"), "{e}");
        let e = parsed(
            "TIMESTAMP,ContextTokens,GeneratedTokens\nyesterday,1,1\n",
            TraceFormat::Azure,
        )
        .unwrap_err();
        assert!(
            e.to_string().starts_with("t:2: `TIMESTAMP` \"yesterday\""),
            "{e}"
        );
        let e = parsed(
            "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n1.5,ChatGPT,10\n",
            TraceFormat::Burstgpt,
        )
        .unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
        let e = parsed(
            "{\"chat_id\": 1, \"parent_chat_id\": -1, \"timestamp\": 0.5, \"input_length\": 5, \"output_length\": 2, \"hash_ids\": []}",
            TraceFormat::Bailian,
        )
        .unwrap_err();
        assert!(e.what.contains("missing field `turn`"), "{e}");
    }

    #[test]
    fn csv_times_are_seconds() {
        let a = parsed(
            "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.5000000,4808,10\n2023-11-16 18:15:47.7500000,20,3\n",
            TraceFormat::Azure,
        )
        .unwrap();
        assert!((a[1].1 - a[0].1 - 1.25).abs() < 1e-6);
        assert_eq!((a[1].2, a[1].3), (20, 3));
        let b = parsed(
            "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n5,ChatGPT,472,18,490,Conversation log\n",
            TraceFormat::Burstgpt,
        )
        .unwrap();
        assert_eq!((b[0].1, b[0].2, b[0].3), (5.0, 472, 18));
    }

    #[test]
    fn window_values() {
        let w: TraceWindow = "60s..2m".parse().unwrap();
        assert_eq!((w.start_s, w.end_s), (Some(60.0), Some(120.0)));
        let w: TraceWindow = "..1.5".parse().unwrap();
        assert_eq!((w.start_s, w.end_s), (None, Some(1.5)));
        assert!("5..2".parse::<TraceWindow>().is_err());
        assert!("..".parse::<TraceWindow>().is_err());
        assert!("10s".parse::<TraceWindow>().is_err());
    }
}
