//! The checks and the signer against a DNS server on loopback.

use crate::checks::{Action, Checker, ChecksConfig};
use crate::keys::{Algorithm, generate};
use crate::sign::sign_with;
use crate::testdns::{self, Rr};
use bulwark_dns::{DnsConfig, Resolver};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn message(from: &str) -> Vec<u8> {
    format!(
        "From: Someone <{from}>\r\nTo: bob@b.test\r\nSubject: hello\r\n\
Date: Wed, 02 Dec 2026 05:00:00 +0000\r\nMessage-ID: <1@a.test>\r\n\r\nHello Bob.\r\n"
    )
    .into_bytes()
}

async fn checker(dns: std::net::SocketAddr, cfg: ChecksConfig) -> Checker {
    let resolver = Resolver::new(&DnsConfig {
        servers: vec![dns],
        timeout: Duration::from_millis(500),
    })
    .expect("resolver");
    Checker::new(cfg, &resolver)
}

fn cfg() -> ChecksConfig {
    ChecksConfig {
        hostname: "mx.b.test".into(),
        ..ChecksConfig::default()
    }
}

#[tokio::test]
async fn signed_aligned_mail_passes_and_forgeries_follow_the_policy() {
    let ed = generate(Algorithm::Ed25519, "s1", 0).expect("ed25519");
    let rsa = generate(Algorithm::Rsa, "r1", 0).expect("rsa");
    let dns = testdns::start(vec![
        ("a.test", Rr::Txt("v=spf1 ip4:127.0.0.1 -all".into())),
        ("a.test", Rr::Mx(10, "mx.a.test".into())),
        ("mx.a.test", Rr::A(Ipv4Addr::LOCALHOST)),
        ("mx.a.test", Rr::Txt("v=spf1 a -all".into())),
        ("1.0.0.127.in-addr.arpa", Rr::Ptr("mx.a.test".into())),
        ("s1._domainkey.a.test", Rr::Txt(ed.dns_txt())),
        ("r1._domainkey.a.test", Rr::Txt(rsa.dns_txt())),
        ("_dmarc.a.test", Rr::Txt("v=DMARC1; p=reject".into())),
        ("q.test", Rr::Txt("v=spf1 -all".into())),
        ("_dmarc.q.test", Rr::Txt("v=DMARC1; p=quarantine".into())),
    ])
    .await;
    let c = checker(dns, cfg()).await;

    // Signed (ed25519 and RSA) and sent from an address SPF allows.
    for key in [&ed, &rsa] {
        let raw = message("alice@a.test");
        let sig = sign_with(key, &raw, "a.test").expect("sign");
        let signed = [sig.as_bytes(), &raw].concat();
        let v = c.check(&signed, LOCAL, "mx.a.test", "alice@a.test").await;
        assert_eq!(v.action, Action::Deliver, "{}", v.header);
        assert!(
            v.header.starts_with("Authentication-Results: mx.b.test;"),
            "{}",
            v.header
        );
        for want in [
            "dkim=pass",
            "spf=pass",
            "dmarc=pass",
            "iprev=pass",
            "header.d=a.test",
        ] {
            assert!(v.header.contains(want), "{want} in {}", v.header);
        }
    }

    // A forged From of the p=reject domain from elsewhere: refused with 550 5.7.1.
    let v = c
        .check(
            &message("ceo@a.test"),
            "192.0.2.7".parse().expect("ip"),
            "evil.example",
            "x@evil.example",
        )
        .await;
    assert!(
        matches!(&v.action, Action::Reject(r) if r.starts_with("550 5.7.1 ")),
        "{v:?}"
    );
    assert!(v.header.contains("dmarc=fail"), "{}", v.header);

    // p=quarantine: Junk.
    let v = c
        .check(&message("news@q.test"), LOCAL, "mx.a.test", "news@q.test")
        .await;
    assert!(matches!(v.action, Action::Junk(_)), "{v:?}");

    // With p=reject honoured as quarantine only.
    let soft = checker(
        dns,
        ChecksConfig {
            dmarc_reject: false,
            ..cfg()
        },
    )
    .await;
    let v = soft
        .check(
            &message("ceo@a.test"),
            "192.0.2.7".parse().expect("ip"),
            "evil.example",
            "x@evil.example",
        )
        .await;
    assert!(matches!(v.action, Action::Junk(_)), "{v:?}");

    // A signature broken in transit does not pass (mail-auth: neutral, body hash).
    let raw = message("alice@a.test");
    let sig = sign_with(&ed, &raw, "a.test").expect("sign");
    let tampered = [sig.as_bytes(), &raw[..raw.len() - 4], b"!!\r\n"].concat();
    let v = c.check(&tampered, LOCAL, "mx.a.test", "alice@a.test").await;
    assert!(!v.header.contains("dkim=pass"), "{}", v.header);
    // SPF still passes and aligns: DMARC passes.
    assert_eq!(v.action, Action::Deliver);
}

