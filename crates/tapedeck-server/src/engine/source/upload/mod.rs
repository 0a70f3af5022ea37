//! The `upload` source: a file its client sends in chunks over tus 1.0.0
//! ([`tus`]), appended to `work/ID/upload.part` as the bytes arrive.
//!
//! - **Lifecycle.** Creating the upload creates the recording; it is
//!   `recording` while bytes arrive, and the last byte (the offset reaching
//!   `Upload-Length`) ends it: the driver stops it and [`UploadSource`]'s
//!   close makes the file to process. Stop keeps what arrived; cancel (tus
//!   termination) discards it.
//! - **Resumable across restarts.** The part file is synced after every
//!   chunk, and its length is the offset: after a restart the upload opens
//!   again where it was and the client resumes with `HEAD` + `PATCH`.
//! - **Expiry.** An upload that receives nothing for
//!   `uploads.expire_after_s`, or no first byte within
//!   `uploads.start_timeout_s`, fails with `end_reason: upload_expired`
//!   (`Upload-Expires` says when): the lifecycle decides it like any idle
//!   limit ([`adjust_limits`] gives it the upload's times). A presigned
//!   upload's bytes go to the bucket, not through tapedeck: [`watch_bucket`]
//!   reports its object as activity.
//! - **Processing.** A browser's MediaRecorder WebM (no duration, no cues)
//!   is rewritten with both by [`tapedeck_media::fixup`], frames untouched;
//!   anything else ffmpeg reads (Safari's MP4, PCM audio) is remuxed by
//!   stream copy. A file cut mid-cluster keeps the part before the cut
//!   (`note: invalid_media`); a file that is not media fails with
//!   `invalid_media`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;
use tapedeck_core::Code;

use futures::future::BoxFuture;
use tapedeck_core::lifecycle::{Limits, SourceControl};
use tapedeck_core::recording::{Recording, SourceSpec, Status, UploadSource as Spec};
use tapedeck_core::{Failure, Format, RecordingId};
use tapedeck_media::ffmpeg::{self, EncodeSpec};
use tapedeck_media::fixup::{FixupError, fixup};
use tapedeck_media::sink::passthrough::Container;
use tokio::sync::{Mutex, mpsc, watch};

mod transcode;
pub(crate) use transcode::claimed as transcode_claimed;

use super::{Meter, OpenCtx, Source, SourceEvent, Take};
use crate::config::UploadsConfig;
use crate::engine::services::Services;
use crate::now_ms;

/// The object a presigned S3 upload goes to.
pub fn object_key(id: RecordingId) -> String {
    format!("uploads/{id}")
}

/// What the tus routes talk to while an upload takes bytes.
pub struct Endpoint {
    /// The recording.
    pub id: RecordingId,
    /// Whose it is.
    pub owner: String,
    services: Arc<Services>,
    meter: Arc<Meter>,
    events: mpsc::Sender<SourceEvent>,
    status: watch::Receiver<Status>,
    /// The part file and where it stands; one chunk at a time.
    pub state: Mutex<State>,
    /// Wall time (ms) of the last bytes (or of the opening), for expiry.
    last_activity_ms: AtomicI64,
    /// The lifecycle's limits of the recording (its expiry).
    limits: Limits,
    /// Whether any byte arrived (or a presigned upload's object is there).
    any_bytes: AtomicBool,
    /// Finished, stopped or aborted: no more bytes.
    closed: AtomicBool,
}

/// The part file and where it stands.
pub struct State {
    /// `work/ID/upload.part`.
    pub path: PathBuf,
    /// Bytes received and synced.
    pub offset: u64,
    /// What the client described (its `length` once known).
    pub spec: Spec,
}

impl Endpoint {
    /// When the upload expires if nothing more arrives (ms since the epoch).
    /// The lifecycle decides it by the same rule ([`Limits::idle_at_ms`]).
    pub fn expires_at_ms(&self) -> i64 {
        self.limits.idle_at_ms(
            self.last_activity_ms.load(Ordering::Relaxed),
            self.any_bytes.load(Ordering::Relaxed),
        )
    }

