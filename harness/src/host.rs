//! Provenance: this build and this host.

use std::collections::BTreeMap;

use charter_record::{HostInfo, ToolInfo};
use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};

/// The tool's name, version, git commit and the versions of the libraries doing the work.
pub fn tool_info() -> ToolInfo {
    let sha = env!("CHARTER_GIT_SHA");
    let mut libraries = BTreeMap::new();
    libraries.insert("candle-core".to_string(), "0.11.1".to_string());
    libraries.insert("candle-transformers".to_string(), "0.11.1".to_string());
    libraries.insert("hdrhistogram".to_string(), "7.6".to_string());
    ToolInfo {
        name: "charter".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        git_sha: (!sha.is_empty()).then(|| sha.to_string()),
        libraries,
    }
}

/// CPU model, cores, memory and OS of this machine.
pub fn host_info() -> HostInfo {
    let sys = System::new_with_specifics(
        RefreshKind::nothing()
            .with_cpu(CpuRefreshKind::nothing())
            .with_memory(MemoryRefreshKind::nothing().with_ram()),
    )
    .ok();
    // The machine's logical CPUs, whatever charter's affinity: system busy cores are summed
    // over all of them.
    let logical = sys
        .as_ref()
        .map(|s| s.cpus().len() as u32)
        .filter(|n| *n > 0)
        .unwrap_or_else(|| cores_available() as u32);
    HostInfo {
        hostname: System::host_name().ok(),
        os: System::long_os_version().ok(),
        kernel: System::kernel_version().ok(),
        cpu_model: sys
            .as_ref()
            .and_then(|s| s.cpus().first().map(|c| c.brand().trim().to_string()))
            .filter(|b| !b.is_empty()),
        logical_cores: logical,
        physical_cores: System::physical_core_count().ok().map(|n| n as u32),
        total_memory_bytes: sys.as_ref().map(|s| s.total_memory()).unwrap_or(0),
    }
}

/// Cores charter's process may use (its CPU affinity and cgroup quota; at least 1): what the
/// default thread split divides and the client-saturation check measures against.
pub fn cores_available() -> f64 {
    std::thread::available_parallelism()
        .map(|n| n.get() as f64)
        .unwrap_or(1.0)
}