#[tokio::test]
async fn a_dns_server_that_never_answers_gives_temperror_within_bounds() {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let dns = silent.local_addr().expect("addr");
    let c = checker(dns, cfg()).await;
    let started = Instant::now();
    let v = c
        .check(&message("alice@a.test"), LOCAL, "mx.a.test", "alice@a.test")
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(v.action, Action::Deliver, "accepted by default");
    assert!(v.header.contains("spf=temperror"), "{}", v.header);
    assert!(v.header.contains("dmarc=temperror"), "{}", v.header);

    let strict = checker(
        dns,
        ChecksConfig {
            tempfail_on_dns_error: true,
            ..cfg()
        },
    )
    .await;
    let v = strict
        .check(&message("alice@a.test"), LOCAL, "mx.a.test", "alice@a.test")
        .await;
    assert!(
        matches!(&v.action, Action::Tempfail(r) if r.starts_with("451 4.7.0 ")),
        "{v:?}"
    );
}

#[tokio::test]
async fn hostile_input_gets_an_answer() {
    let dns = testdns::start(vec![]).await;
    let c = checker(dns, cfg()).await;
    // A DKIM-Signature with a 100 KB header list, garbage, no header at all.
    let huge = format!(
        "DKIM-Signature: v=1; a=rsa-sha256; d=a.test; s=x; h={}; bh=AAAA; b=AAAA\r\n",
        vec!["from"; 20_000].join(":")
    );
    for raw in [
        [huge.as_bytes(), &message("a@a.test")].concat(),
        b"\x00\xff garbage".to_vec(),
        Vec::new(),
    ] {
        let v = c.check(&raw, LOCAL, "", "").await;
        assert!(
            v.header.starts_with("Authentication-Results: mx.b.test"),
            "{}",
            v.header
        );
        assert_ne!(v.action, Action::Reject(String::new()));
    }
}

/// The hook in a real pipeline: signs what an authenticated client sends (the local and the
/// relayed copy alike), checks what the MX receives.
#[tokio::test]
async fn the_pipeline_stage_signs_submissions_and_checks_inbound_mail() {
    use bulwark_core::{Message, Origin, Pipeline};
    use bulwark_store::{NewAccount, Store};
    use std::sync::Arc;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = bulwark_store::sqlite::SqliteStore::open(dir.path()).expect("open");
    store.domain_add("a.test").await.expect("domain");
    let bob = store
        .account_create(NewAccount {
            address: "bob@a.test".into(),
            display_name: "Bob".into(),
            password_hash: "x".into(),
        })
        .await
        .expect("bob")
        .id;
    let key = crate::keys::generate_for(store.as_ref(), "a.test", Algorithm::Ed25519, Some("s1"))
        .await
        .expect("key");
    let dns = testdns::start(vec![
        ("s1._domainkey.a.test", Rr::Txt(key.dns_txt())),
        ("_dmarc.a.test", Rr::Txt("v=DMARC1; p=reject".into())),
    ])
    .await;
    let resolver = Resolver::new(&DnsConfig {
        servers: vec![dns],
        timeout: Duration::from_millis(500),
    })
    .expect("resolver");
    let store: Arc<dyn Store> = store;
    let p = Pipeline::new(store.clone(), Arc::new(tokio::sync::Notify::new()), 3600);
    let checker = Checker::new(cfg(), &resolver);
    p.add_hook(Arc::new(crate::TrustHook::new(
        store.clone(),
        Some(checker),
    )));

    let mut m = Message::new(
        "alice@a.test",
        vec!["bob@a.test".into(), "carol@remote.test".into()],
        Arc::new(message("alice@a.test")),
    );
    m.origin = Some(Origin {
        ip: LOCAL,
        helo: "client.test".into(),
        authenticated: Some("alice@a.test".into()),
    });
    let d = p.deliver(m).await.expect("deliver");
    assert_eq!(d.appended.len(), 1);
    let emails = store.email_list(bob).await.expect("list");
    let local = store
        .blob_get(&emails[0].blob)
        .await
        .expect("blob")
        .expect("raw");
    let q = store.queue_list().await.expect("queue");
    let relayed = store
        .blob_get(&q[0].blob)
        .await
        .expect("blob")
        .expect("raw");
    for copy in [&local, &relayed] {
        assert!(
            copy.starts_with(b"DKIM-Signature: "),
            "{}",
            String::from_utf8_lossy(copy)
        );
        assert!(!String::from_utf8_lossy(copy).contains("Authentication-Results"));
    }
    // The signature verifies on the way in (the same bytes the MX would receive).
    let v = Checker::new(cfg(), &resolver)
        .check(&relayed, LOCAL, "mx.a.test", "alice@a.test")
        .await;
    assert!(v.header.contains("dkim=pass"), "{}", v.header);

    // The same From arriving unsigned on the MX: DMARC p=reject refuses it.
    let mut m = Message::new(
        "x@evil.example",
        vec!["bob@a.test".into()],
        Arc::new(message("alice@a.test")),
    );
    m.origin = Some(Origin {
        ip: "192.0.2.9".parse().expect("ip"),
        helo: "evil.example".into(),
        authenticated: None,
    });
    let d = p.deliver(m).await.expect("deliver");
    assert!(d.appended.is_empty());
    let (_, why) = d.refused().next().expect("refused");
    assert!(why.reason().starts_with("550 5.7.1 "), "{why:?}");
}

