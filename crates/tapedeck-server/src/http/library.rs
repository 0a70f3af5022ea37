//! What the watch page and the list need beyond the recording routes:
//! renaming, searching the list, and what a share link's viewer shows.

use std::collections::HashMap;
use tapedeck_core::Code;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use serde_json::json;
use tapedeck_core::RecordingId;
use tapedeck_core::recording::Recording;
use tapedeck_store::repo::ListFilter;

use crate::http::auth::Principal;
use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::now_ms;

/// Recordings a search reads at most per request; past it the answer's
/// `next_cursor` says where to go on.
const SEARCH_SCAN: usize = 2000;
/// Recordings read from the database at a time while searching.
const SEARCH_BATCH: u32 = 200;

/// `PATCH /v1/recordings/{id}` `{"title"}`: renames a recording that has
/// ended (while it runs its driver owns the document).
pub async fn rename(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Recording>, ApiError> {
    let title = tapedeck_core::request::parse_rename(&body)?;
    let mut rec = crate::http::access::load_to_control(&s, &p, &id).await?;
    if !rec.status.is_terminal() {
        return Err(ApiError::new(
            Code::NotReady,
            "a recording is renamed once it has ended",
        ));
    }
    rec.title = Some(title);
    s.repo.update(&rec).await?;
    s.events.emit("recording.updated", &rec, now_ms());
    Ok(Json(rec))
}

/// The recordings of `f` (from its cursor on) whose title, kind or
/// metadata hold `q`: at most `f.limit`, reading at most [`SEARCH_SCAN`];
/// and the cursor to go on from, when there may be more.
pub async fn search(
    s: &AppState,
    mut f: ListFilter,
    q: &str,
) -> Result<(Vec<Recording>, Option<RecordingId>), ApiError> {
    let want = f.limit as usize;
    let mut found = Vec::new();
    let mut scanned = 0;
    f.limit = SEARCH_BATCH;
    loop {
        let batch = s.repo.list(&f).await?;
        let Some(last) = batch.last().map(|r| r.id) else {
            return Ok((found, None));
        };
        let full = batch.len() as u32 == SEARCH_BATCH;
        for r in batch {
            scanned += 1;
            let id = r.id;
            if tapedeck_core::search::matches(&r, q) {
                found.push(r);
                if found.len() == want {
                    return Ok((found, Some(id)));
                }
            }
        }
        if !full {
            return Ok((found, None));
        }
        if scanned >= SEARCH_SCAN {
            return Ok((found, Some(last)));
        }
        f.before = Some(last);
    }
}

/// `GET /v1/shared/{id}/info?exp=&sig=`: what the viewer of a share link
/// shows (title, length, size of picture, dates); the link's own check.
pub async fn shared_info(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let rid: RecordingId = id.parse()?;
    crate::http::access::check_share(&s, &rid, &q)?;
    let rec = s.repo.get(rid).await?.ok_or_else(ApiError::not_found)?;
    let exp: i64 = q.get("exp").and_then(|e| e.parse().ok()).unwrap_or(0);
    let media = rec.media.as_ref();
    Ok(Json(json!({
        "id": rec.id,
        "title": rec.title,
        "created_at": tapedeck_core::recording::time_ms::format(rec.created_at),
        "duration_s": rec.duration_s,
        "width": media.map(|m| m.width),
        "height": media.map(|m| m.height),
        "format": rec.format.extension(),
        "expires_at": tapedeck_core::recording::time_ms::format(exp.saturating_mul(1000)),
    })))
}

/// A list's `limit` query parameter: 1 to 200.
pub fn page_limit(v: &str) -> Result<u32, ApiError> {
    v.parse()
        .ok()
        .filter(|l| (1..=200).contains(l))
        .ok_or_else(|| ApiError::new(Code::InvalidQuery, "limit must be 1 to 200"))
}
