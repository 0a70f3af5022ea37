//! Web interaction scripts: the step model, parsing (JSON or YAML values) and
//! validation. Every error names the step (1-based, with its type) and the field.
//!
//! Over 600 lines: 544 of code and its inline tests, which read best beside
//! the planner they check.

use crate::codes::Code;
use serde::{Deserialize, Serialize};

/// Most steps in one script.
pub const MAX_STEPS: usize = 500;
/// Longest single step.
pub const MAX_STEP_MS: u32 = 10 * 60 * 1000;
/// Longest text of one `type` step.
pub const MAX_TEXT_CHARS: usize = 2000;
/// Longest selector.
pub const MAX_SELECTOR_CHARS: usize = 1000;

/// How a tween moves from start to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Easing {
    /// Constant speed.
    Linear,
    /// Slow start.
    EaseIn,
    /// Slow end.
    EaseOut,
    /// Slow start and end (the default).
    #[default]
    EaseInOut,
}

impl Easing {
    /// Eased progress for linear progress `t` in 0..=1.
    pub fn apply(self, t: f64) -> f64 {
        let t = t.clamp(0.0, 1.0);
        match self {
            Easing::Linear => t,
            Easing::EaseIn => t * t * t,
            Easing::EaseOut => 1.0 - (1.0 - t).powi(3),
            Easing::EaseInOut => {
                if t < 0.5 {
                    4.0 * t * t * t
                } else {
                    1.0 - (-2.0 * t + 2.0).powi(3) / 2.0
                }
            }
        }
    }
}

/// An sRGB colour written `#rgb` or `#rrggbb`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Color(pub [u8; 3]);

impl Color {
    /// The default highlight colour.
    pub const HIGHLIGHT: Color = Color([0xff, 0x3b, 0x30]);

    /// Parses `#rgb` or `#rrggbb`.
    pub fn parse(s: &str) -> Option<Color> {
        let hex = s.strip_prefix('#')?;
        // from_str_radix would take a sign.
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let digit = |i: usize| u8::from_str_radix(hex.get(i..i + 1)?, 16).ok();
        match hex.len() {
            3 => Some(Color([digit(0)? * 17, digit(1)? * 17, digit(2)? * 17])),
            6 => {
                let byte = |i: usize| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok();
                Some(Color([byte(0)?, byte(2)?, byte(4)?]))
            }
            _ => None,
        }
    }
}

impl Serialize for Color {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let [r, g, b] = self.0;
        s.serialize_str(&format!("#{r:02x}{g:02x}{b:02x}"))
    }
}

impl<'de> Deserialize<'de> for Color {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Color::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!("`{s}` is not a #rgb or #rrggbb colour"))
        })
    }
}

/// One step of a script.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// Hold still.
    Wait {
        /// How long.
        duration_ms: u32,
    },
    /// Navigate to another page (http or https).
    Goto {
        /// Where.
        url: String,
    },
    /// Smooth scroll to an element or by a distance.
    Scroll {
        /// Scroll so this element is near the top.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        selector: Option<String>,
        /// Scroll by this many CSS pixels (negative is up).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by_px: Option<i32>,
        /// How long the scroll takes (default 1000).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duration_ms: Option<u32>,
        /// Easing (default ease-in-out).
        #[serde(default)]
        easing: Easing,
        /// Skip the step if the element is missing.
        #[serde(default)]
        optional: bool,
    },
    /// Move onto an element and rest there.
    Hover {
        /// The element.
        selector: String,
        /// How long to rest (default 1000).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duration_ms: Option<u32>,
        /// Skip the step if the element is missing.
        #[serde(default)]
        optional: bool,
    },
    /// Move onto an element and click it.
    Click {
        /// The element.
        selector: String,
        /// Skip the step if the element is missing.
        #[serde(default)]
        optional: bool,
    },
    /// Click a field and type into it.
    Type {
        /// The field.
        selector: String,
        /// What to type.
        text: String,
        /// Time between keys (default 80).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        per_key_ms: Option<u32>,
        /// Skip the step if the element is missing.
        #[serde(default)]
        optional: bool,
    },
    /// Draw a box around an element.
    Highlight {
        /// The element.
        selector: String,
        /// How long (default 1500).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duration_ms: Option<u32>,
        /// Box colour (default #ff3b30).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        color: Option<Color>,
        /// Skip the step if the element is missing.
        #[serde(default)]
        optional: bool,
    },
    /// Move the cursor to a point (viewport CSS pixels) or an element.
    Move {
        /// Target x.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        x: Option<f64>,
        /// Target y.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        y: Option<f64>,
        /// Or the centre of this element.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        selector: Option<String>,
        /// How long the move takes (default 800).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duration_ms: Option<u32>,
        /// Easing (default ease-in-out).
        #[serde(default)]
        easing: Easing,
        /// Skip the step if the element is missing.
        #[serde(default)]
        optional: bool,
    },
}

