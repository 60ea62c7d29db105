//! Servers that break HTTP itself, for faults a well-behaved server library cannot produce:
//! [`RawServer`] writes HTTP/1.1 responses byte by byte on plain TCP (a chunked body cut inside
//! a chunk or before its last chunk, a bad chunk size line, a gzip-encoded stream, a body that
//! never ends), and [`GoawayServer`] speaks HTTP/2 (h2c) and closes a connection under a
//! streaming response with a GOAWAY frame. Each serves one request per connection; request n
//! (from 0, in arrival order) gets `answer(n)`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

// A test that includes two of the servers compiles this small module twice.
#[allow(clippy::duplicate_mod)]
#[path = "listen.rs"]
mod listen;

/// One OpenAI chat chunk carrying `text` as content, as an SSE event.
pub fn content_event(text: &str) -> String {
    format!("data: {{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{text}\"}},\"finish_reason\":null}}]}}\n\n")
}

/// A whole stream of `tokens` content events, the finish chunk and `[DONE]`, one event each.
pub fn complete_events(tokens: u32) -> Vec<String> {
    let mut ev: Vec<String> = (0..tokens)
        .map(|i| content_event(&format!("w{i} ")))
        .collect();
    ev.push("data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}]}\n\n".into());
    ev.push("data: [DONE]\n\n".into());
    ev
}

/// What a [`RawServer`] answers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Answer {
    /// A well-formed chunked stream of this many tokens.
    Complete(u32),
    /// This many content events as chunks, then a chunk that announces 64 bytes, 10 of them,
    /// and the connection closed.
    CutInsideChunk(u32),
    /// This many content events as chunks, then the connection closed without the last
    /// (zero-length) chunk.
    CutBeforeLastChunk(u32),
    /// This many content events as chunks, then a chunk size line that is not hex.
    BadChunkSize(u32),
    /// A complete stream of this many tokens, gzip-compressed, with `Content-Encoding: gzip`.
    Gzip(u32),
    /// Content events (one token each, a server ignoring the cap) until this many bytes are
    /// written or the client goes away.
    Endless(u64),
    /// The connection reset (RST, not FIN) at this point of the response.
    Reset(ResetAt),
    /// The request read, then nothing: no status line, the connection held open until the
    /// client goes away.
    Silent,
    /// This status with a short plain-text body instead of a stream.
    Status(u16),
}

/// Where a [`Answer::Reset`] cuts the response.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ResetAt {
    /// After the request is read, before any byte of the response.
    BeforeHeaders,
    /// Inside the header block (`content-ty`), before its blank line.
    MidHeaders,
    /// After this many content events, inside the next chunk (its size line says more bytes
    /// than follow).
    MidChunk(u32),
    /// After this many content events, a whole chunk holding half an event (no blank line
    /// ends it).
    MidEvent(u32),
}

pub struct RawServer {
    pub addr: SocketAddr,
    pub requests: Arc<AtomicU64>,
    /// Body bytes written to each connection that got [`Answer::Endless`].
    pub endless_written: Arc<Mutex<Vec<u64>>>,
    /// The request heads received (lower-case header lines).
    pub heads: Arc<Mutex<Vec<String>>>,
}

impl RawServer {
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn start(answer: impl Fn(u64) -> Answer + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicU64::new(0));
        let endless_written = Arc::new(Mutex::new(Vec::new()));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let answer: Arc<dyn Fn(u64) -> Answer + Send + Sync> = Arc::new(answer);
        let (r, w, h) = (
            Arc::clone(&requests),
            Arc::clone(&endless_written),
            Arc::clone(&heads),
        );
        std::thread::spawn(move || {
            for sock in listener.incoming() {
                let Ok(sock) = sock else { continue };
                let (r, w, h, answer) = (
                    Arc::clone(&r),
                    Arc::clone(&w),
                    Arc::clone(&h),
                    Arc::clone(&answer),
                );
                std::thread::spawn(move || {
                    let Some(head) = read_request(&sock) else {
                        return;
                    };
                    h.lock().unwrap().push(head);
                    let n = r.fetch_add(1, Ordering::SeqCst);
                    let written = respond(sock, answer(n));
                    if let Answer::Endless(_) = answer(n) {
                        w.lock().unwrap().push(written);
                    }
                });
            }
        });
        Self {
            addr,
            requests,
            endless_written,
            heads,
        }
    }
}

/// Read a request's head and its `Content-Length` body; the head in lower case.
fn read_request(sock: &TcpStream) -> Option<String> {
    let mut rd = BufReader::new(sock);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if rd.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line.to_ascii_lowercase());
    }
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    rd.read_exact(&mut body).ok()?;
    Some(head)
}

fn chunk(data: &[u8]) -> Vec<u8> {
    let mut c = format!("{:x}\r\n", data.len()).into_bytes();
    c.extend_from_slice(data);
    c.extend_from_slice(b"\r\n");
    c
}

