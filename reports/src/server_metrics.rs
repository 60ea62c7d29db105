//! A server's own Prometheus metrics (`charter profile --server-metrics`): reading the text
//! exposition ([`parse`]), the metrics of vLLM, llama.cpp's server, TGI, SGLang and `charter
//! serve` mapped to common meanings ([`Meaning`], [`read_meanings`]), and their summary over a
//! level's window ([`summarise`]) and in the console ([`console_lines`]).
//!
//! The parser is written here rather than taken from a crate: `prometheus-parse` (the most used
//! one) cannot read metric names with a colon — every vLLM, llama.cpp and SGLang metric — and
//! never reports a malformed line; `openmetrics-parser` is LGPL-3.0; `nom-openmetrics` rejects
//! timestamps and families without samples. The format is line-based (see the Prometheus
//! "exposition formats" page): `# HELP`/`# TYPE`/other comments, and samples
//! `name{label="value",...} value [timestamp]`.

use std::fmt::Write;

use charter_record::{CounterDelta, LevelServerMetrics, RunRecord, ValueSummary};

/// One sample of an exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct RawSample {
    pub name: String,
    /// The labels as written between the braces (`model="m",le="0.5"`), empty without any.
    pub labels: String,
    pub value: f64,
}

fn is_name_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b':'
}

fn is_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b':'
}

/// A sample's value: a float, `NaN`, `+Inf`, `-Inf`.
fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ if s
            .bytes()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b)) =>
        {
            s.parse().ok()
        }
        _ => None,
    }
}

/// The label block starting after `{`: returns its text and the rest after `}`.
fn parse_labels(s: &str) -> Result<(&str, &str), &'static str> {
    let b = s.as_bytes();
    let mut i = 0;
    loop {
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        if i < b.len() && b[i] == b'}' {
            return Ok((s[..i].trim_end_matches([',', ' ']), &s[i + 1..]));
        }
        let start = i;
        if i >= b.len() || !(b[i].is_ascii_alphabetic() || b[i] == b'_') {
            return Err("a label name");
        }
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
            i += 1;
        }
        debug_assert!(i > start);
        if b.get(i) != Some(&b'=') || b.get(i + 1) != Some(&b'"') {
            return Err("=\"value\" after the label name");
        }
        i += 2;
        loop {
            match b.get(i) {
                None => return Err("a closing quote"),
                Some(b'\\') => i += 2,
                Some(b'"') => break,
                Some(_) => i += 1,
            }
        }
        i += 1;
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b'}') => {}
            _ => return Err("',' or '}' after a label value"),
        }
    }
}

/// Parse a Prometheus text exposition (the OpenMetrics `# EOF` ends it); an error names the
/// line and what was expected there.
pub fn parse(text: &str) -> Result<Vec<RawSample>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r').trim_start();
        if line.is_empty() {
            continue;
        }
        if line.starts_with('#') {
            if line == "# EOF" {
                break;
            }
            continue;
        }
        let bad = |what: &str| format!("line {}: expected {what}: {:?}", n + 1, clip(line));
        let b = line.as_bytes();
        if !is_name_start(b[0]) {
            return Err(bad("a metric name"));
        }
        let end = b.iter().position(|&c| !is_name_char(c)).unwrap_or(b.len());
        let name = &line[..end];
        let mut rest = &line[end..];
        let mut labels = "";
        if let Some(r) = rest.strip_prefix('{') {
            let (l, r) = parse_labels(r).map_err(bad)?;
            labels = l;
            rest = r;
        }
        if !rest.starts_with([' ', '\t']) {
            return Err(bad("a space and a value after the metric name"));
        }
        let mut fields = rest.split_ascii_whitespace();
        let value = fields
            .next()
            .and_then(parse_value)
            .ok_or_else(|| bad("a number (or NaN, +Inf, -Inf) as the value"))?;
        if let Some(ts) = fields.next() {
            if ts.parse::<i64>().is_err() {
                return Err(bad("an integer timestamp (ms) after the value"));
            }
        }
        if fields.next().is_some() {
            return Err(bad("nothing after the timestamp"));
        }
        out.push(RawSample {
            name: name.to_string(),
            labels: labels.to_string(),
            value,
        });
    }
    Ok(out)
}

fn clip(s: &str) -> String {
    s.chars().take(80).collect()
}

/// What a server's metric means, whichever server it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meaning {
    Running,
    Waiting,
    KvCacheUsage,
    PromptTokens,
    GenerationTokens,
    PrefixCacheHits,
    PrefixCacheQueries,
    PrefixCacheHitRate,
}

/// How many meanings there are.
pub const MEANINGS: usize = 8;

