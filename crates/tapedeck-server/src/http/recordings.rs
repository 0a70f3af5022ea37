//! REST handlers under `/v1`. They validate, check ownership and talk to the
//! supervisor; they never touch media processes directly.

use std::collections::HashMap;
use std::time::Duration;
use tapedeck_core::Code;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::json;
use tapedeck_core::RecordingId;
use tapedeck_core::range::parse_range;
use tapedeck_core::recording::{Action, Recording, SourceKind, Status};
use tapedeck_core::request::{ValidCreate, parse_create};
use tapedeck_store::repo::ListFilter;

use crate::http::access::{check_share, load, load_to_control, share_sig};
use crate::http::auth::Principal;
use crate::http::error::ApiError;
use crate::http::library::page_limit;
use crate::http::state::AppState;
use crate::now_ms;

/// Unknown routes.
pub async fn no_route() -> ApiError {
    ApiError::new(Code::NotFound, "no such route; see /v1/openapi.json")
}

/// `GET /v1/me`: who the token belongs to.
pub async fn me(p: Principal) -> Json<serde_json::Value> {
    Json(json!({"user": p.user, "admin": p.admin}))
}

/// `POST /v1/recordings`.
pub async fn create(
    State(s): State<AppState>,
    p: Principal,
    placed: Option<axum::Extension<crate::http::forward::PlacedByNode>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mut v = parse_create(&body)?;
    crate::engine::source::authorize(&s.supervisor.services, &p, &mut v).await?;
    let rec = new_recording(&s, &p, v, None);
    let rec = s.supervisor.create_as(rec, placed.is_some()).await?;
    crate::engine::source::created(&s.supervisor.services, &rec).await?;
    created(rec)
}

pub(crate) fn created(rec: Recording) -> Result<Response, ApiError> {
    let loc = format!("/v1/recordings/{}", rec.id);
    Ok((StatusCode::CREATED, [(header::LOCATION, loc)], Json(rec)).into_response())
}

/// A new pending recording of `p` from a validated request, held by this
/// node.
pub fn new_recording(
    s: &AppState,
    p: &Principal,
    v: ValidCreate,
    regenerated_from: Option<RecordingId>,
) -> Recording {
    let node = s.node.clustered().then(|| s.node.id.clone());
    crate::engine::source::new_recording(&s.config, &p.user, v, regenerated_from, node)
}

/// `POST /v1/admin/recordings/{id}/retry`: an admin's "store it now" for a
/// recording waiting out a storage retry (`note.code == Code::StorageRetry`).
pub async fn retry_store(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if !p.admin {
        return Err(ApiError::new(
            Code::NotAdmin,
            "only an admin may requeue a recording's storage",
        ));
    }
    let rec = load(&s, &p, &id).await?;
    let waiting = rec
        .note
        .as_ref()
        .is_some_and(|n| n.code == Code::StorageRetry);
    if !waiting || !s.supervisor.retry_store(rec.id).await {
        return Err(ApiError::new(
            Code::InvalidTransition,
            "the recording is not waiting for the store",
        ));
    }
    Ok(Json(json!({"id": rec.id, "retrying": true})))
}

/// `GET /v1/recordings?status=&kind=&limit=&cursor=&q=&metadata.KEY=`.
pub async fn list(
    State(s): State<AppState>,
    p: Principal,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let mut f = ListFilter {
        owner: (!p.admin).then(|| p.user.clone()),
        limit: 50,
        ..Default::default()
    };
    let mut search = None;
    for (k, v) in &q {
        match k.as_str() {
            "status" => {
                f.status = Some(Status::parse(v).ok_or_else(|| {
                    ApiError::new(Code::InvalidQuery, format!("unknown status `{v}`"))
                })?)
            }
            "kind" => {
                f.kind = Some(SourceKind::parse(v).ok_or_else(|| {
                    ApiError::new(Code::InvalidQuery, format!("unknown source kind `{v}`"))
                })?)
            }
            "limit" => f.limit = page_limit(v)?,
            "cursor" => f.before = Some(v.parse()?),
            "owner" if p.admin => f.owner = Some(v.clone()),
            "q" => {
                search = Some(
                    tapedeck_core::search::parse_search(v)
                        .map_err(|e| ApiError::new(Code::InvalidQuery, e.to_string()))?,
                )
            }
            k if k.starts_with("metadata.") => {
                if f.metadata.len() == tapedeck_core::search::MAX_METADATA_FILTERS {
                    return Err(ApiError::new(
                        Code::InvalidQuery,
                        "at most 5 metadata filters",
                    ));
                }
                let m = tapedeck_core::search::parse_metadata_filter(k, v)
                    .map_err(|e| ApiError::new(Code::InvalidQuery, e.to_string()))?;
                f.metadata.push(m);
            }
            "token" => {}
            other => {
                return Err(ApiError::new(
                    Code::InvalidQuery,
                    format!("unknown query parameter `{other}`"),
                ));
            }
        }
    }
    let (mut recs, next) = match search {
        Some(q) => crate::http::library::search(&s, f, &q).await?,
        None => {
            let recs = s.repo.list(&f).await?;
            let next = (recs.len() as u32 == f.limit)
                .then(|| recs.last().map(|r| r.id))
                .flatten();
            (recs, next)
        }
    };
    // Waiting: a web recording for its turn, a camera's spool for its encode.
    for r in recs
        .iter_mut()
        .filter(|r| matches!(r.status, Status::Pending | Status::Processing))
    {
        r.queue_position = s.supervisor.queue_position_of(r).await;
    }
    let next = next.map(|id| id.to_string());
    Ok(Json(json!({"recordings": recs, "next_cursor": next})))
}

