//! The recording and its lifecycle, one state machine for every source kind.

use crate::codes::Code;
use serde::{Deserialize, Serialize};

use crate::RecordingId;
use crate::settings::{Format, Preset, VideoSettings};

/// Where a recording is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Created, waiting for its source.
    Pending,
    /// Media is arriving and being written.
    Recording,
    /// Media is ignored until resume; the output has no gap.
    Paused,
    /// Finalizing: encode flush, thumbnails, probe, upload.
    Processing,
    /// Media and thumbnails are stored.
    Completed,
    /// Ended without usable media; `error` says why.
    Failed,
    /// Discarded by the user; media removed.
    Cancelled,
}

impl Status {
    /// Every status, in lifecycle order.
    pub const ALL: [Status; 7] = [
        Status::Pending,
        Status::Recording,
        Status::Paused,
        Status::Processing,
        Status::Completed,
        Status::Failed,
        Status::Cancelled,
    ];

    /// The lowercase name used in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Recording => "recording",
            Status::Paused => "paused",
            Status::Processing => "processing",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }

    /// Parses a name produced by [`Status::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Ended for good: nothing can happen to it any more.
    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Completed | Status::Failed | Status::Cancelled)
    }

    /// Counts against concurrency limits (holds a slot on this node).
    pub fn is_active(self) -> bool {
        matches!(
            self,
            Status::Pending | Status::Recording | Status::Paused | Status::Processing
        )
    }

    /// The status after `action`, or the refusal.
    pub fn apply(self, action: Action) -> Result<Status, InvalidTransition> {
        use Action as A;
        use Status as S;
        let next = match (self, action) {
            (S::Pending, A::Start) => S::Recording,
            (S::Recording, A::Pause) => S::Paused,
            (S::Paused, A::Resume) => S::Recording,
            (S::Recording | S::Paused, A::Stop) => S::Processing,
            (S::Pending | S::Recording | S::Paused, A::Cancel) => S::Cancelled,
            (S::Processing, A::Complete) => S::Completed,
            (s, A::Fail) if !s.is_terminal() => S::Failed,
            (from, action) => return Err(InvalidTransition { from, action }),
        };
        Ok(next)
    }
}

/// What can happen to a recording. The first four are the user's; the rest the server's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// The source connected.
    Start,
    /// The user paused.
    Pause,
    /// The user resumed.
    Resume,
    /// The user stopped, or a limit ended the recording.
    Stop,
    /// The user discarded it.
    Cancel,
    /// Processing finished.
    Complete,
    /// Something went wrong for good.
    Fail,
}

impl Action {
    /// Parses a user action from a URL segment.
    pub fn parse_user(s: &str) -> Option<Self> {
        match s {
            "pause" => Some(Action::Pause),
            "resume" => Some(Action::Resume),
            "stop" => Some(Action::Stop),
            "cancel" => Some(Action::Cancel),
            _ => None,
        }
    }

    /// The event name that this action's transition emits.
    pub fn event_name(self) -> &'static str {
        match self {
            Action::Start => "recording.started",
            Action::Pause => "recording.paused",
            Action::Resume => "recording.resumed",
            Action::Stop => "recording.stopped",
            Action::Cancel => "recording.cancelled",
            Action::Complete => "recording.completed",
            Action::Fail => "recording.failed",
        }
    }

    /// The action as a verb, for messages (`pause`, `resume`, ...).
    pub fn verb(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Pause => "pause",
            Action::Resume => "resume",
            Action::Stop => "stop",
            Action::Cancel => "cancel",
            Action::Complete => "complete",
            Action::Fail => "fail",
        }
    }
}

/// An action the current status does not allow.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("cannot {} a recording that is {}", .action.verb(), .from.as_str())]
pub struct InvalidTransition {
    /// The status the recording was in.
    pub from: Status,
    /// The refused action.
    pub action: Action,
}

impl crate::ErrorCode for InvalidTransition {
    fn code(&self) -> Code {
        Code::InvalidTransition
    }
}

impl From<InvalidTransition> for crate::Problem {
    fn from(e: InvalidTransition) -> Self {
        crate::Problem::from_code(e)
    }
}

