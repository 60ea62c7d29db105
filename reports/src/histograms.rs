//! Per-level latency histograms on disk: one file per latency metric and level,
//! `<run>/histograms/level-<index>/<metric>.hdr`, in HdrHistogram's V2 compressed format (the
//! `V2DeflateSerializer` encoding that the Java, C, Go and Python HdrHistogram libraries read),
//! at the recorded precision ([`HISTOGRAM_SIGFIGS`](crate::stats::HISTOGRAM_SIGFIGS), values in
//! nanoseconds). Histograms add exactly, so shards of one run merge without losing a sample.

use std::path::{Path, PathBuf};

use charter_record::Latency;

use crate::stats::LatencyHistogram;

/// The histograms directory inside a run directory.
pub const HISTOGRAMS_DIR: &str = "histograms";

/// One histogram per latency metric, in `Latency::ALL` order (empty where nothing was recorded).
pub type LevelHistograms = [LatencyHistogram; Latency::ALL.len()];

/// The file of `metric` at level `level` under `dir` (the histograms directory).
pub fn histogram_path(dir: &Path, level: u32, metric: Latency) -> PathBuf {
    dir.join(format!("level-{level}"))
        .join(format!("{}.hdr", metric.name()))
}

/// Write every non-empty histogram of `level` under `dir` (the histograms directory).
pub fn write_level(dir: &Path, level: u32, hists: &LevelHistograms) -> std::io::Result<()> {
    std::fs::create_dir_all(dir.join(format!("level-{level}")))?;
    for (metric, h) in Latency::ALL.into_iter().zip(hists) {
        if !h.is_empty() {
            std::fs::write(histogram_path(dir, level, metric), h.to_v2_deflate()?)?;
        }
    }
    Ok(())
}

/// Read the histograms of `level` under `dir`; a metric without a file is empty (nothing was
/// recorded for it). Errors name the file.
pub fn read_level(dir: &Path, level: u32) -> Result<LevelHistograms, String> {
    let mut hists = LevelHistograms::default();
    for (metric, h) in Latency::ALL.into_iter().zip(hists.iter_mut()) {
        let path = histogram_path(dir, level, metric);
        match std::fs::read(&path) {
            Ok(bytes) => {
                *h = LatencyHistogram::from_v2_deflate(&bytes)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("{}: cannot read: {e}", path.display())),
        }
    }
    Ok(hists)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_round_trips_and_adds_exactly() {
        let tmp = tempfile::tempdir().unwrap();
        let mut a = LevelHistograms::default();
        let mut b = LevelHistograms::default();
        let mut union = LatencyHistogram::new();
        for i in 0..500u32 {
            let v = f64::from(i) * 1.37e-4 + 1e-6;
            if i % 3 == 0 { &mut a[0] } else { &mut b[0] }.record_s(v);
            union.record_s(v);
        }
        b[5].record_s(42.0);
        write_level(tmp.path(), 3, &a).unwrap();
        let back = read_level(tmp.path(), 3).unwrap();
        assert_eq!(back[0].buckets(), a[0].buckets());
        assert!(back[5].is_empty() && !histogram_path(tmp.path(), 3, Latency::ALL[5]).exists());
        let mut sum = back;
        for (s, o) in sum.iter_mut().zip(&b) {
            s.add(o).unwrap();
        }
        assert_eq!(sum[0].buckets(), union.buckets());
        assert_eq!(sum[5].len(), 1);
        std::fs::write(histogram_path(tmp.path(), 3, Latency::Ttft), b"junk").unwrap();
        let e = read_level(tmp.path(), 3).unwrap_err();
        assert!(e.contains("ttft.hdr"), "{e}");
    }
}
