//! The engine: a recording's life from request to stored file, with no
//! HTTP in it. The face (`crate::http`) calls it; it answers with
//! [`tapedeck_core::Problem`] (a code and a message) when it refuses.

pub mod cluster;
pub mod dispatch;
pub mod driver;
pub mod events;
pub mod metrics;
pub mod offload;
pub mod outputs;
pub mod principal;
pub mod processing;
pub mod recovery;
pub mod retention;
pub mod services;
pub mod ship;
pub mod signals;
pub mod source;
pub mod supervisor;
pub mod takeover;
pub mod webhooks;
pub mod work;