/// Every meaning with the metric names that carry it, first found wins; a name exposed with
/// several label sets (per model, per engine) is summed, or averaged for fractions.
pub const KNOWN: [(Meaning, &[&str]); MEANINGS] = [
    (
        Meaning::Running,
        &[
            "vllm:num_requests_running",
            "llamacpp:requests_processing",
            "sglang:num_running_reqs",
            "tgi_batch_current_size",
            "charter:requests_running",
        ],
    ),
    (
        Meaning::Waiting,
        &[
            "vllm:num_requests_waiting",
            "llamacpp:requests_deferred",
            "sglang:num_queue_reqs",
            "tgi_queue_size",
            "charter:requests_waiting",
        ],
    ),
    (
        Meaning::KvCacheUsage,
        &[
            "vllm:kv_cache_usage_perc",
            "vllm:gpu_cache_usage_perc",
            "llamacpp:kv_cache_usage_ratio",
            "sglang:token_usage",
        ],
    ),
    (
        Meaning::PromptTokens,
        &[
            "vllm:prompt_tokens_total",
            "llamacpp:prompt_tokens_total",
            "sglang:prompt_tokens_total",
            "tgi_request_input_length_sum",
            "charter:prompt_tokens_total",
        ],
    ),
    (
        Meaning::GenerationTokens,
        &[
            "vllm:generation_tokens_total",
            "llamacpp:tokens_predicted_total",
            "sglang:generation_tokens_total",
            "tgi_request_generated_tokens_sum",
            "charter:generation_tokens_total",
        ],
    ),
    (
        Meaning::PrefixCacheHits,
        &[
            "vllm:prefix_cache_hits_total",
            "vllm:prefix_cache_hits",
            "vllm:gpu_prefix_cache_hits_total",
            "vllm:gpu_prefix_cache_hits",
        ],
    ),
    (
        Meaning::PrefixCacheQueries,
        &[
            "vllm:prefix_cache_queries_total",
            "vllm:prefix_cache_queries",
            "vllm:gpu_prefix_cache_queries_total",
            "vllm:gpu_prefix_cache_queries",
        ],
    ),
    (
        Meaning::PrefixCacheHitRate,
        &["sglang:cache_hit_rate", "vllm:gpu_prefix_cache_hit_rate"],
    ),
];

impl Meaning {
    /// The key in the record (`recognised`) and the column of the summary.
    pub fn key(self) -> &'static str {
        match self {
            Meaning::Running => "running",
            Meaning::Waiting => "waiting",
            Meaning::KvCacheUsage => "kv_cache_usage",
            Meaning::PromptTokens => "prompt_tokens",
            Meaning::GenerationTokens => "generation_tokens",
            Meaning::PrefixCacheHits => "prefix_cache_hits",
            Meaning::PrefixCacheQueries => "prefix_cache_queries",
            Meaning::PrefixCacheHitRate => "prefix_cache_hit_rate",
        }
    }

    /// Fractions are averaged over label sets; counts are summed.
    fn is_fraction(self) -> bool {
        matches!(self, Meaning::KvCacheUsage | Meaning::PrefixCacheHitRate)
    }
}

/// One scrape's known values, by [`KNOWN`]'s order.
pub type Meanings = [Option<f64>; MEANINGS];

/// The known values in `samples`, and the metric name each was read from.
pub fn read_meanings(samples: &[RawSample]) -> (Meanings, [Option<&'static str>; MEANINGS]) {
    let mut values = [None; MEANINGS];
    let mut names = [None; MEANINGS];
    for (i, (meaning, candidates)) in KNOWN.iter().enumerate() {
        for &name in *candidates {
            let found: Vec<f64> = samples
                .iter()
                .filter(|s| s.name == name && s.value.is_finite())
                .map(|s| s.value)
                .collect();
            if found.is_empty() {
                continue;
            }
            let sum: f64 = found.iter().sum();
            values[i] = Some(if meaning.is_fraction() {
                sum / found.len() as f64
            } else {
                sum
            });
            names[i] = Some(name);
            break;
        }
    }
    (values, names)
}

/// One scrape of one source on the run's clock: its known values, or `None` when it failed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScrapePoint {
    pub t_s: f64,
    pub values: Option<Meanings>,
}

/// One meaning's value in a scrape's known values.
pub fn value_of(values: &Meanings, m: Meaning) -> Option<f64> {
    values[index(m)]
}

fn index(m: Meaning) -> usize {
    KNOWN
        .iter()
        .position(|(k, _)| *k == m)
        .expect("every meaning is known")
}

