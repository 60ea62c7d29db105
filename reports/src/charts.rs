//! Charts of a charter, drawn with plotters: SVG (inlined in the HTML) and PNG (for people and
//! slides). Text uses the embedded DejaVu Sans (see assets/DejaVuSans-LICENSE.txt), so PNGs
//! render the same on every machine without fontconfig.

use std::path::Path;
use std::sync::Once;

use charter_record::{LevelRole, LoadProfile, RequestRow, SampleRow};
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::charter::{Charter, LoadedRun};
use crate::hybrid_plan::HybridPlanRow;

static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

fn register_font() {
    REGISTER.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

const W: u32 = 900;
const H: u32 = 480;
pub(crate) const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// One drawn chart, in both formats.
pub struct Chart {
    /// File stem, e.g. `ttft-cdf`.
    pub name: String,
    pub title: String,
    pub svg: String,
    pub png: Vec<u8>,
}

type DrawFn<'a> = dyn Fn(&DrawingArea<SVGBackend, Shift>) -> Result<(), String> + 'a;
type DrawPng<'a> = dyn Fn(&DrawingArea<BitMapBackend, Shift>) -> Result<(), String> + 'a;

pub(crate) fn render(
    name: &str,
    title: &str,
    svg_f: &DrawFn<'_>,
    png_f: &DrawPng<'_>,
) -> Result<Chart, String> {
    register_font();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        svg_f(&root)?;
        root.present().map_err(|e| e.to_string())?;
    }
    let mut buf = vec![0u8; (W * H * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        png_f(&root)?;
        root.present().map_err(|e| e.to_string())?;
    }
    let png = encode_png(&buf)?;
    Ok(Chart {
        name: name.into(),
        title: title.into(),
        svg,
        png,
    })
}

fn encode_png(rgb: &[u8]) -> Result<Vec<u8>, String> {
    use image::ImageEncoder;
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(rgb, W, H, image::ColorType::Rgb8)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

pub(crate) fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Empirical CDF points of `values` (sorted ascending, y in 0..1).
fn cdf(mut values: Vec<f64>) -> Vec<(f64, f64)> {
    values.retain(|v| v.is_finite());
    values.sort_by(f64::total_cmp);
    let n = values.len() as f64;
    values
        .iter()
        .enumerate()
        .map(|(i, v)| (*v, (i + 1) as f64 / n))
        .collect()
}

fn draw_cdf<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> Result<(), String> {
    let xmax = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q.0))
        .fold(0.0f64, f64::max)
        .max(1e-3)
        * 1.05;
    let mut c = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..xmax * 1e3, 0.0..1.0)
        .map_err(err)?;
    c.configure_mesh()
        .x_desc("milliseconds")
        .y_desc("share of requests ≤ x")
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(err)?;
    for (i, (name, pts)) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        c.draw_series(LineSeries::new(
            pts.iter().map(|(x, y)| (x * 1e3, *y)),
            color.stroke_width(2),
        ))
        .map_err(err)?
        .label(name.clone())
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
    }
    draw_legend(&mut c, SeriesLabelPosition::LowerRight)?;
    Ok(())
}

/// The legend every chart uses, at `pos`.
fn draw_legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    c: &mut ChartContext<'a, DB, CT>,
    pos: SeriesLabelPosition,
) -> Result<(), String> {
    c.configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .position(pos)
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(err)
}

