//! The call page's socket: `GET /v1/rooms/{id}/call` (WebSocket; the token
//! as `Authorization: Bearer` or `?token=`, a join token or an API key, or
//! the web page's session cookie).
//!
//! The page sends `join` with its SDP offer (what it sends), answers the
//! server's offers (the others' tracks it receives), says when its camera
//! or microphone is off, and leaves. The server sends `joined` (its answer,
//! the room, who the page is), `offer`, `participants`, the room's
//! `recording` events (so everyone sees the REC timer), `error` and `ended`.
//! Only the server offers after the join, so offers never cross.

use axum::extract::ws::{Message, WebSocket};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use serde_json::{Value, json};
use tapedeck_core::Code;
use tapedeck_core::RoomId;
use tapedeck_core::room::{CallMessage, MAX_CALL_MESSAGE_BYTES, Room, parse_call_message};
use tapedeck_core::{ErrorCode, event::Event};
use tokio::sync::{broadcast, mpsc};

use super::whip::{Caller, caller_of_token, open_room};
use crate::http::error::ApiError;
use crate::http::state::AppState;

use crate::http::ws::Upgrade;
use crate::rtc::{Joiner, Offer, PeerId, RoomLimits, Signal};

/// How long a page has to send `join` after connecting.
const JOIN_WITHIN: std::time::Duration = std::time::Duration::from_secs(30);

/// Messages the media server may queue for one page before it is ended.
const SIGNAL_QUEUE: usize = 64;

/// Who a call page is: its token (`Authorization: Bearer` or `?token=`),
/// or the signed-in user's session cookie, from this origin only.
async fn page_caller(
    s: &AppState,
    uri: &Uri,
    headers: &HeaderMap,
    room: RoomId,
) -> Result<Caller, ApiError> {
    let mut bearer = super::whip::bearer(headers).or_else(|| {
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.into_owned())
    });
    if bearer.is_none()
        && let Some(t) = crate::http::cookie::cookie_of(headers)
    {
        crate::http::cookie::check_cookie_request(s, &axum::http::Method::GET, headers, &t)?;
        bearer = Some(t);
    }
    caller_of_token(s, bearer.as_deref(), room).await
}

