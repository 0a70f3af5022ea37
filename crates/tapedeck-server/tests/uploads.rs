//! Uploads over tus 1.0.0 (`/v1/uploads`): the real tus-js-client in Node
//! through a connection killed mid-way, the protocol's refusals, expiry,
//! and what processing makes of a MediaRecorder-style WebM (a duration,
//! cues, a seekable file) and of a file that is not media.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use support::*;

/// A tus request to `s`.
async fn tus(
    s: &Server,
    token: &str,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> reqwest::Response {
    tus_request(&s.base, token, method, path, headers, body).await
}

use support::header as h;

/// A new upload of `length` bytes; its path (`/v1/uploads/ID`).
async fn create(s: &Server, token: &str, length: u64) -> String {
    let r = tus(
        s,
        token,
        "POST",
        "/v1/uploads",
        &[
            ("Upload-Length", length.to_string()),
            ("Upload-Metadata", "filename YS53ZWJt".into()),
        ],
        vec![],
    )
    .await;
    assert_eq!(r.status(), 201);
    h(&r, "location")
}

/// A new upload whose length is told later; its path.
async fn create_deferred(s: &Server, token: &str) -> String {
    let r = tus(
        s,
        token,
        "POST",
        "/v1/uploads",
        &[("Upload-Defer-Length", "1".into())],
        vec![],
    )
    .await;
    assert_eq!(r.status(), 201);
    h(&r, "location")
}

/// The content type of tus PATCH (and of a creation with its first bytes).
const OCTETS: &str = "application/offset+octet-stream";

/// A tus request of `method` on `path` with `body`, typed as tus bytes,
/// with `headers` and `extra` ones.
async fn octets(
    s: &Server,
    token: &str,
    method: &str,
    path: &str,
    mut headers: Vec<(&str, String)>,
    body: Vec<u8>,
    extra: &[(&str, String)],
) -> reqwest::Response {
    headers.push(("Content-Type", OCTETS.to_string()));
    headers.extend_from_slice(extra);
    tus(s, token, method, path, &headers, body).await
}

/// A tus PATCH of `body` at `offset`.
async fn patch(
    s: &Server,
    token: &str,
    path: &str,
    offset: impl ToString,
    body: Vec<u8>,
    extra: &[(&str, String)],
) -> reqwest::Response {
    let at = vec![("Upload-Offset", offset.to_string())];
    octets(s, token, "PATCH", path, at, body, extra).await
}

/// A new upload of `length` bytes created with its first `body`.
async fn create_with(
    s: &Server,
    token: &str,
    length: impl ToString,
    body: Vec<u8>,
    extra: &[(&str, String)],
) -> reqwest::Response {
    let len = vec![("Upload-Length", length.to_string())];
    octets(s, token, "POST", "/v1/uploads", len, body, extra).await
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tus_js_client_resumes_a_cut_upload_and_the_webm_gets_cues_and_a_duration() {
    let s = start(|_| {}).await;
    let key = s.key("alice", false).await;
    let file = live_webm(&s.data, 6);
    let size = std::fs::metadata(&file).unwrap().len();
    let out = page_script(
        "tus_node.mjs",
        vec![
            s.base.clone(),
            key.clone(),
            file.display().to_string(),
            (size * 2 / 5).to_string(),
        ],
    )
    .await;
    println!("{out}");
    assert_eq!(out["killed"], true, "{out}");
    // It created, sent, lost the connection, asked where to go on, and
    // went on from the server's offset (not from 0, not from the end).
    let reqs = out["requests"].as_array().unwrap();
    let methods: Vec<&str> = reqs.iter().map(|r| r["method"].as_str().unwrap()).collect();
    assert_eq!(methods[..2], ["POST", "PATCH"], "{out}");
    assert!(methods.contains(&"HEAD"), "{out}");
    let resumed: Vec<u64> = reqs
        .iter()
        .filter(|r| r["method"] == "PATCH")
        .filter_map(|r| r["offset"].as_str()?.parse().ok())
        .collect();
    assert_eq!(resumed[0], 0, "{out}");
    let last = *resumed.last().unwrap();
    assert!(
        last > 0 && last < size,
        "resumed at {last} of {size}: {out}"
    );

    let url = out["url"].as_str().unwrap();
    let id = url.rsplit('/').next().unwrap();
    let done = s.wait_status(&key, id, "completed").await;
    println!("{done}");
    // Every byte arrived, in order.
    let bytes = std::fs::read(&file).unwrap();
    assert_eq!(done["source"]["sha256"], sha256_hex(&bytes), "{done}");
    assert_eq!(done["source"]["sha256"], out["sha256"]);
    assert_eq!(done["source"]["length"], size);
    assert_eq!(done["source"]["kind"], "upload");
    assert_eq!(
        (done["format"].as_str(), done["end_reason"].as_str()),
        (Some("webm"), Some("source_ended"))
    );
    // The stored file has a duration and cues, and seeking to the middle decodes.
    let media = s.download(&key, id, "webm").await;
    let p = tapedeck_testkit::ffprobe(&media);
    assert_eq!((p.codec.as_str(), p.width, p.height), ("vp8", 320, 240));
    assert!((p.duration_s - 6.0).abs() < 0.1, "{p:?}");
    assert_eq!(p.frames, 180, "{p:?}");
    assert!(has_cues(&media), "cues in the stored file");
    let seek = Command::new("ffmpeg")
        .args(["-v", "error", "-ss", "3", "-i"])
        .arg(&media)
        .args(["-frames:v", "1", "-f", "null", "-"])
        .output()
        .unwrap();
    assert!(seek.status.success() && seek.stderr.is_empty(), "{seek:?}");
    assert!(
        (done["duration_s"].as_f64().unwrap() - 6.0).abs() < 0.1,
        "{done}"
    );
    // The poster was made.
    let (st, _) = s.get(&key, &format!("/v1/recordings/{id}/thumbnail")).await;
    assert_eq!(st, 200);
}

/// Whether a Matroska file holds a Cues element (ID 1C 53 BB 6B).
fn has_cues(path: &Path) -> bool {
    let b = std::fs::read(path).unwrap();
    b.windows(4).any(|w| w == [0x1C, 0x53, 0xBB, 0x6B])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_protocol_refuses_what_it_does_not_allow_with_a_code() {
    let s = start(|c| c.limits.max_upload_bytes = 1_000_000).await;
    let key = s.key("alice", false).await;
    let other = s.key("bob", false).await;

    let r = tus(&s, &key, "OPTIONS", "/v1/uploads", &[], vec![]).await;
    assert_eq!(r.status(), 204);
    assert_eq!(h(&r, "tus-version"), "1.0.0");
    assert_eq!(h(&r, "tus-max-size"), "1000000");
    for ext in [
        "creation",
        "creation-with-upload",
        "creation-defer-length",
        "termination",
        "expiration",
        "checksum",
    ] {
        assert!(h(&r, "tus-extension").split(',').any(|e| e == ext), "{ext}");
    }
    assert_eq!(h(&r, "tus-checksum-algorithm"), "sha1,sha256");

    // No version: 412; no length: 400; too large: 413; bad metadata: 400.
    let r = s
        .client()
        .post(format!("{}/v1/uploads", s.base))
        .bearer_auth(&key)
        .header("Upload-Length", "10")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 412);
    assert_eq!(h(&r, "tus-resumable"), "1.0.0");
    let code = |v: &Value| v["error"]["code"].as_str().unwrap_or("").to_string();
    let r = tus(&s, &key, "POST", "/v1/uploads", &[], vec![]).await;
    assert_eq!(r.status(), 400);
    let r = tus(
        &s,
        &key,
        "POST",
        "/v1/uploads",
        &[("Upload-Length", "2000000".into())],
        vec![],
    )
    .await;
    assert_eq!(r.status(), 413);
    assert_eq!(code(&r.json().await.unwrap()), "too_large");
    let r = tus(
        &s,
        &key,
        "POST",
        "/v1/uploads",
        &[
            ("Upload-Length", "10".into()),
            ("Upload-Metadata", "filename !!".into()),
        ],
        vec![],
    )
    .await;
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Upload-Metadata"),
        "{e}"
    );
    // Uploads are not created at /v1/recordings.
    let (st, e) = s
        .post(
            &key,
            "/v1/recordings",
            json!({"source": {"kind": "upload"}}),
        )
        .await;
    assert_eq!(st, 400, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/v1/uploads"),
        "{e}"
    );

    // creation-with-upload, then PATCHes: wrong type 415, wrong offset
    // 409, a bad checksum 460 (discarded), a good one taken.
    let data: Vec<u8> = (0..100u8).collect();
    // A first chunk longer than the upload: 413, and no upload left behind
    // that its client cannot reach (it got no Location).
    let (_, before) = s.get(&key, "/v1/recordings").await;
    let r = create_with(&s, &key, 100, vec![7; 1000], &[]).await;
    assert_eq!(r.status(), 413);
    assert!(r.headers().get("location").is_none());
    let (_, after) = s.get(&key, "/v1/recordings").await;
    let live = |v: &Value| {
        v["recordings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["status"] != "cancelled")
            .count()
    };
    assert_eq!(live(&after), live(&before), "{after}");
    let r = create_with(&s, &key, 100, data[..10].to_vec(), &[]).await;
    assert_eq!(r.status(), 201);
    assert_eq!(h(&r, "upload-offset"), "10");
    assert!(
        h(&r, "upload-expires").ends_with("GMT"),
        "{:?}",
        r.headers()
    );
    let path = h(&r, "location");
    // An upload in progress does not pause (its client pauses by not
    // sending); it stays `recording`.
    let id = path.rsplit('/').next().unwrap();
    for action in ["pause", "resume"] {
        let (st, e) = s
            .post(&key, &format!("/v1/recordings/{id}/{action}"), json!({}))
            .await;
        assert_eq!((st, code(&e)), (409, "wrong_source".to_string()), "{e}");
    }
    assert_eq!(
        s.get(&key, &format!("/v1/recordings/{id}")).await.1["status"],
        "recording"
    );
    let r = tus(
        &s,
        &key,
        "PATCH",
        &path,
        &[("Upload-Offset", "10".into())],
        data[10..20].to_vec(),
    )
    .await;
    assert_eq!(r.status(), 415);
    let r = patch(&s, &key, &path, 5, data[5..20].to_vec(), &[]).await;
    assert_eq!(r.status(), 409);
    assert_eq!(code(&r.json().await.unwrap()), "offset_mismatch");
    let sha1 = |b: &[u8]| {
        use base64::Engine;
        use sha1::Digest;
        base64::engine::general_purpose::STANDARD.encode(sha1::Sha1::digest(b))
    };
    let r = patch(
        &s,
        &key,
        &path,
        10,
        data[10..20].to_vec(),
        &[("Upload-Checksum", format!("sha1 {}", sha1(b"other")))],
    )
    .await;
    assert_eq!(r.status().as_u16(), 460);
    let r = tus(&s, &key, "HEAD", &path, &[], vec![]).await;
    assert_eq!(
        (
            h(&r, "upload-offset").as_str(),
            h(&r, "upload-length").as_str()
        ),
        ("10", "100")
    );
    assert_eq!(h(&r, "cache-control"), "no-store");
    let r = patch(
        &s,
        &key,
        &path,
        10,
        data[10..20].to_vec(),
        &[("Upload-Checksum", format!("sha1 {}", sha1(&data[10..20])))],
    )
    .await;
    assert_eq!(r.status(), 204);
    assert_eq!(h(&r, "upload-offset"), "20");
    let r = patch(
        &s,
        &key,
        &path,
        20,
        vec![1],
        &[("Upload-Checksum", "md5 AAAA".into())],
    )
    .await;
    assert_eq!(r.status(), 400);
    // Someone else's upload does not exist for them.
    let r = tus(&s, &other, "HEAD", &path, &[], vec![]).await;
    assert_eq!(r.status(), 404);
    // A chunk that would pass the length is refused whole with 413: the
    // upload stays where it was.
    let r = patch(&s, &key, &path, 20, vec![7; 200], &[]).await;
    assert_eq!(r.status(), 413);
    let r = tus(&s, &key, "HEAD", &path, &[], vec![]).await;
    assert_eq!(h(&r, "upload-offset"), "20");
    let r = patch(&s, &key, &path, 20, vec![7; 80], &[]).await;
    assert_eq!(r.status(), 204);
    // The last byte arrived (100 of 100): it is not media, so it fails clearly.
    let id = path.rsplit('/').next().unwrap().to_string();
    let failed = s.wait_status(&key, &id, "failed").await;
    assert_eq!(failed["error"]["code"], "invalid_media", "{failed}");
    let r = patch(&s, &key, &path, 100, vec![1], &[]).await;
    assert_eq!(r.status(), 410);

    // Termination cancels the recording.
    let path = create(&s, &key, 50).await;
    let r = tus(&s, &key, "DELETE", &path, &[], vec![]).await;
    assert_eq!(r.status(), 204);
    let id = path.rsplit('/').next().unwrap().to_string();
    s.wait_status(&key, &id, "cancelled").await;
    let r = tus(&s, &key, "HEAD", &path, &[], vec![]).await;
    assert_eq!(r.status(), 410);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_that_gets_nothing_expires_and_a_deferred_length_is_told_late() {
    let s = start(|c| {
        c.uploads.expire_after_s = 2;
        c.uploads.start_timeout_s = 4;
    })
    .await;
    let key = s.key("alice", false).await;
    // One that never gets a byte has the start time, longer than the idle
    // one here; one whose bytes stopped has the idle time.
    let never = create(&s, &key, 1000).await;
    let stopped = create(&s, &key, 1000).await;
    let r = patch(&s, &key, &stopped, 0, vec![1; 10], &[]).await;
    assert_eq!(r.status(), 204);
    let r = tus(&s, &key, "HEAD", &never, &[], vec![]).await;
    assert_eq!(r.status(), 200);
    let id = stopped.rsplit('/').next().unwrap().to_string();
    let failed = s.wait_status(&key, &id, "failed").await;
    assert_eq!(failed["end_reason"], "upload_expired", "{failed}");
    let message = failed["error"]["message"].as_str().unwrap();
    assert!(message.contains("for 2 s"), "{failed}");
    let id = never.rsplit('/').next().unwrap().to_string();
    let (_, v) = s.get(&key, &format!("/v1/recordings/{id}")).await;
    assert_eq!(v["status"], "recording", "the start time still runs: {v}");
    let failed = s.wait_status(&key, &id, "failed").await;
    assert_eq!(failed["error"]["code"], "upload_expired", "{failed}");
    let message = failed["error"]["message"].as_str().unwrap();
    assert!(message.contains("within 4 s"), "{failed}");

    // A deferred length: told with the last chunk; the file is processed.
    let file = live_webm(&s.data, 2);
    let bytes = std::fs::read(&file).unwrap();
    let path = create_deferred(&s, &key).await;
    let half = bytes.len() / 2;
    let r = patch(&s, &key, &path, 0, bytes[..half].to_vec(), &[]).await;
    assert_eq!(r.status(), 204);
    let r = tus(&s, &key, "HEAD", &path, &[], vec![]).await;
    assert_eq!(h(&r, "upload-defer-length"), "1");
    let r = patch(
        &s,
        &key,
        &path,
        half,
        bytes[half..].to_vec(),
        &[("Upload-Length", bytes.len().to_string())],
    )
    .await;
    assert_eq!(r.status(), 204);
    let id = path.rsplit('/').next().unwrap().to_string();
    let done = s.wait_status(&key, &id, "completed").await;
    assert_eq!(done["source"]["length"], bytes.len());
    assert!(
        (done["duration_s"].as_f64().unwrap() - 2.0).abs() < 0.1,
        "{done}"
    );
    tokio::time::sleep(Duration::from_millis(10)).await;
}

/// A real MediaRecorder file: Chromium records a canvas and a tone for 4 s
/// in 1 s chunks and uploads it with tus-js-client in the page, one PATCH
/// cut on the way. The completed recording has the bytes the page had, a
/// duration, cues, and decodes from the middle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chromium_mediarecorder_file_uploaded_from_the_page_becomes_seekable() {
    let s = start(|_| {}).await;
    let key = s.key("alice", false).await;
    let out = page_script(
        "mediarecorder.mjs",
        vec![s.base.clone(), key.clone(), "4".into()],
    )
    .await;
    println!("{out}");
    assert_eq!(out["aborted"], true, "{out}");
    assert!(out["chunks"].as_u64().unwrap() >= 4, "1 s chunks: {out}");
    let reqs = out["requests"].as_array().unwrap();
    let methods: Vec<&str> = reqs.iter().map(|r| r["method"].as_str().unwrap()).collect();
    assert!(methods.contains(&"HEAD"), "it asked where to resume: {out}");
    let url = out["url"].as_str().unwrap();
    let id = url.rsplit('/').next().unwrap();
    let done = s.wait_status(&key, id, "completed").await;
    println!("{done}");
    assert_eq!(done["source"]["sha256"], out["sha256"], "{done}");
    assert_eq!(done["source"]["length"], out["size"]);
    assert_eq!(done["note"], Value::Null, "{done}");
    let media = s.download(&key, id, "webm").await;
    let p = tapedeck_testkit::ffprobe(&media);
    assert_eq!(
        (p.codec.as_str(), p.width, p.height),
        ("vp8", 320, 240),
        "{p:?}"
    );
    assert!(p.duration_s > 3.5 && p.duration_s < 4.6, "{p:?}");
    assert!(has_cues(&media));
    let dur = done["duration_s"].as_f64().unwrap();
    assert!((dur - p.duration_s).abs() < 0.05, "{dur} vs {p:?}");
    let seek = Command::new("ffmpeg")
        .args(["-v", "error", "-ss", "2", "-i"])
        .arg(&media)
        .args(["-frames:v", "1", "-f", "null", "-"])
        .output()
        .unwrap();
    assert!(seek.status.success() && seek.stderr.is_empty(), "{seek:?}");
    // What Chromium wrote had no duration: the fix-up gave it one.
    let (st, _) = s.get(&key, &format!("/v1/recordings/{id}/strip")).await;
    assert_eq!(st, 200);
}

/// `format` and `preset` in the metadata ask for a transcode: a 320x240
/// VP8/Opus WebM becomes H.264/AAC MP4 at the preset's size (letterboxed)
/// and rate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn format_and_preset_in_the_metadata_transcode_the_upload() {
    use base64::Engine;
    let s = start(|_| {}).await;
    let key = s.key("alice", false).await;
    let bytes = std::fs::read(live_webm(&s.data, 2)).unwrap();
    let b64 = |v: &str| base64::engine::general_purpose::STANDARD.encode(v);
    let r = create_with(
        &s,
        &key,
        bytes.len(),
        bytes.clone(),
        &[(
            "Upload-Metadata",
            format!("format {},preset {}", b64("mp4"), b64("low")),
        )],
    )
    .await;
    assert_eq!(r.status(), 201);
    let id = h(&r, "location").rsplit('/').next().unwrap().to_string();
    let done = s.wait_status(&key, &id, "completed").await;
    assert_eq!(
        (done["format"].as_str(), done["preset"].as_str()),
        (Some("mp4"), Some("low")),
        "{done}"
    );
    assert_eq!(done["source"]["transcode"], true);
    let media = s.download(&key, &id, "mp4").await;
    let p = tapedeck_testkit::ffprobe(&media);
    assert_eq!(
        (p.codec.as_str(), p.width, p.height),
        ("h264", 854, 480),
        "{p:?}"
    );
    assert!((p.fps - 24.0).abs() < 0.01, "{p:?}");
    assert!((p.duration_s - 2.0).abs() < 0.15, "{p:?}");
    assert_eq!(support::rooms::codecs(&media), ["aac", "h264"]);
}

/// `room` in the metadata files the upload under a room the user hosts or
/// joined (it is listed with the room's recordings); anyone else's room is
/// 404, and nothing is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_may_belong_to_a_room_of_the_users() {
    use base64::Engine;
    let s = start(|_| {}).await;
    let alice = s.key("alice", false).await;
    let bob = s.key("bob", false).await;
    let room = support::rooms::new_room(&s, &alice).await;
    let meta = |room: &str| {
        format!(
            "room {}",
            base64::engine::general_purpose::STANDARD.encode(room)
        )
    };
    let r = tus(
        &s,
        &bob,
        "POST",
        "/v1/uploads",
        &[
            ("Upload-Length", "10".into()),
            ("Upload-Metadata", meta(&room)),
        ],
        vec![],
    )
    .await;
    assert_eq!(r.status(), 404);
    let (_, list) = s.get(&bob, "/v1/recordings").await;
    assert_eq!(
        list["recordings"].as_array().map(Vec::len),
        Some(0),
        "{list}"
    );
    let r = tus(
        &s,
        &alice,
        "POST",
        "/v1/uploads",
        &[
            ("Upload-Length", "10".into()),
            ("Upload-Metadata", meta(&room)),
        ],
        vec![],
    )
    .await;
    assert_eq!(r.status(), 201);
    let id = h(&r, "location").rsplit('/').next().unwrap().to_string();
    let (st, recs) = s.get(&alice, &format!("/v1/rooms/{room}/recordings")).await;
    assert_eq!(st, 200);
    assert_eq!(recs["recordings"][0]["id"], id.as_str(), "{recs}");
    assert_eq!(recs["recordings"][0]["source"]["room"], room.as_str());
}

