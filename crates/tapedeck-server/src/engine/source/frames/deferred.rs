//! When and where a camera accepted beyond the budget is encoded.
//!
//! While it records, it is promoted as soon as this node's budget has room
//! for its encode and nothing waits before it: an encoder follows its
//! spool from the first picture (`EncodingSink::promote`), and stop only
//! waits for it to reach the end. Otherwise it is encoded after stop: on a
//! server alone in the fair queue beside web recordings
//! (`queue_position`); in a cluster as a job of the shared queue
//! (`engine::offload`, kind `encode`) that the first node with room
//! claims, this one included, the spool carried through the bucket.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tapedeck_core::recording::Recording;
use tapedeck_media::sink::encoding::{Counters, Finished, PipelineError, SpoolEncoder};

use super::Endpoint;
use crate::engine::offload;
use crate::engine::services::Services;
use crate::engine::source::admission::Admission;
use crate::engine::source::{Ticket, encoding};

/// How often a deferred camera looks for room to begin its encode.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// Watches for room to begin `ep`'s encode while it records.
pub(super) fn promote_when_room(ep: &Arc<Endpoint>) {
    let weak = Arc::downgrade(ep);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(LOOK_EVERY).await;
            let Some(ep) = weak.upgrade() else {
                return;
            };
            // Under the run's lock: a close waits, or has already ended it.
            let run = ep.run.lock().await;
            let Some(r) = run.as_ref().filter(|_| !ep.closed.load(Ordering::Relaxed)) else {
                return;
            };
            let Some(a) = ep.services.sources.gate.encode_now(&ep.rec) else {
                continue;
            };
            *ep.encode.lock().unwrap_or_else(|e| e.into_inner()) = Some(a);
            r.promote().await;
            tracing::info!(id = %ep.rec.id, "a deferred camera's encode begins while it records");
            return;
        }
    });
}

/// At stop: the admission `ep`'s encode runs under (held since it was
/// promoted), or the encoder of its spool: one that waits for its turn in
/// this node's queue, or one that runs it on another node. Either encoder
/// runs on the sink's thread after the sink took its last picture.
pub(super) fn encode_turn(ep: &Endpoint) -> (Option<Admission>, Option<SpoolEncoder>) {
    if !ep.deferred {
        return (None, None);
    }
    let promoted = ep.encode.lock().unwrap_or_else(|e| e.into_inner()).take();
    if promoted.is_some() {
        return (promoted, None);
    }
    let (services, rec) = (ep.services.clone(), ep.rec.clone());
    if services.config.cluster.enabled {
        return (None, Some(elsewhere(services, rec)));
    }
    // Queued now, so that its place shows while it waits.
    let ticket = services.sources.gate.queue_encode(&rec);
    let handle = tokio::runtime::Handle::current();
    let here: SpoolEncoder = Box::new(move |spool: &Path| {
        let _turn = match ticket {
            Ticket::Now(a) => Some(a),
            Ticket::Queued(turn) => handle.block_on(turn).ok(),
        };
        let work = spool.parent().unwrap_or(Path::new("."));
        encoding::encode_from_spool(&services, &rec, work)
    });
    (None, Some(here))
}

/// Encodes a spool as a job of the cluster's queue, on the sink's thread
/// (not a runtime thread: it blocks until the job is done).
fn elsewhere(services: Arc<Services>, rec: Recording) -> SpoolEncoder {
    let handle = tokio::runtime::Handle::current();
    Box::new(move |spool: &Path| {
        let spec = encoding::encode_spec(&services, &rec);
        let out = spool.with_file_name(format!("recovered.{}", spec.format.extension()));
        let work = offload::Work {
            kind: "encode",
            rec: &rec,
            cost: services.sources.gate.encode_cost(),
            inputs: vec![offload::Input {
                key: format!("recordings/{}/encode-in.spool", rec.id),
                local: spool.to_path_buf(),
                temporary: true,
            }],
            doc: serde_json::Value::Null,
            ext: spec.format.extension(),
        };
        let failed = |why: String| PipelineError::Elsewhere(format!("encoding the spool: {why}"));
        let report = handle
            .block_on(offload::run_anywhere(&services, work, &out))
            .map_err(failed)?
            .ok_or_else(|| failed("the node that ran it sent no counts".into()))?;
        let counters: Counters = serde_json::from_value(report["counters"].clone())
            .map_err(|e| failed(format!("its counts: {e}")))?;
        Ok(Finished {
            output: out,
            counters,
            cpu_s: report["cpu_s"].as_f64().unwrap_or(0.0),
            rebuilt_from_spool: true,
        })
    })
}
