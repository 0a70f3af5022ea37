//! What the live encode writes beside its file: HLS (CMAF segments and a
//! playlist, from the encoder's own bytes: its tee muxer, or in skip-held
//! mode a copy of the spliced stream) and a picture every N seconds (a
//! second output of the same ffmpeg). ffmpeg runs in the work folder, so
//! every name here is relative to it and no path needs escaping for the
//! tee muxer.

use std::path::Path;
use std::time::Duration;

use super::{FfmpegError, Tools, run_limited, strings};
pub use tapedeck_core::output::Target;

/// The HLS folder's name in the work folder (and under the recording's key).
pub const HLS_DIR: &str = "hls";
/// The pictures folder's name in the work folder.
pub const IMAGES_DIR: &str = "images";
/// The playlist's file name.
pub const PLAYLIST: &str = "index.m3u8";
/// The init segment's file name.
pub const INIT: &str = "init.mp4";

/// What the live encode writes besides its file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveSpec {
    /// HLS segments of this many seconds (a keyframe starts each).
    pub hls_segment_s: Option<u32>,
    /// A picture every `.0` seconds, `.1` pixels wide.
    pub images: Option<(u32, u32)>,
    /// Where the encoded pictures go as they are made (streams), in
    /// skip-held mode.
    pub tap: Option<super::tap::TapHandle>,
    /// The page's sound as the web recorder reads it, laid under the live
    /// segments and streams (skip-held mode, with HLS; `live_mux`).
    pub sound: Option<super::live_sound::SoundHandle>,
}

impl LiveSpec {
    /// Whether anything is written beside the file.
    pub fn any(&self) -> bool {
        self.hls_segment_s.is_some() || self.images.is_some()
    }

    /// Seconds between forced keyframes: a segment's length, else 4.
    pub fn keyframe_s(&self) -> u32 {
        self.hls_segment_s.unwrap_or(4)
    }
}

