//! Every SMTP reply the server sends, in one place: basic code (RFC 5321 §4.2), enhanced status
//! code (RFC 3463, advertised with ENHANCEDSTATUSCODES per RFC 2034) and text. Call sites name a
//! constant or a constructor here; they never spell a code or a text themselves.

use std::borrow::Cow;
use std::fmt::Write as _;

/// An enhanced status code `class.subject.detail` (RFC 3463 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status(pub u8, pub u8, pub u8);

/// One (single-line) reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub status: Option<Status>,
    pub text: Cow<'static, str>,
}

const fn r(code: u16, s: (u8, u8, u8), text: &'static str) -> Reply {
    Reply {
        code,
        status: Some(Status(s.0, s.1, s.2)),
        text: Cow::Borrowed(text),
    }
}

fn owned(code: u16, s: (u8, u8, u8), text: String) -> Reply {
    Reply {
        code,
        status: Some(Status(s.0, s.1, s.2)),
        text: Cow::Owned(text),
    }
}

// ---- positive ----------------------------------------------------------------------------
pub const OK: Reply = r(250, (2, 0, 0), "OK");
pub const SENDER_OK: Reply = r(250, (2, 1, 0), "Sender OK");
pub const RECIPIENT_OK: Reply = r(250, (2, 1, 5), "Recipient OK");
pub const RESET_OK: Reply = r(250, (2, 0, 0), "Reset state");
// RFC 5321 §4.1.1.4: 354 has no enhanced status code (it is not a completion reply).
pub const START_DATA: Reply = Reply {
    code: 354,
    status: None,
    text: Cow::Borrowed("Start mail input; end with <CRLF>.<CRLF>"),
};
// RFC 5321 §3.5.3: 252 when the server will not verify but will try delivery.
pub const CANNOT_VRFY: Reply = r(
    252,
    (2, 5, 2),
    "Cannot VRFY user, but will accept message and attempt delivery",
);
pub const HELP: Reply = r(
    214,
    (2, 0, 0),
    "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS AUTH",
);
// RFC 3207 §4.
pub const READY_TO_START_TLS: Reply = r(220, (2, 0, 0), "Ready to start TLS");
// RFC 4954 §6.
pub const AUTH_SUCCESSFUL: Reply = r(235, (2, 7, 0), "Authentication successful");

// ---- transient negative -----------------------------------------------------------------
pub const TOO_MANY_CONNECTIONS: Reply = r(421, (4, 7, 0), "Too many connections, try again later");
pub const TOO_MANY_ERRORS: Reply = r(421, (4, 7, 0), "Too many errors, closing connection");
pub const TOO_MANY_AUTH_FAILURES: Reply = r(
    421,
    (4, 7, 0),
    "Too many failed authentication attempts, closing connection",
);
// RFC 5321 §4.5.3.2.7 / RFC 3463 4.4.2 "bad connection".
pub const IDLE_TIMEOUT: Reply = r(421, (4, 4, 2), "Idle timeout, closing connection");
pub const SHUTTING_DOWN: Reply = r(421, (4, 3, 2), "Service shutting down, closing connection");
// RFC 5321 §4.5.3.1.10 / RFC 3463 4.5.3 "too many recipients".
pub const TOO_MANY_RECIPIENTS: Reply = r(452, (4, 5, 3), "Too many recipients");
pub const LOOKUP_FAILED: Reply = r(
    451,
    (4, 3, 0),
    "Temporary failure looking up the recipient, try again later",
);
pub const STORAGE_FAILED: Reply = r(
    451,
    (4, 3, 0),
    "Temporary failure storing the message, try again later",
);
// RFC 4954 §6: 454 4.7.0 temporary authentication failure.
pub const AUTH_THROTTLED: Reply = r(
    454,
    (4, 7, 0),
    "Too many failed authentication attempts, try again later",
);
pub const AUTH_TEMPORARY_FAILURE: Reply = r(454, (4, 7, 0), "Temporary authentication failure");
// RFC 5321 §4.2.2 / RFC 3463 4.3.1 "mail system full": the memory all sessions may hold for
// message bodies is in use (see `limits::BODY_MEMORY_BUDGET`).
pub const INSUFFICIENT_STORAGE: Reply = r(
    452,
    (4, 3, 1),
    "Insufficient system storage, too much mail is being received right now; try again later",
);

