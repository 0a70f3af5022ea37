//! This server as one node of a cluster (`[cluster]`): when it starts it
//! claims its `node_id` in the shared database (refused while another
//! running process holds it), then heartbeats its load every
//! `cluster.heartbeat_s`; a node silent for `cluster.node_timeout_s` is
//! dead. One server alone is a node too, of a cluster of one, not written
//! anywhere.

use std::sync::Arc;
use std::time::Duration;

use tapedeck_core::cluster::{NodeCpu, NodeInfo, alive};
use tapedeck_store::repo::{Repo, RepoError};

use crate::config::Config;
use crate::engine::metrics::CpuUse;
use crate::engine::supervisor::Supervisor;

/// This node.
#[derive(Debug)]
pub struct Node {
    /// `cluster.node_id`, or `local` for a server alone.
    pub id: String,
    /// This run of the process: a node id is held by one run at a time.
    instance: String,
    started_at: i64,
    internal_url: String,
    public_url: String,
    /// Whether it is a node of a cluster (writes its heartbeat).
    clustered: bool,
    every: Duration,
    timeout_ms: i64,
    cpu: CpuUse,
    /// Stopping: takes no new work (SIGTERM).
    draining: std::sync::atomic::AtomicBool,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Node {
    /// This server as configured, before it joins.
    pub fn new(config: &Config) -> Self {
        let c = &config.cluster;
        let public_url = c
            .public_url
            .clone()
            .or_else(|| config.server.public_url.clone())
            .unwrap_or_else(|| format!("http://{}", config.server.listen));
        Self {
            id: if c.enabled {
                c.node_id.clone()
            } else {
                "local".into()
            },
            instance: format!("{:032x}", rand::random::<u128>()),
            started_at: now_ms(),
            internal_url: if c.enabled {
                c.internal_url.clone()
            } else {
                public_url.clone()
            },
            public_url,
            clustered: c.enabled,
            every: Duration::from_secs(c.heartbeat_s.max(1)),
            timeout_ms: (c.node_timeout_s as i64).saturating_mul(1000),
            cpu: CpuUse::default(),
            draining: false.into(),
        }
    }

    /// Whether this server is a node of a cluster.
    pub fn clustered(&self) -> bool {
        self.clustered
    }

    /// Whether this node is stopping and takes no new work.
    pub fn draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// From now on this node takes no new work.
    pub fn drain(&self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// How long a silent node counts as alive, ms.
    pub fn timeout_ms(&self) -> i64 {
        self.timeout_ms
    }

    /// Claims this node's id in the shared database (a server alone has
    /// nothing to claim).
    pub async fn join(&self, repo: &Repo) -> Result<(), String> {
        if !self.clustered {
            return Ok(());
        }
        let info = self.info(NodeCpu::default(), (0, 0));
        let claimed = repo
            .claim_node(&info, &self.instance, self.timeout_ms)
            .await
            .map_err(|e| format!("database: {e}"))?;
        claimed.map_err(|held| {
            format!(
                "cluster.node_id `{}` is held by a running node (its last heartbeat {:.1} s ago): give every node its own cluster.node_id, or start this one {} s after the other stopped",
                self.id,
                held.heartbeat_age_ms as f64 / 1000.0,
                self.timeout_ms / 1000
            )
        })
    }

    /// What this node says of itself now.
    fn info(&self, cpu: NodeCpu, (live, jobs): (u32, u32)) -> NodeInfo {
        NodeInfo {
            id: self.id.clone(),
            internal_url: self.internal_url.clone(),
            public_url: self.public_url.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
            started_at: self.started_at,
            heartbeat_at: now_ms(),
            cpu,
            live_sessions: live,
            jobs_held: jobs,
            draining: self.draining(),
            alive: true,
        }
    }

    /// The cores this node has left to reserve now.
    pub fn free_cores(&self, supervisor: &Supervisor) -> f64 {
        let g = supervisor.services.sources.gate.figures();
        f64::from(g.total.saturating_sub(g.reserved)) / 1000.0
    }

    /// This node's figures now (CPU used since the last heartbeat).
    pub fn current(&self, supervisor: &Supervisor) -> NodeInfo {
        let g = supervisor.services.sources.gate.figures();
        let cpu = NodeCpu {
            budget: f64::from(g.total) / 1000.0,
            reserved: f64::from(g.reserved) / 1000.0,
            used: self.cpu.sample().unwrap_or(0.0),
        };
        self.info(cpu, supervisor.held())
    }

    /// Every node of the cluster as last heard of, `alive` set; a server
    /// alone is the one node.
    pub async fn all(&self, supervisor: &Supervisor) -> Result<Vec<NodeInfo>, RepoError> {
        if !self.clustered {
            return Ok(vec![self.current(supervisor)]);
        }
        let now = now_ms();
        let mut nodes = supervisor.services.repo.nodes().await?;
        for n in &mut nodes {
            n.alive = alive(n.heartbeat_at, now, self.timeout_ms);
        }
        Ok(nodes)
    }

    /// Renews the leases of the jobs this node holds, and queues again
    /// those whose node stopped renewing them (any node may; it is one
    /// statement).
    async fn keep_jobs(&self, supervisor: &Supervisor) {
        let repo = &supervisor.services.repo;
        let now = now_ms();
        if let Err(e) = repo.renew_leases(&self.id, now + self.timeout_ms).await {
            tracing::warn!(error = %e, "renewing job leases");
        }
        match repo.take_back_lapsed(now).await {
            Ok(back) if !back.is_empty() => {
                tracing::warn!(jobs = ?back, "jobs whose node stopped were queued again");
                crate::engine::dispatch::wake_all(&supervisor.services).await;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "taking back lapsed jobs"),
        }
    }

    /// One heartbeat now; false if another process holds the id.
    async fn beat(&self, supervisor: &Supervisor) -> bool {
        let info = self.current(supervisor);
        match supervisor
            .services
            .repo
            .heartbeat_node(&info, &self.instance)
            .await
        {
            Ok(true) => {
                self.keep_jobs(supervisor).await;
                true
            }
            Ok(false) => {
                tracing::error!(
                    node = %self.id,
                    "another process holds this cluster.node_id now: this node was thought dead"
                );
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, "heartbeat failed");
                true
            }
        }
    }

    /// Heartbeats until the process ends. A heartbeat the database
    /// refuses (another run took the id over, this one being thought
    /// dead) is logged; the next ones try again.
    pub fn spawn(self: Arc<Self>, supervisor: Supervisor) {
        if !self.clustered {
            return;
        }
        tokio::spawn(async move {
            // The first at once: the claim said nothing of the budget.
            loop {
                self.beat(&supervisor).await;
                tokio::time::sleep(self.every).await;
            }
        });
    }

    /// SIGTERM: takes no new work, says so at once, and waits up to
    /// `cluster.drain_s` for its live sessions and running jobs to end.
    pub async fn drain_for(&self, supervisor: &Supervisor, drain: Duration) {
        self.drain();
        self.beat(supervisor).await;
        let until = tokio::time::Instant::now() + drain;
        let mut held = supervisor.held();
        tracing::info!(live = held.0, jobs = held.1, "draining: no new work taken");
        while held != (0, 0) && tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(200)).await;
            held = supervisor.held();
        }
        if held != (0, 0) {
            tracing::warn!(
                live = held.0,
                jobs = held.1,
                "drained for cluster.drain_s; what is still active is taken over by another node, or finalized here at the next start"
            );
        }
    }

    /// Leaves the cluster as the process stops: its heartbeat set to
    /// long ago, so it is dead at once and a new run may take its id; what
    /// it still held is taken over by the others (`engine::takeover`)
    /// unless it is back first.
    pub async fn leave(&self, supervisor: &Supervisor) {
        if !self.clustered {
            return;
        }
        // What is still live is in the store for the node that takes it
        // over.
        supervisor.services.shipping.finish_all().await;
        let mut info = self.current(supervisor);
        info.heartbeat_at = 0;
        // What it still held is recovered when it starts again, not live.
        info.live_sessions = 0;
        info.jobs_held = 0;
        if let Err(e) = supervisor
            .services
            .repo
            .heartbeat_node(&info, &self.instance)
            .await
        {
            tracing::warn!(error = %e, "leaving the cluster");
        }
    }
}
