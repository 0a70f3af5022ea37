//! What the source modules share across recordings: the CPU budget and
//! the web queue, and each live source's endpoint (what its routes talk to).

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tapedeck_core::RecordingId;

use crate::config::Config;
use crate::engine::source::admission;

/// What the source modules share across recordings.
#[derive(Debug)]
pub struct Shared {
    /// The CPU budget and the web queue.
    pub gate: Arc<admission::Gate>,
    endpoints: Mutex<HashMap<RecordingId, Arc<dyn Any + Send + Sync>>>,
    /// Woken when an endpoint is published or removed.
    changed: tokio::sync::Notify,
    /// Each live encode's pictures, for its streams.
    taps: Mutex<HashMap<RecordingId, Arc<tapedeck_media::ffmpeg::tap::Tap>>>,
}

impl Shared {
    /// Empty, with slots as configured.
    pub fn new(config: &Config) -> Self {
        Self {
            gate: admission::Gate::new(config),
            endpoints: Mutex::new(HashMap::new()),
            changed: tokio::sync::Notify::new(),
            taps: Mutex::new(HashMap::new()),
        }
    }

    /// Publishes the live encode's tap of `id` (none: removes it).
    pub fn set_tap(&self, id: RecordingId, tap: Option<Arc<tapedeck_media::ffmpeg::tap::Tap>>) {
        let mut taps = self.taps.lock().unwrap_or_else(|e| e.into_inner());
        match tap {
            Some(t) => taps.insert(id, t),
            None => taps.remove(&id),
        };
    }

    /// The live encode's tap of `id`, while it runs.
    pub fn tap(&self, id: RecordingId) -> Option<Arc<tapedeck_media::ffmpeg::tap::Tap>> {
        let taps = self.taps.lock().unwrap_or_else(|e| e.into_inner());
        taps.get(&id).filter(|t| !t.is_closed()).cloned()
    }

    /// Publishes a source's endpoint (what its HTTP routes talk to) for `id`.
    pub fn register<T: Any + Send + Sync>(&self, id: RecordingId, endpoint: Arc<T>) {
        self.endpoints
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, endpoint);
        self.changed.notify_waiters();
    }

    /// The endpoint of `id`, if its source published one of this type.
    pub fn endpoint<T: Any + Send + Sync>(&self, id: RecordingId) -> Option<Arc<T>> {
        let e = self
            .endpoints
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()?;
        e.downcast::<T>().ok()
    }

    /// Removes the endpoint of `id` (its driver ended).
    pub fn unregister(&self, id: RecordingId) {
        self.endpoints
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        self.changed.notify_waiters();
    }

    /// The endpoint of `id`, waiting up to `timeout` for its driver to
    /// publish it (a socket may connect before the new driver has run).
    pub async fn endpoint_soon<T: Any + Send + Sync>(
        &self,
        id: RecordingId,
        timeout: std::time::Duration,
    ) -> Option<Arc<T>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(e) = self.endpoint::<T>(id) {
                return Some(e);
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return None;
            }
        }
    }
}
