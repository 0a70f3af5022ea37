//! What every HTTP handler shares: the engine ([`Services`], reached
//! through the state as if its own fields, and the [`Supervisor`]) and what
//! only the face keeps (sign-in attempts, event sockets, share link key,
//! identity providers).

use std::sync::Arc;

use crate::engine::services::Services;
use crate::engine::supervisor::Supervisor;

/// Shared state of every handler.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The engine's parts (configuration, repository, media store,
    /// events, metrics, the media server): `state.repo` is
    /// `state.services.repo`.
    pub services: Arc<Services>,
    /// Drivers and limits.
    pub supervisor: Supervisor,
    /// Key for local share links.
    pub share_key: Arc<Vec<u8>>,
    /// An identity provider's keys (`auth.jwks_url`).
    pub jwks: Option<Arc<crate::http::jwks::Jwks>>,
    /// The last encoder check (`/readyz`): when, and what failed.
    pub encoder_check: Arc<tokio::sync::Mutex<Option<EncoderCheck>>>,
    /// Open event sockets per user.
    pub sockets: Arc<crate::http::throttle::SocketCounts>,
    /// Failed password sign-ins per user name.
    pub signins: Arc<crate::http::throttle::Attempts>,
    /// The identity provider of "Sign in with ..." (`auth.oidc`).
    pub oidc: Option<Arc<crate::http::jwks::Provider>>,
    /// This server as a node (of a cluster, or alone).
    pub node: Arc<crate::engine::cluster::Node>,
}

/// Handlers read the engine's parts as the state's own: the state holds
/// them once, in [`Services`].
impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.services
    }
}

/// When the encoders were last checked, and what failed.
pub type EncoderCheck = (std::time::Instant, Result<(), String>);
