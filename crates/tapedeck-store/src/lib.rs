//! tapedeck's storage, behind two narrow types.
//!
//! - [`repo::Repo`]: recordings, API keys, rooms, accounts (users,
//!   sessions), a cluster's nodes, its shared queue of jobs, leases, the
//!   webhook outbox and signals between nodes in SQL. One implementation over
//!   sqlx's `Any` driver serves SQLite (the embedded default) and PostgreSQL;
//!   the same contract test runs on both.
//! - [`blob::Blobs`]: media and thumbnails as objects, on local disk or in an
//!   S3-compatible bucket (object_store), streamed both ways, never loaded
//!   whole into memory.
//!
//! Invariants: object keys are built from validated ids only (never from raw
//! user input); every query binds its values.

pub mod accounts;
pub mod blob;
pub mod jobs;
pub mod nodes;
pub mod outbox;
pub mod repo;
pub mod rooms;