impl Step {
    /// The step's `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Step::Wait { .. } => "wait",
            Step::Goto { .. } => "goto",
            Step::Scroll { .. } => "scroll",
            Step::Hover { .. } => "hover",
            Step::Click { .. } => "click",
            Step::Type { .. } => "type",
            Step::Highlight { .. } => "highlight",
            Step::Move { .. } => "move",
        }
    }

    /// The element the step acts on, if any.
    pub fn selector(&self) -> Option<&str> {
        match self {
            Step::Scroll { selector, .. } | Step::Move { selector, .. } => selector.as_deref(),
            Step::Hover { selector, .. }
            | Step::Click { selector, .. }
            | Step::Type { selector, .. }
            | Step::Highlight { selector, .. } => Some(selector),
            Step::Wait { .. } | Step::Goto { .. } => None,
        }
    }

    /// Whether a missing element skips the step instead of failing the recording.
    pub fn optional(&self) -> bool {
        match self {
            Step::Scroll { optional, .. }
            | Step::Hover { optional, .. }
            | Step::Click { optional, .. }
            | Step::Type { optional, .. }
            | Step::Highlight { optional, .. }
            | Step::Move { optional, .. } => *optional,
            Step::Wait { .. } | Step::Goto { .. } => false,
        }
    }
}

/// A validated list of steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct Script(pub Vec<Step>);

/// A script that cannot be played, naming the step and field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct ScriptError {
    /// 1-based step number, if the problem is in a step.
    pub step: Option<usize>,
    /// The step's type, when known.
    pub step_type: Option<String>,
    /// The field, when known.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl ScriptError {
    fn describe(&self) -> String {
        let mut s = String::from("script");
        if let Some(n) = self.step {
            s.push_str(&format!(" step {n}"));
            if let Some(t) = &self.step_type {
                s.push_str(&format!(" ({t})"));
            }
        }
        if let Some(f) = &self.field {
            s.push_str(&format!(", field `{f}`"));
        }
        s.push_str(": ");
        s.push_str(&self.message);
        s
    }

    fn at(step: usize, step_type: &str, field: &str, message: impl Into<String>) -> Self {
        ScriptError {
            step: Some(step),
            step_type: Some(step_type.to_string()),
            field: (!field.is_empty()).then(|| field.to_string()),
            message: message.into(),
        }
    }

    fn whole(message: impl Into<String>) -> Self {
        ScriptError {
            step: None,
            step_type: None,
            field: None,
            message: message.into(),
        }
    }
}

impl crate::ErrorCode for ScriptError {
    fn code(&self) -> Code {
        Code::InvalidScript
    }
}

const STEP_TYPES: &[&str] = &[
    "wait",
    "goto",
    "scroll",
    "hover",
    "click",
    "type",
    "highlight",
    "move",
];

/// The field a serde message is about: named for unknown and missing fields,
/// otherwise the field whose value the message quotes.
fn serde_field(message: &str, obj: &serde_json::Map<String, serde_json::Value>) -> Option<String> {
    for prefix in ["unknown field `", "missing field `"] {
        if let Some(rest) = message.strip_prefix(prefix) {
            return rest.split('`').next().map(str::to_string);
        }
    }
    obj.iter()
        .filter(|(k, _)| k.as_str() != "type")
        .find(|(_, v)| {
            let shown = match v {
                serde_json::Value::String(s) => s.clone(),
                v => v.to_string(),
            };
            message.contains(&format!("`{shown}`"))
                || message.contains(&format!("{shown:?}"))
                || message.contains(&format!(" {shown},"))
        })
        .map(|(k, _)| k.clone())
}

