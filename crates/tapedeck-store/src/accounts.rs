//! People who sign in to the web page: local accounts (a name and a
//! password hash; the hashing is the server's) and sessions (a browser's
//! cookie, stored by its hash, tied to how it signed in).

use sqlx::Row;

use crate::repo::{Repo, RepoError};

/// The accounts tables; each statement works on SQLite and PostgreSQL alike.
pub(crate) const MIGRATIONS: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS users (
        name TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,
        is_admin BIGINT NOT NULL,
        created_at BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS sessions (
        token_hash TEXT PRIMARY KEY,
        user_name TEXT NOT NULL,
        is_admin BIGINT NOT NULL,
        via TEXT NOT NULL,
        key_id TEXT,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS sessions_user ON sessions (user_name)",
];

/// A local account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The name it signs in with (and owns recordings as).
    pub name: String,
    /// The password's hash, a PHC string (argon2id).
    pub password_hash: String,
    /// Sees and controls every user's recordings.
    pub admin: bool,
    /// Creation time, unix ms.
    pub created_at: i64,
}

/// A signed-in browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Whose it is.
    pub user: String,
    /// Whether that user is an admin (as when it signed in).
    pub admin: bool,
    /// How it signed in: `password`, `oidc` or `api_key`.
    pub via: String,
    /// The API key it was opened with: revoking the key ends it.
    pub key_id: Option<String>,
    /// Creation time, unix ms.
    pub created_at: i64,
    /// When it stops working, unix ms.
    pub expires_at: i64,
}

fn user_from_row(r: &sqlx::any::AnyRow) -> Result<User, RepoError> {
    Ok(User {
        name: r.try_get("name")?,
        password_hash: r.try_get("password_hash")?,
        admin: r.try_get::<i64, _>("is_admin")? != 0,
        created_at: r.try_get("created_at")?,
    })
}

impl Repo {
    /// Creates `user`, or replaces its password and admin flag: false when
    /// it existed and `replace` is false.
    pub async fn put_user(&self, user: &User, replace: bool) -> Result<bool, RepoError> {
        let sql = if replace {
            "INSERT INTO users (name, password_hash, is_admin, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (name) DO UPDATE SET password_hash = excluded.password_hash, is_admin = excluded.is_admin"
        } else {
            "INSERT INTO users (name, password_hash, is_admin, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (name) DO NOTHING"
        };
        let r = sqlx::query(sql)
            .bind(user.name.clone())
            .bind(user.password_hash.clone())
            .bind(i64::from(user.admin))
            .bind(user.created_at)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// The account called `name`.
    pub async fn user(&self, name: &str) -> Result<Option<User>, RepoError> {
        let row = sqlx::query(
            "SELECT name, password_hash, is_admin, created_at FROM users WHERE name = $1",
        )
        .bind(name.to_string())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    /// Every account, by name.
    pub async fn users(&self) -> Result<Vec<User>, RepoError> {
        let rows = sqlx::query(
            "SELECT name, password_hash, is_admin, created_at FROM users ORDER BY name",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(user_from_row).collect()
    }

    /// Deletes the account, ends its sessions and revokes its API keys
    /// (a name made again later must not inherit them); false if there
    /// was no account.
    pub async fn delete_user(&self, name: &str) -> Result<bool, RepoError> {
        self.end_sessions_of(name).await?;
        sqlx::query("UPDATE api_keys SET revoked = 1 WHERE user_name = $1")
            .bind(name.to_string())
            .execute(self.pool())
            .await?;
        let r = sqlx::query("DELETE FROM users WHERE name = $1")
            .bind(name.to_string())
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Stores a session by the hash of its token.
    pub async fn create_session(&self, token_hash: &str, s: &Session) -> Result<(), RepoError> {
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_name, is_admin, via, key_id, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(token_hash.to_string())
        .bind(s.user.clone())
        .bind(i64::from(s.admin))
        .bind(s.via.clone())
        .bind(s.key_id.clone())
        .bind(s.created_at)
        .bind(s.expires_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The live session whose token hashes to `token_hash` at `now_ms`: not
    /// expired, and its API key (if it was opened with one) not revoked.
    pub async fn session(
        &self,
        token_hash: &str,
        now_ms: i64,
    ) -> Result<Option<Session>, RepoError> {
        let row = sqlx::query(
            "SELECT s.user_name, s.is_admin, s.via, s.key_id, s.created_at, s.expires_at
             FROM sessions s LEFT JOIN api_keys k ON k.id = s.key_id
             WHERE s.token_hash = $1 AND s.expires_at > $2 AND (s.key_id IS NULL OR k.revoked = 0)",
        )
        .bind(token_hash.to_string())
        .bind(now_ms)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| {
            Ok(Session {
                user: r.try_get("user_name")?,
                admin: r.try_get::<i64, _>("is_admin")? != 0,
                via: r.try_get("via")?,
                key_id: r.try_get("key_id")?,
                created_at: r.try_get("created_at")?,
                expires_at: r.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    /// Ends one session (signing out).
    pub async fn end_session(&self, token_hash: &str) -> Result<(), RepoError> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash.to_string())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Ends every session of `user` (a new password, a deleted account).
    pub async fn end_sessions_of(&self, user: &str) -> Result<u64, RepoError> {
        let r = sqlx::query("DELETE FROM sessions WHERE user_name = $1")
            .bind(user.to_string())
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected())
    }

    /// Forgets sessions that ended before `now_ms`.
    pub async fn sweep_sessions(&self, now_ms: i64) -> Result<u64, RepoError> {
        let r = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now_ms)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected())
    }
}