/// Latency CDFs (TTFT, ITL, E2E), one line per run, over measured requests.
pub fn latency_cdfs(runs: &[LoadedRun]) -> Result<Vec<Chart>, String> {
    let mut out = Vec::new();
    type Pick = fn(&RequestRow) -> Option<f64>;
    let metrics: [(&str, &str, Pick); 3] = [
        (
            "ttft-cdf",
            "Time to first token (from intended start)",
            |r| r.ttft_from_intended_s,
        ),
        ("itl-cdf", "Inter-token latency per request", |r| r.itl_s),
        ("e2e-cdf", "End-to-end latency (from intended start)", |r| {
            r.e2e_from_intended_s
        }),
    ];
    for (name, title, pick) in metrics {
        let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
        for r in runs {
            // One line per measured level (rows belong to the level whose window holds their
            // start), named by run when several runs are compared.
            let levels: Vec<_> = r
                .record
                .levels
                .iter()
                .filter(|l| l.role != LevelRole::SaturationProbe)
                .filter_map(|l| l.window.as_ref().map(|w| (l, w)))
                .collect();
            for (l, w) in &levels {
                let vals = r
                    .requests
                    .iter()
                    .filter(|q| !q.warmup && q.error_kind.is_none())
                    .filter(|q| q.start_s >= w.start_s && q.start_s <= w.end_s)
                    .filter_map(pick)
                    .collect();
                let name = match (runs.len(), levels.len()) {
                    (1, _) => l.load.label(),
                    (_, 1) => short(&r.record.backend.model),
                    _ => format!("{} · {}", short(&r.record.backend.model), l.load.label()),
                };
                series.push((name, cdf(vals)));
            }
        }
        series.retain(|(_, p)| !p.is_empty());
        if series.is_empty() {
            continue;
        }
        out.push(render(
            name,
            title,
            &|a| draw_cdf(a, title, &series),
            &|a| draw_cdf(a, title, &series),
        )?);
    }
    Ok(out)
}

pub(crate) fn short(s: &str) -> String {
    if s.chars().count() > 40 {
        format!("{}…", s.chars().take(39).collect::<String>())
    } else {
        s.to_string()
    }
}

/// x value of a level's load: concurrency, or offered rate.
fn load_x(l: &LoadProfile) -> f64 {
    match l {
        LoadProfile::ClosedLoop { concurrency } => f64::from(*concurrency),
        LoadProfile::OpenLoop { rate_per_s, .. } => *rate_per_s,
    }
}

/// The knee: the first level after which more load adds < 10 % of its relative increase in
/// throughput (latency then grows for little gain).
pub fn knee(points: &[(f64, f64)]) -> Option<usize> {
    for i in 1..points.len() {
        let (x0, y0) = points[i - 1];
        let (x1, y1) = points[i];
        if x0 > 0.0 && y0 > 0.0 && x1 > x0 {
            let load_gain = x1 / x0 - 1.0;
            let thr_gain = y1 / y0 - 1.0;
            if thr_gain < 0.1 * load_gain {
                return Some(i - 1);
            }
        }
    }
    None
}

/// Throughput and p99 TTFT against load, per run with several measured levels; knee marked.
pub fn load_curves(runs: &[LoadedRun]) -> Result<Vec<Chart>, String> {
    let mut out = Vec::new();
    for (ri, run) in runs.iter().enumerate() {
        let mut levels: Vec<_> = run
            .record
            .levels
            .iter()
            .filter(|l| {
                l.role != LevelRole::SaturationProbe
                    && l.summary.output_token_throughput_per_s.is_some()
            })
            .collect();
        if levels.len() < 2 {
            continue;
        }
        levels.sort_by(|a, b| load_x(&a.load).total_cmp(&load_x(&b.load)));
        let open = matches!(levels[0].load, LoadProfile::OpenLoop { .. });
        let thr: Vec<(f64, f64)> = levels
            .iter()
            .map(|l| {
                (
                    load_x(&l.load),
                    l.summary.output_token_throughput_per_s.unwrap_or(0.0),
                )
            })
            .collect();
        let p99: Vec<(f64, f64)> = levels
            .iter()
            .filter_map(|l| {
                Some((
                    load_x(&l.load),
                    l.summary.ttft_from_intended.as_ref()?.p99_s * 1e3,
                ))
            })
            .collect();
        let k = knee(&thr);
        let title = format!(
            "Throughput and p99 TTFT vs load — {}",
            short(&run.record.backend.model)
        );
        let xdesc = if open {
            "offered rate (requests/s)"
        } else {
            "concurrency"
        };
        out.push(render(
            &format!("load-curve-{ri}"),
            &title,
            &|a| draw_load(a, &title, xdesc, &thr, &p99, k),
            &|a| draw_load(a, &title, xdesc, &thr, &p99, k),
        )?);
    }
    Ok(out)
}

