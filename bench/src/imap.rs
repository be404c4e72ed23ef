//! A minimal IMAP client: tagged commands, untagged responses with literals folded in,
//! APPEND with synchronizing or non-synchronizing (LITERAL+) literals, pipelined APPEND.

use crate::wire::Conn;
use anyhow::{Result, bail};

pub struct Imap {
    conn: Conn,
    tag: u64,
    pub capabilities: String,
}

pub struct Reply {
    pub untagged: Vec<Vec<u8>>,
    /// Untagged responses seen (also counted when not kept).
    pub untagged_count: usize,
    pub ok: bool,
    pub text: String,
}

impl Reply {
    /// The message count after this reply: the last `* N EXISTS`, less the `* M EXPUNGE`
    /// responses that follow it (RFC 9051 §7.5.1: each one shifts the sequence numbers).
    pub fn exists(&self) -> Option<u64> {
        let mut count = None;
        for l in &self.untagged {
            let Some((n, word)) = std::str::from_utf8(l)
                .ok()
                .and_then(|s| s.strip_prefix("* "))
                .and_then(|rest| rest.split_once(' '))
            else {
                continue;
            };
            let word = word.trim();
            if word.eq_ignore_ascii_case("EXISTS") {
                count = n.parse().ok();
            } else if word.eq_ignore_ascii_case("EXPUNGE") {
                count = count.map(|c: u64| c.saturating_sub(1));
            }
        }
        count
    }

    /// UIDs named in untagged FETCH responses (`* n FETCH (UID u ...)`).
    pub fn fetched_uids(&self) -> Vec<u64> {
        self.untagged
            .iter()
            .filter_map(|l| {
                let s = std::str::from_utf8(l.split(|b| *b == b'\r').next()?).ok()?;
                let i = s.find("UID ")?;
                s[i + 4..]
                    .split(|c: char| !c.is_ascii_digit())
                    .next()?
                    .parse()
                    .ok()
            })
            .collect()
    }

    /// Numbers of an untagged `* SEARCH` response.
    pub fn search_hits(&self) -> usize {
        self.untagged
            .iter()
            .filter_map(|l| std::str::from_utf8(l).ok())
            .filter_map(|s| s.strip_prefix("* SEARCH"))
            .map(|rest| rest.split_whitespace().count())
            .sum()
    }

    /// The UID from `[APPENDUID validity uid]` (RFC 4315 §3).
    pub fn append_uid(&self) -> Option<u64> {
        let i = self.text.find("[APPENDUID ")?;
        let rest = &self.text[i + "[APPENDUID ".len()..];
        let uid = rest.split_whitespace().nth(1)?;
        uid.trim_end_matches(']').parse().ok()
    }
}

/// If `line` ends with a literal announcement `{N}` or `{N+}`, its size.
fn literal_size(line: &[u8]) -> Option<usize> {
    if line.last() != Some(&b'}') {
        return None;
    }
    let open = line.iter().rposition(|b| *b == b'{')?;
    let digits = std::str::from_utf8(&line[open + 1..line.len() - 1]).ok()?;
    digits.trim_end_matches('+').parse().ok()
}

impl Imap {
    pub async fn connect(addr: &str) -> Result<Self> {
        let mut conn = Conn::connect(addr).await?;
        let greeting = conn.read_line().await?;
        if !greeting.starts_with(b"* OK") {
            bail!("IMAP greeting: {}", String::from_utf8_lossy(&greeting));
        }
        Ok(Imap {
            conn,
            tag: 0,
            capabilities: String::new(),
        })
    }

    pub async fn login(addr: &str, user: &str, pass: &str) -> Result<Self> {
        let mut imap = Imap::connect(addr).await?;
        let r = imap
            .cmd(&format!("LOGIN {} {}", quote(user), quote(pass)))
            .await?;
        if !r.ok {
            bail!("LOGIN {user} failed: {}", r.text);
        }
        // BENCH_IMAP_ENABLE=IMAP4rev2: clients that enabled IMAP4rev2 (no \Recent, so no
        // claim is written when new mail is first seen), to tell that cost apart.
        if let Ok(extensions) = std::env::var("BENCH_IMAP_ENABLE")
            && !extensions.is_empty()
        {
            imap.cmd(&format!("ENABLE {extensions}")).await?;
        }
        let r = imap.cmd("CAPABILITY").await?;
        imap.capabilities = r
            .untagged
            .iter()
            .map(|l| String::from_utf8_lossy(l).to_ascii_uppercase())
            .collect::<Vec<_>>()
            .join(" ");
        Ok(imap)
    }

