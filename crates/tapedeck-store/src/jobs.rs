//! The cluster's shared queue of work: jobs in the database, claimed by
//! the node whose free CPU budget fits them, fair across users, each held
//! under a lease its node renews and that is taken back when it lapses.
//!
//! Why not a job-queue crate: apalis (its PostgreSQL storage), sqlxmq,
//! graphile_worker's port and pgmq each claim the oldest job (or by
//! priority), with no way to say "only a job that fits this node's free
//! budget" or "the user served longest ago first", which is what the
//! queue is for; apalis and sqlxmq also bring their own schema and worker
//! loop, and pgmq an extension. The part they would save is the
//! `FOR UPDATE SKIP LOCKED` claim below.
//!
//! Order: among the queued jobs whose cost fits, the oldest of the user
//! served longest ago (a user never served first), as the one-node queue
//! (`tapedeck_core::admission::FairQueue`) orders them. A job too large
//! for every node's free budget waits while smaller ones pass it.

use sqlx::Row;

use crate::repo::{Repo, RepoError};

/// The jobs tables; each statement works on SQLite and PostgreSQL alike.
pub(crate) const MIGRATIONS: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS jobs (
        id TEXT PRIMARY KEY,
        seq BIGINT NOT NULL,
        owner TEXT NOT NULL,
        kind TEXT NOT NULL,
        cost BIGINT NOT NULL,
        state TEXT NOT NULL,
        node TEXT,
        lease_until BIGINT,
        doc TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, seq)",
    "CREATE INDEX IF NOT EXISTS jobs_node ON jobs (node)",
    "CREATE TABLE IF NOT EXISTS queue_users (
        owner TEXT PRIMARY KEY,
        served_at BIGINT NOT NULL)",
];

/// A job to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Unique: the recording's id, or what it is of the recording.
    pub id: String,
    /// Its place among its user's jobs (the order they were made in).
    pub seq: i64,
    /// Whose it is (fairness is across owners).
    pub owner: String,
    /// What it is (`web`, `range`, `poster`, ...).
    pub kind: String,
    /// Estimated CPU, thousandths of a core.
    pub cost: i64,
    /// What the job needs to run, as its kind writes it.
    pub doc: String,
}

/// The claim: the next job in the fair order that fits, marked held.
macro_rules! claim_sql {
    ($lock:literal) => {
        concat!(
            "WITH next AS (
                SELECT j.id FROM jobs j LEFT JOIN queue_users u ON u.owner = j.owner
                WHERE j.state = 'queued' AND j.cost <= $1 AND (j.kind <> 'web' OR $4 = 1)
                ORDER BY COALESCE(u.served_at, 0), j.seq, j.id
                LIMIT 1 ",
            $lock,
            ")
             UPDATE jobs SET state = 'running', node = $2, lease_until = $3
             WHERE id IN (SELECT id FROM next)
             RETURNING id, seq, owner, kind, cost, doc"
        )
    };
}

fn job_from(row: &sqlx::any::AnyRow) -> Result<Job, RepoError> {
    Ok(Job {
        id: row.try_get("id")?,
        seq: row.try_get("seq")?,
        owner: row.try_get("owner")?,
        kind: row.try_get("kind")?,
        cost: row.try_get("cost")?,
        doc: row.try_get("doc")?,
    })
}

