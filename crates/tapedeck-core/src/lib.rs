//! tapedeck's domain core.
//!
//! Invariants: this crate does no IO. It never reads the clock, a socket or a
//! file; every state machine takes the current time as an input and returns
//! what the driver around it must do. That keeps it testable with synthetic
//! time and lets the same logic replay a spool after a crash.

pub mod admission;
pub mod cluster;
pub mod codes;
pub mod error;
pub mod event;
pub mod example;
pub mod frame_message;
pub mod id;
pub mod kinds;
pub mod lifecycle;
pub mod netpolicy;
pub mod output;
pub mod player;
pub mod range;
pub mod recording;
pub mod request;
pub mod retry;
pub mod room;
pub mod script;
pub mod search;
pub mod settings;
pub mod signin;
pub mod speakers;
pub mod split;
pub mod timeline;
pub mod times;
pub mod tour;
pub mod track;
pub mod upload;
pub mod uploaded;
pub mod web;

pub use codes::{Code, Failure, Problem};
pub use error::ErrorCode;
pub use id::{RecordingId, RoomId};
pub use recording::{Action, EndReason, Recording, SourceKind, SourceSpec, Stats, Status};
pub use settings::{Format, Preset, VideoSettings};
