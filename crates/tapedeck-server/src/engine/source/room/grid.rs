//! A room recording's grid, composed after stop (the layout and ffmpeg's
//! arguments are `tapedeck_media::ffmpeg::grid`'s); its progress shows on
//! the recording (`stats.progress`). Without a grid (or when it fails),
//! the tracks are put side by side ([`side_by_side`]).
//!
//! In a cluster the composing is a job in the shared queue
//! ([`compose_anywhere`], `engine::offload`): the track files go to the
//! bucket, and the node whose free budget fits the job's cost
//! ([`run_claimed`], possibly this one) fetches them, composes the grid and
//! puts it in the bucket, where the room's node takes it back to finish
//! the recording as usual.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tapedeck_core::recording::{Recording, TrackFile};
use tapedeck_core::track::{Speech, TrackKind};
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

/// What the grid is made of: the track files, and who spoke when (their
/// cell is framed then).
pub struct Call<'a> {
    /// Each track and its file.
    pub tracks: &'a [(TrackFile, PathBuf)],
    /// The speaker timeline.
    pub speakers: &'a [Speech],
}

/// Composes the grid of `call` into `work/grid/media.{ext}`; the file.
pub async fn compose(
    services: &Arc<Services>,
    grid: &GridSpec,
    call: Call<'_>,
    work: &Path,
    meter: &Arc<Meter>,
) -> Result<PathBuf, Failure> {
    let files: Vec<TrackFile> = call.tracks.iter().map(|(t, _)| t.clone()).collect();
    let paths: Vec<PathBuf> = call.tracks.iter().map(|(_, p)| p.clone()).collect();
    let (tools, grid, dir, meter, speech) = (
        services.tools.clone(),
        grid.clone(),
        work.join("grid"),
        meter.clone(),
        call.speakers.to_vec(),
    );
    tokio::task::spawn_blocking(move || {
        tapedeck_media::ffmpeg::grid::compose(
            &tools,
            &grid.spec,
            grid.audio_kbps,
            tapedeck_media::ffmpeg::grid::Call {
                tracks: &files,
                paths: &paths,
                speech: &speech,
            },
            &dir,
            |p| meter.set_progress(Some(p)),
        )
    })
    .await
    .map_err(|e| Failure::internal(e.to_string()))?
    .map_err(|e| Failure::new(Code::GridFailed, format!("composing the grid failed: {e}")))
}

/// The job kind.
pub const JOB: &str = "grid";

/// [`compose`] here on a server alone; in a cluster, on whichever node's
/// free budget fits it (`engine::offload`): the track files go through
/// the bucket (under their own keys: they are the recording's). The grid
/// file, in `work/grid/`.
pub async fn compose_anywhere(
    services: &Arc<Services>,
    rec: &Recording,
    grid: &GridSpec,
    call: Call<'_>,
    work: &Path,
    meter: &Arc<Meter>,
) -> Result<PathBuf, Failure> {
    if !services.config.cluster.enabled {
        return compose(services, grid, call, work, meter).await;
    }
    let tracks = call.tracks;
    let files: Vec<TrackFile> = tracks.iter().map(|(t, _)| t.clone()).collect();
    let videos = files.iter().filter(|t| t.kind == TrackKind::Video).count();
    let ext = grid.spec.format.extension();
    let out = work.join("grid").join(format!("media.{ext}"));
    let w = crate::engine::offload::Work {
        kind: JOB,
        rec,
        cost: tapedeck_core::admission::estimate_grid(&rec.video, videos),
        inputs: tracks
            .iter()
            .map(|(t, path)| crate::engine::offload::Input {
                key: rec.track_key(t),
                local: path.clone(),
                temporary: false,
            })
            .collect(),
        doc: serde_json::json!({"tracks": files, "speakers": call.speakers}),
        ext,
    };
    crate::engine::offload::run_anywhere(services, w, &out)
        .await
        .map_err(|why| {
            Failure::new(
                Code::GridFailed,
                format!("composing the grid failed: {why}"),
            )
        })?;
    Ok(out)
}

/// A claimed grid job: the tracks (`inputs`, in the order of the track
/// files in `doc`) composed into a grid in `dir`; the file.
pub async fn run_claimed(
    services: &Arc<Services>,
    rec: &Recording,
    inputs: &[PathBuf],
    doc: &serde_json::Value,
    dir: &Path,
) -> Result<PathBuf, String> {
    // `{"tracks", "speakers"}`; a job queued by an older node is the
    // track list alone.
    let (files, speakers) = match doc.get("tracks") {
        Some(t) => (t.clone(), doc.get("speakers").cloned().unwrap_or_default()),
        None => (doc.clone(), serde_json::Value::Null),
    };
    let files: Vec<TrackFile> = serde_json::from_value(files).map_err(|e| e.to_string())?;
    let speakers: Vec<Speech> = serde_json::from_value(speakers).unwrap_or_default();
    if files.len() != inputs.len() {
        return Err("the job's tracks and files differ".into());
    }
    let tracks: Vec<(TrackFile, PathBuf)> = files.into_iter().zip(inputs.iter().cloned()).collect();
    let grid = GridSpec {
        spec: super::super::encoding::encode_spec(services, rec),
        audio_kbps: rec.video.audio_bitrate_kbps,
    };
    let meter = Arc::new(Meter::default());
    let call = Call {
        tracks: &tracks,
        speakers: &speakers,
    };
    compose(services, &grid, call, dir, &meter)
        .await
        .map_err(|f| f.message)
}

/// Puts every track file at its start in one file (WebM or Matroska, as
/// `out` is named), by stream copy.
pub(super) async fn side_by_side(
    services: &Services,
    tracks: &[(TrackFile, PathBuf)],
    out: &Path,
) -> Result<(), Failure> {
    let inputs: Vec<(f64, PathBuf)> = tracks.iter().map(|(t, p)| (t.start_s, p.clone())).collect();
    let (tools, out) = (services.tools.clone(), out.to_path_buf());
    tokio::task::spawn_blocking(move || {
        let inputs: Vec<(f64, &Path)> = inputs.iter().map(|(s, p)| (*s, p.as_path())).collect();
        tapedeck_media::ffmpeg::copy::side_by_side(&tools, &inputs, &out)
    })
    .await
    .map_err(|e| Failure::internal(e.to_string()))?
    .map(|_| ())
    .map_err(|e| {
        Failure::new(
            Code::EncoderFailed,
            format!("putting the tracks together failed: {e}"),
        )
    })
}
