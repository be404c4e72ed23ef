//! The JMAP API endpoint (RFC 8620 §3): request parsing with limits, capability checks,
//! result references and method dispatch.

pub mod args;
pub mod error;
pub mod refs;

use crate::JmapServer;
use crate::ids;
use args::Args;
use bulwark_store::AccountId;
use bulwark_store::changelog::ChangeKind;
pub use error::{MethodError, MethodErrorKind, RequestError, SetError};
use serde_json::{Map, Value, json};
use std::collections::HashMap;

pub const CAP_CORE: &str = "urn:ietf:params:jmap:core";
pub const CAP_MAIL: &str = "urn:ietf:params:jmap:mail";
pub const CAP_SUBMISSION: &str = "urn:ietf:params:jmap:submission";
pub const CAP_VACATION: &str = "urn:ietf:params:jmap:vacationresponse";
pub const CAP_WEBSOCKET: &str = "urn:ietf:params:jmap:websocket";
/// RFC 9404: Blob/upload, Blob/get, Blob/lookup.
pub const CAP_BLOB: &str = "urn:ietf:params:jmap:blob";
/// RFC 9425 §3
pub const CAP_QUOTA: &str = "urn:ietf:params:jmap:quota";
/// RFC 9661 §1.3
pub const CAP_SIEVE: &str = "urn:ietf:params:jmap:sieve";
/// Every capability this server understands in `using`.
pub const CAPABILITIES: [&str; 8] = [
    CAP_CORE,
    CAP_MAIL,
    CAP_SUBMISSION,
    CAP_VACATION,
    CAP_WEBSOCKET,
    CAP_BLOB,
    CAP_QUOTA,
    CAP_SIEVE,
];
/// Longest method name / call id we accept.
pub const MAX_NAME_LEN: usize = 255;

/// A parsed JMAP Request object (RFC 8620 §3.3).
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub using: Vec<String>,
    pub method_calls: Vec<(String, Map<String, Value>, String)>,
    pub created_ids: Option<HashMap<String, String>>,
}

/// Limits applied while parsing (from [`crate::JmapConfig`]).
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    pub max_size_request: usize,
    pub max_calls_in_request: usize,
}

/// Parses and checks a request body. Never panics, whatever the bytes.
pub fn parse_request(body: &[u8], limits: RequestLimits) -> Result<Request, RequestError> {
    if body.len() > limits.max_size_request {
        return Err(RequestError::Limit {
            limit: "maxSizeRequest",
            description: format!(
                "the request is {} bytes, the limit is {}",
                body.len(),
                limits.max_size_request
            ),
        });
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|e| RequestError::NotJson(e.to_string()))?;
    parse_request_value(value, limits)
}

