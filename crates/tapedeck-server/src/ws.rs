//! `/v1/events`: the caller's recording events over a WebSocket. (The
//! frames socket belongs to its source: `source/frames/socket.rs`.)

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use serde_json::json;

use crate::app::AppState;
use crate::auth::Principal;

/// `GET /v1/events`: every event of the caller's recordings (all, for admins), as JSON text.
pub async fn events(State(s): State<AppState>, p: Principal, ws: WebSocketUpgrade) -> Response {
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
