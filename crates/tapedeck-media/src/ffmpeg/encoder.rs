//! The running encoder: ffmpeg fed raw I420 frames with timestamps in a
//! Matroska stream; in skip-held mode the spliced stream
//! ([`super::splicer`]) goes to a file beside the output, and a second
//! ffmpeg wraps it into the container at the end (not while recording: one
//! process per recording instead of two, about 18 MB and 0.15 % of a core
//! less each).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use super::splicer::{TickMsg, splice};
use super::{EncodeSpec, FfmpegError, Tools, distinct_args, encode_args, mux_args, parse_bench};
use super::{live, live_mux, live_sound};
use crate::mkv;
use crate::process::{self, Running, io_err};

/// A running encoder fed raw I420 frames with timestamps.
pub struct Encoder {
    child: Running,
    stdin: Option<ChildStdin>,
    frame_len: usize,
    program: String,
    held: Option<Held>,
    /// Encoded bytes passed to the muxer so far (skip-held mode).
    written: Arc<AtomicU64>,
}

/// The skip-held half of an encoder: the splicer thread, its stream file
/// and how to wrap it at the end.
struct Held {
    ticks: std::sync::mpsc::Sender<TickMsg>,
    splicer: Option<JoinHandle<Result<(), String>>>,
    /// The spliced H.264 stream (Annex B), removed once wrapped.
    stream: PathBuf,
    ffmpeg: PathBuf,
    mux_args: Vec<String>,
    fps: i64,
    next_tick: i64,
    /// The HLS remuxer fed by the splicer, while recording.
    remux: Option<Running>,
    /// The live muxer (pictures with the page's sound), between them.
    mux: Option<JoinHandle<()>>,
    /// The page's sound being decoded for it (killed when dropped).
    _sound_decoder: Option<Running>,
}

/// Pieces queued for the live muxer: pictures and sound wait there for
/// each other up to `live_mux::WAIT` (8 s of 60 fps, and the sound).
const MUX_QUEUE: usize = 2048;

/// What an encoder run cost.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct EncodeReport {
    /// CPU seconds ffmpeg used (user + system), from `-benchmark`.
    pub cpu_s: f64,
}

