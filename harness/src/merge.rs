//! `charter merge SHARD_DIR… --out DIR`: the shards of one sharded run combined into one run
//! directory that `report`, `compare`, `gate` and `plan` read like any other.
//!
//! Refused (exit 2, naming the directories): a directory that is not a shard, shards of
//! different settings (config hash) or shard counts, a duplicate or missing shard index, or a
//! different number of levels. Per level: the shards' HDR histograms are added (exact at the
//! recorded precision; percentiles are never averaged), counts and throughput are recomputed
//! from the union of the requests over the union window (shard times put on one clock through
//! each shard's wall-clock epoch), resources are summed and kept per shard, and the level is
//! client-bound or contended if any shard was. `requests.csv` is the shards' rows with a
//! leading `shard` column.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use charter_reports::charter::{self, LoadedRun};
use charter_reports::export::{Export, Format, ProfileDoc};
use charter_reports::histograms::{self, LevelHistograms};
use charter_reports::merge::{
    clock_warnings, merge_record, sum_resources, union_client_bound, union_contention,
};
use charter_reports::sessions::SessionAggregator;
use charter_reports::{
    Aggregator, LevelRecord, LoadProfile, MergedShard, MergedShardLevel, RequestRow, RunRecord,
    RunStatus, ShardRecord,
};

use crate::rundir::{self, RunDir};
use crate::CliError;

/// One shard read back: its directory, record, shard identity and request rows.
struct ShardRun {
    dir: PathBuf,
    run: LoadedRun,
    shard: ShardRecord,
}

/// `charter merge SHARD_DIR... --out DIR`.
pub fn merge(dirs: &[PathBuf], out: &Path) -> Result<i32, CliError> {
    let shards = read_shards(dirs)?;
    let dir = RunDir::create(out.to_path_buf())?;
    match write_merged(&shards, &dir) {
        Ok(record) => {
            let merge = record.merge.as_ref().expect("a merged record");
            for w in clock_warnings(merge) {
                eprintln!("charter: warning: {w}");
            }
            if let Some(s) = merge.start_spread_s {
                eprintln!(
                    "charter: {} shards merged; first-level starts spread over {:.1} ms (clock offset bound {})",
                    shards.len(),
                    s * 1e3,
                    merge
                        .clock_offset_bound_s
                        .map_or("unknown".into(), |b| format!("{:.1} ms", b * 1e3))
                );
            }
            let shown = dir.path().display().to_string();
            let doc = ProfileDoc {
                record: &record,
                run_dir: &shown,
            };
            print!("{}", doc.export(Format::Console)?);
            Ok(crate::EXIT_OK)
        }
        Err(e) => {
            if matches!(e, CliError::BadInput(_)) {
                dir.discard();
            }
            Err(e)
        }
    }
}

