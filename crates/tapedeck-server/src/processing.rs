//! Processing after the encode: probe, thumbnails, upload, completed.

use std::path::Path;
use std::time::Instant;

use tapedeck_core::recording::{Action, Recording};
use tapedeck_media::ffmpeg;
use tapedeck_media::frames::Finished;

use crate::supervisor::Ctx;

/// Thumbnails in the strip.
pub const STRIP_COUNT: u32 = 10;

/// Finishes `rec` from an encoded file: completed, or failed with the reason.
/// The work folder (with the spool) is removed only once the media is stored.
pub async fn finish(ctx: &Ctx, rec: &mut Recording, f: Finished, started: Instant) {
    match store(ctx, rec, &f).await {
        Ok(()) => {
            rec.stats.processing_s = started.elapsed().as_secs_f64();
            rec.stats.cpu_s = f.cpu_s;
            match ctx.transition(rec, Action::Complete).await {
                Ok(()) => {
                    let _ = tokio::fs::remove_dir_all(ctx.work_dir(rec.id)).await;
                }
                Err(e) => tracing::error!(id = %rec.id, error = %e, "could not complete"),
            }
        }
        Err(e) => {
            tracing::error!(id = %rec.id, error = %e, "processing failed");
            rec.error = Some(e);
            let _ = ctx.transition(rec, Action::Fail).await;
        }
    }
}

async fn store(ctx: &Ctx, rec: &mut Recording, f: &Finished) -> Result<(), String> {
    let tools = ctx.tools.clone();
    let output = f.output.clone();
    let work = ctx.work_dir(rec.id);
    let (poster, strip) = (work.join("poster.jpg"), work.join("strip.jpg"));
    let (p2, s2) = (poster.clone(), strip.clone());
    let info = tokio::task::spawn_blocking(move || -> Result<_, ffmpeg::FfmpegError> {
        let info = ffmpeg::probe(&tools, &output)?;
        ffmpeg::poster(&tools, &output, info.duration_s * 0.25, &p2)?;
        ffmpeg::strip(&tools, &output, info.duration_s, STRIP_COUNT, &s2)?;
        Ok(info)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("processing the video failed: {e}"))?;
    let stored = ctx
        .blobs
        .put_file(&rec.media_key(), &f.output)
        .await
        .map_err(|e| format!("storing the media failed: {e}"))?;
    for (key, file) in [(rec.poster_key(), &poster), (rec.strip_key(), &strip)] {
        upload_small(ctx, &key, file).await?;
    }
    let mut info = info;
    info.sha256 = stored.sha256;
    rec.duration_s = Some(info.duration_s);
    rec.size_bytes = Some(stored.size);
    if rec.stats.achieved_fps == 0.0 && info.duration_s > 0.0 {
        rec.stats.achieved_fps = f.counters.frames_distinct as f64 / info.duration_s;
    }
    rec.media = Some(info);
    Ok(())
}

async fn upload_small(ctx: &Ctx, key: &str, file: &Path) -> Result<(), String> {
    let bytes = tokio::fs::read(file)
        .await
        .map_err(|e| format!("reading {}: {e}", file.display()))?;
    ctx.blobs
        .put_bytes(key, bytes)
        .await
        .map_err(|e| format!("storing {key} failed: {e}"))
}
