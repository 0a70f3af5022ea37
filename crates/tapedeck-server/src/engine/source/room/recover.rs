//! Recovery of a room recording after a crash: the manifest beside the
//! track files says whose each file is and where it starts; at the next
//! start every file is finalized where it was cut and the recording's
//! output is made from them as at stop.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use tapedeck_core::Code;

use futures::future::BoxFuture;
use tapedeck_core::Failure;
use tapedeck_core::lifecycle::SourceControl;
use tapedeck_core::recording::TrackFile;

use super::Output;
use crate::engine::services::Services;
use crate::engine::source::{Meter, Source, Take};

/// The track list of a recording's work folder (see [`Writer::save_manifest`]).
pub(super) const MANIFEST: &str = "manifest.json";

/// A room recording the server was recording when it stopped: its track
/// files are finalized where they were cut and put together as at stop.
pub struct Recovered {
    output: Output,
}

impl Recovered {
    /// For `rec`.
    pub fn new(services: Arc<Services>, rec: &tapedeck_core::recording::Recording) -> Self {
        Self {
            output: Output::new(services, rec, Arc::new(Meter::default())),
        }
    }
}

/// Finalizes every track file the manifest in `dir` names; the ones that
/// hold media, with their durations and sizes.
fn recover_tracks(dir: &Path) -> Result<Vec<(TrackFile, PathBuf)>, Failure> {
    let lost = |why: String| Failure::new(Code::RecoveryFailed, why);
    let manifest = std::fs::read(dir.join(MANIFEST)).map_err(|e| {
        lost(format!(
            "the server stopped while recording the room, before any track began ({e})"
        ))
    })?;
    let files: Vec<TrackFile> = serde_json::from_slice(&manifest)
        .map_err(|e| lost(format!("the track manifest is unreadable: {e}")))?;
    let mut out = vec![];
    for mut f in files {
        // Ids come from this server (t1, t2, ...); anything else is not a
        // file of ours.
        if !f.id.starts_with('t') || !f.id[1..].chars().all(|c| c.is_ascii_digit()) {
            return Err(lost(format!("the manifest names a track {:?}", f.id)));
        }
        let path = dir.join(format!("{}.{}", f.id, f.container));
        match tapedeck_media::sink::passthrough::recover(&path) {
            Ok(sum) if sum.units > 0 => {
                f.duration_s = sum.duration_ms / 1e3;
                f.size_bytes = sum.bytes;
                out.push((f, path));
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(track = %f.id, error = %e, "a track file could not be recovered")
            }
        }
    }
    Ok(out)
}

impl Source for Recovered {
    fn control(&mut self, _: SourceControl) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, Result<Take, Failure>> {
        Box::pin(async move {
            let dir = self.output.work.join("tracks");
            let tracks = tokio::task::spawn_blocking(move || recover_tracks(&dir))
                .await
                .map_err(|e| Failure::internal(e.to_string()))??;
            if !tracks
                .iter()
                .any(|(t, _)| t.kind == tapedeck_core::track::TrackKind::Video)
            {
                return Err(Failure::new(
                    Code::RecoveryFailed,
                    "the server stopped while recording the room, before any video was written",
                ));
            }
            // Who spoke when is not kept across a crash.
            self.output.finish(tracks, vec![]).await
        })
    }

    fn abort(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}
