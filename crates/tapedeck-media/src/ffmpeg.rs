//! The one wrapper around ffmpeg and ffprobe.
//!
//! Every child is killed when its handle drops, every run has a timeout, and
//! the tail of stderr is kept for the error. Output is parsed by pure
//! functions ([`parse_probe`], [`parse_bench`]) tested on fixtures.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tapedeck_core::Format;
use tapedeck_core::recording::MediaInfo;

use crate::mkv;

/// Where the programs are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tools {
    /// The ffmpeg binary.
    pub ffmpeg: PathBuf,
    /// The ffprobe binary.
    pub ffprobe: PathBuf,
}

impl Default for Tools {
    fn default() -> Self {
        Self {
            ffmpeg: "ffmpeg".into(),
            ffprobe: "ffprobe".into(),
        }
    }
}

/// What went wrong running ffmpeg or ffprobe.
#[derive(Debug, thiserror::Error)]
pub enum FfmpegError {
    /// The program is not installed.
    #[error("{program} was not found; install it (Debian: apt-get install ffmpeg)")]
    NotFound {
        /// Which program.
        program: String,
    },
    /// It ran and failed.
    #[error("{program} failed ({status}): {stderr}")]
    Failed {
        /// Which program.
        program: String,
        /// Its exit status.
        status: String,
        /// The end of its stderr.
        stderr: String,
    },
    /// It ran too long and was killed.
    #[error("{program} did not finish within {seconds} s and was killed")]
    Timeout {
        /// Which program.
        program: String,
        /// The limit.
        seconds: u64,
    },
    /// Its output could not be understood.
    #[error("could not read {program} output: {message}")]
    Output {
        /// Which program.
        program: String,
        /// What was wrong.
        message: String,
    },
    /// Talking to it failed.
    #[error("i/o with {program}: {source}")]
    Io {
        /// Which program.
        program: String,
        /// The error.
        source: io::Error,
    },
}

fn spawn(cmd: &mut Command, program: &Path) -> Result<Child, FfmpegError> {
    cmd.spawn().map_err(|e| {
        let program = program.display().to_string();
        if e.kind() == io::ErrorKind::NotFound {
            FfmpegError::NotFound { program }
        } else {
            FfmpegError::Io { program, source: e }
        }
    })
}

/// A child process that is killed when dropped.
struct Guard(Option<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Keeps the last few KiB of a stream.
#[derive(Default)]
struct Tail(VecDeque<u8>);

const TAIL_BYTES: usize = 8192;

fn drain(mut from: impl Read + Send + 'static, tail: Arc<Mutex<Tail>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            if let Ok(mut t) = tail.lock() {
                t.0.extend(&buf[..n]);
                let extra = t.0.len().saturating_sub(TAIL_BYTES);
                t.0.drain(..extra);
            }
        }
    })
}

fn tail_text(tail: &Arc<Mutex<Tail>>) -> String {
    tail.lock()
        .map(|t| String::from_utf8_lossy(&t.0.iter().copied().collect::<Vec<_>>()).into_owned())
        .unwrap_or_default()
}

/// The last meaningful lines of stderr, for error messages.
fn error_lines(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("bench:") && !l.trim().is_empty())
        .collect();
    lines[lines.len().saturating_sub(4)..].join(" | ")
}

