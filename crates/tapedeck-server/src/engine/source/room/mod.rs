//! The `room` source: a call's tracks written as they arrive, without
//! transcoding. It subscribes to the room's media at the media server
//! ([`crate::rtc`]) and gives every participant track a passthrough file of
//! its own (`work/ID/tracks/tN.webm`, `.mkv` for H.264); at stop the track
//! files are put side by side, each at its start, in one WebM (Matroska
//! when a track is H.264) with ffmpeg's stream copy (`/media`).
//!
//! Time: every track is placed on the recording's timeline. A track starts
//! where its first frame arrived; within a session its frames follow their
//! RTP times. A participant who drops and comes back (same name, same kind
//! of track) continues in the same file from where the new session's first
//! frame arrives, leaving the gap. Pauses are cut out of every track alike
//! (no gap in the files), and video resumes at a keyframe, asked for at
//! start, at resume and after loss.
//!
//! Crash-safe: the track files are streaming passthrough files (a cut one
//! plays to its last complete cluster, at most half a second back), and
//! `tracks/manifest.json` says whose each file is and where it starts, so
//! after a `kill -9` the next start finalizes every file and makes the
//! recording from them ([`Recovered`], `end_reason: recovered`).
//!
//! Codecs: VP8, VP9, AV1 and H.264 video, Opus audio, each written as it
//! arrived (H.264 turned from Annex B into length-prefixed units, with an
//! `avcC` made from its SPS and PPS; AV1 with an `av1C`). Another codec is
//! named in `last_error`, and the participant's other tracks are still
//! recorded.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tapedeck_core::Code;
use tapedeck_core::speakers::Speakers;
use tapedeck_core::track::{Speech, TrackCodec, TrackKind, TrackSource};

use futures::future::BoxFuture;
use tapedeck_core::Failure;
use tapedeck_core::lifecycle::SourceControl;
use tapedeck_core::recording::{RoomLayout, RoomSource, TrackFile};
use tapedeck_media::sink::passthrough::{
    Codec, Container, PassthroughSink, Placed, Summary, Track as SinkTrack, Unit,
};
use tokio::sync::{mpsc, oneshot};

pub mod access;
pub mod auto;
pub(crate) mod grid;
mod idle;
mod kind;
mod live;
pub(crate) mod placement;
mod recover;

pub use access::{authorize, host_only, room_for};
pub use kind::Room;

use recover::MANIFEST;
pub use recover::Recovered;
use tapedeck_media::video_setup;

use super::{Meter, OpenCtx, Source, SourceEvent, Take};
use crate::engine::services::Services;
use crate::rtc::{Frame, RoomMedia, TrackInfo};

/// A room recording's source.
pub struct RoomRecording {
    ctl: mpsc::Sender<Ctl>,
    output: Output,
}

/// What a room recording makes of its track files at the end.
struct Output {
    services: Arc<Services>,
    work: PathBuf,
    /// Set for `layout: grid`.
    grid: Option<grid::GridSpec>,
    meter: Arc<Meter>,
    /// The recording as it began (its id, owner, size and keys).
    rec: tapedeck_core::recording::Recording,
}

impl Output {
    fn new(
        services: Arc<Services>,
        rec: &tapedeck_core::recording::Recording,
        meter: Arc<Meter>,
    ) -> Self {
        // A grid when the room's recording asks for one.
        let layout = match &rec.source {
            tapedeck_core::recording::SourceSpec::Room(r) => r.layout,
            tapedeck_core::recording::SourceSpec::Frames { .. }
            | tapedeck_core::recording::SourceSpec::Web(_)
            | tapedeck_core::recording::SourceSpec::Upload(_) => RoomLayout::Tracks,
        };
        let grid = match layout {
            RoomLayout::Grid => {
                let spec = super::encoding::encode_spec(&services, rec);
                Some(grid::GridSpec {
                    spec,
                    audio_kbps: rec.video.audio_bitrate_kbps,
                })
            }
            RoomLayout::Tracks => None,
        };
        Self {
            work: services.work_dir(rec.id),
            services,
            grid,
            meter,
            rec: rec.clone(),
        }
    }

