//! The `frames` source: images pushed over a WebSocket at any rate.
//!
//! Opening the source starts nothing; it publishes an [`Endpoint`]. The first
//! socket that attaches starts the encoding sink and the recording
//! (pending → recording); later sockets (a reconnect) rebase the timeline.
//! The socket ([`socket`]) is transport only: it hands each image to its
//! [`Attachment`], which checks it cheaply, counts it and queues it for the
//! sink. When the queue is full the newest image waits in a slot of one
//! ([`Overflow`]) and goes first when there is room; the one it replaces is
//! dropped and counted. So an encoder that falls behind loses pictures in
//! the middle (held over in the video), never the last one, and the file
//! lasts as long as the stream did. A camera accepted beyond the budget is
//! spooled only; [`deferred`] says when and where it is encoded.

mod deferred;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tapedeck_core::Code;

use std::time::Instant;

use futures::future::BoxFuture;
use tapedeck_core::lifecycle::SourceControl;
use tapedeck_core::recording::{Recording, Status};
use tapedeck_core::{Failure, RecordingId};
use tapedeck_media::picture::{self, FrameLimits};
use tokio::sync::{Mutex, mpsc, oneshot, watch};

use super::encoding::{EncodingRun, SinkMsg, frame_limits};
use super::{Meter, OpenCtx, Source, SourceEvent, Take};
use crate::engine::metrics::Metrics;
use crate::engine::services::Services;
use tapedeck_core::Problem;

/// A frames recording's source.
pub struct FramesSource {
    inner: Arc<Endpoint>,
}

/// What the frames socket of one recording talks to.
pub struct Endpoint {
    services: Arc<Services>,
    rec: Recording,
    meter: Arc<Meter>,
    events: mpsc::Sender<SourceEvent>,
    status: watch::Receiver<Status>,
    run: Mutex<Option<EncodingRun>>,
    closed: AtomicBool,
    epoch: Instant,
    overflow: Overflow,
    /// Accepted beyond the budget: spooled only, encoded at the finish.
    deferred: bool,
    /// Such a camera's encode, admitted while it records (`deferred`).
    encode: std::sync::Mutex<Option<super::admission::Admission>>,
}

/// The newest image that found the sink's queue full, with its source time.
type Overflow = Arc<std::sync::Mutex<Option<(Vec<u8>, i64)>>>;

/// What a socket gets when it attaches.
#[derive(Clone)]
pub struct Attachment {
    /// The sink's queue.
    queue: flume::Sender<SinkMsg>,
    /// The image waiting for room in the queue (one per recording).
    overflow: Overflow,
    /// Shared numbers.
    pub meter: Arc<Meter>,
    /// The recording's clock for frames without timestamps.
    pub epoch: Instant,
    /// Frame limits.
    pub limits: FrameLimits,
    /// Status changes.
    pub status: watch::Receiver<Status>,
    /// Server-wide counts.
    metrics: Metrics,
}

/// What became of one image.
pub enum Taken {
    /// Queued, or dropped because the queue was full (counted; no reply, or a
    /// slow encoder would flood the socket).
    Queued,
    /// Not a usable image: the client hears at once.
    Refused,
    /// The sink is gone: the recording ended.
    Closed,
}

impl Attachment {
    /// Takes one image from the socket: checks it cheaply and queues it for
    /// the sink (a full queue drops it); counts it either way.
    pub fn offer(&self, bytes: Vec<u8>, src_us: i64) -> Taken {
        let att = self;
        att.meter.received.fetch_add(1, Ordering::Relaxed);
        att.metrics.frames(1, 0);
        if let Err(e) = picture::check(&bytes, &att.limits) {
            att.count_invalid(e.to_string());
            return Taken::Refused;
        }
        let mut waiting = att.overflow.lock().unwrap_or_else(|e| e.into_inner());
        // The waiting image is older than this one: it goes first, or is
        // dropped for it.
        if let Some((b, t)) = waiting.take() {
            match att.queue.try_send(SinkMsg::Frame(b, t)) {
                Ok(()) => {}
                Err(flume::TrySendError::Full(_)) => att.count_dropped(),
                Err(flume::TrySendError::Disconnected(_)) => return Taken::Closed,
            }
        }
        match att.queue.try_send(SinkMsg::Frame(bytes, src_us)) {
            Ok(()) => Taken::Queued,
            Err(flume::TrySendError::Full(msg)) => {
                if let SinkMsg::Frame(b, t) = msg {
                    *waiting = Some((b, t));
                }
                Taken::Queued
            }
            Err(flume::TrySendError::Disconnected(_)) => Taken::Closed,
        }
    }

