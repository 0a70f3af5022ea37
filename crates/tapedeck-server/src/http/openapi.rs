//! The OpenAPI 3.1 document at `/v1/openapi.json`, written out by hand so it
//! stays readable; `tests/api.rs` checks every documented path is served.
//!
//! One file on purpose, past 600 lines: it is the one document the API
//! publishes, every path and schema beside the others it refers to;
//! split by route, the references would cross files.

use axum::Json;
use serde_json::{Value, json};
use tapedeck_core::Code;

/// An operation: `ok` is its success response; `errors` the statuses it
/// answers with the API's error body (401 on every route with security).
fn op(summary: &str, tag: &str, ok: (&str, Value), errors: &[u16], extra: Value) -> Value {
    let mut responses = serde_json::Map::new();
    responses.insert(ok.0.into(), ok.1);
    let secured = extra
        .get("security")
        .is_none_or(|s| s.as_array().is_some_and(|a| !a.is_empty()));
    for status in errors.iter().chain(secured.then_some(&401)) {
        responses.insert(
            status.to_string(),
            json!({"$ref": "#/components/responses/Error"}),
        );
    }
    let mut o = json!({"summary": summary, "tags": [tag]});
    if let (Some(o), Some(e)) = (o.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            match (k.as_str(), v.as_object()) {
                // More success responses (206, 503, ...).
                ("responses", Some(more)) => responses.extend(more.clone()),
                _ => {
                    o.insert(k.clone(), v.clone());
                }
            }
        }
        o.insert("responses".into(), Value::Object(responses));
    }
    o
}

/// A success response with a JSON body of `schema`.
fn json_ok(status: &'static str, what: &str, schema: Value) -> (&'static str, Value) {
    (
        status,
        json!({"description": what, "content": {"application/json": {"schema": schema}}}),
    )
}

/// A success response with a body of one of `types`.
fn typed_ok(status: &'static str, what: &str, types: &[&str]) -> (&'static str, Value) {
    let content: serde_json::Map<String, Value> =
        types.iter().map(|t| (t.to_string(), json!({}))).collect();
    (status, json!({"description": what, "content": content}))
}

/// `v` or null: optional fields take an explicit null as "not given".
fn nullable(v: Value) -> Value {
    match v.get("type").and_then(Value::as_str) {
        Some(t) => {
            let mut v = v.clone();
            v["type"] = json!([t, "null"]);
            v
        }
        None => json!({"anyOf": [{"type": "null"}, v]}),
    }
}

/// Makes every property of an object schema's `properties` nullable, but
/// those in `not_null`.
fn nullable_props(props: Value, not_null: &[&str]) -> Value {
    match props {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| {
                    let v = if not_null.contains(&k.as_str()) {
                        v
                    } else {
                        nullable(v)
                    };
                    (k, v)
                })
                .collect(),
        ),
        v => v,
    }
}

fn recording() -> Value {
    json!({"$ref": "#/components/schemas/Recording"})
}

fn id_param() -> Value {
    json!([{"name": "id", "in": "path", "required": true,
            "schema": {"type": "string", "pattern": tapedeck_core::id::ID_PATTERN}}])
}

/// A download: the whole file, a Range of it (206), or 416 for a Range
/// outside it.
fn download_params(extra: Value) -> Value {
    let mut p = id_param();
    if let (Some(list), Some(more)) = (p.as_array_mut(), extra.as_array()) {
        list.extend(more.iter().cloned());
    }
    p
}

const MEDIA_TYPES: &[&str] = &["video/mp4", "video/webm", "video/x-matroska"];

fn codes(list: impl Iterator<Item = Code>) -> Vec<&'static str> {
    list.map(Code::as_str).collect()
}

/// The catalogue as a Markdown table, for the schema's description.
fn catalogue(list: impl Iterator<Item = Code>) -> String {
    let mut s = String::from("| code | status | whose | meaning |\n|---|---|---|---|\n");
    for c in list {
        let whose = match c.blame() {
            tapedeck_core::codes::Blame::Client => "client",
            tapedeck_core::codes::Blame::Server => "server",
        };
        s.push_str(&format!(
            "| `{}` | {} | {whose} | {} |\n",
            c.as_str(),
            c.status(),
            c.meaning()
        ));
    }
    s
}

/// Every step of a web script, one schema per `type`.
fn step_schemas() -> Value {
    let dur = |min: u32| json!({"type": "integer", "minimum": min, "maximum": tapedeck_core::script::MAX_STEP_MS});
    let selector = json!({"type": "string", "minLength": 1, "maxLength": tapedeck_core::script::MAX_SELECTOR_CHARS});
    let easing =
        json!({"type": "string", "enum": ["linear", "ease-in", "ease-out", "ease-in-out"]});
    let optional = json!({"type": "boolean", "description": "a missing element skips the step instead of failing the recording"});
    let step = |ty: &str, what: &str, required: &[&str], props: Value| {
        let mut keep = vec!["optional", "easing"];
        keep.extend_from_slice(required);
        let mut p = nullable_props(props, &keep)
            .as_object()
            .cloned()
            .unwrap_or_default();
        p.insert("type".into(), json!({"const": ty}));
        let mut req = vec!["type".to_string()];
        req.extend(required.iter().map(|r| r.to_string()));
        json!({"type": "object", "description": what, "required": req, "additionalProperties": false, "properties": p})
    };
    json!({
        "WaitStep": step("wait", "Hold still", &["duration_ms"], json!({"duration_ms": dur(1)})),
        "GotoStep": step("goto", "Navigate to another page", &["url"], json!({"url": {"type": "string", "pattern": tapedeck_core::script::WEB_URL_PATTERN, "format": "uri"}})),
        "ScrollStep": step("scroll", "Smooth scroll to an element or by a distance; give `selector` or `by_px`", &[], json!({
            "selector": selector, "by_px": {"type": "integer", "minimum": -1_000_000, "maximum": 1_000_000},
            "duration_ms": dur(0), "easing": easing, "optional": optional})),
        "HoverStep": step("hover", "Move onto an element and rest there", &["selector"], json!({"selector": selector, "duration_ms": dur(0), "optional": optional})),
        "ClickStep": step("click", "Move onto an element and click it", &["selector"], json!({"selector": selector, "optional": optional})),
        "TypeStep": step("type", "Click a field and type into it (no control characters but newline and tab)", &["selector", "text"], json!({
            "selector": selector, "text": {"type": "string", "maxLength": tapedeck_core::script::MAX_TEXT_CHARS},
            "per_key_ms": {"type": "integer", "minimum": 0, "maximum": 5000}, "optional": optional})),
        "HighlightStep": step("highlight", "Draw a box around an element", &["selector"], json!({
            "selector": selector, "duration_ms": dur(0), "color": {"type": "string", "pattern": "^#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$"}, "optional": optional})),
        "MoveStep": step("move", "Move the cursor to a point (`x` and `y`, viewport CSS pixels) or to an element (`selector`)", &[], json!({
            "x": {"type": "number", "minimum": -100_000, "maximum": 100_000}, "y": {"type": "number", "minimum": -100_000, "maximum": 100_000},
            "selector": selector, "duration_ms": dur(0), "easing": easing, "optional": optional}))
    })
}

