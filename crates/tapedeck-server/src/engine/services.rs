//! What drivers, processing and the API share: configuration, the
//! repository, the media store, events, metrics, the media programs and what
//! the sources share among themselves.

use std::path::PathBuf;

use tapedeck_core::RecordingId;
use tapedeck_media::ffmpeg::Tools;
use tapedeck_store::blob::Blobs;
use tapedeck_store::repo::Repo;

use crate::config::Config;
use crate::engine::events::EventBus;
use crate::engine::metrics::Metrics;
use crate::engine::source::shared::Shared;

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
    pub sources: Shared,
    /// The media server of rooms.
    pub rtc: crate::rtc::Rtc,
    /// What each recording's work folder holds (counted in quotas).
    pub work: crate::engine::work::ledger::Ledger,
    /// Live media on its way to the store.
    pub shipping: crate::engine::ship::Shipping,
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
        let tools = config.tools();
        Self {
            sources: Shared::new(&config),
            config,
            repo,
            blobs,
            events,
            metrics,
            tools,
            rtc,
            work: Default::default(),
            shipping: Default::default(),
        }
    }

    /// Bytes `owner` uses against the quota: their stored recordings, and
    /// what their recordings hold in work folders (`except` one of them,
    /// which counts its own).
    pub async fn usage_bytes(
        &self,
        owner: &str,
        except: Option<RecordingId>,
    ) -> Result<u64, tapedeck_store::repo::RepoError> {
        let stored = self.repo.usage_bytes(owner).await?;
        Ok(stored.saturating_add(self.work.owner_bytes(owner, except)))
    }

    /// `f` without what a user should not read of the server: the data
    /// folder's place on disk (a work file becomes `work/ID/...`), the
    /// store's endpoint and where ffmpeg and ffprobe are installed.
    pub fn redact(&self, mut f: tapedeck_core::Failure) -> tapedeck_core::Failure {
        f.message = self.redact_text(&f.message);
        f
    }

    /// [`Services::redact`] for any text.
    pub fn redact_text(&self, text: &str) -> String {
        let data = &self.config.server.data_dir;
        let mut out = text.to_string();
        let mut dirs = vec![data.display().to_string()];
        if let Ok(abs) = std::fs::canonicalize(data) {
            dirs.insert(0, abs.display().to_string());
        }
        for d in dirs.iter().filter(|d| !d.is_empty() && *d != ".") {
            out = out
                .replace(&format!("{d}/"), "")
                .replace(d.as_str(), "the data folder");
        }
        if let Some(e) = self
            .config
            .storage
            .endpoint
            .as_deref()
            .filter(|e| !e.is_empty())
        {
            out = out.replace(e.trim_end_matches('/'), "the store");
        }
        // A program configured by its path is named, not placed.
        for (path, name) in [
            (&self.config.encoder.ffmpeg, "ffmpeg"),
            (&self.config.encoder.ffprobe, "ffprobe"),
            (&self.config.web.browser, "the browser"),
        ] {
            let p = path.display().to_string();
            if p.contains('/') {
                out = out.replace(&p, name);
            }
        }
        out
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
