//! Rooms: calls tapedeck serves as the media server (an SFU) and records.
//! A room has a host (its creator, who alone controls its recordings) and
//! participants who join with an API key or an invite's join token.

use serde::{Deserialize, Serialize};

use crate::id::RoomId;
use crate::request::{RequestError, parse_json};
use crate::settings::InvalidSettings;

/// A room as stored and returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Room {
    /// `room_<ulid>`.
    pub id: RoomId,
    /// What people call it.
    pub name: String,
    /// The user who created it.
    pub host: String,
    /// Most people in the call at once.
    pub max_participants: u32,
    /// Created, unix ms.
    #[serde(with = "crate::recording::time_ms")]
    pub created_at: i64,
    /// Closed by its host (`DELETE`), unix ms; a closed room takes no one.
    #[serde(default, with = "crate::recording::opt_time_ms")]
    pub closed_at: Option<i64>,
    /// The cluster node that holds its call (none on a server alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Recorded by itself: a recording with these settings (a recording's
    /// create body without `source`, plus the room's `layout`) starts when
    /// someone publishes and none runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_record: Option<serde_json::Value>,
    /// Its recordings stop by themselves once the call has been empty
    /// this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_stop_s: Option<u32>,
    /// The longest any recording of the room runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration_s: Option<u32>,
}

/// How long an auto-recorded room's recording waits in an empty call
/// before it stops, unless the room says.
pub const DEFAULT_IDLE_STOP_S: u32 = 30;

/// Longest `idle_stop_s`.
pub const MAX_IDLE_STOP_S: u32 = 86_400;

impl Room {
    /// The create body of the recording this room starts by itself, if
    /// it records itself. Its `max_duration_s` is the room's when
    /// smaller.
    pub fn auto_record_body(&self) -> Option<Vec<u8>> {
        let settings = self.auto_record.as_ref()?;
        let mut body = auto_body(self.id, settings, self.max_duration_s);
        // Titled after the room unless its settings say.
        if body.get("title").is_none() {
            body["title"] = self.name.chars().take(200).collect::<String>().into();
        }
        Some(body.to_string().into_bytes())
    }

    /// A recording of this room runs at most this long: what it asked,
    /// capped by the room's `max_duration_s`.
    pub fn cap_duration(&self, asked: Option<u32>) -> Option<u32> {
        match (asked, self.max_duration_s) {
            (Some(a), Some(m)) => Some(a.min(m)),
            (a, m) => a.or(m),
        }
    }
}

/// `settings` (an `auto_record` object) as a recording's create body for
/// `room`.
fn auto_body(room: RoomId, settings: &serde_json::Value, cap: Option<u32>) -> serde_json::Value {
    let mut body = settings.as_object().cloned().unwrap_or_default();
    let layout = body
        .remove("layout")
        .unwrap_or_else(|| serde_json::Value::from("tracks"));
    body.insert(
        "source".into(),
        serde_json::json!({"kind": "room", "room": room.to_string(), "layout": layout}),
    );
    if let Some(cap) = cap {
        let asked = body.get("max_duration_s").and_then(|v| v.as_u64());
        let capped = asked.map_or(u64::from(cap), |a| a.min(u64::from(cap)));
        body.insert("max_duration_s".into(), capped.into());
    }
    serde_json::Value::Object(body)
}

/// Longest room or participant name, in characters.
pub const MAX_NAME_CHARS: usize = 100;

/// Longest an invite lives.
pub const MAX_INVITE_S: u64 = 30 * 86_400;

/// `POST /v1/rooms` as sent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRoom {
    name: String,
    max_participants: Option<u32>,
    auto_record: Option<serde_json::Value>,
    idle_stop_s: Option<u32>,
    max_duration_s: Option<u32>,
}

/// A create-room request that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidRoom {
    /// Its name.
    pub name: String,
    /// Most people at once.
    pub max_participants: u32,
    /// The settings of the recording it starts by itself.
    pub auto_record: Option<serde_json::Value>,
    /// Empty this long, its recordings stop.
    pub idle_stop_s: Option<u32>,
    /// Its recordings' longest run.
    pub max_duration_s: Option<u32>,
}

/// `POST /v1/rooms/{id}/invites` as sent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateInvite {
    name: String,
    expires_in_s: Option<u64>,
}

/// An invite request that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidInvite {
    /// The guest's name in the call.
    pub name: String,
    /// How long the join token works.
    pub expires_in_s: u64,
}

