//! The file's layout: the header with room left for the seek head and the
//! duration, the index of clusters, and the cues, duration and seek head
//! written into that room at the end.

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};

use super::*;
use crate::mkv::{element, float, put_id, put_size, uint};

/// Where the header left room to fill in at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Layout {
    /// Offset of the segment's size field (8 bytes).
    pub(super) segment_size: u64,
    /// Offset of the segment's body: cue and seek positions count from here.
    pub(super) segment_body: u64,
    /// Offset of the seek head's Void.
    pub(super) seek_room: u64,
    /// Offset of the duration's Void.
    pub(super) duration_room: u64,
    /// Offsets of Info and Tracks, relative to `segment_body`.
    pub(super) info: u64,
    pub(super) tracks: u64,
}

/// The index of the clusters written so far.
#[derive(Debug, Default, Clone)]
pub(super) struct Index {
    /// (time ms, track number, cluster position relative to the segment body).
    pub(super) cues: Vec<(u64, u64, u64)>,
    /// Per track: (last time ms, last gap between units ms).
    pub(super) last: Vec<Option<(i64, i64)>>,
    pub(super) units: u64,
    pub(super) clusters: u64,
}

impl Index {
    pub(super) fn saw(&mut self, track: usize, t: i64) {
        if self.last.len() <= track {
            self.last.resize(track + 1, None);
        }
        let gap = match self.last[track] {
            Some((prev, _)) if t > prev => t - prev,
            Some((_, gap)) => gap,
            None => 0,
        };
        self.last[track] = Some((t, gap));
        self.units += 1;
    }

    /// The end of the last unit of any track, in ms.
    pub(super) fn end_ms(&self) -> i64 {
        self.last
            .iter()
            .flatten()
            .map(|(t, gap)| t + gap)
            .max()
            .unwrap_or(0)
    }
}

/// The header of a new file and where it left room.
pub(super) fn header(container: Container, tracks: &[Track]) -> (Vec<u8>, Layout) {
    let mut out = Vec::with_capacity(512);
    crate::mkv::ebml_header(
        &mut out,
        match container {
            Container::Webm => b"webm",
            Container::Matroska => b"matroska",
        },
    );
    put_id(&mut out, SEGMENT);
    let segment_size = out.len() as u64;
    out.extend_from_slice(&[0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]); // unknown size
    let segment_body = out.len() as u64;
    let seek_room = out.len() as u64;
    void(&mut out, SEEK_ROOM);

    let info = out.len() as u64 - segment_body;
    let mut body = vec![];
    uint(&mut body, 0x2A_D7B1, 1_000_000); // TimestampScale: 1 ms
    element(&mut body, 0x4D80, b"tapedeck"); // MuxingApp
    element(&mut body, 0x5741, b"tapedeck"); // WritingApp
    let duration_at = body.len();
    void(&mut body, DURATION_ROOM);
    put_id(&mut out, INFO);
    put_size(&mut out, body.len() as u64);
    let duration_room = out.len() as u64 + duration_at as u64;
    out.extend_from_slice(&body);

    let tracks_at = out.len() as u64 - segment_body;
    let mut all = vec![];
    for (i, t) in tracks.iter().enumerate() {
        let n = i as u64 + 1;
        let mut e = vec![];
        uint(&mut e, TRACK_NUMBER, n);
        uint(&mut e, 0x73C5, n); // TrackUID
        uint(&mut e, TRACK_TYPE, if t.codec.is_video() { 1 } else { 2 });
        uint(&mut e, 0x9C, 0); // FlagLacing
        element(&mut e, 0x86, t.codec.matroska_id().as_bytes()); // CodecID
        if let Some(name) = &t.name {
            element(&mut e, 0x536E, name.as_bytes()); // Name
        }
        let private = match (&t.codec_private, t.codec) {
            (Some(p), _) => Some(p.clone()),
            (None, Codec::Opus) => Some(opus_head(t.channels, t.sample_rate)),
            (None, _) => None,
        };
        if let Some(p) = private {
            element(&mut e, 0x63A2, &p); // CodecPrivate
        }
        if t.codec.is_video() {
            let mut v = vec![];
            uint(&mut v, 0xB0, u64::from(t.width)); // PixelWidth
            uint(&mut v, 0xBA, u64::from(t.height)); // PixelHeight
            element(&mut e, 0xE0, &v);
        } else {
            uint(&mut e, 0x56BB, 80_000_000); // SeekPreRoll: 80 ms
            let mut a = vec![];
            float(&mut a, 0xB5, f64::from(t.sample_rate.max(1))); // SamplingFrequency
            uint(&mut a, 0x9F, u64::from(t.channels.max(1))); // Channels
            element(&mut e, 0xE1, &a);
        }
        element(&mut all, TRACK_ENTRY, &e);
    }
    element(&mut out, TRACKS, &all);
    (
        out,
        Layout {
            segment_size,
            segment_body,
            seek_room,
            duration_room,
            info,
            tracks: tracks_at,
        },
    )
}

