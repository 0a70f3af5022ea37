//! Stable error codes shared by every layer.

/// An error that the API can show a user: a stable string code and an HTTP status.
///
/// Every module's error enum implements this so the edge maps errors in one place.
pub trait ErrorCode {
    /// A stable, snake_case code clients can match on (`invalid_transition`, ...).
    fn code(&self) -> &'static str;
    /// The HTTP status this error maps to.
    fn status(&self) -> u16;
}