/// Why recording ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// The user (or the client) stopped it.
    Stopped,
    /// `max_duration_s` was reached.
    MaxDuration,
    /// The per-user storage quota was reached.
    Quota,
    /// The output reached `limits.max_size_bytes`.
    MaxSize,
    /// The source sent nothing for too long.
    Idle,
    /// The source finished by itself (end of script, end of upload).
    SourceEnded,
    /// The user cancelled it.
    Cancelled,
    /// The server stopped mid-recording and finalized it from the spool at the next start.
    Recovered,
    /// It failed; see `error`.
    Error,
    /// Its room was closed by the host.
    RoomClosed,
    /// An upload received no bytes for too long and was given up.
    UploadExpired,
    /// The node that held it died; another node finalized it from what
    /// had been shipped to the bucket (at most `cluster.segment_s` short).
    NodeLost,
}

/// The source a recording records from. New kinds are new variants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum SourceSpec {
    /// Frames pushed over a WebSocket.
    Frames {
        /// The rate the client means to send at (a camera page's 5 fps):
        /// what its admission cost is estimated from. The output rate when
        /// not given.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        input_fps: Option<u32>,
    },
    /// A web page played in headless Chromium.
    Web(crate::web::WebSource),
    /// A WebRTC room's call.
    Room(RoomSource),
    /// A file uploaded with tus (created at `POST /v1/uploads`, never at
    /// `POST /v1/recordings`).
    Upload(UploadSource),
}

pub use crate::uploaded::{MultipartSpec, UploadSource};

impl SourceSpec {
    /// The kind without its parameters.
    pub fn kind(&self) -> SourceKind {
        match self {
            SourceSpec::Frames { .. } => SourceKind::Frames,
            SourceSpec::Web(_) => SourceKind::Web,
            SourceSpec::Room(_) => SourceKind::Room,
            SourceSpec::Upload(_) => SourceKind::Upload,
        }
    }
}

/// What a room recording records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomSource {
    /// The room.
    pub room: crate::RoomId,
    /// How the call is written.
    #[serde(default)]
    pub layout: RoomLayout,
}

/// How a room recording is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoomLayout {
    /// One file per participant track as it arrived, and one Matroska/WebM
    /// holding them all.
    #[default]
    Tracks,
    /// A composed grid of every participant, encoded after stop in the
    /// format asked for (the track files are kept too).
    Grid,
}

/// One track file of a room recording (defined with the tracks).
pub use crate::track::TrackFile;

/// The kinds of source, for filters and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// Frames pushed over a WebSocket.
    Frames,
    /// A web page in headless Chromium.
    Web,
    /// A WebRTC room.
    Room,
    /// A file uploaded in chunks.
    Upload,
}

impl SourceKind {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Frames => "frames",
            SourceKind::Web => "web",
            SourceKind::Room => "room",
            SourceKind::Upload => "upload",
        }
    }
    /// What people call it (the web page shows the same words, from
    /// `web/words.js`; a test keeps them equal), so a search finds it by
    /// either name.
    pub fn label(self) -> &'static str {
        match self {
            SourceKind::Frames => "Live camera",
            SourceKind::Web => "Web page",
            SourceKind::Room => "Call",
            SourceKind::Upload => "Recorded in a browser",
        }
    }
    /// Parses a name produced by [`SourceKind::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Session statistics of one recording.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Frames (or media units) received from the source.
    pub frames_in: u64,
    /// Frames written to the output (held frames included in CFR).
    pub frames_written: u64,
    /// Input frames not used: corrupt, oversized, paused, out of order, superseded, queue full.
    pub frames_dropped: u64,
    /// Of the dropped, those that were not a valid image or were too large.
    pub frames_invalid: u64,
    /// Distinct input frames per second of output.
    pub achieved_fps: f64,
    /// CPU seconds spent by the encoder processes.
    pub cpu_s: f64,
    /// Wall seconds from stop to completed.
    pub processing_s: f64,
    /// Seconds of video per second of wall-clock time while recording (web).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realtime_factor: Option<f64>,
    /// The share (0 to 1) done of a job after stop that takes a while (a
    /// room's grid composite).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<f64>,
    /// Frames a web recording is planned to have (its script's length),
    /// beside `frames_written` for its progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frames_planned: Option<u64>,
    /// Wall seconds a web recording still needs to render its planned
    /// frames at its pace so far (while it renders).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta_s: Option<f64>,
    /// Browsers that rendered a web recording at once, each a range of
    /// its frames (`split`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browsers: Option<u32>,
    /// Seconds of a camera's recording received but not encoded yet: one
    /// accepted beyond the CPU budget is spooled as it arrives and encoded
    /// when there is room, after stop if need be.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encode_lag_s: Option<f64>,
}