    pub fn has_capability(&self, cap: &str) -> bool {
        self.capabilities
            .split_whitespace()
            .any(|c| c.eq_ignore_ascii_case(cap))
    }

    fn next_tag(&mut self) -> String {
        self.tag += 1;
        format!("b{}", self.tag)
    }

    /// One response line with any literals it announces folded in.
    async fn read_response(&mut self) -> Result<Vec<u8>> {
        let mut line = self.conn.read_line().await?;
        while let Some(n) = literal_size(&line) {
            let lit = self.conn.read_exact(n).await?;
            line.extend_from_slice(b"\r\n");
            line.extend_from_slice(&lit);
            let more = self.conn.read_line().await?;
            line.extend_from_slice(&more);
        }
        Ok(line)
    }

    async fn read_until_tagged(&mut self, tag: &str, keep: bool) -> Result<Reply> {
        let mut reply = Reply {
            untagged: Vec::new(),
            untagged_count: 0,
            ok: false,
            text: String::new(),
        };
        loop {
            let line = self.read_response().await?;
            if line.starts_with(b"* ") {
                if line.starts_with(b"* BYE") {
                    bail!("server said {}", String::from_utf8_lossy(&line));
                }
                reply.untagged_count += 1;
                if keep {
                    reply.untagged.push(line);
                }
                continue;
            }
            if line.starts_with(b"+") {
                continue; // unexpected continuation; nothing to send
            }
            let s = String::from_utf8_lossy(&line);
            if let Some(rest) = s.strip_prefix(tag).and_then(|r| r.strip_prefix(' ')) {
                reply.ok = rest.len() >= 2 && rest[..2].eq_ignore_ascii_case("OK");
                reply.text = rest.to_string();
                return Ok(reply);
            }
            // A tagged reply for another (pipelined) tag: callers that pipeline use
            // `read_tagged` instead; here it is an error in the conversation.
            bail!("unexpected line while waiting for {tag}: {s}");
        }
    }

    /// Runs one command and keeps its untagged responses.
    pub async fn cmd(&mut self, command: &str) -> Result<Reply> {
        let tag = self.next_tag();
        self.conn
            .send(format!("{tag} {command}\r\n").as_bytes())
            .await?;
        self.read_until_tagged(&tag, true).await
    }

    /// Runs one command, counting but not keeping untagged responses (big FETCHes).
    pub async fn cmd_count(&mut self, command: &str) -> Result<Reply> {
        let tag = self.next_tag();
        self.conn
            .send(format!("{tag} {command}\r\n").as_bytes())
            .await?;
        self.read_until_tagged(&tag, false).await
    }

    /// APPEND one message; uses LITERAL+ when the server has it.
    pub async fn append(&mut self, mailbox: &str, flags: &str, msg: &[u8]) -> Result<Reply> {
        let tag = self.next_tag();
        if self.has_capability("LITERAL+") {
            let head = format!("{tag} APPEND {mailbox} ({flags}) {{{}+}}\r\n", msg.len());
            self.conn.write(head.as_bytes()).await?;
            self.conn.write(msg).await?;
            self.conn.send(b"\r\n").await?;
        } else {
            let head = format!("{tag} APPEND {mailbox} ({flags}) {{{}}}\r\n", msg.len());
            self.conn.send(head.as_bytes()).await?;
            let cont = self.conn.read_line().await?;
            if !cont.starts_with(b"+") {
                bail!("APPEND refused: {}", String::from_utf8_lossy(&cont));
            }
            self.conn.write(msg).await?;
            self.conn.send(b"\r\n").await?;
        }
        self.read_until_tagged(&tag, true).await
    }