/// Read every shard and check that they are the complete set of one run.
fn read_shards(dirs: &[PathBuf]) -> Result<Vec<ShardRun>, CliError> {
    let mut shards = Vec::new();
    for d in dirs {
        let run = charter::load_run(d).map_err(|e| CliError::BadInput(e.to_string()))?;
        let shard = run.record.shard.clone().ok_or_else(|| {
            CliError::BadInput(format!(
                "{}: not a shard (run.json has no shard; run charter profile with --shard K/N)",
                d.display()
            ))
        })?;
        shards.push(ShardRun {
            dir: d.clone(),
            run,
            shard,
        });
    }
    let named = |s: &ShardRun| format!("{} (shard {})", s.dir.display(), s.shard.index);
    let first = &shards[0];
    let hashes: BTreeMap<&str, Vec<String>> = shards.iter().fold(BTreeMap::new(), |mut m, s| {
        m.entry(s.shard.config_hash.as_str())
            .or_insert_with(Vec::new)
            .push(named(s));
        m
    });
    if hashes.len() > 1 {
        let groups: Vec<String> = hashes
            .iter()
            .map(|(h, names)| format!("{} has config hash {}", names.join(", "), &h[..12]))
            .collect();
        return Err(CliError::BadInput(format!(
            "shards of different settings: {} (shards of one run share every setting but the shard index and start time)",
            groups.join("; ")
        )));
    }
    if let Some(other) = shards.iter().find(|s| s.shard.count != first.shard.count) {
        return Err(CliError::BadInput(format!(
            "shard counts differ: {} says {} shards, {} says {}",
            named(first),
            first.shard.count,
            named(other),
            other.shard.count
        )));
    }
    let mut by_index: BTreeMap<u32, Vec<&ShardRun>> = BTreeMap::new();
    for s in &shards {
        by_index.entry(s.shard.index).or_default().push(s);
    }
    if let Some((k, dup)) = by_index.iter().find(|(_, v)| v.len() > 1) {
        let dirs: Vec<String> = dup.iter().map(|s| s.dir.display().to_string()).collect();
        return Err(CliError::BadInput(format!(
            "duplicate shard {k}: {}",
            dirs.join(" and ")
        )));
    }
    let missing: Vec<String> = (0..first.shard.count)
        .filter(|k| !by_index.contains_key(k))
        .map(|k| k.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(CliError::BadInput(format!(
            "missing shard{} {} of {} (given: {})",
            if missing.len() > 1 { "s" } else { "" },
            missing.join(", "),
            first.shard.count,
            by_index
                .keys()
                .map(|k| k.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    if let Some(other) = shards
        .iter()
        .find(|s| s.run.record.levels.len() != first.run.record.levels.len())
    {
        return Err(CliError::BadInput(format!(
            "{} has {} level(s), {} has {} (an interrupted shard? merge the shards of a finished run)",
            named(first),
            first.run.record.levels.len(),
            named(other),
            other.run.record.levels.len()
        )));
    }
    shards.sort_by_key(|s| s.shard.index);
    Ok(shards)
}

/// A shard's row on the merged clock.
fn shifted(row: &RequestRow, offset_s: f64) -> RequestRow {
    RequestRow {
        intended_start_s: row.intended_start_s + offset_s,
        start_s: row.start_s + offset_s,
        end_s: row.end_s + offset_s,
        ..row.clone()
    }
}

fn write_merged(shards: &[ShardRun], dir: &RunDir) -> Result<RunRecord, CliError> {
    let epoch = shards
        .iter()
        .map(|s| s.shard.epoch_unix_s)
        .fold(f64::INFINITY, f64::min);
    let offsets: Vec<f64> = shards
        .iter()
        .map(|s| s.shard.epoch_unix_s - epoch)
        .collect();
    let base = &shards[0].run.record;
    let mut merged_shards: Vec<MergedShard> = shards
        .iter()
        .zip(&offsets)
        .map(|(s, &offset)| MergedShard {
            index: s.shard.index,
            dir: s.dir.display().to_string(),
            hostname: s.run.record.host.hostname.clone(),
            time_offset_s: offset,
            start_late_s: s.shard.start_late_s,
            clock: s.shard.clock.clone(),
            levels: Vec::new(),
        })
        .collect();
    let mut levels = Vec::new();
    for (i, level) in base.levels.iter().enumerate() {
        let parts: Vec<&LevelRecord> = shards.iter().map(|s| &s.run.record.levels[i]).collect();
        let mut agg = Aggregator::with_slo(base.workload.slo.clone());
        let mut sessions = SessionAggregator::default();
        for (s, &offset) in shards.iter().zip(&offsets) {
            let own = s.run.record.levels[i].request_ids;
            for row in s
                .run
                .requests
                .iter()
                .filter(|r| own.is_some_and(|ids| ids.contains(r.id)))
            {
                let row = shifted(row, offset);
                agg.add(&row, &[]);
                sessions.add(&row);
            }
        }
        let hists = added_histograms(shards, level.index)?;
        histograms::write_level(&dir.histograms_dir(), level.index, &hists)
            .with_context(|| format!("writing {}", dir.histograms_dir().display()))?;
        agg.set_histograms(hists);
        let summary = agg.summary();
        let completed_to_offered = match level.load {
            LoadProfile::OpenLoop { .. } => agg.keep_up_ratio(),
            LoadProfile::ClosedLoop { .. } => None,
        };
        let excluded = level
            .window
            .as_ref()
            .map_or(String::new(), |w| w.excluded.clone());
        for ((m, p), &offset) in merged_shards.iter_mut().zip(&parts).zip(&offsets) {
            m.levels.push(MergedShardLevel {
                index: p.index,
                schedule_start_s: p.schedule_start_s.map(|t| t + offset),
                requests_completed: p.summary.requests_completed,
                requests_failed: p.summary.requests_failed,
                resources: p.resources.clone(),
                client_bound: p.client_bound.clone(),
            });
        }
        levels.push(LevelRecord {
            index: level.index,
            trial: level.trial,
            role: level.role,
            load: level.load.clone(),
            window: agg.window(&excluded),
            sustainable: charter_reports::resources::flags::sustainable(
                completed_to_offered,
                &summary,
            ),
            summary,
            resources: sum_resources(&parts.iter().map(|p| &p.resources).collect::<Vec<_>>()),
            completed_to_offered,
            client_bound: union_client_bound(
                &shards
                    .iter()
                    .zip(&parts)
                    .map(|(s, p)| (s.shard.index, &p.client_bound))
                    .collect::<Vec<_>>(),
            ),
            contention: union_contention(&parts.iter().map(|p| &p.contention).collect::<Vec<_>>()),
            request_ids: level.request_ids,
            schedule_start_s: None,
            sessions: parts
                .iter()
                .find_map(|p| p.sessions.as_ref())
                .and_then(|s| sessions.summary(s.history)),
            // The shards scraped the same server, each over its own window: the first shard's
            // view stands for the level (its counters saw every shard's traffic).
            server_metrics: parts
                .iter()
                .map(|p| p.server_metrics.clone())
                .find(|m| !m.is_empty())
                .unwrap_or_default(),
        });
    }
    let first_starts: Vec<f64> = shards
        .iter()
        .filter_map(|s| {
            let l = s.run.record.levels.first()?;
            let t = l
                .schedule_start_s
                .or(l.window.as_ref().map(|w| w.start_s))?;
            Some(s.shard.epoch_unix_s + t)
        })
        .collect();
    for m in &mut merged_shards {
        m.levels.sort_by_key(|l| l.index);
    }
    let all_finished = shards
        .iter()
        .all(|s| s.run.record.status == RunStatus::Finished);
    let record = RunRecord {
        complete: shards.iter().all(|s| s.run.record.complete),
        status: if all_finished {
            RunStatus::Finished
        } else {
            RunStatus::Interrupted
        },
        levels,
        search: None,
        files: charter_reports::RunFiles {
            requests_csv: rundir::REQUESTS_CSV.into(),
            samples_csv: rundir::SAMPLES_CSV.into(),
            instances_csv: None,
            gpu_csv: None,
            context_csv: None,
            histograms_dir: Some(histograms::HISTOGRAMS_DIR.into()),
            server_metrics_csv: None,
        },
        shard: None,
        merge: Some(merge_record(
            shards[0].shard.config_hash.clone(),
            merged_shards,
            &first_starts,
        )),
        ..base.clone()
    };
    write_requests(shards, &offsets, &dir.path().join(rundir::REQUESTS_CSV))
        .map_err(CliError::Failure)?;
    dir.write_record(&record)?;
    Ok(record)
}

/// The sum of every shard's histograms of `level`.
fn added_histograms(shards: &[ShardRun], level: u32) -> Result<LevelHistograms, CliError> {
    let mut sum = LevelHistograms::default();
    for s in shards {
        let hist_dir = s
            .run
            .record
            .files
            .histograms_dir
            .as_deref()
            .ok_or_else(|| {
                CliError::BadInput(format!(
                "{}: run.json names no histograms directory (a shard written by an older charter?)",
                s.dir.display()
            ))
            })?;
        let part =
            histograms::read_level(&s.dir.join(hist_dir), level).map_err(CliError::BadInput)?;
        for (total, h) in sum.iter_mut().zip(&part) {
            total.add(h).map_err(|e| {
                CliError::BadInput(format!("{}: level {level}: {e}", s.dir.display()))
            })?;
        }
    }
    Ok(sum)
}

/// The shards' `requests.csv` rows, in shard order, on the merged clock, with a leading `shard`
/// column.
fn write_requests(shards: &[ShardRun], offsets: &[f64], path: &Path) -> anyhow::Result<()> {
    // RequestRow's own header, as a requests.csv of one row would start.
    let mut one_row = csv::Writer::from_writer(Vec::new());
    one_row.serialize(RequestRow::default())?;
    let one_row = one_row.into_inner()?;
    let mut columns = vec!["shard".to_string()];
    columns.extend(
        csv::Reader::from_reader(one_row.as_slice())
            .headers()?
            .iter()
            .map(str::to_string),
    );
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(std::io::BufWriter::new(file));
    w.write_record(&columns)?;
    for (s, &offset) in shards.iter().zip(offsets) {
        for row in &s.run.requests {
            w.serialize((s.shard.index, shifted(row, offset)))?;
        }
    }
    w.flush()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
