//! This process: CPU time and RSS ([`ProcessSource`]), and the heap in use ([`HeapSource`]).
//!
//! Methods: CPU time from `clock_gettime(CLOCK_PROCESS_CPUTIME_ID)` (ns resolution); RSS from
//! `/proc/self/statm`; heap in use from glibc's `mallinfo2()` (bytes in in-use chunks +
//! mmapped blocks: it falls when memory is freed, which RSS does not, because glibc keeps freed
//! pages; it sees every `malloc` of the process, ONNX Runtime's C++ allocations included).
//! `mallinfo2` is looked up at run time, so a glibc without it (< 2.33) or another libc makes
//! the heap source unavailable instead of stopping charter from starting.

use std::time::Instant;

use charter_record::Sample;
use procfs::FromRead;

use super::procfile::ProcFile;
use super::Source;
use crate::telemetry::Unavailable;

/// This process's CPU time and RSS.
pub struct ProcessSource {
    statm: Option<ProcFile>,
    page: u64,
    /// The previous tick's (time, CPU seconds), for CPU cores since then.
    prev: Option<(Instant, f64)>,
}

impl ProcessSource {
    pub fn open() -> Result<Self, Unavailable> {
        Ok(Self {
            statm: ProcFile::open("/proc/self/statm"),
            page: procfs::page_size(),
            prev: None,
        })
    }
}

impl Source for ProcessSource {
    fn name(&self) -> &'static str {
        "process"
    }

    fn method(&self) -> String {
        "CPU: clock_gettime(CLOCK_PROCESS_CPUTIME_ID); RSS: /proc/self/statm".into()
    }

    fn read(&mut self, tick: &mut Sample) {
        let now = Instant::now();
        let cpu_s = cpu_time::ProcessTime::try_now()
            .ok()
            .map(|p| p.as_duration().as_secs_f64());
        tick.row.process_cpu_s = cpu_s;
        if let (Some((t0, c0)), Some(c1)) = (self.prev, cpu_s) {
            let dt = now.duration_since(t0).as_secs_f64();
            tick.row.process_cpu_cores = (dt > 0.0).then(|| (c1 - c0) / dt);
        }
        self.prev = cpu_s.map(|c| (now, c));
        tick.row.rss_bytes = self
            .statm
            .as_mut()
            .and_then(|f| f.read(|r| procfs::process::StatM::from_read(r)))
            .map(|s| s.resident * self.page);
    }
}

/// `mallinfo2()`'s signature.
type Mallinfo2 = unsafe extern "C" fn() -> libc::mallinfo2;

/// The process's heap in use, from glibc's `mallinfo2`.
pub struct HeapSource {
    mallinfo2: Mallinfo2,
}

impl HeapSource {
    pub fn open() -> Result<Self, Unavailable> {
        // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name only looks a symbol up.
        let sym = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"mallinfo2".as_ptr()) };
        if sym.is_null() {
            return Err(Unavailable::new(
                "the C library has no mallinfo2 (glibc ≥ 2.33 is needed for the heap-in-use signal)",
            ));
        }
        // SAFETY: the symbol is glibc's `struct mallinfo2 mallinfo2(void)`.
        let mallinfo2 = unsafe { std::mem::transmute::<*mut libc::c_void, Mallinfo2>(sym) };
        Ok(Self { mallinfo2 })
    }

    /// Bytes in use now: in-use chunks of every arena plus mmapped blocks.
    pub fn in_use_bytes(&self) -> u64 {
        // SAFETY: mallinfo2 takes no arguments and only reads the allocator's state (under its
        // locks).
        let m = unsafe { (self.mallinfo2)() };
        (m.uordblks + m.hblkhd) as u64
    }
}

/// Bytes glibc holds for a vector's buffer (its usable size plus the chunk header), for
/// taking charter's own bookkeeping out of the heap signal.
pub fn allocation_bytes<T>(v: &[T], capacity: usize) -> u64 {
    if capacity == 0 || std::mem::size_of::<T>() == 0 {
        return 0;
    }
    // SAFETY: the pointer is the start of a live allocation made through the system allocator
    // (glibc malloc), which is what malloc_usable_size takes.
    let usable = unsafe { libc::malloc_usable_size(v.as_ptr() as *mut libc::c_void) };
    usable as u64 + 8
}

/// The heap bytes a sample keeps once stored (its inner buffers).
pub fn sample_bytes(s: &Sample) -> u64 {
    allocation_bytes(&s.core_busy, s.core_busy.capacity())
        + allocation_bytes(&s.targets, s.targets.capacity())
        + allocation_bytes(&s.gpus, s.gpus.capacity())
}

impl Source for HeapSource {
    fn name(&self) -> &'static str {
        "heap"
    }

    fn method(&self) -> String {
        "glibc mallinfo2(): uordblks (in-use chunks) + hblkhd (mmapped blocks), minus the sampler's own retained samples (malloc_usable_size), which grow with time and would otherwise read as memory per token".into()
    }

    fn read(&mut self, tick: &mut Sample) {
        tick.row.heap_bytes = Some(self.in_use_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heap_follows_an_allocation_and_its_release() {
        let heap = HeapSource::open().expect("glibc with mallinfo2 on the project's machines");
        let before = heap.in_use_bytes();
        let block = vec![1u8; 64 << 20];
        let during = heap.in_use_bytes();
        drop(std::hint::black_box(block));
        let after = heap.in_use_bytes();
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        assert!(
            during >= before + (60 << 20),
            "64 MiB allocated: {:.1} → {:.1} MiB",
            mib(before),
            mib(during)
        );
        assert!(
            after + (60 << 20) <= during,
            "64 MiB freed: {:.1} → {:.1} MiB",
            mib(during),
            mib(after)
        );
    }

    #[test]
    fn process_cpu_cores_need_a_previous_tick() {
        let mut p = ProcessSource::open().unwrap();
        let mut first = Sample::default();
        p.read(&mut first);
        assert!(first.row.process_cpu_s.is_some());
        assert_eq!(first.row.process_cpu_cores, None, "no previous tick");
        assert!(first.row.rss_bytes.unwrap() > 0);
        let t = Instant::now();
        while t.elapsed().as_millis() < 50 {}
        let mut second = Sample::default();
        p.read(&mut second);
        let cores = second.row.process_cpu_cores.unwrap();
        assert!(cores > 0.5, "a busy loop uses about one core: {cores}");
    }
}
