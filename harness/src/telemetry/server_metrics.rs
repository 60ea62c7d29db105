//! `--server-metrics URL`: the server's own Prometheus metrics, scraped by one thread at the
//! sampler's interval on the run's clock into `server_metrics.csv` (long format: `t_s, source,
//! metric, labels, value, error`; every sample of every scrape, and one error row per failed
//! scrape). The known gauges and counters ([`charter_reports::server_metrics::KNOWN`]) are kept
//! per scrape for the level summaries.
//!
//! With `--backend openai` and no `--server-metrics`, `{base}/metrics` (the base URL without
//! `/v1`) is tried once at the start; when it does not answer with an exposition the source is
//! recorded "not measured (reason)" and the run goes on. A failed or malformed scrape is an
//! error row and a count, never a failed run. The backend's API key goes with a scrape only to
//! the backend's own origin, and never into a file (errors are scrubbed of it).
//!
//! A hybrid backend with `--hybrid-policy queue-wait` routes by its tiers' own waiting
//! requests: each tier before the last is probed at its `metrics_url` (default: `{base}/metrics`
//! of an `openai` tier) and, when that answers with a known waiting gauge, scraped with the
//! rest; every scrape hands the reading to the router ([`ServerWaiting`]), and a failed one
//! leaves it to charter's own in-flight count until the next. Which signal each tier used is
//! recorded ([`ServerScraper::waiting_signals`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use charter_backends::hybrid::ServerWaiting;
use charter_backends::remote::{Api, RemoteOptions};
use charter_backends::secrets::Secrets;
use charter_backends::{BackendSpec, HybridPolicy};
use charter_record::{LevelServerMetrics, ServerMetricsSource, WaitingSignal};
use charter_reports::server_metrics::{self as sm, Meaning, ScrapePoint, KNOWN};
use reqwest::header::{HeaderValue, AUTHORIZATION};

use crate::rundir::{self, RunDir};
use crate::CliError;

/// The longest a scrape may take.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(2);
/// The value of `--server-metrics` that turns the default off.
pub const NONE: &str = "none";

/// One endpoint to scrape.
struct Target {
    url: reqwest::Url,
    /// Sent only to the backend's own origin.
    auth: Option<HeaderValue>,
    record: ServerMetricsSource,
    points: Vec<ScrapePoint>,
    /// Queue-wait: the hybrid tiers whose routers read this endpoint's waiting count.
    feeds: Vec<Arc<ServerWaiting>>,
}

/// Queue-wait: one hybrid tier's waiting signal.
struct TierWatch {
    tier: usize,
    waiting: Arc<ServerWaiting>,
    /// The tier's metrics endpoint, to be probed at the start.
    probe: Option<Target>,
    signal: WaitingSignal,
}

/// The URL as recorded: user name and password removed.
fn shown(url: &reqwest::Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
}

/// What `--server-metrics` asks for, resolved against the backend.
struct Plan {
    client: reqwest::Client,
    targets: Vec<Target>,
    /// The default endpoint, tried once (`--backend openai` without `--server-metrics`).
    probe: Option<Target>,
    /// Queue-wait tiers, with the endpoint each is to be read from.
    watches: Vec<TierWatch>,
    secrets: Secrets,
}

/// An API key from its environment variable.
fn key_of(o: &RemoteOptions) -> Option<String> {
    o.api_key_env
        .as_ref()
        .and_then(|v| std::env::var(v).ok())
        .map(|k| k.trim().to_string())
        .filter(|k| !k.is_empty())
}

/// `{base}/metrics`: an OpenAI-compatible server's base URL without `/v1`.
fn default_metrics_url(o: &RemoteOptions) -> Option<reqwest::Url> {
    let mut u = reqwest::Url::parse(&o.base_url).ok()?;
    let path = u.path().trim_end_matches('/');
    let path = path.strip_suffix("/v1").unwrap_or(path).to_string();
    u.set_path(&format!("{path}/metrics"));
    u.set_query(None);
    Some(u)
}

