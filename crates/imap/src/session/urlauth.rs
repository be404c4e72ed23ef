//! URLAUTH (RFC 4467): GENURLAUTH, RESETKEY and URLFETCH with the INTERNAL mechanism.
//!
//! Each mailbox has a random access key (32 bytes), made on first use and kept in the
//! owner's account collection [`URLAUTH_KEYS`] (item = mailbox id), so every node signs and
//! checks alike. A token is HMAC-SHA256 of the URL's rump (everything up to and including
//! the access identifier, RFC 4467 §7) under the mailbox key, in hex; RESETKEY replaces
//! keys, which voids every URL made with the old one.
//!
//! Access identifiers (RFC 4467 §3): `authuser` (any logged-in user of this server),
//! `anonymous` (anyone: here, any logged-in user too), `user+name` (only that user) and
//! `submit+name` (the submission server acting for that user: Bulwark has no separate
//! submission identity yet — SMTP BURL is not implemented — so only that user's own
//! sessions may fetch it).

use super::{CmdError, CmdResult, Done, Session};
use crate::imapurl::{self, MessageUrl, UrlAuth};
use crate::message;
use bulwark_store::collections::{Expect, ItemWrite};
use bulwark_store::{AccountId, Mailbox, Uid};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The account collection of URLAUTH mailbox access keys (item id = mailbox id, value =
/// the key in hex); the store deletes a mailbox's key with the mailbox.
pub(crate) const URLAUTH_KEYS: &str = bulwark_store::collections::names::IMAP_URLAUTH_KEYS;

/// The one mechanism (RFC 4467 §6.1: INTERNAL MUST be supported).
const INTERNAL: &str = "INTERNAL";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// HMAC-SHA256 of the rump under the mailbox key.
fn sign(key: &[u8], rump: &str) -> Option<Vec<u8>> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).ok()?;
    mac.update(rump.as_bytes());
    Some(mac.finalize().into_bytes().to_vec())
}

/// Does `token` (hex) sign `rump` under `key`? Compared in constant time.
fn verify(key: &[u8], rump: &str, token: &str) -> bool {
    let Some(token) = unhex(token) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return false;
    };
    mac.update(rump.as_bytes());
    mac.verify_slice(&token).is_ok()
}

/// RFC 3339 `date-time` (`2030-01-02T03:04:05Z`, `…+02:00`, fractions allowed) → unix
/// seconds.
fn parse_rfc3339(s: &str) -> Option<i64> {
    let num = |a: usize, b: usize| -> Option<i64> {
        let t = s.get(a..b)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            if rest.len() != 6 || rest.as_bytes()[3] != b':' {
                return None;
            }
            let h: i64 = rest.get(1..3)?.parse().ok()?;
            let m: i64 = rest.get(4..6)?.parse().ok()?;
            sign * (h * 3600 + m * 60)
        }
    };
    let days = message::days_from_civil(year, month as u32, day as u32);
    Some(days * 86_400 + hour * 3600 + minute * 60 + second.min(60) - offset)
}

/// The user name of a `user+name` / `submit+name` access identifier (%-decoded).
fn access_user(access: &str) -> Option<String> {
    let lower = access.to_ascii_lowercase();
    let name = lower
        .strip_prefix("user+")
        .or_else(|| lower.strip_prefix("submit+"))?;
    imapurl::percent_decode(name).filter(|n| !n.is_empty())
}

/// Is the access identifier one RFC 4467 §3 defines?
fn access_is_valid(access: &str) -> bool {
    access.eq_ignore_ascii_case("authuser")
        || access.eq_ignore_ascii_case("anonymous")
        || access_user(access).is_some()
}

