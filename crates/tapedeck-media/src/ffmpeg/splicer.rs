//! The skip-held splicer: reads x264's Annex B stream, writes a skip
//! picture for every output tick that has no encoded picture, renumbers
//! `frame_num`, and writes it to the stream file the muxer wraps at the end
//! (and, with HLS, to the remuxer that segments it while recording).

use std::io::{Read, Write};

/// What the encoder tells the splicer: a picture's output tick, or the end.
pub(super) enum TickMsg {
    /// The next encoded picture belongs on this tick.
    Frame(i64),
    /// The video ends before this tick.
    End(i64),
}

/// Reads x264's Annex B stream, writes a skip picture for every output tick
/// that has no encoded picture, renumbers `frame_num`, and passes it on.
pub(super) fn splice(
    mut h264: impl Read,
    out: impl Write,
    (live, mux): (Option<Box<dyn Write + Send>>, Option<MuxLine>),
    tap: Option<std::sync::Arc<super::tap::Tap>>,
    ticks: std::sync::mpsc::Receiver<TickMsg>,
    written: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> Result<(), String> {
    let mut s = Splicer {
        out,
        live,
        mux,
        tap,
        unit: None,
        ticks,
        written,
        sps: None,
        au: vec![],
        au_has_slice: false,
        frame_num: 0,
        last_tick: -1,
        end: None,
    };
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
    let mut chunk = vec![0u8; 256 * 1024];
    loop {
        let n = h264
            .read(&mut chunk)
            .map_err(|e| format!("encoder output: {e}"))?;
        if n == 0 {
            // End of stream: a start code after the rest makes it the last NAL.
            buf.extend_from_slice(&[0, 0, 1]);
        } else {
            buf.extend_from_slice(&chunk[..n]);
        }
        let (nals, tail) = crate::h264::split_nals(&buf);
        for nal in nals.into_iter().filter(|n| !n.is_empty()) {
            s.push(nal)?;
        }
        buf.drain(..tail);
        if n == 0 {
            break;
        }
    }
    let mux = s.mux.clone();
    let r = s.write_tail();
    if let Some(m) = mux {
        video_ended(&m);
    }
    r
}

/// The live muxer's queue (pictures with the page's sound).
pub(super) type MuxLine = std::sync::mpsc::SyncSender<super::live_mux::MuxIn>;

/// Tells the live muxer the pictures ended; if its queue stays full for
/// two seconds it learns it when the sound ends too.
fn video_ended(m: &MuxLine) {
    for _ in 0..20 {
        match m.try_send(super::live_mux::MuxIn::VideoEnd) {
            Err(std::sync::mpsc::TrySendError::Full(_)) => {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            _ => return,
        }
    }
}

/// State of [`splice`]: the access unit being gathered and the numbering.
struct Splicer<W: Write> {
    out: W,
    /// The HLS remuxer's input: each picture as it is written. Dropped if
    /// it fails (the file goes on; HLS is made from it after).
    live: Option<Box<dyn Write + Send>>,
    /// The live muxer, handed each picture whole (instead of `live` and
    /// `tap`, when the page's sound goes live too). Dropped if it falls
    /// behind.
    mux: Option<MuxLine>,
    /// Streams' subscribers, handed each picture whole.
    tap: Option<std::sync::Arc<super::tap::Tap>>,
    /// The picture being gathered for them, while anyone listens.
    unit: Option<Vec<u8>>,
    /// Bytes passed on to the muxer.
    written: std::sync::Arc<std::sync::atomic::AtomicU64>,
    ticks: std::sync::mpsc::Receiver<TickMsg>,
    sps: Option<crate::h264::Sps>,
    au: Vec<Vec<u8>>,
    au_has_slice: bool,
    frame_num: u32,
    last_tick: i64,
    end: Option<i64>,
}

impl<W: Write> Splicer<W> {
    /// Begins gathering a picture for the tap, if anyone listens.
    fn begin_unit(&mut self) {
        let wanted = self.mux.is_some() || self.tap.as_ref().is_some_and(|t| t.wanted());
        self.unit = wanted.then(|| Vec::with_capacity(64 * 1024));
    }

    /// Hands the gathered picture to the live muxer or the tap.
    fn end_unit(&mut self, key: bool) {
        let Some(unit) = self.unit.take() else {
            return;
        };
        if let Some(m) = self.mux.as_ref() {
            if m.try_send(super::live_mux::MuxIn::Video(unit)).is_err() {
                tracing::warn!("the live muxer fell behind; the live outputs stop here");
                self.mux = None;
            }
        } else if let Some(tap) = self.tap.as_ref() {
            tap.publish(unit, key);
        }
    }

    fn write(&mut self, nal: &[u8]) -> Result<(), String> {
        if let Some(u) = self.unit.as_mut() {
            u.extend_from_slice(&[0, 0, 0, 1]);
            u.extend_from_slice(nal);
        }
        self.written
            .fetch_add(4 + nal.len() as u64, std::sync::atomic::Ordering::Relaxed);
        if let Some(live) = self.live.as_mut()
            && live
                .write_all(&[0, 0, 0, 1])
                .and_then(|_| live.write_all(nal))
                .is_err()
        {
            tracing::warn!(
                "the HLS remuxer stopped taking the stream; HLS is made after the recording"
            );
            self.live = None;
        }
        self.out
            .write_all(&[0, 0, 0, 1])
            .and_then(|_| self.out.write_all(nal))
            .map_err(|e| format!("stream file: {e}"))
    }

    fn sps(&self) -> Result<crate::h264::Sps, String> {
        self.sps
            .ok_or_else(|| "no SPS before the first picture".to_string())
    }

    fn next_frame_num(&mut self, sps: &crate::h264::Sps) {
        self.frame_num = (self.frame_num + 1) % (1 << sps.log2_max_frame_num);
    }

    /// Gathers NALs into access units; a new picture or header flushes the previous one.
    fn push(&mut self, nal: &[u8]) -> Result<(), String> {
        let vcl = matches!(crate::h264::nal_type(nal), 1 | 5);
        if self.au_has_slice && (!vcl || crate::h264::starts_picture(nal)) {
            self.flush_au()?;
        }
        self.au_has_slice |= vcl;
        self.au.push(nal.to_vec());
        Ok(())
    }

    /// Skip pictures for every tick before `until`.
    fn fill(&mut self, until: i64) -> Result<(), String> {
        if self.last_tick < 0 {
            return Ok(());
        }
        let sps = self.sps()?;
        while self.last_tick + 1 < until {
            self.begin_unit();
            self.write(&crate::h264::skip_slice(&sps, self.frame_num))?;
            self.end_unit(false);
            self.next_frame_num(&sps);
            self.last_tick += 1;
        }
        self.flush_live();
        Ok(())
    }

    /// Writes the gathered access unit at its tick, after the skips before it.
    fn flush_au(&mut self) -> Result<(), String> {
        use crate::h264;
        if self.au.is_empty() {
            return Ok(());
        }
        let tick = loop {
            match self.ticks.recv() {
                Ok(TickMsg::Frame(t)) => break t,
                Ok(TickMsg::End(t)) => self.end = Some(t),
                Err(_) => return Err("encoder output has more pictures than frames sent".into()),
            }
        };
        self.fill(tick)?;
        let key = self.au.iter().any(|n| h264::nal_type(n) == 5);
        if key {
            self.frame_num = 0;
        }
        self.begin_unit();
        let mut is_ref = false;
        for nal in std::mem::take(&mut self.au) {
            match h264::nal_type(&nal) {
                7 => {
                    self.sps = Some(h264::parse_sps(&nal).map_err(|e| e.to_string())?);
                    self.write(&nal)?;
                }
                8 => {
                    self.write(&nal)?;
                    let pps = h264::skip_pps(&self.sps()?);
                    self.write(&pps)?;
                }
                1 | 5 => {
                    is_ref |= nal[0] & 0x60 != 0;
                    let renumbered = h264::set_frame_num(&nal, &self.sps()?, self.frame_num)
                        .map_err(|e| e.to_string())?;
                    self.write(&renumbered)?;
                }
                _ => self.write(&nal)?,
            }
        }
        if is_ref {
            let sps = self.sps()?;
            self.next_frame_num(&sps);
        }
        self.end_unit(key);
        self.au_has_slice = false;
        self.last_tick = tick;
        self.flush_live();
        Ok(())
    }

    /// Passes what the remuxer was given on at once (live latency).
    fn flush_live(&mut self) {
        if let Some(live) = self.live.as_mut()
            && live.flush().is_err()
        {
            self.live = None;
        }
    }

    /// Flushes the last picture and fills the held ticks up to the end.
    fn write_tail(mut self) -> Result<(), String> {
        self.flush_au()?;
        let end = match self.end {
            Some(e) => e,
            None => match self.ticks.recv() {
                Ok(TickMsg::End(e)) => e,
                Ok(TickMsg::Frame(_)) => {
                    return Err("frames sent that the encoder did not output".into());
                }
                Err(_) => return Err("encoder stopped before the end".into()),
            },
        };
        self.fill(end)?;
        if let Some(tap) = &self.tap {
            tap.close();
        }
        self.out.flush().map_err(|e| format!("stream file: {e}"))
    }
}
