//! The nodes of a cluster in the shared database: each claims its
//! `node_id` when it starts and heartbeats; a second process with the same
//! id is refused while the first one's heartbeat is fresh.

use sqlx::Row;
use tapedeck_core::cluster::NodeInfo;
use tapedeck_core::recording::Recording;
use tapedeck_core::room::Room;

use crate::repo::{Repo, RepoError};

/// The nodes table; each statement works on SQLite and PostgreSQL alike.
pub(crate) const MIGRATIONS: &[&str] = &["CREATE TABLE IF NOT EXISTS nodes (
        id TEXT PRIMARY KEY,
        instance TEXT NOT NULL,
        heartbeat_at BIGINT NOT NULL,
        doc TEXT NOT NULL)"];

/// A node id another running process holds.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeHeld {
    /// Milliseconds since that process's last heartbeat.
    pub heartbeat_age_ms: i64,
}

fn doc(n: &NodeInfo) -> String {
    // Serializing our own struct cannot fail.
    serde_json::to_string(n).unwrap_or_default()
}

impl Repo {
    /// Claims `node.id` for this process (`instance`, unique per run): a
    /// new id, or one whose holder's last heartbeat is older than
    /// `timeout_ms`, is taken; one held by a live process is not.
    pub async fn claim_node(
        &self,
        node: &NodeInfo,
        instance: &str,
        timeout_ms: i64,
    ) -> Result<Result<(), NodeHeld>, RepoError> {
        let stale_before = node.heartbeat_at - timeout_ms;
        let done = sqlx::query(
            "INSERT INTO nodes (id, instance, heartbeat_at, doc) VALUES ($1, $2, $3, $4)
             ON CONFLICT (id) DO UPDATE SET instance = excluded.instance,
                heartbeat_at = excluded.heartbeat_at, doc = excluded.doc
             WHERE nodes.heartbeat_at < $5 OR nodes.instance = excluded.instance",
        )
        .bind(node.id.clone())
        .bind(instance.to_string())
        .bind(node.heartbeat_at)
        .bind(doc(node))
        .bind(stale_before)
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 1 {
            return Ok(Ok(()));
        }
        let row = sqlx::query("SELECT heartbeat_at FROM nodes WHERE id = $1")
            .bind(node.id.clone())
            .fetch_one(self.pool())
            .await?;
        let at: i64 = row.try_get("heartbeat_at")?;
        Ok(Err(NodeHeld {
            heartbeat_age_ms: node.heartbeat_at - at,
        }))
    }

    /// This process's heartbeat with its figures; false if another
    /// process took the id over (this one was thought dead).
    pub async fn heartbeat_node(&self, node: &NodeInfo, instance: &str) -> Result<bool, RepoError> {
        let done = sqlx::query(
            "UPDATE nodes SET heartbeat_at = $3, doc = $4 WHERE id = $1 AND instance = $2",
        )
        .bind(node.id.clone())
        .bind(instance.to_string())
        .bind(node.heartbeat_at)
        .bind(doc(node))
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Every node that ever joined, as each last reported, by id.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, RepoError> {
        let rows = sqlx::query("SELECT id, doc FROM nodes ORDER BY id")
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                let id: String = r.try_get("id")?;
                let d: String = r.try_get("doc")?;
                serde_json::from_str(&d).map_err(|e| RepoError::Corrupt {
                    id,
                    message: e.to_string(),
                })
            })
            .collect()
    }
}

/// A row's `doc` column, parsed.
fn parse_doc<T: serde::de::DeserializeOwned>(row: &sqlx::any::AnyRow) -> Result<T, RepoError> {
    let doc: String = row.try_get("doc")?;
    serde_json::from_str(&doc).map_err(|e| RepoError::Corrupt {
        id: doc.chars().take(40).collect(),
        message: e.to_string(),
    })
}

/// What a node took over from a dead one in one go.
#[derive(Debug, Default)]
pub struct TakenOver {
    /// Its active recordings (pending, recording, paused, processing),
    /// now marked as the taker's.
    pub recordings: Vec<Recording>,
    /// Its open rooms, now placed on the taker.
    pub rooms: Vec<Room>,
}