/// Checks an already-decoded Request object (also used by the WebSocket transport).
pub fn parse_request_value(value: Value, limits: RequestLimits) -> Result<Request, RequestError> {
    let Value::Object(mut obj) = value else {
        return Err(RequestError::NotRequest(
            "the request must be a JSON object".into(),
        ));
    };
    let using = match obj.remove("using") {
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(RequestError::NotRequest(
                    "using must be an array of strings".into(),
                )),
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => {
            return Err(RequestError::NotRequest(
                "using must be an array of strings".into(),
            ));
        }
    };
    let Some(Value::Array(calls)) = obj.remove("methodCalls") else {
        return Err(RequestError::NotRequest(
            "methodCalls must be an array".into(),
        ));
    };
    // §3.6.1: a request over maxCallsInRequest is a `limit` error.
    if calls.len() > limits.max_calls_in_request {
        return Err(RequestError::Limit {
            limit: "maxCallsInRequest",
            description: format!(
                "{} method calls, the limit is {}",
                calls.len(),
                limits.max_calls_in_request
            ),
        });
    }
    let mut method_calls = Vec::with_capacity(calls.len());
    for call in calls {
        let bad = || {
            RequestError::NotRequest(
                "each method call must be [name, arguments object, call id]".into(),
            )
        };
        let Value::Array(parts) = call else {
            return Err(bad());
        };
        let Ok::<[Value; 3], _>(
            [
                Value::String(name),
                Value::Object(args),
                Value::String(call_id),
            ],
        ) = parts.try_into()
        else {
            return Err(bad());
        };
        if name.len() > MAX_NAME_LEN || call_id.len() > MAX_NAME_LEN {
            return Err(RequestError::NotRequest(
                "method name or call id too long".into(),
            ));
        }
        method_calls.push((name, args, call_id));
    }
    let created_ids = match obj.remove("createdIds") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(
            m.into_iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k, s)),
                    _ => Err(RequestError::NotRequest(
                        "createdIds values must be strings".into(),
                    )),
                })
                .collect::<Result<HashMap<_, _>, _>>()?,
        ),
        Some(_) => {
            return Err(RequestError::NotRequest(
                "createdIds must be an object".into(),
            ));
        }
    };
    // §3.6.1: every capability in `using` must be known.
    if let Some(unknown) = using.iter().find(|u| !CAPABILITIES.contains(&u.as_str())) {
        return Err(RequestError::UnknownCapability(unknown.clone()));
    }
    Ok(Request {
        using,
        method_calls,
        created_ids,
    })
}

/// State shared by the calls of one request.
pub struct Ctx<'a> {
    pub server: &'a JmapServer,
    pub account: AccountId,
    /// creation id (without `#`) → server id (RFC 8620 §5.3 createdIds).
    pub created_ids: HashMap<String, String>,
    pub using: Vec<String>,
    /// Implicit responses a method adds after its own (e.g. EmailSubmission's Email/set).
    pub extra: Vec<(String, Value)>,
}

impl Ctx<'_> {
    /// Resolves `#creationId` to the id created earlier in this request.
    pub fn resolve_id(&self, id: &str) -> Option<String> {
        match id.strip_prefix('#') {
            Some(c) => self.created_ids.get(c).cloned(),
            None => Some(id.to_string()),
        }
    }
    pub fn uses(&self, cap: &str) -> bool {
        self.using.iter().any(|u| u == cap)
    }
}

/// Which capability a method needs in `using` (RFC 8620 §3.6.2: otherwise unknownMethod).
fn capability_of(method: &str) -> Option<&'static str> {
    let (ty, _) = method.split_once('/')?;
    Some(match ty {
        // RFC 8620 §6.3: Blob/copy is part of the core capability; the other Blob methods
        // are RFC 9404's.
        "Blob" if method == "Blob/copy" => CAP_CORE,
        "Blob" => CAP_BLOB,
        // RFC 8620 §7.2: PushSubscription belongs to the core capability.
        "Core" | "PushSubscription" => CAP_CORE,
        "Mailbox" | "Thread" | "Email" | "SearchSnippet" => CAP_MAIL,
        "Identity" | "EmailSubmission" => CAP_SUBMISSION,
        "VacationResponse" => CAP_VACATION,
        "Quota" => CAP_QUOTA,
        "SieveScript" => CAP_SIEVE,
        _ => return None,
    })
}

