//! A web frame as the spool keeps it: the overlay always, the page's pixels
//! only when they changed since the last kept frame. Recovery after a crash
//! replays these records in order and draws the overlay again, so a recovered
//! video looks like the live one, and a frame where only the cursor moved
//! costs a few dozen bytes instead of a screenshot.
//!
//! Layout (little endian): `b"TDWB" | scale: f64 | overlay_len: u32 |
//! overlay (JSON) | page image (PNG/JPEG, empty when unchanged)`. Plain frames
//! in the same spool are JPEG, PNG or WebP, which never start with `TDWB`.
//! Own format because the record must carry an image and a small structure
//! with no copy of the image; the spool's own record checks its integrity.

use tapedeck_core::player::Overlay;

const MAGIC: &[u8; 4] = b"TDWB";
/// An overlay is a cursor, a few ripples and a highlight: larger is corrupt.
const MAX_OVERLAY: usize = 64 * 1024;

/// One decoded record.
#[derive(Debug, Clone, PartialEq)]
pub struct SpooledWebFrame<'a> {
    /// Device pixels per CSS pixel.
    pub scale: f64,
    /// What was drawn over the page.
    pub overlay: Overlay,
    /// The page's new pixels, or `None` if they are the previous record's.
    pub page: Option<&'a [u8]>,
}

/// True if a spool payload is a web frame record.
pub fn is_web_record(payload: &[u8]) -> bool {
    payload.starts_with(MAGIC)
}

/// Encodes one record.
pub fn encode(scale: f64, overlay: &Overlay, page: Option<&[u8]>) -> Vec<u8> {
    // Serializing plain numbers and vectors cannot fail.
    let json = serde_json::to_vec(overlay).unwrap_or_default();
    let page = page.unwrap_or_default();
    let mut out = Vec::with_capacity(16 + json.len() + page.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&scale.to_le_bytes());
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(page);
    out
}

/// Decodes one record, or says what is wrong with it.
pub fn decode(payload: &[u8]) -> Result<SpooledWebFrame<'_>, String> {
    let rest = payload
        .strip_prefix(MAGIC)
        .ok_or("not a web frame record")?;
    if rest.len() < 12 {
        return Err("web frame record too short".into());
    }
    let (scale, rest) = rest.split_at(8);
    let scale = f64::from_le_bytes(scale.try_into().map_err(|_| "bad scale")?);
    if !(scale.is_finite() && (0.1..=8.0).contains(&scale)) {
        return Err(format!("web frame record: scale {scale} out of range"));
    }
    let (len, rest) = rest.split_at(4);
    let len = u32::from_le_bytes(len.try_into().map_err(|_| "bad length")?) as usize;
    if len > MAX_OVERLAY || len > rest.len() {
        return Err(format!(
            "web frame record: overlay of {len} bytes does not fit"
        ));
    }
    let (json, page) = rest.split_at(len);
    let overlay = serde_json::from_slice(json).map_err(|e| format!("web frame overlay: {e}"))?;
    Ok(SpooledWebFrame {
        scale,
        overlay,
        page: (!page.is_empty()).then_some(page),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapedeck_core::player::Ripple;

    #[test]
    fn round_trip() {
        let overlay = Overlay {
            cursor: Some((10.5, 20.0)),
            pressed: true,
            ripples: vec![Ripple {
                x: 1.0,
                y: 2.0,
                age: 0.5,
            }],
            highlight: None,
        };
        let rec = encode(2.0, &overlay, Some(b"\x89PNG..."));
        assert!(is_web_record(&rec));
        let d = decode(&rec).unwrap();
        assert_eq!(
            d,
            SpooledWebFrame {
                scale: 2.0,
                overlay: overlay.clone(),
                page: Some(b"\x89PNG...".as_slice())
            }
        );
        let bare = encode(1.0, &overlay, None);
        assert_eq!(decode(&bare).unwrap().page, None);
        assert!(bare.len() < 200, "{}", bare.len());
    }

    #[test]
    fn corrupt_records_are_errors() {
        let good = encode(1.0, &Overlay::default(), None);
        assert!(decode(b"\xff\xd8\xff").is_err());
        assert!(decode(&good[..10]).is_err());
        let mut big = good.clone();
        big[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(&big).is_err());
        let mut nan = good.clone();
        nan[4..12].copy_from_slice(&f64::NAN.to_le_bytes());
        assert!(decode(&nan).is_err());
        let mut json = good;
        json[16] = b'!';
        assert!(decode(&json).is_err());
    }
}

/// Replays web frame records in spool order into pictures, as the
/// [`Compositor`](super::Compositor) made them.
#[derive(Default)]
pub struct Replay {
    page: Option<image::RgbImage>,
    painter: Option<(f64, super::overlay::Painter)>,
}

impl Replay {
    /// The picture of one record: its page (or the last one) with its overlay.
    pub fn picture(&mut self, payload: &[u8]) -> Result<image::RgbImage, String> {
        let rec = decode(payload)?;
        if let Some(page) = rec.page {
            let limits = crate::picture::FrameLimits {
                max_bytes: usize::MAX,
                ..Default::default()
            };
            let img = crate::picture::decode_rgb(page, &limits).map_err(|e| e.to_string())?;
            self.page = Some(img);
        }
        let page = self.page.as_ref().ok_or("a web frame before any page")?;
        let painter = match &mut self.painter {
            Some((s, p)) if *s == rec.scale => p,
            slot => {
                &mut slot
                    .insert((rec.scale, super::overlay::Painter::new(rec.scale)))
                    .1
            }
        };
        let mut img = page.clone();
        painter.paint(&mut img, &rec.overlay);
        Ok(img)
    }
}
