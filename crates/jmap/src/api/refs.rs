//! Result references (RFC 8620 §3.7): an argument `#name: {resultOf, name, path}` is
//! replaced by the value at `path` (a JSON Pointer, RFC 6901, extended with `*`) in the
//! response of an earlier call.

use super::error::{MethodError, MethodErrorKind};
use serde_json::{Map, Value};

/// Longest pointer we evaluate (bounds work per reference).
pub const MAX_POINTER_LEN: usize = 1024;

/// Serialised (JSON) size of `value` when it is at most `cap` bytes, else `None`. Counting
/// stops as soon as `cap` is passed, so measuring a huge value costs at most `cap` bytes of work.
pub fn json_size_within(value: &Value, cap: usize) -> Option<usize> {
    struct Counter {
        bytes: usize,
        cap: usize,
    }
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.bytes = self.bytes.saturating_add(buf.len());
            if self.bytes > self.cap {
                return Err(std::io::Error::other("over the cap"));
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter { bytes: 0, cap };
    serde_json::to_writer(&mut counter, value).ok()?;
    Some(counter.bytes)
}

fn too_large(used: usize, budget: usize) -> MethodError {
    MethodError::new(
        MethodErrorKind::RequestTooLarge,
        format!(
            "the referenced results are larger than the {budget} bytes left of maxSizeResponse \
             ({used} bytes or more); reference less, or split the request"
        ),
    )
}

fn invalid_ref(description: impl Into<String>) -> MethodError {
    MethodError::new(MethodErrorKind::InvalidResultReference, description)
}

/// Replaces every `#key` argument by its referenced value. `responses` are the method
/// responses so far: `(name, arguments, callId)`. The resolved values of one call may
/// together be at most `budget` bytes of JSON (what is left of maxSizeResponse), measured
/// before anything is copied: without this bound each call of a chain that references the
/// previous result twice doubles the request's memory (issue 13 item 1).
pub fn resolve_references(
    args: Map<String, Value>,
    responses: &[(String, Value, String)],
    budget: usize,
) -> Result<Map<String, Value>, MethodError> {
    if !args.keys().any(|k| k.starts_with('#')) {
        return Ok(args);
    }
    let mut out = Map::with_capacity(args.len());
    let mut referenced = Vec::new();
    let mut used = 0usize;
    for (key, value) in args {
        let Some(plain) = key.strip_prefix('#') else {
            out.insert(key, value);
            continue;
        };
        let Value::Object(r) = &value else {
            return Err(invalid_ref(format!(
                "#{plain} is not a ResultReference object"
            )));
        };
        let (Some(Value::String(result_of)), Some(Value::String(name)), Some(Value::String(path))) =
            (r.get("resultOf"), r.get("name"), r.get("path"))
        else {
            return Err(invalid_ref(format!(
                "#{plain} needs string resultOf, name and path"
            )));
        };
        // §3.7: the response must have the same call id AND the same method name.
        let Some((_, result, _)) = responses
            .iter()
            .find(|(n, _, id)| id == result_of && n == name)
        else {
            return Err(invalid_ref(format!(
                "no {name} response with call id {result_of:?}"
            )));
        };
        let missing = || {
            invalid_ref(format!(
                "path {path:?} does not resolve in the {name} response"
            ))
        };
        let tokens = pointer_tokens(path).ok_or_else(missing)?;
        let size = walk_size(result, &tokens, budget - used).ok_or_else(missing)?;
        used = used.saturating_add(size);
        if used > budget {
            return Err(too_large(used, budget));
        }
        let resolved = walk(result, &tokens).ok_or_else(missing)?;
        referenced.push((plain.to_string(), resolved));
    }
    for (plain, resolved) in referenced {
        // §3.7: an argument given both plain and as a reference is invalid.
        if out.contains_key(&plain) {
            return Err(MethodError::invalid_arguments(format!(
                "{plain} is given both directly and as #{plain}"
            )));
        }
        out.insert(plain, resolved);
    }
    Ok(out)
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// RFC 6901 pointer with the JMAP `*` extension: `*` on an array maps the rest of the
/// path over each item, flattening array results one level.
pub fn evaluate_pointer(value: &Value, path: &str) -> Option<Value> {
    walk(value, &pointer_tokens(path)?)
}

/// The reference tokens of an RFC 6901 pointer (`""` is the whole value).
fn pointer_tokens(path: &str) -> Option<Vec<String>> {
    if path.len() > MAX_POINTER_LEN {
        return None;
    }
    if path.is_empty() {
        return Some(Vec::new());
    }
    let rest = path.strip_prefix('/')?;
    Some(rest.split('/').map(unescape).collect())
}

/// RFC 6901 §4: array indexes are decimal without leading zeros.
fn array_index(token: &str) -> Option<usize> {
    if token.is_empty()
        || (token.len() > 1 && token.starts_with('0'))
        || !token.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    token.parse().ok()
}

/// About the JSON size of what [`walk`] would return (each `*` item counted with a comma),
/// without building it; `None` when the path does not resolve. A result over `cap` returns
/// some number over `cap` without measuring the rest.
fn walk_size(value: &Value, tokens: &[String], cap: usize) -> Option<usize> {
    let Some((head, tail)) = tokens.split_first() else {
        return Some(json_size_within(value, cap).unwrap_or(cap.saturating_add(1)));
    };
    match value {
        Value::Object(m) => walk_size(m.get(head.as_str())?, tail, cap),
        Value::Array(items) if head == "*" => {
            let mut total = 2usize;
            for item in items {
                let item_size = walk_size(item, tail, cap.saturating_sub(total))?;
                total = total.saturating_add(item_size).saturating_add(1);
                if total > cap {
                    return Some(total);
                }
            }
            Some(total)
        }
        Value::Array(items) => walk_size(items.get(array_index(head)?)?, tail, cap),
        _ => None,
    }
}

fn walk(value: &Value, tokens: &[String]) -> Option<Value> {
    let Some((head, tail)) = tokens.split_first() else {
        return Some(value.clone());
    };
    match value {
        Value::Object(m) => walk(m.get(head.as_str())?, tail),
        Value::Array(items) if head == "*" => {
            let mut out = Vec::new();
            for item in items {
                match walk(item, tail)? {
                    Value::Array(inner) => out.extend(inner),
                    other => out.push(other),
                }
            }
            Some(Value::Array(out))
        }
        Value::Array(items) => walk(items.get(array_index(head)?)?, tail),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pointer_with_wildcard_flattens_like_rfc_8620_example() {
        let v = json!({"list": [{"emailIds": ["a", "b"]}, {"emailIds": ["c"]}], "ids": ["x"]});
        assert_eq!(
            evaluate_pointer(&v, "/list/*/emailIds"),
            Some(json!(["a", "b", "c"]))
        );
        assert_eq!(evaluate_pointer(&v, "/ids"), Some(json!(["x"])));
        assert_eq!(evaluate_pointer(&v, "/ids/0"), Some(json!("x")));
        assert_eq!(evaluate_pointer(&v, "/ids/01"), None);
        assert_eq!(evaluate_pointer(&v, "/nope"), None);
        assert_eq!(evaluate_pointer(&v, "nope"), None);
        assert_eq!(
            evaluate_pointer(&json!({"a/b": 1}), "/a~1b"),
            Some(json!(1))
        );
    }

    #[test]
    fn reference_needs_matching_name_and_call_id() {
        let responses = vec![(
            "Email/query".to_string(),
            json!({"ids": ["E1"]}),
            "c0".to_string(),
        )];
        let mut args = Map::new();
        args.insert(
            "#ids".into(),
            json!({"resultOf": "c0", "name": "Email/query", "path": "/ids"}),
        );
        let out = resolve_references(args.clone(), &responses, usize::MAX).unwrap();
        assert_eq!(out["ids"], json!(["E1"]));
        args.insert(
            "#ids".into(),
            json!({"resultOf": "c0", "name": "Email/get", "path": "/ids"}),
        );
        let e = resolve_references(args.clone(), &responses, usize::MAX).unwrap_err();
        assert_eq!(e.kind, MethodErrorKind::InvalidResultReference);
        args.insert(
            "#ids".into(),
            json!({"resultOf": "c0", "name": "Email/query", "path": "/ids"}),
        );
        args.insert("ids".into(), json!([]));
        let e = resolve_references(args, &responses, usize::MAX).unwrap_err();
        assert_eq!(e.kind, MethodErrorKind::InvalidArguments);
    }

    #[test]
    fn references_over_the_budget_are_request_too_large_before_any_copy() {
        let big = json!({"list": [{"x": "a".repeat(600)}, {"x": "b".repeat(600)}]});
        let responses = vec![("Core/echo".to_string(), big, "c0".to_string())];
        let reference = |path: &str| {
            let mut args = Map::new();
            args.insert(
                "#l".into(),
                json!({"resultOf": "c0", "name": "Core/echo", "path": path}),
            );
            args.insert(
                "#r".into(),
                json!({"resultOf": "c0", "name": "Core/echo", "path": path}),
            );
            args
        };
        // Each reference alone fits 2,000 bytes; both together do not.
        let e = resolve_references(reference(""), &responses, 2_000).unwrap_err();
        assert_eq!(e.kind, MethodErrorKind::RequestTooLarge);
        let e = resolve_references(reference("/list/*/x"), &responses, 2_000).unwrap_err();
        assert_eq!(e.kind, MethodErrorKind::RequestTooLarge);
        let ok = resolve_references(reference("/list/0/x"), &responses, 2_000).unwrap();
        assert_eq!(ok["l"], json!("a".repeat(600)));
        assert_eq!(json_size_within(&json!({"a": [1, 2]}), 100), Some(11));
        assert_eq!(json_size_within(&json!("a".repeat(200)), 100), None);
    }
}
