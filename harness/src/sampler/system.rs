//! The machine: the busy share of each core since the previous tick, from `/proc/stat` (busy =
//! all − idle − iowait, in clock ticks); system busy cores = their sum.

use charter_record::Sample;
use procfs::FromBufReadSI;

use super::procfile::ProcFile;
use super::Source;
use crate::telemetry::Unavailable;

/// Per-core busy shares of the whole machine.
pub struct SystemSource {
    /// The previous tick's (busy ticks, total ticks) per core.
    prev: Option<Vec<(u64, u64)>>,
    stat: ProcFile,
}

/// (busy ticks, total ticks) of each core now.
fn core_ticks(stat: &mut ProcFile) -> Option<Vec<(u64, u64)>> {
    let si = procfs::current_system_info();
    let k = stat.read(|f| procfs::KernelStats::from_buf_read(std::io::BufReader::new(f), si))?;
    Some(
        k.cpu_time
            .iter()
            .map(|c| {
                let idle = c.idle + c.iowait.unwrap_or(0);
                let total = c.user
                    + c.nice
                    + c.system
                    + idle
                    + c.irq.unwrap_or(0)
                    + c.softirq.unwrap_or(0)
                    + c.steal.unwrap_or(0);
                (total - idle, total)
            })
            .collect(),
    )
}

impl SystemSource {
    pub fn open() -> Result<Self, Unavailable> {
        let mut stat = ProcFile::open("/proc/stat")
            .ok_or_else(|| Unavailable::new("/proc/stat cannot be opened"))?;
        match core_ticks(&mut stat) {
            Some(t) if !t.is_empty() => Ok(Self { prev: None, stat }),
            _ => Err(Unavailable::new("/proc/stat has no per-core times")),
        }
    }
}

impl Source for SystemSource {
    fn name(&self) -> &'static str {
        "system"
    }

    fn method(&self) -> String {
        "per-core busy: /proc/stat (all − idle − iowait ticks)".into()
    }

    fn read(&mut self, tick: &mut Sample) {
        let now = core_ticks(&mut self.stat);
        if let (Some(prev), Some(cur)) = (&self.prev, &now) {
            // A core whose counters did not move (or went back) has no share this tick.
            let shares: Option<Vec<f64>> = cur
                .iter()
                .zip(prev)
                .map(|(&(b1, t1), &(b0, t0))| {
                    (t1 > t0).then(|| b1.saturating_sub(b0) as f64 / (t1 - t0) as f64)
                })
                .collect();
            if let Some(shares) = shares.filter(|s| s.len() == cur.len()) {
                tick.row.system_busy_cores = Some(shares.iter().sum());
                tick.core_busy = shares;
            }
        }
        self.prev = now;
    }
}
