//! `trace.json` (Chrome Trace Event Format, for Perfetto) of the committed fixture run: it
//! parses, every event has the fields its phase needs, spans on a track nest or follow each
//! other (Perfetto rejects partial overlaps), counts match the CSVs, and every time is the
//! CSV's seconds × 1e6 exactly.

mod common;

use std::collections::BTreeMap;

use charter_reports::charter::{self, LoadedRun};
use charter_reports::export::{report_documents, CharterDoc, Export, Format, TraceDoc};
use charter_reports::RequestRow;
use common::fixture;
use serde_json::Value;

fn trace(run: &LoadedRun) -> Vec<Value> {
    let docs = TraceDoc::for_runs(std::slice::from_ref(run));
    let text = docs[0].export(Format::PerfettoTrace).unwrap();
    let v: Value = serde_json::from_str(&text).expect("trace.json parses");
    assert_eq!(v["displayTimeUnit"], "ms");
    v["traceEvents"].as_array().expect("traceEvents").clone()
}

fn num(e: &Value, key: &str) -> f64 {
    e[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing: {e}"))
}

fn with_ph<'a>(events: &'a [Value], ph: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    events.iter().filter(move |e| e["ph"] == ph)
}

/// The spans of request `id`, in trace order.
fn spans_of(events: &[Value], id: u64) -> Vec<&Value> {
    with_ph(events, "X")
        .filter(|e| e["cat"] != "level" && e["args"]["id"] == id)
        .collect()
}

fn check_fields(events: &[Value]) {
    for e in events {
        let ph = e["ph"].as_str().unwrap_or_else(|| panic!("no ph: {e}"));
        assert!(e["name"].is_string(), "no name: {e}");
        for key in ["ts", "pid", "tid"] {
            num(e, key);
        }
        match ph {
            "X" => assert!(num(e, "dur") >= 0.0, "{e}"),
            "b" | "e" => assert!(e["id"].is_u64() && e["cat"].is_string(), "{e}"),
            "C" => assert!(
                e["args"]
                    .as_object()
                    .is_some_and(|a| a.values().all(Value::is_number)),
                "{e}"
            ),
            "M" => assert!(e["args"].is_object(), "{e}"),
            other => panic!("unexpected phase {other}: {e}"),
        }
    }
}

/// On each thread track, a span either starts after the enclosing one ended or ends inside it.
fn check_no_partial_overlap(events: &[Value]) {
    let mut tracks: BTreeMap<(u64, u64), Vec<(f64, f64)>> = BTreeMap::new();
    for e in with_ph(events, "X") {
        let (ts, dur) = (num(e, "ts"), num(e, "dur"));
        let key = (e["pid"].as_u64().unwrap(), e["tid"].as_u64().unwrap());
        tracks.entry(key).or_default().push((ts, ts + dur));
    }
    for (track, mut spans) in tracks {
        spans.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.total_cmp(&a.1)));
        let mut open: Vec<f64> = Vec::new();
        for (start, end) in spans {
            while open.last().is_some_and(|&e| e <= start) {
                open.pop();
            }
            if let Some(&outer) = open.last() {
                assert!(
                    end <= outer,
                    "{track:?}: [{start}, {end}] crosses the end {outer}"
                );
            }
            open.push(end);
        }
    }
}

/// The prefill and decode spans of a request that produced tokens, at the CSV's times.
fn check_request_spans(events: &[Value], r: &RequestRow) {
    let spans = spans_of(events, r.id);
    let suffix = if r.warmup { " (warm-up)" } else { "" };
    let names: Vec<&str> = spans.iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [format!("prefill / TTFT{suffix}"), format!("decode{suffix}")],
        "request {}",
        r.id
    );
    let (ttft, decode) = (r.ttft_s.unwrap(), r.decode_time_s.unwrap());
    let (p, d) = (spans[0], spans[1]);
    assert_eq!(num(p, "ts"), r.start_s * 1e6);
    assert_eq!(num(p, "dur"), ttft * 1e6);
    assert_eq!(num(d, "ts"), r.start_s * 1e6 + ttft * 1e6);
    assert_eq!(num(d, "dur"), decode * 1e6);
    for s in [p, d] {
        assert_eq!(s["tid"], u64::from(r.instance) + 2);
        assert_eq!(s["cat"], if r.warmup { "warm-up" } else { "request" });
        assert_eq!(s["args"]["prompt_tokens"], r.prompt_tokens);
        assert_eq!(s["args"]["output_tokens"], r.output_tokens);
        assert_eq!(s["args"]["stop_reason"], r.stop_reason.unwrap().as_str());
        assert_eq!(s["args"]["warmup"], r.warmup);
    }
}

