//! A cluster's web recordings, and the post-processing handed to it
//! (`engine::offload`: calls' grids, uploads' transcodes), wait in the
//! shared queue (`store::jobs`), not in one node's: each is a job with its estimated CPU cost, and each
//! node claims the next one in the fair order whose cost fits its free
//! budget, then runs it as if admitted at once. Its lease is renewed with
//! every heartbeat; a lapsed one is queued again (`Node::spawn`). Nodes
//! are woken by a signal (`tapedeck_jobs`) when a job is queued or one
//! ends (NOTIFY), and look again every 2 s anyway.
//!
//! A server alone keeps its queue in memory (`source::admission::Gate`).

use std::sync::Arc;
use std::time::Duration;

use tapedeck_core::admission::estimate;
use tapedeck_core::recording::{Recording, Status};
use tapedeck_core::{Code, Problem, RecordingId};
use tapedeck_store::jobs::Job;

use crate::engine::cluster::Node;
use crate::engine::services::Services;
use crate::engine::supervisor::{Start, Supervisor};
use crate::now_ms;

/// The channel that says the queue changed.
pub const JOBS: &str = "tapedeck_jobs";

/// Whether `rec` waits in the cluster's queue rather than this node's.
pub fn queued_in_cluster(s: &Services, rec: &Recording) -> bool {
    s.config.cluster.enabled && rec.source.kind().traits().queues
}

fn job_of(rec: &Recording) -> Job {
    Job {
        id: rec.id.to_string(),
        seq: rec.created_at,
        owner: rec.owner.clone(),
        kind: rec.source.kind().as_str().into(),
        cost: i64::from(estimate(&rec.source, &rec.video)),
        doc: String::new(),
    }
}

/// Queues `rec` (stored, pending) as a job.
pub async fn enqueue(s: &Services, rec: &Recording) -> Result<(), Problem> {
    s.repo.enqueue(&job_of(rec)).await?;
    wake_all(s).await;
    Ok(())
}

/// Queues `rec` (stored, pending again: its node died while it rendered)
/// to run from its start, in its first place in the order.
pub async fn requeue(s: &Services, rec: &Recording) -> Result<(), Problem> {
    s.repo.requeue_job(&job_of(rec)).await?;
    wake_all(s).await;
    Ok(())
}

/// Tells every node the queue changed.
pub async fn wake_all(s: &Services) {
    if let Err(e) = s.repo.signal(JOBS, "").await {
        tracing::warn!(error = %e, "the other nodes were not told the queue changed");
    }
}

/// Where `rec` waits in the cluster's queue, if it does.
pub async fn position(s: &Services, id: RecordingId) -> Option<u32> {
    job_position(s, &id.to_string()).await
}

/// Where job `job` waits in the cluster's queue, if it does.
pub async fn job_position(s: &Services, job: &str) -> Option<u32> {
    match s.repo.job_position(job).await {
        Ok(p) => p.map(|p| p as u32),
        Err(e) => {
            tracing::warn!(error = %e, "reading a queue position");
            None
        }
    }
}

/// Stop or cancel of a recording still in the cluster's queue: out of the
/// queue, and the action applied where no driver holds it. `Ok(None)` when
/// a node claimed it meanwhile (it now has a driver there).
pub async fn withdraw(
    sup: &Supervisor,
    rec: Recording,
    action: tapedeck_core::recording::Action,
) -> Result<Option<Recording>, Problem> {
    let s = &sup.services;
    if !s.repo.withdraw_job(&rec.id.to_string()).await? {
        return Ok(None);
    }
    crate::engine::driver::Driver::act_alone(s.clone(), rec, action)
        .await
        .map(Some)
}

/// The problem when a recording was claimed while it was being stopped.
pub fn moving() -> Problem {
    Problem::new(
        Code::RecordingMoving,
        "the recording was just taken from the queue by a node to start; try again in a moment",
    )
}

