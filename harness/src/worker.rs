//! Process isolation: each instance is a `charter worker` process (the same binary) that loads
//! the backend itself and serves one request at a time for the runner, so its CPU time and RSS
//! can be sampled on their own.
//!
//! Protocol: JSON lines. The runner's first line is `{"load": BackendSpec}` (the backend with
//! every option resolved, threads included); the worker loads it and answers `{"hello": …}`
//! (its backend record, prompt vocabulary, pid) or `{"load_error": "…"}`. The runner then
//! sends `{"generate": GenRequest}`; the worker answers `{"t": tokens}` per token event, then
//! `{"done": GenOutcome}` or `{"error": RequestError}`. The runner may send `"cancel"` to stop
//! the current generation at its next token. End of input ends the worker.
//!
//! Token events are stamped by the runner when the worker's line arrives (the pipe adds
//! microseconds, as a network adds its latency to a remote backend).

use std::io::{BufRead, BufReader, Write};
use std::ops::ControlFlow;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Instant;

use charter_backends::{
    Backend, BackendRecord, BackendSpec, ComputeSite, ErrorKind, GenOutcome, GenRequest, LoadError,
    RequestError, Stream, TokenEvent, TokenSink,
};
use serde::{Deserialize, Serialize};

use crate::CliError;

#[derive(Serialize, Deserialize)]
struct Hello {
    record: BackendRecord,
    prompt_token_ids: Vec<u32>,
    accepts_text: bool,
    pid: u32,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum FromWorker {
    Hello(Box<Hello>),
    LoadError(String),
    /// Tokens of one event, and the token id when the event is one token.
    T(u32, Option<u32>),
    Done(GenOutcome),
    Error(RequestError),
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ToWorker {
    Load(Box<BackendSpec>),
    Generate(GenRequest),
    Cancel,
}

/// A backend whose streams are worker processes.
pub struct ProcessBackend {
    spec: BackendSpec,
    hello: Hello,
    first: Mutex<Option<WorkerStream>>,
}

impl ProcessBackend {
    /// Start the first worker (it reports the backend's record) and keep it for the first
    /// stream.
    pub fn start(spec: &BackendSpec) -> Result<Self, CliError> {
        let (stream, hello) = spawn(spec)?;
        let mut hello = hello;
        hello.record.threads_note = format!(
            "{} (per worker process: --isolation process)",
            hello.record.threads_note
        );
        Ok(Self {
            spec: spec.clone(),
            hello,
            first: Mutex::new(Some(stream)),
        })
    }
}

/// `charter worker` with this very binary, sent `spec` to load.
fn spawn(spec: &BackendSpec) -> Result<(WorkerStream, Hello), CliError> {
    let exe = std::env::current_exe().map_err(|e| {
        CliError::Failure(anyhow::anyhow!(
            "--isolation process: cannot find charter's own executable: {e}"
        ))
    })?;
    let mut child = Command::new(&exe)
        .arg("worker")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| {
            CliError::Failure(anyhow::anyhow!("starting worker {}: {e}", exe.display()))
        })?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let load = serde_json::to_string(&ToWorker::Load(Box::new(spec.clone())))
        .map_err(|e| CliError::Failure(e.into()))?;
    if let Err(e) = writeln!(stdin, "{load}").and_then(|_| stdin.flush()) {
        let _ = child.kill();
        let _ = child.wait();
        return Err(CliError::Failure(anyhow::anyhow!(
            "sending the backend to a worker process: {e}"
        )));
    }
    let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
    let mut line = String::new();
    let read = stdout.read_line(&mut line);
    let msg = match read {
        Ok(n) if n > 0 => serde_json::from_str::<FromWorker>(&line).ok(),
        _ => None,
    };
    match msg {
        Some(FromWorker::Hello(h)) => {
            let pid = child.id();
            Ok((
                WorkerStream {
                    child,
                    stdin: Some(stdin),
                    stdout,
                    pid,
                    line: String::new(),
                },
                *h,
            ))
        }
        Some(FromWorker::LoadError(e)) => {
            let _ = child.wait();
            Err(CliError::BadInput(e))
        }
        _ => {
            let _ = child.kill();
            let _ = child.wait();
            Err(CliError::Failure(anyhow::anyhow!(
                "worker process did not start (no hello message)"
            )))
        }
    }
}

impl Backend for ProcessBackend {
    fn record(&self) -> &BackendRecord {
        &self.hello.record
    }

    fn prompt_token_ids(&self) -> &[u32] {
        &self.hello.prompt_token_ids
    }

    fn accepts_text(&self) -> bool {
        self.hello.accepts_text
    }

    fn decode(&self, _ids: &[u32]) -> Option<String> {
        None
    }

    fn new_stream(&self) -> Result<Box<dyn Stream>, LoadError> {
        if let Some(s) = self.first.lock().ok().and_then(|mut f| f.take()) {
            return Ok(Box::new(s));
        }
        spawn(&self.spec)
            .map(|(s, _)| Box::new(s) as Box<dyn Stream>)
            .map_err(|e| LoadError::Setting {
                what: format!("starting a worker process: {e}"),
            })
    }
}

/// The runner's end of one worker process.
pub struct WorkerStream {
    child: Child,
    /// `None` once closed (in `Drop`).
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    pid: u32,
    line: String,
}

impl WorkerStream {
    fn broken(&self, what: &str, output_tokens: u64) -> RequestError {
        RequestError {
            kind: ErrorKind::Compute,
            message: format!("worker process {}: {what}", self.pid),
            prompt_tokens: 0,
            output_tokens,
            wire: None,
        }
    }

