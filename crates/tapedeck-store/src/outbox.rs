//! What a cluster's nodes share beside recordings and jobs: secrets (the
//! key of share links and invites), leases (a
//! sweep that runs on one node at a time), the webhook outbox (each
//! delivery claimed by one node, retried by another if its node dies), and
//! signals between nodes (PostgreSQL `NOTIFY`/`LISTEN`).

use sqlx::Row;

use crate::repo::{Repo, RepoError};

/// The tables; each statement works on SQLite and PostgreSQL alike.
pub(crate) const MIGRATIONS: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS leases (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        until_ms BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS webhook_outbox (
        id TEXT PRIMARY KEY,
        url TEXT NOT NULL,
        kind TEXT NOT NULL,
        body TEXT NOT NULL,
        attempts BIGINT NOT NULL,
        next_at BIGINT NOT NULL,
        node TEXT,
        lease_until BIGINT,
        created_at BIGINT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS webhook_outbox_next ON webhook_outbox (next_at)",
    "CREATE TABLE IF NOT EXISTS cluster_secrets (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL)",
];

/// One webhook to deliver: an event's body to one URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Unique; sent as `Tapedeck-Delivery`, the same on every attempt.
    pub id: String,
    /// Where it goes.
    pub url: String,
    /// The event's type.
    pub kind: String,
    /// The event, JSON.
    pub body: String,
    /// Attempts made so far.
    pub attempts: i64,
}

/// The claim of due deliveries, with PostgreSQL's row lock or none.
macro_rules! claim_webhooks_sql {
    ($lock:literal) => {
        concat!(
            "WITH due AS (
                SELECT id FROM webhook_outbox
                WHERE next_at <= $1 AND (lease_until IS NULL OR lease_until < $1)
                ORDER BY next_at, created_at, id LIMIT $4 ",
            $lock,
            ")
             UPDATE webhook_outbox SET node = $2, lease_until = $3
             WHERE id IN (SELECT id FROM due)
             RETURNING id, url, kind, body, attempts"
        )
    };
}

/// PostgreSQL's limit on a `NOTIFY` payload is 8000 bytes; less, to be safe.
pub const SIGNAL_MAX_BYTES: usize = 7900;

impl Repo {
    /// The secret `name` every node shares: the first node to ask stores
    /// `candidate`; every node, that one included, reads what is stored.
    pub async fn shared_secret(&self, name: &str, candidate: &str) -> Result<String, RepoError> {
        sqlx::query(
            "INSERT INTO cluster_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name.to_string())
        .bind(candidate.to_string())
        .execute(self.pool())
        .await?;
        let row = sqlx::query("SELECT value FROM cluster_secrets WHERE name = $1")
            .bind(name.to_string())
            .fetch_one(self.pool())
            .await?;
        Ok(row.try_get("value")?)
    }

    /// Takes or renews the lease `name` for `holder` until `until` (unix
    /// ms) if nobody else holds it at `now`; whether `holder` holds it.
    pub async fn try_lease(
        &self,
        name: &str,
        holder: &str,
        now: i64,
        until: i64,
    ) -> Result<bool, RepoError> {
        let row = sqlx::query(
            "INSERT INTO leases (name, holder, until_ms) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until_ms = excluded.until_ms
             WHERE leases.holder = excluded.holder OR leases.until_ms < $4
             RETURNING holder",
        )
        .bind(name.to_string())
        .bind(holder.to_string())
        .bind(until)
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.is_some())
    }

    /// Gives up the lease `name` if `holder` has it.
    pub async fn drop_lease(&self, name: &str, holder: &str) -> Result<(), RepoError> {
        sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(name.to_string())
            .bind(holder.to_string())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Queues deliveries, due at `now`.
    pub async fn queue_webhooks(&self, items: &[Delivery], now: i64) -> Result<(), RepoError> {
        let mut tx = self.pool().begin().await?;
        for d in items {
            sqlx::query(
                "INSERT INTO webhook_outbox (id, url, kind, body, attempts, next_at, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (id) DO NOTHING",
            )
            .bind(d.id.clone())
            .bind(d.url.clone())
            .bind(d.kind.clone())
            .bind(d.body.clone())
            .bind(d.attempts)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Claims up to `limit` deliveries due at `now` for `node` under a lease
    /// until `lease_until`: those not held, or whose holder's lease lapsed
    /// (it died while sending). Oldest first; two nodes never claim one.
    pub async fn claim_webhooks(
        &self,
        node: &str,
        now: i64,
        lease_until: i64,
        limit: i64,
    ) -> Result<Vec<Delivery>, RepoError> {
        let sql = if self.backend() == "postgres" {
            claim_webhooks_sql!("FOR UPDATE SKIP LOCKED")
        } else {
            claim_webhooks_sql!("")
        };
        let rows = sqlx::query(sql)
            .bind(now)
            .bind(node.to_string())
            .bind(lease_until)
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Delivery {
                    id: r.try_get("id")?,
                    url: r.try_get("url")?,
                    kind: r.try_get("kind")?,
                    body: r.try_get("body")?,
                    attempts: r.try_get("attempts")?,
                })
            })
            .collect()
    }

    /// A delivery is done (delivered, or abandoned after its attempts).
    pub async fn webhook_done(&self, id: &str) -> Result<(), RepoError> {
        sqlx::query("DELETE FROM webhook_outbox WHERE id = $1")
            .bind(id.to_string())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// A delivery failed: `attempts` made, due again at `next_at`.
    pub async fn webhook_retry(
        &self,
        id: &str,
        attempts: i64,
        next_at: i64,
    ) -> Result<(), RepoError> {
        sqlx::query(
            "UPDATE webhook_outbox SET attempts = $2, next_at = $3, node = NULL, lease_until = NULL
             WHERE id = $1",
        )
        .bind(id.to_string())
        .bind(attempts)
        .bind(next_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Sends `payload` on `channel` to every node listening (PostgreSQL;
    /// on SQLite there is no other node and nothing is sent).
    pub async fn signal(&self, channel: &str, payload: &str) -> Result<(), RepoError> {
        if self.backend() != "postgres" {
            return Ok(());
        }
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(channel.to_string())
            .bind(payload.to_string())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// A listener of `channels` (PostgreSQL only; `None` on SQLite).
    pub async fn listen(&self, channels: &[&str]) -> Result<Option<Listener>, RepoError> {
        if self.backend() != "postgres" {
            return Ok(None);
        }
        let mut l = sqlx::postgres::PgListener::connect(self.url()).await?;
        l.listen_all(channels.iter().copied()).await?;
        Ok(Some(Listener(l)))
    }
}

/// Signals from other nodes.
#[derive(Debug)]
pub struct Listener(sqlx::postgres::PgListener);

impl Listener {
    /// The next signal: its channel and payload. After a lost connection
    /// the listener connects again (signals sent meanwhile are missed).
    pub async fn recv(&mut self) -> Result<(String, String), RepoError> {
        let n = self.0.recv().await?;
        Ok((n.channel().to_string(), n.payload().to_string()))
    }
}