/// Whether `name` is a file the HLS folder may hold (what a request may
/// ask for by name): the playlist, the init segment, or `sNNNNN.m4s`.
pub fn is_hls_name(name: &str) -> bool {
    name == PLAYLIST
        || name == INIT
        || name
            .strip_prefix('s')
            .and_then(|r| r.strip_suffix(".m4s"))
            .is_some_and(|n| (5..=9).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Whether `name` is a picture's file name (`NNNNN.jpg`).
pub fn is_image_name(name: &str) -> bool {
    name.strip_suffix(".jpg")
        .is_some_and(|n| (5..=9).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The HLS muxer's options as `(name, value)`: fMP4 segments of about
/// `segment_s` cut at the keyframes the encoder forces every `segment_s`,
/// an event playlist (every segment stays; it ends with `ENDLIST`).
fn hls_options(segment_s: u32, dir: &str, kind: &str) -> Vec<(&'static str, String)> {
    // Cut at every forced keyframe: the segmenter compares times that
    // rounding puts a hair short of `segment_s` (measured: at 2 s every
    // second keyframe was skipped, 4 s segments).
    let cut = f64::from(segment_s) * 0.75;
    vec![
        ("hls_time", format!("{cut}")),
        ("hls_segment_type", "fmp4".into()),
        ("hls_playlist_type", kind.into()),
        ("hls_flags", "independent_segments+temp_file".into()),
        ("hls_fmp4_init_filename", INIT.into()),
        ("hls_segment_filename", format!("{dir}/s%05d.m4s")),
    ]
}

/// The HLS muxer as a standalone output (after `-c copy`).
pub fn hls_output(segment_s: u32) -> Vec<String> {
    hls_output_in(segment_s, HLS_DIR, "event")
}

/// [`hls_output`] into `dir` (a segment name pattern: `%` doubled), as an
/// `event` or `vod` playlist.
fn hls_output_in(segment_s: u32, dir: &str, kind: &str) -> Vec<String> {
    let mut a = strings(&["-f", "hls"]);
    for (k, v) in hls_options(segment_s, dir, kind) {
        a.push(format!("-{k}"));
        a.push(v);
    }
    a.push(format!("{dir}/{PLAYLIST}").replace("%%", "%"));
    a
}

/// The HLS muxer as a slave of the tee muxer; a failure there is ignored
/// (the file goes on).
pub fn hls_tee_slave(segment_s: u32) -> String {
    let opts: Vec<String> = hls_options(segment_s, HLS_DIR, "event")
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!(
        "[f=hls:{}:onfail=ignore]{HLS_DIR}/{PLAYLIST}",
        opts.join(":")
    )
}

/// A second output of the encoder: a JPEG every `every_s` seconds of the
/// video's time, `width` wide (`images/00001.jpg` is at 0 s).
pub fn images_output(every_s: u32, width: u32) -> Vec<String> {
    images_output_in(every_s, width, IMAGES_DIR)
}

/// [`images_output`] into `dir` (a name pattern: `%` doubled). Each
/// picture is written whole under another name, then renamed: a reader
/// of the folder never sees half a JPEG.
fn images_output_in(every_s: u32, width: u32, dir: &str) -> Vec<String> {
    strings(&[
        "-map",
        "0:v",
        "-vf",
        &format!("fps=1/{every_s}:eof_action=pass,scale={width}:-2"),
        "-c:v",
        "mjpeg",
        "-q:v",
        "4",
        "-f",
        "image2",
        "-atomic_writing",
        "1",
        &format!("{dir}/%05d.jpg"),
    ])
}

/// `path` as a piece of an ffmpeg name pattern (`%` doubled).
fn pattern(path: &Path) -> String {
    path.display().to_string().replace('%', "%%")
}

/// Empties (makes) `work`'s folder `name`; ffmpeg's arguments up to its
/// input, `media`.
fn from_file(
    tools: &Tools,
    media: &Path,
    work: &Path,
    name: &str,
) -> Result<(std::path::PathBuf, Vec<String>), FfmpegError> {
    let dir = work.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| FfmpegError::Io {
        program: tools.ffmpeg.display().to_string(),
        source: e,
    })?;
    let mut a = strings(&["-hide_banner", "-nostats", "-loglevel", "error", "-i"]);
    a.push(media.display().to_string());
    Ok((dir, a))
}

/// Makes `work`'s HLS folder anew as a VOD playlist from the finished
/// `media` (its first video and first audio stream copied, cut at its
/// keyframes): for what the live encode did not segment. Video CMAF cannot
/// carry (VP8, as MediaRecorder uploads often are) is encoded instead:
/// H.264 with a keyframe every `segment_s`, AAC.
pub fn hls_from_file(
    tools: &Tools,
    media: &Path,
    work: &Path,
    segment_s: u32,
) -> Result<(), FfmpegError> {
    let copied = hls_from_file_with(tools, media, work, segment_s, &["-c", "copy"]);
    match copied {
        // Refused by the muxer: a codec CMAF does not take.
        Err(FfmpegError::Failed { .. }) => {
            let key = format!("expr:gte(t,n_forced*{segment_s})");
            hls_from_file_with(
                tools,
                media,
                work,
                segment_s,
                &[
                    "-c:v",
                    "libx264",
                    "-preset",
                    "veryfast",
                    "-crf",
                    "23",
                    "-pix_fmt",
                    "yuv420p",
                    "-force_key_frames",
                    &key,
                    "-sc_threshold",
                    "0",
                    "-c:a",
                    "aac",
                    "-b:a",
                    "128k",
                ],
            )
        }
        other => other,
    }
}

fn hls_from_file_with(
    tools: &Tools,
    media: &Path,
    work: &Path,
    segment_s: u32,
    codecs: &[&str],
) -> Result<(), FfmpegError> {
    let (dir, mut a) = from_file(tools, media, work, HLS_DIR)?;
    a.extend(strings(&["-map", "0:v:0", "-map", "0:a:0?"]));
    a.extend(strings(codecs));
    a.extend(hls_output_in(segment_s, &pattern(&dir), "vod"));
    run_limited(tools, &tools.ffmpeg, &a, Duration::from_secs(3600)).map(|_| ())
}

/// Makes `work`'s pictures anew from the finished `media` (decoded once).
pub fn images_from_file(
    tools: &Tools,
    media: &Path,
    work: &Path,
    every_s: u32,
    width: u32,
) -> Result<(), FfmpegError> {
    let (dir, mut a) = from_file(tools, media, work, IMAGES_DIR)?;
    let mut out = images_output_in(every_s, width, &pattern(&dir));
    // The first video stream only (a call's grid has one).
    out[1] = "0:v:0".into();
    a.extend(out);
    run_limited(tools, &tools.ffmpeg, &a, Duration::from_secs(3600)).map(|_| ())
}

/// The names in `dir` that `keep` takes, sorted.
pub fn list(dir: &Path, keep: fn(&str) -> bool) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| keep(n))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The remuxer of the skip-held mode: the spliced H.264 stream at `fps` on
/// stdin, copied into HLS segments (no second encode).
pub fn hls_remux_args(fps: u32, segment_s: u32) -> Vec<String> {
    let mut a = spliced_input(fps);
    a.extend(hls_output(segment_s));
    a
}

/// The remuxer of the skip-held mode with the page's sound: the live
/// muxer's Matroska stream on stdin, the pictures copied, the sound
/// encoded to AAC, into HLS segments.
pub fn hls_remux_sound_args(segment_s: u32) -> Vec<String> {
    let mut a = muxed_input();
    a.extend(hls_output(segment_s));
    a
}

/// The live muxer's stream (`live_mux`: H.264 and PCM in Matroska) on
/// stdin, the pictures copied and the sound encoded to AAC.
fn muxed_input() -> Vec<String> {
    let mut a = piped_input_head();
    a.extend(strings(&[
        "-f", "matroska", "-i", "pipe:0", "-map", "0:v", "-map", "0:a", "-c:v", "copy", "-c:a",
        "aac", "-b:a", "128k",
    ]));
    a
}

/// What every reader of a live pipe starts with: quiet, and output from
/// the first packet on (no probing ahead).
fn piped_input_head() -> Vec<String> {
    strings(&[
        "-hide_banner",
        "-nostats",
        "-loglevel",
        "error",
        "-probesize",
        "32",
        "-analyzeduration",
        "0",
    ])
}

/// The spliced H.264 stream at `fps` on stdin, copied (the start of the
/// remuxer's and a tapped push's arguments).
fn spliced_input(fps: u32) -> Vec<String> {
    // Output from the first picture on: probing the default 5 MB first
    // held the first segment back (measured: 5.2 s for a 2 s segment at
    // 640x360, 2.2 s without; 4K streams still parse).
    let mut a = piped_input_head();
    a.extend(strings(&[
        "-f",
        "h264",
        "-framerate",
        &fps.to_string(),
        "-i",
        "pipe:0",
        "-c",
        "copy",
    ]));
    a
}

/// How a stream output is carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// FLV over RTMP(S).
    Rtmp,
    /// MPEG-TS over SRT (as a caller).
    Srt,
}

/// ffmpeg's arguments that push the live HLS `playlist` (an event
/// playlist the live encode grows) to `url` by stream copy, from its
/// newest segment on, at its own pace, until the playlist ends.
pub fn push_args(playlist: &Path, to: &Target, kind: StreamKind) -> Vec<String> {
    let mut a = strings(&[
        "-hide_banner",
        "-nostats",
        "-loglevel",
        "error",
        "-re",
        "-live_start_index",
        "-1",
        "-i",
    ]);
    a.push(playlist.display().to_string());
    a.extend(strings(&["-map", "0:v", "-map", "0:a?", "-c", "copy"]));
    a.extend(sink_args(to, kind));
    a
}

/// ffmpeg's arguments that push the live encode's pictures, handed to its
/// stdin as they are made ([`super::tap`]: H.264 Annex B at `fps`, from a
/// keyframe), to `url` by stream copy.
pub fn push_tapped_args(fps: u32, to: &Target, kind: StreamKind) -> Vec<String> {
    let mut a = spliced_input(fps);
    a.extend(sink_args(to, kind));
    a
}

/// [`push_tapped_args`] for a tap of the live muxer's stream (pictures
/// with the page's sound, `tap::Tap::is_matroska`): the sound as AAC.
pub fn push_muxed_args(to: &Target, kind: StreamKind) -> Vec<String> {
    let mut a = muxed_input();
    a.extend(sink_args(to, kind));
    a
}

/// The muxer and URL of a push.
fn sink_args(to: &Target, kind: StreamKind) -> Vec<String> {
    let mut a = match kind {
        StreamKind::Rtmp => strings(&[
            "-flvflags",
            "no_duration_filesize",
            "-rw_timeout",
            "10000000",
        ]),
        StreamKind::Srt => vec![],
    };
    if let (StreamKind::Rtmp, Some(tc)) = (kind, &to.tc_url) {
        a.extend(strings(&["-rtmp_tcurl", tc]));
    }
    a.extend(strings(&[
        "-f",
        match kind {
            StreamKind::Rtmp => "flv",
            StreamKind::Srt => "mpegts",
        },
    ]));
    a.push(match kind {
        // A caller, 1316-byte packets (seven TS packets), 5 s to connect.
        StreamKind::Srt => srt_caller(&to.connect),
        StreamKind::Rtmp => to.connect.clone(),
    });
    a
}

/// `url` with the SRT options a push needs, unless it sets them itself.
fn srt_caller(url: &str) -> String {
    let mut u = url.to_string();
    for (k, v) in [
        ("mode", "caller"),
        ("pkt_size", "1316"),
        ("connect_timeout", "5000"),
    ] {
        if !u.contains(&format!("{k}=")) {
            u.push(if u.contains('?') { '&' } else { '?' });
            u.push_str(&format!("{k}={v}"));
        }
    }
    u
}

/// Makes the folders the outputs write into, in `work`.
pub fn prepare(work: &Path, live: &LiveSpec) -> std::io::Result<()> {
    if live.hls_segment_s.is_some() {
        std::fs::create_dir_all(work.join(HLS_DIR))?;
    }
    if live.images.is_some() {
        std::fs::create_dir_all(work.join(IMAGES_DIR))?;
    }
    Ok(())
}

/// An event playlist made a VOD one (every segment stays; players may
/// seek anywhere): `None` if it has not ended (`#EXT-X-ENDLIST`).
pub fn as_vod(playlist: &str) -> Option<String> {
    if !playlist.lines().any(|l| l.trim() == "#EXT-X-ENDLIST") {
        return None;
    }
    Some(
        playlist
            .lines()
            .map(|l| {
                if l.starts_with("#EXT-X-PLAYLIST-TYPE:") {
                    "#EXT-X-PLAYLIST-TYPE:VOD"
                } else {
                    l
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
            + "\n",
    )
}

/// The playlist with `query` (`token=...`) after every URI it names
/// (segments and the init segment), so a player that was given the
/// playlist's URL with a token asks for the rest with it too.
pub fn with_query(playlist: &str, query: &str) -> String {
    let mut out = String::with_capacity(playlist.len() * 2);
    for line in playlist.lines() {
        if let Some(rest) = line.strip_prefix("#EXT-X-MAP:URI=\"") {
            if let Some((uri, tail)) = rest.split_once('"') {
                out.push_str(&format!("#EXT-X-MAP:URI=\"{uri}?{query}\"{tail}"));
            } else {
                out.push_str(line);
            }
        } else if !line.is_empty() && !line.starts_with('#') {
            out.push_str(&format!("{line}?{query}"));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// The segments a playlist lists, in order.
pub fn segments(playlist: &str) -> Vec<&str> {
    playlist
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENT: &str = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:EVENT\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:2.000000,\ns00000.m4s\n#EXTINF:1.000000,\ns00001.m4s\n";

    #[test]
    fn names_are_only_the_folders_own() {
        for ok in ["index.m3u8", "init.mp4", "s00000.m4s", "s123456.m4s"] {
            assert!(is_hls_name(ok), "{ok}");
        }
        for bad in [
            "../index.m3u8",
            "s0.m4s",
            "s00000.m4s/..",
            "S00000.m4s",
            "s0000a.m4s",
            "index.m3u8.tmp",
            "",
        ] {
            assert!(!is_hls_name(bad), "{bad}");
        }
        assert!(is_image_name("00001.jpg") && !is_image_name("../00001.jpg"));
    }

    #[test]
    fn an_ended_event_playlist_becomes_vod() {
        assert_eq!(as_vod(EVENT), None);
        let ended = format!("{EVENT}#EXT-X-ENDLIST\n");
        let vod = as_vod(&ended).unwrap();
        assert!(vod.contains("#EXT-X-PLAYLIST-TYPE:VOD") && !vod.contains("EVENT"));
        assert_eq!(segments(&vod), ["s00000.m4s", "s00001.m4s"]);
    }

    #[test]
    fn the_token_follows_every_uri() {
        let p = with_query(EVENT, "token=abc");
        assert!(p.contains("#EXT-X-MAP:URI=\"init.mp4?token=abc\""), "{p}");
        assert!(p.contains("\ns00000.m4s?token=abc\n"), "{p}");
        assert!(p.contains("#EXTINF:2.000000,\n"), "{p}");
    }

    #[test]
    fn the_tee_slave_ignores_its_failure() {
        let s = hls_tee_slave(2);
        assert!(s.starts_with("[f=hls:hls_time=1.5:"), "{s}");
        assert!(s.ends_with(":onfail=ignore]hls/index.m3u8"), "{s}");
    }
}
