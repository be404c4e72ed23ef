//! Router tests: real store (SQLite in a temp dir), real authenticator and signer, requests
//! through `oneshot`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::{ExportFormat, archive, export};
use axum::http::Request as HttpRequest;
use bulwark_auth::{ThrottleConfig, generate_app_password, hash_password, token::TokenKind, totp};
use bulwark_store::{NewAccount, now_unix};
use http_body_util::BodyExt;
use serde_json::Value;
use std::path::Path;
use tower::ServiceExt;

const ALICE: &str = "alice@example.test";
const ALICE_PW: &str = "correct horse";
const BOB: &str = "bob@example.test";
const BOB_PW: &str = "battery staple";

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    signer: Arc<TokenSigner>,
    alice: AccountId,
    bob: AccountId,
    app: Router,
}

async fn fixture() -> Fixture {
    fixture_with(64 << 10, QuotaPolicy::default()).await
}

async fn fixture_with(max_upload_size: usize, quota: QuotaPolicy) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = bulwark_store::sqlite::SqliteStore::open(dir.path()).unwrap();
    store.domain_add("example.test").await.unwrap();
    let mut ids = Vec::new();
    for (address, pw) in [(ALICE, ALICE_PW), (BOB, BOB_PW)] {
        let a = store
            .account_create(NewAccount {
                address: address.into(),
                display_name: address.into(),
                password_hash: hash_password(pw).unwrap(),
            })
            .await
            .unwrap();
        ids.push(a.id);
    }
    let auth = Arc::new(Authenticator::new(store.clone(), ThrottleConfig::default()));
    let signer = Arc::new(TokenSigner::ephemeral());
    let cfg = HttpConfig {
        max_upload_size,
        max_message_size: 16 << 10,
        quota,
    };
    let app = router(store.clone(), auth, signer.clone(), cfg);
    Fixture {
        _dir: dir,
        store,
        signer,
        alice: ids[0],
        bob: ids[1],
        app,
    }
}

fn basic(user: &str, pw: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
    )
}

async fn send(
    app: &Router,
    method: &str,
    uri: &str,
    auth: Option<&str>,
    content_type: Option<&str>,
    body: Body,
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut req = HttpRequest::builder().method(method).uri(uri);
    if let Some(a) = auth {
        req = req.header(header::AUTHORIZATION, a);
    }
    if let Some(t) = content_type {
        req = req.header(header::CONTENT_TYPE, t);
    }
    let res = app.clone().oneshot(req.body(body).unwrap()).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.unwrap().to_bytes().to_vec();
    (status, headers, bytes)
}

async fn upload(app: &Router, auth: &str, uri: &str, ct: &str, data: &[u8]) -> (StatusCode, Value) {
    let (status, _, body) = send(
        app,
        "POST",
        uri,
        Some(auth),
        Some(ct),
        Body::from(data.to_vec()),
    )
    .await;
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// An mbox of `n` messages; every third is `\Seen` (`Status: RO`), every fifth flagged.
fn mbox(n: usize, tag: &str) -> Vec<u8> {
    let mut out = String::new();
    for i in 0..n {
        out.push_str(&format!(
            "From sender@example.org Thu Dec  3 08:11:{:02} 2026\n",
            i % 60
        ));
        out.push_str(&format!(
            "From: sender@example.org\nSubject: {tag} {i}\nMessage-ID: <{tag}-{i}@example.org>\n"
        ));
        if i % 3 == 0 {
            out.push_str("Status: RO\n");
        }
        if i % 5 == 0 {
            out.push_str("X-Status: F\n");
        }
        out.push_str(&format!("\nbody {i}\n>From the middle\n\n"));
    }
    out.into_bytes()
}

async fn folder_count(store: &dyn Store, account: AccountId, name: &str) -> usize {
    let mbs = store.mailbox_list(account).await.unwrap();
    let Some(mb) = mbs.iter().find(|m| m.name == name) else {
        return 0;
    };
    store.mailbox_messages(account, mb.id).await.unwrap().len()
}

#[tokio::test]
async fn mbox_upload_imports_with_flags_and_again_imports_nothing() {
    let f = fixture().await;
    let data = mbox(30, "upload");
    let auth = basic(ALICE, ALICE_PW);
    let (status, v) = upload(&f.app, &auth, "/migrate/import", "application/mbox", &data).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["imported"], 30);
    assert_eq!(v["skipped"], 0);
    assert_eq!(v["failed"], 0);
    assert_eq!(v["kind"], "mbox");
    assert_eq!(folder_count(f.store.as_ref(), f.alice, "INBOX").await, 30);
    let mbs = f.store.mailbox_list(f.alice).await.unwrap();
    let inbox = mbs.iter().find(|m| m.name == "INBOX").unwrap();
    let metas = f.store.mailbox_messages(f.alice, inbox.id).await.unwrap();
    let seen = metas
        .iter()
        .filter(|m| m.keywords.iter().any(|k| k == "$seen"))
        .count();
    let flagged = metas
        .iter()
        .filter(|m| m.keywords.iter().any(|k| k == "$flagged"))
        .count();
    assert_eq!((seen, flagged), (10, 6));
    // The same file again (with a parameter on the type, and by Bearer token): nothing new.
    let token = f
        .signer
        .issue(TokenKind::Access, f.alice, "sid", 600, now_unix());
    let (status, v) = upload(
        &f.app,
        &format!("Bearer {token}"),
        "/migrate/import",
        "Application/MBOX; charset=us-ascii",
        &data,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        (v["imported"].as_u64(), v["skipped"].as_u64()),
        (Some(0), Some(30))
    );
    assert_eq!(folder_count(f.store.as_ref(), f.alice, "INBOX").await, 30);
    // Bob's account saw none of it.
    assert_eq!(folder_count(f.store.as_ref(), f.bob, "INBOX").await, 0);
}

