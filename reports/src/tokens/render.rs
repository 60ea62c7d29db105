//! Renderings of a [`TokensRecord`]: the console table, Markdown and HTML sections (a page of
//! their own, or a section of the charter), CSV rows, the bar chart, and headline sentences
//! ("model B needs 23 % ± 2 % fewer tokens than A on this corpus").

use std::fmt::Write;

use charter_record::tokens::{Interval, TokenizerResult, TokensRecord};
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::charts::{self, Chart, PALETTE};
use crate::render::esc;
use crate::summary::human_bytes;

fn iv(i: Option<Interval>, digits: usize) -> String {
    match i {
        Some(i) => format!(
            "{:.d$} [{:.d$}, {:.d$}]",
            i.estimate,
            i.low,
            i.high,
            d = digits
        ),
        None => "n/a".into(),
    }
}

/// `−23.1 % [−25.0, −21.2]`.
fn pct(i: Option<Interval>) -> String {
    match i {
        Some(i) => format!(
            "{:+.1} % [{:+.1}, {:+.1}]",
            i.estimate * 100.0,
            i.low * 100.0,
            i.high * 100.0
        )
        .replace('-', "−"),
        None => "n/a".into(),
    }
}

/// "needs 23 % ± 2 % fewer tokens than A" (± the larger half-width of the interval).
pub fn relative_words(rel: Interval, baseline: &str) -> String {
    let half = (rel.estimate - rel.low)
        .abs()
        .max((rel.high - rel.estimate).abs())
        * 100.0;
    let e = rel.estimate * 100.0;
    if rel.estimate == 0.0 && half == 0.0 {
        return format!("needs exactly as many tokens as {baseline}");
    }
    let (amount, dir) = if e < 0.0 { (-e, "fewer") } else { (e, "more") };
    let digits = if amount < 10.0 || half < 1.0 { 1 } else { 0 };
    format!("needs {amount:.digits$} % ± {half:.digits$} % {dir} tokens than {baseline}")
}

/// The answers, in plain words.
pub fn headline(r: &TokensRecord) -> Vec<String> {
    let mut out = Vec::new();
    for t in &r.tokenizers {
        if t.label == r.baseline {
            continue;
        }
        if let Some(rel) = t.relative_to_baseline {
            out.push(format!(
                "Tokens on corpus `{}` ({} documents): {} {} (95 % bootstrap interval over documents).",
                r.corpus.name,
                r.corpus.documents_compared,
                t.label,
                relative_words(rel, &r.baseline)
            ));
        }
    }
    if let Some(c) = &r.cost {
        for p in &c.prices {
            if let Some(w) = p.input_per_1m_words {
                out.push(format!(
                    "{} ({}): {:.3} {} per 1M words of input ({:.3} per 1M tokens){}.",
                    p.tokenizer,
                    p.name,
                    w.estimate,
                    c.currency,
                    p.input_per_1m_tokens,
                    if c.example_figures {
                        ", example prices"
                    } else {
                        ""
                    }
                ));
            }
        }
    }
    out
}

const HEADERS: [&str; 9] = [
    "tokenizer",
    "kind",
    "tokens",
    "tokens/word [95 % CI]",
    "tokens/char",
    "tokens/byte",
    "vs baseline",
    "round trip",
    "chat overhead/msg",
];

fn cells(r: &TokensRecord, t: &TokenizerResult) -> Vec<String> {
    vec![
        if t.label == r.baseline {
            format!("{} (baseline)", t.label)
        } else {
            t.label.clone()
        },
        t.identity.kind.to_string(),
        t.tokens.to_string(),
        iv(t.tokens_per_word, 3),
        iv(t.tokens_per_character, 3),
        iv(t.tokens_per_byte, 3),
        pct(t.relative_to_baseline),
        match t.round_trip.documents_lossy {
            0 => t.round_trip.status.to_string(),
            n => format!("{} ({n} docs)", t.round_trip.status),
        },
        t.chat_template
            .as_ref()
            .map(|c| {
                if c.per_message_tokens_min == c.per_message_tokens_max {
                    format!("{}", c.per_message_tokens_min)
                } else {
                    format!(
                        "{:.1} ({}–{})",
                        c.per_message_tokens_mean,
                        c.per_message_tokens_min,
                        c.per_message_tokens_max
                    )
                }
            })
            .unwrap_or_else(|| "no template".into()),
    ]
}

