//! Rooms that record themselves (`auto_record`): when someone begins to
//! publish in such a room and none of its recordings runs, a recording
//! with the room's settings starts, owned by its host and listed under the
//! room like one the host started. It stops by itself once the call has
//! been empty for the room's `idle_stop_s` (see `idle`), or at its
//! `max_duration_s`; the next one to publish starts the next recording.
//!
//! One task per server, woken by the media server's [`Activity`] (a track
//! begun in any room): no polling, and the recording starts the moment
//! the first track does.

use tapedeck_core::RoomId;
use tapedeck_core::request::parse_create;
use tokio::sync::broadcast::error::RecvError;

use crate::engine::principal::Principal;
use crate::engine::supervisor::Supervisor;
use crate::rtc::Activity;

/// Starts the task; `node`: this server's name in a cluster (a recording
/// is held by the node that starts it).
pub fn spawn(supervisor: Supervisor, node: Option<String>) {
    let mut activity = supervisor.services.rtc.activity();
    tokio::spawn(async move {
        loop {
            match activity.recv().await {
                Ok(Activity::Published(room)) => {
                    // One at a time: a room's second track (sound after
                    // picture) finds the recording the first one started.
                    if let Err(e) = start_if_due(&supervisor, room, node.clone()).await {
                        tracing::warn!(%room, code = %e.code, error = %e.message, "a room's automatic recording did not start");
                    }
                }
                // Missed tracks: the next one in the room starts it.
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "room activity missed");
                }
                Err(RecvError::Closed) => return,
            }
        }
    });
}

/// Starts `room`'s recording if it records itself, is open and has none
/// running.
async fn start_if_due(
    sup: &Supervisor,
    room: RoomId,
    node: Option<String>,
) -> Result<(), tapedeck_core::Problem> {
    let s = &sup.services;
    let Some(r) = s.repo.room(room).await? else {
        return Ok(());
    };
    let Some(body) = r.auto_record_body() else {
        return Ok(());
    };
    if r.closed_at.is_some() {
        return Ok(());
    }
    for id in s.repo.room_recordings(room).await? {
        if let Some(rec) = s.repo.get(id).await?
            && rec.status.is_active()
        {
            return Ok(());
        }
    }
    let host = Principal {
        user: r.host.clone(),
        admin: false,
    };
    let mut v = parse_create(&body)?;
    crate::engine::source::authorize(s, &host, &mut v).await?;
    let rec = crate::engine::source::new_recording(&s.config, &host.user, v, None, node);
    let rec = sup.create(rec).await?;
    crate::engine::source::created(s, &rec).await?;
    tracing::info!(%room, recording = %rec.id, "a room began recording itself");
    Ok(())
}
