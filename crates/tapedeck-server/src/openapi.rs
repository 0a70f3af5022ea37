//! The OpenAPI 3.1 document at `/v1/openapi.json`, written out by hand so it
//! stays readable; `tests/api.rs` checks every documented path is served.

use axum::Json;
use serde_json::{Value, json};

fn op(summary: &str, tag: &str, ok: &str, extra: Value) -> Value {
    let mut o = json!({
        "summary": summary,
        "tags": [tag],
        "responses": {
            ok: {"description": "success"},
            "401": {"$ref": "#/components/responses/Error"},
            "404": {"$ref": "#/components/responses/Error"}
        }
    });
    if let (Some(o), Some(e)) = (o.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            o.insert(k.clone(), v.clone());
        }
    }
    o
}

fn id_param() -> Value {
    json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^rec_[0-9a-z]{26}$"}}])
}

fn codes(list: &[tapedeck_core::codes::Code]) -> Vec<&'static str> {
    list.iter().map(|c| c.code).collect()
}

/// The catalogue as a Markdown table, for the schema's description.
fn catalogue(list: &[tapedeck_core::codes::Code]) -> String {
    let mut s = String::from("| code | status | whose | meaning |\n|---|---|---|---|\n");
    for c in list {
        let whose = match c.blame {
            tapedeck_core::codes::Blame::Client => "client",
            tapedeck_core::codes::Blame::Server => "server",
        };
        s.push_str(&format!(
            "| `{}` | {} | {whose} | {} |\n",
            c.code, c.status, c.meaning
        ));
    }
    s
}