fn label_headers(r: &TokensRecord) -> Vec<String> {
    let mut h = vec!["label".to_string(), "docs".to_string()];
    for t in &r.tokenizers {
        h.push(format!("{} tok/word", t.label));
        h.push(format!("{} tok/char", t.label));
        if t.label != r.baseline {
            h.push(format!("{} vs {}", t.label, r.baseline));
        }
    }
    h
}

fn label_rows(r: &TokensRecord) -> Vec<Vec<String>> {
    r.corpus
        .labels
        .iter()
        .map(|l| {
            let mut row = vec![l.label.clone()];
            let mut docs = None;
            let mut rest = Vec::new();
            for t in &r.tokenizers {
                let lr = t.per_label.iter().find(|x| x.label == l.label);
                docs = docs.or(lr.map(|x| x.documents));
                let get = |f: fn(&crate::tokens::LabelResult) -> Option<Interval>| lr.and_then(f);
                rest.push(iv(get(|x| x.tokens_per_word), 2));
                rest.push(iv(get(|x| x.tokens_per_character), 2));
                if t.label != r.baseline {
                    rest.push(pct(get(|x| x.relative_to_baseline)));
                }
            }
            row.push(docs.unwrap_or(0).to_string());
            row.extend(rest);
            row
        })
        .collect()
}

fn cost_rows(r: &TokensRecord) -> Vec<Vec<String>> {
    let Some(c) = &r.cost else {
        return Vec::new();
    };
    c.prices
        .iter()
        .map(|p| {
            vec![
                p.tokenizer.clone(),
                p.name.clone(),
                format!("{:.3}", p.input_per_1m_tokens),
                iv(p.input_per_1m_words, 3),
                p.input_per_document_mean
                    .map(|v| format!("{v:.6}"))
                    .unwrap_or_else(|| "n/a".into()),
                iv(p.output_per_1m_words, 3),
                format!("{}, {}", p.source, p.date),
            ]
        })
        .collect()
}

fn cost_headers(currency: &str) -> Vec<String> {
    vec![
        "tokenizer".into(),
        "price".into(),
        format!("{currency}/1M input tokens"),
        format!("{currency}/1M words input [95 % CI]"),
        format!("{currency}/document input (mean)"),
        format!("{currency}/1M words output"),
        "source".into(),
    ]
}

fn kv_rows(r: &TokensRecord) -> Vec<Vec<String>> {
    r.tokenizers
        .iter()
        .filter_map(|t| {
            let k = t.kv_cache.as_ref()?;
            Some(vec![
                t.label.clone(),
                format!(
                    "{} layers × {} KV heads × {} dims × {}",
                    k.layers, k.kv_heads, k.head_dim, k.dtype
                ),
                human_bytes(k.bytes_per_token),
                format!(
                    "{} [{}, {}]",
                    human_bytes(k.bytes_per_1k_words.estimate as u64),
                    human_bytes(k.bytes_per_1k_words.low as u64),
                    human_bytes(k.bytes_per_1k_words.high as u64)
                ),
                k.source.clone(),
            ])
        })
        .collect()
}

const KV_HEADERS: [&str; 5] = [
    "tokenizer",
    "KV cache shape",
    "KV bytes/token",
    "KV RAM per 1k words [95 % CI]",
    "config",
];

