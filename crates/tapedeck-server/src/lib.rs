#![recursion_limit = "256"]
//! tapedeck, the recording server: the engine, its HTTP face, the media
//! server of calls, and the CLI.
//!
//! - [`engine`]: recordings from request to stored file (supervisor,
//!   drivers, sources, admission, processing, recovery, retention). It
//!   knows no HTTP type: it answers with [`tapedeck_core::Problem`].
//! - [`http`]: the face: routes, authentication, the web page, OpenAPI.
//!   Every handler calls the engine; none touches media.
//! - [`rtc`]: the media server of rooms.
//!
//! Invariants: every `/v1` route but signed share links authenticates; a
//! user only ever sees their own recordings unless admin.

pub mod cli;
pub mod config;
pub mod engine;
pub mod http;
pub mod rtc;

/// Wall-clock time in unix milliseconds (the only clock reads are at the edges).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
