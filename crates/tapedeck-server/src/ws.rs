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

/// `GET /v1/events`: every event of the caller's recordings (all, for
/// admins), and of the recordings of rooms the caller is in, as JSON text.
pub async fn events(State(s): State<AppState>, p: Principal, Upgrade(ws): Upgrade) -> Response {
    let rx = s.events.subscribe();
    ws.on_upgrade(move |socket| events_loop(socket, rx, p, s))
}

/// Whether `p` sees `rec`'s events: their own, or a room's they are in
/// (once a member, remembered for the socket; others are asked again, as
/// they may join later).
async fn sees(
    s: &AppState,
    p: &Principal,
    rec: &tapedeck_core::recording::Recording,
    rooms: &mut std::collections::HashSet<tapedeck_core::RoomId>,
) -> bool {
    if p.can_see(&rec.owner) {
        return true;
    }
    let Some(room) = crate::source::room_of(rec) else {
        return false;
    };
    if rooms.contains(&room) {
        return true;
    }
    let member = match s.repo.room(room).await {
        Ok(Some(r)) => r.host == p.user || s.repo.is_member(&r, &p.user).await.unwrap_or(false),
        _ => false,
    };
    if member {
        rooms.insert(room);
    }
    member
}

async fn events_loop(
    mut socket: WebSocket,
    mut rx: tokio::sync::broadcast::Receiver<tapedeck_core::event::Event>,
    p: Principal,
    s: AppState,
) {
    let mut rooms = std::collections::HashSet::new();
    loop {
        tokio::select! {
            ev = rx.recv() => match ev {
                Ok(ev) => {
                    if !sees(&s, &p, &ev.recording, &mut rooms).await { continue; }
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
