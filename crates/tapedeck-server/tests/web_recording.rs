//! Web recordings through the API in the real chromium-headless-shell: a
//! script whose click visibly changes the page in the right frame, the
//! address policy, failures with clear reasons, regenerate, limits, and a
//! browser crash that harms nothing else.

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::json;
use support::*;
use tapedeck_testkit::{Page, PageServer, ffprobe};

const BUTTON_PAGE: &str = r##"<!doctype html><html><head><style>
html, body { margin: 0; height: 100%; background: #dddddd; }
#go { position: absolute; left: 560px; top: 330px; width: 160px; height: 60px; font-size: 20px; }
#email { position: absolute; left: 40px; top: 40px; width: 300px; height: 30px; font-size: 20px; }
</style></head><body>
<input id="email"><button id="go">Go</button>
<script>
document.getElementById('go').addEventListener('click', () => {
  document.body.style.background = document.getElementById('email').value === 'ok' ? '#ff0000' : '#0000ff';
});
</script></body></html>"##;

fn is_red(p: [u8; 3]) -> bool {
    p[0] > 200 && p[1] < 60 && p[2] < 60
}

fn browsers_using(dir: &Path) -> usize {
    let needle = dir.to_string_lossy().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c).contains(&needle)
                        && String::from_utf8_lossy(&c).contains("headless")
                })
                .unwrap_or(false)
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripted_typing_and_click_change_the_page_in_the_right_frame() {
    let site = PageServer::start(vec![("/", Page::Body("text/html", BUTTON_PAGE.into()))]);
    let s = start_for_site(site.port).await;
    let token = s.key("alice", false).await;
    let rec = s
        .create(
            &token,
            json!({"source": {"kind": "web", "url": site.url("/"), "script": [
                {"type": "wait", "duration_ms": 500},
                {"type": "type", "selector": "#email", "text": "ok", "per_key_ms": 100},
                {"type": "click", "selector": "#go"},
                {"type": "hover", "selector": "#missing", "optional": true},
                {"type": "wait", "duration_ms": 500}
            ]}, "preset": "medium", "title": "button"}),
        )
        .await;
    let id = rec["id"].as_str().unwrap();
    let done = s.wait_status(&token, id, "completed").await;
    assert_eq!(done["end_reason"], "source_ended", "{done}");
    assert!(
        done["stats"]["realtime_factor"].as_f64().unwrap() > 0.0,
        "{done}"
    );
    let video = s.download(&token, id, "mp4").await;
    let p = ffprobe(&video);
    // Frames: wait 15; type: move 21 + press/release 2 + keys 6 + settle 9;
    // click: move 21 + 2 + settle 15; wait 15.
    let total = 15 + 21 + 2 + 6 + 9 + 21 + 2 + 15 + 15;
    assert_eq!(
        (p.codec.as_str(), p.width, p.height, p.frames),
        ("h264", 1280, 720, total),
        "{p:?}"
    );
    assert!(
        (p.duration_s - f64::from(total as u32) / 30.0).abs() < 0.01,
        "{p:?}"
    );
    let f = frames(&video, 1280, 720);
    assert_eq!(f.len() as u64, total);
    // The mouse is released on frame 15+21+2+6+9+21+1 = 75; the page turns
    // red in that very frame (input is handled before the frame renders).
    let release = 75;
    for (i, fr) in f.iter().enumerate() {
        assert_eq!(
            is_red(px(fr, 1280, 1200, 650)),
            i >= release,
            "frame {i}: {:?}",
            px(fr, 1280, 1200, 650)
        );
    }
    // The click ripple is drawn around the button's centre (640, 360): four
    // frames after the click the ring (radius about 17 px) is much bluer than
    // the same spot once the ripple is gone.
    let (ripple, last) = (&f[release + 4], f.last().unwrap());
    let blueness = |p: [u8; 3]| i32::from(p[2]) - i32::from(p[0]);
    let bluer = (0..72u32)
        .filter(|a| {
            let t = f64::from(a * 5).to_radians();
            let (x, y) = (
                (640.0 + 17.0 * t.cos()) as u32,
                (360.0 + 17.0 * t.sin()) as u32,
            );
            blueness(px(ripple, 1280, x, y)) > blueness(px(last, 1280, x, y)) + 40
        })
        .count();
    assert!(bluer > 30, "no ripple drawn ({bluer} of 72 points)");
    // The cursor is drawn: its black outline at the tip on the last frame.
    let dark = (0..6u32)
        .flat_map(|dy| (0..4u32).map(move |dx| (dx, dy)))
        .filter(|(dx, dy)| {
            let p = px(last, 1280, 640 + dx, 360 + dy);
            p[0] < 90 && p[1] < 90 && p[2] < 90
        });
    assert!(dark.count() > 2, "no cursor drawn at the click point");
    // Thumbnails exist like for any recording.
    let (st, _) = s
        .get(&token, &format!("/v1/recordings/{id}/thumbnail"))
        .await;
    assert_eq!(st, 200);
    assert_eq!(
        browsers_using(&s.data),
        0,
        "a browser outlived its recording"
    );

    // Regenerate at another preset: a new recording linked to the first.
    let (st, again) = s
        .post(
            &token,
            &format!("/v1/recordings/{id}/regenerate"),
            json!({"preset": "low"}),
        )
        .await;
    assert_eq!(st, 201, "{again}");
    assert_eq!(again["regenerated_from"], id);
    assert_eq!(again["source"]["url"], site.url("/"));
    let again_id = again["id"].as_str().unwrap();
    s.wait_status(&token, again_id, "completed").await;
    let p2 = ffprobe(&s.download(&token, again_id, "mp4").await);
    assert_eq!((p2.width, p2.height), (854, 480));
    // Regenerating a frames recording makes no sense.
    let fr = s
        .create(&token, json!({"source": {"kind": "frames"}}))
        .await;
    let (st, v) = s
        .post(
            &token,
            &format!("/v1/recordings/{}/regenerate", fr["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (409, Some("not_regenerable"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_addresses_are_refused_on_every_request_and_redirect() {
    // The canary listens on every address, as a service on the host often
    // does: it must not be reached through the host's own address either.
    let canary = PageServer::start_on(
        std::net::TcpListener::bind("0.0.0.0:0").unwrap(),
        vec![("/secret", Page::Body("text/plain", "secret".into()))],
    );
    // The address this host reaches the world from (on the CI machine, one
    // in a documentation range; on others, private or public).
    let own = std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect("192.0.2.1:9").map(|()| s))
        .and_then(|s| s.local_addr())
        .map(|a| a.ip())
        .expect("this host has no route out");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let page = format!(
        r#"<!doctype html><body style="background:#eee"><h1>Hi</h1>
<img src="http://127.0.0.1:{c}/secret?img">
<iframe src="http://127.0.0.1:{c}/secret?frame"></iframe>
<script>fetch("http://localhost:{c}/secret?fetch").catch(() => {{}}); new Image().src = "http://[::1]:{c}/secret?v6";
fetch("http://{own}:{c}/secret?own").catch(() => {{}}); fetch("http://[::ffff:{own}]:{c}/secret?own-mapped").catch(() => {{}});
new WebSocket("ws://127.0.0.1:{c}/secret?ws"); new WebSocket("ws://127.0.0.1:{s}/ws-probe");</script>
</body>"#,
        c = canary.port,
        s = port
    );
    let site = PageServer::start_on(
        listener,
        vec![
            ("/", Page::Body("text/html", page)),
            ("/redirect", Page::Redirect(canary.url("/secret?redirect"))),
        ],
    );
    let s = start_for_site(port).await;
    let token = s.key("bob", false).await;
    let script = json!([{"type": "wait", "duration_ms": 1000}]);
    let rec = s
        .create(
            &token,
            json!({"source": {"kind": "web", "url": site.url("/"), "script": script}}),
        )
        .await;
    s.wait_status(&token, rec["id"].as_str().unwrap(), "completed")
        .await;
    // A redirect to a private address fails the recording with the reason.
    let rec = s
        .create(
            &token,
            json!({"source": {"kind": "web", "url": site.url("/redirect"), "script": script}}),
        )
        .await;
    let failed = s
        .wait_status(&token, rec["id"].as_str().unwrap(), "failed")
        .await;
    let err = failed["error"]["message"].as_str().unwrap();
    assert!(err.contains("loopback"), "{err}");
    assert_eq!(failed["error"]["code"], "source_blocked", "{failed}");
    // So does a link-local address given directly.
    let rec = s.create(&token, json!({"source": {"kind": "web", "url": "http://169.254.169.254/latest/meta-data/", "script": script}})).await;
    let failed = s
        .wait_status(&token, rec["id"].as_str().unwrap(), "failed")
        .await;
    assert!(
        failed["error"]["message"]
            .as_str()
            .unwrap()
            .contains("link-local"),
        "{failed}"
    );
    // So does the host's own address, given directly.
    let url = format!("http://{own}:{}/secret?direct", canary.port);
    let rec = s
        .create(
            &token,
            json!({"source": {"kind": "web", "url": url, "script": script}}),
        )
        .await;
    let failed = s
        .wait_status(&token, rec["id"].as_str().unwrap(), "failed")
        .await;
    assert_eq!(failed["error"]["code"], "source_blocked", "{failed}");
    assert!(
        failed["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&own.to_string()),
        "{failed}"
    );
    // A name that does not resolve is unreachable, not blocked (a typo
    // is not the policy's doing).
    let rec = s
        .create(
            &token,
            json!({"source": {"kind": "web", "url": "http://no-such-host.invalid/", "script": script}}),
        )
        .await;
    let failed = s
        .wait_status(&token, rec["id"].as_str().unwrap(), "failed")
        .await;
    assert_eq!(failed["error"]["code"], "source_unreachable", "{failed}");
    let message = failed["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("does not resolve") && !message.contains("not allowed"),
        "{failed}"
    );
    // The canary server was never reached, by anything, WebSockets included,
    // while a WebSocket to the allowed site did get through.
    assert_eq!(canary.hits(), Vec::<String>::new());
    assert!(
        site.hits().contains(&"/ws-probe".to_string()),
        "{:?}",
        site.hits()
    );
    // Non-http schemes are refused before anything starts.
    let (st, v) = s
        .post(
            &token,
            "/v1/recordings",
            json!({"source": {"kind": "web", "url": "file:///etc/passwd"}}),
        )
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (422, Some("invalid_source"))
    );
    assert!(
        v["error"]["message"].as_str().unwrap().contains("`url`"),
        "{v}"
    );
}

/// Creates a recording that must fail, checks its error code, and returns its message.
async fn failure(s: &Server, token: &str, code: &str, body: serde_json::Value) -> String {
    let r = s.create(token, body).await;
    let f = s
        .wait_status(token, r["id"].as_str().unwrap(), "failed")
        .await;
    assert_eq!(f["error"]["code"], code, "{f}");
    f["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_have_clear_reasons_and_harm_nothing_else() {
    let site = PageServer::start(vec![
        ("/", Page::Body("text/html", BUTTON_PAGE.into())),
        ("/hang", Page::Hang),
        (
            "/busy",
            Page::Body(
                "text/html",
                "<p>spins</p><script>setTimeout(() => { for (;;) {} }, 300)</script>".into(),
            ),
        ),
    ]);
    let closed = tapedeck_testkit::free_port();
    let s = start(|c| {
        c.web.allow_private_networks = true;
        c.web.load_timeout_s = 3;
        c.web.frame_timeout_s = 3;
        c.web.max_concurrent = 2;
        // The queue of whole recordings, one browser each (web_split.rs
        // has recordings spread over several).
        c.web.browsers_per_recording = 1;
    })
    .await;
    let token = s.key("carol", false).await;
    let run = |url: String, script: serde_json::Value| json!({"source": {"kind": "web", "url": url, "script": script}});
    let wait = json!([{"type": "wait", "duration_ms": 300}]);

    // A selector that is not on the page names the step.
    let e = failure(
        &s,
        &token,
        "selector_not_found",
        run(
            site.url("/"),
            json!([{"type": "wait", "duration_ms": 100}, {"type": "click", "selector": "#nope"}]),
        ),
    )
    .await;
    assert_eq!(e, "script step 2 (click): no element matches `#nope`");
    // Unreachable host.
    let e = failure(
        &s,
        &token,
        "source_unreachable",
        run(format!("http://127.0.0.1:{closed}/"), wait.clone()),
    )
    .await;
    assert!(e.contains("unreachable"), "{e}");
    // A certificate the browser does not trust.
    let e = failure(
        &s,
        &token,
        "tls_error",
        run(tapedeck_testkit::untrusted_https(), wait.clone()),
    )
    .await;
    assert!(
        e.contains("TLS error (net::ERR_CERT_AUTHORITY_INVALID)"),
        "{e}"
    );
    // A page that loads, then never yields its thread again, in both modes.
    for mode in ["deterministic", "realtime"] {
        let mut body = run(
            site.url("/busy"),
            json!([{"type": "wait", "duration_ms": 8000}]),
        );
        body["source"]["mode"] = json!(mode);
        let e = failure(&s, &token, "page_unresponsive", body).await;
        assert_eq!(
            e, "the page stopped responding (no frame within 3 s)",
            "{mode}"
        );
    }
    // A page that never loads.
    let e = failure(
        &s,
        &token,
        "page_load_timeout",
        run(site.url("/hang"), wait.clone()),
    )
    .await;
    assert!(e.contains("did not finish loading within 3 s"), "{e}");
    // A malformed script is refused before anything starts, naming step and field.
    let (st, v) = s
        .post(
            &token,
            "/v1/recordings",
            run(site.url("/"), json!([{"type": "scroll", "by_px": "far"}])),
        )
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (422, Some("invalid_script")),
        "{v}"
    );
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("step 1 (scroll)") && msg.contains("by_px"),
        "{msg}"
    );

    // Two at once is the limit; a third waits its turn, and can be cancelled there.
    let long = json!([{"type": "wait", "duration_ms": 60000}]);
    let a = s.create(&token, run(site.url("/"), long.clone())).await;
    let b = s.create(&token, run(site.url("/"), long.clone())).await;
    let third = s.create(&token, run(site.url("/"), long.clone())).await;
    assert_eq!(
        (third["status"].as_str(), third["queue_position"].as_u64()),
        (Some("pending"), Some(1)),
        "{third}"
    );
    let third = third["id"].as_str().unwrap();
    let (st, v) = s
        .post(&token, &format!("/v1/recordings/{third}/cancel"), json!({}))
        .await;
    assert_eq!((st, v["status"].as_str()), (200, Some("cancelled")), "{v}");
    let (a, b) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    s.wait_status(&token, a, "recording").await;
    s.wait_status(&token, b, "recording").await;
    // Kill a's browser: a fails, b goes on and completes when stopped.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let a_dir = s.data.join("work").join(a);
    let needle = a_dir.to_string_lossy().to_string();
    let mut killed = 0;
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd);
        if cmd.contains(&needle) && cmd.contains("--remote-debugging-pipe") {
            Command::new("kill")
                .args(["-9", &e.file_name().to_string_lossy()])
                .status()
                .unwrap();
            killed += 1;
        }
    }
    assert_eq!(killed, 1, "exactly one browser per recording");
    let f = s.wait_status(&token, a, "failed").await;
    assert!(
        f["error"]["message"].as_str().unwrap().contains("browser"),
        "{f}"
    );
    assert_eq!(f["error"]["code"], "browser_crashed", "{f}");
    let (st, v) = s
        .post(&token, &format!("/v1/recordings/{b}/pause"), json!({}))
        .await;
    assert_eq!((st, v["status"].as_str()), (200, Some("paused")));
    s.post(&token, &format!("/v1/recordings/{b}/resume"), json!({}))
        .await;
    let (st, _) = s
        .post(&token, &format!("/v1/recordings/{b}/stop"), json!({}))
        .await;
    assert_eq!(st, 200);
    let done = s.wait_status(&token, b, "completed").await;
    assert_eq!(done["end_reason"], "stopped");
    assert!(ffprobe(&s.download(&token, b, "mp4").await).frames > 30);
    // A slot is free again.
    let c = s.create(&token, run(site.url("/"), wait)).await;
    s.wait_status(&token, c["id"].as_str().unwrap(), "completed")
        .await;
    assert_eq!(
        browsers_using(&s.data),
        0,
        "a browser outlived its recording"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goto_and_scroll_reach_the_next_page_and_its_footer() {
    let tall = r##"<!doctype html><html><body style="margin:0;background:#00c000">
<div style="height:3000px"></div><footer id="end" style="height:200px;background:#ff0000"></footer></body></html>"##;
    let site = PageServer::start(vec![
        (
            "/",
            Page::Body(
                "text/html",
                "<!doctype html><body style='background:#ddd'>first</body>".into(),
            ),
        ),
        ("/two", Page::Body("text/html", tall.into())),
    ]);
    let s = start_for_site(site.port).await;
    let token = s.key("erin", false).await;
    let rec = s
        .create(
            &token,
            json!({"source": {"kind": "web", "url": site.url("/"), "script": [
                {"type": "wait", "duration_ms": 300},
                {"type": "goto", "url": site.url("/two")},
                {"type": "wait", "duration_ms": 300},
                {"type": "scroll", "selector": "#end", "duration_ms": 1000, "easing": "linear"},
                {"type": "wait", "duration_ms": 300}
            ]}, "preset": "low", "fps": 30}),
        )
        .await;
    let id = rec["id"].as_str().unwrap();
    s.wait_status(&token, id, "completed").await;
    let video = s.download(&token, id, "mp4").await;
    let f = frames(&video, 854, 480);
    // 9 frames of the first page, 9 of the second at the top, 30 scrolling, 9 at the footer.
    assert_eq!(f.len(), 57);
    let grey = |p: [u8; 3]| p.iter().all(|c| (200..=235).contains(c));
    let green = |p: [u8; 3]| p[1] > 150 && p[0] < 60 && p[2] < 60;
    for fr in &f[..9] {
        assert!(grey(px(fr, 854, 400, 240)), "{:?}", px(fr, 854, 400, 240));
    }
    for fr in &f[9..18] {
        assert!(green(px(fr, 854, 400, 240)));
    }
    // Linear scroll from 0 to the bottom (3200 - 480 = 2720) over 30 frames:
    // frame 18 + i is at 2720 * (i + 1) / 30, so the footer (top at 3000)
    // enters in frame 45 and stops 280 px from the top.
    let footer_top = |fr: &[u8]| (0..480u32).find(|y| is_red(px(fr, 854, 400, *y)));
    assert_eq!(footer_top(&f[44]), None);
    for (k, want) in [(45usize, 461i64), (46, 371), (47, 280), (56, 280)] {
        let got = i64::from(footer_top(&f[k]).unwrap());
        assert!(
            (got - want).abs() <= 2,
            "frame {k}: footer at {got}, want {want}"
        );
    }
    for fr in &f[48..] {
        assert!(is_red(px(fr, 854, 400, 400)), "the footer ends in view");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn highlights_box_a_heading_s_text_and_a_button_s_whole_box() {
    let page = r##"<!doctype html><html><body style="margin:0;background:#ffffff;font:48px sans-serif">
<h1 id="title" style="margin:40px;font-size:48px">Short</h1>
<button id="wide" style="position:absolute;left:400px;top:250px;width:300px;height:100px">Go</button>
</body></html>"##;
    let site = PageServer::start(vec![("/", Page::Body("text/html", page.into()))]);
    let s = start_for_site(site.port).await;
    let token = s.key("frank", false).await;
    let rec = s
        .create(
            &token,
            json!({"source": {"kind": "web", "url": site.url("/"), "viewport": "854x480", "script": [
                {"type": "highlight", "selector": "#title", "duration_ms": 1000, "color": "#00ff00"},
                {"type": "highlight", "selector": "#wide", "duration_ms": 1000, "color": "#00ff00"}
            ]}, "preset": "low", "fps": 30}),
        )
        .await;
    let id = rec["id"].as_str().unwrap();
    s.wait_status(&token, id, "completed").await;
    let f = frames(&s.download(&token, id, "mp4").await, 854, 480);
    assert_eq!(f.len(), 60);
    // The horizontal extent of the green border in a frame at full strength.
    let green = |p: [u8; 3]| p[1] > 150 && p[0] < 110 && p[2] < 110;
    let extent = |fr: &[u8]| {
        let xs: Vec<u32> = (0..480u32)
            .flat_map(|y| (0..854u32).map(move |x| (x, y)))
            .filter(|(x, y)| green(px(fr, 854, *x, *y)))
            .map(|(x, _)| x)
            .collect();
        (xs.iter().min().copied(), xs.iter().max().copied())
    };
    // "Short" at 48 px is about 130 px wide from x = 40: the box hugs it
    // rather than the heading's block, which spans the page (40..814).
    let (l, r) = extent(&f[15]);
    let (l, r) = (l.expect("no highlight drawn"), r.unwrap_or(0));
    assert!((25..=45).contains(&l), "heading box from x = {l}");
    assert!((150..=260).contains(&r), "heading box to x = {r}");
    // A button keeps its whole box (400..700).
    let (l, r) = extent(&f[45]);
    let (l, r) = (l.expect("no highlight drawn"), r.unwrap_or(0));
    assert!((385..=402).contains(&l), "button box from x = {l}");
    assert!((698..=715).contains(&r), "button box to x = {r}");
}
