//! The content and header rules: each that matches adds its weight (whole points; the
//! thresholds are in the same unit). Pure functions of the message, so they are tested
//! and fuzzed without a network.

use mail_parser::{HeaderName, MessageParser};

/// The GTUBE test string (Apache SpamAssassin's Generic Test for Unsolicited Bulk Email):
/// any filter must treat a message carrying it as spam.
pub const GTUBE: &str = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

/// Phrases of credential phishing ("your account will be suspended…"), lowercase.
const PHISHING_PHRASES: &[&str] = &[
    "verify your account",
    "confirm your account",
    "your account will be suspended",
    "your account has been suspended",
    "your password will expire",
    "update your payment information",
    "unusual sign-in activity",
    "validate your mailbox",
];

/// Brands phishers impersonate, with the registrable domains that really send as them. A
/// display name naming one from any other domain scores `FROM_NAME_BRAND`; a From domain one
/// letter away from one of these domains scores `LOOKALIKE_DOMAIN`.
const BRANDS: &[(&str, &[&str])] = &[
    ("paypal", &["paypal.com", "paypal.de", "paypal.co.uk"]),
    (
        "microsoft",
        &[
            "microsoft.com",
            "outlook.com",
            "live.com",
            "office.com",
            "office365.com",
        ],
    ),
    (
        "outlook",
        &["microsoft.com", "outlook.com", "live.com", "office.com"],
    ),
    (
        "office 365",
        &["microsoft.com", "office.com", "office365.com"],
    ),
    ("apple", &["apple.com", "icloud.com"]),
    ("icloud", &["apple.com", "icloud.com"]),
    (
        "amazon",
        &[
            "amazon.com",
            "amazon.de",
            "amazon.co.uk",
            "amazon.fr",
            "amazonses.com",
        ],
    ),
    ("google", &["google.com", "gmail.com", "youtube.com"]),
    ("gmail", &["google.com", "gmail.com"]),
    ("netflix", &["netflix.com"]),
    (
        "facebook",
        &["facebook.com", "facebookmail.com", "meta.com"],
    ),
    (
        "instagram",
        &["instagram.com", "facebookmail.com", "mail.instagram.com"],
    ),
    ("linkedin", &["linkedin.com"]),
    ("dhl", &["dhl.com", "dhl.de"]),
    ("fedex", &["fedex.com"]),
    ("docusign", &["docusign.com", "docusign.net"]),
    ("dropbox", &["dropbox.com", "dropboxmail.com"]),
];

/// The rules that are signs of phishing (impersonation, deceptive names, credential bait);
/// a first mail from a sender adds to them.
pub const PHISHING_RULES: &[&str] = &[
    "FROM_NAME_OTHER_ADDRESS",
    "FROM_NAME_BRAND",
    "FROM_NAME_LOCAL_USER",
    "FROM_NAME_MIXED_SCRIPT",
    "FROM_IDN_DOMAIN",
    "LOOKALIKE_DOMAIN",
    "REPLY_TO_ELSEWHERE",
    "PHISHING_WORDING",
];

/// What the rules compare the message with: our own domains and the display names of
/// our users (a stranger's mail showing one of them is impersonation).
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// Our mail domains, lowercase.
    pub local_domains: Vec<String>,
    /// Our users' display names, lowercase (names of at least two words).
    pub local_names: Vec<String>,
}

/// Largest part of a message the content rules read (the rest cannot add points).
const MAX_SCANNED: usize = 512 * 1024;

/// A message's score and the rules that made it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Score {
    pub total: i32,
    pub rules: Vec<(&'static str, i32)>,
}

impl Score {
    pub fn add(&mut self, rule: &'static str, points: i32) {
        self.total = self.total.saturating_add(points);
        self.rules.push((rule, points));
    }

