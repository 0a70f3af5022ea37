//! The live encode's pictures with the page's sound under them, for the
//! live outputs of a web recording: one Matroska stream (the spliced
//! H.264 as it is, 48 kHz PCM from `live_sound`) that the HLS remuxer and
//! every stream push read, each encoding the sound to AAC.
//!
//! The browser hands its sound over a fragment at a time, seconds after
//! it played, so the pictures wait for it here (never in the encoder): a
//! picture goes out once the sound has reached its time, or after
//! [`WAIT`] with silence under it when the sound is late or gone (what
//! comes after for that time is dropped). The recording's file is not
//! made from this: its sound is laid under after stop, whole.
//!
//! Matroska by hand (see `mkv`) because ffmpeg must read both tracks from
//! one pipe: two pipes into one ffmpeg stall each other when one is empty.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use super::live_sound::RATE;
use super::tap::Tap;
use crate::{h264, mkv};

/// What the muxer is handed.
#[derive(Debug)]
pub(crate) enum MuxIn {
    /// The next output tick's picture (Annex B), from the splicer.
    Video(Vec<u8>),
    /// The pictures ended.
    VideoEnd,
    /// Stereo samples (s16le) placed at sample `at` of the recording's time.
    Sound { at: i64, pcm: Vec<u8> },
    /// No more sound.
    SoundEnd,
}

/// How long a picture waits for the sound under it.
pub(crate) const WAIT: Duration = Duration::from_secs(8);

/// Samples in one sound block (20 ms).
const BLOCK: i64 = 960;

/// Bytes of one stereo sample.
const SAMPLE: usize = 4;

/// A piece of the stream: bytes, and whether a reader may begin at it (a
/// key picture).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Piece {
    pub(crate) bytes: Vec<u8>,
    pub(crate) key: bool,
}

struct Picture {
    pts_us: i64,
    key: bool,
    /// Length-prefixed NAL units (as Matroska carries H.264).
    data: Vec<u8>,
    came: Instant,
}

/// Puts pictures and sound in one time order (sans-IO).
pub(crate) struct Interleaver {
    fps: i64,
    size: (u32, u32),
    ticks: i64,
    /// The stream header, once the first picture gave its parameter sets.
    header: Option<Vec<u8>>,
    pictures: VecDeque<Picture>,
    /// Samples not yet written; they begin at `written`.
    pending: Vec<u8>,
    /// Samples written so far (the sound track's end).
    written: i64,
    /// The end of the last picture written, µs.
    shown_us: i64,
    pub(crate) sound_open: bool,
    pub(crate) video_open: bool,
    /// Gave up (no parameter sets): nothing more is written.
    failed: bool,
}

fn us_of(samples: i64) -> i64 {
    samples * 1_000_000 / RATE
}

fn samples_of(us: i64) -> i64 {
    (us * RATE + 999_999).div_euclid(1_000_000)
}

impl Interleaver {
    pub(crate) fn new(fps: u32, width: u32, height: u32) -> Self {
        Self {
            fps: i64::from(fps.max(1)),
            size: (width, height),
            ticks: 0,
            header: None,
            pictures: VecDeque::new(),
            pending: vec![],
            written: 0,
            shown_us: 0,
            sound_open: true,
            video_open: true,
            failed: false,
        }
    }

    /// The next tick's picture; the stream's header comes out with the first.
    pub(crate) fn video(&mut self, unit: &[u8], now: Instant, out: &mut Vec<Piece>) {
        if self.failed {
            return;
        }
        let mut with_end = unit.to_vec();
        with_end.extend_from_slice(&[0, 0, 1]);
        let (nals, _) = h264::split_nals(&with_end);
        let nals: Vec<&[u8]> = nals.into_iter().filter(|n| !n.is_empty()).collect();
        if self.header.is_none() {
            match avcc(&nals) {
                Some(cfg) => {
                    let h = mkv::header_h264_pcm(self.size.0, self.size.1, &cfg);
                    out.push(Piece {
                        bytes: h.clone(),
                        key: false,
                    });
                    self.header = Some(h);
                }
                None => {
                    tracing::warn!("the live stream's first picture has no SPS/PPS; no live sound");
                    self.failed = true;
                    return;
                }
            }
        }
        let mut data = Vec::with_capacity(unit.len() + 16);
        for n in &nals {
            data.extend_from_slice(&(n.len() as u32).to_be_bytes());
            data.extend_from_slice(n);
        }
        let key = nals.iter().any(|n| h264::nal_type(n) == 5);
        self.pictures.push_back(Picture {
            pts_us: self.ticks * 1_000_000 / self.fps,
            key,
            data,
            came: now,
        });
        self.ticks += 1;
    }

