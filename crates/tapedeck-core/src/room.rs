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
}

/// A create-room request that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidRoom {
    /// Its name.
    pub name: String,
    /// Most people at once.
    pub max_participants: u32,
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
    Ok(ValidRoom {
        name: r.name,
        max_participants: max,
    })
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
    if let CallMessage::Join {
        name: Some(name), ..
    } = &m
    {
        check_name("name", name)?;
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Code, ErrorCode};
    use proptest::prelude::*;

    #[test]
    fn call_messages_are_checked() {
        assert_eq!(
            parse_call_message(br#"{"type": "join", "offer": "v=0", "name": "Ann"}"#).unwrap(),
            CallMessage::Join {
                offer: "v=0".into(),
                name: Some("Ann".into())
            }
        );
        assert_eq!(
            parse_call_message(br#"{"type": "media", "audio": false, "video": true}"#).unwrap(),
            CallMessage::Media {
                audio: false,
                video: true
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