impl Encoder {
    /// Starts ffmpeg writing `output`.
    pub fn spawn(tools: &Tools, spec: &EncodeSpec, output: &Path) -> Result<Self, FfmpegError> {
        let program = tools.ffmpeg.display().to_string();
        let skip = spec.uses_skip_held();
        let written = Arc::new(AtomicU64::new(0));
        let mut cmd = process::command(&tools.ffmpeg);
        let dir = output.parent().unwrap_or(Path::new("."));
        if spec.live.any() {
            // Live outputs are written beside the file, named relative to it.
            live::prepare(dir, &spec.live).map_err(|e| FfmpegError::Io {
                program: program.clone(),
                source: e,
            })?;
            cmd.current_dir(dir);
        }
        if skip {
            cmd.args(distinct_args(spec)).stdout(Stdio::piped());
        } else {
            cmd.args(encode_args(spec, output)).stdout(Stdio::null());
        }
        cmd.stdin(Stdio::piped()).stderr(Stdio::piped());
        let mut child = process::spawn("ffmpeg", &mut cmd)?;
        if let (false, Some(t)) = (skip, &spec.live.tap) {
            // Only the spliced stream is tapped: streams of this encode
            // are pushed from its segments instead.
            t.0.close();
        }
        let held = if skip {
            let stream = output.with_extension("h264");
            let file = std::fs::File::create(&stream).map_err(|e| FfmpegError::Io {
                program: program.clone(),
                source: e,
            })?;
            let h264 = child
                .child()
                .stdout
                .take()
                .ok_or_else(|| io_err(&program, "no encoder stdout"))?;
            let (tx, rx) = std::sync::mpsc::channel();
            let count = written.clone();
            let out = std::io::BufWriter::with_capacity(256 * 1024, file);
            // A web page's sound goes live with the pictures: both through
            // the live muxer, which feeds the remuxer and the streams.
            let sound = spec
                .live
                .sound
                .as_ref()
                .filter(|_| spec.live.hls_segment_s.is_some());
            let (remux, live_in) = match spec.live.hls_segment_s {
                Some(seg) => {
                    let mut r = process::command(&tools.ffmpeg);
                    let args = match sound {
                        Some(_) => live::hls_remux_sound_args(seg),
                        None => live::hls_remux_args(spec.fps, seg),
                    };
                    r.args(args)
                        .current_dir(dir)
                        .stdin(Stdio::piped())
                        .stdout(Stdio::null())
                        .stderr(Stdio::piped());
                    let mut remux = process::spawn("ffmpeg", &mut r)?;
                    let stdin = remux
                        .child()
                        .stdin
                        .take()
                        .ok_or_else(|| io_err(&program, "no remuxer stdin"))?;
                    let live: Box<dyn Write + Send> =
                        Box::new(std::io::BufWriter::with_capacity(256 * 1024, stdin));
                    (Some(remux), Some(live))
                }
                None => (None, None),
            };
            let tap = spec.live.tap.as_ref().map(|t| t.0.clone());
            let (live_in, tap, mux, sound_decoder) = match sound {
                Some(handle) => {
                    let (tx, rx) = std::sync::mpsc::sync_channel(MUX_QUEUE);
                    let decoder = match live_sound::start_decoder(tools, handle, tx.clone()) {
                        Ok(d) => d,
                        Err(e) => {
                            tracing::warn!(error = %e, "the live sound's decoder did not start; silence live");
                            None
                        }
                    };
                    let il = live_mux::Interleaver::new(spec.fps, spec.width, spec.height);
                    let thread = std::thread::spawn(move || live_mux::run(il, rx, live_in, tap));
                    (None, None, Some((tx, thread)), decoder)
                }
                None => (live_in, tap, None, None),
            };
            let (mux_in, mux_thread) = match mux {
                Some((tx, thread)) => (Some(tx), Some(thread)),
                None => (None, None),
            };
            let splicer = std::thread::spawn(move || {
                let r = splice(h264, out, (live_in, mux_in), tap.clone(), rx, count);
                // Ended, well or not: the streams' queues end too.
                if let Some(t) = tap {
                    t.close();
                }
                r
            });
            Some(Held {
                ticks: tx,
                splicer: Some(splicer),
                mux_args: mux_args(spec, &stream, output),
                stream,
                ffmpeg: tools.ffmpeg.clone(),
                fps: i64::from(spec.fps.max(1)),
                next_tick: 0,
                remux,
                mux: mux_thread,
                _sound_decoder: sound_decoder,
            })
        } else {
            None
        };
        let mut stdin = child
            .child()
            .stdin
            .take()
            .ok_or_else(|| io_err(&program, "no stdin"))?;
        stdin
            .write_all(&mkv::header(spec.width, spec.height))
            .map_err(|e| FfmpegError::Io {
                program: program.clone(),
                source: e,
            })?;
        Ok(Self {
            child,
            stdin: Some(stdin),
            frame_len: spec.width as usize * spec.height as usize * 3 / 2,
            program,
            held,
            written,
        })
    }

    /// Encoded bytes so far where the output is written at the end
    /// (skip-held mode: the spliced stream is wrapped when the input ends).
    pub fn encoded_bytes(&self) -> Option<u64> {
        self.held
            .as_ref()
            .map(|_| self.written.load(Ordering::Relaxed))
    }

    /// Writes one I420 frame at `pts_us`; `duration_us` only for the last frame.
    /// Blocks while ffmpeg is busy.
    /// `repeat` marks the previous picture held on another tick.
    pub fn write_frame(
        &mut self,
        pts_us: i64,
        i420: &[u8],
        duration_us: Option<i64>,
        repeat: bool,
    ) -> Result<(), FfmpegError> {
        if i420.len() != self.frame_len {
            return Err(io_err(&self.program, "frame of the wrong size"));
        }
        if let Some(h) = self.held.as_mut() {
            let tick = (pts_us * h.fps + 500_000).div_euclid(1_000_000);
            h.next_tick = h.next_tick.max(tick + 1);
            if repeat {
                // The splicer writes a skip picture for every tick without a frame.
                return Ok(());
            }
            if h.ticks.send(TickMsg::Frame(tick)).is_err() {
                return Err(io_err(&self.program, "the splicer stopped"));
            }
        }
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| io_err(&self.program, "encoder closed"))?;
        let res = stdin
            .write_all(&mkv::frame_prefix(pts_us, i420.len(), duration_us))
            .and_then(|_| stdin.write_all(i420));
        res.map_err(|e| {
            // A broken pipe means ffmpeg died: its stderr says why.
            let tail = self.child.stderr_tail();
            if tail.is_empty() {
                FfmpegError::Io {
                    program: self.program.clone(),
                    source: e,
                }
            } else {
                FfmpegError::Failed {
                    program: self.program.clone(),
                    status: "exited early".into(),
                    stderr: tail,
                }
            }
        })
    }

    /// Ends the input and waits for ffmpeg to write the end of the file (in
    /// skip-held mode, for the splicer, then wraps its stream).
    pub fn end_input_and_wait(mut self, timeout: Duration) -> Result<EncodeReport, FfmpegError> {
        if let Some(h) = &self.held {
            let _ = h.ticks.send(TickMsg::End(h.next_tick));
        }
        drop(self.stdin.take());
        self.child.wait(timeout)?;
        let mut cpu_s = parse_bench(&self.child.stderr_text()).unwrap_or(0.0);
        if let Some(mut h) = self.held.take() {
            let wrapped = h.wrap(&self.program, timeout);
            let _ = std::fs::remove_file(&h.stream);
            cpu_s += wrapped?;
        }
        Ok(EncodeReport { cpu_s })
    }
}