    /// Samples at `at` (the recording's time); what is already written
    /// (given silence when it was late) is dropped.
    pub(crate) fn sound(&mut self, at: i64, pcm: &[u8]) {
        let end = self.written + (self.pending.len() / SAMPLE) as i64;
        let n = (pcm.len() / SAMPLE) as i64;
        if at + n <= end {
            return;
        }
        if at > end {
            // A gap (a piece lost on the way): silence in it.
            self.pending
                .resize(self.pending.len() + (at - end) as usize * SAMPLE, 0);
        }
        let skip = (end - at).max(0) as usize * SAMPLE;
        self.pending
            .extend_from_slice(&pcm[skip..n as usize * SAMPLE]);
    }

    /// Writes what may go now, in time order.
    pub(crate) fn pump(&mut self, now: Instant, out: &mut Vec<Piece>) {
        if self.header.is_none() || self.failed {
            return;
        }
        loop {
            let heard_us = us_of(self.written);
            let Some(p) = self.pictures.front() else {
                // No picture waiting: sound up to the last one's end (the
                // next picture goes as soon as it comes).
                if !self.pending.is_empty() && heard_us < self.shown_us {
                    self.write_sound(samples_of(self.shown_us) - self.written, out);
                    continue;
                }
                return;
            };
            if p.pts_us <= heard_us {
                self.write_picture(out);
            } else if !self.pending.is_empty() {
                let to = samples_of(p.pts_us);
                self.write_sound(to - self.written, out);
            } else if !self.sound_open || now.duration_since(p.came) >= WAIT {
                // The sound is late or gone: silence under this picture.
                let to = samples_of(p.pts_us);
                while self.written < to {
                    let n = (to - self.written).min(BLOCK);
                    self.block(&vec![0u8; n as usize * SAMPLE], out);
                }
                self.write_picture(out);
            } else {
                return;
            }
        }
    }

    /// Whether everything was written (the pictures ended and the sound
    /// reached their end, or stopped).
    pub(crate) fn done(&self) -> bool {
        self.failed
            || (!self.video_open
                && self.pictures.is_empty()
                && (self.pending.is_empty() || us_of(self.written) >= self.shown_us))
    }

    fn write_picture(&mut self, out: &mut Vec<Piece>) {
        if let Some(p) = self.pictures.pop_front() {
            let mut bytes = mkv::block_prefix_key(1, p.pts_us, p.data.len(), p.key);
            bytes.extend_from_slice(&p.data);
            out.push(Piece { bytes, key: p.key });
            self.shown_us = p.pts_us + 1_000_000 / self.fps;
        }
    }

    /// Writes up to `max` pending samples, a block at a time.
    fn write_sound(&mut self, max: i64, out: &mut Vec<Piece>) {
        let mut left = max.max(1);
        while left > 0 && !self.pending.is_empty() {
            let n = left.min(BLOCK).min((self.pending.len() / SAMPLE) as i64);
            let bytes: Vec<u8> = self.pending.drain(..n as usize * SAMPLE).collect();
            self.block(&bytes, out);
            left -= n;
        }
    }

    fn block(&mut self, pcm: &[u8], out: &mut Vec<Piece>) {
        let mut bytes = mkv::block_prefix(2, us_of(self.written), pcm.len());
        bytes.extend_from_slice(pcm);
        out.push(Piece { bytes, key: false });
        self.written += (pcm.len() / SAMPLE) as i64;
    }
}

