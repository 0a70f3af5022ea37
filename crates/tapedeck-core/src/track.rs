//! A call's tracks: what one carries, in what codec, and the file it is
//! recorded in.

/// What a call's track carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrackKind {
    /// Sound.
    Audio,
    /// Picture.
    Video,
}

impl TrackKind {
    /// `audio` or `video`, as the API and track files name it.
    pub fn as_str(self) -> &'static str {
        match self {
            TrackKind::Audio => "audio",
            TrackKind::Video => "video",
        }
    }
}

/// Where a call's track comes from: a person's camera and microphone, or
/// a screen they share (with its sound, when the browser gives it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackSource {
    /// A camera (every picture a WHIP client sends).
    Camera,
    /// A microphone (every sound a WHIP client sends).
    Microphone,
    /// A shared screen's picture.
    Screen,
    /// A shared screen's sound.
    ScreenAudio,
}

impl TrackSource {
    /// The source of a `kind` track, shared from a screen or not.
    pub fn of(kind: TrackKind, screen: bool) -> Self {
        match (kind, screen) {
            (TrackKind::Video, false) => TrackSource::Camera,
            (TrackKind::Audio, false) => TrackSource::Microphone,
            (TrackKind::Video, true) => TrackSource::Screen,
            (TrackKind::Audio, true) => TrackSource::ScreenAudio,
        }
    }

    /// Whether it is a shared screen's picture or sound.
    pub fn is_screen(self) -> bool {
        matches!(self, TrackSource::Screen | TrackSource::ScreenAudio)
    }
}

/// The codec of a call's track, as it arrives (and as it is recorded:
/// tapedeck does not transcode a call's tracks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrackCodec {
    /// Opus sound.
    Opus,
    /// VP8 pictures.
    Vp8,
    /// VP9 pictures.
    Vp9,
    /// AV1 pictures.
    Av1,
    /// H.264 pictures.
    H264,
}

impl TrackCodec {
    /// `opus`, `vp8`, `vp9`, `av1` or `h264`, as the API and track files
    /// name it.
    pub fn as_str(self) -> &'static str {
        match self {
            TrackCodec::Opus => "opus",
            TrackCodec::Vp8 => "vp8",
            TrackCodec::Vp9 => "vp9",
            TrackCodec::Av1 => "av1",
            TrackCodec::H264 => "h264",
        }
    }

    /// Whether it carries pictures.
    pub fn is_video(self) -> bool {
        !matches!(self, TrackCodec::Opus)
    }
}

impl TrackFile {
    /// Whether it is a shared screen's.
    pub fn is_screen(&self) -> bool {
        self.source.is_some_and(TrackSource::is_screen)
    }
}

/// One track file of a room recording.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrackFile {
    /// `t1`, `t2`, ... in the order tracks began.
    pub id: String,
    /// Whose.
    pub participant: String,
    /// `audio` or `video`.
    pub kind: TrackKind,
    /// Camera, microphone, or a shared screen (absent in recordings made
    /// before sources were told apart: camera and microphone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<TrackSource>,
    /// As received (`opus`, `vp8`, `vp9`, `av1`, `h264`).
    pub codec: TrackCodec,
    /// Where it starts on the recording's timeline, seconds.
    pub start_s: f64,
    /// Its length, seconds (gaps included).
    pub duration_s: f64,
    /// File size.
    pub size_bytes: u64,
    /// `webm` or `mkv`.
    pub container: String,
}

/// A stretch of a call in which one participant spoke, on the recording's
/// timeline (a room recording's `speakers`, from the audio-level header
/// extension, RFC 6464).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Speech {
    /// Who.
    pub participant: String,
    /// From, seconds.
    pub start_s: f64,
    /// To, seconds.
    pub end_s: f64,
}
