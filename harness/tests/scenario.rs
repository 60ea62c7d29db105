//! Scenario files: every example in `scenarios/` validates and runs with the real binary, the
//! command line overrides a scenario, and bad scenario files fail with exit 2 and a one-line
//! error that names the file, the line and the key, without leaving a run directory behind.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use serde_json::Value as Json;

fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .canonicalize()
        .expect("scenarios/ exists")
}

/// Every `scenarios/*.toml`, sorted, so that a new example is covered without touching this file.
fn scenario_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(scenarios_dir())
        .expect("scenarios/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 4,
        "expected the example scenarios in {}, found {files:?}",
        scenarios_dir().display()
    );
    files
}

/// Run the real `charter` from `cwd`, so that nothing depends on the test's working directory.
fn charter_in(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_charter"))
        .current_dir(cwd)
        .args(args)
        .output()
        .expect("running charter")
}

/// What a scenario's `[load]` and `[slo]` ask for, read independently of charter's parser.
#[derive(Debug)]
struct Asked {
    concurrency: Option<Vec<u64>>,
    rates: Option<Vec<f64>>,
    auto: bool,
    search: bool,
    search_steps: u64,
    requests: Option<u64>,
    /// `load.trials`: the listed levels run this many times over, in order.
    trials: usize,
    warmup: Option<u64>,
    duration: bool,
    /// A `.jsonl` prompt file, resolved from the scenario's directory.
    jsonl: Option<PathBuf>,
    /// `workload.trace`: one open-loop level replaying every row of the trace's window.
    trace: bool,
}

impl Asked {
    fn read(path: &Path) -> Self {
        let doc: toml::Table = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let empty = toml::Table::new();
        let section = |name: &str| doc.get(name).and_then(|v| v.as_table()).unwrap_or(&empty);
        let (load, slo, workload) = (section("load"), section("slo"), section("workload"));
        let list = |v: &toml::Value| match v {
            toml::Value::Array(a) => a.clone(),
            other => vec![other.clone()],
        };
        let concurrency = load.get("concurrency").map(|v| {
            list(v)
                .iter()
                .map(|x| x.as_integer().unwrap() as u64)
                .collect()
        });
        let rates = load.get("rate").map(|v| {
            list(v)
                .iter()
                .map(|x| {
                    x.as_float()
                        .or_else(|| x.as_integer().map(|i| i as f64))
                        .unwrap()
                })
                .collect()
        });
        let auto = load.get("sweep").and_then(|v| v.as_str()) == Some("auto");
        let has_terms = slo
            .keys()
            .any(|k| !["attainment", "search", "search_steps"].contains(&k.as_str()));
        let search = slo.get("search").and_then(|v| v.as_bool()) == Some(true)
            || (has_terms && concurrency.is_none() && rates.is_none() && !auto);
        let jsonl = workload
            .get("prompts")
            .and_then(|v| v.as_str())
            .filter(|s| s.ends_with(".jsonl"))
            .map(|s| path.parent().unwrap().join(s.trim_start_matches("jsonl:")));
        Asked {
            concurrency,
            rates,
            auto,
            search,
            search_steps: slo
                .get("search_steps")
                .and_then(|v| v.as_integer())
                .unwrap_or(6) as u64,
            requests: load
                .get("requests")
                .and_then(|v| v.as_integer())
                .map(|i| i as u64),
            trials: load.get("trials").and_then(|v| v.as_integer()).unwrap_or(1) as usize,
            warmup: workload
                .get("warmup")
                .and_then(|v| v.as_integer())
                .map(|i| i as u64),
            duration: load.contains_key("duration"),
            jsonl,
            trace: workload.contains_key("trace"),
        }
    }

    /// Rough seconds the open-loop levels spend waiting for arrivals (warm-up included).
    fn open_loop_seconds(&self) -> f64 {
        let per_level = (self.requests.unwrap_or(40) + self.warmup.unwrap_or(2)) as f64;
        self.rates.iter().flatten().map(|r| per_level / r).sum()
    }
}