/// RFC 8617: a forwarder's ARC seal is verified by the next receiver (`arc=pass`), and a
/// message changed after sealing fails (`arc=fail`), and a seal added to it says `cv=fail`.
#[tokio::test]
async fn forwarded_mail_carries_an_arc_seal_the_next_receiver_verifies() {
    let a_key = generate(Algorithm::Ed25519, "s1", 0).expect("ed25519");
    let fwd_key = generate(Algorithm::Rsa, "arc1", 0).expect("rsa");
    let dns = testdns::start(vec![
        ("a.test", Rr::Txt("v=spf1 ip4:127.0.0.1 -all".into())),
        ("s1._domainkey.a.test", Rr::Txt(a_key.dns_txt())),
        ("_dmarc.a.test", Rr::Txt("v=DMARC1; p=none".into())),
        ("arc1._domainkey.fwd.test", Rr::Txt(fwd_key.dns_txt())),
        ("fwd.test", Rr::Txt("v=spf1 ip4:192.0.2.50 -all".into())),
    ])
    .await;
    // The forwarder (fwd.test) receives alice's signed mail from a.test's server.
    let forwarder = checker(
        dns,
        ChecksConfig {
            hostname: "mx.fwd.test".into(),
            ..ChecksConfig::default()
        },
    )
    .await;
    let raw = message("alice@a.test");
    let sig = sign_with(&a_key, &raw, "a.test").expect("sign");
    let received = [sig.as_bytes(), &raw].concat();
    let mut forwarded = b"X-Bulwark-Redirected-From: bob@fwd.test\r\n".to_vec();
    forwarded.extend_from_slice(&received);
    let set = forwarder
        .seal_forward(
            &forwarded,
            LOCAL,
            "mx.a.test",
            "alice@a.test",
            &fwd_key,
            "fwd.test",
        )
        .await
        .expect("sealed");
    for field in [
        "ARC-Seal: i=1;",
        "ARC-Message-Signature: i=1;",
        "ARC-Authentication-Results: i=1;",
    ] {
        assert!(set.contains(field), "{field} in {set}");
    }
    assert!(set.contains("cv=none"), "{set}");
    let sealed = [set.as_bytes(), &forwarded].concat();

    // The next receiver gets it from the forwarder's address: SPF of a.test fails there,
    // the ARC chain passes.
    let next = checker(dns, cfg()).await;
    let v = next
        .check(
            &sealed,
            "192.0.2.50".parse().expect("ip"),
            "mx.fwd.test",
            "alice@a.test",
        )
        .await;
    assert!(v.header.contains("arc=pass"), "{}", v.header);
    assert!(v.summary.contains("arc=pass"), "{}", v.summary);

    // Changed after sealing: the chain fails; a seal added now says so (RFC 8617 §5.1.1
    // `cv=fail`), which ends the chain for every later receiver.
    let tampered = [&sealed[..sealed.len() - 4], b"!!\r\n"].concat();
    let v = next
        .check(
            &tampered,
            "192.0.2.50".parse().expect("ip"),
            "mx.fwd.test",
            "alice@a.test",
        )
        .await;
    assert!(v.header.contains("arc=fail"), "{}", v.header);
    let again = next
        .seal_forward(
            &tampered,
            "192.0.2.50".parse().expect("ip"),
            "mx.fwd.test",
            "alice@a.test",
            &fwd_key,
            "fwd.test",
        )
        .await
        .expect("sealed with cv=fail");
    assert!(
        again.contains("i=2;") && again.contains("cv=fail"),
        "{again}"
    );
    // Mail without a chain says nothing about ARC.
    let v = next
        .check(&received, LOCAL, "mx.a.test", "alice@a.test")
        .await;
    assert!(!v.header.contains("\tarc="), "{}", v.header);
}
