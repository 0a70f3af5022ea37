//! The running encoder: ffmpeg fed raw I420 frames with timestamps in a
//! Matroska stream; in skip-held mode a second ffmpeg muxes the spliced
//! stream ([`super::splicer`]).

use std::io::Write;
use std::path::Path;
use std::process::{ChildStdin, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use super::splicer::{TickMsg, splice};
use super::{EncodeSpec, FfmpegError, Tools, distinct_args, encode_args, mux_args, parse_bench};
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

/// The skip-held half of an encoder: the splicer thread and the muxing ffmpeg.
struct Held {
    ticks: std::sync::mpsc::Sender<TickMsg>,
    splicer: Option<JoinHandle<Result<(), String>>>,
    muxer: Running,
    fps: i64,
    next_tick: i64,
}

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
        if skip {
            cmd.args(distinct_args(spec)).stdout(Stdio::piped());
        } else {
            cmd.args(encode_args(spec, output)).stdout(Stdio::null());
        }
        cmd.stdin(Stdio::piped()).stderr(Stdio::piped());
        let mut child = process::spawn("ffmpeg", &mut cmd)?;
        let held = if skip {
            let mut mux = process::command(&tools.ffmpeg);
            mux.args(mux_args(spec, output))
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            let mut muxer = process::spawn("ffmpeg", &mut mux)?;
            let mux_in = muxer
                .child()
                .stdin
                .take()
                .ok_or_else(|| io_err(&program, "no muxer stdin"))?;
            let h264 = child
                .child()
                .stdout
                .take()
                .ok_or_else(|| io_err(&program, "no encoder stdout"))?;
            let (tx, rx) = std::sync::mpsc::channel();
            let count = written.clone();
            let splicer = std::thread::spawn(move || splice(h264, mux_in, rx, count));
            Some(Held {
                ticks: tx,
                splicer: Some(splicer),
                muxer,
                fps: i64::from(spec.fps.max(1)),
                next_tick: 0,
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

    /// Encoded bytes handed to the muxer so far, where the encoder is two
    /// programs (skip-held mode); the muxer writes nothing to the file until
    /// it has probed its input, so the file's size lags far behind.
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

    /// Ends the input and waits for ffmpeg (and the muxer in skip-held mode)
    /// to write the end of the file.
    pub fn end_input_and_wait(mut self, timeout: Duration) -> Result<EncodeReport, FfmpegError> {
        if let Some(h) = &self.held {
            let _ = h.ticks.send(TickMsg::End(h.next_tick));
        }
        drop(self.stdin.take());
        self.child.wait(timeout)?;
        let mut cpu_s = parse_bench(&self.child.stderr_text()).unwrap_or(0.0);
        if let Some(mut h) = self.held.take() {
            let spliced = h
                .splicer
                .take()
                .map(|t| t.join().unwrap_or_else(|_| Err("splicer panicked".into())));
            if let Some(Err(e)) = spliced {
                return Err(FfmpegError::Output {
                    program: self.program,
                    message: format!("splicing held frames: {e}"),
                });
            }
            h.muxer.wait(timeout)?;
            cpu_s += parse_bench(&h.muxer.stderr_text()).unwrap_or(0.0);
        }
        Ok(EncodeReport { cpu_s })
    }
}