/// Runs every call of `request` in order and builds the Response object (§3.4).
pub async fn process(server: &JmapServer, account: AccountId, request: Request) -> Value {
    let mut ctx = Ctx {
        server,
        account,
        created_ids: request.created_ids.clone().unwrap_or_default(),
        using: request.using.clone(),
        extra: Vec::new(),
    };
    let mut responses: Vec<(String, Value, String)> =
        Vec::with_capacity(request.method_calls.len());
    // Bytes of JSON the responses so far hold: the whole response stays under
    // maxSizeResponse, and a call whose result would pass it gets `requestTooLarge`
    // instead (issue 13 item 1: memory is accounted per request).
    let max_size = server.cfg.max_size_response;
    let mut used = 0usize;
    for (name, args, call_id) in request.method_calls {
        let budget = max_size.saturating_sub(used);
        let result = match refs::resolve_references(args, &responses, budget) {
            Err(e) => Err(e),
            Ok(args) => match capability_of(&name) {
                Some(cap) if ctx.uses(cap) => dispatch(&mut ctx, &name, Args(args)).await,
                _ => Err(MethodError::new(
                    MethodErrorKind::UnknownMethod,
                    format!("unknown method {name}"),
                )),
            },
        };
        let result = result.and_then(|v| match refs::json_size_within(&v, budget) {
            Some(size) => Ok((v, size)),
            None => Err(response_too_large(max_size)),
        });
        match result {
            Ok((v, size)) => {
                used = used.saturating_add(size);
                responses.push((name, v, call_id.clone()));
            }
            Err(e) => {
                let v = e.to_json();
                used = used.saturating_add(refs::json_size_within(&v, usize::MAX).unwrap_or(0));
                responses.push(("error".into(), v, call_id.clone()));
            }
        }
        for (extra_name, extra_args) in ctx.extra.drain(..) {
            // Implicit responses (a few ids each) are counted but never refused: the
            // change they report already happened.
            let size = refs::json_size_within(&extra_args, usize::MAX).unwrap_or(0);
            used = used.saturating_add(size);
            responses.push((extra_name, extra_args, call_id.clone()));
        }
    }
    let session_state = crate::session::session_state(server, account).await;
    // Built by moving the responses in: `json!` would copy each (large) result through
    // serde once more.
    let method_responses: Vec<Value> = responses
        .into_iter()
        .map(|(n, a, c)| Value::Array(vec![Value::String(n), a, Value::String(c)]))
        .collect();
    let mut out = serde_json::Map::new();
    out.insert("methodResponses".into(), Value::Array(method_responses));
    out.insert("sessionState".into(), json!(session_state));
    if request.created_ids.is_some() {
        out.insert("createdIds".into(), json!(ctx.created_ids));
    }
    Value::Object(out)
}

/// The error of a call whose result does not fit in what is left of maxSizeResponse.
fn response_too_large(max_size: usize) -> MethodError {
    MethodError::new(
        MethodErrorKind::RequestTooLarge,
        format!(
            "the response would be larger than maxSizeResponse ({max_size} bytes); \
             ask for fewer objects or properties, or split the request"
        ),
    )
}

