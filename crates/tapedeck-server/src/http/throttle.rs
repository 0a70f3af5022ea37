//! Counters the face keeps per user against floods: failed password
//! sign-ins per name, and open event and call sockets per user.

use std::collections::HashMap;

use tapedeck_core::Code;

use crate::http::error::ApiError;

/// Failed sign-ins per user name before it waits.
const MAX_FAILURES: u32 = 10;
/// How long those failures are counted, ms.
pub(crate) const FAILURE_WINDOW_MS: i64 = 10 * 60 * 1000;

/// Failed password sign-ins per user name: after [`MAX_FAILURES`] in
/// [`FAILURE_WINDOW_MS`], that name is refused until the window passes,
/// so a password cannot be guessed at the speed of the server.
#[derive(Debug, Default)]
pub struct Attempts(std::sync::Mutex<HashMap<String, (u32, i64)>>);

impl Attempts {
    pub(crate) fn blocked(&self, user: &str, now: i64) -> bool {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        m.retain(|_, (_, since)| now - *since < FAILURE_WINDOW_MS);
        m.get(user).is_some_and(|(n, _)| *n >= MAX_FAILURES)
    }
    pub(crate) fn failed(&self, user: &str, now: i64) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        // Bounded: a flood of names expires with the window; past 10 000,
        // names tried once go first, so a flood cannot wipe the count of
        // the name it is guessing.
        if m.len() >= 10_000 {
            m.retain(|_, (n, _)| *n > 1);
        }
        if m.len() >= 10_000 {
            m.clear();
        }
        m.entry(user.to_string()).or_insert((0, now)).0 += 1;
    }
    pub(crate) fn succeeded(&self, user: &str) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(user);
    }
}

/// Open event sockets per user, for `limits.max_event_sockets_per_user`.
#[derive(Debug, Default)]
pub struct SocketCounts(std::sync::Mutex<std::collections::HashMap<String, u32>>);

/// One open socket of a user's; the count goes down when it drops.
pub struct SocketSlot {
    counts: std::sync::Arc<SocketCounts>,
    user: String,
}

impl SocketCounts {
    /// A slot for `user`, unless they hold `max` already.
    pub fn take(self: &std::sync::Arc<Self>, user: &str, max: u32) -> Result<SocketSlot, ApiError> {
        self.take_kind(user, max, "event")
    }

    /// [`SocketCounts::take`] for sockets of another `kind` (`call`),
    /// counted apart under their own `key`.
    pub fn take_kind(
        self: &std::sync::Arc<Self>,
        key: &str,
        max: u32,
        kind: &str,
    ) -> Result<SocketSlot, ApiError> {
        let user = if kind == "event" {
            key.to_string()
        } else {
            format!("{kind}:{key}")
        };
        let user = user.as_str();
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(user.to_string()).or_default();
        if *n >= max {
            return Err(ApiError::new(
                Code::TooManySockets,
                format!(
                    "you have {n} {kind} sockets open (limits.max_event_sockets_per_user); close one first"
                ),
            ));
        }
        *n += 1;
        Ok(SocketSlot {
            counts: self.clone(),
            user: user.to_string(),
        })
    }
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        let mut m = self.counts.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_block_a_name_for_the_window() {
        let a = Attempts::default();
        for _ in 0..MAX_FAILURES {
            assert!(!a.blocked("ann", 0));
            a.failed("ann", 0);
        }
        assert!(a.blocked("ann", 1));
        assert!(!a.blocked("bob", 1), "another name is not");
        assert!(
            !a.blocked("ann", FAILURE_WINDOW_MS + 1),
            "the window passed"
        );
    }
}
