//! Tests of the login path: two-factor enforcement, the memory cache, the outage cache.

use super::*;
use bulwark_store::NewAccount;
use bulwark_store::outage::Outage;
use bulwark_store::sqlite::SqliteStore;
use std::net::Ipv4Addr;

const IP: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const USER: &str = "alice@example.test";
const PASSWORD: &str = "correct horse";

struct Fixture {
    _dir: tempfile::TempDir,
    data: tempfile::TempDir,
    flaky: Arc<Outage>,
    store: Arc<dyn Store>,
    account: Account,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(dir.path()).unwrap();
    sqlite.domain_add("example.test").await.unwrap();
    let account = sqlite
        .account_create(NewAccount {
            address: USER.into(),
            display_name: "Alice".into(),
            password_hash: hash_password(PASSWORD).unwrap(),
        })
        .await
        .unwrap();
    let (store, flaky) = sqlite.with_outage();
    Fixture {
        _dir: dir,
        data: tempfile::tempdir().unwrap(),
        store,
        flaky,
        account,
    }
}

impl Fixture {
    fn auth(&self) -> Authenticator {
        Authenticator::with_offline_cache(
            self.store.clone(),
            ThrottleConfig::default(),
            self.data.path(),
            OfflineCacheConfig::default(),
        )
        .unwrap()
    }

    async fn add_app_password(&self) -> (String, i64) {
        let app = generate_app_password();
        let row = self
            .store
            .app_password_add(self.account.id, "phone", &hash_password(&app).unwrap())
            .await
            .unwrap();
        (app, row.id)
    }

