//! ffmpeg's arguments for the encoding sink: raw frames in a Matroska
//! stream on stdin, encoded by x264 or VP9; in skip-held mode, distinct
//! frames to an Annex B stream and a second ffmpeg that wraps it.

use std::path::Path;

use tapedeck_core::Format;

use super::live::{self, LiveSpec};
use super::strings;

/// What to encode: output size, rate, format and quality.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeSpec {
    /// Output width.
    pub width: u32,
    /// Output height.
    pub height: u32,
    /// Output frame rate.
    pub fps: u32,
    /// Constant frame rate (hold frames) or variable.
    pub cfr: bool,
    /// Container and codecs.
    pub format: Format,
    /// Bitrate cap, kbit/s.
    pub video_bitrate_kbps: u32,
    /// x264 speed preset (`veryfast`, ...).
    pub x264_preset: String,
    /// x264 CRF / VP9 CRF quality.
    pub crf: u32,
    /// CFR H.264 only: encode distinct frames and write held ticks as skip
    /// pictures ([`crate::h264`]) instead of encoding repeats.
    pub skip_held: bool,
    /// Encoder threads; `None` lets the encoder choose (several per
    /// encoder). One when many recordings share the cores: no frame
    /// threads' buffers, no handing work between threads.
    pub threads: Option<u32>,
    /// What the live encode writes besides its file (HLS, pictures); the
    /// encoder then runs in the output's folder.
    pub live: LiveSpec,
}

impl EncodeSpec {
    /// Whether this spec uses skip pictures for held frames.
    pub fn uses_skip_held(&self) -> bool {
        self.skip_held && self.cfr && matches!(self.format, Format::Mp4 | Format::Mkv)
    }
}

/// Raw frames in a Matroska stream on stdin, with `-benchmark` for the CPU figure.
fn raw_input() -> Vec<String> {
    strings(&[
        "-hide_banner",
        "-nostats",
        "-benchmark",
        "-loglevel",
        "info",
        "-f",
        "matroska",
        "-i",
        "pipe:0",
    ])
}

/// x264 at the spec's quality, capped at its bitrate.
fn x264(spec: &EncodeSpec) -> Vec<String> {
    let br = spec.video_bitrate_kbps;
    let mut a = strings(&[
        "-c:v",
        "libx264",
        "-preset",
        &spec.x264_preset,
        "-crf",
        &spec.crf.to_string(),
    ]);
    a.extend(strings(&[
        "-maxrate",
        &format!("{br}k"),
        "-bufsize",
        &format!("{}k", br * 2),
        // The cap gives way before a picture does: past QP 45 x264 codes a
        // frame the cap cannot pay for as skips, the previous picture again
        // (measured: 4K60 text scrolling under a 2.5 Mbit/s cap repeated
        // 11 % of its pictures; at most QP 45, none, at twice the cap).
        "-qmax",
        "45",
    ]));
    a.extend(threads(spec));
    if spec.live.hls_segment_s.is_some() {
        // Keyframes only where segments begin: every segment as long as
        // asked (x264 would add one at each scene cut).
        a.extend(strings(&["-sc_threshold", "0"]));
    }
    a
}

fn threads(spec: &EncodeSpec) -> Vec<String> {
    spec.threads
        .map(|n| strings(&["-threads", &n.to_string()]))
        .unwrap_or_default()
}

/// ffmpeg arguments to encode a Matroska stream of raw frames from stdin to `output`.
pub fn encode_args(spec: &EncodeSpec, output: &Path) -> Vec<String> {
    let mut a = raw_input();
    if spec.cfr {
        a.extend(strings(&["-fps_mode", "cfr", "-r", &spec.fps.to_string()]));
    } else {
        a.extend(strings(&["-fps_mode", "vfr"]));
    }
    a.extend(video_codec(spec));
    a.extend(strings(&["-pix_fmt", "yuv420p", "-an"]));
    match spec.live.hls_segment_s {
        // One encode, two muxers: the file and the HLS segments.
        Some(seg) => {
            let name = file_name(output);
            let (muxer, opts) = match spec.format {
                Format::Mp4 => ("mp4", ":movflags=+faststart"),
                Format::Webm => ("webm", ""),
                Format::Mkv => ("matroska", ""),
            };
            a.extend(strings(&["-map", "0:v", "-f", "tee"]));
            a.push(format!(
                "[f={muxer}{opts}]{name}|{}",
                live::hls_tee_slave(seg)
            ));
        }
        None if spec.live.any() => a.extend(muxer(spec, Path::new(&file_name(output)))),
        None => a.extend(muxer(spec, output)),
    }
    a.extend(images(spec));
    a
}