    /// Whether it takes no more bytes.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed) || !self.status.borrow().is_active()
    }

    /// Notes a chunk that arrived (activity for expiry; `stats.frames_in`
    /// counts chunks).
    pub fn arrived(&self) {
        self.any_bytes.store(true, Ordering::Relaxed);
        self.last_activity_ms.store(now_ms(), Ordering::Relaxed);
        self.meter.received.fetch_add(1, Ordering::Relaxed);
    }

    /// The recording's source says `spec` from now on (a length told late).
    pub fn describe(&self, spec: &Spec) {
        // Not waiting: the caller holds the state's lock, which the driver's
        // close also takes. Missed, it costs nothing lasting: processing
        // writes the length from the part file.
        let _ = self
            .events
            .try_send(SourceEvent::Describe(SourceSpec::Upload(spec.clone())));
    }

    /// The last byte arrived: the recording ends and is processed.
    pub async fn finished(&self) {
        if !self.closed.swap(true, Ordering::Relaxed) {
            let _ = self.events.send(SourceEvent::Ended).await;
        }
    }
}

/// A running upload, as the driver holds it.
pub struct UploadSource {
    ep: Arc<Endpoint>,
    bucket_watch: tokio::task::JoinHandle<()>,
    work: PathBuf,
    services: Arc<Services>,
    /// The transcode asked for (`format`/`preset` in the metadata).
    encode: Option<EncodeSpec>,
    /// The recording as it began (a transcode handed to the cluster names it).
    rec: Recording,
}

/// The transcode `rec` asks for, if any.
pub(super) fn encode_of(services: &Services, rec: &Recording) -> Option<EncodeSpec> {
    match &rec.source {
        SourceSpec::Upload(u) if u.transcode => Some(super::encoding::encode_spec(services, rec)),
        _ => None,
    }
}

/// The work folder's part file of `id`.
fn part_path(services: &Services, id: RecordingId) -> PathBuf {
    services.work_dir(id).join("upload.part")
}

impl UploadSource {
    /// Opens (or, after a restart, reopens) the part file, publishes the
    /// endpoint and starts recording at once.
    pub async fn open(ctx: OpenCtx) -> Result<Self, Failure> {
        let SourceSpec::Upload(spec) = &ctx.rec.source else {
            return Err(Failure::internal("an upload source for another kind"));
        };
        let work = ctx.services.work_dir(ctx.rec.id);
        let path = part_path(&ctx.services, ctx.rec.id);
        tokio::fs::create_dir_all(&work)
            .await
            .map_err(|e| Failure::internal(format!("work folder: {e}")))?;
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .await
            .map_err(|e| Failure::internal(format!("upload file: {e}")))?;
        let offset = file
            .metadata()
            .await
            .map_err(|e| Failure::internal(format!("upload file: {e}")))?
            .len();
        let ep = Arc::new(Endpoint {
            id: ctx.rec.id,
            owner: ctx.rec.owner.clone(),
            services: ctx.services.clone(),
            meter: ctx.meter.clone(),
            events: ctx.events.clone(),
            status: ctx.status.clone(),
            state: Mutex::new(State {
                path,
                offset,
                spec: spec.clone(),
            }),
            last_activity_ms: AtomicI64::new(now_ms()),
            limits: crate::engine::driver::limits(&ctx.services, &ctx.rec),
            any_bytes: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        });
        ctx.services.sources.register(ctx.rec.id, ep.clone());
        let _ = ctx.events.send(SourceEvent::Started(None)).await;
        if offset > 0 {
            // Reopened after a restart: the part file is what arrived.
            ep.arrived();
            if spec.length == Some(offset) {
                ep.finished().await;
            }
        }
        let bucket_watch = tokio::spawn(watch_bucket(ep.clone()));
        Ok(Self {
            ep,
            bucket_watch,
            work,
            encode: encode_of(&ctx.services, &ctx.rec),
            services: ctx.services,
            rec: ctx.rec,
        })
    }