fn draw_load<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    xdesc: &str,
    thr: &[(f64, f64)],
    p99: &[(f64, f64)],
    knee: Option<usize>,
) -> Result<(), String> {
    let xmax = thr.iter().map(|p| p.0).fold(0.0, f64::max) * 1.08;
    let ymax = thr.iter().map(|p| p.1).fold(0.0, f64::max).max(1e-9) * 1.15;
    let y2max = p99.iter().map(|p| p.1).fold(0.0, f64::max).max(1e-9) * 1.15;
    let mut c = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(65)
        .right_y_label_area_size(65)
        .build_cartesian_2d(0.0..xmax, 0.0..ymax)
        .map_err(err)?
        .set_secondary_coord(0.0..xmax, 0.0..y2max);
    c.configure_mesh()
        .x_desc(xdesc)
        .y_desc("output tokens/s")
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(err)?;
    c.configure_secondary_axes()
        .y_desc("TTFT p99 (ms)")
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(err)?;
    let blue = PALETTE[0];
    let red = PALETTE[1];
    c.draw_series(LineSeries::new(thr.iter().copied(), blue.stroke_width(2)))
        .map_err(err)?
        .label("output tokens/s")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], blue.stroke_width(2)));
    c.draw_series(thr.iter().map(|p| Circle::new(*p, 4, blue.filled())))
        .map_err(err)?;
    c.draw_secondary_series(LineSeries::new(p99.iter().copied(), red.stroke_width(2)))
        .map_err(err)?
        .label("TTFT p99 (ms, right axis)")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], red.stroke_width(2)));
    if let Some(k) = knee {
        let (x, y) = thr[k];
        c.draw_series(std::iter::once(Circle::new(
            (x, y),
            9,
            BLACK.stroke_width(2),
        )))
        .map_err(err)?;
        c.draw_series(std::iter::once(Text::new(
            format!("knee: {x}"),
            (x, y * 0.9),
            ("sans-serif", 15),
        )))
        .map_err(err)?;
    }
    draw_legend(&mut c, SeriesLabelPosition::UpperLeft)?;
    Ok(())
}

/// CPU cores and RSS over time, one chart per run, each level's window shaded.
pub fn resource_timelines(runs: &[LoadedRun]) -> Result<Vec<Chart>, String> {
    let mut out = Vec::new();
    for (ri, run) in runs.iter().enumerate() {
        let s = &run.samples;
        if s.len() < 2 {
            continue;
        }
        let windows: Vec<(f64, f64, String)> = run
            .record
            .levels
            .iter()
            .filter_map(|l| {
                l.window
                    .as_ref()
                    .map(|w| (w.start_s, w.end_s, l.load.label()))
            })
            .collect();
        let title = format!(
            "CPU cores and RSS over time — {}",
            short(&run.record.backend.model)
        );
        out.push(render(
            &format!("resources-{ri}"),
            &title,
            &|a| draw_timeline(a, &title, s, &windows),
            &|a| draw_timeline(a, &title, s, &windows),
        )?);
    }
    Ok(out)
}

