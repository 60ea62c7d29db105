//! `--pin`: each instance's compute threads bound to their own cores.
//!
//! Instance `i`'s `j`-th compute thread runs on allowed CPU number `(i × threads + j) mod C`,
//! where the allowed CPUs are the process's affinity mask at load (so a `taskset` or cgroup
//! restriction is respected) in ascending order. Instances therefore get disjoint cores while
//! `instances × threads ≤ C`, and wrap around (sharing cores, as the record's note says) beyond
//! that. Pinning uses `sched_setaffinity` on the thread itself (Linux); candle's own
//! process-wide helpers, if any run, are not pinned.

use charter_record::PinningRecord;

/// The CPUs this process may run on, ascending (all online CPUs when the mask cannot be read).
pub fn online_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; sched_getaffinity writes at most
    // size_of::<cpu_set_t>() bytes into it.
    let allowed = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0 {
            Some(
                (0..libc::CPU_SETSIZE as usize)
                    .filter(|&c| libc::CPU_ISSET(c, &set))
                    .collect::<Vec<_>>(),
            )
        } else {
            None
        }
    };
    allowed.filter(|v| !v.is_empty()).unwrap_or_else(|| {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        (0..n).collect()
    })
}

/// Bind the calling thread to one CPU.
pub fn pin_current_thread(cpu: usize) -> std::io::Result<()> {
    // SAFETY: as in `online_cpus`; CPU_SET stays within the set for cpu < CPU_SETSIZE, which
    // the check guarantees.
    unsafe {
        if cpu >= libc::CPU_SETSIZE as usize {
            return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
        }
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
}

/// Where each instance's threads go.
#[derive(Debug, Clone)]
pub struct Plan {
    instances: usize,
    threads: usize,
    cpus: Vec<usize>,
}

impl Plan {
    pub fn new(instances: usize, threads: usize, cpus: Vec<usize>) -> Self {
        Self {
            instances: instances.max(1),
            threads: threads.max(1),
            cpus: if cpus.is_empty() { vec![0] } else { cpus },
        }
    }

    /// The CPU of each compute thread of `instance` (instances past the planned count wrap on).
    pub fn cores_of(&self, instance: usize) -> Vec<usize> {
        (0..self.threads)
            .map(|j| self.cpus[(instance * self.threads + j) % self.cpus.len()])
            .collect()
    }

    /// Whether some core serves two threads.
    pub fn shares_cores(&self) -> bool {
        self.instances * self.threads > self.cpus.len()
    }

    pub fn record(&self) -> PinningRecord {
        let cores = (0..self.instances)
            .map(|i| self.cores_of(i).into_iter().map(|c| c as u32).collect())
            .collect();
        let mut note = format!(
            "each instance's {} compute thread(s) bound to one core each (sched_setaffinity), instance i thread j on allowed CPU (i×{}+j) mod {}",
            self.threads,
            self.threads,
            self.cpus.len()
        );
        if self.shares_cores() {
            note.push_str(&format!(
                "; {} threads on {} cores: some cores are shared",
                self.instances * self.threads,
                self.cpus.len()
            ));
        }
        PinningRecord { cores, note }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_get_disjoint_cores_until_they_wrap() {
        let p = Plan::new(2, 2, vec![0, 1, 2, 3]);
        assert_eq!(p.cores_of(0), vec![0, 1]);
        assert_eq!(p.cores_of(1), vec![2, 3]);
        assert!(!p.shares_cores());
        let r = p.record();
        assert_eq!(r.cores, vec![vec![0, 1], vec![2, 3]]);
        let wrapped = Plan::new(3, 1, vec![4, 6]);
        assert_eq!(wrapped.cores_of(2), vec![4]);
        assert!(wrapped.shares_cores());
        assert!(
            wrapped.record().note.contains("shared"),
            "{:?}",
            wrapped.record()
        );
    }

    #[test]
    fn pinning_the_current_thread_takes_effect() {
        let cpu = *online_cpus().last().unwrap();
        std::thread::spawn(move || {
            pin_current_thread(cpu).unwrap();
            assert_eq!(online_cpus(), vec![cpu]);
        })
        .join()
        .unwrap();
        assert!(pin_current_thread(usize::MAX).is_err());
    }
}