/// A call's guest (an invite's join token, no API key) uploads into that
/// room only, as the host's upload, and reaches only their own uploads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_uploads_into_their_room_as_the_hosts() {
    use base64::Engine;
    let s = start(|_| {}).await;
    let ann = s.key("ann", false).await;
    let room = support::rooms::new_room(&s, &ann).await;
    let other = support::rooms::new_room(&s, &ann).await;
    let guest = support::rooms::invite(&s, &ann, &room, "Bob").await;
    let meta = |room: &str| {
        format!(
            "room {}",
            base64::engine::general_purpose::STANDARD.encode(room)
        )
    };
    let post = |token: String, meta: Option<String>| {
        let s = &s;
        async move {
            let mut hs = vec![("Upload-Length", "4".to_string())];
            hs.extend(meta.map(|m| ("Upload-Metadata", m)));
            tus(s, &token, "POST", "/v1/uploads", &hs, vec![]).await
        }
    };
    // Another room: 403 wrong_room, nothing created.
    let r = post(guest.clone(), Some(meta(&other))).await;
    assert_eq!(r.status(), 403);
    let e: serde_json::Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "wrong_room", "{e}");
    // No room named: the token's own.
    let r = post(guest.clone(), None).await;
    assert_eq!(r.status(), 201);
    let path = h(&r, "location");
    let id = path.rsplit('/').next().unwrap().to_string();
    let (_, rec) = s.get(&ann, &format!("/v1/recordings/{id}")).await;
    assert_eq!(
        (
            rec["owner"].as_str(),
            rec["source"]["room"].as_str(),
            rec["source"]["guest"].as_str()
        ),
        (Some("ann"), Some(room.as_str()), Some("Bob")),
        "{rec}"
    );
    let r = tus(&s, &guest, "HEAD", &path, &[], vec![]).await;
    assert_eq!(r.status(), 200);
    // The host's own upload in the room is not the guest's; nor is anything
    // outside the tus routes.
    let r = tus(
        &s,
        &ann,
        "POST",
        "/v1/uploads",
        &[
            ("Upload-Length", "4".into()),
            ("Upload-Metadata", meta(&room)),
        ],
        vec![],
    )
    .await;
    let hosts = h(&r, "location");
    let r = tus(&s, &guest, "HEAD", &hosts, &[], vec![]).await;
    assert_eq!(r.status(), 404);
    let (st, _) = s.get(&guest, &format!("/v1/recordings/{id}")).await;
    assert_eq!(st, 401);
    // The guest's bytes complete it.
    let r = patch(&s, &guest, &path, 0, b"junk".to_vec(), &[]).await;
    assert_eq!(r.status(), 204);
    // A closed room takes no new uploads.
    let r = s
        .client()
        .delete(format!("{}/v1/rooms/{room}", s.base))
        .bearer_auth(&ann)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{r:?}");
    let r = post(guest, None).await;
    assert_eq!(r.status(), 409);
}

