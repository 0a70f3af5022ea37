//! The passthrough sink: media that is already encoded (VP8, VP9, AV1 or
//! H.264 video, Opus audio) written as it arrives, without re-encoding, into
//! one streaming WebM or Matroska file with one track per input track.
//!
//! - **Streaming, crash-safe.** Units are gathered into a cluster in memory
//!   (at most half a second or 8 MB; a new one at each keyframe of the cue
//!   track) and each cluster is written whole, with its size, after the
//!   previous one. The segment's size is left unknown until the end, so a
//!   file cut by a crash plays up to its last complete cluster, and
//!   [`recover`] finalizes it.
//! - **Finalized in place.** The header reserves room (EBML Void elements)
//!   for the seek head and the duration; [`PassthroughSink::finalize`]
//!   appends the cues and fills both in, so players can seek without a remux.
//! - **Pauses leave no gap.** Units are dropped while paused; the first one
//!   after a resume is placed where the file ended, and every track is
//!   shifted by the same amount (A/V sync is kept). A video track waits for
//!   its next keyframe after a resume, as at the start.
//!
//! Written by hand on top of [`crate::mkv`]: the Rust Matroska crates are
//! readers, or muxers that hold the index in memory and rewrite the whole
//! file at the end (`webm`/libwebm bindings need a C++ toolchain and do not
//! write H.264), and none recovers a cut file.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::Path;

use crate::mkv::{put_id, put_size, uint};

mod layout;
mod recover;

use layout::{Index, Layout, header, write_index};
#[cfg(test)]
use recover::scan;
pub use recover::{RecoverError, recover, scan_bytes};

const SEGMENT: u32 = 0x1853_8067;
const SEEK_HEAD: u32 = 0x114D_9B74;
const INFO: u32 = 0x1549_A966;
const TRACKS: u32 = 0x1654_AE6B;
const CLUSTER: u32 = 0x1F43_B675;
const CUES: u32 = 0x1C53_BB6B;
const VOID: u32 = 0xEC;
const TIMECODE: u32 = 0xE7;
const SIMPLE_BLOCK: u32 = 0xA3;
const TRACK_ENTRY: u32 = 0xAE;
const TRACK_NUMBER: u32 = 0xD7;
const TRACK_TYPE: u32 = 0x83;

/// Bytes reserved for the seek head (three entries fit in 138).
const SEEK_ROOM: usize = 200;
/// Bytes of a Duration element (2-byte ID, 8-byte size, 8-byte float).
const DURATION_ROOM: usize = 18;
/// A cluster is written once it spans this long (ms) ...
const CLUSTER_MS: i64 = 500;
/// ... or holds this many bytes.
const CLUSTER_BYTES: usize = 8 << 20;

/// A codec the passthrough sink writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// VP8 video.
    Vp8,
    /// VP9 video.
    Vp9,
    /// AV1 video.
    Av1,
    /// H.264 video: units in AVC form (length-prefixed NAL units), the
    /// track's `codec_private` an `avcC` record.
    H264,
    /// Opus audio.
    Opus,
}

impl Codec {
    /// The Matroska codec ID.
    pub fn matroska_id(self) -> &'static str {
        match self {
            Codec::Vp8 => "V_VP8",
            Codec::Vp9 => "V_VP9",
            Codec::Av1 => "V_AV1",
            Codec::H264 => "V_MPEG4/ISO/AVC",
            Codec::Opus => "A_OPUS",
        }
    }

    /// Whether it is a video codec.
    pub fn is_video(self) -> bool {
        !matches!(self, Codec::Opus)
    }

    /// Whether WebM may carry it.
    pub fn in_webm(self) -> bool {
        !matches!(self, Codec::H264)
    }
}

/// The container of a passthrough file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    /// WebM (VP8, VP9, AV1, Opus).
    Webm,
    /// Matroska (anything, H.264 among them).
    Matroska,
}

impl Container {
    /// WebM when every track may go there, Matroska otherwise.
    pub fn for_tracks(tracks: &[Track]) -> Self {
        if tracks.iter().all(|t| t.codec.in_webm()) {
            Container::Webm
        } else {
            Container::Matroska
        }
    }

    /// The file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Container::Webm => "webm",
            Container::Matroska => "mkv",
        }
    }
}

/// One input track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Track {
    /// Its codec.
    pub codec: Codec,
    /// Codec setup (`avcC` for H.264, `OpusHead` for Opus, `av1C` for AV1),
    /// when the codec needs one; a plain `OpusHead` is made when missing.
    pub codec_private: Option<Vec<u8>>,
    /// A name (e.g. the participant's).
    pub name: Option<String>,
    /// Video size.
    pub width: u32,
    /// Video size.
    pub height: u32,
    /// Audio sample rate.
    pub sample_rate: u32,
    /// Audio channels.
    pub channels: u8,
}