/// The document.
pub fn spec() -> Value {
    let id = id_param();
    let action = |name: &str, what: &str| {
        op(
            what,
            "recordings",
            "200",
            json!({"parameters": id, "responses": {
        "200": {"description": format!("the recording after {name}"), "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Recording"}}}},
        "409": {"$ref": "#/components/responses/Error"}, "401": {"$ref": "#/components/responses/Error"}, "404": {"$ref": "#/components/responses/Error"}}}),
        )
    };
    json!({
        "openapi": "3.1.0",
        "info": {"title": "tapedeck", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Self-hosted recording server. Bearer auth (API key or HS256 JWT); `?token=` is accepted for media, thumbnails and WebSockets. Errors are {\"error\": {\"code\", \"message\"}}."},
        "security": [{"bearer": []}],
        "paths": {
            "/v1/recordings": {
                "post": op("Create a recording", "recordings", "201", json!({
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CreateRecording"}}}},
                    "responses": {"201": {"description": "created", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Recording"}}}},
                                  "400": {"$ref": "#/components/responses/Error"}, "401": {"$ref": "#/components/responses/Error"},
                                  "403": {"$ref": "#/components/responses/Error"}, "422": {"$ref": "#/components/responses/Error"},
                                  "429": {"$ref": "#/components/responses/Error"}}})),
                "get": op("List own recordings, newest first", "recordings", "200", json!({"parameters": [
                    {"name": "status", "in": "query", "schema": {"$ref": "#/components/schemas/Status"}},
                    {"name": "kind", "in": "query", "schema": {"type": "string", "enum": ["frames", "web", "room", "upload"]}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}},
                    {"name": "cursor", "in": "query", "schema": {"type": "string"}, "description": "next_cursor of the previous page"}]}))
            },
            "/v1/recordings/{id}": {
                "get": op("Get a recording", "recordings", "200", json!({"parameters": id})),
                "delete": op("Delete a recording, its media and thumbnails", "recordings", "204", json!({"parameters": id}))
            },
            "/v1/recordings/{id}/pause": {"post": action("pause", "Pause (no gap in the output)")},
            "/v1/recordings/{id}/resume": {"post": action("resume", "Resume")},
            "/v1/recordings/{id}/stop": {"post": action("stop", "Stop and process")},
            "/v1/recordings/{id}/cancel": {"post": action("cancel", "Cancel and discard")},
            "/v1/recordings/{id}/share": {"post": op("A signed, expiring download URL (presigned on S3)", "recordings", "200", json!({"parameters": id,
                "requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": {"expires_in_s": {"type": "integer"}}, "additionalProperties": false}}}}}))},
            "/v1/admin/recordings/{id}/retry": {"post": op("Admins: store now a recording waiting out a storage retry (note storage_retry); 409 when it is not waiting", "admin", "200", json!({"parameters": id}))},
            "/v1/recordings/{id}/regenerate": {"post": op("Record the same web page again as a new recording (regenerated_from links it); the body is a create request whose fields replace the original's, `source` fields merged into the original source", "recordings", "201", json!({"parameters": id,
                "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}},
                "responses": {"201": {"description": "created", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Recording"}}}},
                    "409": {"$ref": "#/components/responses/Error"}, "422": {"$ref": "#/components/responses/Error"},
                    "429": {"$ref": "#/components/responses/Error"}, "401": {"$ref": "#/components/responses/Error"}, "404": {"$ref": "#/components/responses/Error"}}}))},
            "/v1/recordings/{id}/media": {"get": op("The media file; HTTP Range supported; ?download=1 for an attachment", "media", "200", json!({"parameters": id}))},
            "/v1/recordings/{id}/thumbnail": {"get": op("Poster JPEG (frame at 25%)", "media", "200", json!({"parameters": id}))},
            "/v1/recordings/{id}/strip": {"get": op("Strip of small thumbnails", "media", "200", json!({"parameters": id}))},
            "/v1/recordings/{id}/frames": {"get": op("WebSocket: binary messages are JPEG/PNG/WebP frames; text {\"pts_ms\": N} sets the next frame's timestamp; text {\"pts_ms\": N, \"image\": \"data:image/jpeg;base64,...\"} or a bare data:image/... URL is a frame as canvas.toDataURL gives it; the server sends progress JSON", "sources", "101", json!({"parameters": id}))},
            "/v1/events": {"get": op("WebSocket of the caller's recording events", "events", "101", json!({}))},
            "/v1/me": {"get": op("The caller", "auth", "200", json!({}))},
            "/v1/shared/{id}": {"get": op("Download through a share link (exp and sig query parameters; no token)", "media", "200", json!({"parameters": id, "security": []}))},
            "/v1/openapi.json": {"get": op("This document", "meta", "200", json!({"security": []}))},
            "/healthz": {"get": op("Liveness", "meta", "200", json!({"security": []}))},
            "/readyz": {"get": op("Readiness: database, storage, ffmpeg", "meta", "200", json!({"security": []}))},
            "/metrics": {"get": op("Prometheus metrics", "meta", "200", json!({"security": []}))}
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {"Error": {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["code", "message"],
                    "properties": {"code": {"type": "string", "enum": codes(tapedeck_core::codes::API)}, "message": {"type": "string"}}}},
                    "description": catalogue(tapedeck_core::codes::API)},
                "Failure": {"type": "object", "required": ["code", "message"], "description": catalogue(tapedeck_core::codes::FAILURES),
                    "properties": {"code": {"type": "string", "enum": codes(tapedeck_core::codes::FAILURES)}, "message": {"type": "string"}}},
                "Status": {"type": "string", "enum": ["pending", "recording", "paused", "processing", "completed", "failed", "cancelled"]},
                "CreateRecording": {"type": "object", "required": ["source"], "additionalProperties": false, "properties": {
                    "source": {"oneOf": [
                        {"type": "object", "required": ["kind"], "additionalProperties": false, "properties": {"kind": {"const": "frames"}}},
                        {"$ref": "#/components/schemas/WebSource"}]},
                    "format": {"type": "string", "enum": ["mp4", "webm", "mkv"], "default": "mp4"},
                    "preset": {"type": "string", "enum": ["low", "medium", "high", "ultra"], "default": "medium"},
                    "width": {"type": "integer"}, "height": {"type": "integer"}, "fps": {"type": "integer"},
                    "video_bitrate_kbps": {"type": "integer"}, "cfr": {"type": "boolean", "default": true},
                    "max_duration_s": {"type": "integer"}, "title": {"type": "string"}, "metadata": {"type": "object"}}},
                "Recording": {"type": "object", "properties": {
                    "id": {"type": "string"}, "owner": {"type": "string"}, "status": {"$ref": "#/components/schemas/Status"},
                    "end_reason": {"type": ["string", "null"], "enum": ["stopped", "max_duration", "max_size", "quota", "idle", "source_ended", "cancelled", "recovered", "error", null]},
                    "source": {"type": "object"}, "format": {"type": "string"}, "preset": {"type": "string"},
                    "video": {"type": "object", "properties": {"width": {"type": "integer"}, "height": {"type": "integer"}, "fps": {"type": "integer"},
                        "video_bitrate_kbps": {"type": "integer"}, "audio_bitrate_kbps": {"type": "integer"}, "cfr": {"type": "boolean"}}},
                    "max_duration_s": {"type": "integer"}, "title": {"type": ["string", "null"]}, "metadata": {"type": "object"},
                    "created_at": {"type": "string", "format": "date-time"}, "started_at": {"type": ["string", "null"]},
                    "stopped_at": {"type": ["string", "null"]}, "completed_at": {"type": ["string", "null"]}, "expires_at": {"type": ["string", "null"]},
                    "duration_s": {"type": ["number", "null"]}, "size_bytes": {"type": ["integer", "null"]}, "error": {"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/Failure"}]},
                    "note": {"allOf": [{"$ref": "#/components/schemas/Failure"}], "description": "present while the recording waits something out: `storage_retry` means the store refused the finished file, which is kept and stored again with backoff (status stays processing)"},
                    "stats": {"type": "object", "properties": {"frames_in": {"type": "integer"}, "frames_written": {"type": "integer"},
                        "frames_dropped": {"type": "integer"}, "frames_invalid": {"type": "integer"}, "achieved_fps": {"type": "number"},
                        "cpu_s": {"type": "number"}, "processing_s": {"type": "number"},
                        "realtime_factor": {"type": "number", "description": "web: seconds of video recorded per wall-clock second"}}},
                    "media": {"type": ["object", "null"], "description": "container, video_codec, audio_codec (absent without sound), width, height, fps, frames, duration_s, sha256"},
                    "regenerated_from": {"type": "string", "description": "the recording this one re-records"}}},
                "WebSource": {"type": "object", "required": ["kind", "url"], "additionalProperties": false,
                    "description": "A page played in headless Chromium. Give one of script, template or auto (default: auto of 10 s). Script errors are 422 invalid_script naming the step and field; other bad source fields are 422 invalid_source naming the field.",
                    "properties": {
                        "kind": {"const": "web"},
                        "url": {"type": "string", "format": "uri", "description": "http or https; private, loopback and link-local addresses are refused unless web.allow_private_networks"},
                        "viewport": {"type": "string", "pattern": "^[0-9]+x[0-9]+$", "description": "CSS viewport; default the output size (halved at 2x above 1920 wide)"},
                        "mode": {"type": "string", "enum": ["deterministic", "realtime"], "default": "deterministic"},
                        "script": {"type": "array", "items": {"$ref": "#/components/schemas/Step"}, "minItems": 1, "maxItems": 500},
                        "template": {"type": "string", "enum": ["hero_showcase", "features_tour", "full_page_scroll"]},
                        "auto": {"type": "object", "required": ["duration_s"], "properties": {"duration_s": {"type": "integer", "minimum": 1, "maximum": 3600}}},
                        "audio": {"type": "boolean", "description": "Record the page's sound (AAC in MP4, Opus otherwise). Realtime only, where it is on unless false; true with deterministic mode is 422."}}},
                "Step": {"type": "object", "required": ["type"], "description": "See docs/web-recording.md",
                    "properties": {
                        "type": {"type": "string", "enum": ["wait", "goto", "scroll", "hover", "click", "type", "highlight", "move"]},
                        "duration_ms": {"type": "integer", "maximum": 600000}, "url": {"type": "string"}, "selector": {"type": "string"},
                        "by_px": {"type": "integer"}, "text": {"type": "string", "maxLength": 2000}, "per_key_ms": {"type": "integer"},
                        "color": {"type": "string", "pattern": "^#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$"}, "x": {"type": "number"}, "y": {"type": "number"},
                        "easing": {"type": "string", "enum": ["linear", "ease-in", "ease-out", "ease-in-out"]}, "optional": {"type": "boolean"}}}
            }
        }
    })
}

/// `GET /v1/openapi.json`.
pub async fn document() -> Json<Value> {
    Json(spec())
}
