//! `/changes` for Mailbox, Email and Thread (RFC 8620 §5.2) from the account change log.

use crate::api::args::Args;
use crate::api::{Ctx, MethodError, MethodErrorKind};
use crate::ids;
use bulwark_store::changelog::ChangeKind;
use bulwark_store::{AccountId, ChangeSet, ModSeq};
use serde_json::{Value, json};

/// Changes returned when the client gives no maxChanges.
pub const DEFAULT_MAX_CHANGES: usize = 5000;

/// The Mailbox properties a count-only change may alter (RFC 8621 §2.2).
pub const MAILBOX_COUNT_PROPERTIES: [&str; 4] = [
    "totalEmails",
    "unreadEmails",
    "totalThreads",
    "unreadThreads",
];

type Pick = fn(&ChangeSet) -> (Vec<String>, Vec<String>, Vec<String>);

/// The checked arguments of a `/changes` call (RFC 8620 §5.2), for every data type.
pub struct ChangesArgs {
    pub account: AccountId,
    /// `sinceState` as the client sent it (echoed as `oldState`).
    pub since_str: String,
    pub since: ModSeq,
    pub max: usize,
}

impl ChangesArgs {
    /// Reads `accountId`, `sinceState` and `maxChanges` (positive; default
    /// [`DEFAULT_MAX_CHANGES`]). A state we cannot interpret is cannotCalculateChanges.
    pub fn parse(ctx: &Ctx<'_>, args: &Args) -> Result<ChangesArgs, MethodError> {
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
        let since = ids::parse_state(&since_str).ok_or_else(|| {
            MethodError::new(
                MethodErrorKind::CannotCalculateChanges,
                format!("unknown state {since_str}"),
            )
        })?;
        Ok(ChangesArgs {
            account,
            since_str,
            since,
            max,
        })
    }

    /// Refuses a `sinceState` newer than the type's `current` state.
    pub fn check_not_after(&self, current: ModSeq) -> Result<(), MethodError> {
        if self.since > current {
            return Err(MethodError::new(
                MethodErrorKind::CannotCalculateChanges,
                "state is from the future",
            ));
        }
        Ok(())
    }

    /// The response (`newState` never older than `sinceState`).
    pub fn response(
        &self,
        new_state: ModSeq,
        has_more: bool,
        created: Vec<String>,
        updated: Vec<String>,
        destroyed: Vec<String>,
    ) -> Value {
        json!({
            "accountId": ids::account_id(self.account),
            "oldState": self.since_str,
            "newState": ids::state(new_state.max(self.since)),
            "hasMoreChanges": has_more,
            "created": created,
            "updated": updated,
            "destroyed": destroyed,
        })
    }
}

/// One type's changes from its own entries of the change log, up to its own state (RFC 8620
/// §5.2 with per-type states: `Mailbox/changes` does not page through Email entries, and its
/// `newState` is the Mailbox state `Mailbox/get` reports).
async fn changes(
    ctx: &mut Ctx<'_>,
    args: Args,
    pick: Pick,
    kind: ChangeKind,
) -> Result<Value, MethodError> {
    let a = ChangesArgs::parse(ctx, &args)?;
    let set = ctx
        .server
        .store
        .kind_changes_since(a.account, kind, a.since, a.max)
        .await?;
    let mailbox = kind == ChangeKind::Mailbox;
    let (created, updated, destroyed) = pick(&set);
    let mut out = a.response(set.new_modseq, set.has_more, created, updated, destroyed);
    if mailbox {
        // RFC 8621 §2.2: when only the counts of the updated mailboxes changed, say which
        // properties may differ; null means any property may have changed.
        out["updatedProperties"] =
            if set.mailboxes.updated.is_empty() || set.mailbox_properties_changed {
                Value::Null
            } else {
                json!(MAILBOX_COUNT_PROPERTIES)
            };
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
        ChangeKind::Email,
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
        ChangeKind::Mailbox,
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
        ChangeKind::Thread,
    )
    .await
}
