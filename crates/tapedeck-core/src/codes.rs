//! The catalogue of stable error codes: every code an API error or a failed
//! recording can carry, with its HTTP status and what it means.
//!
//! Codes are part of the API: clients match on them, so a code is never
//! renamed or reused. The OpenAPI document lists this catalogue.

use serde::{Deserialize, Deserializer, Serialize};

/// Whose problem an error is: the caller's (fix the request or the source) or
/// the server's (see its log; retrying may help).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Blame {
    /// The request, the page, the frames or the credentials.
    Client,
    /// The server, its programs or its storage.
    Server,
}

/// One stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Code {
    /// The code clients match on.
    pub code: &'static str,
    /// The HTTP status of an API error with this code; a recording failure
    /// carries the status the code would have as an API error.
    pub status: u16,
    /// Whose problem it is.
    pub blame: Blame,
    /// What it means, for people.
    pub meaning: &'static str,
}

const fn c(code: &'static str, status: u16, blame: Blame, meaning: &'static str) -> Code {
    Code {
        code,
        status,
        blame,
        meaning,
    }
}

use Blame::{Client as C, Server as S};

/// Codes of API errors (`{"error": {"code", "message"}}`).
pub const API: &[Code] = &[
    c("invalid_json", 400, C, "the body is not valid JSON"),
    c(
        "invalid_request",
        400,
        C,
        "the body or a field has the wrong shape",
    ),
    c("invalid_query", 400, C, "a query parameter is not valid"),
    c("invalid_id", 400, C, "the id is not a recording id"),
    c(
        "invalid_user",
        400,
        C,
        "a user name is not 1-64 letters, digits, - _ . @",
    ),
    c(
        "invalid_sdp",
        400,
        C,
        "an SDP offer that cannot be parsed or answered",
    ),
    c(
        "not_websocket",
        400,
        C,
        "a WebSocket route was called without a WebSocket upgrade",
    ),
    c(
        "bad_control",
        400,
        C,
        "a frames socket text message is not valid",
    ),
    c(
        "unauthorized",
        401,
        C,
        "no token, or a token that is not valid",
    ),
    c("not_admin", 403, C, "the route is for admins"),
    c(
        "invalid_signature",
        403,
        C,
        "a share link's signature does not match",
    ),
    c("link_expired", 403, C, "a share link has expired"),
    c(
        "session_expired",
        401,
        C,
        "the web page's sign-in ended (expired, signed out, its key revoked)",
    ),
    c(
        "bad_credentials",
        401,
        C,
        "the user name or password is wrong",
    ),
    c(
        "csrf_failed",
        403,
        C,
        "a change made with the session cookie lacked the X-CSRF-Token header, or a cookie WebSocket came from another site",
    ),
    c(
        "too_many_attempts",
        429,
        C,
        "too many wrong passwords for one user name; wait ten minutes",
    ),
    c(
        "oidc_failed",
        401,
        C,
        "signing in with the identity provider failed (refused, cancelled, or its answer did not check out)",
    ),
    c(
        "invite_invalid",
        401,
        C,
        "a call invite (join token) was changed, cut short or is for another room",
    ),
    c(
        "invite_expired",
        401,
        C,
        "a call invite (join token) has expired",
    ),
    c("not_room_host", 403, C, "only the room's host may do that"),
    c(
        "wrong_room",
        403,
        C,
        "a call guest's join token opens one room; it uploads there only",
    ),
    c(
        "room_full",
        403,
        C,
        "the room has its max_participants in the call",
    ),
    c(
        "quota_exceeded",
        403,
        C,
        "the user's stored media reached the quota",
    ),
    c(
        "not_found",
        404,
        C,
        "no such route, or no such recording of the caller's",
    ),
    c(
        "method_not_allowed",
        405,
        C,
        "the route does not take that method (see the Allow header)",
    ),
    c(
        "invalid_transition",
        409,
        C,
        "the recording's status does not allow that",
    ),
    c(
        "wrong_source",
        409,
        C,
        "the recording's source does not take that",
    ),
    c("not_ready", 409, C, "the recording has no media yet"),
    c("room_closed", 409, C, "the room was closed by its host"),
    c(
        "not_regenerable",
        409,
        C,
        "only web recordings can be regenerated",
    ),
    c(
        "too_large",
        413,
        C,
        "the body is larger than the route takes",
    ),
    c(
        "unsupported_media_type",
        415,
        C,
        "the body's Content-Type is not one the route takes",
    ),
    c(
        "range_not_satisfiable",
        416,
        C,
        "the Range header is outside the file",
    ),
    c(
        "invalid_settings",
        422,
        C,
        "the video settings are not valid",
    ),
    c("invalid_script", 422, C, "the web script is not valid"),
    c(
        "invalid_source",
        422,
        C,
        "the source's fields are not valid",
    ),
    c(
        "too_many_recordings",
        429,
        C,
        "a concurrency limit is reached",
    ),
    c("too_many_peers", 429, C, "rtc.max_peers are connected"),
    c(
        "too_many_rooms",
        429,
        C,
        "the user has limits.max_open_rooms_per_user rooms open; close one first",
    ),
    c(
        "too_many_sockets",
        429,
        C,
        "the user holds limits.max_event_sockets_per_user event sockets open",
    ),
    c(
        "too_many_connecting",
        429,
        C,
        "the caller (an API user or a join token) holds rtc.max_connecting_per_caller sessions whose ICE has not completed; each is dropped rtc.connect_timeout_s after its offer",
    ),
    c(
        "server_busy",
        429,
        C,
        "the server's CPU budget (limits.cpu_budget_cores) has no room for this live recording's estimated cost; try again later",
    ),
    c(
        "queue_full",
        429,
        C,
        "web.max_queued web recordings already wait for their turn",
    ),
    c(
        "tus_version",
        412,
        C,
        "an upload request without Tus-Resumable: 1.0.0 (the tus version spoken)",
    ),
    c(
        "offset_mismatch",
        409,
        C,
        "Upload-Offset is not where the upload is (HEAD says where)",
    ),
    c(
        "checksum_mismatch",
        460,
        C,
        "the chunk does not match its Upload-Checksum; it was discarded",
    ),
    c(
        "upload_incomplete",
        409,
        C,
        "a presigned upload was completed before all its bytes arrived (or its object is missing)",
    ),
    c(
        "upload_closed",
        410,
        C,
        "the upload is finished, terminated or expired and takes no more bytes",
    ),
    c("internal", 500, S, "a server fault; see the server's log"),
    c("database_error", 500, S, "the database failed"),
    c("storage_error", 500, S, "the media store failed"),
    c("encoder_unavailable", 503, S, "the encoder could not start"),
];

