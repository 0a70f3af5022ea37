//! Presigned direct uploads: what a serverless app does. `POST
//! /v1/uploads/url` creates the upload's recording and answers a URL the
//! client sends the whole file to with one `PUT`; `POST
//! /v1/recordings/{id}/complete` then checks it (size, and SHA-256 when
//! one was given) and processes it.
//!
//! - On S3 storage the URL is the bucket's own presigned URL for
//!   `uploads/{id}`: the bytes go straight to the bucket. Completing reads
//!   the object once into the work folder (processing needs it there) and
//!   deletes it.
//! - On local storage the URL is tapedeck's own,
//!   `PUT /v1/uploads/{id}/direct?exp=&sig=`, signed with the server's link
//!   key (no bearer token, as with a bucket's URL), so a client's code is
//!   the same for both.
//!
//! - A file over `uploads.multipart_threshold_bytes` (on S3 and local
//!   storage) goes in parts instead, each to its own presigned URL: the
//!   bucket's multipart upload (`UploadPart` URLs), or tapedeck's
//!   `PUT /v1/uploads/{id}/direct?part=N&exp=&sig=`. Each part's answer
//!   has an `ETag`; complete lists them (`{"parts": [{"part_number",
//!   "etag"}]}`) and the parts are put together.
//!
//! The URL is valid for `uploads.url_expires_s`; the upload itself expires
//! like a tus one (`uploads.expire_after_s` without bytes or a complete).

use std::collections::HashMap;
use std::time::Duration;
use tapedeck_core::Code;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;
use tapedeck_core::recording::{MultipartSpec, SourceSpec, UploadSource as Spec};
use tapedeck_core::request::ValidCreate;
use tapedeck_core::settings::{Overrides, Preset, VideoSettings};
use tapedeck_core::{Format, RecordingId};
use tokio::io::AsyncWriteExt;

use super::access::{Uploader, closed, upload_of};
use super::quota::reserve_size;
use super::tus::begin;
use crate::engine::source::upload::Endpoint;
use crate::engine::source::upload::object_key;
use crate::http::auth::Principal;
use crate::http::error::ApiError;
use crate::http::secret::{check_signed, signature};
use crate::http::state::AppState;
use crate::now_ms;

/// The body of `POST /v1/uploads/url`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UrlRequest {
    filename: Option<String>,
    content_type: Option<String>,
    size: u64,
    room: Option<String>,
    title: Option<String>,
    /// The file's SHA-256, hex: checked at complete.
    sha256: Option<String>,
    /// Outputs made from the file once processed (hls, images).
    outputs: Option<serde_json::Value>,
}

fn url_sig(key: &[u8], id: RecordingId, exp: i64) -> String {
    signature(key, &format!("upload.{id}.{exp}"))
}

fn part_sig(key: &[u8], id: RecordingId, part: u32, exp: i64) -> String {
    signature(key, &format!("upload.{id}.{exp}.part{part}"))
}

/// Where part `n` of a local multipart upload waits, and its ETag.
fn part_paths(upload: &std::path::Path, n: u32) -> (std::path::PathBuf, std::path::PathBuf) {
    let name = upload.file_name().unwrap_or_default().to_string_lossy();
    (
        upload.with_file_name(format!("{name}.part{n}")),
        upload.with_file_name(format!("{name}.part{n}.etag")),
    )
}

