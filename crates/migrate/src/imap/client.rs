//! A small IMAP4rev1 client for migration (RFC 3501 / RFC 9051): log in, list folders,
//! EXAMINE (read-only: the source is never changed), fetch UIDs with flags, internal dates
//! and sizes, and fetch message bodies with `BODY.PEEK[]` (which sets no `\Seen`).
//!
//! Bytes are framed by [`super::frame::Framer`] (limits on lines and literals) and each
//! whole response is read by `imap-proto`; this file is the thin tokio shell around them:
//! the TCP/TLS stream, tags, and a deadline on every read.

use super::frame::Framer;
use anyhow::{Context, anyhow, bail};
use base64::Engine as _;
use imap_proto::types::{
    AttributeValue, Capability, MailboxDatum, NameAttribute, Response, ResponseCode, Status,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long the source may stay silent while we wait for an answer.
pub const READ_TIMEOUT: Duration = Duration::from_secs(120);
/// How long connecting (TCP and TLS) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// How the connection to the source is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// `imaps://` (RFC 8314 implicit TLS, port 993).
    Tls,
    /// `imap://`: STARTTLS (RFC 3501 §6.2.1) is required, except to a loopback address.
    StartTls,
}

/// The source server of a migration: `imaps://USER@HOST[:PORT]` or `imap://USER@HOST[:PORT]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub security: Security,
}

impl Source {
    /// Parses the `--from` URL (RFC 5092 form, user percent-encoded if it holds `@`:
    /// `imaps://alice%40example.com@imap.example.com`, or written as is:
    /// `imaps://alice@example.com@imap.example.com`, split at the last `@`).
    pub fn parse(url: &str) -> anyhow::Result<Source> {
        let (security, rest) = if let Some(r) = url.strip_prefix("imaps://") {
            (Security::Tls, r)
        } else if let Some(r) = url.strip_prefix("imap://") {
            (Security::StartTls, r)
        } else {
            bail!(
                "--from must be imaps://USER@HOST[:PORT] or imap://USER@HOST[:PORT], not {url:?}"
            );
        };
        let rest = rest.trim_end_matches('/');
        let Some((user, hostport)) = rest.rsplit_once('@') else {
            bail!("--from {url:?} names no user: write imaps://USER@HOST");
        };
        if user.is_empty() {
            bail!("--from {url:?} names no user: write imaps://USER@HOST");
        }
        if user.contains(':') {
            bail!(
                "--from {url:?} holds a password: give it with --password-file or BULWARK_MIGRATE_PASSWORD, never in the URL"
            );
        }
        let user = percent_decode(user)?;
        let default_port = match security {
            Security::Tls => 993,
            Security::StartTls => 143,
        };
        let (host, port) = match hostport.strip_prefix('[') {
            Some(v6) => {
                let (h, after) = v6
                    .split_once(']')
                    .ok_or_else(|| anyhow!("--from {url:?}: unclosed [ in the host"))?;
                let port = match after.strip_prefix(':') {
                    Some(p) => p.parse().with_context(|| format!("bad port {p:?}"))?,
                    None if after.is_empty() => default_port,
                    None => bail!("--from {url:?}: junk after the host"),
                };
                (h.to_string(), port)
            }
            None => match hostport.rsplit_once(':') {
                Some((h, p)) => (
                    h.to_string(),
                    p.parse().with_context(|| format!("bad port {p:?}"))?,
                ),
                None => (hostport.to_string(), default_port),
            },
        };
        if host.is_empty() || host.contains('/') {
            bail!("--from {url:?} names no host");
        }
        Ok(Source {
            host,
            port,
            user,
            security,
        })
    }

    /// The URL without secrets, as shown and as the key of what was copied.
    pub fn display(&self) -> String {
        let scheme = match self.security {
            Security::Tls => "imaps",
            Security::StartTls => "imap",
        };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("{scheme}://{}@{host}:{}", self.user, self.port)
    }

