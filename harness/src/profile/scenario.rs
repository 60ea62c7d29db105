//! Scenario files, read through the command line's own definitions (as ripgrep reads its config
//! file): a TOML section is a group of [`ProfileArgs`], a key is an argument's id, and a value is
//! handed to that argument's parser as the flag's text. So a file accepts exactly the settings
//! and values the command line does, with the same messages, and a new flag is a scenario key
//! with no code here.
//!
//! ```toml
//! [backend]   # kind (--backend), model, preset, seed, threads, tokenizer, sim_*, the ONNX and
//!             # remote settings (ort_lib, graph_opt, ..., base_url, header, ...)
//! [workload]  # prompts, prompt_tokens, max_tokens, ignore_eos, temperature, top_p, warmup
//! [load]      # concurrency, rate, arrivals, burstiness, max_in_flight, sweep, requests,
//!             # duration, cooldown, lag_threshold, trials, instances, isolation
//! [slo]       # terms (--slo) or one key per term (ttft_p99 = "500ms"), attainment, search, ...
//! [sampler]   # interval (--sample-interval), nvml_lib, no_gpu, ..., watch_pid, watch_process
//! [output]    # dir (--out), json, no_progress
//! [distributed] # shard (K/N), shards, start_at, wait
//! ```
//! A flag with several values takes an array or a comma-separated string; a switch takes
//! `true`/`false`. Relative input paths (`model`, `tokenizer`, `ort_lib`, prompt files, ...) are
//! resolved from the scenario's directory; `dir` from the current directory.
//!
//! Command-line values override the file setting by setting (one merge for all of them): a flag
//! replaces the file's value of the same setting and of the settings it conflicts with, and the
//! load levels are taken as a unit (any of `--concurrency`, `--rate`, `--sweep`, `--search`
//! replaces the file's plan). Every error names the file, the line and the key, and says what
//! was expected; [`Origins`] keeps that for errors found later.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt::Display;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches, ValueEnum, ValueHint};
use toml::{Spanned, Value};

use super::args::*;
use super::backend::{BackendKind, TierTable};
use crate::CliError;

/// Adds one group's arguments to a command (`Args::augment_args`).
type Group = fn(Command) -> Command;

/// The sections of a scenario file, each the group of arguments of that name.
const SECTIONS: &[(&str, Group)] = &[
    ("backend", BackendArgs::augment_args),
    ("workload", WorkloadArgs::augment_args),
    ("load", LoadArgs::augment_args),
    ("slo", SloArgs::augment_args),
    ("sampler", SamplerArgs::augment_args),
    ("output", OutputArgs::augment_args),
    ("distributed", ShardArgs::augment_args),
];

/// The settings that make the plan of load levels: any of them on the command line replaces all
/// of the file's.
const LEVELS: &[&str] = &["concurrency", "rate", "sweep", "search", "trace"];

/// The command `charter profile` parses: every setting, in its group.
pub fn command() -> Command {
    let mut cmd = ProfileArgs::augment_args(Command::new("charter profile"));
    cmd.build();
    cmd
}

/// The scenario section and key of the setting with argument id `id` (`None`: command line
/// only, like `--scenario`).
pub fn key_of(id: &str) -> Option<String> {
    SECTIONS.iter().find_map(|(section, augment)| {
        augment(Command::new("section"))
            .get_arguments()
            .any(|a| a.get_id() == id)
            .then(|| format!("{section}.{id}"))
    })
}

/// Where a given setting's value came from.
#[derive(Debug, Clone)]
enum Origin {
    CommandLine,
    Scenario {
        key: String,
        line: usize,
    },
    /// A key of a hybrid backend's tier table; `tier` names the table as the user wrote it.
    Tier {
        tier: String,
    },
}

/// Where each given setting came from, so that an error names it as the user wrote it: a flag,
/// or a scenario file's line and key.
#[derive(Debug, Clone, Default)]
pub struct Origins {
    scenario: Option<PathBuf>,
    given: BTreeMap<String, Origin>,
}

impl Origins {
    /// Settings given on a command line alone (e.g. `charter serve`'s).
    pub fn from_command_line(cmd: &Command, m: &ArgMatches) -> Self {
        Self {
            scenario: None,
            given: cmd
                .get_arguments()
                .filter(|a| m.value_source(a.get_id().as_str()) == Some(ValueSource::CommandLine))
                .map(|a| (a.get_id().to_string(), Origin::CommandLine))
                .collect(),
        }
    }

    /// Whether setting `id` was given (on the command line or in the scenario).
    pub fn is_set(&self, id: &str) -> bool {
        self.given.contains_key(id)
    }

