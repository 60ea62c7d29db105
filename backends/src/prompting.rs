//! What every in-process generator does the same way before its first forward pass: turn a
//! [`Prompt`] into token ids, check the request fits the model, and set up sampling.

use std::collections::HashSet;

use candle_transformers::generation::{LogitsProcessor, Sampling as CandleSampling};
use tokenizers::Tokenizer;

use crate::chat::{plain_join, ChatTemplate};
use crate::{ErrorKind, Prompt, RequestError, Sampling};

fn invalid(message: String, prompt_tokens: u64) -> RequestError {
    RequestError {
        kind: ErrorKind::InvalidRequest,
        message,
        prompt_tokens,
        output_tokens: 0,
        wire: None,
    }
}

/// Token ids of `prompt`: ids as given, text encoded without special tokens, chat messages
/// rendered with `template` (or joined, without one) and encoded.
pub(crate) fn encode(
    prompt: &Prompt,
    tokenizer: Option<&Tokenizer>,
    template: Option<&ChatTemplate>,
) -> Result<Vec<u32>, RequestError> {
    let text = match prompt {
        Prompt::Tokens(t) => return Ok(t.clone()),
        Prompt::Text(s) => s.clone(),
        Prompt::Chat(messages) => match template {
            Some(t) => t.render(messages).map_err(|m| invalid(m, 0))?,
            None => plain_join(messages),
        },
    };
    let tok = tokenizer
        .ok_or_else(|| invalid("text prompt, but this model has no tokenizer".into(), 0))?;
    tok.encode(text, false)
        .map(|e| e.get_ids().to_vec())
        .map_err(|e| invalid(format!("cannot tokenize prompt: {e}"), 0))
}

/// The request can be served: a non-empty prompt of in-vocabulary ids that, with `max_tokens`
/// more, fits the context.
pub(crate) fn check(
    prompt: &[u32],
    max_tokens: u32,
    vocab: usize,
    context_limit: Option<usize>,
) -> Result<(), RequestError> {
    let n = prompt.len() as u64;
    if prompt.is_empty() {
        return Err(invalid("empty prompt".into(), 0));
    }
    if let Some(bad) = prompt.iter().find(|&&t| t as usize >= vocab) {
        return Err(invalid(
            format!("prompt token {bad} is outside the vocabulary ({vocab})"),
            n,
        ));
    }
    if let Some(limit) = context_limit {
        if prompt.len() + max_tokens as usize > limit {
            return Err(invalid(
                format!(
                    "prompt ({}) + max tokens ({max_tokens}) exceed the context limit ({limit})",
                    prompt.len()
                ),
                n,
            ));
        }
    }
    Ok(())
}

/// candle's sampler for these settings: argmax at temperature 0, else temperature (and top-p).
pub(crate) fn sampler(s: &Sampling) -> LogitsProcessor {
    let sampling = if s.temperature <= 0.0 {
        CandleSampling::ArgMax
    } else {
        match s.top_p {
            Some(p) => CandleSampling::TopP {
                p,
                temperature: s.temperature,
            },
            None => CandleSampling::All {
                temperature: s.temperature,
            },
        }
    };
    LogitsProcessor::from_sampling(s.seed, sampling)
}

/// Ids a synthetic prompt may use: the vocabulary without the tokenizer's special tokens and
/// without end-of-sequence ids.
pub(crate) fn ordinary_token_ids(
    tokenizer: Option<&Tokenizer>,
    vocab: usize,
    eos: &HashSet<u32>,
) -> Vec<u32> {
    let special: HashSet<u32> = tokenizer
        .map(|t| {
            t.get_added_tokens_decoder()
                .iter()
                .filter(|(_, tok)| tok.special)
                .map(|(id, _)| *id)
                .collect()
        })
        .unwrap_or_default();
    (0..vocab as u32)
        .filter(|id| !special.contains(id) && !eos.contains(id))
        .collect()
}
