//! Rooms: the API around calls (create, list, close, invite). Who sees a
//! room: its host, whoever joined it, admins; to everyone else it is 404
//! like a room that does not exist. Only the host (or an admin) closes it,
//! invites to it and controls its recordings: a participant gets 403
//! `not_room_host`.

pub mod call;
pub mod token;
pub mod whip;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tapedeck_core::Code;
use tapedeck_core::RoomId;
use tapedeck_core::room::{Room, parse_create_room, parse_invite};

use crate::http::auth::Principal;
use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::now_ms;

/// A room as the API shows it: the stored room and the link to its call.
fn view(s: &AppState, r: &Room) -> Value {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    v["join_url"] = json!(format!("{}/call/{}", s.config.public_url(), r.id));
    v
}

/// A room the caller may see, and whether the caller may control it
/// (the engine decides: [`crate::engine::source::room::room_for`]).
pub async fn load(s: &AppState, p: &Principal, id: &str) -> Result<(Room, bool), ApiError> {
    let id: RoomId = id.parse()?;
    Ok(crate::engine::source::room::room_for(&s.repo, p, id).await?)
}

pub use crate::engine::source::room::host_only;

/// `POST /v1/rooms`.
pub async fn create(
    State(s): State<AppState>,
    p: Principal,
    body: Bytes,
) -> Result<Response, ApiError> {
    let v = parse_create_room(&body, s.config.rtc.max_participants)?;
    let max = s.config.limits.max_open_rooms_per_user;
    let open = s.repo.open_rooms_of(&p.user).await?;
    if open >= u64::from(max) {
        return Err(ApiError::new(
            Code::TooManyRooms,
            format!(
                "you have {open} open rooms (limits.max_open_rooms_per_user); close one (DELETE /v1/rooms/ID) first"
            ),
        ));
    }
    let now = now_ms();
    let room = Room {
        id: RoomId::from_parts(now as u64, rand::random()),
        name: v.name,
        host: p.user.clone(),
        max_participants: v.max_participants,
        created_at: now,
        closed_at: None,
        node: s.node.clustered().then(|| s.node.id.clone()),
        auto_record: v.auto_record,
        idle_stop_s: v.idle_stop_s,
        max_duration_s: v.max_duration_s,
    };
    s.repo.insert_room(&room).await?;
    let loc = format!("/v1/rooms/{}", room.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, loc)],
        Json(view(&s, &room)),
    )
        .into_response())
}

/// `GET /v1/rooms?limit=&cursor=`: rooms the caller hosts or joined,
/// newest first, a page at a time (`next_cursor` names the next).
pub async fn list(
    State(s): State<AppState>,
    p: Principal,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let (mut limit, mut before) = (50u32, None);
    for (k, v) in &q {
        match k.as_str() {
            "limit" => limit = crate::http::library::page_limit(v)?,
            "cursor" => before = Some(v.parse::<RoomId>()?),
            "token" => {}
            other => {
                return Err(ApiError::new(
                    Code::InvalidQuery,
                    format!("unknown query parameter `{other}`"),
                ));
            }
        }
    }
    let rooms = s.repo.rooms_of(&p.user, before, limit).await?;
    let next = (rooms.len() as u32 == limit)
        .then(|| rooms.last().map(|r| r.id.to_string()))
        .flatten();
    Ok(Json(json!({
        "rooms": rooms.iter().map(|r| view(&s, r)).collect::<Vec<_>>(),
        "next_cursor": next,
    })))
}

/// `GET /v1/rooms/{id}`.
pub async fn get_one(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (room, _) = load(&s, &p, &id).await?;
    let mut v = view(&s, &room);
    v["participants"] = json!(s.rtc.participants(room.id).await);
    Ok(Json(v))
}

/// `DELETE /v1/rooms/{id}`: the host closes the room; it takes no one after.
pub async fn close(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let (mut room, controls) = load(&s, &p, &id).await?;
    host_only(controls, "close the room")?;
    if room.closed_at.is_none() {
        room.closed_at = Some(now_ms());
        s.repo.update_room(&room).await?;
    }
    // Everyone in the call is disconnected.
    s.rtc.close_room(room.id).await;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/rooms/{id}/invites` `{"name", "expires_in_s"}`: a join token
/// for a guest, for this room only.
pub async fn invite(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (room, controls) = load(&s, &p, &id).await?;
    host_only(controls, "invite")?;
    if room.closed_at.is_some() {
        return Err(ApiError::new(Code::RoomClosed, "the room is closed"));
    }
    let inv = parse_invite(&body)?;
    let exp_ms = now_ms() + inv.expires_in_s as i64 * 1000;
    let claims = token::JoinClaims {
        room: room.id,
        name: inv.name.clone(),
        exp: exp_ms / 1000,
    };
    let t = token::sign(&s.share_key, &claims);
    let body = json!({
        "room": room.id,
        "name": inv.name,
        "token": t,
        "expires_at": tapedeck_core::recording::time_ms::format(exp_ms),
        "join_url": format!("{}/call/{}?token={t}", s.config.public_url(), room.id),
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `GET /v1/rooms/{id}/recordings`: the room's recordings, newest first.
pub async fn recordings(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (room, _) = load(&s, &p, &id).await?;
    let mut recs = vec![];
    for rid in s.repo.room_recordings(room.id).await? {
        if let Some(mut r) = s.repo.get(rid).await? {
            if !p.can_see(&r.owner) {
                tapedeck_core::output::hide_secrets(&mut r.outputs);
            }
            recs.push(r);
        }
    }
    Ok(Json(json!({"recordings": recs})))
}

/// Makes `user` a member of `room` (it lists the room and reads its
/// recordings) once their session `peer` has connected: a join refused
/// (room full, a bad offer) or never completed grants nothing. Watches
/// for as long as an unconnected session may live.
pub fn member_when_connected(s: &AppState, room: RoomId, user: String, peer: crate::rtc::PeerId) {
    let s = s.clone();
    let wait = std::time::Duration::from_secs(s.config.rtc.connect_timeout_s + 2);
    tokio::spawn(async move {
        let until = tokio::time::Instant::now() + wait;
        while tokio::time::Instant::now() < until {
            let found = s
                .rtc
                .participants(room)
                .await
                .into_iter()
                .find(|p| p.peer == peer);
            match found {
                Some(p) if p.connected => {
                    if let Err(e) = s.repo.add_member(room, &user, now_ms()).await {
                        tracing::warn!(error = %e, "room membership not recorded");
                    }
                    return;
                }
                Some(_) => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
                None => return,
            }
        }
    });
}
