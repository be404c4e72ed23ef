//! CAPABILITY, ID, ENABLE, LOGIN, AUTHENTICATE (RFC 9051 §6.1–§6.2, RFC 2971, RFC 5161,
//! RFC 4959 SASL-IR, RFC 4616 PLAIN).

use super::{Authed, CmdError, CmdResult, Done, Next, Session, State};
use crate::limits::MAX_AUTH_FAILURES;
use base64::Engine;
use bulwark_auth::LoginError;

impl Session {
    /// Capabilities for the current state (RFC 9051 §7.2.2).
    pub(crate) fn capabilities(&self) -> String {
        let mut caps = vec!["IMAP4rev1", "IMAP4rev2"];
        if !self.is_authenticated() {
            if self.tls_available && !self.tls_active {
                caps.push("STARTTLS");
            }
            if self.auth_allowed() {
                caps.extend(["AUTH=PLAIN", "SASL-IR"]);
            } else {
                // RFC 9051 §6.2.3: LOGIN is disabled until TLS is active.
                caps.push("LOGINDISABLED");
            }
        }
        caps.extend([
            "LITERAL+",
            "ENABLE",
            "ID",
            "IDLE",
            "NAMESPACE",
            "UNSELECT",
            "UIDPLUS",
            "MOVE",
            "CHILDREN",
            "LIST-EXTENDED",
            "LIST-STATUS",
            "SPECIAL-USE",
            "ESEARCH",
            "SEARCHRES",
            "CONDSTORE",
            "QRESYNC",
            "BINARY",
            "STATUS=SIZE",
            "UTF8=ACCEPT",
            "SORT",
            "SORT=DISPLAY",
            "THREAD=REFERENCES",
            "THREAD=ORDEREDSUBJECT",
            "OBJECTID",
            "CREATE-SPECIAL-USE",
            "PREVIEW",
            "MULTIAPPEND",
            "REPLACE",
            "UIDONLY",
            "ESORT",
            "PARTIAL",
            "CONTEXT=SEARCH",
            "CONTEXT=SORT",
            "SAVEDATE",
            "METADATA",
            "METADATA-SERVER",
            "CATENATE",
            "URLAUTH",
            "NOTIFY",
            "QUOTA",
            "QUOTA=RES-STORAGE",
        ]);
        caps.join(" ")
    }

    /// LOGIN/AUTHENTICATE only over TLS, or on loopback when configured (RFC 9051 §6.2.3).
    pub(crate) fn auth_allowed(&self) -> bool {
        self.tls_active || (self.cfg.allow_plaintext_auth_on_loopback && self.remote.is_loopback())
    }

    pub(crate) fn cmd_capability(&self, out: &mut Vec<u8>) -> CmdResult {
        out.extend_from_slice(format!("* CAPABILITY {}\r\n", self.capabilities()).as_bytes());
        Done::new("CAPABILITY completed")
    }

    /// RFC 2971 §3.2
    pub(crate) fn cmd_id(&self, out: &mut Vec<u8>) -> CmdResult {
        out.extend_from_slice(
            format!(
                "* ID (\"name\" \"Bulwark\" \"version\" \"{}\")\r\n",
                env!("CARGO_PKG_VERSION")
            )
            .as_bytes(),
        );
        Done::new("ID completed")
    }

    /// RFC 5161 §3.1: `* ENABLED` lists what this command newly enabled.
    pub(crate) fn cmd_enable(&mut self, caps: &[String], out: &mut Vec<u8>) -> CmdResult {
        let mut newly = Vec::new();
        for cap in caps {
            match cap.as_str() {
                "CONDSTORE" if !self.enabled.condstore => {
                    self.enabled.condstore = true;
                    newly.push("CONDSTORE");
                }
                // RFC 7162 §3.2.3: QRESYNC implies CONDSTORE.
                "QRESYNC" if !self.enabled.qresync => {
                    self.enabled.qresync = true;
                    self.enabled.condstore = true;
                    newly.push("QRESYNC");
                }
                "UTF8=ACCEPT" if !self.enabled.utf8 => {
                    self.enabled.utf8 = true;
                    newly.push("UTF8=ACCEPT");
                }
                // RFC 9586 §3
                "UIDONLY" if !self.enabled.uidonly => {
                    self.enabled.uidonly = true;
                    newly.push("UIDONLY");
                }
                "IMAP4REV2" if !self.enabled.rev2 => {
                    self.enabled.rev2 = true;
                    newly.push("IMAP4rev2");
                }
                _ => {}
            }
        }
        let list = if newly.is_empty() {
            String::new()
        } else {
            format!(" {}", newly.join(" "))
        };
        out.extend_from_slice(format!("* ENABLED{list}\r\n").as_bytes());
        Done::new("ENABLE completed")
    }

