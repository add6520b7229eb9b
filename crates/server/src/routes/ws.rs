//! The WebSocket: subscribe to topics with the last sequence seen; the missed events are replayed
//! from the stream log before going live. Store managers get only what concerns their stores.
//!
//! The socket opens with a ticket (`POST /api/v1/ws/ticket`), never the key. It closes with code
//! 4401 as soon as its key is revoked (the server re-reads the key table every `KEY_POLL`).
//! Client messages are at most [`MAX_MESSAGE`] bytes and name at most [`MAX_TOPICS`] topics.

use axum::extract::State;
use serde::Deserialize;
use serde_json::json;

use crate::auth::Principal;
use crate::authz::event as visible;
use crate::hub::{frame, matches};
use crate::state::AppState;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use tokio::sync::broadcast;

/// What a client asks for.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientMsg {
    Subscribe {
        topics: Vec<String>,
        /// The last sequence number the client saw; events after it are replayed.
        #[serde(default)]
        since: Option<i64>,
    },
    Ping,
}

/// The largest client message (a subscribe names topics; nothing needs more).
pub const MAX_MESSAGE: usize = 16 * 1024;
/// Topics one subscription may name, and the longest topic.
pub const MAX_TOPICS: usize = 32;
pub const MAX_TOPIC_LEN: usize = 64;
/// The close code of a socket whose key was revoked.
pub const CLOSE_REVOKED: u16 = 4401;

pub async fn ws_handler(
    State(state): State<AppState>,
    principal: Principal,
    ws: WebSocketUpgrade,
) -> Response {
    ws.max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_upgrade(move |socket| session(state, principal, socket))
}

/// The reason a subscription is refused, if it is.
fn check_topics(topics: &[String]) -> Option<String> {
    if topics.len() > MAX_TOPICS {
        return Some(format!(
            "topics: at most {MAX_TOPICS}, got {}",
            topics.len()
        ));
    }
    topics
        .iter()
        .position(|t| t.is_empty() || t.len() > MAX_TOPIC_LEN)
        .map(|i| format!("topics[{i}]: 1 to {MAX_TOPIC_LEN} bytes"))
}

pub(crate) async fn session(state: AppState, principal: Principal, mut socket: WebSocket) {
    let hub = state.hub();
    let mut rx = hub.subscribe();
    let mut keys = state.watch_keys();
    let mut topics: Vec<String> = Vec::new();
    let mut last_sent: i64 = i64::MAX;
    let _ = socket
        .send(Message::Text(
            json!({"type": "hello", "role": principal.role, "head": hub.head()})
                .to_string()
                .into(),
        ))
        .await;
    loop {
        tokio::select! {
            msg = socket.recv() => {
                let Some(Ok(msg)) = msg else { break };
                let text = match msg {
                    Message::Text(t) => t.to_string(),
                    Message::Close(_) => break,
                    _ => continue,
                };
                match serde_json::from_str::<ClientMsg>(&text) {
                    Ok(ClientMsg::Subscribe { topics: t, .. }) if check_topics(&t).is_some() => {
                        let message = check_topics(&t).unwrap_or_default();
                        let err = json!({"type": "error", "code": "bad_request", "message": message});
                        if socket.send(Message::Text(err.to_string().into())).await.is_err() {
                            break;
                        }
                    }
                    Ok(ClientMsg::Subscribe { topics: t, since }) => {
                        topics = t;
                        let head = hub.head();
                        last_sent = since.unwrap_or(head);
                        // Acknowledge, replay from the log what they missed, then go on live.
                        let ack = json!({"type": "subscribed", "topics": topics, "head": head});
                        if socket.send(Message::Text(ack.to_string().into())).await.is_err() {
                            break;
                        }
                        if let Some(since) = since {
                            if !replay(&state, &principal, &topics, since, &mut last_sent, &mut socket).await {
                                break;
                            }
                        }
                    }
                    Ok(ClientMsg::Ping) => {
                        if socket.send(Message::Text(json!({"type": "pong", "head": hub.head()}).to_string().into())).await.is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        let err = json!({"type": "error", "code": "bad_request", "message": e.to_string()});
                        if socket.send(Message::Text(err.to_string().into())).await.is_err() {
                            break;
                        }
                    }
                }
            }
            changed = keys.changed() => {
                if changed.is_err() || !state.key_is_live(&principal.key_hash).await {
                    let bye = CloseFrame { code: CLOSE_REVOKED, reason: "key revoked".into() };
                    let _ = socket.send(Message::Close(Some(bye))).await;
                    break;
                }
            }
            ev = rx.recv() => {
                match ev {
                    Ok(e) => {
                        if topics.is_empty() || e.seq <= last_sent || !matches(&topics, &e.topic) {
                            continue;
                        }
                        last_sent = e.seq;
                        if let Some(d) = visible(&principal, &e) {
                            if socket.send(frame(&e, d)).await.is_err() {
                                break;
                            }
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        // Too slow for the broadcast buffer: catch up from the durable log.
                        let since = last_sent;
                        if !replay(&state, &principal, &topics, since, &mut last_sent, &mut socket).await {
                            break;
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        }
    }
}

/// Replays what a client missed after `since`, page by page; or, when the log no longer holds
/// all of it (or it is more than `MAX_REPLAY` events), tells the client `too_old` and goes on
/// from the head. False when the socket is gone.
pub(crate) async fn replay(
    state: &AppState,
    principal: &Principal,
    topics: &[String],
    since: i64,
    last_sent: &mut i64,
    socket: &mut WebSocket,
) -> bool {
    match state.hub().too_old(since).await {
        Err(_) => return false,
        Ok(Some(oldest)) => {
            let head = state.hub().head();
            *last_sent = head;
            let msg = json!({
                "type": "too_old", "since": since, "oldest": oldest, "head": head,
                "message": format!("the events after {since} are no longer all kept (or more than {}): refetch over the REST API, then subscribe without since", crate::hub::MAX_REPLAY),
            });
            return socket
                .send(Message::Text(msg.to_string().into()))
                .await
                .is_ok();
        }
        Ok(None) => {}
    }
    let mut from = since;
    loop {
        let Ok(batch) = state.hub().replay(from, 1000).await else {
            return false;
        };
        let n = batch.len();
        for e in batch {
            from = e.seq;
            *last_sent = e.seq;
            if !matches(topics, &e.topic) {
                continue;
            }
            if let Some(d) = visible(principal, &e) {
                if socket.send(frame(&e, d)).await.is_err() {
                    return false;
                }
            }
        }
        if n < 1000 {
            return true;
        }
    }
}