fn text_table(headers: &[String], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            let pad = w - c.chars().count();
            if i == 0 {
                let _ = write!(s, "{c}{}", " ".repeat(pad));
            } else {
                let _ = write!(s, "  {}{c}", " ".repeat(pad));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut o = line(headers);
    for r in rows {
        o += &line(r);
    }
    o
}

fn strings<const N: usize>(a: [&str; N]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

fn footnotes(r: &TokensRecord) -> Vec<String> {
    let mut v = vec![
        format!(
            "Corpus `{}`: {} documents ({} compared), {} words, {} characters, {} bytes{}.",
            r.corpus.name,
            r.corpus.documents,
            r.corpus.documents_compared,
            r.corpus.words,
            r.corpus.characters,
            r.corpus.bytes,
            r.corpus
                .license
                .as_ref()
                .map(|l| format!("; {l}"))
                .unwrap_or_default()
        ),
        format!(
            "Intervals: {:.0} % percentile bootstrap over documents ({} resamples, seed {}), paired across tokenizers; ratios are Σ tokens ÷ Σ words (characters, bytes).",
            r.bootstrap.confidence * 100.0,
            r.bootstrap.resamples,
            r.bootstrap.seed
        ),
        format!("Words: {}.", r.word_definition),
        "Chat overhead: tokens of one user message through the tokenizer's chat template (with the assistant prompt after it) minus the message's content tokens.".into(),
    ];
    for t in &r.tokenizers {
        v.push(format!(
            "{}: {} — {}{}{}.",
            t.label,
            t.identity.source,
            t.identity.count_method,
            t.identity
                .sha256
                .as_ref()
                .map(|s| format!("; sha256 {}", &s[..12.min(s.len())]))
                .unwrap_or_default(),
            if t.documents_failed > 0 {
                format!(
                    "; {} documents failed ({})",
                    t.documents_failed,
                    t.errors.keys().next().map(String::as_str).unwrap_or("")
                )
            } else {
                String::new()
            }
        ));
    }
    v.extend(r.notes.iter().cloned());
    v
}

/// What `charter tokens` prints.
pub fn console(r: &TokensRecord) -> String {
    let rows: Vec<Vec<String>> = r.tokenizers.iter().map(|t| cells(r, t)).collect();
    let mut o = text_table(&strings(HEADERS), &rows);
    if !r.corpus.labels.is_empty() {
        o.push('\n');
        o += &text_table(&label_headers(r), &label_rows(r));
    }
    let kv = kv_rows(r);
    if !kv.is_empty() {
        o.push('\n');
        o += &text_table(&strings(KV_HEADERS), &kv);
    }
    if let Some(c) = &r.cost {
        o.push('\n');
        o += &text_table(&cost_headers(&c.currency), &cost_rows(r));
        if c.example_figures {
            o += "(EXAMPLE prices, not quotes)\n";
        }
    }
    o.push('\n');
    for h in headline(r) {
        let _ = writeln!(o, "- {h}");
    }
    for f in footnotes(r) {
        let _ = writeln!(o, "  {f}");
    }
    o
}

fn md_table(o: &mut String, headers: &[String], rows: &[Vec<String>]) {
    let _ = writeln!(o, "| {} |", headers.join(" | "));
    let _ = writeln!(o, "|{}|", vec!["---"; headers.len()].join("|"));
    for r in rows {
        let cells: Vec<String> = r.iter().map(|c| c.replace('|', "\\|")).collect();
        let _ = writeln!(o, "| {} |", cells.join(" | "));
    }
}

/// A Markdown section (`level` = heading level of its title).
pub fn markdown_section(r: &TokensRecord, level: usize) -> String {
    let h = "#".repeat(level);
    let mut o = format!("{h} Token efficiency — corpus `{}`\n\n", r.corpus.name);
    for l in headline(r) {
        let _ = writeln!(o, "- {l}");
    }
    o.push('\n');
    let rows: Vec<Vec<String>> = r.tokenizers.iter().map(|t| cells(r, t)).collect();
    md_table(&mut o, &strings(HEADERS), &rows);
    if !r.corpus.labels.is_empty() {
        let _ = writeln!(o, "\n{h}# Per label\n");
        md_table(&mut o, &label_headers(r), &label_rows(r));
    }
    let kv = kv_rows(r);
    if !kv.is_empty() {
        let _ = writeln!(o, "\n{h}# KV-cache RAM\n");
        md_table(&mut o, &strings(KV_HEADERS), &kv);
    }
    if let Some(c) = &r.cost {
        let _ = writeln!(
            o,
            "\n{h}# Cost{}\n",
            if c.example_figures {
                " (EXAMPLE prices)"
            } else {
                ""
            }
        );
        md_table(&mut o, &cost_headers(&c.currency), &cost_rows(r));
    }
    o.push('\n');
    for f in footnotes(r) {
        let _ = writeln!(o, "- {f}");
    }
    o
}

/// `tokens.md`.
pub fn markdown(r: &TokensRecord) -> String {
    let mut o = markdown_section(r, 1);
    let _ = writeln!(o, "\n![tokens per word](charts/tokens-per-word.png)");
    let _ = writeln!(o, "\n_Generated by {} {}._", r.tool.name, r.tool.version);
    o
}

fn html_table(o: &mut String, headers: &[String], rows: &[Vec<String>]) {
    let _ = write!(o, "<table><tr>");
    for h in headers {
        let _ = write!(o, "<th>{}</th>", esc(h));
    }
    let _ = writeln!(o, "</tr>");
    for r in rows {
        let _ = write!(o, "<tr>");
        for c in r {
            let _ = write!(o, "<td>{}</td>", esc(c));
        }
        let _ = writeln!(o, "</tr>");
    }
    let _ = writeln!(o, "</table>");
}

/// An HTML section (an `<h2>` and what follows), for the charter page or `tokens.html`.
pub fn html_section(r: &TokensRecord, chart: Option<&Chart>) -> String {
    let mut o = format!(
        "<h2>Token efficiency — corpus <code>{}</code></h2>\n<ul>\n",
        esc(&r.corpus.name)
    );
    for l in headline(r) {
        let _ = writeln!(o, "<li>{}</li>", esc(&l));
    }
    let _ = writeln!(o, "</ul>");
    let rows: Vec<Vec<String>> = r.tokenizers.iter().map(|t| cells(r, t)).collect();
    html_table(&mut o, &strings(HEADERS), &rows);
    if !r.corpus.labels.is_empty() {
        let _ = writeln!(o, "<h3>Per label</h3>");
        html_table(&mut o, &label_headers(r), &label_rows(r));
    }
    let kv = kv_rows(r);
    if !kv.is_empty() {
        let _ = writeln!(o, "<h3>KV-cache RAM</h3>");
        html_table(&mut o, &strings(KV_HEADERS), &kv);
    }
    if let Some(c) = &r.cost {
        let _ = writeln!(
            o,
            "<h3>Cost{}</h3>",
            if c.example_figures {
                " <b class=\"warn\">(EXAMPLE prices)</b>"
            } else {
                ""
            }
        );
        html_table(&mut o, &cost_headers(&c.currency), &cost_rows(r));
    }
    if let Some(c) = chart {
        let _ = writeln!(
            o,
            "<figure>{}<figcaption>{}</figcaption></figure>",
            crate::render::inline_svg(&c.svg),
            esc(&c.title)
        );
    }
    let _ = writeln!(o, "<ul class=\"muted\">");
    for f in footnotes(r) {
        let _ = writeln!(o, "<li>{}</li>", esc(&f));
    }
    let _ = writeln!(o, "</ul>");
    o
}

/// `tokens.html`: one self-contained page.
pub fn html(r: &TokensRecord, chart: Option<&Chart>) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/><title>Token efficiency</title><style>{}</style></head><body>\n<h1>Token efficiency</h1><p class=\"muted\">{} {} · started {}</p>\n{}</body></html>\n",
        crate::render::CSS,
        esc(&r.tool.name),
        esc(&r.tool.version),
        esc(&r.started_at),
        html_section(r, chart)
    )
}

