//! The grid layout of a call: ffmpeg composes a room recording's track
//! files into one video at the preset's size and rate. Participants are
//! placed in join order (by their first track's start), each in a cell of
//! a near-square grid with their name drawn in it; black where a
//! participant has no picture (not yet joined, left, no camera), and every
//! audio track mixed, each at its place. When someone shared a screen, the
//! screen takes the big cell (the top three quarters) and the people are
//! a strip below it. Progress is read from ffmpeg's `-progress` file.
//!
//! The arguments are built by [`args`], a pure function the unit tests
//! read; [`compose`] runs them. The codecs are the encoder's own
//! (`args::video_codec`, `args::audio_codec`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use tapedeck_core::recording::TrackFile;
use tapedeck_core::track::{Speech, TrackKind};

use super::{EncodeSpec, FfmpegError, Tools};

/// One cell of the grid: a participant and where they are drawn.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// Their name.
    pub name: String,
    /// Left, top, width, height in the output.
    pub rect: (u32, u32, u32, u32),
    /// Their picture tracks (a camera; every session's, when they joined
    /// again; the screen cell: every shared screen), drawn in turn.
    pub videos: Vec<usize>,
    /// Their sound tracks (microphone; the screen cell: the screens').
    pub audios: Vec<usize>,
    /// When they spoke (seconds, from and to): their cell is framed then.
    pub speaking: Vec<(f64, f64)>,
}

/// Columns and rows for `n` participants: near square, wider than tall.
pub fn shape(n: usize) -> (u32, u32) {
    let n = n.max(1) as u32;
    let cols = (f64::from(n).sqrt().ceil() as u32).max(1);
    let rows = n.div_ceil(cols);
    (cols, rows)
}

/// The cells of `tracks` (indexes into it), participants in join order;
/// a screen shared, the big cell first.
pub fn cells(tracks: &[TrackFile], width: u32, height: u32) -> Vec<Cell> {
    let mut people: Vec<(f64, String)> = vec![];
    for t in tracks.iter().filter(|t| !t.is_screen()) {
        match people.iter_mut().find(|(_, n)| *n == t.participant) {
            Some(p) => p.0 = p.0.min(t.start_s),
            None => people.push((t.start_s, t.participant.clone())),
        }
    }
    people.sort_by(|a, b| a.0.total_cmp(&b.0));
    let of = |pick: &dyn Fn(&TrackFile) -> bool| -> Vec<usize> {
        let mut v: Vec<usize> = (0..tracks.len()).filter(|&i| pick(&tracks[i])).collect();
        v.sort_by(|a, b| tracks[*a].start_s.total_cmp(&tracks[*b].start_s));
        v
    };
    let screens = of(&|t| t.is_screen() && t.kind == TrackKind::Video);
    let mut out = vec![];
    // The screen's big cell, and the strip of people below it; or the
    // people alone in a near-square grid.
    let (area_y, area_h, cols, rows) = if screens.is_empty() {
        let (cols, rows) = shape(people.len());
        (0, height, cols, rows)
    } else {
        let strip = (height / 4) & !1;
        let mut sharers: Vec<&str> = vec![];
        for &i in &screens {
            if !sharers.contains(&tracks[i].participant.as_str()) {
                sharers.push(&tracks[i].participant);
            }
        }
        out.push(Cell {
            name: format!("{} (screen)", sharers.join(", ")),
            rect: (0, 0, width & !1, height - strip),
            videos: screens,
            audios: of(&|t| t.is_screen() && t.kind == TrackKind::Audio),
            speaking: vec![],
        });
        (height - strip, strip, people.len().max(1) as u32, 1)
    };
    let (cw, ch) = ((width / cols) & !1, (area_h / rows) & !1);
    for (i, (_, name)) in people.into_iter().enumerate() {
        let i = i as u32;
        let mine =
            |kind: TrackKind| of(&|t| t.participant == name && t.kind == kind && !t.is_screen());
        out.push(Cell {
            rect: ((i % cols) * cw, area_y + (i / cols) * ch, cw, ch),
            videos: mine(TrackKind::Video),
            audios: mine(TrackKind::Audio),
            speaking: vec![],
            name,
        });
    }
    out
}

/// Most stretches one cell's frame is switched on for: more are merged
/// (a long call's expression stays cheap to evaluate every picture).
const MAX_STRETCHES: usize = 400;

/// Marks when each cell's participant spoke (from the recording's speaker
/// timeline): stretches less than half a second apart are one, so the
/// frame does not flicker between words.
pub fn mark_speakers(cells: &mut [Cell], speech: &[Speech]) {
    for c in cells {
        let mut gap = 0.5;
        let mut m = merged(tapedeck_core::speakers::of(speech, &c.name), gap);
        while m.len() > MAX_STRETCHES {
            gap *= 2.0;
            m = merged(m, gap);
        }
        c.speaking = m;
    }
}

