//! Parsing and validation of API request bodies (outside input).

use crate::codes::Code;
use serde::Deserialize;

use crate::recording::SourceSpec;
use crate::script::{Script, ScriptError};
use crate::settings::{Format, InvalidSettings, Overrides, Preset, VideoSettings};
use crate::web::InvalidSource;

/// A request body that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    /// Not JSON at all.
    #[error("request body is not valid JSON: {0}")]
    Json(String),
    /// JSON of the wrong shape: unknown field, wrong type, unknown preset.
    #[error("invalid request: {0}")]
    Shape(String),
    /// A value out of range.
    #[error(transparent)]
    Settings(#[from] InvalidSettings),
    /// A web script that cannot be played.
    #[error(transparent)]
    Script(#[from] ScriptError),
    /// A web source field (url, viewport, audio, ...) that cannot be used.
    #[error(transparent)]
    Source(#[from] InvalidSource),
    /// An output that cannot be used.
    #[error(transparent)]
    Output(#[from] crate::output::InvalidOutput),
}

impl crate::ErrorCode for RequestError {
    fn code(&self) -> Code {
        match self {
            RequestError::Json(_) => Code::InvalidJson,
            RequestError::Shape(_) => Code::InvalidRequest,
            RequestError::Settings(e) => e.code(),
            RequestError::Script(e) => e.code(),
            RequestError::Source(e) => e.code(),
            RequestError::Output(e) => e.code(),
        }
    }
}

impl From<RequestError> for crate::Problem {
    fn from(e: RequestError) -> Self {
        crate::Problem::from_code(e)
    }
}

/// Parses JSON, telling syntax errors from shape errors. A number written
/// with a zero fraction (`720.0`) is the integer it equals, as JSON Schema
/// says: it fills integer fields.
pub fn parse_json<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, RequestError> {
    let mut value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| RequestError::Json(e.to_string()))?;
    integral_floats_to_integers(&mut value);
    serde_json::from_value(value).map_err(|e| RequestError::Shape(e.to_string()))
}

/// Rewrites every float with no fraction that fits an `i64` as that integer.
fn integral_floats_to_integers(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
                && (-9.0e18..=9.0e18).contains(&f)
            {
                *v = serde_json::Value::from(f as i64);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(integral_floats_to_integers),
        serde_json::Value::Object(map) => map.values_mut().for_each(integral_floats_to_integers),
        _ => {}
    }
}

/// `POST /v1/recordings` as sent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRecording {
    /// What to record.
    pub source: SourceSpec,
    /// Output container.
    #[serde(default)]
    pub format: Format,
    /// Quality preset.
    #[serde(default)]
    pub preset: Preset,
    /// Width override.
    pub width: Option<u32>,
    /// Height override.
    pub height: Option<u32>,
    /// Frame rate override.
    pub fps: Option<u32>,
    /// Video bitrate override.
    pub video_bitrate_kbps: Option<u32>,
    /// Constant (true) or variable frame rate.
    pub cfr: Option<bool>,
    /// Longest duration before the recording is finalized.
    pub max_duration_s: Option<u32>,
    /// A title.
    pub title: Option<String>,
    /// A JSON object kept with the recording.
    pub metadata: Option<serde_json::Value>,
    /// Live outputs (`core::output`), checked on their own so an error
    /// names the output.
    pub outputs: Option<serde_json::Value>,
}

/// A create request that passed validation.
#[derive(Debug, Clone)]
pub struct ValidCreate {
    /// What to record.
    pub source: SourceSpec,
    /// Output container.
    pub format: Format,
    /// The preset the settings came from.
    pub preset: Preset,
    /// Resolved settings.
    pub video: VideoSettings,
    /// Requested max duration (the server caps it).
    pub max_duration_s: Option<u32>,
    /// A title.
    pub title: Option<String>,
    /// A JSON object.
    pub metadata: serde_json::Value,
    /// Live outputs.
    pub outputs: Vec<crate::output::OutputSpec>,
}

/// Largest serialized `metadata` accepted.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;

/// Parses and validates a create request body.
pub fn parse_create(body: &[u8]) -> Result<ValidCreate, RequestError> {
    let mut value: serde_json::Value = parse_json(body)?;
    // A web script is parsed on its own so its errors name the step and field.
    let script = value
        .get_mut("source")
        .and_then(|s| s.as_object_mut())
        .and_then(|s| s.remove("script"));
    let mut r: CreateRecording =
        serde_json::from_value(value).map_err(|e| RequestError::Shape(e.to_string()))?;
    match (&mut r.source, script) {
        (SourceSpec::Web(web), script) => {
            if let Some(v) = script {
                web.script = Some(Script::from_value(&v)?);
            }
            web.validate()?;
        }
        (SourceSpec::Upload(_), _) => {
            return Err(RequestError::Shape(
                "an upload is created by uploading: POST /v1/uploads (tus) or POST /v1/uploads/url"
                    .into(),
            ));
        }
        (_, Some(_)) => {
            return Err(RequestError::Shape(
                "unknown field `script` in source: only web sources take a script".into(),
            ));
        }
        (_, None) => {}
    }
    let video = VideoSettings::resolve(
        r.preset,
        Overrides {
            width: r.width,
            height: r.height,
            fps: r.fps,
            video_bitrate_kbps: r.video_bitrate_kbps,
            cfr: r.cfr,
        },
    )?;
    let bad = |field, message: &str| {
        Err(RequestError::Settings(InvalidSettings {
            field,
            message: message.to_string(),
        }))
    };
    if r.max_duration_s == Some(0) {
        return bad("max_duration_s", "must be at least 1");
    }
    if let SourceSpec::Frames { input_fps: Some(f) } = r.source
        && !(1..=120).contains(&f)
    {
        return bad("source.input_fps", "must be 1 to 120");
    }
    if r.title.as_ref().is_some_and(|t| t.chars().count() > 200) {
        return bad("title", "must be at most 200 characters");
    }
    let metadata = r
        .metadata
        .unwrap_or(serde_json::Value::Object(Default::default()));
    if !metadata.is_object() {
        return bad("metadata", "must be a JSON object");
    }
    if metadata.to_string().len() > MAX_METADATA_BYTES {
        return bad("metadata", "must be at most 16 KiB");
    }
    let outputs = match r.outputs {
        Some(v) => crate::output::parse_list(v, &r.source, r.format)?,
        None => vec![],
    };
    Ok(ValidCreate {
        outputs,
        source: r.source,
        format: r.format,
        preset: r.preset,
        video,
        max_duration_s: r.max_duration_s,
        title: r.title,
        metadata,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_new_title_is_one_to_two_hundred_characters() {
        assert_eq!(parse_rename(br#"{"title": "  Demo  "}"#).unwrap(), "Demo");
        for bad in [
            &br#"{"title": "   "}"#[..],
            br#"{"title": 5}"#,
            br#"{"title": "x", "owner": "bob"}"#,
            b"{}",
        ] {
            assert!(
                parse_rename(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = format!(r#"{{"title": "{}"}}"#, "x".repeat(201));
        assert!(parse_rename(long.as_bytes()).is_err());
    }

    use super::*;
    use crate::ErrorCode;
    use proptest::prelude::*;

    #[test]
    fn good_request() {
        let v =
            parse_create(br#"{"source":{"kind":"frames"},"format":"webm","preset":"low","fps":5}"#)
                .unwrap();
        assert_eq!(
            (v.format, v.video.fps, v.video.width),
            (Format::Webm, 5, 854)
        );
    }

    #[test]
    fn errors_name_the_problem() {
        let e = parse_create(b"{nope").unwrap_err();
        assert_eq!(e.code(), Code::InvalidJson);
        // 720.0 is the integer 720; 720.5 is not.
        let v = parse_create(br#"{"source": {"kind": "frames"}, "width": 720.0}"#).unwrap();
        assert_eq!(v.video.width, 720);
        let e = parse_create(br#"{"source": {"kind": "frames"}, "width": 720.5}"#).unwrap_err();
        assert_eq!(e.code(), Code::InvalidRequest);
        let e = parse_create(br#"{"source":{"kind":"frames"},"colour":1}"#).unwrap_err();
        assert_eq!(e.code(), Code::InvalidRequest);
        assert!(e.to_string().contains("colour"), "{e}");
        let e = parse_create(br#"{"source":{"kind":"frames"},"preset":"extreme"}"#).unwrap_err();
        assert!(e.to_string().contains("extreme"), "{e}");
        let e = parse_create(br#"{"source":{"kind":"tv"}}"#).unwrap_err();
        assert_eq!(e.code(), Code::InvalidRequest);
        let e = parse_create(br#"{"source":{"kind":"frames"},"height":721}"#).unwrap_err();
        assert_eq!((e.code(), e.status()), (Code::InvalidSettings, 422));
    }

    #[test]
    fn room_sources() {
        let id = crate::RoomId::from_parts(1_700_000_000_000, 1);
        let v =
            parse_create(format!(r#"{{"source": {{"kind": "room", "room": "{id}"}}}}"#).as_bytes())
                .unwrap();
        let SourceSpec::Room(r) = v.source else {
            panic!("a room source")
        };
        assert_eq!(
            (r.room, r.layout),
            (id, crate::recording::RoomLayout::Tracks)
        );
        for bad in [
            r#"{"source": {"kind": "room"}}"#,
            r#"{"source": {"kind": "room", "room": "rec_01ARZ3NDEKTSV4RRFFQ69G5FAV"}}"#,
            r#"{"source": {"kind": "room", "room": "x", "layout": "tracks"}}"#,
        ] {
            assert_eq!(
                parse_create(bad.as_bytes()).unwrap_err().code(),
                Code::InvalidRequest,
                "{bad}"
            );
        }
        let e = parse_create(
            format!(r#"{{"source": {{"kind": "room", "room": "{id}", "layout": "mosaic"}}}}"#)
                .as_bytes(),
        )
        .unwrap_err();
        assert_eq!(e.code(), Code::InvalidRequest);
    }

    #[test]
    fn web_sources() {
        let v = parse_create(
            br##"{"source":{"kind":"web","url":"https://example.org","script":[{"type":"click","selector":"#a"}]}}"##,
        )
        .unwrap();
        let SourceSpec::Web(w) = v.source else {
            panic!("not web")
        };
        assert_eq!(w.script.unwrap().0.len(), 1);
        let e = parse_create(
            br#"{"source":{"kind":"web","url":"https://example.org","script":[{"type":"wait","duration_ms":1},{"type":"click","selectr":"a"}]}}"#,
        )
        .unwrap_err();
        assert_eq!((e.code(), e.status()), (Code::InvalidScript, 422));
        assert!(e.to_string().contains("step 2 (click)"), "{e}");
        assert!(e.to_string().contains("selectr"), "{e}");
        let e =
            parse_create(br#"{"source":{"kind":"web","url":"file:///etc/passwd"}}"#).unwrap_err();
        assert_eq!((e.code(), e.status()), (Code::InvalidSource, 422));
        assert!(e.to_string().contains("`url`"), "{e}");
        let e = parse_create(br#"{"source":{"kind":"web","url":"https://a.b","audio":true}}"#)
            .unwrap_err();
        assert_eq!((e.code(), e.status()), (Code::InvalidSource, 422));
        assert!(e.to_string().contains("`audio`"), "{e}");
        assert!(e.to_string().contains("realtime"), "{e}");
        let v = parse_create(br#"{"source":{"kind":"frames","input_fps":5}}"#).unwrap();
        assert_eq!(v.source, SourceSpec::Frames { input_fps: Some(5) });
        let e = parse_create(br#"{"source":{"kind":"frames","input_fps":0}}"#).unwrap_err();
        assert!(e.to_string().contains("source.input_fps"), "{e}");
        let e = parse_create(br#"{"source":{"kind":"frames","script":[]}}"#).unwrap_err();
        assert_eq!(e.code(), Code::InvalidRequest);
    }

    proptest! {
        #[test]
        fn never_panics(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_create(&body);
        }
    }
}

/// `PATCH /v1/recordings/{id}`: a new title.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rename {
    title: String,
}

/// Parses `{"title": "..."}` (1-200 characters, not only spaces); the
/// title trimmed.
pub fn parse_rename(body: &[u8]) -> Result<String, RequestError> {
    let r: Rename = parse_json(body)?;
    let title = r.title.trim();
    if title.is_empty() || title.chars().count() > 200 {
        return Err(RequestError::Shape(
            "title: must be 1 to 200 characters".into(),
        ));
    }
    Ok(title.to_string())
}