impl Session {
    /// The access key of the owner's mailbox; made (and stored) when `create` and missing.
    async fn mailbox_key(
        &self,
        owner: AccountId,
        mailbox: &Mailbox,
        create: bool,
    ) -> Result<Option<Vec<u8>>, CmdError> {
        let id = mailbox.id.0.to_string();
        for _ in 0..3 {
            let found = self
                .store
                .collection_get(owner, URLAUTH_KEYS, Some(std::slice::from_ref(&id)))
                .await?;
            if let Some(item) = found.first() {
                return Ok(unhex(&item.value));
            }
            if !create {
                return Ok(None);
            }
            let key: [u8; 32] = rand::random();
            let write = ItemWrite::put(URLAUTH_KEYS, &id, Expect::Absent, hex(&key));
            match self.store.collection_write(owner, vec![write]).await {
                Ok(_) => return Ok(Some(key.to_vec())),
                // Another session made one at the same time: use it.
                Err(bulwark_store::StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(CmdError::no(
            "INUSE",
            "The mailbox key is being changed; try again",
        ))
    }

    /// RFC 4467 §6.1 GENURLAUTH: `* GENURLAUTH url…` with each rump signed. The URL must
    /// be absolute, name this server, the logged-in user and one of their messages, and
    /// end in `;URLAUTH=access`; else `NO [BADURL url]` and nothing is made.
    pub(crate) async fn cmd_gen_url_auth(
        &mut self,
        pairs: &[(String, String)],
        out: &mut Vec<u8>,
    ) -> CmdResult {
        let account = self.authed()?.account.clone();
        let mut made = Vec::with_capacity(pairs.len());
        for (url, mechanism) in pairs {
            let bad = |why: &str| CmdError::NoCode {
                code: format!("BADURL {}", super::catenate::url_resp_text(url)),
                text: format!("GENURLAUTH: {why}"),
            };
            if mechanism != INTERNAL {
                return Err(bad("the only mechanism is INTERNAL"));
            }
            let auth = imapurl::split_urlauth(url).ok_or_else(|| bad("no ;URLAUTH=access"))?;
            if auth.verifier.is_some() {
                return Err(bad("the URL is already authorized"));
            }
            if !access_is_valid(auth.access) {
                return Err(bad("unknown access identifier"));
            }
            if let Some(expire) = auth.expire
                && parse_rfc3339(expire).is_none()
            {
                return Err(bad("EXPIRE is not an RFC 3339 date-time"));
            }
            let u = imapurl::parse(url).ok_or_else(|| bad("not an IMAP URL of a message"))?;
            // RFC 4467 §6.1: the URL must be an absolute URL of the user's own mailbox.
            if u.host.is_none() || u.user.is_none() {
                return Err(bad("the URL must be absolute, with the user"));
            }
            let (owner, mailbox) = self
                .url_mailbox(&u)
                .await?
                .ok_or_else(|| bad("no such mailbox on this server"))?;
            if owner != account.id {
                return Err(bad("only the mailbox's owner may authorize it"));
            }
            let key = self
                .mailbox_key(owner, &mailbox, true)
                .await?
                .ok_or_else(|| bad("the mailbox key is unreadable"))?;
            let token = sign(&key, auth.rump).ok_or_else(|| bad("signing failed"))?;
            made.push(format!("{}:internal:{}", auth.rump, hex(&token)));
        }
        out.extend_from_slice(b"* GENURLAUTH");
        for url in &made {
            out.push(b' ');
            crate::response::write_string(out, url.as_bytes(), self.utf8());
        }
        out.extend_from_slice(b"\r\n");
        Done::new("GENURLAUTH completed")
    }

    /// RFC 4467 §6.2 RESETKEY: new keys for one mailbox, or for all the user's mailboxes
    /// without an argument (their keys are removed; new ones are made on next use).
    pub(crate) async fn cmd_reset_key(
        &mut self,
        mailbox: Option<&str>,
        mechanisms: &[String],
    ) -> CmdResult {
        if mechanisms.iter().any(|m| m != INTERNAL) {
            return Err(CmdError::Bad(
                "RESETKEY: the only mechanism is INTERNAL".into(),
            ));
        }
        let account = self.account_id()?;
        let Some(name) = mailbox else {
            let keys = self
                .store
                .collection_get(account, URLAUTH_KEYS, None)
                .await?;
            let writes: Vec<ItemWrite> = keys
                .iter()
                .map(|k| ItemWrite::delete(URLAUTH_KEYS, &k.id, Expect::Any))
                .collect();
            for chunk in writes.chunks(bulwark_store::collections::MAX_WRITES) {
                self.store.collection_write(account, chunk.to_vec()).await?;
            }
            return Done::new("RESETKEY completed: every mailbox key was reset");
        };
        let name = self.decode_mailbox_name(name);
        let mailbox = self
            .find_mailbox(&name)
            .await?
            .ok_or_else(|| CmdError::no("NONEXISTENT", format!("Mailbox {name} does not exist")))?;
        let key: [u8; 32] = rand::random();
        let write = ItemWrite::put(
            URLAUTH_KEYS,
            &mailbox.id.0.to_string(),
            Expect::Any,
            hex(&key),
        );
        self.store.collection_write(account, vec![write]).await?;
        Done::new("RESETKEY completed")
    }

    /// The owner account and mailbox an absolute URL names (`None`: not on this server).
    async fn url_mailbox(&self, u: &MessageUrl) -> Result<Option<(AccountId, Mailbox)>, CmdError> {
        if let Some(host) = &u.host
            && !host.eq_ignore_ascii_case(&self.cfg.hostname)
        {
            return Ok(None);
        }
        let Some(user) = &u.user else {
            return Ok(None);
        };
        let Some(owner) = self.store.account_by_address(&user.to_lowercase()).await? else {
            return Ok(None);
        };
        let name = crate::parser::normalize_inbox(u.mailbox.clone());
        let mailbox = self
            .store
            .mailbox_list(owner.id)
            .await?
            .into_iter()
            .find(|m| m.name == name);
        Ok(mailbox.map(|m| (owner.id, m)))
    }

    /// RFC 4467 §6.3 URLFETCH: `* URLFETCH url data` for each URL, NIL for one that is
    /// not valid for this user (bad token, expired, wrong access, message gone).
    pub(crate) async fn cmd_url_fetch(&mut self, urls: &[String], out: &mut Vec<u8>) -> CmdResult {
        for url in urls {
            let data = self.url_fetch_one(url).await?;
            out.extend_from_slice(b"* URLFETCH ");
            crate::response::write_string(out, url.as_bytes(), self.utf8());
            out.push(b' ');
            match data {
                Some(d) if d.contains(&0) => {
                    // RFC 4467 §9 `nstring`; NUL only in a literal8 (RFC 3516).
                    out.extend_from_slice(format!("~{{{}}}\r\n", d.len()).as_bytes());
                    out.extend_from_slice(&d);
                }
                Some(d) => {
                    out.extend_from_slice(format!("{{{}}}\r\n", d.len()).as_bytes());
                    out.extend_from_slice(&d);
                }
                None => out.extend_from_slice(b"NIL"),
            }
            out.extend_from_slice(b"\r\n");
            self.spill(out).await;
        }
        Done::new("URLFETCH completed")
    }

    /// The data of one authorized URL, `None` when it does not authorize this session.
    pub(super) async fn url_fetch_one(&self, url: &str) -> Result<Option<Vec<u8>>, CmdError> {
        let Some(UrlAuth {
            rump,
            expire,
            access,
            verifier: Some((mechanism, token)),
        }) = imapurl::split_urlauth(url)
        else {
            return Ok(None);
        };
        if !mechanism.eq_ignore_ascii_case(INTERNAL) {
            return Ok(None);
        }
        // RFC 4467 §3: who may use it.
        let me = &self.authed()?.account.address;
        let allowed = access.eq_ignore_ascii_case("authuser")
            || access.eq_ignore_ascii_case("anonymous")
            || access_user(access).is_some_and(|u| u.eq_ignore_ascii_case(me));
        if !allowed {
            return Ok(None);
        }
        // RFC 4467 §2: an expired URL is no longer valid.
        if let Some(expire) = expire {
            match parse_rfc3339(expire) {
                Some(t) if t > bulwark_store::now_unix() => {}
                _ => return Ok(None),
            }
        }
        let Some(u) = imapurl::parse(url) else {
            return Ok(None);
        };
        let Some((owner, mailbox)) = self.url_mailbox(&u).await? else {
            return Ok(None);
        };
        let Some(key) = self.mailbox_key(owner, &mailbox, false).await? else {
            return Ok(None);
        };
        if !verify(&key, rump, token) {
            return Ok(None);
        }
        if u.uid_validity.is_some_and(|v| v != mailbox.uid_validity) {
            return Ok(None);
        }
        let messages = self.store.mailbox_messages(owner, mailbox.id).await?;
        let i = messages.partition_point(|m| m.uid < Uid(u.uid));
        let Some(m) = messages.get(i).filter(|m| m.uid == Uid(u.uid)) else {
            return Ok(None);
        };
        let Some(raw) = self.store.blob_get(&m.blob).await? else {
            return Ok(None);
        };
        let data = match &u.section {
            Some(text) => {
                match crate::parser::parse_section(text).and_then(|s| message::section(&raw, &s)) {
                    Some(d) => d,
                    None => return Ok(None),
                }
            }
            None => raw,
        };
        Ok(Some(match u.partial {
            Some((origin, len)) => message::partial(&data, origin, len).to_vec(),
            None => data,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{T, logged_in};
    use super::*;

    #[test]
    fn rfc3339_dates_and_tokens() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(parse_rfc3339("2000-03-01T00:00:00.25Z"), Some(951_868_800));
        for bad in [
            "2000-13-01T00:00:00Z",
            "2000-01-01 00:00:00Z",
            "2000-01-01T00:00:00",
            "x",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
        let key = [7u8; 32];
        let token = hex(&sign(&key, "imap://a@h/INBOX/;UID=1;URLAUTH=authuser").expect("sign"));
        assert_eq!(token.len(), 64);
        assert!(verify(
            &key,
            "imap://a@h/INBOX/;UID=1;URLAUTH=authuser",
            &token
        ));
        assert!(!verify(
            &key,
            "imap://a@h/INBOX/;UID=2;URLAUTH=authuser",
            &token
        ));
        assert!(!verify(
            &[8u8; 32],
            "imap://a@h/INBOX/;UID=1;URLAUTH=authuser",
            &token
        ));
        assert!(!verify(
            &key,
            "imap://a@h/INBOX/;UID=1;URLAUTH=authuser",
            "zz"
        ));
    }

    /// The single URL of a `* GENURLAUTH "url"` response.
    fn generated(out: &str) -> String {
        let line = out
            .lines()
            .find(|l| l.starts_with("* GENURLAUTH "))
            .unwrap_or_else(|| panic!("no GENURLAUTH in {out}"));
        line["* GENURLAUTH ".len()..].trim_matches('"').to_string()
    }

    async fn setup() -> (tempfile::TempDir, T) {
        let dir = tempfile::tempdir().expect("tmp");
        let (mut t, _, _) = logged_in(dir.path()).await;
        t.append(
            "INBOX",
            "",
            "From: a@x.test\r\nSubject: s\r\n\r\nthe body\r\n",
        )
        .await;
        (dir, t)
    }

    #[tokio::test]
    async fn genurlauth_then_urlfetch_and_resetkey_voids_it() {
        let (_dir, mut t) = setup().await;
        let rump = "imap://alice%40example.test@localhost/INBOX/;UID=1/;SECTION=TEXT;URLAUTH=user+alice%40example.test";
        let out = t.ok(&format!("g GENURLAUTH \"{rump}\" INTERNAL")).await;
        let url = generated(&out);
        assert!(url.starts_with(&format!("{rump}:internal:")), "{url}");
        // RFC 4467 §6.3: the data, as BODY[TEXT].
        let out = t.ok(&format!("f URLFETCH \"{url}\"")).await;
        assert!(
            out.contains(&format!("* URLFETCH \"{url}\" {{10}}\r\nthe body\r\n")),
            "{out}"
        );
        // A changed token, another UID under the same token, a wrong user: NIL.
        let forged = format!("{}0000", &url[..url.len() - 4]);
        let moved = url.replace(";UID=1/", ";UID=2/");
        for bad in [&forged, &moved] {
            let out = t.ok(&format!("f2 URLFETCH \"{bad}\"")).await;
            assert!(out.contains(" NIL\r\n"), "{bad} → {out}");
        }
        let rump_bob =
            "imap://alice%40example.test@localhost/INBOX/;UID=1;URLAUTH=user+bob%40example.test";
        let out = t
            .ok(&format!("g2 GENURLAUTH \"{rump_bob}\" INTERNAL"))
            .await;
        let for_bob = generated(&out);
        let out = t.ok(&format!("f3 URLFETCH \"{for_bob}\"")).await;
        assert!(out.contains(" NIL\r\n"), "{out}");
        // submit+ for this user, authuser and an expiry in the future work; past: NIL.
        for rump in [
            "imap://alice%40example.test@localhost/INBOX/;UID=1;URLAUTH=submit+alice%40example.test",
            "imap://alice%40example.test@localhost/INBOX/;UID=1;EXPIRE=2999-01-01T00:00:00Z;URLAUTH=authuser",
        ] {
            let url = generated(&t.ok(&format!("g3 GENURLAUTH \"{rump}\" INTERNAL")).await);
            let out = t.ok(&format!("f4 URLFETCH \"{url}\"")).await;
            assert!(out.contains("the body"), "{rump} → {out}");
        }
        let past = "imap://alice%40example.test@localhost/INBOX/;UID=1;EXPIRE=2001-01-01T00:00:00Z;URLAUTH=authuser";
        let url = generated(&t.ok(&format!("g4 GENURLAUTH \"{past}\" INTERNAL")).await);
        let out = t.ok(&format!("f5 URLFETCH \"{url}\"")).await;
        assert!(out.contains(" NIL\r\n"), "{out}");
        // RFC 4467 §6.2: RESETKEY voids what was made before.
        let url = generated(&t.ok(&format!("g5 GENURLAUTH \"{rump}\" INTERNAL")).await);
        t.ok("r RESETKEY INBOX INTERNAL").await;
        let out = t.ok(&format!("f6 URLFETCH \"{url}\"")).await;
        assert!(out.contains(" NIL\r\n"), "{out}");
        let url = generated(&t.ok(&format!("g6 GENURLAUTH \"{rump}\" INTERNAL")).await);
        t.ok("r2 RESETKEY").await;
        let out = t.ok(&format!("f7 URLFETCH \"{url}\"")).await;
        assert!(out.contains(" NIL\r\n"), "{out}");
        // Advertised.
        assert!(t.ok("k CAPABILITY").await.contains(" URLAUTH"));
    }

    #[tokio::test]
    async fn genurlauth_refuses_what_it_cannot_sign() {
        let (_dir, mut t) = setup().await;
        for (url, mech) in [
            (
                "imap://alice%40example.test@localhost/INBOX/;UID=1;URLAUTH=authuser",
                "HMAC",
            ),
            (
                "imap://alice%40example.test@localhost/INBOX/;UID=1",
                "INTERNAL",
            ),
            ("/INBOX/;UID=1;URLAUTH=authuser", "INTERNAL"),
            (
                "imap://bob%40example.test@localhost/INBOX/;UID=1;URLAUTH=authuser",
                "INTERNAL",
            ),
            (
                "imap://alice%40example.test@elsewhere/INBOX/;UID=1;URLAUTH=authuser",
                "INTERNAL",
            ),
            (
                "imap://alice%40example.test@localhost/INBOX/;UID=1;URLAUTH=friends",
                "INTERNAL",
            ),
            (
                "imap://alice%40example.test@localhost/INBOX/;UID=1;EXPIRE=soon;URLAUTH=authuser",
                "INTERNAL",
            ),
            (
                "imap://alice%40example.test@localhost/Nope/;UID=1;URLAUTH=authuser",
                "INTERNAL",
            ),
        ] {
            let out = t.run(&format!("g GENURLAUTH \"{url}\" {mech}")).await;
            assert!(out.contains("g NO [BADURL "), "{url} {mech} → {out}");
        }
        let out = t.run("r RESETKEY INBOX HMAC").await;
        assert!(out.contains("r BAD"), "{out}");
        let out = t.run("r2 RESETKEY Nope").await;
        assert!(out.contains("r2 NO [NONEXISTENT]"), "{out}");
        // A URL without URLAUTH fetches nothing.
        let out = t.ok("f URLFETCH \"/INBOX/;UID=1\"").await;
        assert!(out.contains(" NIL\r\n"), "{out}");
    }
}