fn draw_timeline<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    s: &[SampleRow],
    windows: &[(f64, f64, String)],
) -> Result<(), String> {
    let t0 = s[0].t_s;
    let tmax = (s[s.len() - 1].t_s - t0).max(1e-3);
    let cmax = s
        .iter()
        .filter_map(|x| x.process_cpu_cores)
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max)
        .max(0.1)
        * 1.15;
    let rmax = s
        .iter()
        .filter_map(|x| x.rss_bytes)
        .map(|b| b as f64 / MIB)
        .fold(0.0, f64::max)
        .max(1.0)
        * 1.15;
    let mut c = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .right_y_label_area_size(70)
        .build_cartesian_2d(0.0..tmax, 0.0..cmax)
        .map_err(err)?
        .set_secondary_coord(0.0..tmax, 0.0..rmax);
    c.configure_mesh()
        .x_desc("seconds since start")
        .y_desc("CPU cores (process)")
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(err)?;
    c.configure_secondary_axes()
        .y_desc("RSS (MiB)")
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(err)?;
    for (i, (a, b, label)) in windows.iter().enumerate() {
        let shade = PALETTE[(i + 2) % PALETTE.len()].mix(0.12);
        c.draw_series(std::iter::once(Rectangle::new(
            [(a - t0, 0.0), (b - t0, cmax)],
            shade.filled(),
        )))
        .map_err(err)?;
        if windows.len() <= 8 {
            c.draw_series(std::iter::once(Text::new(
                label.clone(),
                (a - t0, cmax * 0.97),
                ("sans-serif", 12),
            )))
            .map_err(err)?;
        }
    }
    let blue = PALETTE[0];
    let green = PALETTE[2];
    c.draw_series(LineSeries::new(
        s.iter()
            .filter_map(|x| Some((x.t_s - t0, x.process_cpu_cores?)))
            .filter(|(_, c)| c.is_finite()),
        blue.stroke_width(2),
    ))
    .map_err(err)?
    .label("CPU cores")
    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], blue.stroke_width(2)));
    c.draw_secondary_series(LineSeries::new(
        s.iter()
            .filter_map(|x| Some((x.t_s - t0, x.rss_bytes? as f64 / MIB))),
        green.stroke_width(2),
    ))
    .map_err(err)?
    .label("RSS (MiB, right axis)")
    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], green.stroke_width(2)));
    draw_legend(&mut c, SeriesLabelPosition::LowerRight)?;
    Ok(())
}

const MIB: f64 = 1048576.0;

/// One level's points on the RSS-against-context chart, and its fitted line when the record
/// has one: `(label, points (tokens, MiB), line ((tokens, MiB) at both ends))`.
type ContextSeries = (String, Vec<(f64, f64)>, Option<[(f64, f64); 2]>);

/// Memory against live context tokens, one chart per run with `context.csv` points: the signal
/// of the run's headline fit (heap in use for in-process instances, else RSS), points coloured
/// per level, and each level's supported least-squares fit (`ram_per_1k_tokens`) drawn over the
/// live-token range it was fitted on; an unsupported fit is labelled "inconclusive" and drawn
/// without a line.
pub fn ram_vs_context(runs: &[LoadedRun]) -> Result<Vec<Chart>, String> {
    let mut out = Vec::new();
    for (ri, run) in runs.iter().enumerate() {
        if run.context.is_empty() {
            continue;
        }
        // The headline fit's signal: the heap when the fits were of the heap.
        let heap = run.record.levels.iter().any(|l| {
            l.resources
                .ram_per_1k_tokens
                .as_ref()
                .and_then(|f| f.signal)
                == Some(charter_record::MemorySignal::Heap)
        });
        let mut indices: Vec<u32> = run.context.iter().map(|p| p.level).collect();
        indices.sort_unstable();
        indices.dedup();
        let series: Vec<ContextSeries> = indices
            .iter()
            .map(|&i| {
                let level = run.record.levels.iter().find(|l| l.index == i);
                let pts = run
                    .context
                    .iter()
                    .filter(|p| p.level == i)
                    .filter_map(|p| {
                        let bytes = if heap { p.heap_bytes } else { p.rss_bytes }?;
                        Some((p.live_context_tokens as f64, bytes as f64 / MIB))
                    })
                    .collect();
                let fit = level.and_then(|l| l.resources.ram_per_1k_tokens.as_ref());
                let label = match (level, fit) {
                    (_, Some(f)) => match f.bytes_per_1k_tokens {
                        Some(b) => format!(
                            "level {i}: {:.2} MiB per 1k tokens, R² {:.2}",
                            b / MIB,
                            f.r_squared
                        ),
                        None => format!(
                            "level {i}: inconclusive ({})",
                            f.inconclusive.as_deref().unwrap_or("unsupported fit")
                        ),
                    },
                    (Some(l), None) => format!("level {i} ({}): no fit", l.load.label()),
                    (None, None) => format!("level {i}: no fit"),
                };
                let line = fit.and_then(|f| {
                    let slope = f.bytes_per_1k_tokens?;
                    let at = |x: f64| (x, (f.baseline_bytes + slope * x / 1e3) / MIB);
                    Some([at(f.live_tokens_min as f64), at(f.live_tokens_max as f64)])
                });
                (label, pts, line)
            })
            .collect();
        let title = format!(
            "{} vs live context tokens — {}",
            if heap { "Heap in use" } else { "RSS" },
            short(&run.record.backend.model)
        );
        let y_desc = if heap {
            "heap in use (MiB)"
        } else {
            "RSS (MiB)"
        };
        out.push(render(
            &format!("ram-vs-context-{ri}"),
            &title,
            &|a| draw_ram_vs_context(a, &title, y_desc, &series),
            &|a| draw_ram_vs_context(a, &title, y_desc, &series),
        )?);
    }
    Ok(out)
}