    fn is_loopback(&self) -> bool {
        self.host == "localhost"
            || self
                .host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

fn percent_decode(s: &str) -> anyhow::Result<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .ok_or_else(|| anyhow!("bad %-escape in {s:?}"))?;
            out.push(
                u8::from_str_radix(hex, 16).with_context(|| format!("bad %-escape in {s:?}"))?,
            );
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| anyhow!("{s:?} is not UTF-8 once decoded"))
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// A folder of the source as LIST names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folder {
    /// As the server spells it (modified UTF-7), for EXAMINE.
    pub raw: String,
    /// Its levels, decoded.
    pub levels: Vec<String>,
    pub noselect: bool,
    /// RFC 6154 special use, lowercase without `\` (`sent`, `trash`, …).
    pub special_use: Option<String>,
}

/// What EXAMINE said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Examined {
    pub uid_validity: u32,
    pub exists: u32,
}

/// One message of the selected folder, without its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageInfo {
    pub uid: u32,
    /// System flags and keywords as the server wrote them (`\Seen`, `$Forwarded`).
    pub flags: Vec<String>,
    /// Unix seconds.
    pub internal_date: Option<i64>,
    pub size: u32,
}

pub struct Client {
    stream: Box<dyn Stream>,
    framer: Framer,
    tag: u32,
    capabilities: Vec<String>,
    host: String,
}

