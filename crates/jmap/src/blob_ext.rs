//! JMAP Blob management (RFC 9404): `Blob/upload` builds a blob from inline data and ranges
//! of other blobs inside a request, `Blob/get` reads blobs (or a range of them) as text,
//! base64 or digests, and `Blob/lookup` says which emails, threads and mailboxes reference a
//! blob. Every blob id is the account's own ([`crate::blob::read_blob`]): a blob of another
//! account is not found, exactly like one that does not exist (§6 security considerations).

use crate::api::args::Args;
use crate::api::{CAP_MAIL, Ctx, MethodError, MethodErrorKind, SetError};
use crate::ids;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bulwark_store::{AccountId, BlobHash};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// Data sources one created blob may have (RFC 9404 §2 maxDataSources).
pub const MAX_DATA_SOURCES: usize = 64;
/// Digest algorithms `Blob/get` computes (§2 supportedDigestAlgorithms; names from the
/// HTTP Digest Algorithm Values registry).
pub const DIGEST_ALGORITHMS: [&str; 2] = ["sha", "sha-256"];
/// Data types `Blob/lookup` searches (§2 supportedTypeNames).
pub const LOOKUP_TYPES: [&str; 3] = ["Mailbox", "Thread", "Email"];
/// The properties `Blob/get` knows (§4.2); `data` is text when it is UTF-8, else base64.
const GET_PROPERTIES: [&str; 7] = [
    "id",
    "data",
    "data:asText",
    "data:asBase64",
    "digest:sha",
    "digest:sha-256",
    "size",
];

/// `Blob/upload` (RFC 9404 §4.1): each creation concatenates its data sources (text, base64,
/// or a range of a blob the account can read) into a new blob owned by the account. The
/// whole blob may not pass maxSizeUpload, like an upload over HTTP.
pub async fn upload(ctx: &mut Ctx<'_>, args: Args) -> Result<Value, MethodError> {
    let account = args.account(ctx.account)?;
    crate::api::check_set_size(ctx, &args)?;
    let create = match args.get("create") {
        None => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(MethodError::invalid_arguments("create must be an object")),
    };
    let mut created = Map::new();
    let mut not_created = Map::new();
    for (cid, object) in create {
        match build(ctx, account, &object).await {
            Ok((bytes, media_type)) => {
                let hash = ctx.server.store.blob_put(account, &bytes).await?;
                let id = ctx.server.blob_ids().await?.encode(account, &hash).0;
                ctx.created_ids.insert(cid.clone(), id.clone());
                created.insert(
                    cid,
                    json!({ "id": id, "type": media_type, "size": bytes.len() }),
                );
            }
            Err(e) => {
                not_created.insert(cid, e.to_json());
            }
        }
    }
    let or_null = crate::api::or_null;
    Ok(json!({
        "accountId": ids::account_id(account),
        "created": or_null(created),
        "notCreated": or_null(not_created),
    }))
}

/// The bytes and media type of one UploadObject (§4.1.1), or why it cannot be made. The
/// server does not guess: one bad source fails the creation.
async fn build(
    ctx: &Ctx<'_>,
    account: AccountId,
    object: &Value,
) -> Result<(Vec<u8>, Value), SetError> {
    let Value::Object(object) = object else {
        return Err(SetError::invalid_properties(
            &[],
            "an UploadObject is an object",
        ));
    };
    if let Some(unknown) = object
        .keys()
        .find(|k| !["data", "type"].contains(&k.as_str()))
    {
        return Err(SetError::invalid_properties(
            &[unknown.as_str()],
            format!("unknown property {unknown}"),
        ));
    }
    let media_type = match object.get("type") {
        None | Some(Value::Null) => Value::Null,
        Some(Value::String(t)) if t.len() <= 255 && !t.chars().any(char::is_control) => {
            json!(t)
        }
        Some(_) => {
            return Err(SetError::invalid_properties(
                &["type"],
                "type must be a media type string",
            ));
        }
    };
    let sources = match object.get("data") {
        Some(Value::Array(a)) if !a.is_empty() => a,
        _ => {
            return Err(SetError::invalid_properties(
                &["data"],
                "data must be a non-empty array of DataSourceObjects",
            ));
        }
    };
    if sources.len() > MAX_DATA_SOURCES {
        return Err(SetError::invalid_properties(
            &["data"],
            format!("at most {MAX_DATA_SOURCES} data sources (maxDataSources)"),
        ));
    }
    let max = ctx.server.cfg.max_size_upload;
    let too_large = || {
        SetError::new("tooLarge", format!("the blob would exceed {max} bytes"))
            .with("maxSize", json!(max))
    };
    let mut bytes = Vec::new();
    for source in sources {
        let part = source_bytes(ctx, account, source).await?;
        if bytes.len().saturating_add(part.len()) > max {
            return Err(too_large());
        }
        bytes.extend_from_slice(&part);
    }
    Ok((bytes, media_type))
}

