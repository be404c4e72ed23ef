//! Mailbox writes: create, rename with every mailbox below, delete with orphan handling,
//! subscription and role — for every backend.

use super::emails::email_left_mailbox;
use crate::changelog::{ChangeKind as Kind, ChangeOp as Op};
use crate::collections::{OP_DELETE, names};
use crate::engine::WriteTx;
use crate::rules::{self, canonical_mailbox_name};
use crate::{AccountId, Mailbox, MailboxId, Result, Role, StoreError};

async fn require_role_free<T: WriteTx>(tx: &mut T, account: AccountId, role: Role) -> Result<()> {
    if tx.role_taken(account, role).await? {
        return Err(StoreError::AlreadyExists(format!(
            "a mailbox with role {}",
            role.as_jmap()
        )));
    }
    Ok(())
}

/// Inserts a mailbox with a fresh UIDVALIDITY (`mailbox_create` and account creation).
pub async fn insert_mailbox<T: WriteTx>(
    tx: &mut T,
    account: AccountId,
    name: &str,
    role: Option<Role>,
    subscribed: bool,
) -> Result<Mailbox> {
    let name = canonical_mailbox_name(name)?;
    if tx.mailbox_by_name(account, &name).await?.is_some() {
        return Err(StoreError::AlreadyExists(format!("mailbox {name}")));
    }
    if let Some(role) = role {
        require_role_free(tx, account, role).await?;
    }
    let uid_validity = tx.next_uid_validity().await?;
    let modseq = tx.next_modseq(account).await?;
    let id = tx
        .insert_mailbox(account, &name, role, uid_validity, subscribed, modseq)
        .await?;
    tx.log(account, modseq, Kind::Mailbox, id.0, Op::Created)
        .await?;
    tx.touch_mailbox(account, id, modseq).await?;
    Ok(rules::created_mailbox(
        id,
        account,
        name,
        role,
        uid_validity,
        subscribed,
        modseq,
    ))
}

pub async fn mailbox_create<T: WriteTx>(
    tx: &mut T,
    account: AccountId,
    name: &str,
    role: Option<Role>,
) -> Result<Mailbox> {
    tx.lock_account(account).await?;
    tx.require_account(account).await?;
    insert_mailbox(tx, account, name, role, false).await
}

/// Renames the mailbox and every mailbox below it (`old/…` → `new/…`), all or nothing.
pub async fn mailbox_rename<T: WriteTx>(
    tx: &mut T,
    account: AccountId,
    id: MailboxId,
    new_name: &str,
) -> Result<()> {
    tx.lock_account(account).await?;
    let mailbox = tx.require_mailbox(account, id).await?;
    let is_inbox = mailbox.role == Some(Role::Inbox);
    let Some(new_name) = rules::check_rename(&mailbox.name, is_inbox, new_name)? else {
        return Ok(());
    };
    let found = tx
        .mailbox_and_children(account, id, &rules::children_prefix(&mailbox.name))
        .await?;
    let renames = rules::renamed_mailboxes(&mailbox.name, &new_name, found)?;
    for (_, name) in &renames {
        if tx.mailbox_by_name(account, name).await?.is_some() {
            return Err(StoreError::AlreadyExists(format!("mailbox {name}")));
        }
    }
    let modseq = tx.next_modseq(account).await?;
    for (mid, name) in renames {
        tx.set_mailbox_name(mid, &name).await?;
        tx.log(account, modseq, Kind::Mailbox, mid.0, Op::Updated)
            .await?;
        tx.touch_mailbox(account, mid, modseq).await?;
    }
    Ok(())
}

/// Deletes the mailbox; emails that are in no other mailbox are destroyed.
pub async fn mailbox_delete<T: WriteTx>(
    tx: &mut T,
    account: AccountId,
    id: MailboxId,
) -> Result<()> {
    tx.lock_account(account).await?;
    let mailbox = tx.require_mailbox(account, id).await?;
    rules::check_delete(&mailbox.name, mailbox.role == Some(Role::Inbox))?;
    for (uid, email) in tx.mailbox_members(id).await? {
        let modseq = tx.next_modseq(account).await?;
        email_left_mailbox(tx, account, id, uid, email, modseq).await?;
    }
    let modseq = tx.next_modseq(account).await?;
    tx.delete_mailbox(id).await?;
    tx.log(account, modseq, Kind::Mailbox, id.0, Op::Destroyed)
        .await?;
    // RFC 5464 §3.2: a mailbox's METADATA entries go with it, and so does its URLAUTH
    // access key (RFC 4467 §3).
    for (collection, item) in [
        (names::IMAP_METADATA, names::imap_metadata_item(id)),
        (names::IMAP_URLAUTH_KEYS, id.0.to_string()),
    ] {
        if tx.item_version(account, collection, &item).await?.is_some() {
            tx.delete_item(account, collection, &item).await?;
            tx.set_item_blobs(account, collection, &item, &[]).await?;
            tx.log_item(account, collection, modseq, &item, OP_DELETE, true)
                .await?;
        }
    }
    tx.touch_mailbox(account, id, modseq).await
}

pub async fn mailbox_set_subscribed<T: WriteTx>(
    tx: &mut T,
    account: AccountId,
    id: MailboxId,
    subscribed: bool,
) -> Result<()> {
    tx.lock_account(account).await?;
    let mailbox = tx.require_mailbox(account, id).await?;
    if mailbox.subscribed == subscribed {
        return Ok(());
    }
    let modseq = tx.next_modseq(account).await?;
    tx.set_mailbox_subscribed(id, subscribed).await?;
    tx.log(account, modseq, Kind::Mailbox, id.0, Op::Updated)
        .await?;
    tx.touch_mailbox(account, id, modseq).await
}

/// Sets the user's sort order (`None`: the role's default).
pub async fn mailbox_set_sort_order<T: WriteTx>(
    tx: &mut T,
    account: AccountId,
    id: MailboxId,
    sort_order: Option<u32>,
) -> Result<()> {
    tx.lock_account(account).await?;
    let mailbox = tx.require_mailbox(account, id).await?;
    if mailbox.sort_order == sort_order {
        return Ok(());
    }
    let modseq = tx.next_modseq(account).await?;
    tx.set_mailbox_sort_order(id, sort_order).await?;
    tx.log(account, modseq, Kind::Mailbox, id.0, Op::Updated)
        .await?;
    tx.touch_mailbox(account, id, modseq).await
}

/// Sets or clears the role; a role belongs to at most one mailbox of the account.
pub async fn mailbox_set_role<T: WriteTx>(
    tx: &mut T,
    account: AccountId,
    id: MailboxId,
    role: Option<Role>,
) -> Result<()> {
    tx.lock_account(account).await?;
    let mailbox = tx.require_mailbox(account, id).await?;
    if mailbox.role == role {
        return Ok(());
    }
    if let Some(role) = role {
        require_role_free(tx, account, role).await?;
    }
    let modseq = tx.next_modseq(account).await?;
    tx.set_mailbox_role(id, role).await?;
    tx.log(account, modseq, Kind::Mailbox, id.0, Op::Updated)
        .await?;
    tx.touch_mailbox(account, id, modseq).await
}