/// A deferred length grows only as far as the user's quota: the bytes
/// over it are refused with 403 quota_exceeded, those before it kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deferred_length_stops_at_the_users_quota() {
    let s = start(|c| c.limits.user_quota_bytes = 1000).await;
    let key = s.key("alice", false).await;
    let path = create_deferred(&s, &key).await;
    let r = patch(&s, &key, &path, 0, vec![7; 1500], &[]).await;
    assert_eq!(r.status(), 403);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "quota_exceeded", "{e}");
    let r = tus(&s, &key, "HEAD", &path, &[], vec![]).await;
    assert_eq!(h(&r, "upload-offset"), "1000");
    // A length over the quota is refused at creation.
    let r = tus(
        &s,
        &key,
        "POST",
        "/v1/uploads",
        &[("Upload-Length", "1001".into())],
        vec![],
    )
    .await;
    assert_eq!(r.status(), 403);
}

/// A file with sound only (a microphone recording) fails with a clear
/// `invalid_media`, not as an encoder failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sound_only_upload_fails_as_invalid_media() {
    let s = start(|_| {}).await;
    let key = s.key("alice", false).await;
    let file = s.data.join("voice.webm");
    let r = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i", "sine=f=440:d=3"])
        .args(["-c:a", "libopus"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(r.status.success(), "{r:?}");
    let bytes = std::fs::read(&file).unwrap();
    let r = create_with(
        &s,
        &key,
        bytes.len(),
        bytes,
        &[("Upload-Metadata", "filename dm9pY2Uud2VibQ==".into())],
    )
    .await;
    assert_eq!(r.status(), 201);
    let id = h(&r, "location").rsplit('/').next().unwrap().to_string();
    let done = s.wait_status(&key, &id, "failed").await;
    assert_eq!(done["error"]["code"], "invalid_media", "{done}");
    assert!(
        done["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sound only"),
        "{done}"
    );
}

/// Bytes ffmpeg reads as a format of its own (a `[` makes them LRC lyrics)
/// and remuxes into a file it then cannot read: `invalid_media`, with no
/// memory address in the message (was `internal`, with ffmpeg's `@ 0x...`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_that_ffmpeg_half_reads_is_invalid_media() {
    let s = start(|_| {}).await;
    let key = s.key("alice", false).await;
    let mut junk = vec![b'['];
    junk.extend((0u32..1023).map(|i| (i * i * 7 + 3) as u8));
    let id = upload_whole(&s, &key, junk).await;
    let done = s.wait_status(&key, &id, "failed").await;
    assert_eq!(done["error"]["code"], "invalid_media", "{done}");
    assert!(
        !done["error"]["message"].as_str().unwrap().contains("@ 0x"),
        "{done}"
    );
}