/// One DataSourceObject (§4.1.1): exactly one of `data:asText`, `data:asBase64`, or a
/// `blobId` with an optional `offset` and `length` that must lie within the blob.
async fn source_bytes(
    ctx: &Ctx<'_>,
    account: AccountId,
    source: &Value,
) -> Result<Vec<u8>, SetError> {
    let bad = |what: &str| SetError::invalid_properties(&["data"], what.to_string());
    let Value::Object(source) = source else {
        return Err(bad("each data source is an object"));
    };
    let kinds = ["data:asText", "data:asBase64", "blobId"]
        .iter()
        .filter(|k| source.contains_key(**k))
        .count();
    if kinds != 1 {
        return Err(bad(
            "a data source has exactly one of data:asText, data:asBase64 or blobId",
        ));
    }
    if let Some(text) = source.get("data:asText") {
        let Value::String(text) = text else {
            return Err(bad("data:asText must be a string"));
        };
        if source.len() != 1 {
            return Err(bad("data:asText stands alone in its data source"));
        }
        return Ok(text.as_bytes().to_vec());
    }
    if let Some(b64) = source.get("data:asBase64") {
        let Value::String(b64) = b64 else {
            return Err(bad("data:asBase64 must be a string"));
        };
        if source.len() != 1 {
            return Err(bad("data:asBase64 stands alone in its data source"));
        }
        return B64
            .decode(b64.as_bytes())
            .map_err(|_| bad("data:asBase64 is not valid base64"));
    }
    if let Some(k) = source
        .keys()
        .find(|k| !["blobId", "offset", "length"].contains(&k.as_str()))
    {
        return Err(bad(&format!("unknown data source property {k}")));
    }
    let blob_id = source
        .get("blobId")
        .and_then(Value::as_str)
        .and_then(|id| ctx.resolve_id(id))
        .ok_or_else(|| bad("blobId must be a blob id or a creation reference"))?;
    let unsigned = |key: &str| match source.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| bad(&format!("{key} must be an unsigned integer"))),
    };
    let (offset, length) = (unsigned("offset")?, unsigned("length")?);
    let data = crate::blob::read_blob(ctx.server, account, &blob_id)
        .await?
        .ok_or_else(|| {
            SetError::new("blobNotFound", format!("no blob {blob_id}"))
                .with("notFound", json!([blob_id]))
        })?;
    let start = usize::try_from(offset.unwrap_or(0)).unwrap_or(usize::MAX);
    let end = match length {
        None => Some(data.len()),
        Some(l) => usize::try_from(l).ok().and_then(|l| start.checked_add(l)),
    };
    match end {
        // §4.1.1: a range that cannot be fully satisfied makes the creation invalid.
        Some(end) if start <= end && end <= data.len() => Ok(data[start..end].to_vec()),
        _ => Err(bad(&format!(
            "offset and length go past the end of {blob_id} ({} bytes)",
            data.len()
        ))),
    }
}

