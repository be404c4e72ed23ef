//! Push: EventSource (RFC 8620 §7.3) and JMAP over WebSocket (RFC 8887), both fed by
//! [`bulwark_store::Store::subscribe`].

use crate::JmapServer;
use crate::api::{self, RequestError};
use crate::http::{Principal, authenticate, limits, problem, remote_ip};
use crate::ids;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use bulwark_store::collections::names;
use bulwark_store::{AccountId, MailChanged, ModSeq, StateChange};
use futures::stream::Stream;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// Longest ping interval we accept (seconds); longer requests are clamped.
pub const MAX_PING_SECS: u64 = 3600;
/// Data types kept in an account collection: their state is the collection's state (the
/// modseq of its last write), pushed when a commit names the collection.
pub const COLLECTION_TYPES: [(&str, &str); 3] = [
    ("Identity", names::IDENTITIES),
    ("EmailSubmission", names::SUBMISSIONS),
    ("VacationResponse", names::VACATION),
];

/// What one or more queued [`StateChange`]s add up to.
#[derive(Debug, Default, Clone)]
pub struct Pending {
    /// The newest account modseq (the mail types' state).
    newest: ModSeq,
    /// Collection types written, each at the modseq of its newest write.
    collections: HashMap<&'static str, ModSeq>,
    /// A change that did not say which collections it wrote (a node that lost its change
    /// feed): every collection type's state is read.
    unknown: bool,
    /// The mail kinds the changes logged, and whether mail was delivered.
    mail: MailChanged,
    /// A change that did not say which mail kinds it logged: every mail type is pushed.
    mail_unknown: bool,
}

impl Pending {
    pub fn add(&mut self, change: &StateChange) {
        self.newest = self.newest.max(change.modseq);
        match &change.collections {
            Some(written) => {
                for (ty, collection) in COLLECTION_TYPES {
                    if written.iter().any(|w| w == collection) {
                        let at = self.collections.entry(ty).or_default();
                        *at = (*at).max(change.modseq);
                    }
                }
            }
            None => self.unknown = true,
        }
        match &change.mail {
            Some(m) => {
                self.mail.email |= m.email;
                self.mail.mailbox |= m.mailbox;
                self.mail.thread |= m.thread;
                self.mail.delivery |= m.delivery;
            }
            None => self.mail_unknown = true,
        }
    }

    /// Everything may have changed up to `modseq` (a lagged receiver, a resync request).
    pub fn everything(modseq: ModSeq) -> Pending {
        Pending {
            newest: modseq,
            collections: HashMap::new(),
            unknown: true,
            mail: MailChanged::default(),
            mail_unknown: true,
        }
    }

