//! A minimal JMAP client (RFC 8620) over keep-alive HTTP/1.1: a password grant at
//! `/auth/token` for a Bearer token, the session resource, and `Email/query` + `Email/get`.
//! The token is kept across faults: a 401 afterwards is a forced re-login, which the drills count.

use crate::DrillError;
use crate::wire::Conn;
use serde_json::{Value, json};

pub struct HttpConn {
    conn: Conn,
    host: String,
}

/// An HTTP answer: status and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl HttpConn {
    pub async fn connect(addr: &str) -> Result<Self, DrillError> {
        Ok(HttpConn {
            conn: Conn::connect(addr).await?,
            host: addr.to_string(),
        })
    }

    /// One request/response over this connection (RFC 9112 framing: Content-Length or chunked).
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        authorization: Option<&str>,
        content_type: &str,
        body: &[u8],
    ) -> Result<Answer, DrillError> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.host);
        if let Some(a) = authorization {
            head.push_str(&format!("Authorization: {a}\r\n"));
        }
        if !content_type.is_empty() {
            head.push_str(&format!("Content-Type: {content_type}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let mut data = head.into_bytes();
        data.extend_from_slice(body);
        self.conn.send(&data).await?;
        let status_line = self.conn.read_line().await?;
        let status: u16 = String::from_utf8_lossy(&status_line)
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                DrillError::Client(format!("bad HTTP status line from {}", self.host))
            })?;
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
                    .map_err(|_| {
                        DrillError::Client(format!("bad chunk size from {}", self.host))
                    })?;
                if size == 0 {
                    self.conn.read_line().await?;
                    break;
                }
                out.extend(self.conn.read_exact(size).await?);
                self.conn.read_line().await?;
            }
            out
        } else {
            self.conn.read_exact(len).await?
        };
        Ok(Answer { status, body })
    }
}

/// The access token from the password grant (the refresh token is not used: a refused
/// access token already means the drill forced a re-login).
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
}

/// POST /auth/token with `grant_type=password` (the sign-in the drills must never force again).
pub async fn password_grant(addr: &str, user: &str, pass: &str) -> Result<Tokens, DrillError> {
    let mut http = HttpConn::connect(addr).await?;
    let form = format!(
        "grant_type=password&username={}&password={}",
        percent_encode(user),
        percent_encode(pass)
    );
    let a = http
        .request(
            "POST",
            "/auth/token",
            None,
            "application/x-www-form-urlencoded",
            form.as_bytes(),
        )
        .await?;
    let v = a.json();
    match v["access_token"].as_str() {
        Some(access) if a.status == 200 => Ok(Tokens {
            access: access.to_string(),
        }),
        _ => Err(DrillError::Client(format!(
            "password grant at {addr}: HTTP {} {}",
            a.status,
            String::from_utf8_lossy(&a.body)
        ))),
    }
}

/// The mail account id from the session resource (RFC 8620 §2).
pub async fn account_id(http: &mut HttpConn, token: &str) -> Result<Answer, DrillError> {
    http.request(
        "GET",
        "/jmap/session",
        Some(&format!("Bearer {token}")),
        "",
        b"",
    )
    .await
}

pub fn session_account(a: &Answer) -> Option<String> {
    a.json()["primaryAccounts"]["urn:ietf:params:jmap:mail"]
        .as_str()
        .map(str::to_string)
}

/// Email/query of the 20 newest + Email/get of those (RFC 8621 §4.4, §4.2).
pub fn newest_emails_body(account: &str) -> Vec<u8> {
    json!({
        "using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"],
        "methodCalls": [
            ["Email/query", {"accountId": account,
                "sort": [{"property": "receivedAt", "isAscending": false}], "limit": 20}, "q"],
            ["Email/get", {"accountId": account,
                "#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"},
                "properties": ["id", "subject", "receivedAt"]}, "g"]
        ]
    })
    .to_string()
    .into_bytes()
}

/// Whether an API answer is a full success: 200 and both method responses without error.
pub fn api_succeeded(a: &Answer) -> bool {
    if a.status != 200 {
        return false;
    }
    let v = a.json();
    let Some(responses) = v["methodResponses"].as_array() else {
        return false;
    };
    responses.len() == 2 && responses.iter().all(|r| r[0] != "error")
}

/// What went wrong in a failed API answer, briefly: the first method error, else the body.
pub fn failure_text(a: &Answer) -> String {
    let v = a.json();
    let error = v["methodResponses"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r[0] == "error"))
        .map(|r| r[1].to_string());
    let text = error.unwrap_or_else(|| String::from_utf8_lossy(&a.body).trim().to_string());
    format!(
        "HTTP {} {}",
        a.status,
        text.chars().take(200).collect::<String>()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_values_are_percent_encoded() {
        assert_eq!(percent_encode("a@b.test"), "a%40b.test");
        assert_eq!(percent_encode("x y&z"), "x%20y%26z");
    }

    #[test]
    fn api_success_needs_200_and_no_error_response() {
        let ok = Answer {
            status: 200,
            body: br#"{"methodResponses":[["Email/query",{},"q"],["Email/get",{},"g"]]}"#.to_vec(),
        };
        assert!(api_succeeded(&ok));
        let err = Answer {
            status: 200,
            body: br#"{"methodResponses":[["error",{},"q"],["Email/get",{},"g"]]}"#.to_vec(),
        };
        assert!(!api_succeeded(&err));
        let unavailable = Answer {
            status: 503,
            body: Vec::new(),
        };
        assert!(!api_succeeded(&unavailable));
    }
}