    /// `/media` from the track files: the grid when asked for, else (or
    /// when the grid fails, saying why) the tracks side by side in WebM,
    /// or Matroska when a track is H.264.
    async fn finish(
        self,
        tracks: Vec<(TrackFile, PathBuf)>,
        speakers: Vec<Speech>,
    ) -> Result<Take, Failure> {
        let (side_format, container) = if tracks.iter().all(|(t, _)| t.container == "webm") {
            (tapedeck_core::Format::Webm, "WebM")
        } else {
            (tapedeck_core::Format::Mkv, "Matroska")
        };
        let mut take = Take {
            output: self.work.join(format!("media.{}", side_format.extension())),
            counters: Default::default(),
            cpu_s: 0.0,
            realtime_factor: None,
            tracks,
            speakers,
            format: None,
            note: None,
            source: None,
        };
        let has_video = take.tracks.iter().any(|(t, _)| t.kind == TrackKind::Video);
        if !has_video {
            // Nobody sent video: the sound is what the call left, kept
            // rather than lost with the recording.
            take.note = Some(Failure::new(
                Code::NoVideo,
                "no participant sent video while recording; the sound is kept",
            ));
        }
        if let Some(spec) = self.grid.as_ref().filter(|_| has_video) {
            let call = grid::Call {
                tracks: &take.tracks,
                speakers: &take.speakers,
            };
            match grid::compose_anywhere(
                &self.services,
                &self.rec,
                spec,
                call,
                &self.work,
                &self.meter,
            )
            .await
            {
                Ok(out) => {
                    take.output = out;
                    return Ok(take);
                }
                Err(f) => {
                    tracing::warn!(error = %f.message, "room grid: falling back to the tracks side by side");
                    take.note = Some(Failure::new(
                        Code::GridFailed,
                        format!(
                            "{}; the track files are intact, and /media holds them side by side ({container})",
                            f.message
                        ),
                    ));
                }
            }
        }
        take.format = Some(side_format);
        grid::side_by_side(&self.services, &take.tracks, &take.output).await?;
        Ok(take)
    }
}

enum Ctl {
    Control(SourceControl),
    Close(oneshot::Sender<Closed>),
}

/// What a room recording's writer leaves: its track files and who spoke when.
type Closed = (Vec<(TrackFile, PathBuf)>, Vec<Speech>);

/// One track, and its file once a frame said its codec and size.
struct TrackWriter {
    /// `t1`, `t2`, ...
    id: String,
    peer: crate::rtc::PeerId,
    participant: String,
    kind: TrackKind,
    source: TrackSource,
    path: PathBuf,
    open: Option<OpenTrack>,
}

/// A track's file being written.
struct OpenTrack {
    sink: PassthroughSink,
    began: Began,
}

/// What a track's first frame decided.
#[derive(Clone, Copy)]
struct Began {
    /// Its codec (every frame after must be in it).
    codec: TrackCodec,
    container: Container,
    /// Where the file's 0 is on the recording's timeline (µs).
    start_us: i64,
}

