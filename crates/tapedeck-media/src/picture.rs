//! Frames as pictures: decode JPEG/PNG/WebP with limits, letterbox to the
//! output size, convert to I420 (BT.601, limited range, as encoders expect).

use std::io::Cursor;

use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::ImageReader;
use tapedeck_core::frame_message::{ImageKind, sniff_image};
use yuv::{
    YuvChromaSubsampling, YuvConversionMode, YuvPlanarImageMut, YuvRange, YuvStandardMatrix,
};

/// Limits on one incoming frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLimits {
    /// Largest encoded frame.
    pub max_bytes: usize,
    /// Largest width.
    pub max_width: u32,
    /// Largest height.
    pub max_height: u32,
}

impl Default for FrameLimits {
    fn default() -> Self {
        Self {
            max_bytes: 8 * 1024 * 1024,
            max_width: 7680,
            max_height: 4320,
        }
    }
}

/// Why a frame was refused. Never fatal to the recording.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// More bytes than `max_bytes`.
    #[error("frame of {bytes} bytes is larger than the limit of {max} bytes")]
    TooLarge {
        /// Its size.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// Larger than the pixel limits.
    #[error("frame of {width}x{height} is larger than the limit of {max_width}x{max_height}")]
    TooManyPixels {
        /// Its width.
        width: u32,
        /// Its height.
        height: u32,
        /// Limit.
        max_width: u32,
        /// Limit.
        max_height: u32,
    },
    /// Not JPEG, PNG or WebP.
    #[error("frame is not a JPEG, PNG or WebP image")]
    UnknownFormat,
    /// Its timestamp cannot be placed: past the recording's longest output,
    /// or far ahead of the time that passed since the previous frame.
    #[error("frame refused: {0}")]
    Timestamp(String),
    /// Looked like an image but did not decode.
    #[error("corrupt {kind:?} frame: {message}")]
    Corrupt {
        /// What it claimed to be.
        kind: ImageKind,
        /// The decoder's complaint.
        message: String,
    },
}

/// Where a `src_w`x`src_h` picture lands inside `dst_w`x`dst_h`, keeping its
/// aspect: `(x, y, w, h)`, all even so chroma planes stay aligned.
pub fn letterbox_rect(src_w: u32, src_h: u32, dst_w: u32, dst_h: u32) -> (u32, u32, u32, u32) {
    let (sw, sh, dw, dh) = (
        u64::from(src_w),
        u64::from(src_h),
        u64::from(dst_w),
        u64::from(dst_h),
    );
    let (w, h) = if sw * dh > sh * dw {
        (dw, (sh * dw / sw).max(2))
    } else {
        ((sw * dh / sh).max(2), dh)
    };
    let (w, h) = ((w as u32) & !1, (h as u32) & !1);
    let x = ((dst_w - w) / 2) & !1;
    let y = ((dst_h - h) / 2) & !1;
    (x, y, w, h)
}

/// Turns encoded frames into I420 pictures of one output size.
pub struct Picture {
    width: u32,
    height: u32,
    limits: FrameLimits,
    resizer: Resizer,
    canvas: Vec<u8>,
    canvas_rect: Option<(u32, u32, u32, u32)>,
    /// libjpeg-turbo, made on the first JPEG of the output size.
    jpeg: Option<turbojpeg::Decompressor>,
    /// Pictures handed back ([`Picture::recycle`]) for the next ones: a new
    /// 1.4 MB buffer per 720p picture costs its page faults and zeroing.
    spare: Vec<Vec<u8>>,
}

/// How many returned buffers a [`Picture`] keeps.
const SPARE_BUFFERS: usize = 3;

impl Picture {
    /// A converter to `width`x`height` (both even).
    pub fn new(width: u32, height: u32, limits: FrameLimits) -> Self {
        Self {
            width,
            height,
            limits,
            resizer: Resizer::new(),
            canvas: vec![0; width as usize * height as usize * 3],
            canvas_rect: None,
            jpeg: None,
            spare: Vec::new(),
        }
    }

    /// Hands back a picture this converter made, to be reused.
    pub fn recycle(&mut self, picture: Vec<u8>) {
        if picture.len() == self.i420_len() && self.spare.len() < SPARE_BUFFERS {
            self.spare.push(picture);
        }
    }

    /// A buffer for one picture; every byte of it gets overwritten.
    fn buffer(&mut self) -> Vec<u8> {
        self.spare
            .pop()
            .unwrap_or_else(|| vec![0u8; self.i420_len()])
    }

