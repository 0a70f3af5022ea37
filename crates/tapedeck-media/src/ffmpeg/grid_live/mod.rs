//! A call's grid composed while the call runs, for its live outputs (HLS,
//! pictures, streams pushed from the segments): the same cells as the
//! grid made after stop ([`super::grid::cells`]), the names drawn by the
//! same `drawtext`, the one speaking framed in the same green, and every
//! sound mixed.
//!
//! Why not ffmpeg's own overlay graph, as after stop: a live filter graph
//! waits for a picture on every input, so one camera switched off would
//! hold the whole grid. Here each track's frames, as the recording writes
//! them, go to a decoder of their own ([`feed`]); the latest picture of
//! each camera and the sound gathered from each microphone are put
//! together by a thread of ours at the recording's rate (a camera silent
//! for [`feed::STALE`] is black), and one ffmpeg encodes that into the
//! live outputs. The grid made after stop stays the recording's file.

mod feed;
mod picture;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tapedeck_core::recording::TrackFile;
use tapedeck_core::track::TrackCodec;

use super::grid::{self, Cell};
use super::{EncodeSpec, FfmpegError, Tools, args, live};
use crate::mkv;
use crate::process::{self, Running};
use feed::{SoundFeed, VideoFeed};
pub use picture::Picture;
use picture::{GREEN, Label};

/// Most tracks decoded at once (each is an ffmpeg): past it, later
/// cameras stay black and later microphones unheard in the live grid
/// (the grid after stop has them all).
pub const MAX_DECODERS: usize = 24;

/// A track's decoder, or why it has none.
enum Feed {
    Video(VideoFeed),
    Sound(SoundFeed),
    /// Not decoded (over [`MAX_DECODERS`], or its decoder did not start).
    None,
}

/// What the call is now, as the recording tells it.
#[derive(Debug, Default, Clone)]
struct Call {
    /// Its track files so far (begun).
    tracks: Vec<TrackFile>,
    /// Who is speaking now.
    speaking: Vec<String>,
    paused: bool,
    /// Bumped when `tracks` changes.
    generation: u64,
}

/// What the composing thread and the recording share.
struct Shared {
    tools: Tools,
    spec: EncodeSpec,
    call: Mutex<Call>,
    feeds: Mutex<HashMap<String, Feed>>,
    stop: AtomicBool,
}

/// A live grid running: its thread composes and encodes.
pub struct LiveGrid {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<Result<(), String>>>,
}

impl LiveGrid {
    /// Starts composing into an encoder of `spec` (its size, rate, codec
    /// and `live` outputs, written in `dir`), the sound at `audio_kbps`.
    pub fn start(
        tools: &Tools,
        spec: &EncodeSpec,
        audio_kbps: u32,
        dir: &Path,
    ) -> Result<Self, FfmpegError> {
        let io = |e| FfmpegError::Io {
            program: "the live grid".into(),
            source: e,
        };
        live::prepare(dir, &spec.live).map_err(io)?;
        let mut cmd = process::command(&tools.ffmpeg);
        cmd.args(encoder_args(spec, audio_kbps))
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut encoder = process::spawn("ffmpeg", &mut cmd)?;
        let mut stdin = encoder
            .child()
            .stdin
            .take()
            .ok_or_else(|| process::io_err("ffmpeg", "no encoder stdin"))?;
        stdin
            .write_all(&mkv::header_with_pcm(spec.width, spec.height))
            .map_err(io)?;
        let shared = Arc::new(Shared {
            tools: tools.clone(),
            spec: spec.clone(),
            call: Mutex::default(),
            feeds: Mutex::default(),
            stop: AtomicBool::new(false),
        });
        let run = Run {
            shared: shared.clone(),
            dir: dir.to_path_buf(),
        };
        let thread = std::thread::Builder::new()
            .name("live-grid".into())
            .spawn(move || run.compose(encoder, stdin))
            .map_err(io)?;
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }

    /// The call's track files so far changed (one begun).
    pub fn tracks(&self, tracks: Vec<TrackFile>) {
        let mut c = self.shared.call.lock().unwrap_or_else(|e| e.into_inner());
        c.tracks = tracks;
        c.generation += 1;
    }

