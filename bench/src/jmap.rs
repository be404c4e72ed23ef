//! JMAP: Email/query (newest 50) + Email/get of those 50 in one request, per client in a
//! loop, over keep-alive HTTP/1.1 with Basic auth. Skips (and says so) when the server has
//! no JMAP endpoint.

use crate::stats::{Latencies, ms, round3};
use crate::wire::Conn;
use anyhow::{Context, Result, bail};
use base64::Engine;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug, Clone)]
pub struct JmapArgs {
    /// HTTP listener ip:port; several, comma-separated (the nodes of one cluster), take
    /// turns.
    #[arg(long)]
    pub addr: String,
    #[arg(long, default_value_t = 100)]
    pub clients: usize,
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// User; `{}` is replaced by (client number % --users). One account per client keeps
    /// each under the server's maxConcurrentRequests (RFC 8620 §2).
    #[arg(long)]
    pub user: String,
    #[arg(long, default_value_t = 1)]
    pub users: usize,
    #[arg(long)]
    pub pass: String,
}

/// Largest HTTP body we read.
const MAX_BODY: usize = 64 * 1024 * 1024;

struct Http {
    conn: Conn,
    host: String,
    auth: String,
}

impl Http {
    async fn connect(addr: &str, user: &str, pass: &str) -> Result<Self> {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        Ok(Http {
            conn: Conn::connect(addr).await?,
            host: addr.to_string(),
            auth: format!("Basic {token}"),
        })
    }

    async fn request(&mut self, method: &str, path: &str, body: &[u8]) -> Result<(u16, Vec<u8>)> {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.host,
            self.auth,
            body.len()
        );
        self.conn.write(head.as_bytes()).await?;
        self.conn.send(body).await?;
        let status_line = self.conn.read_line().await?;
        let status: u16 = String::from_utf8_lossy(&status_line)
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .context("bad HTTP status line")?;
        let (mut len, mut chunked) = (0usize, false);
        loop {
            let line = self.conn.read_line().await?;
            if line.is_empty() {
                break;
            }
            let l = String::from_utf8_lossy(&line).to_ascii_lowercase();
            if let Some(v) = l.strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            } else if l.starts_with("transfer-encoding:") && l.contains("chunked") {
                chunked = true;
            }
        }
        let body = if chunked {
            let mut out = Vec::new();
            loop {
                let size_line = self.conn.read_line().await?;
                let hex = String::from_utf8_lossy(&size_line);
                let size = usize::from_str_radix(hex.split(';').next().unwrap_or("").trim(), 16)
                    .context("bad chunk size")?;
                if size == 0 {
                    self.conn.read_line().await?;
                    break;
                }
                if out.len() + size > MAX_BODY {
                    bail!("HTTP body too large");
                }
                out.extend(self.conn.read_exact(size).await?);
                self.conn.read_line().await?;
            }
            out
        } else {
            if len > MAX_BODY {
                bail!("HTTP body too large");
            }
            self.conn.read_exact(len).await?
        };
        Ok((status, body))
    }
}

fn query_body(account: &str) -> Result<Vec<u8>> {
    Ok(serde_json::to_vec(&json!({
        "using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"],
        "methodCalls": [
            ["Email/query", {"accountId": account,
                "sort": [{"property": "receivedAt", "isAscending": false}], "limit": 50}, "q"],
            ["Email/get", {"accountId": account,
                "#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"},
                "properties": ["id", "subject", "from", "receivedAt", "preview", "keywords"]}, "g"]
        ]
    }))?)
}

pub async fn run(a: JmapArgs) -> Result<Value> {
    let users = a.users.max(1);
    // Several comma-separated addresses (the nodes of one cluster): clients take turns.
    let addrs: Vec<String> = a.addr.split(',').map(str::to_owned).collect();
    let first = addrs.first().map_or(a.addr.as_str(), String::as_str);
    let mut bodies = Vec::with_capacity(users);
    for u in 0..users {
        let user = a.user.replace("{}", &u.to_string());
        match session_account(first, &user, &a.pass).await {
            Ok(account) => bodies.push((user, query_body(&account)?)),
            Err(e) => {
                return Ok(json!({"skipped": format!("no usable JMAP endpoint: {e:#}")}));
            }
        }
    }
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(a.duration);
    let mut tasks = Vec::new();
    for i in 0..a.clients {
        let (user, body) = bodies[i % users].clone();
        let a = a.clone();
        let addr = addrs[i % addrs.len()].clone();
        tasks.push(tokio::spawn(async move {
            let mut http = Http::connect(&addr, &user, &a.pass).await?;
            let mut lat = Latencies::default();
            let mut failures = 0u64;
            while Instant::now() < deadline {
                let t = Instant::now();
                let (status, resp) = http.request("POST", "/jmap/api", &body).await?;
                let got = serde_json::from_slice::<Value>(&resp).ok().and_then(|v| {
                    v["methodResponses"][1][1]["list"]
                        .as_array()
                        .map(|l| l.len())
                });
                if status == 200 && got.is_some() {
                    lat.record(t.elapsed());
                } else {
                    failures += 1;
                    if failures <= 2 {
                        eprintln!(
                            "JMAP request failed: {status} {}",
                            String::from_utf8_lossy(&resp)
                        );
                    }
                }
            }
            anyhow::Ok((lat, failures))
        }));
    }
    let mut lat = Latencies::default();
    let mut failures = 0;
    for t in tasks {
        let (l, f) = t.await??;
        lat.merge(l);
        failures += f;
    }
    let elapsed = start.elapsed();
    let s = lat.summary();
    Ok(json!({
        "clients": a.clients, "requests": s.count, "failures": failures,
        "elapsed_ms": ms(elapsed), "requests_per_s": round3(s.count as f64 / elapsed.as_secs_f64()),
        "p50_ms": s.p50_ms, "p99_ms": s.p99_ms,
    }))
}

/// The mail account id from the JMAP session resource (RFC 8620 §2).
async fn session_account(addr: &str, user: &str, pass: &str) -> Result<String> {
    let mut http = Http::connect(addr, user, pass).await?;
    let (status, body) = http.request("GET", "/jmap/session", b"").await?;
    if status != 200 {
        bail!("GET /jmap/session answered {status}");
    }
    let v: Value = serde_json::from_slice(&body)?;
    v["primaryAccounts"]["urn:ietf:params:jmap:mail"]
        .as_str()
        .map(str::to_string)
        .context("session has no mail account")
}