impl Track {
    /// A video track.
    pub fn video(codec: Codec, width: u32, height: u32) -> Self {
        Self {
            codec,
            codec_private: None,
            name: None,
            width,
            height,
            sample_rate: 0,
            channels: 0,
        }
    }

    /// An Opus track.
    pub fn opus(sample_rate: u32, channels: u8) -> Self {
        Self {
            codec: Codec::Opus,
            codec_private: None,
            name: None,
            width: 0,
            height: 0,
            sample_rate,
            channels,
        }
    }

    /// The same track with codec setup bytes.
    pub fn with_private(mut self, private: Vec<u8>) -> Self {
        self.codec_private = Some(private);
        self
    }
}

/// One media unit: a video frame or an audio packet, as encoded.
#[derive(Debug, Clone, Copy)]
pub struct Unit<'a> {
    /// Index into the tracks the sink was created with.
    pub track: usize,
    /// Presentation time in microseconds, on one clock for all tracks.
    pub pts_us: i64,
    /// Whether a decoder can start here (always true for audio).
    pub keyframe: bool,
    /// The encoded bytes.
    pub data: &'a [u8],
}

/// What became of a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed {
    /// Written.
    Written,
    /// Dropped: the sink is paused.
    Paused,
    /// Dropped: its video track waits for a keyframe.
    AwaitingKeyframe,
    /// Dropped: it lies before the start of the file.
    TooEarly,
}

/// Why the sink refused.
#[derive(Debug, thiserror::Error)]
pub enum PassthroughError {
    /// The tracks cannot be written.
    #[error("passthrough: {0}")]
    Tracks(String),
    /// A unit names no track.
    #[error("passthrough: unit for track {0}, the file has {1}")]
    NoTrack(usize, usize),
    /// Writing the file failed.
    #[error("passthrough: {0}")]
    Io(#[from] io::Error),
}

/// What a finished file holds.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Summary {
    /// Duration in milliseconds (end of the last unit of any track).
    pub duration_ms: f64,
    /// Units written.
    pub units: u64,
    /// Clusters written.
    pub clusters: u64,
    /// File size.
    pub bytes: u64,
}

/// A cluster being gathered.
#[derive(Debug, Default)]
struct Cluster {
    time_ms: i64,
    blocks: Vec<u8>,
    /// Whether it starts with a keyframe of the cue track.
    cue: bool,
}

/// A passthrough file being written.
pub struct PassthroughSink {
    file: File,
    tracks: Vec<Track>,
    layout: Layout,
    index: Index,
    cluster: Option<Cluster>,
    /// The track cues point at: the first video track, else the first.
    cue_track: usize,
    /// Subtracted from every unit's time (µs): the first unit's, plus pauses.
    shift_us: Option<i64>,
    paused: bool,
    rebase: bool,
    need_key: Vec<bool>,
    /// File size after the last cluster written.
    bytes: u64,
    /// Units placed just after their track's previous one (see `write`).
    retimed: u64,
}

impl PassthroughSink {
    /// Creates `path` and writes the header for `tracks`.
    pub fn create(
        path: &Path,
        container: Container,
        tracks: Vec<Track>,
    ) -> Result<Self, PassthroughError> {
        if tracks.is_empty() || tracks.len() > 126 {
            return Err(PassthroughError::Tracks(format!(
                "{} tracks; a file holds 1 to 126",
                tracks.len()
            )));
        }
        for t in &tracks {
            if container == Container::Webm && !t.codec.in_webm() {
                return Err(PassthroughError::Tracks(format!(
                    "{} cannot go in WebM; use Matroska",
                    t.codec.matroska_id()
                )));
            }
            if t.codec == Codec::H264 && t.codec_private.is_none() {
                return Err(PassthroughError::Tracks(
                    "an H.264 track needs its avcC (SPS and PPS)".into(),
                ));
            }
        }
        let (head, layout) = header(container, &tracks);
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .read(true)
            .open(path)?;
        file.write_all(&head)?;
        let bytes = head.len() as u64;
        let cue_track = tracks.iter().position(|t| t.codec.is_video()).unwrap_or(0);
        let need_key = tracks.iter().map(|t| t.codec.is_video()).collect();
        Ok(Self {
            file,
            tracks,
            layout,
            index: Index::default(),
            cluster: None,
            cue_track,
            shift_us: None,
            paused: false,
            rebase: false,
            need_key,
            bytes,
            retimed: 0,
        })
    }

    /// Stops taking units until [`resume`](Self::resume).
    pub fn pause(&mut self) {
        self.paused = true;
    }

    /// Takes units again, placed right after what was written.
    pub fn resume(&mut self) {
        if self.paused {
            self.paused = false;
            self.rebase = self.shift_us.is_some();
            for (need, t) in self.need_key.iter_mut().zip(&self.tracks) {
                *need = t.codec.is_video();
            }
        }
    }

