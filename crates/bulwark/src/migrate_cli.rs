//! `bulwark import`, `bulwark export` and `bulwark migrate`: glue between the command line and
//! `bulwark-migrate`, which does the work.

use crate::cli::{ExportArgs, ImportArgs, MigrateArgs};
use anyhow::{Context, anyhow, bail};
use bulwark_migrate::{ImportOptions, ImportSummary};
use bulwark_store::Store;
use std::io::{IsTerminal, Write};

pub async fn import(
    store: &dyn Store,
    config: &crate::config::Config,
    args: ImportArgs,
) -> anyhow::Result<()> {
    let account = crate::admin::account_for(store, &args.account).await?;
    let opts = ImportOptions {
        folder: args.folder,
        max_message_size: usize::try_from(config.limits.max_message_size).unwrap_or(usize::MAX),
    };
    let tty = std::io::stderr().is_terminal();
    let mut progress = |s: &ImportSummary| {
        if tty {
            eprint!(
                "\r{} imported, {} skipped, {} failed ({:.0} messages/s)   ",
                s.imported,
                s.skipped,
                s.failed,
                s.rate()
            );
            let _ = std::io::stderr().flush();
        }
    };
    let summary =
        bulwark_migrate::import(store, account.id, &args.path, &opts, &mut progress).await;
    if tty {
        eprintln!();
    }
    let s = summary?;
    print_failures(&s.failures, s.failed);
    for f in &s.folders_created {
        println!("created folder {f}");
    }
    println!(
        "imported {} messages into {} from {} {} ({} skipped as already there, {} failed) in {:.1} s: {:.0} messages/s",
        s.imported,
        account.address,
        s.kind.map_or("?", |k| k.describe()),
        args.path.display(),
        s.skipped,
        s.failed,
        s.elapsed.as_secs_f64(),
        s.rate()
    );
    if s.failed > 0 || !s.failures.is_empty() {
        bail!("{} messages could not be imported (see above)", s.failed);
    }
    Ok(())
}

pub async fn export(store: &dyn Store, args: ExportArgs) -> anyhow::Result<()> {
    let account = crate::admin::account_for(store, &args.account).await?;
    let tty = std::io::stderr().is_terminal();
    let mut progress = |s: &bulwark_migrate::ExportSummary| {
        if tty {
            eprint!("\r{} messages written   ", s.messages);
            let _ = std::io::stderr().flush();
        }
    };
    let s = bulwark_migrate::export(
        store,
        account.id,
        &account.address,
        &args.dir,
        args.format,
        &mut progress,
    )
    .await;
    if tty {
        eprintln!();
    }
    let s = s?;
    if s.dropped_keywords > 0 {
        eprintln!(
            "warning: {} custom keywords were left out (a Maildir folder has room for 26)",
            s.dropped_keywords
        );
    }
    println!(
        "exported {} messages in {} folders of {} to {} in {:.1} s",
        s.messages,
        s.folders,
        account.address,
        args.dir.display(),
        s.elapsed.as_secs_f64()
    );
    Ok(())
}

/// `bulwark migrate`: one account, or every row of `--csv`.
pub async fn migrate(
    store: &dyn Store,
    config: &crate::config::Config,
    args: MigrateArgs,
) -> anyhow::Result<()> {
    let tls = bulwark_migrate::imap::client::tls_config(args.tls_ca.as_deref(), args.insecure_tls)?;
    let max_message_size = usize::try_from(config.limits.max_message_size).unwrap_or(usize::MAX);
    let shared_password = || -> anyhow::Result<String> {
        if let Some(file) = &args.password_file {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read --password-file {}", file.display()))?;
            return Ok(text.lines().next().unwrap_or("").to_string());
        }
        if let Ok(p) = std::env::var("BULWARK_MIGRATE_PASSWORD") {
            return Ok(p);
        }
        Err(anyhow!(
            "no source password: give --password-file FILE or set BULWARK_MIGRATE_PASSWORD"
        ))
    };
    let rows: Vec<(String, String, Option<String>)> = match &args.csv {
        Some(file) => read_csv(file)?,
        None => vec![(
            args.account.clone().unwrap_or_default(),
            args.from.clone().unwrap_or_default(),
            None,
        )],
    };
    let single = args.csv.is_none();
    let mut failed_accounts = Vec::new();
    for (address, from, password) in rows {
        let outcome = async {
            let account = crate::admin::account_for(store, &address).await?;
            let source = bulwark_migrate::imap::client::Source::parse(&from)?;
            let password = match password {
                Some(p) => p,
                None => match shared_password() {
                    Ok(p) => p,
                    Err(_) if single && std::io::stdin().is_terminal() => {
                        rpassword::prompt_password(format!("Password of {}: ", source.display()))
                            .context("cannot read the password")?
                    }
                    Err(e) => return Err(e),
                },
            };
            let opts = bulwark_migrate::MigrateOptions {
                source: source.clone(),
                password,
                tls: tls.clone(),
                dry_run: args.dry_run,
                jobs: usize::from(args.jobs),
                max_message_size,
            };
            migrate_one(store, account.id, &account.address, &opts).await
        }
        .await;
        if let Err(e) = outcome {
            eprintln!("{address}: {e:#}");
            failed_accounts.push(address);
        }
    }
    if !failed_accounts.is_empty() {
        bail!(
            "{} account(s) not fully migrated: {} (run the same command again to go on)",
            failed_accounts.len(),
            failed_accounts.join(", ")
        );
    }
    Ok(())
}