fn gauge(points: &[ScrapePoint], m: Meaning, (a, b): (f64, f64)) -> Option<ValueSummary> {
    let i = index(m);
    let v: Vec<f64> = points
        .iter()
        .filter(|p| p.t_s >= a && p.t_s <= b)
        .filter_map(|p| p.values.and_then(|v| v[i]))
        .collect();
    ValueSummary::from_values(&v)
}

fn counter(points: &[ScrapePoint], m: Meaning, (a, b): (f64, f64)) -> Option<CounterDelta> {
    let i = index(m);
    let read: Vec<(f64, f64)> = points
        .iter()
        .filter_map(|p| p.values.and_then(|v| v[i]).map(|v| (p.t_s, v)))
        .collect();
    let from = read
        .iter()
        .rposition(|&(t, _)| t <= a)
        .or_else(|| read.iter().position(|&(t, _)| t >= a && t <= b))?;
    let to = read
        .iter()
        .position(|&(t, _)| t >= b)
        .or_else(|| read.iter().rposition(|&(t, _)| t <= b))?;
    if to <= from {
        return None;
    }
    let span = &read[from..=to];
    let delta: f64 = span
        .windows(2)
        .map(|w| {
            let (prev, now) = (w[0].1, w[1].1);
            if now >= prev {
                now - prev
            } else {
                now // a reset: the counter started again from zero
            }
        })
        .sum();
    let (from_s, to_s) = (span[0].0, span[span.len() - 1].0);
    Some(CounterDelta {
        delta,
        per_s: (to_s > from_s).then(|| delta / (to_s - from_s)),
        from_s,
        to_s,
    })
}

/// One source's known metrics over the window `(start_s, end_s)`: gauges over the scrapes in
/// it, counters from the last scrape at or before its start to the first at or after its end.
pub fn summarise(url: &str, points: &[ScrapePoint], window: (f64, f64)) -> LevelServerMetrics {
    let (a, b) = window;
    let inside = || points.iter().filter(|p| p.t_s >= a && p.t_s <= b);
    let hits = counter(points, Meaning::PrefixCacheHits, window);
    let queries = counter(points, Meaning::PrefixCacheQueries, window);
    let hit_rate = match (&hits, &queries) {
        (Some(h), Some(q)) if q.delta > 0.0 => Some(h.delta / q.delta),
        _ => gauge(points, Meaning::PrefixCacheHitRate, window).map(|g| g.mean),
    };
    LevelServerMetrics {
        url: url.to_string(),
        scrapes: inside().filter(|p| p.values.is_some()).count() as u64,
        scrape_errors: inside().filter(|p| p.values.is_none()).count() as u64,
        running: gauge(points, Meaning::Running, window),
        waiting: gauge(points, Meaning::Waiting, window),
        kv_cache_usage: gauge(points, Meaning::KvCacheUsage, window),
        prompt_tokens: counter(points, Meaning::PromptTokens, window),
        generation_tokens: counter(points, Meaning::GenerationTokens, window),
        prefix_cache_hits: hits,
        prefix_cache_queries: queries,
        prefix_cache_hit_rate: hit_rate,
    }
}

/// A charter table's note on one source's level summary: the p95 of its queue gauges and KV
/// cache, and the prefix-cache hit rate; `None` when it has none of them.
pub fn note(m: &LevelServerMetrics) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(v) = &m.running {
        parts.push(format!("running p95 {:.0}", v.p95));
    }
    if let Some(v) = &m.waiting {
        parts.push(format!("waiting p95 {:.0}", v.p95));
    }
    if let Some(v) = &m.kv_cache_usage {
        parts.push(format!("KV p95 {:.0}%", v.p95 * 100.0));
    }
    if let Some(h) = m.prefix_cache_hit_rate {
        parts.push(format!("prefix hits {:.0}%", h * 100.0));
    }
    (!parts.is_empty()).then(|| format!("server: {}", parts.join(", ")))
}

