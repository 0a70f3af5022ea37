//! The `web` source's parameters and their validation.

use crate::codes::Code;
use serde::{Deserialize, Serialize};

use crate::script::{Script, check_web_url};
use crate::tour::Template;

/// How the page's time runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum WebMode {
    /// Virtual time: every output frame is rendered for its own instant.
    #[default]
    Deterministic,
    /// Wall-clock time, for pages that must run in real time.
    Realtime,
}

/// Whether a deterministic recording may be rendered by several browsers
/// at once, each a range of its frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Where it is safe: a script given step by step, ranges after its
    /// last `goto`, each join checked (the first frame after it, rendered
    /// by both browsers, must match, else one browser renders it all
    /// again).
    #[default]
    Auto,
    /// One browser: for a page whose state depends on more than its
    /// virtual time (the network while it plays, a seed from the clock).
    Off,
}

fn null_is_auto<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Split, D::Error> {
    Ok(Option::<Split>::deserialize(d)?.unwrap_or_default())
}

impl Split {
    /// Whether this is the default (left out when stored).
    pub fn is_auto(&self) -> bool {
        *self == Split::Auto
    }
}

/// `auto`: a tour of the page's key elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoTour {
    /// The video's length.
    pub duration_s: u32,
}

/// Longest auto tour.
pub const MAX_AUTO_S: u32 = 3600;
/// Default auto tour when no script, template or auto is given.
pub const DEFAULT_AUTO_S: u32 = 10;

/// A web recording's source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebSource {
    /// The page (http or https).
    pub url: String,
    /// CSS viewport `WxH`; by default the output size (halved above 1920 wide, at 2x).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub viewport: Option<String>,
    /// Virtual or wall-clock time.
    #[serde(default)]
    pub mode: WebMode,
    /// Steps to play.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<Script>,
    /// Or a named template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<Template>,
    /// Or an automatic tour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto: Option<AutoTour>,
    /// Record the page's audio: realtime only, where it is on unless `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<bool>,
    /// Several browsers at once (deterministic mode); null is the default.
    #[serde(
        default,
        skip_serializing_if = "Split::is_auto",
        deserialize_with = "null_is_auto"
    )]
    pub split: Split,
}

/// A web source field that cannot be used (the script has its own error,
/// [`crate::script::ScriptError`], naming the step).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("source field `{field}`: {message}")]
pub struct InvalidSource {
    /// The offending field, e.g. `url` or `auto.duration_s`.
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl crate::ErrorCode for InvalidSource {
    fn code(&self) -> Code {
        Code::InvalidSource
    }
}

/// How the page is shown: CSS viewport and device pixel ratio.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Viewport {
    /// CSS width.
    pub width: u32,
    /// CSS height.
    pub height: u32,
    /// Device pixels per CSS pixel.
    pub scale: f64,
}

/// Parses `WxH`.
pub fn parse_size(s: &str) -> Option<(u32, u32)> {
    let (w, h) = s.split_once('x')?;
    // Exactly `WxH` in plain digits, as the API documents: no sign, space
    // or leading zero that `str::parse` would let through.
    let num = |n: &str| {
        (n.bytes().all(|b| b.is_ascii_digit()) && !n.starts_with('0'))
            .then(|| n.parse().ok())
            .flatten()
    };
    Some((num(w)?, num(h)?))
}

/// A viewport the API takes: `WxH` within 200x200 to 3840x2160, as a
/// JSON-schema pattern (the OpenAPI document's; [`WebSource::validate`]
/// checks the same).
pub const VIEWPORT_PATTERN: &str = "^([2-9][0-9]{2}|[12][0-9]{3}|3[0-7][0-9]{2}|38[0-3][0-9]|3840)x([2-9][0-9]{2}|1[0-9]{3}|20[0-9]{2}|21[0-5][0-9]|2160)$";