    /// Which mail types to push (each has its own state, [`bulwark_store::Store::mail_states`]):
    /// those whose kind the changes logged (all when unknown),
    /// and `EmailDelivery` (RFC 8621 §1.5, with the Email state) only for delivered mail (or
    /// when unknown, as new mail may be among what was missed).
    fn mail_types(&self) -> [(&'static str, bool); 4] {
        let (m, all) = (&self.mail, self.mail_unknown);
        [
            ("Email", all || m.email),
            ("Mailbox", all || m.mailbox),
            ("Thread", all || m.thread),
            ("EmailDelivery", all || m.delivery),
        ]
    }

    /// Folds in every change already queued on `rx` (several commits: one push).
    fn drain(&mut self, rx: &mut broadcast::Receiver<StateChange>) {
        loop {
            match rx.try_recv() {
                Ok(c) => self.add(&c),
                Err(broadcast::error::TryRecvError::Lagged(_)) => self.unknown = true,
                Err(_) => return,
            }
        }
    }
}

/// A StateChange object (RFC 8620 §7.1) for `types` (None = all): the mail types with the
/// account's state; each collection type the changes wrote with its new state (read from
/// the store when the changes did not say which were written).
pub async fn state_change(
    server: &JmapServer,
    account: AccountId,
    pending: &Pending,
    types: Option<&[String]>,
) -> Option<Value> {
    let wanted = |t: &str| types.is_none_or(|w| w.iter().any(|x| x == t || x == "*"));
    let mail: Vec<&str> = pending
        .mail_types()
        .into_iter()
        .filter(|(t, on)| *on && wanted(t))
        .map(|(t, _)| t)
        .collect();
    let mut changed = Map::new();
    if !mail.is_empty() {
        // Per-type states (a store that cannot answer now: the newest modseq, which is
        // never older than any type's state, so the client re-reads and loses nothing).
        let states = server.store.mail_states(account).await.ok();
        for ty in mail {
            let state = match (states, ty) {
                (Some(s), "Mailbox") => s.mailbox,
                (Some(s), "Thread") => s.thread,
                (Some(s), _) => s.email,
                (None, _) => pending.newest,
            };
            changed.insert(ty.to_string(), json!(ids::state(state)));
        }
    }
    for (ty, collection) in COLLECTION_TYPES {
        if !wanted(ty) {
            continue;
        }
        let state = match pending.collections.get(ty) {
            Some(modseq) => Some(*modseq),
            None if pending.unknown => server
                .store
                .collection_state(account, collection)
                .await
                .ok(),
            None => None,
        };
        if let Some(state) = state {
            changed.insert(ty.to_string(), json!(ids::state(state)));
        }
    }
    if changed.is_empty() {
        return None;
    }
    Some(json!({ "@type": "StateChange", "changed": { ids::account_id(account): changed } }))
}

/// The credential a push connection was opened with, kept to check it again while the
/// connection lives (issue 13 item 8: sign-out, device revocation and password change must
/// end open push sessions, not only new requests).
#[derive(Clone)]
pub struct PushCredential {
    /// Only the `Authorization` header (from the request or `?access_token=`).
    headers: HeaderMap,
    remote: IpAddr,
    account: AccountId,
}

impl PushCredential {
    /// False once the credential no longer authenticates this account (revoked or expired
    /// token, changed password, deleted app password or account). A store outage or the
    /// login throttle keeps the connection: they say nothing about the credential.
    pub async fn still_valid(&self, server: &JmapServer) -> bool {
        match authenticate(server, &self.headers, self.remote).await {
            Ok(p) => p.account == self.account,
            Err(r) => r.status() != StatusCode::UNAUTHORIZED,
        }
    }
}

/// A ticking interval that does not fire at once and skips missed ticks.
fn every(period: Duration) -> tokio::time::Interval {
    let period = period.max(Duration::from_millis(100));
    let mut i = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    i
}

/// Browsers cannot set headers on EventSource/WebSocket: accept `?access_token=` too.
/// Returns who it is, the credential to check again later, and whether it was explicit
/// (`?access_token=`) rather than one a browser attaches by itself (`Authorization`).
fn authenticate_push<'a>(
    server: &'a JmapServer,
    req: &Request,
    query: &HashMap<String, String>,
) -> impl std::future::Future<Output = Result<(Principal, PushCredential, bool), Response>> + Send + 'a
{
    let mut headers = HeaderMap::new();
    let remote = remote_ip(req.extensions());
    let mut explicit = false;
    if let Some(v) = req.headers().get(header::AUTHORIZATION) {
        headers.insert(header::AUTHORIZATION, v.clone());
    } else if let Some(t) = query.get("access_token")
        && let Ok(v) = HeaderValue::from_str(&format!("Bearer {t}"))
    {
        headers.insert(header::AUTHORIZATION, v);
        explicit = true;
    }
    async move {
        let principal = authenticate(server, &headers, remote).await?;
        let credential = PushCredential {
            headers,
            remote,
            account: principal.account,
        };
        Ok((principal, credential, explicit))
    }
}

struct EsState {
    server: Arc<JmapServer>,
    credential: PushCredential,
    recheck: tokio::time::Interval,
    rx: broadcast::Receiver<bulwark_store::StateChange>,
    account: AccountId,
    types: Option<Vec<String>>,
    ping: Option<tokio::time::Interval>,
    ping_secs: u64,
    close_after_state: bool,
    done: bool,
}