/// `[lo, hi]` widened by 5 % of the span on each side (and to at least `min_span`).
fn padded(lo: f64, hi: f64, min_span: f64) -> (f64, f64) {
    let mid = (lo + hi) / 2.0;
    let half = ((hi - lo).max(min_span) / 2.0) * 1.1;
    (mid - half, mid + half)
}

fn draw_ram_vs_context<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    y_desc: &str,
    series: &[ContextSeries],
) -> Result<(), String> {
    let all = series
        .iter()
        .flat_map(|(_, pts, line)| pts.iter().chain(line.iter().flatten()).copied());
    let (x0, x1, y0, y1) = all.fold(
        (
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ),
        |(a, b, c, d), (x, y)| (a.min(x), b.max(x), c.min(y), d.max(y)),
    );
    let (x0, x1) = padded(x0, x1, 10.0);
    let (y0, y1) = padded(y0, y1, 1.0);
    let mut c = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(x0.max(0.0)..x1, y0.max(0.0)..y1)
        .map_err(err)?;
    c.configure_mesh()
        .x_desc("live context tokens (prompt + generated, in-flight requests)")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_desc(y_desc)
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(err)?;
    for (i, (label, pts, line)) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let points = c
            .draw_series(
                pts.iter()
                    .map(|p| Circle::new(*p, 3, color.mix(0.6).filled())),
            )
            .map_err(err)?;
        match line {
            Some(ends) => {
                c.draw_series(LineSeries::new(ends.iter().copied(), color.stroke_width(2)))
                    .map_err(err)?
                    .label(label.clone())
                    .legend(move |(x, y)| {
                        EmptyElement::at((x, y))
                            + PathElement::new(vec![(0, 0), (18, 0)], color.stroke_width(2))
                            + Circle::new((9, 0), 3, color.filled())
                    });
            }
            None => {
                points
                    .label(label.clone())
                    .legend(move |(x, y)| Circle::new((x + 9, y), 3, color.filled()));
            }
        }
    }
    draw_legend(&mut c, SeriesLabelPosition::UpperLeft)?;
    Ok(())
}