    /// For a recording that was processing when the server stopped: makes
    /// the file again from the part file.
    pub fn recovered(services: Arc<Services>, rec: &Recording) -> Box<dyn Source> {
        let spec = match &rec.source {
            SourceSpec::Upload(s) => s.clone(),
            // Not an upload (a kind table mix-up): nothing described.
            SourceSpec::Frames { .. } | SourceSpec::Web(_) | SourceSpec::Room(_) => Spec::default(),
        };
        Box::new(Finish {
            services: services.clone(),
            work: services.work_dir(rec.id),
            spec,
            encode: encode_of(&services, rec),
            rec: rec.clone(),
        })
    }
}

/// An upload's limits: it is idle after `uploads.expire_after_s` without
/// bytes, or `uploads.start_timeout_s` without a first one (a presigned
/// one's client has its URL's lifetime on top; a multipart one's parts are
/// not visible until it is completed, so it has the idle time only).
pub fn adjust_limits(cfg: &UploadsConfig, spec: &Spec, l: &mut Limits) {
    let ms = |s: u64| i64::try_from(s).unwrap_or(i64::MAX).saturating_mul(1000);
    l.idle_timeout_ms = ms(cfg.expire_after_s);
    l.first_unit_timeout_ms = match (spec.direct, spec.multipart.is_some()) {
        (_, true) => None,
        (true, false) => Some(ms(cfg.start_timeout_s.saturating_add(cfg.url_expires_s))),
        (false, false) => Some(ms(cfg.start_timeout_s)),
    };
}

/// How long before its first-byte time a presigned upload's object is
/// looked for, and how often from then.
const BUCKET_LOOK_AHEAD_MS: i64 = 10_000;
const BUCKET_EVERY: Duration = Duration::from_secs(2);

/// A presigned single-PUT upload's bytes go straight to the bucket: when
/// its first-byte time nears, looks for its object there and reports it as
/// activity, so that the lifecycle does not expire an upload that came.
async fn watch_bucket(ep: Arc<Endpoint>) {
    let direct = {
        let st = ep.state.lock().await;
        st.spec.direct && st.spec.multipart.is_none()
    };
    if !direct || !ep.services.blobs.is_bucket() {
        return;
    }
    let wait = ep.expires_at_ms() - BUCKET_LOOK_AHEAD_MS - now_ms();
    tokio::time::sleep(Duration::from_millis(u64::try_from(wait).unwrap_or(0))).await;
    let mut every = tokio::time::interval(BUCKET_EVERY);
    loop {
        every.tick().await;
        if ep.is_closed() || ep.any_bytes.load(Ordering::Relaxed) {
            return;
        }
        if ep.services.blobs.size(&object_key(ep.id)).await.is_ok() {
            ep.arrived();
            return;
        }
    }
}

impl Source for UploadSource {
    /// Pause and resume do not apply: the client sends when it sends.
    fn control(&mut self, _c: SourceControl) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, Result<Take, Failure>> {
        Box::pin(async move {
            self.ep.closed.store(true, Ordering::Relaxed);
            self.bucket_watch.abort();
            // A chunk being written finishes first.
            let spec = self.ep.state.lock().await.spec.clone();
            finish(&self.services, &self.rec, &self.work, spec, self.encode).await
        })
    }

    fn abort(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            self.ep.closed.store(true, Ordering::Relaxed);
            self.bucket_watch.abort();
            // What a presigned upload left in the bucket goes too (parts
            // of a multipart upload stay, billed, until aborted).
            let spec = self.ep.state.lock().await.spec.clone();
            let blobs = &self.services.blobs;
            if spec.direct && blobs.is_bucket() {
                let key = object_key(self.ep.id);
                if let Some(id) = spec.multipart.and_then(|m| m.upload_id)
                    && let Err(e) = blobs.abort_multipart(&key, &id).await
                {
                    tracing::warn!(%key, error = %e, "aborting a multipart upload failed");
                }
                let _ = blobs.delete(&key).await;
            }
        })
    }
}

