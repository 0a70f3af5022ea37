//! The upload routes: tus 1.0.0 ([`tus`]), presigned and signed direct
//! uploads ([`direct`]), who may touch an upload ([`access`]) and the size
//! it may have ([`quota`]). The upload itself is the engine's
//! (`crate::engine::source::upload`).

pub mod access;
pub mod direct;
pub mod quota;
pub mod tus;

/// An upload's `outputs` (HLS, pictures: made from the file once it is
/// processed), checked as a recording's are.
pub fn outputs_of(
    value: Option<serde_json::Value>,
    v: &tapedeck_core::request::ValidCreate,
) -> Result<Vec<tapedeck_core::output::OutputSpec>, crate::http::error::ApiError> {
    match value {
        None => Ok(vec![]),
        Some(value) => Ok(
            tapedeck_core::output::parse_list(value, &v.source, v.format)
                .map_err(tapedeck_core::Problem::from)?,
        ),
    }
}
