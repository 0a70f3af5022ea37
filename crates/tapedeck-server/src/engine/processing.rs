//! Processing after the sink finished: [`prepare`] probes the file and makes
//! the poster and strip in the work folder; [`store`] puts all three in the
//! media store (the driver retries it with backoff while the store fails,
//! the local files kept), with what the outputs made (`engine::outputs`:
//! HLS, pictures). The driver turns the result into `completed` or
//! `failed`.

use std::path::{Path, PathBuf};
use std::time::Instant;
use tapedeck_core::Code;

use tapedeck_core::Failure;
use tapedeck_core::recording::{MediaInfo, Recording};
use tapedeck_media::ffmpeg;

use crate::engine::services::Services;
use crate::engine::source::Take;

/// Thumbnails in the strip.
pub const STRIP_COUNT: u32 = 10;

/// A processed file ready to store.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The media file.
    pub media: PathBuf,
    /// The poster.
    pub poster: PathBuf,
    /// The strip.
    pub strip: PathBuf,
    /// What ffprobe says of the media.
    pub info: MediaInfo,
    /// A room recording's track files, in the order of `rec.tracks`.
    pub tracks: Vec<PathBuf>,
}

/// Probes `take` and makes the poster and strip; fills in `rec`'s stats.
pub async fn prepare(
    services: &Services,
    rec: &mut Recording,
    take: Take,
    started: Instant,
) -> Result<Prepared, Failure> {
    let c = take.counters;
    rec.stats.frames_in = rec.stats.frames_in.max(c.frames_in);
    rec.stats.frames_written = c.frames_out;
    rec.stats.realtime_factor = take.realtime_factor;
    // Rendered: nothing is left to wait for.
    rec.stats.eta_s = None;
    rec.stats.cpu_s = take.cpu_s;
    rec.tracks = take.tracks.iter().map(|(t, _)| t.clone()).collect();
    rec.speakers = take.speakers.clone();
    if let Some(f) = take.format {
        rec.format = f;
    }
    if take.note.is_some() {
        rec.note = take.note.clone();
    }
    if let Some(source) = &take.source {
        rec.source = source.clone();
    }
    let tracks: Vec<PathBuf> = take.tracks.iter().map(|(_, p)| p.clone()).collect();
    let tools = services.tools.clone();
    let media = take.output.clone();
    let work = services.work_dir(rec.id);
    let (poster, strip) = (work.join("poster.jpg"), work.join("strip.jpg"));
    let (m2, p2, s2) = (media.clone(), poster.clone(), strip.clone());
    // tapedeck's own encodes at a constant rate have a keyframe at least
    // every 4 s (ffmpeg/args.rs).
    let own = rec.source.traits().own_encode;
    let keyframes = (own && rec.video.cfr).then_some(4.0);
    let info = tokio::task::spawn_blocking(move || -> Result<_, ffmpeg::FfmpegError> {
        let info = ffmpeg::probe(&tools, &m2)?;
        // Sound only (a call where nobody sent video): no picture to show.
        if info.width > 0 {
            ffmpeg::poster(&tools, &m2, info.duration_s * 0.25, &p2)?;
            ffmpeg::strip(&tools, &m2, info.duration_s, STRIP_COUNT, keyframes, &s2)?;
        }
        Ok(info)
    })
    .await
    .map_err(|e| Failure::internal(e.to_string()))?
    .map_err(|e| match e {
        // A call's track or an upload with pictures past the decoding limit.
        e @ ffmpeg::FfmpegError::PictureTooLarge { .. } => Failure::new(
            Code::InvalidMedia,
            format!("the video cannot be processed: {e} (limits.max_frame_width, limits.max_frame_height)"),
        ),
        e => Failure::new(
            Code::EncoderFailed,
            format!("processing the video failed: {e}"),
        ),
    })?;
    if rec.stats.achieved_fps == 0.0 && info.duration_s > 0.0 {
        rec.stats.achieved_fps = c.frames_distinct as f64 / info.duration_s;
    }
    crate::engine::outputs::finish(services, rec, &media, &info).await;
    rec.stats.processing_s = started.elapsed().as_secs_f64();
    Ok(Prepared {
        media,
        poster,
        strip,
        info,
        tracks,
    })
}

/// Puts the prepared files in the store and fills in `rec`'s media, size
/// and duration. A failure is `storage_failed` with the store's reason; the
/// files stay where they are.
pub async fn store(services: &Services, rec: &mut Recording, p: &Prepared) -> Result<(), Failure> {
    let stored = services
        .blobs
        .put_file(&rec.media_key(), &p.media)
        .await
        .map_err(|e| {
            Failure::new(
                Code::StorageFailed,
                format!("storing the media failed: {e}"),
            )
        })?;
    for (key, file) in [(rec.poster_key(), &p.poster), (rec.strip_key(), &p.strip)] {
        upload_small(services, &key, file).await?;
    }
    for (t, file) in rec.tracks.iter().zip(&p.tracks) {
        services
            .blobs
            .put_file(&rec.track_key(t), file)
            .await
            .map_err(|e| {
                Failure::new(
                    Code::StorageFailed,
                    format!("storing track {} failed: {e}", t.id),
                )
            })?;
    }
    crate::engine::outputs::store(services, rec).await?;
    let mut info = p.info.clone();
    info.sha256 = stored.sha256;
    rec.duration_s = Some(info.duration_s);
    rec.size_bytes = Some(stored.size);
    rec.media = Some(info);
    Ok(())
}

async fn upload_small(services: &Services, key: &str, file: &Path) -> Result<(), Failure> {
    let bytes = match tokio::fs::read(file).await {
        Ok(b) => b,
        // No picture to make it from (sound only): there is none to store,
        // and that is not the store's failure to retry.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::info!(key, "no thumbnail was made (the media has no picture)");
            return Ok(());
        }
        Err(e) => {
            return Err(Failure::new(
                Code::StorageFailed,
                format!("reading {}: {e}", file.display()),
            ));
        }
    };
    services
        .blobs
        .put_bytes(key, bytes)
        .await
        .map_err(|e| Failure::new(Code::StorageFailed, format!("storing {key} failed: {e}")))
}
