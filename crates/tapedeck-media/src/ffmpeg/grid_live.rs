//! A call's grid composed while the call runs, for its live outputs (HLS,
//! pictures, streams): the same cells as the grid made after stop
//! ([`super::grid::cells`]), the names drawn by the same `drawtext`, the
//! one speaking framed in the same green.
//!
//! Why not ffmpeg's own overlay graph, as after stop: a live filter graph
//! waits for a picture on every input, so one camera switched off would
//! hold the whole grid. Here each video track file is decoded as it grows
//! by an ffmpeg of its own (`-follow 1`: the file is the one the recording
//! writes, so the grid costs no second copy of the media) into raw
//! pictures at its cell's size; the latest picture of each is kept, and a
//! thread of our own puts them together at the recording's rate and feeds
//! the live encoder ([`super::Encoder`], which writes the HLS segments,
//! the pictures and the streams' tap). A camera that sent nothing for
//! [`STALE`] is black, as after stop.
//!
//! The sound is not in the live grid (the encoder takes pictures only);
//! the grid made after stop has it, and the VOD is cut from that.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tapedeck_core::recording::TrackFile;

use super::grid::{self, Cell};
use super::{EncodeSpec, Encoder, FfmpegError, Tools};
use crate::process::{self, Running};

/// A camera whose last picture is older than this is drawn black (its
/// participant left or switched it off).
pub const STALE: Duration = Duration::from_secs(2);

/// Most video tracks decoded at once (each is an ffmpeg): past it, the
/// cells of later ones stay black in the live grid (the grid after stop
/// has them all).
pub const MAX_DECODERS: usize = 16;

/// An I420 picture.
#[derive(Debug, Clone, PartialEq)]
pub struct Picture {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

impl Picture {
    /// Black, `width` × `height` (even).
    pub fn black(width: u32, height: u32) -> Self {
        let n = width as usize * height as usize;
        let mut data = vec![16u8; n + n / 2];
        data[n..].fill(128);
        Self {
            width,
            height,
            data,
        }
    }

    fn planes(&self) -> [(usize, usize, usize); 3] {
        let (w, h) = (self.width as usize, self.height as usize);
        let n = w * h;
        [(0, w, h), (n, w / 2, h / 2), (n + n / 4, w / 2, h / 2)]
    }

    /// Fills `rect` (even corners) with black.
    pub fn clear(&mut self, rect: (u32, u32, u32, u32)) {
        let (x, y, w, h) = clip(self, rect);
        for (p, (off, pw, _)) in self.planes().into_iter().enumerate() {
            let s = if p == 0 { 1 } else { 2 };
            let v = if p == 0 { 16 } else { 128 };
            for row in y / s..(y + h) / s {
                let at = off + row * pw + x / s;
                self.data[at..at + w / s].fill(v);
            }
        }
    }

    /// Draws `pic` into `rect`, scaled to fit it whole (nearest picture
    /// element), centred; the rest of `rect` is left as it was.
    pub fn draw(&mut self, rect: (u32, u32, u32, u32), pic: &Picture) {
        if pic.width == 0 || pic.height == 0 || rect.2 == 0 || rect.3 == 0 {
            return;
        }
        let fit = f64::min(
            f64::from(rect.2) / f64::from(pic.width),
            f64::from(rect.3) / f64::from(pic.height),
        );
        let dw = ((f64::from(pic.width) * fit) as u32) & !1;
        let dh = ((f64::from(pic.height) * fit) as u32) & !1;
        let dx = (rect.0 + (rect.2 - dw) / 2) & !1;
        let dy = (rect.1 + (rect.3 - dh) / 2) & !1;
        let (x, y, w, h) = clip(self, (dx, dy, dw, dh));
        if w == 0 || h == 0 {
            return;
        }
        let src = pic.planes();
        for (p, (off, pw, _)) in self.planes().into_iter().enumerate() {
            let s = if p == 0 { 1 } else { 2 };
            let (soff, spw, sph) = src[p];
            let (w, h) = (w / s, h / s);
            for row in 0..h {
                let sy = (row * sph / (dh as usize / s).max(1)).min(sph.saturating_sub(1));
                let at = off + (y / s + row) * pw + x / s;
                let from = soff + sy * spw;
                if spw == w {
                    self.data[at..at + w].copy_from_slice(&pic.data[from..from + w]);
                } else {
                    for col in 0..w {
                        let sx = (col * spw / (dw as usize / s).max(1)).min(spw - 1);
                        self.data[at + col] = pic.data[from + sx];
                    }
                }
            }
        }
    }

