//! `/v1/events`: the caller's recording events over a WebSocket. (The
//! frames socket belongs to its source: `source/frames/socket.rs`.)

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::response::Response;
use serde_json::json;
use std::time::Duration;
use tapedeck_core::Code;

use crate::http::auth::Principal;
use crate::http::error::ApiError;
use crate::http::state::AppState;

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
                ApiError::new(
                    Code::NotWebsocket,
                    format!("this route is a WebSocket: {}", e.body_text()),
                )
            })
    }
}

/// How often a socket that has been quiet is pinged.
pub const PING_EVERY: Duration = Duration::from_secs(20);
/// A socket from which nothing (not even a pong) came this long is closed.
pub const SILENT_FOR: Duration = Duration::from_secs(60);
/// A message the client does not take this long closes the socket.
pub const SEND_WITHIN: Duration = Duration::from_secs(15);

/// Keeps a WebSocket honest: its owner pings it every [`PING_EVERY`]
/// ([`Keepalive::ticker`]) and closes it once nothing came from the client
/// for [`SILENT_FOR`] (a peer gone without closing: a dropped network, a
/// half-open connection), so no socket is held forever.
pub struct Keepalive {
    last_heard: tokio::time::Instant,
}

impl Default for Keepalive {
    fn default() -> Self {
        Self {
            last_heard: tokio::time::Instant::now(),
        }
    }
}

impl Keepalive {
    /// The ping clock.
    pub fn ticker() -> tokio::time::Interval {
        let mut tick =
            tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick
    }

    /// Something came from the client.
    pub fn heard(&mut self) {
        self.last_heard = tokio::time::Instant::now();
    }

    /// Whether the client has been silent too long.
    pub fn is_silent(&self) -> bool {
        self.last_heard.elapsed() >= SILENT_FOR
    }
}

/// Sends `m`, giving up after [`SEND_WITHIN`] (a client that does not read).
pub async fn send_within(socket: &mut WebSocket, m: Message) -> bool {
    matches!(
        tokio::time::timeout(SEND_WITHIN, socket.send(m)).await,
        Ok(Ok(()))
    )
}

/// `GET /v1/events`: every event of the caller's recordings (all, for
/// admins), and of the recordings of rooms the caller is in, as JSON text.
pub async fn events(
    State(s): State<AppState>,
    crate::http::auth::Authenticated(p, token): crate::http::auth::Authenticated,
    Upgrade(ws): Upgrade,
) -> Result<Response, ApiError> {
    let slot = s
        .sockets
        .take(&p.user, s.config.limits.max_event_sockets_per_user)?;
    let rx = s.events.subscribe();
    Ok(ws.on_upgrade(move |socket| async move {
        events_loop(socket, rx, p, token, s).await;
        drop(slot);
    }))
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
    let Some(room) = crate::engine::source::room_of(rec) else {
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
    token: String,
    s: AppState,
) {
    let mut rooms = std::collections::HashSet::new();
    let mut alive = Keepalive::default();
    let mut ping = Keepalive::ticker();
    loop {
        tokio::select! {
            ev = rx.recv() => match ev {
                Ok(ev) => {
                    if !sees(&s, &p, &ev.recording, &mut rooms).await { continue; }
                    let text = if p.can_see(&ev.recording.owner) {
                        serde_json::to_string(&ev).unwrap_or_default()
                    } else {
                        // A participant of its call: not the host's stream keys.
                        let mut ev = ev;
                        tapedeck_core::output::hide_secrets(&mut ev.recording.outputs);
                        serde_json::to_string(&ev).unwrap_or_default()
                    };
                    if !send_within(&mut socket, Message::Text(text.into())).await { break; }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    let m = json!({"type": "events.lagged", "missed": n}).to_string();
                    if !send_within(&mut socket, Message::Text(m.into())).await { break; }
                }
                Err(_) => break,
            },
            msg = socket.recv() => match msg {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                _ => alive.heard(),
            },
            _ = ping.tick() => {
                // The key may have been revoked (or the JWT expired) since.
                if let Err(e) = crate::http::auth::authenticate(&s, &token).await {
                    let reason: String = format!("{}: {}", e.code, e.message).chars().take(100).collect();
                    let close = axum::extract::ws::CloseFrame { code: 4001, reason: reason.into() };
                    let _ = send_within(&mut socket, Message::Close(Some(close))).await;
                    break;
                }
                if alive.is_silent() || !send_within(&mut socket, Message::Ping(Default::default())).await {
                    break;
                }
            }
        }
    }
}
