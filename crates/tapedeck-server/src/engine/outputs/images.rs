//! Pictures every N seconds of recording time (`images/00001.jpg` at 0 s,
//! `00002.jpg` at N s, ...). The live encode writes them while recording;
//! where it could not (a call, an upload, a recording rebuilt from its
//! spool), they are taken from the final file.

use std::path::Path;

use tapedeck_core::RecordingId;
use tapedeck_core::recording::{MediaInfo, Recording};
use tapedeck_media::ffmpeg::live;

use crate::engine::services::Services;

/// The key prefix of a recording's pictures.
pub fn prefix(id: RecordingId) -> String {
    format!("recordings/{id}/{}", live::IMAGES_DIR)
}

/// How many pictures `duration_s` of video has, one every `every_s` (the
/// last before its end).
pub fn expected(duration_s: f64, every_s: u32) -> usize {
    ((duration_s.max(0.0) / f64::from(every_s.max(1))).ceil() as usize).max(1)
}

/// Completes the pictures in `work` from the final `media`.
pub async fn finish(
    services: &Services,
    work: &Path,
    media: &Path,
    info: &MediaInfo,
    every_s: u32,
    width: u32,
) -> Result<(), String> {
    if info.width == 0 {
        return Err("the recording has no picture to sample".into());
    }
    let dir = work.join(live::IMAGES_DIR);
    let have = live::list(&dir, live::is_image_name).len();
    // The live encode's pictures stand when they cover the file (a picture
    // at a whole multiple of every_s may fall either side of the end).
    let want = expected(info.duration_s, every_s);
    if have > 0 && have + 1 >= want && have <= want + 1 {
        return Ok(());
    }
    let (tools, media, work) = (
        services.tools.clone(),
        media.to_path_buf(),
        work.to_path_buf(),
    );
    tokio::task::spawn_blocking(move || {
        live::images_from_file(&tools, &media, &work, every_s, width)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("taking pictures from the file failed: {e}"))
}

/// Stores the pictures.
pub async fn store(
    services: &Services,
    rec: &Recording,
    work: &Path,
) -> Result<(), tapedeck_core::Failure> {
    let dir = work.join(live::IMAGES_DIR);
    let files = live::list(&dir, live::is_image_name);
    super::put_all(services, &dir, &prefix(rec.id), &files).await
}

/// The pictures of `rec` so far: from the work folder while it records,
/// from the store once completed.
pub async fn names(services: &Services, rec: &Recording) -> Vec<String> {
    if rec.status == tapedeck_core::Status::Completed {
        let p = format!("{}/", prefix(rec.id));
        let mut names: Vec<String> = services
            .blobs
            .list(&p)
            .await
            .unwrap_or_default()
            .into_iter()
            .filter_map(|k| k.strip_prefix(&p).map(str::to_string))
            .filter(|n| live::is_image_name(n))
            .collect();
        names.sort();
        names
    } else {
        live::list(
            &services.work_dir(rec.id).join(live::IMAGES_DIR),
            live::is_image_name,
        )
    }
}
