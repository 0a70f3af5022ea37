//! Stable error codes shared by every layer.

use crate::codes::Code;

/// An error that the API can show a user: a stable code from the catalogue
/// ([`crate::codes`]), whose HTTP status it takes.
///
/// Every module's error enum implements this so the edge maps errors in one place.
pub trait ErrorCode {
    /// The code clients match on (`invalid_transition`, ...).
    fn code(&self) -> Code;
    /// The HTTP status this error maps to: its code's.
    fn status(&self) -> u16 {
        self.code().status()
    }
}
