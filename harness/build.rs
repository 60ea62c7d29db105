//! Build script:
//! - records the git commit the binary was built from (CHARTER_GIT_SHA), when git knows it;
//! - on Linux, compiles the scripted fake NVML library (`fake_nvml/fake_nvml.c`) into
//!   `$OUT_DIR/libfake_nvml.so`, plus two broken variants (`libfake_nvml_noinit.so` without
//!   `nvmlInit_v2`, `libfake_nvml_noshutdown.so` without `nvmlShutdown`), and exports their paths
//!   as CHARTER_FAKE_NVML, CHARTER_FAKE_NVML_NOINIT and CHARTER_FAKE_NVML_NOSHUTDOWN for tests and
//!   benches. The fake is a test fixture: if no C compiler is found the build goes on with a
//!   warning, and the tests that load it fail with "cannot load ...".
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    git_sha();
    fake_nvml();
}

fn git_sha() {
    let sha = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    println!("cargo:rustc-env=CHARTER_GIT_SHA={sha}");
    if let Ok(out) = Command::new("git")
        .args(["rev-parse", "--git-dir"])
        .output()
    {
        if out.status.success() {
            let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
            println!("cargo:rerun-if-changed={dir}/HEAD");
            println!("cargo:rerun-if-changed={dir}/refs/heads");
        }
    }
}

fn fake_nvml() {
    let src = Path::new("fake_nvml/fake_nvml.c");
    println!("cargo:rerun-if-changed={}", src.display());
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let variants = [
        ("CHARTER_FAKE_NVML", "libfake_nvml.so", None),
        (
            "CHARTER_FAKE_NVML_NOINIT",
            "libfake_nvml_noinit.so",
            Some("-DFAKE_NVML_NO_INIT"),
        ),
        (
            "CHARTER_FAKE_NVML_NOSHUTDOWN",
            "libfake_nvml_noshutdown.so",
            Some("-DFAKE_NVML_NO_SHUTDOWN"),
        ),
    ];
    let linux = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux");
    for (var, file, define) in variants {
        let lib = out_dir.join(file);
        println!("cargo:rustc-env={var}={}", lib.display());
        if !linux {
            continue;
        }
        // cc's `compile()` makes static archives; a loadable shared object needs the compiler
        // driven directly (cc still picks the compiler and target flags).
        let compiler = match cc::Build::new().opt_level(2).try_get_compiler() {
            Ok(c) => c,
            Err(e) => {
                println!("cargo:warning=fake NVML not built (no C compiler: {e})");
                return;
            }
        };
        let mut cmd = compiler.to_command();
        cmd.args(["-shared", "-fPIC", "-pthread", "-Wall", "-o"])
            .arg(&lib)
            .arg(src);
        if let Some(d) = define {
            cmd.arg(d);
        }
        match cmd.output() {
            Ok(o) if o.status.success() => {}
            Ok(o) => println!(
                "cargo:warning=fake NVML ({file}) failed to compile: {}",
                String::from_utf8_lossy(&o.stderr).replace('\n', " ")
            ),
            Err(e) => println!("cargo:warning=fake NVML ({file}) not built: {e}"),
        }
    }
}
