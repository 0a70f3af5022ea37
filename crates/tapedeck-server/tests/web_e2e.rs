//! The web page in real headless Chromium (Playwright's playwright-core with
//! Debian's Chromium and its fake camera): sign in, record from the camera at
//! 5 fps, watch it complete live, play, download, delete. The recording is
//! checked with ffprobe before the page deletes it.

mod support;

use support::*;
use tapedeck_testkit::ffprobe;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn camera_page_records_a_playable_mp4() {
    let s = start(|_| {}).await;
    let token = s.key("camera-user", false).await;

    // Keep a copy of the media before the page deletes it: watch events.
    let mut events = s.state.events.subscribe();
    let keeper = {
        let blobs = s.state.blobs.clone();
        let out = s.data.join("e2e-copy.mp4");
        tokio::spawn(async move {
            while let Ok(ev) = events.recv().await {
                if ev.kind == "recording.completed" {
                    use futures::TryStreamExt;
                    let d = blobs.get(&ev.recording.media_key(), None).await.unwrap();
                    let bytes: Vec<u8> =
                        d.stream.map_ok(|b| b.to_vec()).try_concat().await.unwrap();
                    std::fs::write(&out, bytes).unwrap();
                    return (ev.recording, out);
                }
            }
            panic!("no completed event");
        })
    };

    let r = page_script("camera.mjs", vec![s.base.clone(), token.clone()]).await;
    assert_eq!(r["timer"], "00:03");
    assert_eq!(r["thumbWidth"], 640);
    assert_eq!(r["downloadStatus"], 200);
    assert_eq!(r["deleted"], true);
    // A wrong key is refused in words, its code in the details line.
    assert!(
        r["refused"]
            .as_str()
            .unwrap()
            .starts_with("You are signed out"),
        "{r}"
    );
    // The camera turns off when its tab is left, and when a recording stops.
    assert_eq!(r["cameraOnInTab"], true, "{r}");
    assert_eq!(r["cameraOffAfterTab"], true, "{r}");
    assert_eq!(r["cameraOffAfterStop"], true, "{r}");
    assert_eq!(r["pageErrors"].as_array().unwrap().len(), 0, "{r}");
    let played = r["playedDuration"].as_f64().unwrap();
    assert!(played > 2.5, "{r}");

    let (rec, file) = keeper.await.unwrap();
    assert_eq!(rec.id.to_string(), r["id"].as_str().unwrap());
    let m = ffprobe(&file);
    assert_eq!((m.codec.as_str(), m.width, m.height), ("h264", 1280, 720));
    assert!((m.fps - 30.0).abs() < 1e-6, "{m:?}");
    assert!(m.duration_s > 2.5 && m.duration_s < 6.0, "{m:?}");
    assert!((m.duration_s - played).abs() < 0.1, "{m:?} vs {played}");
    assert!(
        rec.stats.frames_in >= 12,
        "about 5 fps for 3 s: {:?}",
        rec.stats
    );
    assert_eq!(
        s.get(
            &s.key("camera-user", false).await,
            &format!("/v1/recordings/{}", rec.id)
        )
        .await
        .0,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_page_form_records_a_page() {
    let site = tapedeck_testkit::PageServer::start(vec![(
        "/",
        tapedeck_testkit::Page::Body(
            "text/html",
            "<!doctype html><body style='background:#ddd'><button id='go' style='margin:200px'>Go</button><script>go.onclick=()=>document.body.style.background='#f00'</script></body>".into(),
        ),
    )]);
    let s = start_for_site(site.port).await;
    let token = s.key("web-user", false).await;
    let r = page_script(
        "webform.mjs",
        vec![s.base.clone(), token.clone(), site.url("/")],
    )
    .await;
    assert!(
        r["scriptError"].as_str().unwrap().contains("selector"),
        "{r}"
    );
    assert!(r["row"].as_str().unwrap().contains("Web page"), "{r}");
    assert!(
        r["scriptError"]
            .as_str()
            .unwrap()
            .starts_with("The script has a mistake: script step 2"),
        "{r}"
    );
    assert_eq!(r["pageErrors"].as_array().unwrap().len(), 0, "{r}");
    let id = r["id"].as_str().unwrap();
    let (_, rec) = s.get(&token, &format!("/v1/recordings/{id}")).await;
    assert_eq!(rec["source"]["kind"], "web");
    assert_eq!(rec["end_reason"], "source_ended");
    let m = ffprobe(&s.download(&token, id, "webm").await);
    assert_eq!((m.codec.as_str(), m.width, m.height), ("vp9", 854, 480));
    // 500 ms + move 700 ms + press/release + 500 ms settle + 500 ms at 24 fps.
    assert!(
        (m.duration_s - r["playedDuration"].as_f64().unwrap()).abs() < 0.1,
        "{m:?} {r}"
    );
    assert!((m.duration_s - 2.25).abs() < 0.1, "{m:?}");
}
