//! Recovery at start: every recording the last run left active gets a
//! driver again. Pending ones wait for their source as before (web ones
//! queue for their turn again, in the order they were made), and so do
//! uploads that were taking bytes (their clients resume); recording,
//! paused and processing ones are finalized from what was spooled, each on
//! its own (one that cannot be rebuilt fails with a reason; the server
//! starts regardless). A node of a cluster recovers the recordings it
//! held, not the other nodes'.

use tapedeck_core::recording::Status;

use crate::engine::source;
use crate::engine::supervisor::{Start, Supervisor};
use tapedeck_core::Problem;

/// Restarts drivers for what a crash or a stop left active.
pub async fn recover(sup: &Supervisor) -> Result<(), Problem> {
    let s = &sup.services;
    let stuck = s
        .repo
        .in_statuses(&[
            Status::Pending,
            Status::Recording,
            Status::Paused,
            Status::Processing,
        ])
        .await?;
    // A node of a cluster recovers its own recordings only: the others'
    // drivers run on their nodes.
    let mut stuck: Vec<_> = match s.config.cluster.enabled {
        true => stuck
            .into_iter()
            .filter(|r| r.node.as_deref() == Some(s.config.cluster.node_id.as_str()))
            .collect(),
        false => stuck,
    };
    // The queue is rebuilt in the order the recordings were made.
    stuck.sort_by_key(|r| (r.created_at, r.id.to_string()));
    for rec in stuck {
        let start = if rec.status == Status::Pending {
            // A restart does not refuse what was admitted: a live source
            // starts; a web recording waits its turn again, as it did.
            match s.sources.gate.readmit(&rec) {
                source::Ticket::Now(a) => Start::Open(a),
                source::Ticket::Queued(turn) => Start::Queued(turn),
            }
        } else if rec.status != Status::Processing && source::resumes(&rec) {
            // An upload takes bytes again where it was.
            Start::Open(Default::default())
        } else {
            Start::Recover
        };
        sup.spawn_driver(rec, start);
    }
    Ok(())
}
