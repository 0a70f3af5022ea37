#![recursion_limit = "256"]
//! tapedeck, the recording server: HTTP API, supervisor, web page and CLI.
//!
//! Invariants: handlers never touch media directly (they ask the
//! [`supervisor::Supervisor`]); every `/v1` route but signed share links
//! authenticates; a user only ever sees their own recordings unless admin.

pub mod api;
pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod driver;
pub mod error;
pub mod events;
pub mod health;
pub mod jwks;
pub mod library;
pub mod metrics;
pub mod oidc;
pub mod openapi;
pub mod processing;
pub mod recovery;
pub mod retention;
pub mod room;
pub mod rtc;
pub mod services;
pub mod session;
pub mod source;
pub mod supervisor;
pub mod ui;
pub mod webhooks;
pub mod work;
pub mod ws;

/// Wall-clock time in unix milliseconds (the only clock reads are at the edges).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
