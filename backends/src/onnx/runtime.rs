//! Finding, checking and loading the ONNX Runtime shared library.
//!
//! `ort` is built with `load-dynamic`: nothing is linked or downloaded at build time, and the
//! library is opened when a model is first loaded. Where it comes from, in order:
//!
//! 1. `--ort-lib PATH`;
//! 2. the `ORT_DYLIB_PATH` environment variable (ort's own convention);
//! 3. the project cache that `scripts/fetch-onnxruntime.sh` fills:
//!    `$CHARTER_CACHE/onnxruntime/libonnxruntime.so.1.31.1` when `CHARTER_CACHE` is set,
//!    otherwise `.cache/onnxruntime/libonnxruntime.so.1.31.1` under the current directory or
//!    under any ancestor of the running executable (so `target/release/charter` finds the
//!    checkout it was built in).
//!
//! Before `ort` sees a library, charter opens it itself and asks it for its version: a file that
//! is not ONNX Runtime, or an ONNX Runtime other than 1.31.x, is a typed [`LoadError`], never a
//! panic inside `ort`. The library is loaded once per process.

use std::ffi::{c_char, c_int, CStr};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ort::environment::Environment;

use crate::LoadError;

/// The ONNX Runtime minor version charter is built against (`ort` 2.0.0-rc.15 targets 1.31).
pub const ORT_MINOR: u32 = 31;
/// The library file the fetch script caches.
pub const CACHED_LIB_NAME: &str = "libonnxruntime.so.1.31.1";
/// What to run when the library is missing.
pub const FETCH_HINT: &str = "run scripts/fetch-onnxruntime.sh (it caches ONNX Runtime 1.31.1 from PyPI under .cache/onnxruntime/), or pass --ort-lib PATH or set ORT_DYLIB_PATH";

/// Where a library was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LibSource {
    Flag,
    EnvVar,
    Cache,
}

impl LibSource {
    pub fn as_str(&self) -> &'static str {
        match self {
            LibSource::Flag => "--ort-lib",
            LibSource::EnvVar => "ORT_DYLIB_PATH",
            LibSource::Cache => "project cache",
        }
    }
}

/// A located ONNX Runtime library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocatedLib {
    pub path: PathBuf,
    pub source: LibSource,
}

/// Project-cache locations searched, in order.
pub fn cache_candidates() -> Vec<PathBuf> {
    if let Some(dir) = std::env::var_os("CHARTER_CACHE").filter(|v| !v.is_empty()) {
        return vec![PathBuf::from(dir).join("onnxruntime").join(CACHED_LIB_NAME)];
    }
    let rel = Path::new(".cache")
        .join("onnxruntime")
        .join(CACHED_LIB_NAME);
    let mut out = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        out.push(cwd.join(&rel));
    }
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1) {
            let p = dir.join(&rel);
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
    out
}

/// Find the library: `flag`, then `ORT_DYLIB_PATH`, then the project cache.
pub fn locate(flag: Option<&Path>) -> Result<LocatedLib, LoadError> {
    if let Some(p) = flag {
        if !p.is_file() {
            return Err(LoadError::OrtLibrary {
                path: p.to_path_buf(),
                what: "--ort-lib: no such file".into(),
            });
        }
        return Ok(LocatedLib {
            path: p.to_path_buf(),
            source: LibSource::Flag,
        });
    }
    if let Some(v) = std::env::var_os("ORT_DYLIB_PATH").filter(|v| !v.is_empty()) {
        let p = PathBuf::from(v);
        if !p.is_file() {
            return Err(LoadError::OrtLibrary {
                path: p,
                what: "ORT_DYLIB_PATH names no such file".into(),
            });
        }
        return Ok(LocatedLib {
            path: p,
            source: LibSource::EnvVar,
        });
    }
    let candidates = cache_candidates();
    if let Some(p) = candidates.iter().find(|p| p.is_file()) {
        return Ok(LocatedLib {
            path: p.clone(),
            source: LibSource::Cache,
        });
    }
    let searched: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
    Err(LoadError::OrtLibraryNotFound {
        searched: format!(
            "no --ort-lib, ORT_DYLIB_PATH unset, not in the project cache: {}",
            searched.join(", ")
        ),
    })
}