/// The recovered form: only finishing.
struct Finish {
    services: Arc<Services>,
    work: PathBuf,
    spec: Spec,
    encode: Option<EncodeSpec>,
    rec: Recording,
}

impl Source for Finish {
    fn control(&mut self, _c: SourceControl) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, Result<Take, Failure>> {
        Box::pin(async move {
            finish(
                &self.services,
                &self.rec,
                &self.work,
                self.spec,
                self.encode,
            )
            .await
        })
    }

    fn abort(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}

/// The file to process from the part file: fixed up in place of a
/// MediaRecorder WebM, else remuxed by ffmpeg. The source is described
/// with the bytes received: their length and SHA-256.
async fn finish(
    services: &Services,
    rec: &Recording,
    work: &Path,
    mut spec: Spec,
    encode: Option<EncodeSpec>,
) -> Result<Take, Failure> {
    let part = work.join("upload.part");
    let size = tokio::fs::metadata(&part)
        .await
        .map(|m| m.len())
        .unwrap_or(0);
    if size == 0 {
        return Err(Failure::new(Code::NoSource, "no bytes were uploaded"));
    }
    let p = part.clone();
    let sha = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        std::io::copy(&mut std::fs::File::open(p)?, &mut h)?;
        Ok(hex::encode(h.finalize()))
    })
    .await
    .map_err(|e| Failure::internal(e.to_string()))?
    .map_err(|e| Failure::internal(format!("reading the upload: {e}")))?;
    spec.sha256 = Some(sha);
    spec.length = Some(size);
    // Before anything decodes it: a picture past the limits is refused by
    // its size (a file of a few KB may declare 16000 x 16000 pictures).
    // Bytes ffprobe cannot read are left to the fix-up and the remux,
    // which say what is wrong with them.
    match pictures(services, &part).await {
        Err(f) if f.code == Code::InvalidMedia => return Err(f),
        _ => {}
    }
    let (p, w) = (part.clone(), work.to_path_buf());
    let fixed = tokio::task::spawn_blocking(move || {
        let out = w.join("fixed.webm");
        let r = fixup(&p, &out);
        (r, out)
    })
    .await
    .map_err(|e| Failure::internal(e.to_string()))?;
    let mut take = Take {
        output: fixed.1.clone(),
        counters: Default::default(),
        cpu_s: 0.0,
        realtime_factor: None,
        tracks: vec![],
        speakers: vec![],
        format: None,
        note: None,
        source: Some(SourceSpec::Upload(spec)),
    };
    match fixed.0 {
        Ok(f) => {
            if f.container == Container::Matroska {
                let mkv = work.join("fixed.mkv");
                tokio::fs::rename(&take.output, &mkv)
                    .await
                    .map_err(|e| Failure::internal(e.to_string()))?;
                take.output = mkv;
            }
            take.format = Some(match f.container {
                Container::Webm => Format::Webm,
                Container::Matroska => Format::Mkv,
            });
            take.counters.duration_us = (f.summary.duration_ms * 1000.0) as i64;
            if let Some(cut) = f.cut {
                take.note = Some(Failure::new(
                    Code::InvalidMedia,
                    format!("the upload is cut: {cut}; the part before the cut was kept"),
                ));
            }
        }
        Err(FixupError::Io(e)) => return Err(Failure::internal(format!("fix-up: {e}"))),
        Err(FixupError::Sink(e)) => return Err(Failure::internal(format!("fix-up: {e}"))),
        // Not what the fix-up writes (MP4, PCM, laced blocks): ffmpeg remuxes it.
        Err(why) => {
            let (format, out) = remux(services, &part, work).await.map_err(|e| {
                Failure::new(
                    Code::InvalidMedia,
                    format!("the upload is not media that can be read ({why}; ffmpeg: {e})"),
                )
            })?;
            take.format = Some(format);
            take.output = out;
        }
    }
    // ffmpeg reads some junk as a format of its own (random bytes as
    // `bin` text art) and remuxes it into a file it then cannot read.
    let video = pictures(services, &take.output).await.map_err(|f| {
        if f.code == Code::Internal {
            Failure::new(
                Code::InvalidMedia,
                format!("the upload is not media that can be read ({})", f.message),
            )
        } else {
            f
        }
    })?;
    if video.is_none() {
        return Err(Failure::new(
            Code::InvalidMedia,
            "the upload has sound only: there is no video stream (tapedeck keeps videos)",
        ));
    }
    if let Some(e) = encode {
        take.output = transcode::anywhere(services, rec, &take.output, work, &e).await?;
        take.format = Some(e.format);
    }
    Ok(take)
}

