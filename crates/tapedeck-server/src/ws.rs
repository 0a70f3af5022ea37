//! `/v1/events`: the caller's recording events over a WebSocket. (The
//! frames socket belongs to its source: `source/frames/socket.rs`.)

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::response::Response;
use serde_json::json;

use crate::app::AppState;
use crate::auth::Principal;
use crate::error::ApiError;

/// A WebSocket upgrade whose absence is the API's own 400 `not_websocket`
/// (axum's rejection is plain text).
pub struct Upgrade(pub WebSocketUpgrade);

impl<S: Send + Sync> FromRequestParts<S> for Upgrade {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        WebSocketUpgrade::from_request_parts(parts, state)
            .await
            .map(Upgrade)
            .map_err(|e| {
                ApiError::bad_request(
                    "not_websocket",
                    format!("this route is a WebSocket: {}", e.body_text()),
                )
            })
    }
}

/// `GET /v1/events`: every event of the caller's recordings (all, for admins), as JSON text.
pub async fn events(State(s): State<AppState>, p: Principal, Upgrade(ws): Upgrade) -> Response {
    let rx = s.events.subscribe();
    ws.on_upgrade(move |socket| events_loop(socket, rx, p))
}

async fn events_loop(
    mut socket: WebSocket,
    mut rx: tokio::sync::broadcast::Receiver<tapedeck_core::event::Event>,
    p: Principal,
) {
    loop {
        tokio::select! {
            ev = rx.recv() => match ev {
                Ok(ev) => {
                    if !p.can_see(&ev.recording.owner) { continue; }
                    let text = serde_json::to_string(&ev).unwrap_or_default();
                    if socket.send(Message::Text(text.into())).await.is_err() { break; }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    let m = json!({"type": "events.lagged", "missed": n}).to_string();
                    if socket.send(Message::Text(m.into())).await.is_err() { break; }
                }
                Err(_) => break,
            },
            msg = socket.recv() => match msg {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                _ => {}
            }
        }
    }
}