/// Each tier's share of the requests over a routed level's window (hybrid tiers, or
/// `--tier-header`'s upstreams), one chart per level: the spill over time.
pub fn spill_over_time(runs: &[LoadedRun]) -> Result<Vec<Chart>, String> {
    let mut out = Vec::new();
    for (ri, run) in runs.iter().enumerate() {
        let order: Vec<String> = run
            .record
            .backend
            .hybrid
            .as_ref()
            .map(|h| h.tiers.iter().map(|t| t.name.clone()).collect())
            .unwrap_or_default();
        for l in &run.record.levels {
            let (Some(w), Some(routing)) = (&l.window, &l.summary.routing) else {
                continue;
            };
            let routed: u64 = routing.tiers.values().map(|t| t.requests).sum();
            let buckets = ((routed / 5) as usize).clamp(1, 30);
            let Some(shares) = crate::routing::shares_over_time(
                &run.requests,
                &order,
                (w.start_s, w.end_s),
                buckets,
            ) else {
                continue;
            };
            let title = format!(
                "Requests per tier over time — {}, level {} ({})",
                short(&run.record.backend.model),
                l.index,
                l.load.label()
            );
            out.push(render(
                &format!("spill-over-time-{ri}-{}", l.index),
                &title,
                &|a| draw_shares(a, &title, &shares),
                &|a| draw_shares(a, &title, &shares),
            )?);
        }
    }
    Ok(out)
}

/// Stacked bars: per time bucket, each tier's share of the requests that started in it.
fn draw_shares<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    s: &crate::routing::TierShares,
) -> Result<(), String> {
    let tmax = s.bucket_s * s.counts.len() as f64;
    let mut c = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..tmax, 0.0..100.0)
        .map_err(err)?;
    c.configure_mesh()
        .x_desc(format!(
            "seconds since the window's start ({:.2} s buckets, by request start)",
            s.bucket_s
        ))
        .y_desc("share of requests (%)")
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(err)?;
    let shares: Vec<Vec<f64>> = (0..s.counts.len()).map(|b| s.shares(b)).collect();
    for (i, tier) in s.tiers.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let bars = shares.iter().enumerate().map(|(b, sh)| {
            let below: f64 = sh[..i].iter().sum::<f64>() * 100.0;
            let x0 = b as f64 * s.bucket_s;
            Rectangle::new(
                [(x0, below), (x0 + s.bucket_s, below + sh[i] * 100.0)],
                colour.filled(),
            )
        });
        c.draw_series(bars)
            .map_err(err)?
            .label(tier.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled()));
    }
    draw_legend(&mut c, SeriesLabelPosition::UpperRight)?;
    Ok(())
}

/// Cost per 1M output tokens per option, and the break-even chart, per priced run.
pub fn cost_charts(ch: &Charter) -> Result<Vec<Chart>, String> {
    let mut out = Vec::new();
    for (ci, c) in ch.cost.iter().enumerate() {
        let bars: Vec<(String, f64)> = c
            .options
            .iter()
            .filter_map(|o| Some((short(&o.name), o.per_1m_output?)))
            .collect();
        if !bars.is_empty() {
            let title = format!(
                "{} per 1M output tokens — {}",
                c.currency,
                short(&c.backend)
            );
            out.push(render(
                &format!("cost-{ci}"),
                &title,
                &|a| draw_bars(a, &title, &bars),
                &|a| draw_bars(a, &title, &bars),
            )?);
        }
        if let (Some(var), Some(api)) = (
            c.onprem_variable_per_1m,
            c.break_even.iter().find(|b| b.cloud_per_1m.is_some()),
        ) {
            let cloud = api.cloud_per_1m.unwrap_or(0.0);
            let cross = api.tokens_per_month;
            let xmax = cross.map(|v| v * 2.0).unwrap_or(1e9).max(1e6);
            let title = format!(
                "Break-even: monthly cost vs monthly output tokens — {}",
                short(&c.backend)
            );
            let (fixed, name) = (c.onprem_fixed_per_month, api.against.clone());
            let node_cap = c.node_tokens_per_month;
            out.push(render(
                &format!("break-even-{ci}"),
                &title,
                &|a| {
                    draw_break_even(
                        a,
                        &title,
                        fixed,
                        var,
                        cloud,
                        &name,
                        cross,
                        xmax,
                        node_cap,
                        &c.currency,
                    )
                },
                &|a| {
                    draw_break_even(
                        a,
                        &title,
                        fixed,
                        var,
                        cloud,
                        &name,
                        cross,
                        xmax,
                        node_cap,
                        &c.currency,
                    )
                },
            )?);
        }
    }
    Ok(out)
}