/// `POST /v1/uploads/url`.
pub async fn url(
    State(s): State<AppState>,
    p: Principal,
    body: Bytes,
) -> Result<Response, ApiError> {
    let r: UrlRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(Code::InvalidRequest, e.to_string()))?;
    let text_ok = |f: &Option<String>| {
        f.as_ref()
            .is_none_or(|t| t.chars().count() <= 256 && !t.chars().any(char::is_control))
    };
    if !text_ok(&r.filename) || !text_ok(&r.content_type) || !text_ok(&r.title) {
        return Err(ApiError::new(
            Code::InvalidSettings,
            "filename, content_type and title are at most 256 characters, without control characters",
        ));
    }
    if let Some(h) = &r.sha256
        && (h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(ApiError::new(
            Code::InvalidSettings,
            "sha256 is 64 hexadecimal digits",
        ));
    }
    if r.size == 0 {
        return Err(ApiError::new(Code::InvalidSettings, "size is at least 1"));
    }
    let reserved = reserve_size(&s, &p.user, r.size).await?;
    let room = match &r.room {
        Some(id) => Some(crate::http::rooms::load(&s, &p, id).await?.0.id),
        None => None,
    };
    let video = VideoSettings::resolve(Preset::default(), Overrides::default())
        .map_err(|e| ApiError::new(Code::InvalidRequest, e.to_string()))?;
    let cfg = &s.config.uploads;
    let multipart = (r.size > cfg.multipart_threshold_bytes
        && matches!(s.blobs.kind(), "s3" | "local"))
    .then(|| MultipartSpec::plan(r.size, cfg.part_size_bytes));
    let mut v = ValidCreate {
        outputs: vec![],
        source: SourceSpec::Upload(Spec {
            filename: r.filename.clone(),
            filetype: r.content_type.clone(),
            length: Some(r.size),
            room,
            direct: true,
            expected_sha256: r.sha256.map(|h| h.to_ascii_lowercase()),
            multipart: multipart.clone(),
            ..Default::default()
        }),
        format: Format::Webm,
        preset: Preset::default(),
        video,
        max_duration_s: None,
        title: r.title.or(r.filename),
        metadata: json!({}),
    };
    v.outputs = super::outputs_of(r.outputs, &v)?;
    let (rec, ep) = begin(&s, &p, v).await?;
    reserved.attach(rec.id);
    let expires_in = cfg.url_expires_s;
    let ttl = Duration::from_secs(expires_in);
    let exp = now_ms() / 1000 + expires_in as i64;
    let local_url = |query: String| {
        format!(
            "{}/v1/uploads/{}/direct?{query}",
            s.config.public_url(),
            rec.id
        )
    };
    let mut headers = serde_json::Map::new();
    if let Some(t) = &r.content_type {
        headers.insert("Content-Type".into(), json!(t));
    }
    if s.blobs.kind() == "azure" {
        // Azure's Put Blob names the kind of blob it makes.
        headers.insert("x-ms-blob-type".into(), json!("BlockBlob"));
    }
    let mut body = json!({
        "recording_id": rec.id,
        "method": "PUT",
        "headers": headers,
        "expires_in": expires_in,
    });
    match multipart {
        Some(mut m) => {
            let urls: Vec<String> = match s
                .blobs
                .presign_multipart(&object_key(rec.id), m.parts, ttl)
                .await
                .map_err(ApiError::internal)?
            {
                Some(d) => {
                    m.upload_id = Some(d.upload_id);
                    let mut st = ep.state.lock().await;
                    st.spec.multipart = Some(m.clone());
                    ep.describe(&st.spec);
                    d.part_urls.into_iter().map(|u| u.to_string()).collect()
                }
                None => (1..=m.parts)
                    .map(|n| {
                        let sig = part_sig(&s.share_key, rec.id, n, exp);
                        local_url(format!("part={n}&exp={exp}&sig={sig}"))
                    })
                    .collect(),
            };
            let parts: Vec<_> = urls
                .into_iter()
                .zip(1..)
                .map(
                    |(url, n)| json!({"part_number": n, "url": url, "size": m.part_len(r.size, n)}),
                )
                .collect();
            body["multipart"] = json!({"part_size": m.part_size, "parts": parts});
        }
        None => {
            let url = match s
                .blobs
                .presign_put(&object_key(rec.id), ttl)
                .await
                .map_err(ApiError::internal)?
            {
                Some(u) => u.to_string(),
                None => {
                    let sig = url_sig(&s.share_key, rec.id, exp);
                    local_url(format!("exp={exp}&sig={sig}"))
                }
            };
            body["upload_url"] = json!(url);
        }
    }
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `PUT /v1/uploads/{id}/direct?exp=&sig=`: the whole file, on local
/// storage (authorized by the URL's signature, not a token).
pub async fn put(
    State(s): State<AppState>,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<HashMap<String, String>>,
    body: Body,
) -> Result<Response, ApiError> {
    let rid: RecordingId = id.parse()?;
    let part: Option<u32> = match q.get("part") {
        Some(n) => Some(
            n.parse()
                .map_err(|_| ApiError::new(Code::InvalidSignature, "part is not a part number"))?,
        ),
        None => None,
    };
    check_signed(&q, "upload URL", |exp| match part {
        Some(n) => part_sig(&s.share_key, rid, n, exp),
        None => url_sig(&s.share_key, rid, exp),
    })?;
    let ep = s
        .supervisor
        .services
        .sources
        .endpoint::<Endpoint>(rid)
        .filter(|e| !e.is_closed())
        .ok_or_else(|| ApiError::new(Code::UploadClosed, "the upload takes no more bytes"))?;
    if let Some(n) = part {
        return put_part(&ep, n, body).await;
    }
    let mut st = ep.state.lock().await;
    let limit = st.spec.length.unwrap_or(0);
    // A whole PUT replaces what an earlier one left; a refused or cut one
    // leaves it as it was, as a bucket does.
    let (at, _) = replace_with_body(&st.path, body, limit, || {
        format!("the upload was declared as {limit} bytes")
    })
    .await?;
    st.offset = at;
    drop(st);
    ep.arrived();
    Ok(StatusCode::OK.into_response())
}

