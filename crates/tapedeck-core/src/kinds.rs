//! What the engine must know of each source kind besides its own module:
//! one table entry per kind ([`SourceKind::traits`]) and the few facts a
//! source's parameters decide ([`SourceSpec`]'s methods here). Every match
//! is exhaustive: a fifth kind does not compile until it has said each.

use crate::RoomId;
use crate::lifecycle::OnIdle;
use crate::recording::{SourceKind, SourceSpec};

/// A kind's behaviour the engine decides by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Traits {
    /// Waits for CPU capacity, pending, rather than being refused with
    /// `server_busy` (a batch job, not live input).
    pub queues: bool,
    /// Left recording when the server stopped, it takes up again where it
    /// was (its client resumes) rather than being finalized from its spool.
    pub resumes: bool,
    /// Its input arrives in real time: frame times are checked against
    /// the wall clock (`limits.max_timestamp_lead_s`).
    pub live: bool,
    /// tapedeck encodes it itself at a constant rate, with a keyframe at
    /// least every 4 s (a hint for the poster and strip).
    pub own_encode: bool,
    /// Its owner pauses and resumes it. An upload does not pause: its
    /// client pauses by not sending.
    pub pauses: bool,
    /// What a source that delivers nothing for its idle time comes to: a
    /// live source is stopped (`limits.idle_timeout_s`); an upload, whose
    /// client pauses by not sending, expires (`uploads.expire_after_s`).
    pub on_idle: OnIdle,
}

impl SourceKind {
    /// The kind's table entry.
    pub const fn traits(self) -> Traits {
        match self {
            SourceKind::Frames => Traits {
                queues: false,
                resumes: false,
                live: true,
                own_encode: true,
                pauses: true,
                on_idle: OnIdle::Stop,
            },
            SourceKind::Web => Traits {
                queues: true,
                resumes: false,
                live: false,
                own_encode: true,
                pauses: true,
                on_idle: OnIdle::Stop,
            },
            SourceKind::Room => Traits {
                queues: false,
                resumes: false,
                live: true,
                own_encode: false,
                pauses: true,
                on_idle: OnIdle::Stop,
            },
            SourceKind::Upload => Traits {
                queues: false,
                resumes: true,
                live: true,
                own_encode: false,
                pauses: false,
                on_idle: OnIdle::Expire,
            },
        }
    }

    /// Every kind.
    pub const ALL: [SourceKind; 4] = [
        SourceKind::Frames,
        SourceKind::Web,
        SourceKind::Room,
        SourceKind::Upload,
    ];
}

/// A call guest who sends a recording: the room, and their name in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestSender {
    /// The room their join token opens.
    pub room: RoomId,
    /// Their name in the call.
    pub name: String,
}

impl SourceSpec {
    /// Its kind's table entry.
    pub fn traits(&self) -> Traits {
        self.kind().traits()
    }

    /// The room the recording belongs to, if any: a room's recording, or
    /// an upload sent from a call.
    pub fn room(&self) -> Option<RoomId> {
        match self {
            SourceSpec::Room(r) => Some(r.room),
            SourceSpec::Upload(u) => u.room,
            SourceSpec::Frames { .. } | SourceSpec::Web(_) => None,
        }
    }

    /// The call guest who sends it (an upload from the call page of one).
    pub fn guest(&self) -> Option<GuestSender> {
        match self {
            SourceSpec::Upload(u) => Some(GuestSender {
                room: u.room?,
                name: u.guest.clone()?,
            }),
            SourceSpec::Frames { .. } | SourceSpec::Web(_) | SourceSpec::Room(_) => None,
        }
    }

    /// Whether its bytes were reserved against the quota when it was
    /// created (an upload that declared its length), so the quota check at
    /// creation must not count them twice.
    pub fn reserved_quota(&self) -> bool {
        match self {
            SourceSpec::Upload(u) => u.length.is_some(),
            SourceSpec::Frames { .. } | SourceSpec::Web(_) | SourceSpec::Room(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_web_recordings_queue_and_only_uploads_resume() {
        let queue: Vec<_> = SourceKind::ALL
            .into_iter()
            .filter(|k| k.traits().queues)
            .collect();
        assert_eq!(queue, [SourceKind::Web]);
        let resume: Vec<_> = SourceKind::ALL
            .into_iter()
            .filter(|k| k.traits().resumes)
            .collect();
        assert_eq!(resume, [SourceKind::Upload]);
        assert!(!SourceKind::Web.traits().live);
        assert_eq!(SourceKind::Upload.traits().on_idle, OnIdle::Expire);
        assert!(!SourceKind::Upload.traits().pauses);
    }

    #[test]
    fn an_upload_from_a_call_guest_names_them() {
        let room = RoomId::from_parts(1, 2);
        let u = crate::recording::UploadSource {
            room: Some(room),
            guest: Some("Bob".into()),
            length: Some(10),
            ..Default::default()
        };
        let spec = SourceSpec::Upload(u);
        assert_eq!(
            spec.guest(),
            Some(GuestSender {
                room,
                name: "Bob".into()
            })
        );
        assert_eq!(spec.room(), Some(room));
        assert!(spec.reserved_quota());
        let frames = SourceSpec::Frames { input_fps: None };
        assert_eq!((frames.guest(), frames.room()), (None, None));
        assert!(!frames.reserved_quota());
    }
}