fn draw_bars<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    bars: &[(String, f64)],
) -> Result<(), String> {
    let ymax = bars.iter().map(|b| b.1).fold(0.0, f64::max).max(1e-9) * 1.2;
    let n = bars.len();
    let mut c = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d((0..n).into_segmented(), 0.0..ymax)
        .map_err(err)?;
    c.configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => bars.get(*i).map(|b| b.0.clone()).unwrap_or_default(),
            _ => String::new(),
        })
        .y_desc("per 1M output tokens")
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(err)?;
    for (i, (_, v)) in bars.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        c.draw_series(std::iter::once(Rectangle::new(
            [
                (SegmentValue::Exact(i), 0.0),
                (SegmentValue::Exact(i + 1), *v),
            ],
            color.mix(0.8).filled(),
        )))
        .map_err(err)?;
        c.draw_series(std::iter::once(Text::new(
            format!("{v:.3}"),
            (SegmentValue::CenterOf(i), v * 1.03),
            ("sans-serif", 14),
        )))
        .map_err(err)?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn draw_break_even<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    fixed: f64,
    var_per_1m: f64,
    cloud_per_1m: f64,
    cloud_name: &str,
    cross: Option<f64>,
    xmax: f64,
    node_capacity: f64,
    currency: &str,
) -> Result<(), String> {
    let xm = xmax / 1e6;
    let onprem = |m: f64| fixed + var_per_1m * m;
    let cloud = |m: f64| cloud_per_1m * m;
    let ymax = onprem(xm).max(cloud(xm)).max(1e-9) * 1.1;
    let mut c = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(75)
        .build_cartesian_2d(0.0..xm, 0.0..ymax)
        .map_err(err)?;
    c.configure_mesh()
        .x_desc("output tokens per month (millions)")
        .y_desc(format!("{currency} per month"))
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(err)?;
    let (a, b) = (PALETTE[0], PALETTE[1]);
    c.draw_series(LineSeries::new(
        [(0.0, onprem(0.0)), (xm, onprem(xm))],
        a.stroke_width(2),
    ))
    .map_err(err)?
    .label("on-prem: fixed + energy")
    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], a.stroke_width(2)));
    c.draw_series(LineSeries::new(
        [(0.0, 0.0), (xm, cloud(xm))],
        b.stroke_width(2),
    ))
    .map_err(err)?
    .label(short(cloud_name))
    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], b.stroke_width(2)));
    let cap = node_capacity / 1e6;
    if cap > 0.0 && cap < xm {
        let grey = BLACK.mix(0.45);
        c.draw_series(DashedLineSeries::new(
            [(cap, 0.0), (cap, ymax)],
            6,
            4,
            grey.stroke_width(1),
        ))
        .map_err(err)?;
        c.draw_series(std::iter::once(Text::new(
            format!("one node's capacity ({cap:.0}M/month): beyond it, add nodes"),
            (cap * 1.01, ymax * 0.95),
            ("sans-serif", 13),
        )))
        .map_err(err)?;
    }
    if let Some(v) = cross {
        let m = v / 1e6;
        c.draw_series(std::iter::once(Circle::new(
            (m, cloud(m)),
            7,
            BLACK.stroke_width(2),
        )))
        .map_err(err)?;
        c.draw_series(std::iter::once(Text::new(
            format!("break-even {m:.1}M tokens/month"),
            (m * 1.03, cloud(m) * 0.85),
            ("sans-serif", 15),
        )))
        .map_err(err)?;
    }
    draw_legend(&mut c, SeriesLabelPosition::UpperLeft)?;
    Ok(())
}