async fn dispatch(ctx: &mut Ctx<'_>, name: &str, args: Args) -> Result<Value, MethodError> {
    use crate::mail::*;
    use crate::submission as sub;
    match name {
        // RFC 8620 §4: echo the arguments unchanged.
        "Core/echo" => Ok(Value::Object(args.0)),
        "Mailbox/get" => mailbox::get(ctx, args).await,
        "Mailbox/changes" => changes::mailbox_changes(ctx, args).await,
        "Mailbox/query" => mailbox::query(ctx, args).await,
        "Mailbox/queryChanges" => mailbox::query_changes(ctx, args).await,
        "Mailbox/set" => mailbox::set(ctx, args).await,
        "Thread/get" => thread::get(ctx, args).await,
        "Thread/changes" => changes::thread_changes(ctx, args).await,
        "Email/get" => email_get::get(ctx, args).await,
        "Email/changes" => changes::email_changes(ctx, args).await,
        "Email/query" => email_query::query(ctx, args).await,
        "Email/queryChanges" => email_query::query_changes(ctx, args).await,
        "Email/set" => email_set::set(ctx, args).await,
        "Email/copy" => email_import::copy(ctx, args).await,
        "Email/import" => email_import::import(ctx, args).await,
        "Email/parse" => email_import::parse(ctx, args).await,
        "Blob/copy" => crate::blob::copy(ctx, args).await,
        "PushSubscription/get" => crate::push_subscription::get(ctx, args).await,
        "PushSubscription/set" => crate::push_subscription::set(ctx, args).await,
        "Blob/upload" => crate::blob_ext::upload(ctx, args).await,
        "Blob/get" => crate::blob_ext::get(ctx, args).await,
        "Blob/lookup" => crate::blob_ext::lookup(ctx, args).await,
        "SearchSnippet/get" => email_query::search_snippets(ctx, args).await,
        "Identity/get" => crate::identity::identity_get(ctx, args).await,
        "Identity/changes" => crate::identity::identity_changes(ctx, args).await,
        "Identity/set" => crate::identity::identity_set(ctx, args).await,
        "EmailSubmission/get" => sub::submission_get(ctx, args).await,
        "EmailSubmission/changes" => sub::submission_changes(ctx, args).await,
        "EmailSubmission/query" => sub::submission_query(ctx, args).await,
        "EmailSubmission/set" => sub::submission_set(ctx, args).await,
        "SieveScript/get" => crate::sieve::get(ctx, args).await,
        "SieveScript/changes" => crate::sieve::changes(ctx, args).await,
        "SieveScript/query" => crate::sieve::query(ctx, args).await,
        "SieveScript/set" => crate::sieve::set(ctx, args).await,
        "SieveScript/validate" => crate::sieve::validate(ctx, args).await,
        "Quota/get" => crate::quota::get(ctx, args).await,
        "Quota/changes" => crate::quota::changes(ctx, args).await,
        "Quota/query" => crate::quota::query(ctx, args).await,
        "Quota/queryChanges" => crate::quota::query_changes(ctx, args).await,
        "VacationResponse/get" => crate::vacation::get(ctx, args).await,
        "VacationResponse/set" => crate::vacation::set(ctx, args).await,
        _ => Err(MethodError::new(
            MethodErrorKind::UnknownMethod,
            format!("unknown method {name}"),
        )),
    }
}

/// The account's current state string (its modseq).
/// A `/get` response (RFC 8620 §5.1), moving `list` in (`json!` would copy every object
/// through serde once more).
pub fn get_response(
    account: AccountId,
    state: String,
    list: Vec<Value>,
    not_found: Vec<String>,
) -> Value {
    let mut out = serde_json::Map::new();
    out.insert(
        "accountId".into(),
        Value::String(crate::ids::account_id(account)),
    );
    out.insert("state".into(), Value::String(state));
    out.insert("list".into(), Value::Array(list));
    out.insert(
        "notFound".into(),
        Value::Array(not_found.into_iter().map(Value::String).collect()),
    );
    Value::Object(out)
}

/// The state string of one mail data type (RFC 8620 §1.2: per type, so an Email change
/// that leaves the mailbox counts alone does not change the Mailbox state).
pub async fn current_state(ctx: &Ctx<'_>, kind: ChangeKind) -> Result<String, MethodError> {
    Ok(ids::state(
        ctx.server.store.mail_states(ctx.account).await?.of(kind),
    ))
}

/// An empty map as `null` (RFC 8620 §5.3, §5.4: `created`, `notCreated`… are null when empty).
pub fn or_null(m: Map<String, Value>) -> Value {
    if m.is_empty() {
        Value::Null
    } else {
        Value::Object(m)
    }
}

/// `ifInState` check shared by every /set (RFC 8620 §5.3: stateMismatch).
pub fn check_if_in_state(args: &Args, current: &str) -> Result<(), MethodError> {
    if let Some(expected) = args.opt_str("ifInState")?
        && expected != current
    {
        return Err(MethodError::new(
            MethodErrorKind::StateMismatch,
            format!("ifInState {expected} does not match the current state {current}"),
        ));
    }
    Ok(())
}

/// `create`/`update`/`destroy` of a /set must not exceed maxObjectsInSet (§5.3 requestTooLarge).
pub fn check_set_size(ctx: &Ctx<'_>, args: &Args) -> Result<(), MethodError> {
    let count = |k: &str| match args.get(k) {
        Some(Value::Object(m)) => m.len(),
        Some(Value::Array(a)) => a.len(),
        _ => 0,
    };
    let n = count("create") + count("update") + count("destroy");
    if n > ctx.server.cfg.max_objects_in_set {
        return Err(MethodError::new(
            MethodErrorKind::RequestTooLarge,
            format!(
                "{n} objects in one /set, the limit is {}",
                ctx.server.cfg.max_objects_in_set
            ),
        ));
    }
    Ok(())
}