/// `Blob/get` (RFC 9404 §4.2): the selected range (`offset`, `length`) of each blob as text
/// (null with `isEncodingProblem` when not UTF-8), base64, or digests of the range; `size`
/// is always the whole blob's, and `isTruncated` says the range went past its end.
pub async fn get(ctx: &mut Ctx<'_>, args: Args) -> Result<Value, MethodError> {
    let account = args.account(ctx.account)?;
    let wanted = args
        .opt_str_list("ids")?
        .ok_or_else(|| MethodError::invalid_arguments("ids is required for Blob/get"))?;
    crate::api::check_get_size(ctx, Some(&wanted))?;
    let props = args.properties(&GET_PROPERTIES, &["data", "size"])?;
    if let Some(p) = props.iter().find(|p| p.starts_with("header:")) {
        return Err(MethodError::invalid_arguments(format!(
            "unknown property {p}"
        )));
    }
    let offset = args.opt_uint("offset")?.unwrap_or(0);
    let length = args.opt_uint("length")?;
    let mut list = Vec::new();
    let mut not_found = Vec::new();
    for id in wanted {
        let resolved = ctx.resolve_id(&id).unwrap_or_else(|| id.clone());
        match crate::blob::read_blob(ctx.server, account, &resolved).await? {
            Some(data) => list.push(blob_json(&resolved, &data, &props, offset, length)),
            None => not_found.push(Value::String(id)),
        }
    }
    Ok(json!({
        "accountId": ids::account_id(account),
        "list": list,
        "notFound": not_found,
    }))
}

fn blob_json(id: &str, data: &[u8], props: &[String], offset: u64, length: Option<u64>) -> Value {
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(data.len());
    let wanted_end = length.map(|l| offset.saturating_add(l));
    let end = wanted_end
        .map(|e| usize::try_from(e).unwrap_or(usize::MAX).min(data.len()))
        .unwrap_or(data.len())
        .max(start);
    let truncated = offset > data.len() as u64 || wanted_end.is_some_and(|e| e > data.len() as u64);
    let range = &data[start..end];
    let text = std::str::from_utf8(range).ok();
    let mut out = Map::new();
    out.insert("id".into(), json!(id));
    let mut encoding_problem = false;
    for p in props {
        match p.as_str() {
            "data:asText" => {
                encoding_problem |= text.is_none();
                out.insert(p.clone(), json!(text));
            }
            "data:asBase64" => {
                out.insert(p.clone(), json!(B64.encode(range)));
            }
            "data" => match text {
                Some(t) => {
                    out.insert("data:asText".into(), json!(t));
                }
                None => {
                    encoding_problem = true;
                    out.insert("data:asBase64".into(), json!(B64.encode(range)));
                }
            },
            "digest:sha" => {
                let d = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, range);
                out.insert(p.clone(), json!(B64.encode(d.as_ref())));
            }
            "digest:sha-256" => {
                let d = ring::digest::digest(&ring::digest::SHA256, range);
                out.insert(p.clone(), json!(B64.encode(d.as_ref())));
            }
            "size" => {
                out.insert(p.clone(), json!(data.len()));
            }
            _ => {}
        }
    }
    if encoding_problem {
        out.insert("isEncodingProblem".into(), json!(true));
    }
    if truncated {
        out.insert("isTruncated".into(), json!(true));
    }
    Value::Object(out)
}

