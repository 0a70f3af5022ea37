//! The live grid's decoders: each track's frames, as the recording writes
//! them, piped into an ffmpeg of its own (VP8, VP9 and AV1 in IVF, H.264
//! as its Annex B stream, Opus in a Matroska stream), which gives raw
//! pictures at the cell's size or 48 kHz stereo samples back. The frames
//! go to the decoder through a bounded queue and a thread of its own: the
//! recording never waits for a decoder. A video decoder that falls behind
//! loses frames up to the next key frame; a sound one, its oldest samples.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::process::Stdio;
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tapedeck_core::track::TrackCodec;

use super::super::{FfmpegError, Tools};
use super::picture::Picture;
use crate::mkv;
use crate::process::{self, Running};

/// A camera whose last picture is older than this is drawn black (its
/// participant left or switched it off), as after stop.
pub(super) const STALE: Duration = Duration::from_secs(2);

/// Frames queued for a decoder before they are dropped (about 2 s of
/// video, 1.3 s of sound).
const QUEUE: usize = 64;

/// Sound samples (interleaved stereo) a track gathers before it is mixed:
/// 120 ms, so packets that arrive unevenly still play evenly.
const PRIME: usize = 2 * 48_000 * 120 / 1000;

/// Most sound kept per track (500 ms): past it, the oldest goes, so the
/// sound never lags the pictures by more.
const MAX_SOUND: usize = 2 * 48_000 / 2;

/// A track's queue to its decoder's stdin, written by a thread.
struct Pipe {
    tx: SyncSender<Vec<u8>>,
}

impl Pipe {
    fn start(child: &mut Running, first: Vec<u8>) -> Result<Self, FfmpegError> {
        let mut stdin = child
            .child()
            .stdin
            .take()
            .ok_or_else(|| process::io_err("ffmpeg", "no decoder stdin"))?;
        let (tx, rx) = sync_channel::<Vec<u8>>(QUEUE);
        std::thread::spawn(move || {
            if stdin.write_all(&first).is_err() {
                return;
            }
            for chunk in rx {
                if stdin.write_all(&chunk).is_err() {
                    return;
                }
            }
        });
        Ok(Self { tx })
    }

    /// Queues `chunk`; false when the queue is full or the decoder gone.
    fn send(&self, chunk: Vec<u8>) -> bool {
        !matches!(
            self.tx.try_send(chunk),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_))
        )
    }
}

/// Starts a decoder: `cmd` reading its stdin (fed `header`, then what
/// its [`Pipe`] is given) and writing to its stdout.
fn decoder(
    cmd: &mut std::process::Command,
    header: Vec<u8>,
) -> Result<(Running, std::process::ChildStdout, Pipe), FfmpegError> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = process::spawn("ffmpeg", cmd)?;
    let out = child
        .child()
        .stdout
        .take()
        .ok_or_else(|| process::io_err("ffmpeg", "no decoder stdout"))?;
    let pipe = Pipe::start(&mut child, header)?;
    Ok((child, out, pipe))
}

/// ffmpeg's demuxer for a video track's frames, and the stream header.
fn video_input(codec: TrackCodec) -> Option<(&'static str, Vec<u8>)> {
    let fourcc: &[u8; 4] = match codec {
        TrackCodec::Vp8 => b"VP80",
        TrackCodec::Vp9 => b"VP90",
        TrackCodec::Av1 => b"AV01",
        TrackCodec::H264 => return Some(("h264", vec![])),
        TrackCodec::Opus => return None,
    };
    Some(("ivf", ivf_header(fourcc)))
}

/// An IVF file header (32 bytes; sizes unknown, 1 ms a tick).
fn ivf_header(fourcc: &[u8; 4]) -> Vec<u8> {
    let mut h = b"DKIF".to_vec();
    h.extend_from_slice(&0u16.to_le_bytes()); // version
    h.extend_from_slice(&32u16.to_le_bytes()); // header size
    h.extend_from_slice(fourcc);
    h.extend_from_slice(&[0, 0, 0, 0]); // width, height: the stream's
    h.extend_from_slice(&1000u32.to_le_bytes()); // time base: 1/1000
    h.extend_from_slice(&1u32.to_le_bytes());
    h.extend_from_slice(&[0; 8]); // frame count, unused
    h
}

