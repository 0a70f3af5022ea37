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
    // Track files, HLS segments, pictures: whatever else is kept under it.
    for key in s.blobs.list(&format!("recordings/{}/", rec.id)).await? {
        s.blobs.delete(&key).await?;
    }
    let _ = tokio::fs::remove_dir_all(s.work_dir(rec.id)).await;
    s.work.forget(rec.id);
    s.repo.delete(rec.id).await?;
    s.events.emit("recording.deleted", rec, now_ms());
    Ok(())
}

/// Deletes expired recordings every `retention.sweep_interval_s`, but
/// those still `active` (a driver holds them). In a cluster one node at a
/// time sweeps, the one holding the `retention` lease (renewed at each
/// sweep, taken over by another node two intervals after its holder
/// stopped), and recordings that have not ended are left to their node.
pub async fn sweep_forever(s: &Services, active: impl Fn(RecordingId) -> bool) {
    let every = Duration::from_secs(s.config.retention.sweep_interval_s.max(1));
    let cluster = &s.config.cluster;
    loop {
        if cluster.enabled && !holds_lease(s, &cluster.node_id, every).await {
            tokio::time::sleep(every).await;
            continue;
        }
        if let Err(e) = sweep_once(s, &active, cluster.enabled).await {
            tracing::warn!(error = %e, "retention sweep");
        }
        // Sign-ins that ended are forgotten too.
        if let Err(e) = s.repo.sweep_sessions(now_ms()).await {
            tracing::warn!(error = %e, "sweeping ended sessions");
        }
        tokio::time::sleep(every).await;
    }
}

/// Whether this node holds the cluster's retention lease now.
async fn holds_lease(s: &Services, node: &str, every: Duration) -> bool {
    let now = now_ms();
    let until = now + 2 * every.as_millis() as i64 + 5_000;
    match s.repo.try_lease("retention", node, now, until).await {
        Ok(held) => held,
        Err(e) => {
            tracing::warn!(error = %e, "the retention lease");
            false
        }
    }
}

/// One retention pass; returns how many were deleted. With
/// `ended_only`, recordings that have not ended are left alone (another
/// node may hold them).
pub async fn sweep_once(
    s: &Services,
    active: impl Fn(RecordingId) -> bool,
    ended_only: bool,
) -> Result<usize, Problem> {
    let mut n = 0;
    for rec in s.repo.expired(now_ms(), 100).await? {
        if active(rec.id) || (ended_only && !rec.status.is_terminal()) {
            continue;
        }
        delete_recording(s, &rec).await?;
        n += 1;
    }
    Ok(n)
}
