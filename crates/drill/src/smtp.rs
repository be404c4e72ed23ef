//! A minimal SMTP client (RFC 5321) for the inbound MX listener: EHLO once, then
//! MAIL/RCPT/DATA per message. A message counts as acknowledged only on the final `250`.

use crate::DrillError;
use crate::wire::Conn;

/// What the server said to one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Final 2xx after the data: the server took responsibility (RFC 5321 §4.2.5).
    Accepted,
    /// A 4xx or 5xx reply at any step, with its text.
    Refused(String),
}

pub struct SmtpClient {
    conn: Conn,
}

/// Reads one (possibly multi-line) reply: its code and last line. RFC 5321 §4.2.1.
async fn read_reply(conn: &mut Conn) -> Result<(u16, String), DrillError> {
    loop {
        let line = conn.read_line().await?;
        let code = line
            .get(..3)
            .and_then(|c| std::str::from_utf8(c).ok())
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or_else(|| {
                DrillError::Client(format!(
                    "bad SMTP reply from {}: {:?}",
                    conn.addr(),
                    String::from_utf8_lossy(&line)
                ))
            })?;
        if line.get(3) == Some(&b'-') {
            continue;
        }
        return Ok((code, String::from_utf8_lossy(&line).into_owned()));
    }
}

/// RFC 5321 §4.5.2: a line starting with "." gets one more ".".
fn dot_stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 8);
    let mut at_line_start = true;
    for &b in message {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n';
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

impl SmtpClient {
    pub async fn connect(addr: &str) -> Result<Self, DrillError> {
        let mut conn = Conn::connect(addr).await?;
        let (code, text) = read_reply(&mut conn).await?;
        if code / 100 != 2 {
            return Err(DrillError::Client(format!(
                "SMTP greeting from {addr}: {text}"
            )));
        }
        conn.send(b"EHLO drill.client.test\r\n").await?;
        let (code, text) = read_reply(&mut conn).await?;
        if code / 100 != 2 {
            return Err(DrillError::Client(format!("EHLO at {addr}: {text}")));
        }
        Ok(SmtpClient { conn })
    }

    /// Sends one message. `Err` = the connection broke (outcome unknown: not acknowledged).
    pub async fn send(&mut self, to: &str, message: &[u8]) -> Result<Outcome, DrillError> {
        let steps: [(String, u16); 3] = [
            ("MAIL FROM:<load@client.test>\r\n".to_string(), 2),
            (format!("RCPT TO:<{to}>\r\n"), 2),
            ("DATA\r\n".to_string(), 3),
        ];
        for (command, class) in steps {
            self.conn.send(command.as_bytes()).await?;
            let (code, text) = read_reply(&mut self.conn).await?;
            if code / 100 != class {
                // RFC 5321 §4.1.1.5: RSET clears the half-done transaction.
                self.conn.send(b"RSET\r\n").await?;
                read_reply(&mut self.conn).await?;
                return Ok(Outcome::Refused(text));
            }
        }
        self.conn.send(&dot_stuff(message)).await?;
        let (code, text) = read_reply(&mut self.conn).await?;
        Ok(if code / 100 == 2 {
            Outcome::Accepted
        } else {
            Outcome::Refused(text)
        })
    }

    pub async fn quit(mut self) {
        if self.conn.send(b"QUIT\r\n").await.is_ok() {
            let _ = read_reply(&mut self.conn).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_stuffing_doubles_leading_dots_and_terminates() {
        assert_eq!(dot_stuff(b"a\r\n.b\r\n"), b"a\r\n..b\r\n.\r\n".to_vec());
        assert_eq!(dot_stuff(b"no newline"), b"no newline\r\n.\r\n".to_vec());
    }
}
