//! Wire formats of the streaming APIs: one SSE event in, one [`Piece`] out.
//!
//! OpenAI chat (`choices[].delta.content`, reasoning in `delta.reasoning_content` or
//! `delta.reasoning`) and completions (`choices[].text`), with `usage` in the last chunk when
//! `stream_options.include_usage` is honoured, then `data: [DONE]`; Anthropic messages
//! (`message_start`, `content_block_delta` with `text_delta` or `thinking_delta`,
//! `message_delta` with usage, `message_stop`, `ping`, `error`). Servers that imitate OpenAI
//! (vLLM, TGI, llama.cpp's server) emit the same shapes with small differences (role-only first
//! chunks, empty final deltas, `usage: null`, extra fields), which parse to the same pieces.

use std::borrow::Cow;

use serde::Deserialize;

use crate::secrets::Secrets;

/// Which API's wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    OpenAiChat,
    OpenAiCompletions,
    Anthropic,
}

/// Usage numbers an API reported (any may be missing).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub reasoning_tokens: Option<u64>,
    /// Prompt tokens read from the API's prompt cache.
    pub cached_prompt_tokens: Option<u64>,
}

impl Usage {
    /// Later reports win field by field (Anthropic sends input tokens first, output last).
    pub fn merge(&mut self, other: Usage) {
        self.prompt_tokens = other.prompt_tokens.or(self.prompt_tokens);
        self.output_tokens = other.output_tokens.or(self.output_tokens);
        self.reasoning_tokens = other.reasoning_tokens.or(self.reasoning_tokens);
        self.cached_prompt_tokens = other.cached_prompt_tokens.or(self.cached_prompt_tokens);
    }
}

/// What one event carried.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Piece<'a> {
    /// Content text (may be empty: role-only and final chunks carry none).
    pub content: Option<Cow<'a, str>>,
    /// Reasoning/thinking text.
    pub reasoning: Option<Cow<'a, str>>,
    pub usage: Option<Usage>,
    /// `finish_reason` / `stop_reason`.
    pub finish: Option<Cow<'a, str>>,
    /// The end-of-stream marker (`[DONE]`, `message_stop`).
    pub done: bool,
    /// An error the server reported inside the stream.
    pub error: Option<String>,
}

impl Piece<'_> {
    pub fn has_content(&self) -> bool {
        self.content.as_deref().is_some_and(|c| !c.is_empty())
    }
    pub fn has_reasoning(&self) -> bool {
        self.reasoning.as_deref().is_some_and(|c| !c.is_empty())
    }
}

// ---- OpenAI ----

#[derive(Deserialize)]
struct OaChunk<'a> {
    #[serde(borrow, default)]
    choices: Vec<OaChoice<'a>>,
    #[serde(default)]
    usage: Option<OaUsage>,
    #[serde(default)]
    error: Option<serde_json::Value>,
    #[serde(borrow, default)]
    object: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    message: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct OaChoice<'a> {
    #[serde(borrow, default)]
    delta: Option<OaDelta<'a>>,
    /// Completions.
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct OaDelta<'a> {
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
    /// vLLM, DeepSeek, llama.cpp's server.
    #[serde(borrow, default)]
    reasoning_content: Option<Cow<'a, str>>,
    /// OpenRouter, newer vLLM.
    #[serde(borrow, default)]
    reasoning: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct OaUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens_details: Option<OaDetails>,
    #[serde(default)]
    prompt_tokens_details: Option<OaPromptDetails>,
}

#[derive(Deserialize)]
struct OaPromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct OaDetails {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

fn openai<'a>(data: &'a str, secrets: &Secrets) -> Result<Piece<'a>, String> {
    if data.trim_end() == "[DONE]" {
        return Ok(Piece {
            done: true,
            ..Default::default()
        });
    }
    let c: OaChunk<'_> = serde_json::from_str(data).map_err(|e| bad_json(data, &e, secrets))?;
    if let Some(e) = c.error {
        return Ok(Piece {
            error: Some(describe_error(&e, secrets)),
            ..Default::default()
        });
    }
    if c.object.as_deref() == Some("error") {
        return Ok(Piece {
            error: Some(c.message.map(Cow::into_owned).unwrap_or_default()),
            ..Default::default()
        });
    }
    let mut p = Piece {
        usage: c.usage.map(|u| Usage {
            prompt_tokens: u.prompt_tokens,
            output_tokens: u.completion_tokens,
            reasoning_tokens: u.completion_tokens_details.and_then(|d| d.reasoning_tokens),
            cached_prompt_tokens: u.prompt_tokens_details.and_then(|d| d.cached_tokens),
        }),
        ..Default::default()
    };
    // charter asks for n = 1: one choice.
    if let Some(ch) = c.choices.into_iter().next() {
        p.finish = ch.finish_reason;
        if let Some(d) = ch.delta {
            p.content = d.content;
            p.reasoning = d.reasoning_content.or(d.reasoning);
        } else {
            p.content = ch.text;
        }
    }
    Ok(p)
}

