//! A grid recording's live grid: composed while the call runs
//! (`media::ffmpeg::grid_live`) when the recording has a live output (HLS,
//! pictures, a stream), from each frame as the track files take it; the
//! grid made after stop stays the recording's file.

use tapedeck_core::recording::{Recording, TrackFile};
use tapedeck_media::ffmpeg::grid_live::LiveGrid;

use super::Writer;
use crate::engine::services::Services;
use crate::rtc::Frame;

/// The live grid of `rec`, if it is a grid recording with a live output.
/// One that cannot start is logged; the outputs are then made after stop.
pub(super) fn start(services: &Services, rec: &Recording) -> Option<LiveGrid> {
    if rec.source.traits().own_encode || !crate::engine::outputs::live_encode(rec) {
        return None;
    }
    let mut spec = crate::engine::source::encoding::encode_spec(services, rec);
    spec.live = crate::engine::outputs::live_spec(rec);
    // Streams are pushed from its HLS segments (they carry the sound).
    let (tools, kbps) = (&services.tools, rec.video.audio_bitrate_kbps);
    match LiveGrid::start(tools, &spec, kbps, &services.work_dir(rec.id)) {
        Ok(g) => Some(g),
        Err(e) => {
            tracing::warn!(id = %rec.id, error = %e, "the live grid did not start: the outputs are made after stop");
            None
        }
    }
}

impl Writer {
    /// Tells the live grid the track files begun so far.
    pub(super) fn show_tracks(&self) {
        let Some(live) = &self.live else {
            return;
        };
        let files: Vec<TrackFile> = self
            .tracks
            .iter()
            .filter_map(|w| {
                let open = w.open.as_ref()?;
                Some(w.file(open.began, open.sink.summary()))
            })
            .collect();
        live.tracks(files);
    }

    /// Gives the live grid a frame written into track `track` at `at_us`.
    pub(super) fn show_frame(&self, track: usize, f: &Frame, at_us: i64) {
        if let (Some(live), Some(w)) = (&self.live, self.tracks.get(track)) {
            live.frame(&w.id, f.codec, &f.data, f.keyframe, at_us);
        }
    }

    /// Tells the live grid who speaks now.
    pub(super) fn show_speakers(&self) {
        if let Some(live) = &self.live {
            live.speaking(self.speakers.speaking_at(self.place.end_us()));
        }
    }

    /// Ends the live grid (its playlist ends): before the track files are
    /// finished.
    pub(super) fn end_live(&mut self) {
        if let Some(live) = self.live.take()
            && let Err(e) = live.finish()
        {
            tracing::warn!(room = %self.room, error = %e, "the live grid ended badly");
        }
    }
}