impl Repo {
    /// Queues `job` (a job already queued or held is left as it is).
    pub async fn enqueue(&self, job: &Job) -> Result<(), RepoError> {
        sqlx::query(
            "INSERT INTO jobs (id, seq, owner, kind, cost, state, doc)
             VALUES ($1, $2, $3, $4, $5, 'queued', $6) ON CONFLICT (id) DO NOTHING",
        )
        .bind(job.id.clone())
        .bind(job.seq)
        .bind(job.owner.clone())
        .bind(job.kind.clone())
        .bind(job.cost)
        .bind(job.doc.clone())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Claims the next job for `node`, which has `free` thousandths of a
    /// core to reserve, under a lease until `lease_until` (unix ms); its
    /// owner counts as served at `now`. Two nodes never claim one job.
    pub async fn claim(
        &self,
        node: &str,
        free: i64,
        now: i64,
        lease_until: i64,
    ) -> Result<Option<Job>, RepoError> {
        self.claim_fitting(node, free, now, lease_until, true).await
    }

    /// [`Repo::claim`], of a web recording only when `web` (the node has a
    /// browser free).
    pub async fn claim_fitting(
        &self,
        node: &str,
        free: i64,
        now: i64,
        lease_until: i64,
        web: bool,
    ) -> Result<Option<Job>, RepoError> {
        // PostgreSQL: rows another claimer has locked are skipped, not
        // waited for. SQLite writes one transaction at a time anyway.
        let sql = if self.backend() == "postgres" {
            claim_sql!("FOR UPDATE OF j SKIP LOCKED")
        } else {
            claim_sql!("")
        };
        let mut tx = self.pool().begin().await?;
        let row = sqlx::query(sql)
            .bind(free)
            .bind(node.to_string())
            .bind(lease_until)
            .bind(i64::from(web))
            .fetch_optional(&mut *tx)
            .await?;
        let job = row.as_ref().map(job_from).transpose()?;
        if let Some(j) = &job {
            sqlx::query(
                "INSERT INTO queue_users (owner, served_at) VALUES ($1, $2)
                 ON CONFLICT (owner) DO UPDATE SET served_at = excluded.served_at",
            )
            .bind(j.owner.clone())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(job)
    }

    /// Renews the lease of every job `node` holds; how many it holds.
    pub async fn renew_leases(&self, node: &str, lease_until: i64) -> Result<u64, RepoError> {
        let done =
            sqlx::query("UPDATE jobs SET lease_until = $2 WHERE node = $1 AND state = 'running'")
                .bind(node.to_string())
                .bind(lease_until)
                .execute(self.pool())
                .await?;
        Ok(done.rows_affected())
    }

    /// Queues again every job whose lease lapsed before `now` (its node
    /// died or lost the database); their ids.
    pub async fn take_back_lapsed(&self, now: i64) -> Result<Vec<String>, RepoError> {
        let rows = sqlx::query(
            "UPDATE jobs SET state = 'queued', node = NULL, lease_until = NULL
             WHERE state = 'running' AND lease_until < $1 RETURNING id",
        )
        .bind(now)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| r.try_get("id").map_err(RepoError::from))
            .collect()
    }

    /// Queues `job` again from the start, whatever its state (its node
    /// died while it ran), or queues it if it is not there.
    pub async fn requeue_job(&self, job: &Job) -> Result<(), RepoError> {
        let done = sqlx::query(
            "UPDATE jobs SET state = 'queued', node = NULL, lease_until = NULL WHERE id = $1",
        )
        .bind(job.id.clone())
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 0 {
            self.enqueue(job).await?;
        }
        Ok(())
    }

    /// Hands a held job back to the queue (a node draining).
    pub async fn hand_back(&self, id: &str, node: &str) -> Result<bool, RepoError> {
        let done = sqlx::query(
            "UPDATE jobs SET state = 'queued', node = NULL, lease_until = NULL
             WHERE id = $1 AND node = $2 AND state = 'running'",
        )
        .bind(id.to_string())
        .bind(node.to_string())
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Removes a job: done, failed for good or cancelled.
    pub async fn finish_job(&self, id: &str) -> Result<bool, RepoError> {
        let done = sqlx::query("DELETE FROM jobs WHERE id = $1")
            .bind(id.to_string())
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A held job failed for good: kept, out of the queue, with `why` in
    /// place of its document, for whoever waits on it to read.
    pub async fn fail_job(&self, id: &str, why: &str) -> Result<(), RepoError> {
        sqlx::query(
            "UPDATE jobs SET state = 'failed', doc = $2, node = NULL, lease_until = NULL WHERE id = $1",
        )
        .bind(id.to_string())
        .bind(why.to_string())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// A job's state (`queued`, `running`, `failed`) and document; `None`
    /// once it is done (or was never queued).
    pub async fn job_state(&self, id: &str) -> Result<Option<(String, String)>, RepoError> {
        let row = sqlx::query("SELECT state, doc FROM jobs WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| Ok((r.try_get("state")?, r.try_get("doc")?)))
            .transpose()
    }

    /// Takes a job out of the queue if nobody claimed it yet (a recording
    /// stopped or cancelled while it waited); whether it was there.
    pub async fn withdraw_job(&self, id: &str) -> Result<bool, RepoError> {
        let done = sqlx::query("DELETE FROM jobs WHERE id = $1 AND state = 'queued'")
            .bind(id.to_string())
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Where a queued job stands among the queued ones, by the order they
    /// were made in (1 is the oldest); `None` when it is not queued. The
    /// claim may pass it over for another user's (fairness) or a smaller
    /// one (a node's room), so this is a guide.
    pub async fn job_position(&self, id: &str) -> Result<Option<u64>, RepoError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM jobs q, jobs mine
             WHERE mine.id = $1 AND mine.state = 'queued' AND q.state = 'queued'
               AND (q.seq < mine.seq OR (q.seq = mine.seq AND q.id <= mine.id))",
        )
        .bind(id.to_string())
        .fetch_one(self.pool())
        .await?;
        let n: i64 = row.try_get("n")?;
        Ok((n > 0).then_some(n as u64))
    }

    /// How many jobs wait, of `owner` or of everyone.
    pub async fn queued_jobs(&self, owner: Option<&str>) -> Result<u64, RepoError> {
        let row = match owner {
            Some(o) => {
                sqlx::query("SELECT COUNT(*) AS n FROM jobs WHERE state = 'queued' AND owner = $1")
                    .bind(o.to_string())
                    .fetch_one(self.pool())
                    .await?
            }
            None => {
                sqlx::query("SELECT COUNT(*) AS n FROM jobs WHERE state = 'queued'")
                    .fetch_one(self.pool())
                    .await?
            }
        };
        let n: i64 = row.try_get("n")?;
        Ok(n as u64)
    }
}
