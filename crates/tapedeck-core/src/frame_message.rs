//! Messages on the frames WebSocket (outside input).

use serde::{Deserialize, Serialize};

/// The image formats a frame may be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageKind {
    /// JPEG (JFIF/Exif).
    Jpeg,
    /// PNG.
    Png,
    /// WebP (lossy or lossless).
    Webp,
}

/// Tells the image format from its first bytes.
pub fn sniff_image(bytes: &[u8]) -> Option<ImageKind> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(ImageKind::Jpeg)
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(ImageKind::Png)
    } else if bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some(ImageKind::Webp)
    } else {
        None
    }
}

/// A text message from the client.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlMessage {
    /// The timestamp of the next image, in milliseconds on the client's clock.
    pub pts_ms: f64,
}

/// A control message that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("bad control message: {0}")]
pub struct BadControl(pub String);

/// Parses a text message; the timestamp must be finite and non-negative.
pub fn parse_control(text: &str) -> Result<ControlMessage, BadControl> {
    let m: ControlMessage = serde_json::from_str(text).map_err(|e| BadControl(e.to_string()))?;
    if !m.pts_ms.is_finite() || m.pts_ms < 0.0 || m.pts_ms > 1e12 {
        return Err(BadControl(format!("pts_ms {} is out of range", m.pts_ms)));
    }
    Ok(m)
}

/// A progress message the server sends back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Recording status.
    pub status: String,
    /// Frames received.
    pub frames_received: u64,
    /// Frames written to the encoder.
    pub frames_written: u64,
    /// Frames dropped, all reasons.
    pub frames_dropped: u64,
    /// Frames that were not valid images or too large.
    pub frames_invalid: u64,
    /// Output duration so far, seconds.
    pub duration_s: f64,
    /// The last problem with a frame, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sniffs() {
        assert_eq!(
            sniff_image(&[0xFF, 0xD8, 0xFF, 0xE0]),
            Some(ImageKind::Jpeg)
        );
        assert_eq!(sniff_image(b"RIFF\0\0\0\0WEBPVP8 "), Some(ImageKind::Webp));
        assert_eq!(sniff_image(b"GIF89a"), None);
    }

    #[test]
    fn controls() {
        assert_eq!(parse_control(r#"{"pts_ms": 40}"#).unwrap().pts_ms, 40.0);
        assert!(parse_control(r#"{"pts_ms": -1}"#).is_err());
        assert!(parse_control(r#"{"pts": 1}"#).is_err());
        assert!(parse_control("nope").is_err());
    }

    proptest! {
        #[test]
        fn never_panic(s in ".{0,64}", b in proptest::collection::vec(any::<u8>(), 0..32)) {
            let _ = parse_control(&s);
            let _ = sniff_image(&b);
        }
    }
}