#[test]
fn every_example_scenario_validates() {
    for f in scenario_files() {
        let o = charter(&["validate", f.to_str().unwrap()]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{} does not validate: {}",
            f.display(),
            stderr(&o)
        );
        let want = format!("{}: valid — ", f.display());
        assert!(
            stdout(&o).starts_with(&want),
            "validate output lacks {want:?}: {}",
            stdout(&o)
        );
    }
}

/// Run one example scenario and check its record against what the file asks for.
fn run_example(path: &Path, tmp: &Path) {
    let name = path.file_stem().unwrap().to_str().unwrap();
    let asked = Asked::read(path);
    let out = tmp.join(name);
    let mut args = vec![
        "profile",
        "--scenario",
        path.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--json",
    ];
    // Open-loop levels last as long as their arrivals: cut long ones short to keep this test
    // fast. Closed-loop and simulated examples run as written.
    let mut requests = asked.requests;
    if asked.open_loop_seconds() > 5.0 {
        args.extend(["--requests", "2"]);
        requests = Some(2);
    }
    let o = charter_in(tmp, &args);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{name}: charter {args:?} failed: {}",
        stderr(&o)
    );
    let summary: Json = serde_json::from_str(&stdout(&o))
        .unwrap_or_else(|e| panic!("{name}: --json output is not JSON ({e}): {}", stdout(&o)));
    assert_eq!(summary["complete"], true, "{name}: {summary}");

    let rec = validated_record(&out);
    assert_eq!(rec["complete"], true, "{name}");
    assert_eq!(
        rec["workload"]["scenario"].as_str(),
        Some(path.to_str().unwrap()),
        "{name}: the record names its scenario"
    );
    let levels = rec["levels"].as_array().unwrap();
    if asked.search {
        assert!(
            levels.len() >= 2 && levels.len() as u64 <= 1 + asked.search_steps,
            "{name}: an SLO search runs a probe and 1..={} steps; got {} levels",
            asked.search_steps,
            levels.len()
        );
        assert_eq!(levels[0]["role"], "saturation_probe", "{name}");
        assert!(levels[1..].iter().all(|l| l["role"] == "search"), "{name}");
        assert!(!rec["search"].is_null(), "{name}: no search result");
        assert!(
            rec["search"]["saturation_rate_per_s"].as_f64().unwrap() > 0.0,
            "{name}: {}",
            rec["search"]
        );
    } else if asked.auto {
        assert_eq!(levels.len(), 7, "{name}: probe + 6 fractions of saturation");
        assert_eq!(levels[0]["role"], "saturation_probe", "{name}");
    } else if asked.trace {
        assert_eq!(levels.len(), 1, "{name}: one trace level");
        assert_eq!(levels[0]["load"]["arrivals"], "trace", "{name}");
        assert_eq!(
            levels[0]["summary"]["requests_completed"], rec["workload"]["trace"]["rows"],
            "{name}: every row of the window"
        );
    } else if let Some(rates) = &asked.rates {
        assert_eq!(
            levels.len(),
            rates.len() * asked.trials,
            "{name}: one level per rate and trial"
        );
        for (l, r) in levels.iter().zip(rates.iter().cycle()) {
            assert_eq!(l["load"]["kind"], "open_loop", "{name}");
            assert_eq!(l["load"]["rate_per_s"].as_f64(), Some(*r), "{name}");
        }
    } else {
        let cs = asked.concurrency.clone().unwrap_or_else(|| vec![1]);
        assert_eq!(
            levels.len(),
            cs.len() * asked.trials,
            "{name}: one level per concurrency and trial"
        );
        for (l, c) in levels.iter().zip(cs.iter().cycle()) {
            assert_eq!(l["load"]["kind"], "closed_loop", "{name}");
            assert_eq!(l["load"]["concurrency"].as_u64(), Some(*c), "{name}");
        }
    }
    assert!(rec["search"].is_null() || asked.search, "{name}");
    for l in levels {
        let s = &l["summary"];
        assert_eq!(s["requests_failed"], 0, "{name}: level {}", l["index"]);
        if let (Some(n), false) = (requests, asked.duration) {
            assert_eq!(
                s["requests_completed"].as_u64(),
                Some(n),
                "{name}: level {}",
                l["index"]
            );
        }
    }
    if let Some(file) = &asked.jsonl {
        let lines = std::fs::read_to_string(file)
            .unwrap_or_else(|e| panic!("{name}: {}: {e}", file.display()))
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count();
        let source = rec["workload"]["prompt"]["source"].as_str().unwrap();
        assert!(
            source.starts_with("jsonl:") && source.ends_with(&format!("({lines} prompts)")),
            "{name}: prompt source {source:?} should be {} with {lines} prompts",
            file.display()
        );
    }
    assert!(!request_rows(&out).is_empty(), "{name}: requests.csv");
}

