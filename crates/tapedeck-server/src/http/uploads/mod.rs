//! The upload routes: tus 1.0.0 ([`tus`]), presigned and signed direct
//! uploads ([`direct`]), who may touch an upload ([`access`]) and the size
//! it may have ([`quota`]). The upload itself is the engine's
//! (`crate::engine::source::upload`).

pub mod access;
pub mod direct;
pub mod quota;
pub mod tus;
