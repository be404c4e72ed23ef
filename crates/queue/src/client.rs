//! The SMTP client: one transaction to one host (RFC 5321 §3.3), opportunistic STARTTLS
//! (RFC 3207, RFC 7435), per-recipient outcomes.

use crate::reply::{Extensions, MAX_REPLY_LINE, Reply, ReplyError, ReplyParser};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A plain or TLS stream, boxed so STARTTLS can replace it in place.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Settings for one SMTP client session.
#[derive(Clone)]
pub(crate) struct ClientSettings {
    /// Our EHLO name.
    pub hostname: String,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    /// `None` disables STARTTLS.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Certificates checked (the system's roots and `[outbound] tls_ca_file`): for hosts
    /// whose domain's MTA-STS policy is `enforce` (RFC 8461 §4.2).
    pub tls_verified: Arc<rustls::ClientConfig>,
}

/// How a transaction uses TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TlsUse {
    /// Cleartext (the retry after a failed opportunistic handshake).
    Off,
    /// STARTTLS when offered, any certificate (RFC 7435).
    Opportunistic,
    /// STARTTLS required with a valid certificate for the host name, else no delivery to this
    /// host (RFC 8461 §4.2, MTA-STS `enforce`).
    Required,
}

/// Where to connect: the host name (for TLS SNI and messages) and one of its addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub host: String,
    pub addr: SocketAddr,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}[{}]", self.host, self.addr)
    }
}

/// The message and envelope of one transaction.
pub(crate) struct Envelope<'a> {
    /// Empty for the null reverse-path `<>` (bounces).
    pub sender: &'a str,
    pub recipients: &'a [String],
    pub raw: &'a [u8],
}

/// The result for one recipient of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RcptOutcome {
    Delivered,
    /// 5xx: do not retry; the text is the server's reply plus where it came from.
    Permanent(String),
    /// 4xx, lost connection, timeout: retry later.
    Temporary(String),
}