/// Writes `body` to `path` through a file beside it, which replaces `path`
/// only once the whole body arrived and is synced: a body over `limit`
/// bytes (413, `too_large` saying `over()`) or cut off leaves `path` as it
/// was. Returns the bytes written and their SHA-256.
async fn replace_with_body(
    path: &std::path::Path,
    body: Body,
    limit: u64,
    over: impl Fn() -> String,
) -> Result<(u64, [u8; 32]), ApiError> {
    use sha2::Digest;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!("{name}.incoming"));
    let written = async {
        let mut file = tokio::fs::File::create(&tmp)
            .await
            .map_err(ApiError::internal)?;
        let mut hash = sha2::Sha256::new();
        let mut at = 0u64;
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                ApiError::new(Code::InvalidRequest, format!("the body was cut: {e}"))
            })?;
            at += chunk.len() as u64;
            if at > limit {
                return Err(ApiError::new(Code::TooLarge, over()));
            }
            hash.update(&chunk);
            file.write_all(&chunk).await.map_err(ApiError::internal)?;
        }
        file.sync_data().await.map_err(ApiError::internal)?;
        Ok((at, hash.finalize().into()))
    }
    .await;
    match written {
        Ok(w) => {
            tokio::fs::rename(&tmp, path)
                .await
                .map_err(ApiError::internal)?;
            Ok(w)
        }
        Err(e) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            Err(e)
        }
    }
}