    /// Bytes of one I420 picture.
    pub fn i420_len(&self) -> usize {
        self.width as usize * self.height as usize * 3 / 2
    }

    /// Checks and decodes one encoded frame into I420 at the output size.
    pub fn convert(&mut self, bytes: &[u8]) -> Result<Vec<u8>, FrameError> {
        let (kind, width, height) = check(bytes, &self.limits)?;
        if kind == ImageKind::Jpeg && (width, height) == (self.width, self.height) {
            let mut out = self.buffer();
            if self.jpeg_to_i420(bytes, &mut out) {
                return Ok(out);
            }
            self.recycle(out);
        }
        let rgb = decode_checked(bytes, kind, width, height)?;
        self.convert_rgb(rgb).map_err(|e| corrupt(bytes, e))
    }

    /// A 4:2:0 YCbCr JPEG of exactly the output size, decoded by
    /// libjpeg-turbo straight into `out` as I420; `false` for any other
    /// JPEG, or one libjpeg-turbo refuses (the general path then decides).
    fn jpeg_to_i420(&mut self, bytes: &[u8], out: &mut [u8]) -> bool {
        use turbojpeg::{Colorspace, Decompressor, Subsamp, YuvImage};
        if self.jpeg.is_none() {
            self.jpeg = Decompressor::new().ok();
        }
        let Some(d) = self.jpeg.as_mut() else {
            return false;
        };
        let (w, h) = (self.width as usize, self.height as usize);
        let fits = d.read_header(bytes).is_ok_and(|hd| {
            hd.subsamp == Subsamp::Sub2x2
                && hd.colorspace == Colorspace::YCbCr
                && !hd.is_lossless
                && (hd.width, hd.height) == (w, h)
        });
        let image = YuvImage {
            pixels: &mut *out,
            width: w,
            align: 1,
            height: h,
            subsamp: Subsamp::Sub2x2,
        };
        if !fits || d.decompress_to_yuv(bytes, image).is_err() {
            return false;
        }
        full_to_limited_range(out, w * h);
        true
    }

    /// Letterboxes a decoded picture into I420 at the output size.
    pub fn convert_rgb(&mut self, rgb: image::RgbImage) -> Result<Vec<u8>, String> {
        let (sw, sh) = rgb.dimensions();
        let mut out = self.buffer();
        if (sw, sh) == (self.width, self.height) {
            self.to_i420(rgb.as_raw(), &mut out);
            return Ok(out);
        }
        let rect = letterbox_rect(sw, sh, self.width, self.height);
        let (x, y, w, h) = rect;
        let src = Image::from_vec_u8(sw, sh, rgb.into_raw(), PixelType::U8x3)
            .map_err(|e| e.to_string())?;
        let mut dst = Image::new(w, h, PixelType::U8x3);
        let opts = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
        self.resizer
            .resize(&src, &mut dst, &opts)
            .map_err(|e| e.to_string())?;
        if self.canvas_rect != Some(rect) {
            self.canvas.fill(0);
            self.canvas_rect = Some(rect);
        }
        let row = self.width as usize * 3;
        let buf = dst.buffer();
        for r in 0..h as usize {
            let at = (y as usize + r) * row + x as usize * 3;
            self.canvas[at..at + w as usize * 3]
                .copy_from_slice(&buf[r * w as usize * 3..(r + 1) * w as usize * 3]);
        }
        let canvas = std::mem::take(&mut self.canvas);
        self.to_i420(&canvas, &mut out);
        self.canvas = canvas;
        Ok(out)
    }

    fn to_i420(&self, rgb: &[u8], out: &mut [u8]) {
        let (w, h) = (self.width as usize, self.height as usize);
        let (y_plane, rest) = out.split_at_mut(w * h);
        let (u_plane, v_plane) = rest.split_at_mut(w * h / 4);
        let mut planar = YuvPlanarImageMut {
            y_plane: yuv::BufferStoreMut::Borrowed(y_plane),
            y_stride: self.width,
            u_plane: yuv::BufferStoreMut::Borrowed(u_plane),
            u_stride: self.width / 2,
            v_plane: yuv::BufferStoreMut::Borrowed(v_plane),
            v_stride: self.width / 2,
            width: self.width,
            height: self.height,
        };
        // Sizes are fixed at construction and even, so this cannot fail.
        let _ = planar.check_constraints(YuvChromaSubsampling::Yuv420);
        let _ = yuv::rgb_to_yuv420(
            &mut planar,
            rgb,
            self.width * 3,
            YuvRange::Limited,
            YuvStandardMatrix::Bt601,
            YuvConversionMode::Balanced,
        );
    }
}

