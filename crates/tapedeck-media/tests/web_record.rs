//! Web recordings in the real chromium-headless-shell, checked with ffprobe
//! and by reading the page's own clock barcode back from the video.

use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::mpsc::{Receiver, Sender, channel};

use tapedeck_core::Format;
use tapedeck_core::netpolicy::NetPolicy;
use tapedeck_core::web::WebSource;
use tapedeck_media::ffmpeg::{EncodeSpec, Tools};
use tapedeck_media::picture::FrameLimits;
use tapedeck_media::sink::encoding::EncodingSink;
use tapedeck_media::web::{Compositor, Control, WebError, WebFrame, WebOptions, WebReport, record};
use tapedeck_media::web::{FrameSink, SinkClosed};
use tapedeck_testkit::barcode;
use tapedeck_testkit::{Page, PageServer, ffprobe};

struct Chan(Sender<WebFrame>);

impl FrameSink for Chan {
    fn send(
        &mut self,
        f: WebFrame,
        wait: bool,
    ) -> futures::future::BoxFuture<'_, Result<bool, SinkClosed>> {
        Box::pin(async move {
            if wait {
                return self.0.send(f).await.map(|()| true).map_err(|_| SinkClosed);
            }
            match self.0.try_send(f) {
                Ok(()) => Ok(true),
                Err(TrySendError::Full(_)) => Ok(false),
                Err(TrySendError::Closed(_)) => Err(SinkClosed),
            }
        })
    }
}

fn encoder_thread(
    mut rx: Receiver<WebFrame>,
    spec: EncodeSpec,
    scale: f64,
    dir: PathBuf,
) -> std::thread::JoinHandle<PathBuf> {
    std::thread::spawn(move || {
        let mut c = Compositor::new(scale, spec.fps, spec.width, spec.height);
        let mut p =
            EncodingSink::start(Tools::default(), spec, FrameLimits::default(), &dir).unwrap();
        while let Some(f) = rx.blocking_recv() {
            c.frame(&mut p, f).unwrap();
        }
        p.finish_video(Duration::from_secs(600)).unwrap().output
    })
}

fn options(dir: &std::path::Path) -> WebOptions {
    WebOptions {
        browser: "/usr/lib/chromium/chromium-headless-shell".into(),
        policy: NetPolicy {
            allow_private: true,
            allowed_hosts: vec![],
            own_addrs: vec![],
        },
        load_timeout: Duration::from_secs(20),
        frame_timeout: Duration::from_secs(20),
        capture: tapedeck_media::web::Capture::Png,
        profile: dir.join("profile"),
        audio_path: dir.join("audio.mp4"),
        range: tapedeck_core::split::FrameRange::ALL,
        probe: false,
        live_sound: None,
    }
}

async fn record_page(
    src: WebSource,
    w: u32,
    h: u32,
    fps: u32,
    opts: WebOptions,
    dir: &std::path::Path,
) -> (Result<WebReport, WebError>, Option<PathBuf>) {
    let spec = EncodeSpec {
        width: w,
        height: h,
        fps,
        cfr: true,
        format: Format::Mp4,
        video_bitrate_kbps: 4000,
        x264_preset: "ultrafast".into(),
        crf: 18,
        skip_held: true,
        threads: None,
        live: Default::default(),
    };
    let (tx, rx) = channel(8);
    let scale = src.viewport_for(w, h).scale;
    let enc = encoder_thread(rx, spec, scale, dir.join("enc"));
    let (_ctl_tx, ctl) = tokio::sync::watch::channel(Control::Run);
    let mut sink = Chan(tx);
    let r = record(&opts, &src, w, h, fps, ctl, &mut sink, &mut |_| {}).await;
    drop(sink);
    let out = if r.is_ok() {
        Some(enc.join().unwrap())
    } else {
        None
    };
    (r, out)
}

fn clock_page() -> PageServer {
    PageServer::start(vec![(
        "/",
        Page::Body(
            "text/html",
            include_str!("../../../bench/pages/clock.html").to_string(),
        ),
    )])
}

fn wait_script(ms: u32) -> WebSource {
    serde_json::from_value(
        serde_json::json!({"url": "http://x/", "script": [{"type": "wait", "duration_ms": ms}]}),
    )
    .unwrap()
}

async fn smooth_at(w: u32, h: u32, fps: u32, secs: u32) {
    smooth_page_at("/", w, h, fps, secs).await
}

/// Two threads spinning until dropped: a machine with no spare core.
struct BusyLoops(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl BusyLoops {
    fn start(n: usize) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        for _ in 0..n {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut x = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            });
        }
        Self(stop)
    }
}

