//! Who may touch an upload: its owner (an API key or JWT), or, for an
//! upload a call's guest sent, that guest (their join token), over the tus
//! routes only.

use std::sync::Arc;
use tapedeck_core::Code;

use tapedeck_core::RecordingId;
use tapedeck_core::recording::{SourceSpec, Status};

use crate::engine::source::upload::Endpoint;
use crate::http::auth::Principal;
use crate::http::error::ApiError;
use crate::http::state::AppState;

/// Who sends an upload: a user (API key or JWT), or a call's guest (a join
/// token), whose upload belongs to the room's host and is filed under the
/// room ("Record in this browser" on the call page).
pub enum Uploader {
    /// A user.
    User(Principal),
    /// A guest of `room`, by their name in the call.
    Guest {
        /// The one room the token opens.
        room: tapedeck_core::RoomId,
        /// Their name.
        name: String,
    },
}

impl axum::extract::FromRequestParts<AppState> for Uploader {
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        s: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let (token, from_cookie) = crate::http::auth::credential_of(parts)
            .ok_or_else(|| ApiError::unauthorized("missing bearer token"))?;
        if from_cookie {
            crate::http::cookie::check_cookie_request(s, &parts.method, &parts.headers, &token)?;
        }
        if crate::http::rooms::token::is_join_token(&token) {
            let c = crate::http::rooms::token::verify(&s.share_key, &token, crate::now_ms() / 1000)
                .map_err(|r| r.error())?;
            return Ok(Uploader::Guest {
                room: c.room,
                name: c.name,
            });
        }
        Ok(Uploader::User(
            crate::http::auth::authenticate(s, &token).await?,
        ))
    }
}

/// The upload `id` of the caller: its recording and, while it takes
/// bytes, its endpoint.
pub async fn upload_of(
    s: &AppState,
    who: &Uploader,
    id: &str,
) -> Result<(tapedeck_core::recording::Recording, Option<Arc<Endpoint>>), ApiError> {
    let id: RecordingId = id.parse()?;
    let rec = s.repo.get(id).await?.ok_or_else(ApiError::not_found)?;
    let SourceSpec::Upload(spec) = &rec.source else {
        return Err(ApiError::not_found());
    };
    let theirs = match who {
        Uploader::User(p) => p.can_see(&rec.owner),
        Uploader::Guest { room, name } => {
            spec.room == Some(*room) && spec.guest.as_deref() == Some(name.as_str())
        }
    };
    if !theirs {
        return Err(ApiError::not_found());
    }
    let sources = &s.supervisor.services.sources;
    let ep = if matches!(
        rec.status,
        Status::Pending | Status::Recording | Status::Paused
    ) {
        // Just after a restart the upload's new driver may not have opened
        // it yet: a client resuming then must not hear 410 (tus clients
        // give up on it).
        sources
            .endpoint_soon::<Endpoint>(id, std::time::Duration::from_secs(5))
            .await
    } else {
        sources.endpoint::<Endpoint>(id)
    };
    Ok((rec, ep))
}

pub fn closed(rec: &tapedeck_core::recording::Recording) -> ApiError {
    ApiError::new(
        Code::UploadClosed,
        format!(
            "the upload is {}{}; it takes no more bytes",
            rec.status.as_str(),
            rec.end_reason
                .map(|r| format!(" ({})", serde_json::json!(r).as_str().unwrap_or("")))
                .unwrap_or_default()
        ),
    )
}
