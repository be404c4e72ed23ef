//! Typed access to method arguments: every wrong type is an `invalidArguments` error
//! naming the argument (RFC 8620 §3.6.2), never a panic.

use super::error::{MethodError, MethodErrorKind};
use crate::ids;
use bulwark_store::AccountId;
use serde_json::{Map, Value};

pub struct Args(pub Map<String, Value>);

fn wrong(name: &str, want: &str) -> MethodError {
    MethodError::invalid_arguments(format!("{name} must be {want}"))
}

impl Args {
    pub fn get(&self, name: &str) -> Option<&Value> {
        match self.0.get(name) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    pub fn take(&mut self, name: &str) -> Option<Value> {
        match self.0.remove(name) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    /// `accountId` must be the authenticated account (RFC 8620 §3.6.2 accountNotFound).
    pub fn account(&self, me: AccountId) -> Result<AccountId, MethodError> {
        match self.get("accountId") {
            Some(Value::String(s)) => match ids::parse_account(s) {
                Some(a) if a == me => Ok(a),
                _ => Err(MethodError::new(
                    MethodErrorKind::AccountNotFound,
                    format!("no account {s}"),
                )),
            },
            None => Err(MethodError::invalid_arguments("accountId is required")),
            Some(_) => Err(wrong("accountId", "a string")),
        }
    }

    pub fn opt_str(&self, name: &str) -> Result<Option<&str>, MethodError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(wrong(name, "a string")),
        }
    }

    pub fn opt_bool(&self, name: &str) -> Result<Option<bool>, MethodError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(wrong(name, "a boolean")),
        }
    }

    pub fn bool_or(&self, name: &str, default: bool) -> Result<bool, MethodError> {
        Ok(self.opt_bool(name)?.unwrap_or(default))
    }

    /// An `UnsignedInt` (RFC 8620 §1.3: 0 ≤ n ≤ 2^53-1).
    pub fn opt_uint(&self, name: &str) -> Result<Option<u64>, MethodError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .filter(|v| *v < (1 << 53))
                .map(Some)
                .ok_or_else(|| wrong(name, "an unsigned integer")),
            Some(_) => Err(wrong(name, "an unsigned integer")),
        }
    }

    /// An `Int` (may be negative).
    pub fn opt_int(&self, name: &str) -> Result<Option<i64>, MethodError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| wrong(name, "an integer")),
            Some(_) => Err(wrong(name, "an integer")),
        }
    }

    pub fn opt_str_list(&self, name: &str) -> Result<Option<Vec<String>>, MethodError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| wrong(name, "an array of strings"))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(wrong(name, "an array of strings")),
        }
    }

    pub fn opt_object(&self, name: &str) -> Result<Option<&Map<String, Value>>, MethodError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(_) => Err(wrong(name, "an object")),
        }
    }

    /// `properties` for /get: `None` means "all default properties". Unknown names are
    /// invalidArguments (RFC 8620 §5.1).
    pub fn properties(&self, known: &[&str], default: &[&str]) -> Result<Vec<String>, MethodError> {
        match self.opt_str_list("properties")? {
            None => Ok(default.iter().map(|s| s.to_string()).collect()),
            Some(props) => {
                for p in &props {
                    if !known.contains(&p.as_str()) && !p.starts_with("header:") {
                        return Err(MethodError::invalid_arguments(format!(
                            "unknown property {p}"
                        )));
                    }
                }
                Ok(props)
            }
        }
    }
}

/// Copies the wanted properties of a full object (always with `id`).
pub fn filter_properties(full: Map<String, Value>, properties: &[String]) -> Value {
    let mut out = Map::new();
    if let Some(id) = full.get("id") {
        out.insert("id".into(), id.clone());
    }
    for p in properties {
        if let Some(v) = full.get(p) {
            out.insert(p.clone(), v.clone());
        }
    }
    Value::Object(out)
}