    fn count_dropped(&self) {
        self.meter.refused.fetch_add(1, Ordering::Relaxed);
        self.metrics.frames(0, 1);
        self.meter
            .set_error("frame dropped: the encoder is behind (queue full)");
    }

    /// Counts an image that could not even be read from its message.
    pub fn refuse(&self, message: String) -> Taken {
        self.meter.received.fetch_add(1, Ordering::Relaxed);
        self.metrics.frames(1, 0);
        self.count_invalid(message);
        Taken::Refused
    }

    fn count_invalid(&self, message: String) {
        self.meter.refused.fetch_add(1, Ordering::Relaxed);
        self.meter.refused_invalid.fetch_add(1, Ordering::Relaxed);
        self.metrics.frames(0, 1);
        self.meter.set_error(message);
    }
}

impl FramesSource {
    /// Publishes the endpoint; the sink starts when a socket attaches.
    pub fn open(ctx: OpenCtx) -> Self {
        let inner = Arc::new(Endpoint {
            services: ctx.services.clone(),
            rec: ctx.rec,
            meter: ctx.meter,
            events: ctx.events,
            status: ctx.status,
            run: Mutex::new(None),
            closed: AtomicBool::new(false),
            epoch: Instant::now(),
            overflow: Overflow::default(),
            deferred: ctx.deferred,
            encode: std::sync::Mutex::new(None),
        });
        inner.meter.deferred.store(ctx.deferred, Ordering::Relaxed);
        ctx.services.sources.register(inner.rec.id, inner.clone());
        Self { inner }
    }
}

fn gone(status: Status) -> Problem {
    Problem::new(
        Code::InvalidTransition,
        format!(
            "the recording is {}; it takes no more frames",
            status.as_str()
        ),
    )
}

impl Endpoint {
    /// The endpoint of recording `rec`, or why a frames socket cannot attach to it.
    pub async fn of(services: &Services, rec: &Recording) -> Result<Arc<Endpoint>, Problem> {
        if rec.source.kind() != tapedeck_core::SourceKind::Frames {
            return Err(Problem::new(
                Code::WrongSource,
                "this recording does not take frames",
            ));
        }
        let endpoint = if rec.status == Status::Pending {
            // Its driver may not have opened the source yet.
            services
                .sources
                .endpoint_soon::<Endpoint>(rec.id, std::time::Duration::from_secs(5))
                .await
        } else {
            services.sources.endpoint::<Endpoint>(rec.id)
        };
        endpoint.ok_or_else(|| gone(rec.status))
    }

    /// The recording's id.
    pub fn id(&self) -> RecordingId {
        self.rec.id
    }

    fn take_overflow(&self) -> Option<(Vec<u8>, i64)> {
        self.overflow
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Attaches a socket: the first one starts the sink and the recording.
    pub async fn attach(self: &Arc<Self>) -> Result<Attachment, Problem> {
        let first = {
            let mut run = self.run.lock().await;
            let status = *self.status.borrow();
            if self.closed.load(Ordering::Relaxed)
                || !matches!(status, Status::Pending | Status::Recording | Status::Paused)
            {
                return Err(gone(status));
            }
            match run.as_ref() {
                Some(r) => {
                    // The last connection's waiting image belongs to its clock.
                    if let Some((b, t)) = self.take_overflow()
                        && r.queue().try_send(SinkMsg::Frame(b, t)).is_err()
                    {
                        self.meter.refused.fetch_add(1, Ordering::Relaxed);
                        self.services.metrics.frames(0, 1);
                    }
                    let _ = r.queue().try_send(SinkMsg::Rebase);
                    false
                }
                None => {
                    let started = EncodingRun::start(
                        &self.services,
                        &self.rec,
                        self.meter.clone(),
                        self.events.clone(),
                        self.deferred,
                    )
                    .await;
                    match started {
                        Ok(r) => *run = Some(r),
                        Err(f) => {
                            drop(run);
                            let message = format!("the encoder could not start: {}", f.message);
                            let _ = self
                                .events
                                .send(SourceEvent::Failed(Failure::new(
                                    Code::EncoderFailed,
                                    &message,
                                )))
                                .await;
                            return Err(Problem::new(Code::EncoderUnavailable, message));
                        }
                    }
                    true
                }
            }
        };
        if first && self.deferred {
            deferred::promote_when_room(self);
        }
        // Not under the lock: the driver may abort the source meanwhile.
        if first {
            let (tx, rx) = oneshot::channel();
            let now = match self.events.send(SourceEvent::Started(Some(tx))).await {
                Ok(()) => rx.await.unwrap_or(Status::Failed),
                Err(_) => Status::Failed,
            };
            if now != Status::Recording {
                return Err(gone(now));
            }
        }
        let queue = self.run.lock().await.as_ref().map(|r| r.queue());
        let queue = queue.ok_or_else(|| gone(*self.status.borrow()))?;
        Ok(Attachment {
            queue,
            overflow: self.overflow.clone(),
            meter: self.meter.clone(),
            epoch: self.epoch,
            limits: frame_limits(&self.services.config),
            status: self.status.clone(),
            metrics: self.services.metrics.clone(),
        })
    }
}

impl Source for FramesSource {
    fn control(&mut self, c: SourceControl) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(r) = self.inner.run.lock().await.as_ref() {
                r.control(c).await;
            }
        })
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, Result<Take, Failure>> {
        Box::pin(async move {
            self.inner.closed.store(true, Ordering::Relaxed);
            let run = self.inner.run.lock().await.take();
            match run {
                Some(r) => {
                    // The newest image, if it is still waiting, ends the video.
                    if let Some((b, t)) = self.inner.take_overflow() {
                        let _ = r.queue().send_async(SinkMsg::Frame(b, t)).await;
                    }
                    // A camera accepted beyond the budget is encoded from
                    // its spool when and where its turn comes.
                    let (_encode, encoder) = deferred::encode_turn(&self.inner);
                    let r = r
                        .close_with(encoder)
                        .await
                        .map(|f| super::encoding::take(f, None));
                    self.inner.meter.deferred.store(false, Ordering::Relaxed);
                    r
                }
                None => Err(Failure::new(Code::NoSource, "no source ever connected")),
            }
        })
    }

    fn abort(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            self.inner.closed.store(true, Ordering::Relaxed);
            let run = self.inner.run.lock().await.take();
            if let Some(r) = run {
                r.abort().await;
            }
        })
    }
}

