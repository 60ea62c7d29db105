//! A keep-alive HTTP/1.1 streaming server that closes a connection once it has sat idle for a
//! set time after its last response, as uvicorn does (after 5 s): the server a client with a
//! longer-lived connection pool meets with a stale connection. Written on raw TCP (tokio) so
//! that the close is exactly the server's: a FIN when the idle time is up ([`Close::Timer`]),
//! or ([`Close::OnArrival`]) only when a request arrives after the idle time, which is then
//! dropped unread: what a client sees when its request and the server's close cross.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

// A test that includes two of the servers compiles this small module twice.
#[allow(clippy::duplicate_mod)]
#[path = "listen.rs"]
mod listen;

/// When an idle connection is closed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Close {
    /// As soon as the idle time is up (a FIN reaches the idle client).
    Timer,
    /// When the next request arrives after the idle time: the connection is closed with the
    /// request unread (the client's write succeeded; a reset comes back).
    OnArrival,
}

pub struct IdleCloseServer {
    pub addr: SocketAddr,
    /// Requests the server read (a request written to a connection it had closed never is).
    pub requests: Arc<AtomicU64>,
    /// Connections it accepted.
    pub connections: Arc<AtomicU64>,
    /// Connections it closed for being idle.
    pub idle_closes: Arc<AtomicU64>,
}

impl IdleCloseServer {
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Start on an ephemeral port; connections idle for `idle` after a response are closed;
    /// request n (in arrival order, from 0) is answered after `hold(n)`.
    pub fn start(
        idle: Duration,
        close: Close,
        hold: impl Fn(u64) -> Duration + Send + Sync + 'static,
    ) -> Self {
        let hold: Arc<dyn Fn(u64) -> Duration + Send + Sync> = Arc::new(hold);
        let requests = Arc::new(AtomicU64::new(0));
        let connections = Arc::new(AtomicU64::new(0));
        let idle_closes = Arc::new(AtomicU64::new(0));
        let (r, c, ic) = (
            Arc::clone(&requests),
            Arc::clone(&connections),
            Arc::clone(&idle_closes),
        );
        let addr = listen::spawn_server(1, move |listener| {
            listen::each_connection(listener, move |sock| {
                let _ = sock.set_nodelay(true);
                c.fetch_add(1, Ordering::SeqCst);
                let (r, ic, hold) = (Arc::clone(&r), Arc::clone(&ic), Arc::clone(&hold));
                serve_connection(sock, idle, close, r, ic, hold)
            })
        });
        Self {
            addr,
            requests,
            connections,
            idle_closes,
        }
    }
}

fn find(h: &[u8], needle: &[u8]) -> Option<usize> {
    h.windows(needle.len()).position(|w| w == needle)
}

async fn serve_connection(
    mut sock: tokio::net::TcpStream,
    idle: Duration,
    close: Close,
    requests: Arc<AtomicU64>,
    idle_closes: Arc<AtomicU64>,
    hold: Arc<dyn Fn(u64) -> Duration + Send + Sync>,
) {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    loop {
        // The next request's head; only the wait for its first byte is limited by `idle`.
        let head_end = loop {
            if let Some(p) = find(&buf, b"\r\n\r\n") {
                break p + 4;
            }
            let read = if buf.is_empty() {
                match close {
                    Close::Timer => match tokio::time::timeout(idle, sock.read(&mut tmp)).await {
                        Ok(r) => r,
                        Err(_) => {
                            idle_closes.fetch_add(1, Ordering::SeqCst);
                            return; // dropped: the kernel sends FIN
                        }
                    },
                    Close::OnArrival => {
                        let waited = std::time::Instant::now();
                        if sock.readable().await.is_err() {
                            return;
                        }
                        if waited.elapsed() > idle {
                            idle_closes.fetch_add(1, Ordering::SeqCst);
                            return; // dropped with the request unread: the kernel resets
                        }
                        sock.read(&mut tmp).await
                    }
                }
            } else {
                sock.read(&mut tmp).await
            };
            match read {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + len {
            match sock.read(&mut tmp).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        }
        let body: serde_json::Value =
            serde_json::from_slice(&buf[head_end..head_end + len]).unwrap_or_default();
        buf.drain(..head_end + len);
        let n = requests.fetch_add(1, Ordering::SeqCst);
        let wait = hold(n);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        let usage = body
            .pointer("/stream_options/include_usage")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        let chunk = |delta: &str, finish: &str| {
            format!("data: {{\"choices\":[{{\"index\":0,\"delta\":{delta},\"finish_reason\":{finish}}}]}}\n\n")
        };
        let mut sse = chunk("{\"role\":\"assistant\",\"content\":\"\"}", "null");
        for i in 0..4 {
            sse.push_str(&chunk(&format!("{{\"content\":\"w{i} \"}}"), "null"));
        }
        sse.push_str(&chunk("{}", "\"length\""));
        if usage {
            sse.push_str("data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":4,\"total_tokens\":9}}\n\n");
        }
        sse.push_str("data: [DONE]\n\n");
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\n\r\n{sse}",
            sse.len()
        );
        if sock.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}
