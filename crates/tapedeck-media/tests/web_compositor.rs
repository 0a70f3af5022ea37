//! The web compositor against the real ffmpeg: whatever the recorder could
//! not deliver (frames dropped or missed in realtime, a first frame without a
//! picture), the video spans exactly the frames the recorder produced.

use std::io::Cursor;
use std::time::Duration;

use tapedeck_core::Format;
use tapedeck_core::player::Overlay;
use tapedeck_media::ffmpeg::{self, EncodeSpec, Tools};
use tapedeck_media::picture::FrameLimits;
use tapedeck_media::sink::encoding::EncodingSink;
use tapedeck_media::web::{Compositor, WebFrame};

const FPS: u32 = 30;
const FRAMES: u64 = 60;
const W: u32 = 160;
const H: u32 = 120;

/// 160x120 at `FPS`, MP4 with skip pictures, as the server encodes web recordings.
fn spec() -> EncodeSpec {
    EncodeSpec {
        width: W,
        height: H,
        fps: FPS,
        cfr: true,
        format: Format::Mp4,
        video_bitrate_kbps: 500,
        x264_preset: "ultrafast".into(),
        crf: 23,
        skip_held: true,
        threads: None,
        live: Default::default(),
    }
}

fn png(shade: u8) -> Vec<u8> {
    let img = image::RgbImage::from_fn(160, 120, |x, _| {
        image::Rgb([shade, (x % 256) as u8, 255 - shade])
    });
    let mut out = Cursor::new(vec![]);
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

#[derive(Clone, Copy, PartialEq)]
enum Fate {
    /// Delivered with a new page picture.
    Shot,
    /// Delivered, but the page had not changed (or was not captured in time).
    NoShot,
    /// Never reached the compositor (the encoder was behind).
    Dropped,
}

/// Feeds `FRAMES` frames at the recorder's timestamps; returns (frames, duration) by ffprobe.
fn encode(fate: impl Fn(u64) -> Fate) -> (Option<u64>, f64) {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec();
    let mut c = Compositor::new(1.0, FPS, W, H);
    let mut p =
        EncodingSink::start(Tools::default(), spec, FrameLimits::default(), dir.path()).unwrap();
    for k in 0..FRAMES {
        let last = k + 1 == FRAMES;
        let shot = match fate(k) {
            Fate::Dropped if !last => continue,
            Fate::Shot => Some(png(k as u8)),
            _ => None,
        };
        let f = WebFrame {
            shot,
            overlay: Overlay::default(),
            pts_us: (k * 1_000_000 / u64::from(FPS)) as i64,
            force: last,
        };
        c.frame(&mut p, f).unwrap();
    }
    let done = p.finish_video(Duration::from_secs(60)).unwrap();
    let m = ffmpeg::probe(&Tools::default(), &done.output).unwrap();
    (m.frames, m.duration_s)
}

fn assert_full_length(name: &str, got: (Option<u64>, f64)) {
    assert_eq!(got.0, Some(FRAMES), "{name}: {got:?}");
    assert!((got.1 - 2.0).abs() < 0.01, "{name}: {got:?}");
}

#[test]
fn every_frame_delivered() {
    assert_full_length("all", encode(|_| Fate::Shot));
}

#[test]
fn frames_dropped_or_missed_anywhere_keep_the_length() {
    for k in [1, 2, 30, FRAMES - 3, FRAMES - 2] {
        assert_full_length(
            &format!("dropped {k}"),
            encode(|i| if i == k { Fate::Dropped } else { Fate::Shot }),
        );
        assert_full_length(
            &format!("missed {k}"),
            encode(|i| if i == k { Fate::NoShot } else { Fate::Shot }),
        );
    }
    // Several in a row just before the end, and the end itself unchanged.
    assert_full_length(
        "tail",
        encode(|i| {
            if i + 5 >= FRAMES {
                Fate::NoShot
            } else {
                Fate::Shot
            }
        }),
    );
    assert_full_length(
        "tail dropped",
        encode(|i| {
            if i + 5 >= FRAMES {
                Fate::Dropped
            } else {
                Fate::Shot
            }
        }),
    );
}

#[test]
fn the_first_picture_is_shown_from_the_first_frame() {
    for lead in [1, 3] {
        assert_full_length(
            &format!("no picture in the first {lead}"),
            encode(|i| if i < lead { Fate::NoShot } else { Fate::Shot }),
        );
    }
}

/// Decoded RGB frames of a video.
fn decoded(video: &std::path::Path) -> Vec<Vec<u8>> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(video)
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout
        .chunks_exact(160 * 120 * 3)
        .map(<[u8]>::to_vec)
        .collect()
}

