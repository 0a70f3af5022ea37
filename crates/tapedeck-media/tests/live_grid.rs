//! A call's live grid against the real ffmpeg, without a browser: two VP8
//! cameras (made by ffmpeg, one red, one blue) and one Opus microphone fed
//! frame by frame as a recording would; Ann alone first, then Bob joins.
//! The live pictures show Ann across the whole grid, then Ann left and Bob
//! right; the live segments carry H.264 and AAC and end with the call. On
//! every ffmpeg users have (Debian's 5.1, static 7.0.2 and 8.0).

use std::path::Path;
use std::time::Duration;

use tapedeck_core::Format;
use tapedeck_core::recording::TrackFile;
use tapedeck_core::track::{TrackCodec, TrackKind};
use tapedeck_media::ffmpeg::grid_live::LiveGrid;
use tapedeck_media::ffmpeg::{EncodeSpec, LiveSpec, Tools, live};

/// The frames of an IVF file.
fn ivf_frames(p: &Path) -> Vec<Vec<u8>> {
    let d = std::fs::read(p).unwrap();
    let (mut at, mut out) = (32, vec![]);
    while at + 12 <= d.len() {
        let n = u32::from_le_bytes(d[at..at + 4].try_into().unwrap()) as usize;
        out.push(d[at + 12..at + 12 + n].to_vec());
        at += 12 + n;
    }
    out
}

/// A VP8 camera of one colour, 15 fps, 4 s.
fn camera(dir: &Path, name: &str, colour: &str) -> Vec<Vec<u8>> {
    let p = dir.join(format!("{name}.ivf"));
    let ok = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i"])
        .arg(format!("color=c={colour}:s=320x180:r=15:d=4"))
        .args(["-c:v", "libvpx", "-g", "15", "-b:v", "200k"])
        .arg(&p)
        .status()
        .unwrap();
    assert!(ok.success());
    ivf_frames(&p)
}

fn track(id: &str, who: &str, kind: TrackKind, codec: TrackCodec, start_s: f64) -> TrackFile {
    TrackFile {
        id: id.into(),
        participant: who.into(),
        kind,
        source: None,
        codec,
        start_s,
        duration_s: 0.0,
        size_bytes: 0,
        container: "webm".into(),
    }
}

/// The mean (R, G, B) of a 20x20 patch around (x, y) of a JPEG.
fn colour_at(jpeg: &Path, x: u32, y: u32) -> (u32, u32, u32) {
    let img = image::open(jpeg).unwrap().to_rgb8();
    let (mut r, mut g, mut b) = (0, 0, 0);
    for dy in 0..20 {
        for dx in 0..20 {
            let p = img.get_pixel(x - 10 + dx, y - 10 + dy);
            (r, g, b) = (
                r + u32::from(p[0]),
                g + u32::from(p[1]),
                b + u32::from(p[2]),
            );
        }
    }
    (r / 400, g / 400, b / 400)
}

#[test]
fn a_second_camera_joins_the_live_grid_beside_the_first() {
    for b in tapedeck_testkit::ffmpeg_builds() {
        let tools = Tools {
            ffmpeg: b.ffmpeg.clone(),
            ffprobe: b.ffprobe.clone(),
            ..Tools::default()
        };
        eprintln!("ffmpeg {}", b.label);
        call_on(&tools);
    }
}

fn call_on(tools: &Tools) {
    let dir = tempfile::tempdir().unwrap();
    let ann = camera(dir.path(), "ann", "red");
    let bob = camera(dir.path(), "bob", "blue");
    let spec = EncodeSpec {
        width: 640,
        height: 360,
        fps: 15,
        cfr: true,
        format: Format::Mp4,
        video_bitrate_kbps: 800,
        x264_preset: "veryfast".into(),
        crf: 23,
        skip_held: true,
        threads: Some(1),
        live: LiveSpec {
            hls_segment_s: Some(1),
            images: Some((1, 320)),
            tap: None,
            sound: None,
        },
    };
    let work = dir.path().join("work");
    let grid = LiveGrid::start(tools, &spec, 64, &work).unwrap();
    let t_ann = track("t1", "Ann", TrackKind::Video, TrackCodec::Vp8, 0.0);
    let t_bob = track("t2", "Bob", TrackKind::Video, TrackCodec::Vp8, 2.0);
    let t_mic = track("t3", "Ann", TrackKind::Audio, TrackCodec::Opus, 0.0);
    grid.tracks(vec![t_ann.clone(), t_mic.clone()]);
    // 4 s in real time: Ann's camera from the start, Bob's from 2 s; an
    // Opus packet that is not valid sound (the decoder must not hold the
    // grid up for it).
    for i in 0..60usize {
        let at_us = (i as i64) * 1_000_000 / 15;
        if i == 30 {
            grid.tracks(vec![t_ann.clone(), t_mic.clone(), t_bob.clone()]);
        }
        grid.frame("t1", TrackCodec::Vp8, &ann[i], i % 15 == 0, at_us);
        if i >= 30 {
            grid.frame(
                "t2",
                TrackCodec::Vp8,
                &bob[i - 30],
                (i - 30) % 15 == 0,
                at_us,
            );
        }
        grid.frame("t3", TrackCodec::Opus, &[0xfc, 0xff, 0xfe], true, at_us);
        std::thread::sleep(Duration::from_micros(1_000_000 / 15));
    }
    grid.finish().unwrap();

    let images = live::list(&work.join(live::IMAGES_DIR), live::is_image_name);
    assert!(images.len() >= 3, "{images:?}");
    let pic = |n: &str| work.join(live::IMAGES_DIR).join(n);
    // At 1 s: Ann alone, red across the grid (a 16:9 picture fills it).
    let (r, _, b) = colour_at(&pic(&images[1]), 80, 90);
    assert!(r > 150 && b < 80, "Ann at 1 s, left: {:?}", (r, b));
    let (r, _, b) = colour_at(&pic(&images[1]), 240, 90);
    assert!(r > 150 && b < 80, "Ann at 1 s, right: {:?}", (r, b));
    // At 3 s: Ann left, Bob right.
    let last = images.len().min(4) - 1;
    let (r, _, b) = colour_at(&pic(&images[last]), 80, 90);
    assert!(r > 150 && b < 80, "Ann at 3 s: {:?}", (r, b));
    let (r, _, b) = colour_at(&pic(&images[last]), 240, 90);
    assert!(b > 150 && r < 80, "Bob at 3 s: {:?}", (r, b));

    // The live playlist ended with the call: H.264 and AAC, about 4 s.
    let playlist = work.join(live::HLS_DIR).join(live::PLAYLIST);
    let text = std::fs::read_to_string(&playlist).unwrap();
    assert!(text.contains("#EXT-X-ENDLIST"), "{text}");
    let d = tapedeck_testkit::decode_count(&playlist.display().to_string());
    assert_eq!(d.codec, "h264");
    assert!((3.0..5.0).contains(&d.duration_s), "{d:?}");
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "a:0",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "csv=p=0",
        ])
        .arg(&playlist)
        .output()
        .unwrap();
    // (listed under the playlist's program too)
    let codecs = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(codecs.lines().next(), Some("aac"), "{codecs}");
}