    /// A frame `t` thick around `rect` in the colour (Y, U, V).
    pub fn frame(&mut self, rect: (u32, u32, u32, u32), t: u32, yuv: (u8, u8, u8)) {
        let t = (t + 1) & !1;
        let (x, y, w, h) = rect;
        for band in [
            (x, y, w, t),
            (x, (y + h).saturating_sub(t), w, t),
            (x, y, t, h),
            ((x + w).saturating_sub(t), y, t, h),
        ] {
            let (bx, by, bw, bh) = clip(self, band);
            for (p, (off, pw, _)) in self.planes().into_iter().enumerate() {
                let s = if p == 0 { 1 } else { 2 };
                let v = [yuv.0, yuv.1, yuv.2][p];
                for row in by / s..(by + bh) / s {
                    let at = off + row * pw + bx / s;
                    self.data[at..at + bw / s].fill(v);
                }
            }
        }
    }

    /// Lays `label` over the picture where its alpha says.
    fn overlay(&mut self, label: &Label) {
        let (lw, lh) = (label.width as usize, label.height as usize);
        let n = lw * lh;
        let planes = self.planes();
        for (p, (off, pw, ph)) in planes.into_iter().enumerate() {
            let s = if p == 0 { 1 } else { 2 };
            let loff = [0, n, n + n / 4][p];
            let lpw = lw / s;
            for row in 0..lh / s {
                let (ty, ay) = (label.y as usize / s + row, row * s);
                if ty >= ph {
                    break;
                }
                for col in 0..lpw {
                    let tx = label.x as usize / s + col;
                    let a = u32::from(label.alpha[ay * lw + col * s]);
                    if a == 0 || tx >= pw {
                        continue;
                    }
                    let d = &mut self.data[off + ty * pw + tx];
                    let l = u32::from(label.yuv[loff + row * lpw + col]);
                    *d = ((u32::from(*d) * (255 - a) + l * a) / 255) as u8;
                }
            }
        }
    }
}

/// `rect` cut to the picture, corners even.
fn clip(p: &Picture, (x, y, w, h): (u32, u32, u32, u32)) -> (usize, usize, usize, usize) {
    let x = (x.min(p.width) & !1) as usize;
    let y = (y.min(p.height) & !1) as usize;
    let w = (w.min(p.width - x as u32) & !1) as usize;
    let h = (h.min(p.height - y as u32) & !1) as usize;
    (x, y, w, h)
}

/// A name drawn by ffmpeg's `drawtext` (as the grid after stop draws it),
/// with its alpha, to lay over a cell.
#[derive(Debug, Clone, Default)]
struct Label {
    x: u32,
    y: u32,
    width: u32,
    height: u32,
    /// I420 planes.
    yuv: Vec<u8>,
    /// One alpha per picture element.
    alpha: Vec<u8>,
}

/// The speaking frame's green (0x2ecc71), in BT.601 limited range.
const GREEN: (u8, u8, u8) = (142, 111, 65);

/// Draws `cell`'s name as the grid after stop does (same font, size, box
/// and place), on a transparent cell-sized picture.
fn label(tools: &Tools, dir: &Path, i: usize, cell: &Cell, size: u32) -> Result<Label, String> {
    let (x, y, w, h) = cell.rect;
    let text = dir.join(format!("live-name{i}.txt"));
    std::fs::write(&text, &cell.name).map_err(|e| e.to_string())?;
    let font = grid::font()
        .map(|f| format!("fontfile={}:", grid::escape(&f.display().to_string())))
        .unwrap_or_default();
    let draw = format!(
        "drawtext={font}textfile={}:x={}:y={}-th:fontsize={size}:fontcolor=white:\
         box=1:boxcolor=black@0.6:boxborderw={}",
        grid::escape(&text.display().to_string()),
        size / 2,
        h - size / 2,
        size / 4
    );
    let args: Vec<String> = [
        "-v",
        "error",
        "-f",
        "lavfi",
        "-i",
        &format!("color=c=black@0:s={w}x{h},format=yuva420p"),
        "-vf",
        &draw,
        "-frames:v",
        "1",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "yuva420p",
        "pipe:1",
    ]
    .map(String::from)
    .to_vec();
    let out = process::run("ffmpeg", &tools.ffmpeg, &args, Duration::from_secs(20))
        .map_err(|e| e.to_string())?;
    let n = w as usize * h as usize;
    if out.len() != n * 2 + n / 2 {
        return Err(format!("the name's picture is {} bytes", out.len()));
    }
    let whole = Label {
        x: 0,
        y: 0,
        width: w,
        height: h,
        yuv: out[..n + n / 2].to_vec(),
        alpha: out[n + n / 2..].to_vec(),
    };
    let mut l = whole.cropped();
    l.x += x;
    l.y += y;
    Ok(l)
}

impl Label {
    /// Cut to the even-cornered box around what it draws (what is laid
    /// over each picture is then a few thousand elements, not a cell).
    fn cropped(&self) -> Label {
        let (w, h) = (self.width as usize, self.height as usize);
        let (mut x0, mut y0, mut x1, mut y1) = (w, h, 0, 0);
        for (i, a) in self.alpha.iter().enumerate() {
            if *a > 0 {
                let (x, y) = (i % w, i / w);
                (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x + 1), y1.max(y + 1));
            }
        }
        if x1 <= x0 {
            return Label::default();
        }
        let (x0, y0) = (x0 & !1, y0 & !1);
        let (x1, y1) = ((x1 + 1).min(w) & !1, (y1 + 1).min(h) & !1);
        let (cw, ch) = (x1 - x0, y1 - y0);
        let n = w * h;
        let mut yuv = Vec::with_capacity(cw * ch * 3 / 2);
        for row in y0..y1 {
            yuv.extend_from_slice(&self.yuv[row * w + x0..row * w + x1]);
        }
        for off in [n, n + n / 4] {
            for row in y0 / 2..y1 / 2 {
                let at = off + row * (w / 2) + x0 / 2;
                yuv.extend_from_slice(&self.yuv[at..at + cw / 2]);
            }
        }
        let mut alpha = Vec::with_capacity(cw * ch);
        for row in y0..y1 {
            alpha.extend_from_slice(&self.alpha[row * w + x0..row * w + x1]);
        }
        Label {
            x: self.x + x0 as u32,
            y: self.y + y0 as u32,
            width: cw as u32,
            height: ch as u32,
            yuv,
            alpha,
        }
    }
}

