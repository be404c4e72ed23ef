//! `bulwark domain dkim …` and `bulwark domain dns …`: glue to `bulwark-trust`.

use crate::cli::DkimCommand;
use crate::config::{Config, ListenerName};
use anyhow::{anyhow, bail};
use bulwark_store::{Store, now_unix};
use bulwark_trust::keys::{self, Algorithm, DkimKey};
use bulwark_trust::records::{self, DomainSetup, Finding};

fn normalize(domain: &str) -> String {
    domain.trim().trim_end_matches('.').to_ascii_lowercase()
}

async fn require_local(store: &dyn Store, domain: &str) -> anyhow::Result<()> {
    if !store.domain_exists(domain).await? {
        bail!("unknown domain {domain}; add it first with: bulwark domain add {domain}");
    }
    Ok(())
}

fn print_record(domain: &str, key: &DkimKey) {
    println!("publish this TXT record:");
    println!(
        "{}._domainkey.{domain}. {} IN TXT {}",
        key.selector,
        records::TTL,
        records::txt_value(&key.dns_txt())
    );
}

pub async fn dkim(store: &dyn Store, cmd: DkimCommand) -> anyhow::Result<()> {
    match cmd {
        DkimCommand::Generate {
            domain,
            algorithm,
            selector,
        } => {
            let domain = normalize(&domain);
            require_local(store, &domain).await?;
            let algorithm = Algorithm::parse(&algorithm)?;
            let key = keys::generate_for(store, &domain, algorithm, selector.as_deref()).await?;
            println!(
                "generated DKIM key {} ({}) for {domain}; mail from {domain} is signed with it",
                key.selector,
                key.algorithm.name()
            );
            print_record(&domain, &key);
        }
        DkimCommand::Rotate {
            domain,
            algorithm,
            selector,
        } => {
            let domain = normalize(&domain);
            require_local(store, &domain).await?;
            let algorithm = algorithm.as_deref().map(Algorithm::parse).transpose()?;
            let key = keys::rotate(store, &domain, algorithm, selector.as_deref()).await?;
            println!(
                "new DKIM key {} ({}) signs for {domain} from now on; the previous key stays published for {} days",
                key.selector,
                key.algorithm.name(),
                keys::ROTATION_GRACE_SECS / 86_400
            );
            print_record(&domain, &key);
        }
        DkimCommand::List { domain } => {
            let domain = normalize(&domain);
            require_local(store, &domain).await?;
            let set = keys::load(store, &domain).await?;
            if set.keys.is_empty() {
                println!(
                    "{domain} has no DKIM key; create one with: bulwark domain dkim generate {domain}"
                );
                return Ok(());
            }
            let now = now_unix();
            let active = set.active().map(|k| k.selector.clone());
            println!(
                "{:<20} {:<9} {:<20} {:<10} DNS TXT record",
                "SELECTOR", "ALGORITHM", "CREATED", "STATE"
            );
            for k in &set.keys {
                let state = if active.as_deref() == Some(k.selector.as_str()) {
                    "active".to_string()
                } else if k.published(now) {
                    "retiring".to_string()
                } else {
                    "retired".to_string()
                };
                println!(
                    "{:<20} {:<9} {:<20} {:<10} {}._domainkey.{domain}. IN TXT {}",
                    k.selector,
                    k.algorithm.name(),
                    crate::admin::format_time(k.created),
                    state,
                    k.selector,
                    records::txt_value(&k.dns_txt())
                );
            }
        }
    }
    Ok(())
}

/// The ports clients connect to, from the listeners (`None`: not offered).
fn setup(config: &Config, domain: &str) -> DomainSetup {
    let port = |name| {
        config
            .listen
            .get(name)
            .map(|a| a.port())
            .filter(|p| *p != 0)
    };
    DomainSetup {
        domain: domain.to_string(),
        hostname: config.hostname.clone(),
        submission: port(ListenerName::Submission),
        submissions: port(ListenerName::Submissions),
        imap: port(ListenerName::Imap),
        imaps: port(ListenerName::Imaps),
        pop3s: None,
    }
}

pub async fn dns(
    store: &dyn Store,
    config: &Config,
    domain: &str,
    check: bool,
) -> anyhow::Result<()> {
    let domain = normalize(domain);
    require_local(store, &domain).await?;
    let set = keys::load(store, &domain).await?;
    let now = now_unix();
    let wanted = records::records(&setup(config, &domain), &set, now);
    if !check {
        println!("; DNS records for {domain} (served by {})", config.hostname);
        if set.active().is_none() {
            println!(
                "; no DKIM key yet: bulwark domain dkim generate {domain} (then run this again)"
            );
        }
        for r in &wanted {
            println!("; {}", r.purpose);
            println!("{}", r.zone_line());
        }
        return Ok(());
    }
    let resolver = bulwark_dns::Resolver::new(&crate::servers::dns_config(config))
        .map_err(|e| anyhow!("cannot set up DNS: {e}"))?;
    println!("checking {domain} against {}", resolver.describe());
    let mut problems = 0;
    for r in &wanted {
        let finding = records::check(&resolver, r).await;
        let (word, detail) = match &finding {
            Finding::Ok => ("ok", String::new()),
            Finding::Differs(d) => ("ok", format!(" (differs from the suggestion: {d})")),
            Finding::Missing => ("MISSING", String::new()),
            Finding::Wrong(d) => ("WRONG", format!(" ({d})")),
            Finding::Unknown(d) => ("UNKNOWN", format!(" (DNS: {d})")),
        };
        if finding.is_problem() {
            problems += 1;
        }
        println!("{word:<8} {}{detail}", r.zone_line());
    }
    if set.active().is_none() {
        println!("MISSING  a DKIM key: bulwark domain dkim generate {domain}");
        problems += 1;
    }
    if problems > 0 {
        bail!("{problems} record(s) of {domain} missing or wrong");
    }
    println!("all records of {domain} are in place");
    Ok(())
}