    pub(crate) async fn cmd_login(&mut self, user: &str, password: &str) -> CmdResult {
        if !self.auth_allowed() {
            return Err(CmdError::no(
                "PRIVACYREQUIRED",
                "LOGIN is only allowed over TLS (use STARTTLS first)",
            ));
        }
        self.login(user, password, "LOGIN").await
    }

    async fn login(&mut self, user: &str, password: &str, command: &str) -> CmdResult {
        match self.auth.authenticate(user, password, self.remote).await {
            Ok(account) => {
                let changes = self.store.subscribe(account.id);
                tracing::info!(remote = %self.remote, user = %account.address, "IMAP login");
                self.state = State::Authenticated(Authed { account, changes });
                Done::with_code(
                    format!("CAPABILITY {}", self.capabilities()),
                    format!("{command} completed"),
                )
            }
            Err(e) => {
                self.auth_failures += 1;
                if self.auth_failures >= MAX_AUTH_FAILURES {
                    return Err(CmdError::Bye("Too many failed logins".into()));
                }
                Err(match e {
                    LoginError::InvalidCredentials => {
                        CmdError::no("AUTHENTICATIONFAILED", "Invalid user name or password")
                    }
                    // RFC 5530 §3 AUTHENTICATIONFAILED, with the text a user can act on.
                    LoginError::AppPasswordRequired => CmdError::no(
                        "AUTHENTICATIONFAILED",
                        "Application password required: this account has two-factor sign-in; \
                         create an app password in the web client (Settings, App passwords) \
                         and use it here instead of your password",
                    ),
                    LoginError::Throttled { retry_after_secs } => CmdError::no(
                        "UNAVAILABLE",
                        format!("Too many failed logins; try again in {retry_after_secs} seconds"),
                    ),
                    LoginError::Unavailable(why) => CmdError::no(
                        "UNAVAILABLE",
                        format!(
                            "Authentication is temporarily unavailable ({why}); try again later"
                        ),
                    ),
                })
            }
        }
    }

    /// `Ok(None)`: a continuation was written, the shell reads the response line.
    /// `Ok(Some(next))`: finished (tagged response already written).
    pub(crate) async fn cmd_authenticate(
        &mut self,
        tag: &str,
        mechanism: &str,
        initial: Option<String>,
        out: &mut Vec<u8>,
    ) -> Result<Option<Next>, CmdError> {
        if mechanism != "PLAIN" {
            return Err(CmdError::no_plain(format!(
                "Unsupported authentication mechanism {mechanism}"
            )));
        }
        if !self.auth_allowed() {
            return Err(CmdError::no(
                "PRIVACYREQUIRED",
                "AUTHENTICATE is only allowed over TLS (use STARTTLS first)",
            ));
        }
        match initial {
            Some(ir) => {
                let result = self.plain(ir.as_bytes()).await;
                Ok(Some(self.finish(tag, "AUTHENTICATE", result, out)))
            }
            None => {
                // RFC 9051 §6.2.2: empty challenge.
                out.extend_from_slice(b"+ \r\n");
                self.pending_tag = Some(tag.to_string());
                Ok(None)
            }
        }
    }

    /// The client's SASL response line after `+ `.
    pub async fn authenticate_continue(&mut self, line: &[u8], out: &mut Vec<u8>) -> Next {
        let tag = self.pending_tag.take().unwrap_or_else(|| "*".into());
        if line == b"*" {
            // RFC 9051 §6.2.2: the client cancels.
            return self.finish(
                &tag,
                "AUTHENTICATE",
                Err(CmdError::Bad("AUTHENTICATE cancelled".into())),
                out,
            );
        }
        let result = self.plain(line).await;
        self.finish(&tag, "AUTHENTICATE", result, out)
    }

    /// RFC 4616: `[authzid] NUL authcid NUL passwd`, base64-encoded.
    async fn plain(&mut self, b64: &[u8]) -> CmdResult {
        let decoded = if b64.is_empty() || b64 == b"=" {
            Vec::new()
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|_| CmdError::Bad("Invalid base64 in AUTHENTICATE response".into()))?
        };
        let mut parts = decoded.split(|&b| b == 0);
        let (Some(authz), Some(authc), Some(pass), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(CmdError::Bad(
                "Malformed PLAIN response (expected authzid NUL authcid NUL password)".into(),
            ));
        };
        let authc = String::from_utf8_lossy(authc).into_owned();
        let pass = String::from_utf8_lossy(pass).into_owned();
        if !authz.is_empty() && !authz.eq_ignore_ascii_case(authc.as_bytes()) {
            return Err(CmdError::no(
                "AUTHORIZATIONFAILED",
                "Acting as another user is not allowed",
            ));
        }
        self.login(&authc, &pass, "AUTHENTICATE").await
    }
}
