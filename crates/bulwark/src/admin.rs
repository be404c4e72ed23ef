//! Administration commands: domains, accounts, aliases, app passwords, the outbound queue.
//! They open the same data directory as the server (SQLite is safe across processes).

use crate::cli::{AccountCommand, AliasCommand, AppPasswordCommand, DomainCommand, QueueCommand};
use crate::config::StoreBackend;
use crate::config::values::check_hostname;
use crate::password_input::read_new_password;
use anyhow::{Context, anyhow, bail};
use bulwark_auth::token;
use bulwark_core::quota;
use bulwark_store::{Account, NewAccount, QueueId, Store};
use std::sync::Arc;

/// Opens the configured store: the embedded SQLite store in `data_dir`, or PostgreSQL
/// (`store = "postgres://…"`, schema created or migrated on first use).
///
/// Also makes the data dir private (0700, files 0600: issue 13 item 2) and loads the secret
/// key that seals token keys and TOTP secrets at rest (`BULWARK_SECRET_KEY`, else
/// `data_dir/secret.key`, created for the embedded store; a shared store without a key keeps
/// them in clear, with a warning).
pub async fn open_store(config: &crate::config::Config) -> anyhow::Result<Arc<dyn Store>> {
    crate::private_files::secure_and_log(&config.data_dir)?;
    let embedded = matches!(config.store, StoreBackend::Embedded);
    let source = bulwark_auth::at_rest::load(&config.data_dir, embedded)
        .map_err(|e| anyhow!("cannot load the secret key: {e}"))?;
    if source == bulwark_auth::at_rest::KeySource::None {
        tracing::warn!(
            "no secret key: token signing keys and TOTP secrets are kept in clear in the shared store; set {} (the same on every node) to encrypt them",
            bulwark_auth::at_rest::SECRET_KEY_ENV
        );
    }
    let store = open_backend(config).await?;
    crate::private_files::secure_and_log(&config.data_dir)?;
    Ok(store)
}

async fn open_backend(config: &crate::config::Config) -> anyhow::Result<Arc<dyn Store>> {
    match &config.store {
        StoreBackend::Embedded => {
            let store =
                bulwark_store::sqlite::SqliteStore::open(&config.data_dir).with_context(|| {
                    format!(
                        "cannot open the data directory {}",
                        config.data_dir.display()
                    )
                })?;
            Ok(store)
        }
        StoreBackend::Postgres(url) => {
            let store = bulwark_store_pg::PgStore::connect(url)
                .await
                .with_context(|| {
                    format!(
                        "cannot open the store {}",
                        config.store.describe(&config.data_dir)
                    )
                })?;
            Ok(store)
        }
    }
}

/// `local@domain`, lowercased, or an error naming the bad input.
fn parse_address(input: &str) -> anyhow::Result<(String, String)> {
    let (local, domain) = bulwark_core::split_address(input)
        .ok_or_else(|| anyhow!("\"{input}\" is not an email address (local@domain)"))?;
    if input.contains(['<', '>', ' ']) || local.contains(char::is_whitespace) {
        bail!("\"{input}\" is not an email address (local@domain)");
    }
    Ok((local, domain))
}

async fn require_local_domain(store: &dyn Store, domain: &str) -> anyhow::Result<()> {
    if !store.domain_exists(domain).await? {
        bail!("unknown domain {domain}; add it first with: bulwark domain add {domain}");
    }
    Ok(())
}

pub(crate) async fn account_for(store: &dyn Store, address: &str) -> anyhow::Result<Account> {
    let (local, domain) = parse_address(address)?;
    let address = format!("{local}@{domain}");
    store
        .account_by_address(&address)
        .await?
        .ok_or_else(|| anyhow!("no account {address}"))
}

pub async fn domain(
    store: &dyn Store,
    config: &crate::config::Config,
    cmd: DomainCommand,
) -> anyhow::Result<()> {
    match cmd {
        DomainCommand::Dkim(cmd) => return crate::trust_cli::dkim(store, cmd).await,
        DomainCommand::Dns { domain, check } => {
            return crate::trust_cli::dns(store, config, &domain, check).await;
        }
        DomainCommand::Add { domain } => {
            let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
            check_hostname(&domain).map_err(|why| anyhow!("bad domain name: {why}"))?;
            if store.domain_exists(&domain).await? {
                bail!("domain {domain} already exists");
            }
            store.domain_add(&domain).await?;
            println!("added domain {domain}");
        }
        DomainCommand::List => {
            for d in store.domain_list().await? {
                println!("{d}");
            }
        }
        DomainCommand::Delete { domain } => {
            let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
            require_local_domain(store, &domain).await?;
            let suffix = format!("@{domain}");
            let accounts = store
                .account_list()
                .await?
                .into_iter()
                .filter(|a| a.address.ends_with(&suffix))
                .count();
            let aliases = store
                .alias_list()
                .await?
                .into_iter()
                .filter(|(a, _)| a.ends_with(&suffix))
                .count();
            if accounts + aliases > 0 {
                bail!(
                    "domain {domain} still has {accounts} account(s) and {aliases} alias(es); delete them first"
                );
            }
            store.domain_delete(&domain).await?;
            println!("deleted domain {domain}");
        }
    }
    Ok(())
}