#[test]
fn fixture_trace_is_well_formed_and_matches_the_csvs() {
    let run = fixture();
    let events = trace(&run);
    check_fields(&events);
    check_no_partial_overlap(&events);

    assert_eq!(run.requests.len(), 19);
    for r in &run.requests {
        check_request_spans(&events, r);
    }
    let request_spans = with_ph(&events, "X").filter(|e| e["cat"] != "level");
    assert_eq!(request_spans.count(), 2 * run.requests.len());
    assert_eq!(with_ph(&events, "b").count(), 0, "closed loop: no lag");

    for (name, key) in [
        ("process CPU", "cores"),
        ("RSS", "bytes"),
        ("system busy", "cores"),
    ] {
        let series: Vec<&Value> = with_ph(&events, "C")
            .filter(|e| e["name"] == name)
            .collect();
        assert_eq!(series.len(), run.samples.len(), "{name}");
        for (e, s) in series.iter().zip(&run.samples) {
            assert_eq!(num(e, "ts"), s.t_s * 1e6, "{name}");
            let want = match name {
                "process CPU" => s.process_cpu_cores.unwrap(),
                "RSS" => s.rss_bytes.unwrap() as f64,
                _ => s.system_busy_cores.unwrap(),
            };
            assert_eq!(num(&e["args"], key), want, "{name}");
        }
    }
    assert!(with_ph(&events, "C").all(|e| e["args"]["bytes"].is_u64() || e["name"] != "RSS"));

    let levels: Vec<&Value> = with_ph(&events, "X")
        .filter(|e| e["cat"] == "level")
        .collect();
    assert_eq!(levels.len(), run.record.levels.len());
    for (e, l) in levels.iter().zip(&run.record.levels) {
        let w = l.window.as_ref().unwrap();
        assert_eq!(e["tid"], 1);
        assert_eq!(num(e, "ts"), w.start_s * 1e6);
        assert_eq!(num(e, "dur"), w.end_s * 1e6 - w.start_s * 1e6);
        assert_eq!(e["name"], format!("level {} ({})", l.index, l.load.label()));
    }

    let thread_names: BTreeMap<u64, &str> = with_ph(&events, "M")
        .filter(|e| e["name"] == "thread_name")
        .map(|e| {
            (
                e["tid"].as_u64().unwrap(),
                e["args"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    let want: BTreeMap<u64, &str> = [
        (1, "levels"),
        (2, "instance 0"),
        (3, "instance 1"),
        (4, "instance 2"),
        (5, "instance 3"),
    ]
    .into();
    assert_eq!(thread_names, want);
    assert_eq!(
        with_ph(&events, "M")
            .filter(|e| e["name"] == "process_name")
            .count(),
        1
    );
}

/// A failed request is one span named by its error kind, and a request that waited for its
/// schedule gets a lag pair off its instance's track.
#[test]
fn failures_and_schedule_lag() {
    let mut run = fixture();
    let failed = &mut run.requests[3];
    failed.error_kind = Some(charter_record::ErrorKind::Timeout);
    failed.error_message = Some("no token within 1 s".into());
    failed.stop_reason = None;
    let failed = failed.clone();
    let lagged = &mut run.requests[8];
    lagged.schedule_lag_s = 0.25;
    lagged.intended_start_s = lagged.start_s - 0.25;
    let lagged = lagged.clone();

    let events = trace(&run);
    check_fields(&events);
    check_no_partial_overlap(&events);

    let spans = spans_of(&events, failed.id);
    assert_eq!(spans.len(), 1);
    let s = spans[0];
    assert_eq!(s["name"], "timeout");
    assert_eq!(s["args"]["error"], "no token within 1 s");
    assert_eq!(num(s, "ts"), failed.start_s * 1e6);
    assert_eq!(num(s, "dur"), failed.end_s * 1e6 - failed.start_s * 1e6);

    let pair: Vec<&Value> = events
        .iter()
        .filter(|e| e["cat"] == "schedule lag" && e["id"] == lagged.id)
        .collect();
    assert_eq!(pair.len(), 2);
    assert_eq!((&pair[0]["ph"], &pair[1]["ph"]), (&"b".into(), &"e".into()));
    assert_eq!(num(pair[0], "ts"), lagged.intended_start_s * 1e6);
    assert_eq!(num(pair[1], "ts"), lagged.start_s * 1e6);
    assert_eq!(with_ph(&events, "b").count(), 1);
    check_request_spans(&events, &lagged);
}

/// `charter report` lists `trace.json` for one run, `trace-<i>.json` for several.
#[test]
fn report_directory_has_one_trace_per_run() {
    let names = |runs: &[LoadedRun]| -> Vec<String> {
        let ch = charter::build(runs, None, "t");
        let doc = CharterDoc {
            charter: &ch,
            charts: &[],
        };
        let docs = report_documents(doc, runs);
        docs.iter()
            .flat_map(|d| d.files())
            .filter(|(_, f)| *f == Format::PerfettoTrace)
            .map(|(n, _)| n)
            .collect()
    };
    assert_eq!(names(&[fixture()]), ["trace.json"]);
    assert_eq!(
        names(&[fixture(), fixture(), fixture()]),
        ["trace-0.json", "trace-1.json", "trace-2.json"]
    );
}

/// The overlap check above is not vacuous: a span crossing its neighbour's end fails it.
#[test]
#[should_panic(expected = "crosses the end")]
fn overlap_check_rejects_crossing_spans() {
    let span = |ts: f64, dur: f64| serde_json::json!({"ph": "X", "ts": ts, "dur": dur, "pid": 1, "tid": 2});
    check_no_partial_overlap(&[span(0.0, 10.0), span(5.0, 10.0)]);
}
