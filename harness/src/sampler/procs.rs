//! CPU time and RSS of instances (threads or worker processes) and of watched processes.
//!
//! Methods:
//! - a thread's CPU time: `/proc/self/task/<tid>/schedstat`, first field (nanoseconds on a CPU);
//!   a thread that has exited keeps its last reading, so cumulative CPU time never goes back;
//! - a process's CPU time: `utime + stime` of `/proc/<pid>/stat` (clock ticks, usually 10 ms),
//!   covering all its threads; its RSS: `/proc/<pid>/statm` resident pages × page size.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use charter_backends::{current_tid, ComputeSite};
use charter_record::{Sample, Target, TargetSample};
use procfs::FromRead;

use super::procfile::ProcFile;
use super::Source;
pub use charter_record::Isolation;

#[derive(Default)]
struct Entry {
    index: u32,
    tids: Vec<i32>,
    pools: Vec<Arc<Mutex<Vec<i32>>>>,
    pid: Option<u32>,
}

/// Which threads or processes compute for each instance; filled by the runner as streams start.
#[derive(Default)]
pub struct Instances {
    entries: Mutex<Vec<Entry>>,
}

impl Instances {
    /// Record that instance `index` runs on the calling thread with `site` (a worker process
    /// keeps the number of the slot that first drove it).
    pub fn attach(&self, index: u32, site: &ComputeSite) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        // A worker process is its own instance, whichever runner slot drives it.
        if let ComputeSite::Process(pid) = site {
            if !entries.iter().any(|e| e.pid == Some(*pid)) {
                // The runner slot's number when it is free (closed loop: slot i keeps worker i).
                let index = if entries.iter().any(|e| e.index == index) {
                    entries.iter().map(|e| e.index + 1).max().unwrap_or(0)
                } else {
                    index
                };
                entries.push(Entry {
                    index,
                    pid: Some(*pid),
                    ..Default::default()
                });
            }
            return;
        }
        let pos = match entries.iter().position(|e| e.index == index) {
            Some(p) => p,
            None => {
                entries.push(Entry {
                    index,
                    ..Default::default()
                });
                entries.len() - 1
            }
        };
        let e = &mut entries[pos];
        match site {
            ComputeSite::Threads(pool) => {
                let tid = current_tid();
                if !e.tids.contains(&tid) {
                    e.tids.push(tid);
                }
                if !e.pools.iter().any(|p| Arc::ptr_eq(p, pool)) {
                    e.pools.push(Arc::clone(pool));
                }
            }
            ComputeSite::Process(pid) => e.pid = Some(*pid),
        }
    }

    fn snapshot(&self) -> Vec<(u32, Vec<i32>, Option<u32>)> {
        let Ok(entries) = self.entries.lock() else {
            return Vec::new();
        };
        entries
            .iter()
            .map(|e| {
                let mut tids = e.tids.clone();
                for p in &e.pools {
                    if let Ok(p) = p.lock() {
                        tids.extend(p.iter().copied());
                    }
                }
                tids.sort_unstable();
                tids.dedup();
                (e.index, tids, e.pid)
            })
            .collect()
    }
}

/// A process outside charter to sample (`--watch-pid`, `--watch-process`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watched {
    pub pid: u32,
    pub name: String,
}

/// Find processes whose command name (`/proc/<pid>/comm`) or executable file name equals `name`.
pub fn find_processes(name: &str) -> Vec<Watched> {
    let me = std::process::id();
    let Ok(all) = procfs::process::all_processes() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for p in all.flatten() {
        let pid = p.pid as u32;
        if pid == me {
            continue;
        }
        let comm = p.stat().map(|s| s.comm).unwrap_or_default();
        let exe_name = p
            .cmdline()
            .ok()
            .and_then(|c| c.into_iter().next())
            .and_then(|a| {
                std::path::Path::new(&a)
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
            })
            .unwrap_or_default();
        if comm == name || exe_name == name {
            out.push(Watched { pid, name: comm });
        }
    }
    out
}

/// Reads instances and watched processes each tick, remembering threads and processes that
/// have ended so cumulative counters stay monotonic.
pub struct ProcReader {
    instances: Arc<Instances>,
    watched: Vec<Watched>,
    ticks_per_s: f64,
    page: u64,
    thread_last: HashMap<i32, f64>,
    /// Each thread's schedstat, kept open (`None` once it could not be read: exited).
    thread_files: HashMap<i32, Option<ProcFile>>,
    /// Per process: its handle (while alive) and its last reading.
    procs: HashMap<u32, (Option<procfs::process::Process>, Reading)>,
}

/// A process's last reading.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Reading {
    cpu_s: Option<f64>,
    rss_bytes: Option<u64>,
    alive: bool,
}

impl ProcReader {
    pub fn new(instances: Arc<Instances>, watched: Vec<Watched>) -> Self {
        Self {
            instances,
            watched,
            ticks_per_s: procfs::ticks_per_second() as f64,
            page: procfs::page_size(),
            thread_last: HashMap::new(),
            thread_files: HashMap::new(),
            procs: HashMap::new(),
        }
    }

