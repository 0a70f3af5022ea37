//! A recording to start from in tests and examples ([`Recording::example`]).

use crate::RecordingId;
use crate::recording::{Recording, SourceSpec, Stats, Status};
use crate::settings::{Format, Preset};

impl Recording {
    /// A pending web recording of `https://example.org/` by `user1`, for
    /// tests and examples to change what they need of.
    pub fn example() -> Recording {
        let source: crate::web::WebSource =
            serde_json::from_value(serde_json::json!({"url": "https://example.org/"}))
                .unwrap_or_else(|e| unreachable!("a fixed URL parses: {e}"));
        Recording {
            id: RecordingId::from_parts(1, 1),
            owner: "user1".into(),
            status: Status::Pending,
            end_reason: None,
            source: SourceSpec::Web(source),
            format: Format::Mp4,
            preset: Preset::Medium,
            video: Preset::Medium.settings(),
            max_duration_s: 60,
            title: None,
            metadata: serde_json::json!({}),
            created_at: 0,
            started_at: None,
            stopped_at: None,
            completed_at: None,
            expires_at: None,
            duration_s: None,
            size_bytes: None,
            error: None,
            note: None,
            stats: Stats::default(),
            media: None,
            regenerated_from: None,
            queue_position: None,
            tracks: vec![],
            speakers: vec![],
            outputs: vec![],
            node: None,
        }
    }
}
