//! The JMAP Session resource (RFC 8620 §2), served at `/.well-known/jmap` (§2.2).

use crate::JmapServer;
use crate::api::{
    CAP_BLOB, CAP_CORE, CAP_MAIL, CAP_QUOTA, CAP_SIEVE, CAP_SUBMISSION, CAP_VACATION, CAP_WEBSOCKET,
};
use crate::ids;
use bulwark_store::AccountId;
use serde_json::{Value, json};
use sha2::Digest;

/// Longest mailbox name segment (RFC 8621 §1.3.1 maxSizeMailboxName).
pub const MAX_SIZE_MAILBOX_NAME: usize = 255;
/// Sort properties Email/query supports (RFC 8621 §1.3.1 emailQuerySortOptions).
pub const EMAIL_SORT_OPTIONS: [&str; 7] = [
    "receivedAt",
    "sentAt",
    "size",
    "from",
    "to",
    "subject",
    "hasKeyword",
];

/// The session state: changes when the account's addresses (and so the session) change.
pub async fn session_state(server: &JmapServer, account: AccountId) -> String {
    let addresses = server
        .store
        .account_addresses(account)
        .await
        .unwrap_or_default();
    let digest = sha2::Sha256::digest(format!("{account}|{}|v1", addresses.join(",")).as_bytes());
    hex::encode(&digest[..8])
}

pub async fn session_resource(server: &JmapServer, account: AccountId, username: &str) -> Value {
    let cfg = &server.cfg;
    let base = cfg.base_url.trim_end_matches('/');
    let aid = ids::account_id(account);
    let ws_base = base.replacen("http", "ws", 1);
    json!({
        "capabilities": {
            CAP_CORE: {
                "maxSizeUpload": cfg.max_size_upload,
                "maxConcurrentUpload": cfg.max_concurrent_upload,
                "maxSizeRequest": cfg.max_size_request,
                "maxConcurrentRequests": cfg.max_concurrent_requests,
                "maxCallsInRequest": cfg.max_calls_in_request,
                "maxObjectsInGet": cfg.max_objects_in_get,
                "maxObjectsInSet": cfg.max_objects_in_set,
                "maxSizeResponse": cfg.max_size_response,
                "collationAlgorithms": ["i;ascii-casemap", "i;octet"],
            },
            CAP_MAIL: {},
            CAP_SUBMISSION: {},
            CAP_VACATION: {},
            CAP_BLOB: {},
            CAP_QUOTA: {},
            CAP_SIEVE: {},
            // RFC 8887 §4
            CAP_WEBSOCKET: { "url": format!("{ws_base}/jmap/ws"), "supportsPush": true },
        },
        "accounts": {
            aid.clone(): {
                "name": username,
                "isPersonal": true,
                "isReadOnly": false,
                "accountCapabilities": {
                    // RFC 8621 §1.3.1
                    CAP_MAIL: {
                        "maxMailboxesPerEmail": null,
                        "maxMailboxDepth": null,
                        "maxSizeMailboxName": MAX_SIZE_MAILBOX_NAME,
                        "maxSizeAttachmentsPerEmail": cfg.max_message_size,
                        "emailQuerySortOptions": EMAIL_SORT_OPTIONS,
                        "mayCreateTopLevelMailbox": true,
                    },
                    // RFC 8621 §1.3.2
                    // RFC 4865 FUTURERELEASE: interval and latest date-time.
                    CAP_SUBMISSION: {
                        "maxDelayedSend": crate::submission::MAX_DELAYED_SEND_SECS,
                        "submissionExtensions": {
                            "FUTURERELEASE": [
                                crate::submission::MAX_DELAYED_SEND_SECS.to_string(),
                                crate::mail::body::utc_date(
                                    bulwark_store::now_unix() + crate::submission::MAX_DELAYED_SEND_SECS,
                                ),
                            ],
                        },
                    },
                    CAP_VACATION: {},
                    // RFC 9425 §3: no account capability properties.
                    CAP_QUOTA: {},
                    // RFC 9661 §1.3.1
                    CAP_SIEVE: crate::sieve::account_capability(),
                    // RFC 9404 §2
                    CAP_BLOB: {
                        "maxSizeBlobSet": cfg.max_size_upload,
                        "maxDataSources": crate::blob_ext::MAX_DATA_SOURCES,
                        "supportedTypeNames": crate::blob_ext::LOOKUP_TYPES,
                        "supportedDigestAlgorithms": crate::blob_ext::DIGEST_ALGORITHMS,
                    },
                },
            },
        },
        "primaryAccounts": {
            CAP_MAIL: aid.clone(),
            CAP_SUBMISSION: aid.clone(),
            CAP_VACATION: aid.clone(),
            CAP_QUOTA: aid.clone(),
            CAP_SIEVE: aid.clone(),
        },
        "username": username,
        "apiUrl": format!("{base}/jmap/api"),
        "downloadUrl": format!("{base}/jmap/download/{{accountId}}/{{blobId}}/{{name}}?accept={{type}}"),
        "uploadUrl": format!("{base}/jmap/upload/{{accountId}}/"),
        "eventSourceUrl": format!("{base}/jmap/eventsource?types={{types}}&closeafter={{closeafter}}&ping={{ping}}"),
        "state": session_state(server, account).await,
    })
}
