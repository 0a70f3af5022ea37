//! The HTTP face: routes over the engine. A handler authenticates the
//! caller, parses the request (the core's parsers), calls the engine and
//! turns its answer into JSON or media; an engine `Problem` becomes an
//! [`error::ApiError`] with its code's status.

pub mod access;
pub mod app;
pub mod auth;
pub mod cluster;
pub mod cookie;
pub mod error;
pub mod forward;
pub mod frames;
pub mod health;
pub mod jwks;
pub mod library;
pub mod oidc;
pub mod openapi;
pub mod outputs;
pub mod recordings;
pub mod rooms;
pub mod secret;
pub mod session;
pub mod state;
pub mod throttle;
pub mod ui;
pub mod uploads;
pub mod web;
pub mod ws;
