//! Every enum of the record is written as the word run.json and requests.csv have always held
//! (its `as_str`), and the enums that key a summary's counts order like those words, so that
//! typed records serialise byte-identically to the string-typed ones before them.

use std::fmt::{Debug, Display};

use charter_record::{
    Api, Arrivals, EnergyMethod, ErrorKind, Isolation, LengthField, PlanKind, StopReason,
    TokenCountSource,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

fn written_as_their_words<T>(variants: &[T], words: &[&str])
where
    T: Copy + Debug + PartialEq + Display + Serialize + DeserializeOwned,
{
    assert_eq!(variants.len(), words.len());
    for (&v, &w) in variants.iter().zip(words) {
        assert_eq!(v.to_string(), w);
        assert_eq!(serde_json::to_value(v).unwrap(), w);
        assert_eq!(serde_json::from_value::<T>(w.into()).unwrap(), v);
    }
}

fn ordered_as_their_words<T: Copy + Debug + Ord + Display>(variants: &[T]) {
    let mut by_ord = variants.to_vec();
    by_ord.sort();
    let mut by_word = variants.to_vec();
    by_word.sort_by_key(|v| v.to_string());
    assert_eq!(by_ord, by_word);
}

#[test]
fn summary_keys() {
    let stop = [
        StopReason::MaxTokens,
        StopReason::Eos,
        StopReason::Cancelled,
    ];
    written_as_their_words(&stop, &["max_tokens", "eos", "cancelled"]);
    ordered_as_their_words(&stop);

    let errors = [
        ErrorKind::InvalidRequest,
        ErrorKind::Compute,
        ErrorKind::Connect,
        ErrorKind::Timeout,
        ErrorKind::HttpStatus,
        ErrorKind::RateLimited,
        ErrorKind::StreamBroken,
        ErrorKind::Malformed,
    ];
    written_as_their_words(
        &errors,
        &[
            "invalid_request",
            "compute",
            "connect",
            "timeout",
            "http_status",
            "rate_limited",
            "stream_broken",
            "malformed",
        ],
    );
    ordered_as_their_words(&errors);

    let sources = [
        TokenCountSource::Backend,
        TokenCountSource::Usage,
        TokenCountSource::Tokenizer,
        TokenCountSource::Chunks,
    ];
    written_as_their_words(&sources, &["backend", "usage", "tokenizer", "chunks"]);
    ordered_as_their_words(&sources);
}

#[test]
fn setup_and_method_words() {
    written_as_their_words(
        &[
            PlanKind::Single,
            PlanKind::List,
            PlanKind::Auto,
            PlanKind::SloSearch,
        ],
        &["single", "list", "auto", "slo_search"],
    );
    written_as_their_words(
        &[
            Arrivals::Constant,
            Arrivals::Poisson,
            Arrivals::Gamma,
            Arrivals::Trace,
        ],
        &["constant", "poisson", "gamma", "trace"],
    );
    written_as_their_words(
        &[Isolation::Thread, Isolation::Process],
        &["thread", "process"],
    );
    written_as_their_words(
        &[
            EnergyMethod::Rapl,
            EnergyMethod::Estimated,
            EnergyMethod::Counter,
            EnergyMethod::Integrated,
        ],
        &["rapl", "estimated", "counter", "integrated"],
    );
    written_as_their_words(&[Api::Openai, Api::Anthropic], &["openai", "anthropic"]);
    written_as_their_words(
        &[LengthField::MaxTokens, LengthField::MaxCompletionTokens],
        &["max_tokens", "max_completion_tokens"],
    );
}