/// Part `n` of a local multipart upload, into its own file; 200 with its
/// `ETag` (the first 128 bits of its SHA-256).
async fn put_part(ep: &Endpoint, n: u32, body: Body) -> Result<Response, ApiError> {
    let (upload, spec) = {
        let st = ep.state.lock().await;
        (st.path.clone(), st.spec.clone())
    };
    let (m, size) = match (&spec.multipart, spec.length) {
        (Some(m), Some(size)) => (m.clone(), size),
        _ => {
            return Err(ApiError::new(
                Code::InvalidRequest,
                "this upload is not in parts",
            ));
        }
    };
    let want = m.part_len(size, n).ok_or_else(|| {
        ApiError::new(
            Code::InvalidRequest,
            format!("the upload has parts 1 to {}, not {n}", m.parts),
        )
    })?;
    let (path, etag_path) = part_paths(&upload, n);
    // A part PUT again replaces the earlier one only when whole and of its size.
    let staged = path.with_file_name(format!(
        "{}.staged",
        path.file_name().unwrap_or_default().to_string_lossy()
    ));
    let (at, hash) =
        replace_with_body(&staged, body, want, || format!("part {n} is {want} bytes")).await?;
    if at != want {
        let _ = tokio::fs::remove_file(&staged).await;
        return Err(ApiError::new(
            Code::InvalidRequest,
            format!("part {n} is {want} bytes, not {at}"),
        ));
    }
    tokio::fs::rename(&staged, &path)
        .await
        .map_err(ApiError::internal)?;
    let etag = format!("\"{}\"", hex::encode(&hash[..16]));
    tokio::fs::write(&etag_path, &etag)
        .await
        .map_err(ApiError::internal)?;
    ep.arrived();
    Ok((StatusCode::OK, [(axum::http::header::ETAG, etag)]).into_response())
}

/// The body of `POST /v1/recordings/{id}/complete` (optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CompleteRequest {
    /// A multipart upload's parts and the ETags their PUTs answered.
    #[serde(default)]
    parts: Vec<CompletedPart>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CompletedPart {
    part_number: u32,
    etag: String,
}

/// The ETags of parts 1..=`m.parts`, in order, from what the client listed.
fn etags_in_order(m: &MultipartSpec, listed: Vec<CompletedPart>) -> Result<Vec<String>, ApiError> {
    let mut by_number = std::collections::BTreeMap::new();
    for p in listed {
        by_number.insert(p.part_number, p.etag);
    }
    let missing: Vec<String> = (1..=m.parts)
        .filter(|n| !by_number.contains_key(n))
        .map(|n| n.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(ApiError::new(
            Code::UploadIncomplete,
            format!(
                "complete lists the ETag of every part; missing: {}",
                missing.join(", ")
            ),
        ));
    }
    if by_number.len() != m.parts as usize {
        return Err(ApiError::new(
            Code::InvalidRequest,
            format!("the upload has parts 1 to {}", m.parts),
        ));
    }
    Ok(by_number.into_values().collect())
}

