//! Result references (RFC 8620 §3.7): an argument `#name: {resultOf, name, path}` is
//! replaced by the value at `path` (a JSON Pointer, RFC 6901, extended with `*`) in the
//! response of an earlier call.

use super::error::{MethodError, MethodErrorKind};
use serde_json::{Map, Value};

/// Longest pointer we evaluate (bounds work per reference).
pub const MAX_POINTER_LEN: usize = 1024;

fn invalid_ref(description: impl Into<String>) -> MethodError {
    MethodError::new(MethodErrorKind::InvalidResultReference, description)
}

/// Replaces every `#key` argument by its referenced value. `responses` are the method
/// responses so far: `(name, arguments, callId)`.
pub fn resolve_references(
    args: Map<String, Value>,
    responses: &[(String, Value, String)],
) -> Result<Map<String, Value>, MethodError> {
    if !args.keys().any(|k| k.starts_with('#')) {
        return Ok(args);
    }
    let mut out = Map::with_capacity(args.len());
    let mut referenced = Vec::new();
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
        let resolved = evaluate_pointer(result, path).ok_or_else(|| {
            invalid_ref(format!(
                "path {path:?} does not resolve in the {name} response"
            ))
        })?;
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
    if path.len() > MAX_POINTER_LEN {
        return None;
    }
    if path.is_empty() {
        return Some(value.clone());
    }
    let rest = path.strip_prefix('/')?;
    let tokens: Vec<String> = rest.split('/').map(unescape).collect();
    walk(value, &tokens)
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
        Value::Array(items) => {
            // RFC 6901 §4: array indexes are decimal without leading zeros.
            if head.is_empty()
                || (head.len() > 1 && head.starts_with('0'))
                || !head.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            let index: usize = head.parse().ok()?;
            walk(items.get(index)?, tail)
        }
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
        let out = resolve_references(args.clone(), &responses).unwrap();
        assert_eq!(out["ids"], json!(["E1"]));
        args.insert(
            "#ids".into(),
            json!({"resultOf": "c0", "name": "Email/get", "path": "/ids"}),
        );
        let e = resolve_references(args.clone(), &responses).unwrap_err();
        assert_eq!(e.kind, MethodErrorKind::InvalidResultReference);
        args.insert(
            "#ids".into(),
            json!({"resultOf": "c0", "name": "Email/query", "path": "/ids"}),
        );
        args.insert("ids".into(), json!([]));
        let e = resolve_references(args, &responses).unwrap_err();
        assert_eq!(e.kind, MethodErrorKind::InvalidArguments);
    }
}