    /// A frame the recording wrote into track `id` (its file listed by
    /// [`LiveGrid::tracks`]) at `at_us`: H.264 as Annex B. Never waits.
    pub fn frame(&self, id: &str, codec: TrackCodec, data: &[u8], keyframe: bool, at_us: i64) {
        let mut feeds = self.shared.feeds.lock().unwrap_or_else(|e| e.into_inner());
        if !feeds.contains_key(id) {
            let feed = self.open(id, codec, feeds.len());
            feeds.insert(id.to_string(), feed);
        }
        match feeds.get_mut(id) {
            Some(Feed::Video(v)) => v.frame(data, keyframe, at_us),
            Some(Feed::Sound(s)) => s.packet(data, at_us),
            Some(Feed::None) | None => {}
        }
    }

    /// A decoder for track `id`: pictures at its cell's size now.
    fn open(&self, id: &str, codec: TrackCodec, open: usize) -> Feed {
        if open >= MAX_DECODERS {
            return Feed::None;
        }
        let s = &self.shared;
        let started = if codec == TrackCodec::Opus {
            SoundFeed::start(&s.tools).map(Feed::Sound)
        } else {
            let tracks = s
                .call
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .tracks
                .clone();
            let cells = grid::cells(&tracks, s.spec.width, s.spec.height);
            let (_, _, w, h) = tracks
                .iter()
                .position(|t| t.id == id)
                .and_then(|i| cells.iter().find(|c| c.videos.contains(&i)))
                .map_or((0, 0, s.spec.width & !1, s.spec.height & !1), |c| c.rect);
            VideoFeed::start(&s.tools, codec, w.max(2), h.max(2)).map(Feed::Video)
        };
        started.unwrap_or_else(|e| {
            tracing::warn!(track = %id, error = %e, "live grid: a track cannot be decoded");
            Feed::None
        })
    }

    /// Who speaks now.
    pub fn speaking(&self, names: Vec<String>) {
        self.shared
            .call
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .speaking = names;
    }

    /// Paused (nothing is composed; the live timeline waits) or not.
    pub fn paused(&self, paused: bool) {
        self.shared
            .call
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .paused = paused;
    }

    /// Ends the live encode (its playlist ends) and waits for it.
    pub fn finish(mut self) -> Result<(), String> {
        self.shared.stop.store(true, Ordering::Relaxed);
        let r = match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err("the live grid's thread panicked".into()),
            None => Ok(()),
        };
        self.shared
            .feeds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        r
    }
}

impl Drop for LiveGrid {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
    }
}

/// The encoder's arguments: the Matroska stream of pictures and sound on
/// stdin to the HLS segments (H.264/AAC, VP9/Opus for WebM) and the
/// pictures every N seconds, named relative to the work folder.
fn encoder_args(spec: &EncodeSpec, audio_kbps: u32) -> Vec<String> {
    let mut a: Vec<String> = [
        "-hide_banner",
        "-nostats",
        "-loglevel",
        "error",
        "-f",
        "matroska",
        "-i",
        "pipe:0",
    ]
    .map(String::from)
    .to_vec();
    if let Some(seg) = spec.live.hls_segment_s {
        a.extend(["-map", "0:v:0", "-map", "0:a:0", "-fps_mode", "cfr", "-r"].map(String::from));
        a.push(spec.fps.to_string());
        a.extend(args::video_codec(spec));
        a.extend(["-pix_fmt", "yuv420p"].map(String::from));
        a.extend(args::audio_codec(spec.format, audio_kbps));
        a.extend(live::hls_output(seg));
    }
    if let Some((every_s, width)) = spec.live.images {
        a.extend(live::images_output(every_s, width));
    }
    a
}

/// The composing thread.
struct Run {
    shared: Arc<Shared>,
    dir: PathBuf,
}

/// The layout of one generation of the call: its cells and their names'
/// pictures.
#[derive(Default)]
struct Layout {
    generation: u64,
    cells: Vec<Cell>,
    labels: Vec<Option<Label>>,
    tracks: Vec<TrackFile>,
}