impl Repo {
    /// Moves up to `limit` active recordings, and every open room, of node
    /// `dead` to node `me`, if `dead`'s heartbeat is still older than
    /// `stale_before`. One transaction holding `dead`'s row: a process
    /// claiming that id again (`claim_node`) waits for it, then finds only
    /// what was not moved; another taker skips it meanwhile. PostgreSQL
    /// only (a cluster's database).
    pub async fn take_over(
        &self,
        dead: &str,
        me: &str,
        stale_before: i64,
        limit: i64,
    ) -> Result<TakenOver, RepoError> {
        let mut tx = self.pool().begin().await?;
        let held = sqlx::query(
            "SELECT id FROM nodes WHERE id = $1 AND heartbeat_at < $2 FOR UPDATE SKIP LOCKED",
        )
        .bind(dead.to_string())
        .bind(stale_before)
        .fetch_optional(&mut *tx)
        .await?;
        if held.is_none() {
            return Ok(TakenOver::default());
        }
        let rows = sqlx::query(
            "SELECT doc FROM recordings
             WHERE status IN ('pending', 'recording', 'paused', 'processing')
               AND doc::jsonb ->> 'node' = $1
             ORDER BY created_at LIMIT $2 FOR UPDATE",
        )
        .bind(dead.to_string())
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let mut out = TakenOver::default();
        for r in &rows {
            let mut rec: Recording = parse_doc(r)?;
            rec.node = Some(me.to_string());
            sqlx::query("UPDATE recordings SET doc = $2 WHERE id = $1")
                .bind(rec.id.to_string())
                .bind(serde_json::to_string(&rec).unwrap_or_default())
                .execute(&mut *tx)
                .await?;
            out.recordings.push(rec);
        }
        let rows = sqlx::query(
            "SELECT doc FROM rooms
             WHERE doc::jsonb ->> 'node' = $1 AND doc::jsonb -> 'closed_at' IS NULL
                OR doc::jsonb ->> 'node' = $1 AND doc::jsonb -> 'closed_at' = 'null'::jsonb
             FOR UPDATE",
        )
        .bind(dead.to_string())
        .fetch_all(&mut *tx)
        .await?;
        for r in &rows {
            let mut room: Room = parse_doc(r)?;
            room.node = Some(me.to_string());
            sqlx::query("UPDATE rooms SET doc = $2 WHERE id = $1")
                .bind(room.id.to_string())
                .bind(serde_json::to_string(&room).unwrap_or_default())
                .execute(&mut *tx)
                .await?;
            out.rooms.push(room);
        }
        tx.commit().await?;
        Ok(out)
    }
}

impl Repo {
    /// [`Repo::update`] of a recording `holder` drives, only while the
    /// stored one is still marked as `holder`'s (PostgreSQL only): false,
    /// nothing written, when another node took it over meanwhile.
    pub async fn update_held(&self, r: &Recording, holder: &str) -> Result<bool, RepoError> {
        let done = sqlx::query(
            "UPDATE recordings SET status = $2, expires_at = $3, size_bytes = $4, doc = $5
             WHERE id = $1 AND doc::jsonb ->> 'node' = $6",
        )
        .bind(r.id.to_string())
        .bind(r.status.as_str())
        .bind(r.expires_at)
        .bind(r.size_bytes.map(|s| s as i64))
        .bind(crate::repo::to_doc(r))
        .bind(holder.to_string())
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Live and processing recordings marked as `node`'s (PostgreSQL
    /// only): what it should be driving.
    pub async fn live_on(&self, node: &str) -> Result<Vec<Recording>, RepoError> {
        let rows = sqlx::query(
            "SELECT doc FROM recordings
             WHERE status IN ('recording', 'paused', 'processing') AND doc::jsonb ->> 'node' = $1",
        )
        .bind(node.to_string())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(parse_doc).collect()
    }
}
