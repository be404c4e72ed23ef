//! Tests of issuing, verifying, revoking and local rotation.

use super::*;

const NOW: i64 = 1_800_000_000;

#[test]
fn issued_access_token_verifies_with_its_claims() {
    let s = TokenSigner::ephemeral();
    let t = s.issue(TokenKind::Access, AccountId(7), "sess1", 60, NOW);
    let c = s.verify(&t, TokenKind::Access, NOW + 1).unwrap();
    assert_eq!(
        (c.sub, c.sid.as_str(), c.exp, c.kid),
        (7, "sess1", NOW + 60, s.current_key_id())
    );
}

#[test]
fn expired_token_is_refused_at_the_expiry_second() {
    let s = TokenSigner::ephemeral();
    let t = s.issue(TokenKind::Access, AccountId(1), "s", 60, NOW);
    assert!(s.verify(&t, TokenKind::Access, NOW + 59).is_ok());
    assert_eq!(
        s.verify(&t, TokenKind::Access, NOW + 60),
        Err(TokenError::Expired)
    );
}

#[test]
fn tampered_payload_or_signature_fails() {
    let s = TokenSigner::ephemeral();
    let t = s.issue(TokenKind::Access, AccountId(1), "s", 60, NOW);
    let (p, sig) = t.split_once('.').unwrap();
    let mut claims: Claims = serde_json::from_slice(&B64.decode(p).unwrap()).unwrap();
    claims.sub = 2;
    let forged = format!("{}.{sig}", B64.encode(serde_json::to_vec(&claims).unwrap()));
    assert_eq!(
        s.verify(&forged, TokenKind::Access, NOW),
        Err(TokenError::BadSignature)
    );
    let other = TokenSigner::ephemeral();
    assert_eq!(
        other.verify(&t, TokenKind::Access, NOW),
        Err(TokenError::UnknownKey)
    );
    for junk in ["", ".", "abc", "a.b", "!!!.???", &"x".repeat(5000)] {
        assert_eq!(
            s.verify(junk, TokenKind::Access, NOW),
            Err(TokenError::Malformed),
            "{junk}"
        );
    }
}

#[test]
fn refresh_token_is_not_an_access_token() {
    let s = TokenSigner::ephemeral();
    let t = s.issue(TokenKind::Refresh, AccountId(1), "s", 600, NOW);
    assert!(matches!(
        s.verify(&t, TokenKind::Access, NOW),
        Err(TokenError::WrongKind { .. })
    ));
    assert!(s.verify(&t, TokenKind::Refresh, NOW).is_ok());
}

#[test]
fn revoked_session_refuses_all_its_tokens_across_reload() {
    let dir = tempfile::tempdir().unwrap();
    let s = TokenSigner::load_or_create(dir.path()).unwrap();
    let a = s.issue(TokenKind::Access, AccountId(1), "s1", 60, NOW);
    let r = s.issue(TokenKind::Refresh, AccountId(1), "s1", 600, NOW);
    let other = s.issue(TokenKind::Access, AccountId(1), "s2", 60, NOW);
    s.revoke_session("s1", NOW + 600, NOW).unwrap();
    assert_eq!(
        s.verify(&a, TokenKind::Access, NOW),
        Err(TokenError::Revoked)
    );
    assert_eq!(
        s.verify(&r, TokenKind::Refresh, NOW),
        Err(TokenError::Revoked)
    );
    assert!(s.verify(&other, TokenKind::Access, NOW).is_ok());
    let reloaded = TokenSigner::load_or_create(dir.path()).unwrap();
    assert_eq!(
        reloaded.verify(&a, TokenKind::Access, NOW),
        Err(TokenError::Revoked)
    );
    assert!(reloaded.verify(&other, TokenKind::Access, NOW).is_ok());
}

#[test]
fn rotation_keeps_old_tokens_valid_and_persists_keys_privately() {
    let dir = tempfile::tempdir().unwrap();
    let s = TokenSigner::load_or_create(dir.path()).unwrap();
    let old = s.issue(TokenKind::Access, AccountId(1), "s", 600, NOW);
    s.rotate_local().unwrap();
    let new = s.issue(TokenKind::Access, AccountId(1), "s", 600, NOW);
    let reloaded = TokenSigner::load_or_create(dir.path()).unwrap();
    assert!(reloaded.verify(&old, TokenKind::Access, NOW).is_ok());
    assert!(reloaded.verify(&new, TokenKind::Access, NOW).is_ok());
    for _ in 0..MAX_PREVIOUS_KEYS {
        s.rotate_local().unwrap();
    }
    assert_eq!(
        s.verify(&old, TokenKind::Access, NOW),
        Err(TokenError::UnknownKey)
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn account_epoch_cuts_off_older_tokens_except_the_kept_session() {
    let s = TokenSigner::ephemeral();
    let now = now_unix();
    let grant = |sid: &str, app: Option<i64>| Grant {
        account: AccountId(7),
        sid: sid.into(),
        scope: Scope::Account,
        app,
    };
    let old = s.issue_grant(TokenKind::Access, &grant("old", None), 600, now);
    let kept = s.issue_grant(TokenKind::Refresh, &grant("kept", None), 600, now);
    let other_account = s.issue(TokenKind::Access, AccountId(8), "x", 600, now);
    s.revoke_credentials(&account_epoch(
        AccountId(7),
        Some("kept"),
        now_ms(),
        now + 600,
    ))
    .unwrap();
    assert_eq!(
        s.verify(&old, TokenKind::Access, now),
        Err(TokenError::Revoked)
    );
    assert!(s.verify(&kept, TokenKind::Refresh, now).is_ok());
    assert!(s.verify(&other_account, TokenKind::Access, now).is_ok());
    // Tokens of a later millisecond are good (the clock must move on first).
    std::thread::sleep(std::time::Duration::from_millis(2));
    let fresh = s.issue_grant(TokenKind::Access, &grant("new", None), 600, now_unix());
    assert!(s.verify(&fresh, TokenKind::Access, now_unix()).is_ok());
}

#[test]
fn deleting_an_app_password_cuts_off_its_tokens_only() {
    let s = TokenSigner::ephemeral();
    let now = now_unix();
    let grant = |app| Grant {
        account: AccountId(7),
        sid: "s".into(),
        scope: Scope::Mail,
        app,
    };
    let from_app = s.issue_grant(TokenKind::Access, &grant(Some(3)), 600, now);
    let from_other_app = s.issue_grant(TokenKind::Access, &grant(Some(4)), 600, now);
    s.revoke_credentials(&app_password_revocation(AccountId(7), 3, now + 600))
        .unwrap();
    assert_eq!(
        s.verify(&from_app, TokenKind::Access, now),
        Err(TokenError::Revoked)
    );
    let c = s.verify(&from_other_app, TokenKind::Access, now).unwrap();
    assert_eq!((c.scope, c.app), (Scope::Mail, Some(4)));
}

#[test]
fn tokens_without_a_scope_are_mail_only() {
    let claims: Claims =
        serde_json::from_str(r#"{"typ":"access","sub":1,"sid":"s","iat":1,"exp":2,"kid":"k"}"#)
            .unwrap();
    assert_eq!(
        (claims.scope, claims.app, claims.issued_at_ms()),
        (Scope::Mail, None, 1000)
    );
}