/// The fields of a create request (all optional for regenerate).
fn create_properties() -> Value {
    nullable_props(
        json!({
        "format": {"type": "string", "enum": ["mp4", "webm", "mkv"], "default": "mp4"},
        "preset": {"type": "string", "enum": ["low", "medium", "high", "ultra"], "default": "medium"},
        "width": {"type": "integer", "minimum": 16, "maximum": 7680, "multipleOf": 2},
        "height": {"type": "integer", "minimum": 16, "maximum": 4320, "multipleOf": 2},
        "fps": {"type": "integer", "minimum": 1, "maximum": 120},
        "video_bitrate_kbps": {"type": "integer", "minimum": 50, "maximum": 100_000},
        "cfr": {"type": "boolean", "default": true},
        "max_duration_s": {"type": "integer", "minimum": 1, "maximum": u32::MAX, "description": "capped at limits.max_duration_s"},
        "title": {"type": "string", "maxLength": 200},
        "metadata": {"type": "object", "description": "any JSON object of at most 16 KiB"},
        "outputs": {"type": "array", "maxItems": tapedeck_core::output::MAX_OUTPUTS, "items": {"$ref": "#/components/schemas/OutputSpec"},
            "description": "live outputs: at most one hls and one images; a room recording takes hls, rtmp and srt only with layout grid (its grid is composed live while the call runs); an upload takes no stream"}}),
        &["format", "preset"],
    )
}

/// One output as asked for: its kind and fields.
fn output_spec() -> Value {
    let url = |what: &str| json!({"type": "string", "maxLength": tapedeck_core::output::MAX_URL_LEN, "description": what});
    json!({"oneOf": [
        {"type": "object", "required": ["kind"], "additionalProperties": false, "description": "CMAF segments and a playlist at /hls/index.m3u8: live while recording, VOD after",
         "properties": {"kind": {"const": "hls"}, "segment_s": {"type": "integer", "minimum": 1, "maximum": 10, "default": tapedeck_core::output::DEFAULT_SEGMENT_S}}},
        {"type": "object", "required": ["kind"], "additionalProperties": false, "description": "a JPEG every every_s seconds of recording time, listed at /images",
         "properties": {"kind": {"const": "images"}, "every_s": {"type": "integer", "minimum": 1, "maximum": 3600, "default": 10},
                        "width": {"type": "integer", "minimum": 16, "maximum": 3840, "multipleOf": 2, "default": 640}}},
        {"type": "object", "required": ["kind", "url"], "additionalProperties": false, "description": "the live encode pushed to an RTMP server",
         "properties": {"kind": {"const": "rtmp"}, "url": url("rtmp:// or rtmps://; no user name or password; its address must pass outputs' network policy")}},
        {"type": "object", "required": ["kind", "url"], "additionalProperties": false, "description": "the live encode pushed as MPEG-TS to an SRT listener",
         "properties": {"kind": {"const": "srt"}, "url": url("srt://host:port; its address must pass outputs' network policy")}}]})
}

/// The document.
pub fn spec() -> Value {
    spec_for(&crate::config::RtcConfig::default())
}

/// A name people see (rooms, participants): not blank, no control characters.
const NAME_PATTERN: &str =
    "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$";

