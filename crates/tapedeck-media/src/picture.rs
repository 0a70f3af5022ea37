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
}

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
        }
    }

    /// Bytes of one I420 picture.
    pub fn i420_len(&self) -> usize {
        self.width as usize * self.height as usize * 3 / 2
    }

    /// Checks and decodes one encoded frame into I420 at the output size.
    pub fn convert(&mut self, bytes: &[u8]) -> Result<Vec<u8>, FrameError> {
        let rgb = decode_rgb(bytes, &self.limits)?;
        self.convert_rgb(rgb).map_err(|e| corrupt(bytes, e))
    }

    /// Letterboxes a decoded picture into I420 at the output size.
    pub fn convert_rgb(&mut self, rgb: image::RgbImage) -> Result<Vec<u8>, String> {
        let (sw, sh) = rgb.dimensions();
        let mut out = vec![0u8; self.i420_len()];
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
