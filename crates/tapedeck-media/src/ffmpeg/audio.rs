//! Laying a recorded audio file under a video, pauses cut out sample-exactly.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tapedeck_core::Format;

use super::{FfmpegError, Tools, run_limited, strings};

/// A recorded audio file to lay under a video.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioTrack {
    /// The file (any format ffmpeg reads).
    pub path: PathBuf,
    /// Seconds of audio before the video's first frame.
    pub lead_s: f64,
    /// Spans of the audio's own time (seconds) that are not in the video
    /// (pauses), in order.
    pub cuts: Vec<(f64, f64)>,
}

/// The `-filter_complex` graph that lays `track` (input 1) under a video of
/// `duration_s`: drops the lead and the cut spans sample-exactly, then pads
/// with silence or trims so the audio lasts exactly as long as the video.
/// Its output is `[aout]`.
pub fn audio_filter(track: &AudioTrack, duration_s: f64) -> String {
    let mut spans = Vec::new();
    let mut from = track.lead_s.max(0.0);
    for &(a, b) in &track.cuts {
        if a > from {
            spans.push((from, Some(a)));
        }
        from = from.max(b);
    }
    spans.push((from, None));
    let trim = |(start, end): (f64, Option<f64>)| match end {
        Some(e) => format!("atrim=start={start:.6}:end={e:.6},asetpts=PTS-STARTPTS"),
        None => format!("atrim=start={start:.6},asetpts=PTS-STARTPTS"),
    };
    let fit = format!("apad=whole_dur={duration_s:.6},atrim=end={duration_s:.6}");
    if spans.len() == 1 {
        return format!("[1:a]{},{fit}[aout]", trim(spans[0]));
    }
    let n = spans.len();
    let mut g = format!("[1:a]asplit={n}");
    for i in 0..n {
        g.push_str(&format!("[i{i}]"));
    }
    for (i, span) in spans.iter().enumerate() {
        g.push_str(&format!(";[i{i}]{}[s{i}]", trim(*span)));
    }
    g.push(';');
    for i in 0..n {
        g.push_str(&format!("[s{i}]"));
    }
    g.push_str(&format!("concat=n={n}:v=0:a=1,{fit}[aout]"));
    g
}

/// Muxes `video` (copied) with `track` (AAC in MP4, Opus otherwise) into `out`.
pub fn add_audio(
    tools: &Tools,
    video: &Path,
    track: &AudioTrack,
    format: Format,
    audio_bitrate_kbps: u32,
    duration_s: f64,
    out: &Path,
) -> Result<(), FfmpegError> {
    let mut a: Vec<String> = strings(&["-v", "error", "-i"]);
    a.push(video.display().to_string());
    a.push("-i".into());
    a.push(track.path.display().to_string());
    a.extend([
        "-filter_complex".into(),
        audio_filter(track, duration_s),
        "-map".into(),
        "0:v".into(),
        "-map".into(),
        "[aout]".into(),
        "-c:v".into(),
        "copy".into(),
        "-c:a".into(),
        if format == Format::Mp4 {
            "aac"
        } else {
            "libopus"
        }
        .into(),
        "-b:a".into(),
        format!("{}k", audio_bitrate_kbps.max(16)),
    ]);
    match format {
        Format::Mp4 => a.extend(strings(&["-movflags", "+faststart", "-f", "mp4"])),
        Format::Webm => a.extend(strings(&["-f", "webm"])),
        Format::Mkv => a.extend(strings(&["-f", "matroska"])),
    }
    a.extend(["-y".into(), out.display().to_string()]);
    run_limited(tools, &tools.ffmpeg, &a, Duration::from_secs(3600)).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_filter_drops_the_lead_and_pauses_exactly() {
        let t = |lead_s, cuts: Vec<(f64, f64)>| AudioTrack {
            path: "a.mp4".into(),
            lead_s,
            cuts,
        };
        assert_eq!(
            audio_filter(&t(0.25, vec![]), 4.0),
            "[1:a]atrim=start=0.250000,asetpts=PTS-STARTPTS,\
             apad=whole_dur=4.000000,atrim=end=4.000000[aout]"
        );
        assert_eq!(
            audio_filter(&t(0.1, vec![(1.0, 2.5)]), 3.0),
            "[1:a]asplit=2[i0][i1];\
             [i0]atrim=start=0.100000:end=1.000000,asetpts=PTS-STARTPTS[s0];\
             [i1]atrim=start=2.500000,asetpts=PTS-STARTPTS[s1];\
             [s0][s1]concat=n=2:v=0:a=1,apad=whole_dur=3.000000,atrim=end=3.000000[aout]"
        );
        // A pause before the video started only moves the start.
        assert_eq!(
            audio_filter(&t(0.5, vec![(0.2, 0.8)]), 1.0),
            "[1:a]atrim=start=0.800000,asetpts=PTS-STARTPTS,\
             apad=whole_dur=1.000000,atrim=end=1.000000[aout]"
        );
    }
}