#[test]
fn every_example_scenario_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let tmp = tmp.path();
    let files = scenario_files();
    // Open-loop and simulated examples mostly sleep: run the examples side by side.
    std::thread::scope(|s| {
        let handles: Vec<_> = files
            .iter()
            .map(|f| s.spawn(move || run_example(f, tmp)))
            .collect();
        let failed: Vec<String> = handles
            .into_iter()
            .zip(&files)
            .filter_map(|(h, f)| h.join().is_err().then(|| f.display().to_string()))
            .collect();
        assert!(failed.is_empty(), "example scenarios failed: {failed:?}");
    });
}

#[test]
fn command_line_overrides_the_scenario() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("x");
    let scenario = scenarios_dir().join("closed-loop-sweep.toml");
    let o = charter(&[
        "profile",
        "--scenario",
        scenario.to_str().unwrap(),
        "--concurrency",
        "3",
        "--requests",
        "3",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let rec = validated_record(&out);
    assert_eq!(rec["complete"], true);
    let levels = rec["levels"].as_array().unwrap();
    assert_eq!(
        levels.len(),
        1,
        "--concurrency replaces the scenario's levels"
    );
    assert_eq!(levels[0]["load"]["kind"], "closed_loop");
    assert_eq!(levels[0]["load"]["concurrency"], 3);
    assert_eq!(levels[0]["summary"]["requests_completed"], 3);
    assert_eq!(rec["workload"]["requests"], 3);
    // What the command line left out still comes from the scenario.
    assert_eq!(rec["workload"]["max_tokens"], "16");
    assert_eq!(
        rec["workload"]["prompt"]["source"],
        "synthetic-tokens (32 tokens)"
    );
}

/// A bad scenario file, with the prompt files it refers to.
struct Bad {
    name: &'static str,
    toml: &'static str,
    files: &'static [(&'static str, &'static str)],
    /// Substrings of the error; `{path}` is the scenario's path, `{dir}` its directory.
    want: &'static [&'static str],
}