/// Write the answer and close; body bytes written (for [`Answer::Endless`]).
fn respond(mut sock: TcpStream, answer: Answer) -> u64 {
    let _ = sock.set_nodelay(true);
    match answer {
        Answer::Silent => {
            // Hold the connection until the client closes it.
            let _ = std::io::copy(&mut sock, &mut std::io::sink());
            return 0;
        }
        Answer::Status(code) => {
            let body = format!("upstream unavailable ({code})");
            let _ = write!(
                sock,
                "HTTP/1.1 {code} Error\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.shutdown(std::net::Shutdown::Write);
            return 0;
        }
        Answer::Reset(ResetAt::BeforeHeaders) => return reset(sock, b""),
        Answer::Reset(ResetAt::MidHeaders) => {
            return reset(sock, b"HTTP/1.1 200 OK\r\ncontent-ty");
        }
        _ => {}
    }
    let encoding = if matches!(answer, Answer::Gzip(_)) {
        "content-encoding: gzip\r\n"
    } else {
        ""
    };
    let head = format!("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n{encoding}transfer-encoding: chunked\r\nconnection: close\r\n\r\n");
    if sock.write_all(head.as_bytes()).is_err() {
        return 0;
    }
    let events = |n: u32| -> Vec<u8> {
        (0..n)
            .flat_map(|i| chunk(content_event(&format!("w{i} ")).as_bytes()))
            .collect()
    };
    let body: Vec<u8> = match answer {
        Answer::Complete(n) => {
            let mut b: Vec<u8> = complete_events(n)
                .iter()
                .flat_map(|e| chunk(e.as_bytes()))
                .collect();
            b.extend_from_slice(b"0\r\n\r\n");
            b
        }
        Answer::CutInsideChunk(n) => {
            let mut b = events(n);
            b.extend_from_slice(b"40\r\ndata: {\"ch");
            b
        }
        Answer::CutBeforeLastChunk(n) => events(n),
        Answer::BadChunkSize(n) => {
            let mut b = events(n);
            b.extend_from_slice(b"zz\r\ndata: [DONE]\n\n\r\n0\r\n\r\n");
            b
        }
        Answer::Gzip(n) => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(complete_events(n).concat().as_bytes())
                .unwrap();
            let mut b = chunk(&gz.finish().unwrap());
            b.extend_from_slice(b"0\r\n\r\n");
            b
        }
        Answer::Reset(ResetAt::MidChunk(n)) => {
            let mut b = events(n);
            b.extend_from_slice(b"40\r\ndata: {\"ch");
            return reset(sock, &b);
        }
        Answer::Reset(ResetAt::MidEvent(n)) => {
            let mut b = events(n);
            b.extend_from_slice(&chunk(b"data: {\"choices\":[{\"index\":0,\"del"));
            return reset(sock, &b);
        }
        Answer::Reset(_) | Answer::Silent | Answer::Status(_) => unreachable!("answered above"),
        Answer::Endless(limit) => {
            // 64 KiB writes of whole events, as a runaway server would stream them.
            let mut block = Vec::new();
            while block.len() < 64 << 10 {
                block.extend_from_slice(content_event("w ").as_bytes());
            }
            let block = chunk(&block);
            let mut written = 0u64;
            while written < limit && sock.write_all(&block).is_ok() {
                written += block.len() as u64;
            }
            return written;
        }
    };
    let _ = sock.write_all(&body);
    let _ = sock.flush();
    // Close (FIN) after the bytes, whatever they were.
    let _ = sock.shutdown(std::net::Shutdown::Write);
    0
}

/// Write `bytes`, then reset the connection: a zero linger time makes the close an RST.
fn reset(mut sock: TcpStream, bytes: &[u8]) -> u64 {
    let _ = sock.write_all(bytes);
    let _ = sock.flush();
    // Give the bytes time to reach the client before the reset discards what is unsent.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let _ = socket2::SockRef::from(&sock).set_linger(Some(std::time::Duration::ZERO));
    0
}

/// An HTTP/2 server without TLS (h2c, prior knowledge). Request n gets a complete stream of
/// `tokens` content events when `goaway(n)` is false; else `goaway_after` content events, then
/// a GOAWAY frame (INTERNAL_ERROR) and the connection closed under the open stream.
pub struct GoawayServer {
    pub addr: SocketAddr,
    pub requests: Arc<AtomicU64>,
}

impl GoawayServer {
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn start(
        tokens: u32,
        goaway_after: u32,
        goaway: impl Fn(u64) -> bool + Send + Sync + 'static,
    ) -> Self {
        let goaway: Arc<dyn Fn(u64) -> bool + Send + Sync> = Arc::new(goaway);
        let requests = Arc::new(AtomicU64::new(0));
        let r = Arc::clone(&requests);
        let addr = listen::spawn_server(0, move |listener| {
            listen::each_connection(listener, move |sock| {
                let (r, goaway) = (Arc::clone(&r), Arc::clone(&goaway));
                async move {
                    let _ = serve_h2(sock, tokens, goaway_after, &r, &*goaway).await;
                }
            })
        });
        Self { addr, requests }
    }
}

async fn serve_h2(
    sock: tokio::net::TcpStream,
    tokens: u32,
    goaway_after: u32,
    requests: &AtomicU64,
    goaway: &(dyn Fn(u64) -> bool + Send + Sync),
) -> Result<(), h2::Error> {
    let mut conn = h2::server::handshake(sock).await?;
    while let Some(accepted) = conn.accept().await {
        let (_request, mut respond) = accepted?;
        let n = requests.fetch_add(1, Ordering::SeqCst);
        let response = axum::http::Response::builder()
            .header("content-type", "text/event-stream")
            .body(())
            .unwrap();
        let mut send = respond.send_response(response, false)?;
        if !goaway(n) {
            send.send_data(complete_events(tokens).concat().into(), true)?;
            continue;
        }
        for i in 0..goaway_after {
            send.send_data(content_event(&format!("w{i} ")).into(), false)?;
        }
        // Let the connection flush those events (no other request comes on it meanwhile),
        // then GOAWAY with an error and close under the open stream.
        let _ = tokio::time::timeout(std::time::Duration::from_millis(50), conn.accept()).await;
        conn.abrupt_shutdown(h2::Reason::INTERNAL_ERROR);
        return std::future::poll_fn(|cx| conn.poll_closed(cx)).await;
    }
    Ok(())
}
