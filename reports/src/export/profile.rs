//! What `charter profile` prints when a run ends: the console summary
//! ([`crate::summary::render_console`]) or, with `--json`, one JSON object with the run
//! directory, status, backend and every level record.

use super::{Export, Format, Unsupported};
use crate::record::RunRecord;
use crate::summary;

/// A run's record and the directory it was written to.
#[derive(Debug, Clone, Copy)]
pub struct ProfileDoc<'a> {
    pub record: &'a RunRecord,
    pub run_dir: &'a str,
}

impl ProfileDoc<'_> {
    fn json(&self) -> String {
        let r = self.record;
        let out = serde_json::json!({
            "run_dir": self.run_dir,
            "complete": r.complete,
            "status": r.status,
            "backend": r.backend.model,
            "threads_per_instance": r.backend.threads_per_instance,
            "levels": r.levels,
            "search": r.search,
        });
        serde_json::to_string_pretty(&out).expect("a JSON value serialises") + "\n"
    }
}

impl Export for ProfileDoc<'_> {
    fn export(&self, format: Format) -> Result<String, Unsupported> {
        match format {
            Format::Console => Ok(summary::render_console(self.record, self.run_dir)),
            Format::Json => Ok(self.json()),
            format => Err(Unsupported {
                document: "the run summary",
                format,
            }),
        }
    }
}
