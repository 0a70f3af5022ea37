//! WHIP (RFC 9725): publishing into a room with one HTTP request.
//! `POST /v1/rooms/{id}/whip` with `Authorization: Bearer TOKEN` (a join
//! token for this room, or an API key) and an SDP offer as
//! `application/sdp` → `201 Created`, the SDP answer, and the session's
//! `Location`; `DELETE` on the `Location` leaves. The answer names the one
//! UDP port every peer uses (`rtc.udp_port`); the server is ICE lite, so the
//! client needs no trickle (`PATCH` is 405).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tapedeck_core::Code;
use tapedeck_core::RoomId;
use tapedeck_core::room::Room;

use super::token;
use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::now_ms;
use crate::rtc::{Joiner, PeerId, RoomLimits};

/// Largest SDP offer taken.
const MAX_OFFER_BYTES: usize = tapedeck_core::room::MAX_SDP_BYTES;

/// Who is calling a room route: a guest with a join token, or an API user.
#[derive(Debug, Clone)]
pub enum Caller {
    /// A join token's guest.
    Guest(String),
    /// An API key's (or JWT's) user.
    User(crate::http::auth::Principal),
}

impl Caller {
    /// Who holds the session in `room`, for per-caller limits and TURN
    /// usernames: `user:NAME`, or `guest:ROOM:NAME`.
    pub fn key(&self, room: RoomId) -> String {
        match self {
            Caller::Guest(name) => format!("guest:{room}:{name}"),
            Caller::User(p) => format!("user:{}", p.user),
        }
    }
}

/// The bearer token of a request, if it has one.
pub fn bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string())
}

/// The caller of `room`'s call routes, from the bearer token.
pub async fn caller(s: &AppState, headers: &HeaderMap, room: RoomId) -> Result<Caller, ApiError> {
    caller_of_token(s, bearer(headers).as_deref(), room).await
}

/// The caller holding `token` (a join token for `room`, or an API key).
pub async fn caller_of_token(
    s: &AppState,
    token: Option<&str>,
    room: RoomId,
) -> Result<Caller, ApiError> {
    let bearer = token.ok_or_else(|| {
        ApiError::unauthorized("missing bearer token (a join token or an API key)")
    })?;
    if token::is_join_token(bearer) {
        let claims = token::verify(&s.share_key, bearer, now_ms() / 1000)
            .and_then(|c| {
                if c.room == room {
                    Ok(c)
                } else {
                    Err(token::Refusal::Invalid)
                }
            })
            .map_err(|r| r.error())?;
        return Ok(Caller::Guest(claims.name));
    }
    Ok(Caller::User(
        crate::http::auth::authenticate(s, bearer).await?,
    ))
}

/// The room, if it exists and takes people.
pub(crate) async fn open_room(s: &AppState, id: &str) -> Result<Room, ApiError> {
    let id: RoomId = id.parse()?;
    let room = s
        .repo
        .room(id)
        .await?
        .ok_or_else(|| ApiError::new(Code::NotFound, "no such room"))?;
    if room.closed_at.is_some() {
        return Err(ApiError::new(Code::RoomClosed, "the room is closed"));
    }
    Ok(room)
}

/// `POST /v1/rooms/{id}/whip`.
pub async fn publish(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let room_id: RoomId = id.parse()?;
    // Who calls, before a byte of the body is read: a caller without a
    // token gets its 401 at once instead of holding the connection open.
    let who = caller(&s, &headers, room_id).await?;
    let room = open_room(&s, &id).await?;
    let is_sdp = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().starts_with("application/sdp"));
    if !is_sdp {
        return Err(ApiError::new(
            Code::UnsupportedMediaType,
            "a WHIP offer is Content-Type: application/sdp",
        ));
    }
    let too_large = || {
        ApiError::new(
            Code::TooLarge,
            format!("an SDP offer is at most {MAX_OFFER_BYTES} bytes"),
        )
    };
    let body: Bytes = axum::body::to_bytes(body, MAX_OFFER_BYTES)
        .await
        .map_err(|e| {
            if std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
            {
                too_large()
            } else {
                ApiError::new(Code::InvalidRequest, format!("reading the offer: {e}"))
            }
        })?;
    let offer = std::str::from_utf8(&body)
        .map_err(|_| ApiError::new(Code::InvalidSdp, "the SDP offer is not UTF-8 text"))?;
    let joiner = match &who {
        Caller::Guest(name) => Joiner {
            name: name.clone(),
            user: None,
        },
        Caller::User(p) => Joiner {
            name: p.user.clone(),
            user: Some(p.user.clone()),
        },
    };
    let limits = RoomLimits {
        max_participants: room.max_participants,
    };
    let (peer, answer) = s
        .rtc
        .join(room.id, limits, joiner, offer.to_string().into(), None)
        .await?;
    if let Caller::User(p) = &who {
        super::member_when_connected(&s, room.id, p.user.clone(), peer);
    }
    let location = format!("/v1/rooms/{}/whip/{peer}", room.id);
    let mut response = (
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, "application/sdp".to_string()),
            (header::LOCATION, location),
        ],
        answer,
    )
        .into_response();
    ice_links(&s, &who, room.id, response.headers_mut());
    Ok(response)
}

/// The configured ICE servers as `Link` headers (RFC 9725 §4.6).
fn ice_links(s: &AppState, who: &Caller, room: RoomId, headers: &mut HeaderMap) {
    let handed =
        crate::rtc::ice::hand_all(&s.config.rtc.ice_servers, &who.key(room), now_ms() / 1000);
    for link in crate::rtc::ice::link_headers(&handed) {
        if let Ok(v) = header::HeaderValue::from_str(&link) {
            headers.append(header::LINK, v);
        }
    }
}

/// `OPTIONS /v1/rooms/{id}/whip`: the ICE servers to gather candidates
/// with before the offer (RFC 9725 §4.6), for a caller of this room.
pub async fn options(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let room_id: RoomId = id.parse()?;
    let who = caller(&s, &headers, room_id).await?;
    open_room(&s, &id).await?;
    let mut response = (StatusCode::NO_CONTENT, [(header::ALLOW, "OPTIONS, POST")]).into_response();
    ice_links(&s, &who, room_id, response.headers_mut());
    Ok(response)
}

/// `DELETE /v1/rooms/{id}/whip/{peer}`: the peer leaves. Its own caller
/// (same user, or same guest name), the host or an admin may end it.
pub async fn leave(
    State(s): State<AppState>,
    Path((id, peer)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let room_id: RoomId = id.parse()?;
    let who = caller(&s, &headers, room_id).await?;
    let gone = || ApiError::new(Code::NotFound, "no such session in this room");
    let peer: PeerId = peer.parse().map_err(|()| gone())?;
    let room = s.repo.room(room_id).await?.ok_or_else(gone)?;
    let p = s
        .rtc
        .participants(room.id)
        .await
        .into_iter()
        .find(|p| p.peer == peer)
        .ok_or_else(gone)?;
    let allowed = match &who {
        Caller::Guest(name) => p.user.is_none() && &p.name == name,
        Caller::User(u) => u.admin || room.host == u.user || p.user.as_ref() == Some(&u.user),
    };
    if !allowed {
        return Err(gone());
    }
    s.rtc.leave(room.id, peer).await;
    Ok(StatusCode::NO_CONTENT)
}
