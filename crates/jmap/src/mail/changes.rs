//! `/changes` for Mailbox, Email and Thread (RFC 8620 §5.2) from the account change log.

use crate::api::args::Args;
use crate::api::{Ctx, MethodError, MethodErrorKind};
use crate::ids;
use bulwark_store::ChangeSet;
use serde_json::{Value, json};

/// Changes returned when the client gives no maxChanges.
pub const DEFAULT_MAX_CHANGES: usize = 5000;

type Pick = fn(&ChangeSet) -> (Vec<String>, Vec<String>, Vec<String>);

async fn changes(
    ctx: &mut Ctx<'_>,
    args: Args,
    pick: Pick,
    mailbox: bool,
) -> Result<Value, MethodError> {
    let account = args.account(ctx.account)?;
    let since_str = args
        .opt_str("sinceState")?
        .ok_or_else(|| MethodError::invalid_arguments("sinceState is required"))?
        .to_string();
    let max = match args.opt_uint("maxChanges")? {
        Some(0) => {
            return Err(MethodError::invalid_arguments(
                "maxChanges must be greater than 0",
            ));
        }
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
        None => DEFAULT_MAX_CHANGES,
    };
    // §5.2: a state we cannot interpret is cannotCalculateChanges.
    let since = ids::parse_state(&since_str).ok_or_else(|| {
        MethodError::new(
            MethodErrorKind::CannotCalculateChanges,
            format!("unknown state {since_str}"),
        )
    })?;
    let current = ctx.server.store.account_modseq(account).await?;
    if since > current {
        return Err(MethodError::new(
            MethodErrorKind::CannotCalculateChanges,
            "state is from the future",
        ));
    }
    let set = ctx.server.store.changes_since(account, since, max).await?;
    let (created, updated, destroyed) = pick(&set);
    let mut out = json!({
        "accountId": ids::account_id(account),
        "oldState": since_str,
        "newState": ids::state(set.new_modseq.max(since)),
        "hasMoreChanges": set.has_more,
        "created": created,
        "updated": updated,
        "destroyed": destroyed,
    });
    if mailbox {
        // RFC 8621 §2.2: null means any property may have changed.
        out["updatedProperties"] = Value::Null;
    }
    Ok(out)
}

pub async fn email_changes(ctx: &mut Ctx<'_>, args: Args) -> Result<Value, MethodError> {
    changes(
        ctx,
        args,
        |s| {
            let f = |v: &Vec<bulwark_store::EmailId>| v.iter().map(|i| ids::email_id(*i)).collect();
            (
                f(&s.emails.created),
                f(&s.emails.updated),
                f(&s.emails.destroyed),
            )
        },
        false,
    )
    .await
}

pub async fn mailbox_changes(ctx: &mut Ctx<'_>, args: Args) -> Result<Value, MethodError> {
    changes(
        ctx,
        args,
        |s| {
            let f =
                |v: &Vec<bulwark_store::MailboxId>| v.iter().map(|i| ids::mailbox_id(*i)).collect();
            (
                f(&s.mailboxes.created),
                f(&s.mailboxes.updated),
                f(&s.mailboxes.destroyed),
            )
        },
        true,
    )
    .await
}

pub async fn thread_changes(ctx: &mut Ctx<'_>, args: Args) -> Result<Value, MethodError> {
    changes(
        ctx,
        args,
        |s| {
            let f =
                |v: &Vec<bulwark_store::ThreadId>| v.iter().map(|i| ids::thread_id(*i)).collect();
            (
                f(&s.threads.created),
                f(&s.threads.updated),
                f(&s.threads.destroyed),
            )
        },
        false,
    )
    .await
}
