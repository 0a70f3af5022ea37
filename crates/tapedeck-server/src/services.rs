//! What drivers, processing and the API share: configuration, the
//! repository, the media store, events, metrics, the media programs and what
//! the sources share among themselves.

use std::path::PathBuf;

use tapedeck_core::RecordingId;
use tapedeck_media::ffmpeg::Tools;
use tapedeck_store::blob::Blobs;
use tapedeck_store::repo::Repo;

use crate::config::Config;
use crate::events::EventBus;
use crate::metrics::Metrics;
use crate::source;

/// Everything a recording's driver needs.
#[derive(Debug)]
pub struct Services {
    /// Configuration.
    pub config: Config,
    /// Metadata.
    pub repo: Repo,
    /// Media.
    pub blobs: Blobs,
    /// Events.
    pub events: EventBus,
    /// Metrics.
    pub metrics: Metrics,
    /// ffmpeg and ffprobe.
    pub tools: Tools,
    /// What the source modules share (their endpoints and slots).
    pub sources: source::Shared,
    /// The media server of rooms.
    pub rtc: crate::rtc::Rtc,
}

impl Services {
    /// Services over the given parts.
    pub fn new(
        config: Config,
        repo: Repo,
        blobs: Blobs,
        events: EventBus,
        metrics: Metrics,
        rtc: crate::rtc::Rtc,
    ) -> Self {
        let tools = Tools {
            ffmpeg: config.encoder.ffmpeg.clone(),
            ffprobe: config.encoder.ffprobe.clone(),
        };
        Self {
            sources: source::Shared::new(&config),
            config,
            repo,
            blobs,
            events,
            metrics,
            tools,
            rtc,
        }
    }

    /// The work folder of a recording (spool, live output, thumbnails).
    pub fn work_dir(&self, id: RecordingId) -> PathBuf {
        self.config
            .server
            .data_dir
            .join("work")
            .join(id.to_string())
    }
}
