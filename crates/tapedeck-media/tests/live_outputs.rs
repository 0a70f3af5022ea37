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
        sound: None,
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

/// A web page's tab recording as the browser writes it: fragmented MP4,
/// Opus, 10 s; a 440 Hz tone from 2 s on, silent from 3 to 4 s (the span
/// the recording is paused in below).
fn tab_recording(dir: &Path) -> Vec<u8> {
    let out = dir.join("tab.mp4");
    let st = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i"])
        .arg("sine=f=440:d=10:sample_rate=48000,volume=4,volume=volume=0:enable='lt(t,2)+between(t,3,3.999)'")
        .args(["-ac", "2", "-c:a", "libopus", "-b:a", "64k", "-f", "mp4"])
        .args(["-movflags", "+frag_keyframe+empty_moov+default_base_moof"])
        .args(["-frag_duration", "1000000", "-y"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::read(&out).unwrap()
}

/// Mono 48 kHz samples of `file`'s sound.
fn samples(file: &Path) -> Vec<i16> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(file)
        .args([
            "-map", "0:a", "-ac", "1", "-ar", "48000", "-f", "s16le", "-",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// The page's sound under the live segments and the streams' tap: the
/// lead before the first frame and the paused second cut as in the file,
/// every picture kept, the sound as long as the pictures.
#[test]
fn the_page_sound_goes_under_the_live_segments_and_the_tap() {
    use tapedeck_media::ffmpeg::live_sound::{SoundHandle, SoundNews};
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("live.mp4");
    let tap = TapHandle::matroska();
    let sound = SoundHandle::default();
    let live = LiveSpec {
        hls_segment_s: Some(2),
        images: None,
        tap: Some(tap.clone()),
        sound: Some(sound.clone()),
    };
    let (_, units) = tap.0.subscribe(100_000).unwrap();
    let stream = dir.path().join("tapped.mkv");
    let (file, t) = (stream.clone(), tap.0.clone());
    let reader = std::thread::spawn(move || {
        let mut all = vec![];
        for u in units {
            if all.is_empty() {
                all.extend_from_slice(&t.header().expect("a header before the first unit"));
            }
            all.extend_from_slice(&u);
        }
        std::fs::write(file, all).unwrap();
    });
    let mut enc = Encoder::spawn(&Tools::default(), &spec(Format::Mp4, true, live), &out).unwrap();
    // The first frame 0.5 s into the tab recording; paused from 3 to 4 s.
    assert!(sound.send(SoundNews::Lead(0.5)));
    assert!(sound.send(SoundNews::Paused(3.0)));
    assert!(sound.send(SoundNews::Resumed(4.0)));
    let tab = tab_recording(dir.path());
    let feeder = std::thread::spawn(move || {
        for chunk in tab.chunks(4096) {
            sound.send(SoundNews::Bytes(chunk.to_vec()));
            std::thread::sleep(Duration::from_millis(20));
        }
        sound.close();
    });
    for i in 0..210u32 {
        let last = (i == 209).then_some(33_333);
        enc.write_frame(i64::from(i) * 1_000_000 / 30, &picture(i), last, false)
            .unwrap();
    }
    feeder.join().unwrap();
    enc.end_input_and_wait(Duration::from_secs(120)).unwrap();
    reader.join().unwrap();

    let playlist = dir.path().join(live::HLS_DIR).join(live::PLAYLIST);
    let text = std::fs::read_to_string(&playlist).unwrap();
    assert!(text.contains("#EXT-X-ENDLIST"), "{text}");
    let (n, codec) = frames(&playlist);
    assert_eq!((n, codec.as_str()), (210, "h264"), "{text}");
    let a = samples(&playlist);
    let secs = a.len() as f64 / 48_000.0;
    assert!((secs - 7.0).abs() < 0.1, "{secs} s of sound under 7 s");
    let onset = a.iter().position(|x| x.unsigned_abs() > 3000).unwrap() as f64 / 48_000.0;
    assert!(
        (onset - 1.5).abs() < 0.05,
        "the tone starts at {onset} s, not 1.5"
    );
    // The paused second (silent in the tab recording) is cut: the tone
    // goes on to the end, no hole in it.
    let quiet_run = a[(1.6 * 48_000.0) as usize..a.len() - 2_400]
        .chunks(480)
        .filter(|c| c.iter().all(|x| x.unsigned_abs() < 1000))
        .count();
    assert_eq!(quiet_run, 0, "10 ms stretches of silence after the onset");

    // The tap: the same stream, H.264 copied and the sound as PCM.
    let (n, codec) = frames(&stream);
    assert_eq!((n, codec.as_str()), (210, "h264"));
    let t = samples(&stream);
    assert!(
        (t.len() as f64 / 48_000.0 - 7.0).abs() < 0.1,
        "{} samples",
        t.len()
    );
}
