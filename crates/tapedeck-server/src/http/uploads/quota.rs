//! The size an upload may have: `limits.max_upload_bytes` and the owner's
//! quota, for tus and presigned uploads alike. A declared length is
//! reserved against the quota when the upload is created
//! ([`crate::engine::work::Ledger::reserve`]); a deferred one is checked as it grows.

use crate::http::error::ApiError;
use crate::http::state::AppState;
use tapedeck_core::Code;

/// Refuses a declared size over `limits.max_upload_bytes` (413) or past
/// the user's quota (403), else reserves it against the quota until its
/// bytes arrive: uploads opened at once cannot together pass it.
pub async fn reserve_size<'a>(
    s: &'a AppState,
    user: &str,
    n: u64,
) -> Result<crate::engine::work::Reservation<'a>, ApiError> {
    too_large(s, n)?;
    let lim = &s.config.limits;
    let services = &s.supervisor.services;
    let stored = services.repo.usage_bytes(user).await?;
    services
        .work
        .reserve(user, n, stored, lim.user_quota_bytes)
        .map_err(|used| quota_exceeded(lim.user_quota_bytes, used, n))
}

fn quota_exceeded(quota: u64, used: u64, n: u64) -> ApiError {
    ApiError::new(
        Code::QuotaExceeded,
        format!("your recordings use {used} of your {quota} bytes; {n} more do not fit"),
    )
}

fn too_large(s: &AppState, n: u64) -> Result<(), ApiError> {
    let lim = &s.config.limits;
    if n > lim.max_upload_bytes {
        return Err(ApiError::new(
            Code::TooLarge,
            format!(
                "{n} bytes is more than the {} an upload may have (limits.max_upload_bytes)",
                lim.max_upload_bytes
            ),
        ));
    }
    Ok(())
}

/// Refuses a size over `limits.max_upload_bytes` (413) or the user's quota (403).
pub async fn check_size(s: &AppState, user: &str, n: u64) -> Result<(), ApiError> {
    too_large(s, n)?;
    let quota = s.config.limits.user_quota_bytes;
    if quota > 0 {
        let used = s.supervisor.services.usage_bytes(user, None).await?;
        if used.saturating_add(n) > quota {
            return Err(quota_exceeded(quota, used, n));
        }
    }
    Ok(())
}
