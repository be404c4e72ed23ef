//! [`import_bytes`]: the same import over a source held in memory — an upload from the web
//! client (`POST /migrate/import`, [`crate::http`]), so user mail is never written as files
//! into `data_dir` on its way in.

use super::{Importer, Item, Msg, SourceKind};
use crate::mbox::{MboxItem, MboxReader};
use crate::{ImportOptions, ImportSummary};
use anyhow::bail;
use bulwark_core::keyword_case::KeywordCase;
use bulwark_store::{AccountId, Store};

/// How an uploaded source is named in failure lines (there is no path).
const ORIGIN: &str = "upload";

/// Imports `data`, an mbox ([`SourceKind::Mbox`]) or one message ([`SourceKind::Eml`]),
/// into the account exactly as [`crate::import`] imports such a file: into INBOX or
/// `opts.folder`, flags from the mbox status headers, exact duplicates already in the folder
/// skipped (so uploading the same file again imports nothing). `progress` is called after
/// every batch stored. Errors only when nothing can go on (the store is down).
pub async fn import_bytes(
    store: &dyn Store,
    account: AccountId,
    kind: SourceKind,
    data: &[u8],
    opts: &ImportOptions,
    progress: &mut (dyn FnMut(&ImportSummary) + Send),
) -> anyhow::Result<ImportSummary> {
    if !matches!(kind, SourceKind::Mbox | SourceKind::Eml) {
        bail!(
            "an upload is an mbox or one .eml message, not a {}",
            kind.describe()
        );
    }
    let mut imp = Importer::start(store, account, opts, kind).await?;
    let max = opts.max_message_size;
    let items: Box<dyn Iterator<Item = Item> + Send + '_> = match kind {
        SourceKind::Mbox => Box::new(MboxReader::new(data, max).map(mbox_item)),
        _ => Box::new(std::iter::once(eml_item(data, max))),
    };
    let mut last_progress = imp.summary.imported;
    for item in items {
        imp.take(item, max).await?;
        if imp.summary.imported != last_progress {
            last_progress = imp.summary.imported;
            imp.summary.elapsed = imp.started.elapsed();
            progress(&imp.summary);
        }
    }
    imp.flush().await?;
    if !imp.cases.is_empty() {
        let written: Vec<&str> = imp.cases.values().map(String::as_str).collect();
        let mut case = KeywordCase::load(store, account).await?;
        case.remember(store, account, &written).await?;
    }
    imp.summary.elapsed = imp.started.elapsed();
    progress(&imp.summary);
    Ok(imp.summary)
}

fn mbox_item(item: MboxItem) -> Item {
    match item {
        MboxItem::Message {
            index,
            line,
            raw,
            keywords,
            received_at,
        } => Item::Msg(Msg {
            folders: vec![String::new()],
            raw,
            keywords,
            received_at,
            origin: format!("{ORIGIN}: message {index} (line {line})"),
        }),
        MboxItem::Failed { index, line, why } => Item::Failed {
            origin: format!("{ORIGIN}: message {index} (line {line})"),
            why,
            count: 1,
        },
    }
}

/// One RFC 5322 message. Without a file there is no modification time: the internal date
/// is the Date header's (else now), as for an mbox `From ` line without a date.
fn eml_item(data: &[u8], max: usize) -> Item {
    let failed = |why: String| Item::Failed {
        origin: ORIGIN.into(),
        why,
        count: 1,
    };
    if data.iter().all(u8::is_ascii_whitespace) {
        return failed("the upload is empty".into());
    }
    if data.len() > max {
        return failed(format!(
            "{} bytes, over the size limit of {max} bytes",
            data.len()
        ));
    }
    Item::Msg(Msg {
        folders: vec![String::new()],
        raw: crate::crlf(data.to_vec()),
        keywords: Vec::new(),
        received_at: None,
        origin: ORIGIN.into(),
    })
}
