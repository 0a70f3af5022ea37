//! tapedeck's media side.
//!
//! - [`picture`]: decode JPEG/PNG/WebP frames, letterbox them to the output
//!   size, convert to I420.
//! - [`mkv`]: a minimal Matroska writer (timestamped raw frames into ffmpeg).
//! - [`spool`]: the crash-safe append-only log of accepted frames.
//! - [`process`]: the one wrapper that starts programs (ffmpeg, ffprobe, the
//!   browser): kill on drop, timeouts, stderr tail, counts per program.
//! - [`ffmpeg`]: ffmpeg and ffprobe by job (encoder arguments, the running
//!   encoder and its splicer, probe, audio, thumbnails).
//! - [`sink`]: where media goes; [`sink::encoding`] turns pictures into an
//!   encoded video through the core's timeline.
//! - [`web`]: the web source (headless Chromium, CDP, overlays).
//! - [`rtc`]: answering WebRTC offers, telling keyframes (outside input).
//!
//! Invariants: every child process is killed when its handle drops; nothing
//! holds a whole video in memory; outside bytes are parsed only by functions
//! that return errors, never panic.

pub mod ffmpeg;
pub mod fixup;
pub mod h264;
pub mod mkv;
pub mod picture;
pub mod process;
pub mod rtc;
pub mod sink;
pub mod spool;
pub mod video_setup;
pub mod web;
