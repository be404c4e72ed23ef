//! JMAP errors: request-level problem documents (RFC 8620 §3.6.1, RFC 7807) and
//! method-level `error` responses (RFC 8620 §3.6.2) — and set-level SetErrors (§5.3).

use bulwark_store::StoreError;
use serde_json::{Value, json};

/// A request-level error: the whole request is refused with an HTTP 4xx problem document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// §3.6.1: the client used a capability the server does not support.
    #[error("unknown capability: {0}")]
    UnknownCapability(String),
    #[error("the request is not valid JSON: {0}")]
    NotJson(String),
    #[error("the request is not a valid JMAP Request object: {0}")]
    NotRequest(String),
    /// §3.6.1: a server limit was exceeded; `limit` names the session-resource property.
    #[error("request exceeds the {limit} limit")]
    Limit {
        limit: &'static str,
        description: String,
    },
}

impl RequestError {
    pub fn type_uri(&self) -> &'static str {
        match self {
            RequestError::UnknownCapability(_) => "urn:ietf:params:jmap:error:unknownCapability",
            RequestError::NotJson(_) => "urn:ietf:params:jmap:error:notJSON",
            RequestError::NotRequest(_) => "urn:ietf:params:jmap:error:notRequest",
            RequestError::Limit { .. } => "urn:ietf:params:jmap:error:limit",
        }
    }

    /// The RFC 7807 problem document.
    pub fn to_problem(&self) -> Value {
        let mut v = json!({ "type": self.type_uri(), "status": 400, "detail": self.to_string() });
        if let RequestError::Limit { limit, description } = self {
            v["limit"] = json!(limit);
            v["detail"] = json!(description);
        }
        v
    }
}

/// A method-level error (RFC 8620 §3.6.2 and the per-method errors of §5 and RFC 8621).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodError {
    pub kind: MethodErrorKind,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodErrorKind {
    ServerUnavailable,
    ServerFail,
    ServerPartialFail,
    UnknownMethod,
    InvalidArguments,
    InvalidResultReference,
    Forbidden,
    AccountNotFound,
    AccountNotSupportedByMethod,
    AccountReadOnly,
    RequestTooLarge,
    CannotCalculateChanges,
    StateMismatch,
    AnchorNotFound,
    UnsupportedSort,
    UnsupportedFilter,
    TooManyChanges,
    FromAccountNotFound,
    /// RFC 9404 §7: a data type Blob/lookup does not know, or whose capability is unused.
    UnknownDataType,
}

impl MethodErrorKind {
    pub fn as_str(self) -> &'static str {
        use MethodErrorKind::*;
        match self {
            ServerUnavailable => "serverUnavailable",
            ServerFail => "serverFail",
            ServerPartialFail => "serverPartialFail",
            UnknownMethod => "unknownMethod",
            InvalidArguments => "invalidArguments",
            InvalidResultReference => "invalidResultReference",
            Forbidden => "forbidden",
            AccountNotFound => "accountNotFound",
            AccountNotSupportedByMethod => "accountNotSupportedByMethod",
            AccountReadOnly => "accountReadOnly",
            RequestTooLarge => "requestTooLarge",
            CannotCalculateChanges => "cannotCalculateChanges",
            StateMismatch => "stateMismatch",
            AnchorNotFound => "anchorNotFound",
            UnsupportedSort => "unsupportedSort",
            UnsupportedFilter => "unsupportedFilter",
            TooManyChanges => "tooManyChanges",
            FromAccountNotFound => "fromAccountNotFound",
            UnknownDataType => "unknownDataType",
        }
    }
}

impl MethodError {
    pub fn new(kind: MethodErrorKind, description: impl Into<String>) -> Self {
        MethodError {
            kind,
            description: Some(description.into()),
        }
    }
    pub fn invalid_arguments(description: impl Into<String>) -> Self {
        Self::new(MethodErrorKind::InvalidArguments, description)
    }
    pub fn to_json(&self) -> Value {
        let mut v = json!({ "type": self.kind.as_str() });
        if let Some(d) = &self.description {
            v["description"] = json!(d);
        }
        v
    }
}

impl From<StoreError> for MethodError {
    fn from(e: StoreError) -> Self {
        match &e {
            StoreError::Unavailable(_) => {
                tracing::debug!(error = %e, "JMAP method: store unavailable");
                MethodError::new(
                    MethodErrorKind::ServerUnavailable,
                    "the mail store is unavailable right now; try again later",
                )
            }
            StoreError::CannotCalculateChanges(_) => {
                MethodError::new(MethodErrorKind::CannotCalculateChanges, e.to_string())
            }
            StoreError::Invalid(_) => MethodError::invalid_arguments(e.to_string()),
            StoreError::Conflict(_) => {
                MethodError::new(MethodErrorKind::StateMismatch, e.to_string())
            }
            StoreError::NotFound(_) | StoreError::AlreadyExists(_) => {
                MethodError::invalid_arguments(e.to_string())
            }
            StoreError::Internal(_) => {
                // Internal error text stays in the log (issue 12: never to a client).
                tracing::error!(error = %e, "JMAP method failed in the store");
                MethodError::new(
                    MethodErrorKind::ServerFail,
                    "internal error in the mail store",
                )
            }
        }
    }
}

/// A per-object error inside a /set, /copy or /import response (RFC 8620 §5.3).
#[derive(Debug, Clone, PartialEq)]
pub struct SetError {
    pub kind: &'static str,
    pub description: Option<String>,
    /// `invalidProperties`: the offending properties.
    pub properties: Vec<String>,
    /// Extra members (e.g. `existingId` for alreadyExists, `notFound` for blobNotFound).
    pub extra: serde_json::Map<String, Value>,
}

impl SetError {
    pub fn new(kind: &'static str, description: impl Into<String>) -> Self {
        SetError {
            kind,
            description: Some(description.into()),
            properties: vec![],
            extra: Default::default(),
        }
    }
    pub fn invalid_properties(props: &[&str], description: impl Into<String>) -> Self {
        let mut e = SetError::new("invalidProperties", description);
        e.properties = props.iter().map(|p| p.to_string()).collect();
        e
    }
    pub fn not_found() -> Self {
        SetError::new("notFound", "no such object")
    }
    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.extra.insert(key.into(), value);
        self
    }
    pub fn to_json(&self) -> Value {
        let mut v = json!({ "type": self.kind });
        if let Some(d) = &self.description {
            v["description"] = json!(d);
        }
        if !self.properties.is_empty() {
            v["properties"] = json!(self.properties);
        }
        if let Value::Object(m) = &mut v {
            for (k, x) in &self.extra {
                m.insert(k.clone(), x.clone());
            }
        }
        v
    }
}

impl From<StoreError> for SetError {
    fn from(e: StoreError) -> Self {
        match &e {
            StoreError::NotFound(_) => SetError::new("notFound", e.to_string()),
            StoreError::AlreadyExists(_) => SetError::new("alreadyExists", e.to_string()),
            StoreError::Invalid(_) => SetError::new("invalidProperties", e.to_string()),
            // RFC 8620 §5.3: another client changed the object first.
            StoreError::Conflict(_) => SetError::new("stateMismatch", e.to_string()),
            StoreError::Unavailable(_) => SetError::new(
                "serverFail",
                "the mail store is unavailable right now; try again later",
            ),
            _ => {
                tracing::error!(error = %e, "JMAP /set failed in the store");
                SetError::new("serverFail", "internal error in the mail store")
            }
        }
    }
}
