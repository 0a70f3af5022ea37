//! A dead node's work, finished elsewhere. Every node looks, with each
//! heartbeat, for nodes silent longer than `cluster.node_timeout_s`
//! (dead, or left after a drain) that still hold recordings or rooms, and
//! takes a few of them over (`Repo::take_over`: one transaction holding
//! the dead node's row, so the node itself, started again, finds only
//! what was not moved). Each recording taken over:
//!
//! - a live one (frames, a realtime web page, a call) or one processing
//!   is rebuilt from what was shipped (`engine::ship`) and finalized here:
//!   `end_reason: node_lost`, at most one segment short;
//! - a deterministic web recording goes back to the cluster's queue and is
//!   rendered again from its start (the same frames);
//! - an upload takes bytes here from where the store has them (tus HEAD
//!   answers that offset);
//! - a pending one waits for its source here.
//!
//! A room taken over is placed on this node: its next join starts the
//! call here. A recording handed over by a node whose disk filled (marked
//! as this node's, no driver here) is taken the same way.

use std::sync::Arc;
use std::time::Duration;

use tapedeck_core::recording::{Recording, SourceSpec, Status};
use tapedeck_core::web::WebMode;

use crate::engine::cluster::Node;
use crate::engine::ship::RestoreError;
use crate::engine::source;
use crate::engine::supervisor::{Start, Supervisor};
use crate::now_ms;

/// Recordings one node takes over from one dead node per round.
const PER_ROUND: i64 = 8;

/// Looks for dead nodes' work every heartbeat, until the process ends.
pub fn spawn(sup: Supervisor, node: Arc<Node>) {
    if !node.clustered() {
        return;
    }
    let every = Duration::from_secs(sup.services.config.cluster.heartbeat_s.max(1));
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            if node.draining() {
                continue;
            }
            while round(&sup, &node).await {}
        }
    });
}

/// Recordings marked as this node's that no driver here holds: handed
/// over by a node whose disk filled (`Driver::hand_over`), or left by a
/// driver that died. Taken as a dead node's are.
async fn orphans(sup: &Supervisor, node: &Node) -> bool {
    let mine = match sup.services.repo.live_on(&node.id).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "listing this node's recordings");
            return false;
        }
    };
    let mut any = false;
    for rec in mine.into_iter().filter(|r| !sup.drives(r.id)) {
        tracing::warn!(id = %rec.id, "a recording marked as this node's has no driver: taking it over");
        any |= take(sup, rec).await;
    }
    any
}

/// Recordings this node drives that the database says another node took
/// over (this node was cut off from it, or stalled, past `node_timeout_s`):
/// their drivers let go, so that a camera's socket here is closed rather
/// than taking pictures no file will hold, and nothing here overwrites
/// what the taker wrote (`Repo::update_held` refuses that too).
async fn let_go_of_taken(sup: &Supervisor, node: &Node) {
    let s = &sup.services;
    let Ok(mine) = s.repo.live_on(&node.id).await else {
        return;
    };
    let mine: std::collections::HashSet<_> = mine.iter().map(|r| r.id).collect();
    for id in sup.driven().into_iter().filter(|id| !mine.contains(id)) {
        let Ok(Some(rec)) = s.repo.get(id).await else {
            continue;
        };
        if rec.node.as_deref().is_some_and(|n| n != node.id) {
            tracing::warn!(%id, holder = ?rec.node, "a recording driven here is another node's now");
            sup.fence(id).await;
        }
    }
}

