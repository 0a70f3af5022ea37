//! tapedeck's media side.
//!
//! - [`picture`]: decode JPEG/PNG/WebP frames, letterbox them to the output
//!   size, convert to I420.
//! - [`mkv`]: a minimal Matroska writer (timestamped raw frames into ffmpeg).
//! - [`spool`]: the crash-safe append-only log of accepted frames.
//! - [`ffmpeg`]: the one wrapper around ffmpeg and ffprobe (encode, probe,
//!   thumbnails), with kill-on-drop and captured stderr.
//! - [`sink`]: where media goes; [`sink::encoding`] turns pictures into an
//!   encoded video through the core's timeline.
//! - [`web`]: the web source (headless Chromium, CDP, overlays).
//!
//! Invariants: every child process is killed when its handle drops; nothing
//! holds a whole video in memory; outside bytes are parsed only by functions
//! that return errors, never panic.

pub mod barcode;
pub mod ffmpeg;
pub mod h264;
pub mod mkv;
pub mod picture;
pub mod sink;
pub mod spool;
pub mod web;