/// `POST /v1/recordings/{id}/complete`: checks a presigned upload and
/// processes it; 202 with the recording.
pub async fn complete(
    State(s): State<AppState>,
    p: Principal,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: CompleteRequest = if body.is_empty() {
        CompleteRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::new(Code::InvalidRequest, e.to_string()))?
    };
    // The body is checked before the upload's state: a malformed request
    // is that whatever the upload has become.
    if let Some(bad) = req.parts.iter().find(|p| p.part_number == 0) {
        return Err(ApiError::new(
            Code::InvalidRequest,
            format!(
                "part_number {} is not a part: parts count from 1",
                bad.part_number
            ),
        ));
    }
    // A recording the caller sees that is no upload: the wrong source,
    // not a missing one.
    if let Ok(rid) = id.parse::<tapedeck_core::RecordingId>()
        && let Some(other) = s.repo.get(rid).await?
        && p.can_see(&other.owner)
        && !matches!(
            other.source,
            tapedeck_core::recording::SourceSpec::Upload(_)
        )
    {
        return Err(ApiError::new(
            Code::WrongSource,
            format!(
                "the recording is a {} recording: only an upload completes",
                other.source.kind().as_str()
            ),
        ));
    }
    let (rec, ep) = upload_of(&s, &Uploader::User(p), &id).await?;
    let ep = match ep {
        Some(ep) if !ep.is_closed() => ep,
        _ => return Err(closed(&rec)),
    };
    let mut st = ep.state.lock().await;
    if !st.spec.direct {
        return Err(ApiError::new(
            Code::InvalidTransition,
            "a tus upload completes with its last byte, not with complete",
        ));
    }
    let want = st.spec.length.unwrap_or(0);
    if let Some(m) = st.spec.multipart.clone() {
        let etags = etags_in_order(&m, req.parts)?;
        match &m.upload_id {
            // The bucket puts the parts together.
            Some(upload_id) => s
                .blobs
                .complete_multipart(&object_key(rec.id), upload_id, etags)
                .await
                .map_err(|e| {
                    ApiError::new(
                        Code::UploadIncomplete,
                        format!("the bucket did not put the parts together: {e}"),
                    )
                })?,
            None => {
                st.offset = join_parts(&st.path, &m, &etags).await?;
            }
        }
    }
    if s.blobs.is_bucket() {
        // The object the client sent to the bucket, read into the work folder once.
        let key = object_key(rec.id);
        let dl = s.blobs.get(&key, None).await.map_err(|_| {
            ApiError::new(
                Code::UploadIncomplete,
                format!("nothing was uploaded to the bucket at {key} yet"),
            )
        })?;
        let mut file = tokio::fs::File::create(&st.path)
            .await
            .map_err(ApiError::internal)?;
        let mut stream = dl.stream;
        let mut at = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(ApiError::internal)?;
            file.write_all(&chunk).await.map_err(ApiError::internal)?;
            at += chunk.len() as u64;
        }
        file.sync_data().await.map_err(ApiError::internal)?;
        st.offset = at;
    }
    if st.offset != want {
        return Err(ApiError::new(
            Code::UploadIncomplete,
            format!("{} of the {want} bytes declared have arrived", st.offset),
        ));
    }
    if let Some(expected) = &st.spec.expected_sha256 {
        let path = st.path.clone();
        let got = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
            use sha2::Digest;
            let mut h = sha2::Sha256::new();
            std::io::copy(&mut std::fs::File::open(path)?, &mut h)?;
            Ok(hex::encode(h.finalize()))
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
        if &got != expected {
            return Err(ApiError::new(
                Code::ChecksumMismatch,
                format!("the file's SHA-256 is {got}, not the {expected} declared"),
            ));
        }
    }
    drop(st);
    if s.blobs.is_bucket() {
        let _ = s.blobs.delete(&object_key(rec.id)).await;
    }
    ep.finished().await;
    let rec = s.repo.get(rec.id).await?.unwrap_or(rec);
    Ok((StatusCode::ACCEPTED, Json(rec)).into_response())
}

/// Puts the parts of a local multipart upload together into `upload`,
/// each checked against the ETag its PUT answered; the bytes written.
async fn join_parts(
    upload: &std::path::Path,
    m: &MultipartSpec,
    etags: &[String],
) -> Result<u64, ApiError> {
    for (n, want) in (1..).zip(etags) {
        let (_, etag_path) = part_paths(upload, n);
        let got = tokio::fs::read_to_string(&etag_path).await.ok();
        if got.as_deref().map(|e| e.trim_matches('"')) != Some(want.trim_matches('"')) {
            return Err(ApiError::new(
                Code::UploadIncomplete,
                match got {
                    None => format!("part {n} has not arrived"),
                    Some(g) => format!("part {n}'s ETag is {g}, not {want}"),
                },
            ));
        }
    }
    let mut out = tokio::fs::File::create(upload)
        .await
        .map_err(ApiError::internal)?;
    let mut at = 0u64;
    for n in 1..=m.parts {
        let (path, _) = part_paths(upload, n);
        let mut part = tokio::fs::File::open(&path)
            .await
            .map_err(ApiError::internal)?;
        at += tokio::io::copy(&mut part, &mut out)
            .await
            .map_err(ApiError::internal)?;
    }
    out.sync_data().await.map_err(ApiError::internal)?;
    for n in 1..=m.parts {
        let (path, etag_path) = part_paths(upload, n);
        let _ = tokio::fs::remove_file(path).await;
        let _ = tokio::fs::remove_file(etag_path).await;
    }
    Ok(at)
}
