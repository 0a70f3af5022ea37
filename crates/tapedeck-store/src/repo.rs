//! The metadata repository: recordings and API keys (rooms: `rooms.rs`).

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Row};
use tapedeck_core::Code;
use tapedeck_core::recording::{Recording, SourceKind, Status};
use tapedeck_core::{ErrorCode, RecordingId};

/// A repository failure.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// The database refused or failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// A stored document did not parse (a bug or a manual edit).
    #[error("stored recording {id} is unreadable: {message}")]
    Corrupt {
        /// Which one.
        id: String,
        /// Why.
        message: String,
    },
    /// The database URL is not one we serve.
    #[error("unsupported database URL `{0}`: use sqlite://PATH or postgres://...")]
    Url(String),
}

impl ErrorCode for RepoError {
    fn code(&self) -> Code {
        Code::DatabaseError
    }
}

impl From<RepoError> for tapedeck_core::Problem {
    fn from(e: RepoError) -> Self {
        tapedeck_core::Problem::from_code(e)
    }
}

/// Schema, in order; each statement works on SQLite and PostgreSQL alike.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS recordings (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        status TEXT NOT NULL,
        source_kind TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT,
        size_bytes BIGINT,
        doc TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS recordings_owner_id ON recordings (owner, id)",
    "CREATE INDEX IF NOT EXISTS recordings_status ON recordings (status)",
    "CREATE INDEX IF NOT EXISTS recordings_expires ON recordings (expires_at)",
    "CREATE TABLE IF NOT EXISTS api_keys (
        id TEXT PRIMARY KEY,
        user_name TEXT NOT NULL,
        is_admin BIGINT NOT NULL,
        token_hash TEXT NOT NULL UNIQUE,
        created_at BIGINT NOT NULL,
        revoked BIGINT NOT NULL DEFAULT 0)",
];

/// A filter for listing recordings.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only this owner's (None: everyone's, for admins).
    pub owner: Option<String>,
    /// Only these statuses.
    pub status: Option<Status>,
    /// Only this source kind.
    pub kind: Option<SourceKind>,
    /// Only ids older than this (the cursor).
    pub before: Option<RecordingId>,
    /// At most this many.
    pub limit: u32,
    /// Only those whose metadata has these top-level values.
    pub metadata: Vec<tapedeck_core::search::MetadataFilter>,
}

/// An API key as stored (the token itself is never stored, only its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Key id (shown in listings).
    pub id: String,
    /// The user it authenticates.
    pub user: String,
    /// Sees and controls every user's recordings.
    pub admin: bool,
    /// Creation time, unix ms.
    pub created_at: i64,
    /// No longer accepted.
    pub revoked: bool,
}

/// Recordings and keys in SQLite or PostgreSQL.
#[derive(Clone, Debug)]
pub struct Repo {
    pool: AnyPool,
    backend: &'static str,
    /// What it connected to (a listener opens a connection of its own).
    url: std::sync::Arc<str>,
}

