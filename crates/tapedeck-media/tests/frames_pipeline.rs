//! The frames pipeline against the real ffmpeg, checked with ffprobe.

use std::io::Cursor;
use std::path::Path;
use std::time::Duration;

use tapedeck_core::Format;
use tapedeck_media::ffmpeg::{self, EncodeSpec, Tools};
use tapedeck_media::picture::{FrameError, FrameLimits};
use tapedeck_media::sink::encoding::{EncodingSink, FrameOutcome, recover};

fn jpeg(w: u32, h: u32, shade: u8) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, _| {
        image::Rgb([shade, (x % 256) as u8, 255 - shade])
    });
    let mut out = Cursor::new(vec![]);
    img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbaImage::from_pixel(w, h, image::Rgba([10, 200, 30, 255]));
    let mut out = Cursor::new(vec![]);
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn spec(format: Format, cfr: bool) -> EncodeSpec {
    EncodeSpec {
        width: 320,
        height: 240,
        fps: 30,
        cfr,
        format,
        video_bitrate_kbps: 800,
        x264_preset: "veryfast".into(),
        crf: 23,
        skip_held: false,
        threads: None,
        live: Default::default(),
    }
}

fn probe(p: &Path) -> tapedeck_core::recording::MediaInfo {
    ffmpeg::probe(&Tools::default(), p).unwrap()
}

#[test]
fn five_fps_mixed_sizes_with_pause_and_a_corrupt_frame() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = EncodingSink::start(
        Tools::default(),
        spec(Format::Mp4, true),
        FrameLimits::default(),
        dir.path(),
    )
    .unwrap();
    // 2 s at 5 fps, sizes alternating (letterboxed), one PNG.
    for i in 0..10u64 {
        let f = match i % 3 {
            0 => jpeg(320, 240, (i * 20) as u8),
            1 => jpeg(640, 360, (i * 20) as u8),
            _ => png(100, 200),
        };
        assert_eq!(
            p.frame(&f, i as i64 * 200_000).unwrap(),
            FrameOutcome::Accepted
        );
    }
    let bad = p.frame(b"\xFF\xD8\xFFgarbage", 2_000_000).unwrap();
    assert!(
        matches!(bad, FrameOutcome::Invalid(FrameError::Corrupt { .. })),
        "{bad:?}"
    );
    p.pause();
    assert!(matches!(
        p.frame(&jpeg(320, 240, 1), 2_100_000).unwrap(),
        FrameOutcome::Dropped(_)
    ));
    p.resume();
    // Resumed 30 s later on the source clock: no gap in the output.
    for i in 0..5u64 {
        p.frame(&jpeg(320, 240, 9), 32_000_000 + i as i64 * 200_000)
            .unwrap();
    }
    let done = p.finish_video(Duration::from_secs(60)).unwrap();
    let c = done.counters;
    assert_eq!(
        (c.frames_in, c.frames_invalid, c.frames_dropped),
        (17, 1, 2)
    );
    // 15 frames x 200 ms = 3 s at 30 fps.
    assert_eq!(c.frames_out, 90);
    let m = probe(&done.output);
    assert_eq!(
        (m.video_codec.as_str(), m.width, m.height),
        ("h264", 320, 240)
    );
    assert_eq!(m.frames, Some(90));
    assert!((m.fps - 30.0).abs() < 0.01, "{}", m.fps);
    assert!(
        (m.duration_s - 3.0).abs() <= 1.0 / 30.0 + 1e-6,
        "{}",
        m.duration_s
    );
    assert!(done.cpu_s > 0.0);

    // The spool alone rebuilds the same video.
    let rebuilt = recover(
        &Tools::default(),
        &spec(Format::Mp4, true),
        dir.path(),
        Default::default(),
        Duration::from_secs(60),
    )
    .unwrap();
    let r = probe(&rebuilt.output);
    assert_eq!((r.frames, r.width), (Some(90), 320));
}