/// JPEG's YCbCr is BT.601 at full range (0-255); encoders and players
/// expect limited range (luma 16-235, chroma 16-240), as the RGB path
/// writes. Rescales the I420 picture in place, rounding to nearest.
fn full_to_limited_range(i420: &mut [u8], luma_len: usize) {
    // In u16 (every sum stays below 65535) with division by 255 as
    // shifts, so the loops vectorize.
    fn div255(x: u16) -> u8 {
        ((x + 1 + (x >> 8)) >> 8) as u8
    }
    let (luma, chroma) = i420.split_at_mut(luma_len);
    for p in luma {
        // 16 + y * 219 / 255
        *p = div255(u16::from(*p) * 219 + 16 * 255 + 127);
    }
    for p in chroma {
        // 128 + (c - 128) * 224 / 255
        *p = div255(u16::from(*p) * 224 + 128 * 31 + 127);
    }
}

fn corrupt(bytes: &[u8], e: impl std::fmt::Display) -> FrameError {
    FrameError::Corrupt {
        kind: sniff_image(bytes).unwrap_or(ImageKind::Jpeg),
        message: e.to_string(),
    }
}

/// Checks size, format and dimensions before decoding anything (no decompression bombs).
pub fn check(bytes: &[u8], limits: &FrameLimits) -> Result<(ImageKind, u32, u32), FrameError> {
    if bytes.len() > limits.max_bytes {
        return Err(FrameError::TooLarge {
            bytes: bytes.len(),
            max: limits.max_bytes,
        });
    }
    let kind = sniff_image(bytes).ok_or(FrameError::UnknownFormat)?;
    // Decoders fill a cut-off JPEG with grey instead of failing: a complete one
    // ends with the EOI marker (sometimes followed by a little padding).
    if kind == ImageKind::Jpeg
        && !bytes[bytes.len().saturating_sub(64)..]
            .windows(2)
            .any(|w| w == [0xFF, 0xD9])
    {
        return Err(FrameError::Corrupt {
            kind,
            message: "truncated JPEG: no end-of-image marker".into(),
        });
    }
    let (width, height) =
        reader(bytes, kind)
            .into_dimensions()
            .map_err(|e| FrameError::Corrupt {
                kind,
                message: e.to_string(),
            })?;
    if width > limits.max_width || height > limits.max_height || width == 0 || height == 0 {
        return Err(FrameError::TooManyPixels {
            width,
            height,
            max_width: limits.max_width,
            max_height: limits.max_height,
        });
    }
    Ok((kind, width, height))
}

fn reader(bytes: &[u8], kind: ImageKind) -> ImageReader<Cursor<&[u8]>> {
    let format = match kind {
        ImageKind::Jpeg => image::ImageFormat::Jpeg,
        ImageKind::Png => image::ImageFormat::Png,
        ImageKind::Webp => image::ImageFormat::WebP,
    };
    ImageReader::with_format(Cursor::new(bytes), format)
}

/// Decodes to packed RGB after [`check`].
pub fn decode_rgb(bytes: &[u8], limits: &FrameLimits) -> Result<image::RgbImage, FrameError> {
    let (kind, width, height) = check(bytes, limits)?;
    decode_checked(bytes, kind, width, height)
}

/// Decodes to packed RGB what [`check`] passed as `kind`, `width`x`height`.
fn decode_checked(
    bytes: &[u8],
    kind: ImageKind,
    width: u32,
    height: u32,
) -> Result<image::RgbImage, FrameError> {
    let mut r = reader(bytes, kind);
    let mut l = image::Limits::default();
    l.max_image_width = Some(width);
    l.max_image_height = Some(height);
    l.max_alloc = Some(u64::from(width) * u64::from(height) * 8 + (1 << 20));
    r.limits(l);
    let img = r.decode().map_err(|e| FrameError::Corrupt {
        kind,
        message: e.to_string(),
    })?;
    Ok(img.into_rgb8())
}