/// The frames kind: pictures pushed over a WebSocket.
pub struct Frames;

impl super::Kind for Frames {
    fn open(&self, ctx: OpenCtx) -> BoxFuture<'static, Result<Box<dyn Source>, Failure>> {
        Box::pin(async move { Ok(Box::new(FramesSource::open(ctx)) as Box<dyn Source>) })
    }

    fn recovered(&self, services: Arc<Services>, rec: &Recording) -> Box<dyn Source> {
        Box::new(super::encoding::FromSpool::new(services, rec))
    }

    fn authorize<'a>(
        &'a self,
        _services: &'a Services,
        _p: &'a crate::engine::principal::Principal,
        _v: &'a mut tapedeck_core::request::ValidCreate,
    ) -> BoxFuture<'a, Result<(), tapedeck_core::Problem>> {
        // Any key may record a camera of its own.
        super::any_key()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(level: u8) -> Vec<u8> {
        let img = image::RgbImage::from_pixel(16, 16, image::Rgb([level, level, level]));
        let mut out = std::io::Cursor::new(vec![]);
        img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
        out.into_inner()
    }

    fn src_us(msg: SinkMsg) -> i64 {
        match msg {
            SinkMsg::Frame(_, t) => t,
            _ => panic!("not a frame"),
        }
    }

    #[test]
    fn a_full_queue_keeps_the_newest_image_waiting_and_in_order() {
        let (tx, rx) = flume::bounded(1);
        let (_status_tx, status) = watch::channel(Status::Recording);
        let att = Attachment {
            queue: tx,
            overflow: Overflow::default(),
            meter: Arc::new(Meter::default()),
            epoch: Instant::now(),
            limits: FrameLimits::default(),
            status,
            metrics: Metrics::new(),
        };
        let dropped = |att: &Attachment| att.meter.refused.load(Ordering::Relaxed);
        // 1 is queued; 2 waits; 3 replaces it (2 is dropped).
        for t in [1, 2, 3] {
            assert!(matches!(att.offer(jpeg(t as u8), t), Taken::Queued));
        }
        assert_eq!(dropped(&att), 1);
        assert_eq!(src_us(rx.try_recv().unwrap()), 1);
        // Room again: the waiting 3 goes before 4, and 4 waits.
        assert!(matches!(att.offer(jpeg(4), 4), Taken::Queued));
        assert_eq!(src_us(rx.try_recv().unwrap()), 3);
        assert!(rx.try_recv().is_err());
        assert_eq!(
            att.overflow.lock().unwrap().as_ref().map(|(_, t)| *t),
            Some(4)
        );
        assert_eq!(dropped(&att), 1);
        // Room for both: nothing waits.
        drop(rx.try_recv());
        let (tx, rx) = flume::bounded(4);
        let att = Attachment { queue: tx, ..att };
        assert!(matches!(att.offer(jpeg(5), 5), Taken::Queued));
        let got: Vec<i64> = rx.try_iter().map(src_us).collect();
        assert_eq!(got, [4, 5]);
        assert!(att.overflow.lock().unwrap().is_none());
        assert_eq!(dropped(&att), 1);
    }
}
