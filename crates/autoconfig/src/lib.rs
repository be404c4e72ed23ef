//! Client autoconfiguration: how a mail app finds the server from nothing but an address.
//!
//! * Thunderbird (and K-9/Thunderbird for Android, Evolution, …): `GET
//!   /.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=…` and, on the host
//!   `autoconfig.DOMAIN`, `GET /mail/config-v1.1.xml` — the "clientConfig" format 1.1.
//! * Microsoft Outlook: Autodiscover "POX" (`POST /autodiscover/autodiscover.xml` with the
//!   2006 request schema, answered with the `outlook/responseschema/2006a` settings) and the
//!   v2 JSON lookup (`GET /autodiscover/autodiscover.json?Email=…&Protocol=AutodiscoverV1`,
//!   which points at the POX endpoint).
//! * Apple Mail on iOS and macOS: a configuration profile (`.mobileconfig`, a property list
//!   with one `com.apple.mail.managed` payload) from `GET /autoconfig/apple.mobileconfig`.
//!
//! Each answers with the real hostname and the ports of the listeners this node serves, and
//! only for the server's own domains: another domain gets a clear 404 (Autodiscover: its
//! error document), so the server is no oracle for anyone else's mail. Nothing here reveals
//! whether an account exists, and no secret is ever in an answer (the app asks for the
//! password). The answers are pure functions of [`Settings`] and the address (below); the
//! axum shell is [`router`].

mod http;
mod request;

pub use http::router;
pub use request::{RequestError, autodiscover_request_email};

use serde_json::json;

/// How a listener protects its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// TLS from the first byte (993, 465, 995).
    Tls,
    /// Plain, then STARTTLS / STLS before authentication (143, 587, 110).
    StartTls,
}

/// One listener a client can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    pub port: u16,
    pub security: Security,
}

/// What this node offers to clients; endpoints in order of preference (implicit TLS first,
/// RFC 8314 §3).
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The name clients connect to (the certificate's name).
    pub hostname: String,
    pub imap: Vec<Endpoint>,
    pub pop3: Vec<Endpoint>,
    /// Submission (authenticated SMTP), never the MX port.
    pub smtp: Vec<Endpoint>,
    /// Base URL of the web client and JMAP (`https://host`), if served.
    pub web_url: Option<String>,
}

impl Settings {
    /// Sorts each list with implicit TLS first.
    pub fn normalised(mut self) -> Settings {
        for list in [&mut self.imap, &mut self.pop3, &mut self.smtp] {
            list.sort_by_key(|e| (e.security != Security::Tls, e.port));
            list.dedup();
        }
        self
    }
}

/// Escapes text for XML character data and attribute values.
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// Thunderbird's autoconfig document (clientConfig version 1.1) for `domain`.
pub fn thunderbird(settings: &Settings, domain: &str) -> String {
    let host = xml_escape(&settings.hostname);
    let domain = xml_escape(domain);
    let mut out = String::new();
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<clientConfig version=\"1.1\">\n");
    out.push_str(&format!("  <emailProvider id=\"{domain}\">\n"));
    out.push_str(&format!("    <domain>{domain}</domain>\n"));
    out.push_str(&format!(
        "    <displayName>{domain} (Bulwark)</displayName>\n"
    ));
    out.push_str(&format!(
        "    <displayShortName>{domain}</displayShortName>\n"
    ));
    let server = |out: &mut String, tag: &str, ty: &str, e: &Endpoint| {
        let socket = match e.security {
            Security::Tls => "SSL",
            Security::StartTls => "STARTTLS",
        };
        out.push_str(&format!(
            "    <{tag} type=\"{ty}\">\n      <hostname>{host}</hostname>\n      <port>{}</port>\n      \
             <socketType>{socket}</socketType>\n      <authentication>password-cleartext</authentication>\n      \
             <username>%EMAILADDRESS%</username>\n    </{tag}>\n",
            e.port
        ));
    };
    for e in &settings.imap {
        server(&mut out, "incomingServer", "imap", e);
    }
    for e in &settings.pop3 {
        server(&mut out, "incomingServer", "pop3", e);
    }
    for e in &settings.smtp {
        server(&mut out, "outgoingServer", "smtp", e);
    }
    out.push_str("  </emailProvider>\n");
    if let Some(url) = &settings.web_url {
        out.push_str(&format!(
            "  <webMail>\n    <loginPage url=\"{}/\" />\n  </webMail>\n",
            xml_escape(url.trim_end_matches('/'))
        ));
    }
    out.push_str("</clientConfig>\n");
    out
}

/// The Autodiscover response namespace Outlook asks for (`AcceptableResponseSchema`).
pub const OUTLOOK_RESPONSE_SCHEMA: &str =
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a";
const RESPONSE_NS: &str = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006";