impl Run {
    fn compose(self, mut encoder: Running, mut stdin: ChildStdin) -> Result<(), String> {
        let spec = &self.shared.spec;
        let (w, h) = (spec.width, spec.height);
        let fps = u64::from(spec.fps.max(1));
        let mut canvas = Picture::black(w, h);
        let mut layout = Layout::default();
        let began = Instant::now();
        let mut paused_for = Duration::ZERO;
        let mut paused_at: Option<Instant> = None;
        let mut next_tick: u64 = 0;
        let mut samples_out: u64 = 0;
        let mut written = Ok(());
        while !self.shared.stop.load(Ordering::Relaxed) && written.is_ok() {
            std::thread::sleep(Duration::from_millis((500 / fps).max(2)));
            let now = Instant::now();
            let call = self
                .shared
                .call
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            match (call.paused, paused_at) {
                (true, None) => paused_at = Some(now),
                (false, Some(at)) => {
                    paused_for += now.saturating_duration_since(at);
                    paused_at = None;
                    // What was gathered before the pause is not in the recording.
                    self.each_sound(|b| b.clear());
                }
                _ => {}
            }
            if paused_at.is_some() {
                continue;
            }
            let elapsed = now
                .saturating_duration_since(began)
                .saturating_sub(paused_for);
            let tick = elapsed.as_micros() as u64 * fps / 1_000_000;
            if tick < next_tick {
                continue;
            }
            next_tick = tick + 1;
            if call.generation != layout.generation {
                layout = self.layout(&call);
            }
            self.draw(&mut canvas, &layout, &call, now);
            let pts = (tick * 1_000_000 / fps) as i64;
            // Sound up to the end of this picture, mixed.
            let until = (tick + 1) * 48_000 / fps;
            let n = until.saturating_sub(samples_out) as usize;
            let mut mix = vec![0i32; n * 2];
            self.each_sound(|b| b.mix_into(&mut mix));
            let pcm: Vec<u8> = mix
                .iter()
                .map(|s| (*s).clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16)
                .flat_map(i16::to_le_bytes)
                .collect();
            let sound_pts = (samples_out * 1_000_000 / 48_000) as i64;
            samples_out = until;
            written = stdin
                .write_all(&mkv::block_prefix(1, pts, canvas.data.len()))
                .and_then(|()| stdin.write_all(&canvas.data))
                .and_then(|()| stdin.write_all(&mkv::block_prefix(2, sound_pts, pcm.len())))
                .and_then(|()| stdin.write_all(&pcm));
        }
        drop(stdin);
        let ended = encoder
            .wait(Duration::from_secs(60))
            .map_err(|e| e.to_string());
        written.map_err(|e| format!("the live grid's encoder: {e}: {}", encoder.stderr_tail()))?;
        ended
    }

    /// Calls `f` on every sound track's samples.
    fn each_sound(&self, mut f: impl FnMut(&mut feed::SoundBuf)) {
        let feeds = self.shared.feeds.lock().unwrap_or_else(|e| e.into_inner());
        for feed in feeds.values() {
            if let Feed::Sound(s) = feed {
                f(&mut s.buf.lock().unwrap_or_else(|e| e.into_inner()));
            }
        }
    }

    /// The grid at `now`: each cell's freshest camera, its frame if its
    /// participant speaks, its name.
    fn draw(&self, canvas: &mut Picture, layout: &Layout, call: &Call, now: Instant) {
        canvas.clear((0, 0, canvas.width, canvas.height));
        let feeds = self.shared.feeds.lock().unwrap_or_else(|e| e.into_inner());
        for (i, c) in layout.cells.iter().enumerate() {
            let pic = c
                .videos
                .iter()
                .filter_map(|&v| match feeds.get(&layout.tracks[v].id) {
                    Some(Feed::Video(f)) => f.picture(now),
                    _ => None,
                })
                .max_by_key(|(at, _)| *at);
            if let Some((_, p)) = pic {
                canvas.draw(c.rect, &p);
            }
            if call.speaking.contains(&c.name) {
                canvas.frame(c.rect, (c.rect.3 / 60).max(3), GREEN);
            }
            if let Some(Some(l)) = layout.labels.get(i) {
                canvas.overlay(l);
            }
        }
    }

    /// The cells of the call now, and their names drawn.
    fn layout(&self, call: &Call) -> Layout {
        let spec = &self.shared.spec;
        let cells = grid::cells(&call.tracks, spec.width, spec.height);
        let size = grid::name_size(&cells, spec.height);
        let labels = cells
            .iter()
            .enumerate()
            .map(
                |(i, c)| match picture::label(&self.shared.tools, &self.dir, i, c, size) {
                    Ok(l) => Some(l),
                    Err(e) => {
                        tracing::warn!(error = %e, "live grid: a name cannot be drawn");
                        None
                    }
                },
            )
            .collect();
        Layout {
            generation: call.generation,
            cells,
            labels,
            tracks: call.tracks.clone(),
        }
    }
}
