//! Multi-turn sessions: conversations whose turns are sent one after another, each turn's
//! request carrying the whole history (earlier user turns and the model's actual responses).
//!
//! A session's user turns come from a [`SessionSource`]: synthetic sessions take each user turn
//! from the run's prompt source (synthetic ids, the corpus, a prompt file), conversation files
//! (ShareGPT JSON or JSONL) give their own user turns in order (their recorded assistant turns
//! are replaced by the model's). Between turns the user "thinks" for a [`ThinkTime`], drawn
//! per turn from the seed. Trace sessions replay a Bailian trace's conversations: each turn's
//! new user part is what the trace's prompt adds to the previous turn's prompt and response,
//! and the think time is what the trace's timestamps leave after the previous turn's measured
//! duration (see [`SessionPlan::think_before`]). [`History`] accumulates what the next request sends: token ids
//! where the prompts are ids and the backend takes them as they are (in-process models), chat
//! messages otherwise.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use charter_backends::{ChatMessage, GenRequest, Prompt};

use crate::lengths::LengthDist;
use crate::prompts::{request_rng, PromptFileError};
use crate::trace::Trace;
use crate::RequestTemplate;

/// Think time between a turn's response and the next turn: fixed, or a distribution of
/// milliseconds drawn per turn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ThinkTime {
    Fixed(Duration),
    /// A [`LengthDist`] whose unit is one millisecond.
    Millis(LengthDist),
}

const THINK_EXPECTED: &str = "expected a duration (2s, 500ms) or uniform:MIN:MAX, normal:MEAN:SD (durations) or lognormal:MEDIAN:SIGMA (a duration and a number)";

impl ThinkTime {
    /// Draw one think time.
    pub fn sample<R: rand::Rng + ?Sized>(&self, rng: &mut R) -> Duration {
        match self {
            ThinkTime::Fixed(d) => *d,
            ThinkTime::Millis(dist) => Duration::from_millis(u64::from(dist.sample(rng))),
        }
    }
}