/// Why a session ended before it produced per-recipient outcomes (try the next host).
#[derive(Debug, thiserror::Error)]
pub(crate) enum SessionError {
    #[error("cannot connect to {target}: {source}")]
    Connect {
        target: String,
        source: std::io::Error,
    },
    #[error("timeout talking to {target} (waiting for {stage})")]
    Timeout { target: String, stage: &'static str },
    #[error("connection to {target} failed: {source}")]
    Io {
        target: String,
        source: std::io::Error,
    },
    #[error("connection to {target} closed by the server during {stage}")]
    Closed { target: String, stage: &'static str },
    #[error("bad reply from {target}: {source}")]
    BadReply { target: String, source: ReplyError },
    #[error("TLS handshake with {target} failed: {reason}")]
    TlsHandshake { target: String, reason: String },
    /// Authenticated TLS was required (MTA-STS enforce) and could not be had.
    #[error("{target}: {reason} (MTA-STS policy of the domain: enforce)")]
    TlsRequired { target: String, reason: String },
    #[error("{target} said: {reply} (in reply to {stage})")]
    Refused {
        target: String,
        stage: &'static str,
        reply: Reply,
    },
}

/// Runs one transaction. `Ok` has one outcome per envelope recipient, in order.
pub(crate) async fn send_transaction(
    settings: &ClientSettings,
    target: &Target,
    envelope: &Envelope<'_>,
    tls_use: TlsUse,
) -> Result<Vec<RcptOutcome>, SessionError> {
    let tcp = tokio::time::timeout(settings.connect_timeout, TcpStream::connect(target.addr))
        .await
        .map_err(|_| SessionError::Timeout {
            target: target.to_string(),
            stage: "connect",
        })?
        .map_err(|source| SessionError::Connect {
            target: target.to_string(),
            source,
        })?;
    let mut conn = Conn::new(Box::new(tcp), settings.command_timeout, target.to_string());
    let greeting = conn.read_reply("greeting").await?;
    if greeting.code != 220 {
        return Err(conn.refused("greeting", greeting));
    }
    let mut ext = conn.hello(&settings.hostname).await?;
    if tls_use == TlsUse::Required {
        let required = |reason: String| SessionError::TlsRequired {
            target: target.to_string(),
            reason,
        };
        if !ext.starttls {
            return Err(required("the host does not offer STARTTLS".into()));
        }
        conn.send("STARTTLS").await?;
        let reply = conn.read_reply("STARTTLS").await?;
        if reply.code != 220 {
            return Err(required(format!("STARTTLS refused: {}", reply.code)));
        }
        conn = match conn
            .start_tls(settings.tls_verified.clone(), &target.host)
            .await
        {
            Ok(c) => c,
            Err(SessionError::TlsHandshake { reason, .. }) => {
                return Err(required(format!(
                    "no valid certificate for {}: {reason}",
                    target.host
                )));
            }
            Err(e) => return Err(e),
        };
        ext = conn.hello(&settings.hostname).await?;
    } else if tls_use == TlsUse::Opportunistic
        && ext.starttls
        && let Some(tls) = &settings.tls
    {
        conn.send("STARTTLS").await?;
        let reply = conn.read_reply("STARTTLS").await?;
        // RFC 3207 §4: anything but 220 means go on without TLS (opportunistic, RFC 7435).
        if reply.code == 220 {
            conn = conn.start_tls(tls.clone(), &target.host).await?;
            // RFC 3207 §4.2: discard what we knew and say EHLO again.
            ext = conn.hello(&settings.hostname).await?;
        }
    }
    let outcomes = transaction(&mut conn, &ext, envelope).await;
    if outcomes.is_ok() {
        // Best effort: the transaction is complete whatever QUIT does.
        let _ = conn.send("QUIT").await;
        let _ = conn.read_reply("QUIT").await;
    }
    outcomes
}

async fn transaction(
    conn: &mut Conn,
    ext: &Extensions,
    envelope: &Envelope<'_>,
) -> Result<Vec<RcptOutcome>, SessionError> {
    let size = envelope.raw.len() as u64;
    // RFC 1870 §6: a message over the advertised fixed limit would be refused; say so now.
    if let Some(limit) = ext.size
        && limit > 0
        && size > limit
    {
        let text = format!(
            "552 5.3.4 message size {size} exceeds the limit of {limit} of {} (in reply to EHLO)",
            conn.target
        );
        return Ok(vec![
            RcptOutcome::Permanent(text);
            envelope.recipients.len()
        ]);
    }
    // RFC 6531 §3.2: non-ASCII addresses need a server that announced SMTPUTF8.
    let needs_utf8 =
        !envelope.sender.is_ascii() || envelope.recipients.iter().any(|r| !r.is_ascii());
    if needs_utf8 && !ext.smtputf8 {
        let text = format!(
            "553 5.6.7 {} does not support internationalized addresses (SMTPUTF8)",
            conn.target
        );
        return Ok(vec![
            RcptOutcome::Permanent(text);
            envelope.recipients.len()
        ]);
    }
    let mut mail = format!("MAIL FROM:<{}>", envelope.sender);
    if ext.size.is_some() {
        mail.push_str(&format!(" SIZE={size}"));
    }
    if ext.eight_bit_mime && !envelope.raw.is_ascii() {
        mail.push_str(" BODY=8BITMIME");
    }
    if needs_utf8 {
        mail.push_str(" SMTPUTF8");
    }
    conn.send(&mail).await?;
    let reply = conn.read_reply("MAIL FROM").await?;
    if reply.is_permanent() {
        let text = conn.describe(&reply, "MAIL FROM");
        return Ok(vec![
            RcptOutcome::Permanent(text);
            envelope.recipients.len()
        ]);
    }
    if !reply.is_positive() {
        return Err(conn.refused("MAIL FROM", reply));
    }
    let mut outcomes: Vec<Option<RcptOutcome>> = Vec::with_capacity(envelope.recipients.len());
    for rcpt in envelope.recipients {
        conn.send(&format!("RCPT TO:<{rcpt}>")).await?;
        let reply = conn.read_reply("RCPT TO").await?;
        outcomes.push(match reply.class() {
            2 => None,
            5 => Some(RcptOutcome::Permanent(conn.describe(&reply, "RCPT TO"))),
            _ => Some(RcptOutcome::Temporary(conn.describe(&reply, "RCPT TO"))),
        });
    }
    if outcomes.iter().all(Option::is_some) {
        let _ = conn.send("RSET").await;
        let _ = conn.read_reply("RSET").await;
        return Ok(outcomes.into_iter().flatten().collect());
    }
    let data_result = send_data(conn, envelope.raw).await;
    let accepted = match data_result {
        Ok(reply) if reply.is_positive() => RcptOutcome::Delivered,
        Ok(reply) if reply.is_permanent() => {
            RcptOutcome::Permanent(conn.describe(&reply, "end of DATA"))
        }
        Ok(reply) => RcptOutcome::Temporary(conn.describe(&reply, "DATA")),
        // RFC 5321 §6.1: a connection lost during DATA means "not delivered" (retry;
        // a duplicate is possible if the server did take it).
        Err(e) => RcptOutcome::Temporary(e.to_string()),
    };
    Ok(outcomes
        .into_iter()
        .map(|o| o.unwrap_or_else(|| accepted.clone()))
        .collect())
}

/// DATA, the dot-stuffed message, and the final reply (RFC 5321 §4.1.1.4, §4.5.2).
async fn send_data(conn: &mut Conn, raw: &[u8]) -> Result<Reply, SessionError> {
    conn.send("DATA").await?;
    let reply = conn.read_reply("DATA").await?;
    if reply.code != 354 {
        return Ok(reply);
    }
    conn.write_all(&dot_stuff(raw), "message content").await?;
    conn.read_reply("end of DATA").await
}

/// Converts the message to CRLF lines, doubles leading dots and appends `.` CRLF.
pub(crate) fn dot_stuff(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 64 + 8);
    let mut at_line_start = true;
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        match b {
            b'\r' if raw.get(i + 1) == Some(&b'\n') => {
                out.extend_from_slice(b"\r\n");
                i += 1;
                at_line_start = true;
            }
            b'\n' => {
                out.extend_from_slice(b"\r\n");
                at_line_start = true;
            }
            _ => {
                out.push(b);
                at_line_start = false;
            }
        }
        i += 1;
    }
    if !at_line_start {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// One connection with its read buffer and per-command timeout.
struct Conn {
    io: BufReader<Box<dyn Stream>>,
    timeout: Duration,
    target: String,
}

impl Conn {
    fn new(stream: Box<dyn Stream>, timeout: Duration, target: String) -> Conn {
        Conn {
            io: BufReader::new(stream),
            timeout,
            target,
        }
    }

    fn refused(&self, stage: &'static str, reply: Reply) -> SessionError {
        SessionError::Refused {
            target: self.target.clone(),
            stage,
            reply,
        }
    }

    /// The text kept as a recipient's `last_error` and used in the DSN.
    fn describe(&self, reply: &Reply, stage: &str) -> String {
        format!(
            "{} (from {}, in reply to {stage})",
            reply.one_line(),
            self.target
        )
    }

    /// EHLO, or HELO if EHLO is refused (RFC 5321 §4.1.4).
    async fn hello(&mut self, hostname: &str) -> Result<Extensions, SessionError> {
        self.send(&format!("EHLO {hostname}")).await?;
        let reply = self.read_reply("EHLO").await?;
        if reply.is_positive() {
            return Ok(Extensions::from_ehlo(&reply));
        }
        self.send(&format!("HELO {hostname}")).await?;
        let reply = self.read_reply("HELO").await?;
        if reply.is_positive() {
            return Ok(Extensions::default());
        }
        Err(self.refused("HELO", reply))
    }

    async fn start_tls(
        self,
        config: Arc<rustls::ClientConfig>,
        host: &str,
    ) -> Result<Conn, SessionError> {
        let target = self.target.clone();
        // RFC 3207 §5: anything the server sent after 220 before TLS is an injection attempt.
        if !self.io.buffer().is_empty() {
            return Err(SessionError::TlsHandshake {
                target,
                reason: "data sent before the handshake".into(),
            });
        }
        let name = rustls::pki_types::ServerName::try_from(host.to_string())
            .or_else(|_| rustls::pki_types::ServerName::try_from("localhost".to_string()))
            .map_err(|e| SessionError::TlsHandshake {
                target: target.clone(),
                reason: e.to_string(),
            })?;
        let connector = tokio_rustls::TlsConnector::from(config);
        let stream = self.io.into_inner();
        let tls = tokio::time::timeout(self.timeout, connector.connect(name, stream))
            .await
            .map_err(|_| SessionError::Timeout {
                target: target.clone(),
                stage: "TLS handshake",
            })?
            .map_err(|e| SessionError::TlsHandshake {
                target: target.clone(),
                reason: e.to_string(),
            })?;
        Ok(Conn::new(Box::new(tls), self.timeout, target))
    }

    async fn send(&mut self, line: &str) -> Result<(), SessionError> {
        let mut bytes = Vec::with_capacity(line.len() + 2);
        bytes.extend_from_slice(line.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        self.write_all(&bytes, "command").await
    }

    async fn write_all(&mut self, bytes: &[u8], stage: &'static str) -> Result<(), SessionError> {
        let target = &self.target;
        let write = async {
            let stream = self.io.get_mut();
            stream.write_all(bytes).await?;
            stream.flush().await
        };
        tokio::time::timeout(self.timeout, write)
            .await
            .map_err(|_| SessionError::Timeout {
                target: target.clone(),
                stage,
            })?
            .map_err(|source| SessionError::Io {
                target: target.clone(),
                source,
            })
    }

    async fn read_reply(&mut self, stage: &'static str) -> Result<Reply, SessionError> {
        let mut parser = ReplyParser::default();
        let mut line = Vec::new();
        loop {
            line.clear();
            let mut limited = (&mut self.io).take(MAX_REPLY_LINE as u64 + 1);
            let n = tokio::time::timeout(self.timeout, limited.read_until(b'\n', &mut line))
                .await
                .map_err(|_| SessionError::Timeout {
                    target: self.target.clone(),
                    stage,
                })?
                .map_err(|source| SessionError::Io {
                    target: self.target.clone(),
                    source,
                })?;
            if n == 0 {
                return Err(SessionError::Closed {
                    target: self.target.clone(),
                    stage,
                });
            }
            match parser.feed(&line) {
                Ok(Some(reply)) => return Ok(reply),
                Ok(None) => {}
                Err(source) => {
                    return Err(SessionError::BadReply {
                        target: self.target.clone(),
                        source,
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_stuffing_doubles_leading_dots_and_terminates() {
        assert_eq!(dot_stuff(b"a\r\n.b\r\n"), b"a\r\n..b\r\n.\r\n".to_vec());
        assert_eq!(dot_stuff(b".\nx"), b"..\r\nx\r\n.\r\n".to_vec());
        assert_eq!(dot_stuff(b""), b".\r\n".to_vec());
        assert_eq!(dot_stuff(b"a.b\r\n"), b"a.b\r\n.\r\n".to_vec());
    }
}