// ---- permanent negative -----------------------------------------------------------------
pub const LINE_TOO_LONG: Reply = r(500, (5, 5, 2), "Line too long");
pub const COMMAND_UNRECOGNIZED: Reply = r(500, (5, 5, 2), "Command unrecognized");
pub const COMMAND_MALFORMED: Reply = r(500, (5, 5, 2), "Syntax error, command malformed");
pub const BAD_SENDER_SYNTAX: Reply = r(501, (5, 1, 7), "Bad sender address syntax");
pub const BAD_RECIPIENT_SYNTAX: Reply = r(501, (5, 1, 3), "Bad recipient address syntax");
// RFC 4954 §4: "*" cancels; undecodable base64 is 501 5.5.2.
pub const AUTH_CANCELLED: Reply = r(501, (5, 0, 0), "Authentication cancelled");
pub const AUTH_BAD_BASE64: Reply = r(501, (5, 5, 2), "Cannot decode the base64 response");
pub const AUTH_MALFORMED: Reply = r(501, (5, 5, 4), "Malformed authentication response");
pub const NOT_IMPLEMENTED: Reply = r(502, (5, 5, 1), "Command not implemented");
pub const STARTTLS_UNAVAILABLE: Reply = r(502, (5, 5, 1), "STARTTLS not available");
// RFC 5321 §4.1.4: bad sequence of commands.
pub const HELLO_FIRST: Reply = r(503, (5, 5, 1), "Send EHLO or HELO first");
pub const MAIL_FIRST: Reply = r(503, (5, 5, 1), "Send MAIL first");
pub const RCPT_FIRST: Reply = r(503, (5, 5, 1), "Send RCPT first");
pub const NESTED_MAIL: Reply = r(503, (5, 5, 1), "Nested MAIL command");
pub const ALREADY_AUTHENTICATED: Reply = r(503, (5, 5, 1), "Already authenticated");
pub const AUTH_IN_TRANSACTION: Reply = r(
    503,
    (5, 5, 1),
    "AUTH is not allowed during a mail transaction",
);
pub const AUTH_NOT_OFFERED: Reply = r(503, (5, 5, 1), "Authentication is not enabled on this port");
pub const TLS_ALREADY_ACTIVE: Reply = r(503, (5, 5, 1), "TLS is already active");
pub const DATA_AFTER_BDAT: Reply = r(503, (5, 5, 1), "DATA cannot follow BDAT in one transaction");
// RFC 4954 §4: unsupported mechanism.
pub const AUTH_MECHANISM_UNSUPPORTED: Reply =
    r(504, (5, 5, 4), "Unrecognized authentication mechanism");
// RFC 3207 §4 / RFC 4954 §6.
pub const MUST_STARTTLS: Reply = r(530, (5, 7, 0), "Must issue a STARTTLS command first");
pub const AUTH_REQUIRED: Reply = r(530, (5, 7, 0), "Authentication required");
// RFC 4954 §6.
pub const AUTH_INVALID: Reply = r(535, (5, 7, 8), "Authentication credentials invalid");
// RFC 4954 §6: 534 5.7.9 "Authentication mechanism is too weak" — here the account's own
// password, which two-factor sign-in allows only with a second factor SMTP cannot carry.
pub const AUTH_APP_PASSWORD_REQUIRED: Reply = r(
    534,
    (5, 7, 9),
    "Application password required: this account has two-factor sign-in; create an app password in the web client (Settings, App passwords)",
);
/// RFC 4865 §3: HOLDFOR and HOLDUNTIL exclude each other (RFC 3463 5.5.4 "invalid command
/// arguments").
pub const HOLD_BOTH: Reply = r(
    501,
    (5, 5, 4),
    "HOLDFOR and HOLDUNTIL cannot be used together",
);
/// RFC 4865 §3: a release later than the advertised `FUTURERELEASE` maximum.
pub const HOLD_TOO_LONG: Reply = r(
    501,
    (5, 5, 4),
    "Release time beyond the FUTURERELEASE maximum (30 days)",
);
/// RFC 5321 §4.2.2 `452` "insufficient system storage", RFC 3463 4.2.2 "mailbox full": the
/// recipient is at their storage quota; the client keeps the message for them and retries.
pub const MAILBOX_FULL: Reply = r(
    452,
    (4, 2, 2),
    "Mailbox full: the recipient is over their storage quota, try again later",
);
/// RFC 6647 §2.1: greylisting answers RCPT with a temporary failure, RFC 3463 4.7.1.
pub const GREYLISTED: Reply = r(
    451,
    (4, 7, 1),
    "Greylisted: this sender is new here, please try again in a few minutes",
);
pub const UNKNOWN_USER: Reply = r(550, (5, 1, 1), "Recipient address rejected: user unknown");
// RFC 1870 §6 / RFC 3463 5.3.4.
pub const MESSAGE_TOO_BIG: Reply = r(
    552,
    (5, 3, 4),
    "Message size exceeds fixed maximum message size",
);
pub const SENDER_NOT_OWNED: Reply = r(
    553,
    (5, 7, 1),
    "Sender address is not owned by the authenticated user",
);
// RFC 6531 §3.5.
pub const SMTPUTF8_REQUIRED: Reply = r(
    553,
    (5, 6, 7),
    "Non-ASCII address requires the SMTPUTF8 parameter",
);
pub const RELAY_DENIED: Reply = r(554, (5, 7, 1), "Relay access denied");
pub const NO_VALID_RECIPIENTS: Reply = r(554, (5, 5, 1), "No valid recipients");
// RFC 5321 §2.3.8: CR and LF only as CRLF. This is our defence against SMTP smuggling.
pub const BARE_LINE_ENDING: Reply = r(
    554,
    (5, 6, 0),
    "Message contains a bare CR or LF; lines must end with CRLF (RFC 5321 section 2.3.8)",
);