/// One frame as IVF carries it: its size, its time (ms), its bytes.
fn ivf_frame(data: &[u8], pts_ms: u64) -> Vec<u8> {
    let mut f = Vec::with_capacity(12 + data.len());
    f.extend_from_slice(&(data.len() as u32).to_le_bytes());
    f.extend_from_slice(&pts_ms.to_le_bytes());
    f.extend_from_slice(data);
    f
}

/// The latest picture a decoder made, and when.
type Latest = Arc<Mutex<Option<(Instant, Arc<Picture>)>>>;

/// A video track being decoded.
pub(super) struct VideoFeed {
    _child: Running,
    pipe: Pipe,
    latest: Latest,
    ivf: bool,
    /// A frame was dropped: the next to go is a key frame.
    need_key: bool,
}

impl VideoFeed {
    /// Decodes `codec` frames into `w` × `h` pictures (fitted, black bars).
    pub(super) fn start(
        tools: &Tools,
        codec: TrackCodec,
        w: u32,
        h: u32,
    ) -> Result<Self, FfmpegError> {
        let (format, header) =
            video_input(codec).ok_or_else(|| process::io_err("ffmpeg", "not a video codec"))?;
        let mut cmd = process::command(&tools.ffmpeg);
        cmd.args(["-hide_banner", "-loglevel", "error", "-nostdin"])
            // One thread: no frame waits in the decoder for the next.
            .args(["-probesize", "32", "-analyzeduration", "0", "-threads", "1"])
            .args(["-f", format, "-i", "pipe:0"])
            .args(["-map", "0:v:0", "-an", "-fps_mode", "passthrough", "-vf"])
            .arg(format!(
                "scale={w}:{h}:force_original_aspect_ratio=decrease,\
                 pad={w}:{h}:(ow-iw)/2:(oh-ih)/2:black,format=yuv420p"
            ))
            .args(["-f", "rawvideo", "-pix_fmt", "yuv420p", "pipe:1"]);
        let (child, mut out, pipe) = decoder(&mut cmd, header)?;
        let latest: Latest = Arc::default();
        let put = latest.clone();
        let len = w as usize * h as usize * 3 / 2;
        std::thread::spawn(move || {
            loop {
                let mut data = vec![0u8; len];
                if out.read_exact(&mut data).is_err() {
                    return;
                }
                let pic = Picture {
                    width: w,
                    height: h,
                    data,
                };
                *put.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some((Instant::now(), Arc::new(pic)));
            }
        });
        Ok(Self {
            _child: child,
            pipe,
            latest,
            ivf: codec != TrackCodec::H264,
            need_key: false,
        })
    }

    /// A frame of the track (Annex B for H.264), at `at_us`.
    pub(super) fn frame(&mut self, data: &[u8], keyframe: bool, at_us: i64) {
        if self.need_key && !keyframe {
            return;
        }
        let chunk = if self.ivf {
            ivf_frame(data, (at_us.max(0) / 1000) as u64)
        } else {
            data.to_vec()
        };
        self.need_key = !self.pipe.send(chunk);
    }

    /// Its latest picture if it is fresh at `now`.
    pub(super) fn picture(&self, now: Instant) -> Option<(Instant, Arc<Picture>)> {
        let l = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        l.as_ref()
            .filter(|(at, _)| now.saturating_duration_since(*at) < STALE)
            .cloned()
    }
}

/// A sound track's decoded samples waiting to be mixed (interleaved
/// stereo, 48 kHz): mixed once [`PRIME`] have gathered, until they run
/// out (then gathered again).
#[derive(Debug, Default)]
pub(super) struct SoundBuf {
    samples: VecDeque<i16>,
    primed: bool,
}

impl SoundBuf {
    fn push(&mut self, s: impl IntoIterator<Item = i16>) {
        self.samples.extend(s);
        let over = self.samples.len().saturating_sub(MAX_SOUND);
        self.samples.drain(..over);
    }

