//! Every page at a desktop and a phone size, in Debian's Chromium
//! (tests/e2e/a11y.mjs): axe-core finds no serious or critical WCAG 2 AA
//! violation, nothing scrolls sideways, every control is on the screen and
//! reachable. The screenshots it takes are the README's (refreshed with
//! `scripts/screenshots.sh`, which sets SHOTS to docs/screenshots).

mod support;

use serde_json::json;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_passes_axe_and_fits_at_both_sizes() {
    let s = start(|_| {}).await;
    let key = s.key("ann", false).await;
    let id = completed_upload(&s, &key, "Weekly standup").await;
    let room = support::rooms::new_room(&s, &key).await;
    let (st, share) = s
        .post(&key, &format!("/v1/recordings/{id}/share"), json!({}))
        .await;
    assert_eq!(st, 200, "{share}");
    let shots = std::env::var("SHOTS").unwrap_or_else(|_| {
        let d = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
        std::fs::create_dir_all(&d).unwrap();
        d.display().to_string()
    });
    let out = page_script_env(
        "a11y.mjs",
        vec![
            s.base.clone(),
            key.clone(),
            id.clone(),
            room,
            share["page_url"].as_str().unwrap().to_string(),
        ],
        &[("SHOTS", shots.clone())],
    )
    .await;
    // One line: a failure's message then shows right after it.
    println!("{out}");
    println!("screenshots: {shots}");
    assert_eq!(out["pageErrors"], json!([]), "{out}");
    let pages = out["pages"].as_object().unwrap();
    // 10 pages (sign-in, 5 tabs, watch, call lobby, call, shared) × 2 sizes.
    assert_eq!(pages.len(), 20, "{out}");
    let mut bad = vec![];
    for (page, r) in pages {
        for what in ["violations", "problems"] {
            if r[what] != json!([]) {
                bad.push(format!("{page} {what}: {}", r[what]));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
