//! Who acts: a user, and whether they are an admin. The engine decides by
//! it; the face (`auth.rs`) learns it from a request's token or cookie.

use rand::Rng;

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// User name.
    pub user: String,
    /// Sees and controls every user's recordings.
    pub admin: bool,
}

impl Principal {
    /// Whether this caller may see recordings owned by `owner`.
    pub fn can_see(&self, owner: &str) -> bool {
        self.admin || self.user == owner
    }
}

/// `len` random letters and digits (tokens, delivery ids).
pub fn random_string(len: usize) -> String {
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}
