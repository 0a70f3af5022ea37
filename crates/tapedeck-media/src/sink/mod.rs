//! Where a source's media goes.
//!
//! - [`encoding`]: pictures in (decoded, letterboxed, placed on the
//!   timeline, spooled), an encoded video out (x264 or VP9 through ffmpeg).
//! - [`passthrough`]: encoded media units in (VP8, VP9, AV1, H.264, Opus),
//!   one WebM or Matroska file out, without re-encoding.

pub mod encoding;
pub mod passthrough;
mod replay;
