//! Events: one per status change, for `/v1/events` and webhooks.

use serde::{Deserialize, Serialize};

use crate::recording::Recording;

/// A recording event as sent to listeners and webhooks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// `recording.created`, `recording.started`, ... `recording.deleted`.
    #[serde(rename = "type")]
    pub kind: String,
    /// When it happened, RFC 3339.
    pub at: String,
    /// The recording after the change.
    pub recording: Recording,
}
