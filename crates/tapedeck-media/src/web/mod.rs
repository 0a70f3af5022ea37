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

pub mod browser;
pub mod cdp;
pub mod overlay;
pub mod proxy;
pub mod recorder;

use image::RgbImage;
use tapedeck_core::player::Overlay;

use crate::frames::{FrameOutcome, FramePipeline, PipelineError};
use crate::picture::{FrameLimits, decode_rgb};

pub use recorder::{Capture, Control, WebError, WebFrame, WebOptions, WebReport, record};

/// Turns [`WebFrame`]s into pictures for the frames pipeline.
pub struct Compositor {
    painter: overlay::Painter,
    limits: FrameLimits,
    page: Option<RgbImage>,
    page_bytes: Vec<u8>,
    last_overlay: Option<Overlay>,
}

impl Compositor {
    /// A compositor for frames at `scale` device pixels per CSS pixel.
    pub fn new(scale: f64, limits: FrameLimits) -> Self {
        Self {
            painter: overlay::Painter::new(scale),
            limits,
            page: None,
            page_bytes: Vec::new(),
            last_overlay: None,
        }
    }

    /// Handles one web frame. A frame where neither the page nor the overlay
    /// changed is not pushed: the timeline holds the previous picture.
    pub fn frame(
        &mut self,
        pipeline: &mut FramePipeline,
        f: WebFrame,
    ) -> Result<Option<FrameOutcome>, PipelineError> {
        let page_changed = f.shot.is_some();
        if let Some(shot) = f.shot {
            match decode_rgb(&shot, &self.limits) {
                Ok(img) => {
                    self.page = Some(img);
                    self.page_bytes = shot;
                }
                Err(e) => return Ok(Some(FrameOutcome::Invalid(e))),
            }
        }
        let overlay_changed = self.last_overlay.as_ref() != Some(&f.overlay);
        if !(page_changed || overlay_changed || f.force) {
            return Ok(None);
        }
        let Some(page) = &self.page else {
            return Ok(None);
        };
        let mut img = page.clone();
        self.painter.paint(&mut img, &f.overlay);
        self.last_overlay = Some(f.overlay);
        pipeline.picture(img, &self.page_bytes, f.pts_us).map(Some)
    }
}
