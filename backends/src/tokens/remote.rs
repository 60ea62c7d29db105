//! Counting over HTTP: Anthropic's `/v1/messages/count_tokens`, and the `/tokenize` (plus
//! `/detokenize`) endpoints of vLLM and llama.cpp's server.
//!
//! The API key comes from the environment variable `--api-key-env` names, is sent as a
//! sensitive header (`x-api-key` for Anthropic, `Authorization: Bearer` otherwise), and is
//! scrubbed from every error message; records hold only the variable's name.
//!
//! Anthropic counts whole messages, framing included. charter measures the framing once, as the
//! count of a one-letter message less one token, and subtracts it from every document's count;
//! that framing is also what the record reports as the chat overhead per message.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{json, Value};

use crate::secrets::Secrets;

use super::{Count, CountError, CounterInfo, TokenCounter, TokenizerIdentity, TokenizerKind};

const ANTHROPIC_VERSION: &str = "2023-06-01";
/// Retries of a rate-limited (429) request before the document counts as failed.
const RATE_LIMIT_RETRIES: u32 = 5;

/// A remote token-count endpoint.
pub struct RemoteCounter {
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
    kind: TokenizerKind,
    base: String,
    model: Option<String>,
    secrets: Secrets,
    /// Anthropic: tokens of the message framing, subtracted from each count.
    framing: u64,
    info: CounterInfo,
}

/// The base URL as recorded: user name and password removed.
fn redacted(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string().trim_end_matches('/').to_string()
        }
        Err(_) => url.to_string(),
    }
}