    async fn enable_totp(&self) {
        let now = u64::try_from(now_unix()).unwrap();
        totp::enrol(self.store.as_ref(), self.account.id, "Bulwark", USER)
            .await
            .unwrap();
        let state = totp::load(self.store.as_ref(), self.account.id)
            .await
            .unwrap()
            .unwrap();
        totp::confirm(
            self.store.as_ref(),
            self.account.id,
            &state.code_at(now).unwrap(),
            now,
        )
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn with_totp_enabled_authenticate_refuses_the_account_password_but_accepts_app_passwords() {
    let f = fixture().await;
    let auth = f.auth();
    let (app, _) = f.add_app_password().await;
    assert_eq!(
        auth.authenticate(USER, PASSWORD, IP).await.unwrap().id,
        f.account.id
    );
    f.enable_totp().await;
    // Also after the password sits in the memory cache from the login above. The right
    // account password is told to use an app password (issue 18); a wrong one is not.
    assert_eq!(
        auth.authenticate(USER, PASSWORD, IP).await,
        Err(LoginError::AppPasswordRequired)
    );
    assert_eq!(
        f.auth().authenticate(USER, PASSWORD, IP).await,
        Err(LoginError::AppPasswordRequired)
    );
    assert_eq!(
        f.auth().authenticate(USER, "not the password", IP).await,
        Err(LoginError::InvalidCredentials)
    );
    assert_eq!(
        auth.authenticate(USER, &app, IP).await.unwrap().id,
        f.account.id
    );
}

#[tokio::test]
async fn authenticate_password_says_when_a_second_factor_is_required() {
    let f = fixture().await;
    let auth = f.auth();
    let (app, _) = f.add_app_password().await;
    let v = auth
        .authenticate_password(USER, PASSWORD, IP)
        .await
        .unwrap();
    assert_eq!(
        (v.credential, v.second_factor_required),
        (Credential::AccountPassword, false)
    );
    f.enable_totp().await;
    let v = auth
        .authenticate_password(USER, PASSWORD, IP)
        .await
        .unwrap();
    assert_eq!(
        (v.credential, v.second_factor_required, v.from_offline_cache),
        (Credential::AccountPassword, true, false)
    );
    let v = auth.authenticate_password(USER, &app, IP).await.unwrap();
    assert_eq!(
        (v.credential, v.second_factor_required),
        (Credential::AppPassword, false)
    );
    assert_eq!(
        auth.authenticate_password(USER, "wrong", IP).await,
        Err(LoginError::InvalidCredentials)
    );
}

#[tokio::test]
async fn cached_verification_is_fast_and_dropped_when_the_password_changes() {
    let f = fixture().await;
    let auth = Authenticator::new(f.store.clone(), ThrottleConfig::default());
    let started = Instant::now();
    auth.authenticate(USER, PASSWORD, IP).await.unwrap();
    let first = started.elapsed();
    let started = Instant::now();
    for _ in 0..10 {
        auth.authenticate(USER, PASSWORD, IP).await.unwrap();
    }
    let cached = started.elapsed() / 10;
    assert!(
        cached * 4 < first,
        "a cached login ({cached:?}) should skip argon2 ({first:?})"
    );
    f.store
        .account_set_password(f.account.id, &hash_password("new password").unwrap())
        .await
        .unwrap();
    assert_eq!(
        auth.authenticate(USER, PASSWORD, IP).await,
        Err(LoginError::InvalidCredentials)
    );
    assert!(auth.authenticate(USER, "new password", IP).await.is_ok());
}

#[tokio::test]
async fn revoked_app_password_stops_working_at_once_despite_the_cache() {
    let f = fixture().await;
    let auth = f.auth();
    let (app, id) = f.add_app_password().await;
    auth.authenticate(USER, &app, IP).await.unwrap();
    f.store.app_password_delete(f.account.id, id).await.unwrap();
    assert_eq!(
        auth.authenticate(USER, &app, IP).await,
        Err(LoginError::InvalidCredentials)
    );
}

#[tokio::test]
async fn store_outage_verifies_against_the_encrypted_local_cache_even_after_restart() {
    let f = fixture().await;
    let (app, _) = f.add_app_password().await;
    {
        let auth = f.auth();
        auth.authenticate(USER, PASSWORD, IP).await.unwrap();
        auth.authenticate(USER, &app, IP).await.unwrap();
    }
    f.flaky.set_down(true);
    // A fresh authenticator (a restarted node: empty memory cache) on the same data dir.
    let auth = f.auth();
    let v = auth
        .authenticate_password(USER, PASSWORD, IP)
        .await
        .unwrap();
    assert!(v.from_offline_cache);
    assert_eq!(v.account.id, f.account.id);
    assert_eq!(
        auth.authenticate(USER, &app, IP).await.unwrap().address,
        USER
    );
    assert!(matches!(
        auth.authenticate(USER, "wrong", IP).await,
        Err(LoginError::Unavailable(_))
    ));
    assert!(matches!(
        auth.authenticate("nobody@example.test", PASSWORD, IP).await,
        Err(LoginError::Unavailable(_))
    ));
    f.flaky.set_down(false);
    assert!(auth.authenticate(USER, PASSWORD, IP).await.is_ok());
}

#[tokio::test]
async fn store_outage_without_a_cache_entry_is_unavailable() {
    let f = fixture().await;
    f.flaky.set_down(true);
    assert!(matches!(
        f.auth().authenticate(USER, PASSWORD, IP).await,
        Err(LoginError::Unavailable(_))
    ));
}

#[tokio::test]
async fn store_outage_keeps_two_factor_enforced_for_the_account_password() {
    let f = fixture().await;
    f.enable_totp().await;
    let (app, _) = f.add_app_password().await;
    {
        let auth = f.auth();
        auth.authenticate_password(USER, PASSWORD, IP)
            .await
            .unwrap();
        auth.authenticate(USER, &app, IP).await.unwrap();
    }
    f.flaky.set_down(true);
    let auth = f.auth();
    // Refused (the account password is not even checked: it cannot be accepted here).
    assert!(matches!(
        auth.authenticate(USER, PASSWORD, IP).await,
        Err(LoginError::InvalidCredentials | LoginError::Unavailable(_))
    ));
    assert!(auth.authenticate(USER, &app, IP).await.is_ok());
}

#[tokio::test]
async fn changed_password_removes_the_old_one_from_the_outage_cache() {
    let f = fixture().await;
    let auth = f.auth();
    auth.authenticate(USER, PASSWORD, IP).await.unwrap();
    f.store
        .account_set_password(f.account.id, &hash_password("new password").unwrap())
        .await
        .unwrap();
    auth.authenticate(USER, "new password", IP).await.unwrap();
    f.flaky.set_down(true);
    let auth = f.auth();
    assert!(matches!(
        auth.authenticate(USER, PASSWORD, IP).await,
        Err(LoginError::Unavailable(_))
    ));
    assert!(auth.authenticate(USER, "new password", IP).await.is_ok());
}

/// Issue 13 item 17: with 2FA on, a protocol login with the right account password does the
/// same argon2 work as one with a wrong password (also when the right one sits in the cache).
#[tokio::test]
async fn with_totp_on_a_right_and_a_wrong_account_password_cost_the_same_work() {
    let f = fixture().await;
    let auth = f.auth();
    f.add_app_password().await;
    // The right password is in the memory cache from a web-style sign-in.
    auth.authenticate(USER, PASSWORD, IP).await.unwrap();
    f.enable_totp().await;
    let mut costs = Vec::new();
    for password in [PASSWORD, "wrong", PASSWORD, "wrong"] {
        let before = auth.password_checks();
        let expected = if password == PASSWORD {
            LoginError::AppPasswordRequired
        } else {
            LoginError::InvalidCredentials
        };
        assert_eq!(auth.authenticate(USER, password, IP).await, Err(expected));
        costs.push(auth.password_checks() - before);
    }
    assert!(
        costs.iter().all(|c| *c == costs[0]) && costs[0] >= 1,
        "argon2 runs per attempt differ: {costs:?}"
    );
}

/// Issue 13 item 11: attempts from rotating IPs lock the account for unknown devices, but an
/// app password still works, and so does the account password from an IP that signed in before.
#[tokio::test]
async fn lock_out_from_rotating_ips_spares_app_passwords_and_known_devices() {
    let f = fixture().await;
    let (app, _) = f.add_app_password().await;
    let auth = Authenticator::new(
        f.store.clone(),
        ThrottleConfig {
            account_delay_after: 100,
            account_max_failures: 5,
            ..ThrottleConfig::default()
        },
    );
    let home: IpAddr = "10.1.1.1".parse().unwrap();
    auth.authenticate(USER, PASSWORD, home).await.unwrap();
    for i in 0..5u8 {
        let from = IpAddr::V4(Ipv4Addr::new(10, 2, 0, i));
        let _ = auth.authenticate(USER, "guess", from).await;
    }
    let cafe: IpAddr = "10.3.3.3".parse().unwrap();
    assert!(matches!(
        auth.authenticate(USER, PASSWORD, cafe).await,
        Err(LoginError::Throttled { .. })
    ));
    assert_eq!(
        auth.authenticate(USER, &app, cafe).await.unwrap().id,
        f.account.id
    );
    assert_eq!(
        auth.authenticate(USER, PASSWORD, home).await.unwrap().id,
        f.account.id
    );
    // The web sign-in of a browser holding a device cookie for the account.
    let v = auth
        .sign_in(SignIn {
            username: USER,
            password: PASSWORD,
            code: None,
            remote: cafe,
            app_passwords: false,
            known_device: Some(f.account.id),
        })
        .await
        .unwrap();
    assert_eq!(v.credential, Credential::AccountPassword);
}

#[tokio::test]
async fn sign_in_checks_the_second_factor_inside_the_attempt() {
    let f = fixture().await;
    let auth = f.auth();
    f.enable_totp().await;
    let req = SignIn {
        username: USER,
        password: PASSWORD,
        code: None,
        remote: IP,
        app_passwords: true,
        known_device: None,
    };
    assert_eq!(
        auth.sign_in(req).await,
        Err(SignInError::SecondFactorRequired)
    );
    assert_eq!(
        auth.sign_in(SignIn {
            code: Some("000000"),
            ..req
        })
        .await,
        Err(SignInError::InvalidSecondFactor)
    );
    assert_eq!(
        auth.sign_in(SignIn {
            password: "wrong",
            ..req
        })
        .await,
        Err(SignInError::Login(LoginError::InvalidCredentials))
    );
}

#[tokio::test]
async fn forgotten_account_is_not_accepted_from_the_outage_cache() {
    let f = fixture().await;
    let auth = f.auth();
    auth.authenticate(USER, PASSWORD, IP).await.unwrap();
    // The password changes (web), the caches are told, then the store goes down.
    f.store
        .account_set_password(f.account.id, &hash_password("new password").unwrap())
        .await
        .unwrap();
    auth.forget_account(f.account.id).await;
    f.flaky.set_down(true);
    assert!(matches!(
        auth.authenticate(USER, PASSWORD, IP).await,
        Err(LoginError::Unavailable(_))
    ));
    assert!(matches!(
        f.auth().authenticate(USER, PASSWORD, IP).await,
        Err(LoginError::Unavailable(_))
    ));
}

/// Item 11 across a restart (or another node): the known address is kept in the store.
#[tokio::test]
async fn a_known_device_stays_known_after_a_restart() {
    let f = fixture().await;
    let config = ThrottleConfig {
        account_delay_after: 100,
        account_max_failures: 3,
        ..ThrottleConfig::default()
    };
    let home: IpAddr = "10.1.1.1".parse().unwrap();
    Authenticator::new(f.store.clone(), config.clone())
        .authenticate(USER, PASSWORD, home)
        .await
        .unwrap();
    // A fresh node: its throttle has never seen the owner.
    let auth = Authenticator::new(f.store.clone(), config);
    for i in 0..3u8 {
        let _ = auth
            .authenticate(USER, "guess", IpAddr::V4(Ipv4Addr::new(10, 2, 0, i)))
            .await;
    }
    assert!(matches!(
        auth.authenticate(USER, PASSWORD, "10.3.3.3".parse().unwrap())
            .await,
        Err(LoginError::Throttled { .. })
    ));
    assert_eq!(
        auth.authenticate(USER, PASSWORD, home).await.unwrap().id,
        f.account.id
    );
}
