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

/// Where a code is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// API errors only (`{"error": {"code", "message"}}`).
    Api,
    /// Failed recordings and their notes only (`"error"`, `"note"`).
    Failure,
    /// Both.
    Both,
}

/// Declares [`Code`] with each code's text, HTTP status, blame, use and
/// meaning: the catalogue is this one table.
macro_rules! catalogue {
    ($($name:ident = $code:literal, $status:literal, $blame:ident, $use:ident, $meaning:literal;)*) => {
        /// One stable code. Its text is what clients match on; its HTTP
        /// status is an API error's (a recording failure carries the status
        /// the code would have as an API error).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
        pub enum Code {
            $(
                #[doc = $meaning]
                #[serde(rename = $code)]
                $name,
            )*
        }

        impl Code {
            /// Every code, API errors first, in the catalogue's order.
            pub const ALL: &'static [Code] = &[$(Code::$name),*];

            /// The text clients match on.
            pub const fn as_str(self) -> &'static str {
                match self { $(Code::$name => $code,)* }
            }

            /// The HTTP status of an API error with this code.
            pub const fn status(self) -> u16 {
                match self { $(Code::$name => $status,)* }
            }

            /// Whose problem it is.
            pub const fn blame(self) -> Blame {
                match self { $(Code::$name => Blame::$blame,)* }
            }

            /// What it means, for people.
            pub const fn meaning(self) -> &'static str {
                match self { $(Code::$name => $meaning,)* }
            }

            /// Where it is used.
            pub const fn used(self) -> Use {
                match self { $(Code::$name => Use::$use,)* }
            }
        }
    };
}