impl Client {
    /// Connects, checks the greeting and, for `imap://`, starts TLS. `max_literal`: the
    /// largest literal taken from the server (the largest message plus a little).
    pub async fn connect(
        source: &Source,
        tls: Arc<rustls::ClientConfig>,
        max_literal: usize,
    ) -> anyhow::Result<Client> {
        let addr = format!("{}:{}", source.host, source.port);
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&addr))
            .await
            .map_err(|_| anyhow!("connecting to {addr} took over {CONNECT_TIMEOUT:?}"))?
            .with_context(|| format!("cannot connect to {addr}"))?;
        let _ = tcp.set_nodelay(true);
        let server_name = rustls::pki_types::ServerName::try_from(source.host.clone())
            .map_err(|_| anyhow!("{:?} is not a host name for TLS", source.host))?;
        let mut client = match source.security {
            Security::Tls => {
                let tls = tls_handshake(tcp, tls.clone(), server_name.clone(), &addr).await?;
                Client::new(Box::new(tls), max_literal, &source.host)
            }
            Security::StartTls => Client::new(Box::new(tcp), max_literal, &source.host),
        };
        client.greeting().await?;
        if source.security == Security::StartTls {
            if client.has("STARTTLS") {
                client.simple("STARTTLS").await?;
                // RFC 3501 §6.2.1: what came before TLS is forgotten, capabilities too.
                if client.framer.pending() > 0 {
                    bail!("{addr} sent data after its STARTTLS answer, before TLS: refusing");
                }
                let placeholder = Box::new(tokio::io::duplex(1).0);
                let plain = std::mem::replace(&mut client.stream, placeholder);
                let tls = tls_handshake_boxed(plain, tls, server_name, &addr).await?;
                client.stream = Box::new(tls);
                client.capabilities.clear();
                client.refresh_capabilities().await?;
            } else if !source.is_loopback() {
                bail!(
                    "{addr} does not offer STARTTLS: refusing to send the password in the clear (use imaps://)"
                );
            }
        }
        Ok(client)
    }

    fn new(stream: Box<dyn Stream>, max_literal: usize, host: &str) -> Client {
        Client {
            stream,
            framer: Framer::new(max_literal),
            tag: 0,
            capabilities: Vec::new(),
            host: host.to_string(),
        }
    }

    fn has(&self, cap: &str) -> bool {
        self.capabilities
            .iter()
            .any(|c| c.eq_ignore_ascii_case(cap))
    }

    async fn greeting(&mut self) -> anyhow::Result<()> {
        let bytes = self.read_response().await?;
        let (_, resp) = parse(&bytes, &self.host)?;
        match resp {
            Response::Data {
                status: Status::Ok | Status::PreAuth,
                code,
                ..
            } => {
                if let Some(ResponseCode::Capabilities(caps)) = code {
                    self.capabilities = caps.iter().map(cap_name).collect();
                }
            }
            Response::Data {
                status: Status::Bye,
                information,
                ..
            } => bail!(
                "{} refused the connection: {}",
                self.host,
                information.unwrap_or_default()
            ),
            _ => bail!("{} did not greet as an IMAP server", self.host),
        }
        if self.capabilities.is_empty() {
            self.refresh_capabilities().await?;
        }
        Ok(())
    }

    async fn refresh_capabilities(&mut self) -> anyhow::Result<()> {
        let mut caps = Vec::new();
        self.command("CAPABILITY", |r| {
            if let Response::Capabilities(c) = r {
                caps = c.iter().map(cap_name).collect();
            }
        })
        .await?;
        self.capabilities = caps;
        Ok(())
    }

    /// Logs in with AUTHENTICATE PLAIN (RFC 4616) when offered, else LOGIN.
    pub async fn login(&mut self, user: &str, password: &str) -> anyhow::Result<()> {
        if self.has("LOGINDISABLED") && !self.has("AUTH=PLAIN") {
            bail!(
                "{} allows no login on this connection (LOGINDISABLED)",
                self.host
            );
        }
        let result = if self.has("AUTH=PLAIN") {
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
            if self.has("SASL-IR") {
                self.command_secret(&format!("AUTHENTICATE PLAIN {token}"), None)
                    .await
            } else {
                self.command_secret("AUTHENTICATE PLAIN", Some(&token))
                    .await
            }
        } else {
            self.command_secret(
                &format!("LOGIN {} {}", quoted(user)?, quoted(password)?),
                None,
            )
            .await
        };
        result.map_err(|e| anyhow!("{} did not accept the login of {user}: {e}", self.host))?;
        // Capabilities may change after login (RFC 3501 §6.2.3).
        self.refresh_capabilities().await
    }

    /// Every folder (`LIST "" "*"`).
    pub async fn list(&mut self) -> anyhow::Result<Vec<Folder>> {
        let mut out = Vec::new();
        self.command("LIST \"\" \"*\"", |r| {
            if let Response::MailboxData(MailboxDatum::List {
                name_attributes,
                delimiter,
                name,
            }) = r
            {
                let raw = name.to_string();
                let levels = match delimiter.as_deref() {
                    Some(d) if !d.is_empty() => raw.split(d).map(str::to_string).collect(),
                    _ => vec![raw.clone()],
                };
                let levels = levels
                    .into_iter()
                    .map(|l| bulwark_core::imap_string::mutf7_decode(&l).unwrap_or(l))
                    .collect();
                let noselect = name_attributes
                    .iter()
                    .any(|a| matches!(a, NameAttribute::NoSelect))
                    || name_attributes.iter().any(|a| {
                        matches!(a, NameAttribute::Extension(e) if e.eq_ignore_ascii_case("\\NonExistent"))
                    });
                let special_use = name_attributes.iter().find_map(|a| match a {
                    NameAttribute::Sent => Some("sent"),
                    NameAttribute::Trash => Some("trash"),
                    NameAttribute::Drafts => Some("drafts"),
                    NameAttribute::Junk => Some("junk"),
                    NameAttribute::Archive => Some("archive"),
                    _ => None,
                });
                out.push(Folder {
                    raw,
                    levels,
                    noselect,
                    special_use: special_use.map(str::to_string),
                });
            }
        })
        .await?;
        Ok(out)
    }

    /// EXAMINE: selects the folder read-only.
    pub async fn examine(&mut self, raw: &str) -> anyhow::Result<Examined> {
        let mut uid_validity = None;
        let mut exists = 0;
        let cmd = format!("EXAMINE {}", quoted(raw)?);
        self.command(&cmd, |r| match r {
            Response::Data {
                code: Some(ResponseCode::UidValidity(v)),
                ..
            } => uid_validity = Some(v),
            Response::MailboxData(MailboxDatum::Exists(n)) => exists = n,
            _ => {}
        })
        .await
        .map_err(|e| anyhow!("cannot open the folder {raw:?} on {}: {e}", self.host))?;
        Ok(Examined {
            uid_validity: uid_validity
                .ok_or_else(|| anyhow!("{} sent no UIDVALIDITY for {raw:?}", self.host))?,
            exists,
        })
    }

    /// UID, flags, internal date and size of every message of the selected folder.
    pub async fn message_infos(&mut self) -> anyhow::Result<Vec<MessageInfo>> {
        let mut out = Vec::new();
        let mut bad = None;
        self.command("UID FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE)", |r| {
            if let Response::Fetch(_, attrs) = r {
                let mut info = MessageInfo {
                    uid: 0,
                    flags: Vec::new(),
                    internal_date: None,
                    size: 0,
                };
                for a in attrs {
                    match a {
                        AttributeValue::Uid(u) => info.uid = u,
                        AttributeValue::Flags(f) => {
                            info.flags = f.iter().map(|f| f.to_string()).collect()
                        }
                        AttributeValue::InternalDate(d) => {
                            info.internal_date = parse_internal_date(&d)
                        }
                        AttributeValue::Rfc822Size(s) => info.size = s,
                        _ => {}
                    }
                }
                if info.uid == 0 {
                    bad = Some("a FETCH answer without UID");
                } else {
                    out.push(info);
                }
            }
        })
        .await?;
        if let Some(why) = bad {
            bail!("{} sent {why}", self.host);
        }
        out.sort_by_key(|i| i.uid);
        out.dedup_by_key(|i| i.uid);
        Ok(out)
    }

    /// The raw messages of these UIDs (`BODY.PEEK[]`: the source's `\Seen` is not set).
    /// UIDs the server no longer has are simply missing from the answer.
    pub async fn bodies(&mut self, uids: &[u32]) -> anyhow::Result<Vec<(u32, Vec<u8>)>> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let set = uids
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let mut out = Vec::with_capacity(uids.len());
        self.command(&format!("UID FETCH {set} (UID BODY.PEEK[])"), |r| {
            if let Response::Fetch(_, attrs) = r {
                let mut uid = None;
                let mut body = None;
                for a in attrs {
                    match a {
                        AttributeValue::Uid(u) => uid = Some(u),
                        AttributeValue::BodySection {
                            section: None,
                            data: Some(d),
                            ..
                        }
                        | AttributeValue::Rfc822(Some(d)) => body = Some(d.into_owned()),
                        _ => {}
                    }
                }
                if let (Some(u), Some(b)) = (uid, body) {
                    out.push((u, b));
                }
            }
        })
        .await?;
        Ok(out)
    }

    pub async fn logout(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.simple("LOGOUT")).await;
    }

    async fn simple(&mut self, cmd: &str) -> anyhow::Result<()> {
        self.command(cmd, |_| {}).await
    }

    /// Sends a command and hands every untagged answer to `untagged` until the tagged one;
    /// `NO`/`BAD` become errors with the server's text.
    async fn command(
        &mut self,
        cmd: &str,
        mut untagged: impl FnMut(Response<'_>),
    ) -> anyhow::Result<()> {
        let tag = self.send(cmd).await?;
        self.finish(&tag, None, &mut untagged).await
    }

    /// Like [`Client::command`] for commands carrying a secret (never logged); `answer` is
    /// sent when the server asks with `+`.
    async fn command_secret(&mut self, cmd: &str, answer: Option<&str>) -> anyhow::Result<()> {
        let tag = self.send(cmd).await?;
        self.finish(&tag, answer, &mut |_| {}).await
    }

    async fn send(&mut self, cmd: &str) -> anyhow::Result<String> {
        self.tag += 1;
        let tag = format!("m{}", self.tag);
        let line = format!("{tag} {cmd}\r\n");
        self.write(line.as_bytes()).await?;
        Ok(tag)
    }

    async fn write(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        tokio::time::timeout(READ_TIMEOUT, async {
            self.stream.write_all(bytes).await?;
            self.stream.flush().await
        })
        .await
        .map_err(|_| anyhow!("{} stopped reading for {READ_TIMEOUT:?}", self.host))?
        .map_err(|e| anyhow!("the connection to {} broke: {e}", self.host))
    }

    async fn finish(
        &mut self,
        tag: &str,
        mut answer: Option<&str>,
        untagged: &mut dyn FnMut(Response<'_>),
    ) -> anyhow::Result<()> {
        loop {
            let bytes = self.read_response().await?;
            let (_, resp) = parse(&bytes, &self.host)?;
            match resp {
                Response::Done {
                    tag: t,
                    status,
                    information,
                    ..
                } if t.0 == tag => {
                    return match status {
                        Status::Ok => Ok(()),
                        _ => Err(anyhow!("{:?} {}", status, information.unwrap_or_default())),
                    };
                }
                Response::Done { .. } => {}
                Response::Continue { .. } => match answer.take() {
                    Some(a) => {
                        let line = format!("{a}\r\n");
                        self.write(line.as_bytes()).await?;
                    }
                    None => {
                        // Nothing to continue with: cancel (RFC 3501 §6.2.2 `*`).
                        self.write(b"*\r\n").await?;
                    }
                },
                Response::Data {
                    status: Status::Bye,
                    information,
                    ..
                } => bail!(
                    "{} closed the session: {}",
                    self.host,
                    information.unwrap_or_default()
                ),
                other => untagged(other),
            }
        }
    }

    async fn read_response(&mut self) -> anyhow::Result<Vec<u8>> {
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            if let Some(r) = self.framer.next_response()? {
                return Ok(r);
            }
            let n = tokio::time::timeout(READ_TIMEOUT, self.stream.read(&mut chunk))
                .await
                .map_err(|_| anyhow!("{} sent nothing for {READ_TIMEOUT:?}", self.host))?
                .map_err(|e| anyhow!("the connection to {} broke: {e}", self.host))?;
            if n == 0 {
                bail!("{} closed the connection", self.host);
            }
            self.framer.push(&chunk[..n]);
        }
    }
}

