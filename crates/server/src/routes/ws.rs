//! The WebSocket: subscribe to topics with the last sequence seen; the missed events are replayed
//! from the stream log before going live. Store managers get only what concerns their stores.

use axum::extract::State;
use serde::Deserialize;
use serde_json::json;

use crate::auth::Principal;
use crate::authz::event as visible;
use crate::hub::{frame, matches};
use crate::state::AppState;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
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

pub async fn ws_handler(
    State(state): State<AppState>,
    principal: Principal,
    ws: WebSocketUpgrade,
) -> Response {
    ws.on_upgrade(move |socket| session(state, principal, socket))
}

pub(crate) async fn session(state: AppState, principal: Principal, mut socket: WebSocket) {
    let hub = state.hub();
    let mut rx = hub.subscribe();
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

pub(crate) async fn replay(
    state: &AppState,
    principal: &Principal,
    topics: &[String],
    since: i64,
    last_sent: &mut i64,
    socket: &mut WebSocket,
) -> bool {
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
