//! Virus scanning with ClamAV's daemon (`clamd`, Debian `clamav-daemon`) over its Unix
//! socket, as a stage of the delivery pipeline: an infected message is refused for every
//! recipient (`554 5.7.1`, nothing stored); when clamd cannot be asked the message is
//! deferred (`451 4.7.1`, the sender retries) unless `[spam] clamav_defer_on_error = false`.
//!
//! The protocol is clamd's `INSTREAM` (clamd(8)): `zINSTREAM\0`, then chunks each preceded by
//! its length as a 4-byte big-endian number, a zero length to end; the answer is one
//! NUL-terminated line, `stream: OK`, `stream: NAME FOUND`, or `… ERROR`. [`parse_reply`] reads
//! it (sans-I/O, fuzzed); [`scan`] is the socket exchange.

use bulwark_core::{DeliveryHook, Message, Refusal, Verdict};
use bulwark_store::AccountId;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Bytes per INSTREAM chunk.
const CHUNK: usize = 64 * 1024;
/// The longest answer read from clamd.
pub const MAX_REPLY: usize = 4096;
/// How long one scan may take (connect, send, verdict).
pub const SCAN_TIMEOUT: Duration = Duration::from_secs(60);

/// What clamd said of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scan {
    Clean,
    /// The signature's name (`Eicar-Test-Signature`).
    Infected(String),
    /// Over clamd's `StreamMaxLength`: not scanned.
    TooLarge,
}

/// Reads clamd's answer to INSTREAM. `Err`: clamd reported an error or said something else.
pub fn parse_reply(reply: &[u8]) -> Result<Scan, String> {
    let end = reply
        .iter()
        .position(|&b| b == 0 || b == b'\n')
        .unwrap_or(reply.len());
    let text = String::from_utf8_lossy(&reply[..end.min(MAX_REPLY)]);
    let text = text.trim();
    // Replies are `stream: …` (or `1: stream: …` with IDSESSION, not used here).
    let body = text.strip_prefix("stream:").map(str::trim).unwrap_or(text);
    if body == "OK" {
        return Ok(Scan::Clean);
    }
    if body.contains("size limit exceeded") {
        return Ok(Scan::TooLarge);
    }
    if let Some(name) = body.strip_suffix(" FOUND") {
        let name: String = name
            .trim()
            .chars()
            .filter(|c| !c.is_control())
            .take(200)
            .collect();
        if !name.is_empty() {
            return Ok(Scan::Infected(name));
        }
    }
    let shown: String = body.chars().filter(|c| !c.is_control()).take(200).collect();
    Err(if shown.is_empty() {
        "clamd gave no answer".to_string()
    } else {
        format!("clamd answered {shown:?}")
    })
}

/// Sends `data` to clamd at `socket` and returns its verdict.
pub async fn scan(socket: &Path, data: &[u8]) -> Result<Scan, String> {
    let exchange = async {
        let mut s = tokio::net::UnixStream::connect(socket)
            .await
            .map_err(|e| format!("cannot connect to clamd at {}: {e}", socket.display()))?;
        let io = |e: std::io::Error| format!("clamd at {}: {e}", socket.display());
        s.write_all(b"zINSTREAM\0").await.map_err(io)?;
        for chunk in data.chunks(CHUNK) {
            // CHUNK fits in u32.
            let len = u32::try_from(chunk.len()).unwrap_or(u32::MAX);
            s.write_all(&len.to_be_bytes()).await.map_err(io)?;
            if let Err(e) = s.write_all(chunk).await {
                // clamd closes early when the stream is over its limit; its answer says so.
                tracing::debug!(error = %e, "clamd stopped reading");
                break;
            }
        }
        let _ = s.write_all(&0u32.to_be_bytes()).await;
        let mut reply = Vec::new();
        let mut buf = [0u8; 512];
        while reply.len() < MAX_REPLY {
            let n = s.read(&mut buf).await.map_err(io)?;
            if n == 0 {
                break;
            }
            reply.extend_from_slice(&buf[..n]);
            if reply.contains(&0) {
                break;
            }
        }
        parse_reply(&reply)
    };
    tokio::time::timeout(SCAN_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("clamd took over {SCAN_TIMEOUT:?}"))?
}

/// The virus stage of the pipeline.
pub struct ClamAvHook {
    socket: PathBuf,
    defer_on_error: bool,
}