    /// Adds its next `mix.len()` samples into `mix` (silence where it has none).
    pub(super) fn mix_into(&mut self, mix: &mut [i32]) {
        if !self.primed {
            if self.samples.len() < PRIME {
                return;
            }
            self.primed = true;
        }
        let n = mix.len().min(self.samples.len());
        for (m, s) in mix.iter_mut().zip(self.samples.drain(..n)) {
            *m += i32::from(s);
        }
        if n < mix.len() {
            self.primed = false;
        }
    }

    /// Forgets what it holds (the recording paused: that sound is not in it).
    pub(super) fn clear(&mut self) {
        self.samples.clear();
        self.primed = false;
    }
}

/// A sound (Opus) track being decoded.
pub(super) struct SoundFeed {
    _child: Running,
    pipe: Pipe,
    pub(super) buf: Arc<Mutex<SoundBuf>>,
}

impl SoundFeed {
    pub(super) fn start(tools: &Tools) -> Result<Self, FfmpegError> {
        let mut cmd = process::command(&tools.ffmpeg);
        cmd.args(["-hide_banner", "-loglevel", "error", "-nostdin"])
            .args(["-probesize", "32", "-analyzeduration", "0"])
            .args(["-f", "matroska", "-i", "pipe:0", "-map", "0:a:0", "-vn"])
            .args(["-f", "s16le", "-ar", "48000", "-ac", "2", "pipe:1"]);
        let (child, mut out, pipe) = decoder(&mut cmd, mkv::opus_header())?;
        let buf: Arc<Mutex<SoundBuf>> = Arc::default();
        let put = buf.clone();
        std::thread::spawn(move || {
            let mut bytes = [0u8; 3840];
            loop {
                let n = match out.read(&mut bytes) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n & !1,
                };
                let samples = bytes[..n]
                    .chunks_exact(2)
                    .map(|b| i16::from_le_bytes([b[0], b[1]]));
                put.lock().unwrap_or_else(|e| e.into_inner()).push(samples);
            }
        });
        Ok(Self {
            _child: child,
            pipe,
            buf,
        })
    }

    /// A packet of the track at `at_us`.
    pub(super) fn packet(&mut self, data: &[u8], at_us: i64) {
        let mut chunk = mkv::block_prefix(1, at_us, data.len());
        chunk.extend_from_slice(data);
        // Full: the decoder is behind; this packet is lost to the live
        // grid (the recording has it).
        let _ = self.pipe.send(chunk);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sound_is_mixed_once_gathered_and_stays_bounded() {
        let mut b = SoundBuf::default();
        b.push(vec![100; PRIME - 2]);
        let mut mix = vec![0i32; 4];
        b.mix_into(&mut mix);
        assert_eq!(mix, [0; 4], "not gathered yet: silence");
        b.push(vec![100; 2]);
        b.mix_into(&mut mix);
        assert_eq!(mix, [100; 4]);
        // Runs out: what there is, then silence until gathered again.
        let mut rest = vec![0i32; PRIME];
        b.mix_into(&mut rest);
        assert_eq!(rest[PRIME - 5], 100);
        assert_eq!(rest[PRIME - 4], 0);
        b.push(vec![7; 10]);
        let mut more = vec![0i32; 4];
        b.mix_into(&mut more);
        assert_eq!(more, [0; 4], "gathering again");
        b.push(vec![1; MAX_SOUND * 2]);
        assert_eq!(b.samples.len(), MAX_SOUND);
        b.clear();
        assert!(b.samples.is_empty());
    }

    #[test]
    fn ivf_says_the_codec_and_frames_their_size() {
        let (f, h) = video_input(TrackCodec::Vp8).unwrap();
        assert_eq!(
            (f, h.len(), &h[..4], &h[8..12]),
            ("ivf", 32, &b"DKIF"[..], &b"VP80"[..])
        );
        assert_eq!(video_input(TrackCodec::H264).unwrap().0, "h264");
        assert!(video_input(TrackCodec::Opus).is_none());
        let fr = ivf_frame(&[9, 9, 9], 40);
        assert_eq!(&fr[..4], &3u32.to_le_bytes());
        assert_eq!(&fr[4..12], &40u64.to_le_bytes());
        assert_eq!(&fr[12..], &[9, 9, 9]);
    }
}