/// Reads one whole response (as [`Framer::next_response`] hands it out) with `imap-proto`;
/// an answer that is not IMAP is an error naming the host and showing its start.
pub fn parse<'a>(bytes: &'a [u8], host: &str) -> anyhow::Result<(&'a [u8], Response<'a>)> {
    imap_proto::parser::parse_response(bytes).map_err(|_| {
        let shown: String = String::from_utf8_lossy(&bytes[..bytes.len().min(120)])
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        anyhow!("{host} sent an answer that is not IMAP: {shown:?}")
    })
}

fn cap_name(c: &Capability<'_>) -> String {
    match c {
        Capability::Imap4rev1 => "IMAP4REV1".into(),
        Capability::Auth(m) => format!("AUTH={}", m.to_ascii_uppercase()),
        Capability::Atom(a) => a.to_ascii_uppercase(),
    }
}

/// A quoted string (RFC 3501 §9); names and passwords with CR, LF or NUL cannot be sent so.
fn quoted(s: &str) -> anyhow::Result<String> {
    if s.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
        bail!("{s:?} holds a line break or NUL, which IMAP cannot quote");
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    Ok(out)
}

/// `date-time` of RFC 3501 §9: `"17-Jul-1996 02:44:25 -0700"` → Unix seconds.
pub fn parse_internal_date(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, rest) = s.split_once(' ')?;
    let (time, zone) = rest.trim_start().split_once(' ')?;
    let mut d = date.split('-');
    let day: u32 = d.next()?.trim().parse().ok()?;
    let month_name = d.next()?;
    let month = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ]
    .iter()
    .position(|m| m.eq_ignore_ascii_case(month_name))? as u32
        + 1;
    let year: i64 = d.next()?.parse().ok()?;
    let mut t = time.split(':');
    let h: i64 = t.next()?.parse().ok()?;
    let m: i64 = t.next()?.parse().ok()?;
    let sec: i64 = t.next()?.parse().ok()?;
    if !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 || zone.len() != 5 {
        return None;
    }
    let sign = match zone.as_bytes()[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let zh: i64 = zone.get(1..3)?.parse().ok()?;
    let zm: i64 = zone.get(3..5)?.parse().ok()?;
    let days = bulwark_core::civil::days_from_civil(year, i64::from(month), i64::from(day));
    Some(days * 86_400 + h * 3600 + m * 60 + sec - sign * (zh * 3600 + zm * 60))
}

