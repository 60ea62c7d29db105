//! A gate report as a document: console table, JSON, JUnit XML, Markdown (for
//! `$GITHUB_STEP_SUMMARY`) and Bencher Metric Format (renderings in [`crate::gate::output`]).

use super::{Export, Format, Unsupported};
use crate::gate::{output, GateReport};

/// A gate report and the benchmark name its Bencher Metric Format output is filed under.
#[derive(Debug, Clone, Copy)]
pub struct GateDoc<'a> {
    pub report: &'a GateReport,
    pub benchmark: &'a str,
}

impl Export for GateDoc<'_> {
    fn export(&self, format: Format) -> Result<String, Unsupported> {
        let r = self.report;
        Ok(match format {
            Format::Console => output::to_console(r),
            Format::Json => output::to_json(r),
            Format::Junit => output::to_junit_xml(r),
            Format::Markdown => output::to_markdown(r),
            Format::Bmf => output::to_bmf(r, self.benchmark),
            format => {
                return Err(Unsupported {
                    document: "the gate report",
                    format,
                })
            }
        })
    }
}
