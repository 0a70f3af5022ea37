//! A room's `idle_stop_s`: when a call has been empty long enough for
//! its recording to stop by itself (`end_reason: idle`). Sans-IO: told
//! whether anyone is in the call and when, it says the moment.

use std::time::{Duration, Instant};

/// Watches one recording's call for emptiness.
#[derive(Debug)]
pub struct EmptyCall {
    after: Duration,
    since: Option<Instant>,
    said: bool,
}

impl EmptyCall {
    /// For a room whose recordings stop after `idle_stop_s` of an empty
    /// call (None: they never do).
    pub fn new(idle_stop_s: Option<u32>) -> Option<Self> {
        idle_stop_s.map(|s| Self {
            after: Duration::from_secs(u64::from(s)),
            since: None,
            said: false,
        })
    }

    /// Whether anyone is in the call at `now`: true once, the first time
    /// it has then been empty for the whole `idle_stop_s`.
    pub fn observe(&mut self, anyone: bool, now: Instant) -> bool {
        if anyone {
            self.since = None;
            return false;
        }
        let since = *self.since.get_or_insert(now);
        if self.said || now.saturating_duration_since(since) < self.after {
            return false;
        }
        self.said = true;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_empty_for_the_whole_wait_stops_once_and_a_return_restarts_the_wait() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut e = EmptyCall::new(Some(30)).unwrap();
        assert!(!e.observe(true, at(0)));
        assert!(!e.observe(false, at(10)), "empty from 10 s");
        assert!(!e.observe(false, at(39)));
        // Someone came back at 39 s: the wait starts over.
        assert!(!e.observe(true, at(39)));
        assert!(!e.observe(false, at(50)));
        assert!(!e.observe(false, at(79)));
        assert!(e.observe(false, at(80)), "30 s empty since 50 s");
        assert!(!e.observe(false, at(90)), "said once");
        assert!(EmptyCall::new(None).is_none());
    }
}