fn bad(field: &'static str, message: String) -> RequestError {
    RequestError::Settings(InvalidSettings { field, message })
}

/// A name people see: 1 to [`MAX_NAME_CHARS`] characters, not blank, no
/// control characters (it is drawn on the grid and shown in tiles).
pub fn check_name(field: &'static str, name: &str) -> Result<(), RequestError> {
    if name.trim().is_empty() {
        return Err(bad(field, "must not be blank".into()));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(bad(
            field,
            format!("must be at most {MAX_NAME_CHARS} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(bad(field, "must not contain control characters".into()));
    }
    Ok(())
}

/// Parses `POST /v1/rooms`; `cap` is the server's `rtc.max_participants`.
pub fn parse_create_room(body: &[u8], cap: u32) -> Result<ValidRoom, RequestError> {
    let r: CreateRoom = parse_json(body)?;
    check_name("name", &r.name)?;
    let max = r.max_participants.unwrap_or(cap.min(16));
    if !(2..=cap).contains(&max) {
        return Err(bad(
            "max_participants",
            format!("{max} must be between 2 and {cap}"),
        ));
    }
    if let Some(i) = r.idle_stop_s
        && !(1..=MAX_IDLE_STOP_S).contains(&i)
    {
        return Err(bad(
            "idle_stop_s",
            format!("{i} must be between 1 and {MAX_IDLE_STOP_S}"),
        ));
    }
    if r.max_duration_s == Some(0) {
        return Err(bad("max_duration_s", "must be at least 1".into()));
    }
    if let Some(a) = &r.auto_record {
        check_auto_record(a)?;
    }
    let idle = match (&r.auto_record, r.idle_stop_s) {
        (Some(_), None) => Some(DEFAULT_IDLE_STOP_S),
        (_, i) => i,
    };
    Ok(ValidRoom {
        name: r.name,
        max_participants: max,
        auto_record: r.auto_record,
        idle_stop_s: idle,
        max_duration_s: r.max_duration_s,
    })
}

/// An `auto_record` object is a recording's create body without its
/// source, plus `layout`: checked as the recording it makes would be.
fn check_auto_record(a: &serde_json::Value) -> Result<(), RequestError> {
    let Some(fields) = a.as_object() else {
        return Err(bad(
            "auto_record",
            "must be an object: the recording's settings (layout, format, preset, ...)".into(),
        ));
    };
    if fields.contains_key("source") {
        return Err(bad(
            "auto_record",
            "takes no source: the recording's source is the room".into(),
        ));
    }
    let probe = auto_body(RoomId::from_parts(0, 0), a, None);
    match crate::request::parse_create(probe.to_string().as_bytes()) {
        Ok(_) => Ok(()),
        Err(RequestError::Settings(e)) => Err(bad(
            "auto_record",
            format!("{}: {}", e.field.trim_start_matches("source."), e.message),
        )),
        Err(RequestError::Shape(m)) => Err(bad("auto_record", m)),
        Err(e) => Err(bad("auto_record", e.to_string())),
    }
}

/// Parses `POST /v1/rooms/{id}/invites`.
pub fn parse_invite(body: &[u8]) -> Result<ValidInvite, RequestError> {
    let r: CreateInvite = parse_json(body)?;
    check_name("name", &r.name)?;
    let ttl = r.expires_in_s.unwrap_or(86_400);
    if !(1..=MAX_INVITE_S).contains(&ttl) {
        return Err(bad(
            "expires_in_s",
            format!("{ttl} must be between 1 and {MAX_INVITE_S}"),
        ));
    }
    Ok(ValidInvite {
        name: r.name,
        expires_in_s: ttl,
    })
}

/// Largest message a call page may send (an SDP is a few kilobytes).
pub const MAX_CALL_MESSAGE_BYTES: usize = 128 * 1024;

/// Largest SDP offer or answer taken, over WHIP or the call page's socket.
pub const MAX_SDP_BYTES: usize = 64 * 1024;

/// What a call page sends over its socket (`GET /v1/rooms/{id}/call`), as
/// JSON text with a `type`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CallMessage {
    /// The first message: the page's SDP offer (what it sends), and the
    /// name to show (API users; a guest's name is its join token's).
    Join {
        /// The SDP offer.
        offer: String,
        /// The name in the call.
        name: Option<String>,
        /// The offer's media lines kept for sharing a screen (its picture,
        /// its sound): their tracks are `screen` and `screen_audio`.
        #[serde(default)]
        screen: Vec<String>,
    },
    /// The answer to the server's last offer (others' tracks to receive).
    Answer {
        /// The SDP answer.
        sdp: String,
    },
    /// Microphone and camera on or off, for the others' tiles.
    Media {
        /// Microphone on.
        audio: bool,
        /// Camera on.
        video: bool,
        /// Sharing a screen.
        #[serde(default)]
        screen: bool,
    },
    /// Leaving the call.
    Leave,
}

/// Parses one message of a call page.
pub fn parse_call_message(text: &[u8]) -> Result<CallMessage, RequestError> {
    if text.len() > MAX_CALL_MESSAGE_BYTES {
        return Err(bad(
            "message",
            format!(
                "{} bytes; a call message is at most {MAX_CALL_MESSAGE_BYTES}",
                text.len()
            ),
        ));
    }
    let m: CallMessage = parse_json(text)?;
    let sdp = match &m {
        CallMessage::Join { offer, .. } => Some(("offer", offer)),
        CallMessage::Answer { sdp } => Some(("sdp", sdp)),
        _ => None,
    };
    if let Some((field, sdp)) = sdp
        && sdp.len() > MAX_SDP_BYTES
    {
        return Err(bad(
            field,
            format!("{} bytes; an SDP is at most {MAX_SDP_BYTES}", sdp.len()),
        ));
    }
    if let CallMessage::Join { name, screen, .. } = &m {
        if let Some(name) = name {
            check_name("name", name)?;
        }
        if screen.len() > 2 || screen.iter().any(|m| m.is_empty() || m.len() > 32) {
            return Err(bad(
                "screen",
                "at most two media ids (the screen's picture and sound), each 1 to 32 characters"
                    .into(),
            ));
        }
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Code, ErrorCode};
    use proptest::prelude::*;

    #[test]
    fn an_sdp_over_64_kib_is_refused_naming_its_field() {
        let big = "v".repeat(MAX_SDP_BYTES + 1);
        for (msg, field) in [
            (json_msg("join", "offer", &big), "offer"),
            (json_msg("answer", "sdp", &big), "sdp"),
        ] {
            let e = parse_call_message(msg.as_bytes()).unwrap_err();
            assert_eq!(e.code(), Code::InvalidSettings, "{e}");
            assert!(e.to_string().contains(field), "{e}");
        }
        let ok = "v".repeat(MAX_SDP_BYTES);
        assert!(parse_call_message(json_msg("answer", "sdp", &ok).as_bytes()).is_ok());
    }

    fn json_msg(kind: &str, field: &str, value: &str) -> String {
        serde_json::json!({"type": kind, field: value}).to_string()
    }

    #[test]
    fn a_room_that_records_itself_makes_the_recording_its_settings_say() {
        let v = parse_create_room(
            br#"{"name": "standup", "auto_record": {"layout": "grid", "format": "mp4", "preset": "medium", "max_duration_s": 7200}, "max_duration_s": 3600}"#,
            50,
        )
        .unwrap();
        assert_eq!(v.idle_stop_s, Some(DEFAULT_IDLE_STOP_S), "by default");
        let room = Room {
            id: RoomId::from_parts(1_700_000_000_000, 3),
            name: v.name,
            host: "ann".into(),
            max_participants: v.max_participants,
            created_at: 0,
            closed_at: None,
            node: None,
            auto_record: v.auto_record,
            idle_stop_s: v.idle_stop_s,
            max_duration_s: v.max_duration_s,
        };
        let body = room.auto_record_body().unwrap();
        let made = crate::request::parse_create(&body).unwrap();
        let crate::recording::SourceSpec::Room(src) = made.source else {
            panic!("a room source");
        };
        assert_eq!(src.room, room.id);
        assert_eq!(src.layout, crate::recording::RoomLayout::Grid);
        assert_eq!(made.format, crate::Format::Mp4);
        assert_eq!(made.title.as_deref(), Some("standup"));
        // The room's cap wins over the longer one asked.
        assert_eq!(made.max_duration_s, Some(3600));
        assert_eq!(room.cap_duration(None), Some(3600));
        assert_eq!(room.cap_duration(Some(60)), Some(60));
        // A room that does not record itself makes nothing.
        let plain = parse_create_room(br#"{"name": "x", "idle_stop_s": 5}"#, 50).unwrap();
        assert_eq!((plain.auto_record, plain.idle_stop_s), (None, Some(5)));
    }

    #[test]
    fn bad_auto_record_settings_name_the_field() {
        for (body, says) in [
            (
                r#"{"name": "x", "auto_record": {"layout": "mosaic"}}"#,
                "mosaic",
            ),
            (r#"{"name": "x", "auto_record": {"preset": "8k"}}"#, "8k"),
            (r#"{"name": "x", "auto_record": {"fps": 1000}}"#, "fps"),
            (
                r#"{"name": "x", "auto_record": {"source": {"kind": "frames"}}}"#,
                "takes no source",
            ),
            (
                r#"{"name": "x", "auto_record": "yes"}"#,
                "must be an object",
            ),
            (
                r#"{"name": "x", "auto_record": {"colour": "red"}}"#,
                "colour",
            ),
            (r#"{"name": "x", "idle_stop_s": 0}"#, "idle_stop_s"),
            (r#"{"name": "x", "idle_stop_s": 100000}"#, "idle_stop_s"),
            (r#"{"name": "x", "max_duration_s": 0}"#, "max_duration_s"),
        ] {
            let e = parse_create_room(body.as_bytes(), 50).unwrap_err();
            assert_eq!(e.code(), Code::InvalidSettings, "{body}: {e}");
            assert!(e.to_string().contains(says), "{body}: {e}");
        }
    }

    #[test]
    fn call_messages_are_checked() {
        assert_eq!(
            parse_call_message(br#"{"type": "join", "offer": "v=0", "name": "Ann"}"#).unwrap(),
            CallMessage::Join {
                offer: "v=0".into(),
                name: Some("Ann".into()),
                screen: vec![],
            }
        );
        assert_eq!(
            parse_call_message(br#"{"type": "media", "audio": false, "video": true}"#).unwrap(),
            CallMessage::Media {
                audio: false,
                video: true,
                screen: false,
            }
        );
        assert_eq!(
            parse_call_message(br#"{"type": "leave"}"#).unwrap(),
            CallMessage::Leave
        );
        for (body, code) in [
            ("not json", Code::InvalidJson),
            (r#"{"type": "dance"}"#, Code::InvalidRequest),
            (r#"{"type": "answer"}"#, Code::InvalidRequest),
            (r#"{"offer": "v=0"}"#, Code::InvalidRequest),
            (
                r#"{"type": "join", "offer": "v=0", "name": ""}"#,
                Code::InvalidSettings,
            ),
        ] {
            assert_eq!(
                parse_call_message(body.as_bytes()).unwrap_err().code(),
                code,
                "{body}"
            );
        }
        let huge = format!(
            r#"{{"type": "answer", "sdp": "{}"}}"#,
            "a".repeat(MAX_CALL_MESSAGE_BYTES)
        );
        let e = parse_call_message(huge.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("at most"), "{e}");
    }

    #[test]
    fn rooms_and_invites_are_checked() {
        let r = parse_create_room(br#"{"name": "Standup", "max_participants": 4}"#, 16).unwrap();
        assert_eq!((r.name.as_str(), r.max_participants), ("Standup", 4));
        assert_eq!(
            parse_create_room(br#"{"name": "x"}"#, 50)
                .unwrap()
                .max_participants,
            16
        );
        for (body, field) in [
            (r#"{"name": " "}"#, "name"),
            (r#"{"name": "a\u0007b"}"#, "name"),
            (
                r#"{"name": "x", "max_participants": 1}"#,
                "max_participants",
            ),
            (
                r#"{"name": "x", "max_participants": 17}"#,
                "max_participants",
            ),
        ] {
            let e = parse_create_room(body.as_bytes(), 16).unwrap_err();
            assert_eq!(e.code(), Code::InvalidSettings, "{body}");
            assert!(e.to_string().starts_with(field), "{body}: {e}");
        }
        let e = parse_create_room(br#"{"name": "x", "colour": 1}"#, 16).unwrap_err();
        assert_eq!(e.code(), Code::InvalidRequest);
        let i = parse_invite(br#"{"name": "bob", "expires_in_s": 3600}"#).unwrap();
        assert_eq!((i.name.as_str(), i.expires_in_s), ("bob", 3600));
        assert_eq!(
            parse_invite(br#"{"name": "bob", "expires_in_s": 0}"#)
                .unwrap_err()
                .code(),
            Code::InvalidSettings
        );
    }

    proptest! {
        #[test]
        fn parsers_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_create_room(&body, 16);
            let _ = parse_invite(&body);
        }
    }
}