async fn migrate_one(
    store: &dyn Store,
    account: bulwark_store::AccountId,
    address: &str,
    opts: &bulwark_migrate::MigrateOptions,
) -> anyhow::Result<()> {
    let tty = std::io::stderr().is_terminal();
    let progress = |s: &bulwark_migrate::MigrateSummary| {
        if tty {
            eprint!(
                "\r{address}: {} of {} folders, {} copied, {} already here, {} flags synced, {} failed ({:.0} messages/s)   ",
                s.folders_done,
                s.folders,
                s.copied,
                s.already,
                s.flags_updated,
                s.failed,
                s.rate()
            );
            let _ = std::io::stderr().flush();
        }
    };
    let result = bulwark_migrate::migrate(store, account, opts, &progress).await;
    if tty {
        eprintln!();
    }
    let s = result?;
    print_failures(&s.failures, s.failed);
    let verb = if opts.dry_run {
        "would create"
    } else {
        "created"
    };
    for f in &s.folders_created {
        println!("{verb} folder {f}");
    }
    if opts.dry_run {
        println!(
            "dry run: {} of {} messages in {} folders of {} would be copied into {address}, {} are already here, {} would get the source's flags; nothing was changed",
            s.copied,
            s.messages_at_source,
            s.folders,
            opts.source.display(),
            s.already,
            s.flags_updated
        );
    } else {
        println!(
            "migrated {} into {address}: {} of {} folders, {} messages copied ({} MB), {} already here, {} flags synced, {} failed, in {:.1} s: {:.0} messages/s",
            opts.source.display(),
            s.folders_done,
            s.folders,
            s.copied,
            s.bytes / 1_000_000,
            s.already,
            s.flags_updated,
            s.failed,
            s.elapsed.as_secs_f64(),
            s.rate()
        );
    }
    if s.failed > 0 {
        bail!(
            "{} messages or folders could not be copied (see above)",
            s.failed
        );
    }
    Ok(())
}

/// `ACCOUNT,FROM[,PASSWORD]` rows; a header line and `#` comments are skipped.
fn read_csv(path: &std::path::Path) -> anyhow::Result<Vec<(String, String, Option<String>)>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read --csv {}", path.display()))?;
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let mut cols = line.splitn(3, ',');
        let account = cols.next().unwrap_or("").trim().to_string();
        let from = cols.next().unwrap_or("").trim().to_string();
        let password = cols.next().map(str::to_string).filter(|p| !p.is_empty());
        if n == 0 && account.eq_ignore_ascii_case("account") {
            continue;
        }
        if account.is_empty() || from.is_empty() {
            bail!(
                "{}:{}: want ACCOUNT,FROM[,PASSWORD], got {line:?}",
                path.display(),
                n + 1
            );
        }
        rows.push((account, from, password));
    }
    if rows.is_empty() {
        bail!("{} lists no account", path.display());
    }
    Ok(rows)
}

/// The failures kept word for word, then how many more there were.
fn print_failures(failures: &[String], failed: u64) {
    for line in failures {
        eprintln!("failed: {line}");
    }
    if failures.len() < failed as usize {
        eprintln!("failed: … and {} more", failed as usize - failures.len());
    }
}
