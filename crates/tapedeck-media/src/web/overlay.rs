//! Draws the recorder's cursor, click ripples and highlight boxes over page
//! pixels. The page never sees them: they exist only in the video.
//!
//! Each shape is rasterized (anti-aliased, by tiny-skia) into a small
//! transparent pixmap covering just its box, then blended onto the RGB frame,
//! so the cost is proportional to the shapes, not the frame.

use image::RgbImage;
use tapedeck_core::player::Overlay;
use tiny_skia::{Color, FillRule, Paint, PathBuilder, Pixmap, Rect, Stroke, Transform};

/// Draws overlays at one device scale.
pub struct Painter {
    scale: f32,
    cursor: Option<Pixmap>,
    cursor_pressed: Option<Pixmap>,
}

const CURSOR: [(f32, f32); 7] = [
    (0.0, 0.0),
    (0.0, 17.0),
    (4.2, 13.2),
    (7.0, 19.5),
    (9.6, 18.4),
    (6.9, 12.3),
    (12.2, 12.2),
];

fn cursor_sprite(scale: f32, pressed: bool) -> Option<Pixmap> {
    let pad = 2.0 * scale;
    let size = (22.0 * scale + 2.0 * pad).ceil() as u32;
    let mut pm = Pixmap::new(size, size)?;
    let mut pb = PathBuilder::new();
    let s = if pressed { scale * 0.9 } else { scale };
    for (i, (x, y)) in CURSOR.iter().enumerate() {
        let (x, y) = (pad + x * s, pad + y * s);
        if i == 0 {
            pb.move_to(x, y);
        } else {
            pb.line_to(x, y);
        }
    }
    pb.close();
    let path = pb.finish()?;
    let mut fill = aa_paint();
    fill.set_color_rgba8(255, 255, 255, 255);
    pm.fill_path(&path, &fill, FillRule::Winding, Transform::identity(), None);
    let mut line = aa_paint();
    line.set_color_rgba8(0, 0, 0, 255);
    let stroke = Stroke {
        width: 1.3 * scale,
        line_join: tiny_skia::LineJoin::Round,
        ..Stroke::default()
    };
    pm.stroke_path(&path, &line, &stroke, Transform::identity(), None);
    Some(pm)
}

/// Blends a premultiplied RGBA pixmap onto `img` with its top-left at (`ox`, `oy`).
fn blend(img: &mut RgbImage, pm: &Pixmap, ox: i32, oy: i32) {
    let (w, h) = (img.width() as i32, img.height() as i32);
    let pw = pm.width() as i32;
    let data = pm.data();
    let buf: &mut [u8] = img;
    for py in 0..pm.height() as i32 {
        let y = oy + py;
        if y < 0 || y >= h {
            continue;
        }
        for px in 0..pw {
            let x = ox + px;
            if x < 0 || x >= w {
                continue;
            }
            let s = ((py * pw + px) * 4) as usize;
            let a = u32::from(data[s + 3]);
            if a == 0 {
                continue;
            }
            let d = ((y * w + x) * 3) as usize;
            for c in 0..3 {
                // Premultiplied source over opaque destination.
                let v = u32::from(data[s + c]) + (u32::from(buf[d + c]) * (255 - a) + 127) / 255;
                buf[d + c] = v.min(255) as u8;
            }
        }
    }
}

impl Painter {
    /// A painter for frames at `scale` device pixels per CSS pixel.
    pub fn new(scale: f64) -> Self {
        let scale = scale as f32;
        Self {
            scale,
            cursor: cursor_sprite(scale, false),
            cursor_pressed: cursor_sprite(scale, true),
        }
    }