    pub fn watched(&self) -> &[Watched] {
        &self.watched
    }

    /// A thread's cumulative CPU seconds: now, else its last reading (it has exited), else
    /// `None` (never read).
    fn thread_cpu_s(&mut self, tid: i32) -> Option<f64> {
        let file = self
            .thread_files
            .entry(tid)
            .or_insert_with(|| ProcFile::open(format!("/proc/self/task/{tid}/schedstat")));
        let now = file
            .as_mut()
            .and_then(|f| f.read(|r| procfs::process::Schedstat::from_read(r)))
            .map(|s| s.sum_exec_runtime as f64 / 1e9);
        match now {
            Some(v) => {
                self.thread_last.insert(tid, v);
            }
            // Exited (or never readable): closed, its last reading kept.
            None => *file = None,
        }
        self.thread_last.get(&tid).copied()
    }

    fn process(&mut self, pid: u32) -> Reading {
        let (ticks, page) = (self.ticks_per_s, self.page);
        let (handle, last) = self.procs.entry(pid).or_insert_with(|| {
            (
                procfs::process::Process::new(pid as i32).ok(),
                Reading {
                    cpu_s: None,
                    rss_bytes: None,
                    alive: true,
                },
            )
        });
        let Some(p) = handle.as_ref() else {
            last.alive = false;
            return *last;
        };
        match (p.stat(), p.statm()) {
            (Ok(st), Ok(sm)) if st.state != 'Z' => {
                *last = Reading {
                    cpu_s: Some((st.utime + st.stime) as f64 / ticks),
                    rss_bytes: Some(sm.resident * page),
                    alive: true,
                };
            }
            _ => {
                last.alive = false;
                *handle = None;
            }
        }
        *last
    }

    /// Read every target now.
    pub fn read_targets(&mut self) -> Vec<TargetSample> {
        let mut out = Vec::new();
        for (index, tids, pid) in self.instances.snapshot() {
            let r = match pid {
                Some(pid) => self.process(pid),
                None => {
                    // The threads read so far (a thread not yet readable adds nothing known).
                    let read: Vec<f64> =
                        tids.iter().filter_map(|&t| self.thread_cpu_s(t)).collect();
                    Reading {
                        cpu_s: (!read.is_empty()).then(|| read.iter().sum()),
                        rss_bytes: None,
                        alive: true,
                    }
                }
            };
            out.push(sample(Target::Instance(index), pid, r));
        }
        for i in 0..self.watched.len() {
            let pid = self.watched[i].pid;
            let r = self.process(pid);
            out.push(sample(Target::Watched(i), Some(pid), r));
        }
        out
    }
}

fn sample(target: Target, pid: Option<u32>, r: Reading) -> TargetSample {
    TargetSample {
        target,
        pid,
        cpu_s: r.cpu_s,
        rss_bytes: r.rss_bytes,
        alive: r.alive,
    }
}

impl Source for ProcReader {
    fn name(&self) -> &'static str {
        "instances"
    }

    fn method(&self) -> String {
        "threads: /proc/self/task/<tid>/schedstat; processes: /proc/<pid>/stat utime+stime, /proc/<pid>/statm".into()
    }

    fn read(&mut self, tick: &mut Sample) {
        tick.targets = self.read_targets();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_cpu_time_follows_a_busy_thread() {
        let inst2 = Arc::new(Instances::default());
        let i2 = Arc::clone(&inst2);
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let h = std::thread::spawn(move || {
            i2.attach(7, &ComputeSite::Threads(Arc::default()));
            let t = cpu_time::ThreadTime::now();
            while t.elapsed() < std::time::Duration::from_millis(300) {}
            tx.send(t.elapsed().as_secs_f64()).unwrap();
            let _ = done_rx.recv();
        });
        let burned = rx.recv().unwrap();
        let mut r = ProcReader::new(inst2, Vec::new());
        let v = r.read_targets();
        done_tx.send(()).unwrap();
        h.join().unwrap();
        assert_eq!(v[0].target, Target::Instance(7));
        let cpu = v[0].cpu_s.unwrap();
        assert!(
            (cpu - burned).abs() < 0.05,
            "schedstat {cpu} s vs thread clock {burned} s"
        );
        // After the thread exits, the last reading is kept.
        let after = r.read_targets();
        assert!((after[0].cpu_s.unwrap() - cpu).abs() < 1e-9);
    }

    #[test]
    fn process_reading_of_a_child_and_after_it_exits() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .expect("sleep");
        let mut r = ProcReader::new(
            Arc::default(),
            vec![Watched {
                pid: child.id(),
                name: "sleep".into(),
            }],
        );
        let v = r.read_targets();
        assert_eq!(v[0].target, Target::Watched(0));
        assert!(v[0].alive);
        assert!(v[0].rss_bytes.unwrap() > 0);
        child.kill().unwrap();
        child.wait().unwrap();
        let v = r.read_targets();
        assert!(!v[0].alive);
        assert!(find_processes("no-such-process-charter").is_empty());
    }
}
