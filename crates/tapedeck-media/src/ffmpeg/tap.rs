//! The live encode's pictures as they leave the splicer, for streams
//! pushed out while recording (RTMP, SRT): each subscriber gets whole
//! access units (Annex B, one picture each, held ticks as skip pictures),
//! from the next keyframe on, through a bounded queue. A subscriber that
//! falls behind is dropped, never waited for: the recording does not slow
//! down for a stream. No subscriber, no cost (nothing is gathered).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};

/// One access unit as bytes.
pub type Unit = Arc<Vec<u8>>;

/// Where the live encode's pictures go besides its file.
#[derive(Default)]
pub struct Tap {
    sinks: Mutex<Vec<Sink>>,
    next: AtomicU64,
    closed: AtomicBool,
    /// The units are Matroska clusters with the page's sound (a web
    /// recording's, `live_mux`), after this stream header.
    header: Mutex<Option<Unit>>,
    matroska: bool,
}

struct Sink {
    id: u64,
    tx: SyncSender<Unit>,
    /// Waiting for a keyframe to begin with.
    keyed: bool,
}

/// A shared [`Tap`], compared by identity (it sits in an `EncodeSpec`).
#[derive(Clone, Default)]
pub struct TapHandle(pub Arc<Tap>);

impl PartialEq for TapHandle {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for TapHandle {}

impl std::fmt::Debug for Tap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tap")
            .field("subscribers", &self.lock().len())
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl std::fmt::Debug for TapHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TapHandle")
    }
}

impl TapHandle {
    /// A tap of Matroska clusters (pictures with the page's sound, from
    /// `live_mux`): a subscriber writes [`Tap::header`] first.
    pub fn matroska() -> Self {
        Self(Arc::new(Tap {
            matroska: true,
            ..Tap::default()
        }))
    }
}

impl Tap {
    /// Whether the units are Matroska clusters (else H.264 Annex B).
    pub fn is_matroska(&self) -> bool {
        self.matroska
    }

    /// The Matroska stream's header, once known (before the first unit).
    pub fn header(&self) -> Option<Unit> {
        self.header
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn set_header(&self, header: Vec<u8>) {
        *self.header.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(header));
    }

    /// A subscriber with room for `depth` pictures; its first is a
    /// keyframe. `None` once the encode has ended.
    pub fn subscribe(&self, depth: usize) -> Option<(u64, Receiver<Unit>)> {
        if self.closed.load(Ordering::Acquire) {
            return None;
        }
        let (tx, rx) = sync_channel(depth.max(1));
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().push(Sink {
            id,
            tx,
            keyed: false,
        });
        Some((id, rx))
    }

    /// Drops subscriber `id` (its receiver then ends).
    pub fn unsubscribe(&self, id: u64) {
        self.lock().retain(|s| s.id != id);
    }

    /// Whether the encode has ended (every subscriber's receiver ended with it).
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Whether anyone listens.
    pub(crate) fn wanted(&self) -> bool {
        !self.lock().is_empty()
    }

    /// Hands one access unit to every subscriber (`key`: it begins with a
    /// keyframe); one whose queue is full is dropped.
    pub(crate) fn publish(&self, unit: Vec<u8>, key: bool) {
        let unit = Arc::new(unit);
        self.lock().retain_mut(|s| {
            if !s.keyed {
                if !key {
                    return true;
                }
                s.keyed = true;
            }
            match s.tx.try_send(unit.clone()) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    tracing::warn!("a stream output fell behind the live encode; it is dropped");
                    false
                }
                Err(TrySendError::Disconnected(_)) => false,
            }
        });
    }

    /// The encode ended: every subscriber's receiver ends.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Sink>> {
        self.sinks.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subscriber_begins_at_a_keyframe_and_is_dropped_when_behind() {
        let tap = Tap::default();
        let (_, rx) = tap.subscribe(2).unwrap();
        tap.publish(vec![1], false);
        tap.publish(vec![2], true);
        tap.publish(vec![3], false);
        assert_eq!(*rx.try_recv().unwrap(), vec![2]);
        assert_eq!(*rx.try_recv().unwrap(), vec![3]);
        // Two queued and not read: the third drops it.
        tap.publish(vec![4], false);
        tap.publish(vec![5], false);
        tap.publish(vec![6], false);
        assert!(!tap.wanted());
        let _ = rx.try_recv();
        let _ = rx.try_recv();
        assert!(rx.recv().is_err(), "its queue ends");
        tap.close();
        assert!(tap.subscribe(1).is_none() && tap.is_closed());
    }
}
