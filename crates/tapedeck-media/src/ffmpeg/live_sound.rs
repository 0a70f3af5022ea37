//! A web page's sound while it records, for the live outputs. The web
//! recorder reads the browser's tab recording as it grows (fragmented MP4
//! with Opus, a fragment every few seconds) and hands it over through a
//! [`SoundHandle`] with where the video starts and where it paused; an
//! ffmpeg decodes it to 48 kHz stereo samples, and the [`Timeline`] puts
//! each sample at its place in the recording's time (the lead before the
//! first frame and the paused spans cut out, as the file's sound is cut
//! after stop), for the live muxer (`live_mux`) to lay under the pictures.

use std::io::{Read, Write};
use std::process::Stdio;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};

use super::live_mux::MuxIn;
use super::{FfmpegError, Tools};
use crate::process::{self, Running};

/// Samples a second.
pub(crate) const RATE: i64 = 48_000;

/// What the web recorder tells the live outputs about the page's sound
/// (times are seconds of the tab recording).
#[derive(Debug, Clone, PartialEq)]
pub enum SoundNews {
    /// The video's first frame is this far into the tab recording.
    Lead(f64),
    /// More of the tab recording, as the browser wrote it.
    Bytes(Vec<u8>),
    /// The recording paused here.
    Paused(f64),
    /// The recording resumed here.
    Resumed(f64),
}

/// News a handle holds for the muxer before it is dropped (about a
/// minute of fragments read four times a second).
const NEWS_QUEUE: usize = 256;

/// The line from the web recorder to the live encode's muxer: the same
/// handle is given to both. Compared by identity.
#[derive(Clone)]
pub struct SoundHandle(Arc<Line>);

struct Line {
    tx: Mutex<Option<SyncSender<SoundNews>>>,
    rx: Mutex<Option<Receiver<SoundNews>>>,
}

impl Default for SoundHandle {
    fn default() -> Self {
        let (tx, rx) = sync_channel(NEWS_QUEUE);
        Self(Arc::new(Line {
            tx: Mutex::new(Some(tx)),
            rx: Mutex::new(Some(rx)),
        }))
    }
}

impl PartialEq for SoundHandle {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for SoundHandle {}

impl std::fmt::Debug for SoundHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SoundHandle")
    }
}

impl SoundHandle {
    /// Hands `news` over without waiting; false when the line is full or
    /// closed (the live outputs then miss it; the file does not).
    pub fn send(&self, news: SoundNews) -> bool {
        let tx = self.0.tx.lock().unwrap_or_else(|e| e.into_inner());
        match tx.as_ref().map(|t| t.try_send(news)) {
            Some(Ok(())) => true,
            Some(Err(TrySendError::Full(_))) => {
                tracing::warn!("the live sound fell behind; a piece of it is missing live");
                false
            }
            _ => false,
        }
    }

