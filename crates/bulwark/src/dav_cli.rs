//! `bulwark calendar …` and `bulwark contacts …`: CLI glue over bulwark_dav::transfer.

use crate::cli::{CalendarCommand, ContactsCommand};
use anyhow::{Context, anyhow, bail};
use bulwark_dav::core::User;
use bulwark_dav::store::{Kind, StoreRef};
use bulwark_dav::transfer::{self, ImportSummary};
use bulwark_store::Store;
use std::io::Write;
use std::path::{Path, PathBuf};

pub async fn calendar(store: &dyn Store, cmd: CalendarCommand) -> anyhow::Result<()> {
    match cmd {
        CalendarCommand::Import {
            account,
            file,
            calendar,
        } => import(store, &account, &file, Kind::Calendar, &calendar).await,
        CalendarCommand::Export {
            account,
            file,
            calendar,
        } => export(store, &account, file, Kind::Calendar, &calendar).await,
    }
}

pub async fn contacts(store: &dyn Store, cmd: ContactsCommand) -> anyhow::Result<()> {
    match cmd {
        ContactsCommand::Import {
            account,
            file,
            addressbook,
        } => import(store, &account, &file, Kind::Addressbook, &addressbook).await,
        ContactsCommand::Export {
            account,
            file,
            addressbook,
        } => export(store, &account, file, Kind::Addressbook, &addressbook).await,
    }
}

fn noun(kind: Kind) -> (&'static str, &'static str) {
    match kind {
        Kind::Calendar => ("calendar", "objects"),
        Kind::Addressbook => ("address book", "cards"),
    }
}

async fn import(
    store: &dyn Store,
    address: &str,
    file: &Path,
    kind: Kind,
    coll: &str,
) -> anyhow::Result<()> {
    let account = crate::admin::account_for(store, address).await?;
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        anyhow!(
            "{} is not UTF-8 text (byte {})",
            file.display(),
            e.utf8_error().valid_up_to()
        )
    })?;
    let (pieces, unreadable) = match kind {
        Kind::Calendar => transfer::split_calendar(&text),
        Kind::Addressbook => transfer::split_cards(&text),
    };
    if pieces.is_empty() && unreadable.is_empty() {
        bail!(
            "{} holds no {}",
            file.display(),
            match kind {
                Kind::Calendar => "VCALENDAR",
                Kind::Addressbook => "vCard",
            }
        );
    }
    let user = User {
        account: account.id,
        username: account.address.clone(),
    };
    let mut summary: ImportSummary =
        transfer::import(&StoreRef(store), &user, kind, coll, pieces).await?;
    summary.failed.splice(0..0, unreadable);
    for why in &summary.failed {
        eprintln!("{}: {why}", file.display());
    }
    let (what, items) = noun(kind);
    println!(
        "{} into {what} {coll} of {}: {} imported, {} updated, {} unchanged (same UID and data, skipped), {} failed",
        file.display(),
        account.address,
        summary.imported,
        summary.updated,
        summary.unchanged,
        summary.failed.len()
    );
    if !summary.failed.is_empty() {
        bail!("{} {items} were not imported", summary.failed.len());
    }
    Ok(())
}

async fn export(
    store: &dyn Store,
    address: &str,
    file: Option<PathBuf>,
    kind: Kind,
    coll: &str,
) -> anyhow::Result<()> {
    let account = crate::admin::account_for(store, address).await?;
    let (text, count) = transfer::export(&StoreRef(store), account.id, kind, coll).await?;
    let (what, items) = noun(kind);
    let to = match file.filter(|f| f.as_os_str() != "-") {
        Some(path) => {
            std::fs::write(&path, text.as_bytes())
                .with_context(|| format!("cannot write {}", path.display()))?;
            path.display().to_string()
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
            "standard output".to_string()
        }
    };
    // The summary goes to standard error so that standard output is only the file.
    eprintln!(
        "exported {count} {items} of {what} {coll} of {} to {to}",
        account.address
    );
    Ok(())
}