impl Script {
    /// Parses a script from a JSON value (a YAML file is turned into one first).
    pub fn from_value(value: &serde_json::Value) -> Result<Script, ScriptError> {
        let items = value
            .as_array()
            .ok_or_else(|| ScriptError::whole("must be a list of steps"))?;
        if items.is_empty() {
            return Err(ScriptError::whole("must have at least one step"));
        }
        if items.len() > MAX_STEPS {
            return Err(ScriptError::whole(format!(
                "has {} steps; at most {MAX_STEPS} are allowed",
                items.len()
            )));
        }
        let mut steps = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let n = i + 1;
            let Some(obj) = item.as_object() else {
                return Err(ScriptError::at(
                    n,
                    "?",
                    "",
                    "must be an object with a `type`",
                ));
            };
            let ty = match obj.get("type") {
                Some(serde_json::Value::String(t)) if STEP_TYPES.contains(&t.as_str()) => t.clone(),
                Some(serde_json::Value::String(t)) => {
                    return Err(ScriptError::at(
                        n,
                        t,
                        "type",
                        format!(
                            "unknown step type; expected one of {}",
                            STEP_TYPES.join(", ")
                        ),
                    ));
                }
                _ => {
                    return Err(ScriptError::at(
                        n,
                        "?",
                        "type",
                        "is missing or not a string",
                    ));
                }
            };
            let step: Step = serde_json::from_value(item.clone()).map_err(|e| {
                let msg = e.to_string();
                ScriptError::at(n, &ty, &serde_field(&msg, obj).unwrap_or_default(), msg)
            })?;
            validate_step(n, &step)?;
            steps.push(step);
        }
        Ok(Script(steps))
    }

    /// Parses a script file's text: JSON if it parses as JSON, else YAML.
    pub fn parse_text(text: &str) -> Result<Script, ScriptError> {
        let value: serde_json::Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(_) => serde_yaml_ng::from_str(text)
                .map_err(|e| ScriptError::whole(format!("is neither JSON nor YAML: {e}")))?,
        };
        Script::from_value(&value)
    }

    /// The planned length of the script's own steps in milliseconds (moves
    /// and scrolls the player adds to reach elements come on top).
    pub fn nominal_ms(&self) -> u64 {
        self.0
            .iter()
            .map(|s| {
                u64::from(match s {
                    Step::Wait { duration_ms } => *duration_ms,
                    Step::Goto { .. } => 0,
                    Step::Scroll { duration_ms, .. } => duration_ms.unwrap_or(SCROLL_MS),
                    Step::Hover { duration_ms, .. } => MOVE_MS + duration_ms.unwrap_or(HOVER_MS),
                    Step::Click { .. } => MOVE_MS + CLICK_SETTLE_MS,
                    Step::Type {
                        text, per_key_ms, ..
                    } => {
                        MOVE_MS
                            + CLICK_SETTLE_MS
                            + per_key_ms.unwrap_or(PER_KEY_MS) * text.chars().count() as u32
                    }
                    Step::Highlight { duration_ms, .. } => duration_ms.unwrap_or(HIGHLIGHT_MS),
                    Step::Move { duration_ms, .. } => duration_ms.unwrap_or(MOVE_MS),
                })
            })
            .sum()
    }
}

/// Default scroll time.
pub const SCROLL_MS: u32 = 1000;
/// Default time to move onto an element.
pub const MOVE_MS: u32 = 700;
/// Default hover rest.
pub const HOVER_MS: u32 = 1000;
/// Pause after a click so its effect is seen.
pub const CLICK_SETTLE_MS: u32 = 500;
/// Default time between keys.
pub const PER_KEY_MS: u32 = 80;
/// Default highlight time.
pub const HIGHLIGHT_MS: u32 = 1500;

/// A web URL as the OpenAPI document describes it ([`check_web_url`] checks
/// the same, and more).
pub const WEB_URL_PATTERN: &str = "^[hH][tT][tT][pP][sS]?://[^\\x00-\\x20\\x7f]+$";

/// Checks a web URL's shape: http or https with a host.
pub fn check_web_url(url: &str) -> Result<url::Url, String> {
    // The URL parser would quietly drop spaces, tabs and control characters
    // and take `http:host` without slashes: what it records must be what
    // was asked.
    if url.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err("the URL must not contain spaces or control characters".into());
    }
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return Err(format!(
            "`{}` does not start with http:// or https://",
            url.chars().take(64).collect::<String>()
        ));
    }
    let u = url::Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(format!(
            "`{}` URLs are not recorded; use http or https",
            u.scheme()
        ));
    }
    if u.host().is_none() {
        return Err("the URL has no host".into());
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err("URLs with a user name or password are not accepted".into());
    }
    Ok(u)
}

