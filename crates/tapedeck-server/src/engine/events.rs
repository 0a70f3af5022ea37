//! The event bus: every status change goes to `/v1/events` listeners and to webhooks;
//! in a cluster, to the other nodes' listeners too (`engine::signals`).

use tapedeck_core::event::Event;
use tapedeck_core::recording::Recording;
use tokio::sync::{broadcast, mpsc};

/// Fans events out to live listeners and the webhook sender.
#[derive(Clone, Debug)]
pub struct EventBus {
    live: broadcast::Sender<Event>,
    hooks: Option<mpsc::UnboundedSender<Event>>,
    /// To the other nodes of a cluster.
    nodes: Option<mpsc::UnboundedSender<Event>>,
}

impl EventBus {
    /// A bus; `hooks` receives every event for webhook delivery.
    pub fn new(hooks: Option<mpsc::UnboundedSender<Event>>) -> Self {
        let (live, _) = broadcast::channel(1024);
        Self {
            live,
            hooks,
            nodes: None,
        }
    }

    /// This bus, its events also sent to `nodes` (the other nodes).
    pub fn with_nodes(mut self, nodes: mpsc::UnboundedSender<Event>) -> Self {
        self.nodes = Some(nodes);
        self
    }

    /// An event another node emitted: to this node's listeners only (its
    /// webhooks went out from the node that emitted it).
    pub fn relay(&self, event: Event) {
        let _ = self.live.send(event);
    }

    /// Publishes `kind` for `recording` at `now_ms`.
    pub fn emit(&self, kind: &str, recording: &Recording, now_ms: i64) {
        let event = Event {
            kind: kind.to_string(),
            at: tapedeck_core::recording::time_ms::format(now_ms),
            recording: recording.clone(),
        };
        tracing::info!(id = %recording.id, event = kind, status = recording.status.as_str(), "event");
        let _ = self.live.send(event.clone());
        if let Some(n) = &self.nodes {
            let _ = n.send(event.clone());
        }
        if let Some(h) = &self.hooks {
            let _ = h.send(event);
        }
    }

    /// A receiver of every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.live.subscribe()
    }
}