/// `tokens.json`.
pub fn json(r: &TokensRecord) -> String {
    serde_json::to_string_pretty(r).expect("the tokens record serialises") + "\n"
}

fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// `tokens.csv`: one row per tokenizer and label (label empty = the whole corpus).
pub fn csv(r: &TokensRecord) -> String {
    let mut o = String::from("tokenizer,kind,label,documents,tokens,tokens_per_word,tokens_per_word_low,tokens_per_word_high,tokens_per_character,tokens_per_byte,relative_to_baseline,relative_low,relative_high,round_trip\n");
    let f = |i: Option<Interval>| -> [String; 3] {
        match i {
            Some(i) => [i.estimate, i.low, i.high].map(|v| format!("{v}")),
            None => [String::new(), String::new(), String::new()],
        }
    };
    let e = |i: Option<Interval>| i.map(|i| format!("{}", i.estimate)).unwrap_or_default();
    for t in &r.tokenizers {
        let mut rows = vec![(
            String::new(),
            r.corpus.documents_compared,
            t.tokens,
            t.tokens_per_word,
            t.tokens_per_character,
            t.tokens_per_byte,
            t.relative_to_baseline,
        )];
        for l in &t.per_label {
            rows.push((
                l.label.clone(),
                l.documents,
                l.tokens,
                l.tokens_per_word,
                l.tokens_per_character,
                l.tokens_per_byte,
                l.relative_to_baseline,
            ));
        }
        for (label, docs, tokens, w, c, b, rel) in rows {
            let [we, wl, wh] = f(w);
            let [re, rl, rh] = f(rel);
            let _ = writeln!(
                o,
                "{},{},{},{docs},{tokens},{we},{wl},{wh},{},{},{re},{rl},{rh},{}",
                csv_cell(&t.label),
                t.identity.kind,
                csv_cell(&label),
                e(c),
                e(b),
                t.round_trip.status.as_str().replace(' ', "_")
            );
        }
    }
    o
}