    /// `--base-url`, or `scenario FILE:LINE: key `backend.base_url`` when the file set it.
    pub fn name(&self, id: &str) -> String {
        match (self.given.get(id), &self.scenario) {
            (Some(Origin::Scenario { key, line }), Some(path)) => {
                format!("scenario {}:{line}: key `{key}`", path.display())
            }
            (Some(Origin::Tier { tier }), _) => format!("{tier}: key `{id}`"),
            _ => format!("--{}", id_to_flag(id)),
        }
    }

    /// Bad input about setting `id`: `NAME: what`.
    pub fn bad(&self, id: &str, what: impl Display) -> CliError {
        CliError::BadInput(format!("{}: {what}", self.name(id)))
    }

    /// Bad input about one value of setting `id`: `--flag VALUE: what`, or `scenario ...: key
    /// `...`: VALUE: what`.
    pub fn bad_value(&self, id: &str, value: impl Display, what: impl Display) -> CliError {
        let in_file = matches!(self.given.get(id), Some(Origin::Scenario { .. }));
        let sep = if in_file { ": " } else { " " };
        CliError::BadInput(format!("{}{sep}{value}: {what}", self.name(id)))
    }
}

/// The long flag of an argument id (ids are field names; a few flags are named otherwise).
fn id_to_flag(id: &str) -> String {
    command()
        .get_arguments()
        .find(|a| a.get_id() == id)
        .and_then(|a| a.get_long().map(str::to_string))
        .unwrap_or_else(|| id.replace('_', "-"))
}

/// The settings of one `charter profile` run, before defaults.
#[derive(Debug, Clone)]
pub struct Settings {
    pub args: ProfileArgs,
    pub origins: Origins,
}

impl Settings {
    /// The command line (`charter profile`'s matches) over the scenario file it names, if any.
    pub fn from_matches(cli: &ArgMatches) -> Result<Self, CliError> {
        let cmd = command();
        let cli_ids: Vec<&Arg> = cmd
            .get_arguments()
            .filter(|a| cli.value_source(a.get_id().as_str()) == Some(ValueSource::CommandLine))
            .collect();
        let scenario = cli.get_one::<PathBuf>("scenario").cloned();
        let file = match &scenario {
            Some(p) => read(p, cli.get_one::<BackendKind>("kind").copied())?,
            None => Vec::new(),
        };
        let from_cli = |id: &str| cli_ids.iter().any(|a| a.get_id() == id);
        let levels_from_cli = LEVELS.iter().any(|id| from_cli(id));
        let overridden = |id: &str| {
            from_cli(id)
                || (levels_from_cli && LEVELS.contains(&id))
                || cli_ids
                    .iter()
                    .any(|c| conflicting(&cmd, id, c.get_id().as_str()))
        };
        let kept: Vec<&FileSetting> = file.iter().filter(|s| !overridden(&s.id)).collect();
        conflicts_within(&cmd, &kept, scenario.as_deref().unwrap_or(Path::new("")))?;

        let mut origins = Origins {
            scenario: scenario.clone(),
            given: BTreeMap::new(),
        };
        let mut argv: Vec<OsString> = vec!["charter profile".into()];
        for s in kept {
            argv.extend(s.args.iter().cloned());
            origins.given.insert(
                s.id.clone(),
                Origin::Scenario {
                    key: s.key.clone(),
                    line: s.line,
                },
            );
        }
        for a in &cli_ids {
            argv.extend(flag_args(a, cli.get_raw(a.get_id().as_str())));
            origins
                .given
                .insert(a.get_id().to_string(), Origin::CommandLine);
        }
        // Each value already parsed once, alone: what remains are combinations clap refuses.
        let m = cmd
            .try_get_matches_from(argv)
            .map_err(|e| CliError::BadInput(clap_message(&e)))?;
        let args =
            ProfileArgs::from_arg_matches(&m).map_err(|e| CliError::BadInput(e.to_string()))?;
        Ok(Self { args, origins })
    }

    /// The settings of a scenario file alone (`charter validate`).
    pub fn from_file(path: &Path) -> Result<Self, CliError> {
        let m = command()
            .try_get_matches_from([
                OsString::from("charter profile"),
                "--scenario".into(),
                path.as_os_str().to_owned(),
            ])
            .map_err(|e| CliError::BadInput(clap_message(&e)))?;
        Self::from_matches(&m)
    }
}

