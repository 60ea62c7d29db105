//! CPU energy from Linux powercap RAPL counters, with a TDP-based estimate as the fallback.
//!
//! Method: [`RaplSource::open`] scans a powercap root (default [`DEFAULT_ROOT`],
//! `/sys/class/powercap`) for zones named `intel-rapl:N` (top level: a CPU package, or `psys`, the
//! platform) and `intel-rapl:N:M` (sub-zones of package N: core, uncore, dram). The kernel's Intel
//! and AMD RAPL drivers both use these names; `intel-rapl-mmio:*` zones (an MMIO view of the same
//! package counter) are skipped so nothing is counted twice. Each zone's label comes from its
//! `name` file; its counter is `energy_uj` (µJ, monotonic, wrapping at `max_energy_range_uj`).
//!
//! Each [`RaplSource::read`] reads every counter and adds the delta since the previous read to a
//! running total per zone; a counter lower than its previous value has wrapped, so the delta is
//! `value + max_energy_range_uj − previous`. Totals start at 0 at open, so a window's energy is
//! `total(end) − total(start)`. CPU package energy ([`RaplReading::package_total_j`]) is the sum of
//! the package zones only (sub-zones are parts of a package; psys covers more than the CPU).
//! Reads must come at least once per wrap period (~ 2^32 µJ ÷ power: minutes at hundreds of W);
//! the sampler's 10 Hz is far inside that.
//!
//! Since Linux 5.10 `energy_uj` is readable by root only (CVE-2020-8694): a package counter that
//! cannot be read makes the source [`Unavailable`], with the reason and how to allow it.
//! Then `charter_reports::energy::estimate_cpu_energy_j` gives the fallback of docs/cost-energy.md — declared TDP ×
//! measured CPU load × time — labelled `estimated`.

use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

use charter_record::Sample;

use super::{Energy, EnergyMethod, Unavailable};
use crate::sampler::Source;

/// The powercap root on Linux.
pub const DEFAULT_ROOT: &str = "/sys/class/powercap";

/// How CPU energy is read (for the run record).
pub const METHOD: &str =
    "RAPL via powercap: intel-rapl:N/energy_uj (µJ, wraps at max_energy_range_uj), \
running total per zone from consecutive deltas; CPU energy = sum of package zones";

/// How the estimate is made (for the run record).
pub const ESTIMATE_METHOD: &str =
    "estimated: declared TDP (W) × mean busy cores / logical cores × seconds (codecarbon's approach)";

/// Reads a small sysfs file (injectable so tests can simulate errors such as EACCES).
pub type ReadFn = fn(&Path) -> io::Result<String>;

fn read_file(p: &Path) -> io::Result<String> {
    std::fs::read_to_string(p)
}

/// What a zone measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ZoneKind {
    /// A CPU package (`intel-rapl:N` named `package-*`).
    Package,
    /// The platform (`psys`): more than the CPU, never summed with packages.
    Platform,
    /// A part of package `parent` (`intel-rapl:parent:M`: core, uncore, dram).
    Sub { parent: u32 },
}

/// Static facts about one zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ZoneInfo {
    /// Directory name, e.g. `intel-rapl:0` or `intel-rapl:0:1`.
    pub id: String,
    /// Contents of the zone's `name` file, e.g. `package-0`, `core`, `dram`, `psys`.
    pub name: String,
    pub kind: ZoneKind,
    pub max_energy_range_uj: u64,
}

struct Zone {
    info: ZoneInfo,
    energy_path: PathBuf,
    last_uj: u64,
    total_uj: u128,
    wraps: u64,
}

/// One zone in a reading.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ZoneReading {
    pub id: String,
    pub name: String,
    pub kind: ZoneKind,
    /// Energy since [`RaplSource::open`] (J); `None` when this read failed (the total resumes
    /// at the next successful read).
    pub total_j: Option<f64>,
    /// Counter wraps seen so far.
    pub wraps: u64,
}

/// One reading of every zone.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RaplReading {
    pub zones: Vec<ZoneReading>,
    /// Sum over package zones of energy since open (J); `None` if any package read failed.
    pub package_total_j: Option<f64>,
}

impl RaplReading {
    /// CPU package energy from `start` to this reading (method `counter`); `None` when either
    /// reading lacks the package total.
    pub fn package_energy_since(&self, start: &RaplReading) -> Option<Energy> {
        Some(Energy {
            joules: self.package_total_j? - start.package_total_j?,
            method: EnergyMethod::Counter,
        })
    }
}