    /// Draws `o` over `img`.
    pub fn paint(&self, img: &mut RgbImage, o: &Overlay) {
        let s = self.scale;
        if let Some(hb) = o.highlight
            && hb.alpha > 0.0
        {
            let pad = 6.0 * s;
            let width = 3.0 * s;
            let (x, y, w, h) = (
                hb.x * s - pad,
                hb.y * s - pad,
                hb.w * s + 2.0 * pad,
                hb.h * s + 2.0 * pad,
            );
            let margin = width + 2.0;
            if let Some(mut pm) = Pixmap::new(
                (w + 2.0 * margin).ceil().max(1.0) as u32,
                (h + 2.0 * margin).ceil().max(1.0) as u32,
            ) && let Some(rect) = Rect::from_xywh(margin, margin, w, h)
            {
                let path = rounded_rect(rect, 8.0 * s);
                let [r, g, b] = hb.color;
                let mut paint = aa_paint();
                paint.set_color(Color::from_rgba8(r, g, b, (hb.alpha * 0.14 * 255.0) as u8));
                if let Some(path) = &path {
                    pm.fill_path(path, &paint, FillRule::Winding, Transform::identity(), None);
                    paint.set_color(Color::from_rgba8(r, g, b, (hb.alpha * 255.0) as u8));
                    let stroke = Stroke {
                        width,
                        ..Stroke::default()
                    };
                    pm.stroke_path(path, &paint, &stroke, Transform::identity(), None);
                }
                blend(
                    img,
                    &pm,
                    (x - margin).round() as i32,
                    (y - margin).round() as i32,
                );
            }
        }
        for r in &o.ripples {
            let radius = (10.0 + 26.0 * r.age) * s;
            let alpha = ((1.0 - r.age) * 0.75).clamp(0.0, 1.0);
            let size = (2.0 * radius + 8.0 * s).ceil() as u32;
            let Some(mut pm) = Pixmap::new(size, size) else {
                continue;
            };
            let c = size as f32 / 2.0;
            if let Some(circle) = PathBuilder::from_circle(c, c, radius) {
                let mut paint = aa_paint();
                paint.set_color(Color::from_rgba8(
                    30,
                    136,
                    229,
                    (alpha * 0.35 * 255.0) as u8,
                ));
                pm.fill_path(
                    &circle,
                    &paint,
                    FillRule::Winding,
                    Transform::identity(),
                    None,
                );
                paint.set_color(Color::from_rgba8(30, 136, 229, (alpha * 255.0) as u8));
                let stroke = Stroke {
                    width: 2.5 * s,
                    ..Stroke::default()
                };
                pm.stroke_path(&circle, &paint, &stroke, Transform::identity(), None);
            }
            blend(
                img,
                &pm,
                (r.x * s - c).round() as i32,
                (r.y * s - c).round() as i32,
            );
        }
        if let Some((x, y)) = o.cursor {
            let sprite = if o.pressed {
                &self.cursor_pressed
            } else {
                &self.cursor
            };
            if let Some(pm) = sprite {
                let pad = 2.0 * s;
                blend(
                    img,
                    pm,
                    (x * s - pad).round() as i32,
                    (y * s - pad).round() as i32,
                );
            }
        }
    }
}

fn aa_paint() -> Paint<'static> {
    Paint {
        anti_alias: true,
        ..Paint::default()
    }
}

fn rounded_rect(r: Rect, radius: f32) -> Option<tiny_skia::Path> {
    let rad = radius.min(r.width() / 2.0).min(r.height() / 2.0);
    let (l, t, rt, b) = (r.left(), r.top(), r.right(), r.bottom());
    let mut pb = PathBuilder::new();
    pb.move_to(l + rad, t);
    pb.line_to(rt - rad, t);
    pb.quad_to(rt, t, rt, t + rad);
    pb.line_to(rt, b - rad);
    pb.quad_to(rt, b, rt - rad, b);
    pb.line_to(l + rad, b);
    pb.quad_to(l, b, l, b - rad);
    pb.line_to(l, t + rad);
    pb.quad_to(l, t, l + rad, t);
    pb.close();
    pb.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapedeck_core::player::{HighlightBox, Ripple};

    #[test]
    fn draws_cursor_ripple_and_highlight_where_asked() {
        let mut img = RgbImage::from_pixel(200, 100, image::Rgb([255, 255, 255]));
        let p = Painter::new(1.0);
        p.paint(
            &mut img,
            &Overlay {
                cursor: Some((50.0, 20.0)),
                pressed: false,
                ripples: vec![Ripple {
                    x: 150.0,
                    y: 50.0,
                    age: 0.0,
                }],
                highlight: Some(HighlightBox {
                    x: 20.0,
                    y: 60.0,
                    w: 60.0,
                    h: 20.0,
                    color: [255, 0, 0],
                    alpha: 1.0,
                }),
            },
        );
        // The cursor's black outline starts at its tip.
        assert!(
            img.get_pixel(50, 21).0[0] < 128,
            "{:?}",
            img.get_pixel(50, 21)
        );
        // The ripple ring is blue-ish at its radius.
        let ring = img.get_pixel(160, 50).0;
        assert!(ring[2] > ring[0], "{ring:?}");
        // The highlight border is red, the inside lightly tinted.
        let border = img.get_pixel(50, 54).0;
        assert!(border[0] > 200 && border[1] < 80, "{border:?}");
        let inside = img.get_pixel(50, 70).0;
        assert!(
            inside[0] == 255 && inside[1] < 255 && inside[1] > 180,
            "{inside:?}"
        );
        // Far away nothing changed.
        assert_eq!(img.get_pixel(190, 5).0, [255, 255, 255]);
    }
}