    fn send(&mut self, m: &ToWorker) -> std::io::Result<()> {
        let mut s = serde_json::to_string(m).map_err(std::io::Error::other)?;
        s.push('\n');
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| std::io::Error::other("closed"))?;
        stdin.write_all(s.as_bytes())?;
        stdin.flush()
    }
}

impl Stream for WorkerStream {
    fn generate(
        &mut self,
        request: &GenRequest,
        on_token: &mut TokenSink<'_>,
    ) -> Result<GenOutcome, RequestError> {
        if self.send(&ToWorker::Generate(request.clone())).is_err() {
            return Err(self.broken("cannot send the request (the worker has exited)", 0));
        }
        let mut tokens = 0u64;
        let mut cancelled = false;
        loop {
            self.line.clear();
            match self.stdout.read_line(&mut self.line) {
                Ok(0) | Err(_) => return Err(self.broken("exited during a request", tokens)),
                Ok(_) => {}
            }
            let at = Instant::now();
            match serde_json::from_str::<FromWorker>(&self.line) {
                Ok(FromWorker::T(n, id)) => {
                    tokens += u64::from(n);
                    if let ControlFlow::Break(()) = on_token(TokenEvent { at, tokens: n, id }) {
                        if !cancelled {
                            cancelled = true;
                            let _ = self.send(&ToWorker::Cancel);
                        }
                    }
                }
                Ok(FromWorker::Done(o)) => return Ok(o),
                Ok(FromWorker::Error(e)) => return Err(e),
                _ => {
                    return Err(self.broken(
                        &format!("unexpected message {:?}", self.line.trim_end()),
                        tokens,
                    ))
                }
            }
        }
    }

    fn compute_site(&self) -> ComputeSite {
        ComputeSite::Process(self.pid)
    }
}

impl Drop for WorkerStream {
    fn drop(&mut self) {
        // Closing stdin ends the worker; make sure it does not outlive us.
        drop(self.stdin.take());
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) => std::thread::sleep(std::time::Duration::from_millis(10)),
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `charter worker`: load the backend its first input line names and serve requests on
/// stdin/stdout until stdin closes.
pub fn run_worker() -> Result<i32, CliError> {
    // Ctrl-C goes to the whole process group: the runner decides what to cancel.
    let _ = ctrlc::set_handler(|| {});
    let stdout = std::io::stdout();
    let emit = |m: &FromWorker| {
        let mut out = stdout.lock();
        let _ = serde_json::to_writer(&mut out, m);
        let _ = out.write_all(b"\n");
        let _ = out.flush();
    };
    let mut lines = std::io::stdin().lock().lines();
    let spec = match lines
        .next()
        .map(|l| l.map(|l| serde_json::from_str::<ToWorker>(&l)))
    {
        Some(Ok(Ok(ToWorker::Load(spec)))) => spec,
        _ => {
            let e = "charter worker: expected a {\"load\": BackendSpec} line first (it is started by `charter profile --isolation process`)";
            emit(&FromWorker::LoadError(e.into()));
            return Ok(crate::EXIT_BAD_INPUT);
        }
    };
    drop(lines);
    let backend = match spec.load() {
        Ok(b) => b,
        Err(e) => {
            emit(&FromWorker::LoadError(e.to_string()));
            return Ok(crate::EXIT_BAD_INPUT);
        }
    };
    let mut stream = match backend.new_stream() {
        Ok(s) => s,
        Err(e) => {
            emit(&FromWorker::LoadError(e.to_string()));
            return Ok(crate::EXIT_BAD_INPUT);
        }
    };
    emit(&FromWorker::Hello(Box::new(Hello {
        record: backend.record().clone(),
        prompt_token_ids: backend.prompt_token_ids().to_vec(),
        accepts_text: backend.accepts_text(),
        pid: std::process::id(),
    })));
    let cancel = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel::<GenRequest>();
    let cancel2 = Arc::clone(&cancel);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            match serde_json::from_str::<ToWorker>(&line) {
                Ok(ToWorker::Generate(r)) => {
                    if tx.send(r).is_err() {
                        break;
                    }
                }
                Ok(ToWorker::Cancel) => cancel2.store(true, Ordering::SeqCst),
                Ok(ToWorker::Load(_)) => {
                    eprintln!("charter worker: ignoring a second load message");
                }
                Err(e) => {
                    eprintln!("charter worker: ignoring a malformed message: {e}");
                }
            }
        }
    });
    for request in rx {
        cancel.store(false, Ordering::SeqCst);
        let result = stream.generate(&request, &mut |ev| {
            emit(&FromWorker::T(ev.tokens, ev.id));
            if cancel.load(Ordering::SeqCst) {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        emit(&match result {
            Ok(o) => FromWorker::Done(o),
            Err(e) => FromWorker::Error(e),
        });
    }
    Ok(crate::EXIT_OK)
}
