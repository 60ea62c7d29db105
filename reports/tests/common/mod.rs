//! Helpers shared by the reports integration tests.

use std::path::{Path, PathBuf};

use charter_reports::charter::{self, LoadedRun};

/// The committed run directory: a real tiny-preset sweep (concurrency 1, 2, 4).
pub fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sweep")
}

/// The fixture run, with a run directory name that is stable across machines (for snapshots).
pub fn fixture() -> LoadedRun {
    let mut run = charter::load_run(&fixture_dir()).unwrap();
    run.dir = "fixtures/sweep".into();
    run
}