    /// `GTUBE=1000,DMARC_FAIL=4` (for the header field and the log).
    pub fn tests(&self) -> String {
        self.rules
            .iter()
            .map(|(r, p)| format!("{r}={p}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Scores `raw` with the `Authentication-Results` field values the trust stage wrote
/// (`auth`, may be empty).
pub fn score_message(raw: &[u8], auth: &[String]) -> Score {
    score_message_with(raw, auth, &Context::default())
}

/// [`score_message`] with what is known of this server (impersonation of our users and
/// look-alikes of our domains; the message comes from an unauthenticated client).
pub fn score_message_with(raw: &[u8], auth: &[String], ctx: &Context) -> Score {
    let raw = &raw[..raw.len().min(MAX_SCANNED)];
    let mut score = Score::default();
    let text = String::from_utf8_lossy(raw);
    if text.contains(GTUBE) {
        score.add("GTUBE", 1000);
    }
    auth_rules(auth, &mut score);
    let Some(msg) = MessageParser::default().parse(raw) else {
        score.add("UNPARSABLE", 3);
        return score;
    };
    if msg.header(HeaderName::Date).is_none() {
        score.add("MISSING_DATE", 1);
    }
    if msg.header(HeaderName::MessageId).is_none() {
        score.add("MISSING_MESSAGE_ID", 1);
    }
    if let Some(subject) = msg.subject() {
        let letters: Vec<char> = subject.chars().filter(|c| c.is_alphabetic()).collect();
        if letters.len() >= 10 && letters.iter().all(|c| c.is_uppercase()) {
            score.add("SUBJECT_ALL_CAPS", 1);
        }
    }
    let from = msg.from().and_then(|a| a.first());
    let from_addr = from
        .and_then(|a| a.address())
        .unwrap_or("")
        .to_ascii_lowercase();
    let from_domain = from_addr
        .rsplit_once('@')
        .map(|(_, d)| d.to_string())
        .unwrap_or_default();
    if from.is_none() {
        score.add("MISSING_FROM", 1);
    }
    if let Some(name) = from.and_then(|a| a.name()) {
        // "support@yourbank.example" <x@elsewhere.test>: the name shows another address.
        if let Some(shown) = address_in(name)
            && !from_domain.is_empty()
            && !shown.ends_with(&format!("@{from_domain}"))
        {
            score.add("FROM_NAME_OTHER_ADDRESS", 3);
        }
        if mixed_scripts(name) {
            score.add("FROM_NAME_MIXED_SCRIPT", 2);
        }
        let lower = name.to_lowercase();
        if !from_domain.is_empty()
            && BRANDS.iter().any(|(brand, domains)| {
                contains_word(&lower, brand) && !domains.iter().any(|d| is_within(&from_domain, d))
            })
        {
            score.add("FROM_NAME_BRAND", 3);
        }
        // "Alice Martin" <alice.martin@elsewhere.test>: one of our users' names from outside
        // (CEO fraud); mail from our own domains is authenticated or scored elsewhere.
        let squeezed = lower.split_whitespace().collect::<Vec<_>>().join(" ");
        if !from_domain.is_empty()
            && !ctx.local_domains.iter().any(|d| is_within(&from_domain, d))
            && ctx.local_names.contains(&squeezed)
        {
            score.add("FROM_NAME_LOCAL_USER", 3);
        }
    }
    if !from_domain.is_empty() && lookalike(&from_domain, ctx) {
        score.add("LOOKALIKE_DOMAIN", 3);
    }
    if from_domain.split('.').any(|l| l.starts_with("xn--")) || !from_domain.is_ascii() {
        score.add("FROM_IDN_DOMAIN", 2);
    }
    if let Some(reply) = msg
        .reply_to()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
    {
        let reply = reply.to_ascii_lowercase();
        let reply_domain = reply.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
        if !from_domain.is_empty() && reply_domain != from_domain {
            score.add("REPLY_TO_ELSEWHERE", 1);
        }
    }
    let body = msg
        .body_text(0)
        .map(|b| b.to_lowercase())
        .unwrap_or_default();
    if PHISHING_PHRASES.iter().any(|p| body.contains(p)) {
        score.add("PHISHING_WORDING", 2);
    }
    score
}

/// Points from the `Authentication-Results` methods (RFC 8601 §2.7).
fn auth_rules(auth: &[String], score: &mut Score) {
    let all = auth.join(" ").to_ascii_lowercase();
    if all.is_empty() {
        return;
    }
    if all.contains("dmarc=fail") {
        score.add("DMARC_FAIL", 4);
    }
    if all.contains("spf=fail") {
        score.add("SPF_FAIL", 3);
    } else if all.contains("spf=softfail") {
        score.add("SPF_SOFTFAIL", 1);
    }
    if all.contains("dkim=fail") {
        score.add("DKIM_FAIL", 2);
    }
    if !all.contains("dkim=pass") && !all.contains("spf=pass") {
        score.add("NOT_AUTHENTICATED", 1);
    }
    if all.contains("x-bulwark=local-domain-unauthenticated") {
        score.add("LOCAL_DOMAIN_UNAUTHENTICATED", 3);
    }
}

/// `domain` is `parent` or below it.
fn is_within(domain: &str, parent: &str) -> bool {
    domain == parent || domain.ends_with(&format!(".{parent}"))
}

/// `word` in `text` as a whole word (not `dhl` inside `adhlib`).
fn contains_word(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

/// The From domain's last two labels look like (but are not) one of ours or a brand's:
/// one edit away (`examp1e.test`, `paypa1.com`, `micros0ft.com`), or equal once digits that
/// pass for letters are read as letters.
fn lookalike(from_domain: &str, ctx: &Context) -> bool {
    let base = |d: &str| {
        let labels: Vec<&str> = d.rsplit('.').take(2).collect();
        labels.into_iter().rev().collect::<Vec<_>>().join(".")
    };
    let from = base(from_domain);
    let deglyph = |s: &str| {
        s.chars()
            .map(|c| match c {
                '0' => 'o',
                '1' => 'l',
                '3' => 'e',
                '5' => 's',
                _ => c,
            })
            .collect::<String>()
            .replace("rn", "m")
            .replace("vv", "w")
    };
    let known = ctx
        .local_domains
        .iter()
        .map(String::as_str)
        .chain(BRANDS.iter().flat_map(|(_, d)| d.iter().copied()));
    for k in known {
        let k = base(k);
        // Short names are one letter from many honest ones (`a.test`, `c.test`).
        let label = k.split('.').next().unwrap_or("");
        if k == from || label.chars().count() < 5 {
            continue;
        }
        if strsim::damerau_levenshtein(&k, &from) == 1 || deglyph(&k) == deglyph(&from) {
            return true;
        }
    }
    false
}

/// The first `local@domain` inside a display name.
fn address_in(name: &str) -> Option<String> {
    name.split(|c: char| c.is_whitespace() || "<>()\"',;".contains(c))
        .find(|w| {
            let w = w.trim_matches('.');
            w.contains('@')
                && w.rsplit_once('@')
                    .is_some_and(|(l, d)| !l.is_empty() && d.contains('.'))
        })
        .map(|w| w.trim_matches('.').to_ascii_lowercase())
}

/// Latin letters mixed with Cyrillic or Greek ones in one word (`Pаypal` with a Cyrillic а).
fn mixed_scripts(name: &str) -> bool {
    name.split_whitespace().any(|word| {
        let latin = word.chars().any(|c| c.is_ascii_alphabetic());
        let other = word.chars().any(|c| matches!(c as u32, 0x0370..=0x04FF)); // Greek and Cyrillic
        latin && other
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(headers: &str, body: &str) -> Vec<u8> {
        format!("{headers}\r\n\r\n{body}\r\n").into_bytes()
    }

    #[test]
    fn gtube_is_spam_whatever_else() {
        let s = score_message(
            &msg("From: a@b.test\r\nDate: x\r\nMessage-ID: <1@b>", GTUBE),
            &[],
        );
        assert!(s.total >= 1000, "{s:?}");
        assert_eq!(s.rules[0].0, "GTUBE");
    }

    #[test]
    fn an_ordinary_message_scores_nothing() {
        let s = score_message(
            &msg(
                "From: Alice <alice@example.org>\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\nMessage-ID: <1@example.org>\r\nSubject: Lunch tomorrow?",
                "Shall we meet at noon?",
            ),
            &["mx.example.test; spf=pass smtp.mailfrom=example.org; dkim=pass header.d=example.org".into()],
        );
        assert_eq!(s, Score::default());
    }

    #[test]
    fn phishing_signals_add_up() {
        let s = score_message(
            &msg(
                "From: \"security@bank.example\" <alerts@xn--bnk-sna.test>\r\nReply-To: collect@elsewhere.test\r\nSubject: URGENT ACCOUNT NOTICE",
                "Please verify your account within 24 hours.",
            ),
            &["mx.example.test; spf=fail; dkim=none; dmarc=fail".into()],
        );
        let names: Vec<&str> = s.rules.iter().map(|(r, _)| *r).collect();
        for r in [
            "DMARC_FAIL",
            "SPF_FAIL",
            "NOT_AUTHENTICATED",
            "MISSING_DATE",
            "MISSING_MESSAGE_ID",
            "SUBJECT_ALL_CAPS",
            "FROM_NAME_OTHER_ADDRESS",
            "FROM_IDN_DOMAIN",
            "REPLY_TO_ELSEWHERE",
            "PHISHING_WORDING",
        ] {
            assert!(names.contains(&r), "{r} missing from {names:?}");
        }
        assert!(s.total >= 15, "{s:?}");
        let mixed = score_message(
            &msg(
                "From: Pаypal <service@pay.test>\r\nDate: x\r\nMessage-ID: <1@p>",
                "hi",
            ),
            &[],
        );
        assert!(
            mixed
                .rules
                .iter()
                .any(|(r, _)| *r == "FROM_NAME_MIXED_SCRIPT"),
            "{mixed:?}"
        );
    }

    #[test]
    fn impersonation_of_brands_our_users_and_our_domains() {
        let ctx = Context {
            local_domains: vec!["example.test".into()],
            local_names: vec!["alice martin".into()],
        };
        let rules = |from: &str| {
            let raw = msg(
                &format!("From: {from}\r\nDate: x\r\nMessage-ID: <1@x>\r\n"),
                "hi",
            );
            score_message_with(&raw, &[], &ctx)
                .rules
                .into_iter()
                .map(|(r, _)| r)
                .collect::<Vec<_>>()
        };
        assert!(rules("\"PayPal Security\" <alert@secure-pay.test>").contains(&"FROM_NAME_BRAND"));
        assert!(!rules("\"PayPal\" <service@paypal.com>").contains(&"FROM_NAME_BRAND"));
        assert!(!rules("\"PayPal\" <service@mail.paypal.de>").contains(&"FROM_NAME_BRAND"));
        assert!(!rules("\"Adhlib Team\" <x@y.test>").contains(&"FROM_NAME_BRAND"));
        assert!(
            rules("\"Alice  Martin\" <ceo.office@elsewhere.test>")
                .contains(&"FROM_NAME_LOCAL_USER")
        );
        assert!(!rules("\"Alice Martin\" <alice@example.test>").contains(&"FROM_NAME_LOCAL_USER"));
        assert!(rules("IT <it@examp1e.test>").contains(&"LOOKALIKE_DOMAIN"));
        assert!(rules("IT <it@exarnple.test>").contains(&"LOOKALIKE_DOMAIN"));
        assert!(rules("Billing <billing@paypa1.com>").contains(&"LOOKALIKE_DOMAIN"));
        assert!(rules("Billing <x@mail.rnicrosoft.com>").contains(&"LOOKALIKE_DOMAIN"));
        assert!(!rules("IT <it@example.test>").contains(&"LOOKALIKE_DOMAIN"));
        assert!(!rules("Friend <f@unrelated.org>").contains(&"LOOKALIKE_DOMAIN"));
        let short = Context {
            local_domains: vec!["c.test".into()],
            local_names: Vec::new(),
        };
        let raw = msg(
            "From: Alice <alice@a.test>\r\nDate: x\r\nMessage-ID: <1@x>\r\n",
            "hi",
        );
        assert!(
            !score_message_with(&raw, &[], &short)
                .rules
                .iter()
                .any(|(r, _)| *r == "LOOKALIKE_DOMAIN")
        );
    }

    #[test]
    fn hostile_bytes_do_not_panic() {
        for raw in [
            &b""[..],
            b"\xff\xfe\r\n\r\n",
            b"From: <@>\r\n\r\n",
            b"From: \"a@\" <b>\r\n\r\n",
        ] {
            let _ = score_message(raw, &["".into()]);
        }
    }
}
