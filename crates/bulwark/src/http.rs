//! A minimal HTTP/1.1 responder for health checks until `crates/web` exists:
//! `GET /healthz` (the process is alive) and `GET /readyz` (the store answers).

use bulwark_store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Largest request head we read; health checks send a few hundred bytes.
const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// A client that has not sent its request line within this time is dropped.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn run(listener: TcpListener, store: Arc<dyn Store>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let store = store.clone();
                tokio::spawn(async move {
                    if let Err(e) =
                        tokio::time::timeout(REQUEST_TIMEOUT, serve_one(stream, store)).await
                    {
                        tracing::debug!(error = %e, "http client timed out");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "http accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve_one(mut stream: TcpStream, store: Arc<dyn Store>) {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_REQUEST_HEAD {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let request_line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let request_line = String::from_utf8_lossy(request_line);
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, body) = match (method, path) {
        ("GET", "/healthz") => ("200 OK", "ok\n".to_string()),
        ("GET", "/readyz") => match store.domain_list().await {
            Ok(_) => ("200 OK", "ready\n".to_string()),
            Err(e) => (
                "503 Service Unavailable",
                format!("store unavailable: {e}\n"),
            ),
        },
        ("GET", _) => ("404 Not Found", "not found\n".to_string()),
        _ => ("405 Method Not Allowed", "only GET\n".to_string()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}