    /// Places one unit in the file.
    pub fn write(&mut self, unit: Unit<'_>) -> Result<Placed, PassthroughError> {
        let Some(track) = self.tracks.get(unit.track) else {
            return Err(PassthroughError::NoTrack(unit.track, self.tracks.len()));
        };
        let video = track.codec.is_video();
        if self.paused {
            return Ok(Placed::Paused);
        }
        if self.need_key[unit.track] {
            if !unit.keyframe {
                return Ok(Placed::AwaitingKeyframe);
            }
            self.need_key[unit.track] = false;
        }
        if self.rebase {
            // The first unit after a pause lands where the file ends.
            self.rebase = false;
            let end_us = self.index.end_ms() * 1000;
            self.shift_us = Some(unit.pts_us.saturating_sub(end_us));
        }
        let shift = *self.shift_us.get_or_insert(unit.pts_us);
        let t_ms = unit.pts_us.saturating_sub(shift).div_euclid(1000);
        if t_ms < 0 {
            return Ok(Placed::TooEarly);
        }
        // Within a track, times only go forward: a unit at or before the
        // previous one (a duplicate, two frames in one millisecond, a late
        // packet) goes 1 ms after it, so the file stays well formed and
        // nothing is dropped.
        let t_ms = match self.index.last.get(unit.track).copied().flatten() {
            Some((last, _)) if t_ms <= last => {
                self.retimed += 1;
                last + 1
            }
            _ => t_ms,
        };
        let starts_cue = unit.track == self.cue_track && (unit.keyframe || !video);
        let split = match &self.cluster {
            None => false,
            Some(c) => {
                (starts_cue && video)
                    || t_ms - c.time_ms >= CLUSTER_MS
                    || t_ms - c.time_ms < i64::from(i16::MIN)
                    || c.blocks.len() >= CLUSTER_BYTES
            }
        };
        if split {
            self.flush()?;
        }
        let cluster = self.cluster.get_or_insert_with(|| Cluster {
            time_ms: t_ms,
            blocks: Vec::new(),
            cue: starts_cue,
        });
        let rel = (t_ms - cluster.time_ms) as i16;
        put_id(&mut cluster.blocks, SIMPLE_BLOCK);
        put_size(&mut cluster.blocks, 4 + unit.data.len() as u64);
        cluster.blocks.push(0x80 | (unit.track as u8 + 1));
        cluster.blocks.extend_from_slice(&rel.to_be_bytes());
        cluster
            .blocks
            .push(if unit.keyframe || !video { 0x80 } else { 0 });
        cluster.blocks.extend_from_slice(unit.data);
        self.index.saw(unit.track, t_ms);
        Ok(Placed::Written)
    }

    /// Writes the cluster being gathered.
    fn flush(&mut self) -> io::Result<()> {
        let Some(c) = self.cluster.take() else {
            return Ok(());
        };
        let pos = self.file.seek(SeekFrom::End(0))?;
        let mut head = vec![];
        uint(&mut head, TIMECODE, c.time_ms as u64);
        let mut out = Vec::with_capacity(16 + head.len());
        put_id(&mut out, CLUSTER);
        put_size(&mut out, (head.len() + c.blocks.len()) as u64);
        out.extend_from_slice(&head);
        self.file.write_all(&out)?;
        self.file.write_all(&c.blocks)?;
        self.bytes = pos + (out.len() + c.blocks.len()) as u64;
        self.index.clusters += 1;
        if c.cue {
            self.index.cues.push((
                c.time_ms as u64,
                self.cue_track as u64 + 1,
                pos - self.layout.segment_body,
            ));
        }
        Ok(())
    }

    /// Writes the last cluster, the cues, the duration and the seek head.
    pub fn finalize(mut self) -> Result<Summary, PassthroughError> {
        self.flush()?;
        let s = write_index(&mut self.file, &self.layout, &self.index)?;
        self.file.sync_all()?;
        Ok(s)
    }

    /// Units that came at or before their track's previous one and were
    /// placed 1 ms after it.
    pub fn retimed(&self) -> u64 {
        self.retimed
    }