impl RemoteCounter {
    /// Build the client and send one probe request (a one-letter text), so that a wrong URL,
    /// model or key fails before any counting.
    pub fn new(
        kind: TokenizerKind,
        base_url: &str,
        model: Option<&str>,
        api_key_env: Option<&str>,
        allow_plaintext_key: bool,
    ) -> Result<Self, String> {
        let secret = match api_key_env {
            None => None,
            Some(var) => match std::env::var(var) {
                Ok(v) if !v.trim().is_empty() => Some(v.trim().to_string()),
                Ok(_) => return Err(format!("--api-key-env {var}: the variable is empty")),
                Err(_) => {
                    return Err(format!(
                        "--api-key-env {var}: the variable is not set (expected the API key in it)"
                    ))
                }
            },
        };
        if kind == TokenizerKind::AnthropicCountTokens && secret.is_none() {
            return Err("Anthropic's count_tokens needs a key: pass --api-key-env VAR".into());
        }
        if let (Some(var), Ok(url)) = (
            api_key_env.filter(|_| secret.is_some()),
            reqwest::Url::parse(base_url),
        ) {
            crate::remote::refuse_plaintext(
                &url,
                &format!("the API key from --api-key-env {var}"),
                allow_plaintext_key,
            )?;
        }
        let mut headers = HeaderMap::new();
        headers.insert(
            reqwest::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if kind == TokenizerKind::AnthropicCountTokens {
            headers.insert(
                "anthropic-version",
                HeaderValue::from_static(ANTHROPIC_VERSION),
            );
        }
        if let Some(key) = &secret {
            let (name, value) = match kind {
                TokenizerKind::AnthropicCountTokens => {
                    (HeaderName::from_static("x-api-key"), key.clone())
                }
                _ => (reqwest::header::AUTHORIZATION, format!("Bearer {key}")),
            };
            let mut v = HeaderValue::from_str(&value)
                .map_err(|_| "--api-key-env: the key holds characters a header cannot carry")?;
            v.set_sensitive(true);
            headers.insert(name, v);
        }
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the HTTP runtime: {e}"))?;
        let mut base = base_url.trim_end_matches('/').to_string();
        // vLLM and llama.cpp serve /tokenize at the root, not under /v1.
        if kind != TokenizerKind::AnthropicCountTokens {
            if let Some(b) = base.strip_suffix("/v1") {
                base = b.to_string();
            }
        }
        let (count_method, chat_template, no_round_trip) = match kind {
            TokenizerKind::AnthropicCountTokens => (
                "POST /v1/messages/count_tokens with the text as one user message, less the message framing (the count of a one-letter message, less 1)",
                Some("server (Anthropic message framing)".to_string()),
                Some("count_tokens returns a count, not tokens: nothing to decode".to_string()),
            ),
            TokenizerKind::VllmTokenize => (
                "POST /tokenize {model, prompt, add_special_tokens: false} → count",
                Some("server (vLLM /tokenize with messages)".to_string()),
                None,
            ),
            _ => (
                "POST /tokenize {content, add_special: false} → tokens",
                None,
                None,
            ),
        };
        let mut me = Self {
            rt,
            client,
            kind,
            base: base.clone(),
            model: model.map(str::to_string),
            secrets: Secrets::new(secret),
            framing: 0,
            info: CounterInfo {
                identity: TokenizerIdentity {
                    kind,
                    source: redacted(&base),
                    sha256: None,
                    vocab_size: None,
                    model: model.map(str::to_string),
                    api_key_env: api_key_env.map(str::to_string),
                    count_method: count_method.into(),
                },
                chat_template,
                no_round_trip,
                kv: None,
            },
        };
        let probe = me
            .raw_count("a")
            .map_err(|e| format!("probe request failed: {e}"))?;
        if kind == TokenizerKind::AnthropicCountTokens {
            me.framing = probe.saturating_sub(1);
        }
        Ok(me)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POST `body` to `path`. A 429 is retried after its `Retry-After` (else 1 s, doubling),
    /// up to [`RATE_LIMIT_RETRIES`] times: counts, unlike latencies, are not changed by waiting.
    fn post(&self, path: &str, body: Value) -> Result<Value, CountError> {
        let url = self.url(path);
        let body = body.to_string();
        let secrets = &self.secrets;
        let fut = async {
            let mut wait = Duration::from_secs(1);
            for attempt in 0.. {
                let resp = self
                    .client
                    .post(&url)
                    .body(body.clone())
                    .send()
                    .await
                    .map_err(|e| format!("POST {path}: {e}"))?;
                let status = resp.status();
                if status.as_u16() == 429 && attempt < RATE_LIMIT_RETRIES {
                    let after = resp
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok()?.trim().parse::<f64>().ok())
                        .map(|s| Duration::from_secs_f64(s.clamp(0.0, 60.0)));
                    tokio::time::sleep(after.unwrap_or(wait)).await;
                    wait *= 2;
                    continue;
                }
                let text = resp
                    .text()
                    .await
                    .map_err(|e| format!("POST {path}: reading the body: {e}"))?;
                if !status.is_success() {
                    // Scrubbed before the cut: a key echoed across it is never halved.
                    let snippet = secrets.clip(&text, 200);
                    return Err(format!("POST {path}: HTTP {}: {snippet}", status.as_u16()));
                }
                return serde_json::from_str::<Value>(&text)
                    .map_err(|e| format!("POST {path}: not JSON: {e}"));
            }
            unreachable!("the loop returns")
        };
        self.rt
            .block_on(fut)
            .map_err(|m| CountError(self.secrets.scrub(&m)))
    }

    /// The endpoint's own number for `text` (Anthropic: framing included).
    fn raw_count(&self, text: &str) -> Result<u64, CountError> {
        Ok(self.tokenize(text)?.0)
    }

    /// Count and, where the endpoint returns them, the token ids.
    fn tokenize(&self, text: &str) -> Result<(u64, Option<Vec<Value>>), CountError> {
        let field = |v: &Value, k: &str, path: &str| -> Result<Value, CountError> {
            v.get(k)
                .cloned()
                .ok_or_else(|| CountError(format!("POST {path}: no `{k}` in the response")))
        };
        match self.kind {
            TokenizerKind::AnthropicCountTokens => {
                let path = "/v1/messages/count_tokens";
                let v = self.post(
                    path,
                    json!({"model": self.model, "messages": [{"role": "user", "content": text}]}),
                )?;
                let n = field(&v, "input_tokens", path)?.as_u64().ok_or_else(|| {
                    CountError(format!("POST {path}: `input_tokens` is not a count"))
                })?;
                Ok((n, None))
            }
            TokenizerKind::VllmTokenize => {
                let v = self.post(
                    "/tokenize",
                    json!({"model": self.model, "prompt": text, "add_special_tokens": false}),
                )?;
                let tokens = v.get("tokens").and_then(|t| t.as_array()).cloned();
                let n = match v.get("count").and_then(|c| c.as_u64()) {
                    Some(n) => n,
                    None => tokens.as_ref().map(|t| t.len() as u64).ok_or_else(|| {
                        CountError("POST /tokenize: no `count` or `tokens` in the response".into())
                    })?,
                };
                Ok((n, tokens))
            }
            _ => {
                let v = self.post("/tokenize", json!({"content": text, "add_special": false}))?;
                let tokens = field(&v, "tokens", "/tokenize")?
                    .as_array()
                    .cloned()
                    .ok_or_else(|| CountError("POST /tokenize: `tokens` is not a list".into()))?;
                Ok((tokens.len() as u64, Some(tokens)))
            }
        }
    }

    fn detokenize(&self, tokens: Vec<Value>) -> Result<String, CountError> {
        let (body, key) = match self.kind {
            TokenizerKind::VllmTokenize => {
                (json!({"model": self.model, "tokens": tokens}), "prompt")
            }
            _ => (json!({"tokens": tokens}), "content"),
        };
        let v = self.post("/detokenize", body)?;
        v.get(key)
            .and_then(|s| s.as_str())
            .map(str::to_string)
            .ok_or_else(|| CountError(format!("POST /detokenize: no `{key}` text in the response")))
    }
}

impl TokenCounter for RemoteCounter {
    fn info(&self) -> &CounterInfo {
        &self.info
    }

    fn count(&self, text: &str, round_trip: bool) -> Result<Count, CountError> {
        let (n, tokens) = self.tokenize(text)?;
        let round_trip = match tokens {
            Some(t) if round_trip => Some(self.detokenize(t)? == text),
            _ => None,
        };
        Ok(Count {
            tokens: n.saturating_sub(self.framing),
            round_trip,
        })
    }

    fn count_chat(&self, text: &str) -> Option<Result<u64, CountError>> {
        match self.kind {
            TokenizerKind::AnthropicCountTokens => Some(self.raw_count(text)),
            TokenizerKind::VllmTokenize => Some((|| {
                let v = self.post(
                    "/tokenize",
                    json!({"model": self.model, "messages": [{"role": "user", "content": text}], "add_generation_prompt": true}),
                )?;
                v.get("count")
                    .and_then(|c| c.as_u64())
                    .or_else(|| {
                        v.get("tokens")
                            .and_then(|t| t.as_array())
                            .map(|t| t.len() as u64)
                    })
                    .ok_or_else(|| {
                        CountError("POST /tokenize (messages): no `count` in the response".into())
                    })
            })()),
            _ => None,
        }
    }
}