/// `v` sorted, with stretches less than `gap` apart joined.
fn merged(mut v: Vec<(f64, f64)>, gap: f64) -> Vec<(f64, f64)> {
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut out: Vec<(f64, f64)> = vec![];
    for (a, b) in v {
        match out.last_mut() {
            Some(last) if a - last.1 < gap => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// Escapes a value for a filter option inside a filter graph (two levels:
/// the option, then the graph).
pub(crate) fn escape(s: &str) -> String {
    let mut once = String::new();
    for c in s.chars() {
        if matches!(c, '\\' | '\'' | ':') {
            once.push('\\');
        }
        once.push(c);
    }
    let mut twice = String::new();
    for c in once.chars() {
        if matches!(c, '\\' | '\'' | '[' | ']' | ',' | ';') {
            twice.push('\\');
        }
        twice.push(c);
    }
    twice
}

/// Where the grid's working files go and what it is drawn with.
#[derive(Debug, Clone)]
pub struct GridFiles {
    /// Each cell's name, one text file each (`name{i}.txt`), so a name is
    /// never parsed by ffmpeg.
    pub names: Vec<PathBuf>,
    /// The font, when there is one (else fontconfig's default).
    pub font: Option<PathBuf>,
    /// Where ffmpeg writes its progress.
    pub progress: PathBuf,
    /// The output file.
    pub out: PathBuf,
}

/// The length of the grid: to the end of the last track.
pub fn total_s(tracks: &[TrackFile]) -> f64 {
    tracks
        .iter()
        .map(|t| t.start_s + t.duration_s)
        .fold(0.0, f64::max)
}

/// ffmpeg's arguments for the grid of `tracks` (files at `paths`).
pub fn args(
    spec: &EncodeSpec,
    audio_kbps: u32,
    tracks: &[TrackFile],
    paths: &[PathBuf],
    cells: &[Cell],
    files: &GridFiles,
) -> Vec<String> {
    let total = total_s(tracks).max(0.1);
    let (w, h, fps) = (spec.width, spec.height, spec.fps);
    let mut a: Vec<String> = ["-y", "-v", "error", "-nostats", "-progress"]
        .map(String::from)
        .to_vec();
    a.push(files.progress.display().to_string());
    a.extend(["-f", "lavfi", "-i"].map(String::from));
    a.push(format!("color=c=black:s={w}x{h}:r={fps}:d={total:.3}"));
    for p in paths {
        a.push("-i".into());
        a.push(p.display().to_string());
    }
    let input = |track: usize| track + 1;
    let mut graph: Vec<String> = vec![];
    let mut base = "0:v".to_string();
    for (i, c) in cells.iter().enumerate() {
        let (x, y, cw, ch) = c.rect;
        for (k, &v) in c.videos.iter().enumerate() {
            // Half a picture early: each output picture shows the input
            // picture nearest its time, not the last one before it (which
            // made pictures a half picture late on average against the
            // sound: lip sync).
            let start = tracks[v].start_s - 0.5 / f64::from(fps.max(1));
            graph.push(format!(
                "[{}:v]setpts=PTS-STARTPTS{start:+.6}/TB,scale={cw}:{ch}:force_original_aspect_ratio=decrease,\
                 pad={cw}:{ch}:(ow-iw)/2:(oh-ih)/2:black[v{i}_{k}]",
                input(v)
            ));
            graph.push(format!(
                "[{base}][v{i}_{k}]overlay={x}:{y}:eof_action=pass:repeatlast=0[o{i}_{k}]"
            ));
            base = format!("o{i}_{k}");
        }
    }
    let size = name_size(cells, h);
    let font = files
        .font
        .as_ref()
        .map(|f| format!("fontfile={}:", escape(&f.display().to_string())))
        .unwrap_or_default();
    // The one speaking is framed while they speak.
    let frames = cells.iter().filter(|c| !c.speaking.is_empty()).map(|c| {
        let (x, y, cw, ch) = c.rect;
        let on: Vec<String> = c
            .speaking
            .iter()
            .map(|(a, b)| format!("between(t,{a:.3},{b:.3})"))
            .collect();
        format!(
            "drawbox=x={x}:y={y}:w={cw}:h={ch}:color=0x2ecc71:t={}:enable='{}'",
            (ch / 60).max(3),
            on.join("+")
        )
    });
    let texts: Vec<String> = frames
        .collect::<Vec<_>>()
        .into_iter()
        .chain(cells.iter().zip(&files.names).map(|(c, name)| {
            let (x, y, _, ch) = c.rect;
            format!(
                "drawtext={font}textfile={}:x={}:y={}-th:fontsize={size}:fontcolor=white:\
                 box=1:boxcolor=black@0.6:boxborderw={}",
                escape(&name.display().to_string()),
                x + size / 2,
                y + ch - size / 2,
                size / 4
            )
        }))
        .collect();
    if texts.is_empty() {
        graph.push(format!("[{base}]null[vout]"));
    } else {
        graph.push(format!("[{base}]{}[vout]", texts.join(",")));
    }
    let audio: Vec<usize> = cells
        .iter()
        .flat_map(|c| c.audios.iter().copied())
        .collect();
    if audio.is_empty() {
        graph.push(format!(
            "anullsrc=r=48000:cl=stereo,atrim=0:{total:.3}[aout]"
        ));
    } else {
        let mut mix = String::new();
        for (k, t) in audio.iter().enumerate() {
            let ms = (tracks[*t].start_s * 1000.0).round() as i64;
            graph.push(format!(
                "[{}:a]aresample=48000,adelay=delays={ms}:all=1[a{k}]",
                input(*t)
            ));
            mix.push_str(&format!("[a{k}]"));
        }
        graph.push(format!(
            "{mix}amix=inputs={}:duration=longest:normalize=0,apad,atrim=0:{total:.3}[aout]",
            audio.len()
        ));
    }
    a.push("-filter_complex".into());
    a.push(graph.join(";"));
    a.extend(["-map", "[vout]", "-map", "[aout]", "-t"].map(String::from));
    a.push(format!("{total:.3}"));
    a.extend(super::args::video_codec(spec));
    a.extend(super::args::audio_codec(spec.format, audio_kbps));
    a.extend(["-pix_fmt", "yuv420p"].map(String::from));
    if spec.format == tapedeck_core::Format::Mp4 {
        a.extend(["-movflags", "+faststart"].map(String::from));
    }
    a.push(files.out.display().to_string());
    a
}

/// The names' font size: a fourteenth of the shortest cell.
pub fn name_size(cells: &[Cell], height: u32) -> u32 {
    (cells.iter().map(|c| c.rect.3).min().unwrap_or(height) / 14).clamp(14, 48)
}

/// The font names are drawn in, when there is one.
pub fn font() -> Option<PathBuf> {
    FONTS.iter().map(PathBuf::from).find(|p| p.exists())
}

/// The fonts looked for, in order (Debian's `fonts-dejavu-core`).
const FONTS: [&str; 2] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
];

/// The share done, from ffmpeg's progress file.
fn read_progress(path: &Path, total_s: f64) -> Option<f64> {
    let text = std::fs::read_to_string(path).ok()?;
    let us: f64 = text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("out_time_us="))?
        .trim()
        .parse()
        .ok()?;
    Some((us / 1e6 / total_s.max(0.1)).clamp(0.0, 1.0))
}

/// What a grid is made of.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// The track files as the recording lists them.
    pub tracks: &'a [TrackFile],
    /// Where each is, in the same order.
    pub paths: &'a [PathBuf],
    /// Who spoke when.
    pub speech: &'a [Speech],
}