const BAD: &[Bad] = &[
    Bad {
        name: "unknown-key",
        toml: "[load]\nrat = 2\n",
        files: &[],
        want: &[
            "scenario {path}:2: key `load.rat`: unknown key",
            "expected one of: concurrency, rate,",
        ],
    },
    Bad {
        name: "wrong-type",
        toml: "[backend]\nkind = \"candle\"\n\n[load]\nconcurrency = \"many\"\n",
        files: &[],
        want: &["scenario {path}:5: key `load.concurrency`: expected an integer, found string"],
    },
    Bad {
        name: "negative-rate",
        toml: "# open loop\n[load]\nrate = -1\n",
        files: &[],
        want: &["scenario {path}:3: key `load.rate`: `-1`: expected a positive number"],
    },
    Bad {
        name: "negative-rate-in-list",
        toml: "[load]\nrate = [1.0, -2.0]\n",
        files: &[],
        want: &["scenario {path}:2: key `load.rate`: `-2`: expected a positive number"],
    },
    Bad {
        name: "zero-concurrency",
        toml: "[load]\nconcurrency = [1, 0]\n",
        files: &[],
        want: &["scenario {path}:2: key `load.concurrency`: 0: expected an integer ≥ 1"],
    },
    Bad {
        name: "unknown-arrivals",
        toml: "[load]\nrate = 2\narrivals = \"uniform\"\n",
        files: &[],
        want: &[
            "scenario {path}:3: key `load.arrivals`: `uniform`: expected one of constant, poisson, gamma",
        ],
    },
    Bad {
        name: "bad-slo-term",
        toml: "[slo]\nttft_p99 = \"soon\"\n",
        files: &[],
        want: &["scenario {path}:2: key `slo.ttft_p99`:", "expected METRIC_pNN=DURATION"],
    },
    Bad {
        name: "unknown-section",
        toml: "[backend]\nkind = \"candle\"\n\n[loads]\nrate = 1\n",
        files: &[],
        want: &[
            "scenario {path}:4: key `loads`: unknown section",
            "expected one of [backend], [workload], [load], [slo], [sampler], [output]",
        ],
    },
    Bad {
        name: "syntax-error",
        toml: "[load]\nrate = 1\nconcurrency = [1, 2\n",
        files: &[],
        want: &[
            "scenario {path}:3: ",
            "(expected tables [backend], [workload], [load], [slo], [sampler], [output]",
        ],
    },
    Bad {
        name: "empty-prompt-file",
        toml: "[backend]\nkind = \"simulated\"\n\n[workload]\nprompts = \"empty.jsonl\"\n",
        files: &[("empty.jsonl", "")],
        want: &["{dir}/empty.jsonl: prompt file is empty"],
    },
    Bad {
        name: "malformed-jsonl",
        toml: "[backend]\nkind = \"simulated\"\n\n[workload]\nprompts = \"bad.jsonl\"\n",
        files: &[("bad.jsonl", "{\"prompt\": \"hello\"}\n{not json\n")],
        want: &["{dir}/bad.jsonl:2: malformed JSONL line"],
    },
];

#[test]
fn bad_scenarios_name_file_line_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    for bad in BAD {
        // Each case in its own directory, so that the prompt files it names are its own.
        let dir = tmp.path().join(bad.name);
        std::fs::create_dir(&dir).unwrap();
        for (file, text) in bad.files {
            std::fs::write(dir.join(file), text).unwrap();
        }
        let path = dir.join(format!("{}.toml", bad.name));
        std::fs::write(&path, bad.toml).unwrap();
        let p = path.to_str().unwrap();
        let want: Vec<String> = bad
            .want
            .iter()
            .map(|w| {
                w.replace("{path}", p)
                    .replace("{dir}", dir.to_str().unwrap())
            })
            .collect();

        let run = dir.join("run");
        for args in [
            vec!["validate", p],
            vec!["profile", "--scenario", p, "--out", run.to_str().unwrap()],
        ] {
            let o = charter_in(tmp.path(), &args);
            let err = stderr(&o);
            assert_eq!(
                o.status.code(),
                Some(2),
                "{}: charter {args:?}\nstderr: {err}",
                bad.name
            );
            assert_eq!(
                err.trim_end().lines().count(),
                1,
                "{}: expected a one-line error: {err}",
                bad.name
            );
            for w in &want {
                assert!(
                    err.contains(w.as_str()),
                    "{}: stderr lacks {w:?}: {err}",
                    bad.name
                );
            }
            assert!(stdout(&o).is_empty(), "{}: {}", bad.name, stdout(&o));
            assert!(
                !run.exists(),
                "{}: run directory {} was left behind",
                bad.name,
                run.display()
            );
        }
    }
}

#[test]
fn missing_scenario_file() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("nope.toml");
    let o = charter(&["validate", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let want = format!("scenario {}: cannot read", path.display());
    assert!(stderr(&o).contains(&want), "{}", stderr(&o));
}
