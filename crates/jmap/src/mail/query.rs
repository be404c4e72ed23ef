//! Shared /query windowing (RFC 8620 §5.5: position, anchor, anchorOffset, limit) and a
//! generic /queryChanges over the change log (§5.6).

use crate::api::args::Args;
use crate::api::{MethodError, MethodErrorKind};
use serde_json::{Value, json};

/// Results returned when the client gives no limit.
pub const DEFAULT_QUERY_LIMIT: usize = 1000;
/// Largest limit honoured (larger limits are clamped; §5.5 allows this).
pub const MAX_QUERY_LIMIT: usize = 10_000;

pub struct Window {
    pub ids: Vec<String>,
    pub position: usize,
    pub limit_clamped: Option<usize>,
}

/// The limit to apply (default [`DEFAULT_QUERY_LIMIT`]) and, when the client asked for more
/// than [`MAX_QUERY_LIMIT`], the clamped value to report (§5.5).
pub fn limit(args: &Args) -> Result<(usize, Option<usize>), MethodError> {
    let limit = args
        .opt_uint("limit")?
        .map(|l| usize::try_from(l).unwrap_or(usize::MAX))
        .unwrap_or(DEFAULT_QUERY_LIMIT);
    let clamped = (limit > MAX_QUERY_LIMIT).then_some(MAX_QUERY_LIMIT);
    Ok((limit.min(MAX_QUERY_LIMIT), clamped))
}

/// Applies position/anchor/anchorOffset/limit to the full ordered result list.
pub fn window(all: &[String], args: &Args) -> Result<Window, MethodError> {
    let total = all.len();
    let (limit, limit_clamped) = limit(args)?;
    let start = if let Some(anchor) = args.opt_str("anchor")? {
        let idx = all.iter().position(|id| id == anchor).ok_or_else(|| {
            MethodError::new(
                MethodErrorKind::AnchorNotFound,
                "anchor is not in the results",
            )
        })?;
        let offset = args.opt_int("anchorOffset")?.unwrap_or(0);
        let pos = idx as i64 + offset;
        pos.clamp(0, total as i64) as usize
    } else {
        let position = args.opt_int("position")?.unwrap_or(0);
        if position < 0 {
            // §5.5: a negative position counts from the end (clamped to 0).
            (total as i64 + position).max(0) as usize
        } else {
            (position as usize).min(total)
        }
    };
    let end = start.saturating_add(limit).min(total);
    Ok(Window {
        ids: all[start..end].to_vec(),
        position: start,
        limit_clamped,
    })
}

/// Builds a /queryChanges response given the current ordered results and the set of ids
/// that may have changed since `sinceQueryState`: every changed id is reported removed and,
/// if still in the results, added at its new index (§5.6 allows this over-reporting).
pub fn query_changes_response(
    account_id: &str,
    old_state: &str,
    new_state: &str,
    current: &[String],
    changed: &std::collections::HashSet<String>,
    max_changes: Option<u64>,
    calculate_total: bool,
) -> Result<Value, MethodError> {
    let removed: Vec<&String> = changed.iter().collect();
    let added: Vec<Value> = current
        .iter()
        .enumerate()
        .filter(|(_, id)| changed.contains(*id))
        .map(|(i, id)| json!({ "id": id, "index": i }))
        .collect();
    if let Some(max) = max_changes
        && (removed.len() + added.len()) as u64 > max
    {
        return Err(MethodError::new(
            MethodErrorKind::TooManyChanges,
            "more changes than maxChanges",
        ));
    }
    let mut out = json!({
        "accountId": account_id,
        "oldQueryState": old_state,
        "newQueryState": new_state,
        "removed": removed,
        "added": added,
    });
    if calculate_total {
        out["total"] = json!(current.len());
    }
    Ok(out)
}