async fn tls_handshake(
    tcp: TcpStream,
    config: Arc<rustls::ClientConfig>,
    name: rustls::pki_types::ServerName<'static>,
    addr: &str,
) -> anyhow::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio_rustls::TlsConnector::from(config).connect(name, tcp),
    )
    .await
    .map_err(|_| anyhow!("the TLS handshake with {addr} took over {CONNECT_TIMEOUT:?}"))?
    .map_err(|e| {
        anyhow!("TLS with {addr} failed: {e} (for a self-signed source, pass --tls-ca FILE)")
    })
}

async fn tls_handshake_boxed(
    plain: Box<dyn Stream>,
    config: Arc<rustls::ClientConfig>,
    name: rustls::pki_types::ServerName<'static>,
    addr: &str,
) -> anyhow::Result<tokio_rustls::client::TlsStream<Box<dyn Stream>>> {
    tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio_rustls::TlsConnector::from(config).connect(name, plain),
    )
    .await
    .map_err(|_| anyhow!("the TLS handshake with {addr} took over {CONNECT_TIMEOUT:?}"))?
    .map_err(|e| {
        anyhow!("TLS with {addr} failed: {e} (for a self-signed source, pass --tls-ca FILE)")
    })
}

/// The TLS client configuration: the system's roots, or only the CA in `ca_file`
/// (PEM), or — `insecure` — any certificate.
pub fn tls_config(
    ca_file: Option<&std::path::Path>,
    insecure: bool,
) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    bulwark_net::install_crypto_provider();
    if insecure {
        return Ok(bulwark_net::client_config_insecure());
    }
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let pem = std::fs::read(path)
                .with_context(|| format!("cannot read --tls-ca {}", path.display()))?;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                let cert = cert.with_context(|| format!("{} is not PEM", path.display()))?;
                roots
                    .add(cert)
                    .with_context(|| format!("{} holds a bad certificate", path.display()))?;
            }
            if roots.is_empty() {
                bail!("{} holds no certificate", path.display());
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    Ok(Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_urls() {
        let s = Source::parse("imaps://alice@imap.example.com").unwrap();
        assert_eq!(
            s,
            Source {
                host: "imap.example.com".into(),
                port: 993,
                user: "alice".into(),
                security: Security::Tls
            }
        );
        let s = Source::parse("imap://alice%40example.com@127.0.0.1:1143/").unwrap();
        assert_eq!((s.user.as_str(), s.port), ("alice@example.com", 1143));
        assert_eq!(s.security, Security::StartTls);
        let s = Source::parse("imaps://bob@example.com@[::1]:9993").unwrap();
        assert_eq!(
            (s.user.as_str(), s.host.as_str()),
            ("bob@example.com", "::1")
        );
        assert_eq!(s.display(), "imaps://bob@example.com@[::1]:9993");
        assert!(Source::parse("imaps://alice:secret@host").is_err());
        assert!(Source::parse("pop3://alice@host").is_err());
        assert!(Source::parse("imaps://host").is_err());
        assert!(Source::parse("imaps://a@host:x").is_err());
    }

    #[test]
    fn internal_dates() {
        assert_eq!(
            parse_internal_date("17-Jul-1996 02:44:25 -0700"),
            Some(837_596_665)
        );
        assert_eq!(parse_internal_date(" 1-Jan-1970 00:00:00 +0000"), Some(0));
        assert_eq!(parse_internal_date("1-Foo-1970 00:00:00 +0000"), None);
        assert_eq!(parse_internal_date("garbage"), None);
    }

    #[test]
    fn quoting() {
        assert_eq!(quoted("a\"b\\c").unwrap(), "\"a\\\"b\\\\c\"");
        assert!(quoted("a\r\nb").is_err());
    }
}

#[cfg(test)]
mod parse_tests {
    use super::*;

    #[test]
    fn dovecot_fetch_lines_are_read() {
        let line = b"* 1 FETCH (UID 4 FLAGS (\\Seen $Forwarded) INTERNALDATE \"14-Nov-2023 22:14:20 +0000\" RFC822.SIZE 40)\r\n";
        let (_, r) = parse(line, "x").unwrap();
        let Response::Fetch(_, attrs) = r else {
            panic!("{r:?}")
        };
        let date = attrs.iter().find_map(|a| match a {
            AttributeValue::InternalDate(d) => Some(d.to_string()),
            _ => None,
        });
        assert_eq!(date.as_deref(), Some("14-Nov-2023 22:14:20 +0000"));
        assert_eq!(
            parse_internal_date("14-Nov-2023 22:14:20 +0000"),
            Some(1_700_000_060)
        );
    }
}