fn plan(urls: &[String], backend: &BackendSpec) -> Result<Plan, CliError> {
    let remotes: Vec<&RemoteOptions> = match backend {
        BackendSpec::Remote(o) => vec![o],
        BackendSpec::Hybrid(h) => h
            .tiers
            .iter()
            .filter_map(|t| match &t.spec {
                BackendSpec::Remote(o) => Some(o),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    // A key goes only to the origin of the OpenAI-compatible backend it belongs to.
    let auth_for = |url: &reqwest::Url| {
        remotes
            .iter()
            .filter(|o| o.api == Api::Openai)
            .find(|o| reqwest::Url::parse(&o.base_url).is_ok_and(|b| b.origin() == url.origin()))
            .and_then(|o| key_of(o))
            .and_then(|k| HeaderValue::from_str(&format!("Bearer {k}")).ok())
            .map(|mut v| {
                v.set_sensitive(true);
                v
            })
    };
    let target = |url: reqwest::Url| Target {
        auth: auth_for(&url),
        record: ServerMetricsSource {
            url: shown(&url),
            measured: false,
            reason: None,
            scrapes: 0,
            scrape_errors: 0,
            recognised: Default::default(),
        },
        url,
        points: Vec::new(),
        feeds: Vec::new(),
    };
    let mut targets = Vec::new();
    for u in urls.iter().filter(|u| u.as_str() != NONE) {
        let url = reqwest::Url::parse(u)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| {
                CliError::BadInput(format!(
                    "--server-metrics {u:?}: expected an http:// or https:// URL such as http://127.0.0.1:8000/metrics, or `none`"
                ))
            })?;
        targets.push(target(url));
    }
    let probe = match backend {
        BackendSpec::Remote(o) if urls.is_empty() && o.api == Api::Openai => {
            default_metrics_url(o).map(target)
        }
        _ => None,
    };
    let mut watches = Vec::new();
    if let BackendSpec::Hybrid(h) = backend {
        if h.policy == HybridPolicy::QueueWait {
            let routed = h.tiers.len().saturating_sub(1);
            for (i, t) in h.tiers.iter().enumerate().take(routed) {
                let url = match (&t.metrics_url, &t.spec) {
                    (Some(u), _) if u == NONE => Err("metrics_url = \"none\"".to_string()),
                    (Some(u), _) => reqwest::Url::parse(u).map_err(|e| format!("{u}: {e}")),
                    (None, BackendSpec::Remote(o)) if o.api == Api::Openai => {
                        default_metrics_url(o).ok_or_else(|| "no metrics URL".into())
                    }
                    (None, spec) => Err(format!(
                        "a {} tier has no metrics endpoint (set metrics_url)",
                        spec.label()
                    )),
                };
                let (probe, fallback_reason) = match url {
                    Ok(u) => (Some(target(u)), None),
                    Err(e) => (None, Some(e)),
                };
                watches.push(TierWatch {
                    tier: i,
                    waiting: Arc::clone(&t.server_waiting),
                    probe,
                    signal: WaitingSignal {
                        fallback_reason,
                        ..Default::default()
                    },
                });
            }
        }
    }
    let keys: Vec<String> = remotes.iter().filter_map(|o| key_of(o)).collect();
    Ok(Plan {
        client: client(&remotes)?,
        targets,
        probe,
        watches,
        secrets: Secrets::new(keys),
    })
}

/// The scrapes' HTTP client: it trusts what the backends' clients trust (`--ca-cert`,
/// `--insecure`).
fn client(remotes: &[&RemoteOptions]) -> Result<reqwest::Client, CliError> {
    let failed = |e: String| CliError::Failure(anyhow::anyhow!("metrics scraper client: {e}"));
    let mut b = reqwest::Client::builder().timeout(SCRAPE_TIMEOUT);
    for o in remotes {
        for c in charter_backends::remote::trusted_roots(o).map_err(|e| failed(e.to_string()))? {
            b = b.add_root_certificate(c);
        }
        if o.insecure {
            b = b.danger_accept_invalid_certs(true);
        }
    }
    b.build().map_err(|e| failed(e.to_string()))
}

/// One scrape: the exposition's samples, or why there is none.
async fn fetch(
    client: &reqwest::Client,
    t: &Target,
    secrets: &Secrets,
) -> Result<Vec<sm::RawSample>, String> {
    let mut req = client.get(t.url.clone());
    if let Some(a) = &t.auth {
        req = req.header(AUTHORIZATION, a.clone());
    }
    let scrub = |e: String| secrets.clip(&e, 300);
    let resp = req
        .send()
        .await
        .map_err(|e| scrub(format!("GET failed: {}", e.without_url())))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!("GET answered {status}"));
    }
    let body = resp
        .text()
        .await
        .map_err(|e| scrub(format!("reading the body: {}", e.without_url())))?;
    sm::parse(&body).map_err(|e| scrub(format!("not a Prometheus exposition: {e}")))
}

struct Shared {
    targets: Vec<Target>,
    csv: Option<csv::Writer<std::io::BufWriter<std::fs::File>>>,
    write_error: Option<String>,
}