// ---- Anthropic ----

#[derive(Deserialize)]
struct AnEvent<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default)]
    message: Option<AnMessage>,
    #[serde(borrow, default)]
    delta: Option<AnDelta<'a>>,
    #[serde(default)]
    usage: Option<AnUsage>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct AnMessage {
    #[serde(default)]
    usage: Option<AnUsage>,
}

#[derive(Deserialize)]
struct AnDelta<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    thinking: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    stop_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct AnUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
}

impl From<AnUsage> for Usage {
    fn from(u: AnUsage) -> Self {
        // Anthropic's `input_tokens` leaves out the tokens written to and read from its cache:
        // the prompt is all three (as OpenAI's `prompt_tokens` counts its cached tokens).
        let cached = u.cache_read_input_tokens;
        Usage {
            prompt_tokens: u
                .input_tokens
                .map(|i| i + u.cache_creation_input_tokens.unwrap_or(0) + cached.unwrap_or(0)),
            output_tokens: u.output_tokens,
            reasoning_tokens: None,
            cached_prompt_tokens: cached,
        }
    }
}

fn anthropic<'a>(data: &'a str, secrets: &Secrets) -> Result<Piece<'a>, String> {
    let e: AnEvent<'_> = serde_json::from_str(data).map_err(|e| bad_json(data, &e, secrets))?;
    let mut p = Piece::default();
    match e.kind.as_ref() {
        "message_start" => {
            p.usage = e.message.and_then(|m| m.usage).map(Usage::from);
            // A message_start's output count is a running figure (usually 1), not the total.
            if let Some(u) = &mut p.usage {
                u.output_tokens = None;
            }
        }
        "content_block_delta" => {
            if let Some(d) = e.delta {
                match d.kind.as_deref() {
                    Some("text_delta") => p.content = d.text,
                    Some("thinking_delta") => p.reasoning = d.thinking,
                    // input_json_delta (tool use), signature_delta: not text.
                    _ => {}
                }
            }
        }
        "message_delta" => {
            p.usage = e.usage.map(Usage::from);
            p.finish = e.delta.and_then(|d| d.stop_reason);
        }
        "message_stop" => p.done = true,
        "error" => {
            p.error = Some(
                e.error
                    .as_ref()
                    .map(|e| describe_error(e, secrets))
                    .unwrap_or_else(|| "error event".into()),
            )
        }
        // ping, content_block_start, content_block_stop, and event types added later.
        _ => {}
    }
    Ok(p)
}

/// Parse one SSE event's data. Texts quoted from `data` in errors are scrubbed of `secrets`
/// before they are cut.
pub fn parse<'a>(format: Format, data: &'a str, secrets: &Secrets) -> Result<Piece<'a>, String> {
    match format {
        Format::OpenAiChat | Format::OpenAiCompletions => openai(data, secrets),
        Format::Anthropic => anthropic(data, secrets),
    }
}

fn bad_json(data: &str, e: &serde_json::Error, secrets: &Secrets) -> String {
    let head = secrets.clip(data, 80);
    format!("chunk is not valid JSON ({e}): {head:?}")
}