#[test]
fn recovery_redraws_the_overlay_and_the_spool_keeps_each_page_once() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec();
    let mut c = Compositor::new(1.0, FPS, W, H);
    let mut p = EncodingSink::start(
        Tools::default(),
        spec.clone(),
        FrameLimits::default(),
        dir.path(),
    )
    .unwrap();
    // The page changes every 10th frame; the cursor moves on every frame.
    let mut page_bytes = 0;
    for k in 0..FRAMES {
        let shot = (k % 10 == 0).then(|| png(k as u8 * 4));
        page_bytes += shot.as_ref().map_or(0, Vec::len);
        let f = WebFrame {
            shot,
            overlay: Overlay {
                cursor: Some((20.0 + k as f32 * 2.0, 60.0)),
                ..Overlay::default()
            },
            pts_us: (k * 1_000_000 / u64::from(FPS)) as i64,
            force: k + 1 == FRAMES,
        };
        c.frame(&mut p, f).unwrap();
    }
    let live = p.finish_video(Duration::from_secs(60)).unwrap();
    let spool = std::fs::metadata(dir.path().join(tapedeck_media::sink::encoding::SPOOL_FILE))
        .unwrap()
        .len() as usize;
    // Each page once, plus a small record per frame.
    assert!(
        spool < page_bytes + FRAMES as usize * 200,
        "spool {spool} bytes for {page_bytes} bytes of pages"
    );
    let live_frames = decoded(&live.output);
    let back = tapedeck_media::sink::encoding::recover(
        &Tools::default(),
        &spec,
        dir.path(),
        Default::default(),
        Duration::from_secs(60),
    )
    .unwrap();
    let back_frames = decoded(&back.output);
    assert_eq!(live_frames.len(), FRAMES as usize);
    assert_eq!(back_frames.len(), FRAMES as usize);
    // The cursor (dark outline) is at its place in the recovered video too.
    let dark_near = |f: &[u8], x: u32, y: u32| {
        (0..6u32).any(|dy| {
            (0..4u32).any(|dx| {
                let i = (((y + dy) * 160 + x + dx) * 3) as usize;
                f[i] < 90 && f[i + 1] < 90 && f[i + 2] < 90
            })
        })
    };
    for k in [0u32, 25, 59] {
        let x = 20 + k * 2;
        assert!(dark_near(&live_frames[k as usize], x, 60), "live frame {k}");
        assert!(
            dark_near(&back_frames[k as usize], x, 60),
            "recovered frame {k}"
        );
    }
    // Same pictures in, same encoder: the same video.
    assert!(live_frames == back_frames, "the recovered video differs");
}

/// A 4K page of detail makes PNG screenshots far over the frames socket's
/// 8 MiB: every one is used. An unreadable one fails the recording rather
/// than becoming a hold of the previous picture.
#[test]
fn large_screenshots_are_used_and_unreadable_ones_fail() {
    let (w, h) = (3840u32, 2160u32);
    let mut seed = 0x2545_f491_u32;
    let noise = image::RgbImage::from_fn(w, h, |_, _| {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let b = seed.to_le_bytes();
        image::Rgb([b[0], b[1], b[2]])
    });
    let mut shot = Cursor::new(vec![]);
    noise.write_to(&mut shot, image::ImageFormat::Png).unwrap();
    let shot = shot.into_inner();
    assert!(shot.len() > 8 * 1024 * 1024, "{} bytes", shot.len());
    let dir = tempfile::tempdir().unwrap();
    let spec = EncodeSpec {
        width: w,
        height: h,
        ..spec()
    };
    let mut c = Compositor::new(1.0, FPS, w, h);
    let mut p =
        EncodingSink::start(Tools::default(), spec, FrameLimits::default(), dir.path()).unwrap();
    let frame = |shot: Option<Vec<u8>>, k: i64| WebFrame {
        shot,
        overlay: Overlay::default(),
        pts_us: k * 1_000_000 / i64::from(FPS),
        force: false,
    };
    let outcome = c.frame(&mut p, frame(Some(shot), 0)).unwrap();
    assert_eq!(
        outcome,
        Some(tapedeck_media::sink::encoding::FrameOutcome::Accepted)
    );
    let e = c
        .frame(
            &mut p,
            frame(Some(b"\x89PNG\r\n\x1a\nnot really".to_vec()), 1),
        )
        .unwrap_err();
    assert_eq!(e.failure().code, tapedeck_core::Code::CaptureFailed, "{e}");
    assert!(e.to_string().contains("at 0.033 s"), "{e}");
}