impl TrackWriter {
    /// Writes `f` at `at_us` (where [`placement::Placement`] put it);
    /// whether the file took it.
    fn write(&mut self, f: &Frame, at_us: i64, meter: &Meter) -> Result<bool, String> {
        let video = self.kind == TrackKind::Video;
        if self.open.is_none() {
            let track = match sink_codec(f.codec) {
                None => SinkTrack::opus(48_000, 2),
                Some(codec) => {
                    // Wait for a key frame that says the size (and, for
                    // H.264, carries the SPS and PPS).
                    let Some(setup) = video_setup::setup(codec, &f.data) else {
                        return Ok(false);
                    };
                    let mut t = SinkTrack::video(codec, setup.width, setup.height);
                    t.codec_private = setup.codec_private;
                    t
                }
            };
            // H.264 goes to Matroska, everything else to WebM.
            let container = Container::for_tracks(std::slice::from_ref(&track));
            self.path.set_extension(container.extension());
            let sink = PassthroughSink::create(&self.path, container, vec![track])
                .map_err(|e| e.to_string())?;
            self.open = Some(OpenTrack {
                sink,
                began: Began {
                    codec: f.codec,
                    container,
                    start_us: at_us,
                },
            });
        }
        let Some(open) = self.open.as_mut() else {
            return Ok(false);
        };
        if f.codec != open.began.codec {
            // A participant who came back with another codec: not into this file.
            return Err(format!(
                "{} frames cannot go into this {} file",
                f.codec.as_str(),
                open.began.codec.as_str()
            ));
        }
        // Matroska holds H.264 as length-prefixed NAL units, not Annex B.
        let avc;
        let data = if f.codec == TrackCodec::H264 {
            avc = video_setup::annexb_to_avc(&f.data);
            &avc[..]
        } else {
            &f.data[..]
        };
        let placed = open
            .sink
            .write(Unit {
                track: 0,
                pts_us: at_us - open.began.start_us,
                keyframe: f.keyframe || !video,
                data,
            })
            .map_err(|e| e.to_string())?;
        if placed == Placed::Written {
            meter
                .bytes
                .fetch_add(f.data.len() as u64, Ordering::Relaxed);
        }
        Ok(placed == Placed::Written)
    }
}

/// The passthrough codec of a video track's codec (None for sound).
fn sink_codec(codec: TrackCodec) -> Option<Codec> {
    match codec {
        TrackCodec::Opus => None,
        TrackCodec::Vp8 => Some(Codec::Vp8),
        TrackCodec::Vp9 => Some(Codec::Vp9),
        TrackCodec::Av1 => Some(Codec::Av1),
        TrackCodec::H264 => Some(Codec::H264),
    }
}

/// The room recording's files, placed by its [`placement::Placement`]
/// (same indexes).
struct Writer {
    room: tapedeck_core::RoomId,
    dir: PathBuf,
    place: placement::Placement,
    tracks: Vec<TrackWriter>,
    meter: Arc<Meter>,
    speakers: Speakers,
    /// The grid composed while the call runs, for the live outputs.
    live: Option<tapedeck_media::ffmpeg::grid_live::LiveGrid>,
}

impl Writer {
    fn track(&mut self, t: TrackInfo) {
        // The codec is checked on the first frame (an offer may list
        // several; what arrives decides).
        let (idx, new) = self.place.track(&t);
        if new {
            let id = format!("t{}", idx + 1);
            self.tracks.push(TrackWriter {
                path: self.dir.join(format!("{id}.webm")),
                id,
                peer: t.peer,
                participant: t.participant.clone(),
                kind: t.kind,
                source: t.source,
                open: None,
            });
        }
    }

    fn frame(&mut self, f: Frame) {
        self.meter.received.fetch_add(1, Ordering::Relaxed);
        let placement::Decision::Write { track, at_us } = self.place.frame(&f) else {
            return;
        };
        let w = &mut self.tracks[track];
        if w.source == TrackSource::Microphone {
            self.speakers.sound(&w.participant, at_us, f.audio_level);
        }
        let new_file = w.open.is_none();
        let written = match w.write(&f, at_us, &self.meter) {
            Ok(true) => {
                self.place.written(track, w.last_end_us());
                true
            }
            Ok(false) => false,
            Err(e) => {
                self.meter.set_error(format!("track {}: {e}", w.id));
                false
            }
        };
        if new_file && self.tracks[track].open.is_some() {
            self.save_manifest();
            self.show_tracks();
        }
        if written {
            self.show_frame(track, &f, at_us);
        }
    }