impl Repo {
    /// Connects to `url` (`sqlite://path` or `postgres://...`) and migrates.
    pub async fn connect(url: &str) -> Result<Self, RepoError> {
        install_default_drivers();
        let (backend, url, max) = if let Some(path) = url.strip_prefix("sqlite://") {
            let sep = if path.contains('?') { '&' } else { '?' };
            ("sqlite", format!("sqlite://{path}{sep}mode=rwc"), 4)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            ("postgres", url.to_string(), 10)
        } else {
            return Err(RepoError::Url(url.to_string()));
        };
        let is_sqlite = backend == "sqlite";
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if is_sqlite {
                        sqlx::query("PRAGMA busy_timeout = 5000")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA synchronous = NORMAL")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        if is_sqlite {
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await?;
        }
        // Nodes of a cluster may start at once on a new database, and
        // PostgreSQL's `CREATE TABLE IF NOT EXISTS` is not safe run
        // concurrently: one process migrates at a time (an advisory lock
        // held by this connection).
        let mut conn = pool.acquire().await?;
        if !is_sqlite {
            sqlx::query("SELECT pg_advisory_lock(7413201)")
                .execute(&mut *conn)
                .await?;
        }
        let mut migrated = Ok(());
        for m in MIGRATIONS
            .iter()
            .chain(crate::rooms::MIGRATIONS)
            .chain(crate::accounts::MIGRATIONS)
            .chain(crate::nodes::MIGRATIONS)
            .chain(crate::jobs::MIGRATIONS)
            .chain(crate::outbox::MIGRATIONS)
        {
            if let Err(e) = sqlx::query(*m).execute(&mut *conn).await {
                migrated = Err(e);
                break;
            }
        }
        if !is_sqlite {
            sqlx::query("SELECT pg_advisory_unlock(7413201)")
                .execute(&mut *conn)
                .await?;
        }
        drop(conn);
        migrated?;
        Ok(Self {
            pool,
            backend,
            url: url.into(),
        })
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Checks the database answers.
    pub async fn ping(&self) -> Result<(), RepoError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Stores a new recording.
    pub async fn insert(&self, r: &Recording) -> Result<(), RepoError> {
        sqlx::query(
            "INSERT INTO recordings (id, owner, status, source_kind, created_at, expires_at, size_bytes, doc)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(r.id.to_string())
        .bind(r.owner.clone())
        .bind(r.status.as_str())
        .bind(r.source.kind().as_str())
        .bind(r.created_at)
        .bind(r.expires_at)
        .bind(r.size_bytes.map(|s| s as i64))
        .bind(to_doc(r))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Replaces a stored recording with `r`.
    pub async fn update(&self, r: &Recording) -> Result<(), RepoError> {
        sqlx::query(
            "UPDATE recordings SET status = $2, expires_at = $3, size_bytes = $4, doc = $5 WHERE id = $1",
        )
        .bind(r.id.to_string())
        .bind(r.status.as_str())
        .bind(r.expires_at)
        .bind(r.size_bytes.map(|s| s as i64))
        .bind(to_doc(r))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// One recording.
    pub async fn get(&self, id: RecordingId) -> Result<Option<Recording>, RepoError> {
        let row = sqlx::query("SELECT doc FROM recordings WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| from_row(&r)).transpose()
    }

    /// Recordings newest first, filtered.
    pub async fn list(&self, f: &ListFilter) -> Result<Vec<Recording>, RepoError> {
        let mut sql = String::from("SELECT doc FROM recordings WHERE 1 = 1");
        let mut args: Vec<String> = vec![];
        fn add(args: &mut Vec<String>, sql: &mut String, cond: &str, v: String) {
            args.push(v);
            sql.push_str(&format!(" AND {cond} ${}", args.len()));
        }
        if let Some(o) = &f.owner {
            add(&mut args, &mut sql, "owner =", o.clone());
        }
        if let Some(s) = f.status {
            add(&mut args, &mut sql, "status =", s.as_str().into());
        }
        if let Some(k) = f.kind {
            add(&mut args, &mut sql, "source_kind =", k.as_str().into());
        }
        if let Some(b) = f.before {
            add(&mut args, &mut sql, "id <", b.to_string());
        }
        for m in &f.metadata {
            // The key is letters, digits, `_` and `-` (checked in the core)
            // and bound as a value all the same. A value is compared as
            // text: a string as it is, a number or boolean as JSON writes it.
            let value = if self.backend == "postgres" {
                args.push(m.key.clone());
                format!("(doc::jsonb -> 'metadata' ->> ${})", args.len())
            } else {
                let path = format!("$.metadata.\"{}\"", m.key);
                args.extend([path.clone(), path]);
                let (t, v) = (args.len() - 1, args.len());
                format!(
                    "(CASE json_type(doc, ${t}) WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' \
                     WHEN 'text' THEN json_extract(doc, ${v}) \
                     WHEN 'integer' THEN CAST(json_extract(doc, ${v}) AS TEXT) \
                     WHEN 'real' THEN CAST(json_extract(doc, ${v}) AS TEXT) END)"
                )
            };
            add(&mut args, &mut sql, &format!("{value} ="), m.value.clone());
        }
        sql.push_str(&format!(
            " ORDER BY id DESC LIMIT {}",
            f.limit.clamp(1, 1000)
        ));
        // Built only from fixed fragments and numbered placeholders; values are bound.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for a in args {
            q = q.bind(a);
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter().map(from_row).collect()
    }

    /// Recordings in any of `statuses` (all owners), for recovery at start.
    pub async fn in_statuses(&self, statuses: &[Status]) -> Result<Vec<Recording>, RepoError> {
        let mut out = vec![];
        for s in statuses {
            let rows = sqlx::query("SELECT doc FROM recordings WHERE status = $1")
                .bind(s.as_str())
                .fetch_all(&self.pool)
                .await?;
            for r in &rows {
                out.push(from_row(r)?);
            }
        }
        Ok(out)
    }

    /// Recordings whose retention ended before `now_ms`.
    pub async fn expired(&self, now_ms: i64, limit: u32) -> Result<Vec<Recording>, RepoError> {
        let rows = sqlx::query(
            "SELECT doc FROM recordings WHERE expires_at IS NOT NULL AND expires_at < $1 ORDER BY expires_at LIMIT $2",
        )
        .bind(now_ms)
        .bind(i64::from(limit.clamp(1, 1000)))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Removes a recording's row.
    pub async fn delete(&self, id: RecordingId) -> Result<bool, RepoError> {
        let r = sqlx::query("DELETE FROM recordings WHERE id = $1")
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Bytes of stored media owned by `owner`.
    pub async fn usage_bytes(&self, owner: &str) -> Result<u64, RepoError> {
        let row = sqlx::query("SELECT CAST(COALESCE(SUM(size_bytes), 0) AS BIGINT) AS total FROM recordings WHERE owner = $1")
            .bind(owner.to_string())
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<i64, _>("total")?.max(0) as u64)
    }

    /// Recordings in an active status, for one owner or everyone.
    pub async fn count_active(&self, owner: Option<&str>) -> Result<u64, RepoError> {
        const ALL: &str = "SELECT COUNT(*) AS n FROM recordings WHERE status IN ('pending', 'recording', 'paused')";
        const ONE: &str = "SELECT COUNT(*) AS n FROM recordings WHERE status IN ('pending', 'recording', 'paused') AND owner = $1";
        let row = match owner {
            Some(o) => {
                sqlx::query(ONE)
                    .bind(o.to_string())
                    .fetch_one(&self.pool)
                    .await?
            }
            None => sqlx::query(ALL).fetch_one(&self.pool).await?,
        };
        Ok(row.try_get::<i64, _>("n")?.max(0) as u64)
    }

    /// Stores a new API key by the hash of its token.
    pub async fn create_key(&self, key: &ApiKey, token_hash: &str) -> Result<(), RepoError> {
        sqlx::query("INSERT INTO api_keys (id, user_name, is_admin, token_hash, created_at, revoked) VALUES ($1, $2, $3, $4, $5, 0)")
            .bind(key.id.clone())
            .bind(key.user.clone())
            .bind(i64::from(key.admin))
            .bind(token_hash.to_string())
            .bind(key.created_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The live key whose token hashes to `token_hash`.
    pub async fn find_key(&self, token_hash: &str) -> Result<Option<ApiKey>, RepoError> {
        let row = sqlx::query("SELECT id, user_name, is_admin, created_at, revoked FROM api_keys WHERE token_hash = $1 AND revoked = 0")
            .bind(token_hash.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| key_from_row(&r)).transpose()
    }

    /// Every key, newest first.
    pub async fn list_keys(&self) -> Result<Vec<ApiKey>, RepoError> {
        let rows = sqlx::query("SELECT id, user_name, is_admin, created_at, revoked FROM api_keys ORDER BY created_at DESC")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(key_from_row).collect()
    }

    /// Revokes a key; false if there was none.
    pub async fn revoke_key(&self, id: &str) -> Result<bool, RepoError> {
        let r = sqlx::query("UPDATE api_keys SET revoked = 1 WHERE id = $1")
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }
}

fn key_from_row(r: &sqlx::any::AnyRow) -> Result<ApiKey, RepoError> {
    Ok(ApiKey {
        id: r.try_get("id")?,
        user: r.try_get("user_name")?,
        admin: r.try_get::<i64, _>("is_admin")? != 0,
        created_at: r.try_get("created_at")?,
        revoked: r.try_get::<i64, _>("revoked")? != 0,
    })
}

pub(crate) fn to_doc(r: &Recording) -> String {
    // Serializing our own struct cannot fail.
    serde_json::to_string(r).unwrap_or_default()
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<Recording, RepoError> {
    let doc: String = row.try_get("doc")?;
    serde_json::from_str(&doc).map_err(|e| RepoError::Corrupt {
        id: doc.chars().take(40).collect(),
        message: e.to_string(),
    })
}
