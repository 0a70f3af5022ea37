//! A node of a cluster as the others see it: what it heartbeats into the
//! shared database, and whether it counts as alive.

use serde::{Deserialize, Serialize};

/// One node: its addresses, its version, and its load at its last
/// heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// `cluster.node_id`.
    pub id: String,
    /// How the other nodes reach it (`cluster.internal_url`).
    pub internal_url: String,
    /// How clients reach it (`cluster.public_url`).
    pub public_url: String,
    /// The server's version.
    pub version: String,
    /// When this run of it started.
    #[serde(with = "crate::recording::time_ms")]
    pub started_at: i64,
    /// Its last heartbeat.
    #[serde(with = "crate::recording::time_ms")]
    pub heartbeat_at: i64,
    /// Its CPU budget and what is reserved and used of it, in cores.
    pub cpu: NodeCpu,
    /// Live sessions it holds: frames sockets, rooms' recordings, uploads
    /// in progress.
    pub live_sessions: u32,
    /// Queued work it holds: web recordings rendering or waiting.
    pub jobs_held: u32,
    /// It takes no new work (shutting down).
    pub draining: bool,
    /// Its heartbeat is recent (`cluster.node_timeout_s`); set when read.
    #[serde(default)]
    pub alive: bool,
}

/// A node's CPU, in cores.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeCpu {
    /// `limits.cpu_budget_cores` (or its default).
    pub budget: f64,
    /// What its running recordings reserved.
    pub reserved: f64,
    /// What its processes used lately.
    pub used: f64,
}

impl NodeCpu {
    /// What is left to reserve.
    pub fn free(&self) -> f64 {
        (self.budget - self.reserved).max(0.0)
    }
}

/// Whether a node whose last heartbeat was at `heartbeat_at` is alive at
/// `now` (unix ms) with a timeout of `timeout_ms`.
pub fn alive(heartbeat_at: i64, now: i64, timeout_ms: i64) -> bool {
    now.saturating_sub(heartbeat_at) <= timeout_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_is_alive_until_its_timeout_passes() {
        assert!(alive(10_000, 20_000, 10_000));
        assert!(!alive(10_000, 20_001, 10_000));
        // A clock a little behind another node's is not dead.
        assert!(alive(10_500, 10_000, 10_000));
        let cpu = NodeCpu {
            budget: 1.6,
            reserved: 2.0,
            used: 1.0,
        };
        assert_eq!(cpu.free(), 0.0);
    }
}
