//! QUOTA (RFC 9208) with the `STORAGE` resource: one quota root, `""`, over the whole
//! account (every mailbox counts towards it), with the figures and the limit of
//! [`bulwark_core::quota`] — the same rule the delivery pipeline and JMAP apply.
//!
//! SETQUOTA is refused: limits are set by the administrator (`bulwark account quota`), so
//! `QUOTASET` is not advertised (RFC 9208 §3.2). An account without a limit has no quota
//! root: GETQUOTAROOT lists none and GETQUOTA `""` is `NO [NONEXISTENT]` (§4.1.1).

use super::{CmdError, CmdResult, Done, Session};
use crate::response::write_mailbox;
use bulwark_core::quota::{self, Usage};

/// The one quota root's name.
const ROOT: &str = "";

impl Session {
    async fn quota_usage(&self) -> Result<Usage, CmdError> {
        let account = self.account_id()?;
        Ok(quota::usage(self.store.as_ref(), account, self.cfg.quota).await?)
    }

    /// `* QUOTA "" (STORAGE used limit)` (RFC 9208 §5.1: units of 1024 octets).
    fn write_quota(usage: &Usage, out: &mut Vec<u8>) -> bool {
        let (used, Some(limit)) = usage.storage_kib() else {
            return false;
        };
        out.extend_from_slice(
            format!("* QUOTA \"{ROOT}\" (STORAGE {used} {limit})\r\n").as_bytes(),
        );
        true
    }

    /// RFC 9208 §4.1.1.
    pub(crate) async fn cmd_get_quota(&mut self, root: &str, out: &mut Vec<u8>) -> CmdResult {
        let usage = self.quota_usage().await?;
        if root != ROOT || !Self::write_quota(&usage, out) {
            return Err(CmdError::no("NONEXISTENT", "No such quota root"));
        }
        Done::new("GETQUOTA completed")
    }

    /// RFC 9208 §4.1.2: `* QUOTAROOT mailbox root…` then each root's `* QUOTA`.
    pub(crate) async fn cmd_get_quota_root(&mut self, name: &str, out: &mut Vec<u8>) -> CmdResult {
        let name = self.decode_mailbox_name(name);
        let Some(mailbox) = self.find_mailbox(&name).await? else {
            return Err(CmdError::no(
                "NONEXISTENT",
                format!("Mailbox {name} does not exist"),
            ));
        };
        let usage = self.quota_usage().await?;
        out.extend_from_slice(b"* QUOTAROOT ");
        write_mailbox(out, &mailbox.name, self.utf8());
        if usage.limit.is_some() {
            out.extend_from_slice(format!(" \"{ROOT}\"").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        Self::write_quota(&usage, out);
        Done::new("GETQUOTAROOT completed")
    }

    /// RFC 9208 §4.1.3 (not offered: `QUOTASET` is not advertised).
    pub(crate) fn cmd_set_quota(&mut self, _root: &str) -> CmdResult {
        Err(CmdError::no(
            "NOPERM",
            "Quotas are set by the administrator (bulwark account quota)",
        ))
    }

    /// RFC 9208 §4.3 / RFC 5530 `OVERQUOTA`: refuses a write that would store `adding`
    /// more octets past the account's limit (APPEND, COPY), before anything is stored.
    pub(crate) async fn check_quota(&self, adding: u64) -> Result<(), CmdError> {
        let account = self.account_id()?;
        if quota::admits(self.store.as_ref(), account, self.cfg.quota, adding).await? {
            return Ok(());
        }
        Err(CmdError::no(
            "OVERQUOTA",
            "Over the storage quota: delete or expunge some mail first",
        ))
    }
}
