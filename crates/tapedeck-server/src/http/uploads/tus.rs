//! tus 1.0.0 at `/v1/uploads` (<https://tus.io/protocols/resumable-upload>):
//! the core protocol with the creation, creation-with-upload,
//! creation-defer-length, termination, expiration and checksum (sha1,
//! sha256) extensions. Every request is authenticated like the rest of the
//! API, and an upload is its owner's only. A call's guest (an invite's join
//! token) may upload too: into that room only, as the room host's, and
//! only their own uploads after (see [`Uploader`]).
//!
//! One file past 600 lines on purpose: it is the one protocol's handlers
//! (create, HEAD, PATCH, DELETE, OPTIONS) and the header checks they share;
//! what is not tus (access, quota, the engine's upload) lives elsewhere.
//!
//! - `OPTIONS /v1/uploads`: what is spoken.
//! - `POST /v1/uploads` (`Upload-Length` or `Upload-Defer-Length: 1`,
//!   `Upload-Metadata`, optionally the first bytes): creates the recording;
//!   `Location: /v1/uploads/{recording id}`.
//! - `HEAD /v1/uploads/{id}`: `Upload-Offset`, the length, the expiry.
//! - `PATCH /v1/uploads/{id}` (`Upload-Offset`, optionally
//!   `Upload-Checksum` and a deferred `Upload-Length`): appends.
//! - `DELETE /v1/uploads/{id}`: terminates (the recording is cancelled).
//!
//! Bytes go to the part file as they arrive: a connection cut mid-chunk
//! keeps what came (unless the chunk carries a checksum, which needs it
//! whole), and `HEAD` says where to resume.

use std::sync::Arc;
use tapedeck_core::Code;

