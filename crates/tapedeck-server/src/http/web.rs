//! The web source's own route: `regenerate` records the same page again.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::json;
use tapedeck_core::Code;
use tapedeck_core::recording::SourceSpec;
use tapedeck_core::request::{parse_create, parse_json};

use crate::http::access::load;
use crate::http::auth::Principal;
use crate::http::error::ApiError;
use crate::http::recordings::{created, new_recording};
use crate::http::state::AppState;

/// `POST /v1/recordings/{id}/regenerate`: records the same page again as a new
/// recording. The body is a create request whose fields replace the
/// original's; `source` fields (mode, viewport, script, template, auto) are
/// merged into the original source.
pub async fn regenerate(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let orig = load(&s, &p, &id).await?;
    if !matches!(orig.source, SourceSpec::Web(_)) {
        return Err(ApiError::new(
            Code::NotRegenerable,
            "only web recordings can be regenerated",
        ));
    }
    let mut req: serde_json::Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        parse_json(&body)?
    };
    let Some(obj) = req.as_object_mut() else {
        return Err(ApiError::new(
            Code::InvalidRequest,
            "the body must be a JSON object",
        ));
    };
    let mut source = serde_json::to_value(&orig.source).map_err(ApiError::internal)?;
    if let Some(over) = obj.remove("source") {
        let Some(over) = over.as_object() else {
            return Err(ApiError::new(
                Code::InvalidRequest,
                "`source` must be an object",
            ));
        };
        if over.get("kind").is_some_and(|k| k != "web") {
            return Err(ApiError::new(
                Code::InvalidRequest,
                "a regenerated recording records the same web page; `source.kind` must be web",
            ));
        }
        if ["script", "template", "auto"]
            .iter()
            .any(|k| over.contains_key(*k))
            && let Some(src) = source.as_object_mut()
        {
            for k in ["script", "template", "auto"] {
                src.remove(k);
            }
        }
        if let Some(src) = source.as_object_mut() {
            for (k, v) in over {
                src.insert(k.clone(), v.clone());
            }
        }
    }
    obj.insert("source".into(), source);
    obj.entry("format").or_insert(json!(orig.format));
    obj.entry("preset").or_insert(json!(orig.preset));
    if orig.title.is_some() {
        obj.entry("title").or_insert(json!(orig.title));
    }
    let v = parse_create(&serde_json::to_vec(&req).map_err(ApiError::internal)?)?;
    let rec = s
        .supervisor
        .create(new_recording(&s, &p, v, Some(orig.id)))
        .await?;
    created(rec)
}