/// The version string (`1.31.1`) an ONNX Runtime library reports about itself.
///
/// Opens the library and calls `OrtGetApiBase()->GetVersionString()`. An ONNX Runtime library
/// stays loaded (ort opens the same file next; unloading ONNX Runtime would run its static
/// destructors for nothing); anything else is closed again.
pub fn library_version(path: &Path) -> Result<String, LoadError> {
    let fail = |what: String| LoadError::OrtLibrary {
        path: path.to_path_buf(),
        what,
    };
    // SAFETY: loading a shared library runs its initialisers; this is what ort does too, and the
    // user pointed charter at this file as an ONNX Runtime library.
    let lib = unsafe { libloading::Library::new(path) }
        .map_err(|e| fail(format!("cannot be loaded as a shared library: {e}")))?;
    // SAFETY: the symbol's type is the ONNX Runtime C API's `const OrtApiBase* OrtGetApiBase(void)`.
    let get_base: libloading::Symbol<unsafe extern "C" fn() -> *const ort::sys::OrtApiBase> =
        unsafe { lib.get(b"OrtGetApiBase") }.map_err(|_| {
            fail("not an ONNX Runtime library (it exports no OrtGetApiBase)".into())
        })?;
    // SAFETY: OrtGetApiBase takes no arguments and returns a pointer to a static struct.
    let base = unsafe { get_base() };
    if base.is_null() {
        return Err(fail("OrtGetApiBase returned null".into()));
    }
    // SAFETY: `base` is non-null and points at the library's static OrtApiBase;
    // GetVersionString returns a static NUL-terminated string.
    let version = unsafe {
        let s = ((*base).GetVersionString)();
        if s.is_null() {
            return Err(fail("GetVersionString returned null".into()));
        }
        CStr::from_ptr(s).to_string_lossy().into_owned()
    };
    std::mem::forget(lib);
    Ok(version)
}

/// Fail unless `version` is 1.`ORT_MINOR`.x.
pub fn check_version(path: &Path, version: &str) -> Result<(), LoadError> {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(1), Some(m)) if m == ORT_MINOR => Ok(()),
        _ => Err(LoadError::OrtVersion {
            path: path.to_path_buf(),
            found: version.to_string(),
            expected: format!("1.{ORT_MINOR}.x"),
        }),
    }
}

/// The process's ONNX Runtime: where it came from and its environment.
#[derive(Clone)]
pub struct Runtime {
    pub path: PathBuf,
    pub source: LibSource,
    pub version: String,
    pub env: Environment,
}

static RUNTIME: Mutex<Option<Runtime>> = Mutex::new(None);

/// Locate, check and load ONNX Runtime (once per process) and create its environment.
///
/// A later call that would pick a different library fails rather than silently using the first.
pub fn init(flag: Option<&Path>) -> Result<Runtime, LoadError> {
    let located = locate(flag)?;
    let path = std::fs::canonicalize(&located.path).map_err(|e| LoadError::OrtLibrary {
        path: located.path.clone(),
        what: format!("cannot resolve path: {e}"),
    })?;
    let mut slot = RUNTIME.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(rt) = slot.as_ref() {
        if rt.path == path {
            return Ok(rt.clone());
        }
        return Err(LoadError::OrtLibrary {
            path,
            what: format!(
                "this process already loaded ONNX Runtime from {}; one library per process",
                rt.path.display()
            ),
        });
    }
    // Errors name the file as the user gave it; the record keeps the resolved path.
    let version = library_version(&located.path)?;
    check_version(&located.path, &version)?;
    let builder = ort::init_from(&path).map_err(|e| LoadError::OrtLibrary {
        path: path.clone(),
        what: e.to_string(),
    })?;
    let env = builder
        .with_name("charter")
        .with_telemetry(false)
        .build()
        .map_err(|e| LoadError::OrtLibrary {
            path: path.clone(),
            what: format!("creating the ONNX Runtime environment: {e}"),
        })?;
    let rt = Runtime {
        path,
        source: located.source,
        version,
        env,
    };
    *slot = Some(rt.clone());
    Ok(rt)
}

/// Execution providers this ONNX Runtime build offers (e.g. `CPUExecutionProvider`).
/// Only valid after [`init`].
pub fn available_providers() -> Vec<String> {
    let api = ort::api();
    let mut names: *mut *mut c_char = std::ptr::null_mut();
    let mut n: c_int = 0;
    // SAFETY: both out-pointers are valid; on success ONNX Runtime allocates an array of `n`
    // NUL-terminated strings, released below with ReleaseAvailableProviders.
    let status = unsafe { (api.GetAvailableProviders)(&mut names, &mut n) };
    if !status.0.is_null() {
        // SAFETY: a non-null status is owned by the caller and must be released.
        unsafe { (api.ReleaseStatus)(status.0) };
        return Vec::new();
    }
    if names.is_null() {
        return Vec::new();
    }
    let out = (0..n.max(0) as usize)
        // SAFETY: `names` holds `n` valid C strings (checked non-null above).
        .map(|i| {
            unsafe { CStr::from_ptr(*names.add(i)) }
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    // SAFETY: releases the array allocated by GetAvailableProviders above.
    let status = unsafe { (api.ReleaseAvailableProviders)(names, n) };
    if !status.0.is_null() {
        // SAFETY: as above.
        unsafe { (api.ReleaseStatus)(status.0) };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_check_accepts_only_1_31() {
        let p = Path::new("/x/lib.so");
        assert!(check_version(p, "1.31.1").is_ok());
        assert!(check_version(p, "1.31.0").is_ok());
        for bad in ["1.20.1", "1.32.0", "2.31.0", "garbage", ""] {
            let e = check_version(p, bad).unwrap_err().to_string();
            assert!(
                e.contains("1.31.x") && e.contains("/x/lib.so"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn a_library_that_is_not_onnx_runtime_is_a_typed_error() {
        let e = library_version(Path::new("/nonexistent/libonnxruntime.so")).unwrap_err();
        assert!(e.to_string().contains("cannot be loaded"), "{e}");
    }
}
