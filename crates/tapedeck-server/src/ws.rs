//! WebSockets: `/v1/recordings/{id}/frames` (frames in, progress out) and
//! `/v1/events` (the caller's recording events).

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::json;
use tapedeck_core::frame_message::{Progress, parse_control};
use tapedeck_core::recording::Status;
use tapedeck_media::picture;

use crate::api::load;
use crate::app::AppState;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::supervisor::{Attachment, PipeMsg};

/// `GET /v1/recordings/{id}/frames`: binary messages are images; a text
/// `{"pts_ms": N}` sets the next image's timestamp. The server answers with
/// progress JSON. Bad frames are counted and reported, never fatal.
pub async fn frames(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let rec = load(&s, &p, &id).await?;
    let att = s.supervisor.attach(&rec).await?;
    // Larger than the frame limit, so oversized frames are refused and counted
    // instead of tearing the socket down.
    let max = att
        .limits
        .max_bytes
        .saturating_mul(4)
        .clamp(1 << 20, 256 << 20);
    let metrics = s.metrics.clone();
    Ok(ws
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| frames_loop(socket, att, metrics)))
}

fn progress(att: &Attachment, status: Status) -> Message {
    let st = att.live.stats();
    let dur = att.live.counters.lock().map(|c| c.duration_us).unwrap_or(0);
    let p = Progress {
        status: status.as_str().into(),
        frames_received: st.frames_in,
        frames_written: st.frames_written,
        frames_dropped: st.frames_dropped,
        frames_invalid: st.frames_invalid,
        duration_s: dur as f64 / 1e6,
        last_error: att.live.last_error.lock().ok().and_then(|e| e.clone()),
    };
    Message::Text(Utf8Bytes::from(
        serde_json::to_string(&p).unwrap_or_default(),
    ))
}

async fn frames_loop(mut socket: WebSocket, mut att: Attachment, metrics: crate::metrics::Metrics) {
    let mut next_pts: Option<i64> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut status = *att.status.borrow();
    loop {
        tokio::select! {
            msg = socket.recv() => match msg {
                Some(Ok(Message::Binary(bytes))) => {
                    att.live.received.fetch_add(1, Ordering::Relaxed);
                    att.live.touch();
                    metrics.frames(1, 0);
                    let src_us = next_pts.take().unwrap_or_else(|| att.epoch.elapsed().as_micros() as i64);
                    if let Err(e) = picture::check(&bytes, &att.limits) {
                        att.live.refused.fetch_add(1, Ordering::Relaxed);
                        att.live.refused_invalid.fetch_add(1, Ordering::Relaxed);
                        metrics.frames(0, 1);
                        *att.live.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
                        if socket.send(progress(&att, status)).await.is_err() { break; }
                        continue;
                    }
                    match att.frames.try_send(PipeMsg::Frame(bytes.to_vec(), src_us)) {
                        Ok(()) => {}
                        Err(std::sync::mpsc::TrySendError::Full(_)) => {
                            att.live.refused.fetch_add(1, Ordering::Relaxed);
                            metrics.frames(0, 1);
                            *att.live.last_error.lock().unwrap_or_else(|e| e.into_inner()) =
                                Some("frame dropped: the encoder is behind (queue full)".into());
                        }
                        Err(std::sync::mpsc::TrySendError::Disconnected(_)) => {
                            let now = *att.status.borrow();
                            let _ = socket.send(progress(&att, now)).await;
                            break;
                        }
                    }
                }
                Some(Ok(Message::Text(t))) => match parse_control(&t) {
                    Ok(c) => next_pts = Some((c.pts_ms * 1000.0).round() as i64),
                    Err(e) => {
                        let m = json!({"error": {"code": "bad_control", "message": e.to_string()}}).to_string();
                        if socket.send(Message::Text(m.into())).await.is_err() { break; }
                    }
                },
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            _ = tick.tick() => {
                if socket.send(progress(&att, status)).await.is_err() { break; }
            }
            changed = att.status.changed() => {
                if changed.is_err() { break; }
                status = *att.status.borrow();
                if socket.send(progress(&att, status)).await.is_err() { break; }
                if status.is_terminal() {
                    let _ = socket.send(Message::Close(None)).await;
                    break;
                }
            }
        }
    }
}

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