/// An `OpusHead` for a stream without one (no pre-skip, channel mapping 0).
fn opus_head(channels: u8, sample_rate: u32) -> Vec<u8> {
    let mut h = b"OpusHead".to_vec();
    h.push(1);
    h.push(channels.clamp(1, 2));
    h.extend_from_slice(&0u16.to_le_bytes());
    h.extend_from_slice(&sample_rate.to_le_bytes());
    h.extend_from_slice(&0i16.to_le_bytes());
    h.push(0);
    h
}

/// A Void element of exactly `total` bytes (at least 9).
fn void(out: &mut Vec<u8>, total: usize) {
    put_id(out, VOID);
    put_size(out, (total - 9) as u64);
    out.resize(out.len() + total - 9, 0);
}

/// Appends the cues and fills in the duration, the seek head and the segment size.
pub(super) fn write_index(file: &mut File, layout: &Layout, index: &Index) -> io::Result<Summary> {
    let cues_pos = file.seek(SeekFrom::End(0))?;
    let mut points = vec![];
    for (time, track, cluster) in &index.cues {
        let mut pos = vec![];
        uint(&mut pos, 0xF7, *track); // CueTrack
        uint(&mut pos, 0xF1, *cluster); // CueClusterPosition
        let mut p = vec![];
        uint(&mut p, 0xB3, *time); // CueTime
        element(&mut p, 0xB7, &pos); // CueTrackPositions
        element(&mut points, 0xBB, &p); // CuePoint
    }
    let mut cues = vec![];
    if !points.is_empty() {
        element(&mut cues, CUES, &points);
    }
    file.write_all(&cues)?;
    let end = cues_pos + cues.len() as u64;

    let mut seeks = vec![];
    let mut entries = vec![(INFO, layout.info), (TRACKS, layout.tracks)];
    if !cues.is_empty() {
        entries.push((CUES, cues_pos - layout.segment_body));
    }
    for (id, pos) in entries {
        let mut s = vec![];
        element(&mut s, 0x53AB, &id.to_be_bytes()); // SeekID
        uint(&mut s, 0x53AC, pos); // SeekPosition
        element(&mut seeks, 0x4DBB, &s); // Seek
    }
    let mut room = vec![];
    element(&mut room, SEEK_HEAD, &seeks);
    let left = SEEK_ROOM - room.len();
    void(&mut room, left);
    file.seek(SeekFrom::Start(layout.seek_room))?;
    file.write_all(&room)?;

    let mut duration = vec![];
    float(&mut duration, 0x4489, index.end_ms() as f64);
    debug_assert_eq!(duration.len(), DURATION_ROOM);
    file.seek(SeekFrom::Start(layout.duration_room))?;
    file.write_all(&duration)?;

    let mut size = vec![];
    put_size(&mut size, end - layout.segment_body);
    file.seek(SeekFrom::Start(layout.segment_size))?;
    file.write_all(&size)?;
    file.seek(SeekFrom::End(0))?;
    Ok(Summary {
        duration_ms: index.end_ms() as f64,
        units: index.units,
        clusters: index.clusters,
        bytes: end,
    })
}
