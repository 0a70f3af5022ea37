//! Events across a cluster: each node sends its events to the others with
//! PostgreSQL `NOTIFY` and relays theirs to its own `/v1/events`
//! listeners, so a listener connected to any node sees every node's
//! events. An event too large for a signal (a recording with much
//! metadata) is sent as its recording's id, read back by the receivers.
//!
//! A node that loses its database connection misses the signals sent
//! meanwhile (listeners are live; the recordings' state is in the
//! database).

use serde::{Deserialize, Serialize};
use tapedeck_core::RecordingId;
use tapedeck_core::event::Event;
use tapedeck_store::outbox::SIGNAL_MAX_BYTES;
use tapedeck_store::repo::Repo;
use tokio::sync::mpsc;

use crate::engine::events::EventBus;

/// The channel events travel on.
pub const EVENTS: &str = "tapedeck_events";

/// What one signal carries.
#[derive(Debug, Serialize, Deserialize)]
struct Signal {
    node: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    event: Option<Event>,
    /// Instead of the event when it is too large: what to read back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    large: Option<(String, String, RecordingId)>,
}

/// The payload of `event` from `node`.
fn payload(node: &str, event: Event) -> Option<String> {
    let whole = Signal {
        node: node.into(),
        event: Some(event),
        large: None,
    };
    let text = serde_json::to_string(&whole).ok()?;
    if text.len() <= SIGNAL_MAX_BYTES {
        return Some(text);
    }
    let event = whole.event?;
    serde_json::to_string(&Signal {
        node: node.into(),
        event: None,
        large: Some((event.kind, event.at, event.recording.id)),
    })
    .ok()
}

/// Sends this node's events (`rx`) to the others, and relays theirs to
/// `bus`'s listeners, until the process ends.
pub fn spawn(repo: Repo, node: String, mut rx: mpsc::UnboundedReceiver<Event>, bus: EventBus) {
    let (r, n) = (repo.clone(), node.clone());
    tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            let Some(text) = payload(&n, event) else {
                continue;
            };
            if let Err(e) = r.signal(EVENTS, &text).await {
                tracing::warn!(error = %e, "an event was not sent to the other nodes");
            }
        }
    });
    tokio::spawn(async move {
        loop {
            match repo.listen(&[EVENTS]).await {
                Ok(Some(mut l)) => loop {
                    match l.recv().await {
                        Ok((_, text)) => relay(&repo, &node, &text, &bus).await,
                        Err(e) => {
                            tracing::warn!(error = %e, "listening to the other nodes' events");
                            break;
                        }
                    }
                },
                Ok(None) => return,
                Err(e) => tracing::warn!(error = %e, "cannot listen to the other nodes' events"),
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    });
}

async fn relay(repo: &Repo, me: &str, text: &str, bus: &EventBus) {
    let Ok(s) = serde_json::from_str::<Signal>(text) else {
        tracing::warn!("a signal from another node could not be read");
        return;
    };
    if s.node == me {
        return;
    }
    if let Some(e) = s.event {
        bus.relay(e);
    } else if let Some((kind, at, id)) = s.large
        && let Ok(Some(recording)) = repo.get(id).await
    {
        bus.relay(Event {
            kind,
            at,
            recording,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_event_travels_as_its_id() {
        let mut rec = tapedeck_core::recording::Recording::example();
        let small = Event {
            kind: "recording.started".into(),
            at: "2026-01-01T00:00:00Z".into(),
            recording: rec.clone(),
        };
        let text = payload("n1", small.clone()).unwrap();
        let back: Signal = serde_json::from_str(&text).unwrap();
        assert_eq!(back.event, Some(small));
        rec.title = Some("x".repeat(SIGNAL_MAX_BYTES));
        let large = Event {
            kind: "recording.completed".into(),
            at: "2026-01-01T00:00:01Z".into(),
            recording: rec.clone(),
        };
        let text = payload("n1", large).unwrap();
        assert!(text.len() < 300, "{text}");
        let back: Signal = serde_json::from_str(&text).unwrap();
        assert_eq!(back.large.map(|l| l.2), Some(rec.id));
    }
}