pub async fn account(
    store: &dyn Store,
    config: &crate::config::Config,
    cmd: AccountCommand,
) -> anyhow::Result<()> {
    let policy = crate::servers::quota_policy(config);
    match cmd {
        AccountCommand::Add {
            address,
            password,
            name,
        } => {
            let (local, domain) = parse_address(&address)?;
            let address = format!("{local}@{domain}");
            require_local_domain(store, &domain).await?;
            if store.resolve_address(&address).await?.is_some() {
                bail!("{address} already exists (as an account or an alias)");
            }
            let password = read_new_password(password.password_stdin, &address)?;
            let password_hash = hash(&password).await?;
            let new = NewAccount {
                address: address.clone(),
                display_name: name.unwrap_or_default(),
                password_hash,
            };
            let account = store.account_create(new).await?;
            // Issue 15: every account starts with a calendar and an address book.
            bulwark_dav::create_defaults(store, account.id)
                .await
                .context("account created, but not its default calendar and address book")?;
            println!("created account {address}");
        }
        AccountCommand::List => {
            let aliases = store.alias_list().await?;
            for a in store.account_list().await? {
                let mine: Vec<&str> = aliases
                    .iter()
                    .filter(|(_, id)| *id == a.id)
                    .map(|(s, _)| s.as_str())
                    .collect();
                let mut line = a.address.clone();
                if !a.display_name.is_empty() {
                    line.push_str(&format!("  \"{}\"", a.display_name));
                }
                if !mine.is_empty() {
                    line.push_str(&format!("  aliases: {}", mine.join(", ")));
                }
                line.push_str(&format!("  mail: {}", format_bytes(a.used_bytes)));
                if let Some(limit) = quota::limit(store, a.id, policy).await? {
                    line.push_str(&format!(" of {}", format_bytes(limit)));
                }
                println!("{line}");
            }
        }
        AccountCommand::Passwd { address, password } => {
            let account = account_for(store, &address).await?;
            let password = read_new_password(password.password_stdin, &account.address)?;
            store
                .account_set_password(account.id, &hash(&password).await?)
                .await?;
            // Issue 13 item 13: every token issued before stops working (running nodes pick
            // this up within CREDENTIAL_REFRESH_INTERVAL).
            let now = bulwark_store::now_unix();
            let epoch = token::account_epoch(
                account.id,
                None,
                token::now_ms(),
                now + token::CREDENTIAL_REVOCATION_KEEP_SECS,
            );
            token::publish_credentials(store, &epoch, now)
                .await
                .map_err(|e| {
                    anyhow!("password changed, but its tokens could not be revoked: {e}")
                })?;
            println!(
                "password changed for {}; every session signed in before is signed out",
                account.address
            );
        }
        AccountCommand::Delete { address, yes } => {
            let account = account_for(store, &address).await?;
            let what = deletion_summary(store, &account).await?;
            if !yes {
                confirm_deletion(&account.address, &what)?;
            }
            store.account_delete(account.id).await?;
            println!(
                "deleted account {} with its mail, aliases and app passwords",
                account.address
            );
        }
        AccountCommand::Quota { address, size } => {
            let account = account_for(store, &address).await?;
            if let Some(size) = size {
                let to = match size.trim().to_ascii_lowercase().as_str() {
                    "unlimited" | "none" => quota::Setting::Unlimited,
                    "default" => quota::Setting::Default,
                    text => quota::Setting::Bytes(
                        crate::config::values::parse_size(text)
                            .map_err(|why| anyhow!("{size}: {why} (or `unlimited`, `default`)"))?,
                    ),
                };
                quota::set(store, account.id, to).await?;
            }
            let usage = quota::usage(store, account.id, policy).await?;
            let from = match quota::setting(store, account.id).await? {
                quota::Setting::Default => "the server's default ([quota] default_storage)",
                _ => "its own limit",
            };
            match usage.limit {
                Some(limit) => println!(
                    "{}: {} of {} used ({}%), {from}",
                    account.address,
                    format_bytes(usage.used),
                    format_bytes(limit),
                    usage.used.saturating_mul(100) / limit.max(1)
                ),
                None => println!(
                    "{}: {} used, no limit ({from})",
                    account.address,
                    format_bytes(usage.used)
                ),
            }
        }
        AccountCommand::AppPassword(cmd) => app_password(store, cmd).await?,
    }
    Ok(())
}