    /// No more sound (the recording ended, or the browser records none):
    /// the live outputs stop waiting for it.
    pub fn close(&self) {
        self.0.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    fn take_receiver(&self) -> Option<Receiver<SoundNews>> {
        self.0.rx.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Where the tab recording's samples go in the recording's time: the
/// lead before the first frame and the paused spans are cut (sans-IO).
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Timeline {
    /// Samples before the first frame.
    lead: i64,
    /// Paused spans in samples of the tab recording; the last may be open.
    cuts: Vec<(i64, Option<i64>)>,
}

/// Seconds as a sample count.
fn samples(s: f64) -> i64 {
    (s.max(0.0) * RATE as f64).round() as i64
}

impl Timeline {
    pub(crate) fn hear(&mut self, news: &SoundNews) {
        match *news {
            SoundNews::Lead(s) => self.lead = samples(s),
            SoundNews::Paused(s) => self.cuts.push((samples(s), None)),
            SoundNews::Resumed(s) => {
                if let Some(last) = self.cuts.last_mut()
                    && last.1.is_none()
                {
                    last.1 = Some(samples(s).max(last.0));
                }
            }
            SoundNews::Bytes(_) => {}
        }
    }

    /// The pieces of `n` samples from sample `at` of the tab recording the
    /// recording keeps: `(offset in the chunk, length, place in the
    /// recording's time)`, in order.
    pub(crate) fn kept(&self, at: i64, n: i64) -> Vec<(i64, i64, i64)> {
        // The spans cut, in order: the lead, then each pause.
        let mut holes = vec![(i64::MIN, self.lead)];
        holes.extend(self.cuts.iter().map(|&(a, b)| (a, b.unwrap_or(i64::MAX))));
        let mut out = vec![];
        let (mut pos, end) = (at, at + n);
        for (a, b) in holes {
            if pos >= end {
                break;
            }
            if a > pos {
                let stop = a.min(end);
                out.push((pos - at, stop - pos, self.place(pos)));
                pos = stop;
            }
            pos = pos.max(b.min(end));
        }
        if pos < end {
            out.push((pos - at, end - pos, self.place(pos)));
        }
        out
    }

    /// The recording's time (samples) of kept sample `p`: less the lead
    /// and every pause that ended before it.
    fn place(&self, p: i64) -> i64 {
        let paused: i64 = self
            .cuts
            .iter()
            .filter_map(|&(a, b)| b.filter(|&b| b <= p).map(|b| b - a))
            .sum();
        p - self.lead - paused
    }
}

/// Decodes the news' bytes and hands the kept samples to the muxer, as
/// `MuxIn::Sound` (then `MuxIn::SoundEnd`), from threads of their own.
/// Without a line to read (taken already), the muxer is told at once.
pub(crate) fn start_decoder(
    tools: &Tools,
    handle: &SoundHandle,
    mux: SyncSender<MuxIn>,
) -> Result<Option<Running>, FfmpegError> {
    let Some(news) = handle.take_receiver() else {
        let _ = mux.send(MuxIn::SoundEnd);
        return Ok(None);
    };
    let mut cmd = process::command(&tools.ffmpeg);
    cmd.args(["-hide_banner", "-loglevel", "error", "-nostdin"])
        .args(["-probesize", "32", "-analyzeduration", "0"])
        .args(["-f", "mp4", "-i", "pipe:0", "-map", "0:a:0", "-vn"])
        .args(["-f", "s16le", "-ar", "48000", "-ac", "2", "pipe:1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match process::spawn("ffmpeg", &mut cmd) {
        Ok(c) => c,
        Err(e) => {
            let _ = mux.send(MuxIn::SoundEnd);
            return Err(e);
        }
    };
    let (Some(mut stdin), Some(mut stdout)) =
        (child.child().stdin.take(), child.child().stdout.take())
    else {
        let _ = mux.send(MuxIn::SoundEnd);
        return Err(process::io_err("ffmpeg", "no sound decoder pipes"));
    };
    let timeline: Arc<Mutex<Timeline>> = Arc::default();
    let heard = timeline.clone();
    std::thread::spawn(move || {
        // News first reach the timeline, bytes the decoder: a sample is
        // decoded only after the pause that cuts it was heard.
        let mut open = true;
        for n in news {
            heard.lock().unwrap_or_else(|e| e.into_inner()).hear(&n);
            if let (SoundNews::Bytes(b), true) = (&n, open) {
                open = stdin.write_all(b).is_ok();
            }
        }
    });
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 3840];
        let mut at = 0i64;
        let mut carry = 0usize;
        loop {
            let n = match stdout.read(&mut buf[carry..]) {
                Ok(0) | Err(_) => break,
                Ok(n) => n + carry,
            };
            // Whole stereo samples only; the rest waits for the next read.
            let whole = n / 4 * 4;
            let count = (whole / 4) as i64;
            let pieces = timeline
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .kept(at, count);
            for (off, len, place) in pieces {
                let (a, b) = (off as usize * 4, (off + len) as usize * 4);
                let piece = MuxIn::Sound {
                    at: place,
                    pcm: buf[a..b].to_vec(),
                };
                if mux.send(piece).is_err() {
                    return;
                }
            }
            at += count;
            buf.copy_within(whole..n, 0);
            carry = n - whole;
        }
        let _ = mux.send(MuxIn::SoundEnd);
    });
    Ok(Some(child))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lead_and_the_pauses_are_cut_and_the_rest_follows_on() {
        let mut t = Timeline::default();
        t.hear(&SoundNews::Lead(0.5));
        // Before the first frame: nothing kept.
        assert_eq!(t.kept(0, 24_000), vec![]);
        // Across the first frame: from it on, at 0.
        assert_eq!(t.kept(20_000, 8_000), vec![(4_000, 4_000, 0)]);
        // Paused from 1.5 s: open, so nothing after it is kept yet.
        t.hear(&SoundNews::Paused(1.5));
        assert_eq!(t.kept(70_000, 4_000), vec![(0, 2_000, 46_000)]);
        assert_eq!(t.kept(80_000, 1_000), vec![]);
        // Resumed at 2.5 s: a second cut; what follows goes on from 1 s.
        t.hear(&SoundNews::Resumed(2.5));
        assert_eq!(t.kept(118_000, 4_000), vec![(2_000, 2_000, 48_000)]);
        assert_eq!(t.kept(150_000, 10), vec![(0, 10, 78_000)]);
        // A chunk across both cuts keeps two pieces, end to end in time.
        assert_eq!(
            t.kept(0, 150_000),
            vec![(24_000, 48_000, 0), (120_000, 30_000, 48_000)]
        );
    }

    #[test]
    fn a_closed_line_takes_nothing_more() {
        let h = SoundHandle::default();
        assert!(h.send(SoundNews::Lead(0.1)));
        h.close();
        assert!(!h.send(SoundNews::Lead(0.2)));
        let rx = h.take_receiver().unwrap();
        assert_eq!(rx.recv().ok(), Some(SoundNews::Lead(0.1)));
        assert!(rx.recv().is_err());
        assert!(h.take_receiver().is_none());
    }
}