/// Codes of failed recordings (`"error": {"code", "message"}`).
pub const FAILURES: &[Code] = &[
    c(
        "source_unreachable",
        502,
        C,
        "the page's address could not be reached or loaded",
    ),
    c(
        "source_blocked",
        403,
        C,
        "the address is not allowed by the network policy",
    ),
    c(
        "tls_error",
        502,
        C,
        "the page's TLS certificate or handshake failed",
    ),
    c(
        "page_load_timeout",
        504,
        C,
        "the page did not finish loading in time",
    ),
    c(
        "page_unresponsive",
        504,
        C,
        "the page stopped producing frames",
    ),
    c("script_error", 422, C, "a script step could not be played"),
    c(
        "selector_not_found",
        422,
        C,
        "a script step's selector matched nothing or is not valid",
    ),
    c("invalid_frames", 422, C, "no valid frame was received"),
    c("no_source", 409, C, "no source ever connected"),
    c(
        "encoder_failed",
        500,
        S,
        "ffmpeg failed to encode or finish the file",
    ),
    c(
        "storage_failed",
        500,
        S,
        "the media could not be written to the store",
    ),
    c(
        "disk_full",
        507,
        S,
        "the work folder's disk is full; what was spooled before is kept",
    ),
    c(
        "storage_retry",
        503,
        S,
        "a note, not a failure: the store refused the finished file, which is kept and stored again with backoff",
    ),
    c(
        "grid_failed",
        500,
        S,
        "a note, not a failure: a room's grid could not be composed; the track files are intact and /media holds them side by side",
    ),
    c(
        "no_video",
        422,
        C,
        "a note, not a failure: nobody in the call sent video while recording; /media holds the sound",
    ),
    c(
        "capture_failed",
        500,
        S,
        "a web page's picture of a frame could not be read; a recording never skips a frame silently",
    ),
    c(
        "browser_crashed",
        500,
        S,
        "the browser could not start or crashed",
    ),
    c(
        "upload_expired",
        410,
        C,
        "an upload received no bytes for uploads.expire_after_s and was given up",
    ),
    c(
        "invalid_media",
        422,
        C,
        "an uploaded file is not media that can be read (as a note: it was cut, and the part before the cut was kept)",
    ),
    c(
        "recovery_failed",
        500,
        S,
        "the recording could not be rebuilt after a restart",
    ),
    c("internal", 500, S, "a server fault; see the server's log"),
    c(
        "failed",
        500,
        S,
        "failed before failure codes were recorded",
    ),
];

/// Looks a code up in both lists.
pub fn find(code: &str) -> Option<&'static Code> {
    API.iter().chain(FAILURES).find(|c| c.code == code)
}

/// Why a recording failed: a stable code from [`FAILURES`] and a message
/// a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// A code from [`FAILURES`].
    pub code: String,
    /// What happened.
    pub message: String,
}

impl Failure {
    /// A failure with `code` (one of [`FAILURES`]) and `message`.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        debug_assert!(
            FAILURES.iter().any(|c| c.code == code),
            "{code} is not in the catalogue"
        );
        Self {
            code: code.to_string(),
            message: message.into(),
        }
    }

    /// A server fault of the catalogue's `internal` kind.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new("internal", message)
    }

    /// Whether the user can act on it.
    pub fn blame(&self) -> Blame {
        find(&self.code).map(|c| c.blame).unwrap_or(Blame::Server)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl<'de> Deserialize<'de> for Failure {
    /// Also reads the plain strings stored before failures had codes.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Stored {
            Coded { code: String, message: String },
            Plain(String),
        }
        Ok(match Stored::deserialize(d)? {
            Stored::Coded { code, message } => Failure { code, message },
            Stored::Plain(message) => Failure {
                code: "failed".into(),
                message,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_snake_case() {
        for list in [API, FAILURES] {
            let mut seen = std::collections::HashSet::new();
            for c in list {
                assert!(seen.insert(c.code), "{} twice", c.code);
                assert!(
                    c.code
                        .chars()
                        .all(|ch| ch.is_ascii_lowercase() || ch == '_'),
                    "{}",
                    c.code
                );
                assert!((400..600).contains(&c.status));
            }
        }
    }

    #[test]
    fn failure_reads_old_and_new_forms() {
        let f: Failure = serde_json::from_str(r#""it broke""#).unwrap();
        assert_eq!(
            (f.code.as_str(), f.message.as_str()),
            ("failed", "it broke")
        );
        let f = Failure::new("tls_error", "bad cert");
        let back: Failure = serde_json::from_str(&serde_json::to_string(&f).unwrap()).unwrap();
        assert_eq!(back, f);
        assert_eq!(f.blame(), Blame::Client);
        assert_eq!(Failure::new("encoder_failed", "x").blame(), Blame::Server);
    }
}