/// What ffprobe found in the output file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MediaInfo {
    /// Container format name.
    pub container: String,
    /// Video codec name (`h264`, `vp9`, ...).
    pub video_codec: String,
    /// Audio codec name (`aac`, `opus`), if the file has sound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_codec: Option<String>,
    /// Frame width.
    pub width: u32,
    /// Frame height.
    pub height: u32,
    /// Average frame rate.
    pub fps: f64,
    /// Number of video frames, when known.
    pub frames: Option<u64>,
    /// Duration in seconds.
    pub duration_s: f64,
    /// SHA-256 of the file, hex.
    pub sha256: String,
}

/// The name a file is saved under: `title`'s letters, digits, spaces,
/// dots, dashes and underscores (anything else a space, at most 80), then
/// `.ext`; `fallback` when the title leaves nothing. Safe in a
/// `Content-Disposition` header and in any file system.
pub fn download_name(title: Option<&str>, fallback: &str, ext: &str) -> String {
    let mut name = String::new();
    for c in title.unwrap_or("").chars() {
        let keep = c.is_ascii_alphanumeric() || matches!(c, ' ' | '.' | '-' | '_');
        let c = if keep { c } else { ' ' };
        if !(c == ' ' && (name.is_empty() || name.ends_with(' '))) {
            name.push(c);
        }
    }
    let name: String = name.trim_matches([' ', '.']).chars().take(80).collect();
    let name = name.trim_end_matches([' ', '.']);
    let name = if name.is_empty() { fallback } else { name };
    // A title that already ends in the extension keeps one.
    match name.strip_suffix(&format!(".{ext}")) {
        Some(stem) if !stem.trim_end_matches([' ', '.']).is_empty() => format!("{stem}.{ext}"),
        _ => format!("{name}.{ext}"),
    }
}

/// One recording as the API shows it and the repository stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recording {
    /// Its id.
    pub id: RecordingId,
    /// The user that owns it.
    pub owner: String,
    /// Lifecycle status.
    pub status: Status,
    /// Why recording ended, once it has.
    pub end_reason: Option<EndReason>,
    /// The source and its parameters.
    pub source: SourceSpec,
    /// Output container.
    pub format: Format,
    /// The preset the settings started from.
    pub preset: Preset,
    /// Resolved video settings.
    pub video: VideoSettings,
    /// Longest recording time before it is finalized, seconds.
    pub max_duration_s: u32,
    /// A title for people.
    pub title: Option<String>,
    /// Free-form JSON object from the creator.
    pub metadata: serde_json::Value,
    /// Creation time.
    #[serde(with = "crate::recording::time_ms")]
    pub created_at: i64,
    /// When the source started.
    #[serde(with = "crate::recording::opt_time_ms")]
    pub started_at: Option<i64>,
    /// When recording stopped.
    #[serde(with = "crate::recording::opt_time_ms")]
    pub stopped_at: Option<i64>,
    /// When processing finished (completed or failed).
    #[serde(with = "crate::recording::opt_time_ms")]
    pub completed_at: Option<i64>,
    /// When the retention sweep deletes it.
    #[serde(with = "crate::recording::opt_time_ms")]
    pub expires_at: Option<i64>,
    /// Output duration in seconds.
    pub duration_s: Option<f64>,
    /// Stored media size in bytes.
    pub size_bytes: Option<u64>,
    /// Why it failed: a stable code and a message.
    pub error: Option<crate::codes::Failure>,
    /// Something the recording is waiting out (`storage_retry`: the store
    /// refused the finished file; it is kept and stored again with backoff).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<crate::codes::Failure>,
    /// Session statistics.
    pub stats: Stats,
    /// Probe results of the stored media.
    pub media: Option<MediaInfo>,
    /// The recording this one re-records (`POST .../regenerate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regenerated_from: Option<RecordingId>,
    /// Where a pending web recording waits for the server's capacity (1 is
    /// next); shown, not stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_position: Option<u32>,
    /// A room recording's track files.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tracks: Vec<TrackFile>,
    /// A room recording's speaker timeline: who spoke when.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub speakers: Vec<crate::track::Speech>,
    /// Live outputs (HLS, pictures, streams) and what each is doing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<crate::output::Output>,
    /// The cluster node that holds it: its driver runs there (none on a
    /// server alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

