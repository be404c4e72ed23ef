//! Shared /query windowing (RFC 8620 §5.5: position, anchor, anchorOffset, limit) and a
//! generic /queryChanges over the change log (§5.6).

use crate::api::args::Args;
use crate::api::{MethodError, MethodErrorKind};
use serde_json::{Value, json};
use std::collections::HashSet;

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

/// What the change log says about a query's results since `sinceQueryState` (§5.6).
pub struct QueryDelta<'a> {
    /// The current results, in order.
    pub current: &'a [String],
    /// Objects created since: they were in no old result, so they are never `removed`.
    pub created: HashSet<String>,
    /// Objects that existed then and were updated or destroyed since: each may have left
    /// the results or moved, so it is `removed` (and `added` at its index if still in).
    pub touched: HashSet<String>,
    /// With a filter and sort on immutable properties only, the index of `upToId` in the
    /// current results: additions after it are left out (§5.6 upToId).
    pub up_to: Option<usize>,
}

/// Builds a /queryChanges response (RFC 8620 §5.6) from a [`QueryDelta`]: `removed` is
/// every touched id (never one created since the old state, which no old result held),
/// in a stable order; `added` every current id created or touched, with its index.
pub fn query_changes_response(
    account_id: &str,
    old_state: &str,
    new_state: &str,
    delta: &QueryDelta<'_>,
    max_changes: Option<u64>,
    calculate_total: bool,
) -> Result<Value, MethodError> {
    let mut removed: Vec<&String> = delta
        .touched
        .iter()
        .filter(|id| !delta.created.contains(*id))
        .collect();
    removed.sort();
    let added: Vec<Value> = delta
        .current
        .iter()
        .enumerate()
        .take(delta.up_to.map_or(usize::MAX, |i| i + 1))
        .filter(|(_, id)| delta.created.contains(*id) || delta.touched.contains(*id))
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
    let current = delta.current;
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