/// The console's server-metrics lines: sources not measured, then each level's summary.
pub fn console_lines(out: &mut String, r: &RunRecord) {
    for s in &r.server_metrics {
        if let Some(why) = &s.reason {
            let _ = writeln!(out, "  server metrics {}: {why}", s.url);
        } else if s.scrape_errors > 0 {
            let _ = writeln!(
                out,
                "  server metrics {}: {} scrapes, {} failed (error rows in server_metrics.csv)",
                s.url, s.scrapes, s.scrape_errors
            );
        }
    }
    for l in &r.levels {
        for m in &l.server_metrics {
            let mut parts = Vec::new();
            let g = |name: &str, v: &Option<ValueSummary>, pct: bool| {
                v.as_ref().map(|v| {
                    if pct {
                        format!(
                            "{name} mean {:.1}% p95 {:.1}%",
                            v.mean * 100.0,
                            v.p95 * 100.0
                        )
                    } else {
                        format!(
                            "{name} mean {:.2} p95 {:.0} max {:.0}",
                            v.mean, v.p95, v.max
                        )
                    }
                })
            };
            parts.extend(g("running", &m.running, false));
            parts.extend(g("waiting", &m.waiting, false));
            parts.extend(g("KV cache", &m.kv_cache_usage, true));
            for (name, c) in [
                ("prompt", &m.prompt_tokens),
                ("generated", &m.generation_tokens),
            ] {
                if let Some(c) = c {
                    parts.push(match c.per_s {
                        Some(r) => format!("{name} {:.0} tok ({r:.1} tok/s)", c.delta),
                        None => format!("{name} {:.0} tok", c.delta),
                    });
                }
            }
            if let Some(h) = m.prefix_cache_hit_rate {
                parts.push(format!("prefix-cache hits {:.1}%", h * 100.0));
            }
            if parts.is_empty() {
                parts.push("no known metric in the window".into());
            }
            let _ = writeln!(
                out,
                "  level {} server {}: {}",
                l.index,
                m.url,
                parts.join(" · ")
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vllm_names_labels_and_openmetrics_eof() {
        let text = "# HELP vllm:num_requests_running Running.\n# TYPE vllm:num_requests_running gauge\n\
            vllm:num_requests_running{engine=\"0\",model_name=\"m, \\\"q\\\"\"} 3.0\n\
            vllm:num_requests_running{engine=\"1\",model_name=\"m\",} 2\n\
            vllm:kv_cache_usage_perc{engine=\"0\"} 0.5\nvllm:kv_cache_usage_perc{engine=\"1\"} 0.25 1700000000000\n\
            vllm:generation_tokens_total 1e3\nhist_bucket{le=\"+Inf\"} +Inf\n# EOF\nafter 1\n";
        let s = parse(text).unwrap();
        assert_eq!(s.len(), 6);
        assert_eq!(s[0].labels, "engine=\"0\",model_name=\"m, \\\"q\\\"\"");
        assert_eq!(s[1].labels, "engine=\"1\",model_name=\"m\"");
        let (v, names) = read_meanings(&s);
        assert_eq!(v[index(Meaning::Running)], Some(5.0));
        assert_eq!(v[index(Meaning::KvCacheUsage)], Some(0.375));
        assert_eq!(v[index(Meaning::GenerationTokens)], Some(1000.0));
        assert_eq!(v[index(Meaning::Waiting)], None);
        assert_eq!(
            names[index(Meaning::Running)],
            Some("vllm:num_requests_running")
        );
    }

    #[test]
    fn malformed_lines_are_errors_naming_the_line() {
        for (text, line, what) in [
            ("ok 1\n{x} 2\n", 2, "a metric name"),
            ("ok 1\nm{a=1} 2\n", 2, "=\"value\""),
            ("m{a=\"1\" 2\n", 1, "',' or '}'"),
            ("m 1 2 3\n", 1, "nothing after"),
            ("m one\n", 1, "a number"),
            ("m{a=\"unterminated} 1\n", 1, "a closing quote"),
            ("<html>\n", 1, "a metric name"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(
                e.starts_with(&format!("line {line}: expected")) && e.contains(what),
                "{text:?}: {e}"
            );
        }
    }

    fn point(t_s: f64, running: f64, generated: f64) -> ScrapePoint {
        let mut v = [None; MEANINGS];
        v[index(Meaning::Running)] = Some(running);
        v[index(Meaning::GenerationTokens)] = Some(generated);
        ScrapePoint {
            t_s,
            values: Some(v),
        }
    }

    #[test]
    fn counters_span_the_window_gauges_stay_inside_it() {
        let points = [
            point(0.0, 9.0, 100.0),
            point(1.0, 1.0, 110.0),
            ScrapePoint {
                t_s: 1.5,
                values: None,
            },
            point(2.0, 3.0, 150.0),
            point(3.0, 2.0, 20.0), // reset: counts 20 from zero
            point(4.0, 9.0, 40.0),
        ];
        let s = summarise("u", &points, (1.2, 2.5));
        let r = s.running.clone().unwrap();
        assert_eq!((r.samples, r.mean, r.max), (1, 3.0, 3.0));
        let g = s.generation_tokens.clone().unwrap();
        assert_eq!((g.delta, g.from_s, g.to_s), (60.0, 1.0, 3.0));
        assert_eq!(g.per_s, Some(30.0));
        assert_eq!((s.scrapes, s.scrape_errors), (1, 1));
        assert_eq!(s.prompt_tokens, None);
        assert_eq!(s.prefix_cache_hit_rate, None);
        assert_eq!(note(&s).as_deref(), Some("server: running p95 3"));
    }
}