    /// Writes `tracks/manifest.json`: the files begun so far, whose they are
    /// and where they start (what recovery needs; replaced atomically).
    fn save_manifest(&self) {
        let files: Vec<TrackFile> = self
            .tracks
            .iter()
            .filter_map(|w| {
                let open = w.open.as_ref()?;
                // Where it starts is what recovery needs; its length is
                // read from the file.
                Some(TrackFile {
                    duration_s: 0.0,
                    size_bytes: 0,
                    ..w.file(open.began, open.sink.summary())
                })
            })
            .collect();
        let tmp = self.dir.join("manifest.json.tmp");
        let saved = serde_json::to_vec(&files)
            .map_err(std::io::Error::other)
            .and_then(|b| std::fs::write(&tmp, b))
            .and_then(|()| std::fs::rename(&tmp, self.dir.join(MANIFEST)));
        if let Err(e) = saved {
            self.meter
                .set_error(format!("the track manifest could not be saved: {e}"));
        }
    }

    fn control(&mut self, c: SourceControl) {
        // The clock is read here; the placement only does the arithmetic.
        match c {
            SourceControl::Pause => {
                self.place.pause(Instant::now());
                self.speakers.quiet_all();
            }
            SourceControl::Resume => self.place.resume(Instant::now()),
        }
        if let Some(live) = &self.live {
            live.paused(c == SourceControl::Pause);
        }
    }

    /// A peer left: its tracks end, and what its participant was saying.
    fn left(&mut self, peer: crate::rtc::PeerId) {
        self.place.left(peer);
        if let Some(w) = self.tracks.iter().find(|w| w.peer == peer) {
            self.speakers.quiet(&w.participant);
        }
    }

    fn finish(mut self) -> Closed {
        self.end_live();
        let speakers = self.speakers.finish();
        let mut out = vec![];
        for mut w in self.tracks {
            let Some(open) = w.open.take() else {
                continue;
            };
            if open.sink.retimed() > 0 {
                tracing::info!(track = %w.id, units = open.sink.retimed(), "units that came out of order were placed just after the one before");
            }
            let began = open.began;
            match open.sink.finalize() {
                Ok(sum) if sum.units > 0 => out.push((w.file(began, sum), w.path)),
                Ok(_) => {}
                Err(e) => self.meter.set_error(format!("track {}: {e}", w.id)),
            }
        }
        (out, speakers)
    }
}

impl TrackWriter {
    /// Where what is written so far ends on the recording's timeline.
    fn last_end_us(&self) -> i64 {
        self.open
            .as_ref()
            .map(|o| o.began.start_us + (o.sink.summary().duration_ms * 1000.0) as i64)
            .unwrap_or(0)
    }

    /// Its file as the manifest and the recording list it, `written` of
    /// it so far.
    fn file(&self, began: Began, written: Summary) -> TrackFile {
        TrackFile {
            id: self.id.clone(),
            participant: self.participant.clone(),
            kind: self.kind,
            source: Some(self.source),
            codec: began.codec,
            start_s: began.start_us as f64 / 1e6,
            duration_s: written.duration_ms / 1e3,
            size_bytes: written.bytes,
            container: began.container.extension().into(),
        }
    }
}

