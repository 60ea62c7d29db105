//! A `/proc` file kept open between ticks and read again from its start: the kernel generates
//! its text anew on every read, so the sampler pays for the read but not for a path lookup,
//! an open and a close each tick (on this project's VM those were about a sixth of the
//! sampler's own CPU time). Parsing stays procfs's (`FromRead`/`FromBufReadSI`).

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::path::Path;

/// An open `/proc` file.
pub struct ProcFile(File);

impl ProcFile {
    pub fn open(path: impl AsRef<Path>) -> Option<Self> {
        File::open(path).ok().map(Self)
    }

    /// Read the file from its start and parse it with `parse`; `None` when either fails (for
    /// a thread or process file: it has exited).
    pub fn read<T, E>(&mut self, parse: impl FnOnce(&mut File) -> Result<T, E>) -> Option<T> {
        self.0.seek(SeekFrom::Start(0)).ok()?;
        parse(&mut self.0).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use procfs::FromRead;

    #[test]
    fn a_kept_open_file_reads_fresh_values() {
        let mut f = ProcFile::open("/proc/thread-self/schedstat").unwrap();
        let read = |f: &mut ProcFile| {
            f.read(|r| procfs::process::Schedstat::from_read(r))
                .unwrap()
                .sum_exec_runtime
        };
        let a = read(&mut f);
        // Spin until this thread has used 30 ms of CPU (by its own clock).
        let t = cpu_time::ThreadTime::now();
        let mut x = 0u64;
        while t.elapsed() < std::time::Duration::from_millis(30) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let b = read(&mut f);
        assert!(
            b >= a + 25_000_000,
            "{a} → {b}: the second read is not fresh"
        );
    }
}
