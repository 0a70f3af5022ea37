//! The web source: a page played in headless Chromium, frame by frame.
//!
//! - [`cdp`]: the DevTools protocol client (pipe transport).
//! - [`browser`]: one browser process per recording, killed with it.
//! - [`recorder`]: the frame loop: virtual time and begin-frame control
//!   (deterministic) or wall-clock ticks (realtime), driven by the core's
//!   script [`Player`](tapedeck_core::player::Player), every request checked
//!   against the [`NetPolicy`](tapedeck_core::netpolicy::NetPolicy).
//! - [`overlay`]: the cursor, ripples and highlights drawn over the page.
//! - [`proxy`]: the browser's only way out, checking every connection.
//! - [`Compositor`]: runs on the pipeline thread; decodes screenshots, draws
//!   the overlay and feeds the frames pipeline.
//! - [`spooled`]: how a web frame is kept in the spool (the overlay always,
//!   the page only when it changed), so recovery redraws the overlay.

mod audio;
pub mod browser;
pub mod cdp;
mod heartbeat;
mod input;
mod options;
pub mod overlay;
pub mod proxy;
pub mod recorder;
mod session;
pub mod spooled;

use image::RgbImage;
use tapedeck_core::player::Overlay;

use crate::picture::{FrameLimits, decode_rgb};
use crate::sink::encoding::{EncodingSink, FrameOutcome, PipelineError};

pub use recorder::{
    Capture, Control, FrameSink, SinkClosed, WebError, WebFrame, WebOptions, WebReport, record,
};

/// The addresses of this host's interfaces now (for the network policy:
/// a page must not reach the server's machine through one of them). A
/// host whose interfaces cannot be read gives none, and says so in the log.
pub fn own_addrs() -> Vec<std::net::IpAddr> {
    match if_addrs::get_if_addrs() {
        Ok(list) => list.into_iter().map(|i| i.ip()).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "the host's own addresses could not be read; pages are not kept from them");
            vec![]
        }
    }
}

/// How large the browser's pictures of an output of `width`x`height` can
/// be. Screenshots are at most the output size (the viewport times its
/// scale), and the frames socket's byte limit does not apply: a 4K PNG of a
/// detailed page is well over 8 MiB. The bound is an uncompressed PNG of
/// that many RGBA pixels with its framing.
fn screenshot_limits(width: u32, height: u32) -> FrameLimits {
    let (w, h) = (width + 2, height + 2);
    let raw = w as usize * h as usize * 4 + h as usize;
    FrameLimits {
        max_bytes: raw + raw / 32 + (1 << 20),
        max_width: w,
        max_height: h,
    }
}

/// Turns [`WebFrame`]s into pictures for the frames pipeline.
pub struct Compositor {
    painter: overlay::Painter,
    limits: FrameLimits,
    scale: f64,
    page: Option<RgbImage>,
    page_bytes: Vec<u8>,
    /// The page's bytes are not in the spool yet.
    page_unspooled: bool,
    last_overlay: Option<Overlay>,
    frame_us: i64,
    /// Output time of the last picture pushed.
    last_pts: Option<i64>,
    /// Output time of the first frame, while no page picture has arrived yet.
    start_pts: Option<i64>,
}

impl Compositor {
    /// A compositor for frames at `scale` device pixels per CSS pixel and
    /// `fps` frames per second, for an output of `width`x`height`.
    pub fn new(scale: f64, fps: u32, width: u32, height: u32) -> Self {
        Self {
            painter: overlay::Painter::new(scale),
            limits: screenshot_limits(width, height),
            scale,
            page: None,
            page_bytes: Vec::new(),
            page_unspooled: false,
            last_overlay: None,
            frame_us: 1_000_000 / i64::from(fps.max(1)),
            last_pts: None,
            start_pts: None,
        }
    }

    /// Handles one web frame. A frame where neither the page nor the overlay
    /// changed is not pushed: the timeline holds the previous picture.
    ///
    /// The video always spans every frame the recorder produced:
    /// - the first page picture is shown from the first frame's time, even if
    ///   that frame came without one (the browser had nothing drawn yet);
    /// - before the final (`force`) frame, the picture on screen is pushed
    ///   again one frame earlier if it was not pushed there, so frames skipped
    ///   or dropped just before the end cannot stretch the last interval.
    pub fn frame(
        &mut self,
        pipeline: &mut EncodingSink,
        f: WebFrame,
    ) -> Result<Option<FrameOutcome>, PipelineError> {
        if f.force
            && let (Some(page), Some(last), Some(overlay)) =
                (&self.page, self.last_pts, &self.last_overlay)
        {
            let before = f.pts_us - self.frame_us;
            if before > last {
                let mut img = page.clone();
                self.painter.paint(&mut img, overlay);
                let record = spooled::encode(
                    self.scale,
                    overlay,
                    self.page_unspooled.then_some(self.page_bytes.as_slice()),
                );
                if pipeline.picture(img, &record, before)? == FrameOutcome::Accepted {
                    self.page_unspooled = false;
                }
                self.last_pts = Some(before);
            }
        }
        let page_changed = f.shot.is_some();
        if let Some(shot) = f.shot {
            match decode_rgb(&shot, &self.limits) {
                Ok(img) => {
                    self.page = Some(img);
                    self.page_bytes = shot;
                    self.page_unspooled = true;
                }
                // The browser's own picture: not a bad input to count and
                // skip, a frame the video would lack.
                Err(e) => {
                    return Err(PipelineError::Capture(format!(
                        "the page's picture at {:.3} s could not be read: {e}",
                        f.pts_us as f64 / 1e6
                    )));
                }
            }
        }
        let overlay_changed = self.last_overlay.as_ref() != Some(&f.overlay);
        if !(page_changed || overlay_changed || f.force) {
            return Ok(None);
        }
        let Some(page) = &self.page else {
            self.start_pts.get_or_insert(f.pts_us);
            return Ok(None);
        };
        let pts = match self.last_pts {
            None => self.start_pts.take().unwrap_or(f.pts_us).min(f.pts_us),
            Some(_) => f.pts_us,
        };
        let mut img = page.clone();
        self.painter.paint(&mut img, &f.overlay);
        let record = spooled::encode(
            self.scale,
            &f.overlay,
            self.page_unspooled.then_some(self.page_bytes.as_slice()),
        );
        self.last_overlay = Some(f.overlay);
        self.last_pts = Some(pts);
        let outcome = pipeline.picture(img, &record, pts)?;
        // Only an accepted frame reached the spool.
        if outcome == FrameOutcome::Accepted {
            self.page_unspooled = false;
        }
        Ok(Some(outcome))
    }
}
