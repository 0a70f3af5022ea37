//! Retention: deleting recordings, by the user or when they expire.

use std::time::Duration;

use tapedeck_core::RecordingId;
use tapedeck_core::recording::Recording;

use crate::engine::services::Services;
use crate::now_ms;
use tapedeck_core::Problem;

/// Deletes a recording's media, thumbnails, work files and row.
pub async fn delete_recording(s: &Services, rec: &Recording) -> Result<(), Problem> {
    for key in [rec.media_key(), rec.poster_key(), rec.strip_key()] {
        s.blobs.delete(&key).await?;
    }
    let _ = tokio::fs::remove_dir_all(s.work_dir(rec.id)).await;
    s.work.forget(rec.id);
    s.repo.delete(rec.id).await?;
    s.events.emit("recording.deleted", rec, now_ms());
    Ok(())
}

/// Deletes expired recordings every `retention.sweep_interval_s`, but
/// those still `active` (a driver holds them).
pub async fn sweep_forever(s: &Services, active: impl Fn(RecordingId) -> bool) {
    let every = Duration::from_secs(s.config.retention.sweep_interval_s.max(1));
    loop {
        if let Err(e) = sweep_once(s, &active).await {
            tracing::warn!(error = %e, "retention sweep");
        }
        // Sign-ins that ended are forgotten too.
        if let Err(e) = s.repo.sweep_sessions(now_ms()).await {
            tracing::warn!(error = %e, "sweeping ended sessions");
        }
        tokio::time::sleep(every).await;
    }
}

/// One retention pass; returns how many were deleted.
pub async fn sweep_once(
    s: &Services,
    active: impl Fn(RecordingId) -> bool,
) -> Result<usize, Problem> {
    let mut n = 0;
    for rec in s.repo.expired(now_ms(), 100).await? {
        if active(rec.id) {
            continue;
        }
        delete_recording(s, &rec).await?;
        n += 1;
    }
    Ok(n)
}
