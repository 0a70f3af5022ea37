//! Which recordings a caller reaches: their own (every one, for admins),
//! those of rooms they are in (seen, not controlled), and any one through
//! a share link's signature.

use std::collections::HashMap;

use tapedeck_core::RecordingId;
use tapedeck_core::recording::Recording;

use crate::http::auth::Principal;
use crate::http::error::ApiError;
use crate::http::secret::{check_signed, signature};
use crate::http::state::AppState;

/// Loads a recording the caller may see: their own (every one, for admins),
/// or a recording of a room they are in. Others' are 404, like missing ones.
pub async fn load(s: &AppState, p: &Principal, id: &str) -> Result<Recording, ApiError> {
    Ok(load_with_control(s, p, id).await?.0)
}

/// Loads a recording the caller may control (pause, resume, stop, cancel,
/// delete): a participant of its room gets 403 `not_room_host`.
pub async fn load_to_control(s: &AppState, p: &Principal, id: &str) -> Result<Recording, ApiError> {
    let (rec, controls) = load_with_control(s, p, id).await?;
    crate::engine::source::room::host_only(controls, "control the room's recordings")?;
    Ok(rec)
}

async fn load_with_control(
    s: &AppState,
    p: &Principal,
    id: &str,
) -> Result<(Recording, bool), ApiError> {
    let id: RecordingId = id.parse()?;
    let rec = s.repo.get(id).await?.ok_or_else(ApiError::not_found)?;
    if p.can_see(&rec.owner) {
        return Ok((rec, true));
    }
    if let Some(room) = crate::engine::source::room_of(&rec)
        && let Some(room) = s.repo.room(room).await?
        && s.repo.is_member(&room, &p.user).await?
    {
        // A participant sees the recording, not the host's stream keys.
        let mut rec = rec;
        tapedeck_core::output::hide_secrets(&mut rec.outputs);
        return Ok((rec, false));
    }
    Err(ApiError::not_found())
}

/// Checks a share link's `exp` and `sig` for recording `id`.
pub(crate) fn check_share(
    s: &AppState,
    id: &RecordingId,
    q: &HashMap<String, String>,
) -> Result<(), ApiError> {
    check_signed(q, "link", |exp| {
        share_sig(&s.share_key, &id.to_string(), exp)
    })
}

pub(crate) fn share_sig(key: &[u8], id: &str, exp: i64) -> String {
    signature(key, &format!("{id}.{exp}"))
}