fn wait_timeout(child: &mut Child, timeout: Duration) -> io::Result<Option<ExitStatus>> {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait()? {
            return Ok(Some(s));
        }
        if start.elapsed() >= timeout {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs a program to completion with a timeout; stdout returned, stderr kept for errors.
fn run(program: &Path, args: &[String], timeout: Duration) -> Result<Vec<u8>, FfmpegError> {
    let name = program.display().to_string();
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut guard = Guard(Some(spawn(&mut cmd, program)?));
    let child = guard.0.as_mut().ok_or_else(|| FfmpegError::Output {
        program: name.clone(),
        message: "no child".into(),
    })?;
    let err_tail = Arc::new(Mutex::new(Tail::default()));
    let err_thread = drain(
        child
            .stderr
            .take()
            .ok_or_else(|| io_err(&name, "no stderr"))?,
        err_tail.clone(),
    );
    let mut stdout = child
        .stdout
        .take()
        .ok_or_else(|| io_err(&name, "no stdout"))?;
    let out_thread = std::thread::spawn(move || {
        let mut v = vec![];
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let status = wait_timeout(child, timeout).map_err(|e| FfmpegError::Io {
        program: name.clone(),
        source: e,
    })?;
    let Some(status) = status else {
        return Err(FfmpegError::Timeout {
            program: name,
            seconds: timeout.as_secs(),
        });
    };
    guard.0 = None;
    let out = out_thread.join().unwrap_or_default();
    let _ = err_thread.join();
    if !status.success() {
        return Err(FfmpegError::Failed {
            program: name,
            status: status.to_string(),
            stderr: error_lines(&tail_text(&err_tail)),
        });
    }
    Ok(out)
}

fn io_err(program: &str, message: &str) -> FfmpegError {
    FfmpegError::Io {
        program: program.into(),
        source: io::Error::other(message.to_string()),
    }
}

/// What to encode: output size, rate, format and quality.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeSpec {
    /// Output width.
    pub width: u32,
    /// Output height.
    pub height: u32,
    /// Output frame rate.
    pub fps: u32,
    /// Constant frame rate (hold frames) or variable.
    pub cfr: bool,
    /// Container and codecs.
    pub format: Format,
    /// Bitrate cap, kbit/s.
    pub video_bitrate_kbps: u32,
    /// x264 speed preset (`veryfast`, ...).
    pub x264_preset: String,
    /// x264 CRF / VP9 CRF quality.
    pub crf: u32,
    /// CFR H.264 only: encode distinct frames and write held ticks as skip
    /// pictures ([`crate::h264`]) instead of encoding repeats.
    pub skip_held: bool,
}

impl EncodeSpec {
    /// Whether this spec uses skip pictures for held frames.
    pub fn uses_skip_held(&self) -> bool {
        self.skip_held && self.cfr && matches!(self.format, Format::Mp4 | Format::Mkv)
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Raw frames in a Matroska stream on stdin, with `-benchmark` for the CPU figure.
fn raw_input() -> Vec<String> {
    strings(&[
        "-hide_banner",
        "-nostats",
        "-benchmark",
        "-loglevel",
        "info",
        "-f",
        "matroska",
        "-i",
        "pipe:0",
    ])
}

/// x264 at the spec's quality, capped at its bitrate.
fn x264(spec: &EncodeSpec) -> Vec<String> {
    let br = spec.video_bitrate_kbps;
    let mut a = strings(&[
        "-c:v",
        "libx264",
        "-preset",
        &spec.x264_preset,
        "-crf",
        &spec.crf.to_string(),
    ]);
    a.extend(strings(&[
        "-maxrate",
        &format!("{br}k"),
        "-bufsize",
        &format!("{}k", br * 2),
    ]));
    a
}

/// ffmpeg arguments to encode a Matroska stream of raw frames from stdin to `output`.
pub fn encode_args(spec: &EncodeSpec, output: &Path) -> Vec<String> {
    let mut a = raw_input();
    if spec.cfr {
        a.extend(strings(&["-fps_mode", "cfr", "-r", &spec.fps.to_string()]));
    } else {
        a.extend(strings(&["-fps_mode", "vfr"]));
    }
    let gop = (spec.fps * 4).to_string();
    match spec.format {
        Format::Mp4 | Format::Mkv => {
            a.extend(x264(spec));
            a.extend(strings(&["-g", &gop]));
        }
        Format::Webm => a.extend(strings(&[
            "-c:v",
            "libvpx-vp9",
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
            "-row-mt",
            "1",
            "-threads",
            "2",
            "-crf",
            &(spec.crf + 10).to_string(),
            "-b:v",
            &format!("{}k", spec.video_bitrate_kbps),
            "-g",
            &gop,
        ])),
    }
    a.extend(strings(&["-pix_fmt", "yuv420p", "-an"]));
    let muxer = match spec.format {
        Format::Mp4 => {
            a.extend(strings(&["-movflags", "+faststart"]));
            "mp4"
        }
        Format::Webm => "webm",
        Format::Mkv => "matroska",
    };
    a.extend(strings(&["-f", muxer, "-y", &output.display().to_string()]));
    a
}

/// ffmpeg arguments of the skip-held mode: distinct frames in, H.264 Annex B
/// out on stdout (no B-frames, one reference, keyframes every 4 s of output).
pub fn distinct_args(spec: &EncodeSpec) -> Vec<String> {
    let mut a = raw_input();
    a.extend(strings(&[
        "-fps_mode",
        "passthrough",
        "-r",
        &spec.fps.to_string(),
    ]));
    a.extend(x264(spec));
    a.extend(strings(&[
        "-bf",
        "0",
        "-refs",
        "1",
        "-g",
        "100000",
        "-force_key_frames",
        "expr:gte(t,n_forced*4)",
    ]));
    a.extend(strings(&[
        "-pix_fmt", "yuv420p", "-an", "-f", "h264", "pipe:1",
    ]));
    a
}

/// ffmpeg arguments that wrap the spliced Annex B stream at `fps` into the container.
pub fn mux_args(spec: &EncodeSpec, output: &Path) -> Vec<String> {
    let mut a: Vec<String> = [
        "-hide_banner",
        "-nostats",
        "-benchmark",
        "-loglevel",
        "info",
        "-f",
        "h264",
        "-framerate",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    a.extend([
        spec.fps.to_string(),
        "-i".into(),
        "pipe:0".into(),
        "-c:v".into(),
        "copy".into(),
        "-an".into(),
    ]);
    if spec.format == Format::Mp4 {
        // The raw H.264 demuxer counts in 1/1200000 s, which puts some frames a
        // microsecond early; ffmpeg's usual track timescale rounds them back onto
        // exact frame times.
        a.extend([
            "-video_track_timescale".into(),
            (spec.fps * 512).to_string(),
            "-movflags".into(),
            "+faststart".into(),
            "-f".into(),
            "mp4".into(),
        ]);
    } else {
        a.extend(["-f".into(), "matroska".into()]);
    }
    a.extend(["-y".into(), output.display().to_string()]);
    a
}

/// A running encoder fed raw I420 frames with timestamps.
pub struct Encoder {
    child: Guard,
    stdin: Option<ChildStdin>,
    err_tail: Arc<Mutex<Tail>>,
    err_thread: Option<JoinHandle<()>>,
    frame_len: usize,
    program: String,
    held: Option<Held>,
}

/// The skip-held half of an encoder: the splicer thread and the muxing ffmpeg.
struct Held {
    ticks: std::sync::mpsc::Sender<TickMsg>,
    splicer: Option<JoinHandle<Result<(), String>>>,
    muxer: Guard,
    mux_tail: Arc<Mutex<Tail>>,
    mux_err_thread: Option<JoinHandle<()>>,
    fps: i64,
    next_tick: i64,
}

enum TickMsg {
    Frame(i64),
    End(i64),
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
        let mut cmd = Command::new(&tools.ffmpeg);
        if skip {
            cmd.args(distinct_args(spec)).stdout(Stdio::piped());
        } else {
            cmd.args(encode_args(spec, output)).stdout(Stdio::null());
        }
        cmd.stdin(Stdio::piped()).stderr(Stdio::piped());
        let mut child = spawn(&mut cmd, &tools.ffmpeg)?;
        let held = if skip {
            let mut mux = Command::new(&tools.ffmpeg);
            mux.args(mux_args(spec, output))
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            let mut muxer = spawn(&mut mux, &tools.ffmpeg)?;
            let mux_tail = Arc::new(Mutex::new(Tail::default()));
            let mux_err_thread = muxer.stderr.take().map(|e| drain(e, mux_tail.clone()));
            let mux_in = muxer
                .stdin
                .take()
                .ok_or_else(|| io_err(&program, "no muxer stdin"))?;
            let h264 = child
                .stdout
                .take()
                .ok_or_else(|| io_err(&program, "no encoder stdout"))?;
            let (tx, rx) = std::sync::mpsc::channel();
            let splicer = std::thread::spawn(move || splice(h264, mux_in, rx));
            Some(Held {
                ticks: tx,
                splicer: Some(splicer),
                muxer: Guard(Some(muxer)),
                mux_tail,
                mux_err_thread,
                fps: i64::from(spec.fps.max(1)),
                next_tick: 0,
            })
        } else {
            None
        };
        let err_tail = Arc::new(Mutex::new(Tail::default()));
        let err_thread = child.stderr.take().map(|e| drain(e, err_tail.clone()));
        let mut stdin = child
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
            child: Guard(Some(child)),
            stdin: Some(stdin),
            err_tail,
            err_thread,
            frame_len: spec.width as usize * spec.height as usize * 3 / 2,
            program,
            held,
        })
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
            let tail = error_lines(&tail_text(&self.err_tail));
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

    /// Closes the input and waits for ffmpeg to finish the file.
    pub fn finish(mut self, timeout: Duration) -> Result<EncodeReport, FfmpegError> {
        if let Some(h) = &self.held {
            let _ = h.ticks.send(TickMsg::End(h.next_tick));
        }
        drop(self.stdin.take());
        let program = self.program.clone();
        let stderr = reap(
            &program,
            &mut self.child,
            &mut self.err_thread,
            &self.err_tail,
            timeout,
        )?;
        let mut cpu_s = parse_bench(&stderr).unwrap_or(0.0);
        if let Some(mut h) = self.held.take() {
            let spliced = h
                .splicer
                .take()
                .map(|t| t.join().unwrap_or_else(|_| Err("splicer panicked".into())));
            if let Some(Err(e)) = spliced {
                return Err(FfmpegError::Output {
                    program,
                    message: format!("splicing held frames: {e}"),
                });
            }
            let mux_err = reap(
                &program,
                &mut h.muxer,
                &mut h.mux_err_thread,
                &h.mux_tail,
                timeout,
            )?;
            cpu_s += parse_bench(&mux_err).unwrap_or(0.0);
        }
        Ok(EncodeReport { cpu_s })
    }
}

/// Waits for a child with a timeout, collects its stderr, and turns a failure into an error.
fn reap(
    program: &str,
    guard: &mut Guard,
    err_thread: &mut Option<JoinHandle<()>>,
    tail: &Arc<Mutex<Tail>>,
    timeout: Duration,
) -> Result<String, FfmpegError> {
    let child = guard
        .0
        .as_mut()
        .ok_or_else(|| io_err(program, "no child"))?;
    let status = wait_timeout(child, timeout).map_err(|e| FfmpegError::Io {
        program: program.to_string(),
        source: e,
    })?;
    let Some(status) = status else {
        return Err(FfmpegError::Timeout {
            program: program.to_string(),
            seconds: timeout.as_secs(),
        });
    };
    guard.0 = None;
    if let Some(t) = err_thread.take() {
        let _ = t.join();
    }
    let stderr = tail_text(tail);
    if !status.success() {
        return Err(FfmpegError::Failed {
            program: program.to_string(),
            status: status.to_string(),
            stderr: error_lines(&stderr),
        });
    }
    Ok(stderr)
}

/// Reads x264's Annex B stream, writes a skip picture for every output tick
/// that has no encoded picture, renumbers `frame_num`, and passes it on.
fn splice(
    mut h264: impl Read,
    out: impl Write,
    ticks: std::sync::mpsc::Receiver<TickMsg>,
) -> Result<(), String> {
    let mut s = Splicer {
        out,
        ticks,
        sps: None,
        au: vec![],
        au_has_slice: false,
        frame_num: 0,
        last_tick: -1,
        end: None,
    };
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
    let mut chunk = vec![0u8; 256 * 1024];
    loop {
        let n = h264
            .read(&mut chunk)
            .map_err(|e| format!("encoder output: {e}"))?;
        if n == 0 {
            // End of stream: a start code after the rest makes it the last NAL.
            buf.extend_from_slice(&[0, 0, 1]);
        } else {
            buf.extend_from_slice(&chunk[..n]);
        }
        let (nals, tail) = crate::h264::split_nals(&buf);
        for nal in nals.into_iter().filter(|n| !n.is_empty()) {
            s.push(nal)?;
        }
        buf.drain(..tail);
        if n == 0 {
            break;
        }
    }
    s.finish()
}

/// State of [`splice`]: the access unit being gathered and the numbering.
struct Splicer<W: Write> {
    out: W,
    ticks: std::sync::mpsc::Receiver<TickMsg>,
    sps: Option<crate::h264::Sps>,
    au: Vec<Vec<u8>>,
    au_has_slice: bool,
    frame_num: u32,
    last_tick: i64,
    end: Option<i64>,
}

impl<W: Write> Splicer<W> {
    fn write(&mut self, nal: &[u8]) -> Result<(), String> {
        self.out
            .write_all(&[0, 0, 0, 1])
            .and_then(|_| self.out.write_all(nal))
            .map_err(|e| format!("muxer: {e}"))
    }

    fn sps(&self) -> Result<crate::h264::Sps, String> {
        self.sps
            .ok_or_else(|| "no SPS before the first picture".to_string())
    }

    fn next_frame_num(&mut self, sps: &crate::h264::Sps) {
        self.frame_num = (self.frame_num + 1) % (1 << sps.log2_max_frame_num);
    }

    /// Gathers NALs into access units; a new picture or header flushes the previous one.
    fn push(&mut self, nal: &[u8]) -> Result<(), String> {
        let vcl = matches!(crate::h264::nal_type(nal), 1 | 5);
        if self.au_has_slice && (!vcl || crate::h264::starts_picture(nal)) {
            self.flush_au()?;
        }
        self.au_has_slice |= vcl;
        self.au.push(nal.to_vec());
        Ok(())
    }

    /// Skip pictures for every tick before `until`.
    fn fill(&mut self, until: i64) -> Result<(), String> {
        if self.last_tick < 0 {
            return Ok(());
        }
        let sps = self.sps()?;
        while self.last_tick + 1 < until {
            self.write(&crate::h264::skip_slice(&sps, self.frame_num))?;
            self.next_frame_num(&sps);
            self.last_tick += 1;
        }
        Ok(())
    }

    /// Writes the gathered access unit at its tick, after the skips before it.
    fn flush_au(&mut self) -> Result<(), String> {
        use crate::h264;
        if self.au.is_empty() {
            return Ok(());
        }
        let tick = loop {
            match self.ticks.recv() {
                Ok(TickMsg::Frame(t)) => break t,
                Ok(TickMsg::End(t)) => self.end = Some(t),
                Err(_) => return Err("encoder output has more pictures than frames sent".into()),
            }
        };
        self.fill(tick)?;
        if self.au.iter().any(|n| h264::nal_type(n) == 5) {
            self.frame_num = 0;
        }
        let mut is_ref = false;
        for nal in std::mem::take(&mut self.au) {
            match h264::nal_type(&nal) {
                7 => {
                    self.sps = Some(h264::parse_sps(&nal).map_err(|e| e.to_string())?);
                    self.write(&nal)?;
                }
                8 => {
                    self.write(&nal)?;
                    let pps = h264::skip_pps(&self.sps()?);
                    self.write(&pps)?;
                }
                1 | 5 => {
                    is_ref |= nal[0] & 0x60 != 0;
                    let renumbered = h264::set_frame_num(&nal, &self.sps()?, self.frame_num)
                        .map_err(|e| e.to_string())?;
                    self.write(&renumbered)?;
                }
                _ => self.write(&nal)?,
            }
        }
        if is_ref {
            let sps = self.sps()?;
            self.next_frame_num(&sps);
        }
        self.au_has_slice = false;
        self.last_tick = tick;
        Ok(())
    }

    /// Flushes the last picture and fills the held ticks up to the end.
    fn finish(mut self) -> Result<(), String> {
        self.flush_au()?;
        let end = match self.end {
            Some(e) => e,
            None => match self.ticks.recv() {
                Ok(TickMsg::End(e)) => e,
                Ok(TickMsg::Frame(_)) => {
                    return Err("frames sent that the encoder did not output".into());
                }
                Err(_) => return Err("encoder stopped before the end".into()),
            },
        };
        self.fill(end)?;
        self.out.flush().map_err(|e| format!("muxer: {e}"))
    }
}

/// CPU seconds from ffmpeg's `-benchmark` line (`bench: utime=1.2s stime=0.3s rtime=...`).
pub fn parse_bench(stderr: &str) -> Option<f64> {
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("bench: utime="))?;
    let field = |name: &str| -> Option<f64> {
        let rest = line.split(name).nth(1)?;
        rest.split('s').next()?.parse().ok()
    };
    Some(field("utime=")? + field("stime=")?)
}

/// Probes a media file (demuxing only, no decoding) and hashes nothing: `sha256` is left empty.
pub fn probe(tools: &Tools, path: &Path) -> Result<MediaInfo, FfmpegError> {
    let args: Vec<String> = [
        "-v",
        "error",
        "-count_packets",
        "-print_format",
        "json",
        "-show_format",
        "-show_streams",
    ]
    .into_iter()
    .map(String::from)
    .chain([path.display().to_string()])
    .collect();
    let out = run(&tools.ffprobe, &args, Duration::from_secs(120))?;
    parse_probe(&String::from_utf8_lossy(&out)).map_err(|message| FfmpegError::Output {
        program: tools.ffprobe.display().to_string(),
        message,
    })
}

/// Reads ffprobe's JSON (`-show_format -show_streams -count_packets`).
pub fn parse_probe(json: &str) -> Result<MediaInfo, String> {
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let streams = v["streams"].as_array().ok_or("no streams")?;
    let video = streams
        .iter()
        .find(|s| s["codec_type"] == "video")
        .ok_or("no video stream")?;
    let num = |x: &serde_json::Value| -> Option<f64> { x.as_str()?.parse().ok() };
    let rate = |x: &serde_json::Value| -> Option<f64> {
        let (n, d) = x.as_str()?.split_once('/')?;
        let (n, d): (f64, f64) = (n.parse().ok()?, d.parse().ok()?);
        (d > 0.0).then_some(n / d)
    };
    let duration_s = num(&v["format"]["duration"])
        .or_else(|| num(&video["duration"]))
        .ok_or("no duration")?;
    let frames = num(&video["nb_read_packets"])
        .or_else(|| num(&video["nb_frames"]))
        .map(|f| f as u64);
    let fps = rate(&video["avg_frame_rate"])
        .filter(|f| *f > 0.0)
        .or_else(|| frames.map(|f| f as f64 / duration_s.max(1e-9)))
        .unwrap_or(0.0);
    Ok(MediaInfo {
        container: v["format"]["format_name"]
            .as_str()
            .unwrap_or("")
            .to_string(),
        video_codec: video["codec_name"].as_str().unwrap_or("").to_string(),
        audio_codec: streams
            .iter()
            .find(|s| s["codec_type"] == "audio")
            .and_then(|a| a["codec_name"].as_str())
            .map(String::from),
        width: video["width"].as_u64().unwrap_or(0) as u32,
        height: video["height"].as_u64().unwrap_or(0) as u32,
        fps,
        frames,
        duration_s,
        sha256: String::new(),
    })
}

/// A recorded audio file to lay under a video.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioTrack {
    /// The file (any format ffmpeg reads).
    pub path: PathBuf,
    /// Seconds of audio before the video's first frame.
    pub lead_s: f64,
    /// Spans of the audio's own time (seconds) that are not in the video
    /// (pauses), in order.
    pub cuts: Vec<(f64, f64)>,
}

/// The `-filter_complex` graph that lays `track` (input 1) under a video of
/// `duration_s`: drops the lead and the cut spans sample-exactly, then pads
/// with silence or trims so the audio lasts exactly as long as the video.
/// Its output is `[aout]`.
pub fn audio_filter(track: &AudioTrack, duration_s: f64) -> String {
    let mut spans = Vec::new();
    let mut from = track.lead_s.max(0.0);
    for &(a, b) in &track.cuts {
        if a > from {
            spans.push((from, Some(a)));
        }
        from = from.max(b);
    }
    spans.push((from, None));
    let trim = |(start, end): (f64, Option<f64>)| match end {
        Some(e) => format!("atrim=start={start:.6}:end={e:.6},asetpts=PTS-STARTPTS"),
        None => format!("atrim=start={start:.6},asetpts=PTS-STARTPTS"),
    };
    let fit = format!("apad=whole_dur={duration_s:.6},atrim=end={duration_s:.6}");
    if spans.len() == 1 {
        return format!("[1:a]{},{fit}[aout]", trim(spans[0]));
    }
    let n = spans.len();
    let mut g = format!("[1:a]asplit={n}");
    for i in 0..n {
        g.push_str(&format!("[i{i}]"));
    }
    for (i, span) in spans.iter().enumerate() {
        g.push_str(&format!(";[i{i}]{}[s{i}]", trim(*span)));
    }
    g.push(';');
    for i in 0..n {
        g.push_str(&format!("[s{i}]"));
    }
    g.push_str(&format!("concat=n={n}:v=0:a=1,{fit}[aout]"));
    g
}

/// Muxes `video` (copied) with `track` (AAC in MP4, Opus otherwise) into `out`.
pub fn add_audio(
    tools: &Tools,
    video: &Path,
    track: &AudioTrack,
    format: Format,
    audio_bitrate_kbps: u32,
    duration_s: f64,
    out: &Path,
) -> Result<(), FfmpegError> {
    let mut a: Vec<String> = strings(&["-v", "error", "-i"]);
    a.push(video.display().to_string());
    a.push("-i".into());
    a.push(track.path.display().to_string());
    a.extend([
        "-filter_complex".into(),
        audio_filter(track, duration_s),
        "-map".into(),
        "0:v".into(),
        "-map".into(),
        "[aout]".into(),
        "-c:v".into(),
        "copy".into(),
        "-c:a".into(),
        if format == Format::Mp4 {
            "aac"
        } else {
            "libopus"
        }
        .into(),
        "-b:a".into(),
        format!("{}k", audio_bitrate_kbps.max(16)),
    ]);
    match format {
        Format::Mp4 => a.extend(strings(&["-movflags", "+faststart", "-f", "mp4"])),
        Format::Webm => a.extend(strings(&["-f", "webm"])),
        Format::Mkv => a.extend(strings(&["-f", "matroska"])),
    }
    a.extend(["-y".into(), out.display().to_string()]);
    run(&tools.ffmpeg, &a, Duration::from_secs(3600)).map(|_| ())
}

/// Writes a JPEG poster of the frame at `at_s`, at most 640 pixels wide.
pub fn poster(tools: &Tools, media: &Path, at_s: f64, out: &Path) -> Result<(), FfmpegError> {
    let args: Vec<String> = vec![
        "-v".into(),
        "error".into(),
        "-ss".into(),
        format!("{at_s:.3}"),
        "-i".into(),
        media.display().to_string(),
        "-frames:v".into(),
        "1".into(),
        "-vf".into(),
        "scale='min(640,iw)':-2".into(),
        "-q:v".into(),
        "3".into(),
        "-y".into(),
        out.display().to_string(),
    ];
    run(&tools.ffmpeg, &args, Duration::from_secs(120)).map(|_| ())
}

/// Writes a strip of `count` small thumbnails spread over the video, side by side.
pub fn strip(
    tools: &Tools,
    media: &Path,
    duration_s: f64,
    count: u32,
    out: &Path,
) -> Result<(), FfmpegError> {
    let rate = f64::from(count) / duration_s.max(0.1);
    let args: Vec<String> = vec![
        "-v".into(),
        "error".into(),
        "-i".into(),
        media.display().to_string(),
        "-vf".into(),
        format!("fps={rate:.6},scale=160:-2,tile={count}x1"),
        "-frames:v".into(),
        "1".into(),
        "-q:v".into(),
        "4".into(),
        "-y".into(),
        out.display().to_string(),
    ];
    run(&tools.ffmpeg, &args, Duration::from_secs(300)).map(|_| ())
}

/// `ffmpeg -version`'s first line, to check the install.
pub fn version(program: &Path) -> Result<String, FfmpegError> {
    let out = run(program, &["-version".to_string()], Duration::from_secs(20))?;
    Ok(String::from_utf8_lossy(&out)
        .lines()
        .next()
        .unwrap_or("")
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_filter_drops_the_lead_and_pauses_exactly() {
        let t = |lead_s, cuts: Vec<(f64, f64)>| AudioTrack {
            path: "a.mp4".into(),
            lead_s,
            cuts,
        };
        assert_eq!(
            audio_filter(&t(0.25, vec![]), 4.0),
            "[1:a]atrim=start=0.250000,asetpts=PTS-STARTPTS,\
             apad=whole_dur=4.000000,atrim=end=4.000000[aout]"
        );
        assert_eq!(
            audio_filter(&t(0.1, vec![(1.0, 2.5)]), 3.0),
            "[1:a]asplit=2[i0][i1];\
             [i0]atrim=start=0.100000:end=1.000000,asetpts=PTS-STARTPTS[s0];\
             [i1]atrim=start=2.500000,asetpts=PTS-STARTPTS[s1];\
             [s0][s1]concat=n=2:v=0:a=1,apad=whole_dur=3.000000,atrim=end=3.000000[aout]"
        );
        // A pause before the video started only moves the start.
        assert_eq!(
            audio_filter(&t(0.5, vec![(0.2, 0.8)]), 1.0),
            "[1:a]atrim=start=0.800000,asetpts=PTS-STARTPTS,\
             apad=whole_dur=1.000000,atrim=end=1.000000[aout]"
        );
    }

    #[test]
    fn bench_line() {
        let s = "frame=1\nbench: utime=1.250s stime=0.250s rtime=3.000s\nbench: maxrss=7kB\n";
        assert_eq!(parse_bench(s), Some(1.5));
        assert_eq!(parse_bench("nothing"), None);
    }

    #[test]
    fn probe_fixture() {
        let j = r#"{"streams":[{"codec_type":"video","codec_name":"h264","width":1280,"height":720,
            "avg_frame_rate":"30/1","nb_frames":"300","nb_read_packets":"300"}],
            "format":{"format_name":"mov,mp4,m4a,3gp,3g2,mj2","duration":"10.000000"}}"#;
        let m = parse_probe(j).unwrap();
        assert_eq!(
            (m.video_codec.as_str(), m.width, m.height, m.frames),
            ("h264", 1280, 720, Some(300))
        );
        assert_eq!(m.audio_codec, None);
        let j = r#"{"streams":[{"codec_type":"video","codec_name":"h264","width":8,"height":8,
            "avg_frame_rate":"30/1"},{"codec_type":"audio","codec_name":"aac"}],
            "format":{"format_name":"mp4","duration":"1.0"}}"#;
        assert_eq!(parse_probe(j).unwrap().audio_codec.as_deref(), Some("aac"));
        assert!((m.fps - 30.0).abs() < 1e-9 && (m.duration_s - 10.0).abs() < 1e-9);
        assert!(parse_probe(r#"{"streams":[],"format":{}}"#).is_err());
    }

    #[test]
    fn cfr_and_vfr_args() {
        let spec = EncodeSpec {
            width: 1280,
            height: 720,
            fps: 30,
            cfr: true,
            format: Format::Mp4,
            video_bitrate_kbps: 2500,
            x264_preset: "veryfast".into(),
            crf: 23,
            skip_held: false,
        };
        let a = encode_args(&spec, Path::new("o.mp4")).join(" ");
        assert!(
            a.contains("-fps_mode cfr -r 30") && a.contains("libx264") && a.contains("+faststart"),
            "{a}"
        );
        let a = encode_args(
            &EncodeSpec {
                cfr: false,
                format: Format::Webm,
                ..spec
            },
            Path::new("o.webm"),
        )
        .join(" ");
        assert!(
            a.contains("-fps_mode vfr") && a.contains("libvpx-vp9") && !a.contains("faststart"),
            "{a}"
        );
    }
}