catalogue! {
    InvalidJson = "invalid_json", 400, Client, Api, "the body is not valid JSON";
    InvalidRequest = "invalid_request", 400, Client, Api, "the body or a field has the wrong shape";
    InvalidQuery = "invalid_query", 400, Client, Api, "a query parameter is not valid";
    InvalidId = "invalid_id", 400, Client, Api, "the id is not a recording id";
    InvalidUser = "invalid_user", 400, Client, Api, "a user name is not 1-64 letters, digits, - _ . @";
    InvalidSdp = "invalid_sdp", 400, Client, Api, "an SDP offer that cannot be parsed or answered";
    NotWebsocket = "not_websocket", 400, Client, Api, "a WebSocket route was called without a WebSocket upgrade";
    BadControl = "bad_control", 400, Client, Api, "a frames socket text message is not valid";
    Unauthorized = "unauthorized", 401, Client, Api, "no token, or a token that is not valid";
    NotAdmin = "not_admin", 403, Client, Api, "the route is for admins";
    InvalidSignature = "invalid_signature", 403, Client, Api, "a share link's signature does not match";
    LinkExpired = "link_expired", 403, Client, Api, "a share link has expired";
    SessionExpired = "session_expired", 401, Client, Api, "the web page's sign-in ended (expired, signed out, its key revoked)";
    BadCredentials = "bad_credentials", 401, Client, Api, "the user name or password is wrong";
    CsrfFailed = "csrf_failed", 403, Client, Api, "a change made with the session cookie lacked the X-CSRF-Token header, or a cookie WebSocket came from another site";
    TooManyAttempts = "too_many_attempts", 429, Client, Api, "too many wrong passwords for one user name; wait ten minutes";
    OidcFailed = "oidc_failed", 401, Client, Api, "signing in with the identity provider failed (refused, cancelled, or its answer did not check out)";
    InviteInvalid = "invite_invalid", 401, Client, Api, "a call invite (join token) was changed, cut short or is for another room";
    InviteExpired = "invite_expired", 401, Client, Api, "a call invite (join token) has expired";
    NotRoomHost = "not_room_host", 403, Client, Api, "only the room's host may do that";
    WrongRoom = "wrong_room", 403, Client, Api, "a call guest's join token opens one room; it uploads there only";
    RoomFull = "room_full", 403, Client, Api, "the room has its max_participants in the call";
    QuotaExceeded = "quota_exceeded", 403, Client, Api, "the user's stored media reached the quota";
    NotFound = "not_found", 404, Client, Api, "no such route, or no such recording of the caller's";
    MethodNotAllowed = "method_not_allowed", 405, Client, Api, "the route does not take that method (see the Allow header)";
    InvalidTransition = "invalid_transition", 409, Client, Api, "the recording's status does not allow that";
    WrongSource = "wrong_source", 409, Client, Api, "the recording's source does not take that";
    NotReady = "not_ready", 409, Client, Api, "the recording has no media yet";
    RoomClosed = "room_closed", 409, Client, Api, "the room was closed by its host";
    NotRegenerable = "not_regenerable", 409, Client, Api, "only web recordings can be regenerated";
    TooLarge = "too_large", 413, Client, Api, "the body is larger than the route takes";
    UnsupportedMediaType = "unsupported_media_type", 415, Client, Api, "the body's Content-Type is not one the route takes";
    RangeNotSatisfiable = "range_not_satisfiable", 416, Client, Api, "the Range header is outside the file";
    InvalidSettings = "invalid_settings", 422, Client, Api, "the video settings are not valid";
    InvalidScript = "invalid_script", 422, Client, Api, "the web script is not valid";
    InvalidSource = "invalid_source", 422, Client, Api, "the source's fields are not valid";
    InvalidOutput = "invalid_output", 422, Client, Api, "an output (hls, images, rtmp, srt) is not valid: its kind, a field, its URL or address, or one too many";
    TooManyRecordings = "too_many_recordings", 429, Client, Api, "a concurrency limit is reached";
    TooManyPeers = "too_many_peers", 429, Client, Api, "rtc.max_peers are connected";
    TooManyRooms = "too_many_rooms", 429, Client, Api, "the user has limits.max_open_rooms_per_user rooms open; close one first";
    TooManySockets = "too_many_sockets", 429, Client, Api, "the user holds limits.max_event_sockets_per_user event sockets open";
    TooManySessions = "too_many_sessions", 429, Client, Api, "the caller (an API user or a join token's guest) holds rtc.max_sessions_per_caller sessions in this room";
    TooManyConnecting = "too_many_connecting", 429, Client, Api, "the caller (an API user or a join token) holds rtc.max_connecting_per_caller sessions whose ICE has not completed; each is dropped rtc.connect_timeout_s after its offer";
    ServerBusy = "server_busy", 429, Client, Api, "the server's CPU budget (limits.cpu_budget_cores) has no room for this live recording's estimated cost; try again later";
    QueueFull = "queue_full", 429, Client, Api, "web.max_queued web recordings already wait for their turn";
    TusVersion = "tus_version", 412, Client, Api, "an upload request without Tus-Resumable: 1.0.0 (the tus version spoken)";
    OffsetMismatch = "offset_mismatch", 409, Client, Api, "Upload-Offset is not where the upload is (HEAD says where)";
    ChecksumMismatch = "checksum_mismatch", 460, Client, Api, "the chunk does not match its Upload-Checksum; it was discarded";
    UploadIncomplete = "upload_incomplete", 409, Client, Api, "a presigned upload was completed before all its bytes arrived (or its object is missing)";
    UploadClosed = "upload_closed", 410, Client, Api, "the upload is finished, terminated or expired and takes no more bytes";
    Internal = "internal", 500, Server, Both, "a server fault; see the server's log";
    DatabaseError = "database_error", 503, Server, Api, "the database failed";
    StorageError = "storage_error", 503, Server, Api, "the media store failed";
    EncoderUnavailable = "encoder_unavailable", 503, Server, Api, "the encoder could not start";
    RecordingMoving = "recording_moving", 409, Server, Api, "a queued recording was taken by a cluster node to start while this request acted on it; try again";
    NodeUnreachable = "node_unreachable", 503, Server, Api, "the cluster node holding this session cannot be reached now (its heartbeat is recent); try again";
    SourceUnreachable = "source_unreachable", 502, Client, Failure, "the page's address could not be reached or loaded";
    SourceBlocked = "source_blocked", 403, Client, Failure, "the address is not allowed by the network policy";
    TlsError = "tls_error", 502, Client, Failure, "the page's TLS certificate or handshake failed";
    PageLoadTimeout = "page_load_timeout", 504, Client, Failure, "the page did not finish loading in time";
    PageUnresponsive = "page_unresponsive", 504, Client, Failure, "the page stopped producing frames";
    ScriptError = "script_error", 422, Client, Failure, "a script step could not be played";
    SelectorNotFound = "selector_not_found", 422, Client, Failure, "a script step's selector matched nothing or is not valid";
    InvalidFrames = "invalid_frames", 422, Client, Failure, "no valid frame was received";
    NoSource = "no_source", 409, Client, Failure, "no source ever connected";
    EncoderFailed = "encoder_failed", 500, Server, Failure, "ffmpeg failed to encode or finish the file";
    StorageFailed = "storage_failed", 500, Server, Failure, "the media could not be written to the store";
    DiskFull = "disk_full", 507, Server, Failure, "the work folder's disk is full; what was spooled before is kept";
    StorageRetry = "storage_retry", 503, Server, Failure, "a note, not a failure: the store refused the finished file, which is kept and stored again with backoff";
    GridFailed = "grid_failed", 500, Server, Failure, "a note, not a failure: a room's grid could not be composed; the track files are intact and /media holds them side by side";
    AudioMissing = "audio_missing", 500, Server, Failure, "a note, not a failure: a web page's sound could not be recorded or laid under the video; the video is whole, without sound";
    NoVideo = "no_video", 422, Client, Failure, "a note, not a failure: nobody in the call sent video while recording; /media holds the sound";
    CaptureFailed = "capture_failed", 500, Server, Failure, "a web page's picture of a frame could not be read; a recording never skips a frame silently";
    NotReplayable = "not_replayable", 422, Client, Failure, "a note, not a failure: the page showed another picture when a second browser played it up to the same instant (it depends on more than its virtual time), so the recording was rendered by one browser; `split: off` skips the attempt";
    BrowserCrashed = "browser_crashed", 500, Server, Failure, "the browser could not start or crashed";
    UploadExpired = "upload_expired", 410, Client, Failure, "an upload received no bytes for uploads.expire_after_s and was given up";
    InvalidMedia = "invalid_media", 422, Client, Failure, "an uploaded file is not media that can be read (as a note: it was cut, and the part before the cut was kept)";
    RecoveryFailed = "recovery_failed", 500, Server, Failure, "the recording could not be rebuilt after a restart";
    Failed = "failed", 500, Server, Failure, "failed before failure codes were recorded";
}

