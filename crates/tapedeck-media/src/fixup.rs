//! Fix-up of a browser's MediaRecorder file. Chrome and Firefox write WebM
//! as a live stream: the segment (and in Chrome every cluster) has an
//! unknown size, there is no duration and no cues, so players cannot seek
//! and show no length. [`fixup`] rewrites it through the passthrough sink:
//! the same frames, byte for byte, in clusters of at most half a second,
//! with cues and the duration; nothing is decoded or encoded.
//!
//! Streaming with flat memory: [`Demuxer`] reads the input front to back,
//! one element header and at most one block at a time (never seeking, so an
//! unknown size is no problem), and the sink holds at most one cluster.
//!
//! A file that is not Matroska/WebM, or holds a codec the sink does not
//! write (PCM audio, laced blocks), is refused with a reason; the caller
//! may remux it with ffmpeg instead. A file cut mid-element (a browser that
//! stopped uploading) keeps every block before the cut, and says so.
//!
//! Written by hand: the Rust Matroska crates either load the index into
//! memory or do not read unknown-size clusters, and the writer is ours
//! (see [`crate::sink::passthrough`]).

use std::io::{self, BufReader, Read};
use std::path::Path;

use crate::mkv::read::{id, uint, vint};
use crate::sink::passthrough::{
    Codec, Container, PassthroughError, PassthroughSink, Summary, Track, Unit,
};

const EBML: u32 = 0x1A45_DFA3;
const DOC_TYPE: u32 = 0x4282;
const SEGMENT: u32 = 0x1853_8067;
const INFO: u32 = 0x1549_A966;
const TIMECODE_SCALE: u32 = 0x2A_D7B1;
const TRACKS: u32 = 0x1654_AE6B;
const TRACK_ENTRY: u32 = 0xAE;
const TRACK_NUMBER: u32 = 0xD7;
const CODEC_ID: u32 = 0x86;
const CODEC_PRIVATE: u32 = 0x63A2;
const VIDEO: u32 = 0xE0;
const PIXEL_WIDTH: u32 = 0xB0;
const PIXEL_HEIGHT: u32 = 0xBA;
const AUDIO: u32 = 0xE1;
const SAMPLING_FREQUENCY: u32 = 0xB5;
const CHANNELS: u32 = 0x9F;
const CLUSTER: u32 = 0x1F43_B675;
const TIMECODE: u32 = 0xE7;
const SIMPLE_BLOCK: u32 = 0xA3;
const BLOCK_GROUP: u32 = 0xA0;
const BLOCK: u32 = 0xA1;
const REFERENCE_BLOCK: u32 = 0xFB;
/// Children of a segment: one of these ends a cluster of unknown size.
const SEGMENT_CHILDREN: [u32; 8] = [
    CLUSTER,
    0x1C53_BB6B,
    0x1254_C367,
    INFO,
    TRACKS,
    0x114D_9B74,
    0x1043_A770,
    0x1941_A469,
];

/// The largest element body read into memory (a block, the tracks).
const MAX_BODY: u64 = 64 << 20;

/// Why a file could not be fixed up.
#[derive(Debug, thiserror::Error)]
pub enum FixupError {
    /// Not a Matroska/WebM file, or one without tracks.
    #[error("not a WebM or Matroska file: {0}")]
    NotMedia(String),
    /// Matroska the sink does not write as it is.
    #[error("{0}")]
    Unsupported(String),
    /// Reading or writing failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The sink refused.
    #[error("{0}")]
    Sink(#[from] PassthroughError),
}

/// One block of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// Index into [`Demuxer::tracks`].
    pub track: usize,
    /// Presentation time, µs.
    pub pts_us: i64,
    /// Whether a decoder can start here.
    pub keyframe: bool,
    /// The frame as encoded.
    pub data: Vec<u8>,
}

/// An element header.
#[derive(Debug, Clone, Copy)]
struct Header {
    id: u32,
    /// `None`: unknown size.
    size: Option<u64>,
}