#[tokio::test]
async fn eml_upload_goes_into_the_folder_asked_for_which_is_created() {
    let f = fixture().await;
    let auth = basic(ALICE, ALICE_PW);
    let eml = b"From: a@example.org\nSubject: one\nDate: Tue, 1 Dec 2026 10:00:00 +0000\n\nhello\n";
    let (status, v) = upload(
        &f.app,
        &auth,
        "/migrate/import?folder=Old%20mail/2026",
        "message/rfc822",
        eml,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["imported"], 1);
    assert_eq!(v["foldersCreated"], json!(["Old mail", "Old mail/2026"]));
    assert_eq!(
        folder_count(f.store.as_ref(), f.alice, "Old mail/2026").await,
        1
    );
    let mbs = f.store.mailbox_list(f.alice).await.unwrap();
    let mb = mbs.iter().find(|m| m.name == "Old mail/2026").unwrap();
    let meta = &f.store.mailbox_messages(f.alice, mb.id).await.unwrap()[0];
    // No file date: the Date header's; lines made CRLF (RFC 5322 §2.1).
    assert_eq!(meta.received_at, 1_796_119_200);
    let raw = f.store.blob_get(&meta.blob).await.unwrap().unwrap();
    assert!(raw.ends_with(b"\r\n\r\nhello\r\n"));
    // Bad folder names are refused before anything is read.
    let (status, v) = upload(
        &f.app,
        &auth,
        "/migrate/import?folder=a//b",
        "message/rfc822",
        eml,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"], "invalidFolder");
    // An empty upload is an error, a bad message in an mbox fails alone.
    let (status, v) = upload(&f.app, &auth, "/migrate/import", "message/rfc822", b"  \n").await;
    assert_eq!(
        (status, v["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("empty"))
    );
    let (status, v) = upload(
        &f.app,
        &auth,
        "/migrate/import",
        "application/mbox",
        b"not an mbox\n",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (v["imported"].as_u64(), v["failed"].as_u64()),
        (Some(0), Some(1))
    );
    assert!(
        v["failures"][0].as_str().unwrap().contains("not an mbox"),
        "{v}"
    );
}

#[tokio::test]
async fn other_content_types_get_415() {
    let f = fixture().await;
    let auth = basic(ALICE, ALICE_PW);
    let eml = b"Subject: x\r\n\r\nx\r\n";
    for ct in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/octet-stream"),
        None,
    ] {
        let (status, _, body) = send(
            &f.app,
            "POST",
            "/migrate/import",
            Some(&auth),
            ct,
            Body::from(eml.to_vec()),
        )
        .await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct:?}");
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"], "unsupportedMediaType");
        assert!(
            v["description"]
                .as_str()
                .unwrap()
                .contains("application/mbox")
        );
    }
    assert_eq!(folder_count(f.store.as_ref(), f.alice, "INBOX").await, 0);
}

#[tokio::test]
async fn uploads_over_the_limit_get_413_declared_or_streamed() {
    let f = fixture_with(4096, QuotaPolicy::default()).await;
    let auth = basic(ALICE, ALICE_PW);
    let big = mbox(200, "big");
    assert!(big.len() > 4096);
    let (status, v) = upload(&f.app, &auth, "/migrate/import", "application/mbox", &big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert_eq!(v["error"], "tooLarge");
    // No Content-Length: counted while reading, refused at the limit.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        big.chunks(1000).map(|c| Ok(c.to_vec())).collect();
    let body = Body::from_stream(tokio_stream::iter(chunks));
    let (status, _, _) = send(
        &f.app,
        "POST",
        "/migrate/import",
        Some(&auth),
        Some("application/mbox"),
        body,
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(folder_count(f.store.as_ref(), f.alice, "INBOX").await, 0);
    // Under the limit, in chunks: imported.
    let small = mbox(3, "small");
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        small.chunks(7).map(|c| Ok(c.to_vec())).collect();
    let body = Body::from_stream(tokio_stream::iter(chunks));
    let (status, _, _) = send(
        &f.app,
        "POST",
        "/migrate/import",
        Some(&auth),
        Some("application/mbox"),
        body,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(folder_count(f.store.as_ref(), f.alice, "INBOX").await, 3);
}

#[tokio::test]
async fn an_upload_over_the_quota_gets_507_and_stores_nothing() {
    let f = fixture_with(
        64 << 10,
        QuotaPolicy {
            default_storage: Some(1000),
        },
    )
    .await;
    let (status, v) = upload(
        &f.app,
        &basic(ALICE, ALICE_PW),
        "/migrate/import",
        "application/mbox",
        &mbox(20, "q"),
    )
    .await;
    assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE, "{v}");
    assert_eq!(v["error"], "overQuota");
    assert_eq!(folder_count(f.store.as_ref(), f.alice, "INBOX").await, 0);
}

#[tokio::test]
async fn without_good_credentials_both_endpoints_answer_401() {
    let f = fixture().await;
    let data = mbox(2, "x");
    for auth in [
        None,
        Some(basic(ALICE, "wrong")),
        Some(basic(BOB, ALICE_PW)),
        Some("Bearer forged".to_string()),
        Some("Digest x".to_string()),
    ] {
        let (status, headers, _) = send(
            &f.app,
            "POST",
            "/migrate/import",
            auth.as_deref(),
            Some("application/mbox"),
            Body::from(data.clone()),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth:?}");
        assert!(headers.get(header::WWW_AUTHENTICATE).is_some());
        let (status, _, _) = send(
            &f.app,
            "GET",
            "/migrate/export",
            auth.as_deref(),
            None,
            Body::empty(),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth:?}");
    }
    assert_eq!(folder_count(f.store.as_ref(), f.alice, "INBOX").await, 0);
}

#[tokio::test]
async fn with_two_factor_on_only_an_app_password_or_a_token_works() {
    let f = fixture().await;
    totp::enrol(f.store.as_ref(), f.alice, "Bulwark", ALICE)
        .await
        .unwrap();
    let state = totp::load(f.store.as_ref(), f.alice)
        .await
        .unwrap()
        .unwrap();
    let now = u64::try_from(now_unix()).unwrap();
    totp::confirm(f.store.as_ref(), f.alice, &state.code_at(now).unwrap(), now)
        .await
        .unwrap();
    let data = mbox(2, "tfa");
    let (status, _) = upload(
        &f.app,
        &basic(ALICE, ALICE_PW),
        "/migrate/import",
        "application/mbox",
        &data,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = send(
        &f.app,
        "GET",
        "/migrate/export",
        Some(&basic(ALICE, ALICE_PW)),
        None,
        Body::empty(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let app_pw = generate_app_password();
    f.store
        .app_password_add(f.alice, "laptop", &hash_password(&app_pw).unwrap())
        .await
        .unwrap();
    let (status, v) = upload(
        &f.app,
        &basic(ALICE, &app_pw),
        "/migrate/import",
        "application/mbox",
        &data,
    )
    .await;
    assert_eq!((status, v["imported"].as_u64()), (StatusCode::OK, Some(2)));
}

/// Every file below `dir` (relative path → content).
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

use std::collections::BTreeMap;

#[tokio::test]
async fn export_is_the_cli_archive_as_one_tar_of_this_account_only() {
    let f = fixture().await;
    let alice = basic(ALICE, ALICE_PW);
    // Alice: an mbox in INBOX, the same content again in Work (one file, two entries), a
    // custom keyword; Bob: his own mail, which must not appear.
    upload(
        &f.app,
        &alice,
        "/migrate/import",
        "application/mbox",
        &mbox(70, "alice"),
    )
    .await;
    upload(
        &f.app,
        &alice,
        "/migrate/import?folder=Work",
        "application/mbox",
        &mbox(5, "alice"),
    )
    .await;
    let kw =
        b"From x@example.org Thu Dec  3 08:11:52 2026\nSubject: kw\nX-Keywords: Project-X\n\nk\n";
    upload(&f.app, &alice, "/migrate/import", "application/mbox", kw).await;
    upload(
        &f.app,
        &basic(BOB, BOB_PW),
        "/migrate/import",
        "application/mbox",
        &mbox(4, "bob-secret"),
    )
    .await;

    let (status, headers, body) = send(
        &f.app,
        "GET",
        "/migrate/export",
        Some(&alice),
        None,
        Body::empty(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/x-tar");
    let name = archive_tar_name(ALICE, now_unix());
    assert_eq!(
        headers[header::CONTENT_DISPOSITION].to_str().unwrap(),
        format!("attachment; filename=\"{name}.tar\"")
    );
    assert!(
        !body.windows(10).any(|w| w == b"bob-secret"),
        "Bob's mail is in Alice's export"
    );

    let untarred = tempfile::tempdir().unwrap();
    tar::Archive::new(&body[..])
        .unpack(untarred.path())
        .unwrap();
    let from_tar = untarred.path().join(&name);
    assert!(archive::is_archive(&from_tar));
    let cli = tempfile::tempdir().unwrap();
    let cli_dir = cli.path().join("cli");
    export(
        f.store.as_ref(),
        f.alice,
        ALICE,
        &cli_dir,
        ExportFormat::Archive,
        &mut |_| {},
    )
    .await
    .unwrap();
    let (mut a, mut b) = (tree(&from_tar), tree(&cli_dir));
    let (ma, mb) = (
        a.remove("manifest.json").unwrap(),
        b.remove("manifest.json").unwrap(),
    );
    // Work holds copies of five INBOX messages: one file each, two manifest entries.
    assert_eq!(a.len(), 71);
    assert_eq!(
        a, b,
        "the messages differ from `bulwark export --format archive`"
    );
    let mut ma: archive::Manifest = serde_json::from_slice(&ma).unwrap();
    let mb: archive::Manifest = serde_json::from_slice(&mb).unwrap();
    ma.exported_at = mb.exported_at;
    assert_eq!(ma, mb);
    assert_eq!(ma.messages.len(), 76);
    assert!(
        ma.messages
            .iter()
            .any(|m| m.keywords.contains(&"Project-X".to_string()))
    );

    // And it reads back into Bob's account exactly (what `bulwark import DIR` does).
    let summary = crate::import(
        f.store.as_ref(),
        f.bob,
        &from_tar,
        &crate::ImportOptions {
            folder: None,
            max_message_size: 1 << 20,
        },
        &mut |_| {},
    )
    .await
    .unwrap();
    assert_eq!((summary.imported, summary.failed), (76, 0));
    assert_eq!(folder_count(f.store.as_ref(), f.bob, "Work").await, 5);
}

#[tokio::test]
async fn a_big_export_streams_in_many_chunks() {
    let f = fixture_with(4 << 20, QuotaPolicy::default()).await;
    // ~3 MB of mail: more than one chunk of the tar stream.
    let mut data = Vec::new();
    for i in 0..300 {
        data.extend_from_slice(
            format!("From s@example.org Thu Dec  3 08:11:52 2026\nSubject: {i}\n\n").as_bytes(),
        );
        data.extend_from_slice(&vec![b'x'; 10_000]);
        data.extend_from_slice(b"\n\n");
    }
    let (status, v) = upload(
        &f.app,
        &basic(ALICE, ALICE_PW),
        "/migrate/import",
        "application/mbox",
        &data,
    )
    .await;
    assert_eq!(
        (status, v["imported"].as_u64()),
        (StatusCode::OK, Some(300)),
        "{v}"
    );
    let req = HttpRequest::builder()
        .uri("/migrate/export")
        .header(header::AUTHORIZATION, basic(ALICE, ALICE_PW))
        .body(Body::empty())
        .unwrap();
    let res = f.app.clone().oneshot(req).await.unwrap();
    let mut body = res.into_body();
    let (mut frames, mut total) = (0, 0);
    while let Some(frame) = body.frame().await {
        let frame = frame.unwrap();
        if let Some(d) = frame.data_ref() {
            frames += 1;
            total += d.len();
            assert!(d.len() < (3 << 20), "a chunk of {} bytes", d.len());
        }
    }
    assert!(frames >= 3, "{frames} chunks");
    assert!(total > 3_000_000);
}