impl Drop for BusyLoops {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

async fn smooth_page_at(page: &str, w: u32, h: u32, fps: u32, secs: u32) {
    let site = clock_page();
    let dir = tempfile::tempdir().unwrap();
    let mut src = wait_script(secs * 1000);
    src.url = site.url(page);
    let (r, out) = record_page(src, w, h, fps, options(dir.path()), dir.path()).await;
    let report = r.unwrap();
    let out = out.unwrap();
    let p = ffprobe(&out);
    assert_eq!(
        (p.codec.as_str(), p.width, p.height),
        ("h264", u64::from(w), u64::from(h))
    );
    assert_eq!(p.frames, u64::from(secs * fps));
    assert!((p.duration_s - f64::from(secs)).abs() < 0.01, "{p:?}");
    let marks = barcode::decode_video(std::path::Path::new("ffmpeg"), &out, fps).unwrap();
    let s = barcode::smoothness(&marks, fps);
    eprintln!(
        "{w}x{h}@{fps}: {s:?}, realtime factor {:.2}",
        report.realtime_factor
    );
    assert_eq!(s.unreadable, 0, "{s:?}");
    assert_eq!(s.holds, 0, "{s:?}");
    assert_eq!(s.jerk, 0.0, "{s:?}");
    assert!(s.max_clock_error_ms <= 1.0, "{s:?}");
    assert!((s.delivered_fps - f64::from(fps)).abs() < 0.01, "{s:?}");
    assert!(report.realtime_factor > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deterministic_720p30_every_frame_distinct_and_on_time() {
    smooth_at(1280, 720, 30, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deterministic_1080p60_every_frame_distinct_and_on_time() {
    smooth_at(1920, 1080, 60, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deterministic_2160p60_every_frame_distinct_and_on_time() {
    smooth_at(3840, 2160, 60, 1).await;
}

/// The largest preset on a page of detail (its 4K PNG screenshots are over
/// 8 MiB each) with both cores kept busy by two other loops: slower, but
/// every frame is the page's own frame for its instant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deterministic_2160p60_detailed_page_beside_two_busy_loops_repeats_nothing() {
    let _busy = BusyLoops::start(2);
    smooth_page_at("/?rich=1&noise=1", 3840, 2160, 60, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realtime_720p30_runs_on_the_wall_clock() {
    let site = clock_page();
    let dir = tempfile::tempdir().unwrap();
    let mut src = wait_script(4000);
    src.url = site.url("/");
    src.mode = tapedeck_core::web::WebMode::Realtime;
    let started = std::time::Instant::now();
    let (r, out) = record_page(src, 1280, 720, 30, options(dir.path()), dir.path()).await;
    let report = r.unwrap();
    // Real time: the loop takes about as long as the video.
    assert!(started.elapsed() >= Duration::from_secs(4));
    eprintln!("realtime 720p30: {report:?}");
    let out = out.unwrap();
    let p = ffprobe(&out);
    // Frames missed or dropped under load are holds: the video still has every frame.
    assert_eq!((p.width, p.height, p.frames), (1280, 720, 120));
    let marks = barcode::decode_video(std::path::Path::new("ffmpeg"), &out, 30).unwrap();
    let s = barcode::smoothness(&marks, 30);
    eprintln!("realtime 720p30: {s:?}");
    assert_eq!(s.unreadable, 0, "{s:?}");
    // Only frames the page really drew are in the video.
    assert!(s.delivered_fps > 0.0);
    assert_eq!(report.captured + report.missed, 120);
    // The tab's sound was recorded alongside (this page is silent), from
    // before the first frame to past the last.
    let audio = report
        .audio
        .clone()
        .unwrap_or_else(|| panic!("no audio track in realtime mode: {:?}", report.audio_error));
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "a", "-show_entries"])
        .args(["stream=codec_name:format=duration", "-of", "csv=p=0"])
        .arg(&audio.path)
        .output()
        .unwrap();
    let a = String::from_utf8_lossy(&out.stdout).to_string();
    let mut lines = a.lines();
    assert_eq!(lines.next(), Some("opus"), "{a}");
    let secs: f64 = lines.next().unwrap().trim().parse().unwrap();
    // (A starved machine can lose a little of it; the mux pads to the video.)
    assert!(secs >= 3.8, "{a} {audio:?}");
    assert!((0.0..0.5).contains(&audio.lead_s), "{audio:?}");
}

/// A range rendered by its own browser, which plays the page and script
/// from the start without capturing up to the range, is the same video as
/// the one-browser render of those frames: each frame shows its own
/// instant (the barcode's clock and frame count), and the pictures match.
/// Two ranges rendered at once and joined without re-encoding are the
/// whole video, nothing repeated or missing at the join.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_rendered_by_its_own_browser_is_the_same_video() {
    let site = PageServer::start(vec![(
        "/",
        Page::Body(
            "text/html",
            include_str!("../../../bench/pages/text.html").to_string(),
        ),
    )]);
    let src: WebSource = serde_json::from_value(serde_json::json!({
        "url": site.url("/?transitions=1&canvas=1"),
        "script": [
            {"type": "wait", "duration_ms": 300},
            {"type": "scroll", "by_px": 900, "duration_ms": 1000},
            {"type": "move", "x": 500, "y": 300, "duration_ms": 600},
            {"type": "wait", "duration_ms": 300}
        ]
    }))
    .unwrap();
    let (w, h, fps) = (1280, 720, 30);
    let dir = tempfile::tempdir().unwrap();
    let sub = |n: &str| {
        let d = dir.path().join(n);
        std::fs::create_dir_all(&d).unwrap();
        d
    };
    let (full_dir, first_dir, range_dir) = (sub("full"), sub("first"), sub("range"));
    let mut first = options(&first_dir);
    first.range = tapedeck_core::split::FrameRange {
        start: 0,
        end: Some(40),
    };
    let mut ranged = options(&range_dir);
    ranged.range = tapedeck_core::split::FrameRange {
        start: 40,
        end: None,
    };
    let (full, head, part) = tokio::join!(
        record_page(src.clone(), w, h, fps, options(&full_dir), &full_dir),
        record_page(src.clone(), w, h, fps, first, &first_dir),
        record_page(src.clone(), w, h, fps, ranged, &range_dir),
    );
    let (full, head, part) = (full.1.unwrap(), head.1.unwrap(), part.1.unwrap());
    assert_eq!(ffprobe(&head).frames, 40);
    let total = u64::from(fps) * 2200 / 1000;
    assert_eq!(ffprobe(&full).frames, total);
    assert_eq!(ffprobe(&part).frames, total - 40);
    let a = barcode::decode_video(std::path::Path::new("ffmpeg"), &full, fps).unwrap();
    let b = barcode::decode_video(std::path::Path::new("ffmpeg"), &part, fps).unwrap();
    for (i, m) in b.iter().enumerate() {
        let want = a[40 + i].unwrap();
        let got = m.unwrap();
        assert_eq!(
            (got.clock_us, got.counter),
            (want.clock_us, want.counter),
            "frame {}",
            40 + i
        );
    }
    let ssim = tapedeck_testkit::ssim_per_frame(&full, &part, 40, dir.path());
    assert_eq!(ssim.len() as u64, total - 40);
    let worst = ssim.iter().cloned().fold(1.0, f64::min);
    assert!(worst >= 0.99, "worst SSIM {worst}: {ssim:?}");

    let joined = dir.path().join("joined.mp4");
    tapedeck_media::ffmpeg::copy::join(&Tools::default(), &[&head, &part], Format::Mp4, &joined)
        .unwrap();
    let p = ffprobe(&joined);
    assert_eq!((p.codec.as_str(), p.frames), ("h264", total), "{p:?}");
    assert!(
        (p.duration_s - total as f64 / f64::from(fps)).abs() < 0.01,
        "{p:?}"
    );
    let j = barcode::decode_video(std::path::Path::new("ffmpeg"), &joined, fps).unwrap();
    assert_eq!(j.len() as u64, total);
    for (k, m) in j.iter().enumerate() {
        let (got, want) = (m.unwrap(), a[k].unwrap());
        // The page's clock is `performance.now()`, which Chromium coarsens
        // to 100 us with jitter at the boundary: two renders of one
        // instant may read one step apart. The frame counter is exact.
        assert_eq!(got.counter, want.counter, "frame {k}");
        assert!(
            got.clock_us.abs_diff(want.clock_us) <= 100,
            "frame {k}: {} us, the whole render read {} us",
            got.clock_us,
            want.clock_us
        );
    }
    let s = barcode::smoothness(&j, fps);
    assert_eq!((s.holds, s.jerk), (0, 0.0), "{s:?}");
    let ssim = tapedeck_testkit::ssim_per_frame(&full, &joined, 0, dir.path());
    assert_eq!(ssim.len() as u64, total);
    let worst = ssim.iter().cloned().fold(1.0, f64::min);
    assert!(worst >= 0.99, "joined: worst SSIM {worst}: {ssim:?}");
}
