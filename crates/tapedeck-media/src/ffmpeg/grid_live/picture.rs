//! The live grid's pictures: I420 canvases, a camera's picture fitted
//! into its cell, the speaking frame, and the names drawn by ffmpeg's
//! `drawtext` exactly as the grid after stop draws them, laid over by
//! their alpha.

use std::path::Path;
use std::time::Duration;

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

use super::super::Tools;
use super::super::grid::{self, Cell};
use crate::process;

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

    /// Draws `pic` into `rect`, scaled to fit it whole, centred; the rest
    /// of `rect` is left as it was.
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
        // A decoder makes pictures at its cell's size when it started; a
        // cell resized since (someone joined or left) gets them scaled
        // (bilinear: picking every other picture element aliases).
        let resized;
        let pic = if (pic.width, pic.height) != (dw, dh) {
            match scaled(pic, dw, dh) {
                Some(p) => {
                    resized = p;
                    &resized
                }
                None => pic,
            }
        } else {
            pic
        };
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
    pub(super) fn overlay(&mut self, label: &Label) {
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

/// `pic` scaled to `w` × `h` (even), each plane bilinear.
fn scaled(pic: &Picture, w: u32, h: u32) -> Option<Picture> {
    let mut out = Picture::black(w, h);
    let mut resizer = Resizer::new();
    let opts = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    let (from, to) = (pic.planes(), out.planes());
    for ((so, sw, sh), (to_off, tw, th)) in from.into_iter().zip(to) {
        let src = ImageRef::new(
            sw as u32,
            sh as u32,
            pic.data.get(so..so + sw * sh)?,
            PixelType::U8,
        )
        .ok()?;
        let buf = out.data.get_mut(to_off..to_off + tw * th)?;
        let mut dst = Image::from_slice_u8(tw as u32, th as u32, buf, PixelType::U8).ok()?;
        resizer.resize(&src, &mut dst, &opts).ok()?;
    }
    Some(out)
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
pub(super) struct Label {
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
pub(super) const GREEN: (u8, u8, u8) = (142, 111, 65);

/// Draws `cell`'s name as the grid after stop does (same font, size, box
/// and place), on a transparent cell-sized picture.
pub(super) fn label(
    tools: &Tools,
    dir: &Path,
    i: usize,
    cell: &Cell,
    size: u32,
) -> Result<Label, String> {
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
    fn a_picture_larger_than_its_cell_is_scaled_not_decimated() {
        // Stripes one picture element wide: decimated, they would be all
        // one value; scaled, they average out.
        let mut big = Picture::black(64, 32);
        for (i, v) in big.data[..64 * 32].iter_mut().enumerate() {
            *v = if i % 2 == 0 { 40 } else { 200 };
        }
        let mut c = Picture::black(32, 16);
        c.draw((0, 0, 32, 16), &big);
        let mid = c.data[8 * 32 + 16];
        assert!((100..=140).contains(&mid), "{mid}");
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
