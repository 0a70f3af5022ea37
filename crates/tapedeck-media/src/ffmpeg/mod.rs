//! The one wrapper around ffmpeg and ffprobe, by job: the encoder's
//! arguments ([`args`]), the running encoder ([`encoder`]) and its
//! skip-picture splicer ([`splicer`]), probing ([`probe`]), laying audio
//! under a video ([`audio`]) and thumbnails ([`thumbnails`]). Every child is
//! started through [`crate::process`]: killed when dropped, under a timeout,
//! with its stderr tail kept for the error. Output is parsed by pure
//! functions ([`parse_probe`], [`parse_bench`]) tested on fixtures.

mod args;
mod audio;
mod encoder;
mod probe;
mod splicer;
mod thumbnails;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::process::ProcessError as FfmpegError;
pub use args::{EncodeSpec, distinct_args, encode_args, mux_args};
pub use audio::{AudioTrack, add_audio, audio_filter};
pub use encoder::{EncodeReport, Encoder};
pub use probe::{parse_bench, parse_probe, probe};
pub use thumbnails::{poster, strip};

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

/// Runs ffmpeg or ffprobe to the end under `timeout`: its stdout.
fn run(program: &Path, args: &[String], timeout: Duration) -> Result<Vec<u8>, FfmpegError> {
    let label = if program
        .file_name()
        .is_some_and(|n| n.to_string_lossy().contains("ffprobe"))
    {
        "ffprobe"
    } else {
        "ffmpeg"
    };
    crate::process::run(label, program, args, timeout)
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