/// An open set of RAPL zones.
pub struct RaplSource {
    root: PathBuf,
    zones: Vec<Zone>,
    read: ReadFn,
    /// Sub-zones left out at open, with the reason.
    skipped: Vec<(String, String)>,
    /// First read failure per zone id.
    failures: Vec<(String, String)>,
}

impl std::fmt::Debug for RaplSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaplSource")
            .field("root", &self.root)
            .field("zones", &self.zones())
            .field("skipped", &self.skipped)
            .finish_non_exhaustive()
    }
}

/// `intel-rapl:N` → (N, None), `intel-rapl:N:M` → (N, Some(M)).
fn parse_zone_id(name: &str) -> Option<(u32, Option<u32>)> {
    let rest = name.strip_prefix("intel-rapl:")?;
    let mut parts = rest.split(':');
    let n = parts.next()?.parse().ok()?;
    let m = match parts.next() {
        Some(m) => Some(m.parse().ok()?),
        None => None,
    };
    if parts.next().is_some() {
        return None;
    }
    Some((n, m))
}

fn read_u64(read: ReadFn, p: &Path) -> io::Result<u64> {
    let s = read(p)?;
    s.trim().parse().map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{:?} is not a counter: {e}", s.trim()),
        )
    })
}

fn io_reason(p: &Path, e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::PermissionDenied {
        format!(
            "permission denied reading {} (RAPL energy counters are root-only since Linux 5.10, \
             CVE-2020-8694); run as root, or allow reads with \
             `sudo chmod a+r /sys/class/powercap/intel-rapl:*/energy_uj` (until reboot) or a udev rule",
            p.display()
        )
    } else {
        format!("cannot read {}: {e}", p.display())
    }
}

impl RaplSource {
    /// Open the RAPL zones under `root` (normally [`DEFAULT_ROOT`]).
    pub fn open(root: &Path) -> Result<RaplSource, Unavailable> {
        Self::open_with(root, read_file)
    }

