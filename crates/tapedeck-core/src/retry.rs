//! When to try storing a finished recording again after the store refused
//! it: 1 s, then twice as long each time up to 5 minutes, for as long as
//! `storage.retry_for_s` allows. Sans-IO: the driver passes the time.

/// The storage retry schedule of one recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageRetry {
    give_up_ms: i64,
    delay_ms: i64,
    attempt: u32,
}

/// The first wait.
const FIRST_MS: i64 = 1_000;
/// The longest wait.
const MAX_MS: i64 = 300_000;

/// Another try after a wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Failed attempts so far (1 after the first).
    pub attempt: u32,
    /// How long to wait before the next, ms.
    pub wait_ms: i64,
}

impl StorageRetry {
    /// A schedule begun at `now_ms` that gives up `retry_for_ms` later.
    pub fn new(now_ms: i64, retry_for_ms: i64) -> Self {
        Self {
            give_up_ms: now_ms.saturating_add(retry_for_ms),
            delay_ms: FIRST_MS,
            attempt: 0,
        }
    }

    /// An attempt failed at `now_ms`: the wait before the next, or None
    /// when the next would come after the schedule gives up.
    pub fn failed(&mut self, now_ms: i64) -> Option<Retry> {
        if now_ms.saturating_add(self.delay_ms) >= self.give_up_ms {
            return None;
        }
        self.attempt += 1;
        let wait_ms = self.delay_ms;
        self.delay_ms = (self.delay_ms * 2).min(MAX_MS);
        Some(Retry {
            attempt: self.attempt,
            wait_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_five_minutes_until_the_time_is_up() {
        let mut now = 0;
        let mut r = StorageRetry::new(now, 3_600_000);
        let mut waits = vec![];
        while let Some(next) = r.failed(now) {
            assert_eq!(next.attempt as usize, waits.len() + 1);
            waits.push(next.wait_ms);
            // Each attempt itself takes 2 s.
            now += next.wait_ms + 2_000;
        }
        assert_eq!(
            &waits[..10],
            [
                1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000, 300_000
            ]
        );
        assert!(waits[10..].iter().all(|w| *w == 300_000));
        // The last wait ends before the hour does; one more would not.
        assert!(now <= 3_600_000 + 2_000, "{now}");
        assert!(now + 300_000 >= 3_600_000, "{now}");
    }

    #[test]
    fn no_retry_when_the_time_is_shorter_than_the_first_wait() {
        assert_eq!(StorageRetry::new(5, 1_000).failed(5), None);
        assert_eq!(StorageRetry::new(5, 0).failed(5), None);
        let mut r = StorageRetry::new(0, 1_001);
        assert_eq!(
            r.failed(0),
            Some(Retry {
                attempt: 1,
                wait_ms: 1_000
            })
        );
        assert_eq!(r.failed(1_000), None);
    }
}
