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
//! The URL is valid for `uploads.url_expires_s`; the upload itself expires
//! like a tus one (`uploads.expire_after_s` without bytes or a complete).

use std::collections::HashMap;
use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;
use tapedeck_core::recording::{SourceSpec, UploadSource as Spec};
use tapedeck_core::request::ValidCreate;
use tapedeck_core::settings::{Overrides, Preset, VideoSettings};
use tapedeck_core::{Format, RecordingId};
use tokio::io::AsyncWriteExt;

use super::Endpoint;
use super::tus::{begin, check_size, closed, upload_of};
use crate::api::{check_signed, signature};
use crate::app::AppState;
use crate::auth::Principal;
use crate::error::ApiError;
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
}

/// The object a presigned S3 upload goes to.
pub fn object_key(id: RecordingId) -> String {
    format!("uploads/{id}")
}

fn url_sig(key: &[u8], id: RecordingId, exp: i64) -> String {
    signature(key, &format!("upload.{id}.{exp}"))
}

/// `POST /v1/uploads/url`.
pub async fn url(
    State(s): State<AppState>,
    p: Principal,
    body: Bytes,
) -> Result<Response, ApiError> {
    let r: UrlRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("invalid_request", e.to_string()))?;
    let text_ok = |f: &Option<String>| {
        f.as_ref()
            .is_none_or(|t| t.chars().count() <= 256 && !t.chars().any(char::is_control))
    };
    if !text_ok(&r.filename) || !text_ok(&r.content_type) || !text_ok(&r.title) {
        return Err(ApiError::new(
            422,
            "invalid_settings",
            "filename, content_type and title are at most 256 characters, without control characters",
        ));
    }
    if let Some(h) = &r.sha256
        && (h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(ApiError::new(
            422,
            "invalid_settings",
            "sha256 is 64 hexadecimal digits",
        ));
    }
    if r.size == 0 {
        return Err(ApiError::new(422, "invalid_settings", "size is at least 1"));
    }
    check_size(&s, &p.user, r.size).await?;
    let room = match &r.room {
        Some(id) => Some(crate::room::load(&s, &p, id).await?.0.id),
        None => None,
    };
    let video = VideoSettings::resolve(Preset::default(), Overrides::default())
        .map_err(|e| ApiError::bad_request("invalid_request", e.to_string()))?;
    let v = ValidCreate {
        source: SourceSpec::Upload(Spec {
            filename: r.filename.clone(),
            filetype: r.content_type.clone(),
            length: Some(r.size),
            room,
            direct: true,
            expected_sha256: r.sha256.map(|h| h.to_ascii_lowercase()),
            ..Default::default()
        }),
        format: Format::Webm,
        preset: Preset::default(),
        video,
        max_duration_s: None,
        title: r.title.or(r.filename),
        metadata: json!({}),
    };
    let (rec, _ep) = begin(&s, &p, v).await?;
    let expires_in = s.config.uploads.url_expires_s;
    let presigned = s
        .blobs
        .presign_put(&object_key(rec.id), Duration::from_secs(expires_in))
        .await
        .map_err(ApiError::internal)?;
    let upload_url = match presigned {
        Some(u) => u.to_string(),
        None => {
            let exp = now_ms() / 1000 + expires_in as i64;
            let sig = url_sig(&s.share_key, rec.id, exp);
            format!(
                "{}/v1/uploads/{}/direct?exp={exp}&sig={sig}",
                s.config.public_url(),
                rec.id
            )
        }
    };
    let mut headers = serde_json::Map::new();
    if let Some(t) = &r.content_type {
        headers.insert("Content-Type".into(), json!(t));
    }
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "recording_id": rec.id,
            "upload_url": upload_url,
            "method": "PUT",
            "headers": headers,
            "expires_in": expires_in,
        })),
    )
        .into_response())
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
    check_signed(&q, "upload URL", |exp| url_sig(&s.share_key, rid, exp))?;
    let ep = s
        .supervisor
        .services
        .sources
        .endpoint::<Endpoint>(rid)
        .filter(|e| !e.is_closed())
        .ok_or_else(|| ApiError::new(410, "upload_closed", "the upload takes no more bytes"))?;
    let mut st = ep.state.lock().await;
    let limit = st.spec.length.unwrap_or(0);
    // A PUT replaces what an earlier one left.
    let mut file = tokio::fs::File::create(&st.path)
        .await
        .map_err(ApiError::internal)?;
    let mut at = 0u64;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::bad_request("invalid_request", format!("the body was cut: {e}"))
        })?;
        if at + chunk.len() as u64 > limit {
            let _ = file.set_len(0).await;
            st.offset = 0;
            return Err(ApiError::new(
                413,
                "too_large",
                format!("the upload was declared as {limit} bytes"),
            ));
        }
        file.write_all(&chunk).await.map_err(ApiError::internal)?;
        at += chunk.len() as u64;
    }
    file.sync_data().await.map_err(ApiError::internal)?;
    st.offset = at;
    drop(st);
    ep.arrived();
    Ok(StatusCode::OK.into_response())
}

/// `POST /v1/recordings/{id}/complete`: checks a presigned upload and
/// processes it; 202 with the recording.
pub async fn complete(
    State(s): State<AppState>,
    p: Principal,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, ApiError> {
    let (rec, ep) = upload_of(&s, &p, &id).await?;
    let ep = match ep {
        Some(ep) if !ep.is_closed() => ep,
        _ => return Err(closed(&rec)),
    };
    let mut st = ep.state.lock().await;
    if !st.spec.direct {
        return Err(ApiError::new(
            409,
            "invalid_transition",
            "a tus upload completes with its last byte, not with complete",
        ));
    }
    let want = st.spec.length.unwrap_or(0);
    if s.blobs.kind() == "s3" {
        // The object the client sent to the bucket, read into the work folder once.
        let key = object_key(rec.id);
        let dl = s.blobs.get(&key, None).await.map_err(|_| {
            ApiError::new(
                409,
                "upload_incomplete",
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
            409,
            "upload_incomplete",
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
                460,
                "checksum_mismatch",
                format!("the file's SHA-256 is {got}, not the {expected} declared"),
            ));
        }
    }
    drop(st);
    if s.blobs.kind() == "s3" {
        let _ = s.blobs.delete(&object_key(rec.id)).await;
    }
    ep.finished().await;
    let rec = s.repo.get(rec.id).await?.unwrap_or(rec);
    Ok((StatusCode::ACCEPTED, Json(rec)).into_response())
}
