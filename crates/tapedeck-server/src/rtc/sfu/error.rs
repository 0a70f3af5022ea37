//! Why the media server refuses a join or an answer.

use tapedeck_core::{Code, ErrorCode, Problem};

/// A refusal of the media server (no HTTP in it: the engine's face gives
/// it a status through its code).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SfuError {
    /// `rtc.max_peers` are connected.
    #[error("{connected} peers are connected (rtc.max_peers)")]
    TooManyPeers {
        /// Peers now.
        connected: usize,
    },
    /// The room has its `max_participants`.
    #[error("the room has {in_room} of its {max} participants")]
    RoomFull {
        /// Participants now.
        in_room: usize,
        /// The room's limit.
        max: u32,
    },
    /// The caller holds `rtc.max_connecting_per_caller` peers not connected yet.
    #[error(
        "you have {connecting} sessions that have not connected yet \
         (rtc.max_connecting_per_caller); each is dropped {timeout_s} s after its \
         offer if its ICE does not complete"
    )]
    TooManyConnecting {
        /// The caller's unconnected peers.
        connecting: usize,
        /// `rtc.connect_timeout_s`.
        timeout_s: u64,
    },
    /// The caller holds `rtc.max_sessions_per_caller` sessions in the room.
    #[error(
        "you have {sessions} sessions in this room (rtc.max_sessions_per_caller); \
         leave one first"
    )]
    TooManySessions {
        /// The caller's sessions in the room, connected or not.
        sessions: usize,
    },
    /// An offer or answer that cannot be parsed or applied.
    #[error("{0}")]
    InvalidSdp(String),
    /// The peer has left.
    #[error("the peer has left")]
    PeerGone,
}

impl ErrorCode for SfuError {
    fn code(&self) -> Code {
        match self {
            SfuError::TooManyPeers { .. } => Code::TooManyPeers,
            SfuError::RoomFull { .. } => Code::RoomFull,
            SfuError::TooManyConnecting { .. } => Code::TooManyConnecting,
            SfuError::TooManySessions { .. } => Code::TooManySessions,
            SfuError::InvalidSdp(_) => Code::InvalidSdp,
            SfuError::PeerGone => Code::NotFound,
        }
    }
}

impl From<SfuError> for Problem {
    fn from(e: SfuError) -> Self {
        Problem::from_code(e)
    }
}