/// `charter plan --hybrid`: monthly cost (on-prem, cloud spill, total) against the on-prem
/// node count, with the least-cost point marked.
pub fn hybrid_plan_cost(
    rows: &[HybridPlanRow],
    best: usize,
    currency: &str,
) -> Result<Chart, String> {
    let title = "monthly cost vs on-prem nodes (plan --hybrid)";
    render(
        "hybrid-plan-cost",
        title,
        &|a| draw_plan_cost(a, title, rows, best, currency),
        &|a| draw_plan_cost(a, title, rows, best, currency),
    )
}

fn draw_plan_cost<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    rows: &[HybridPlanRow],
    best: usize,
    currency: &str,
) -> Result<(), String> {
    let xmax = rows.last().map_or(1, |r| r.nodes.max(1)) as f64;
    let ymax = rows
        .iter()
        .map(|r| {
            r.total_per_month
                .max(r.onprem_per_month)
                .max(r.cloud_per_month)
        })
        .fold(1e-9, f64::max)
        * 1.1;
    let mut c = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(75)
        .build_cartesian_2d(0.0..xmax, 0.0..ymax)
        .map_err(err)?;
    c.configure_mesh()
        .x_desc("on-prem nodes")
        .y_desc(format!("{currency} per month"))
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(err)?;
    type Value = fn(&HybridPlanRow) -> f64;
    let series: [(&str, Value); 3] = [
        ("total", |r| r.total_per_month),
        ("on-prem nodes", |r| r.onprem_per_month),
        ("cloud spill", |r| r.cloud_per_month),
    ];
    for (i, (label, value)) in series.into_iter().enumerate() {
        let color = PALETTE[i];
        let width = if i == 0 { 3 } else { 2 };
        c.draw_series(LineSeries::new(
            rows.iter().map(|r| (f64::from(r.nodes), value(r))),
            color.stroke_width(width),
        ))
        .map_err(err)?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
    }
    if let Some(b) = rows.get(best) {
        let at = (f64::from(b.nodes), b.total_per_month);
        c.draw_series(std::iter::once(Circle::new(at, 7, BLACK.stroke_width(2))))
            .map_err(err)?;
        c.draw_series(std::iter::once(Text::new(
            format!(
                "least cost: {} node(s), {:.1} % spilled",
                b.nodes,
                b.spill_fraction * 100.0
            ),
            (at.0 + xmax * 0.02, at.1 + ymax * 0.04),
            ("sans-serif", 15),
        )))
        .map_err(err)?;
    }
    draw_legend(&mut c, SeriesLabelPosition::UpperRight)?;
    Ok(())
}

/// Every chart the data supports.
pub fn all(runs: &[LoadedRun], ch: &Charter) -> Result<Vec<Chart>, String> {
    let mut v = latency_cdfs(runs)?;
    v.extend(load_curves(runs)?);
    v.extend(resource_timelines(runs)?);
    v.extend(spill_over_time(runs)?);
    v.extend(ram_vs_context(runs)?);
    v.extend(cost_charts(ch)?);
    for (i, t) in ch.tokens.iter().enumerate() {
        v.push(crate::tokens::render::chart(t, Some(i))?);
    }
    Ok(v)
}

/// Write `name.svg` and `name.png` for each chart into `dir`.
pub fn write_all(charts: &[Chart], dir: &Path) -> std::io::Result<()> {
    for c in charts {
        std::fs::write(dir.join(format!("{}.svg", c.name)), &c.svg)?;
        std::fs::write(dir.join(format!("{}.png", c.name)), &c.png)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knee_is_where_throughput_stops_growing() {
        let pts = [(1.0, 100.0), (2.0, 190.0), (4.0, 260.0), (8.0, 265.0)];
        assert_eq!(knee(&pts), Some(2));
        assert_eq!(knee(&[(1.0, 10.0), (2.0, 20.0)]), None);
    }
}
