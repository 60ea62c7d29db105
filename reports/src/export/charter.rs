//! The resource charter as a document: `charter.html`, `charter.md`, `charter.json` and
//! `levels.csv` in a report directory (renderings in [`crate::render`]), and its headline for
//! the console.

use super::{Export, Format, Unsupported};
use crate::charter::Charter;
use crate::charts::Chart;
use crate::render;

/// A charter with the charts its Markdown and HTML show.
#[derive(Clone, Copy)]
pub struct CharterDoc<'a> {
    pub charter: &'a Charter,
    pub charts: &'a [Chart],
}

impl Export for CharterDoc<'_> {
    fn export(&self, format: Format) -> Result<String, Unsupported> {
        let ch = self.charter;
        Ok(match format {
            Format::Console => ch.headline.iter().map(|h| format!("- {h}\n")).collect(),
            Format::Json => render::json(ch),
            Format::Markdown => render::markdown(ch, self.charts),
            Format::Html => render::html(ch, self.charts),
            Format::Csv => render::levels_csv(ch),
            format => {
                return Err(Unsupported {
                    document: "the charter",
                    format,
                })
            }
        })
    }

    fn files(&self) -> Vec<(String, Format)> {
        [
            ("charter.html", Format::Html),
            ("charter.md", Format::Markdown),
            ("charter.json", Format::Json),
            ("levels.csv", Format::Csv),
        ]
        .map(|(name, format)| (name.to_owned(), format))
        .to_vec()
    }
}