pub async fn eventsource_handler(
    State(server): State<Arc<JmapServer>>,
    Query(query): Query<HashMap<String, String>>,
    req: Request,
) -> Response {
    let (principal, credential, _) = match authenticate_push(&server, &req, &query).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let types = match query.get("types").map(String::as_str) {
        None | Some("*") | Some("") => None,
        Some(list) => Some(list.split(',').map(str::to_string).collect::<Vec<_>>()),
    };
    let close_after_state = query.get("closeafter").is_some_and(|c| c == "state");
    let requested: u64 = query.get("ping").and_then(|p| p.parse().ok()).unwrap_or(0);
    // §7.3: the server may pick a longer interval than asked (and says so in the ping).
    let ping_secs = if requested == 0 {
        0
    } else {
        requested.clamp(server.cfg.min_ping_secs.max(1), MAX_PING_SECS)
    };
    let ping = (ping_secs > 0).then(|| {
        let mut i = tokio::time::interval_at(
            tokio::time::Instant::now() + Duration::from_secs(ping_secs),
            Duration::from_secs(ping_secs),
        );
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        i
    });
    let state = EsState {
        server: server.clone(),
        credential,
        recheck: every(server.cfg.push_recheck),
        rx: server.store.subscribe(principal.account),
        account: principal.account,
        types,
        ping,
        ping_secs,
        close_after_state,
        done: false,
    };
    // Comments keep a quiet stream inside the listener's idle timeout.
    let keep_alive = KeepAlive::new().interval(server.cfg.push_keepalive);
    let mut r = Sse::new(event_stream(state))
        .keep_alive(keep_alive)
        .into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

fn event_stream(state: EsState) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold(state, |mut st| async move {
        loop {
            if st.done {
                return None;
            }
            let ping_tick = async {
                match st.ping.as_mut() {
                    Some(i) => {
                        i.tick().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                msg = st.rx.recv() => {
                    let mut pending = match msg {
                        Ok(change) => {
                            let mut p = Pending::default();
                            p.add(&change);
                            p
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => {
                            match st.server.store.account_modseq(st.account).await {
                                Ok(m) => Pending::everything(m),
                                Err(_) => continue,
                            }
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    };
                    // Several commits may be queued: one push with the newest states.
                    pending.drain(&mut st.rx);
                    let Some(v) = state_change(&st.server, st.account, &pending, st.types.as_deref()).await else { continue };
                    st.done = st.close_after_state;
                    return Some((Ok(Event::default().event("state").data(v.to_string())), st));
                }
                _ = ping_tick => {
                    let data = json!({ "interval": st.ping_secs }).to_string();
                    return Some((Ok(Event::default().event("ping").data(data)), st));
                }
                _ = st.recheck.tick() => {
                    if !st.credential.still_valid(&st.server).await {
                        tracing::info!(account = %st.credential.account, "EventSource closed: its credential is no longer valid");
                        return None;
                    }
                }
            }
        }
    })
}

/// `GET /jmap/ws` (RFC 8887 §4): the `jmap` subprotocol.
pub async fn websocket_handler(
    State(server): State<Arc<JmapServer>>,
    Query(query): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
    req: Request,
) -> Response {
    let (principal, credential, explicit) = match authenticate_push(&server, &req, &query).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    // Cross-site WebSocket hijacking (issue 13 item 19): a page on another origin can open a
    // WebSocket to us and the browser attaches the user's remembered credentials by itself.
    // Only an explicit `?access_token=` may come from a foreign origin.
    if !explicit && !same_origin(req.headers()) {
        return problem(
            StatusCode::FORBIDDEN,
            "about:blank",
            "WebSocket from a foreign Origin; pass the token as access_token",
        );
    }
    let max = server.cfg.max_size_request;
    ws.protocols(["jmap"])
        .max_message_size(max)
        .on_upgrade(move |socket| serve_websocket(server, principal.account, credential, socket))
}

/// True without an `Origin` header (not a browser) or when it names the host the request
/// was sent to (RFC 6454 §7; RFC 6455 §10.2).
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let (Ok(origin), Some(host)) = (
        origin.to_str(),
        headers.get(header::HOST).and_then(|h| h.to_str().ok()),
    ) else {
        return false;
    };
    let authority = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    authority.is_some_and(|a| a.eq_ignore_ascii_case(host.trim()))
}

fn ws_request_error(e: &RequestError, request_id: Option<&Value>) -> Value {
    let mut v = e.to_problem();
    v["@type"] = json!("RequestError");
    if let Some(id) = request_id {
        v["requestId"] = id.clone();
    }
    v
}

/// Handles one WebSocket message; `None` when nothing is to be answered.
async fn handle_ws_text(
    server: &JmapServer,
    account: AccountId,
    text: &str,
    push: &mut Option<(
        broadcast::Receiver<bulwark_store::StateChange>,
        Option<Vec<String>>,
    )>,
) -> Option<Value> {
    if text.len() > server.cfg.max_size_request {
        let e = RequestError::Limit {
            limit: "maxSizeRequest",
            description: "message too large".into(),
        };
        return Some(ws_request_error(&e, None));
    }
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return Some(ws_request_error(
                &RequestError::NotJson(e.to_string()),
                None,
            ));
        }
    };
    let request_id = value.get("id").cloned();
    match value.get("@type").and_then(Value::as_str) {
        // RFC 8887 §4.3.1
        Some("Request") => {
            let mut obj = value;
            if let Value::Object(m) = &mut obj {
                m.remove("@type");
                m.remove("id");
            }
            match api::parse_request_value(obj, limits(server)) {
                Ok(req) => {
                    let mut resp = api::process(server, account, req).await;
                    resp["@type"] = json!("Response");
                    if let Some(id) = request_id {
                        resp["requestId"] = id;
                    }
                    Some(resp)
                }
                Err(e) => Some(ws_request_error(&e, request_id.as_ref())),
            }
        }
        // RFC 8887 §4.3.5
        Some("WebSocketPushEnable") => {
            let types = value.get("dataTypes").and_then(Value::as_array).map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            });
            *push = Some((server.store.subscribe(account), types));
            if value.get("pushState").is_some() {
                // We cannot replay history; send the current state so the client resyncs.
                if let Ok(m) = server.store.account_modseq(account).await {
                    let types = push.as_ref().and_then(|p| p.1.clone());
                    return state_change(
                        server,
                        account,
                        &Pending::everything(m),
                        types.as_deref(),
                    )
                    .await;
                }
            }
            None
        }
        Some("WebSocketPushDisable") => {
            *push = None;
            None
        }
        _ => Some(ws_request_error(
            &RequestError::NotRequest("unknown @type".into()),
            request_id.as_ref(),
        )),
    }
}

