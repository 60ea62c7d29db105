//! The token-efficiency record of `charter tokens` as a document: `tokens.json` (schema
//! `reports/schema/tokens.schema.json`), `tokens.md`, `tokens.html` and `tokens.csv` in the
//! output directory, and the console table (renderings in [`crate::tokens::render`]).

use super::{Export, Format, Unsupported};
use crate::charts::Chart;
use crate::tokens::render;
use crate::tokens::TokensRecord;

/// A tokens record with the bar chart its HTML page shows.
#[derive(Clone, Copy)]
pub struct TokensDoc<'a> {
    pub record: &'a TokensRecord,
    pub chart: Option<&'a Chart>,
}

impl Export for TokensDoc<'_> {
    fn export(&self, format: Format) -> Result<String, Unsupported> {
        let r = self.record;
        Ok(match format {
            Format::Console => render::console(r),
            Format::Json => render::json(r),
            Format::Markdown => render::markdown(r),
            Format::Html => render::html(r, self.chart),
            Format::Csv => render::csv(r),
            format => {
                return Err(Unsupported {
                    document: "the token-efficiency record",
                    format,
                })
            }
        })
    }

    fn files(&self) -> Vec<(String, Format)> {
        [
            ("tokens.json", Format::Json),
            ("tokens.md", Format::Markdown),
            ("tokens.html", Format::Html),
            ("tokens.csv", Format::Csv),
        ]
        .map(|(name, format)| (name.to_owned(), format))
        .to_vec()
    }
}
