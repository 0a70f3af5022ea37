//! Realtime mode's heartbeat: a question to the page's main thread each
//! second, so that a page stuck in a script fails the recording.

use std::time::{Duration, Instant};

use serde_json::json;

use super::cdp::{CdpError, Reply};
use super::options::WebError;
use super::session::Session;

/// Realtime mode's check that the page's main thread still runs: the
/// compositor goes on drawing the last picture of a page stuck in a script,
/// so frames alone do not show it.
#[derive(Default)]
pub(super) struct Heartbeat {
    sent_at: Option<Instant>,
    pending: Option<Reply>,
}

impl Heartbeat {
    const EVERY: Duration = Duration::from_secs(1);

    /// Fails when the last question went unanswered for the frame timeout;
    /// asks again once it was answered and a second has passed.
    pub(super) fn beat(&mut self, s: &Session) -> Result<(), WebError> {
        if let Some(reply) = &mut self.pending {
            match reply.try_take() {
                None if self.sent_at.is_some_and(|t| t.elapsed() > s.frame_timeout) => {
                    return Err(WebError::Unresponsive(s.frame_timeout.as_secs()));
                }
                None => return Ok(()),
                // An error answer (a page between documents) is still an answer.
                Some(Err(CdpError::Closed)) => return Err(CdpError::Closed.into()),
                Some(_) => self.pending = None,
            }
        }
        if self.sent_at.is_some_and(|t| t.elapsed() < Self::EVERY) {
            return Ok(());
        }
        self.pending = Some(s.cdp.send(
            Some(&s.sid),
            "Runtime.evaluate",
            json!({"expression": "0", "returnByValue": true}),
        ));
        self.sent_at = Some(Instant::now());
        Ok(())
    }
}