/// How far two pictures of the same page are apart: the share of pixels
/// (0.0 to 1.0) that differ by more than lossy coding can explain. Two
/// captures of one page state by one browser build are the same bytes;
/// this also answers for captures a codec touched.
pub fn differing_share(a: &[u8], b: &[u8], limits: &FrameLimits) -> Result<f64, FrameError> {
    if a == b {
        return Ok(0.0);
    }
    let (a, b) = (decode_rgb(a, limits)?, decode_rgb(b, limits)?);
    if a.dimensions() != b.dimensions() {
        return Ok(1.0);
    }
    // A channel off by more than this is content, not coding noise.
    const NOISE: u8 = 24;
    let differing = a
        .pixels()
        .zip(b.pixels())
        .filter(|(p, q)| {
            p.0.iter()
                .zip(q.0.iter())
                .any(|(x, y)| x.abs_diff(*y) > NOISE)
        })
        .count();
    Ok(differing as f64 / (u64::from(a.width()) * u64::from(a.height())).max(1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn pictures_differ_by_their_content_not_by_their_coding() {
        let limits = FrameLimits::default();
        let grey = jpeg(64, 64, [128, 128, 128]);
        assert_eq!(differing_share(&grey, &grey, &limits).unwrap(), 0.0);
        // The same picture coded again (PNG): no pixel is content apart.
        let mut png = Vec::new();
        decode_rgb(&grey, &limits)
            .unwrap()
            .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        assert_eq!(differing_share(&grey, &png, &limits).unwrap(), 0.0);
        let red = jpeg(64, 64, [200, 30, 30]);
        assert!(differing_share(&grey, &red, &limits).unwrap() > 0.9);
        assert_eq!(
            differing_share(&grey, &jpeg(32, 64, [128, 128, 128]), &limits).unwrap(),
            1.0
        );
        assert!(differing_share(&grey, b"not a picture", &limits).is_err());
    }

    fn jpeg(w: u32, h: u32, rgb: [u8; 3]) -> Vec<u8> {
        let img = image::RgbImage::from_pixel(w, h, image::Rgb(rgb));
        let mut out = Cursor::new(vec![]);
        img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
        out.into_inner()
    }

    #[test]
    fn letterbox_centres() {
        assert_eq!(letterbox_rect(640, 480, 1280, 720), (160, 0, 960, 720));
        assert_eq!(letterbox_rect(1280, 720, 1280, 720), (0, 0, 1280, 720));
        assert_eq!(letterbox_rect(100, 1000, 64, 64), (28, 0, 6, 64));
    }

    #[test]
    fn converts_and_letterboxes() {
        let mut p = Picture::new(64, 32, FrameLimits::default());
        let out = p.convert(&jpeg(32, 32, [255, 255, 255])).unwrap();
        assert_eq!(out.len(), 64 * 32 * 3 / 2);
        // Black bars (Y=16) left and right, white (Y~235) in the middle.
        assert!(out[0] <= 20, "{}", out[0]);
        assert!(out[32] >= 225, "{}", out[32]);
    }

    /// A colourful 64x48 picture (gradients and blocks) as a JPEG with
    /// the given chroma subsampling, from libjpeg-turbo's encoder.
    fn jpeg_sampled(subsamp: turbojpeg::Subsamp) -> Vec<u8> {
        let rgb = colourful();
        let image = turbojpeg::Image {
            pixels: rgb.as_raw().as_slice(),
            width: 64,
            pitch: 64 * 3,
            height: 48,
            format: turbojpeg::PixelFormat::RGB,
        };
        turbojpeg::compress(image, 95, subsamp).unwrap().to_vec()
    }

    fn colourful() -> image::RgbImage {
        let (w, h) = (64usize, 48usize);
        let rgb: Vec<u8> = (0..w * h)
            .flat_map(|i| {
                let (x, y) = (i % w, i / w);
                let block = (x / 16 + y / 16) % 2 == 0;
                [(x * 4) as u8, (y * 5) as u8, if block { 220 } else { 30 }]
            })
            .collect();
        image::RgbImage::from_raw(w as u32, h as u32, rgb).unwrap()
    }

    /// Mean absolute difference of two I420 pictures, per plane.
    fn plane_diffs(a: &[u8], b: &[u8], luma: usize) -> (f64, f64) {
        let mean = |x: &[u8], y: &[u8]| {
            x.iter()
                .zip(y)
                .map(|(p, q)| f64::from(p.abs_diff(*q)))
                .sum::<f64>()
                / x.len() as f64
        };
        (mean(&a[..luma], &b[..luma]), mean(&a[luma..], &b[luma..]))
    }

    #[test]
    fn a_camera_jpeg_goes_straight_to_i420_like_the_rgb_path() {
        let jpeg = jpeg_sampled(turbojpeg::Subsamp::Sub2x2);
        let mut p = Picture::new(64, 48, FrameLimits::default());
        let mut direct = vec![0u8; p.i420_len()];
        assert!(
            p.jpeg_to_i420(&jpeg, &mut direct),
            "4:2:0 at the output size"
        );
        assert_eq!(p.convert(&jpeg).unwrap(), direct);
        // Against the source picture's own I420, the direct path is as
        // close as decoding to RGB and back (closer in chroma: no
        // upsampling and subsampling again).
        let truth = p.convert_rgb(colourful()).unwrap();
        let rgb = decode_rgb(&jpeg, &FrameLimits::default()).unwrap();
        let via_rgb = p.convert_rgb(rgb).unwrap();
        let (luma, chroma) = plane_diffs(&direct, &truth, 64 * 48);
        let (luma_rgb, chroma_rgb) = plane_diffs(&via_rgb, &truth, 64 * 48);
        assert!(luma < 1.5 && chroma < 2.5, "luma {luma}, chroma {chroma}");
        assert!(
            luma <= luma_rgb + 0.25 && chroma <= chroma_rgb + 0.25,
            "direct {luma}/{chroma}, via RGB {luma_rgb}/{chroma_rgb}"
        );
        // Limited range: nothing below 16 or above 240 anywhere.
        assert!(direct.iter().all(|&v| (16..=240).contains(&v)));
        assert!(direct[..64 * 48].iter().all(|&v| v <= 235));
    }

    #[test]
    fn other_jpegs_take_the_rgb_path() {
        let mut p = Picture::new(64, 48, FrameLimits::default());
        let mut out = vec![0u8; p.i420_len()];
        let full_chroma = jpeg_sampled(turbojpeg::Subsamp::None);
        assert!(!p.jpeg_to_i420(&full_chroma, &mut out), "4:4:4");
        let gray = jpeg_sampled(turbojpeg::Subsamp::Gray);
        assert!(!p.jpeg_to_i420(&gray, &mut out), "grey");
        let mut smaller = Picture::new(32, 24, FrameLimits::default());
        let jpeg = jpeg_sampled(turbojpeg::Subsamp::Sub2x2);
        assert!(
            !smaller.jpeg_to_i420(&jpeg, &mut out[..32 * 24 * 3 / 2]),
            "another size"
        );
        for jpeg in [full_chroma, gray] {
            let rgb = decode_rgb(&jpeg, &FrameLimits::default()).unwrap();
            let expected = p.convert_rgb(rgb).unwrap();
            assert_eq!(p.convert(&jpeg).unwrap(), expected);
        }
        assert_eq!(smaller.convert(&jpeg).unwrap().len(), 32 * 24 * 3 / 2);
    }

    #[test]
    fn full_range_maps_onto_limited_range() {
        let mut px = vec![0, 255, 128, 0, 255, 128];
        full_to_limited_range(&mut px, 3);
        assert_eq!(px, [16, 235, 126, 16, 240, 128]);
        // Every value, against the formula in floating point.
        let mut all: Vec<u8> = (0..=255).chain(0..=255).collect();
        full_to_limited_range(&mut all, 256);
        for v in 0..=255u8 {
            let y = (16.0 + f64::from(v) * 219.0 / 255.0).round() as u8;
            let c = (128.0 + (f64::from(v) - 128.0) * 224.0 / 255.0).round() as u8;
            assert!(
                all[v as usize].abs_diff(y) <= 1 && all[256 + v as usize].abs_diff(c) <= 1,
                "{v}"
            );
        }
    }

    #[test]
    fn refuses_bad_frames() {
        let l = FrameLimits {
            max_bytes: 1000,
            max_width: 100,
            max_height: 100,
        };
        assert_eq!(check(b"hello", &l).unwrap_err(), FrameError::UnknownFormat);
        let big = jpeg(200, 20, [0, 0, 0]);
        assert!(matches!(
            check(&big, &l).unwrap_err(),
            FrameError::TooManyPixels { .. }
        ));
        let mut cut = jpeg(32, 32, [9, 9, 9]);
        cut.truncate(cut.len() * 2 / 3);
        let mut p = Picture::new(32, 32, FrameLimits::default());
        assert!(
            matches!(p.convert(&cut), Err(FrameError::Corrupt { .. })),
            "{:?}",
            p.convert(&cut)
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn mangled_frames_never_panic(cut in 0usize..600, flip in 0usize..600) {
            let mut b = jpeg(24, 16, [1, 2, 3]);
            if flip < b.len() { b[flip] ^= 0x5A; }
            b.truncate(cut.max(3));
            let mut p = Picture::new(32, 32, FrameLimits::default());
            let _ = p.convert(&b);
        }
    }
}