/// Reads a Matroska/WebM stream front to back: tracks, then blocks.
pub struct Demuxer<R> {
    r: R,
    pos: u64,
    /// A header read ahead (the end of an unknown-size cluster).
    peeked: Option<Header>,
    tracks: Vec<Track>,
    numbers: Vec<u64>,
    scale_ns: u64,
    /// Where the current cluster ends (`u64::MAX`: unknown), and its time.
    cluster: Option<(u64, i64)>,
}

impl<R: Read> Demuxer<R> {
    /// Reads the header, the segment's info and its tracks (everything
    /// before the first cluster).
    pub fn open(r: R) -> Result<Self, FixupError> {
        Self::open_inner(r).map_err(|e| match e {
            FixupError::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                FixupError::NotMedia(format!("{e} (before its tracks)"))
            }
            e => e,
        })
    }

    fn open_inner(r: R) -> Result<Self, FixupError> {
        let mut d = Self {
            r,
            pos: 0,
            peeked: None,
            tracks: vec![],
            numbers: vec![],
            scale_ns: 1_000_000,
            cluster: None,
        };
        let not_media = |m: &str| FixupError::NotMedia(m.to_string());
        let h = d.header()?.ok_or_else(|| not_media("empty"))?;
        if h.id != EBML {
            return Err(not_media("no EBML header"));
        }
        let body = d.body(h)?;
        let doc = children(&body)
            .find(|(id, _)| *id == DOC_TYPE)
            .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        if doc != "webm" && doc != "matroska" {
            return Err(not_media(&format!("document type {doc:?}")));
        }
        let seg = d.header()?.ok_or_else(|| not_media("no segment"))?;
        if seg.id != SEGMENT {
            return Err(not_media("no segment"));
        }
        loop {
            let Some(h) = d.header()? else {
                return Err(not_media("no tracks before the end"));
            };
            match h.id {
                INFO => {
                    let body = d.body(h)?;
                    if let Some((_, b)) = children(&body).find(|(id, _)| *id == TIMECODE_SCALE) {
                        d.scale_ns = uint(b).clamp(1, 1_000_000_000);
                    }
                }
                TRACKS => {
                    let body = d.body(h)?;
                    d.read_tracks(&body)?;
                }
                CLUSTER => {
                    if d.tracks.is_empty() {
                        return Err(not_media("a cluster before the tracks"));
                    }
                    d.peeked = Some(h);
                    return Ok(d);
                }
                _ => d.skip(h)?,
            }
        }
    }

    /// The tracks, as the sink takes them.
    pub fn tracks(&self) -> &[Track] {
        &self.tracks
    }

    /// The next block; `None` at a clean end. An error after some blocks
    /// means the input was cut or damaged there.
    pub fn next_block(&mut self) -> Result<Option<Block>, FixupError> {
        loop {
            if let Some((end, _)) = self.cluster
                && self.pos >= end
            {
                self.cluster = None;
            }
            let Some(h) = self.header()? else {
                return Ok(None);
            };
            // A segment-level element ends a cluster of unknown size.
            if self.cluster.is_some() && SEGMENT_CHILDREN.contains(&h.id) {
                self.cluster = None;
            }
            match (h.id, self.cluster) {
                (CLUSTER, _) => {
                    let end = h.size.map_or(u64::MAX, |s| self.pos.saturating_add(s));
                    self.cluster = Some((end, 0));
                }
                (TIMECODE, Some((end, _))) => {
                    let t = uint(&self.body(h)?);
                    self.cluster = Some((end, i64::try_from(t).unwrap_or(i64::MAX)));
                }
                (SIMPLE_BLOCK, Some((_, time))) => {
                    let body = self.body(h)?;
                    return self.block(&body, time, None).map(Some);
                }
                (BLOCK_GROUP, Some((_, time))) => {
                    let body = self.body(h)?;
                    let mut block = None;
                    let mut referenced = false;
                    for (id, b) in children(&body) {
                        match id {
                            BLOCK => block = Some(b),
                            REFERENCE_BLOCK => referenced = true,
                            _ => {}
                        }
                    }
                    if let Some(b) = block {
                        return self.block(b, time, Some(!referenced)).map(Some);
                    }
                }
                _ => self.skip(h)?,
            }
        }
    }

    fn read_tracks(&mut self, body: &[u8]) -> Result<(), FixupError> {
        for (id, entry) in children(body) {
            if id != TRACK_ENTRY {
                continue;
            }
            let (mut number, mut codec, mut private) = (0u64, String::new(), None);
            let (mut w, mut h, mut rate, mut channels) = (0u32, 0u32, 48_000u32, 2u8);
            for (id, b) in children(entry) {
                match id {
                    TRACK_NUMBER => number = uint(b),
                    CODEC_ID => codec = String::from_utf8_lossy(b).into_owned(),
                    CODEC_PRIVATE => private = Some(b.to_vec()),
                    VIDEO => {
                        for (id, b) in children(b) {
                            match id {
                                PIXEL_WIDTH => w = u32::try_from(uint(b)).unwrap_or(0),
                                PIXEL_HEIGHT => h = u32::try_from(uint(b)).unwrap_or(0),
                                _ => {}
                            }
                        }
                    }
                    AUDIO => {
                        for (id, b) in children(b) {
                            match id {
                                SAMPLING_FREQUENCY => rate = float(b).clamp(1.0, 768_000.0) as u32,
                                CHANNELS => channels = uint(b).clamp(1, 255) as u8,
                                _ => {}
                            }
                        }
                    }
                    _ => {}
                }
            }
            let codec = match codec.as_str() {
                "V_VP8" => Codec::Vp8,
                "V_VP9" => Codec::Vp9,
                "V_AV1" => Codec::Av1,
                "V_MPEG4/ISO/AVC" => Codec::H264,
                "A_OPUS" => Codec::Opus,
                other => {
                    return Err(FixupError::Unsupported(format!(
                        "track {number} is {other:?}, which is not fixed up in place"
                    )));
                }
            };
            let mut t = if codec == Codec::Opus {
                Track::opus(rate, channels)
            } else {
                if w == 0 || h == 0 {
                    return Err(FixupError::NotMedia(format!(
                        "video track {number} has no size"
                    )));
                }
                Track::video(codec, w, h)
            };
            t.codec_private = private;
            self.tracks.push(t);
            self.numbers.push(number);
        }
        if self.tracks.is_empty() {
            return Err(FixupError::NotMedia("no tracks".into()));
        }
        Ok(())
    }

    /// A block's body: track number, relative time, flags, the frame.
    fn block(&self, b: &[u8], cluster_time: i64, key: Option<bool>) -> Result<Block, FixupError> {
        let bad = |m: &str| FixupError::NotMedia(format!("a block at byte {}: {m}", self.pos));
        let (number, n, _) = vint(b).ok_or_else(|| bad("no track number"))?;
        let rest = &b[n..];
        if rest.len() < 3 {
            return Err(bad("too short"));
        }
        let rel = i64::from(i16::from_be_bytes([rest[0], rest[1]]));
        let flags = rest[2];
        if flags & 0x06 != 0 {
            return Err(FixupError::Unsupported("laced blocks".into()));
        }
        let track = self
            .numbers
            .iter()
            .position(|&t| t == number)
            .ok_or_else(|| bad(&format!("track {number} is not in the tracks")))?;
        let ticks = cluster_time.saturating_add(rel);
        let pts_us = i128::from(ticks) * i128::from(self.scale_ns) / 1000;
        Ok(Block {
            track,
            pts_us: pts_us.clamp(0, i128::from(i64::MAX)) as i64,
            keyframe: key.unwrap_or(flags & 0x80 != 0) || !self.tracks[track].codec.is_video(),
            data: rest[3..].to_vec(),
        })
    }

    /// The next element header; `None` at the end of the input.
    fn header(&mut self) -> Result<Option<Header>, FixupError> {
        if let Some(h) = self.peeked.take() {
            return Ok(Some(h));
        }
        let mut buf = [0u8; 12];
        let first = match self.read_some(&mut buf[..1])? {
            0 => return Ok(None),
            n => n,
        };
        let id_len = buf[0].leading_zeros() as usize + 1;
        if id_len > 4 {
            return Err(self.cut("an element ID"));
        }
        self.fill(&mut buf[first..id_len])?;
        let (id, _) = id(&buf[..id_len]).ok_or_else(|| self.cut("an element ID"))?;
        self.fill(&mut buf[id_len..id_len + 1])?;
        let size_len = buf[id_len].leading_zeros() as usize + 1;
        if size_len > 8 {
            return Err(self.cut("an element size"));
        }
        self.fill(&mut buf[id_len + 1..id_len + size_len])?;
        let (size, _, unknown) =
            vint(&buf[id_len..id_len + size_len]).ok_or_else(|| self.cut("an element size"))?;
        Ok(Some(Header {
            id,
            size: (!unknown).then_some(size),
        }))
    }

    /// A body of known size, read whole (at most [`MAX_BODY`]).
    fn body(&mut self, h: Header) -> Result<Vec<u8>, FixupError> {
        let size = h.size.ok_or_else(|| {
            FixupError::Unsupported(format!("element {:#x} of unknown size", h.id))
        })?;
        if size > MAX_BODY {
            return Err(FixupError::Unsupported(format!(
                "element {:#x} of {size} bytes",
                h.id
            )));
        }
        let mut b = vec![0u8; size as usize];
        self.fill(&mut b)?;
        Ok(b)
    }

    fn skip(&mut self, h: Header) -> Result<(), FixupError> {
        let size = h.size.ok_or_else(|| {
            FixupError::Unsupported(format!("element {:#x} of unknown size", h.id))
        })?;
        let copied = io::copy(&mut (&mut self.r).take(size), &mut io::sink())?;
        self.pos += copied;
        if copied < size {
            return Err(self.cut("an element"));
        }
        Ok(())
    }

    fn read_some(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.r.read(buf) {
                Ok(n) => {
                    self.pos += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn fill(&mut self, buf: &mut [u8]) -> Result<(), FixupError> {
        let mut at = 0;
        while at < buf.len() {
            match self.read_some(&mut buf[at..])? {
                0 => return Err(self.cut("an element")),
                n => at += n,
            }
        }
        Ok(())
    }

    fn cut(&self, what: &str) -> FixupError {
        FixupError::Io(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("the file ends inside {what} at byte {}", self.pos),
        ))
    }
}

/// The children of an element body read whole: (id, body), stopping at
/// the first that does not parse or overruns.
fn children(body: &[u8]) -> impl Iterator<Item = (u32, &[u8])> {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        let rest = body.get(at..)?;
        let (id, il) = id(rest)?;
        let (size, sl, unknown) = vint(rest.get(il..)?)?;
        if unknown {
            return None;
        }
        let start = il + sl;
        let end = start.checked_add(usize::try_from(size).ok()?)?;
        let b = rest.get(start..end)?;
        at += end;
        Some((id, b))
    })
}

