//! Processing after the sink finished: probe, thumbnails, upload. The driver
//! turns the result into `completed` or `failed`.

use std::path::Path;
use std::time::Instant;

use tapedeck_core::Failure;
use tapedeck_core::recording::Recording;
use tapedeck_media::ffmpeg;

use crate::services::Services;
use crate::source::Take;

/// Thumbnails in the strip.
pub const STRIP_COUNT: u32 = 10;

/// Probes `take`, makes the poster and strip, stores all three and fills in
/// `rec`'s media, size, duration and stats.
pub async fn process(
    services: &Services,
    rec: &mut Recording,
    take: Take,
    started: Instant,
) -> Result<(), Failure> {
    let c = take.counters;
    rec.stats.frames_in = rec.stats.frames_in.max(c.frames_in);
    rec.stats.frames_written = c.frames_out;
    rec.stats.realtime_factor = take.realtime_factor;
    store(services, rec, &take).await?;
    rec.stats.processing_s = started.elapsed().as_secs_f64();
    rec.stats.cpu_s = take.cpu_s;
    Ok(())
}

async fn store(services: &Services, rec: &mut Recording, take: &Take) -> Result<(), Failure> {
    let tools = services.tools.clone();
    let output = take.output.clone();
    let work = services.work_dir(rec.id);
    let (poster, strip) = (work.join("poster.jpg"), work.join("strip.jpg"));
    let (p2, s2) = (poster.clone(), strip.clone());
    let info = tokio::task::spawn_blocking(move || -> Result<_, ffmpeg::FfmpegError> {
        let info = ffmpeg::probe(&tools, &output)?;
        ffmpeg::poster(&tools, &output, info.duration_s * 0.25, &p2)?;
        ffmpeg::strip(&tools, &output, info.duration_s, STRIP_COUNT, &s2)?;
        Ok(info)
    })
    .await
    .map_err(|e| Failure::internal(e.to_string()))?
    .map_err(|e| {
        Failure::new(
            "encoder_failed",
            format!("processing the video failed: {e}"),
        )
    })?;
    let stored = services
        .blobs
        .put_file(&rec.media_key(), &take.output)
        .await
        .map_err(|e| Failure::new("storage_failed", format!("storing the media failed: {e}")))?;
    for (key, file) in [(rec.poster_key(), &poster), (rec.strip_key(), &strip)] {
        upload_small(services, &key, file).await?;
    }
    let mut info = info;
    info.sha256 = stored.sha256;
    rec.duration_s = Some(info.duration_s);
    rec.size_bytes = Some(stored.size);
    if rec.stats.achieved_fps == 0.0 && info.duration_s > 0.0 {
        rec.stats.achieved_fps = take.counters.frames_distinct as f64 / info.duration_s;
    }
    rec.media = Some(info);
    Ok(())
}

async fn upload_small(services: &Services, key: &str, file: &Path) -> Result<(), Failure> {
    let bytes = tokio::fs::read(file)
        .await
        .map_err(|e| Failure::new("storage_failed", format!("reading {}: {e}", file.display())))?;
    services
        .blobs
        .put_bytes(key, bytes)
        .await
        .map_err(|e| Failure::new("storage_failed", format!("storing {key} failed: {e}")))
}