/// The Autodiscover POX settings for `email`: IMAP (and POP3) and SMTP, each protocol once,
/// the preferred endpoint of each.
pub fn autodiscover_pox(settings: &Settings, email: &str) -> String {
    let host = xml_escape(&settings.hostname);
    let email = xml_escape(email);
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Autodiscover xmlns=\"{RESPONSE_NS}\">\n  \
         <Response xmlns=\"{OUTLOOK_RESPONSE_SCHEMA}\">\n    <User>\n      <DisplayName>{email}</DisplayName>\n    </User>\n    \
         <Account>\n      <AccountType>email</AccountType>\n      <Action>settings</Action>\n"
    );
    let protocol = |out: &mut String, ty: &str, e: &Endpoint, extra: &str| {
        let tls = match e.security {
            Security::Tls => "<SSL>on</SSL>",
            Security::StartTls => "<SSL>off</SSL>\n        <Encryption>TLS</Encryption>",
        };
        out.push_str(&format!(
            "      <Protocol>\n        <Type>{ty}</Type>\n        <Server>{host}</Server>\n        <Port>{}</Port>\n        \
             <LoginName>{email}</LoginName>\n        <DomainRequired>off</DomainRequired>\n        <SPA>off</SPA>\n        \
             {tls}\n        <AuthRequired>on</AuthRequired>\n{extra}      </Protocol>\n",
            e.port
        ));
    };
    if let Some(e) = settings.imap.first() {
        protocol(&mut out, "IMAP", e, "");
    }
    if let Some(e) = settings.pop3.first() {
        protocol(&mut out, "POP3", e, "");
    }
    if let Some(e) = settings.smtp.first() {
        protocol(
            &mut out,
            "SMTP",
            e,
            "        <UsePOPAuth>off</UsePOPAuth>\n        <SMTPLast>off</SMTPLast>\n",
        );
    }
    out.push_str("    </Account>\n  </Response>\n</Autodiscover>\n");
    out
}

/// An Autodiscover error document (`ErrorCode` 600 "Invalid Request", 603 "Provider not
/// available" …).
pub fn autodiscover_error(code: u16, message: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Autodiscover xmlns=\"{RESPONSE_NS}\">\n  <Response>\n    \
         <Error Id=\"0\">\n      <ErrorCode>{code}</ErrorCode>\n      <Message>{}</Message>\n      <DebugData />\n    \
         </Error>\n  </Response>\n</Autodiscover>\n",
        xml_escape(message)
    )
}

/// The Autodiscover v2 answer for `protocol`: `AutodiscoverV1` points at the POX endpoint;
/// anything else (ActiveSync, EWS, REST) is not offered. `Err` carries the JSON error.
pub fn autodiscover_json(
    base_url: &str,
    protocol: &str,
) -> Result<serde_json::Value, serde_json::Value> {
    if protocol.eq_ignore_ascii_case("AutodiscoverV1") {
        Ok(json!({
            "Protocol": "AutodiscoverV1",
            "Url": format!("{}/autodiscover/autodiscover.xml", base_url.trim_end_matches('/')),
        }))
    } else {
        Err(json!({
            "ErrorCode": "InvalidProtocol",
            "ErrorMessage": format!("The given protocol value '{protocol}' is invalid. Supported values are 'AutodiscoverV1'."),
        }))
    }
}