/// The keys of a tier table that are the tier's own, not a backend setting.
pub const TIER_KEYS: &[&str] = &[
    "name",
    "max_in_flight",
    "resume_below",
    "max_waiting",
    "resume_waiting",
    "metrics_url",
];

/// A hybrid backend's tier table read as `[backend]` settings (through the flags' own parsers,
/// as a scenario's `[backend]` section is), without its own keys ([`TIER_KEYS`]). `tier`
/// names the table in errors, e.g. `--tier #2`.
pub fn tier_settings(table: &toml::Table, tier: &str) -> Result<(BackendArgs, Origins), CliError> {
    let cmd = BackendArgs::augment_args(Command::new("tier"));
    let mut argv: Vec<OsString> = vec!["tier".into()];
    let mut origins = Origins::default();
    for (key, v) in table {
        if TIER_KEYS.contains(&key.as_str()) {
            continue;
        }
        let bad = |what: String| CliError::BadInput(format!("{tier}: key `{key}`: {what}"));
        let Some(arg) = cmd.get_arguments().find(|a| a.get_id() == key.as_str()) else {
            let known: Vec<&str> = TIER_KEYS
                .iter()
                .copied()
                .chain(cmd.get_arguments().map(|a| a.get_id().as_str()))
                .filter(|k| !["tier", "hybrid_policy"].contains(k))
                .collect();
            return Err(bad(format!(
                "unknown key; expected one of: {}",
                known.join(", ")
            )));
        };
        let args = if arg.get_action().takes_values() {
            let items: Vec<&Value> = match v {
                Value::Array(items) if takes_many(arg) => items.iter().collect(),
                one => vec![one],
            };
            let texts = items
                .into_iter()
                .map(|item| value_text(arg, item))
                .collect::<Result<Vec<_>, _>>()
                .map_err(bad)?;
            flag_args(arg, Some(texts.iter().map(std::ffi::OsStr::new)))
        } else {
            match v {
                Value::Boolean(true) => flag_args(arg, None::<std::iter::Empty<_>>),
                Value::Boolean(false) => continue,
                other => {
                    return Err(bad(format!(
                        "expected true or false, found {}",
                        other.type_str()
                    )))
                }
            }
        };
        let mut one: Vec<OsString> = vec!["tier".into()];
        one.extend(args.iter().cloned());
        cmd.clone()
            .try_get_matches_from(one)
            .map_err(|e| bad(clap_message(&e)))?;
        argv.extend(args);
        origins.given.insert(
            key.clone(),
            Origin::Tier {
                tier: tier.to_string(),
            },
        );
    }
    let m = cmd
        .try_get_matches_from(argv)
        .map_err(|e| CliError::BadInput(format!("{tier}: {}", clap_message(&e))))?;
    let args = BackendArgs::from_arg_matches(&m).map_err(|e| CliError::BadInput(e.to_string()))?;
    Ok((args, origins))
}

/// One key of a scenario file, as the flag arguments it stands for.
#[derive(Debug)]
struct FileSetting {
    id: String,
    /// `section.key`.
    key: String,
    line: usize,
    args: Vec<OsString>,
}

/// `--long=value` for each value (a switch: `--long`).
fn flag_args<'a>(
    arg: &Arg,
    values: Option<impl Iterator<Item = &'a std::ffi::OsStr>>,
) -> Vec<OsString> {
    let long = arg.get_long().expect("every setting has a long flag");
    if !arg.get_action().takes_values() {
        return vec![format!("--{long}").into()];
    }
    values
        .into_iter()
        .flatten()
        .map(|v| {
            let mut s = OsString::from(format!("--{long}="));
            s.push(v);
            s
        })
        .collect()
}

/// The text of clap's message for a refused value: the parser's own words when it has them.
fn clap_message(e: &clap::Error) -> String {
    if let Some(src) = std::error::Error::source(e) {
        return src.to_string();
    }
    let text = e.to_string();
    let first = text.lines().next().unwrap_or_default();
    first.strip_prefix("error: ").unwrap_or(first).to_string()
}

struct Ctx<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Ctx<'_> {
    fn line(&self, offset: usize) -> usize {
        line_at(self.text, offset)
    }

    fn err(&self, line: usize, key: &str, what: impl Display) -> CliError {
        CliError::BadInput(format!(
            "scenario {}:{line}: key `{key}`: {what}",
            self.path.display()
        ))
    }
}