/// Uploads opened side by side reserve their declared lengths: together
/// they cannot pass the quota that each one alone fits; a stopped upload's
/// HEAD says it takes no more (410), not that it is whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_opened_at_once_cannot_pass_the_quota_together() {
    let s = start(|c| c.limits.user_quota_bytes = 600_000).await;
    let key = s.key("bob", false).await;
    let mut answers = vec![];
    let mut paths = vec![];
    for _ in 0..6 {
        let r = tus(
            &s,
            &key,
            "POST",
            "/v1/uploads",
            &[("Upload-Length", "174589".into())],
            vec![],
        )
        .await;
        answers.push(r.status().as_u16());
        if r.status() == 201 {
            paths.push(h(&r, "location"));
        }
    }
    assert_eq!(answers, [201, 201, 201, 403, 403, 403]);
    // Cancel one: its reservation goes with it, and one more fits.
    let id = paths[0].rsplit('/').next().unwrap().to_string();
    let (st, _) = s
        .post(&key, &format!("/v1/recordings/{id}/cancel"), json!({}))
        .await;
    assert_eq!(st, 200);
    s.wait_status(&key, &id, "cancelled").await;
    let r = tus(
        &s,
        &key,
        "POST",
        "/v1/uploads",
        &[("Upload-Length", "174589".into())],
        vec![],
    )
    .await;
    assert_eq!(r.status(), 201);

    // A real WebM stopped halfway completes with what arrived; its HEAD
    // is then 410, not the whole length as if every byte had come.
    let ann = s.key("ann", false).await;
    let file = lavfi(
        &s.data,
        "half.webm",
        "testsrc2=s=320x240:r=30",
        &["-t", "4", "-c:v", "libvpx", "-b:v", "400k"],
    );
    let bytes = std::fs::read(&file).unwrap();
    let path = create(&s, &ann, bytes.len() as u64).await;
    let half = bytes.len() / 2;
    let r = patch(&s, &ann, &path, 0, bytes[..half].to_vec(), &[]).await;
    assert_eq!(r.status(), 204);
    let id = path.rsplit('/').next().unwrap().to_string();
    let (st, _) = s
        .post(&ann, &format!("/v1/recordings/{id}/stop"), json!({}))
        .await;
    assert_eq!(st, 200);
    s.wait_status(&ann, &id, "completed").await;
    let r = tus(&s, &ann, "HEAD", &path, &[], vec![]).await;
    assert_eq!(r.status(), 410, "{:?}", r.headers());
}