/// An `AVCDecoderConfigurationRecord` from the first picture's SPS and
/// PPSs (four-byte NAL lengths), or `None` without them.
pub(crate) fn avcc(nals: &[&[u8]]) -> Option<Vec<u8>> {
    let sps: Vec<&[u8]> = nals
        .iter()
        .copied()
        .filter(|n| h264::nal_type(n) == 7 && n.len() >= 4)
        .collect();
    let pps: Vec<&[u8]> = nals
        .iter()
        .copied()
        .filter(|n| h264::nal_type(n) == 8)
        .collect();
    let first = sps.first()?;
    if pps.is_empty() || sps.len() > 31 || pps.len() > 255 {
        return None;
    }
    let mut c = vec![
        1,
        first[1],
        first[2],
        first[3],
        0xFF,
        0xE0 | sps.len() as u8,
    ];
    for s in &sps {
        c.extend_from_slice(&(s.len() as u16).to_be_bytes());
        c.extend_from_slice(s);
    }
    c.push(pps.len() as u8);
    for p in &pps {
        c.extend_from_slice(&(p.len() as u16).to_be_bytes());
        c.extend_from_slice(p);
    }
    Some(c)
}

/// Runs the muxer until the pictures ended and the sound reached their
/// end (or [`WAIT`] passed): each piece to `remux` (the HLS remuxer's
/// stdin; dropped if it fails) and to `tap` (the stream pushes), which it
/// closes at the end.
pub(crate) fn run(
    mut il: Interleaver,
    rx: Receiver<MuxIn>,
    mut remux: Option<Box<dyn Write + Send>>,
    tap: Option<Arc<Tap>>,
) {
    let mut out = Vec::new();
    let mut ended_at: Option<Instant> = None;
    loop {
        let msg = rx.recv_timeout(Duration::from_millis(200));
        let now = Instant::now();
        match msg {
            Ok(MuxIn::Video(u)) => il.video(&u, now, &mut out),
            Ok(MuxIn::Sound { at, pcm }) => il.sound(at, &pcm),
            Ok(MuxIn::SoundEnd) => il.sound_open = false,
            Ok(MuxIn::VideoEnd) | Err(RecvTimeoutError::Disconnected) => {
                il.video_open = false;
                ended_at.get_or_insert(now);
                if msg.is_err() {
                    il.sound_open = false;
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
        }
        if ended_at.is_some_and(|t| now.duration_since(t) >= WAIT) {
            il.sound_open = false;
        }
        il.pump(now, &mut out);
        for piece in out.drain(..) {
            if let Some(w) = remux.as_mut()
                && w.write_all(&piece.bytes).is_err()
            {
                tracing::warn!(
                    "the HLS remuxer stopped taking the stream; HLS is made after the recording"
                );
                remux = None;
            }
            if let Some(t) = &tap {
                if piece.key || t.header().is_some() {
                    t.publish(piece.bytes, piece.key);
                } else {
                    t.set_header(piece.bytes);
                }
            }
        }
        if il.done() {
            break;
        }
    }
    if let Some(mut w) = remux {
        let _ = w.flush();
    }
    if let Some(t) = tap {
        t.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key picture with its parameter sets (the bytes only need the
    /// right NAL types), or a P picture.
    fn unit(key: bool) -> Vec<u8> {
        let mut u = vec![];
        if key {
            u.extend_from_slice(&[0, 0, 0, 1, 0x67, 0x64, 0x00, 0x1F, 0xAC]);
            u.extend_from_slice(&[0, 0, 0, 1, 0x68, 0xEE, 0x3C, 0x80]);
            u.extend_from_slice(&[0, 0, 0, 1, 0x65, 0x88, 0x84]);
        } else {
            u.extend_from_slice(&[0, 0, 0, 1, 0x41, 0x9A, 0x02]);
        }
        u
    }

    /// Which track each written block is of, with its time (µs), read
    /// back from the cluster bytes `mkv::block_prefix` writes.
    fn order(pieces: &[Piece]) -> Vec<(u8, i64)> {
        pieces
            .iter()
            .filter(|p| p.bytes.starts_with(&[0x1F, 0x43, 0xB6, 0x75]))
            .map(|p| {
                // Cluster id (4), size (8), timestamp element id (1) + size (8).
                let len = (p.bytes[12 + 1 + 7] & 0x0F) as usize;
                let len = if len == 0 { 8 } else { len };
                let ts_at = 12 + 1 + 8;
                let mut ts = 0i64;
                for b in &p.bytes[ts_at..ts_at + len.min(8)] {
                    ts = ts << 8 | i64::from(*b);
                }
                let block = ts_at + len.min(8) + 1 + 8;
                (p.bytes[block] & 0x0F, ts)
            })
            .collect()
    }

    #[test]
    fn pictures_wait_for_the_sound_under_them() {
        let t0 = Instant::now();
        let mut il = Interleaver::new(10, 64, 36);
        let mut out = vec![];
        il.video(&unit(true), t0, &mut out);
        il.video(&unit(false), t0, &mut out);
        il.pump(t0, &mut out);
        // The header, then the first picture (at 0, where the sound is);
        // the second (at 100 ms) waits for the sound to reach it.
        assert_eq!(out.len(), 2);
        assert!(out[0].bytes.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]));
        assert_eq!(order(&out[1..]), [(1, 0)]);
        assert!(out[1].key);
        out.clear();
        // 250 ms of sound: the second picture goes, in time order, and
        // the sound up to its end (200 ms), no further.
        il.sound(0, &vec![1u8; 12_000 * SAMPLE]);
        il.pump(t0, &mut out);
        let o = order(&out);
        assert!(
            o.contains(&(1, 100_000)) && o.contains(&(2, 180_000)),
            "{o:?}"
        );
        assert!(
            !o.iter().any(|x| x.1 >= 200_000),
            "not past the last picture: {o:?}"
        );
        let times: Vec<i64> = o.iter().map(|x| x.1).collect();
        assert!(
            times.windows(2).all(|w| w[0] <= w[1]),
            "in time order: {o:?}"
        );
        assert!(!out.iter().any(|p| p.key));
        // The picture at 200 ms goes at once; the one at 300 ms waits for
        // the sound, and gets silence after the wait: the sound that
        // comes after for its time is dropped.
        out.clear();
        il.video(&unit(false), t0, &mut out);
        il.video(&unit(false), t0, &mut out);
        il.pump(t0, &mut out);
        let o = order(&out);
        assert!(
            o.contains(&(1, 200_000)) && !o.contains(&(1, 300_000)),
            "{o:?}"
        );
        out.clear();
        il.pump(t0 + WAIT, &mut out);
        let o = order(&out);
        assert_eq!(o.last(), Some(&(1, 300_000)), "{o:?}");
        assert_eq!(il.written, samples_of(300_000));
        let before = il.written;
        il.sound(7_200, &vec![1u8; 7_200 * SAMPLE]);
        assert_eq!(il.written + (il.pending.len() / SAMPLE) as i64, before);
        // The pictures end: the sound goes up to their end, no further.
        il.video_open = false;
        il.sound(before, &vec![1u8; 48_000 * SAMPLE]);
        out.clear();
        il.pump(t0 + WAIT, &mut out);
        assert!(il.done());
        assert_eq!(us_of(il.written), 400_000);
    }

    #[test]
    fn the_decoder_configuration_names_every_parameter_set() {
        let u = unit(true);
        let mut with_end = u.clone();
        with_end.extend_from_slice(&[0, 0, 1]);
        let (nals, _) = h264::split_nals(&with_end);
        let c = avcc(&nals).unwrap();
        assert_eq!(&c[..6], &[1, 0x64, 0x00, 0x1F, 0xFF, 0xE1]);
        assert_eq!(&c[6..8], &[0, 5]);
        assert_eq!(c[13], 1, "one PPS");
        assert!(avcc(&nals[2..]).is_none(), "no SPS, no configuration");
    }
}