/// `GET /v1/rooms/{id}/ice-servers`: the STUN and TURN servers the call
/// page hands its peer connection (TURN credentials made for this caller).
pub async fn ice_servers(
    State(s): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<axum::Json<Value>, ApiError> {
    let room_id: RoomId = id.parse()?;
    let who = page_caller(&s, &uri, &headers, room_id).await?;
    open_room(&s, &id).await?;
    let handed = crate::rtc::ice::hand_all(
        &s.config.rtc.ice_servers,
        &who.key(room_id),
        crate::now_ms() / 1000,
    );
    Ok(axum::Json(json!({ "ice_servers": handed })))
}

/// `GET /v1/rooms/{id}/call`.
pub async fn socket(
    State(s): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    upgrade: Result<Upgrade, ApiError>,
) -> Result<Response, ApiError> {
    let room_id: RoomId = id.parse()?;
    let who = page_caller(&s, &uri, &headers, room_id).await?;
    let room = open_room(&s, &id).await?;
    // Who and where first (401, 404, 409), then whether it is a WebSocket.
    let Upgrade(ws) = upgrade?;
    // A user, or one guest of one room, holds a bounded number of call
    // sockets (each a page in the call, or about to join it).
    let key = who.key(room_id);
    let slot = s
        .sockets
        .take_kind(&key, s.config.limits.max_event_sockets_per_user, "call")?;
    Ok(ws
        .max_message_size(MAX_CALL_MESSAGE_BYTES + 1024)
        .on_upgrade(move |socket| async move {
            let _slot = slot;
            let mut call = Call {
                socket,
                s,
                room,
                who,
                alive: Default::default(),
            };
            call.run().await;
        }))
}

struct Call {
    socket: WebSocket,
    s: AppState,
    room: Room,
    who: Caller,
    alive: crate::http::ws::Keepalive,
}

fn error(e: impl Into<ApiError>) -> Value {
    let e: ApiError = e.into();
    json!({"type": "error", "code": e.code, "message": e.message})
}

impl Call {
    async fn send(&mut self, v: Value) -> bool {
        crate::http::ws::send_within(&mut self.socket, Message::Text(v.to_string().into())).await
    }

    /// The next message of the page; None when it closed.
    async fn next(&mut self) -> Option<Result<CallMessage, ApiError>> {
        loop {
            let m = self.socket.recv().await?;
            self.alive.heard();
            match m {
                Ok(Message::Text(t)) => {
                    return Some(
                        parse_call_message(t.as_bytes())
                            .map_err(|e| ApiError::new(e.code(), format!("call message: {e}"))),
                    );
                }
                Ok(Message::Binary(_)) => {
                    return Some(Err(ApiError::new(
                        Code::InvalidRequest,
                        "call messages are JSON text",
                    )));
                }
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    async fn run(&mut self) {
        let first = tokio::time::timeout(JOIN_WITHIN, self.next()).await;
        let (offer, name) = match first {
            Ok(Some(Ok(CallMessage::Join {
                offer,
                name,
                screen,
            }))) => (Offer { sdp: offer, screen }, name),
            Ok(Some(Ok(_))) => {
                let e = ApiError::new(Code::InvalidRequest, "the first message is join");
                self.send(error(e)).await;
                return;
            }
            Ok(Some(Err(e))) => {
                self.send(error(e)).await;
                return;
            }
            Ok(None) | Err(_) => return,
        };
        let (tx, mut signals) = mpsc::channel(SIGNAL_QUEUE);
        let joined = match join(&self.s, &self.room, &self.who, offer, name, tx).await {
            Ok(j) => j,
            Err(e) => {
                self.send(error(e)).await;
                return;
            }
        };
        let peer = joined.0;
        let mut events = self.s.events.subscribe();
        let room = self.room.id;
        let me = json!({"peer": peer, "name": joined.2, "host": joined.3});
        let hello = json!({"type": "joined", "answer": joined.1, "you": me,
            "room": {"id": room, "name": self.room.name, "host": self.room.host}});
        if !self.send(hello).await {
            self.s.rtc.leave(room, peer).await;
            return;
        }
        for m in live_recordings(&self.s, room).await {
            self.send(m).await;
        }
        let mut ping = crate::http::ws::Keepalive::ticker();
        loop {
            tokio::select! {
                sig = signals.recv() => {
                    let m = match sig {
                        Some(Signal::Offer(sdp)) => json!({"type": "offer", "sdp": sdp}),
                        Some(Signal::Participants(list)) => json!({"type": "participants", "participants": list}),
                        Some(Signal::Ended(why)) => {
                            self.send(json!({"type": "ended", "reason": why.as_str()})).await;
                            return;
                        }
                        // Dropped without a word: its queue was too full
                        // to take one (a page that does not read its socket).
                        None => {
                            self.send(json!({"type": "ended", "reason": "signalling_stalled"})).await;
                            return;
                        }
                    };
                    if !self.send(m).await { break; }
                }
                ev = events.recv() => match ev {
                    Ok(ev) => {
                        if crate::engine::source::room_of(&ev.recording) == Some(room) && !self.send(recording_event(&ev)).await {
                            break;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        for m in live_recordings(&self.s, room).await {
                            self.send(m).await;
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                _ = ping.tick() => {
                    if self.alive.is_silent() || !crate::http::ws::send_within(&mut self.socket, Message::Ping(Default::default())).await {
                        break;
                    }
                }
                msg = self.next() => match msg {
                    None => break,
                    Some(Ok(CallMessage::Leave)) => {
                        self.send(json!({"type": "ended", "reason": "left"})).await;
                        break;
                    }
                    Some(Ok(CallMessage::Answer { sdp })) => {
                        if let Err(e) = self.s.rtc.answer(peer, sdp).await {
                            self.send(error(e)).await;
                        }
                    }
                    Some(Ok(CallMessage::Media {
                        audio,
                        video,
                        screen,
                    })) => {
                        self.s.rtc.media_state(peer, audio, video, screen).await;
                    }
                    Some(Ok(CallMessage::Join { .. })) => {
                        let e = ApiError::new(Code::InvalidRequest, "this page has joined already");
                        self.send(error(e)).await;
                    }
                    Some(Err(e)) => { self.send(error(e)).await; }
                },
            }
        }
        self.s.rtc.leave(room, peer).await;
    }
}

/// Joins the call: (peer, SDP answer, name, is host).
async fn join(
    s: &AppState,
    room: &Room,
    who: &Caller,
    offer: Offer,
    name: Option<String>,
    tx: mpsc::Sender<Signal>,
) -> Result<(PeerId, String, String, bool), ApiError> {
    let (joiner, host) = match who {
        Caller::Guest(n) => (
            Joiner {
                name: n.clone(),
                user: None,
            },
            false,
        ),
        Caller::User(p) => (
            Joiner {
                name: name.unwrap_or_else(|| p.user.clone()),
                user: Some(p.user.clone()),
            },
            p.admin || p.user == room.host,
        ),
    };
    let limits = RoomLimits {
        max_participants: room.max_participants,
    };
    let shown = joiner.name.clone();
    let user = joiner.user.clone();
    let (peer, answer) = s.rtc.join(room.id, limits, joiner, offer, Some(tx)).await?;
    if let Some(user) = user {
        super::member_when_connected(s, room.id, user, peer);
    }
    Ok((peer, answer, shown, host))
}

/// The room's recordings that have not ended (for a page that joins
/// while one runs).
/// A `recording.live` message for each of the room's active recordings,
/// with `recorded_s` (what is recorded so far, pauses left out: where a
/// page that joins late starts its REC timer).
async fn live_recordings(s: &AppState, room: RoomId) -> Vec<Value> {
    let mut out = vec![];
    let ids = s.repo.room_recordings(room).await.unwrap_or_default();
    for id in ids {
        if let Ok(Some(mut r)) = s.repo.get(id).await
            && r.status.is_active()
        {
            // Everyone in the call gets it: not the host's stream keys.
            tapedeck_core::output::hide_secrets(&mut r.outputs);
            let recorded_s = s.supervisor.recorded_s(r.id);
            out.push(json!({"type": "recording", "event": "recording.live", "recording": r, "recorded_s": recorded_s}));
        }
    }
    out
}

fn recording_event(ev: &Event) -> Value {
    let mut rec = ev.recording.clone();
    tapedeck_core::output::hide_secrets(&mut rec.outputs);
    json!({"type": "recording", "event": ev.kind, "at": ev.at, "recording": rec})
}