/// Claims and starts the cluster's queued recordings while this node has
/// room, until the process ends.
pub fn spawn(sup: Supervisor, node: Arc<Node>) {
    if !node.clustered() {
        return;
    }
    let wake = Arc::new(tokio::sync::Notify::new());
    let (repo, w) = (sup.services.repo.clone(), wake.clone());
    tokio::spawn(async move {
        loop {
            match repo.listen(&[JOBS]).await {
                Ok(Some(mut l)) => {
                    while l.recv().await.is_ok() {
                        w.notify_one();
                    }
                }
                Ok(None) => return,
                Err(e) => tracing::warn!(error = %e, "cannot listen for queued jobs"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    tokio::spawn(async move {
        loop {
            while !node.draining() && claim_one(&sup, &node).await {}
            let _ = tokio::time::timeout(Duration::from_secs(2), wake.notified()).await;
        }
    });
}

/// Claims one job that fits and starts it; whether one was started.
async fn claim_one(sup: &Supervisor, node: &Node) -> bool {
    let s = &sup.services;
    let gate = &s.sources.gate;
    let Some(free) = gate.free_for_work() else {
        return false;
    };
    let browser_free = gate.free_for_web().is_some();
    let now = now_ms();
    let job = match s
        .repo
        .claim_fitting(
            &node.id,
            i64::from(free),
            now,
            now + node.timeout_ms(),
            browser_free,
        )
        .await
    {
        Ok(Some(j)) => j,
        Ok(None) => return false,
        Err(e) => {
            tracing::warn!(error = %e, "claiming a job");
            return false;
        }
    };
    if job.kind != "web" {
        return start_offloaded(sup, node, job);
    }
    let rec = match job.id.parse().ok() {
        Some(id) => s.repo.get(id).await.ok().flatten(),
        None => None,
    };
    let rec = match rec {
        Some(r) if r.status == Status::Pending => Some(r),
        // Begun by a node that died, its lease lapsed before the node was
        // taken over (`engine::takeover` queues it again, pending).
        Some(r) if !r.status.is_terminal() => {
            let _ = s.repo.hand_back(&job.id, &node.id).await;
            return false;
        }
        _ => None,
    };
    let Some(mut rec) = rec else {
        tracing::warn!(job = %job.id, "a claimed job has no recording left to run; dropped");
        let _ = s.repo.finish_job(&job.id).await;
        return true;
    };
    let Some(admission) = gate.admit_claimed(&rec) else {
        // Something else took the room since the claim.
        let _ = s.repo.hand_back(&job.id, &node.id).await;
        return false;
    };
    rec.node = Some(node.id.clone());
    if let Err(e) = s.repo.update(&rec).await {
        tracing::warn!(error = %e, id = %rec.id, "a claimed recording could not be marked");
        let _ = s.repo.hand_back(&job.id, &node.id).await;
        return false;
    }
    tracing::info!(id = %rec.id, node = %node.id, "claimed from the cluster's queue");
    s.metrics.job_run(&job.kind);
    sup.spawn_driver(rec, Start::Open(admission));
    true
}

/// Runs a claimed piece of post-processing here (`engine::offload`), its
/// cost reserved meanwhile; the job is done (removed) or failed (kept,
/// saying why) for the node that waits on it.
fn start_offloaded(sup: &Supervisor, node: &Node, job: Job) -> bool {
    let s = sup.services.clone();
    let cost = u32::try_from(job.cost).unwrap_or(u32::MAX);
    let Some(admission) = s.sources.gate.admit_work(cost) else {
        let (repo, id, node) = (s.repo.clone(), job.id.clone(), node.id.clone());
        tokio::spawn(async move { repo.hand_back(&id, &node).await });
        return false;
    };
    tracing::info!(job = %job.id, node = %node.id, "running a job for the cluster");
    s.metrics.job_run(&job.kind);
    tokio::spawn(async move {
        let done = crate::engine::offload::run_claimed(&s, &job).await;
        drop(admission);
        let kept = match &done {
            Ok(()) => s.repo.finish_job(&job.id).await.map(|_| ()),
            Err(why) => {
                tracing::warn!(job = %job.id, error = %why, "a job failed");
                s.repo.fail_job(&job.id, why).await
            }
        };
        if let Err(e) = kept {
            tracing::warn!(error = %e, job = %job.id, "a job's end was not saved");
        }
        wake_all(&s).await;
    });
    true
}
