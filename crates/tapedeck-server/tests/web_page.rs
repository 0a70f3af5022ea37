//! The web page as people use it, in Debian's Chromium at a desktop
//! (1280x800) and a phone (390x844) size (tests/e2e/layout.mjs): no tab
//! bar while signed out, no tab that scrolls sideways or hides a control
//! off the screen or under another, Play opening the player where the
//! user looks, and a download named after the recording's title.

mod support;

use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tab_fits_a_phone_and_a_desktop() {
    let s = start(|_| {}).await;
    let key = s.key("ann", false).await;
    // A completed recording to list and play, and a room to list.
    completed_upload(&s, &key, "Weekly standup: notes").await;
    support::rooms::new_room(&s, &key).await;
    // An upload whose browser went away after its first kilobyte.
    let bytes = std::fs::read(s.data.join("two-seconds.webm")).unwrap();
    upload_titled(&s, &key, "Cut short", &bytes, 1000).await;

    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-page");
    std::fs::create_dir_all(&shots).unwrap();
    let out = page_script_env(
        "layout.mjs",
        vec![s.base.clone(), key.clone()],
        &[("SHOTS", shots.display().to_string())],
    )
    .await;
    // One line: a failure's message then shows right after it.
    println!("{out}");
    assert_eq!(out["pageErrors"], serde_json::json!([]), "{out}");
    for size in ["1280x800", "390x844"] {
        let r = &out["sizes"][size];
        assert_eq!(r["problems"], serde_json::json!([]), "{size}: {r}");
        assert_eq!(r["navShownSignedOut"], false, "{size}: {r}");
        let p = &r["player"];
        assert_eq!(p["open"], true, "{size}: {p}");
        let inside = p["top"].as_f64().unwrap() >= 0.0
            && p["bottom"].as_f64().unwrap() <= p["height"].as_f64().unwrap()
            && p["left"].as_f64().unwrap() >= 0.0
            && p["right"].as_f64().unwrap() <= p["width"].as_f64().unwrap();
        assert!(inside, "{size}: the player is not inside the screen: {p}");
        assert_eq!(r["playerClosed"], true, "{size}: {r}");
        assert_eq!(
            r["downloadName"], "attachment; filename=\"Weekly standup notes.webm\"",
            "{size}: {r}"
        );
    }
    let r = &out["sizes"]["1280x800"];
    let row = r["completedRow"].as_str().unwrap();
    assert!(row.starts_with("Ready Recorded in a browser · WEBM"), "{r}");
    assert_eq!(r["stopShown"], true, "{r}");
    // Stopped with a kilobyte of header: nothing to play, said in words.
    let stopped = &r["stopped"];
    assert_eq!(stopped["status"], "failed", "{r}");
    let why = stopped["why"].as_str().unwrap();
    let details = stopped["details"].as_str().unwrap();
    assert!(!why.contains('_') && why.ends_with('.'), "{stopped}");
    assert!(
        details.starts_with("invalid_media") || details.starts_with("no_video"),
        "{stopped}"
    );
}
