//! The HTTP accept loop (issue 13 item 4): per-IP cap, header-read and idle timeouts.

use super::*;
use crate::listener::HttpLimits;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn serve_with(h: &Harness, limits: HttpLimits) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(h.server.clone().run_with(listener, limits));
    addr
}

/// Everything the server sends until it closes the connection (or `within` passes: `None`).
async fn read_to_close(s: &mut TcpStream, within: Duration) -> Option<String> {
    let mut out = Vec::new();
    match tokio::time::timeout(within, s.read_to_end(&mut out)).await {
        Ok(_) => Some(String::from_utf8_lossy(&out).into_owned()),
        Err(_) => None,
    }
}

#[tokio::test]
async fn connections_over_the_per_ip_cap_get_503_and_the_rest_keep_working() {
    let h = harness().await;
    let limits = HttpLimits {
        max_connections_per_ip: 3,
        ..HttpLimits::default()
    };
    let addr = serve_with(&h, limits).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    // The accept loop counts a connection once it accepted it: wait until all three are in.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let refused = loop {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let _ = s
            .write_all(b"GET /jmap/session HTTP/1.1\r\nHost: x\r\n\r\n")
            .await;
        let got = read_to_close(&mut s, Duration::from_secs(5))
            .await
            .unwrap_or_default();
        if got.starts_with("HTTP/1.1 503") || tokio::time::Instant::now() > deadline {
            break got;
        }
    };
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(refused.contains("retry-after") || refused.contains("Retry-After"));
    // A held connection still gets answers.
    let s = &mut held[0];
    s.write_all(format!("GET /jmap/session HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nConnection: close\r\n\r\n", h.bearer()).as_bytes())
        .await
        .unwrap();
    let got = read_to_close(s, Duration::from_secs(5)).await.unwrap();
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    // Closing it frees a slot.
    held.remove(0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /jmap/session HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let got = read_to_close(&mut s, Duration::from_secs(5))
            .await
            .unwrap_or_default();
        if got.starts_with("HTTP/1.1 401") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{got}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_request_head_sent_too_slowly_is_cut_off() {
    let h = harness().await;
    let limits = HttpLimits {
        header_timeout: Duration::from_millis(500),
        ..HttpLimits::default()
    };
    let addr = serve_with(&h, limits).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /jmap/session HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let start = tokio::time::Instant::now();
    // Slowloris: one header byte now and then, never the blank line.
    let mut closed = false;
    while start.elapsed() < Duration::from_secs(5) {
        if s.write_all(b"X").await.is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 256];
        match tokio::time::timeout(Duration::from_millis(100), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(_)) => {
                // hyper may answer 408 before closing.
            }
            Err(_) => {}
        }
    }
    assert!(closed, "the slow request head was not cut off");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_connection_silent_past_the_idle_timeout_is_closed() {
    let h = harness().await;
    let limits = HttpLimits {
        // The header timeout also covers a kept-alive connection waiting for its next
        // request; make it long so this tests the idle timeout (a stalled request body).
        header_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_millis(500),
        ..HttpLimits::default()
    };
    let addr = serve_with(&h, limits).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /jmap/api HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{",
        h.bearer()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let start = tokio::time::Instant::now();
    let got = read_to_close(&mut s, Duration::from_secs(5)).await;
    assert!(
        got.is_some(),
        "the stalled request was still open after 5 s"
    );
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn websockets_keep_counting_against_the_cap_after_the_upgrade() {
    let h = harness().await;
    let limits = HttpLimits {
        max_connections_per_ip: 2,
        ..HttpLimits::default()
    };
    let addr = serve_with(&h, limits).await;
    let mut sockets = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let req = format!(
            "GET /jmap/ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: jmap\r\n\
Authorization: {}\r\n\r\n",
            h.bearer()
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut buf = [0u8; 12];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"HTTP/1.1 101");
        sockets.push(s);
    }
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let got = read_to_close(&mut s, Duration::from_secs(5))
        .await
        .unwrap_or_default();
    assert!(got.starts_with("HTTP/1.1 503"), "{got}");
}