impl FromStr for ThinkTime {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}`: {THINK_EXPECTED}");
        if let Ok(d) = humantime::parse_duration(s.trim()) {
            return Ok(ThinkTime::Fixed(d));
        }
        let parts: Vec<&str> = s.trim().split(':').collect();
        let millis = |p: &str| -> Result<String, String> {
            let d = humantime::parse_duration(p.trim()).map_err(|_| bad())?;
            Ok(d.as_millis().to_string())
        };
        // The length distribution's own syntax, with durations turned into milliseconds.
        let in_ms = match parts.as_slice() {
            [kind @ ("uniform" | "normal"), a, b] => {
                format!("{kind}:{}:{}", millis(a)?, millis(b)?)
            }
            ["lognormal", median, sigma] => format!("lognormal:{}:{sigma}", millis(median)?),
            _ => return Err(bad()),
        };
        in_ms
            .parse::<LengthDist>()
            .map(ThinkTime::Millis)
            .map_err(|_| bad())
    }
}

impl fmt::Display for ThinkTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ThinkTime::Fixed(d) => write!(f, "{}", humantime::format_duration(*d)),
            ThinkTime::Millis(LengthDist::Fixed { tokens }) => write!(f, "{tokens}ms"),
            ThinkTime::Millis(LengthDist::Uniform { min, max }) => {
                write!(f, "uniform:{min}ms:{max}ms")
            }
            ThinkTime::Millis(LengthDist::Normal { mean, sd }) => {
                write!(f, "normal:{mean}ms:{sd}ms")
            }
            ThinkTime::Millis(LengthDist::LogNormal { median, sigma }) => {
                write!(f, "lognormal:{median}ms:{sigma}")
            }
        }
    }
}

/// One conversation of a conversation file: its system prompt and user turns in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Conversation {
    pub system: Option<String>,
    pub user_turns: Vec<String>,
}

/// Where sessions' user turns come from.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionSource {
    /// Each user turn is the run's prompt source's prompt for that request.
    Synthetic { turns: LengthDist },
    /// Session i is conversation i mod n of the file.
    Conversations {
        path: String,
        conversations: Vec<Conversation>,
    },
    /// Session i is conversation i of a trace read with sessions ([`Trace::conversations`]):
    /// it arrives at its first turn's timestamp, and its turns' lengths and gaps are the trace's.
    Trace(Arc<Trace>),
}

/// The sessions of a level and the time users think between turns.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionPlan {
    pub source: SessionSource,
    /// Sessions per level.
    pub sessions: u64,
    pub think_time: ThinkTime,
}

/// Separates the random streams of turn counts and think times from the prompts'.
const TURNS_STREAM: u64 = 0x5E55_1015_0000_0001;
const THINK_STREAM: u64 = 0x5E55_1015_0000_0002;

impl SessionPlan {
    /// The most turns any session can have: request ids of a level are spaced by it.
    pub fn max_turns(&self) -> u32 {
        match &self.source {
            SessionSource::Synthetic { turns } => turns.upper(),
            SessionSource::Conversations { conversations, .. } => conversations
                .iter()
                .map(|c| c.user_turns.len() as u32)
                .max()
                .unwrap_or(1),
            SessionSource::Trace(t) => t
                .conversations
                .iter()
                .map(|c| c.len() as u32)
                .max()
                .unwrap_or(1),
        }
    }

    /// When a trace's sessions arrive: its conversations' first turns' offsets (`None` for
    /// other sessions, which arrive by the level's arrival process).
    pub fn trace_offsets(&self) -> Option<Vec<f64>> {
        match &self.source {
            SessionSource::Trace(t) => Some(t.conversation_offsets()),
            _ => None,
        }
    }

    /// Turns of session `session` (deterministic in the seed).
    pub fn turns(&self, session: u64, seed: u64) -> u32 {
        match &self.source {
            SessionSource::Synthetic { turns } => {
                turns.sample(&mut request_rng(seed ^ TURNS_STREAM, session))
            }
            SessionSource::Conversations { conversations, .. } => {
                self.conversation(session, conversations).user_turns.len() as u32
            }
            SessionSource::Trace(t) => t.conversations[session as usize].len() as u32,
        }
    }

    fn conversation<'c>(&self, session: u64, list: &'c [Conversation]) -> &'c Conversation {
        &list[(session % list.len() as u64) as usize]
    }

    /// Request `id`, turn `turn` (1-based) of `session`, with only the user's part of the turn
    /// as its prompt (the caller prepends the history): synthetic sessions take the
    /// template's request `id`; conversation files their own user turn; a trace the row's
    /// prompt (see [`SessionPlan::trace_user_ids`]) and output length (unless `--max-tokens`
    /// gives one).
    pub fn turn_request(
        &self,
        template: &RequestTemplate,
        session: u64,
        turn: u32,
        id: u64,
        vocab: &[u32],
    ) -> GenRequest {
        let mut request = template.request(id, vocab);
        match &self.source {
            SessionSource::Synthetic { .. } => {}
            SessionSource::Conversations { conversations, .. } => {
                let c = self.conversation(session, conversations);
                let user = ChatMessage {
                    role: "user".into(),
                    content: c.user_turns[turn as usize - 1].clone(),
                };
                request.prompt = match (&c.system, turn) {
                    (Some(system), 1) => Prompt::Chat(vec![
                        ChatMessage {
                            role: "system".into(),
                            content: system.clone(),
                        },
                        user,
                    ]),
                    _ => Prompt::Chat(vec![user]),
                };
            }
            SessionSource::Trace(t) => {
                let row = t.conversations[session as usize][turn as usize - 1];
                request.prompt = Prompt::Tokens(self.trace_user_ids(
                    t,
                    session,
                    turn,
                    template.sampling.seed,
                    vocab,
                ));
                if template.max_tokens.is_none() {
                    request.max_tokens = t.rows[row].output_tokens;
                }
            }
        }
        request
    }

    /// The new user tokens of turn `turn` of trace conversation `session`. A trace's
    /// `input_length` counts the whole conversation so far (as the published Bailian trace
    /// does), so turn 1 sends the row's whole prompt (its hash-id blocks shared with other rows
    /// as in any replay) and turn k > 1 the last `input_k − input_(k−1) − output_(k−1)` tokens of
    /// row k's prompt (at least one): with the history of the real responses before it, the
    /// prompt is as long as the trace's when each response is as long as the row's output.
    fn trace_user_ids(
        &self,
        t: &Trace,
        session: u64,
        turn: u32,
        seed: u64,
        vocab: &[u32],
    ) -> Vec<u32> {
        let row = t.conversations[session as usize][turn as usize - 1];
        let mut ids = t.prompt_ids(row as u64, seed, vocab);
        let new = trace_user_tokens(t, session, turn) as usize;
        ids.drain(..ids.len().saturating_sub(new));
        ids
    }

    /// The most tokens a session's history can reach: its prompt at its last turn plus that
    /// turn's output. Synthetic sessions: the most turns × (`user_tokens` + `output_tokens`,
    /// each the practical maximum per turn); a conversation file: per conversation, its
    /// system prompt and user turns (`text_tokens` bounds a text's tokens) + one
    /// `output_tokens` per turn; a trace: per conversation, the user tokens each turn sends +
    /// each turn's output (its row's, or `output_cap` when given).
    pub fn max_context_tokens(
        &self,
        user_tokens: u64,
        output_tokens: u64,
        output_cap: Option<u64>,
        text_tokens: impl Fn(&str) -> u64,
    ) -> u64 {
        match &self.source {
            SessionSource::Synthetic { turns } => {
                u64::from(turns.upper()) * (user_tokens + output_tokens)
            }
            SessionSource::Conversations { conversations, .. } => conversations
                .iter()
                .map(|c| {
                    let system = c.system.as_deref().map_or(0, &text_tokens);
                    let users: u64 = c.user_turns.iter().map(|u| text_tokens(u)).sum();
                    system + users + c.user_turns.len() as u64 * output_tokens
                })
                .max()
                .unwrap_or(0),
            SessionSource::Trace(t) => (0..t.conversations.len() as u64)
                .map(|session| {
                    let rows = &t.conversations[session as usize];
                    (1..=rows.len() as u32)
                        .map(|turn| {
                            let row = &t.rows[rows[turn as usize - 1]];
                            u64::from(trace_user_tokens(t, session, turn))
                                + output_cap.unwrap_or(u64::from(row.output_tokens))
                        })
                        .sum::<u64>()
                })
                .max()
                .unwrap_or(0),
        }
    }

    /// The think time before turn `turn` (> 1) of `session` (request `id`), whose previous
    /// turn took `previous`: drawn from `--think-time` (deterministic in the seed), or for a
    /// trace what the gap between the two turns' timestamps (divided by the speed) leaves after
    /// the previous turn's duration, at least 0. So a trace's turns arrive at their own
    /// timestamps while the server answers as fast as production did, and right after the
    /// response when it is slower (a user cannot reply before the answer).
    pub fn think_before(
        &self,
        session: u64,
        turn: u32,
        id: u64,
        seed: u64,
        previous: Duration,
    ) -> Duration {
        match &self.source {
            SessionSource::Trace(t) => {
                let rows = &t.conversations[session as usize];
                let (a, b) = (rows[turn as usize - 2], rows[turn as usize - 1]);
                let gap = (t.rows[b].at_s - t.rows[a].at_s) / t.speed;
                Duration::from_secs_f64(gap.max(0.0)).saturating_sub(previous)
            }
            _ => self.think_time(id, seed),
        }
    }

    /// The `--think-time` drawn before the request with id `id` (deterministic in the seed).
    fn think_time(&self, id: u64, seed: u64) -> Duration {
        self.think_time
            .sample(&mut request_rng(seed ^ THINK_STREAM, id))
    }

    /// What the sharding key of `session` is: sessions are kept whole on one shard.
    pub fn key(&self, session: u64) -> [u8; 8] {
        session.to_le_bytes()
    }

    /// A short description for records.
    pub fn describe(&self) -> String {
        let what = match &self.source {
            SessionSource::Synthetic { turns } => format!("{turns} turns each"),
            SessionSource::Conversations {
                path,
                conversations,
            } => format!(
                "user turns of {path} ({} conversations)",
                conversations.len()
            ),
            SessionSource::Trace(t) => {
                return format!(
                    "{} conversations of trace {} ({} turns), arriving at their first turns' timestamps; think time from the trace's gaps",
                    self.sessions,
                    t.path.display(),
                    t.rows.len()
                )
            }
        };
        format!(
            "{} sessions per level, {what}, think time {}",
            self.sessions, self.think_time
        )
    }
}

/// The user tokens turn `turn` of trace conversation `session` adds (see
/// [`SessionPlan::turn_request`]): the row's whole input at turn 1, then
/// `input_k − input_(k−1) − output_(k−1)`, at least 1.
fn trace_user_tokens(t: &Trace, session: u64, turn: u32) -> u32 {
    let rows = &t.conversations[session as usize];
    let input = t.rows[rows[turn as usize - 1]].input_tokens;
    if turn == 1 {
        return input;
    }
    let prev = &t.rows[rows[turn as usize - 2]];
    input
        .saturating_sub(prev.input_tokens + prev.output_tokens)
        .max(1)
}

/// What the next turn of a session sends: every earlier user turn and response.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum History {
    #[default]
    Empty,
    /// Prompt ids and output ids, concatenated.
    Tokens(Vec<u32>),
    Chat(Vec<ChatMessage>),
}

impl History {
    /// Append a user turn: ids extend a token history, text and messages a chat history.
    pub fn push_user(&mut self, user: Prompt) {
        match (std::mem::take(self), user) {
            (History::Empty, Prompt::Tokens(ids)) => *self = History::Tokens(ids),
            (History::Tokens(mut h), Prompt::Tokens(ids)) => {
                h.extend(ids);
                *self = History::Tokens(h);
            }
            (History::Tokens(_), _) => {
                unreachable!("a session's user turns are all ids or all text")
            }
            (h, user) => {
                let mut messages = match h {
                    History::Chat(m) => m,
                    _ => Vec::new(),
                };
                match user {
                    Prompt::Chat(m) => messages.extend(m),
                    Prompt::Text(content) => messages.push(ChatMessage {
                        role: "user".into(),
                        content,
                    }),
                    Prompt::Tokens(_) => unreachable!("checked above"),
                }
                *self = History::Chat(messages);
            }
        }
    }

    /// Append the model's response: its ids to a token history, `text()` to a chat history.
    pub fn push_response(&mut self, ids: &[u32], text: impl FnOnce() -> String) {
        match self {
            History::Tokens(h) => h.extend_from_slice(ids),
            History::Chat(m) => m.push(ChatMessage {
                role: "assistant".into(),
                content: text(),
            }),
            History::Empty => {}
        }
    }

    /// The prompt of the next request.
    pub fn prompt(&self) -> Prompt {
        match self {
            History::Tokens(ids) => Prompt::Tokens(ids.clone()),
            History::Chat(m) => Prompt::Chat(m.clone()),
            History::Empty => Prompt::Tokens(Vec::new()),
        }
    }
}

/// Read a conversation file: a ShareGPT JSON array of `{"conversations": [{"from", "value"}]}`,
/// or JSONL with one such object (or `{"messages": [{"role", "content"}]}`) per line. Each
/// conversation needs at least one user turn; the recorded assistant turns are dropped (the
/// model answers for itself).
pub fn load_conversations(path: &Path) -> Result<SessionSource, PromptFileError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| PromptFileError {
        path: origin.clone(),
        line: None,
        what: format!("cannot read conversation file: {e}"),
    })?;
    let conversations = parse_conversations(&text, &origin)?;
    Ok(SessionSource::Conversations {
        path: origin,
        conversations,
    })
}

const CONVERSATION_EXPECTED: &str = "expected a JSON array of {\"conversations\": [{\"from\": \"human\", \"value\": \"...\"}, ...]}, or JSONL with one {\"conversations\": [...]} or {\"messages\": [{\"role\": \"user\", \"content\": \"...\"}]} per line";

#[derive(serde::Deserialize)]
struct Turn {
    #[serde(alias = "role")]
    from: String,
    #[serde(alias = "content")]
    value: String,
}

#[derive(serde::Deserialize)]
struct Record {
    #[serde(alias = "messages")]
    conversations: Vec<Turn>,
}

fn parse_conversations(text: &str, origin: &str) -> Result<Vec<Conversation>, PromptFileError> {
    let err = |line: Option<usize>, what: String| PromptFileError {
        path: origin.to_string(),
        line,
        what,
    };
    let records: Vec<Record> = if text.trim_start().starts_with('[') {
        serde_json::from_str(text).map_err(|e| {
            err(
                Some(e.line()),
                format!("malformed conversation file: {e} ({CONVERSATION_EXPECTED})"),
            )
        })?
    } else {
        let mut out = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            if raw.trim().is_empty() {
                continue;
            }
            out.push(serde_json::from_str(raw).map_err(|e| {
                let what = e.to_string().replace(" at line 1 column ", " at column ");
                err(
                    Some(i + 1),
                    format!("malformed JSONL line: {what} ({CONVERSATION_EXPECTED})"),
                )
            })?);
        }
        out
    };
    // As with ShareGPT prompt files, conversations without a user turn and speakers other
    // than the user, the assistant and the system are passed over.
    let conversations: Vec<Conversation> = records
        .into_iter()
        .filter_map(|rec| {
            let mut c = Conversation {
                system: None,
                user_turns: Vec::new(),
            };
            for t in rec.conversations {
                match t.from.as_str() {
                    "human" | "user" if !t.value.is_empty() => c.user_turns.push(t.value),
                    "system" if c.user_turns.is_empty() => c.system = Some(t.value),
                    _ => {}
                }
            }
            (!c.user_turns.is_empty()).then_some(c)
        })
        .collect();
    if conversations.is_empty() {
        return Err(err(
            None,
            format!("no conversation with a non-empty user turn; {CONVERSATION_EXPECTED}"),
        ));
    }
    Ok(conversations)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn think_times_parse_and_print() {
        assert_eq!(
            "2s".parse::<ThinkTime>().unwrap(),
            ThinkTime::Fixed(Duration::from_secs(2))
        );
        assert_eq!(
            "0s".parse::<ThinkTime>().unwrap(),
            ThinkTime::Fixed(Duration::ZERO)
        );
        let u: ThinkTime = "uniform:500ms:2s".parse().unwrap();
        assert_eq!(
            u,
            ThinkTime::Millis(LengthDist::Uniform {
                min: 500,
                max: 2000
            })
        );
        assert_eq!(u.to_string().parse::<ThinkTime>().unwrap(), u);
        let l: ThinkTime = "lognormal:1s:0.5".parse().unwrap();
        assert_eq!(l.to_string().parse::<ThinkTime>().unwrap(), l);
        for bad in ["soon", "uniform:2s", "uniform:2s:1s", "zipf:1s:2s", "-1s"] {
            let e = bad.parse::<ThinkTime>().unwrap_err();
            assert!(e.contains("expected a duration"), "{bad}: {e}");
        }
        let mut rng = request_rng(1, 2);
        for _ in 0..100 {
            let d = u.sample(&mut rng);
            assert!((500..=2000).contains(&d.as_millis()), "{d:?}");
        }
    }

    #[test]
    fn a_sessions_longest_context_counts_every_turn() {
        let synthetic = SessionPlan {
            source: SessionSource::Synthetic {
                turns: LengthDist::Uniform { min: 2, max: 4 },
            },
            sessions: 3,
            think_time: ThinkTime::Fixed(Duration::ZERO),
        };
        // 4 turns at most × (100 prompt + 50 output tokens).
        assert_eq!(synthetic.max_context_tokens(100, 50, None, |_| 0), 600);
        let file = SessionPlan {
            source: SessionSource::Conversations {
                path: "c.jsonl".into(),
                conversations: vec![
                    Conversation {
                        system: Some("sys".into()),
                        user_turns: vec!["ab".into(), "cdef".into()],
                    },
                    Conversation {
                        system: None,
                        user_turns: vec!["x".into()],
                    },
                ],
            },
            sessions: 2,
            think_time: ThinkTime::Fixed(Duration::ZERO),
        };
        // One token per byte + 10 per text: (3 + 10) + (2 + 10) + (4 + 10) + 2 turns × 50.
        let bytes = |t: &str| t.len() as u64 + 10;
        assert_eq!(file.max_context_tokens(999, 50, None, bytes), 139);
    }

    #[test]
    fn histories_carry_every_turn_and_response() {
        let mut h = History::default();
        h.push_user(Prompt::Tokens(vec![1, 2]));
        h.push_response(&[7, 8, 9], || unreachable!());
        h.push_user(Prompt::Tokens(vec![3]));
        assert_eq!(h.prompt(), Prompt::Tokens(vec![1, 2, 7, 8, 9, 3]));
        let mut c = History::default();
        c.push_user(Prompt::Text("hi".into()));
        c.push_response(&[], || "hello".into());
        c.push_user(Prompt::Text("more".into()));
        let Prompt::Chat(m) = c.prompt() else {
            panic!()
        };
        let said: Vec<(&str, &str)> = m
            .iter()
            .map(|m| (m.role.as_str(), m.content.as_str()))
            .collect();
        assert_eq!(
            said,
            [("user", "hi"), ("assistant", "hello"), ("user", "more")]
        );
    }

    #[test]
    fn conversation_files_are_read_with_lines_in_errors() {
        let sharegpt = "[\n  {\"conversations\": [{\"from\": \"system\", \"value\": \"be brief\"}, {\"from\": \"human\", \"value\": \"a\"}, {\"from\": \"gpt\", \"value\": \"x\"}, {\"from\": \"human\", \"value\": \"b\"}]},\n  {\"conversations\": [{\"from\": \"human\", \"value\": \"c\"}]}\n]";
        let c = parse_conversations(sharegpt, "s.json").unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].system.as_deref(), Some("be brief"));
        assert_eq!(c[0].user_turns, ["a", "b"]);
        let jsonl = "{\"messages\": [{\"role\": \"user\", \"content\": \"q1\"}, {\"role\": \"assistant\", \"content\": \"r\"}, {\"role\": \"user\", \"content\": \"q2\"}]}\n";
        assert_eq!(
            parse_conversations(jsonl, "c.jsonl").unwrap()[0].user_turns,
            ["q1", "q2"]
        );
        let e = parse_conversations("{\"messages\": []}\n{oops}\n", "c.jsonl").unwrap_err();
        assert!(
            e.to_string().starts_with("c.jsonl:2: malformed JSONL line"),
            "{e}"
        );
        let e = parse_conversations("[\n{\"conversations\": [{\"from\": \"human\", \"value\": \"a\"}]},\n{\"conversations\": 3}\n]", "s.json").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("s.json:3: malformed conversation file"),
            "{e}"
        );
        let e = parse_conversations(
            "[{\"conversations\": [{\"from\": \"gpt\", \"value\": \"a\"}]}]",
            "s.json",
        )
        .unwrap_err();
        assert!(
            e.to_string().starts_with("s.json: no conversation with"),
            "{e}"
        );
        assert!(parse_conversations("", "e.jsonl").is_err());
    }
}