/// Uploads `bytes` in one request as `name`; its id.
async fn upload_whole(s: &Server, key: &str, bytes: Vec<u8>) -> String {
    let r = create_with(
        s,
        key,
        bytes.len(),
        bytes,
        &[("Upload-Metadata", "filename YS53ZWJt".into())],
    )
    .await;
    assert_eq!(r.status(), 201);
    h(&r, "location").rsplit('/').next().unwrap().to_string()
}

/// A few KB that declare two 16000x16000 pictures fail as `invalid_media`
/// naming the size, refused before anything decodes them; the same file
/// at 256x256 completes; a lower `limits.max_frame_height` refuses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_of_huge_pictures_is_refused_by_its_size() {
    let s = start(|_| {}).await;
    let key = s.key("alice", false).await;
    let huge = tapedeck_testkit::media::declared_size_webm(16000, 16000);
    assert!(huge.len() < 64 * 1024, "{} bytes", huge.len());
    let id = upload_whole(&s, &key, huge).await;
    let done = s.wait_status(&key, &id, "failed").await;
    assert_eq!(done["error"]["code"], "invalid_media", "{done}");
    let message = done["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("16000x16000") && message.contains("7680x4320"),
        "{done}"
    );
    let ok = upload_whole(
        &s,
        &key,
        tapedeck_testkit::media::declared_size_webm(256, 256),
    )
    .await;
    let done = s.wait_status(&key, &ok, "completed").await;
    assert_eq!(
        (
            done["media"]["width"].as_u64(),
            done["media"]["height"].as_u64()
        ),
        (Some(256), Some(256)),
        "{done}"
    );

    let low = start(|c| c.limits.max_frame_height = 200).await;
    let key = low.key("alice", false).await;
    let id = upload_whole(
        &low,
        &key,
        tapedeck_testkit::media::declared_size_webm(256, 256),
    )
    .await;
    let done = low.wait_status(&key, &id, "failed").await;
    assert_eq!(done["error"]["code"], "invalid_media", "{done}");
    assert!(
        done["error"]["message"]
            .as_str()
            .unwrap()
            .contains("256x256"),
        "{done}"
    );
}

