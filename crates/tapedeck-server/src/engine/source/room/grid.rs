//! A room recording's grid, composed after stop (the layout and ffmpeg's
//! arguments are `tapedeck_media::ffmpeg::grid`'s); its progress shows on
//! the recording (`stats.progress`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tapedeck_core::recording::TrackFile;
use tapedeck_core::{Code, Failure};
use tapedeck_media::ffmpeg::EncodeSpec;

use crate::engine::services::Services;
use crate::engine::source::Meter;

/// What the grid is encoded as: the recording's encoder settings (MP4 and
/// MKV are H.264/AAC, WebM is VP9/Opus) and its sound's bitrate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GridSpec {
    /// Size, rate, format and quality.
    pub spec: EncodeSpec,
    /// Audio bitrate, kbit/s.
    pub audio_kbps: u32,
}

/// Composes the grid of `tracks` into `work/grid/media.{ext}`; the file.
pub async fn compose(
    services: &Arc<Services>,
    grid: &GridSpec,
    tracks: &[(TrackFile, PathBuf)],
    work: &Path,
    meter: &Arc<Meter>,
) -> Result<PathBuf, Failure> {
    let files: Vec<TrackFile> = tracks.iter().map(|(t, _)| t.clone()).collect();
    let paths: Vec<PathBuf> = tracks.iter().map(|(_, p)| p.clone()).collect();
    let (tools, grid, dir, meter) = (
        services.tools.clone(),
        grid.clone(),
        work.join("grid"),
        meter.clone(),
    );
    tokio::task::spawn_blocking(move || {
        tapedeck_media::ffmpeg::grid::compose(
            &tools,
            &grid.spec,
            grid.audio_kbps,
            &files,
            &paths,
            &dir,
            |p| meter.set_progress(Some(p)),
        )
    })
    .await
    .map_err(|e| Failure::internal(e.to_string()))?
    .map_err(|e| Failure::new(Code::GridFailed, format!("composing the grid failed: {e}")))
}