fn describe_error(v: &serde_json::Value, secrets: &Secrets) -> String {
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("");
    match (s("type"), s("message")) {
        ("", "") => secrets.clip(&v.to_string(), 200),
        (t, "") => t.to_string(),
        ("", m) => m.to_string(),
        (t, m) => format!("{t}: {m}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(format: Format, data: &str) -> Result<Piece<'_>, String> {
        super::parse(format, data, &Secrets::none())
    }

    #[test]
    fn quoted_texts_are_scrubbed_before_the_cut() {
        let key = "sk-wire-0123456789abcdefghij";
        let secrets = Secrets::new([key]);
        for pad in 60..100 {
            let data = format!("{{\"x\": \"{}{key}\"", "p".repeat(pad));
            let e = super::parse(Format::OpenAiChat, &data, &secrets).unwrap_err();
            assert!(!e.contains(&key[..8]), "{pad}: {e}");
            let ev = format!(
                "{{\"error\": {{\"code\": \"{}{key}\"}}}}",
                "p".repeat(pad + 120)
            );
            let p = super::parse(Format::OpenAiChat, &ev, &secrets).unwrap();
            let err = p.error.unwrap();
            assert!(!err.contains(&key[..8]), "{pad}: {err}");
        }
    }

    #[test]
    fn openai_chat_shapes() {
        let p = parse(
            Format::OpenAiChat,
            r#"{"id":"x","choices":[{"index":0,"delta":{"role":"assistant"},"finish_reason":null}]}"#,
        )
        .unwrap();
        assert!(!p.has_content() && p.finish.is_none());
        let p = parse(
            Format::OpenAiChat,
            r#"{"choices":[{"delta":{"content":"Hi \"there\""}}]}"#,
        )
        .unwrap();
        assert_eq!(p.content.as_deref(), Some("Hi \"there\""));
        let p = parse(
            Format::OpenAiChat,
            r#"{"choices":[{"delta":{"reasoning_content":"hmm"}}]}"#,
        )
        .unwrap();
        assert!(p.has_reasoning() && !p.has_content());
        let p = parse(
            Format::OpenAiChat,
            r#"{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":7,"completion_tokens_details":{"reasoning_tokens":2},"prompt_tokens_details":{"cached_tokens":3}}}"#,
        )
        .unwrap();
        assert_eq!(
            p.usage,
            Some(Usage {
                prompt_tokens: Some(5),
                output_tokens: Some(7),
                reasoning_tokens: Some(2),
                cached_prompt_tokens: Some(3)
            })
        );
        assert!(parse(Format::OpenAiChat, "[DONE]").unwrap().done);
        let e = parse(Format::OpenAiChat, r#"{"choices":[{"delta":"#).unwrap_err();
        assert!(e.contains("not valid JSON"), "{e}");
        let p = parse(
            Format::OpenAiChat,
            r#"{"error":{"message":"boom","type":"server_error"}}"#,
        )
        .unwrap();
        assert_eq!(p.error.as_deref(), Some("server_error: boom"));
    }

    #[test]
    fn anthropic_shapes() {
        let p = parse(
            Format::Anthropic,
            r#"{"type":"message_start","message":{"id":"m","usage":{"input_tokens":25,"output_tokens":1}}}"#,
        )
        .unwrap();
        assert_eq!(p.usage.unwrap().prompt_tokens, Some(25));
        assert_eq!(p.usage.unwrap().output_tokens, None);
        // A prompt partly written to and partly read from the cache: the prompt is all of it.
        let p = parse(
            Format::Anthropic,
            r#"{"type":"message_start","message":{"id":"m","usage":{"input_tokens":5,"cache_creation_input_tokens":7,"cache_read_input_tokens":20,"output_tokens":1}}}"#,
        )
        .unwrap();
        assert_eq!(p.usage.unwrap().prompt_tokens, Some(32));
        assert_eq!(p.usage.unwrap().cached_prompt_tokens, Some(20));
        let p = parse(
            Format::Anthropic,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}"#,
        )
        .unwrap();
        assert_eq!(p.content.as_deref(), Some("Hello"));
        let p = parse(
            Format::Anthropic,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"so"}}"#,
        )
        .unwrap();
        assert!(p.has_reasoning() && !p.has_content());
        let p = parse(
            Format::Anthropic,
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":15}}"#,
        )
        .unwrap();
        assert_eq!(p.finish.as_deref(), Some("end_turn"));
        assert_eq!(p.usage.unwrap().output_tokens, Some(15));
        assert!(
            parse(Format::Anthropic, r#"{"type":"message_stop"}"#)
                .unwrap()
                .done
        );
        assert_eq!(
            parse(Format::Anthropic, r#"{"type":"ping"}"#).unwrap(),
            Piece::default()
        );
        let p = parse(
            Format::Anthropic,
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        )
        .unwrap();
        assert_eq!(p.error.as_deref(), Some("overloaded_error: Overloaded"));
    }
}