/// The scraper: started with the run, stopped at its end.
pub struct ServerScraper {
    shared: Arc<Mutex<Shared>>,
    /// Sources tried at the start that are not scraped (not measured).
    absent: Vec<ServerMetricsSource>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
    /// At least one source is scraped (and `server_metrics.csv` written).
    active: bool,
    interval: Duration,
    /// Queue-wait tiers of a hybrid backend.
    watches: Vec<TierWatch>,
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Failure(anyhow::anyhow!("starting the metrics scraper: {e}")))
}

fn scrape_all(
    rt: &tokio::runtime::Runtime,
    client: &reqwest::Client,
    shared: &Mutex<Shared>,
    secrets: &Secrets,
    epoch: Instant,
) {
    let n = shared.lock().map(|s| s.targets.len()).unwrap_or(0);
    for i in 0..n {
        let Ok(mut g) = shared.lock() else { return };
        let t_s = epoch.elapsed().as_secs_f64();
        // The lock is held during the scrape: level summaries wait for it, which they would do
        // anyway to see a scrape after the window.
        let got = rt.block_on(fetch(client, &g.targets[i], secrets));
        let s = &mut *g;
        let target = &mut s.targets[i];
        let source = target.record.url.clone();
        let t = format!("{t_s:.6}");
        let mut rows: Vec<[String; 6]> = Vec::new();
        match got {
            Ok(samples) => {
                let (values, names) = sm::read_meanings(&samples);
                let waiting = sm::value_of(&values, Meaning::Waiting);
                target.feeds.iter().for_each(|f| f.set(waiting));
                for ((meaning, _), name) in KNOWN.iter().zip(names) {
                    if let Some(name) = name {
                        target
                            .record
                            .recognised
                            .entry(meaning.key().to_string())
                            .or_insert_with(|| name.to_string());
                    }
                }
                target.record.scrapes += 1;
                target.record.measured = true;
                target.record.reason = None;
                target.points.push(ScrapePoint {
                    t_s,
                    values: Some(values),
                });
                rows.extend(samples.into_iter().map(|x| {
                    [
                        t.clone(),
                        source.clone(),
                        x.name,
                        x.labels,
                        x.value.to_string(),
                        String::new(),
                    ]
                }));
            }
            Err(e) => {
                target.record.scrape_errors += 1;
                target.feeds.iter().for_each(|f| f.set(None));
                if !target.record.measured && target.record.reason.is_none() {
                    target.record.reason = Some(format!("not measured ({e})"));
                }
                target.points.push(ScrapePoint { t_s, values: None });
                rows.push([
                    t.clone(),
                    source,
                    String::new(),
                    String::new(),
                    String::new(),
                    e,
                ]);
            }
        }
        if let Some(w) = s.csv.as_mut() {
            let r = rows
                .iter()
                .try_for_each(|r| w.write_record(r))
                .and_then(|()| w.flush().map_err(csv::Error::from));
            if let Err(e) = r {
                s.write_error.get_or_insert(e.to_string());
            }
        }
    }
}