/// Composes the grid of `call`'s tracks into
/// `dir/media.{ext}`, calling `progress` with the share done about twice a
/// second; the file. Blocking: run it on a thread of its own.
pub fn compose(
    tools: &Tools,
    spec: &EncodeSpec,
    audio_kbps: u32,
    call: Call<'_>,
    dir: &Path,
    progress: impl Fn(f64),
) -> Result<PathBuf, FfmpegError> {
    let Call {
        tracks,
        paths,
        speech,
    } = call;
    let io = |p: &Path, e: std::io::Error| FfmpegError::Io {
        program: format!("the grid's file {}", p.display()),
        source: e,
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let mut cells = cells(tracks, spec.width, spec.height);
    mark_speakers(&mut cells, speech);
    let mut names = vec![];
    for (i, c) in cells.iter().enumerate() {
        let p = dir.join(format!("name{i}.txt"));
        std::fs::write(&p, &c.name).map_err(|e| io(&p, e))?;
        names.push(p);
    }
    let g = GridFiles {
        names,
        font: font(),
        progress: dir.join("progress.txt"),
        out: dir.join(format!("media.{}", spec.format.extension())),
    };
    let argv = args(spec, audio_kbps, tracks, paths, &cells, &g);
    let total = total_s(tracks);
    // Long enough for a slow machine: ten times the video, at least ten minutes.
    let timeout = Duration::from_secs_f64((total * 10.0).max(600.0));
    let run_tools = tools.clone();
    let run = std::thread::spawn(move || {
        super::run_limited(&run_tools, &run_tools.ffmpeg, &argv, timeout)
    });
    while !run.is_finished() {
        std::thread::sleep(Duration::from_millis(500));
        if let Some(p) = read_progress(&g.progress, total) {
            progress(p);
        }
    }
    run.join().map_err(|_| FfmpegError::Output {
        program: "ffmpeg".into(),
        message: "the grid's thread panicked".into(),
    })??;
    progress(1.0);
    Ok(g.out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(id: &str, who: &str, kind: &str, start: f64, dur: f64) -> TrackFile {
        TrackFile {
            id: id.into(),
            participant: who.into(),
            kind: if kind == "video" {
                TrackKind::Video
            } else {
                TrackKind::Audio
            },
            source: None,
            codec: if kind == "video" {
                tapedeck_core::track::TrackCodec::Vp8
            } else {
                tapedeck_core::track::TrackCodec::Opus
            },
            start_s: start,
            duration_s: dur,
            size_bytes: 1,
            container: "webm".into(),
        }
    }

    #[test]
    fn the_one_speaking_is_framed_while_they_speak() {
        let tracks = [
            t("t1", "Ann", "video", 0.0, 9.0),
            t("t2", "Bob", "video", 0.0, 9.0),
        ];
        let speech = |who: &str, a: f64, b: f64| Speech {
            participant: who.into(),
            start_s: a,
            end_s: b,
        };
        let mut c = cells(&tracks, 1280, 720);
        // Ann's words 0.3 s apart are one stretch; Bob's 2 s apart are two.
        mark_speakers(
            &mut c,
            &[
                speech("Ann", 1.0, 2.0),
                speech("Ann", 2.3, 3.0),
                speech("Bob", 4.0, 5.0),
                speech("Bob", 7.0, 8.0),
            ],
        );
        assert_eq!(c[0].speaking, [(1.0, 3.0)]);
        assert_eq!(c[1].speaking, [(4.0, 5.0), (7.0, 8.0)]);
        let files = GridFiles {
            names: vec!["/w/n0.txt".into(), "/w/n1.txt".into()],
            font: None,
            progress: "/w/p.txt".into(),
            out: "/w/out.mp4".into(),
        };
        let paths: Vec<PathBuf> = ["/w/t1.webm", "/w/t2.webm"].map(PathBuf::from).to_vec();
        let a = args(
            &super::super::args::test_spec(),
            128,
            &tracks,
            &paths,
            &c,
            &files,
        );
        let graph = &a[a.iter().position(|x| x == "-filter_complex").unwrap() + 1];
        assert!(
            graph.contains("drawbox=x=640:y=0:w=640:h=720:color=0x2ecc71:t=12:enable='between(t,4.000,5.000)+between(t,7.000,8.000)'"),
            "{graph}"
        );
        // Hundreds of words make at most MAX_STRETCHES stretches.
        let many: Vec<Speech> = (0..2000)
            .map(|i| speech("Ann", i as f64, i as f64 + 0.1))
            .collect();
        mark_speakers(&mut c, &many);
        assert!(!c[0].speaking.is_empty() && c[0].speaking.len() <= MAX_STRETCHES);
    }

    #[test]
    fn a_shared_screen_takes_the_big_cell_and_the_people_a_strip_below() {
        use tapedeck_core::track::TrackSource;
        let screen = |id: &str, who: &str, kind: &str, start: f64| TrackFile {
            source: Some(if kind == "video" {
                TrackSource::Screen
            } else {
                TrackSource::ScreenAudio
            }),
            ..t(id, who, kind, start, 2.0)
        };
        let tracks = [
            t("t1", "Ann", "video", 0.0, 9.0),
            t("t2", "Ann", "audio", 0.0, 9.0),
            t("t3", "Bob", "video", 1.0, 8.0),
            screen("t4", "Ann", "video", 3.0),
            screen("t5", "Ann", "audio", 3.0),
            // Ann joined again: her second session's camera, in her cell.
            t("t6", "Ann", "video", 6.0, 3.0),
        ];
        let c = cells(&tracks, 1280, 720);
        let names: Vec<&str> = c.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["Ann (screen)", "Ann", "Bob"]);
        assert_eq!(c[0].rect, (0, 0, 1280, 540));
        assert_eq!((&c[0].videos[..], &c[0].audios[..]), (&[3][..], &[4][..]));
        assert_eq!(c[1].rect, (0, 540, 640, 180));
        assert_eq!(c[2].rect, (640, 540, 640, 180));
        assert_eq!(
            (&c[1].videos[..], &c[1].audios[..]),
            (&[0, 5][..], &[1][..])
        );
        let files = GridFiles {
            names: (0..3).map(|i| format!("/w/n{i}.txt").into()).collect(),
            font: None,
            progress: "/w/p.txt".into(),
            out: "/w/out.mp4".into(),
        };
        let paths: Vec<PathBuf> = (1..=6).map(|i| format!("/w/t{i}.webm").into()).collect();
        let a = args(
            &super::super::args::test_spec(),
            128,
            &tracks,
            &paths,
            &c,
            &files,
        );
        let graph = &a[a.iter().position(|x| x == "-filter_complex").unwrap() + 1];
        // The screen fills the big cell; every sound is mixed, the screen's
        // too (Bob sent none).
        assert!(
            graph.contains("[4:v]setpts=PTS-STARTPTS+2.983333/TB,scale=1280:540"),
            "{graph}"
        );
        assert!(
            graph.contains("[5:a]aresample=48000,adelay=delays=3000"),
            "{graph}"
        );
        assert!(graph.contains("amix=inputs=2"), "{graph}");
        // A track from the start is shown half a picture early too.
        assert!(
            graph.contains("[1:v]setpts=PTS-STARTPTS-0.016667/TB"),
            "{graph}"
        );
    }

    #[test]
    fn grids_are_near_square() {
        assert_eq!(shape(1), (1, 1));
        assert_eq!(shape(2), (2, 1));
        assert_eq!(shape(3), (2, 2));
        assert_eq!(shape(4), (2, 2));
        assert_eq!(shape(5), (3, 2));
        assert_eq!(shape(9), (3, 3));
        assert_eq!(shape(10), (4, 3));
    }

    #[test]
    fn people_are_placed_in_join_order_with_their_tracks() {
        let tracks = [
            t("t1", "Bob", "audio", 2.0, 5.0),
            t("t2", "Ann", "video", 0.5, 6.0),
            t("t3", "Bob", "video", 2.1, 4.0),
            t("t4", "Cy", "audio", 4.0, 1.0),
        ];
        let c = cells(&tracks, 1280, 720);
        let names: Vec<&str> = c.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["Ann", "Bob", "Cy"]);
        assert_eq!(c[0].rect, (0, 0, 640, 360));
        assert_eq!(c[1].rect, (640, 0, 640, 360));
        assert_eq!(c[2].rect, (0, 360, 640, 360));
        assert_eq!((&c[0].videos[..], &c[0].audios[..]), (&[1][..], &[][..]));
        assert_eq!((&c[1].videos[..], &c[1].audios[..]), (&[2][..], &[0][..]));
        assert_eq!((&c[2].videos[..], &c[2].audios[..]), (&[][..], &[3][..]));
        assert_eq!(total_s(&tracks), 7.0);
    }

    #[test]
    fn the_graph_places_each_track_at_its_start() {
        let tracks = [
            t("t1", "Ann", "video", 0.5, 3.0),
            t("t2", "Ann", "audio", 0.4, 3.0),
        ];
        let paths: Vec<PathBuf> = ["/w/t1.webm", "/w/t2.webm"].map(PathBuf::from).to_vec();
        let spec = super::super::args::test_spec();
        let cells = cells(&tracks, 1280, 720);
        let files = GridFiles {
            names: vec![PathBuf::from("/w/it's: here/name0.txt")],
            font: None,
            progress: "/w/p.txt".into(),
            out: "/w/out.mp4".into(),
        };
        let a = args(&spec, 128, &tracks, &paths, &cells, &files);
        let graph = &a[a.iter().position(|x| x == "-filter_complex").unwrap() + 1];
        assert!(
            // At its start, half a picture (1/60 s at 30 fps) early.
            graph.contains("[1:v]setpts=PTS-STARTPTS+0.483333/TB"),
            "{graph}"
        );
        assert!(
            graph.contains("[2:a]aresample=48000,adelay=delays=400:all=1"),
            "{graph}"
        );
        // The path's quote and colon are escaped at both levels.
        assert!(
            graph.contains(r"textfile=/w/it\\\'s\\: here/name0.txt"),
            "{graph}"
        );
        assert!(a.windows(2).any(|w| w == ["-t", "3.500"]), "{a:?}");
        assert!(a.contains(&"libx264".to_string()) && a.ends_with(&["/w/out.mp4".to_string()]));
        assert!(a.windows(2).any(|w| w == ["-b:a", "128k"]), "{a:?}");
    }
}
