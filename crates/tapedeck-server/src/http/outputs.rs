//! The outputs' routes: a recording's HLS (`/hls/{name}`: the playlist,
//! live while it records and VOD once completed, and its segments), its
//! pictures (`/images`, `/images/{name}`) and any time range of it
//! (`/media?start=&duration=`, in `recordings::media`).

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tapedeck_core::output::OutputSpec;
use tapedeck_core::recording::Recording;
use tapedeck_core::{Code, Status};
use tapedeck_media::ffmpeg::live;

use crate::engine::outputs::{clip, hls, images};
use crate::http::access::load;
use crate::http::auth::Principal;
use crate::http::error::ApiError;
use crate::http::recordings::stream_object;
use crate::http::state::AppState;

/// The playlist's media type.
const M3U8: &str = "application/vnd.apple.mpegurl";

fn no_such(what: &str) -> ApiError {
    // A name from the request is shown, but not at any length.
    let what: String = what.chars().take(120).collect();
    ApiError::new(Code::NotFound, format!("this recording has no {what}"))
}

/// Where a recording's output files are read from now.
enum From {
    /// The work folder: it records (or is being processed).
    Work,
    /// The store: completed.
    Store,
}

fn source_of(rec: &Recording) -> Result<From, ApiError> {
    match rec.status {
        Status::Completed => Ok(From::Store),
        Status::Pending | Status::Recording | Status::Paused | Status::Processing => Ok(From::Work),
        s => Err(ApiError::new(
            Code::NotReady,
            format!("the recording is {}; it has no media", s.as_str()),
        )),
    }
}

/// `GET /v1/recordings/{id}/hls/{name}`: `index.m3u8` (with the
/// request's `?token=` carried into every URI it lists), `init.mp4`, or a
/// segment.
pub async fn hls_file(
    State(s): State<AppState>,
    p: Principal,
    Path((id, name)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let rec = load(&s, &p, &id).await?;
    let Some(segment_s) = rec.outputs.iter().find_map(|o| match o.spec {
        OutputSpec::Hls { segment_s } => Some(segment_s),
        _ => None,
    }) else {
        return Err(no_such("hls output"));
    };
    if !live::is_hls_name(&name) {
        return Err(no_such(&format!("HLS file {name:?}")));
    }
    let from = source_of(&rec)?;
    let playlist = name == live::PLAYLIST;
    // The query's token is carried into the playlist's URIs only when it
    // is what let the caller in (a bearer header is checked before it).
    let token = q
        .get("token")
        .filter(|_| !headers.contains_key(header::AUTHORIZATION))
        .map(|t| format!("token={}", urlencoding(t)));
    match from {
        From::Store if playlist => {
            let key = format!("{}/{name}", hls::prefix(rec.id));
            let text =
                s.blobs.get_bytes(&key).await?.ok_or_else(|| {
                    no_such("stored HLS playlist (the output failed; see outputs)")
                })?;
            Ok(playlist_response(
                &String::from_utf8_lossy(&text),
                token,
                "private, max-age=60",
            ))
        }
        From::Store => {
            let key = format!("{}/{name}", hls::prefix(rec.id));
            stream_object(&s, &key, segment_mime(&name), &headers, None).await
        }
        From::Work if playlist => {
            let text = first_playlist(&hls::dir(&s, rec.id).join(live::PLAYLIST), segment_s).await;
            Ok(playlist_response(&text, token, "no-cache"))
        }
        From::Work => file_response(&hls::dir(&s, rec.id).join(&name), segment_mime(&name)).await,
    }
}

/// The live playlist once it lists a segment: a player given a playlist
/// with none gives up (hls.js: `levelEmptyError`), so before the first
/// segment the answer waits for it, up to three segments' time; then an
/// event playlist with none yet.
async fn first_playlist(path: &std::path::Path, segment_s: u32) -> String {
    let until =
        tokio::time::Instant::now() + std::time::Duration::from_secs(u64::from(segment_s) * 3 + 2);
    loop {
        if let Ok(text) = tokio::fs::read_to_string(path).await
            && !live::segments(&text).is_empty()
        {
            return text;
        }
        if tokio::time::Instant::now() >= until {
            return format!(
                "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:{segment_s}\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:EVENT\n"
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

fn segment_mime(name: &str) -> &'static str {
    if name == live::INIT {
        "video/mp4"
    } else {
        "video/iso.segment"
    }
}

/// Percent-encodes a token for a query (tokens are URL-safe already; this
/// keeps any other byte from breaking the playlist).
fn urlencoding(t: &str) -> String {
    const QUERY: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(t, QUERY).to_string()
}

fn playlist_response(text: &str, token: Option<String>, cache: &'static str) -> Response {
    let body = match token {
        Some(q) => live::with_query(text, &q),
        None => text.to_string(),
    };
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(M3U8)),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        body,
    )
        .into_response()
}

/// A file of the work folder, streamed.
async fn file_response(path: &std::path::Path, mime: &'static str) -> Result<Response, ApiError> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|_| ApiError::new(Code::NotFound, "no such file (yet)"))?;
    let len = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=3600"),
    );
    Ok(resp)
}

fn images_output(rec: &Recording) -> Result<u32, ApiError> {
    rec.outputs
        .iter()
        .find_map(|o| match o.spec {
            OutputSpec::Images { every_s, .. } => Some(every_s),
            _ => None,
        })
        .ok_or_else(|| no_such("images output"))
}

/// `GET /v1/recordings/{id}/images`: the pictures so far, each with its
/// time in the recording.
pub async fn image_list(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let rec = load(&s, &p, &id).await?;
    let every_s = images_output(&rec)?;
    source_of(&rec)?;
    let names = images::names(&s, &rec).await;
    let list: Vec<_> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            json!({
                "name": n,
                "at_s": i as u64 * u64::from(every_s),
                "url": format!("/v1/recordings/{}/images/{n}", rec.id),
            })
        })
        .collect();
    Ok(axum::Json(json!({"every_s": every_s, "images": list})).into_response())
}