    /// What is placed so far (units, duration) and written (clusters, bytes).
    pub fn summary(&self) -> Summary {
        Summary {
            duration_ms: self.index.end_ms() as f64,
            units: self.index.units,
            clusters: self.index.clusters,
            bytes: self.bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn units(sink: &mut PassthroughSink, from_us: i64, n: i64, step_us: i64) {
        for i in 0..n {
            let pts = from_us + i * step_us;
            sink.write(Unit {
                track: 0,
                pts_us: pts,
                keyframe: i % 30 == 0,
                data: &[0xAB; 100],
            })
            .unwrap();
            sink.write(Unit {
                track: 1,
                pts_us: pts,
                keyframe: true,
                data: &[0xCD; 40],
            })
            .unwrap();
        }
    }

    fn tracks() -> Vec<Track> {
        vec![Track::video(Codec::Vp8, 64, 48), Track::opus(48_000, 2)]
    }

    #[test]
    fn header_leaves_room_that_scan_finds() {
        let (head, layout) = header(Container::Webm, &tracks());
        let s = scan(io::Cursor::new(head)).unwrap();
        assert_eq!(s.layout, layout);
        assert_eq!(s.index.units, 0);
    }

    #[test]
    fn finalize_and_recover_agree() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.webm");
        let mut sink = PassthroughSink::create(&p, Container::Webm, tracks()).unwrap();
        units(&mut sink, 5_000_000, 90, 33_333);
        let done = sink.finalize().unwrap();
        assert_eq!(done.units, 180);
        assert_eq!(done.duration_ms, 2999.0);
        let bytes = std::fs::read(&p).unwrap();
        let again = recover(&p).unwrap();
        assert_eq!(again, done);
        assert_eq!(
            std::fs::read(&p).unwrap(),
            bytes,
            "recovering a finished file changes nothing"
        );
    }

    #[test]
    fn a_cut_file_keeps_its_complete_clusters() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.webm");
        let mut sink = PassthroughSink::create(&p, Container::Webm, tracks()).unwrap();
        units(&mut sink, 0, 90, 33_333);
        sink.flush().unwrap();
        let len = std::fs::metadata(&p).unwrap().len();
        drop(sink);
        let f = OpenOptions::new().write(true).open(&p).unwrap();
        f.set_len(len - 50).unwrap();
        let s = recover(&p).unwrap();
        assert_eq!(
            s.clusters, 5,
            "the sixth cluster (half a second each) was cut"
        );
        assert_eq!(s.units, 150);
        assert!(s.bytes < len);
    }

    #[test]
    fn times_only_go_forward_within_a_track() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.webm");
        let mut sink = PassthroughSink::create(&p, Container::Webm, tracks()).unwrap();
        for pts_us in [0, 20_000, 20_400, 10_000, 60_000] {
            let unit = Unit {
                track: 1,
                pts_us,
                keyframe: true,
                data: b"x",
            };
            assert_eq!(sink.write(unit).unwrap(), Placed::Written);
        }
        assert_eq!(sink.retimed(), 2);
        sink.finalize().unwrap();
        // As a reader sees them: 0, 20, then 21 and 22 (not 20 and 10), 60 ms.
        let out = std::process::Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "1", "-show_entries"])
            .args(["packet=pts_time", "-of", "csv=p=0"])
            .arg(&p)
            .output()
            .unwrap();
        let times: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim_end_matches(',').to_string())
            .collect();
        assert_eq!(
            times,
            ["0.000000", "0.020000", "0.021000", "0.022000", "0.060000"]
        );
    }

    #[test]
    fn pauses_leave_no_gap_and_video_waits_for_a_keyframe() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.webm");
        let mut sink = PassthroughSink::create(&p, Container::Webm, tracks()).unwrap();
        units(&mut sink, 0, 30, 33_333); // 0 .. 1 s
        sink.pause();
        assert_eq!(
            sink.write(Unit {
                track: 1,
                pts_us: 1_500_000,
                keyframe: true,
                data: b"x"
            })
            .unwrap(),
            Placed::Paused
        );
        sink.resume();
        let late = 10_000_000;
        assert_eq!(
            sink.write(Unit {
                track: 0,
                pts_us: late,
                keyframe: false,
                data: b"x"
            })
            .unwrap(),
            Placed::AwaitingKeyframe
        );
        units(&mut sink, late, 30, 33_333);
        let s = sink.finalize().unwrap();
        // 30 units end at 966 + 33 ms; the next 30 start there and end 999 ms later.
        assert_eq!(s.duration_ms, 1998.0);
    }

    #[test]
    fn refuses_what_it_cannot_write() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.webm");
        assert!(
            PassthroughSink::create(&p, Container::Webm, vec![Track::video(Codec::H264, 2, 2)])
                .is_err()
        );
        assert!(
            PassthroughSink::create(
                &p,
                Container::Matroska,
                vec![Track::video(Codec::H264, 2, 2)]
            )
            .is_err()
        );
        assert!(PassthroughSink::create(&p, Container::Webm, vec![]).is_err());
        let mut s = PassthroughSink::create(&p, Container::Webm, tracks()).unwrap();
        assert!(
            s.write(Unit {
                track: 2,
                pts_us: 0,
                keyframe: true,
                data: b""
            })
            .is_err()
        );
        assert!(scan_bytes(b"").is_err());
        assert!(scan_bytes(&[0x1A, 0x45, 0xDF, 0xA3, 0x80]).is_err());
    }
}