use super::quota::{check_size, reserve_size};
use std::time::{Duration, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use sha1::Digest;
use tapedeck_core::Format;
use tapedeck_core::recording::{EndReason, SourceSpec, Status, UploadSource as Spec};
use tapedeck_core::request::ValidCreate;
use tapedeck_core::settings::{Overrides, Preset, VideoSettings};
use tapedeck_core::upload::{self, ChecksumAlgorithm, ChecksumError, HeaderError};
use tokio::io::AsyncWriteExt;

use super::access::{Uploader, closed, upload_of};
use crate::engine::source::upload::Endpoint;
use crate::http::auth::Principal;
use crate::http::error::ApiError;
use crate::http::recordings::new_recording;
use crate::http::state::AppState;

const OCTETS: &str = "application/offset+octet-stream";

fn tus_header(name: &'static str, value: impl Into<String>) -> (HeaderName, HeaderValue) {
    let v = value.into();
    (
        HeaderName::from_static(name),
        HeaderValue::from_str(&v).unwrap_or(HeaderValue::from_static("")),
    )
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn bad_header(e: HeaderError) -> ApiError {
    ApiError::new(Code::InvalidRequest, e.to_string())
}

/// `Tus-Resumable: 1.0.0` on every request but `OPTIONS` (412 otherwise).
fn check_version(h: &HeaderMap) -> Result<(), ApiError> {
    upload::check_resumable(header_str(h, "tus-resumable"))
        .map_err(|e| ApiError::new(Code::TusVersion, e.to_string()))
}

/// `Upload-Expires` for `at_ms`.
fn http_date(at_ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(u64::try_from(at_ms).unwrap_or(0));
    httpdate::fmt_http_date(t)
}

/// Adds `Tus-Resumable` to a response (errors included).
fn tus(mut r: Response) -> Response {
    r.headers_mut().insert(
        HeaderName::from_static("tus-resumable"),
        HeaderValue::from_static(upload::TUS_VERSION),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn reply(r: Result<Response, ApiError>) -> Response {
    tus(r.unwrap_or_else(IntoResponse::into_response))
}

/// `OPTIONS /v1/uploads`.
pub async fn options(State(s): State<AppState>, _p: Principal) -> Response {
    tus((
        StatusCode::NO_CONTENT,
        [
            tus_header("tus-version", upload::TUS_VERSION),
            tus_header("tus-extension", upload::TUS_EXTENSIONS),
            tus_header("tus-checksum-algorithm", upload::TUS_CHECKSUMS),
            tus_header("tus-max-size", s.config.limits.max_upload_bytes.to_string()),
        ],
    )
        .into_response())
}

/// `POST /v1/uploads`: creates the upload and its recording.
pub async fn create(
    State(s): State<AppState>,
    who: Uploader,
    headers: HeaderMap,
    body: Body,
) -> Response {
    reply(create_inner(s, who, headers, body).await)
}

async fn create_inner(
    s: AppState,
    who: Uploader,
    h: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    check_version(&h)?;
    let meta = match header_str(&h, "upload-metadata") {
        Some(v) => upload::parse_metadata(v).map_err(bad_header)?,
        None => Default::default(),
    };
    // The uploader, the room it is filed under, and the guest who sent it.
    let (p, room, guest) = match who {
        Uploader::User(p) => {
            let room = match &meta.room {
                Some(r) => Some(crate::http::rooms::load(&s, &p, r).await?.0.id),
                None => None,
            };
            (p, room, None)
        }
        Uploader::Guest { room, name } => {
            if meta.room.as_ref().is_some_and(|r| *r != room.to_string()) {
                return Err(ApiError::new(
                    Code::WrongRoom,
                    format!("this join token uploads only into room {room}"),
                ));
            }
            let r = crate::http::rooms::whip::open_room(&s, &room.to_string()).await?;
            let host = Principal {
                user: r.host,
                admin: false,
            };
            (host, Some(room), Some(name))
        }
    };
    let length = match (
        header_str(&h, "upload-length"),
        header_str(&h, "upload-defer-length"),
    ) {
        (Some(v), None) => Some(upload::parse_count("Upload-Length", v).map_err(bad_header)?),
        (None, Some(v)) => {
            upload::parse_defer_length(v).map_err(bad_header)?;
            None
        }
        _ => {
            return Err(ApiError::new(
                Code::InvalidRequest,
                "send Upload-Length, or Upload-Defer-Length: 1 (one of them)",
            ));
        }
    };
    if length == Some(0) {
        // tus clients send no PATCH for an empty file: it would wait for
        // bytes that never come.
        return Err(ApiError::new(
            Code::InvalidSettings,
            "Upload-Length is 0: an empty file is not media",
        ));
    }
    let reserved = match length {
        Some(n) => Some(reserve_size(&s, &p.user, n).await?),
        None => None,
    };
    let format = match meta.format.as_deref() {
        None => None,
        Some("mp4") => Some(Format::Mp4),
        Some("webm") => Some(Format::Webm),
        Some("mkv") => Some(Format::Mkv),
        Some(other) => {
            return Err(ApiError::new(
                Code::InvalidRequest,
                format!("Upload-Metadata: format {other:?} is not mp4, webm or mkv"),
            ));
        }
    };
    let preset: Option<Preset> = match meta.preset.as_deref() {
        None => None,
        Some(v) => Some(serde_json::from_value(serde_json::json!(v)).map_err(|_| {
            ApiError::new(
                Code::InvalidRequest,
                format!("Upload-Metadata: preset {v:?} is not a preset"),
            )
        })?),
    };
    let preset = preset.unwrap_or_default();
    let video = VideoSettings::resolve(preset, Overrides::default())
        .map_err(|e| ApiError::new(Code::InvalidRequest, e.to_string()))?;
    let mut v = ValidCreate {
        outputs: vec![],
        source: SourceSpec::Upload(Spec {
            filename: meta.filename.clone(),
            filetype: meta.filetype.clone(),
            length,
            room,
            transcode: format.is_some() || meta.preset.is_some(),
            guest,
            ..Default::default()
        }),
        format: format.unwrap_or(Format::Webm),
        preset,
        video,
        max_duration_s: None,
        title: meta.title.clone().or(meta.filename.clone()),
        metadata: serde_json::json!({}),
    };
    let outputs = meta
        .outputs
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .map_err(|e| {
            ApiError::new(
                Code::InvalidRequest,
                format!("Upload-Metadata: outputs is not JSON: {e}"),
            )
        })?;
    v.outputs = super::outputs_of(outputs, &v)?;
    let (rec, ep) = begin(&s, &p, v).await?;
    if let Some(r) = reserved {
        r.attach(rec.id);
    }
    let mut headers = vec![(
        header::LOCATION,
        HeaderValue::from_str(&format!("/v1/uploads/{}", rec.id)).map_err(ApiError::internal)?,
    )];
    // creation-with-upload: the first bytes in the same request.
    let with_bytes = header_str(&h, "content-type") == Some(OCTETS);
    if with_bytes {
        let offset = match append(&s, &ep, &h, 0, body).await {
            Ok(o) => o,
            Err(e) => {
                // The client learns no Location from an error: the upload
                // it cannot reach is cancelled, not left to fail later.
                let _ = s
                    .supervisor
                    .act(rec, tapedeck_core::recording::Action::Cancel)
                    .await;
                return Err(e);
            }
        };
        headers.push((
            HeaderName::from_static("upload-offset"),
            HeaderValue::from(offset),
        ));
    }
    headers.push((
        HeaderName::from_static("upload-expires"),
        HeaderValue::from_str(&http_date(ep.expires_at_ms())).map_err(ApiError::internal)?,
    ));
    let mut r = StatusCode::CREATED.into_response();
    r.headers_mut().extend(headers);
    Ok(r)
}

/// Creates the recording of a new upload; it and its endpoint.
pub(super) async fn begin(
    s: &AppState,
    p: &Principal,
    v: ValidCreate,
) -> Result<(tapedeck_core::recording::Recording, Arc<Endpoint>), ApiError> {
    let rec = s.supervisor.create(new_recording(s, p, v, None)).await?;
    crate::engine::source::created(&s.supervisor.services, &rec).await?;
    let ep = s
        .supervisor
        .services
        .sources
        .endpoint_soon::<Endpoint>(rec.id, Duration::from_secs(10))
        .await
        .ok_or_else(|| ApiError::internal("the upload did not open"))?;
    Ok((rec, ep))
}

/// `HEAD /v1/uploads/{id}`.
pub async fn head(
    State(s): State<AppState>,
    p: Uploader,
    UrlPath(id): UrlPath<String>,
    h: HeaderMap,
) -> Response {
    reply(head_inner(s, p, id, h).await)
}

async fn head_inner(
    s: AppState,
    p: Uploader,
    id: String,
    h: HeaderMap,
) -> Result<Response, ApiError> {
    check_version(&h)?;
    let (rec, ep) = upload_of(&s, &p, &id).await?;
    let SourceSpec::Upload(spec) = &rec.source else {
        return Err(ApiError::not_found());
    };
    let mut r = StatusCode::OK.into_response();
    let hs = r.headers_mut();
    let (offset, length, expires) = match ep {
        Some(ep) if !ep.is_closed() => {
            let st = ep.state.lock().await;
            (st.offset, st.spec.length, Some(ep.expires_at_ms()))
        }
        // Every byte arrived (it ended by its last byte): it is processed
        // or done. One stopped early took fewer than its length, and takes
        // no more: 410, not an offset that says it is whole.
        _ if matches!(rec.status, Status::Processing | Status::Completed)
            && matches!(rec.end_reason, None | Some(EndReason::SourceEnded)) =>
        {
            let n = spec.length.unwrap_or(0);
            (n, Some(n), None)
        }
        _ => return Err(closed(&rec)),
    };
    hs.insert("upload-offset", HeaderValue::from(offset));
    match length {
        Some(n) => hs.insert("upload-length", HeaderValue::from(n)),
        None => hs.insert("upload-defer-length", HeaderValue::from_static("1")),
    };
    if let Some(at) = expires {
        hs.insert(
            "upload-expires",
            HeaderValue::from_str(&http_date(at)).map_err(ApiError::internal)?,
        );
    }
    let meta = upload::format_metadata(&upload::UploadMetadata {
        filename: spec.filename.clone(),
        filetype: spec.filetype.clone(),
        title: rec.title.clone(),
        ..Default::default()
    });
    if !meta.is_empty() {
        hs.insert(
            "upload-metadata",
            HeaderValue::from_str(&meta).map_err(ApiError::internal)?,
        );
    }
    Ok(r)
}

/// `PATCH /v1/uploads/{id}`.
pub async fn patch(
    State(s): State<AppState>,
    p: Uploader,
    UrlPath(id): UrlPath<String>,
    h: HeaderMap,
    body: Body,
) -> Response {
    reply(patch_inner(s, p, id, h, body).await)
}

async fn patch_inner(
    s: AppState,
    p: Uploader,
    id: String,
    h: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    check_version(&h)?;
    if header_str(&h, "content-type") != Some(OCTETS) {
        return Err(ApiError::new(
            Code::UnsupportedMediaType,
            format!("a PATCH body is Content-Type: {OCTETS}"),
        ));
    }
    let offset = upload::parse_count(
        "Upload-Offset",
        header_str(&h, "upload-offset").unwrap_or(""),
    )
    .map_err(bad_header)?;
    let (rec, ep) = upload_of(&s, &p, &id).await?;
    let ep = match ep {
        Some(ep) if !ep.is_closed() => ep,
        _ => return Err(closed(&rec)),
    };
    let offset = append(&s, &ep, &h, offset, body).await?;
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut()
        .insert("upload-offset", HeaderValue::from(offset));
    r.headers_mut().insert(
        "upload-expires",
        HeaderValue::from_str(&http_date(ep.expires_at_ms())).map_err(ApiError::internal)?,
    );
    Ok(r)
}

/// Appends `body` at `offset` (which must be where the upload is); the
/// offset after. A deferred `Upload-Length` may come with it; a checksum
/// is checked over the whole chunk, which is discarded on a mismatch.
async fn append(
    s: &AppState,
    ep: &Endpoint,
    h: &HeaderMap,
    offset: u64,
    body: Body,
) -> Result<u64, ApiError> {
    let checksum = match header_str(h, "upload-checksum") {
        Some(v) => Some(upload::parse_checksum(v).map_err(|e| match e {
            ChecksumError::Unsupported(_) | ChecksumError::Invalid(_) => {
                ApiError::new(Code::InvalidRequest, e.to_string())
            }
        })?),
        None => None,
    };
    let new_length = match header_str(h, "upload-length") {
        Some(v) => Some(upload::parse_count("Upload-Length", v).map_err(bad_header)?),
        None => None,
    };
    let mut st = ep.state.lock().await;
    if ep.is_closed() {
        return Err(ApiError::new(
            Code::UploadClosed,
            "the upload takes no more bytes",
        ));
    }
    if offset != st.offset {
        return Err(ApiError::new(
            Code::OffsetMismatch,
            format!("Upload-Offset is {offset}, the upload is at {}", st.offset),
        ));
    }
    match (st.spec.length, new_length) {
        (Some(a), Some(b)) if a != b => {
            return Err(ApiError::new(
                Code::InvalidRequest,
                format!("Upload-Length is {a} already, not {b}"),
            ));
        }
        (None, Some(n)) => {
            if n < st.offset {
                return Err(ApiError::new(
                    Code::InvalidRequest,
                    format!(
                        "Upload-Length {n} is less than the {} bytes already sent",
                        st.offset
                    ),
                ));
            }
            check_size(s, &ep.owner, n).await?;
            st.spec.length = Some(n);
            ep.describe(&st.spec);
        }
        _ => {}
    }
    // A deferred length grows up to the largest upload and the user's quota.
    let lim = &s.config.limits;
    let mut by_quota = false;
    let limit = match st.spec.length {
        Some(n) => n,
        None if lim.user_quota_bytes > 0 => {
            let used = s
                .supervisor
                .services
                .usage_bytes(&ep.owner, Some(ep.id))
                .await?;
            let left = lim.user_quota_bytes.saturating_sub(used);
            by_quota = left < lim.max_upload_bytes;
            left.min(lim.max_upload_bytes)
        }
        None => lim.max_upload_bytes,
    };
    let mut file = tokio::fs::OpenOptions::new()
        .append(true)
        .open(&st.path)
        .await
        .map_err(ApiError::internal)?;
    let start = st.offset;
    let mut at = start;
    let mut sha1 = sha1::Sha1::new();
    let mut sha256 = sha2::Sha256::new();
    let mut stream = body.into_data_stream();
    let mut over = false;
    let mut cut = None;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                cut = Some(e.to_string());
                break;
            }
        };
        let room = limit.saturating_sub(at);
        let take = (chunk.len() as u64).min(room) as usize;
        if take < chunk.len() {
            over = true;
        }
        let part = &chunk[..take];
        if let Some((algo, _)) = &checksum {
            match algo {
                ChecksumAlgorithm::Sha1 => sha1.update(part),
                ChecksumAlgorithm::Sha256 => sha256.update(part),
            }
        }
        file.write_all(part).await.map_err(ApiError::internal)?;
        at += take as u64;
        if over {
            break;
        }
    }
    file.flush().await.map_err(ApiError::internal)?;
    // A chunk that would pass the declared length is refused whole: its
    // bytes cannot be the file's (a deferred length keeps what fits).
    let declared = st.spec.length.is_some();
    let keep = !(over && declared)
        && match &checksum {
            // A chunk with a checksum counts only whole and matching.
            Some((algo, want)) => {
                let got = match algo {
                    ChecksumAlgorithm::Sha1 => sha1.finalize().to_vec(),
                    ChecksumAlgorithm::Sha256 => sha256.finalize().to_vec(),
                };
                cut.is_none() && !over && &got == want
            }
            None => true,
        };
    if !keep {
        file.set_len(start).await.map_err(ApiError::internal)?;
        at = start;
    }
    file.sync_data().await.map_err(ApiError::internal)?;
    // In a cluster the chunk is in the store before it is acknowledged.
    if at > start
        && let Err(e) = s.services.shipping.now(ep.id).await
    {
        file.set_len(start).await.map_err(ApiError::internal)?;
        tracing::warn!(id = %ep.id, error = %e, "an upload's chunk was not shipped");
        let m = format!("the store did not take the chunk; the upload is at {start}");
        return Err(ApiError::new(Code::StorageError, m));
    }
    st.offset = at;
    if at > start {
        ep.arrived();
    }
    let done = st.spec.length == Some(at);
    drop(st);
    if done {
        ep.finished().await;
    }
    if over && by_quota {
        return Err(ApiError::new(
            Code::QuotaExceeded,
            format!("your quota leaves room for {limit} bytes; the rest of this chunk was refused"),
        ));
    }
    if over && declared {
        return Err(ApiError::new(
            Code::TooLarge,
            format!("the upload is {limit} bytes; this chunk would pass that and was refused"),
        ));
    }
    if over {
        return Err(ApiError::new(
            Code::TooLarge,
            format!("the upload may have {limit} bytes; the rest of this chunk was refused"),
        ));
    }
    if let Some(e) = cut {
        return Err(ApiError::new(
            Code::InvalidRequest,
            format!("the chunk was cut ({e}); the upload is at {at}"),
        ));
    }
    if !keep {
        return Err(ApiError::new(
            Code::ChecksumMismatch,
            "the chunk does not match its Upload-Checksum; it was discarded",
        ));
    }
    Ok(at)
}

/// `DELETE /v1/uploads/{id}`: termination (the recording is cancelled).
pub async fn delete(
    State(s): State<AppState>,
    p: Uploader,
    UrlPath(id): UrlPath<String>,
    h: HeaderMap,
) -> Response {
    reply(delete_inner(s, p, id, h).await)
}

async fn delete_inner(
    s: AppState,
    p: Uploader,
    id: String,
    h: HeaderMap,
) -> Result<Response, ApiError> {
    check_version(&h)?;
    let (rec, ep) = upload_of(&s, &p, &id).await?;
    if ep.is_none_or(|e| e.is_closed()) {
        return Err(closed(&rec));
    }
    s.supervisor
        .act(rec, tapedeck_core::recording::Action::Cancel)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