/// The latest picture a decoder made, and when.
type Latest = Arc<Mutex<Option<(Instant, Arc<Picture>)>>>;

/// One video track file decoded as it grows.
struct Decoder {
    _child: Running,
    latest: Latest,
}

impl Decoder {
    /// Decodes `path` (growing) into `w` × `h` pictures.
    fn start(tools: &Tools, path: &Path, w: u32, h: u32) -> Result<Self, FfmpegError> {
        let mut cmd = process::command(&tools.ffmpeg);
        cmd.args(["-hide_banner", "-loglevel", "error", "-nostdin"])
            // A file being written: read on at its end, never seek (its
            // cues are not written yet); one thread, so no frame waits in
            // the decoder for the next.
            .args(["-follow", "1", "-seekable", "0", "-threads", "1"])
            .args(["-probesize", "4096", "-analyzeduration", "0", "-i"])
            .arg(path)
            .args(["-map", "0:v:0", "-an", "-fps_mode", "passthrough", "-vf"])
            .arg(format!(
                "scale={w}:{h}:force_original_aspect_ratio=decrease,\
                 pad={w}:{h}:(ow-iw)/2:(oh-ih)/2:black,format=yuv420p"
            ))
            .args(["-f", "rawvideo", "-pix_fmt", "yuv420p", "pipe:1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = process::spawn("ffmpeg", &mut cmd)?;
        let mut out = child
            .child()
            .stdout
            .take()
            .ok_or_else(|| process::io_err("ffmpeg", "no decoder stdout"))?;
        let latest: Latest = Arc::default();
        let put = latest.clone();
        let len = w as usize * h as usize * 3 / 2;
        std::thread::spawn(move || {
            loop {
                let mut data = vec![0u8; len];
                if out.read_exact(&mut data).is_err() {
                    return;
                }
                let pic = Picture {
                    width: w,
                    height: h,
                    data,
                };
                *put.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some((Instant::now(), Arc::new(pic)));
            }
        });
        Ok(Self {
            _child: child,
            latest,
        })
    }

    /// Its latest picture if it is fresh at `now`.
    fn picture(&self, now: Instant) -> Option<(Instant, Arc<Picture>)> {
        let l = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        l.as_ref()
            .filter(|(at, _)| now.saturating_duration_since(*at) < STALE)
            .cloned()
    }
}

/// What the call is now, as the recording tells it.
#[derive(Debug, Default, Clone)]
struct Call {
    /// Its track files so far (begun), and where each is.
    tracks: Vec<(TrackFile, PathBuf)>,
    /// Who is speaking now.
    speaking: Vec<String>,
    paused: bool,
    /// Bumped when `tracks` changes.
    generation: u64,
}

/// A live grid running: its thread composes and encodes.
pub struct LiveGrid {
    call: Arc<Mutex<Call>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<(), String>>>,
}

impl LiveGrid {
    /// Starts composing into the live encoder of `spec` (its `live`
    /// outputs written in `dir`, beside `dir/live-grid.*`, a file that is
    /// removed at the end).
    pub fn start(tools: &Tools, spec: &EncodeSpec, dir: &Path) -> Result<Self, FfmpegError> {
        std::fs::create_dir_all(dir).map_err(|e| FfmpegError::Io {
            program: "the live grid".into(),
            source: e,
        })?;
        let out = dir.join(format!("live-grid.{}", spec.format.extension()));
        let encoder = Encoder::spawn(tools, spec, &out)?;
        let call: Arc<Mutex<Call>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let run = Run {
            tools: tools.clone(),
            spec: spec.clone(),
            dir: dir.to_path_buf(),
            call: call.clone(),
            stop: stop.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("live-grid".into())
            .spawn(move || {
                let r = run.compose(encoder);
                let _ = std::fs::remove_file(&out);
                r
            })
            .map_err(|e| FfmpegError::Io {
                program: "the live grid".into(),
                source: e,
            })?;
        Ok(Self {
            call,
            stop,
            thread: Some(thread),
        })
    }

    /// The call's track files so far changed (one begun).
    pub fn tracks(&self, tracks: Vec<(TrackFile, PathBuf)>) {
        let mut c = self.call.lock().unwrap_or_else(|e| e.into_inner());
        c.tracks = tracks;
        c.generation += 1;
    }

    /// Who speaks now.
    pub fn speaking(&self, names: Vec<String>) {
        self.call.lock().unwrap_or_else(|e| e.into_inner()).speaking = names;
    }

    /// Paused (nothing is composed; the live timeline waits) or not.
    pub fn paused(&self, paused: bool) {
        self.call.lock().unwrap_or_else(|e| e.into_inner()).paused = paused;
    }

    /// Ends the live encode (its playlist ends) and waits for it.
    pub fn finish(mut self) -> Result<(), String> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err("the live grid's thread panicked".into()),
            None => Ok(()),
        }
    }
}

impl Drop for LiveGrid {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The composing thread's state.
struct Run {
    tools: Tools,
    spec: EncodeSpec,
    dir: PathBuf,
    call: Arc<Mutex<Call>>,
    stop: Arc<AtomicBool>,
}

/// The layout of one generation of the call: its cells, their names'
/// pictures, and the decoder of each video track (by track id).
#[derive(Default)]
struct Layout {
    generation: u64,
    cells: Vec<Cell>,
    labels: Vec<Option<Label>>,
    tracks: Vec<TrackFile>,
}

impl Run {
    fn compose(self, mut encoder: Encoder) -> Result<(), String> {
        let (w, h) = (self.spec.width, self.spec.height);
        let fps = u64::from(self.spec.fps.max(1));
        let mut canvas = Picture::black(w, h);
        let mut layout = Layout::default();
        let mut decoders: Vec<(String, Decoder)> = vec![];
        let mut failed: Vec<String> = vec![];
        let began = Instant::now();
        let mut paused_for = Duration::ZERO;
        let mut paused_at: Option<Instant> = None;
        let mut next_tick: u64 = 0;
        while !self.stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(1000 / fps / 2).max(Duration::from_millis(2)));
            let now = Instant::now();
            let call = self.call.lock().unwrap_or_else(|e| e.into_inner()).clone();
            match (call.paused, paused_at) {
                (true, None) => paused_at = Some(now),
                (false, Some(at)) => {
                    paused_for += now.saturating_duration_since(at);
                    paused_at = None;
                }
                _ => {}
            }
            if paused_at.is_some() {
                continue;
            }
            let tick = (now.saturating_duration_since(began) - paused_for).as_micros() as u64 * fps
                / 1_000_000;
            if tick < next_tick {
                continue;
            }
            next_tick = tick + 1;
            if call.generation != layout.generation {
                layout = self.layout(&call);
                for (t, path) in &call.tracks {
                    let Some(cell) = layout
                        .cells
                        .iter()
                        .find(|c| c.videos.iter().any(|&v| layout.tracks[v].id == t.id))
                    else {
                        continue;
                    };
                    if decoders.iter().any(|(id, _)| *id == t.id)
                        || failed.contains(&t.id)
                        || decoders.len() >= MAX_DECODERS
                    {
                        continue;
                    }
                    let (_, _, cw, ch) = cell.rect;
                    match Decoder::start(&self.tools, path, cw, ch) {
                        Ok(d) => decoders.push((t.id.clone(), d)),
                        Err(e) => {
                            tracing::warn!(track = %t.id, error = %e, "live grid: a track cannot be decoded");
                            failed.push(t.id.clone());
                        }
                    }
                }
            }
            canvas.clear((0, 0, w, h));
            for (i, c) in layout.cells.iter().enumerate() {
                // The freshest of the cell's cameras.
                let pic = c
                    .videos
                    .iter()
                    .filter_map(|&v| {
                        let id = &layout.tracks[v].id;
                        decoders.iter().find(|(d, _)| d == id)?.1.picture(now)
                    })
                    .max_by_key(|(at, _)| *at);
                if let Some((_, p)) = pic {
                    canvas.draw(c.rect, &p);
                }
                if call.speaking.contains(&c.name) {
                    canvas.frame(c.rect, (c.rect.3 / 60).max(3), GREEN);
                }
                if let Some(Some(l)) = layout.labels.get(i) {
                    canvas.overlay(l);
                }
            }
            let pts = (tick * 1_000_000 / fps) as i64;
            encoder
                .write_frame(pts, &canvas.data, None, false)
                .map_err(|e| e.to_string())?;
        }
        encoder
            .end_input_and_wait(Duration::from_secs(60))
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// The cells of the call now, and their names drawn.
    fn layout(&self, call: &Call) -> Layout {
        let tracks: Vec<TrackFile> = call.tracks.iter().map(|(t, _)| t.clone()).collect();
        let cells = grid::cells(&tracks, self.spec.width, self.spec.height);
        let size = grid::name_size(&cells, self.spec.height);
        let labels = cells
            .iter()
            .enumerate()
            .map(|(i, c)| match label(&self.tools, &self.dir, i, c, size) {
                Ok(l) => Some(l),
                Err(e) => {
                    tracing::warn!(error = %e, "live grid: a name cannot be drawn");
                    None
                }
            })
            .collect();
        Layout {
            generation: call.generation,
            cells,
            labels,
            tracks,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn solid(w: u32, h: u32, y: u8) -> Picture {
        let mut p = Picture::black(w, h);
        let n = (w * h) as usize;
        p.data[..n].fill(y);
        p
    }

    #[test]
    fn a_picture_is_fitted_whole_and_centred_in_its_cell() {
        let mut c = Picture::black(64, 32);
        // 16:9-ish 32x18 into a 32x32 cell at x=32: 32 wide, 18 tall, centred.
        c.draw((32, 0, 32, 32), &solid(32, 18, 200));
        let y = |x: usize, y: usize| c.data[y * 64 + x];
        assert_eq!(y(10, 16), 16, "left of the cell untouched");
        // Rows 6 to 23 (the offset made even).
        assert_eq!(y(40, 5), 16, "the bar above stays black");
        assert_eq!(y(40, 6), 200);
        assert_eq!(y(40, 23), 200);
        assert_eq!(y(40, 24), 16, "the bar below stays black");
        // Half size into a full cell: scaled up.
        let mut c = Picture::black(64, 32);
        c.draw((0, 0, 64, 32), &solid(32, 16, 90));
        assert!(c.data[..64 * 32].iter().all(|&v| v == 90));
    }

    #[test]
    fn the_speaking_frame_and_clear_stay_in_their_rect() {
        let mut c = solid(64, 32, 50);
        c.frame((0, 0, 32, 32), 4, GREEN);
        let y = |c: &Picture, x: usize, y: usize| c.data[y * 64 + x];
        assert_eq!(y(&c, 0, 0), GREEN.0);
        assert_eq!(y(&c, 31, 31), GREEN.0);
        assert_eq!(y(&c, 16, 16), 50);
        assert_eq!(y(&c, 40, 0), 50);
        c.clear((32, 0, 32, 32));
        assert_eq!(y(&c, 40, 0), 16);
        assert_eq!(y(&c, 0, 0), GREEN.0);
    }

    #[test]
    fn a_label_is_cut_to_what_it_draws() {
        let mut alpha = vec![0u8; 16 * 8];
        alpha[3 * 16 + 5] = 255;
        alpha[4 * 16 + 8] = 255;
        let mut yuv = vec![0u8; 16 * 8 * 3 / 2];
        yuv[3 * 16 + 5] = 77;
        let l = Label {
            x: 100,
            y: 50,
            width: 16,
            height: 8,
            yuv,
            alpha,
        }
        .cropped();
        assert_eq!((l.x, l.y, l.width, l.height), (104, 52, 6, 4));
        assert_eq!(l.alpha[0], 0);
        assert_eq!(l.alpha[6 + 1], 255, "(5,3) is at (1,1) of the cut");
        assert_eq!(l.yuv[6 + 1], 77);
        assert_eq!(l.yuv.len(), 6 * 4 * 3 / 2);
    }

    #[test]
    fn a_label_is_blended_by_its_alpha() {
        let mut c = solid(8, 8, 100);
        let mut yuv = vec![200u8; 64 + 32];
        yuv[64..].fill(128);
        let mut alpha = vec![0u8; 64];
        alpha[0] = 255;
        alpha[1] = 128;
        c.overlay(&Label {
            x: 0,
            y: 0,
            width: 8,
            height: 8,
            yuv,
            alpha,
        });
        assert_eq!(c.data[0], 200);
        assert_eq!(c.data[1], 150);
        assert_eq!(c.data[2], 100);
    }
}