#[test]
fn vfr_webm_keeps_source_timing() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = EncodingSink::start(
        Tools::default(),
        spec(Format::Webm, false),
        FrameLimits::default(),
        dir.path(),
    )
    .unwrap();
    for (i, t) in [0i64, 100_000, 450_000, 500_000, 1_300_000]
        .into_iter()
        .enumerate()
    {
        p.frame(&jpeg(320, 240, (i * 40) as u8), t).unwrap();
    }
    let done = p.finish_video(Duration::from_secs(60)).unwrap();
    let m = probe(&done.output);
    assert_eq!(m.video_codec, "vp9");
    // 5 frames plus the closing repeat; the last lasts its 800 ms interval.
    assert_eq!(m.frames, Some(6));
    assert!((m.duration_s - 2.1).abs() < 0.05, "{}", m.duration_s);
}

/// MD5 of every decoded frame, failing on any decode error.
fn frame_md5s(p: &Path) -> Vec<String> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-xerror", "-i"])
        .arg(p)
        .args(["-f", "framemd5", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "decode: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.rsplit(',').next().unwrap().trim().to_string())
        .collect()
}

/// Checks H.264 frame numbering slice by slice (ffmpeg's trace_headers): 0 at
/// each IDR, then one more per picture, modulo 2^bits. Decoders that conceal
/// errors play a misnumbered stream; strict ones do not.
fn assert_frame_num_sequence(p: &Path) -> usize {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "verbose", "-i"])
        .arg(p)
        .args(["-c", "copy", "-bsf:v", "trace_headers", "-f", "null", "-"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    let mut nal_type = 0;
    let mut prev: Option<u32> = None;
    let mut pictures = 0;
    for line in text.lines() {
        let field = |name: &str| -> Option<(usize, u32)> {
            let rest = line.split(&format!(" {name} ")).nth(1)?;
            let (bits, value) = rest.trim().split_once(" = ")?;
            Some((bits.trim().len(), value.trim().parse().ok()?))
        };
        if let Some((_, t)) = field("nal_unit_type") {
            nal_type = t;
        } else if let Some((bits, n)) = field("frame_num") {
            match (nal_type, prev) {
                (5, _) => assert_eq!(n, 0, "IDR picture {pictures} has frame_num {n}"),
                (_, Some(p)) => assert_eq!(
                    n,
                    (p + 1) % (1 << bits),
                    "picture {pictures} after frame_num {p}"
                ),
                (_, None) => panic!("a non-IDR picture first"),
            }
            prev = Some(n);
            pictures += 1;
        }
    }
    pictures
}

#[test]
fn held_frames_are_skip_pictures_identical_to_their_frame() {
    for format in [Format::Mp4, Format::Mkv] {
        let dir = tempfile::tempdir().unwrap();
        let skip = EncodeSpec {
            skip_held: true,
            fps: 30,
            ..spec(format, true)
        };
        let mut p = EncodingSink::start(
            Tools::default(),
            skip.clone(),
            FrameLimits::default(),
            dir.path(),
        )
        .unwrap();
        // 12 s at 5 fps: keyframes every 4 s fall among held ticks too.
        for i in 0..60u64 {
            p.frame(&jpeg(320, 240, (i * 4) as u8), i as i64 * 200_000)
                .unwrap();
        }
        let done = p.finish_video(Duration::from_secs(60)).unwrap();
        assert_eq!(done.counters.frames_out, 360);
        let m = probe(&done.output);
        assert_eq!(
            (m.video_codec.as_str(), m.width, m.frames),
            ("h264", 320, Some(360))
        );
        assert!(
            (m.fps - 30.0).abs() < 0.01 && (m.duration_s - 12.0).abs() < 0.034,
            "{m:?}"
        );
        assert_eq!(assert_frame_num_sequence(&done.output), 360);
        let md5 = frame_md5s(&done.output);
        assert_eq!(md5.len(), 360);
        for (i, h) in md5.iter().enumerate() {
            if i % 6 != 0 {
                assert_eq!(h, &md5[i - i % 6], "held frame {i} differs from its frame");
            }
        }
        assert_ne!(md5[0], md5[6]);
        // The same frames encoded the plain way decode to the same distinct pictures at the same ticks.
        let dir2 = tempfile::tempdir().unwrap();
        let mut plain = EncodingSink::start(
            Tools::default(),
            spec(format, true),
            FrameLimits::default(),
            dir2.path(),
        )
        .unwrap();
        for i in 0..60u64 {
            plain
                .frame(&jpeg(320, 240, (i * 4) as u8), i as i64 * 200_000)
                .unwrap();
        }
        let plain = plain.finish_video(Duration::from_secs(60)).unwrap();
        assert_eq!(probe(&plain.output).frames, Some(360));
    }
}

#[test]
fn skip_mode_timestamps_are_exact_frame_times() {
    let dir = tempfile::tempdir().unwrap();
    let skip = EncodeSpec {
        skip_held: true,
        ..spec(Format::Mp4, true)
    };
    let mut p =
        EncodingSink::start(Tools::default(), skip, FrameLimits::default(), dir.path()).unwrap();
    for i in 0..90u64 {
        p.frame(
            &jpeg(320, 240, (i * 2) as u8),
            (i as f64 * 1e6 / 30.0).round() as i64,
        )
        .unwrap();
    }
    let done = p.finish_video(Duration::from_secs(60)).unwrap();
    let probe = |what: &str| {
        let out = std::process::Command::new("ffprobe")
            .args(["-v", "error", "-show_entries", what, "-of", "csv=p=0"])
            .arg(&done.output)
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    let tb = probe("stream=time_base");
    let (num, den) = tb.trim().split_once('/').unwrap();
    let (num, den): (i64, i64) = (num.parse().unwrap(), den.parse().unwrap());
    let pts: Vec<i64> = probe("packet=pts")
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert_eq!(pts.len(), 90);
    for (i, p) in pts.iter().enumerate() {
        // pts * num / den == i / 30 exactly.
        assert_eq!(
            p * num * 30,
            i as i64 * den,
            "frame {i} at {p} x {num}/{den}"
        );
    }
}

/// The outside check's crash loop: a frame at 0 and one at 10^12 ms. The
/// second is refused with a reason and the video stays within the
/// recording's limit; a spool that already holds such a frame (written by an
/// older version) recovers within the limit too, instead of running out of
/// memory.
#[test]
fn hostile_timestamps_cannot_make_an_endless_video() {
    use tapedeck_core::timeline::TimelineLimits;
    let limits = TimelineLimits {
        max_out_us: 10_000_000,
        max_ahead_us: 60_000_000,
    };
    let dir = tempfile::tempdir().unwrap();
    let mut p = EncodingSink::start(
        Tools::default(),
        spec(Format::Mp4, true),
        FrameLimits::default(),
        dir.path(),
    )
    .unwrap();
    p.set_limits(limits);
    assert_eq!(
        p.frame(&jpeg(320, 240, 10), 0).unwrap(),
        FrameOutcome::Accepted
    );
    let hostile = p.frame(&jpeg(320, 240, 20), 1_000_000_000_000_000).unwrap();
    match hostile {
        FrameOutcome::Invalid(FrameError::Timestamp(m)) => assert!(m.contains("ahead"), "{m}"),
        other => panic!("{other:?}"),
    }
    // 3601 s in, on a clock that did not jump: past the 10 s limit.
    let past = p.frame(&jpeg(320, 240, 30), 3_601_000_000).unwrap();
    assert!(
        matches!(past, FrameOutcome::Invalid(FrameError::Timestamp(_))),
        "{past:?}"
    );
    assert_eq!(
        p.frame(&jpeg(320, 240, 40), 1_000_000).unwrap(),
        FrameOutcome::Accepted
    );
    let done = p.finish_video(Duration::from_secs(60)).unwrap();
    assert_eq!(done.counters.frames_invalid, 2);
    let m = probe(&done.output);
    assert_eq!(m.frames, Some(60), "two frames, 1 s each, at 30 fps: {m:?}");

    // A spool from before the fix, holding 0 and 3600 s: recovered under the limit.
    let dir = tempfile::tempdir().unwrap();
    let mut spool = tapedeck_media::spool::SpoolWriter::open(
        &dir.path().join(tapedeck_media::sink::encoding::SPOOL_FILE),
    )
    .unwrap();
    spool.append(0, &jpeg(320, 240, 10)).unwrap();
    spool.append(1_000_000, &jpeg(320, 240, 20)).unwrap();
    spool.append(3_600_000_000, &jpeg(320, 240, 30)).unwrap();
    spool.sync().unwrap();
    drop(spool);
    let back = recover(
        &Tools::default(),
        &spec(Format::Mp4, true),
        dir.path(),
        limits,
        Duration::from_secs(60),
    )
    .unwrap();
    let m = probe(&back.output);
    assert_eq!(m.frames, Some(60), "{m:?}");
    assert!(m.duration_s <= 10.0, "{m:?}");
}

/// A deferred sink promoted while it records: an encoder follows the spool
/// as it grows, the lag falls to two pictures (the newest waits for the
/// next to be placed), and the file is the
/// one the same spool encoded after stop makes, picture for picture.
#[test]
fn a_deferred_sink_promoted_mid_way_makes_the_file_an_encode_after_stop_makes() {
    let feed = |p: &mut EncodingSink, range: std::ops::Range<u64>, pace: bool| {
        for i in range {
            let f = if i == 7 {
                b"\xFF\xD8\xFFgarbage".to_vec()
            } else {
                jpeg(320, 240, (i * 9) as u8)
            };
            // Deferred, nothing is decoded as it arrives: all are taken.
            assert_eq!(
                p.frame(&f, i as i64 * 200_000).unwrap(),
                FrameOutcome::Accepted
            );
            if pace {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    };
    let sink = |dir: &Path| {
        EncodingSink::start_deferred(
            Tools::default(),
            spec(Format::Mp4, true),
            FrameLimits::default(),
            dir,
        )
        .unwrap()
    };
    let (early, late) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut promoted = sink(early.path());
    feed(&mut promoted, 0..20, false);
    assert_eq!(
        promoted.encode_lag_us(),
        Some(promoted.counters().duration_us)
    );
    promoted.promote(Duration::from_secs(60)).unwrap();
    feed(&mut promoted, 20..60, true);
    // The encoder catches up with the spool while pictures still come.
    let start = std::time::Instant::now();
    while promoted.encode_lag_us() > Some(400_000) {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "never caught up: {:?} of {}",
            promoted.encode_lag_us(),
            promoted.counters().duration_us
        );
        std::thread::sleep(Duration::from_millis(50));
        promoted.sync().unwrap();
    }
    feed(&mut promoted, 60..70, true);
    let a = promoted.finish_video(Duration::from_secs(60)).unwrap();

    let mut after = sink(late.path());
    feed(&mut after, 0..70, false);
    let b = after.finish_video(Duration::from_secs(60)).unwrap();
    // 69 pictures decoded, the corrupt one counted invalid, 14 s at 30 fps.
    for f in [&a, &b] {
        assert_eq!(f.counters.frames_in, 70, "{f:?}");
        assert_eq!(f.counters.frames_invalid, 1, "{f:?}");
        assert_eq!(probe(&f.output).frames, Some(420), "{f:?}");
    }
    assert_eq!(a.counters, b.counters);
    assert_eq!(frame_md5s(&a.output), frame_md5s(&b.output));
}