    /// As [`RaplSource::open`], reading files with `read` (for tests).
    pub fn open_with(root: &Path, read: ReadFn) -> Result<RaplSource, Unavailable> {
        let none = || {
            Unavailable::new(format!(
                "no RAPL domains under {} (not Linux, no RAPL driver, or a VM without it)",
                root.display()
            ))
        };
        let entries = std::fs::read_dir(root).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => none(),
            _ => Unavailable::new(io_reason(root, &e)),
        })?;
        let mut found: Vec<((u32, Option<u32>), String, PathBuf)> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                parse_zone_id(&name).map(|id| (id, name, e.path()))
            })
            .collect();
        found.sort_by_key(|(id, _, _)| *id);
        if found.is_empty() {
            return Err(none());
        }
        let mut zones = Vec::new();
        let mut skipped = Vec::new();
        for ((n, m), id, dir) in found {
            let opened = (|| -> Result<Zone, String> {
                let name_path = dir.join("name");
                let name = read(&name_path)
                    .map_err(|e| io_reason(&name_path, &e))?
                    .trim()
                    .to_string();
                let kind = match m {
                    Some(_) => ZoneKind::Sub { parent: n },
                    None if name.starts_with("package") => ZoneKind::Package,
                    None => ZoneKind::Platform,
                };
                let range_path = dir.join("max_energy_range_uj");
                let max_energy_range_uj =
                    read_u64(read, &range_path).map_err(|e| io_reason(&range_path, &e))?;
                let energy_path = dir.join("energy_uj");
                let last_uj =
                    read_u64(read, &energy_path).map_err(|e| io_reason(&energy_path, &e))?;
                Ok(Zone {
                    info: ZoneInfo {
                        id: id.clone(),
                        name,
                        kind,
                        max_energy_range_uj,
                    },
                    energy_path,
                    last_uj,
                    total_uj: 0,
                    wraps: 0,
                })
            })();
            match opened {
                Ok(z) => zones.push(z),
                // A package (or the zone that would tell us it is one) is required: summing the
                // readable packages only would under-count.
                Err(reason) if m.is_none() => return Err(Unavailable::new(reason)),
                Err(reason) => skipped.push((id, reason)),
            }
        }
        if !zones.iter().any(|z| z.info.kind == ZoneKind::Package) {
            return Err(Unavailable::new(format!(
                "no RAPL package domain under {} (only: {})",
                root.display(),
                zones
                    .iter()
                    .map(|z| format!("{} ({})", z.info.id, z.info.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(RaplSource {
            root: root.to_path_buf(),
            zones,
            read,
            skipped,
            failures: Vec::new(),
        })
    }

    /// The zones being read, sorted by (package, sub-zone) number.
    pub fn zones(&self) -> Vec<ZoneInfo> {
        self.zones.iter().map(|z| z.info.clone()).collect()
    }

    /// Sub-zones left out at open (id, reason).
    pub fn skipped(&self) -> &[(String, String)] {
        &self.skipped
    }

    /// First read failure per zone (id, reason), after open.
    pub fn failures(&self) -> &[(String, String)] {
        &self.failures
    }

    /// Read every counter and return the running totals.
    pub fn read(&mut self) -> RaplReading {
        let mut zones = Vec::with_capacity(self.zones.len());
        let mut package_uj: Option<u128> = Some(0);
        for z in &mut self.zones {
            let ok = match read_u64(self.read, &z.energy_path) {
                Ok(now) => {
                    let delta = if now >= z.last_uj {
                        (now - z.last_uj) as u128
                    } else {
                        z.wraps += 1;
                        now as u128 + z.info.max_energy_range_uj as u128 - z.last_uj as u128
                    };
                    z.total_uj += delta;
                    z.last_uj = now;
                    true
                }
                Err(e) => {
                    if !self.failures.iter().any(|(id, _)| *id == z.info.id) {
                        self.failures
                            .push((z.info.id.clone(), io_reason(&z.energy_path, &e)));
                    }
                    false
                }
            };
            if z.info.kind == ZoneKind::Package {
                package_uj = package_uj.filter(|_| ok).map(|p| p + z.total_uj);
            }
            zones.push(ZoneReading {
                id: z.info.id.clone(),
                name: z.info.name.clone(),
                kind: z.info.kind,
                total_j: ok.then(|| z.total_uj as f64 / 1e6),
                wraps: z.wraps,
            });
        }
        RaplReading {
            zones,
            package_total_j: package_uj.map(|uj| uj as f64 / 1e6),
        }
    }
}

impl Source for RaplSource {
    fn name(&self) -> &'static str {
        "rapl"
    }

    fn method(&self) -> String {
        let zones: Vec<String> = self
            .zones()
            .iter()
            .map(|z| format!("{} ({})", z.id, z.name))
            .collect();
        format!(
            "RAPL powercap energy_uj of package zones {} (µJ counters, wraps at max_energy_range_uj handled)",
            zones.join(", ")
        )
    }

    fn read(&mut self, tick: &mut Sample) {
        tick.row.cpu_energy_j = RaplSource::read(self).package_total_j;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn zone(root: &Path, id: &str, name: &str, energy: u64, max: u64) -> PathBuf {
        let d = root.join(id);
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("name"), format!("{name}\n")).unwrap();
        fs::write(d.join("energy_uj"), format!("{energy}\n")).unwrap();
        fs::write(d.join("max_energy_range_uj"), format!("{max}\n")).unwrap();
        d
    }

    fn set(d: &Path, energy: u64) {
        fs::write(d.join("energy_uj"), format!("{energy}\n")).unwrap();
    }

    fn total(r: &RaplReading, id: &str) -> Option<f64> {
        r.zones.iter().find(|z| z.id == id).unwrap().total_j
    }

    #[test]
    fn two_packages_and_subzones_accumulate() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        fs::create_dir_all(root.join("intel-rapl")).unwrap(); // the control type: not a zone
        let p0 = zone(
            root,
            "intel-rapl:0",
            "package-0",
            1_000_000,
            262_143_328_850,
        );
        let p1 = zone(
            root,
            "intel-rapl:1",
            "package-1",
            5_000_000,
            262_143_328_850,
        );
        let c0 = zone(root, "intel-rapl:0:0", "core", 10, 262_143_328_850);
        zone(root, "intel-rapl-mmio:0", "package-0", 7, 262_143_328_850);
        let mut src = RaplSource::open(root).unwrap();
        let ids: Vec<_> = src.zones().into_iter().map(|z| (z.id, z.kind)).collect();
        assert_eq!(
            ids,
            vec![
                ("intel-rapl:0".to_string(), ZoneKind::Package),
                ("intel-rapl:0:0".to_string(), ZoneKind::Sub { parent: 0 }),
                ("intel-rapl:1".to_string(), ZoneKind::Package),
            ]
        );
        let r0 = src.read();
        assert_eq!(r0.package_total_j, Some(0.0));
        set(&p0, 3_500_000); // +2.5 J
        set(&p1, 6_000_000); // +1 J
        set(&c0, 1_000_010); // +1 J
        let r1 = src.read();
        assert_eq!(total(&r1, "intel-rapl:0"), Some(2.5));
        assert_eq!(total(&r1, "intel-rapl:1"), Some(1.0));
        assert_eq!(total(&r1, "intel-rapl:0:0"), Some(1.0));
        // Sub-zones are not added to the package sum.
        assert_eq!(r1.package_total_j, Some(3.5));
        set(&p0, 4_500_000);
        let r2 = src.read();
        let e = r2.package_energy_since(&r1).unwrap();
        assert_eq!((e.joules, e.method), (1.0, EnergyMethod::Counter));
    }

    #[test]
    fn wrap_adds_the_range() {
        let tmp = tempfile::tempdir().unwrap();
        let max = 1_000_000_000;
        let p0 = zone(tmp.path(), "intel-rapl:0", "package-0", max - 300_000, max);
        let mut src = RaplSource::open(tmp.path()).unwrap();
        set(&p0, max - 100_000); // +0.2 J
        let a = src.read();
        set(&p0, 400_000); // wrapped: +0.1 J to the top, +0.4 J after
        let b = src.read();
        assert_eq!(b.zones[0].wraps, 1);
        let delta = b.package_total_j.unwrap() - a.package_total_j.unwrap();
        assert!((delta - 0.5).abs() < 1e-9, "{delta}");
        assert!((b.package_total_j.unwrap() - 0.7).abs() < 1e-9);
    }

    #[test]
    fn missing_tree_or_no_zones_is_unavailable() {
        let tmp = tempfile::tempdir().unwrap();
        let e = RaplSource::open(&tmp.path().join("nope")).unwrap_err();
        assert!(e.reason.starts_with("no RAPL domains under "), "{e}");
        let e = RaplSource::open(tmp.path()).unwrap_err();
        assert!(e.reason.contains("no RAPL domains"), "{e}");
        // psys alone is not CPU package energy.
        zone(tmp.path(), "intel-rapl:1", "psys", 1, 10);
        let e = RaplSource::open(tmp.path()).unwrap_err();
        assert!(e.reason.contains("no RAPL package domain"), "{e}");
    }

    fn deny_energy(p: &Path) -> io::Result<String> {
        if p.ends_with("energy_uj") {
            Err(io::Error::from(io::ErrorKind::PermissionDenied))
        } else {
            fs::read_to_string(p)
        }
    }

    #[test]
    fn eacces_is_unavailable_with_permission_reason() {
        let tmp = tempfile::tempdir().unwrap();
        zone(tmp.path(), "intel-rapl:0", "package-0", 1, 10);
        let e = RaplSource::open_with(tmp.path(), deny_energy).unwrap_err();
        assert!(e.reason.contains("permission denied"), "{e}");
        assert!(e.reason.contains("intel-rapl:0/energy_uj"), "{e}");
        assert!(e.reason.contains("chmod"), "{e}");
    }

    #[test]
    fn chmod_000_is_unavailable_unless_privileged() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let d = zone(tmp.path(), "intel-rapl:0", "package-0", 1, 10);
        let f = d.join("energy_uj");
        fs::set_permissions(&f, fs::Permissions::from_mode(0o000)).unwrap();
        // Root (or CAP_DAC_OVERRIDE, as in CI containers) reads a mode-000 file: then the
        // counter must be read as any other; otherwise it is unavailable with the reason.
        // Either way something is asserted (eacces_is_unavailable_with_permission_reason
        // covers the refusal on every host).
        if fs::read_to_string(&f).is_ok() {
            let src = RaplSource::open(tmp.path()).expect("a privileged reader opens the zone");
            assert!(src.skipped().is_empty(), "{src:?}");
        } else {
            let e = RaplSource::open(tmp.path()).unwrap_err();
            assert!(e.reason.contains("permission denied"), "{e}");
        }
    }

    #[test]
    fn unreadable_subzone_is_skipped_and_read_failure_is_none() {
        let tmp = tempfile::tempdir().unwrap();
        let p0 = zone(tmp.path(), "intel-rapl:0", "package-0", 1, 1_000_000);
        let d = tmp.path().join("intel-rapl:0:2");
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("name"), "dram\n").unwrap(); // no counter files
        let mut src = RaplSource::open(tmp.path()).unwrap();
        assert_eq!(src.zones().len(), 1);
        assert_eq!(src.skipped()[0].0, "intel-rapl:0:2");
        fs::write(p0.join("energy_uj"), "garbage").unwrap();
        let r = src.read();
        assert_eq!(r.package_total_j, None);
        assert_eq!(r.package_energy_since(&r), None);
        assert_eq!(r.zones[0].total_j, None);
        assert!(src.failures()[0].1.contains("not a counter"));
        set(&p0, 1_000_001);
        assert_eq!(src.read().package_total_j, Some(1.0));
    }
}