// ---- with arguments ----------------------------------------------------------------------

/// RFC 6409 §8.1 / RFC 3463 5.7.1: a header sender address the user may not send as.
pub fn forbidden_header_sender(problem: &str) -> Reply {
    owned(550, (5, 7, 1), sanitize_reply_text(problem))
}

/// Reply text built from message content: printable ASCII only, bounded.
fn sanitize_reply_text(s: &str) -> String {
    s.chars()
        .take(300)
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// The 220 greeting (RFC 5321 §4.3.1); no enhanced code on the greeting.
pub fn greeting(hostname: &str) -> Reply {
    Reply {
        code: 220,
        status: None,
        text: Cow::Owned(format!("{hostname} ESMTP Bulwark ready")),
    }
}

/// Reply to HELO (RFC 5321 §4.1.1.1).
pub fn helo(hostname: &str) -> Reply {
    Reply {
        code: 250,
        status: None,
        text: Cow::Owned(format!("{hostname} Hello")),
    }
}

pub fn bye(hostname: &str) -> Reply {
    owned(221, (2, 0, 0), format!("{hostname} closing connection"))
}

/// RFC 5321 §4.2.5: only after the data is durable.
pub fn queued(id: &str) -> Reply {
    owned(250, (2, 0, 0), format!("Ok: queued as {id}"))
}

/// A permanent refusal after DATA (a filter, spam, quota — see `bulwark_core::Refusal`):
/// RFC 5321 §4.2.5 "554 Transaction failed", RFC 3463 5.7.1 "delivery not authorized".
pub fn refused(reason: &str) -> Reply {
    let reason: String = reason
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    owned(554, (5, 7, 1), format!("Message refused: {reason}"))
}

/// A refusal whose reason names its own reply, `"550 5.7.1 text"` (a hook that knows the
/// right code, e.g. DMARC `p=reject`, RFC 7489 §10.3): that reply when the code's class
/// matches `class` (`'4'` temporary, `'5'` permanent); `None` otherwise.
pub fn coded(reason: &str, class: char) -> Option<Reply> {
    let mut parts = reason.splitn(3, ' ');
    let code = parts.next()?;
    let status = parts.next()?;
    let text = parts.next().unwrap_or("").trim();
    if code.len() != 3 || !code.starts_with(class) || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut s = status.split('.').map(|p| p.parse::<u8>().ok());
    let (Some(Some(a)), Some(Some(b)), Some(Some(c)), None) =
        (s.next(), s.next(), s.next(), s.next())
    else {
        return None;
    };
    if char::from(b'0' + a.min(9)) != class {
        return None;
    }
    let text: String = text.chars().filter(|c| !c.is_control()).take(200).collect();
    Some(owned(code.parse().ok()?, (a, b, c), text))
}

/// RFC 3030 §2: a non-final BDAT chunk was received.
pub fn chunk_received(octets: usize) -> Reply {
    owned(250, (2, 0, 0), format!("{octets} octets received"))
}

pub fn syntax(usage: &'static str) -> Reply {
    owned(501, (5, 5, 4), format!("Syntax: {usage}"))
}

pub fn invalid_parameter(name: &str) -> Reply {
    owned(
        501,
        (5, 5, 4),
        format!("Invalid value for parameter {name}"),
    )
}

/// RFC 5321 §4.1.1.11: 555 for MAIL/RCPT parameters not recognized or not implemented.
pub fn unsupported_parameter(name: &str) -> Reply {
    owned(555, (5, 5, 4), format!("Unsupported parameter {name}"))
}

/// RFC 4954 §4: a server challenge (base64 text, possibly empty).
pub fn auth_challenge(base64: &'static str) -> Reply {
    Reply {
        code: 334,
        status: None,
        text: Cow::Borrowed(base64),
    }
}

impl Reply {
    /// Permanent failures count against [`crate::limits::MAX_BAD_COMMANDS`].
    pub fn is_permanent_failure(&self) -> bool {
        self.code >= 500
    }

    /// Whether the session closes after sending this reply.
    pub fn closes_connection(&self) -> bool {
        self.code == 421 || self.code == 221
    }

    /// `code SP [status SP] text CRLF`; an empty 334 challenge is `334 SP CRLF` (RFC 4954 §4).
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let mut line = String::with_capacity(16 + self.text.len());
        let _ = write!(line, "{} ", self.code);
        if let Some(Status(a, b, c)) = self.status {
            let _ = write!(line, "{a}.{b}.{c} ");
        }
        line.push_str(&self.text);
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.write_to(&mut v);
        v
    }
}

