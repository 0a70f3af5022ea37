//! The work folders (`DATA_DIR/work/ID/`): what a recording keeps on local
//! disk while it records and processes (spool, part files, track files,
//! the browser's profile, the finished file before it is stored).
//!
//! Their bytes count against their owner's quota while they are there
//! ([`Ledger`]): each driver measures its folder as it goes, so an owner
//! cannot fill the disk with uploads or recordings that never reach the
//! store. A folder goes when its recording completes, fails or is
//! cancelled; only one whose media is there and nowhere else keeps it (the
//! store refused the finished file, or the disk filled), still counted. [`sweep`] at start removes what
//! nothing owns.

use std::path::Path;
use tapedeck_core::Code;

use tapedeck_core::RecordingId;
use tapedeck_core::recording::{Recording, Status};

use crate::engine::services::Services;

pub mod ledger;
pub use ledger::{Ledger, Reservation};

/// The bytes of the files under `dir` (0 if it is not there). Symbolic
/// links are not followed.
pub fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => todo.push(e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map_or(0, |m| m.len()),
                _ => {}
            }
        }
    }
    total
}

/// Whether a recording in this state still needs its work folder: while
/// it is active or processing (recovery rebuilds it from there), and when
/// it failed with its media there and nowhere else: the store refused the
/// finished file (`storage_failed`), or the disk filled and what was
/// spooled before is kept (`disk_full`).
pub fn needed(rec: &Recording) -> bool {
    !rec.status.is_terminal()
        || (rec.status == Status::Failed
            && rec
                .error
                .as_ref()
                .is_some_and(|e| matches!(e.code, Code::StorageFailed | Code::DiskFull)))
}

/// Measures `rec`'s work folder into the ledger (blocking IO off the runtime).
pub async fn measure(services: &Services, rec: &Recording) {
    let dir = services.work_dir(rec.id);
    let bytes = tokio::task::spawn_blocking(move || dir_bytes(&dir))
        .await
        .unwrap_or(0);
    services.work.set(rec.id, &rec.owner, bytes);
}

/// At start: removes every work folder no recording needs (its recording
/// is gone, or ended without needing it: left by an older version or cut
/// off mid-removal) and counts the kept ones in the ledger. Returns how
/// many were removed.
pub async fn sweep(services: &Services) -> Result<usize, tapedeck_core::Problem> {
    let root = services.config.server.data_dir.join("work");
    let Ok(entries) = std::fs::read_dir(&root) else {
        return Ok(0);
    };
    let mut removed = 0;
    for e in entries.flatten() {
        let path = e.path();
        let rec = match e
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<RecordingId>().ok())
        {
            Some(id) => services.repo.get(id).await?,
            // Not a recording's folder: nothing of ours.
            None => continue,
        };
        // In a cluster, a recording another node took over is not this
        // node's to keep.
        let here = |r: &Recording| {
            !services.config.cluster.enabled
                || r.node.as_deref() == Some(services.config.cluster.node_id.as_str())
        };
        match rec {
            Some(r) if needed(&r) && here(&r) => measure(services, &r).await,
            _ => {
                if tokio::fs::remove_dir_all(&path).await.is_ok() {
                    removed += 1;
                }
            }
        }
    }
    if removed > 0 {
        tracing::info!(removed, "removed work folders that no recording needs");
    }
    Ok(removed)
}
