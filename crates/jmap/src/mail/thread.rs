//! Thread/get (RFC 8621 §3.1): the emails of a thread, oldest first.

use crate::api::args::Args;
use crate::api::{Ctx, MethodError, check_get_size, current_state};
use crate::ids;
use bulwark_store::changelog::ChangeKind;
use bulwark_store::{Email, ThreadId};
use serde_json::{Value, json};
use std::collections::HashMap;

pub async fn get(ctx: &mut Ctx<'_>, args: Args) -> Result<Value, MethodError> {
    let account = args.account(ctx.account)?;
    let wanted = args
        .opt_str_list("ids")?
        .ok_or_else(|| MethodError::invalid_arguments("ids is required for Thread/get"))?;
    check_get_size(ctx, Some(&wanted))?;
    let state = current_state(ctx, ChangeKind::Thread).await?;
    let all = ctx.server.store.email_list(account).await?;
    let mut by_thread: HashMap<ThreadId, Vec<&Email>> = HashMap::new();
    for e in &all {
        by_thread.entry(e.thread).or_default().push(e);
    }
    let mut list = Vec::new();
    let mut not_found = Vec::new();
    for id in wanted {
        match ids::parse_thread(&id).and_then(|t| by_thread.get_mut(&t)) {
            Some(emails) => {
                emails.sort_by_key(|e| (e.received_at, e.id));
                let email_ids: Vec<String> = emails.iter().map(|e| ids::email_id(e.id)).collect();
                list.push(json!({ "id": id, "emailIds": email_ids }));
            }
            None => not_found.push(id),
        }
    }
    Ok(crate::api::get_response(account, state, list, not_found))
}