impl ServerScraper {
    /// Resolve the sources, try the default endpoint once, and start scraping every
    /// `interval` on the clock whose zero is `epoch` (one scrape before returning).
    pub fn start(
        urls: &[String],
        backend: &BackendSpec,
        epoch: Instant,
        interval: Duration,
        dir: &RunDir,
    ) -> Result<Self, CliError> {
        let Plan {
            client,
            mut targets,
            probe,
            mut watches,
            secrets,
        } = plan(urls, backend)?;
        let rt = runtime()?;
        let mut absent = Vec::new();
        for w in &mut watches {
            let Some(probe) = w.probe.take() else {
                continue;
            };
            let shown_url = probe.record.url.clone();
            let known = targets.iter().position(|t| t.url == probe.url);
            let read = rt.block_on(fetch(&client, &probe, &secrets));
            let metric = read.and_then(|samples| {
                let (_, names) = sm::read_meanings(&samples);
                let i = KNOWN.iter().position(|(m, _)| *m == Meaning::Waiting);
                i.and_then(|i| names[i]).ok_or_else(|| {
                    "no waiting gauge (vllm:num_requests_waiting, llamacpp:requests_deferred, ...)"
                        .to_string()
                })
            });
            match metric {
                Ok(name) => {
                    w.signal.url = Some(shown_url);
                    w.signal.metric = Some(name.to_string());
                    let i = known.unwrap_or_else(|| {
                        targets.push(probe);
                        targets.len() - 1
                    });
                    targets[i].feeds.push(Arc::clone(&w.waiting));
                }
                Err(e) => {
                    eprintln!(
                        "charter: queue-wait: tier #{} goes by charter's in-flight count: {shown_url}: {e}",
                        w.tier + 1
                    );
                    w.signal.fallback_reason = Some(format!("{shown_url}: {e}"));
                }
            }
        }
        if let Some(mut p) = probe {
            match rt.block_on(fetch(&client, &p, &secrets)) {
                Ok(_) => targets.push(p),
                Err(e) => {
                    eprintln!(
                        "charter: server metrics: {} not measured ({e})",
                        p.record.url
                    );
                    p.record.reason = Some(format!("not measured ({e})"));
                    absent.push(p.record);
                }
            }
        }
        let csv = if targets.is_empty() {
            None
        } else {
            let mut w = csv::Writer::from_writer(
                dir.data_file(rundir::SERVER_METRICS_CSV)
                    .map_err(CliError::Failure)?,
            );
            w.write_record(["t_s", "source", "metric", "labels", "value", "error"])
                .map_err(|e| CliError::Failure(e.into()))?;
            Some(w)
        };
        let active = !targets.is_empty();
        let shared = Arc::new(Mutex::new(Shared {
            targets,
            csv,
            write_error: None,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let handle = if active {
            scrape_all(&rt, &client, &shared, &secrets, epoch);
            let (shared, stop) = (Arc::clone(&shared), Arc::clone(&stop));
            Some(
                std::thread::Builder::new()
                    .name("charter-server-metrics".into())
                    .spawn(move || {
                        let mut next = Instant::now() + interval;
                        while !stop.load(Ordering::Acquire) {
                            std::thread::park_timeout(
                                next.saturating_duration_since(Instant::now()),
                            );
                            if Instant::now() < next && !stop.load(Ordering::Acquire) {
                                continue;
                            }
                            scrape_all(&rt, &client, &shared, &secrets, epoch);
                            next += interval;
                            if next < Instant::now() {
                                next = Instant::now() + interval;
                            }
                        }
                    })
                    .map_err(|e| CliError::Failure(e.into()))?,
            )
        } else {
            None
        };
        Ok(Self {
            shared,
            absent,
            stop,
            handle,
            active,
            interval,
            watches,
        })
    }

    /// Queue-wait: each routed tier's waiting signal so far (tier index, signal).
    pub fn waiting_signals(&self) -> Vec<(usize, WaitingSignal)> {
        self.watches
            .iter()
            .map(|w| {
                let (by_server, by_count) = w.waiting.decisions();
                let signal = WaitingSignal {
                    decisions_by_server: by_server,
                    decisions_by_count: by_count,
                    ..w.signal.clone()
                };
                (w.tier, signal)
            })
            .collect()
    }

    /// Whether `server_metrics.csv` is written.
    pub fn writes_csv(&self) -> bool {
        self.active
    }

    /// Every source's summary over `window` (run clock), once each has been scraped after its
    /// end (waiting at most a few intervals and a scrape's timeout).
    pub fn level(&self, window: Option<(f64, f64)>) -> Vec<LevelServerMetrics> {
        let Some((a, b)) = window else {
            return Vec::new();
        };
        if !self.active {
            return Vec::new();
        }
        let deadline = Instant::now() + self.interval * 3 + SCRAPE_TIMEOUT;
        loop {
            let after = self.shared.lock().is_ok_and(|s| {
                s.targets
                    .iter()
                    .all(|t| t.points.last().is_some_and(|p| p.t_s >= b))
            });
            if after || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.shared
            .lock()
            .map(|s| {
                s.targets
                    .iter()
                    .map(|t| sm::summarise(&t.record.url, &t.points, (a, b)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every source as the record keeps it: scraped ones with their counts, absent ones with
    /// the reason.
    pub fn sources(&self) -> Vec<ServerMetricsSource> {
        let mut out: Vec<ServerMetricsSource> = self
            .shared
            .lock()
            .map(|s| s.targets.iter().map(|t| t.record.clone()).collect())
            .unwrap_or_default();
        out.extend(self.absent.iter().cloned());
        out
    }

    /// Stop scraping (after one last scrape) and return the sources; a CSV write error is
    /// returned as an error after the sources are kept.
    pub fn stop(&mut self) -> (Vec<ServerMetricsSource>, Option<String>) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.handle.take() {
            h.thread().unpark();
            let _ = h.join();
        }
        let err = self
            .shared
            .lock()
            .ok()
            .and_then(|mut s| s.write_error.take());
        (self.sources(), err)
    }
}