impl Code {
    /// Whether an API error may carry it.
    pub fn is_api(self) -> bool {
        matches!(self.used(), Use::Api | Use::Both)
    }

    /// Whether a failed recording (or its note) may carry it.
    pub fn is_failure(self) -> bool {
        matches!(self.used(), Use::Failure | Use::Both)
    }

    /// The API error codes, in the catalogue's order.
    pub fn api() -> impl Iterator<Item = Code> {
        Self::ALL.iter().copied().filter(|c| c.is_api())
    }

    /// The failure codes, in the catalogue's order.
    pub fn failures() -> impl Iterator<Item = Code> {
        Self::ALL.iter().copied().filter(|c| c.is_failure())
    }

    /// The code whose text is `s`.
    pub fn parse(s: &str) -> Option<Code> {
        Self::ALL.iter().copied().find(|c| c.as_str() == s)
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the engine answers when it refuses a request or fails at one: a
/// code from the catalogue and a message. It knows nothing of HTTP; the
/// API's face turns it into a response with the code's status (and hides
/// a server fault's detail, which it logs).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} ({code})")]
pub struct Problem {
    /// A code whose [`Code::is_api`] holds.
    pub code: Code,
    /// What went wrong, for people (a server fault's detail, for the log).
    pub message: String,
}

impl Problem {
    /// A problem with `code` and `message`.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        debug_assert!(code.is_api(), "{code} is not an API error code");
        Self {
            code,
            message: message.into(),
        }
    }

    /// A server fault; `detail` is for the log.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Self::new(Code::Internal, detail.to_string())
    }

    /// From any error with a stable code.
    pub fn from_code<E: crate::ErrorCode + std::fmt::Display>(e: E) -> Self {
        Self::new(e.code(), e.to_string())
    }
}

impl crate::ErrorCode for Problem {
    fn code(&self) -> Code {
        self.code
    }
}

/// Why a recording failed: a failure code and a message a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// A code whose [`Code::is_failure`] holds.
    pub code: Code,
    /// What happened.
    pub message: String,
}

impl Failure {
    /// A failure with `code` and `message`.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        debug_assert!(code.is_failure(), "{code} is not a failure code");
        Self {
            code,
            message: message.into(),
        }
    }

    /// A server fault of the catalogue's `internal` kind.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(Code::Internal, message)
    }

    /// Whether the user can act on it.
    pub fn blame(&self) -> Blame {
        self.code.blame()
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl<'de> Deserialize<'de> for Failure {
    /// Also reads the plain strings stored before failures had codes, and
    /// a code this version does not know as `failed`.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Stored {
            Coded { code: String, message: String },
            Plain(String),
        }
        Ok(match Stored::deserialize(d)? {
            Stored::Coded { code, message } => Failure {
                code: Code::parse(&code).unwrap_or(Code::Failed),
                message,
            },
            Stored::Plain(message) => Failure {
                code: Code::Failed,
                message,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case_and_in_a_list() {
        let mut seen = std::collections::HashSet::new();
        for c in Code::ALL {
            let text = c.as_str();
            assert!(seen.insert(text), "{text} twice");
            assert!(
                text.chars().all(|ch| ch.is_ascii_lowercase() || ch == '_'),
                "{text}"
            );
            assert!((400..600).contains(&c.status()));
            assert_eq!(Code::parse(text), Some(*c));
            assert_eq!(serde_json::to_value(c).unwrap(), text);
            assert!(c.is_api() || c.is_failure());
        }
    }

    #[test]
    fn failure_reads_old_and_new_forms() {
        let f: Failure = serde_json::from_str(r#""it broke""#).unwrap();
        assert_eq!((f.code, f.message.as_str()), (Code::Failed, "it broke"));
        let f = Failure::new(Code::TlsError, "bad cert");
        let back: Failure = serde_json::from_str(&serde_json::to_string(&f).unwrap()).unwrap();
        assert_eq!(back, f);
        assert_eq!(f.blame(), Blame::Client);
        assert_eq!(
            Failure::new(Code::EncoderFailed, "x").blame(),
            Blame::Server
        );
        let gone: Failure =
            serde_json::from_str(r#"{"code": "a_code_from_the_future", "message": "m"}"#).unwrap();
        assert_eq!(gone.code, Code::Failed);
    }
}
