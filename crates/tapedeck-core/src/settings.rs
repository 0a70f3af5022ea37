//! Output settings: quality presets, container formats and their overrides.

use crate::codes::Code;
use serde::{Deserialize, Serialize};

/// A quality preset: size, frame rate and bitrates, each overridable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// 854x480, 24 fps, 1 Mbit/s.
    Low,
    /// 1280x720, 30 fps, 2.5 Mbit/s.
    #[default]
    Medium,
    /// 1920x1080, 30 fps, 5 Mbit/s.
    High,
    /// 3840x2160, 60 fps, 15 Mbit/s.
    Ultra,
}

impl Preset {
    /// The settings this preset stands for, before overrides.
    pub fn settings(self) -> VideoSettings {
        let (width, height, fps, video_bitrate_kbps, audio_bitrate_kbps) = match self {
            Preset::Low => (854, 480, 24, 1000, 96),
            Preset::Medium => (1280, 720, 30, 2500, 128),
            Preset::High => (1920, 1080, 30, 5000, 192),
            Preset::Ultra => (3840, 2160, 60, 15000, 256),
        };
        VideoSettings {
            width,
            height,
            fps,
            video_bitrate_kbps,
            audio_bitrate_kbps,
            cfr: true,
        }
    }
}

/// The container (and with it the codecs) of the output file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// MP4 with H.264, moov at the front (fast start).
    #[default]
    Mp4,
    /// WebM with VP9.
    Webm,
    /// Matroska with H.264.
    Mkv,
}

impl Format {
    /// File extension, also used in object keys.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Mp4 => "mp4",
            Format::Webm => "webm",
            Format::Mkv => "mkv",
        }
    }
    /// The MIME type served with the media.
    pub fn mime(self) -> &'static str {
        match self {
            Format::Mp4 => "video/mp4",
            Format::Webm => "video/webm",
            Format::Mkv => "video/x-matroska",
        }
    }
    /// The video codec name as ffprobe reports it.
    pub fn video_codec(self) -> &'static str {
        match self {
            Format::Mp4 | Format::Mkv => "h264",
            Format::Webm => "vp9",
        }
    }
}

/// Resolved video settings of one recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VideoSettings {
    /// Output width in pixels (even).
    pub width: u32,
    /// Output height in pixels (even).
    pub height: u32,
    /// Output frame rate.
    pub fps: u32,
    /// Target video bitrate.
    pub video_bitrate_kbps: u32,
    /// Target audio bitrate (sources with audio).
    pub audio_bitrate_kbps: u32,
    /// Constant frame rate (frames held until the next) or variable.
    pub cfr: bool,
}

/// Field-by-field overrides of a preset, as a request gives them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overrides {
    /// Width override.
    pub width: Option<u32>,
    /// Height override.
    pub height: Option<u32>,
    /// Frame rate override.
    pub fps: Option<u32>,
    /// Video bitrate override.
    pub video_bitrate_kbps: Option<u32>,
    /// CFR override.
    pub cfr: Option<bool>,
}

/// An override out of range.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{field}: {message}")]
pub struct InvalidSettings {
    /// The offending field.
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl crate::ErrorCode for InvalidSettings {
    fn code(&self) -> Code {
        Code::InvalidSettings
    }
}

/// `base`'s bitrate scaled to `s`'s size and rate: by the ratio of pixels
/// per second to the power 0.75 (bigger pictures need fewer bits per
/// pixel), rounded to 10 kbit/s, within the allowed 50 to 100 000.
fn scaled_bitrate(base: &VideoSettings, s: &VideoSettings) -> u32 {
    let rate = |v: &VideoSettings| f64::from(v.width) * f64::from(v.height) * f64::from(v.fps);
    let kbps = f64::from(base.video_bitrate_kbps) * (rate(s) / rate(base)).powf(0.75);
    ((kbps / 10.0).round() * 10.0).clamp(50.0, 100_000.0) as u32
}

impl VideoSettings {
    /// Applies `overrides` to `preset`, checking every value.
    pub fn resolve(preset: Preset, o: Overrides) -> Result<Self, InvalidSettings> {
        let mut s = preset.settings();
        let bad = |field, message: String| Err(InvalidSettings { field, message });
        if let Some(w) = o.width {
            if !(16..=7680).contains(&w) || w % 2 != 0 {
                return bad("width", format!("{w} must be even and between 16 and 7680"));
            }
            s.width = w;
        }
        if let Some(h) = o.height {
            if !(16..=4320).contains(&h) || h % 2 != 0 {
                return bad(
                    "height",
                    format!("{h} must be even and between 16 and 4320"),
                );
            }
            s.height = h;
        }
        if let Some(f) = o.fps {
            if !(1..=120).contains(&f) {
                return bad("fps", format!("{f} must be between 1 and 120"));
            }
            s.fps = f;
        }
        // The preset's bitrate is for its own size and rate: another size
        // or rate without a bitrate of its own gets it scaled (a 720p cap
        // starves a 4K picture: the encoder then repeats pictures).
        s.video_bitrate_kbps = scaled_bitrate(&preset.settings(), &s);
        if let Some(b) = o.video_bitrate_kbps {
            if !(50..=100_000).contains(&b) {
                return bad(
                    "video_bitrate_kbps",
                    format!("{b} must be between 50 and 100000"),
                );
            }
            s.video_bitrate_kbps = b;
        }
        if let Some(c) = o.cfr {
            s.cfr = c;
        }
        Ok(s)
    }

    /// Duration of one output frame in microseconds (rounded down).
    pub fn frame_us(&self) -> i64 {
        1_000_000 / i64::from(self.fps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_match_the_product_table() {
        let m = Preset::Medium.settings();
        assert_eq!(
            (m.width, m.height, m.fps, m.video_bitrate_kbps),
            (1280, 720, 30, 2500)
        );
        let u = Preset::Ultra.settings();
        assert_eq!((u.width, u.height, u.fps), (3840, 2160, 60));
    }

    #[test]
    fn another_size_or_rate_scales_the_bitrate_unless_one_is_given() {
        let same = VideoSettings::resolve(Preset::Medium, Overrides::default()).unwrap();
        assert_eq!(same.video_bitrate_kbps, 2500);
        let uhd = Overrides {
            width: Some(3840),
            height: Some(2160),
            fps: Some(60),
            ..Default::default()
        };
        // 18 times the pixels per second: 18^0.75 = 8.74 times the bits.
        let s = VideoSettings::resolve(Preset::Medium, uhd).unwrap();
        assert_eq!(s.video_bitrate_kbps, 21850);
        let small = Overrides {
            width: Some(320),
            height: Some(180),
            ..Default::default()
        };
        assert_eq!(
            VideoSettings::resolve(Preset::Medium, small)
                .unwrap()
                .video_bitrate_kbps,
            310
        );
        let given = Overrides {
            video_bitrate_kbps: Some(3000),
            ..uhd
        };
        assert_eq!(
            VideoSettings::resolve(Preset::Medium, given)
                .unwrap()
                .video_bitrate_kbps,
            3000
        );
    }

    #[test]
    fn overrides_are_checked() {
        let o = Overrides {
            width: Some(641),
            ..Default::default()
        };
        assert_eq!(
            VideoSettings::resolve(Preset::Low, o).unwrap_err().field,
            "width"
        );
        let o = Overrides {
            fps: Some(5),
            cfr: Some(false),
            ..Default::default()
        };
        let s = VideoSettings::resolve(Preset::Low, o).unwrap();
        assert_eq!((s.fps, s.cfr, s.width), (5, false, 854));
    }
}