/// The size of `file`'s largest picture, `None` when it has no video
/// stream (ffprobe): a picture past `limits.max_frame_width` x
/// `max_frame_height` is `invalid_media` naming its size.
async fn pictures(services: &Services, file: &Path) -> Result<Option<(u32, u32)>, Failure> {
    let tools = services.tools.clone();
    let file = file.to_path_buf();
    let size = tokio::task::spawn_blocking(move || ffmpeg::picture_size(&tools, &file))
        .await
        .map_err(|e| Failure::internal(e.to_string()))?
        .map_err(|e| media_failure(services, e, "probing the upload"))?;
    let l = &services.config.limits;
    match size {
        Some((w, h)) if w > l.max_frame_width || h > l.max_frame_height => {
            Err(too_large(services, w, h))
        }
        other => Ok(other),
    }
}

fn too_large(services: &Services, w: u32, h: u32) -> Failure {
    let l = &services.config.limits;
    Failure::new(
        Code::InvalidMedia,
        format!(
            "the upload's pictures are {w}x{h}, larger than the {}x{} allowed \
             (limits.max_frame_width, limits.max_frame_height)",
            l.max_frame_width, l.max_frame_height
        ),
    )
}

/// An ffmpeg error on the upload: its refusal of a picture past the
/// decoding limit is `invalid_media` naming the size; others are `what`
/// failing.
fn media_failure(services: &Services, e: ffmpeg::FfmpegError, what: &str) -> Failure {
    match e {
        ffmpeg::FfmpegError::PictureTooLarge { width, height, .. } => {
            too_large(services, width, height)
        }
        e => Failure::internal(format!("{what}: {e}")),
    }
}

/// Remuxes `part` by stream copy into MP4 (H.264/AAC, what Safari records)
/// or else Matroska (anything).
async fn remux(services: &Services, part: &Path, work: &Path) -> Result<(Format, PathBuf), String> {
    let tools = services.tools.clone();
    let (part, work) = (part.to_path_buf(), work.to_path_buf());
    tokio::task::spawn_blocking(move || {
        let run = |format: Format| {
            let out = work.join(format!("remuxed.{}", format.extension()));
            ffmpeg::copy::remux(&tools, &part, format, &out)
                .map(|()| (format, out))
                .map_err(|e| e.to_string())
        };
        run(Format::Mp4).or_else(|_| run(Format::Mkv))
    })
    .await
    .map_err(|e| e.to_string())?
}

/// The part file's path of an upload (for the routes).
pub fn work_part(services: &Services, id: RecordingId) -> PathBuf {
    part_path(services, id)
}

/// The upload kind: a file sent in chunks (tus) or straight to the bucket.
pub struct Upload;

impl super::Kind for Upload {
    fn open(&self, ctx: OpenCtx) -> BoxFuture<'static, Result<Box<dyn Source>, Failure>> {
        Box::pin(async move { Ok(Box::new(UploadSource::open(ctx).await?) as Box<dyn Source>) })
    }

    fn recovered(&self, services: Arc<Services>, rec: &Recording) -> Box<dyn Source> {
        // The part file is whole up to its last synced chunk.
        UploadSource::recovered(services, rec)
    }

    fn authorize<'a>(
        &'a self,
        _services: &'a Services,
        _p: &'a crate::engine::principal::Principal,
        _v: &'a mut tapedeck_core::request::ValidCreate,
    ) -> BoxFuture<'a, Result<(), tapedeck_core::Problem>> {
        // Uploads are created at /v1/uploads, which checks their room.
        super::any_key()
    }
}
