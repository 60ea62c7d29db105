//! One seam for every output charter writes or prints: a [`Format`] and the [`Export`] trait,
//! implemented by each document (the charter with its charts, a gate report, a run's
//! `charter profile` summary, the `charter compare` table, a `charter tokens` record). Exporters are pure functions from
//! records to text; the harness only picks a format, or writes what [`Export::files`] lists.
//!
//! Adding an output format: add its variant to [`Format`], implement it in the document's
//! `export` (or in a new document module), and, when it belongs in `charter report`'s output
//! directory, list it in that document's `files` and the document in [`report_documents`].

mod charter;
mod compare;
mod gate;
mod profile;
mod tokens;
mod trace;

use std::fmt;

pub use self::charter::CharterDoc;
pub use self::compare::{CompareDoc, CompareRow};
pub use self::gate::GateDoc;
pub use self::profile::ProfileDoc;
pub use self::tokens::TokensDoc;
pub use self::trace::TraceDoc;
use crate::charter::LoadedRun;

/// Every output format of charter. All are UTF-8 text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Plain text for a terminal.
    Console,
    Json,
    Markdown,
    /// A self-contained page (inline CSS and SVG).
    Html,
    Csv,
    /// JUnit XML, for CI test tabs.
    Junit,
    /// Bencher Metric Format (JSON).
    Bmf,
    /// Chrome Trace Event Format JSON, for <https://ui.perfetto.dev> and `chrome://tracing`.
    PerfettoTrace,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Console => "console",
            Format::Json => "JSON",
            Format::Markdown => "Markdown",
            Format::Html => "HTML",
            Format::Csv => "CSV",
            Format::Junit => "JUnit XML",
            Format::Bmf => "Bencher Metric Format",
            Format::PerfettoTrace => "Perfetto trace",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A document asked for a format it has no rendering in (a bug in the caller, not bad input).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{document} has no {format} export")]
pub struct Unsupported {
    pub document: &'static str,
    pub format: Format,
}

/// A document that renders itself in some [`Format`]s.
pub trait Export {
    /// The document in `format`, or [`Unsupported`].
    fn export(&self, format: Format) -> Result<String, Unsupported>;

    /// What it contributes to `charter report`'s output directory: (file name, format), each
    /// of which [`Export::export`] renders. Documents that are printed, or written where the
    /// user says, contribute none.
    fn files(&self) -> Vec<(String, Format)> {
        Vec::new()
    }
}

/// The documents of `charter report`'s output directory for `runs` and their charter, in the
/// order their files are written. Each writes the files its [`Export::files`] lists.
pub fn report_documents<'a>(
    charter: CharterDoc<'a>,
    runs: &'a [LoadedRun],
) -> Vec<Box<dyn Export + 'a>> {
    let mut docs: Vec<Box<dyn Export + 'a>> = vec![Box::new(charter)];
    for trace in TraceDoc::for_runs(runs) {
        docs.push(Box::new(trace));
    }
    docs
}
