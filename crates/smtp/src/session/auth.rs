//! AUTH (RFC 4954) with PLAIN (RFC 4616) and LOGIN, only after TLS on submission ports.

use super::*;

impl Session {
    /// The answer to [`Event::Authenticate`].
    pub fn auth_result(&mut self, outcome: AuthOutcome) {
        if !matches!(self.awaiting, Some(Awaiting::Auth)) {
            return;
        }
        self.awaiting = None;
        match outcome {
            AuthOutcome::Success { account, addresses } => {
                let addresses = addresses.into_iter().map(|a| a.to_lowercase()).collect();
                self.auth = Some(Identity { account, addresses });
                self.send(reply::AUTH_SUCCESSFUL);
            }
            AuthOutcome::InvalidCredentials | AuthOutcome::AppPasswordRequired => {
                self.auth_failures += 1;
                self.send(if outcome == AuthOutcome::AppPasswordRequired {
                    reply::AUTH_APP_PASSWORD_REQUIRED
                } else {
                    reply::AUTH_INVALID
                });
                if self.auth_failures >= MAX_AUTH_FAILURES && !self.closed {
                    self.send(reply::TOO_MANY_AUTH_FAILURES);
                }
            }
            AuthOutcome::Throttled => self.send(reply::AUTH_THROTTLED),
            AuthOutcome::Unavailable => self.send(reply::AUTH_TEMPORARY_FAILURE),
        }
    }

    /// RFC 4954 §4.
    pub(super) fn auth(&mut self, mechanism: Mechanism, initial: Option<String>) {
        if !self.cfg.kind.is_submission() {
            return self.send(reply::AUTH_NOT_OFFERED);
        }
        if self.hello == Hello::None {
            return self.send(reply::HELLO_FIRST);
        }
        // RFC 3207 §4 / RFC 8314: no plaintext passwords without TLS.
        if !self.tls && !self.cfg.plaintext_auth_allowed {
            return self.send(reply::MUST_STARTTLS);
        }
        if self.auth.is_some() {
            return self.send(reply::ALREADY_AUTHENTICATED);
        }
        if self.txn.is_some() {
            return self.send(reply::AUTH_IN_TRANSACTION);
        }
        match (mechanism, initial) {
            (Mechanism::Plain, Some(ir)) => {
                self.auth_response(AuthStep::PlainResponse, ir.as_bytes())
            }
            (Mechanism::Plain, None) => {
                self.send(reply::auth_challenge(""));
                self.phase = Phase::AuthResponse(AuthStep::PlainResponse);
            }
            (Mechanism::Login, Some(ir)) => {
                self.auth_response(AuthStep::LoginUsername, ir.as_bytes())
            }
            (Mechanism::Login, None) => {
                self.send(reply::auth_challenge(LOGIN_USERNAME_CHALLENGE));
                self.phase = Phase::AuthResponse(AuthStep::LoginUsername);
            }
            (Mechanism::Other, _) => self.send(reply::AUTH_MECHANISM_UNSUPPORTED),
        }
    }

    pub(super) fn auth_response(&mut self, step: AuthStep, line: &[u8]) {
        let text = trim_line_end(line);
        if text == b"*" {
            return self.send(reply::AUTH_CANCELLED);
        }
        // RFC 4954 §4: "=" is an empty initial response.
        let decoded = if text == b"=" {
            Ok(Vec::new())
        } else {
            base64::engine::general_purpose::STANDARD.decode(text)
        };
        let Ok(decoded) = decoded else {
            return self.send(reply::AUTH_BAD_BASE64);
        };
        match step {
            AuthStep::PlainResponse => match parse_plain(&decoded) {
                Some((username, password)) => self.request_auth(username, password),
                None => self.send(reply::AUTH_MALFORMED),
            },
            AuthStep::LoginUsername => match String::from_utf8(decoded) {
                Ok(username) if !username.is_empty() => {
                    self.send(reply::auth_challenge(LOGIN_PASSWORD_CHALLENGE));
                    self.phase = Phase::AuthResponse(AuthStep::LoginPassword { username });
                }
                _ => self.send(reply::AUTH_MALFORMED),
            },
            AuthStep::LoginPassword { username } => match String::from_utf8(decoded) {
                Ok(password) => self.request_auth(username, password),
                Err(_) => self.send(reply::AUTH_MALFORMED),
            },
        }
    }

    pub(super) fn request_auth(&mut self, username: String, password: String) {
        self.awaiting = Some(Awaiting::Auth);
        self.ready = Some(Event::Authenticate { username, password });
    }
}

/// base64("Username:") / base64("Password:"), the de-facto LOGIN challenges.
const LOGIN_USERNAME_CHALLENGE: &str = "VXNlcm5hbWU6";
const LOGIN_PASSWORD_CHALLENGE: &str = "UGFzc3dvcmQ6";

/// RFC 4616 §2: `[authzid] NUL authcid NUL passwd`. An authzid other than the authcid would be
/// acting as another user, which we do not allow.
fn parse_plain(decoded: &[u8]) -> Option<(String, String)> {
    let mut parts = decoded.split(|&b| b == 0);
    let authzid = parts.next()?;
    let authcid = parts.next()?;
    let passwd = parts.next()?;
    if parts.next().is_some() || authcid.is_empty() {
        return None;
    }
    if !authzid.is_empty() && !authzid.eq_ignore_ascii_case(authcid) {
        return None;
    }
    Some((
        String::from_utf8(authcid.to_vec()).ok()?,
        String::from_utf8(passwd.to_vec()).ok()?,
    ))
}

fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}