impl ClamAvHook {
    pub fn new(socket: PathBuf, defer_on_error: bool) -> ClamAvHook {
        ClamAvHook {
            socket,
            defer_on_error,
        }
    }
}

#[async_trait::async_trait]
impl DeliveryHook for ClamAvHook {
    async fn inspect(
        &self,
        message: &Message,
        _local: &[AccountId],
        _remote: &[String],
        verdict: &mut Verdict,
    ) {
        if verdict.refusal.is_some() {
            return;
        }
        // Every message: inbound, and what users send (a compromised account's attachments).
        match scan(&self.socket, &message.local_raw).await {
            Ok(Scan::Clean) => verdict
                .local_headers
                .push("X-Virus-Scanned: ClamAV; clean\r\n".into()),
            Ok(Scan::TooLarge) => {
                tracing::warn!(
                    size = message.local_raw.len(),
                    "message over clamd's StreamMaxLength: delivered unscanned (raise StreamMaxLength to [limits] max_message_size)"
                );
                verdict
                    .local_headers
                    .push("X-Virus-Scanned: ClamAV; not scanned (too large)\r\n".into());
            }
            Ok(Scan::Infected(name)) => {
                tracing::warn!(sender = %message.sender, virus = %name, "message refused: virus found");
                verdict.refusal = Some(Refusal::Permanent(format!(
                    "554 5.7.1 Message refused: it carries a virus ({name})"
                )));
            }
            Err(why) if self.defer_on_error => {
                tracing::error!(%why, "virus scan failed: message deferred");
                verdict.refusal = Some(Refusal::Temporary(
                    "451 4.7.1 Virus scanner unavailable, try again later".into(),
                ));
            }
            Err(why) => {
                tracing::error!(%why, "virus scan failed: message delivered unscanned");
                verdict
                    .local_headers
                    .push("X-Virus-Scanned: ClamAV; not scanned (scanner unavailable)\r\n".into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies() {
        assert_eq!(parse_reply(b"stream: OK\0"), Ok(Scan::Clean));
        assert_eq!(
            parse_reply(b"stream: Eicar-Test-Signature FOUND\0"),
            Ok(Scan::Infected("Eicar-Test-Signature".into()))
        );
        assert_eq!(
            parse_reply(b"INSTREAM size limit exceeded. ERROR\0"),
            Ok(Scan::TooLarge)
        );
        assert!(parse_reply(b"stream: Can't allocate memory ERROR\0").is_err());
        assert!(parse_reply(b"").is_err());
        assert!(parse_reply(b"stream:  FOUND\0").is_err());
        assert!(parse_reply(&[0xff; 10]).is_err());
    }

    /// A clamd stand-in on a Unix socket: reads the INSTREAM framing exactly and answers
    /// FOUND when the stream holds the EICAR string. (The real clamd runs in
    /// tests/e2e/test_clamav.py.)
    #[tokio::test]
    async fn the_instream_framing_is_what_clamd_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clamd.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let server = tokio::spawn(async move {
            let mut answers = Vec::new();
            for _ in 0..2 {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut cmd = [0u8; 10];
                s.read_exact(&mut cmd).await.unwrap();
                assert_eq!(&cmd, b"zINSTREAM\0");
                let mut data = Vec::new();
                loop {
                    let mut len = [0u8; 4];
                    s.read_exact(&mut len).await.unwrap();
                    let len = u32::from_be_bytes(len) as usize;
                    if len == 0 {
                        break;
                    }
                    assert!(len <= CHUNK);
                    let mut chunk = vec![0u8; len];
                    s.read_exact(&mut chunk).await.unwrap();
                    data.extend(chunk);
                }
                let found = data.windows(8).any(|w| w == b"EICAR-ST");
                s.write_all(if found {
                    b"stream: Eicar-Test-Signature FOUND\0" as &[u8]
                } else {
                    b"stream: OK\0"
                })
                .await
                .unwrap();
                answers.push(data.len());
            }
            answers
        });
        let big = vec![b'a'; 3 * CHUNK + 17];
        assert_eq!(scan(&path, &big).await, Ok(Scan::Clean));
        let eicar = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
        assert_eq!(
            scan(&path, eicar).await,
            Ok(Scan::Infected("Eicar-Test-Signature".into()))
        );
        assert_eq!(server.await.unwrap(), vec![big.len(), eicar.len()]);
        let missing = dir.path().join("nothing.sock");
        assert!(
            scan(&missing, b"x")
                .await
                .unwrap_err()
                .contains("cannot connect")
        );
    }
}
