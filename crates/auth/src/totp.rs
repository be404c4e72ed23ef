//! Time-based one-time passwords (RFC 6238) as a second sign-in factor, with one-time
//! recovery codes.
//!
//! Life cycle: [`enrol`] stores a fresh secret as *pending* and returns the `otpauth://` URI and
//! its QR code; [`confirm`] checks a first code from the user's app, switches 2FA on and returns
//! [`RECOVERY_CODE_COUNT`] recovery codes (shown once: only their SHA-256 hashes are kept);
//! [`verify`] checks a sign-in code (±[`ALLOWED_SKEW_STEPS`] time steps, each step usable once)
//! or consumes a recovery code; [`disable`] removes it all.
//!
//! State is one JSON document per account, the item [`SETTING_KEY`] of the account's
//! `settings` collection (sealed with the node's secret key when one is configured,
//! [`crate::at_rest`]). Every change is a compare-and-set on the item's version, so a code or
//! recovery code is accepted once even when several sign-ins race on several nodes (issue 13
//! item 12); states kept in the older account settings are moved there on first use.
//! Recovery codes carry 80 random bits, so a plain SHA-256 (not a slow password hash) is
//! enough to make a leaked settings table useless.

use base64::Engine;
use bulwark_store::collections::names::SETTINGS;
use bulwark_store::{AccountId, Expect, ItemWrite, Store, StoreError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use totp_rs::{Algorithm, Secret, TOTP};

/// Settings key holding the account's TOTP state.
pub const SETTING_KEY: &str = "totp";
/// RFC 6238 §4: time step X (30 s is the recommended default).
pub const STEP_SECS: u64 = 30;
/// Digits of a code (what every authenticator app shows).
pub const DIGITS: usize = 6;
/// RFC 6238 §5.2: accept codes this many steps before/after now for clock drift.
pub const ALLOWED_SKEW_STEPS: u64 = 1;
/// Secret length: 160 bits, the HMAC-SHA1 block recommendation of RFC 4226 §4.
pub const SECRET_BYTES: usize = 20;
/// Recovery codes issued on confirmation.
pub const RECOVERY_CODE_COUNT: usize = 10;
/// Random bytes per recovery code (80 bits → 16 base32 characters).
const RECOVERY_CODE_BYTES: usize = 10;
/// Longest code input we look at (a recovery code with dashes and spaces is ~20).
const MAX_CODE_INPUT: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum TotpError {
    #[error("two-factor authentication is not being set up; start enrolment first")]
    NotPending,
    #[error("two-factor authentication is not enabled")]
    NotEnabled,
    #[error("the code is wrong or was already used")]
    InvalidCode,
    #[error("stored two-factor state is unreadable: {0}")]
    Corrupt(String),
    #[error("store: {0}")]
    Store(#[from] bulwark_store::StoreError),
    #[error("totp: {0}")]
    Totp(String),
}

/// What is persisted per account.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TotpState {
    /// Base32 (RFC 4648, no padding) shared secret.
    pub secret: String,
    /// True once a first code was confirmed; until then sign-in does not ask for codes.
    pub enabled: bool,
    /// SHA-256 hex of each unused recovery code (normalised: uppercase, no separators).
    #[serde(default)]
    pub recovery_hashes: Vec<String>,
    /// Highest time step already accepted; codes of this step or earlier are refused
    /// (RFC 6238 §5.2: a verifier must not accept the same OTP twice).
    #[serde(default)]
    pub last_step: u64,
}

/// Returned by [`enrol`]: everything the user needs to add the account to an authenticator app.
#[derive(Debug, Clone, Serialize)]
pub struct Enrolment {
    /// Base32 secret, for typing in by hand.
    pub secret: String,
    /// `otpauth://totp/...` URI (Key Uri Format used by authenticator apps).
    pub otpauth_uri: String,
    /// The URI as a QR code, a standalone SVG document.
    pub qr_svg: String,
    /// The same SVG as a `data:image/svg+xml;base64,…` URL (usable in an `<img>` under a strict CSP).
    pub qr_data_url: String,
}

/// Whether 2FA is on, and how many recovery codes remain.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct TotpStatus {
    pub enabled: bool,
    pub pending: bool,
    pub recovery_codes_left: usize,
}

