//! Every `charter profile` setting is also a scenario key, and the flag overrides the file.
//!
//! The settings are enumerated from clap's own command definition, so a new flag is covered
//! here without touching this file — unless its value type is new, in which case the test
//! fails and asks for a sample value below.

use std::any::TypeId;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use charter::profile::scenario::{command, key_of, Settings};
use clap::{Arg, ArgAction};

/// Two distinct valid values of a setting, as TOML and as flag text.
struct Sample {
    toml: String,
    text: String,
}

fn quoted(s: &str) -> Sample {
    Sample {
        toml: format!("{s:?}"),
        text: s.to_string(),
    }
}

fn bare(s: &str) -> Sample {
    Sample {
        toml: s.to_string(),
        text: s.to_string(),
    }
}

/// Values of settings whose type does not say what a valid value looks like.
fn special(id: &str) -> Option<[Sample; 2]> {
    Some(match id {
        "preset" => [quoted("tiny-15m"), quoted("small-110m")],
        "prompts" => [quoted("synthetic"), quoted("corpus")],
        "prompt_tokens" | "max_tokens" | "turns" => [quoted("16"), quoted("uniform:8:32")],
        "think_time" => [quoted("2s"), quoted("uniform:1s:3s")],
        "terms" => [quoted("ttft_p99=1s"), quoted("itl_p50=20ms")],
        "onnx_dim" => [quoted("height=2"), quoted("width=3")],
        "headers" => [quoted("X-A: 1"), quoted("X-B: 2")],
        "extra_body" => [quoted(r#"{"top_k": 2}"#), quoted(r#"{"top_k": 3}"#)],
        "max_event_bytes" | "max_response_bytes" => [bare("2048"), bare("4096")],
        // A TOML inline table in a scenario (or a `[[backend.tier]]` table), its text as a flag.
        "tier" => [
            bare(r#"{kind = "simulated", name = "a"}"#),
            bare(r#"{kind = "simulated", name = "b"}"#),
        ],
        "trace_window" => [quoted("0s..10s"), quoted("1..2")],
        "shard" => [quoted("0/2"), quoted("1/4")],
        "start_at" => [
            quoted("2030-01-01T00:00:00Z"),
            quoted("2030-01-01T00:00:01Z"),
        ],
        _ => return None,
    })
}

/// Two values for `arg`, from its possible values or its value type.
fn samples(arg: &Arg) -> Option<[Sample; 2]> {
    let id = arg.get_id().as_str();
    if let Some(s) = special(id) {
        return Some(s);
    }
    let names: Vec<String> = arg
        .get_possible_values()
        .iter()
        .map(|p| p.get_name().to_string())
        .collect();
    if !names.is_empty() {
        let second = names.get(1).unwrap_or(&names[0]);
        return Some([quoted(&names[0]), quoted(second)]);
    }
    let t = arg.get_value_parser().type_id();
    let is = |id: TypeId| t == id;
    if [
        TypeId::of::<u32>(),
        TypeId::of::<u64>(),
        TypeId::of::<usize>(),
    ]
    .into_iter()
    .any(is)
    {
        Some([bare("3"), bare("5")])
    } else if is(TypeId::of::<f64>()) {
        Some([bare("0.5"), bare("0.25")])
    } else if is(TypeId::of::<Duration>()) {
        Some([quoted("2s"), quoted("3s")])
    } else if is(TypeId::of::<PathBuf>()) {
        Some([quoted("/charter-test/a"), quoted("/charter-test/b")])
    } else if is(TypeId::of::<String>()) {
        Some([quoted("alpha"), quoted("beta")])
    } else {
        None
    }
}

fn parse_cli(args: &[OsString]) -> Settings {
    let mut argv: Vec<OsString> = vec!["charter profile".into()];
    argv.extend(args.iter().cloned());
    let m = command()
        .try_get_matches_from(argv)
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    Settings::from_matches(&m).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// The settings without the scenario path, for comparing a file's settings with a command line's.
fn shown(s: &Settings) -> String {
    let mut a = s.args.clone();
    a.scenario = None;
    format!("{a:#?}")
}

fn flag(arg: &Arg, value: Option<&str>) -> OsString {
    let long = arg.get_long().unwrap();
    match value {
        Some(v) => format!("--{long}={v}").into(),
        None => format!("--{long}").into(),
    }
}

fn write_scenario(dir: &Path, name: &str, key: &str, toml_value: &str) -> PathBuf {
    let (section, key) = key.split_once('.').unwrap();
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, format!("[{section}]\n{key} = {toml_value}\n")).unwrap();
    path
}

#[test]
fn every_profile_flag_is_a_scenario_key_that_the_flag_overrides() {
    let tmp = tempfile::tempdir().unwrap();
    let cmd = command();
    let mut checked = 0;
    let mut missing = Vec::new();
    for arg in cmd.get_arguments() {
        let id = arg.get_id().as_str();
        if id == "scenario" || id == "help" {
            continue;
        }
        let key = key_of(id).unwrap_or_else(|| panic!("--{id} is not a scenario key"));
        let switch = matches!(arg.get_action(), ArgAction::SetTrue);
        if switch {
            // The file's `true` is the flag; the flag on top of `false` sets it.
            let on = write_scenario(tmp.path(), id, &key, "true");
            let from_file = Settings::from_file(&on).unwrap_or_else(|e| panic!("{key}: {e}"));
            let given = parse_cli(&[flag(arg, None)]);
            assert_eq!(shown(&from_file), shown(&given), "{key} = true");
            let off = write_scenario(tmp.path(), &format!("{id}-off"), &key, "false");
            let over = parse_cli(&["--scenario".into(), off.into(), flag(arg, None)]);
            assert_eq!(shown(&over), shown(&given), "--{id} over {key} = false");
            checked += 1;
            continue;
        }
        let Some([a, b]) = samples(arg) else {
            missing.push(id.to_string());
            continue;
        };
        // The file's value means what the same value means as a flag.
        let path = write_scenario(tmp.path(), id, &key, &a.toml);
        let from_file = Settings::from_file(&path).unwrap_or_else(|e| panic!("{key}: {e}"));
        let as_flag = parse_cli(&[flag(arg, Some(&a.text))]);
        assert_eq!(shown(&from_file), shown(&as_flag), "{key} = {}", a.toml);
        assert!(
            from_file.origins.name(id).contains(&format!("key `{key}`")),
            "{key}: errors name the file's key: {}",
            from_file.origins.name(id)
        );
        // The flag overrides the file.
        let over = parse_cli(&["--scenario".into(), path.into(), flag(arg, Some(&b.text))]);
        let only_flag = parse_cli(&[flag(arg, Some(&b.text))]);
        assert_eq!(
            shown(&over),
            shown(&only_flag),
            "--{id} {} over {key} = {}",
            b.text,
            a.toml
        );
        assert_eq!(
            over.origins.name(id),
            format!("--{}", arg.get_long().unwrap())
        );
        checked += 1;
    }
    assert!(
        missing.is_empty(),
        "settings of a value type this test has no sample for (add one to `special`): {missing:?}"
    );
    assert!(checked >= 60, "only {checked} settings enumerated");
}

#[test]
fn a_flag_replaces_the_settings_it_conflicts_with_and_levels_go_as_a_unit() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("s.toml");
    std::fs::write(
        &path,
        "[backend]\npreset = \"tiny-15m\"\n[load]\nrate = [1, 2]\n[slo]\nttft_p99 = \"1s\"\nsearch = true\n",
    )
    .unwrap();
    let s = parse_cli(&[
        "--scenario".into(),
        path.clone().into(),
        "--concurrency=2".into(),
        "--model=/m.gguf".into(),
    ]);
    assert_eq!(s.args.load.concurrency, Some(vec![2]));
    assert_eq!(
        s.args.load.rate, None,
        "--concurrency replaces the file's rate"
    );
    assert!(
        !s.args.slo.search,
        "--concurrency replaces the file's search"
    );
    assert!(s.args.slo.terms.is_some(), "the SLO terms stay");
    assert_eq!(
        s.args.backend.preset, None,
        "--model replaces the file's preset"
    );
    assert_eq!(s.args.backend.model, Some(PathBuf::from("/m.gguf")));
}

#[test]
fn relative_paths_in_a_scenario_are_relative_to_it() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("s.toml");
    std::fs::write(
        &path,
        "[backend]\nkind = \"onnx\"\nmodel = \"m.onnx\"\ntokenizer = \"t.json\"\n\
         [workload]\nprompts = \"p.jsonl\"\n[output]\ndir = \"runs/x\"\n",
    )
    .unwrap();
    let s = Settings::from_file(&path).unwrap();
    let dir = tmp.path();
    assert_eq!(s.args.backend.model, Some(dir.join("m.onnx")));
    assert_eq!(s.args.backend.tokenizer, Some(dir.join("t.json")));
    assert_eq!(
        s.args.workload.prompts,
        Some(charter_workloads::PromptSpec::Jsonl(dir.join("p.jsonl")))
    );
    assert_eq!(
        s.args.output.dir,
        Some(PathBuf::from("runs/x")),
        "the run directory is relative to the current directory"
    );
    // A remote backend's model is the name the server serves.
    std::fs::write(
        &path,
        "[backend]\nkind = \"openai\"\nmodel = \"org/model\"\nbase_url = \"http://127.0.0.1:1\"\n",
    )
    .unwrap();
    let s = Settings::from_file(&path).unwrap();
    assert_eq!(s.args.backend.model, Some(PathBuf::from("org/model")));
}
