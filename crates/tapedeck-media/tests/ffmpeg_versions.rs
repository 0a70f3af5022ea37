//! Every encoder path on the ffmpeg users have: Debian's (5.1 on bookworm)
//! and current static builds (7.0.2 and 8.0). Frames to MP4, MKV and WebM,
//! CFR and VFR, skip pictures on and off, audio laid under the video,
//! thumbnails and probing, each checked with Debian's ffprobe and a full
//! decode.

use std::io::Cursor;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use tapedeck_core::Format;
use tapedeck_media::ffmpeg::{self, AudioTrack, EncodeSpec, Tools};
use tapedeck_media::picture::FrameLimits;
use tapedeck_media::sink::encoding::{EncodingSink, FrameOutcome};
use tapedeck_testkit::{FfmpegBuild, ffmpeg_builds, ffprobe, run_ok};

fn jpeg(shade: u8) -> Vec<u8> {
    let img = image::RgbImage::from_fn(320, 240, |x, y| {
        image::Rgb([shade, (x % 256) as u8, (y % 256) as u8])
    });
    let mut out = Cursor::new(vec![]);
    img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

fn spec(format: Format, cfr: bool, skip_held: bool) -> EncodeSpec {
    EncodeSpec {
        width: 320,
        height: 240,
        fps: 30,
        cfr,
        format,
        video_bitrate_kbps: 800,
        x264_preset: "veryfast".into(),
        crf: 23,
        skip_held,
        threads: None,
        live: Default::default(),
    }
}

fn tools(b: &FfmpegBuild) -> Tools {
    Tools {
        ffmpeg: b.ffmpeg.clone(),
        ffprobe: b.ffprobe.clone(),
        ..Tools::default()
    }
}

/// Decodes every frame with Debian's ffmpeg; any error fails.
fn decodes_cleanly(path: &Path) {
    let out = run_ok(
        Command::new("ffmpeg")
            .args(["-v", "error", "-xerror", "-i"])
            .arg(path)
            .args(["-f", "null", "-"]),
        "decoding every frame",
    );
    assert!(
        out.stderr.is_empty(),
        "{}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// 2 s of frames at 5 fps (a pause in the middle) through the encoding sink.
fn encode(b: &FfmpegBuild, dir: &Path, s: EncodeSpec) -> std::path::PathBuf {
    let work = dir.join(format!("{:?}-{}-{}", s.format, s.cfr, s.skip_held));
    let mut sink = EncodingSink::start(tools(b), s, FrameLimits::default(), &work)
        .unwrap_or_else(|e| panic!("ffmpeg {}: {e}", b.label));
    for i in 0..10u8 {
        if i == 5 {
            sink.pause();
            sink.resume();
        }
        let r = sink.frame(&jpeg(i * 20), i64::from(i) * 200_000);
        assert_eq!(
            r.unwrap_or_else(|e| panic!("ffmpeg {}: {e}", b.label)),
            FrameOutcome::Accepted
        );
    }
    let done = sink
        .finish_video(Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("ffmpeg {}: {e}", b.label));
    assert!(
        !done.rebuilt_from_spool,
        "ffmpeg {}: the live encoder failed",
        b.label
    );
    // Skip-held mode's spliced stream is wrapped at the end and removed.
    let left: Vec<_> = std::fs::read_dir(&work)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".h264"))
        .collect();
    assert!(left.is_empty(), "ffmpeg {}: {left:?} left", b.label);
    done.output
}

#[test]
fn every_encoder_path_on_every_ffmpeg() {
    for b in ffmpeg_builds() {
        let dir = tempfile::tempdir().unwrap();
        let t = tools(&b);
        // What doctor and /readyz run: a real two-frame encode per path.
        for s in [
            spec(Format::Mp4, true, true),
            spec(Format::Webm, true, false),
        ] {
            ffmpeg::check_encode(&t, &s)
                .unwrap_or_else(|e| panic!("ffmpeg {}: {:?}: {e}", b.label, s.format));
        }
        let broken = EncodeSpec {
            x264_preset: "no-such-preset".into(),
            ..spec(Format::Mp4, true, true)
        };
        assert!(
            ffmpeg::check_encode(&t, &broken).is_err(),
            "ffmpeg {}",
            b.label
        );
        for (format, cfr, skip, codec) in [
            (Format::Mp4, true, true, "h264"),
            (Format::Mp4, true, false, "h264"),
            (Format::Mkv, true, true, "h264"),
            (Format::Mp4, false, false, "h264"),
            (Format::Webm, true, false, "vp9"),
            (Format::Webm, false, false, "vp9"),
        ] {
            let what = format!("ffmpeg {} {format:?} cfr={cfr} skip={skip}", b.label);
            let out = encode(&b, dir.path(), spec(format, cfr, skip));
            let m = ffprobe(&out);
            assert_eq!(
                (m.codec.as_str(), m.width, m.height),
                (codec, 320, 240),
                "{what}"
            );
            assert!(
                (m.duration_s - 2.0).abs() <= 1.0 / 30.0 + 1e-3,
                "{what}: {m:?}"
            );
            if cfr {
                assert_eq!(m.frames, 60, "{what}: {m:?}");
            } else {
                assert_eq!(
                    m.frames,
                    10 + 1,
                    "{what}: ten frames and the held last: {m:?}"
                );
            }
            decodes_cleanly(&out);

            // Probing with this build's ffprobe agrees with Debian's.
            let info = ffmpeg::probe(&t, &out).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(info.frames, Some(m.frames), "{what}");

            // Thumbnails.
            let (poster, strip) = (dir.path().join("p.jpg"), dir.path().join("s.jpg"));
            ffmpeg::poster(&t, &out, info.duration_s * 0.25, &poster)
                .unwrap_or_else(|e| panic!("{what}: poster: {e}"));
            ffmpeg::strip(&t, &out, info.duration_s, 10, None, &strip)
                .unwrap_or_else(|e| panic!("{what}: strip: {e}"));
            assert_eq!(ffprobe(&poster).width, 320, "{what}");
            assert_eq!(ffprobe(&strip).width, 1600, "{what}");

            // Audio under the video: AAC in MP4, Opus otherwise, cut at a pause.
            if cfr {
                let audio = dir.path().join("tab-audio.webm");
                run_ok(
                    Command::new(&b.ffmpeg)
                        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
                        .arg("sine=frequency=440:sample_rate=48000:duration=4")
                        .args(["-c:a", "libopus"])
                        .arg(&audio),
                    &format!("{what}: making audio"),
                );
                let track = AudioTrack {
                    path: audio,
                    lead_s: 0.2,
                    cuts: vec![(1.0, 1.5)],
                };
                let muxed = dir
                    .path()
                    .join(format!("with-audio.{}", format.extension()));
                ffmpeg::add_audio(&t, &out, &track, format, 96, info.duration_s, &muxed)
                    .unwrap_or_else(|e| panic!("{what}: audio: {e}"));
                let with = ffmpeg::probe(&tapedeck_media::ffmpeg::Tools::default(), &muxed)
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                let want = if format == Format::Mp4 { "aac" } else { "opus" };
                assert_eq!(with.audio_codec.as_deref(), Some(want), "{what}");
                assert_eq!(with.frames, Some(60), "{what}: video copied");
                decodes_cleanly(&muxed);
            }
        }
    }
}