/// A stable UUID-shaped identifier from `seed` (profiles must keep their identifiers so a
/// reinstall replaces rather than duplicates the account). FNV-1a, not a secret.
fn stable_uuid(seed: &str) -> String {
    let mut a: u64 = 0xcbf2_9ce4_8422_2325;
    let mut b: u64 = 0x8422_2325_cbf2_9ce4;
    for byte in seed.bytes() {
        a = (a ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        b = (b ^ u64::from(byte))
            .wrapping_mul(0x0000_0100_0000_01b3)
            .rotate_left(5);
    }
    let h = format!("{a:016X}{b:016X}");
    format!(
        "{}-{}-4{}-8{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// An Apple configuration profile with the account for `email` (IMAP in, submission out,
/// the password asked for on install).
pub fn mobileconfig(settings: &Settings, email: &str) -> Option<String> {
    let imap = settings.imap.first()?;
    let smtp = settings.smtp.first()?;
    let host = xml_escape(&settings.hostname);
    let address = xml_escape(email);
    let reverse: Vec<&str> = settings.hostname.rsplit('.').collect();
    let id_base = xml_escape(&reverse.join("."));
    let bool_tag = |on: bool| if on { "<true/>" } else { "<false/>" };
    let payload_uuid = stable_uuid(&format!("mail:{email}"));
    let profile_uuid = stable_uuid(&format!("profile:{email}"));
    Some(format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>PayloadContent</key>
  <array>
    <dict>
      <key>EmailAccountDescription</key><string>{address}</string>
      <key>EmailAccountName</key><string>{address}</string>
      <key>EmailAccountType</key><string>EmailTypeIMAP</string>
      <key>EmailAddress</key><string>{address}</string>
      <key>IncomingMailServerAuthentication</key><string>EmailAuthPassword</string>
      <key>IncomingMailServerHostName</key><string>{host}</string>
      <key>IncomingMailServerPortNumber</key><integer>{imap_port}</integer>
      <key>IncomingMailServerUseSSL</key>{imap_ssl}
      <key>IncomingMailServerUsername</key><string>{address}</string>
      <key>OutgoingMailServerAuthentication</key><string>EmailAuthPassword</string>
      <key>OutgoingMailServerHostName</key><string>{host}</string>
      <key>OutgoingMailServerPortNumber</key><integer>{smtp_port}</integer>
      <key>OutgoingMailServerUseSSL</key>{smtp_ssl}
      <key>OutgoingMailServerUsername</key><string>{address}</string>
      <key>OutgoingPasswordSameAsIncomingPassword</key><true/>
      <key>PayloadDescription</key><string>Mail account {address}</string>
      <key>PayloadDisplayName</key><string>{address}</string>
      <key>PayloadIdentifier</key><string>{id_base}.mail.{payload_uuid}</string>
      <key>PayloadType</key><string>com.apple.mail.managed</string>
      <key>PayloadUUID</key><string>{payload_uuid}</string>
      <key>PayloadVersion</key><integer>1</integer>
      <key>SMIMEEnabled</key><false/>
    </dict>
  </array>
  <key>PayloadDescription</key><string>Sets up mail for {address} on {host}.</string>
  <key>PayloadDisplayName</key><string>{address} (Bulwark)</string>
  <key>PayloadIdentifier</key><string>{id_base}.profile.{profile_uuid}</string>
  <key>PayloadRemovalDisallowed</key><false/>
  <key>PayloadType</key><string>Configuration</string>
  <key>PayloadUUID</key><string>{profile_uuid}</string>
  <key>PayloadVersion</key><integer>1</integer>
</dict>
</plist>
"#,
        imap_port = imap.port,
        smtp_port = smtp.port,
        // STARTTLS counts as SSL for Apple Mail: it upgrades and refuses plain text.
        imap_ssl = bool_tag(true),
        smtp_ssl = bool_tag(true),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn settings() -> Settings {
        Settings {
            hostname: "mail.example.test".into(),
            imap: vec![
                Endpoint {
                    port: 143,
                    security: Security::StartTls,
                },
                Endpoint {
                    port: 993,
                    security: Security::Tls,
                },
            ],
            pop3: vec![],
            smtp: vec![Endpoint {
                port: 587,
                security: Security::StartTls,
            }],
            web_url: Some("https://mail.example.test".into()),
        }
        .normalised()
    }

    #[test]
    fn thunderbird_lists_implicit_tls_first_and_escapes() {
        let xml = thunderbird(&settings(), "ex<ample>.test");
        let ssl = xml.find("<port>993</port>").unwrap();
        let starttls = xml.find("<port>143</port>").unwrap();
        assert!(ssl < starttls, "{xml}");
        assert!(xml.contains("<domain>ex&lt;ample&gt;.test</domain>"));
        assert!(xml.contains("<socketType>STARTTLS</socketType>"));
        assert!(xml.contains("<outgoingServer type=\"smtp\">"));
        assert!(xml.contains("<username>%EMAILADDRESS%</username>"));
    }

    #[test]
    fn pox_names_each_protocol_once_with_its_tls_mode() {
        let xml = autodiscover_pox(&settings(), "alice@example.test");
        assert_eq!(xml.matches("<Type>IMAP</Type>").count(), 1);
        assert!(xml.contains("<Port>993</Port>") && !xml.contains("<Port>143</Port>"));
        assert!(xml.contains("<Type>SMTP</Type>"));
        assert!(
            xml.contains("<Encryption>TLS</Encryption>"),
            "587 is STARTTLS"
        );
        assert!(xml.contains(OUTLOOK_RESPONSE_SCHEMA));
    }

    #[test]
    fn v2_json_points_at_pox_and_refuses_other_protocols() {
        let ok = autodiscover_json("https://mail.example.test/", "autodiscoverv1").unwrap();
        assert_eq!(
            ok["Url"],
            "https://mail.example.test/autodiscover/autodiscover.xml"
        );
        let err = autodiscover_json("https://x", "ActiveSync").unwrap_err();
        assert_eq!(err["ErrorCode"], "InvalidProtocol");
    }

    #[test]
    fn profiles_are_stable_per_address() {
        let a = mobileconfig(&settings(), "alice@example.test").unwrap();
        assert_eq!(a, mobileconfig(&settings(), "alice@example.test").unwrap());
        assert_ne!(a, mobileconfig(&settings(), "bob@example.test").unwrap());
        assert!(a.contains("<string>com.apple.mail.managed</string>"));
        assert!(a.contains("<integer>993</integer>") && a.contains("<integer>587</integer>"));
        let no_smtp = Settings {
            smtp: vec![],
            ..settings()
        };
        assert!(mobileconfig(&no_smtp, "a@b").is_none());
    }
}