impl Held {
    /// Waits for the splicer, then wraps its stream into the output: the
    /// muxer's CPU seconds.
    fn wrap(&mut self, program: &str, timeout: Duration) -> Result<f64, FfmpegError> {
        let spliced = self
            .splicer
            .take()
            .map(|t| t.join().unwrap_or_else(|_| Err("splicer panicked".into())));
        if let Some(m) = self.mux.take() {
            // Ends once the sound reached the last picture (or stopped).
            let _ = m.join();
        }
        if let Some(mut remux) = self.remux.take() {
            // The splicer dropped its input: the remuxer writes the last
            // segment and ends the playlist. Its failure costs only the
            // live HLS (made from the file after).
            if let Err(e) = remux.wait(timeout) {
                tracing::warn!(error = %e, "the HLS remuxer failed");
            }
        }
        if let Some(Err(e)) = spliced {
            return Err(FfmpegError::Output {
                program: program.to_string(),
                message: format!("splicing held frames: {e}"),
            });
        }
        let mut mux = process::command(&self.ffmpeg);
        mux.args(&self.mux_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut muxer = process::spawn("ffmpeg", &mut mux)?;
        let wrapped = muxer.wait(timeout);
        let cpu_s = parse_bench(&muxer.stderr_text()).unwrap_or(0.0);
        wrapped.map(|_| cpu_s)
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        // An encoder dropped before its end (the recording failed, or the
        // output is rebuilt from the spool) leaves no stream file behind.
        if let Some(h) = self.held.take() {
            drop(h.ticks);
            drop(self.stdin.take());
            let _ = std::fs::remove_file(&h.stream);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapedeck_core::Format;

    fn skip_spec() -> EncodeSpec {
        EncodeSpec {
            width: 64,
            height: 64,
            fps: 30,
            cfr: true,
            format: Format::Mp4,
            video_bitrate_kbps: 500,
            x264_preset: "ultrafast".into(),
            crf: 23,
            skip_held: true,
            threads: Some(1),
            live: Default::default(),
        }
    }

    fn h264_files(dir: &Path) -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "h264"))
            .collect()
    }

    #[test]
    fn the_spliced_stream_is_wrapped_at_the_end_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("live.mp4");
        let mut enc = Encoder::spawn(&Tools::default(), &skip_spec(), &out).unwrap();
        let gray = vec![128u8; 64 * 64 * 3 / 2];
        enc.write_frame(0, &gray, None, false).unwrap();
        // Held for 9 ticks: skip pictures, no encode.
        enc.write_frame(300_000, &gray, Some(33_333), false)
            .unwrap();
        // While recording there is no output yet, only the stream.
        assert!(!out.exists());
        assert_eq!(h264_files(dir.path()).len(), 1);
        enc.end_input_and_wait(Duration::from_secs(60)).unwrap();
        assert!(h264_files(dir.path()).is_empty());
        let info = super::super::probe(&Tools::default(), &out).unwrap();
        assert_eq!(info.frames, Some(10), "{info:?}");
    }

    #[test]
    fn an_encoder_dropped_early_leaves_no_stream() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("live.mp4");
        let mut enc = Encoder::spawn(&Tools::default(), &skip_spec(), &out).unwrap();
        let gray = vec![128u8; 64 * 64 * 3 / 2];
        enc.write_frame(0, &gray, None, false).unwrap();
        drop(enc);
        assert!(h264_files(dir.path()).is_empty());
        assert!(!out.exists());
    }
}