/// The room routes and their schemas.
fn room_paths(rtc: &crate::config::RtcConfig) -> (Value, Value) {
    use tapedeck_core::room::{MAX_INVITE_S, MAX_NAME_CHARS};
    let room_id = json!([{"name": "id", "in": "path", "required": true,
        "schema": {"type": "string", "pattern": tapedeck_core::id::ROOM_ID_PATTERN}}]);
    let name = json!({"type": "string", "minLength": 1, "maxLength": MAX_NAME_CHARS, "pattern": NAME_PATTERN});
    let room = json!({"$ref": "#/components/schemas/Room"});
    let mut auto_props = create_properties();
    auto_props["layout"] =
        json!({"type": "string", "enum": ["tracks", "grid"], "default": "tracks"});
    let auto_record = json!({"type": ["object", "null"], "additionalProperties": false, "properties": auto_props,
        "description": "the room records itself: a recording with these settings (a recording's create fields without source, plus layout; titled after the room by default) starts when someone publishes and none runs, owned by the host and listed under the room's recordings"});
    let paths = json!({
        "/v1/rooms": {
            "post": op("Create a room; the caller is its host (429 too_many_rooms past limits.max_open_rooms_per_user open rooms)", "rooms", json_ok("201", "created", room.clone()), &[400, 422, 429], json!({
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["name"], "additionalProperties": false,
                    "properties": {"name": name, "max_participants": {"type": ["integer", "null"], "minimum": 2, "maximum": rtc.max_participants,
                        "description": format!("default {}", rtc.max_participants.min(16))},
                        "auto_record": auto_record.clone(),
                        "idle_stop_s": {"type": ["integer", "null"], "minimum": 1, "maximum": tapedeck_core::room::MAX_IDLE_STOP_S,
                            "description": format!("its recordings stop by themselves (end_reason idle) once the call has been empty this long; default {} with auto_record, else never", tapedeck_core::room::DEFAULT_IDLE_STOP_S)},
                        "max_duration_s": {"type": ["integer", "null"], "minimum": 1, "maximum": u32::MAX, "description": "the longest any recording of the room runs"}}}}}}})),
            "get": op("Rooms the caller hosts or joined, newest first, a page at a time", "rooms",
                json_ok("200", "rooms", json!({"type": "object", "required": ["rooms", "next_cursor"], "properties": {"rooms": {"type": "array", "items": room},
                    "next_cursor": {"type": ["string", "null"], "description": "the cursor of the next page; null on the last"}}})), &[400], json!({"parameters": [
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}},
                    {"name": "cursor", "in": "query", "schema": {"type": "string", "pattern": tapedeck_core::id::ROOM_ID_PATTERN}, "description": "next_cursor of the previous page"}]}))
        },
        "/v1/rooms/{id}": {
            "get": op("A room the caller hosts or joined (others: 404)", "rooms", json_ok("200", "the room", room), &[400, 404], json!({"parameters": room_id})),
            "delete": op("Close a room (its host; a participant gets 403 not_room_host); it takes no one after", "rooms",
                ("204", json!({"description": "closed"})), &[400, 403, 404], json!({"parameters": room_id}))
        },
        "/v1/rooms/{id}/invites": {"post": op("A join token for a guest without an API key, for this room only (its host)", "rooms",
            json_ok("201", "the invite", json!({"type": "object", "required": ["room", "name", "token", "expires_at", "join_url"], "properties": {
                "room": {"type": "string", "pattern": tapedeck_core::id::ROOM_ID_PATTERN}, "name": {"type": "string"}, "token": {"type": "string"},
                "expires_at": {"type": "string", "format": "date-time"}, "join_url": {"type": "string"}}})),
            &[400, 403, 404, 409, 422], json!({"parameters": room_id,
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["name"], "additionalProperties": false,
                    "properties": {"name": name, "expires_in_s": {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_INVITE_S, "description": "default a day"}}}}}}}))},
        "/v1/rooms/{id}/whip": {"post": op("WHIP (RFC 9725): publish into the call. Bearer: a join token for this room, or an API key (the user joins the room). The answer's candidates are the one UDP port (rtc.udp_port) and, with rtc.tcp, a passive TCP one (ICE-TCP, for networks that block UDP); the server is ICE lite, so no trickle. Link headers name the configured STUN/TURN servers (rtc.ice_servers).", "rooms",
            ("201", json!({"description": "the SDP answer; Location is the session", "headers": {"Location": {"schema": {"type": "string"}},
                "Link": {"schema": {"type": "string"}, "description": "an ice-server each (RFC 9725 §4.6), with its TURN credentials"}},
                "content": {"application/sdp": {"schema": {"type": "string"}}}})),
            &[400, 403, 404, 409, 413, 415, 429], json!({"parameters": room_id, "security": [{"bearer": []}],
                "requestBody": {"required": true, "content": {"application/sdp": {"schema": {"type": "string", "description": "an SDP offer (at most 64 KiB)"}}}}})),
            "options": op("The STUN/TURN servers to gather candidates with before the offer, as Link headers (RFC 9725 §4.6). Bearer: as for POST.", "rooms",
                ("204", json!({"description": "Link: an ice-server each, with TURN credentials made for this caller",
                    "headers": {"Link": {"schema": {"type": "string"}}}})), &[400, 403, 404, 409], json!({"parameters": room_id, "security": [{"bearer": []}]}))},
        "/v1/rooms/{id}/ice-servers": {"get": op("The STUN/TURN servers (rtc.ice_servers) for a caller's peer connection, as RTCIceServer objects; TURN credentials made for this caller when the server has a shared secret. Token as for the call socket.", "rooms",
            json_ok("200", "servers", json!({"type": "object", "required": ["ice_servers"], "properties": {"ice_servers": {"type": "array", "items": {"type": "object", "required": ["urls"], "properties": {
                "urls": {"type": "array", "items": {"type": "string"}}, "username": {"type": "string"}, "credential": {"type": "string"}}}}}})),
            &[400, 403, 404, 409],
            json!({"parameters": [room_id[0].clone(), {"name": "token", "in": "query", "required": false, "schema": {"type": "string"}, "description": "a join token or an API key (or the session cookie)"}]}))},
        "/v1/rooms/{id}/whip/{peer}": {"delete": op("Leave: end a WHIP session (its own caller, the host or an admin)", "rooms",
            ("204", json!({"description": "left"})), &[400, 404], json!({"parameters": [room_id[0].clone(),
                {"name": "peer", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^peer_[0-9]+$"}}]}))},
        "/v1/rooms/{id}/call": {"get": op("WebSocket of the call page: join with an SDP offer, answer the server's offers of the others' tracks, see who is in the call and the room's recording events (docs/rooms.md has the messages). Token: Authorization: Bearer or ?token= (a join token for this room, or an API key); 400 not_websocket without an upgrade", "rooms",
            ("101", json!({"description": "switching to the WebSocket protocol"})), &[400, 401, 404, 409],
            json!({"parameters": [room_id[0].clone(), {"name": "token", "in": "query", "required": false, "schema": {"type": "string"}, "description": "the token, for browsers (a WebSocket has no headers)"}]}))},
        "/v1/rooms/{id}/recordings": {"get": op("The room's recordings, newest first", "rooms",
            json_ok("200", "recordings", json!({"type": "object", "required": ["recordings"], "properties": {"recordings": {"type": "array", "items": recording()}}})),
            &[400, 404], json!({"parameters": room_id}))}
    });
    let schemas = json!({
        "Room": {"type": "object", "required": ["id", "name", "host", "max_participants", "created_at", "join_url"], "properties": {
            "id": {"type": "string", "pattern": tapedeck_core::id::ROOM_ID_PATTERN}, "name": {"type": "string"}, "host": {"type": "string"},
            "max_participants": {"type": "integer"}, "created_at": {"type": "string", "format": "date-time"},
            "closed_at": {"type": ["string", "null"], "format": "date-time"}, "join_url": {"type": "string", "description": "the call page"},
            "node": {"type": "string", "description": "a cluster's node that holds the call (absent on a server alone)"},
            "auto_record": {"type": "object", "description": "the settings of the recording the room starts by itself (absent: it does not)"},
            "idle_stop_s": {"type": "integer", "description": "its recordings stop once the call has been empty this long"},
            "max_duration_s": {"type": "integer", "description": "the longest any recording of the room runs"}}}
    });
    (paths, schemas)
}

/// The document, for a server with `rtc`'s room limits.
pub fn spec_for(rtc: &crate::config::RtcConfig) -> Value {
    let id = id_param();
    let id_one = id[0].clone();
    let action = |what: &str, after: &str| {
        op(
            what,
            "recordings",
            json_ok("200", &format!("the recording after {after}"), recording()),
            &[400, 403, 404, 409],
            json!({"parameters": id}),
        )
    };
    let mut create = create_properties();
    create["source"] = json!({"oneOf": [
        {"type": "object", "required": ["kind"], "additionalProperties": false, "properties": {"kind": {"const": "frames"},
            "input_fps": {"type": ["integer", "null"], "minimum": 1, "maximum": 120, "description": "the rate the client means to send at (a camera page's 5 fps): its admission cost is estimated from it; the output rate when not given"}}},
        {"$ref": "#/components/schemas/WebSource"},
        {"type": "object", "required": ["kind", "room"], "additionalProperties": false,
         "description": "A room's call: only its host records it; the recording is WebM (each track as it arrived, VP8 and Opus)",
         "properties": {"kind": {"const": "room"}, "room": {"type": "string", "pattern": tapedeck_core::id::ROOM_ID_PATTERN},
            "layout": {"type": "string", "enum": ["tracks", "grid"], "default": "tracks", "description": "`tracks`: /media is every track side by side in WebM, as received; `grid`: /media is the participants composed in a grid with their names, at the preset's size and rate, in the format asked for (made after stop; `stats.progress`)"}}}]});
    let mut regenerate = create_properties();
    regenerate["source"] = json!({"type": "object", "additionalProperties": false,
        "description": "fields merged into the original web source",
        "properties": nullable_props(json!({"kind": {"const": "web"}, "url": {"$ref": "#/components/schemas/WebUrl"},
            "viewport": {"$ref": "#/components/schemas/Viewport"}, "mode": {"type": "string", "enum": ["deterministic", "realtime"]},
            "script": {"$ref": "#/components/schemas/Script"}, "template": {"$ref": "#/components/schemas/Template"},
            "auto": {"$ref": "#/components/schemas/Auto"}, "audio": {"type": "boolean"},
            "split": {"type": "string", "enum": ["auto", "off"]}}), &["kind", "url", "mode", "script"])});
    let range = json!([{"name": "Range", "in": "header", "required": false, "schema": {"type": "string"},
        "description": "one range, `bytes=START-END`, `bytes=START-` or `bytes=-SUFFIX`: 206; one starting past the end is 416; any other value is ignored (200, the whole file), as RFC 9110 allows"}]);
    let partial = |types: &[&str]| json!({"206": typed_ok("206", "the range asked for", types).1});
    let media_ok = typed_ok("200", "the whole file", MEDIA_TYPES);
    let mut schemas = json!({
        "Id": {"type": "string", "pattern": tapedeck_core::id::ID_PATTERN},
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["code", "message"],
            "properties": {"code": {"type": "string", "enum": codes(Code::api())}, "message": {"type": "string"}}}},
            "description": catalogue(Code::api())},
        "Failure": {"type": "object", "required": ["code", "message"], "description": catalogue(Code::failures()),
            "properties": {"code": {"type": "string", "enum": codes(Code::failures())}, "message": {"type": "string"}}},
        "Status": {"type": "string", "enum": ["pending", "recording", "paused", "processing", "completed", "failed", "cancelled"]},
        "OutputSpec": output_spec(),
        "Output": {"allOf": [{"$ref": "#/components/schemas/OutputSpec"}, {"type": "object", "required": ["id", "state"], "properties": {
            "id": {"type": "string", "pattern": "^o[0-9]+$"},
            "state": {"type": "string", "enum": ["pending", "active", "retrying", "stopped", "completed", "failed"]},
            "last_error": {"type": "string"}}}]},
        "CreateRecording": {"type": "object", "required": ["source"], "additionalProperties": false, "properties": create,
            "description": "Cross-field rules the schema does not say: a web source takes one of script, template or auto; `audio: true` needs realtime mode; page addresses must pass the network policy. They are 422 with the field named."},
        "RegenerateRecording": {"type": "object", "additionalProperties": false, "properties": regenerate},
        "Recording": {"type": "object", "required": ["id", "owner", "status", "source", "format", "preset", "video", "created_at", "stats"], "properties": {
            "id": {"$ref": "#/components/schemas/Id"}, "owner": {"type": "string"}, "status": {"$ref": "#/components/schemas/Status"},
            "end_reason": {"type": ["string", "null"], "enum": ["stopped", "max_duration", "max_size", "quota", "idle", "source_ended", "cancelled", "recovered", "error", "room_closed", "upload_expired", "node_lost", null]},
            "source": {"type": "object", "required": ["kind"]}, "format": {"type": "string", "enum": ["mp4", "webm", "mkv"]},
            "preset": {"type": "string", "enum": ["low", "medium", "high", "ultra"]},
            "video": {"type": "object", "properties": {"width": {"type": "integer"}, "height": {"type": "integer"}, "fps": {"type": "integer"},
                "video_bitrate_kbps": {"type": "integer"}, "audio_bitrate_kbps": {"type": "integer"}, "cfr": {"type": "boolean"}}},
            "max_duration_s": {"type": "integer"}, "title": {"type": ["string", "null"]}, "metadata": {"type": "object"},
            "created_at": {"type": "string", "format": "date-time"}, "started_at": {"type": ["string", "null"]},
            "stopped_at": {"type": ["string", "null"]}, "completed_at": {"type": ["string", "null"]}, "expires_at": {"type": ["string", "null"]},
            "duration_s": {"type": ["number", "null"]}, "size_bytes": {"type": ["integer", "null"]}, "error": {"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/Failure"}]},
            "note": {"allOf": [{"$ref": "#/components/schemas/Failure"}], "description": "something the recording says beside its status: `storage_retry` while the store refuses the finished file, which is kept and stored again with backoff (status stays processing); on a completed recording, `grid_failed` (a room's grid could not be composed; the track files are intact and /media holds them side by side in WebM), `no_video` (nobody sent video), `audio_missing` (a web page's sound could not be recorded or added; the video is whole without it), `invalid_media` (an upload was cut; the part before the cut was kept) or `not_replayable` (a web page showed another picture when a second browser played it up to a range, so one browser rendered it)"},
            "stats": {"type": "object", "properties": {"frames_in": {"type": "integer"}, "frames_written": {"type": "integer"},
                "frames_dropped": {"type": "integer"}, "frames_invalid": {"type": "integer"}, "achieved_fps": {"type": "number"},
                "cpu_s": {"type": "number"}, "processing_s": {"type": "number"},
                "realtime_factor": {"type": "number", "description": "web: seconds of video recorded per wall-clock second"},
                "progress": {"type": "number", "minimum": 0, "maximum": 1, "description": "the share done of a job after stop (a room's grid composite)"},
                "frames_planned": {"type": "integer", "minimum": 1, "description": "a web recording: the frames its script is planned to take (progress: frames_written of this)"},
                "eta_s": {"type": "number", "minimum": 0, "description": "a web recording while it renders: wall seconds it still needs at its pace so far"},
                "browsers": {"type": "integer", "minimum": 1, "description": "a web recording: browsers that rendered it at once, each a range of its frames (source split)"},
                "encode_lag_s": {"type": "number", "minimum": 0, "description": "a camera accepted beyond the CPU budget (limits.max_deferred_cameras): seconds received but not encoded yet; its pictures are spooled and encoded when there is room"}}},
            "media": {"type": ["object", "null"], "properties": {"container": {"type": "string"}, "video_codec": {"type": "string"},
                "audio_codec": {"type": "string", "description": "absent without sound"}, "width": {"type": "integer"}, "height": {"type": "integer"},
                "fps": {"type": "number"}, "frames": {"type": ["integer", "null"]}, "duration_s": {"type": "number"}, "sha256": {"type": "string"}}},
            "regenerated_from": {"$ref": "#/components/schemas/Id"},
            "outputs": {"type": "array", "items": {"$ref": "#/components/schemas/Output"}},
            "node": {"type": "string", "description": "a cluster's node that holds it: its driver runs there (absent on a server alone)"},
            "queue_position": {"type": "integer", "minimum": 1, "description": "a pending web recording waiting for the server's capacity, or a camera accepted beyond the budget waiting, processing, for its encode: its place in the queue (1 is next)"},
            "tracks": {"type": "array", "description": "a room recording's track files; each at /v1/recordings/{id}/tracks/{track}/media",
                "items": {"type": "object", "required": ["id", "participant", "kind", "codec", "start_s", "duration_s", "size_bytes", "container"], "properties": {
                    "id": {"type": "string"}, "participant": {"type": "string"}, "kind": {"type": "string", "enum": ["audio", "video"]},
                    "codec": {"type": "string", "enum": ["opus", "vp8", "vp9", "av1", "h264"]}, "start_s": {"type": "number", "description": "where it starts on the recording's timeline"},
                    "duration_s": {"type": "number"}, "size_bytes": {"type": "integer"}, "container": {"type": "string"}}}},
            "speakers": {"type": "array", "description": "a room recording's speaker timeline: who spoke when (from the senders' audio-level header extension), in the order they began",
                "items": {"type": "object", "required": ["participant", "start_s", "end_s"], "properties": {
                    "participant": {"type": "string"}, "start_s": {"type": "number"}, "end_s": {"type": "number"}}}}}},
        "RecordingList": {"type": "object", "required": ["recordings", "next_cursor"], "properties": {
            "recordings": {"type": "array", "items": recording()},
            "next_cursor": {"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/Id"}]}}},
        "WebUrl": {"type": "string", "format": "uri", "pattern": tapedeck_core::script::WEB_URL_PATTERN,
            "description": "http or https; private, loopback and link-local addresses are refused unless web.allow_private_networks"},
        "Viewport": {"type": "string", "pattern": tapedeck_core::web::VIEWPORT_PATTERN, "description": "CSS viewport WxH, 200x200 to 3840x2160; default the output size (halved at 2x above 1920 wide)"},
        "Template": {"type": "string", "enum": ["hero_showcase", "features_tour", "full_page_scroll"]},
        "Auto": {"type": "object", "required": ["duration_s"], "additionalProperties": false,
            "properties": {"duration_s": {"type": "integer", "minimum": 1, "maximum": tapedeck_core::web::MAX_AUTO_S}}},
        "Script": {"type": "array", "items": {"$ref": "#/components/schemas/Step"}, "minItems": 1, "maxItems": tapedeck_core::script::MAX_STEPS},
        "WebSource": {"type": "object", "required": ["kind", "url"], "additionalProperties": false,
            "description": "A page played in headless Chromium. Give one of script, template or auto (default: auto of 10 s). Script errors are 422 invalid_script naming the step and field; other bad source fields are 422 invalid_source naming the field.",
            "properties": nullable_props(json!({
                "kind": {"const": "web"},
                "url": {"$ref": "#/components/schemas/WebUrl"},
                "viewport": {"$ref": "#/components/schemas/Viewport"},
                "mode": {"type": "string", "enum": ["deterministic", "realtime"], "default": "deterministic"},
                "script": {"$ref": "#/components/schemas/Script"},
                "template": {"$ref": "#/components/schemas/Template"},
                "auto": {"$ref": "#/components/schemas/Auto"},
                "audio": {"type": "boolean", "description": "Record the page's sound (AAC in MP4, Opus otherwise). Realtime only, where it is on unless false; true with deterministic mode is 422."},
                "split": {"type": "string", "enum": ["auto", "off"], "default": "auto", "description": "Deterministic mode: `auto` lets several browsers render ranges of the frames at once (web.browsers_per_recording, when the CPU budget has room) for a script given step by step, the ranges after its last goto, each join checked; `off`: one browser, for a page whose state depends on more than its virtual time (the network while it plays, a seed from the wall clock)."}}),
                &["kind", "url", "mode", "script"])}
    });
    let steps = step_schemas();
    let names: Vec<Value> = steps
        .as_object()
        .map(|m| {
            m.keys()
                .map(|k| json!({"$ref": format!("#/components/schemas/{k}")}))
                .collect()
        })
        .unwrap_or_default();
    if let (Some(all), Some(each)) = (schemas.as_object_mut(), steps.as_object()) {
        all.extend(each.clone());
        all.insert(
            "Step".into(),
            json!({"oneOf": names, "description": "See docs/web-recording.md"}),
        );
    }
    let (rooms, room_schemas) = room_paths(rtc);
    if let (Some(all), Some(more)) = (schemas.as_object_mut(), room_schemas.as_object()) {
        all.extend(more.clone());
    }
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {"title": "tapedeck", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Self-hosted recording server. Bearer auth (API key or JWT); `?token=` is accepted only for media, thumbnails, strips and WebSockets. Errors are {\"error\": {\"code\", \"message\"}}; a method a route does not take is 405 `method_not_allowed` with `Allow`."},
        "security": [{"bearer": []}],
        "paths": {
            "/v1/recordings": {
                "post": op("Create a recording (a room's: 404 for a room the caller is not in, 403 not_room_host for a participant, 409 room_closed)", "recordings", json_ok("201", "created", recording()), &[400, 403, 404, 409, 422, 429], json!({
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CreateRecording"}}}}})),
                "get": op("List own recordings, newest first", "recordings", json_ok("200", "a page of recordings", json!({"$ref": "#/components/schemas/RecordingList"})), &[400], json!({
                    "description": "Also filters by the recordings' own metadata: `metadata.KEY=VALUE` (up to 5; KEY is 1-64 letters, digits, `_` or `-`; VALUE 1-200 characters) keeps the recordings whose metadata has a top-level KEY equal to VALUE, a string as it is or a number or boolean as JSON writes it (`?metadata.lead=42` finds `{\"lead\": 42}` and `{\"lead\": \"42\"}`); an invalid one is 400 invalid_query.",
                    "parameters": [
                    {"name": "status", "in": "query", "schema": {"$ref": "#/components/schemas/Status"}},
                    {"name": "kind", "in": "query", "schema": {"type": "string", "enum": ["frames", "web", "room", "upload"]}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}},
                    {"name": "cursor", "in": "query", "schema": {"$ref": "#/components/schemas/Id"}, "description": "next_cursor of the previous page"},
                    {"name": "q", "in": "query", "schema": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": "\\S"}, "description": "search, without case, in the title, the kind (frames, web, room, upload, or as the page names it) and the metadata's keys and values; reads at most 2000 recordings per request, next_cursor goes on"}]}))
            },
            "/v1/recordings/{id}": {
                "get": op("Get a recording (live stats while it records); a room recording is seen by everyone in the room", "recordings", json_ok("200", "the recording", recording()), &[400, 404], json!({"parameters": id})),
                "delete": op("Delete a recording, its media and thumbnails (not while it records: 409; a room's participant: 403 not_room_host)", "recordings", ("204", json!({"description": "deleted"})), &[400, 403, 404, 409], json!({"parameters": id})),
                "patch": op("Rename a recording that has ended (409 not_ready while it runs); emits recording.updated", "recordings", json_ok("200", "the recording", recording()), &[400, 403, 404, 409], json!({"parameters": id,
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["title"], "additionalProperties": false,
                        "properties": {"title": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "\\S"}}}}}}}))
            },
            "/v1/recordings/{id}/pause": {"post": action("Pause (no gap in the output)", "pause")},
            "/v1/recordings/{id}/resume": {"post": action("Resume", "resume")},
            "/v1/recordings/{id}/stop": {"post": action("Stop and process", "stop")},
            "/v1/recordings/{id}/cancel": {"post": action("Cancel and discard", "cancel")},
            "/v1/recordings/{id}/share": {"post": op("A signed, expiring download URL (presigned on S3); 409 until the recording is completed", "recordings",
                json_ok("200", "the link", json!({"type": "object", "required": ["url", "page_url", "expires_at"], "properties": {"url": {"type": "string", "description": "the media itself"}, "page_url": {"type": "string", "description": "a page that plays it (title, player, download) for whoever holds the link"}, "expires_at": {"type": "string", "format": "date-time"}}})),
                &[400, 404, 409], json!({"parameters": id,
                "requestBody": {"required": false, "content": {"application/json": {"schema": {"type": "object", "additionalProperties": false,
                    "properties": {"expires_in_s": {"type": ["integer", "null"], "minimum": 1, "maximum": crate::http::recordings::MAX_SHARE_S, "description": "default storage.share_ttl_s"}}}}}}}))},
            "/v1/admin/recordings/{id}/retry": {"post": op("Admins: store now a recording waiting out a storage retry (note storage_retry); 409 when it is not waiting", "admin",
                json_ok("200", "requeued", json!({"type": "object", "properties": {"id": {"$ref": "#/components/schemas/Id"}, "retrying": {"type": "boolean"}}})),
                &[400, 403, 404, 409], json!({"parameters": id}))},
            "/v1/admin/nodes": {"get": op("Admins: the cluster's nodes as each last reported (a server alone: itself, id `local`): addresses, version, start, last heartbeat, CPU budget/reserved/used in cores, live sessions, jobs held, draining, alive (heartbeat within cluster.node_timeout_s)", "admin",
                json_ok("200", "the nodes", json!({"type": "object", "required": ["clustered", "this_node", "nodes"], "properties": {
                    "clustered": {"type": "boolean"}, "this_node": {"type": "string"},
                    "nodes": {"type": "array", "items": {"type": "object", "required": ["id", "internal_url", "public_url", "version", "started_at", "heartbeat_at", "cpu", "live_sessions", "jobs_held", "draining", "alive"], "properties": {
                        "id": {"type": "string"}, "internal_url": {"type": "string"}, "public_url": {"type": "string"}, "version": {"type": "string"},
                        "started_at": {"type": "string", "format": "date-time"}, "heartbeat_at": {"type": "string", "format": "date-time"},
                        "cpu": {"type": "object", "properties": {"budget": {"type": "number"}, "reserved": {"type": "number"}, "used": {"type": "number"}}},
                        "live_sessions": {"type": "integer"}, "jobs_held": {"type": "integer"}, "draining": {"type": "boolean"}, "alive": {"type": "boolean"}}}}}})),
                &[403], json!({}))},
            "/v1/recordings/{id}/regenerate": {"post": op("Record the same web page again as a new recording (regenerated_from links it); the body is a create request whose fields replace the original's, `source` fields merged into the original source; 409 for a recording that is not a web recording", "recordings",
                json_ok("201", "created", recording()), &[400, 403, 404, 409, 422, 429], json!({"parameters": id,
                "requestBody": {"required": false, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RegenerateRecording"}}}}}))},
            "/v1/recordings/{id}/media": {"get": op("The media file; HTTP Range supported; ?download=1 for an attachment; 409 until completed. With start and/or duration: that time range as an MP4, cut at the keyframe before start without re-encoding and trimmed exactly by an edit list; a recording in progress is cut from its HLS segments (it needs an hls output; 409 otherwise)", "media", media_ok.clone(), &[400, 404, 409, 416],
                json!({"parameters": download_params(json!([{"name": "download", "in": "query", "schema": {"type": "string"}},
                    {"name": "start", "in": "query", "schema": {"type": "number", "minimum": 0}, "description": "seconds from the recording's start (default 0); past the end (or the live edge) is 416"},
                    {"name": "duration", "in": "query", "schema": {"type": "number", "minimum": 0.001, "maximum": crate::engine::outputs::clip::MAX_DURATION_S}, "description": "seconds, at least 0.001 (default: to the end)"},
                    range[0]])),
                       "responses": partial(MEDIA_TYPES)}))},
            "/v1/recordings/{id}/tracks/{track}/media": {"get": op("One track file of a room recording, as it arrived; HTTP Range supported; 409 until completed", "media",
                typed_ok("200", "the track (WebM)", &["video/webm", "audio/webm"]), &[400, 404, 409, 416],
                json!({"parameters": download_params(json!([{"name": "track", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^t[0-9]+$"}}, range[0]])),
                       "responses": partial(&["video/webm", "audio/webm"])}))},
            "/v1/recordings/{id}/thumbnail": {"get": op("Poster JPEG (frame at 25%); 409 until completed", "media", typed_ok("200", "JPEG", &["image/jpeg"]), &[400, 404, 409, 416], json!({"parameters": download_params(range.clone()), "responses": partial(&["image/jpeg"])}))},
            "/v1/recordings/{id}/strip": {"get": op("Strip of small thumbnails; 409 until completed", "media", typed_ok("200", "JPEG", &["image/jpeg"]), &[400, 404, 409, 416], json!({"parameters": download_params(range.clone()), "responses": partial(&["image/jpeg"])}))},
            "/v1/recordings/{id}/hls/{name}": {"get": op("A recording's HLS (an hls output): index.m3u8 (an event playlist growing while it records, then VOD; a ?token= given is carried into every URI it lists), init.mp4 and the sNNNNN.m4s segments; 404 without an hls output, 409 for a recording that failed or was cancelled", "media",
                typed_ok("200", "the playlist or a segment", &["application/vnd.apple.mpegurl", "video/mp4", "video/iso.segment"]), &[400, 404, 409, 416],
                json!({"parameters": download_params(json!([{"name": "name", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^(index\\.m3u8|init\\.mp4|s[0-9]{5,9}\\.m4s)$"}}, range[0]])),
                       "responses": partial(&["video/mp4", "video/iso.segment"])}))},
            "/v1/recordings/{id}/outputs": {"post": op("Add a stream output (rtmp, srt) while the recording is pending or records; it starts pushing at once, from the live encode's next keyframe (the recording needs an hls or stream output from its creation: 409 not_ready otherwise; a webm recording takes none: 422). 409 invalid_transition for hls/images (given at creation) or a recording that ended; 422 invalid_output for a bad output", "recordings",
                json_ok("201", "the output", json!({"$ref": "#/components/schemas/Output"})), &[400, 403, 404, 409, 422],
                json!({"parameters": id, "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/OutputSpec"}}}}}))},
            "/v1/recordings/{id}/outputs/{oid}": {"delete": op("Remove a stream output while the recording records: its push stops, its state is stopped. 404 for no such output, 409 for hls/images or a recording that ended", "recordings",
                ("204", json!({"description": "removed"})), &[400, 403, 404, 409],
                json!({"parameters": download_params(json!([{"name": "oid", "in": "path", "required": true, "schema": {"type": "string"}}]))}))},
            "/v1/recordings/{id}/images": {"get": op("The pictures of an images output so far (while it records too), each with its time", "media",
                json_ok("200", "the pictures", json!({"type": "object", "required": ["every_s", "images"], "properties": {"every_s": {"type": "integer"},
                    "images": {"type": "array", "items": {"type": "object", "required": ["name", "at_s", "url"], "properties": {
                        "name": {"type": "string"}, "at_s": {"type": "integer"}, "url": {"type": "string"}}}}}})),
                &[400, 404, 409], json!({"parameters": id}))},
            "/v1/recordings/{id}/images/{name}": {"get": op("One picture of an images output (JPEG)", "media", typed_ok("200", "JPEG", &["image/jpeg"]), &[400, 404, 409, 416],
                json!({"parameters": download_params(json!([{"name": "name", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^[0-9]{5,9}\\.jpg$"}}, range[0]])),
                       "responses": partial(&["image/jpeg"])}))},
            "/v1/recordings/{id}/frames": {"get": op("WebSocket: binary messages are JPEG/PNG/WebP frames; text {\"pts_ms\": N} sets the next frame's timestamp; text {\"pts_ms\": N, \"image\": \"data:image/jpeg;base64,...\"} or a bare data:image/... URL is a frame as canvas.toDataURL gives it; the server sends progress JSON. 400 not_websocket without an upgrade; 409 when the recording takes no frames", "sources",
                ("101", json!({"description": "switching to the WebSocket protocol"})), &[400, 404, 409], json!({"parameters": id}))},
            "/v1/events": {"get": op("WebSocket of the caller's recording events; 400 not_websocket without an upgrade; 429 too_many_sockets past limits.max_event_sockets_per_user open at once", "events", ("101", json!({"description": "switching to the WebSocket protocol"})), &[400, 429], json!({}))},
            "/v1/me": {"get": op("The caller", "auth", json_ok("200", "who the token belongs to", json!({"type": "object", "required": ["user", "admin"], "properties": {"user": {"type": "string"}, "admin": {"type": "boolean"}}})), &[], json!({}))},
            "/v1/shared/{id}/info": {"get": op("What a share link's viewer shows: title, length, picture size, dates; no token", "media",
                json_ok("200", "the shared recording", json!({"type": "object", "required": ["id", "title", "created_at", "duration_s", "width", "height", "format", "expires_at"], "properties": {
                    "id": {"type": "string"}, "title": {"type": ["string", "null"]}, "created_at": {"type": "string", "format": "date-time"},
                    "duration_s": {"type": ["number", "null"]}, "width": {"type": ["integer", "null"]}, "height": {"type": ["integer", "null"]},
                    "format": {"type": "string"}, "expires_at": {"type": "string", "format": "date-time"}}})),
                &[400, 403, 404], json!({"security": [], "parameters": [id_one,
                    {"name": "exp", "in": "query", "required": true, "schema": {"type": "integer", "minimum": 0}, "description": "expiry, Unix seconds"},
                    {"name": "sig", "in": "query", "required": true, "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"}, "description": "HMAC-SHA256 of the id and exp"}]}))},
            "/v1/shared/{id}": {"get": op("Download through a share link; no token", "media", media_ok, &[400, 403, 404, 409, 416], json!({"security": [],
                "parameters": download_params(json!([
                    {"name": "exp", "in": "query", "required": true, "schema": {"type": "integer", "minimum": 0}, "description": "expiry, Unix seconds"},
                    {"name": "sig", "in": "query", "required": true, "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"}, "description": "HMAC-SHA256 of the id and exp"},
                    {"name": "download", "in": "query", "schema": {"type": "string"}, "description": "saved under the recording's title (Content-Disposition)"},
                    range[0]])), "responses": partial(MEDIA_TYPES)}))},
            "/v1/openapi.json": {"get": op("This document", "meta", typed_ok("200", "OpenAPI 3.1", &["application/json"]), &[], json!({"security": []}))},
            "/healthz": {"get": op("Liveness", "meta", typed_ok("200", "ok", &["text/plain"]), &[], json!({"security": []}))},
            "/readyz": {"get": op("Readiness: database, storage (the paths recordings write), work folder, a real encode; each part ok or failing, and why only with an admin token", "meta", typed_ok("200", "ready", &["application/json"]), &[], json!({"security": [],
                "responses": {"503": typed_ok("503", "not ready: what failed", &["application/json"]).1}}))},
            "/metrics": {"get": op("Prometheus metrics", "meta", typed_ok("200", "text exposition format", &["text/plain"]), &[], json!({"security": []}))}
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {"Error": {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}},
            "schemas": schemas
        }
    });
    let uploads = upload_paths(id);
    for more in [rooms, uploads, session_paths()] {
        if let (Some(paths), Some(more)) = (doc["paths"].as_object_mut(), more.as_object()) {
            paths.extend(more.clone());
        }
    }
    doc
}

/// The web page's sign-in (docs/signin.md): a session cookie, never
/// needed by programs.
fn session_paths() -> Value {
    let session = json!({"type": "object", "required": ["user", "admin", "via", "csrf", "expires_at"], "properties": {
        "user": {"type": "string"}, "admin": {"type": "boolean"},
        "via": {"type": "string", "enum": ["password", "api_key", "oidc"]},
        "csrf": {"type": "string", "description": "send as X-CSRF-Token with every change made with the cookie"},
        "expires_at": {"type": "string", "format": "date-time"}}});
    let open = json!({"security": [], "requestBody": {"required": true, "content": {"application/json": {"schema": {"oneOf": [
        {"type": "object", "required": ["user", "password"], "additionalProperties": false,
            "properties": {"user": {"type": "string"}, "password": {"type": "string"}}},
        {"type": "object", "required": ["api_key"], "additionalProperties": false,
            "properties": {"api_key": {"type": "string", "description": "an API key or a JWT"}}}]}}}}});
    let answer: Vec<Value> = ["code", "state", "error", "error_description"]
        .iter()
        .map(|n| json!({"name": n, "in": "query", "required": false, "schema": {"type": "string"}}))
        .collect();
    let redirect = |what: &str| {
        (
            "303",
            json!({"description": what, "headers": {"Location": {"schema": {"type": "string"}}}}),
        )
    };
    json!({
        "/v1/session": {
            "get": op("The browser's session (its cookie) and CSRF token; 401 session_expired when it ended", "auth", json_ok("200", "signed in", session.clone()), &[401], json!({"security": []})),
            "post": op("Sign in (a password, or an API key or JWT): sets the HttpOnly session cookie; 401 bad_credentials, 429 too_many_attempts after 10 wrong passwords for one name in 10 minutes, 403 csrf_failed from another site", "auth",
                json_ok("200", "signed in; Set-Cookie: tapedeck_session", session), &[400, 401, 403, 429], open),
            "delete": op("Sign out: the session ends and its cookie goes (with the cookie, X-CSRF-Token is required)", "auth",
                ("204", json!({"description": "signed out"})), &[403], json!({"security": []}))
        },
        "/v1/session/methods": {"get": op("How this server signs people in: password, API key, and the identity provider's name when OpenID Connect is configured", "auth",
            json_ok("200", "sign-in methods", json!({"type": "object", "required": ["password", "api_key", "oidc"], "properties": {
                "password": {"type": "boolean"}, "api_key": {"type": "boolean"},
                "oidc": {"oneOf": [{"type": "null"}, {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}]}}})),
            &[], json!({"security": []}))},
        "/v1/session/oidc": {"get": op("Sign in with the identity provider: to its authorization endpoint (code flow, PKCE S256); 404 when not configured", "auth",
            redirect("to the provider, or back to the sign-in form with signin_error"), &[400, 404], json!({"security": [],
                "parameters": [{"name": "next", "in": "query", "required": false, "schema": {"type": "string"}, "description": "a path of this server to go to after"}]}))},
        "/v1/session/oidc/callback": {"get": op("Where the provider sends the browser back: opens a session, or back to the sign-in form with ?signin_error=oidc_failed", "auth",
            redirect("to `next`, signed in; or to /?signin_error=oidc_failed (the reason is logged)"), &[400], json!({"security": [],
                "parameters": answer}))}
    })
}

/// tus 1.0.0 at `/v1/uploads` (docs/uploads.md).
fn upload_paths(id: Value) -> Value {
    let hdr = |name: &str, required: bool, schema: Value, what: &str| json!({"name": name, "in": "header", "required": required, "schema": schema, "description": what});
    let version = hdr(
        "Tus-Resumable",
        true,
        json!({"type": "string", "enum": ["1.0.0"]}),
        "the tus version (412 tus_version otherwise)",
    );
    let count = json!({"type": "string", "pattern": "^[0-9]{1,19}$"});
    let octets = json!({"required": false, "content": {"application/offset+octet-stream": {"schema": {"type": "string", "format": "binary"}}}});
    let tus_headers = json!({
        "Tus-Resumable": {"schema": {"type": "string"}},
        "Upload-Offset": {"schema": {"type": "string"}},
        "Upload-Expires": {"schema": {"type": "string"}, "description": "when it expires if nothing more arrives (HTTP date)"}});
    // HEAD answers carry no body, errors included.
    let bare = |codes: &[u16]| -> Value {
        codes
            .iter()
            .map(|c| {
                (
                    c.to_string(),
                    json!({"description": "see the status; a HEAD answer has no body"}),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    // Text without control characters (Unicode Cc), as the server checks.
    let text = json!({"type": ["string", "null"], "maxLength": 256, "pattern": "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"});
    let mut id_and_version = id.as_array().cloned().unwrap_or_default();
    id_and_version.push(version.clone());
    json!({
        "/v1/uploads": {
            "options": op("What tus is spoken: Tus-Version, Tus-Extension (creation, creation-with-upload, creation-defer-length, termination, expiration, checksum), Tus-Checksum-Algorithm, Tus-Max-Size", "uploads",
                ("204", json!({"description": "the capabilities, in headers"})), &[], json!({})),
            "post": op("Create an upload (tus creation): Upload-Length, or Upload-Defer-Length: 1; Upload-Metadata (base64 values: filename, filetype, title, room, format, preset, outputs: a JSON list of hls and images outputs made from the file); optionally the first bytes (creation-with-upload). Creates a recording of kind upload, `recording` while bytes arrive; Location is /v1/uploads/{recording id}", "uploads",
                ("201", json!({"description": "created", "headers": {"Location": {"schema": {"type": "string"}}, "Upload-Offset": {"schema": {"type": "string"}}, "Upload-Expires": {"schema": {"type": "string"}}}})),
                &[400, 403, 404, 412, 413, 422, 429], json!({"parameters": [version,
                    hdr("Upload-Length", false, json!({"type": "string", "pattern": "^[0-9]{0,18}[1-9][0-9]{0,18}$", "maxLength": 19}), "the file's size in bytes, at least 1 (0: 422 invalid_settings; 413 too_large over limits.max_upload_bytes, 403 quota_exceeded over the quota)"),
                    hdr("Upload-Defer-Length", false, json!({"type": "string", "enum": ["1"]}), "the size is told later, with a PATCH"),
                    hdr("Upload-Metadata", false, json!({"type": "string"}), "comma-separated KEY BASE64-VALUE pairs")],
                    "requestBody": octets})),
        },
        "/v1/uploads/{id}": {
            "head": op("Where an upload stands: Upload-Offset, Upload-Length (or Upload-Defer-Length), Upload-Expires, Upload-Metadata. A finished one answers its length as offset; a terminated or expired one 410", "uploads",
                ("200", json!({"description": "in headers", "headers": tus_headers})), &[], json!({"parameters": id_and_version,
                    "responses": bare(&[400, 401, 404, 410, 412])})),
            "patch": op("Append bytes at Upload-Offset (409 offset_mismatch elsewhere); Upload-Checksum (sha1, sha256) checks the whole chunk (460 checksum_mismatch: discarded); Upload-Length for a deferred length. The last byte ends the recording, which is then processed. A connection cut mid-chunk keeps what arrived (HEAD says where to resume)", "uploads",
                ("204", json!({"description": "appended", "headers": tus_headers})), &[400, 404, 409, 410, 412, 413, 415, 460],
                json!({"parameters": [id_and_version[0].clone(), id_and_version[1].clone(),
                    hdr("Upload-Offset", true, count.clone(), "where the bytes go"),
                    hdr("Upload-Checksum", false, json!({"type": "string"}), "ALGORITHM BASE64-DIGEST of this chunk"),
                    hdr("Upload-Length", false, count, "a deferred length")],
                    "requestBody": octets})),
            "delete": op("Terminate an upload: its recording is cancelled and the bytes discarded", "uploads",
                ("204", json!({"description": "terminated"})), &[400, 404, 410, 412], json!({"parameters": id_and_version})),
        },
        "/v1/uploads/url": {"post": op("A presigned URL to send a whole file to with one PUT: the bucket's own on S3, GCS and Azure storage, one signed by tapedeck on local storage (valid uploads.url_expires_s). Over uploads.multipart_threshold_bytes (S3 and local storage) `multipart` instead: a URL per part, each PUT answering an ETag. Creates the upload's recording; complete it with POST /v1/recordings/{id}/complete", "uploads",
            json_ok("201", "where to send the file", json!({"type": "object", "required": ["recording_id", "method", "headers", "expires_in"], "properties": {
                "recording_id": {"type": "string"}, "upload_url": {"type": "string", "description": "one PUT of the whole file (absent with multipart)"}, "method": {"const": "PUT"},
                "headers": {"type": "object", "additionalProperties": {"type": "string"}}, "expires_in": {"type": "integer"},
                "multipart": {"type": "object", "required": ["part_size", "parts"], "properties": {
                    "part_size": {"type": "integer"},
                    "parts": {"type": "array", "items": {"type": "object", "required": ["part_number", "url", "size"], "properties": {
                        "part_number": {"type": "integer", "minimum": 1}, "url": {"type": "string"}, "size": {"type": "integer"}}}}}}}})),
            &[400, 403, 404, 413, 422, 429], json!({"requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["size"], "additionalProperties": false, "properties": {
                "size": {"type": "integer", "minimum": 1}, "filename": text.clone(), "content_type": text.clone(),
                "title": text, "room": {"type": ["string", "null"]},
                "sha256": {"type": ["string", "null"], "pattern": "^[0-9a-fA-F]{64}$", "description": "checked at complete"},
                "outputs": {"type": ["array", "null"], "maxItems": tapedeck_core::output::MAX_OUTPUTS, "items": {"$ref": "#/components/schemas/OutputSpec"},
                    "description": "hls and images, made from the file once processed (422 invalid_output for streams or a bad one)"}}}}}}}))},
        "/v1/uploads/{id}/direct": {"put": op("The whole file, or with `part` one part (answering its ETag), to the URL POST /v1/uploads/url gave on local storage (signed: no token)", "uploads",
            ("200", json!({"description": "stored; now complete it"})), &[400, 403, 404, 410, 413],
            json!({"security": [], "parameters": [id_and_version[0].clone(),
                {"name": "part", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1}},
                {"name": "exp", "in": "query", "required": true, "schema": {"type": "integer"}},
                {"name": "sig", "in": "query", "required": true, "schema": {"type": "string"}}],
                "requestBody": {"required": true, "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}))},
        "/v1/recordings/{id}/complete": {"post": op("Complete a presigned upload: its size (and SHA-256 when one was declared) is checked and it is processed (409 upload_incomplete, 460 checksum_mismatch). A multipart upload lists every part's ETag", "uploads",
            json_ok("202", "the recording, about to be processed", recording()), &[400, 404, 409, 410, 460], json!({"parameters": id_and_version[..1].to_vec(),
                "requestBody": {"required": false, "content": {"application/json": {"schema": {"type": "object", "additionalProperties": false, "properties": {
                    "parts": {"type": "array", "items": {"type": "object", "required": ["part_number", "etag"], "additionalProperties": false, "properties": {
                        "part_number": {"type": "integer", "minimum": 1}, "etag": {"type": "string"}}}}}}}}}}))},
    })
}

/// `GET /v1/openapi.json`.
pub async fn document(
    axum::extract::State(s): axum::extract::State<crate::http::state::AppState>,
) -> Json<Value> {
    Json(spec_for(&s.config.rtc))
}