fn totp_for(secret_b32: &str) -> Result<TOTP, TotpError> {
    let bytes = Secret::Encoded(secret_b32.to_string())
        .to_bytes()
        .map_err(|e| TotpError::Corrupt(format!("{e:?}")))?;
    // `new_unchecked`: we choose the parameters; the only "check" skipped is the 128-bit minimum,
    // which SECRET_BYTES exceeds anyway.
    Ok(TOTP::new_unchecked(
        Algorithm::SHA1,
        DIGITS,
        1,
        STEP_SECS,
        bytes,
    ))
}

fn new_secret() -> String {
    let bytes: [u8; SECRET_BYTES] = rand::random();
    match Secret::Raw(bytes.to_vec()).to_encoded() {
        Secret::Encoded(s) => s,
        Secret::Raw(_) => String::new(),
    }
}

/// Key Uri Format: `otpauth://totp/ISSUER:LABEL?secret=…&issuer=…&algorithm=SHA1&digits=6&period=30`.
pub fn otpauth_uri(secret: &str, issuer: &str, label: &str) -> String {
    let issuer_enc = uri_escape(issuer);
    format!(
        "otpauth://totp/{issuer_enc}:{}?secret={secret}&issuer={issuer_enc}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        uri_escape(label)
    )
}

fn uri_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'@') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Renders `data` as a QR code SVG document.
pub fn qr_svg(data: &str) -> Result<String, TotpError> {
    let code = qrcode::QrCode::new(data.as_bytes()).map_err(|e| TotpError::Totp(e.to_string()))?;
    Ok(code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .dark_color(qrcode::render::svg::Color("#000000"))
        .light_color(qrcode::render::svg::Color("#ffffff"))
        .build())
}

