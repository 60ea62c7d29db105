//! Entry points of the fuzz targets: one per parser charter owns, each feeding arbitrary bytes
//! through the function production uses. Any input must end as a value or an error, never a
//! panic, a hang or unbounded memory. `fuzz/` runs them under cargo-fuzz (nightly, libFuzzer);
//! `harness/tests/fuzz.rs` runs them on stable over the committed corpus (`fuzz/corpus/<name>/`)
//! and a fixed number of seeded mutations of it, so every CI run exercises them.

use std::io::Write;
use std::path::{Path, PathBuf};

use charter_backends::remote::{replay, Api, Endpoint};

/// A fuzz target: arbitrary bytes in, no panic.
pub type Target = fn(&[u8]);

/// Every target, by the name of its `fuzz/fuzz_targets/<name>.rs` and corpus directory.
pub const TARGETS: &[(&str, Target)] = &[
    ("scenario", scenario),
    ("trace", trace),
    ("sse", sse),
    ("exposition", exposition),
    ("prompts_jsonl", prompts_jsonl),
    ("prompts_sharegpt", prompts_sharegpt),
    ("gate_rules", gate_rules),
];

/// The parsers that read files get `data` through a file of this process (named by the
/// process and the target, so parallel fuzzing jobs do not share one).
fn through_file<T>(target: &str, ext: &str, data: &[u8], parse: impl FnOnce(&Path) -> T) -> T {
    let path: PathBuf = std::env::temp_dir().join(format!(
        "charter-fuzz-{}-{target}.{ext}",
        std::process::id()
    ));
    let mut f = std::fs::File::create(&path).expect("creating the fuzz input file");
    f.write_all(data).expect("writing the fuzz input file");
    drop(f);
    let out = parse(&path);
    let _ = std::fs::remove_file(&path);
    out
}

/// A scenario file, as `charter validate` and `charter profile --scenario` read it.
pub fn scenario(data: &[u8]) {
    through_file("scenario", "toml", data, |p| {
        let _ = crate::profile::scenario::Settings::from_file(p);
    });
}

/// A trace file (Mooncake or Bailian JSONL, Azure or BurstGPT CSV; the format detected from
/// the first line, as `--trace` does by default).
pub fn trace(data: &[u8]) {
    through_file("trace", "txt", data, |p| {
        let _ = charter_workloads::trace::Trace::load(p, Default::default());
    });
}

/// A streamed response as the remote backend's read loop decodes it (SSE events, then the
/// API's wire format). The first byte picks the API and endpoint and where the network reads
/// split the rest.
pub fn sse(data: &[u8]) {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let (api, endpoint) = match pick % 3 {
        0 => (Api::Openai, Endpoint::Chat),
        1 => (Api::Openai, Endpoint::Completions),
        _ => (Api::Anthropic, Endpoint::Chat),
    };
    let read = usize::from(pick / 3 % 16) + 1;
    let pieces = body
        .chunks(read)
        .map(bytes::Bytes::copy_from_slice)
        .collect();
    let _ = replay(api, endpoint, pieces);
}

/// A Prometheus text exposition, as `--server-metrics` scrapes read it.
pub fn exposition(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(samples) = charter_reports::server_metrics::parse(&text) {
        let _ = charter_reports::server_metrics::read_meanings(&samples);
    }
}

/// A JSONL prompt file (`--prompts FILE.jsonl`).
pub fn prompts_jsonl(data: &[u8]) {
    through_file("prompts", "jsonl", data, |p| {
        let _ = charter_workloads::prompts::PromptSource::jsonl(p);
    });
}

/// A ShareGPT prompt file (`--prompts sharegpt:FILE.json`).
pub fn prompts_sharegpt(data: &[u8]) {
    through_file("sharegpt", "json", data, |p| {
        let _ = charter_workloads::prompts::PromptSource::sharegpt(p);
    });
}

/// A `charter gate` rules file.
pub fn gate_rules(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = charter_reports::gate::rules::GateRules::from_str(&text, "fuzz input");
}
