//! A run as a timeline: `trace.json` in the Chrome Trace Event Format, which
//! <https://ui.perfetto.dev> and `chrome://tracing` open. Built from a run directory alone
//! (record, `requests.csv`, `samples.csv`); timestamps are microseconds on the run's clock
//! (the CSVs' seconds × 1e6, not rounded).
//!
//! Layout, all in one process (the run):
//! - track "levels": each level's measured window as a span;
//! - one track per instance (the request's `instance` column; instances are numbered per level,
//!   so instance N's track holds the requests every level's instance N ran, one at a time):
//!   a request is "prefill / TTFT" (start → first token) then "decode" (first → last token),
//!   or, when it failed, one span named by its error kind (start → end); warm-up requests say
//!   "(warm-up)" and carry category `warm-up`. Span args: id, prompt and output tokens, stop
//!   reason, warm-up, and the error message of a failed request;
//! - schedule lag (intended start → start, only when > 0) as async "b"/"e" pairs with the
//!   request's id: queued requests may overlap each other, so they cannot share a thread track;
//! - sampler series as counter tracks: "process CPU cores", "RSS bytes", "system busy cores"
//!   (values that did not parse are left out).

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::{json, Value};

use super::{Export, Format, Unsupported};
use crate::charter::LoadedRun;
use crate::record::RequestRow;

/// The run's process id in the trace.
const PID: u32 = 1;
/// Thread track of the levels' windows; instance N is on thread N + 2. Perfetto keeps thread
/// 0 for the idle task, so no track uses it.
const LEVELS_TID: u32 = 1;

fn instance_tid(instance: u32) -> u32 {
    instance + 2
}

/// Seconds on the run's clock to trace time (µs).
fn us(s: f64) -> f64 {
    s * 1e6
}

/// One trace event; the fields each phase needs, in the format's names.
#[derive(Debug, Serialize)]
struct Event {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    cat: Option<&'static str>,
    ph: &'static str,
    ts: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    dur: Option<f64>,
    pid: u32,
    tid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<u64>,
    #[serde(skip_serializing_if = "Value::is_null")]
    args: Value,
}

impl Event {
    /// Metadata ("M"): names and orders tracks.
    fn meta(name: &str, tid: u32, args: Value) -> Self {
        Event {
            name: name.into(),
            cat: None,
            ph: "M",
            ts: 0.0,
            dur: None,
            pid: PID,
            tid,
            id: None,
            args,
        }
    }

    /// A complete span ("X") from `ts` lasting `dur` (µs).
    fn span(name: String, cat: &'static str, tid: u32, ts: f64, dur: f64, args: Value) -> Self {
        Event {
            name,
            cat: Some(cat),
            ph: "X",
            ts,
            dur: Some(dur),
            pid: PID,
            tid,
            id: None,
            args,
        }
    }

    /// A counter sample ("C"); the track is named `name` + each arg's key.
    fn counter(name: &str, ts: f64, args: Value) -> Self {
        Event {
            name: name.into(),
            cat: Some("sampler"),
            ph: "C",
            ts,
            dur: None,
            pid: PID,
            tid: LEVELS_TID,
            id: None,
            args,
        }
    }
}

/// The trace of one run, and the file it goes to in a report directory.
#[derive(Debug, Clone)]
pub struct TraceDoc<'a> {
    pub run: &'a LoadedRun,
    pub file: String,
}

impl<'a> TraceDoc<'a> {
    /// One per run: `trace.json` for a single run; for several, `trace-<i>.json` with `i` the
    /// run's position in the list (as in the charts' names, e.g. `load-curve-0`).
    pub fn for_runs(runs: &'a [LoadedRun]) -> Vec<Self> {
        runs.iter()
            .enumerate()
            .map(|(i, run)| TraceDoc {
                run,
                file: if runs.len() == 1 {
                    "trace.json".into()
                } else {
                    format!("trace-{i}.json")
                },
            })
            .collect()
    }

    fn events(&self) -> Vec<Event> {
        let run = self.run;
        let mut out = track_names(run);
        out.extend(level_spans(run));
        for r in &run.requests {
            request_events(r, &mut out);
        }
        out.extend(sample_counters(run));
        out
    }

    fn json(&self) -> String {
        let events: Vec<String> = self
            .events()
            .iter()
            .map(|e| serde_json::to_string(e).expect("an event serialises"))
            .collect();
        let r = &self.run.record;
        let other = json!({
            "run_dir": self.run.dir,
            "backend": r.backend.model,
            "started_at": r.started_at,
            "tool": format!("{} {}", r.tool.name, r.tool.version),
        });
        // One event per line: large runs stay greppable and diffable.
        format!(
            "{{\"traceEvents\":[\n{}\n],\"displayTimeUnit\":\"ms\",\"otherData\":{other}}}\n",
            events.join(",\n")
        )
    }
}

