//! What the live encode writes beside its file (HLS segments, pictures),
//! against the real ffmpeg, checked with ffprobe: the playlist holds the
//! same pictures as the file, segments start at the forced keyframes.

use std::path::Path;
use std::time::Duration;

use tapedeck_core::Format;
use tapedeck_media::ffmpeg::tap::TapHandle;
use tapedeck_media::ffmpeg::{EncodeSpec, Encoder, LiveSpec, Tools, live};

fn spec(format: Format, skip_held: bool, live: LiveSpec) -> EncodeSpec {
    EncodeSpec {
        width: 320,
        height: 240,
        fps: 30,
        cfr: true,
        format,
        video_bitrate_kbps: 800,
        x264_preset: "veryfast".into(),
        crf: 23,
        skip_held,
        threads: Some(1),
        live,
    }
}

/// Frames and codec of the first video stream, decoded by ffprobe.
fn frames(p: &Path) -> (u64, String) {
    let d = tapedeck_testkit::decode_count(&p.display().to_string());
    (d.frames, d.codec)
}

/// A picture that differs each frame (a moving bar), I420.
fn picture(i: u32) -> Vec<u8> {
    let (w, h) = (320usize, 240usize);
    let mut p = vec![128u8; w * h * 3 / 2];
    let x0 = (i as usize * 7) % w;
    for y in 0..h {
        for x in x0..(x0 + 20).min(w) {
            p[y * w + x] = 235;
        }
    }
    p
}

/// Encodes 7 s at 30 fps (holding pictures 60-89 in skip-held mode) with
/// HLS of 2 s segments and a picture every 2 s, 160 wide.
fn encode(format: Format, skip_held: bool) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join(format!("live.{}", format.extension()));
    let tap = TapHandle::default();
    let live = LiveSpec {
        hls_segment_s: Some(2),
        images: Some((2, 160)),
        tap: Some(tap.clone()),
    };
    // A stream's subscriber from the start: every picture, as made.
    let (_, units) = tap.0.subscribe(1000).unwrap();
    let stream = dir.path().join("tapped.h264");
    let file = stream.clone();
    let reader = std::thread::spawn(move || {
        let mut all = vec![];
        let mut first_is_key = None;
        for u in units {
            first_is_key.get_or_insert(
                u.windows(5)
                    .any(|w| w[..4] == [0, 0, 0, 1] && w[4] & 0x1f == 5),
            );
            all.extend_from_slice(&u);
        }
        std::fs::write(file, all).unwrap();
        first_is_key
    });
    let mut enc = Encoder::spawn(&Tools::default(), &spec(format, skip_held, live), &out).unwrap();
    for i in 0..210u32 {
        let held = (60..90).contains(&i);
        let last = (i == 209).then_some(33_333);
        let pic = picture(if held { 59 } else { i });
        enc.write_frame(i64::from(i) * 1_000_000 / 30, &pic, last, held)
            .unwrap();
    }
    enc.end_input_and_wait(Duration::from_secs(120)).unwrap();
    let first_is_key = reader.join().unwrap();
    if skip_held {
        // The tap ended with the encode, and had every picture.
        assert_eq!(first_is_key, Some(true));
        assert_eq!(frames(&stream), (210, "h264".to_string()));
    } else {
        assert_eq!(first_is_key, None, "only skip-held mode is tapped");
    }
    assert!(tap.0.is_closed());
    (dir, out)
}

fn check(format: Format, skip_held: bool, codec: &str) {
    let (dir, out) = encode(format, skip_held);
    let hls = dir.path().join(live::HLS_DIR);
    let playlist = std::fs::read_to_string(hls.join(live::PLAYLIST)).unwrap();
    assert!(playlist.contains("#EXT-X-ENDLIST"), "{playlist}");
    let segments = live::segments(&playlist);
    // 7 s in segments cut at the keyframes forced every 2 s.
    assert_eq!(segments.len(), 4, "{playlist}");
    assert!(segments.iter().all(|s| live::is_hls_name(s)), "{playlist}");
    let (file_frames, file_codec) = frames(&out);
    let (hls_frames, hls_codec) = frames(&hls.join(live::PLAYLIST));
    assert_eq!((file_frames, file_codec.as_str()), (210, codec));
    assert_eq!((hls_frames, hls_codec.as_str()), (210, codec), "{playlist}");
    // A picture at 0, 2, 4 and 6 s, 160 wide.
    let mut images: Vec<_> = std::fs::read_dir(dir.path().join(live::IMAGES_DIR))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    images.sort();
    assert!(images.iter().all(|n| live::is_image_name(n)), "{images:?}");
    assert_eq!(images.len(), 4, "{images:?}");
    let first = image::open(dir.path().join(live::IMAGES_DIR).join(&images[0])).unwrap();
    assert_eq!((first.width(), first.height()), (160, 120));
}

#[test]
fn skip_held_mp4_segments_the_spliced_stream() {
    check(Format::Mp4, true, "h264");
}

#[test]
fn an_encoded_mp4_tees_its_segments() {
    check(Format::Mp4, false, "h264");
}

#[test]
fn vp9_webm_tees_its_segments() {
    check(Format::Webm, false, "vp9");
}

#[test]
fn a_finished_file_is_segmented_and_sampled_after() {
    let (_dir, out) = encode(Format::Webm, false);
    let work = tempfile::tempdir().unwrap();
    let tools = Tools::default();
    live::hls_from_file(&tools, &out, work.path(), 2).unwrap();
    let hls = work.path().join(live::HLS_DIR);
    let playlist = std::fs::read_to_string(hls.join(live::PLAYLIST)).unwrap();
    assert!(playlist.contains("#EXT-X-PLAYLIST-TYPE:VOD"), "{playlist}");
    assert_eq!(frames(&hls.join(live::PLAYLIST)), (210, "vp9".to_string()));
    live::images_from_file(&tools, &out, work.path(), 3, 64).unwrap();
    let images = live::list(&work.path().join(live::IMAGES_DIR), live::is_image_name);
    // 0, 3 and 6 s of 7 s.
    assert_eq!(images, ["00001.jpg", "00002.jpg", "00003.jpg"]);
}