/// One look; whether anything was taken (then look again at once).
async fn round(sup: &Supervisor, node: &Node) -> bool {
    let s = &sup.services;
    let_go_of_taken(sup, node).await;
    let handed = orphans(sup, node).await;
    let stale_before = now_ms() - node.timeout_ms();
    let nodes = match s.repo.nodes().await {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "listing the nodes");
            return false;
        }
    };
    let mut any = handed;
    for n in nodes
        .iter()
        .filter(|n| n.heartbeat_at < stale_before && n.id != node.id)
    {
        let d = &n.id;
        // A node whose heartbeat is late but which answers is alive (a
        // slow database, a loaded machine): its work stays with it.
        if n.heartbeat_at > 0 && answers(&n.internal_url).await {
            tracing::warn!(node = %d, "a node's heartbeat is late but it answers; not taken over");
            continue;
        }
        let taken = match s.repo.take_over(d, &node.id, stale_before, PER_ROUND).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, dead = %d, "taking over a dead node's work");
                continue;
            }
        };
        for room in &taken.rooms {
            tracing::warn!(room = %room.id, dead = %d, "a dead node's room is placed here");
        }
        for rec in taken.recordings {
            tracing::warn!(id = %rec.id, dead = %d, status = rec.status.as_str(), "taking over a dead node's recording");
            any |= take(sup, rec).await;
        }
    }
    any
}

/// Whether the node at `internal_url` answers `/healthz` within a second.
async fn answers(internal_url: &str) -> bool {
    let url = format!("{}/healthz", internal_url.trim_end_matches('/'));
    let client = reqwest::Client::new();
    matches!(
        client.get(url).timeout(Duration::from_secs(1)).send().await,
        Ok(r) if r.status().is_success()
    )
}

/// Whether `rec` is rendered again from its start rather than finalized:
/// a deterministic web recording (the same frames come out).
fn renders_again(rec: &Recording) -> bool {
    matches!(&rec.source, SourceSpec::Web(w) if w.mode == WebMode::Deterministic)
        && rec.status != Status::Processing
}

/// Takes `rec` over here; whether it was (not when the store that holds
/// what was shipped cannot be read now: it stays this node's, taken again
/// at the next heartbeat).
async fn take(sup: &Supervisor, mut rec: Recording) -> bool {
    let s = &sup.services;
    if renders_again(&rec) {
        s.metrics.taken_over(rec.source.kind().as_str());
        // Rendered again from nothing: what the dead node shipped of it
        // is not this run's.
        crate::engine::ship::forget(s, rec.id).await;
        rec.status = Status::Pending;
        rec.node = None;
        rec.stats = Default::default();
        let requeued = async {
            s.repo.update(&rec).await?;
            crate::engine::dispatch::requeue(s, &rec).await
        }
        .await;
        if let Err(e) = requeued {
            tracing::error!(id = %rec.id, error = %e, "a dead node's web recording was not queued again");
        }
        return true;
    }
    if s.config.cluster.ships() {
        match crate::engine::ship::restore(s, rec.id).await {
            Ok(Some(m)) => {
                tracing::info!(id = %rec.id, packs = m.packs, bytes = m.bytes, "rebuilt from what was shipped")
            }
            Ok(None) => tracing::warn!(id = %rec.id, "nothing of it was shipped"),
            Err(e @ RestoreError::Store(_)) => {
                // It stays this node's, with no driver: taken again at the
                // next heartbeat (`orphans`) until the store answers. Its
                // media is in the store; finishing without it would lose it.
                tracing::warn!(id = %rec.id, error = %e, "the store holds what was shipped and cannot be read now; trying again at the next heartbeat");
                return false;
            }
            Err(e @ RestoreError::Damaged(_)) => {
                tracing::error!(id = %rec.id, error = %e, "rebuilding from what was shipped")
            }
        }
    }
    s.metrics.taken_over(rec.source.kind().as_str());
    let start = match rec.status {
        Status::Pending => match s.sources.gate.readmit(&rec) {
            source::Ticket::Now(a) => Start::Open(a),
            source::Ticket::Queued(turn) => Start::Queued(turn),
        },
        // An upload takes bytes here from where the store had them.
        Status::Recording | Status::Paused if source::resumes(&rec) => {
            Start::Open(Default::default())
        }
        _ => Start::TakeOver,
    };
    sup.spawn_driver(rec, start);
    true
}
