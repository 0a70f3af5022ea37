//! HLS: CMAF segments and a playlist. While recording, the live encode
//! writes them in the work folder (an event playlist, served as it grows);
//! once the file is final the same segments become a VOD playlist, or,
//! where the file holds more than the live encode did (sound laid under
//! after, a recording rebuilt from its spool, a call's grid), they are cut
//! from the file anew by stream copy.

use std::path::{Path, PathBuf};

use tapedeck_core::RecordingId;
use tapedeck_core::recording::{MediaInfo, Recording};
use tapedeck_media::ffmpeg::live;

use crate::engine::services::Services;

/// The key prefix of a recording's HLS files.
pub fn prefix(id: RecordingId) -> String {
    format!("recordings/{id}/{}", live::HLS_DIR)
}

/// The work folder's HLS folder.
pub fn dir(services: &Services, id: RecordingId) -> PathBuf {
    services.work_dir(id).join(live::HLS_DIR)
}

/// The live playlist as a VOD one, if it ended and every segment it
/// lists is there.
fn live_vod(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(live::PLAYLIST)).ok()?;
    let vod = live::as_vod(&text)?;
    let segments = live::segments(&vod);
    let whole = !segments.is_empty()
        && dir.join(live::INIT).is_file()
        && segments
            .iter()
            .all(|s| live::is_hls_name(s) && dir.join(s).is_file());
    whole.then_some(vod)
}

/// Completes the HLS folder in `work` from the final `media` (the live
/// segments stand when `live_is_file`: the live encode made the file, and
/// it has no sound laid under after).
pub async fn finish(
    services: &Services,
    work: &Path,
    media: &Path,
    info: &MediaInfo,
    segment_s: u32,
    live_is_file: bool,
) -> Result<(), String> {
    let dir = work.join(live::HLS_DIR);
    if info.width == 0 {
        return Err("the recording has no picture to segment".into());
    }
    if live_is_file
        && info.audio_codec.is_none()
        && let Some(vod) = live_vod(&dir)
    {
        return std::fs::write(dir.join(live::PLAYLIST), vod).map_err(|e| e.to_string());
    }
    let (tools, media, work) = (
        services.tools.clone(),
        media.to_path_buf(),
        work.to_path_buf(),
    );
    tokio::task::spawn_blocking(move || live::hls_from_file(&tools, &media, &work, segment_s))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("segmenting the file failed: {e}"))
}

/// Stores the segments, then the playlist (which names them).
pub async fn store(
    services: &Services,
    rec: &Recording,
    work: &Path,
) -> Result<(), tapedeck_core::Failure> {
    let dir = work.join(live::HLS_DIR);
    let mut files: Vec<String> = live::list(&dir, live::is_hls_name)
        .into_iter()
        .filter(|n| n != live::PLAYLIST)
        .collect();
    files.push(live::PLAYLIST.to_string());
    super::put_all(services, &dir, &prefix(rec.id), &files).await
}
