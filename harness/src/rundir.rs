//! The run directory: `run.json`, `requests.csv`, `samples.csv`.
//!
//! The directory and its files are created before traffic starts, so a bad `--out` fails early;
//! `run.json` is written at the start with `"complete": false` and rewritten atomically (temp
//! file + rename) when the run ends, and request rows are flushed as each request finishes, so
//! a crash or Ctrl-C keeps everything measured so far.

use std::fs::File;
use std::io::{BufWriter, Seek};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Context;
use charter_record::{RequestRow, RunRecord};

use crate::CliError;

pub const RUN_JSON: &str = "run.json";
pub const REQUESTS_CSV: &str = "requests.csv";
pub const SAMPLES_CSV: &str = "samples.csv";
/// Per-instance and watched-process CPU time and RSS, one row per target per sample.
pub const INSTANCES_CSV: &str = "instances.csv";
/// NVML GPU readings, one row per device per sample.
pub const GPU_CSV: &str = "gpu.csv";
/// Live context tokens and RSS at each sample (the RAM-per-token fit's input).
pub const CONTEXT_CSV: &str = "context.csv";
/// The server's own metrics, one row per sample per scrape (`--server-metrics`).
pub const SERVER_METRICS_CSV: &str = "server_metrics.csv";

/// A run directory being written.
pub struct RunDir {
    path: PathBuf,
    created: bool,
}

fn sanitize(label: &str) -> String {
    let s: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    s.trim_matches('_').chars().take(48).collect()
}

/// `runs/<UTC timestamp>-<label>` under the current directory.
pub fn default_path(label: &str) -> PathBuf {
    let ts = humantime::format_rfc3339_seconds(SystemTime::now())
        .to_string()
        .replace([':', '-'], "");
    PathBuf::from("runs").join(format!("{ts}-{}", sanitize(label)))
}

impl RunDir {
    /// Create (or adopt an empty) directory. Refuses a path that already holds a run.
    pub fn create(path: PathBuf) -> Result<Self, CliError> {
        let bad = |what: String| CliError::BadInput(format!("--out {}: {what}", path.display()));
        let created = match std::fs::metadata(&path) {
            Ok(m) if !m.is_dir() => return Err(bad("exists and is not a directory".into())),
            Ok(_) => {
                if path.join(RUN_JSON).exists() {
                    return Err(bad(
                        "already holds a run (run.json); choose another directory".into(),
                    ));
                }
                false
            }
            Err(_) => {
                std::fs::create_dir_all(&path)
                    .map_err(|e| bad(format!("cannot create directory: {e}")))?;
                true
            }
        };
        Ok(Self { path, created })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the per-level latency histograms go.
    pub fn histograms_dir(&self) -> PathBuf {
        self.path.join(charter_reports::histograms::HISTOGRAMS_DIR)
    }

    /// Remove what this run created (used when setup fails before any measurement).
    pub fn discard(self) {
        if self.created {
            let _ = std::fs::remove_dir_all(&self.path);
        } else {
            for f in [RUN_JSON, REQUESTS_CSV, SAMPLES_CSV] {
                let _ = std::fs::remove_file(self.path.join(f));
            }
        }
    }

    /// Write `run.json` atomically.
    pub fn write_record(&self, record: &RunRecord) -> anyhow::Result<()> {
        let tmp = self.path.join(".run.json.tmp");
        let json = serde_json::to_vec_pretty(record).context("serialising run record")?;
        std::fs::write(&tmp, json).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, self.path.join(RUN_JSON))
            .with_context(|| format!("writing {}", self.path.join(RUN_JSON).display()))?;
        Ok(())
    }

    /// Open `requests.csv` for streaming rows.
    pub fn requests_writer(&self) -> anyhow::Result<RequestsWriter> {
        let p = self.path.join(REQUESTS_CSV);
        let f = File::create(&p).with_context(|| format!("creating {}", p.display()))?;
        let end = f
            .try_clone()
            .with_context(|| format!("opening {}", p.display()))?;
        Ok(RequestsWriter {
            w: csv::Writer::from_writer(BufWriter::new(f)),
            end,
            whole: 0,
            rows: 0,
            path: p,
        })
    }

    /// Create `name` in the run directory (for the sampler's files).
    pub fn data_file(&self, name: &str) -> anyhow::Result<BufWriter<File>> {
        let p = self.path.join(name);
        let f = File::create(&p).with_context(|| format!("creating {}", p.display()))?;
        Ok(BufWriter::new(f))
    }
}

/// Streams request rows to `requests.csv`, flushing each one. A write that fails (disk full,
/// a file size limit) is cut back to the last whole row, so the file stays readable.
pub struct RequestsWriter {
    w: csv::Writer<BufWriter<File>>,
    /// The same open file (shared offset): where the last whole row ends, and the cut.
    end: File,
    /// Bytes of whole rows (and the header) written.
    whole: u64,
    rows: u64,
    path: PathBuf,
}

impl RequestsWriter {
    pub fn write(&mut self, row: &RequestRow) -> anyhow::Result<()> {
        let written = self
            .w
            .serialize(row)
            .map_err(anyhow::Error::from)
            .and_then(|()| Ok(self.w.flush()?))
            .and_then(|()| Ok(self.end.stream_position()?));
        match written {
            Ok(at) => {
                self.whole = at;
                self.rows += 1;
                Ok(())
            }
            Err(e) => {
                let _ = self.end.set_len(self.whole);
                Err(e.context(format!("writing {}", self.path.display())))
            }
        }
    }

    /// Whole request rows in the file.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    pub fn finish(&mut self) -> anyhow::Result<()> {
        self.w
            .flush()
            .with_context(|| format!("writing {}", self.path.display()))
    }
}