/// What `account delete` removes, in one line for the operator.
async fn deletion_summary(store: &dyn Store, account: &Account) -> anyhow::Result<String> {
    let mailboxes = store.mailbox_list(account.id).await?;
    let mut messages = 0u64;
    for m in &mailboxes {
        messages += u64::from(store.mailbox_status(account.id, m.id).await?.messages);
    }
    let aliases: Vec<String> = store
        .alias_list()
        .await?
        .into_iter()
        .filter(|(_, id)| *id == account.id)
        .map(|(a, _)| a)
        .collect();
    let apps = store.app_password_list(account.id).await?.len();
    let mut what = format!(
        "{messages} messages in {} folders ({}), ",
        mailboxes.len(),
        format_bytes(account.used_bytes)
    );
    if !aliases.is_empty() {
        what.push_str(&format!("aliases {}, ", aliases.join(", ")));
    }
    what.push_str(&format!(
        "{apps} app passwords, identities, vacation response, signed-in devices and settings"
    ));
    Ok(what)
}

/// Asks on the terminal to type the address; refuses without a terminal (use --yes).
fn confirm_deletion(address: &str, what: &str) -> anyhow::Result<()> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "account delete removes {address} with {what}; there is no terminal to ask on, so \
             nothing was deleted: pass --yes to delete without asking"
        );
    }
    let mut out = std::io::stderr().lock();
    write!(
        out,
        "This deletes {address} with {what}. It cannot be undone.\nType the address to confirm: "
    )?;
    out.flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    if !line.trim().eq_ignore_ascii_case(address) {
        anyhow::bail!("the address typed does not match; nothing was deleted");
    }
    Ok(())
}

async fn hash(password: &str) -> anyhow::Result<String> {
    let password = password.to_string();
    tokio::task::spawn_blocking(move || bulwark_auth::hash_password(&password))
        .await
        .context("password hashing stopped")?
        .map_err(|e| anyhow!(e))
}

async fn app_password(store: &dyn Store, cmd: AppPasswordCommand) -> anyhow::Result<()> {
    match cmd {
        AppPasswordCommand::Add { address, name } => {
            let account = account_for(store, &address).await?;
            let name = name.trim().to_string();
            if name.is_empty() {
                bail!("the app password needs a --name (the device or program it is for)");
            }
            if store
                .app_password_list(account.id)
                .await?
                .iter()
                .any(|p| p.name == name)
            {
                bail!(
                    "{} already has an app password named \"{name}\"",
                    account.address
                );
            }
            let password = bulwark_auth::generate_app_password();
            store
                .app_password_add(account.id, &name, &hash(&password).await?)
                .await?;
            eprintln!(
                "app password \"{name}\" for {}; it is shown only this once:",
                account.address
            );
            println!("{password}");
        }
        AppPasswordCommand::List { address } => {
            let account = account_for(store, &address).await?;
            for p in store.app_password_list(account.id).await? {
                println!(
                    "{}  {}  created {}",
                    p.id,
                    p.name,
                    format_time(p.created_at)
                );
            }
        }
        AppPasswordCommand::Delete {
            address,
            name_or_id,
        } => {
            let account = account_for(store, &address).await?;
            let list = store.app_password_list(account.id).await?;
            let found = list
                .iter()
                .find(|p| p.name == name_or_id)
                .or_else(|| list.iter().find(|p| Some(p.id) == name_or_id.parse().ok()))
                .ok_or_else(|| {
                    anyhow!("{} has no app password \"{name_or_id}\"", account.address)
                })?;
            store.app_password_delete(account.id, found.id).await?;
            let now = bulwark_store::now_unix();
            let revocation = token::app_password_revocation(
                account.id,
                found.id,
                now + token::CREDENTIAL_REVOCATION_KEEP_SECS,
            );
            token::publish_credentials(store, &revocation, now)
                .await
                .map_err(|e| {
                    anyhow!("app password deleted, but its tokens could not be revoked: {e}")
                })?;
            println!(
                "deleted app password \"{}\" of {}",
                found.name, account.address
            );
        }
    }
    Ok(())
}