/// `GET /v1/recordings/{id}`.
pub async fn get_one(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Recording>, ApiError> {
    let mut rec = load(&s, &p, &id).await?;
    // While it records, the numbers are the driver's, not the last saved ones.
    if !rec.status.is_terminal()
        && let Some(live) = s.supervisor.progress(rec.id)
    {
        rec.stats = live;
    }
    rec.queue_position = s.supervisor.queue_position_of(&rec).await;
    Ok(Json(rec))
}

/// `POST /v1/recordings/{id}/pause|resume|stop|cancel`: one route each (so
/// `Allow` names only POST), all here.
pub async fn action(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    a: Action,
) -> Result<Json<Recording>, ApiError> {
    let rec = load_to_control(&s, &p, &id).await?;
    let mut rec = s.supervisor.act(rec, a).await?;
    // A stopped camera whose encode waits for its turn says where it is.
    rec.queue_position = s.supervisor.queue_position_of(&rec).await;
    Ok(Json(rec))
}

/// A route's method is not one it takes: the API's error body, with axum's
/// `Allow` header kept.
pub async fn method_not_allowed(method: axum::http::Method) -> ApiError {
    ApiError::new(
        Code::MethodNotAllowed,
        format!("this route does not take {method}; the Allow header lists what it takes"),
    )
}

/// `DELETE /v1/recordings/{id}`.
pub async fn delete(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let rec = load_to_control(&s, &p, &id).await?;
    s.supervisor.delete(&rec).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn stream_object(
    s: &AppState,
    key: &str,
    mime: &str,
    headers: &HeaderMap,
    filename: Option<String>,
) -> Result<Response, ApiError> {
    let total = s.blobs.size(key).await?;
    let range = match parse_range(
        headers.get(header::RANGE).and_then(|v| v.to_str().ok()),
        total,
    ) {
        Ok(r) => r,
        Err(_) => {
            return Ok((
                StatusCode::RANGE_NOT_SATISFIABLE,
                [(header::CONTENT_RANGE, format!("bytes */{total}"))],
                ApiError::new(Code::RangeNotSatisfiable, "bad Range header").into_response(),
            )
                .into_response());
        }
    };
    let partial = range.is_some();
    let d = s.blobs.get(key, range).await?;
    let len = d.range.end - d.range.start;
    let body = Body::from_stream(d.stream.map(|c| c.map_err(std::io::Error::other)));
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(mime).unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Some(v) =
        filename.and_then(|f| HeaderValue::from_str(&format!("attachment; filename=\"{f}\"")).ok())
    {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if partial {
        *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
        if let Ok(v) = HeaderValue::from_str(&format!(
            "bytes {}-{}/{}",
            d.range.start,
            d.range.end - 1,
            d.total
        )) {
            resp.headers_mut().insert(header::CONTENT_RANGE, v);
        }
    }
    Ok(resp)
}

fn ensure_completed(rec: &Recording) -> Result<(), ApiError> {
    if rec.status == Status::Completed {
        Ok(())
    } else {
        Err(ApiError::new(
            Code::NotReady,
            format!(
                "the recording is {}; media exists once it is completed",
                rec.status.as_str()
            ),
        ))
    }
}

/// `GET /v1/recordings/{id}/media[?download=1]` with HTTP Range.
pub async fn media(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let rec = load(&s, &p, &id).await?;
    if q.contains_key("start") || q.contains_key("duration") {
        // One of each: `start=1&start=2` would silently take one.
        for k in ["start", "duration"] {
            let n = url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
                .filter(|(key, _)| key == k)
                .count();
            if n > 1 {
                return Err(ApiError::new(
                    Code::InvalidQuery,
                    format!("{k} is given {n} times; give it once"),
                ));
            }
        }
        // A time range, cut without re-encoding (live ones too).
        return crate::http::outputs::range(&s, &rec, &q).await;
    }
    ensure_completed(&rec)?;
    let name = q.contains_key("download").then(|| rec.download_name());
    stream_object(&s, &rec.media_key(), rec.format.mime(), &headers, name).await
}

/// `GET /v1/recordings/{id}/tracks/{track}/media` with HTTP Range: one
/// track file of a room recording.
pub async fn track_media(
    State(s): State<AppState>,
    p: Principal,
    Path((id, track)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let rec = load(&s, &p, &id).await?;
    ensure_completed(&rec)?;
    let t = rec
        .tracks
        .iter()
        .find(|t| t.id == track)
        .ok_or_else(|| ApiError::new(Code::NotFound, "no such track in this recording"))?;
    let mime = match (t.container.as_str(), t.kind.as_str()) {
        ("webm", "audio") => "audio/webm",
        ("webm", _) => "video/webm",
        _ => "video/x-matroska",
    };
    let name = Some(format!("{}-{}.{}", rec.id, t.id, t.container));
    stream_object(&s, &rec.track_key(t), mime, &headers, name).await
}

/// Which JPEG of a recording.
#[derive(Debug, Clone, Copy)]
pub enum Image {
    /// The poster (`/thumbnail`).
    Poster,
    /// The strip of small thumbnails (`/strip`).
    Strip,
}

/// `GET /v1/recordings/{id}/thumbnail` (the poster) and `/strip`: JPEGs.
pub async fn image(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    which: Image,
) -> Result<Response, ApiError> {
    let rec = load(&s, &p, &id).await?;
    let key = match which {
        Image::Poster => rec.poster_key(),
        Image::Strip => rec.strip_key(),
    };
    ensure_completed(&rec)?;
    stream_object(&s, &key, "image/jpeg", &headers, None).await
}

/// The longest a share link lives.
pub const MAX_SHARE_S: u64 = 7 * 86_400;

/// `POST /v1/recordings/{id}/share` (body optional: `{"expires_in_s": N}`).
pub async fn share(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    #[derive(serde::Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct ShareReq {
        expires_in_s: Option<u64>,
    }
    let req: ShareReq = if body.is_empty() {
        ShareReq::default()
    } else {
        tapedeck_core::request::parse_json(&body)?
    };
    let rec = load(&s, &p, &id).await?;
    ensure_completed(&rec)?;
    let ttl = match req.expires_in_s {
        Some(t) if !(1..=MAX_SHARE_S).contains(&t) => {
            return Err(ApiError::new(
                Code::InvalidRequest,
                format!("expires_in_s: {t} must be 1 to {MAX_SHARE_S} (7 days)"),
            ));
        }
        Some(t) => t,
        None => s.config.storage.share_ttl_s.clamp(1, MAX_SHARE_S),
    };
    let exp_ms = now_ms() + ttl as i64 * 1000;
    let exp = exp_ms / 1000;
    let sig = share_sig(&s.share_key, &rec.id.to_string(), exp);
    // The viewer page (title, player, download) for the link's holder.
    let page_url = format!("{}/s/{}?exp={exp}&sig={sig}", s.config.public_url(), rec.id);
    let url = match s
        .blobs
        .presign_get(&rec.media_key(), Duration::from_secs(ttl))
        .await?
    {
        Some(u) => u.to_string(),
        None => format!(
            "{}/v1/shared/{}?exp={exp}&sig={sig}",
            s.config.public_url(),
            rec.id
        ),
    };
    Ok(Json(json!({
        "url": url,
        "page_url": page_url,
        "expires_at": tapedeck_core::recording::time_ms::format(exp_ms),
    })))
}

/// `GET /v1/shared/{id}?exp=&sig=`: a signed, expiring download; no token needed.
pub async fn shared(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let rid: RecordingId = id.parse()?;
    check_share(&s, &rid, &q)?;
    let rec = s.repo.get(rid).await?.ok_or_else(ApiError::not_found)?;
    ensure_completed(&rec)?;
    // Played in the viewer page; `?download=1` saves it under its title.
    let name = q.contains_key("download").then(|| rec.download_name());
    stream_object(&s, &rec.media_key(), rec.format.mime(), &headers, name).await
}
