//! CATENATE (RFC 4469): an APPEND message made of TEXT literals and IMAP URLs (RFC 5092) of
//! messages or sections in mailboxes of the logged-in user.

use super::{CmdError, Session};
use crate::imapurl::{self, MessageUrl};
use crate::message;
use crate::parser::CatPart;
use bulwark_store::{BlobHash, MailboxId, Uid};

/// `url-resp-text` of `[BADURL url-resp-text]` (RFC 4469 §6: no CR, LF or `]`).
pub(super) fn url_resp_text(url: &str) -> String {
    url.chars()
        .map(|c| if c == ']' || c.is_control() { '?' } else { c })
        .take(imapurl::MAX_URL_LEN)
        .collect()
}

impl Session {
    /// The message the parts make, at most the APPEND size limit (`NO [TOOBIG]`). A URL
    /// that cannot be resolved is `NO [BADURL url]` (RFC 4469 §5).
    pub(crate) async fn catenate(&mut self, parts: &[CatPart]) -> Result<Vec<u8>, CmdError> {
        let max = self.cfg.max_literal_size;
        let mut out: Vec<u8> = Vec::new();
        for part in parts {
            let resolved;
            let data: &[u8] = match part {
                CatPart::Text(text) => text,
                CatPart::Url(url) => {
                    resolved = self.resolve_url(url).await?;
                    &resolved
                }
            };
            if out.len().saturating_add(data.len()) > max {
                return Err(CmdError::no(
                    "TOOBIG",
                    format!("CATENATE: the message would be larger than {max} bytes"),
                ));
            }
            out.extend_from_slice(data);
        }
        Ok(out)
    }

    /// The bytes an IMAP URL names: a message of one of the user's mailboxes, or a section
    /// (and range) of it, as `BODY[section]<partial>` would return them.
    async fn resolve_url(&self, url: &str) -> Result<Vec<u8>, CmdError> {
        let bad = |why: &str| CmdError::NoCode {
            code: format!("BADURL {}", url_resp_text(url)),
            text: format!("CATENATE: {why}"),
        };
        let u: MessageUrl =
            imapurl::parse(url).ok_or_else(|| bad("not an IMAP URL of a message"))?;
        // RFC 4469 §5 with RFC 4467: a URLAUTH-authorized URL is resolved as URLFETCH
        // would (it may name another user's message it authorizes this user to read).
        if u.urlauth.is_some() {
            return self
                .url_fetch_one(url)
                .await?
                .ok_or_else(|| bad("the URLAUTH authorization is not valid for this user"));
        }
        // Absolute URLs must name this server and this user: no other user's mailbox can be
        // read here.
        if let Some(host) = &u.host
            && !host.eq_ignore_ascii_case(&self.cfg.hostname)
        {
            return Err(bad("the URL names another server"));
        }
        if let Some(user) = &u.user
            && !user.eq_ignore_ascii_case(&self.authed()?.account.address)
        {
            return Err(bad("the URL names another user's mailbox"));
        }
        let name = crate::parser::normalize_inbox(u.mailbox.clone());
        let mailbox = self
            .find_mailbox(&name)
            .await?
            .ok_or_else(|| bad("no such mailbox"))?;
        // RFC 5092 §6: a URL whose UIDVALIDITY is not the mailbox's names nothing.
        if u.uid_validity.is_some_and(|v| v != mailbox.uid_validity) {
            return Err(bad("the mailbox's UIDVALIDITY has changed"));
        }
        let hash = self
            .blob_of(mailbox.id, Uid(u.uid))
            .await?
            .ok_or_else(|| bad("no message with that UID"))?;
        let raw = self
            .store
            .blob_get(&hash)
            .await?
            .ok_or_else(|| bad("the message is gone"))?;
        let data = match &u.section {
            Some(text) => {
                let section =
                    crate::parser::parse_section(text).ok_or_else(|| bad("invalid SECTION"))?;
                message::section(&raw, &section).ok_or_else(|| bad("no such section"))?
            }
            None => raw,
        };
        Ok(match u.partial {
            Some((origin, len)) => message::partial(&data, origin, len).to_vec(),
            None => data,
        })
    }