    /// Sends APPENDs of `msgs` with LITERAL+, at most `window` outstanding; returns the
    /// number acknowledged OK.
    pub async fn append_pipelined(
        &mut self,
        mailbox: &str,
        msgs: impl Iterator<Item = Vec<u8>>,
        window: usize,
    ) -> Result<u64> {
        if !self.has_capability("LITERAL+") {
            let mut ok = 0;
            for m in msgs {
                if self.append(mailbox, "", &m).await?.ok {
                    ok += 1;
                }
            }
            return Ok(ok);
        }
        let mut outstanding = std::collections::VecDeque::new();
        let mut ok = 0u64;
        for m in msgs {
            let tag = self.next_tag();
            let head = format!("{tag} APPEND {mailbox} {{{}+}}\r\n", m.len());
            self.conn.write(head.as_bytes()).await?;
            self.conn.write(&m).await?;
            self.conn.write(b"\r\n").await?;
            outstanding.push_back(tag);
            if outstanding.len() >= window {
                self.conn.flush().await?;
                if let Some(t) = outstanding.pop_front() {
                    ok += u64::from(self.read_until_tagged(&t, false).await?.ok);
                }
            }
        }
        self.conn.flush().await?;
        while let Some(t) = outstanding.pop_front() {
            ok += u64::from(self.read_until_tagged(&t, false).await?.ok);
        }
        Ok(ok)
    }

    /// IDLE (RFC 2177): send, wait for the continuation.
    pub async fn idle_start(&mut self) -> Result<String> {
        let tag = self.next_tag();
        self.conn.send(format!("{tag} IDLE\r\n").as_bytes()).await?;
        loop {
            let line = self.read_response().await?;
            if line.starts_with(b"+") {
                return Ok(tag);
            }
            if !line.starts_with(b"* ") {
                bail!("IDLE refused: {}", String::from_utf8_lossy(&line));
            }
        }
    }

    pub async fn idle_done(&mut self, tag: &str) -> Result<Reply> {
        self.conn.send(b"DONE\r\n").await?;
        self.read_until_tagged(tag, false).await
    }

    pub async fn logout(mut self) {
        let _ = self.cmd("LOGOUT").await;
    }
}

/// An IMAP quoted string (RFC 9051 §4.3).
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Logs in `n` sessions (user `{}` replaced by i % users), `parallel` logins at a time.
pub async fn login_many(
    addr: &str,
    user: &str,
    users: usize,
    pass: &str,
    n: usize,
    parallel: usize,
) -> Result<Vec<Imap>> {
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(parallel.max(1)));
    // Several comma-separated addresses (the nodes of one cluster): clients take turns.
    let addrs: Vec<&str> = addr.split(',').collect();
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let addr = addrs.get(i % addrs.len()).copied().unwrap_or(addr);
        let (addr, pass, sem) = (addr.to_string(), pass.to_string(), sem.clone());
        let user = user.replace("{}", &(i % users.max(1)).to_string());
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await?;
            Imap::login(&addr, &user, &pass).await
        }));
    }
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(t.await??);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_size_reads_plain_and_nonsync_literals() {
        assert_eq!(literal_size(b"* 1 FETCH (BODY[] {123}"), Some(123));
        assert_eq!(literal_size(b"a APPEND INBOX {5+}"), Some(5));
        assert_eq!(literal_size(b"* 1 FETCH (FLAGS ())"), None);
    }

    #[test]
    fn reply_parses_exists_search_and_appenduid() {
        let r = Reply {
            untagged: vec![b"* 42 EXISTS".to_vec(), b"* SEARCH 1 5 9".to_vec()],
            untagged_count: 2,
            ok: true,
            text: "OK [APPENDUID 1700 77] done".into(),
        };
        assert_eq!(r.exists(), Some(42));
        let shifted = Reply {
            untagged: vec![b"* 42 EXISTS".to_vec(), b"* 7 EXPUNGE".to_vec()],
            untagged_count: 2,
            ok: true,
            text: String::new(),
        };
        assert_eq!(shifted.exists(), Some(41));
        assert_eq!(r.search_hits(), 3);
        assert_eq!(r.append_uid(), Some(77));
    }

    #[test]
    fn fetched_uids_reads_uid_items() {
        let r = Reply {
            untagged: vec![
                b"* 1 FETCH (UID 17 FLAGS (\\Seen) BODY[HEADER.FIELDS (FROM)] {5}\r\nFrom:)"
                    .to_vec(),
                b"* 2 FETCH (FLAGS () UID 18)".to_vec(),
                b"* 3 EXPUNGE".to_vec(),
            ],
            untagged_count: 3,
            ok: true,
            text: String::new(),
        };
        assert_eq!(r.fetched_uids(), vec![17, 18]);
    }

    #[test]
    fn quote_escapes_quotes_and_backslashes() {
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