/// The multi-line EHLO reply (RFC 5321 §4.1.1.1): first line greets, one line per extension.
pub fn write_ehlo(out: &mut Vec<u8>, hostname: &str, client: &str, extensions: &[String]) {
    let mut lines = Vec::with_capacity(extensions.len() + 1);
    lines.push(format!("{hostname} Hello {client}"));
    lines.extend(extensions.iter().cloned());
    let last = lines.len() - 1;
    for (i, line) in lines.iter().enumerate() {
        let sep = if i == last { ' ' } else { '-' };
        out.extend_from_slice(format!("250{sep}{line}\r\n").as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_render_code_enhanced_code_and_text() {
        assert_eq!(
            UNKNOWN_USER.to_bytes(),
            b"550 5.1.1 Recipient address rejected: user unknown\r\n"
        );
        assert_eq!(
            START_DATA.to_bytes(),
            b"354 Start mail input; end with <CRLF>.<CRLF>\r\n"
        );
        assert_eq!(queued("abc").to_bytes(), b"250 2.0.0 Ok: queued as abc\r\n");
        assert_eq!(auth_challenge("").to_bytes(), b"334 \r\n");
        assert_eq!(
            auth_challenge("VXNlcm5hbWU6").to_bytes(),
            b"334 VXNlcm5hbWU6\r\n"
        );
    }

    #[test]
    fn ehlo_reply_uses_dash_on_all_but_the_last_line() {
        let mut out = Vec::new();
        write_ehlo(
            &mut out,
            "mx.test",
            "client.test",
            &["PIPELINING".into(), "SIZE 10".into()],
        );
        assert_eq!(
            String::from_utf8_lossy(&out),
            "250-mx.test Hello client.test\r\n250-PIPELINING\r\n250 SIZE 10\r\n"
        );
    }

    #[test]
    fn a_refusal_may_name_its_reply() {
        let r = coded("550 5.7.1 DMARC policy of example.test: reject", '5').expect("coded");
        assert_eq!(
            r.to_bytes(),
            b"550 5.7.1 DMARC policy of example.test: reject\r\n"
        );
        assert!(coded("550 5.7.1 x", '4').is_none(), "class must match");
        assert!(coded("451 4.7.0 try later", '4').is_some());
        assert!(coded("451 5.7.0 mixed", '4').is_none());
        assert!(coded("over quota", '5').is_none());
        assert!(coded("550 5.7 short", '5').is_none());
    }
}