/// Uploads that fail leave nothing in `work/` and use none of the quota;
/// the bytes of an upload in progress count against the quota while they
/// are there; a sweep at start removes work folders nothing needs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_uploads_leave_no_bytes_and_bytes_in_work_count_in_the_quota() {
    let s = start(|c| c.limits.user_quota_bytes = 1_000_000).await;
    let key = s.key("alice", false).await;
    let work = s.data.join("work");
    let junk = |n: usize| (0..n).map(|i| (i * 7 + i / 3) as u8).collect::<Vec<u8>>();
    // Six uploads of 900 kB of junk: with the bytes of the failed ones kept,
    // the second would already be over the quota.
    for _ in 0..6 {
        let r = create_with(&s, &key, 900000, junk(900_000), &[]).await;
        assert_eq!(r.status(), 201, "{:?}", r.text().await);
        let id = h(&r, "location").rsplit('/').next().unwrap().to_string();
        let done = s.wait_status(&key, &id, "failed").await;
        assert_eq!(done["error"]["code"], "invalid_media", "{done}");
        // The folder goes as the failure is told (a moment after, on a
        // busy machine).
        let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while work.join(&id).exists() && std::time::Instant::now() < until {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(
            !work.join(&id).exists(),
            "work/{id} is still there after 10 s"
        );
    }

    // 600 kB of an upload arrive: while they are in work/, a new upload of
    // 500 kB is over the quota.
    let path = create(&s, &key, 900_000).await;
    let r = patch(&s, &key, &path, 0, junk(600_000), &[]).await;
    assert_eq!(r.status(), 204);
    // Its driver measures its folder every 2 s: wait for that.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let r = tus(
            &s,
            &key,
            "POST",
            "/v1/uploads",
            &[("Upload-Length", "500000".into())],
            vec![],
        )
        .await;
        if r.status() == 403 {
            let e: Value = r.json().await.unwrap();
            assert_eq!(e["error"]["code"], "quota_exceeded", "{e}");
            break;
        }
        assert_eq!(r.status(), 201);
        let other = h(&r, "location");
        assert_eq!(
            tus(&s, &key, "DELETE", &other, &[], vec![]).await.status(),
            204
        );
        assert!(
            std::time::Instant::now() < deadline,
            "the bytes in work/ never counted"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Terminated: its bytes go, and the quota is free again.
    assert_eq!(
        tus(&s, &key, "DELETE", &path, &[], vec![]).await.status(),
        204
    );
    let id = path.rsplit('/').next().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while work.join(id).exists() {
        assert!(std::time::Instant::now() < deadline, "work/{id} stays");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = tus(
        &s,
        &key,
        "POST",
        "/v1/uploads",
        &[("Upload-Length", "500000".into())],
        vec![],
    )
    .await;
    assert_eq!(r.status(), 201);

    // Left behind (a crash mid-removal, an older version): a folder of no
    // recording and one of a failed recording go; one that is not a
    // recording's is not touched.
    let stray = tapedeck_core::RecordingId::from_parts(1, 7).to_string();
    let failed = s
        .wait_status(&key, &stray_failed(&s, &key).await, "failed")
        .await;
    let failed_id = failed["id"].as_str().unwrap();
    for d in [stray.as_str(), failed_id, "not-a-recording"] {
        std::fs::create_dir_all(work.join(d).join("x")).unwrap();
        std::fs::write(work.join(d).join("x/part"), vec![1u8; 1000]).unwrap();
    }
    let removed = tapedeck_server::engine::work::sweep(&s.state.supervisor.services)
        .await
        .unwrap();
    assert_eq!(removed, 2);
    assert!(!work.join(&stray).exists() && !work.join(failed_id).exists());
    assert!(work.join("not-a-recording/x/part").exists());
}

/// A recording that fails at once (an upload of junk); its id.
async fn stray_failed(s: &Server, key: &str) -> String {
    let r = create_with(s, key, 1000, vec![9u8; 1000], &[]).await;
    assert_eq!(r.status(), 201);
    h(&r, "location").rsplit('/').next().unwrap().to_string()
}

/// Uploads that never get a byte hold nothing for long, and a call guest's
/// uploads take none of the host's slots: an empty file is refused at
/// creation; an upload with no byte expires `uploads.start_timeout_s`
/// after its creation (not a day later); a guest holds at most
/// `limits.max_uploads_per_guest`, and the host still records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_that_never_get_a_byte_hold_nothing_for_long() {
    use base64::Engine;
    let s = start(|c| {
        c.uploads.start_timeout_s = 2;
        c.limits.max_concurrent_per_user = 2;
        c.limits.max_uploads_per_guest = 2;
    })
    .await;
    let ann = s.key("ann", false).await;
    let r = tus(
        &s,
        &ann,
        "POST",
        "/v1/uploads",
        &[("Upload-Length", "0".into())],
        vec![],
    )
    .await;
    assert_eq!(r.status(), 422);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "invalid_settings", "{e}");
    assert!(
        e["error"]["message"].as_str().unwrap().contains("empty"),
        "{e}"
    );

    // A guest of Ann's call opens uploads and sends nothing.
    let room = support::rooms::new_room(&s, &ann).await;
    let guest = support::rooms::invite(&s, &ann, &room, "Bob").await;
    let meta = format!(
        "room {}",
        base64::engine::general_purpose::STANDARD.encode(&room)
    );
    let mut theirs = vec![];
    for _ in 0..2 {
        let r = tus(
            &s,
            &guest,
            "POST",
            "/v1/uploads",
            &[
                ("Upload-Length", "1000".into()),
                ("Upload-Metadata", meta.clone()),
            ],
            vec![],
        )
        .await;
        assert_eq!(r.status(), 201);
        theirs.push(h(&r, "location").rsplit('/').next().unwrap().to_string());
    }
    let r = tus(
        &s,
        &guest,
        "POST",
        "/v1/uploads",
        &[
            ("Upload-Length", "1000".into()),
            ("Upload-Metadata", meta.clone()),
        ],
        vec![],
    )
    .await;
    assert_eq!(r.status(), 429);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "too_many_recordings", "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("limits.max_uploads_per_guest"),
        "{e}"
    );
    // Ann's own two slots are hers: the guest's uploads are not in them.
    let mine: Vec<Value> = futures::future::join_all((0..2).map(|_| {
        s.post(
            &ann,
            "/v1/recordings",
            json!({"source": {"kind": "frames"}}),
        )
    }))
    .await
    .into_iter()
    .map(|(st, v)| {
        assert_eq!(st, 201, "{v}");
        v
    })
    .collect();
    // Nothing arrives: the guest's uploads expire within seconds.
    for id in &theirs {
        let failed = s.wait_status(&ann, id, "failed").await;
        assert_eq!(failed["end_reason"], "upload_expired", "{failed}");
        assert!(
            failed["error"]["message"]
                .as_str()
                .unwrap()
                .contains("no byte arrived within 2 s"),
            "{failed}"
        );
    }
    for v in mine {
        let id = v["id"].as_str().unwrap();
        s.post(&ann, &format!("/v1/recordings/{id}/cancel"), json!({}))
            .await;
    }
}