impl RoomRecording {
    /// Subscribes to the room and starts recording at once.
    pub async fn open(ctx: OpenCtx, src: RoomSource) -> Result<Self, Failure> {
        let work = ctx.services.work_dir(ctx.rec.id);
        let dir = work.join("tracks");
        std::fs::create_dir_all(&dir)
            .map_err(|e| Failure::internal(format!("{}: {e}", dir.display())))?;
        let rtc = ctx.services.rtc.clone();
        // The room's idle_stop_s: the recording stops once the call has
        // been empty that long.
        let idle_stop_s = match ctx.services.repo.room(src.room).await {
            Ok(room) => room.and_then(|r| r.idle_stop_s),
            Err(e) => {
                tracing::warn!(error = %e, "the room's idle_stop_s could not be read");
                None
            }
        };
        let mut empty = idle::EmptyCall::new(idle_stop_s);
        let mut media = rtc.subscribe(src.room, 8192).await;
        let (ctl, mut ctl_rx) = mpsc::channel::<Ctl>(16);
        let mut writer = Writer {
            room: src.room,
            dir,
            place: placement::Placement::new(Instant::now()),
            tracks: vec![],
            meter: ctx.meter.clone(),
            speakers: Speakers::default(),
            live: live::start(&ctx.services, &ctx.rec),
        };
        let events = ctx.events.clone();
        tokio::spawn(async move {
            let _ = events.send(SourceEvent::Started(None)).await;
            writer.place.start_at(Instant::now());
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            let mut in_call = true;
            loop {
                tokio::select! {
                    c = ctl_rx.recv() => match c {
                        Some(Ctl::Control(c)) => {
                            writer.control(c);
                            if c == SourceControl::Resume {
                                rtc.request_keyframes(writer.room).await;
                            }
                        }
                        Some(Ctl::Close(reply)) => {
                            let done = tokio::task::spawn_blocking(move || writer.finish()).await;
                            let _ = reply.send(done.unwrap_or_default());
                            return;
                        }
                        None => return,
                    },
                    m = media.recv(), if in_call => match m {
                        Some(RoomMedia::Track(t)) => writer.track(t),
                        Some(RoomMedia::Frame(f)) => writer.frame(f),
                        Some(RoomMedia::Left(peer)) => writer.left(peer),
                        None => {
                            // The room was closed: the call is over.
                            in_call = false;
                            let _ = events
                                .send(SourceEvent::EndedWith(tapedeck_core::EndReason::RoomClosed))
                                .await;
                        }
                    },
                    _ = tick.tick() => {
                        // A video track waits for a keyframe (just begun,
                        // resumed, or joined the instant the recording
                        // started): ask its sender again until one comes.
                        // One request is not enough: the sender's limit
                        // (one a second) may have spent it on the call's
                        // own request a moment before, and a request made
                        // before the track's first packet goes nowhere.
                        for (peer, mid) in writer.place.waiting_for_keyframes() {
                            rtc.request_keyframe(peer, mid).await;
                        }
                        if let Some(e) = &mut empty {
                            let anyone = !rtc.participants(writer.room).await.is_empty();
                            if e.observe(anyone, Instant::now()) {
                                let _ = events
                                    .send(SourceEvent::EndedWith(tapedeck_core::EndReason::Idle))
                                    .await;
                            }
                        }
                        writer.show_speakers();
                        let end = writer.place.end_us();
                        let mut c = writer.meter.counters();
                        c.duration_us = end;
                        *writer.meter.counters.lock().unwrap_or_else(|e| e.into_inner()) = c;
                    }
                }
            }
        });
        Ok(Self {
            ctl,
            output: Output::new(ctx.services, &ctx.rec, ctx.meter),
        })
    }
}

impl Source for RoomRecording {
    fn control(&mut self, c: SourceControl) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let _ = self.ctl.send(Ctl::Control(c)).await;
        })
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, Result<Take, Failure>> {
        Box::pin(async move {
            let (tx, rx) = oneshot::channel();
            if self.ctl.send(Ctl::Close(tx)).await.is_err() {
                return Err(Failure::internal("the room recorder stopped"));
            }
            let (tracks, speakers) = rx
                .await
                .map_err(|_| Failure::internal("the room recorder stopped"))?;
            if tracks.is_empty() {
                return Err(Failure::new(
                    Code::NoSource,
                    "no participant sent audio or video while recording",
                ));
            }
            self.output.finish(tracks, speakers).await
        })
    }

    fn abort(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            drop(self.ctl);
        })
    }
}