impl Recording {
    /// The name a download of the media is saved under ([`download_name`]).
    pub fn download_name(&self) -> String {
        download_name(
            self.title.as_deref(),
            &self.id.to_string(),
            self.format.extension(),
        )
    }

    /// Object key of the media file.
    pub fn media_key(&self) -> String {
        format!("recordings/{}/media.{}", self.id, self.format.extension())
    }
    /// Object key of one track file.
    pub fn track_key(&self, t: &TrackFile) -> String {
        format!("recordings/{}/tracks/{}.{}", self.id, t.id, t.container)
    }
    /// Object key of the poster thumbnail.
    pub fn poster_key(&self) -> String {
        format!("recordings/{}/poster.jpg", self.id)
    }
    /// Object key of the thumbnail strip.
    pub fn strip_key(&self) -> String {
        format!("recordings/{}/strip.jpg", self.id)
    }
}

/// The API's times: RFC 3339 strings for unix milliseconds (their own
/// module, `crate::times`, used by every type with a time).
pub use crate::times::{opt_time_ms, time_ms};

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn lifecycle_paths() {
        let s = Status::Pending.apply(Action::Start).unwrap();
        let s = s.apply(Action::Pause).unwrap();
        assert_eq!(s, Status::Paused);
        assert!(s.apply(Action::Pause).is_err());
        let s = s
            .apply(Action::Resume)
            .unwrap()
            .apply(Action::Stop)
            .unwrap();
        assert_eq!(s, Status::Processing);
        assert_eq!(
            s.apply(Action::Cancel).unwrap_err().from,
            Status::Processing
        );
        assert_eq!(s.apply(Action::Complete).unwrap(), Status::Completed);
    }

    fn any_action() -> impl Strategy<Value = Action> {
        prop_oneof![
            Just(Action::Start),
            Just(Action::Pause),
            Just(Action::Resume),
            Just(Action::Stop),
            Just(Action::Cancel),
            Just(Action::Complete),
            Just(Action::Fail),
        ]
    }

    proptest! {
        /// Terminal states never change, and no sequence leaves the state graph.
        #[test]
        fn terminal_is_final(actions in proptest::collection::vec(any_action(), 0..40)) {
            let mut s = Status::Pending;
            for a in actions {
                let was_terminal = s.is_terminal();
                match s.apply(a) {
                    Ok(next) => { prop_assert!(!was_terminal); s = next; }
                    Err(e) => prop_assert_eq!(e.from, s),
                }
            }
        }
    }

    #[test]
    fn download_names_come_from_the_title_and_are_safe() {
        let n = |t: Option<&str>| download_name(t, "rec_x", "mp4");
        assert_eq!(n(Some("Weekly standup")), "Weekly standup.mp4");
        assert_eq!(n(Some("../../etc/passwd")), "etc passwd.mp4");
        assert_eq!(n(Some("a\"b\r\nc; filename=x")), "a b c filename x.mp4");
        assert_eq!(n(Some("clip.mp4")), "clip.mp4");
        assert_eq!(n(Some("Café ☕")), "Caf.mp4");
        assert_eq!(n(Some("☕")), "rec_x.mp4");
        assert_eq!(n(None), "rec_x.mp4");
        assert_eq!(n(Some(&"x".repeat(200))).len(), 84);
    }

    #[test]
    fn time_round_trip() {
        let ms = 1_763_700_000_123;
        assert_eq!(time_ms::parse(&time_ms::format(ms)), Some(ms));
    }
}
