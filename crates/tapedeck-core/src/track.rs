//! A call's tracks: what one carries.

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
