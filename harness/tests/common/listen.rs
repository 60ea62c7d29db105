//! Start-up shared by the tokio test servers: a runtime on a thread of its own, a listener on
//! an ephemeral loopback port, and (for servers that speak raw TCP) one task per connection.
//! Included by each server module with `#[path = "listen.rs"] mod listen;`.
#![allow(dead_code)] // not every server uses every function

use std::future::Future;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};

/// Run `serve` with a listener bound to `127.0.0.1:0` on a new thread's tokio runtime
/// (`worker_threads` 0: a current-thread runtime); returns once the port is bound.
pub fn spawn_server<F, Fut>(worker_threads: usize, serve: F) -> SocketAddr
where
    F: FnOnce(TcpListener) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut rt = if worker_threads == 0 {
            tokio::runtime::Builder::new_current_thread()
        } else {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(worker_threads);
            b
        };
        rt.enable_all().build().unwrap().block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            serve(listener).await
        });
    });
    rx.recv().unwrap()
}

/// Accept connections for ever, each served by `handle` on a task of its own.
pub async fn each_connection<H, Fut>(listener: TcpListener, handle: H)
where
    H: Fn(TcpStream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        if let Ok((sock, _)) = listener.accept().await {
            tokio::spawn(handle(sock));
        }
    }
}
