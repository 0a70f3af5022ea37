//! `GET /v1/recordings/{id}/frames`: the frames source's WebSocket.
//!
//! A binary message is an image. A text message is `{"pts_ms": N}` (the next
//! image's timestamp), or an image as text: `{"pts_ms": N, "image":
//! "data:image/jpeg;base64,..."}` or a bare `data:image/...` string. Images
//! either way are checked, limited and counted alike. The server answers
//! with progress JSON; bad frames are counted and reported, never fatal.

use std::time::Duration;
use tapedeck_core::Code;

use axum::extract::ws::{Message, Utf8Bytes, WebSocket};
use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::json;
use tapedeck_core::frame_message::{Progress, TextError, TextMessage, parse_text};
use tapedeck_core::recording::Status;

use crate::engine::source::frames::{Attachment, Endpoint, Taken};
use crate::http::access::load;
use crate::http::auth::Principal;
use crate::http::error::ApiError;
use crate::http::state::AppState;

/// The socket route.
pub async fn frames(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    crate::http::ws::Upgrade(ws): crate::http::ws::Upgrade,
) -> Result<Response, ApiError> {
    let rec = load(&s, &p, &id).await?;
    let att = Endpoint::of(&s.supervisor.services, &rec)
        .await?
        .attach()
        .await?;
    // Larger than the frame limit (and its base64 form), so oversized frames
    // are refused and counted instead of tearing the socket down.
    let max = att
        .limits
        .max_bytes
        .saturating_mul(4)
        .clamp(1 << 20, 256 << 20);
    Ok(ws
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| frames_loop(socket, att)))
}

fn progress(att: &Attachment, status: Status) -> Message {
    let st = att.meter.stats();
    let p = Progress {
        status: status.as_str().into(),
        frames_received: st.frames_in,
        frames_written: st.frames_written,
        frames_dropped: st.frames_dropped,
        frames_invalid: st.frames_invalid,
        duration_s: att.meter.counters().duration_us as f64 / 1e6,
        last_error: att.meter.last_error(),
    };
    Message::Text(Utf8Bytes::from(
        serde_json::to_string(&p).unwrap_or_default(),
    ))
}

async fn frames_loop(mut socket: WebSocket, mut att: Attachment) {
    let mut next_pts: Option<i64> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut status = *att.status.borrow();
    let to_us = |ms: f64| (ms * 1000.0).round() as i64;
    loop {
        let taken = tokio::select! {
            msg = socket.recv() => match msg {
                Some(Ok(Message::Binary(bytes))) => {
                    let src_us = next_pts
                        .take()
                        .unwrap_or_else(|| att.epoch.elapsed().as_micros() as i64);
                    Some(att.offer(bytes.to_vec(), src_us))
                }
                Some(Ok(Message::Text(t))) => match parse_text(&t, att.limits.max_bytes) {
                    Ok(TextMessage::Control(c)) => {
                        next_pts = Some(to_us(c.pts_ms));
                        None
                    }
                    Ok(TextMessage::Image { pts_ms, bytes }) => {
                        let src_us = pts_ms
                            .map(to_us)
                            .or_else(|| next_pts.take())
                            .unwrap_or_else(|| att.epoch.elapsed().as_micros() as i64);
                        Some(att.offer(bytes, src_us))
                    }
                    Err(TextError::Image(message)) => {
                        Some(att.refuse(message))
                    }
                    Err(TextError::Control(e)) => {
                        let m = json!({"error": {"code": Code::BadControl, "message": e.to_string()}}).to_string();
                        if socket.send(Message::Text(m.into())).await.is_err() { break; }
                        None
                    }
                },
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => None,
            },
            _ = tick.tick() => {
                if socket.send(progress(&att, status)).await.is_err() { break; }
                None
            }
            changed = att.status.changed() => {
                if changed.is_err() { break; }
                status = *att.status.borrow();
                if socket.send(progress(&att, status)).await.is_err() { break; }
                if status.is_terminal() {
                    let _ = socket.send(Message::Close(None)).await;
                    break;
                }
                None
            }
        };
        match taken {
            Some(Taken::Refused) => {
                if socket.send(progress(&att, status)).await.is_err() {
                    break;
                }
            }
            Some(Taken::Closed) => {
                let now = *att.status.borrow();
                let _ = socket.send(progress(&att, now)).await;
                break;
            }
            Some(Taken::Queued) | None => {}
        }
    }
}