pub async fn alias(store: &dyn Store, cmd: AliasCommand) -> anyhow::Result<()> {
    match cmd {
        AliasCommand::Add { alias, target } => {
            let (local, domain) = parse_address(&alias)?;
            let alias = format!("{local}@{domain}");
            require_local_domain(store, &domain).await?;
            if store.resolve_address(&alias).await?.is_some() {
                bail!("{alias} already exists (as an account or an alias)");
            }
            let account = account_for(store, &target).await?;
            store.alias_add(&alias, account.id).await?;
            println!("added alias {alias} -> {}", account.address);
        }
        AliasCommand::List => {
            let accounts = store.account_list().await?;
            for (alias, id) in store.alias_list().await? {
                let target = accounts
                    .iter()
                    .find(|a| a.id == id)
                    .map(|a| a.address.as_str())
                    .unwrap_or("?");
                println!("{alias} -> {target}");
            }
        }
        AliasCommand::Delete { alias } => {
            let (local, domain) = parse_address(&alias)?;
            let alias = format!("{local}@{domain}");
            if !store.alias_list().await?.iter().any(|(a, _)| *a == alias) {
                bail!("no alias {alias}");
            }
            store.alias_delete(&alias).await?;
            println!("deleted alias {alias}");
        }
    }
    Ok(())
}

pub async fn queue(store: &dyn Store, cmd: QueueCommand) -> anyhow::Result<()> {
    match cmd {
        QueueCommand::List => {
            let entries = store.queue_list().await?;
            if entries.is_empty() {
                println!("the queue is empty");
            } else {
                print!("{}", crate::servers::format_queue(&entries));
            }
        }
        QueueCommand::Retry { id } => {
            require_queued(store, id).await?;
            store.queue_retry_now(QueueId(id)).await?;
            println!("message {id} is due for delivery now");
        }
        QueueCommand::Delete { id } => {
            require_queued(store, id).await?;
            store.queue_delete(QueueId(id)).await?;
            println!("deleted message {id} from the queue");
        }
        QueueCommand::Flush => {
            let entries = store.queue_list().await?;
            for e in &entries {
                store.queue_retry_now(e.id).await?;
            }
            println!("{} message(s) due for delivery now", entries.len());
        }
    }
    Ok(())
}

async fn require_queued(store: &dyn Store, id: i64) -> anyhow::Result<()> {
    if store.queue_get(QueueId(id)).await?.is_none() {
        bail!("no queued message with id {id} (see: bulwark queue list)");
    }
    Ok(())
}

/// Unix seconds as `2025-01-31 12:00:00 UTC`.
/// `bulwark auth rotate-key`: a new shared signing key (running nodes pick it up themselves).
pub async fn rotate_key(store: &dyn Store) -> anyhow::Result<()> {
    use bulwark_auth::token;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let kid = token::rotate_shared_keys(
        store,
        now,
        token::KEY_ACTIVATION_DELAY_SECS,
        token::KEY_OVERLAP_SECS,
    )
    .await
    .map_err(|e| anyhow::anyhow!("cannot rotate the signing key: {e}"))?;
    println!(
        "new signing key {kid}: verifying on every node within {} s, signing after {} s; older keys verify for {} more days",
        token::KEY_REFRESH_INTERVAL.as_secs(),
        token::KEY_ACTIVATION_DELAY_SECS,
        token::KEY_OVERLAP_SECS / 86_400
    );
    Ok(())
}

/// `1536` → `1.5 KiB` (binary units, as the config's sizes).
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

pub fn format_time(unix: i64) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| unix.to_string())
}

/// `bulwark acme status`: the certificate every node serves for `[acme] domains`.
pub async fn acme_status(store: &dyn Store, config: &crate::Config) -> anyhow::Result<()> {
    let Some(acme) = &config.acme else {
        println!("ACME is off: set [acme] directory to let Bulwark obtain its certificate");
        return Ok(());
    };
    let (cert, holder) = bulwark_acme::status(store, &acme.domains).await?;
    println!("directory: {}", acme.directory);
    println!("domains:   {}", acme.domains.join(", "));
    println!("challenge: {}", acme.challenge.as_str());
    match cert {
        None => println!("certificate: none yet (the first `serve` orders one)"),
        Some(cert) => {
            let renew =
                cert.not_after - i64::try_from(acme.renew_before.as_secs()).unwrap_or(i64::MAX / 2);
            println!("certificate: {}", cert.domains.join(", "));
            println!("  issuer:     {}", cert.issuer);
            println!("  valid from: {}", format_time(cert.not_before));
            println!("  expires:    {}", format_time(cert.not_after));
            println!(
                "  renewed:    from {}",
                format_time(renew.max(cert.not_before))
            );
        }
    }
    match holder {
        Some(node) => println!("ordering now: node {node}"),
        None => println!("ordering now: no node"),
    }
    Ok(())
}