fn hash_recovery(code: &str) -> String {
    let digest = Sha256::digest(normalise_recovery(code).as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn normalise_recovery(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

fn new_recovery_code() -> String {
    let bytes: [u8; RECOVERY_CODE_BYTES] = rand::random();
    let raw = match Secret::Raw(bytes.to_vec()).to_encoded() {
        Secret::Encoded(s) => s,
        Secret::Raw(_) => String::new(),
    };
    // 16 base32 characters, shown as XXXX-XXXX-XXXX-XXXX.
    raw.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("-")
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl TotpState {
    pub fn new_pending() -> TotpState {
        TotpState {
            secret: new_secret(),
            enabled: false,
            recovery_hashes: vec![],
            last_step: 0,
        }
    }

    /// The code for unix time `now` (used by tests and the e2e helper).
    pub fn code_at(&self, now: u64) -> Result<String, TotpError> {
        Ok(totp_for(&self.secret)?.generate(now))
    }

    /// Checks a 6-digit code against steps now-1..=now+1, refusing steps already used.
    /// Returns the accepted step.
    pub fn check_code(&self, code: &str, now: u64) -> Result<Option<u64>, TotpError> {
        let code = code.trim();
        if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(None);
        }
        let totp = totp_for(&self.secret)?;
        let current = now / STEP_SECS;
        for step in current.saturating_sub(ALLOWED_SKEW_STEPS)..=current + ALLOWED_SKEW_STEPS {
            if step <= self.last_step {
                continue;
            }
            let expected = totp.generate(step * STEP_SECS);
            if constant_time_eq(expected.as_bytes(), code.as_bytes()) {
                return Ok(Some(step));
            }
        }
        Ok(None)
    }

    /// Replaces the recovery codes with fresh ones and returns them in clear (shown once).
    pub fn regenerate_recovery_codes(&mut self) -> Vec<String> {
        let codes: Vec<String> = (0..RECOVERY_CODE_COUNT)
            .map(|_| new_recovery_code())
            .collect();
        self.recovery_hashes = codes.iter().map(|c| hash_recovery(c)).collect();
        codes
    }

    /// Consumes a recovery code if it is one of the unused ones.
    pub fn use_recovery_code(&mut self, input: &str) -> bool {
        let hash = hash_recovery(input);
        match self
            .recovery_hashes
            .iter()
            .position(|h| constant_time_eq(h.as_bytes(), hash.as_bytes()))
        {
            Some(i) => {
                self.recovery_hashes.remove(i);
                true
            }
            None => false,
        }
    }

    pub fn status(&self) -> TotpStatus {
        TotpStatus {
            enabled: self.enabled,
            pending: !self.enabled,
            recovery_codes_left: self.recovery_hashes.len(),
        }
    }
}

/// Associated data of an account's sealed TOTP state (binds it to the account).
fn seal_context(account: AccountId) -> String {
    format!("totp:{}", account.0)
}

/// Attempts of a read-modify-write that lost a compare-and-set race before giving up.
const CAS_ATTEMPTS: usize = 5;

fn open_state(account: AccountId, stored: &str) -> Result<TotpState, TotpError> {
    let json = crate::at_rest::open(stored, &seal_context(account))
        .map_err(|e| TotpError::Corrupt(e.to_string()))?;
    serde_json::from_str(&json).map_err(|e| TotpError::Corrupt(e.to_string()))
}

/// The stored state with what a compare-and-set of it must expect. A state still in the
/// legacy account setting is moved into the collection first (sealed).
async fn load_versioned(
    store: &dyn Store,
    account: AccountId,
) -> Result<Option<(TotpState, Expect)>, TotpError> {
    for _ in 0..CAS_ATTEMPTS {
        let item = store
            .collection_get(account, SETTINGS, Some(&[SETTING_KEY.to_string()]))
            .await?;
        if let Some(item) = item.first() {
            let state = open_state(account, &item.value)?;
            let expect = Expect::Version(item.version);
            if crate::at_rest::needs_migration(&item.value) {
                match save(store, account, &state, expect).await {
                    Ok(()) | Err(TotpError::Store(StoreError::Conflict(_))) => continue,
                    Err(e) => return Err(e),
                }
            }
            return Ok(Some((state, expect)));
        }
        let Some(legacy) = store.setting_get(account, SETTING_KEY).await? else {
            return Ok(None);
        };
        let state = open_state(account, &legacy)?;
        match save(store, account, &state, Expect::Absent).await {
            Ok(()) | Err(TotpError::Store(StoreError::Conflict(_))) => {}
            Err(e) => return Err(e),
        }
        store.setting_set(account, SETTING_KEY, None).await?;
    }
    Err(TotpError::Store(StoreError::Unavailable(
        "two-factor state keeps changing; try again".into(),
    )))
}

/// Loads the account's TOTP state (`None` when never enrolled or disabled). The state is kept
/// sealed with the node's secret key ([`crate::at_rest`], issue 13 item 2); a clear-text state
/// from before is read and rewritten sealed.
pub async fn load(store: &dyn Store, account: AccountId) -> Result<Option<TotpState>, TotpError> {
    Ok(load_versioned(store, account).await?.map(|(s, _)| s))
}

/// Global setting that records a finished [`migrate_all`] pass: `sealed` or `clear` (whether
/// states were sealed at rest then). A start with the same mode skips the sweep, which reads
/// every account; states written since are in the new form already, and [`load`] still
/// migrates any straggler (an older node's write during a rolling upgrade) on first use.
pub const MIGRATION_MARK: &str = "totp-migration";

/// Rewrites every account's clear-text TOTP state sealed, and moves states out of the legacy
/// account settings (run at start; [`load`] also does it on first use). Returns how many
/// states were rewritten; once a pass has finished in the current mode, later calls return
/// 0 at once.
pub async fn migrate_all(store: &dyn Store) -> Result<usize, TotpError> {
    let mode = if crate::at_rest::enabled() {
        "sealed"
    } else {
        "clear"
    };
    if store.global_setting_get(MIGRATION_MARK).await?.as_deref() == Some(mode) {
        return Ok(0);
    }
    let mut rewritten = 0;
    for account in store.account_list().await? {
        let legacy = store.setting_get(account.id, SETTING_KEY).await?;
        let item = store
            .collection_get(account.id, SETTINGS, Some(&[SETTING_KEY.to_string()]))
            .await?;
        let clear = crate::at_rest::enabled()
            && item
                .first()
                .is_some_and(|i| crate::at_rest::needs_migration(&i.value));
        if legacy.is_some() || clear {
            load(store, account.id).await?;
            rewritten += 1;
        }
    }
    store.global_setting_set(MIGRATION_MARK, Some(mode)).await?;
    Ok(rewritten)
}

/// Writes the state if the stored one is still the one `expect` names.
async fn save(
    store: &dyn Store,
    account: AccountId,
    state: &TotpState,
    expect: Expect,
) -> Result<(), TotpError> {
    let json = serde_json::to_string(state).map_err(|e| TotpError::Corrupt(e.to_string()))?;
    let sealed = crate::at_rest::seal(&json, &seal_context(account));
    store
        .collection_write(
            account,
            vec![ItemWrite::put(SETTINGS, SETTING_KEY, expect, sealed)],
        )
        .await?;
    Ok(())
}

fn lost_race(e: &TotpError) -> bool {
    matches!(e, TotpError::Store(StoreError::Conflict(_)))
}

/// Status for the settings page.
pub async fn status(store: &dyn Store, account: AccountId) -> Result<TotpStatus, TotpError> {
    Ok(load(store, account)
        .await?
        .map(|s| s.status())
        .unwrap_or(TotpStatus {
            enabled: false,
            pending: false,
            recovery_codes_left: 0,
        }))
}

/// True when sign-in must ask for a second factor.
pub async fn is_enabled(store: &dyn Store, account: AccountId) -> Result<bool, TotpError> {
    Ok(load(store, account).await?.is_some_and(|s| s.enabled))
}

/// Starts (or restarts) enrolment with a fresh secret. An already enabled 2FA stays as it is
/// until confirmed anew, so a half-finished re-enrolment never locks the user out.
pub async fn enrol(
    store: &dyn Store,
    account: AccountId,
    issuer: &str,
    label: &str,
) -> Result<Enrolment, TotpError> {
    let current = load_versioned(store, account).await?;
    if current.as_ref().is_some_and(|(s, _)| s.enabled) {
        // Re-enrolment is done by disabling first; keep the working factor.
        return Err(TotpError::Totp(
            "two-factor authentication is already enabled; disable it first".into(),
        ));
    }
    let expect = current.map(|(_, e)| e).unwrap_or(Expect::Absent);
    let state = TotpState::new_pending();
    // A concurrent enable wins over this enrolment: it fails instead of replacing it.
    save(store, account, &state, expect).await?;
    let uri = otpauth_uri(&state.secret, issuer, label);
    let svg = qr_svg(&uri)?;
    let data_url = format!(
        "data:image/svg+xml;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(&svg)
    );
    Ok(Enrolment {
        secret: state.secret,
        otpauth_uri: uri,
        qr_svg: svg,
        qr_data_url: data_url,
    })
}

/// Confirms enrolment with a first code; switches 2FA on and returns the recovery codes.
pub async fn confirm(
    store: &dyn Store,
    account: AccountId,
    code: &str,
    now: u64,
) -> Result<Vec<String>, TotpError> {
    let (mut state, expect) = load_versioned(store, account)
        .await?
        .ok_or(TotpError::NotPending)?;
    if state.enabled {
        return Err(TotpError::NotPending);
    }
    let step = state.check_code(code, now)?.ok_or(TotpError::InvalidCode)?;
    state.enabled = true;
    state.last_step = step;
    let codes = state.regenerate_recovery_codes();
    match save(store, account, &state, expect).await {
        Ok(()) => Ok(codes),
        // Someone else confirmed or re-enrolled meanwhile: this code is spent either way.
        Err(e) if lost_race(&e) => Err(TotpError::InvalidCode),
        Err(e) => Err(e),
    }
}

/// Verifies a sign-in code: a current TOTP code, or an unused recovery code (then consumed).
/// `Ok(true)` also when 2FA is not enabled (nothing to check).
pub async fn verify(
    store: &dyn Store,
    account: AccountId,
    code: &str,
    now: u64,
) -> Result<bool, TotpError> {
    if code.len() > MAX_CODE_INPUT {
        return Ok(match load(store, account).await? {
            Some(state) => !state.enabled,
            None => true,
        });
    }
    // Check, mark used and write back as one compare-and-set; a lost race means another
    // sign-in changed the state (perhaps with this very code): read it again and re-check.
    for _ in 0..CAS_ATTEMPTS {
        let Some((mut state, expect)) = load_versioned(store, account).await? else {
            return Ok(true);
        };
        if !state.enabled {
            return Ok(true);
        }
        let mut recovery = false;
        if let Some(step) = state.check_code(code, now)? {
            state.last_step = step;
        } else if normalise_recovery(code).len() == RECOVERY_CODE_BYTES * 8 / 5
            && state.use_recovery_code(code)
        {
            recovery = true;
        } else {
            return Ok(false);
        }
        match save(store, account, &state, expect).await {
            Ok(()) => {
                if recovery {
                    tracing::info!(
                        account = account.0,
                        left = state.recovery_hashes.len(),
                        "recovery code used"
                    );
                }
                return Ok(true);
            }
            Err(e) if lost_race(&e) => continue,
            Err(e) => return Err(e),
        }
    }
    // Still racing after several attempts: refuse (the user retries with the next code).
    Ok(false)
}

/// Turns 2FA off (the caller has re-checked the user's password or a code).
pub async fn disable(store: &dyn Store, account: AccountId) -> Result<(), TotpError> {
    store
        .collection_write(
            account,
            vec![ItemWrite::delete(SETTINGS, SETTING_KEY, Expect::Any)],
        )
        .await?;
    store.setting_set(account, SETTING_KEY, None).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    #[test]
    fn rfc6238_sha1_test_vector_matches() {
        // RFC 6238 Appendix B, SHA1, T = 59 → 94287082 (8 digits); we use the 6 low digits.
        let secret = match Secret::Raw(b"12345678901234567890".to_vec()).to_encoded() {
            Secret::Encoded(s) => s,
            Secret::Raw(_) => unreachable!(),
        };
        let s = TotpState {
            secret,
            enabled: true,
            recovery_hashes: vec![],
            last_step: 0,
        };
        assert_eq!(s.code_at(59).unwrap(), "287082");
        assert_eq!(s.code_at(1_111_111_109).unwrap(), "081804");
    }

    #[test]
    fn code_is_accepted_one_step_either_side_but_not_two() {
        let s = TotpState::new_pending();
        let now_step = NOW / STEP_SECS;
        for (offset, ok) in [(-2i64, false), (-1, true), (0, true), (1, true), (2, false)] {
            let t = ((now_step as i64 + offset) as u64) * STEP_SECS;
            let code = s.code_at(t).unwrap();
            assert_eq!(
                s.check_code(&code, NOW).unwrap().is_some(),
                ok,
                "offset {offset}"
            );
        }
        assert_eq!(s.check_code("12345", NOW).unwrap(), None);
        assert_eq!(s.check_code("abcdef", NOW).unwrap(), None);
    }

    #[test]
    fn used_step_is_not_accepted_again() {
        let mut s = TotpState::new_pending();
        let code = s.code_at(NOW).unwrap();
        let step = s.check_code(&code, NOW).unwrap().unwrap();
        s.last_step = step;
        assert_eq!(s.check_code(&code, NOW).unwrap(), None);
    }

    #[test]
    fn recovery_codes_are_ten_unique_hashed_and_single_use() {
        let mut s = TotpState::new_pending();
        let codes = s.regenerate_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODE_COUNT);
        let unique: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(unique.len(), RECOVERY_CODE_COUNT);
        assert!(
            codes
                .iter()
                .all(|c| c.len() == 19 && c.matches('-').count() == 3)
        );
        assert!(
            !s.recovery_hashes
                .iter()
                .any(|h| codes.iter().any(|c| h.contains(&normalise_recovery(c))))
        );
        // Lower case and without dashes is accepted; a second use is not.
        let typed = codes[3].replace('-', "").to_ascii_lowercase();
        assert!(s.use_recovery_code(&typed));
        assert!(!s.use_recovery_code(&codes[3]));
        assert_eq!(s.recovery_hashes.len(), RECOVERY_CODE_COUNT - 1);
    }

    #[test]
    fn otpauth_uri_escapes_label_and_names_parameters() {
        let uri = otpauth_uri("JBSWY3DPEHPK3PXP", "Bulwark mail", "alice@example.test");
        assert_eq!(
            uri,
            "otpauth://totp/Bulwark%20mail:alice@example.test?secret=JBSWY3DPEHPK3PXP&issuer=Bulwark%20mail&algorithm=SHA1&digits=6&period=30"
        );
        let svg = qr_svg(&uri).unwrap();
        assert!(svg.contains("<svg") && svg.contains("</svg>"));
    }

    #[tokio::test]
    async fn enrol_confirm_verify_disable_round_trip_through_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store: std::sync::Arc<dyn Store> =
            bulwark_store::sqlite::SqliteStore::open(dir.path()).unwrap();
        store.domain_add("example.test").await.unwrap();
        let account = store
            .account_create(bulwark_store::NewAccount {
                address: "alice@example.test".into(),
                display_name: "Alice".into(),
                password_hash: "x".into(),
            })
            .await
            .unwrap()
            .id;
        let store = store.as_ref();
        assert!(
            verify(store, account, "000000", NOW).await.unwrap(),
            "no 2FA: nothing to check"
        );
        let e = enrol(store, account, "Bulwark", "alice@example.test")
            .await
            .unwrap();
        assert!(
            e.otpauth_uri.contains(&e.secret)
                && e.qr_data_url.starts_with("data:image/svg+xml;base64,")
        );
        assert!(
            !is_enabled(store, account).await.unwrap(),
            "pending until confirmed"
        );
        assert!(matches!(
            confirm(store, account, "12345x", NOW).await,
            Err(TotpError::InvalidCode)
        ));
        let state = load(store, account).await.unwrap().unwrap();
        let codes = confirm(store, account, &state.code_at(NOW).unwrap(), NOW)
            .await
            .unwrap();
        assert_eq!(codes.len(), RECOVERY_CODE_COUNT);
        assert!(is_enabled(store, account).await.unwrap());
        // The confirmation code's step is used up; the next step's code works once.
        let next = state.code_at(NOW + STEP_SECS).unwrap();
        assert!(
            verify(store, account, &next, NOW + STEP_SECS)
                .await
                .unwrap()
        );
        assert!(
            !verify(store, account, &next, NOW + STEP_SECS)
                .await
                .unwrap()
        );
        assert!(verify(store, account, &codes[0], NOW).await.unwrap());
        assert!(!verify(store, account, &codes[0], NOW).await.unwrap());
        assert_eq!(
            status(store, account).await.unwrap().recovery_codes_left,
            RECOVERY_CODE_COUNT - 1
        );
        disable(store, account).await.unwrap();
        assert!(!is_enabled(store, account).await.unwrap());
    }

    #[tokio::test]
    async fn state_is_sealed_at_rest_and_clear_text_state_is_migrated() {
        crate::at_rest::install_test_key();
        let dir = tempfile::tempdir().unwrap();
        let store: std::sync::Arc<dyn Store> =
            bulwark_store::sqlite::SqliteStore::open(dir.path()).unwrap();
        store.domain_add("example.test").await.unwrap();
        let account = store
            .account_create(bulwark_store::NewAccount {
                address: "alice@example.test".into(),
                display_name: "Alice".into(),
                password_hash: "x".into(),
            })
            .await
            .unwrap()
            .id;
        let store = store.as_ref();
        let e = enrol(store, account, "Bulwark", "alice@example.test")
            .await
            .unwrap();
        async fn item(store: &dyn Store, account: AccountId) -> Option<String> {
            store
                .collection_get(account, SETTINGS, Some(&[SETTING_KEY.to_string()]))
                .await
                .unwrap()
                .pop()
                .map(|i| i.value)
        }
        let stored = item(store, account).await.unwrap();
        assert!(crate::at_rest::is_sealed(&stored) && !stored.contains(&e.secret));
        assert_eq!(
            load(store, account).await.unwrap().unwrap().secret,
            e.secret
        );
        // A clear-text state from before encryption, still in the legacy account setting, is
        // read, then moved into the collection sealed.
        disable(store, account).await.unwrap();
        let clear = serde_json::to_string(&TotpState::new_pending()).unwrap();
        store
            .setting_set(account, SETTING_KEY, Some(&clear))
            .await
            .unwrap();
        assert_eq!(migrate_all(store).await.unwrap(), 1);
        assert_eq!(store.setting_get(account, SETTING_KEY).await.unwrap(), None);
        let stored = item(store, account).await.unwrap();
        assert!(crate::at_rest::is_sealed(&stored));
        // Sealed for this account only: moved to another account it does not open.
        assert!(crate::at_rest::open(&stored, "totp:999").is_err());
        // The finished pass is recorded: the next start skips the sweep over every account,
        // and a straggler (an older node's clear-text write) is still moved on first load.
        assert_eq!(
            store
                .global_setting_get(MIGRATION_MARK)
                .await
                .unwrap()
                .as_deref(),
            Some("sealed")
        );
        disable(store, account).await.unwrap();
        store
            .setting_set(account, SETTING_KEY, Some(&clear))
            .await
            .unwrap();
        assert_eq!(migrate_all(store).await.unwrap(), 0, "skipped");
        assert!(load(store, account).await.unwrap().is_some());
        assert_eq!(store.setting_get(account, SETTING_KEY).await.unwrap(), None);
    }

    /// Issue 13 item 12: twenty sign-ins racing with one code — exactly one is let in; ten
    /// racing with one recovery code — exactly one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_code_is_accepted_once_under_concurrency() {
        let dir = tempfile::tempdir().unwrap();
        let store: std::sync::Arc<dyn Store> =
            bulwark_store::sqlite::SqliteStore::open(dir.path()).unwrap();
        store.domain_add("example.test").await.unwrap();
        let account = store
            .account_create(bulwark_store::NewAccount {
                address: "alice@example.test".into(),
                display_name: "Alice".into(),
                password_hash: "x".into(),
            })
            .await
            .unwrap()
            .id;
        enrol(store.as_ref(), account, "Bulwark", "alice")
            .await
            .unwrap();
        let state = load(store.as_ref(), account).await.unwrap().unwrap();
        let now = NOW;
        let first = state.code_at(now - STEP_SECS).unwrap();
        let recovery = confirm(store.as_ref(), account, &first, now - STEP_SECS)
            .await
            .unwrap();
        let code = state.code_at(now).unwrap();
        for (input, racers) in [(code, 20), (recovery[0].clone(), 10)] {
            let mut tasks = Vec::new();
            for _ in 0..racers {
                let store = store.clone();
                let input = input.clone();
                tasks.push(tokio::spawn(async move {
                    verify(store.as_ref(), account, &input, now).await.unwrap()
                }));
            }
            let mut accepted = 0;
            for t in tasks {
                if t.await.unwrap() {
                    accepted += 1;
                }
            }
            assert_eq!(accepted, 1, "{input} accepted {accepted} times");
        }
    }
}