/// Metadata naming the run's process, the levels track and one track per instance.
fn track_names(run: &LoadedRun) -> Vec<Event> {
    let process = format!("charter run: {} ({})", run.record.backend.model, run.dir);
    let mut out = vec![Event::meta(
        "process_name",
        LEVELS_TID,
        json!({ "name": process }),
    )];
    let instances: BTreeSet<u32> = run.requests.iter().map(|r| r.instance).collect();
    let tracks = std::iter::once((LEVELS_TID, "levels".to_string())).chain(
        instances
            .iter()
            .map(|&i| (instance_tid(i), format!("instance {i}"))),
    );
    for (tid, name) in tracks {
        out.push(Event::meta("thread_name", tid, json!({ "name": name })));
        out.push(Event::meta(
            "thread_sort_index",
            tid,
            json!({ "sort_index": tid }),
        ));
    }
    out
}

/// Each level's measured window (levels without one are left out).
fn level_spans(run: &LoadedRun) -> impl Iterator<Item = Event> + '_ {
    run.record.levels.iter().filter_map(|l| {
        let w = l.window.as_ref()?;
        let (start, end) = (us(w.start_s), us(w.end_s));
        let args = json!({
            "index": l.index,
            "trial": l.trial,
            "role": l.role,
            "requests_completed": l.summary.requests_completed,
            "requests_failed": l.summary.requests_failed,
            "excluded": w.excluded,
        });
        let name = format!("level {} ({})", l.index, l.load.label());
        Some(Event::span(
            name,
            "level",
            LEVELS_TID,
            start,
            end - start,
            args,
        ))
    })
}

/// One counter event per sample and series; values that did not parse are left out.
fn sample_counters(run: &LoadedRun) -> impl Iterator<Item = Event> + '_ {
    let finite = |v: Option<f64>| v.filter(|v| v.is_finite()).map(|v| json!(v));
    run.samples
        .iter()
        .filter(|s| s.t_s.is_finite())
        .flat_map(move |s| {
            [
                ("process CPU", "cores", finite(s.process_cpu_cores)),
                ("RSS", "bytes", s.rss_bytes.map(|b| json!(b))),
                ("system busy", "cores", finite(s.system_busy_cores)),
            ]
            .into_iter()
            .filter_map(move |(name, unit, v)| {
                Some(Event::counter(name, us(s.t_s), json!({ unit: v? })))
            })
        })
}

/// A request's spans on its instance's track, and its schedule lag.
fn request_events(r: &RequestRow, out: &mut Vec<Event>) {
    let tid = instance_tid(r.instance);
    let (cat, suffix) = if r.warmup {
        ("warm-up", " (warm-up)")
    } else {
        ("request", "")
    };
    let mut args = json!({
        "id": r.id,
        "prompt_tokens": r.prompt_tokens,
        "output_tokens": r.output_tokens,
        "stop_reason": r.stop_reason,
        "warmup": r.warmup,
    });
    if r.schedule_lag_s > 0.0 {
        for (ph, t) in [("b", r.intended_start_s), ("e", r.start_s)] {
            out.push(Event {
                name: "schedule lag".into(),
                cat: Some("schedule lag"),
                ph,
                ts: us(t),
                dur: None,
                pid: PID,
                tid,
                id: Some(r.id),
                args: if ph == "b" { args.clone() } else { Value::Null },
            });
        }
    }
    let start = us(r.start_s);
    let whole = |name: &str, args: Value| {
        Event::span(
            format!("{name}{suffix}"),
            cat,
            tid,
            start,
            us(r.end_s) - start,
            args,
        )
    };
    match (r.error_kind, r.ttft_s) {
        (Some(kind), _) => {
            args["error"] = json!(r.error_message);
            out.push(whole(kind.as_str(), args));
        }
        (None, Some(ttft)) => {
            let first = start + us(ttft);
            out.push(Event::span(
                format!("prefill / TTFT{suffix}"),
                cat,
                tid,
                start,
                us(ttft),
                args.clone(),
            ));
            if let Some(decode) = r.decode_time_s {
                let name = format!("decode{suffix}");
                out.push(Event::span(name, cat, tid, first, us(decode), args));
            }
        }
        // Neither a token nor an error (e.g. cancelled before the first token).
        (None, None) => out.push(whole(
            r.stop_reason.map(|s| s.as_str()).unwrap_or("no tokens"),
            args,
        )),
    }
}

impl Export for TraceDoc<'_> {
    fn export(&self, format: Format) -> Result<String, Unsupported> {
        match format {
            Format::PerfettoTrace => Ok(self.json()),
            format => Err(Unsupported {
                document: "the run trace",
                format,
            }),
        }
    }

    fn files(&self) -> Vec<(String, Format)> {
        vec![(self.file.clone(), Format::PerfettoTrace)]
    }
}