impl WebSource {
    /// Checks everything that can be checked before a browser starts.
    pub fn validate(&self) -> Result<(), InvalidSource> {
        let field = |field: &'static str, message: String| InvalidSource { field, message };
        check_web_url(&self.url).map_err(|m| field("url", m))?;
        if let Some(v) = &self.viewport {
            match parse_size(v) {
                Some((w, h)) if (200..=3840).contains(&w) && (200..=2160).contains(&h) => {}
                _ => {
                    return Err(field(
                        "viewport",
                        format!("`{v}` is not WxH within 200x200 to 3840x2160"),
                    ));
                }
            }
        }
        let given = [
            self.script.is_some(),
            self.template.is_some(),
            self.auto.is_some(),
        ]
        .iter()
        .filter(|g| **g)
        .count();
        if given > 1 {
            return Err(field(
                "script",
                "give one of `script`, `template` or `auto`".into(),
            ));
        }
        if self.audio == Some(true) && self.mode == WebMode::Deterministic {
            return Err(field(
                "audio",
                "needs `mode: realtime`: a page on virtual time makes no sound".into(),
            ));
        }
        if let Some(a) = self.auto
            && !(1..=MAX_AUTO_S).contains(&a.duration_s)
        {
            return Err(field(
                "auto.duration_s",
                format!("must be 1 to {MAX_AUTO_S}"),
            ));
        }
        Ok(())
    }

    /// Whether the page's audio is recorded.
    pub fn wants_audio(&self) -> bool {
        self.mode == WebMode::Realtime && self.audio != Some(false)
    }

    /// The viewport for an output of `out_w`x`out_h` device pixels.
    pub fn viewport_for(&self, out_w: u32, out_h: u32) -> Viewport {
        match self.viewport.as_deref().and_then(parse_size) {
            Some((w, h)) => Viewport {
                width: w,
                height: h,
                scale: (f64::from(out_w) / f64::from(w)).min(f64::from(out_h) / f64::from(h)),
            },
            None if out_w > 1920 => Viewport {
                width: out_w / 2,
                height: out_h / 2,
                scale: 2.0,
            },
            None => Viewport {
                width: out_w,
                height: out_h,
                scale: 1.0,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(v: serde_json::Value) -> WebSource {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn split_is_auto_unless_off_and_null_is_auto() {
        let u = "https://a.b";
        assert_eq!(src(serde_json::json!({"url": u})).split, Split::Auto);
        assert_eq!(
            src(serde_json::json!({"url": u, "split": null})).split,
            Split::Auto
        );
        assert_eq!(
            src(serde_json::json!({"url": u, "split": "off"})).split,
            Split::Off
        );
        for bad in [
            serde_json::json!("on"),
            serde_json::json!("AUTO"),
            serde_json::json!(1),
        ] {
            let r: Result<WebSource, _> =
                serde_json::from_value(serde_json::json!({"url": u, "split": bad}));
            assert!(r.is_err(), "{bad}");
        }
        // Stored as it was given: the default left out.
        let v = serde_json::to_value(src(serde_json::json!({"url": u}))).unwrap();
        assert!(v.get("split").is_none(), "{v}");
    }

    #[test]
    fn validation() {
        assert!(
            src(serde_json::json!({"url": "https://example.org"}))
                .validate()
                .is_ok()
        );
        let e = src(serde_json::json!({"url": "ftp://example.org"}))
            .validate()
            .unwrap_err();
        assert_eq!(e.field, "url");
        let e = src(serde_json::json!({"url": "https://a.b", "viewport": "10x10"}))
            .validate()
            .unwrap_err();
        assert_eq!(e.field, "viewport");
        let e = src(serde_json::json!({"url": "https://a.b", "template": "hero_showcase", "auto": {"duration_s": 3}}))
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("one of"), "{e}");
        let e = src(serde_json::json!({"url": "https://a.b", "audio": true}))
            .validate()
            .unwrap_err();
        assert_eq!(e.field, "audio");
        assert!(e.to_string().contains("realtime"), "{e}");
        let rt = src(serde_json::json!({"url": "https://a.b", "mode": "realtime"}));
        assert!(rt.validate().is_ok() && rt.wants_audio());
        let quiet =
            src(serde_json::json!({"url": "https://a.b", "mode": "realtime", "audio": false}));
        assert!(!quiet.wants_audio());
        assert!(!src(serde_json::json!({"url": "https://a.b"})).wants_audio());
        assert!(
            serde_json::from_value::<WebSource>(
                serde_json::json!({"url": "https://a.b", "template": "nope"})
            )
            .is_err()
        );
    }

    #[test]
    fn viewports() {
        let s = src(serde_json::json!({"url": "https://example.org"}));
        assert_eq!(
            s.viewport_for(1280, 720),
            Viewport {
                width: 1280,
                height: 720,
                scale: 1.0
            }
        );
        assert_eq!(
            s.viewport_for(3840, 2160),
            Viewport {
                width: 1920,
                height: 1080,
                scale: 2.0
            }
        );
        let s = src(serde_json::json!({"url": "https://example.org", "viewport": "1280x720"}));
        assert_eq!(s.viewport_for(1920, 1080).scale, 1.5);
    }
}