/// Tokens per word per tokenizer, with the bootstrap interval as an error bar.
pub fn chart(r: &TokensRecord, index: Option<usize>) -> Result<Chart, String> {
    let bars: Vec<(String, Interval)> = r
        .tokenizers
        .iter()
        .filter_map(|t| Some((charts::short(&t.label), t.tokens_per_word?)))
        .collect();
    let title = format!("Tokens per word — corpus {}", charts::short(&r.corpus.name));
    let name = match index {
        Some(i) => format!("tokens-per-word-{i}"),
        None => "tokens-per-word".into(),
    };
    charts::render(&name, &title, &|a| draw(a, &title, &bars), &|a| {
        draw(a, &title, &bars)
    })
}

fn draw<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    bars: &[(String, Interval)],
) -> Result<(), String> {
    let ymax = bars
        .iter()
        .map(|b| b.1.high.max(b.1.estimate))
        .fold(0.0, f64::max)
        .max(1e-9)
        * 1.2;
    let n = bars.len().max(1);
    let mut c = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d((0..n).into_segmented(), 0.0..ymax)
        .map_err(charts::err)?;
    c.configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => bars.get(*i).map(|b| b.0.clone()).unwrap_or_default(),
            _ => String::new(),
        })
        .y_desc("tokens per word (95 % interval)")
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(charts::err)?;
    for (i, (_, v)) in bars.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        c.draw_series(std::iter::once(Rectangle::new(
            [
                (SegmentValue::Exact(i), 0.0),
                (SegmentValue::Exact(i + 1), v.estimate),
            ],
            color.mix(0.8).filled(),
        )))
        .map_err(charts::err)?;
        c.draw_series(std::iter::once(PathElement::new(
            vec![
                (SegmentValue::CenterOf(i), v.low),
                (SegmentValue::CenterOf(i), v.high),
            ],
            BLACK.stroke_width(2),
        )))
        .map_err(charts::err)?;
        c.draw_series(std::iter::once(Text::new(
            format!("{:.3}", v.estimate),
            (SegmentValue::CenterOf(i), v.high.max(v.estimate) * 1.04),
            ("sans-serif", 14),
        )))
        .map_err(charts::err)?;
    }
    Ok(())
}