/// The output's file name: with live outputs ffmpeg runs in its folder.
fn file_name(output: &Path) -> String {
    output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The pictures output, when asked for.
fn images(spec: &EncodeSpec) -> Vec<String> {
    spec.live
        .images
        .map(|(every_s, width)| live::images_output(every_s, width))
        .unwrap_or_default()
}

/// The video encoder of the spec's format: x264 for MP4/MKV, VP9 for WebM,
/// a keyframe every 4 s (with HLS, at the start of every segment).
pub(super) fn video_codec(spec: &EncodeSpec) -> Vec<String> {
    let key_s = spec.live.keyframe_s();
    let gop = (spec.fps * key_s).to_string();
    let mut a = vec![];
    if spec.live.hls_segment_s.is_some() {
        a.extend(strings(&[
            "-force_key_frames",
            &format!("expr:gte(t,n_forced*{key_s})"),
        ]));
    }
    match spec.format {
        Format::Mp4 | Format::Mkv => {
            a.extend(x264(spec));
            a.extend(strings(&["-g", &gop]));
        }
        Format::Webm => a.extend(strings(&[
            "-c:v",
            "libvpx-vp9",
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
            "-row-mt",
            "1",
            "-threads",
            &spec.threads.unwrap_or(2).to_string(),
            "-crf",
            &(spec.crf + 10).to_string(),
            "-b:v",
            &format!("{}k", spec.video_bitrate_kbps),
            "-g",
            &gop,
        ])),
    }
    a
}

/// The muxer of the spec's format, writing `output`.
fn muxer(spec: &EncodeSpec, output: &Path) -> Vec<String> {
    let mut a = vec![];
    let muxer = match spec.format {
        Format::Mp4 => {
            a.extend(strings(&["-movflags", "+faststart"]));
            "mp4"
        }
        Format::Webm => "webm",
        Format::Mkv => "matroska",
    };
    a.extend(strings(&["-f", muxer, "-y", &output.display().to_string()]));
    a
}

/// ffmpeg arguments to transcode a media file (an upload) to the spec:
/// scaled to fit its size and letterboxed, at its rate, in its format's
/// codecs (H.264/AAC for MP4 and MKV, VP9/Opus for WebM); the first video
/// and audio streams, either may be missing.
pub fn transcode_args(spec: &EncodeSpec, input: &Path, output: &Path) -> Vec<String> {
    let (w, h) = (spec.width, spec.height);
    let mut a = strings(&["-hide_banner", "-nostats", "-loglevel", "error", "-i"]);
    a.push(input.display().to_string());
    a.extend(strings(&["-map", "0:v:0?", "-map", "0:a:0?"]));
    a.extend(strings(&[
        "-vf",
        &format!(
            "scale={w}:{h}:force_original_aspect_ratio=decrease,pad={w}:{h}:(ow-iw)/2:(oh-ih)/2,setsar=1"
        ),
        "-r",
        &spec.fps.to_string(),
    ]));
    a.extend(video_codec(spec));
    a.extend(strings(&["-pix_fmt", "yuv420p"]));
    let kbps = match spec.format {
        Format::Webm => 96,
        Format::Mp4 | Format::Mkv => 128,
    };
    a.extend(audio_codec(spec.format, kbps));
    a.extend(muxer(spec, output));
    a
}

/// The audio encoder of `format`: AAC for MP4/MKV, Opus for WebM.
pub(super) fn audio_codec(format: Format, kbps: u32) -> Vec<String> {
    let codec = match format {
        Format::Webm => "libopus",
        Format::Mp4 | Format::Mkv => "aac",
    };
    strings(&["-c:a", codec, "-b:a", &format!("{kbps}k")])
}

/// ffmpeg arguments of the skip-held mode: distinct frames in, H.264 Annex B
/// out on stdout (no B-frames, one reference, keyframes every 4 s of output).
pub fn distinct_args(spec: &EncodeSpec) -> Vec<String> {
    let mut a = raw_input();
    // Frames keep their own (tick-aligned) times; the encoder counts in
    // ticks. Not `-r N`: ffmpeg 6.0 and later refuse it beside passthrough
    // ("contradictory").
    a.extend(strings(&[
        "-fps_mode",
        "passthrough",
        "-enc_time_base",
        &format!("1/{}", spec.fps),
    ]));
    a.extend(x264(spec));
    a.extend(strings(&[
        "-bf",
        "0",
        "-refs",
        "1",
        "-g",
        "100000",
        "-force_key_frames",
        &format!("expr:gte(t,n_forced*{})", spec.live.keyframe_s()),
    ]));
    a.extend(strings(&[
        "-pix_fmt", "yuv420p", "-an", "-f", "h264", "pipe:1",
    ]));
    a.extend(images(spec));
    a
}

/// ffmpeg arguments that wrap the spliced Annex B stream in `input` at
/// `fps` into the container.
pub fn mux_args(spec: &EncodeSpec, input: &Path, output: &Path) -> Vec<String> {
    let mut a: Vec<String> = [
        "-hide_banner",
        "-nostats",
        "-benchmark",
        "-loglevel",
        "info",
        "-f",
        "h264",
        "-framerate",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    a.extend([
        spec.fps.to_string(),
        "-i".into(),
        input.display().to_string(),
        "-c:v".into(),
        "copy".into(),
        "-an".into(),
    ]);
    if spec.format == Format::Mp4 {
        // The raw H.264 demuxer counts in 1/1200000 s, which puts some frames a
        // microsecond early; ffmpeg's usual track timescale rounds them back onto
        // exact frame times.
        a.extend([
            "-video_track_timescale".into(),
            (spec.fps * 512).to_string(),
            "-movflags".into(),
            "+faststart".into(),
            "-f".into(),
            "mp4".into(),
        ]);
    } else {
        a.extend(["-f".into(), "matroska".into()]);
    }
    a.extend(["-y".into(), output.display().to_string()]);
    a
}

/// 720p30 MP4 at x264 veryfast, for the tests of the argument builders.
#[cfg(test)]
pub(super) fn test_spec() -> EncodeSpec {
    EncodeSpec {
        width: 1280,
        height: 720,
        fps: 30,
        cfr: true,
        format: Format::Mp4,
        video_bitrate_kbps: 2500,
        x264_preset: "veryfast".into(),
        crf: 23,
        skip_held: false,
        threads: None,
        live: LiveSpec::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cfr_and_vfr_args() {
        let spec = test_spec();
        let a = encode_args(&spec, Path::new("o.mp4")).join(" ");
        assert!(
            a.contains("-fps_mode cfr -r 30") && a.contains("libx264") && a.contains("+faststart"),
            "{a}"
        );
        let a = encode_args(
            &EncodeSpec {
                cfr: false,
                format: Format::Webm,
                ..spec.clone()
            },
            Path::new("o.webm"),
        )
        .join(" ");
        assert!(
            a.contains("-fps_mode vfr") && a.contains("libvpx-vp9") && !a.contains("faststart"),
            "{a}"
        );
        let one = EncodeSpec {
            threads: Some(1),
            ..spec.clone()
        };
        assert!(
            encode_args(&one, Path::new("o.mp4"))
                .join(" ")
                .contains("-threads 1"),
        );
        assert!(!encode_args(&spec, Path::new("o.mp4")).contains(&"-threads".to_string()));
    }
}