fn line_at(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Integer types: their settings take TOML integers only.
fn is_integer(arg: &Arg) -> bool {
    use std::any::TypeId;
    let t = arg.get_value_parser().type_id();
    [
        TypeId::of::<u8>(),
        TypeId::of::<u16>(),
        TypeId::of::<u32>(),
        TypeId::of::<u64>(),
        TypeId::of::<usize>(),
        TypeId::of::<i64>(),
    ]
    .iter()
    .any(|id| t == *id)
}

/// Whether the argument takes several values (an array in a scenario).
fn takes_many(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::Append)
        || arg.get_num_args().is_some_and(|n| n.max_values() > 1)
}

/// The flag text of one TOML value, type-checked the way the setting needs.
fn value_text(arg: &Arg, v: &Value) -> Result<String, String> {
    let names: Vec<String> = arg
        .get_possible_values()
        .iter()
        .map(|p| p.get_name().to_string())
        .collect();
    if !names.is_empty() {
        return match v {
            Value::String(s) if names.contains(s) => Ok(s.clone()),
            Value::String(s) => Err(format!("`{s}`: expected one of {}", names.join(", "))),
            other => Err(format!("expected a string, found {}", other.type_str())),
        };
    }
    if is_integer(arg) {
        return match v {
            Value::Integer(i) => Ok(i.to_string()),
            other => Err(format!("expected an integer, found {}", other.type_str())),
        };
    }
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Integer(i) => Ok(i.to_string()),
        Value::Float(f) => Ok(f.to_string()),
        // A hybrid backend's `[[backend.tier]]` tables, as `--tier` takes them.
        Value::Table(t) if arg.get_id() == "tier" => Ok(Value::Table(t.clone()).to_string()),
        other => Err(format!(
            "expected a string or number, found {}",
            other.type_str()
        )),
    }
}

/// A relative input path in a scenario is relative to the scenario's directory.
fn rebase(arg: &Arg, text: String, base: &Path, remote: bool) -> String {
    let id = arg.get_id().as_str();
    if id == "tier" {
        return rebase_tier(text, base);
    }
    if id == "prompts" {
        return match text.parse::<charter_workloads::PromptSpec>() {
            Ok(spec) => spec.rebased(base).to_string(),
            Err(_) => text, // the flag's parser reports it
        };
    }
    // A remote backend's `model` is the name the server serves.
    let path_hint = matches!(
        arg.get_value_hint(),
        ValueHint::FilePath | ValueHint::DirPath | ValueHint::AnyPath | ValueHint::ExecutablePath
    );
    if !path_hint || (id == "model" && remote) || Path::new(&text).is_absolute() {
        return text;
    }
    base.join(text).display().to_string()
}

/// The relative input paths of a tier table, resolved from the scenario's directory.
fn rebase_tier(text: String, base: &Path) -> String {
    let Ok(TierTable(mut table)) = TierTable::parse(&text) else {
        return text; // the flag's parser reports it
    };
    let cmd = BackendArgs::augment_args(Command::new("tier"));
    let remote = table
        .get("kind")
        .and_then(Value::as_str)
        .and_then(|k| BackendKind::from_str(k, false).ok())
        .is_some_and(BackendKind::is_remote);
    for (key, v) in table.iter_mut() {
        if let (Some(arg), Value::String(s)) = (
            cmd.get_arguments().find(|a| a.get_id() == key.as_str()),
            &*v,
        ) {
            *v = Value::String(rebase(arg, s.clone(), base, remote));
        }
    }
    TierTable(table).to_string()
}

