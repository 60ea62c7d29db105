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

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use charter_backends::secrets::Secrets;
use charter_backends::BackendSpec;
use charter_record::{LevelServerMetrics, ServerMetricsSource};
use charter_reports::server_metrics::{self as sm, ScrapePoint, KNOWN};
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
    secrets: Secrets,
}

fn plan(urls: &[String], backend: &BackendSpec) -> Result<Plan, CliError> {
    let remote = match backend {
        BackendSpec::Remote(o) => Some(o),
        _ => None,
    };
    let key = remote
        .and_then(|o| o.api_key_env.as_ref())
        .and_then(|v| std::env::var(v).ok())
        .map(|k| k.trim().to_string())
        .filter(|k| !k.is_empty());
    let base = remote.and_then(|o| reqwest::Url::parse(&o.base_url).ok());
    let auth_for = |url: &reqwest::Url| {
        let same_origin = base.as_ref().is_some_and(|b| b.origin() == url.origin());
        let is_openai = remote.is_some_and(|o| o.api == charter_backends::remote::Api::Openai);
        key.as_ref()
            .filter(|_| same_origin && is_openai)
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
    let probe = match (remote, &base) {
        (Some(o), Some(b)) if urls.is_empty() && o.api == charter_backends::remote::Api::Openai => {
            let mut u = b.clone();
            let path = u.path().trim_end_matches('/');
            let path = path.strip_suffix("/v1").unwrap_or(path).to_string();
            u.set_path(&format!("{path}/metrics"));
            u.set_query(None);
            Some(target(u))
        }
        _ => None,
    };
    Ok(Plan {
        client: client(remote)?,
        targets,
        probe,
        secrets: Secrets::new(key),
    })
}

/// The scrapes' HTTP client: it trusts what the backend's client trusts (`--ca-cert`,
/// `--insecure`).
fn client(
    remote: Option<&charter_backends::remote::RemoteOptions>,
) -> Result<reqwest::Client, CliError> {
    let failed = |e: String| CliError::Failure(anyhow::anyhow!("metrics scraper client: {e}"));
    let mut b = reqwest::Client::builder().timeout(SCRAPE_TIMEOUT);
    if let Some(o) = remote {
        for c in charter_backends::remote::trusted_roots(o).map_err(|e| failed(e.to_string()))? {
            b = b.add_root_certificate(c);
        }
        b = b.danger_accept_invalid_certs(o.insecure);
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
            secrets,
        } = plan(urls, backend)?;
        let rt = runtime()?;
        let mut absent = Vec::new();
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
        })
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
