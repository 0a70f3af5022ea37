//! Messages on the frames WebSocket (outside input).
//!
//! A binary message is one image. A text message is either a control
//! (`{"pts_ms": N}`: the next image's timestamp) or an image as browser apps
//! send it from `canvas.toDataURL`: `{"pts_ms": N, "image": "data:image/jpeg;base64,..."}`
//! or a bare `data:image/...` string. Base64 may also come without the
//! `data:` prefix inside `image`.

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
    check_pts(m.pts_ms)?;
    Ok(m)
}

/// A text message: a control, or an image sent as text.
#[derive(Debug, Clone, PartialEq)]
pub enum TextMessage {
    /// Sets the next image's timestamp.
    Control(ControlMessage),
    /// An image with its timestamp, if it came with one.
    Image {
        /// Milliseconds on the client's clock.
        pts_ms: Option<f64>,
        /// The decoded image bytes (not yet checked to be an image).
        bytes: Vec<u8>,
    },
}

/// Why a text message could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TextError {
    /// Not a control or image message at all.
    #[error(transparent)]
    Control(#[from] BadControl),
    /// An image message whose image cannot be used; counted as an invalid frame.
    #[error("bad image in text message: {0}")]
    Image(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TextFields {
    pts_ms: Option<f64>,
    image: Option<String>,
}

/// Parses a text message. `max_bytes` bounds a text image's decoded size
/// (checked before decoding, so an oversized one costs no allocation).
pub fn parse_text(text: &str, max_bytes: usize) -> Result<TextMessage, TextError> {
    let trimmed = text.trim();
    if trimmed.starts_with("data:") {
        return Ok(TextMessage::Image {
            pts_ms: None,
            bytes: decode_image_text(trimmed, max_bytes)?,
        });
    }
    let f: TextFields = serde_json::from_str(text).map_err(|e| BadControl(e.to_string()))?;
    if let Some(p) = f.pts_ms {
        check_pts(p)?;
    }
    match (f.pts_ms, f.image) {
        (pts_ms, Some(image)) => Ok(TextMessage::Image {
            pts_ms,
            bytes: decode_image_text(image.trim(), max_bytes)?,
        }),
        (Some(pts_ms), None) => Ok(TextMessage::Control(ControlMessage { pts_ms })),
        (None, None) => Err(BadControl("expected `pts_ms` or `image`".into()).into()),
    }
}

/// Decodes a `data:image/...;base64,...` URL or bare base64.
fn decode_image_text(s: &str, max_bytes: usize) -> Result<Vec<u8>, TextError> {
    use base64::Engine as _;
    let payload = match s.strip_prefix("data:") {
        Some(rest) => {
            let (head, payload) = rest
                .split_once(',')
                .ok_or_else(|| TextError::Image("a data URL needs a `,` before its data".into()))?;
            let mut parts = head.split(';');
            let mime = parts.next().unwrap_or_default().to_ascii_lowercase();
            if !mime.starts_with("image/") {
                return Err(TextError::Image(format!(
                    "the data URL's type is `{mime}`; send image/jpeg, image/png or image/webp"
                )));
            }
            if !parts.any(|p| p.eq_ignore_ascii_case("base64")) {
                return Err(TextError::Image(
                    "the data URL must be base64 (`;base64,`)".into(),
                ));
            }
            payload
        }
        None => s,
    };
    // Every 4 characters decode to 3 bytes: refuse before decoding what cannot fit.
    let too_large = |n: usize| {
        TextError::Image(format!(
            "the image is about {n} bytes; the limit is {max_bytes}"
        ))
    };
    let estimate = payload.len() / 4 * 3 + payload.len() % 4;
    if estimate > max_bytes.saturating_add(2) {
        return Err(too_large(estimate));
    }
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let bytes = engine
        .decode(payload.as_bytes())
        .map_err(|e| TextError::Image(format!("not valid base64: {e}")))?;
    if bytes.len() > max_bytes {
        return Err(too_large(bytes.len()));
    }
    Ok(bytes)
}

fn check_pts(pts_ms: f64) -> Result<(), BadControl> {
    if !pts_ms.is_finite() || !(0.0..=1e12).contains(&pts_ms) {
        return Err(BadControl(format!("pts_ms {pts_ms} is out of range")));
    }
    Ok(())
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

    #[test]
    fn text_images() {
        use base64::Engine as _;
        let jpeg = [0xFFu8, 0xD8, 0xFF, 0xE0, 1, 2, 3];
        let b64 = base64::engine::general_purpose::STANDARD.encode(jpeg);
        let url = format!("data:image/jpeg;base64,{b64}");
        assert_eq!(
            parse_text(&url, 1000).unwrap(),
            TextMessage::Image {
                pts_ms: None,
                bytes: jpeg.to_vec()
            }
        );
        let msg = format!(r#"{{"pts_ms": 12.5, "image": "{url}"}}"#);
        assert_eq!(
            parse_text(&msg, 1000).unwrap(),
            TextMessage::Image {
                pts_ms: Some(12.5),
                bytes: jpeg.to_vec()
            }
        );
        // Bare base64 inside `image`, padding left off.
        let msg = format!(r#"{{"image": "{}"}}"#, b64.trim_end_matches('='));
        assert!(matches!(
            parse_text(&msg, 1000),
            Ok(TextMessage::Image { pts_ms: None, .. })
        ));
        assert_eq!(
            parse_text(r#"{"pts_ms": 40}"#, 10).unwrap(),
            TextMessage::Control(ControlMessage { pts_ms: 40.0 })
        );
        // Image problems are image errors (counted as invalid frames), shape problems are controls.
        for bad in [
            "data:text/plain;base64,AAAA",
            "data:image/png,abc",
            "data:image/png;base64,@@@@",
            "data:image/png;base64",
        ] {
            assert!(
                matches!(parse_text(bad, 1000), Err(TextError::Image(_))),
                "{bad}"
            );
        }
        assert!(matches!(parse_text(&url, 3), Err(TextError::Image(m)) if m.contains("limit")));
        for bad in [
            "{}",
            "nope",
            r#"{"pts_ms": -1, "image": "AAAA"}"#,
            r#"{"img": "x"}"#,
        ] {
            assert!(
                matches!(parse_text(bad, 1000), Err(TextError::Control(_))),
                "{bad}"
            );
        }
    }

    proptest! {
        #[test]
        fn never_panic(s in ".{0,64}", b in proptest::collection::vec(any::<u8>(), 0..32)) {
            let _ = parse_control(&s);
            let _ = parse_text(&s, 64);
            let _ = sniff_image(&b);
        }

        /// Any bytes survive a data URL round trip; the decoded size never exceeds the limit.
        #[test]
        fn data_url_round_trip(b in proptest::collection::vec(any::<u8>(), 0..300), max in 0usize..400) {
            use base64::Engine as _;
            let url = format!("data:image/webp;base64,{}", base64::engine::general_purpose::STANDARD.encode(&b));
            match parse_text(&url, max) {
                Ok(TextMessage::Image { bytes, .. }) => { prop_assert_eq!(&bytes, &b); prop_assert!(bytes.len() <= max); }
                Ok(other) => prop_assert!(false, "{:?}", other),
                Err(_) => prop_assert!(b.len() > max),
            }
        }
    }
}