/// Read a scenario file into the flag arguments of its keys, each checked on its own.
fn read(path: &Path, cli_kind: Option<BackendKind>) -> Result<Vec<FileSetting>, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        CliError::BadInput(format!("scenario {}: cannot read: {e}", path.display()))
    })?;
    let ctx = Ctx { path, text: &text };
    type Section = BTreeMap<String, Spanned<Value>>;
    let doc: BTreeMap<String, Spanned<Section>> = toml::from_str(&text).map_err(|e| {
        let line = e.span().map(|s| ctx.line(s.start)).unwrap_or(0);
        CliError::BadInput(format!(
            "scenario {}:{line}: {} (expected tables [backend], [workload], [load], [slo], [sampler], [output], [distributed] of key = value pairs)",
            path.display(),
            e.message().trim()
        ))
    })?;
    let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let file_kind = doc
        .get("backend")
        .and_then(|t| t.get_ref().get("kind"))
        .and_then(|k| k.get_ref().as_str())
        .and_then(|k| BackendKind::from_str(k, false).ok());
    let remote = cli_kind.or(file_kind).is_some_and(BackendKind::is_remote);
    let mut out = Vec::new();
    let mut slo_terms: Vec<(String, usize, String)> = Vec::new();
    for (section, table) in &doc {
        let Some((_, augment)) = SECTIONS.iter().find(|(n, _)| n == section) else {
            let names: Vec<&str> = SECTIONS.iter().map(|(n, _)| *n).collect();
            return Err(ctx.err(
                ctx.line(table.span().start),
                section,
                format!("unknown section; expected one of [{}]", names.join("], [")),
            ));
        };
        let cmd = augment(Command::new("scenario"));
        for (key, v) in table.get_ref() {
            let full = format!("{section}.{key}");
            let line = ctx.line(v.span().start);
            let Some(arg) = cmd.get_arguments().find(|a| a.get_id() == key.as_str()) else {
                if *section == "slo" {
                    // `ttft_p99 = "500ms"`: one SLO term.
                    let term = format!(
                        "{key}={}",
                        value_text(&Arg::new("term"), v.get_ref())
                            .map_err(|e| ctx.err(line, &full, e))?
                    );
                    term.parse::<charter_reports::slo::Slo>()
                        .map_err(|e| ctx.err(line, &full, e))?;
                    slo_terms.push((term, line, full));
                    continue;
                }
                let known: Vec<&str> = cmd.get_arguments().map(|a| a.get_id().as_str()).collect();
                return Err(ctx.err(
                    line,
                    &full,
                    format!("unknown key; expected one of: {}", known.join(", ")),
                ));
            };
            let args = if arg.get_action().takes_values() {
                let items: Vec<&Value> = match v.get_ref() {
                    Value::Array(items) if takes_many(arg) && items.is_empty() => {
                        return Err(ctx.err(line, &full, "expected a value or a non-empty array"))
                    }
                    Value::Array(items) if takes_many(arg) => items.iter().collect(),
                    one => vec![one],
                };
                let texts = items
                    .into_iter()
                    .map(|item| value_text(arg, item).map(|t| rebase(arg, t, &base, remote)))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| ctx.err(line, &full, e))?;
                flag_args(arg, Some(texts.iter().map(std::ffi::OsStr::new)))
            } else {
                match v.get_ref() {
                    Value::Boolean(true) => flag_args(arg, None::<std::iter::Empty<_>>),
                    Value::Boolean(false) => continue,
                    other => {
                        return Err(ctx.err(
                            line,
                            &full,
                            format!("expected true or false, found {}", other.type_str()),
                        ))
                    }
                }
            };
            let mut argv: Vec<OsString> = vec!["scenario".into()];
            argv.extend(args.iter().cloned());
            cmd.clone()
                .try_get_matches_from(argv)
                .map_err(|e| ctx.err(line, &full, clap_message(&e)))?;
            out.push(FileSetting {
                id: key.clone(),
                key: full,
                line,
                args,
            });
        }
    }
    if let Some((_, line, key)) = slo_terms.first() {
        if let Some(t) = out.iter().find(|s| s.id == "terms") {
            return Err(ctx.err(
                t.line,
                &t.key,
                format!("SLO terms are also given as keys (`{key}`); expected one or the other"),
            ));
        }
        let joined: Vec<&str> = slo_terms.iter().map(|(t, _, _)| t.as_str()).collect();
        out.push(FileSetting {
            id: "terms".into(),
            key: key.clone(),
            line: *line,
            args: vec![format!("--slo={}", joined.join(",")).into()],
        });
    }
    Ok(out)
}

/// Whether clap refuses settings `a` and `b` together (declared on either one).
fn conflicting(cmd: &Command, a: &str, b: &str) -> bool {
    let declared = |x: &str, y: &str| {
        cmd.get_arguments()
            .find(|arg| arg.get_id() == x)
            .is_some_and(|arg| {
                cmd.get_arg_conflicts_with(arg)
                    .iter()
                    .any(|c| c.get_id() == y)
            })
    };
    declared(a, b) || declared(b, a)
}

/// Two settings of one file that clap declares conflicting (e.g. `rate` and `concurrency`).
fn conflicts_within(cmd: &Command, kept: &[&FileSetting], path: &Path) -> Result<(), CliError> {
    for (i, s) in kept.iter().enumerate() {
        for other in &kept[..i] {
            if conflicting(cmd, &s.id, &other.id) {
                let (first, second) = if other.line <= s.line {
                    (other, s)
                } else {
                    (s, other)
                };
                return Err(CliError::BadInput(format!(
                    "scenario {}:{}: key `{}`: conflicts with `{}` (line {}); expected one of them",
                    path.display(),
                    second.line,
                    second.key,
                    first.key,
                    first.line
                )));
            }
        }
    }
    Ok(())
}
