//! A buffered TCP connection with the two primitives line protocols need: read one
//! CRLF-terminated line, read exactly N bytes (literals, HTTP bodies).

use anyhow::{Context, Result, bail};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufStream};
use tokio::net::TcpStream;

/// Longest line we accept from a server before calling it broken.
const MAX_LINE: usize = 1024 * 1024;
/// A connect that takes longer than this is an error (the server is overloaded or gone).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Conn {
    io: BufStream<TcpStream>,
}

impl Conn {
    pub async fn connect(addr: &str) -> Result<Self> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .with_context(|| format!("connect to {addr} timed out"))?
            .with_context(|| format!("connect to {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            io: BufStream::with_capacity(64 * 1024, 64 * 1024, stream),
        })
    }

    /// Buffers `data` without flushing (for pipelining).
    pub async fn write(&mut self, data: &[u8]) -> Result<()> {
        self.io.write_all(data).await?;
        Ok(())
    }

    pub async fn flush(&mut self) -> Result<()> {
        self.io.flush().await?;
        Ok(())
    }

    /// Writes and flushes.
    pub async fn send(&mut self, data: &[u8]) -> Result<()> {
        self.io.write_all(data).await?;
        self.io.flush().await?;
        Ok(())
    }

    /// One line without its CRLF (or LF).
    pub async fn read_line(&mut self) -> Result<Vec<u8>> {
        let mut line = Vec::with_capacity(128);
        let n = (&mut self.io)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut line)
            .await?;
        if n == 0 {
            bail!("connection closed by server");
        }
        if line.last() != Some(&b'\n') {
            bail!("line longer than {MAX_LINE} bytes or truncated");
        }
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Ok(line)
    }

    pub async fn read_exact(&mut self, n: usize) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; n];
        self.io.read_exact(&mut buf).await?;
        Ok(buf)
    }
}