fn validate_step(n: usize, step: &Step) -> Result<(), ScriptError> {
    let ty = step.kind();
    let err = |field: &str, msg: &str| Err(ScriptError::at(n, ty, field, msg));
    let dur = |field: &str, d: Option<u32>| -> Result<(), ScriptError> {
        match d {
            Some(d) if d > MAX_STEP_MS => err(field, "must be at most 600000 (10 minutes)"),
            _ => Ok(()),
        }
    };
    if let Some(sel) = step.selector() {
        if sel.trim().is_empty() {
            return err("selector", "must not be empty");
        }
        if sel.chars().count() > MAX_SELECTOR_CHARS {
            return err("selector", "must be at most 1000 characters");
        }
    }
    match step {
        Step::Wait { duration_ms } => {
            if *duration_ms == 0 {
                return err("duration_ms", "must be at least 1");
            }
            dur("duration_ms", Some(*duration_ms))
        }
        Step::Goto { url } => check_web_url(url).map(|_| ()).or_else(|m| err("url", &m)),
        Step::Scroll {
            selector,
            by_px,
            duration_ms,
            ..
        } => {
            match (selector, by_px) {
                (Some(_), Some(_)) => {
                    return err("by_px", "give either `selector` or `by_px`, not both");
                }
                (None, None) => return err("selector", "give `selector` or `by_px`"),
                (None, Some(px)) if px.unsigned_abs() > 1_000_000 => {
                    return err("by_px", "must be within ±1000000");
                }
                _ => {}
            }
            dur("duration_ms", *duration_ms)
        }
        Step::Hover { duration_ms, .. } => dur("duration_ms", *duration_ms),
        Step::Click { .. } => Ok(()),
        Step::Type {
            text, per_key_ms, ..
        } => {
            if text.chars().count() > MAX_TEXT_CHARS {
                return err("text", "must be at most 2000 characters");
            }
            if text
                .chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t')
            {
                return err(
                    "text",
                    "must not contain control characters other than newline and tab",
                );
            }
            match per_key_ms {
                Some(k) if *k > 5000 => err("per_key_ms", "must be at most 5000"),
                _ => Ok(()),
            }
        }
        Step::Highlight { duration_ms, .. } => dur("duration_ms", *duration_ms),
        Step::Move {
            x,
            y,
            selector,
            duration_ms,
            ..
        } => {
            match (x, y, selector) {
                (Some(_), Some(_), None) | (None, None, Some(_)) => {}
                (Some(_), None, None) => return err("y", "give both `x` and `y`"),
                (None, Some(_), None) => return err("x", "give both `x` and `y`"),
                (None, None, None) => return err("x", "give `x` and `y`, or `selector`"),
                _ => return err("selector", "give either `x`/`y` or `selector`, not both"),
            }
            for (f, v) in [("x", x), ("y", y)] {
                if let Some(v) = v
                    && !(v.is_finite() && (-100_000.0..=100_000.0).contains(v))
                {
                    return err(f, "must be a number within ±100000");
                }
            }
            dur("duration_ms", *duration_ms)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn parse(v: serde_json::Value) -> Result<Script, ScriptError> {
        Script::from_value(&v)
    }

    #[test]
    fn every_example_step_parses() {
        let s = parse(json!([
            {"type": "wait", "duration_ms": 2000},
            {"type": "goto", "url": "https://example.org/next"},
            {"type": "scroll", "selector": "footer", "duration_ms": 1500},
            {"type": "scroll", "by_px": 1200},
            {"type": "hover", "selector": ".cta", "duration_ms": 1000},
            {"type": "click", "selector": ".cta"},
            {"type": "type", "selector": "#email", "text": "a@b.c", "per_key_ms": 80},
            {"type": "highlight", "selector": ".cta", "duration_ms": 2000, "color": "#ff3b30"},
            {"type": "move", "x": 600, "y": 400, "duration_ms": 800, "easing": "ease-in-out"},
            {"type": "move", "selector": "h1", "optional": true}
        ]))
        .unwrap();
        assert_eq!(s.0.len(), 10);
        assert_eq!(
            s.0[7],
            Step::Highlight {
                selector: ".cta".into(),
                duration_ms: Some(2000),
                color: Some(Color([0xff, 0x3b, 0x30])),
                optional: false
            }
        );
        assert!(s.0[9].optional());
        // Round trip through JSON.
        let back = Script::from_value(&serde_json::to_value(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn yaml_parses_like_json() {
        let y = "- type: wait\n  duration_ms: 500\n- type: click\n  selector: '#go'\n";
        let s = Script::parse_text(y).unwrap();
        assert_eq!(
            s.0,
            vec![
                Step::Wait { duration_ms: 500 },
                Step::Click {
                    selector: "#go".into(),
                    optional: false
                }
            ]
        );
    }

    #[test]
    fn errors_name_step_and_field() {
        let cases = [
            (json!([{"type": "wait"}]), 1, "wait", "duration_ms"),
            (
                json!([{"type": "wait", "duration_ms": 5}, {"type": "click"}]),
                2,
                "click",
                "selector",
            ),
            (
                json!([{"type": "click", "selector": ".a", "colour": "red"}]),
                1,
                "click",
                "colour",
            ),
            (
                json!([{"type": "highlight", "selector": ".a", "color": "red"}]),
                1,
                "highlight",
                "color",
            ),
            (
                json!([{"type": "wait", "duration_ms": "soon"}]),
                1,
                "wait",
                "duration_ms",
            ),
            (json!([{"type": "scroll"}]), 1, "scroll", "selector"),
            (
                json!([{"type": "scroll", "selector": "a", "by_px": 3}]),
                1,
                "scroll",
                "by_px",
            ),
            (json!([{"type": "move", "x": 3}]), 1, "move", "y"),
            (
                json!([{"type": "goto", "url": "file:///etc/passwd"}]),
                1,
                "goto",
                "url",
            ),
            (
                json!([{"type": "hover", "selector": "  "}]),
                1,
                "hover",
                "selector",
            ),
            (
                json!([{"type": "wait", "duration_ms": 700000}]),
                1,
                "wait",
                "duration_ms",
            ),
            (json!([{"type": "jump"}]), 1, "jump", "type"),
            (
                json!([{"type": "move", "easing": "bouncy", "x": 1, "y": 2}]),
                1,
                "move",
                "easing",
            ),
        ];
        for (v, step, ty, field) in cases {
            let e = parse(v.clone()).unwrap_err();
            assert_eq!(e.step, Some(step), "{v}: {e}");
            assert_eq!(e.step_type.as_deref(), Some(ty), "{v}: {e}");
            if !field.is_empty() {
                assert_eq!(e.field.as_deref(), Some(field), "{v}: {e}");
                assert!(e.to_string().contains(field), "{e}");
            }
            assert!(
                e.to_string()
                    .starts_with(&format!("script step {step} ({ty})")),
                "{e}"
            );
        }
        assert!(
            parse(json!([]))
                .unwrap_err()
                .to_string()
                .contains("at least one")
        );
        assert!(parse(json!({"type": "wait"})).is_err());
    }

    #[test]
    fn easing_ends_and_is_monotonic() {
        for e in [
            Easing::Linear,
            Easing::EaseIn,
            Easing::EaseOut,
            Easing::EaseInOut,
        ] {
            assert_eq!(e.apply(0.0), 0.0);
            assert!((e.apply(1.0) - 1.0).abs() < 1e-12);
            let mut last = 0.0;
            for i in 0..=100 {
                let v = e.apply(f64::from(i) / 100.0);
                assert!(v >= last - 1e-12);
                last = v;
            }
        }
    }

    fn arb_step() -> impl Strategy<Value = Step> {
        let sel = "[a-z#.]{1,12}";
        prop_oneof![
            (1u32..60_000).prop_map(|d| Step::Wait { duration_ms: d }),
            (sel, proptest::option::of(0u32..5000)).prop_map(|(s, d)| Step::Hover {
                selector: s,
                duration_ms: d,
                optional: false
            }),
            (sel, any::<bool>()).prop_map(|(s, o)| Step::Click {
                selector: s,
                optional: o
            }),
            (sel, "[ -~]{0,40}", proptest::option::of(0u32..500)).prop_map(|(s, t, k)| {
                Step::Type {
                    selector: s,
                    text: t,
                    per_key_ms: k,
                    optional: false,
                }
            }),
            (-5000i32..5000, proptest::option::of(1u32..5000)).prop_map(|(p, d)| Step::Scroll {
                selector: None,
                by_px: Some(p),
                duration_ms: d,
                easing: Easing::Linear,
                optional: false
            }),
            (-2000.0f64..2000.0, -2000.0f64..2000.0).prop_map(|(x, y)| Step::Move {
                x: Some(x),
                y: Some(y),
                selector: None,
                duration_ms: None,
                easing: Easing::EaseOut,
                optional: false
            }),
        ]
    }

    proptest! {
        #[test]
        fn valid_scripts_round_trip(steps in proptest::collection::vec(arb_step(), 1..20)) {
            let s = Script(steps);
            let v = serde_json::to_value(&s).unwrap();
            prop_assert_eq!(Script::from_value(&v).unwrap(), s);
        }

        #[test]
        fn arbitrary_json_never_panics(text in "[\\[\\]{}\":,a-z0-9 ]{0,200}") {
            let _ = Script::parse_text(&text);
        }
    }
}