    /// The content hash of the message `uid` of `mailbox`: from the view when it is the
    /// selected mailbox, else from the store's listing.
    async fn blob_of(&self, mailbox: MailboxId, uid: Uid) -> Result<Option<BlobHash>, CmdError> {
        if let Ok(sel) = self.selected()
            && sel.id == mailbox
        {
            let i = sel.view.partition_point(|m| m.uid < uid);
            return Ok(sel
                .view
                .get(i)
                .filter(|m| m.uid == uid)
                .map(|m| m.blob.to_hash()));
        }
        let account = self.account_id()?;
        let messages = self.store.mailbox_messages(account, mailbox).await?;
        let i = messages.partition_point(|m| m.uid < uid);
        Ok(messages
            .get(i)
            .filter(|m| m.uid == uid)
            .map(|m| m.blob.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::logged_in;

    const FIRST: &str = "From: a@x.test\r\nSubject: first\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\npart one\r\n--b\r\nContent-Type: text/plain\r\n\r\npart two\r\n--b--\r\n";

    async fn uidvalidity(t: &mut super::super::tests::T, mailbox: &str) -> u32 {
        let out = t.ok(&format!("v STATUS {mailbox} (UIDVALIDITY)")).await;
        let n = out
            .split("UIDVALIDITY ")
            .nth(1)
            .and_then(|s| s.split(')').next())
            .expect("uidvalidity");
        n.parse().expect("number")
    }

    #[tokio::test]
    async fn catenate_joins_text_and_url_parts() {
        let dir = tempfile::tempdir().expect("tmp");
        let (mut t, _, _) = logged_in(dir.path()).await;
        t.append("INBOX", "", FIRST).await;
        let v = uidvalidity(&mut t, "INBOX").await;
        // RFC 4469 §5: a new header, then a section of a stored message.
        let head = "From: me@x.test\r\nSubject: forwarded\r\n\r\n";
        let out = t
            .ok(&format!(
                "a APPEND INBOX CATENATE (TEXT {{{}+}}\r\n{head} URL \"/INBOX;UIDVALIDITY={v}/;UID=1/;SECTION=2\" TEXT {{2+}}\r\n!\n)",
                head.len()
            ))
            .await;
        assert!(out.contains("[APPENDUID"), "{out}");
        t.ok("s SELECT INBOX").await;
        let out = t.ok("f FETCH 2 BODY.PEEK[TEXT]").await;
        assert!(out.contains("part two!\n"), "{out}");
        // A whole message by absolute URL, with a range, and with MULTIAPPEND.
        let out = t
            .ok("b APPEND INBOX CATENATE (URL \"imap://alice%40example.test@localhost/INBOX/;UID=1/;PARTIAL=0.4\") {3+}\r\nabc")
            .await;
        assert!(out.contains("[APPENDUID"), "{out}");
        let out = t.ok("f2 FETCH 3:4 BODY.PEEK[]").await;
        assert!(out.contains("BODY[] {4}\r\nFrom"), "{out}");
        assert!(out.contains("BODY[] {3}\r\nabc"), "{out}");
    }

    #[tokio::test]
    async fn catenate_takes_urlauth_urls_it_may_fetch() {
        let dir = tempfile::tempdir().expect("tmp");
        let (mut t, _, _) = logged_in(dir.path()).await;
        t.append("INBOX", "", FIRST).await;
        let rump = "imap://alice%40example.test@localhost/INBOX/;UID=1/;SECTION=1;URLAUTH=authuser";
        let out = t.ok(&format!("g GENURLAUTH \"{rump}\" INTERNAL")).await;
        let url = out
            .lines()
            .find_map(|l| l.strip_prefix("* GENURLAUTH "))
            .expect("generated")
            .trim_matches('"')
            .to_string();
        t.ok(&format!("a APPEND INBOX CATENATE (URL \"{url}\")"))
            .await;
        t.ok("s SELECT INBOX").await;
        let out = t.ok("f FETCH 2 BODY.PEEK[]").await;
        assert!(out.contains("part one"), "{out}");
        // A forged token is a BADURL.
        let forged = format!("{}0000", &url[..url.len() - 4]);
        let out = t
            .run(&format!("b APPEND INBOX CATENATE (URL \"{forged}\")"))
            .await;
        assert!(out.contains("b NO [BADURL "), "{out}");
    }

    #[tokio::test]
    async fn catenate_refuses_bad_urls_and_too_big_messages() {
        let dir = tempfile::tempdir().expect("tmp");
        let (mut t, _, _) = logged_in(dir.path()).await;
        t.append("INBOX", "", FIRST).await;
        for (url, why) in [
            ("/INBOX;UIDVALIDITY=1/;UID=1", "UIDVALIDITY"),
            ("/INBOX/;UID=99", "no message"),
            ("/Nope/;UID=1", "no such mailbox"),
            ("/INBOX/;UID=1/;SECTION=7", "no such section"),
            (
                "imap://bob%40example.test@localhost/INBOX/;UID=1",
                "another user",
            ),
            ("imap://elsewhere.test/INBOX/;UID=1", "another server"),
            ("not a url", "not an IMAP URL"),
        ] {
            let out = t
                .run(&format!("c APPEND INBOX CATENATE (URL \"{url}\")"))
                .await;
            assert!(
                out.contains(&format!("c NO [BADURL {url}]")),
                "{url} → {out}"
            );
            assert!(out.contains(why), "{url} → {out}");
        }
        // Nothing was appended by the failed MULTIAPPEND either (all or nothing).
        let out = t
            .run("m APPEND INBOX {1+}\r\nx CATENATE (URL \"/INBOX/;UID=99\")")
            .await;
        assert!(out.contains("m NO [BADURL"), "{out}");
        let out = t.ok("st STATUS INBOX (MESSAGES)").await;
        assert!(out.contains("MESSAGES 1)"), "{out}");
        // The total is bounded by the APPEND size limit.
        t.set_max_literal(1000);
        let chunk = "x".repeat(501);
        let out = t
            .run(&format!(
                "d APPEND INBOX CATENATE (TEXT {{{n}+}}\r\n{chunk} TEXT {{{n}+}}\r\n{chunk})",
                n = chunk.len()
            ))
            .await;
        assert!(out.contains("d NO [TOOBIG]"), "{out}");
    }
}