/// RFC 6455 §7.4.1: 1008, the connection violates policy (here: its credential ended).
const CLOSE_POLICY: u16 = 1008;

async fn serve_websocket(
    server: Arc<JmapServer>,
    account: AccountId,
    credential: PushCredential,
    mut socket: WebSocket,
) {
    let mut push: Option<(
        broadcast::Receiver<bulwark_store::StateChange>,
        Option<Vec<String>>,
    )> = None;
    let mut recheck = every(server.cfg.push_recheck);
    let mut keep_alive = every(server.cfg.push_keepalive);
    loop {
        let next_push = async {
            match push.as_mut() {
                Some((rx, _)) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        let outgoing = tokio::select! {
            msg = socket.recv() => match msg {
                Some(Ok(Message::Text(t))) => handle_ws_text(&server, account, t.as_str(), &mut push).await,
                Some(Ok(Message::Binary(_))) => Some(ws_request_error(&RequestError::NotJson("binary frames are not JMAP".into()), None)),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => None,
            },
            change = next_push => {
                let pending = match change {
                    Ok(c) => {
                        let mut p = Pending::default();
                        p.add(&c);
                        if let Some((rx, _)) = push.as_mut() {
                            p.drain(rx);
                        }
                        Some(p)
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        server.store.account_modseq(account).await.ok().map(Pending::everything)
                    }
                    Err(broadcast::error::RecvError::Closed) => { push = None; None }
                };
                match pending {
                    Some(p) => {
                        let types = push.as_ref().and_then(|p| p.1.clone());
                        state_change(&server, account, &p, types.as_deref()).await
                    }
                    None => None,
                }
            },
            _ = recheck.tick() => {
                if credential.still_valid(&server).await {
                    continue;
                }
                tracing::info!(%account, "WebSocket closed: its credential is no longer valid");
                let frame = CloseFrame {
                    code: CLOSE_POLICY,
                    reason: "the credential of this session is no longer valid".into(),
                };
                let _ = socket.send(Message::Close(Some(frame))).await;
                return;
            }
            _ = keep_alive.tick() => {
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
                continue;
            }
        };
        if let Some(v) = outgoing
            && socket
                .send(Message::Text(v.to_string().into()))
                .await
                .is_err()
        {
            return;
        }
    }
}