/// `Blob/lookup` (RFC 9404 §4.3): for each blob the account can read, the emails whose
/// message or one of its parts it is, their threads and the mailboxes they are in. A blob
/// the account cannot read is `notFound`, whether or not it exists elsewhere.
pub async fn lookup(ctx: &mut Ctx<'_>, args: Args) -> Result<Value, MethodError> {
    let account = args.account(ctx.account)?;
    let types = args
        .opt_str_list("typeNames")?
        .ok_or_else(|| MethodError::invalid_arguments("typeNames is required"))?;
    for t in &types {
        // §4.3: a type this server cannot look in, or whose capability the request did
        // not use, is unknownDataType.
        if !LOOKUP_TYPES.contains(&t.as_str()) || !ctx.uses(CAP_MAIL) {
            return Err(MethodError::new(
                MethodErrorKind::UnknownDataType,
                format!("Blob/lookup cannot look in {t}"),
            ));
        }
    }
    let wanted = args
        .opt_str_list("ids")?
        .ok_or_else(|| MethodError::invalid_arguments("ids is required"))?;
    crate::api::check_get_size(ctx, Some(&wanted))?;
    let blob_ids = ctx.server.blob_ids().await?;
    let mut hashes: Vec<(String, Option<BlobHash>)> = Vec::with_capacity(wanted.len());
    for id in wanted {
        let resolved = ctx.resolve_id(&id).unwrap_or_else(|| id.clone());
        let readable = crate::blob::read_blob(ctx.server, account, &resolved)
            .await?
            .is_some();
        let hash = blob_ids
            .decode(account, &resolved)
            .filter(|_| readable)
            .map(|(h, _)| h);
        hashes.push((id, hash));
    }
    let mut by_hash: BTreeMap<&str, Vec<&bulwark_store::Email>> = BTreeMap::new();
    let emails = if hashes.iter().any(|(_, h)| h.is_some()) {
        ctx.server.store.email_list(account).await?
    } else {
        Vec::new()
    };
    for e in &emails {
        by_hash.entry(e.blob.0.as_str()).or_default().push(e);
    }
    let mut list = Vec::new();
    let mut not_found = Vec::new();
    for (id, hash) in hashes {
        let Some(hash) = hash else {
            not_found.push(Value::String(id));
            continue;
        };
        let matched = by_hash
            .get(hash.0.as_str())
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let mut found = Map::new();
        for t in &types {
            let ids: BTreeSet<String> = match t.as_str() {
                "Email" => matched.iter().map(|e| ids::email_id(e.id)).collect(),
                "Thread" => matched.iter().map(|e| ids::thread_id(e.thread)).collect(),
                _ => matched
                    .iter()
                    .flat_map(|e| e.mailboxes.iter().map(|(m, _)| ids::mailbox_id(*m)))
                    .collect(),
            };
            found.insert(t.clone(), json!(ids));
        }
        list.push(json!({ "id": id, "matchedIds": found }));
    }
    Ok(json!({
        "accountId": ids::account_id(account),
        "list": list,
        "notFound": not_found,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn ranges_are_clamped_and_reported_as_truncated() {
        let data = b"The quick brown fox";
        let v = blob_json("G1", data, &props(&["data:asText", "size"]), 4, Some(5));
        assert_eq!(v["data:asText"], "quick");
        assert_eq!(v["size"], 19);
        assert!(v.get("isTruncated").is_none());
        let v = blob_json("G1", data, &props(&["data:asText"]), 16, Some(10));
        assert_eq!(v["data:asText"], "fox");
        assert_eq!(v["isTruncated"], true);
        let v = blob_json("G1", data, &props(&["data:asText"]), 100, None);
        assert_eq!(v["data:asText"], "");
        assert_eq!(v["isTruncated"], true);
    }

    #[test]
    fn data_falls_back_to_base64_when_not_utf8() {
        let v = blob_json("G1", &[0xff, 0xfe, b'a'], &props(&["data"]), 0, None);
        assert_eq!(v["data:asBase64"], "//5h");
        assert_eq!(v["isEncodingProblem"], true);
        assert!(v.get("data:asText").is_none());
        // A range that cuts a multi-byte character is no UTF-8 either.
        let v = blob_json("G1", "é".as_bytes(), &props(&["data:asText"]), 0, Some(1));
        assert_eq!(v["data:asText"], Value::Null);
        assert_eq!(v["isEncodingProblem"], true);
    }

    #[test]
    fn digests_cover_the_selected_range() {
        let v = blob_json(
            "G1",
            b"xabcx",
            &props(&["digest:sha-256", "digest:sha"]),
            1,
            Some(3),
        );
        // SHA-256("abc") and SHA-1("abc"), base64.
        assert_eq!(
            v["digest:sha-256"],
            "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
        );
        assert_eq!(v["digest:sha"], "qZk+NkcGgWq6PiVxeFDCbJzQ2J0=");
    }
}
