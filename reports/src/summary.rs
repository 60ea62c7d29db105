//! The console summary printed at the end of `charter profile`.

use std::fmt::Write;

use charter_record::{
    KvCacheRecord, Latency, LatencySummary, LevelRecord, LevelRole, LoadProfile, PromptTokenSource,
    RamFit, RoutingSummary, RunRecord, RunStatus, TokenCountSource,
};

fn ms(v: f64) -> String {
    let ms = v * 1e3;
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else if ms >= 10.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.2}")
    }
}

fn opt<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map(f).unwrap_or_else(|| "n/a".into())
}

/// Format a byte count with binary units (for display only; records keep bytes).
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn latency_row(out: &mut String, name: &str, s: &Option<LatencySummary>) {
    match s {
        Some(s) => {
            let _ = writeln!(
                out,
                "  {name:<16} {:>9} {:>9} {:>9} {:>9} {:>9}   (n={})",
                ms(s.p50_s),
                ms(s.p90_s),
                ms(s.p99_s),
                ms(s.max_s),
                ms(s.mean_s),
                s.count
            );
        }
        None => {
            let _ = writeln!(out, "  {name:<16} {:>9}", "n/a");
        }
    }
}

fn level_detail(out: &mut String, r: &RunRecord, l: &LevelRecord) {
    let s = &l.summary;
    let _ = writeln!(
        out,
        "  requests: {} completed, {} failed{}   window: {} s ({} warm-up excluded)",
        s.requests_completed,
        s.requests_failed,
        if s.requests_cancelled > 0 {
            format!(", {} cancelled", s.requests_cancelled)
        } else {
            String::new()
        },
        opt(s.duration_s, |v| format!("{v:.2}")),
        s.warmup_requests_excluded
    );
    if !s.errors.is_empty() {
        let errs: Vec<String> = s.errors.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        let _ = writeln!(out, "  errors: {}", errs.join(", "));
    }
    let _ = writeln!(
        out,
        "  throughput: {} output tokens/s, {} requests/s",
        opt(s.output_token_throughput_per_s, |v| format!("{v:.1}")),
        opt(s.request_throughput_per_s, |v| format!("{v:.3}"))
    );
    if let Some(a) = s.slo_attainment {
        let _ = writeln!(
            out,
            "  SLO: attainment {:.1}%{}, goodput {} req/s, percentiles {}",
            a * 100.0,
            s.slo_attainment_ci95
                .map(|(lo, hi)| format!(" (95% CI {:.1}–{:.1}%)", lo * 100.0, hi * 100.0))
                .unwrap_or_default(),
            opt(s.goodput_per_s, |v| format!("{v:.3}")),
            match s.slo_percentiles_hold {
                Some(true) => "hold",
                Some(false) => "MISSED",
                None => "n/a",
            }
        );
    }
    let _ = writeln!(
        out,
        "\n  latency (ms)     {:>9} {:>9} {:>9} {:>9} {:>9}",
        "p50", "p90", "p99", "max", "mean"
    );
    let open_loop = matches!(l.load, LoadProfile::OpenLoop { .. });
    for m in Latency::ALL {
        let Some(row) = m.console() else { continue };
        let d = m.field(s);
        // Reasoning metrics appear only when the model reasoned.
        let optional = m == Latency::FirstReasoning;
        if (row.open_loop_only && !open_loop) || (optional && d.is_none()) {
            continue;
        }
        latency_row(out, row.label, d);
    }
    if let Some(r) = s.reasoning_tokens {
        let _ = writeln!(
            out,
            "  reasoning: {r} reasoning tokens of {} output tokens; TTFT counts content tokens only (AIPerf's TTFO); decode rules {}",
            s.output_tokens,
            s.decode_rules
                .iter()
                .map(|(k, v)| format!("{}: {v}", k.as_str()))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if let Some(p) = &s.prefill_tokens_per_s {
        let _ = writeln!(
            out,
            "  prefill: {:.0} prompt tokens/s per request (mean; p95 {:.0}), prompt tokens ÷ TTFT",
            p.mean, p.p95
        );
    }
    if let Some(r) = &s.routing {
        routing_lines(out, r);
    }
    let res = &l.resources;
    let _ = writeln!(out);
    match &res.process_cpu_cores {
        Some(c) => {
            let _ = writeln!(
                out,
                "  CPU cores used: mean {:.2}, p95 {:.2} (of {} logical); system busy mean {}",
                c.mean,
                c.p95,
                r.host.logical_cores,
                opt(res.system_busy_cores.as_ref().map(|v| v.mean), |v| format!(
                    "{v:.2}"
                ))
            );
        }
        None => {
            let why = res
                .unmeasured
                .get("process_cpu")
                .or_else(|| res.unmeasured.get("window"))
                .map_or("no sample inside the window", String::as_str);
            let _ = writeln!(out, "  CPU cores used: not measured ({why})");
        }
    }
    let _ = writeln!(
        out,
        "  RSS: peak {}, baseline after load {}",
        res.peak_rss_bytes
            .map(human_bytes)
            .unwrap_or_else(|| "not measured".into()),
        res.ram_baseline_bytes
            .map(human_bytes)
            .unwrap_or_else(|| "not measured".into())
    );
    if l.contention.other_cores.is_none() {
        if let Some(why) = res.unmeasured.get("other_cores") {
            let _ = writeln!(out, "  other processes: not measured ({why})");
        }
    }
    if let Some(o) = &l.contention.other_cores {
        let _ = writeln!(
            out,
            "  other processes: {:.2} cores mean, p95 {:.2}{}",
            o.mean,
            o.p95,
            if l.contention.flagged {
                format!(
                    " — CONTENDED (above {:.2}): these numbers were taken on a machine other work was using",
                    l.contention.threshold_cores
                )
            } else {
                String::new()
            }
        );
    }
    telemetry_lines(out, res, r.backend.kv_cache.as_ref());
    if let Some(sm) = &res.sampler {
        let _ = writeln!(
            out,
            "  sampler: {} samples every {} ms, cost {:.3}% of one core",
            sm.samples,
            ms(sm.interval_s),
            sm.overhead_fraction_of_core * 100.0
        );
    }
}

/// Instances, RAM per 1k tokens, GPUs, energy, watched processes, idle baseline, and what was
/// not measured.
/// Requests, failures and latency per tier; the spill and how it happened.
fn routing_lines(out: &mut String, r: &RoutingSummary) {
    let mut head = String::from("  routing:");
    if let Some(f) = r.spill_fraction {
        let _ = write!(head, " {:.1} % spilled past the first tier", f * 100.0);
        if !r.spill_reasons.is_empty() {
            let reasons: Vec<String> = r
                .spill_reasons
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            let _ = write!(head, " ({})", reasons.join(", "));
        }
        let _ = write!(
            head,
            "; first spill {}",
            opt(r.first_spill_after_s, |t| format!(
                "{t:.2} s into the window"
            ))
        );
    }
    if let Some(f) = r.tier_flips_per_min {
        let _ = write!(head, "; {f:.1} tier changes/min");
    }
    let _ = writeln!(out, "{head}");
    for (name, t) in &r.tiers {
        let p = |s: &Option<LatencySummary>| {
            opt(s.as_ref(), |s| {
                format!("p50 {} p99 {}", ms(s.p50_s), ms(s.p99_s))
            })
        };
        let _ = writeln!(
            out,
            "    {name}: {} request(s), {} failed; TTFT ms {}; E2E ms {}",
            t.requests,
            t.requests_failed,
            p(&t.ttft),
            p(&t.e2e)
        );
    }
}

fn telemetry_lines(out: &mut String, res: &crate::ResourceSummary, kv: Option<&KvCacheRecord>) {
    if let Some(i) = &res.instances {
        let per: Vec<String> = i
            .per_instance
            .iter()
            .map(|p| opt(p.cpu_cores, |c| format!("{c:.2}")))
            .collect();
        let _ = writeln!(
            out,
            "  CPU per instance ({} isolation): mean {} cores [{}]; {} of CPU time attributed to instances",
            i.isolation,
            opt(i.cpu_cores_per_instance_mean, |c| format!("{c:.2}")),
            per.join(", "),
            opt(i.attributed_cpu_fraction, |f| format!("{:.0} %", f * 100.0))
        );
        if let Some(m) = i.rss_bytes_per_instance_mean {
            let _ = writeln!(out, "  RSS per instance: mean {}", human_bytes(m as u64));
        }
    }
    match &res.ram_per_1k_tokens {
        Some(f) => {
            let _ = writeln!(
                out,
                "  RAM per 1k tokens of context: {}",
                ram_fit_words(f, kv)
            );
            for other in res.ram_fits.iter().skip(1) {
                let _ = writeln!(out, "    beside it: {}", ram_fit_words(other, None));
            }
        }
        None => {
            if let Some(why) = res.unmeasured.get("ram_per_1k_tokens") {
                let _ = writeln!(out, "  RAM per 1k tokens of context: not measured ({why})");
            }
        }
    }
    for g in &res.gpus {
        let _ = writeln!(
            out,
            "  GPU {} {}: utilisation mean {}, idle {} of samples (< {} %), memory {} of {}, power mean {}, energy {}",
            g.index,
            g.name,
            opt(g.utilization_pct.as_ref().map(|v| v.mean), |v| format!("{v:.0} %")),
            opt(g.idle_fraction, |v| format!("{:.0} %", v * 100.0)),
            g.idle_threshold_pct,
            opt(g.memory_used_bytes.as_ref().map(|v| v.max), |v| human_bytes(v as u64)),
            opt(g.memory_total_bytes, human_bytes),
            opt(g.power_w.as_ref().map(|v| v.mean), |v| format!("{v:.1} W")),
            opt(g.energy_j.zip(g.energy_method.as_ref()), |(j, m)| format!("{j:.1} J ({m})")),
        );
    }
    if let Some(e) = &res.energy {
        let _ = writeln!(
            out,
            "  energy: CPU {}, GPU {}; {} per output token, {} per request{}",
            opt(e.cpu_j.zip(e.cpu_method.as_ref()), |(j, m)| format!(
                "{j:.1} J ({m})"
            )),
            opt(e.gpu_j.zip(e.gpu_method.as_ref()), |(j, m)| format!(
                "{j:.1} J ({m})"
            )),
            opt(e.per_output_token_j, |j| format!("{j:.4} J")),
            opt(e.per_request_j, |j| format!("{j:.2} J")),
            opt(e.net_per_output_token_j, |j| format!(
                "; net of idle power {j:.4} J per output token"
            ))
        );
    }
    for w in &res.watched {
        let _ = writeln!(
            out,
            "  watched {}: CPU {} cores, RSS mean {}",
            w.label,
            opt(w.cpu_cores, |c| format!("{c:.2}")),
            opt(w.rss_bytes.as_ref().map(|v| v.mean), |v| human_bytes(
                v as u64
            ))
        );
    }
    if let Some(b) = &res.idle_baseline {
        let _ = writeln!(
            out,
            "  idle baseline ({:.1} s before traffic): process CPU {} cores, system busy {}, CPU power {}, GPU power {}",
            b.duration_s,
            opt(b.process_cpu_cores, |v| format!("{v:.3}")),
            opt(b.system_busy_cores, |v| format!("{v:.2}")),
            opt(b.cpu_power_w, |v| format!("{v:.1} W")),
            opt(b.gpu_power_w, |v| format!("{v:.1} W"))
        );
    }
    for (k, why) in &res.unmeasured {
        // Those three have their own lines above.
        if !matches!(
            k.as_str(),
            "ram_per_1k_tokens" | "other_cores" | "process_cpu"
        ) {
            let _ = writeln!(out, "  {k}: not measured ({why})");
        }
    }
}

/// What a remote run's counts rest on, when it is not what one would assume: usage that never
/// came, caps the server ignored, prompt lengths the server saw differently, tokenizer counts
/// that disagree with usage, and kept-alive connections the server had closed.
pub fn remote_notes(r: &RunRecord) -> Vec<String> {
    let Some(remote) = &r.backend.remote else {
        return Vec::new();
    };
    let mut notes = Vec::new();
    let completed: u64 = r.levels.iter().map(|l| l.summary.requests_completed).sum();
    let sources = |f: &dyn Fn(&LevelRecord) -> Vec<String>| -> String {
        let mut v: Vec<String> = r.levels.iter().flat_map(f).collect();
        v.sort();
        v.dedup();
        v.join(", ")
    };
    let usage_seen = r.levels.iter().any(|l| {
        l.summary
            .token_count_sources
            .contains_key(&TokenCountSource::Usage)
            || l.summary
                .prompt_token_sources
                .contains_key(&PromptTokenSource::Usage)
    });
    if remote.include_usage_requested && completed > 0 && !usage_seen {
        notes.push(format!(
            "usage requested but never sent by the server; counts from {} (output), {} (prompt)",
            sources(&|l| l
                .summary
                .token_count_sources
                .keys()
                .map(|k| k.to_string())
                .collect()),
            sources(&|l| l
                .summary
                .prompt_token_sources
                .keys()
                .map(|k| k.to_string())
                .collect()),
        ));
    }
    // Without a tokenizer, charter's own prompt lengths are estimates.
    let estimated = r.backend.tokenizer.is_none();
    let estimates_used = r.levels.iter().any(|l| {
        l.summary
            .prompt_token_sources
            .contains_key(&PromptTokenSource::Estimate)
    });
    if estimates_used {
        notes.push(
            "prompt lengths are estimates: without --tokenizer a synthetic prompt of N tokens is N common words, and text is counted in words".into(),
        );
    }
    for l in &r.levels {
        let s = &l.summary;
        let i = l.index;
        if s.cap_ignored > 0 {
            notes.push(format!(
                "level {i} WARNING: {} of {} completed requests produced more output tokens than the cap they sent ({}): the server ignores that field{}",
                s.cap_ignored,
                s.requests_completed,
                remote.length_field,
                if remote.length_field == charter_record::LengthField::MaxCompletionTokens {
                    " (try --length-field max-tokens)"
                } else {
                    ""
                }
            ));
        }
        if let Some(c) = s
            .prompt_tokens_usage_vs_intended
            .as_ref()
            .filter(|c| c.differing > 0)
        {
            let chat = remote.endpoint.ends_with("/chat/completions")
                || remote.api == charter_record::Api::Anthropic;
            let why = match (chat, estimated) {
                (true, true) => "the intended lengths are estimates (no --tokenizer), and the server's count includes its chat template",
                (true, false) => "chat requests: the server's count includes its chat template",
                (false, true) => "the intended lengths are estimates (no --tokenizer)",
                (false, false) => "is --tokenizer the server's tokenizer? does the server add a BOS token?",
            };
            notes.push(format!(
                "level {i}: the server counted a different prompt length than intended in {} of {} requests: {:+.1} tokens on average ({:+} to {:+}); {why}",
                c.differing, c.requests, c.mean_difference, c.min_difference, c.max_difference
            ));
        }
        if let Some(c) = s
            .output_tokens_usage_vs_tokenizer
            .as_ref()
            .filter(|c| c.differing > 0)
        {
            notes.push(format!(
                "level {i}: the tokenizer's output count differs from the server's usage in {} of {} requests: usage − tokenizer {:+.2} on average ({:+} to {:+}); usage is used",
                c.differing, c.requests, c.mean_difference, c.min_difference, c.max_difference
            ));
        }
        if s.stale_reconnects > 0 {
            notes.push(format!(
                "level {i}: {} request(s) found their kept-alive connection closed by the server and went out on a new one (stale_connection in requests.csv)",
                s.stale_reconnects
            ));
        }
    }
    notes
}

/// [`human_bytes`] of a possibly negative amount (e.g. a fitted slope).
pub fn signed_human_bytes(v: f64) -> String {
    if v < 0.0 {
        format!("−{}", human_bytes((-v) as u64))
    } else {
        human_bytes(v as u64)
    }
}

/// Bytes per token in decimal kilobytes, as architectures are quoted ("13.8 kB/token").
fn kb_per_token(bytes_per_token: f64) -> String {
    format!("{:.1} kB/token", bytes_per_token / 1e3)
}

/// A RAM-per-1k-tokens fit in words, the same in every output: the finding with its signal
/// and support, beside what the model's KV cache costs by construction; or "inconclusive" with
/// the reasons and the workload that gives a clean fit. Never a bare unsupported slope.
pub fn ram_fit_words(f: &RamFit, kv: Option<&KvCacheRecord>) -> String {
    let signal = f.signal.map(|s| s.describe()).unwrap_or("memory");
    let support = format!(
        "{signal}, R² {:.2}, {} samples, {}–{} live tokens",
        f.r_squared, f.samples, f.live_tokens_min, f.live_tokens_max
    );
    let expected = kv.map(|k| {
        format!(
            "the architecture says {} ({} KV cache)",
            kb_per_token(k.bytes_per_token as f64),
            k.dtype
        )
    });
    match (f.bytes_per_1k_tokens, &f.inconclusive) {
        (Some(b), _) => {
            let vs = expected
                .map(|e| format!("; measured {}, {e}", kb_per_token(b / 1e3)))
                .unwrap_or_default();
            format!("{} ({support}{vs})", signed_human_bytes(b))
        }
        (None, why) => {
            // A cache that grows by less than a MiB over the span is below what a process's
            // memory signal resolves: a longer context, not the probe, is what would help.
            let growth = kv.map(|k| {
                k.bytes_per_token as f64
                    * f.live_tokens_max.saturating_sub(f.live_tokens_min) as f64
            });
            let hint = match growth {
                Some(g) if g < (1u64 << 20) as f64 && f.samples > 0 => format!(
                    "the KV cache grows by only {} over this span, too little for the {signal} to resolve",
                    human_bytes(g as u64)
                ),
                _ => crate::resources::ram::RAM_PROBE_HINT.to_string(),
            };
            format!(
                "inconclusive ({signal}: {}{}; {hint})",
                why.as_deref().unwrap_or("unsupported fit"),
                expected.map(|e| format!("; {e}")).unwrap_or_default(),
            )
        }
    }
}

/// A fit's cell in a level table: the amount, or "inconclusive".
pub fn ram_fit_cell(f: &RamFit) -> String {
    match f.bytes_per_1k_tokens {
        Some(b) => signed_human_bytes(b),
        None => "inconclusive".into(),
    }
}

fn p(s: &Option<LatencySummary>, f: fn(&LatencySummary) -> f64) -> String {
    s.as_ref().map(|s| ms(f(s))).unwrap_or_else(|| "n/a".into())
}

fn levels_table(out: &mut String, r: &RunRecord) {
    let _ = writeln!(
        out,
        "  {:>2} {:<10} {:<24} {:>5} {:>4} {:>8} {:>7} {:>9} {:>9} {:>8} {:>8} {:>9} {:>6} {:>7}  flags",
        "#", "role", "load", "done", "fail", "tok/s", "req/s", "TTFT p50", "TTFT p99", "ITL p50",
        "ITL p99", "E2E p99", "cores", "attain"
    );
    for l in &r.levels {
        let s = &l.summary;
        let role = match l.role {
            LevelRole::Measure => "measure",
            LevelRole::SaturationProbe => "saturation",
            LevelRole::Search => "search",
        };
        let mut flags = Vec::new();
        if l.client_bound.flagged {
            flags.push("CLIENT-BOUND".to_string());
        }
        if l.contention.flagged {
            flags.push("CONTENDED".to_string());
        }
        if l.sustainable == Some(false) {
            flags.push("not sustainable".to_string());
        }
        if let Some(c) = l.completed_to_offered {
            flags.push(format!("completed/offered {c:.2}"));
        }
        let _ = writeln!(
            out,
            "  {:>2} {:<10} {:<24} {:>5} {:>4} {:>8} {:>7} {:>9} {:>9} {:>8} {:>8} {:>9} {:>6} {:>7}  {}",
            l.index,
            role,
            l.load.label(),
            s.requests_completed,
            s.requests_failed,
            opt(s.output_token_throughput_per_s, |v| format!("{v:.1}")),
            opt(s.request_throughput_per_s, |v| format!("{v:.2}")),
            p(&s.ttft_from_intended, |x| x.p50_s),
            p(&s.ttft_from_intended, |x| x.p99_s),
            p(&s.itl, |x| x.p50_s),
            p(&s.itl, |x| x.p99_s),
            p(&s.e2e_from_intended, |x| x.p99_s),
            opt(l.resources.process_cpu_cores.as_ref().map(|c| c.mean), |v| format!("{v:.2}")),
            opt(s.slo_attainment, |v| format!("{:.1}%", v * 100.0)),
            flags.join(", ")
        );
    }
    let _ = writeln!(
        out,
        "  (latencies in ms, open-loop levels measured from the intended start)"
    );
}

/// Model load time (outside the run's timings), the weight formats that ran and the KV cache
/// element type, for in-process models.
pub fn load_line(r: &RunRecord) -> Option<String> {
    let b = &r.backend;
    if b.remote.is_some() || b.kind == "simulated" {
        return None;
    }
    let mut line = format!(
        "model load: {:.2} s (before the run, not in its timings); weights {}",
        b.load_time_s, b.dtype
    );
    if let Some(c) = &b.weights_conversion {
        let _ = write!(line, ", {}", c.describe());
    }
    if let Some(kv) = &b.kv_cache {
        let _ = write!(
            line,
            "; KV cache {} ({})",
            kv.dtype,
            kb_per_token(kv.bytes_per_token as f64)
        );
    }
    if let Some(p) = &b.prefill_matmul {
        // The method up to its first clause: the record has the rest.
        let _ = write!(line, "; prefill: {}", p.split(';').next().unwrap_or(p));
    }
    if b.pinning.is_some() {
        line.push_str("; threads pinned");
    }
    Some(line)
}

/// Render the human summary of a run record; `run_dir` is where the record was written.
pub fn render_console(r: &RunRecord, run_dir: &str) -> String {
    let mut out = String::new();
    let status = match r.status {
        RunStatus::Finished => "finished",
        RunStatus::Interrupted => "INTERRUPTED (partial results)",
        RunStatus::Running => "running",
    };
    let _ = writeln!(
        out,
        "charter profile: {} on {} ({} thread(s)/instance) — {status}",
        r.backend.model, r.backend.kind, r.backend.threads_per_instance
    );
    if let Some(line) = load_line(r) {
        let _ = writeln!(out, "  {line}");
    }
    let w = &r.workload;
    let _ = writeln!(
        out,
        "  prompts: {}; max output tokens: {}",
        w.prompt.source, w.max_tokens
    );
    if let Some(t) = &w.trace {
        let _ = writeln!(
            out,
            "  trace: {} ({}, {} of {} rows, sha256 {}), speed ×{}{}, spanning {:.3}s",
            t.path,
            t.format,
            t.rows,
            t.rows_in_file,
            &t.sha256[..t.sha256.len().min(12)],
            t.speed,
            t.window
                .as_ref()
                .map(|w| format!(", window {w}"))
                .unwrap_or_default(),
            t.replay_span_s
        );
    }
    if let Some(sessions) = &w.sessions {
        let _ = writeln!(out, "  sessions: {sessions}");
    }
    if let Some(h) = w.ideal_prefix_cache_hit_rate {
        let _ = writeln!(
            out,
            "  expected prefix-cache hit rate: {:.1}% of prompt tokens (an ideal, unbounded cache over the requests sent)",
            h * 100.0
        );
    }
    match r.levels.as_slice() {
        [] => {
            let _ = writeln!(out, "  no level was measured");
        }
        [only] => {
            let _ = writeln!(out, "  load: {}", only.load.label());
            level_detail(&mut out, r, only);
        }
        _ => {
            let _ = writeln!(out);
            levels_table(&mut out, r);
        }
    }
    for l in &r.levels {
        for reason in &l.client_bound.reasons {
            let _ = writeln!(out, "  level {} CLIENT-BOUND: {reason}", l.index);
        }
    }
    for l in &r.levels {
        if let Some(sessions) = &l.sessions {
            let line = crate::sessions::sentence(l.index, &l.load.label(), sessions);
            let _ = writeln!(out, "  {line}");
        }
    }
    crate::server_metrics::console_lines(&mut out, r);
    for note in remote_notes(r) {
        let _ = writeln!(out, "  {note}");
    }
    if let Some(s) = &r.search {
        let _ = writeln!(
            out,
            "\n  SLO search ({}; attainment ≥ {:.0}%):",
            s.slo,
            s.attainment_target * 100.0
        );
        match (s.best_rate_per_s, s.best_attainment) {
            (Some(rate), Some(a)) => {
                let _ = writeln!(
                    out,
                    "  highest rate meeting it: {rate:.3} req/s (level {}), attainment {:.1}%{} over {} requests",
                    s.best_level.unwrap_or_default(),
                    a * 100.0,
                    s.best_attainment_ci95
                        .map(|(lo, hi)| format!(" (95% CI {:.1}–{:.1}%)", lo * 100.0, hi * 100.0))
                        .unwrap_or_default(),
                    s.best_requests.unwrap_or_default()
                );
            }
            _ => {
                let _ = writeln!(out, "  no rate tried met the target");
            }
        }
        let _ = writeln!(out, "  stopped because: {}", s.stopped_because);
    }
    let _ = writeln!(out, "\n  run record: {run_dir}/run.json");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_human() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }
}