/// `ids` of a /get must not exceed maxObjectsInGet (§5.1 requestTooLarge).
pub fn check_get_size(ctx: &Ctx<'_>, ids: Option<&Vec<String>>) -> Result<(), MethodError> {
    if let Some(ids) = ids
        && ids.len() > ctx.server.cfg.max_objects_in_get
    {
        return Err(MethodError::new(
            MethodErrorKind::RequestTooLarge,
            format!(
                "{} ids in one /get, the limit is {}",
                ids.len(),
                ctx.server.cfg.max_objects_in_get
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: RequestLimits = RequestLimits {
        max_size_request: 10_000,
        max_calls_in_request: 4,
    };

    fn kind(body: &[u8]) -> &'static str {
        match parse_request(body, LIMITS) {
            Ok(_) => "ok",
            Err(e) => e.type_uri().rsplit(':').next().unwrap_or(""),
        }
    }

    #[test]
    fn request_errors_are_classified_as_rfc_8620_says() {
        assert_eq!(kind(br#"{"using":[],"methodCalls":[]}"#), "ok");
        assert_eq!(kind(b"{not json"), "notJSON");
        assert_eq!(kind(b"[1,2]"), "notRequest");
        assert_eq!(kind(br#"{"using":"x","methodCalls":[]}"#), "notRequest");
        assert_eq!(
            kind(br#"{"using":[],"methodCalls":[["a",{},1]]}"#),
            "notRequest"
        );
        assert_eq!(
            kind(br#"{"using":[],"methodCalls":[["a",[],"c"]]}"#),
            "notRequest"
        );
        assert_eq!(
            kind(br#"{"using":["urn:x"],"methodCalls":[]}"#),
            "unknownCapability"
        );
        let five = r#"{"using":[],"methodCalls":[["Core/echo",{},"a"],["Core/echo",{},"a"],["Core/echo",{},"a"],["Core/echo",{},"a"],["Core/echo",{},"a"]]}"#;
        assert_eq!(kind(five.as_bytes()), "limit");
        assert_eq!(kind(&vec![b' '; 20_000]), "limit");
    }

    /// Stable pseudo-random robustness test: mutated requests never panic the parser.
    #[test]
    fn parser_survives_seeded_random_mutations() {
        let seeds: [&[u8]; 3] = [
            br#"{"using":["urn:ietf:params:jmap:core"],"methodCalls":[["Core/echo",{"a":1},"c1"]]}"#,
            br##"{"using":[],"methodCalls":[["Email/get",{"#ids":{"resultOf":"c","name":"x","path":"/ids/*"}},"c"]],"createdIds":{"k":"v"}}"##,
            br#"{"using":[],"methodCalls":[]}"#,
        ];
        let mut state: u64 = 0x5eed_1234_abcd_0001;
        let mut next = move || {
            // xorshift64*: deterministic across runs and platforms.
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_f491_4f6c_dd1d)
        };
        let alphabet = b"{}[]\",:0123456789aeu\\ #/*-\x00\xff";
        for i in 0..5000 {
            let mut input = seeds[i % seeds.len()].to_vec();
            for _ in 0..(next() % 6) {
                let pos = (next() as usize) % (input.len() + 1);
                let byte = alphabet[(next() as usize) % alphabet.len()];
                match next() % 3 {
                    0 if pos < input.len() => input[pos] = byte,
                    1 if pos < input.len() => {
                        input.remove(pos);
                    }
                    _ => input.insert(pos, byte),
                }
            }
            let _ = parse_request(&input, LIMITS);
        }
    }
}
