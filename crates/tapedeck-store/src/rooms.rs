//! Rooms in the metadata repository: the room, who joined it, and which
//! recordings are its.

use sqlx::Row;
use tapedeck_core::room::Room;
use tapedeck_core::{RecordingId, RoomId};

use crate::repo::{Repo, RepoError};

/// The rooms tables; each statement works on SQLite and PostgreSQL alike.
pub(crate) const MIGRATIONS: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS rooms (
        id TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        doc TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS rooms_host ON rooms (host, id)",
    "CREATE TABLE IF NOT EXISTS room_members (
        room_id TEXT NOT NULL,
        user_name TEXT NOT NULL,
        joined_at BIGINT NOT NULL,
        PRIMARY KEY (room_id, user_name))",
    "CREATE INDEX IF NOT EXISTS room_members_user ON room_members (user_name, room_id)",
    "CREATE TABLE IF NOT EXISTS room_recordings (
        room_id TEXT NOT NULL,
        recording_id TEXT NOT NULL,
        PRIMARY KEY (room_id, recording_id))",
];

fn room_from_row(row: &sqlx::any::AnyRow) -> Result<Room, RepoError> {
    let doc: String = row.try_get("doc")?;
    serde_json::from_str(&doc).map_err(|e| RepoError::Corrupt {
        id: doc.chars().take(40).collect(),
        message: e.to_string(),
    })
}

fn room_doc(r: &Room) -> String {
    // Serializing our own struct cannot fail.
    serde_json::to_string(r).unwrap_or_default()
}

impl Repo {
    /// Stores a new room.
    pub async fn insert_room(&self, r: &Room) -> Result<(), RepoError> {
        sqlx::query("INSERT INTO rooms (id, host, created_at, doc) VALUES ($1, $2, $3, $4)")
            .bind(r.id.to_string())
            .bind(r.host.clone())
            .bind(r.created_at)
            .bind(room_doc(r))
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Replaces a stored room with `r` (closing it).
    pub async fn update_room(&self, r: &Room) -> Result<(), RepoError> {
        sqlx::query("UPDATE rooms SET doc = $2 WHERE id = $1")
            .bind(r.id.to_string())
            .bind(room_doc(r))
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// One room.
    pub async fn room(&self, id: RoomId) -> Result<Option<Room>, RepoError> {
        let row = sqlx::query("SELECT doc FROM rooms WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| room_from_row(&r)).transpose()
    }

    /// Rooms `user` hosts or has joined, newest first: at most `limit`,
    /// older than `before` when given (the last of the page before).
    pub async fn rooms_of(
        &self,
        user: &str,
        before: Option<RoomId>,
        limit: u32,
    ) -> Result<Vec<Room>, RepoError> {
        let rows = sqlx::query(
            "SELECT doc FROM rooms WHERE (host = $1
                OR id IN (SELECT room_id FROM room_members WHERE user_name = $1))
                AND id < $2
             ORDER BY id DESC LIMIT $3",
        )
        .bind(user.to_string())
        // Every room id sorts before "~" (ids are lower-case letters and digits).
        .bind(before.map_or_else(|| "~".to_string(), |b| b.to_string()))
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(room_from_row).collect()
    }

    /// How many rooms `host` has that are not closed.
    pub async fn open_rooms_of(&self, host: &str) -> Result<u64, RepoError> {
        let rows = sqlx::query("SELECT doc FROM rooms WHERE host = $1")
            .bind(host.to_string())
            .fetch_all(self.pool())
            .await?;
        let mut open = 0;
        for r in &rows {
            if room_from_row(r)?.closed_at.is_none() {
                open += 1;
            }
        }
        Ok(open)
    }

    /// Notes that `user` joined `room` (again is a no-op).
    pub async fn add_member(&self, room: RoomId, user: &str, now_ms: i64) -> Result<(), RepoError> {
        sqlx::query(
            "INSERT INTO room_members (room_id, user_name, joined_at) VALUES ($1, $2, $3)
             ON CONFLICT (room_id, user_name) DO NOTHING",
        )
        .bind(room.to_string())
        .bind(user.to_string())
        .bind(now_ms)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Whether `user` has joined `room` (its host counts).
    pub async fn is_member(&self, room: &Room, user: &str) -> Result<bool, RepoError> {
        if room.host == user {
            return Ok(true);
        }
        let row = sqlx::query("SELECT 1 FROM room_members WHERE room_id = $1 AND user_name = $2")
            .bind(room.id.to_string())
            .bind(user.to_string())
            .fetch_optional(self.pool())
            .await?;
        Ok(row.is_some())
    }

    /// Links a recording to its room.
    pub async fn add_room_recording(
        &self,
        room: RoomId,
        rec: RecordingId,
    ) -> Result<(), RepoError> {
        sqlx::query("INSERT INTO room_recordings (room_id, recording_id) VALUES ($1, $2)")
            .bind(room.to_string())
            .bind(rec.to_string())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// A room's recordings' ids, newest first.
    pub async fn room_recordings(&self, room: RoomId) -> Result<Vec<RecordingId>, RepoError> {
        let rows = sqlx::query(
            "SELECT recording_id FROM room_recordings WHERE room_id = $1 ORDER BY recording_id DESC",
        )
        .bind(room.to_string())
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let id: String = r.try_get("recording_id")?;
                id.parse()
                    .map_err(|e: tapedeck_core::id::InvalidId| RepoError::Corrupt {
                        id,
                        message: e.to_string(),
                    })
            })
            .collect()
    }
}
