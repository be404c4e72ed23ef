//! `bulwark import` and `bulwark export`: glue between the command line and
//! `bulwark-migrate`, which does the work.

use crate::cli::{ExportArgs, ImportArgs};
use anyhow::bail;
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
    for line in &s.failures {
        eprintln!("failed: {line}");
    }
    if s.failures.len() < s.failed as usize {
        eprintln!(
            "failed: … and {} more",
            s.failed as usize - s.failures.len()
        );
    }
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