/// An EBML float (4 or 8 bytes).
fn float(b: &[u8]) -> f64 {
    match b.len() {
        4 => f64::from(f32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        8 => f64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
        _ => 0.0,
    }
}

/// What a fix-up wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Fixed {
    /// The output file's summary (duration, units, clusters, size).
    pub summary: Summary,
    /// WebM, or Matroska when a track is H.264.
    pub container: Container,
    /// Why the input ended early, when it did (the blocks before are kept).
    pub cut: Option<String>,
}

/// Rewrites `input` (a MediaRecorder WebM or any Matroska of the sink's
/// codecs) into `output` with cues and a duration.
pub fn fixup(input: &Path, output: &Path) -> Result<Fixed, FixupError> {
    let file = std::fs::File::open(input)?;
    let mut d = Demuxer::open(BufReader::with_capacity(1 << 20, file))?;
    let container = Container::for_tracks(d.tracks());
    let mut sink = PassthroughSink::create(output, container, d.tracks().to_vec())?;
    let mut cut = None;
    loop {
        match d.next_block() {
            Ok(Some(b)) => {
                sink.write(Unit {
                    track: b.track,
                    pts_us: b.pts_us,
                    keyframe: b.keyframe,
                    data: &b.data,
                })?;
            }
            Ok(None) => break,
            Err(FixupError::Unsupported(m)) => return Err(FixupError::Unsupported(m)),
            Err(e) => {
                cut = Some(e.to_string());
                break;
            }
        }
    }
    let summary = sink.finalize()?;
    if summary.units == 0 {
        return Err(FixupError::NotMedia(
            cut.unwrap_or_else(|| "no frames".into()),
        ));
    }
    Ok(Fixed {
        summary,
        container,
        cut,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// What a browser's MediaRecorder writes, made by ffmpeg: VP8 and Opus
    /// in live WebM (unknown sizes, no cues, no duration).
    fn live_webm(dir: &Path, seconds: u32) -> std::path::PathBuf {
        let out = dir.join("live.webm");
        let r = Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg(format!("testsrc2=s=320x240:r=30:d={seconds}"))
            .args(["-f", "lavfi", "-i"])
            .arg(format!("sine=f=440:d={seconds}"))
            .args([
                "-c:v",
                "libvpx",
                "-deadline",
                "realtime",
                "-cpu-used",
                "8",
                "-g",
                "60",
            ])
            .args([
                "-c:a",
                "libopus",
                "-live",
                "1",
                "-cluster_time_limit",
                "1000",
            ])
            .arg(&out)
            .output()
            .unwrap();
        assert!(r.status.success(), "{r:?}");
        out
    }

    fn probe(path: &Path, what: &str) -> String {
        let r = Command::new("ffprobe")
            .args(["-v", "error", "-show_entries", what, "-of", "csv=p=0"])
            .arg(path)
            .output()
            .unwrap();
        String::from_utf8_lossy(&r.stdout).trim().to_string()
    }

    #[test]
    fn a_live_webm_gets_cues_and_its_duration() {
        let dir = tempfile::tempdir().unwrap();
        let input = live_webm(dir.path(), 4);
        assert_eq!(
            probe(&input, "format=duration"),
            "N/A",
            "ffmpeg -live 1 writes no duration"
        );
        let out = dir.path().join("fixed.webm");
        let f = fixup(&input, &out).unwrap();
        assert_eq!(f.container, Container::Webm);
        assert_eq!(f.cut, None);
        let dur: f64 = probe(&out, "format=duration").parse().unwrap();
        assert!((dur - 4.0).abs() < 0.1, "{dur}");
        // Every frame is there: 120 video frames.
        let frames = Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v", "-count_packets"])
            .args(["-show_entries", "stream=nb_read_packets", "-of", "csv=p=0"])
            .arg(&out)
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&frames.stdout).trim(), "120");
        // Seeking to the middle decodes.
        let seek = Command::new("ffmpeg")
            .args(["-v", "error", "-ss", "2", "-i"])
            .arg(&out)
            .args(["-frames:v", "1", "-f", "null", "-"])
            .output()
            .unwrap();
        assert!(seek.status.success() && seek.stderr.is_empty(), "{seek:?}");
    }

    #[test]
    fn a_cut_file_keeps_what_came_before_the_cut_and_garbage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let input = live_webm(dir.path(), 4);
        let bytes = std::fs::read(&input).unwrap();
        let cut = dir.path().join("cut.webm");
        std::fs::write(&cut, &bytes[..bytes.len() * 6 / 10]).unwrap();
        let out = dir.path().join("fixed.webm");
        let f = fixup(&cut, &out).unwrap();
        assert!(
            f.cut.as_deref().unwrap_or("").contains("ends inside"),
            "{f:?}"
        );
        let dur: f64 = probe(&out, "format=duration").parse().unwrap();
        assert!(dur > 1.0 && dur < 3.5, "{dur}");
        let garbage = dir.path().join("garbage.webm");
        std::fs::write(&garbage, b"this is not a video file at all").unwrap();
        assert!(matches!(
            fixup(&garbage, &out),
            Err(FixupError::NotMedia(_))
        ));
        std::fs::write(&garbage, &bytes[..30]).unwrap();
        assert!(matches!(
            fixup(&garbage, &out),
            Err(FixupError::NotMedia(_))
        ));
    }
}
