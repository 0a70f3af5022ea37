//! What a web recording is given and how it fails: the recorder's
//! options, the capture format, and [`WebError`], which every part of the
//! web source answers with.

use std::path::PathBuf;
use std::time::Duration;

use tapedeck_core::Code;
use tapedeck_core::netpolicy::NetPolicy;
use tapedeck_core::player::PlayError;
use tapedeck_core::split::FrameRange;

use super::cdp::CdpError;

/// The image format frames are captured in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capture {
    /// Lossless, slower to encode and decode.
    Png,
    /// Lossy at this quality (1-100), fast.
    Jpeg(u8),
}

/// Settings for web recordings.
#[derive(Debug, Clone)]
pub struct WebOptions {
    /// chromium-headless-shell.
    pub browser: PathBuf,
    /// Which addresses pages may reach.
    pub policy: NetPolicy,
    /// Longest wait for a page (or a `goto`) to load.
    pub load_timeout: Duration,
    /// Longest wait for one frame.
    pub frame_timeout: Duration,
    /// How frames are taken from the browser.
    pub capture: Capture,
    /// Browser profile folder (removed afterwards).
    pub profile: PathBuf,
    /// Where the page's audio goes when the source records it (realtime).
    pub audio_path: PathBuf,
    /// The output frames this browser captures (deterministic mode): the
    /// ones before are played without capturing, the browser stops after.
    pub range: FrameRange,
    /// With a range that ends: also take the picture of the next range's
    /// first frame (`WebReport::probe_shot`), to check at the join that
    /// the next browser, which played up to it without capturing, shows
    /// the same page.
    pub probe: bool,
    /// Where the page's sound goes as it is read, for the live outputs
    /// (closed when it ends or cannot be had).
    pub live_sound: Option<crate::ffmpeg::live_sound::SoundHandle>,
}

/// A web recording that failed, with a reason a person can act on.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum WebError {
    /// The browser could not start.
    #[error("{0}")]
    Browser(String),
    /// The address is not allowed.
    #[error("{url} is not allowed: {reason}")]
    Blocked {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The page could not be loaded.
    #[error("could not load {url}: {reason}")]
    Load {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// Loading did not finish.
    #[error("{url} did not finish loading within {secs} s")]
    LoadTimeout {
        /// The URL.
        url: String,
        /// The limit.
        secs: u64,
    },
    /// The page stopped producing frames.
    #[error("the page stopped responding (no frame within {0} s)")]
    Unresponsive(u64),
    /// The browser drew a frame but gave no picture of it (deterministic).
    #[error("the browser drew frame {0} but gave no picture of it")]
    NotCaptured(u64),
    /// The page or the browser crashed.
    #[error("the browser crashed: {0}")]
    Crashed(String),
    /// The script failed.
    #[error(transparent)]
    Script(#[from] PlayError),
    /// A selector is not valid CSS.
    #[error("script step {step}: {message}")]
    Selector {
        /// 1-based.
        step: usize,
        /// The browser's message.
        message: String,
    },
    /// The frames consumer went away.
    #[error("the encoder stopped")]
    SinkClosed,
}

impl WebError {
    /// The recording failure this is, with a code from the catalogue.
    pub fn failure(&self) -> tapedeck_core::Failure {
        let code = match self {
            WebError::Browser(_) | WebError::Crashed(_) => Code::BrowserCrashed,
            WebError::Blocked { .. } => Code::SourceBlocked,
            WebError::Load { reason, .. } if reason.starts_with("TLS error") => Code::TlsError,
            WebError::Load { .. } => Code::SourceUnreachable,
            WebError::LoadTimeout { .. } => Code::PageLoadTimeout,
            WebError::Unresponsive(_) | WebError::NotCaptured(_) => Code::PageUnresponsive,
            WebError::Script(PlayError::NotFound { .. }) | WebError::Selector { .. } => {
                Code::SelectorNotFound
            }
            WebError::Script(_) => Code::ScriptError,
            WebError::SinkClosed => Code::EncoderFailed,
        };
        tapedeck_core::Failure::new(code, self.to_string())
    }
}

impl From<CdpError> for WebError {
    fn from(e: CdpError) -> Self {
        match e {
            CdpError::Closed => WebError::Crashed("the browser exited unexpectedly".into()),
            e => WebError::Browser(e.to_string()),
        }
    }
}
