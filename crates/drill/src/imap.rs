//! A minimal IMAP4rev1 client (RFC 3501): LOGIN, SELECT, NOOP, FETCH, APPEND and the
//! Message-ID listing used to verify delivery. Literals in responses are read in full.

use crate::DrillError;
use crate::wire::Conn;

/// One untagged response: its text (literals replaced by `{N}`) and the literals' bytes.
#[derive(Debug, Default)]
pub struct Untagged {
    pub text: String,
    pub literals: Vec<Vec<u8>>,
}

/// The tagged completion (RFC 3501 §7.1) and the untagged responses before it.
#[derive(Debug)]
pub struct Response {
    pub ok: bool,
    /// The tagged line after the tag (`OK …`, `NO [UNAVAILABLE] …`, `BAD …`).
    pub status: String,
    pub untagged: Vec<Untagged>,
}

pub struct ImapClient {
    conn: Conn,
    next_tag: u64,
    /// Messages in the selected mailbox, from the last `* N EXISTS`.
    pub exists: u64,
}

/// `{N}` or `{N+}` at the end of a line: the size of the literal that follows (RFC 3501 §4.3).
fn literal_size(line: &[u8]) -> Option<usize> {
    let rest = line.strip_suffix(b"}")?;
    let open = rest.iter().rposition(|&b| b == b'{')?;
    let digits = &rest[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    std::str::from_utf8(digits).ok()?.parse().ok()
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

impl ImapClient {
    pub async fn connect(addr: &str) -> Result<Self, DrillError> {
        let mut conn = Conn::connect(addr).await?;
        let greeting = conn.read_line().await?;
        if !greeting.starts_with(b"* OK") && !greeting.starts_with(b"* PREAUTH") {
            return Err(DrillError::Client(format!(
                "IMAP greeting from {addr}: {}",
                String::from_utf8_lossy(&greeting)
            )));
        }
        Ok(ImapClient {
            conn,
            next_tag: 1,
            exists: 0,
        })
    }

    /// Connects, logs in and selects INBOX; any refusal is an error.
    pub async fn open_inbox(addr: &str, user: &str, pass: &str) -> Result<Self, DrillError> {
        let mut c = ImapClient::connect(addr).await?;
        if !c.conn.is_loopback() {
            // RFC 3501 §6.2.1: plaintext LOGIN only after STARTTLS off loopback.
            c.expect_ok("STARTTLS").await?;
            c.conn = c.conn.start_tls().await?;
        }
        c.expect_ok(&format!("LOGIN {} {}", quote(user), quote(pass)))
            .await?;
        c.expect_ok("SELECT INBOX").await?;
        Ok(c)
    }

    /// Reads one response line, with any literals it announces.
    async fn read_response(&mut self) -> Result<Untagged, DrillError> {
        let mut item = Untagged::default();
        loop {
            let line = self.conn.read_line().await?;
            item.text.push_str(&String::from_utf8_lossy(&line));
            match literal_size(&line) {
                Some(n) => item.literals.push(self.conn.read_exact(n).await?),
                None => return Ok(item),
            }
        }
    }

    fn note_exists(&mut self, text: &str) {
        let mut words = text.split_whitespace();
        if let (Some("*"), Some(n), Some(kind)) = (words.next(), words.next(), words.next())
            && kind.eq_ignore_ascii_case("EXISTS")
            && let Ok(n) = n.parse()
        {
            self.exists = n;
        }
    }

    /// Sends `TAG command` and reads up to the tagged completion.
    pub async fn command(&mut self, command: &str) -> Result<Response, DrillError> {
        let tag = format!("d{}", self.next_tag);
        self.next_tag += 1;
        self.conn
            .send(format!("{tag} {command}\r\n").as_bytes())
            .await?;
        self.read_until_tagged(&tag).await
    }

    async fn read_until_tagged(&mut self, tag: &str) -> Result<Response, DrillError> {
        let mut untagged = Vec::new();
        loop {
            let item = self.read_response().await?;
            if let Some(status) = item
                .text
                .strip_prefix(tag)
                .and_then(|s| s.strip_prefix(' '))
            {
                let ok = status.starts_with("OK");
                return Ok(Response {
                    ok,
                    status: status.to_string(),
                    untagged,
                });
            }
            if item.text.starts_with("* BYE") {
                return Err(DrillError::Client(format!(
                    "{} said {}",
                    self.conn.addr(),
                    item.text
                )));
            }
            self.note_exists(&item.text);
            untagged.push(item);
        }
    }

    /// A command whose refusal is an error (carrying the server's text).
    pub async fn expect_ok(&mut self, command: &str) -> Result<Response, DrillError> {
        let r = self.command(command).await?;
        if r.ok {
            Ok(r)
        } else {
            let verb = command.split_whitespace().next().unwrap_or("");
            Err(DrillError::Client(format!(
                "{verb} at {}: {}",
                self.conn.addr(),
                r.status
            )))
        }
    }

    /// RFC 3501 §6.3.11: APPEND with a synchronizing literal. `Ok(false)` = refused (`NO`).
    pub async fn append(&mut self, mailbox: &str, message: &[u8]) -> Result<Response, DrillError> {
        let tag = format!("d{}", self.next_tag);
        self.next_tag += 1;
        self.conn
            .send(format!("{tag} APPEND {} {{{}}}\r\n", quote(mailbox), message.len()).as_bytes())
            .await?;
        let go = self.read_response().await?;
        if !go.text.starts_with('+') {
            if let Some(status) = go.text.strip_prefix(&tag).and_then(|s| s.strip_prefix(' ')) {
                return Ok(Response {
                    ok: false,
                    status: status.to_string(),
                    untagged: Vec::new(),
                });
            }
            return Err(DrillError::Client(format!(
                "APPEND at {}: expected a continuation, got {}",
                self.conn.addr(),
                go.text
            )));
        }
        let mut data = message.to_vec();
        data.extend_from_slice(b"\r\n");
        self.conn.send(&data).await?;
        self.read_until_tagged(&tag).await
    }

    /// Every Message-ID in the selected mailbox, once per message holding it.
    pub async fn message_ids(&mut self) -> Result<Vec<String>, DrillError> {
        let r = self.expect_ok("NOOP").await?;
        drop(r);
        if self.exists == 0 {
            return Ok(Vec::new());
        }
        let r = self
            .expect_ok("FETCH 1:* (BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
            .await?;
        Ok(r.untagged
            .iter()
            .filter(|u| u.text.contains("FETCH"))
            .filter_map(|u| {
                u.literals
                    .iter()
                    .find_map(|l| crate::message::parse_message_id(l))
            })
            .collect())
    }

    /// RFC 3501 §6.4.4: `UID SEARCH HEADER Message-ID …`; the number of matching messages.
    pub async fn count_message_id(&mut self, message_id: &str) -> Result<usize, DrillError> {
        let r = self
            .expect_ok(&format!(
                "UID SEARCH HEADER Message-ID {}",
                quote(message_id)
            ))
            .await?;
        Ok(r.untagged
            .iter()
            .filter_map(|u| u.text.strip_prefix("* SEARCH"))
            .map(|rest| rest.split_whitespace().count())
            .sum())
    }

    pub async fn logout(mut self) {
        let _ = self.command("LOGOUT").await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_size_reads_synchronizing_and_plus_forms() {
        assert_eq!(literal_size(b"* 1 FETCH (BODY[HEADER] {42}"), Some(42));
        assert_eq!(literal_size(b"a APPEND INBOX {7+}"), Some(7));
        assert_eq!(literal_size(b"* OK done"), None);
        assert_eq!(literal_size(b"* OK {x}"), None);
    }

    #[test]
    fn quote_escapes_backslash_and_quote() {
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
