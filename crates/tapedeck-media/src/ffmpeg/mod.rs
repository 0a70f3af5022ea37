//! The one wrapper around ffmpeg and ffprobe, by job: the encoder's
//! arguments ([`args`]), the running encoder ([`encoder`]) and its
//! skip-picture splicer ([`splicer`]), probing ([`probe`]), laying audio
//! under a video ([`audio`]) and thumbnails ([`thumbnails`]). Every child is
//! started through [`crate::process`]: killed when dropped, under a timeout,
//! with its stderr tail kept for the error. Output is parsed by pure
//! functions ([`parse_probe`], [`parse_bench`]) tested on fixtures.

mod args;
mod audio;
pub mod copy;
mod encoder;
pub mod grid;
pub mod grid_live;
pub mod live;
mod live_mux;
pub mod live_sound;
mod probe;
mod splicer;
pub mod tap;
mod thumbnails;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::process::ProcessError as FfmpegError;
pub use args::{EncodeSpec, distinct_args, encode_args, mux_args, transcode_args};
pub use audio::{AudioTrack, add_audio, audio_filter};
pub use encoder::{EncodeReport, Encoder};
pub use live::LiveSpec;
pub use probe::{parse_bench, parse_probe, picture_size, probe};
pub use thumbnails::{poster, strip};

/// The decoding limit of [`Tools::default`]: 7680 x 4320 (8K UHD), the
/// default of the server's `limits.max_frame_width` and `max_frame_height`.
pub const DEFAULT_MAX_PIXELS: u64 = 7680 * 4320;

/// Where the programs are, and how large a picture they may decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tools {
    /// The ffmpeg binary.
    pub ffmpeg: PathBuf,
    /// The ffprobe binary.
    pub ffprobe: PathBuf,
    /// The most pixels a decoded picture of media from outside (an upload,
    /// a call's track) may have: ffmpeg refuses a larger one before it
    /// allocates it (its `-max_pixels`), so a small file that declares
    /// 16000 x 16000 pictures costs nothing. 0: no limit.
    pub max_pixels: u64,
}

impl Default for Tools {
    fn default() -> Self {
        Self {
            ffmpeg: "ffmpeg".into(),
            ffprobe: "ffprobe".into(),
            max_pixels: DEFAULT_MAX_PIXELS,
        }
    }
}

impl Tools {
    /// The input option that limits decoding to [`Tools::max_pixels`]: to
    /// put before each `-i` of media tapedeck did not encode itself.
    pub fn input_limit(&self) -> Vec<String> {
        if self.max_pixels == 0 {
            return vec![];
        }
        vec!["-max_pixels".into(), self.max_pixels.to_string()]
    }
}

/// Runs ffmpeg or ffprobe to the end under `timeout`: its stdout.
fn run(program: &Path, args: &[String], timeout: Duration) -> Result<Vec<u8>, FfmpegError> {
    crate::process::run(label(program), program, args, timeout)
}

fn label(program: &Path) -> &'static str {
    if program
        .file_name()
        .is_some_and(|n| n.to_string_lossy().contains("ffprobe"))
    {
        "ffprobe"
    } else {
        "ffmpeg"
    }
}

/// Runs ffmpeg (or ffprobe) on media from outside under the decoding
/// limit: `-max_pixels` goes before every `-i`, and a refused picture is
/// [`FfmpegError::PictureTooLarge`] with its size, whether or not the
/// program then failed. Its stdout.
pub fn run_limited(
    tools: &Tools,
    program: &Path,
    args: &[String],
    timeout: Duration,
) -> Result<Vec<u8>, FfmpegError> {
    let mut limited = Vec::with_capacity(args.len() + 4);
    for a in args {
        if a == "-i" {
            limited.extend(tools.input_limit());
        }
        limited.push(a.clone());
    }
    let (result, stderr) = crate::process::run_capture(label(program), program, &limited, timeout);
    match refused_picture(&stderr) {
        Some((width, height)) => Err(FfmpegError::PictureTooLarge {
            width,
            height,
            limit: tools.max_pixels,
        }),
        None => result,
    }
}

/// The size in ffmpeg's refusal of a picture past `-max_pixels`
/// (`Picture size 16000x16000 exceeds specified max pixel count ...`).
pub fn refused_picture(stderr: &str) -> Option<(u32, u32)> {
    stderr.lines().find_map(|l| {
        let rest = l.split("Picture size ").nth(1)?;
        let (size, tail) = rest.split_once(' ')?;
        if !tail.starts_with("exceeds") {
            return None;
        }
        let (w, h) = size.split_once('x')?;
        Some((w.parse().ok()?, h.parse().ok()?))
    })
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
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

/// The encoders recordings use: H.264 for MP4/MKV, VP9 for WebM.
pub const ENCODERS: [&str; 2] = ["libx264", "libvpx-vp9"];

/// Which of [`ENCODERS`] this ffmpeg lacks (`ffmpeg -encoders`).
pub fn missing_encoders(program: &Path) -> Result<Vec<&'static str>, FfmpegError> {
    let out = run(
        program,
        &["-hide_banner".to_string(), "-encoders".to_string()],
        Duration::from_secs(20),
    )?;
    let list = String::from_utf8_lossy(&out);
    Ok(ENCODERS.into_iter().filter(|e| !list.contains(e)).collect())
}

/// Encodes two tiny frames with `spec`'s arguments (its format, rate mode,
/// skip pictures and preset; 64x64) and probes the result: whether this
/// ffmpeg can make the files recordings ask for, not only whether it lists
/// the encoders.
pub fn check_encode(tools: &Tools, spec: &EncodeSpec) -> Result<(), FfmpegError> {
    static RUN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "tapedeck-check-{}-{}",
        std::process::id(),
        RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let io = |e: std::io::Error| FfmpegError::Io {
        program: tools.ffmpeg.display().to_string(),
        source: e,
    };
    std::fs::create_dir_all(&dir).map_err(io)?;
    let result = (|| {
        let spec = EncodeSpec {
            width: 64,
            height: 64,
            ..spec.clone()
        };
        let out = dir.join(format!("check.{}", spec.format.extension()));
        let mut enc = Encoder::spawn(tools, &spec, &out)?;
        let gray = vec![128u8; 64 * 64 * 3 / 2];
        let tick = 1_000_000 / i64::from(spec.fps.max(1));
        enc.write_frame(0, &gray, None, false)?;
        enc.write_frame(tick, &gray, Some(tick), false)?;
        enc.end_input_and_wait(Duration::from_secs(60))?;
        let info = probe(tools, &out)?;
        match info.frames {
            Some(n) if n >= 2 => Ok(()),
            other => Err(FfmpegError::Output {
                program: tools.ffmpeg.display().to_string(),
                message: format!("a two-frame test encode gave {other:?} frames"),
            }),
        }
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}