/// `GET /v1/recordings/{id}/images/{name}`: one picture (JPEG).
pub async fn image_file(
    State(s): State<AppState>,
    p: Principal,
    Path((id, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let rec = load(&s, &p, &id).await?;
    images_output(&rec)?;
    if !live::is_image_name(&name) {
        return Err(no_such(&format!("picture {name:?}")));
    }
    match source_of(&rec)? {
        From::Store => {
            let key = format!("{}/{name}", images::prefix(rec.id));
            stream_object(&s, &key, "image/jpeg", &headers, None).await
        }
        From::Work => {
            let path = s.work_dir(rec.id).join(live::IMAGES_DIR).join(&name);
            file_response(&path, "image/jpeg").await
        }
    }
}

/// `GET /v1/recordings/{id}/media?start=S&duration=D`: the range as an MP4.
pub async fn range(
    s: &AppState,
    rec: &Recording,
    q: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let num = |k: &str| -> Result<Option<f64>, ApiError> {
        q.get(k)
            .map(|v| {
                v.parse::<f64>().map_err(|_| {
                    ApiError::new(
                        Code::InvalidQuery,
                        format!("{k}: {v:?} is not a number of seconds"),
                    )
                })
            })
            .transpose()
    };
    let start = num("start")?.unwrap_or(0.0);
    let total = rec.duration_s.unwrap_or(clip::MAX_DURATION_S);
    let duration = num("duration")?.unwrap_or((total - start).max(0.001));
    let cut = clip::clip(s, rec, start, duration).await?;
    let file = tokio::fs::File::open(&cut.path)
        .await
        .map_err(|e| ApiError::from(tapedeck_core::Problem::internal(e.to_string())))?;
    let len = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    // The open file is read to its end; its name goes now.
    drop(cut);
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("video/mp4"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Ok(v) = HeaderValue::from_str(&format!("inline; filename=\"{}-{start}s.mp4\"", rec.id)) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

/// `POST /v1/recordings/{id}/outputs`: adds a stream output (rtmp, srt)
/// while the recording records; 201 with the output.
pub async fn add(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let rec = crate::http::access::load_to_control(&s, &p, &id).await?;
    let value: serde_json::Value =
        tapedeck_core::request::parse_json(&body).map_err(tapedeck_core::Problem::from)?;
    let out = s
        .supervisor
        .output(&rec, crate::engine::outputs::stream::Command::Add(value))
        .await?;
    Ok((StatusCode::CREATED, axum::Json(out)).into_response())
}

/// `DELETE /v1/recordings/{id}/outputs/{oid}`: stops a stream output; 204.
pub async fn remove(
    State(s): State<AppState>,
    p: Principal,
    Path((id, oid)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let rec = crate::http::access::load_to_control(&s, &p, &id).await?;
    s.supervisor
        .output(&rec, crate::engine::outputs::stream::Command::Remove(oid))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
