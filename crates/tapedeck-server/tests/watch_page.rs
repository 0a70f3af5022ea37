//! Watching and sharing: the list searched and paged past its first 50,
//! the watch page of a recording (player, rename, share, delete), the
//! public viewer of a share link that shows that recording only, and a
//! web recording's progress while it renders (tests/e2e/watch.mjs and
//! progress.mjs in Debian's Chromium; the API beneath them directly).

mod support;

use serde_json::json;
use support::*;
use tapedeck_core::RecordingId;
use tapedeck_core::recording::Status;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watch_page_plays_renames_shares_and_deletes() {
    let s = start(|_| {}).await;
    let key = s.key("ann", false).await;
    let id = completed_upload(&s, &key, "Weekly standup: notes").await;
    // 60 older recordings that ended, to page through.
    let done = s
        .state
        .repo
        .get(id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    for n in 0..60u64 {
        let mut r = done.clone();
        r.id = RecordingId::from_parts(1_600_000_000_000 + n, u128::from(n));
        r.status = Status::Cancelled;
        r.title = Some(format!("Old clip {n}"));
        r.metadata = json!({"customer": if n == 7 { "Acme" } else { "Other" }, "lead": n % 20});
        s.state.repo.insert(&r).await.unwrap();
    }

    // The API under the page: search by title, kind and metadata, paged.
    let (st, page) = s.get(&key, "/v1/recordings?q=old%20clip&limit=50").await;
    assert_eq!(st, 200, "{page}");
    assert_eq!(page["recordings"].as_array().unwrap().len(), 50);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, rest) = s
        .get(
            &key,
            &format!("/v1/recordings?q=old%20clip&limit=50&cursor={cursor}"),
        )
        .await;
    assert_eq!(rest["recordings"].as_array().unwrap().len(), 10, "{rest}");
    assert_eq!(rest["next_cursor"], serde_json::Value::Null);
    let (_, acme) = s.get(&key, "/v1/recordings?q=ACME").await;
    assert_eq!(acme["recordings"][0]["title"], "Old clip 7", "{acme}");
    assert_eq!(acme["recordings"].as_array().unwrap().len(), 1);
    let (_, by_kind) = s
        .get(
            &key,
            "/v1/recordings?q=recorded%20in%20a%20browser&limit=100",
        )
        .await;
    assert_eq!(by_kind["recordings"].as_array().unwrap().len(), 61);
    let (st, e) = s.get(&key, "/v1/recordings?q=").await;
    assert_eq!((st, &e["error"]["code"]), (400, &json!("invalid_query")));
    // Filtered by the recordings' own metadata, exactly: a number as
    // JSON writes it, a string with its case; with a search too.
    let titles = |v: &serde_json::Value| -> Vec<String> {
        let list = v["recordings"].as_array().cloned().unwrap_or_default();
        list.iter()
            .map(|r| r["title"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let (st, lead) = s.get(&key, "/v1/recordings?metadata.lead=7").await;
    assert_eq!(st, 200, "{lead}");
    assert_eq!(titles(&lead), ["Old clip 47", "Old clip 27", "Old clip 7"]);
    let (_, both) = s
        .get(
            &key,
            "/v1/recordings?metadata.lead=7&metadata.customer=Acme",
        )
        .await;
    assert_eq!(titles(&both), ["Old clip 7"]);
    let (_, case) = s.get(&key, "/v1/recordings?metadata.customer=acme").await;
    assert_eq!(titles(&case), Vec::<String>::new());
    let (_, searched) = s
        .get(&key, "/v1/recordings?metadata.lead=7&q=clip%2027")
        .await;
    assert_eq!(titles(&searched), ["Old clip 27"]);
    for bad in [
        "metadata.=1",
        "metadata.a.b=1",
        "metadata.lead=",
        "metadata.a%20b=1",
    ] {
        let (st, e) = s.get(&key, &format!("/v1/recordings?{bad}")).await;
        assert_eq!(
            (st, &e["error"]["code"]),
            (400, &json!("invalid_query")),
            "{bad}: {e}"
        );
    }
    // Another user's search finds none of ann's.
    let bob = s.key("bob", false).await;
    let (_, none) = s.get(&bob, "/v1/recordings?q=standup").await;
    assert_eq!(none["recordings"], json!([]));

    // Rename: a recording that ended, by its owner, 1-200 characters.
    let patch = |token: String, path: String, body: serde_json::Value| {
        let c = s.client();
        let url = format!("{}{path}", s.base);
        async move {
            let r = c
                .patch(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            let st = r.status().as_u16();
            (st, r.json::<serde_json::Value>().await.unwrap_or_default())
        }
    };
    let path = format!("/v1/recordings/{id}");
    let (st, r) = patch(key.clone(), path.clone(), json!({"title": "  Standup  "})).await;
    assert_eq!((st, &r["title"]), (200, &json!("Standup")), "{r}");
    let (st, _) = patch(bob.clone(), path.clone(), json!({"title": "mine"})).await;
    assert_eq!(st, 404);
    let (st, e) = patch(key.clone(), path.clone(), json!({"title": ""})).await;
    assert_eq!((st, &e["error"]["code"]), (400, &json!("invalid_request")));
    let live = s.create(&key, json!({"source": {"kind": "frames"}})).await;
    let live_id = live["id"].as_str().unwrap();
    let (st, e) = patch(
        key.clone(),
        format!("/v1/recordings/{live_id}"),
        json!({"title": "x"}),
    )
    .await;
    assert_eq!((st, &e["error"]["code"]), (409, &json!("not_ready")), "{e}");
    s.post(&key, &format!("/v1/recordings/{live_id}/cancel"), json!({}))
        .await;
    let (st, _) = patch(
        key.clone(),
        path.clone(),
        json!({"title": "Weekly standup: notes"}),
    )
    .await;
    assert_eq!(st, 200);

    // A share link's viewer page, and what it may read: this recording's
    // title and length, with the link's signature only.
    let (st, share) = s
        .post(&key, &format!("/v1/recordings/{id}/share"), json!({}))
        .await;
    assert_eq!(st, 200, "{share}");
    let page_url = url::Url::parse(share["page_url"].as_str().unwrap()).unwrap();
    assert_eq!(page_url.path(), format!("/s/{id}"));
    let info = |q: String| {
        let url = format!("{}/v1/shared/{id}/info?{q}", s.base);
        async move {
            let r = reqwest::get(url).await.unwrap();
            (
                r.status().as_u16(),
                r.json::<serde_json::Value>().await.unwrap(),
            )
        }
    };
    let (st, i) = info(page_url.query().unwrap().to_string()).await;
    assert_eq!(st, 200, "{i}");
    assert_eq!(
        (&i["title"], &i["width"], &i["height"]),
        (&json!("Weekly standup: notes"), &json!(640), &json!(360))
    );
    let (st, e) = info("exp=9999999999&sig=00".into()).await;
    assert_eq!(
        (st, &e["error"]["code"]),
        (403, &json!("invalid_signature"))
    );

    let out = page_script("watch.mjs", vec![s.base.clone(), key.clone(), id.clone()]).await;
    // One line: a failure's message then shows right after it.
    println!("{out}");
    assert_eq!(out["pageErrors"], json!([]), "{out}");
    // The list: 50 at first, the rest on asking; the search finds one.
    assert_eq!(out["firstPage"], 50);
    assert_eq!(out["moreShown"], true);
    // 60 old ones, the standup and the frames recording cancelled above.
    assert_eq!(out["afterMore"], 62);
    assert_eq!(out["moreAfter"], false);
    assert_eq!(out["found"], "Weekly standup: notes");
    assert_eq!(out["nothing"], "No recording matches “no such thing”.");
    // `key:value` in the search box filters by metadata.
    assert_eq!(out["byMetadata"], json!(["Old clip 27"]), "{out}");
    // The watch page plays it, downloads it, renames it.
    let w = &out["watch"];
    assert_eq!(w["title"], "Weekly standup: notes");
    assert!((w["duration"].as_f64().unwrap() - 2.0).abs() < 0.2, "{w}");
    assert_eq!(
        w["download"],
        format!("/v1/recordings/{id}/media?download=1")
    );
    assert_eq!(out["renamed"], "Standup, renamed");
    for p in ["watchProblems", "watchPhoneProblems", "viewerProblems"] {
        assert_eq!(out[p], json!([]), "{p}: {out}");
    }
    // The viewer shows the recording and nothing else of the server.
    let v = &out["viewer"];
    assert_eq!(v["title"], "Standup, renamed");
    assert!((v["duration"].as_f64().unwrap() - 2.0).abs() < 0.2, "{v}");
    assert!(
        v["links"].as_array().unwrap().iter().all(|l| l
            .as_str()
            .unwrap()
            .starts_with(&format!("/v1/shared/{id}?"))),
        "{v}"
    );
    assert_eq!(
        out["viewerDownload"],
        "attachment; filename=\"Standup renamed.webm\""
    );
    assert_eq!(out["viewerList"], 401);
    assert!(
        out["tampered"]
            .as_str()
            .unwrap()
            .starts_with("This link does not work"),
        "{out}"
    );
    assert_eq!(out["afterDelete"], false);
    let (st, _) = s.get(&key, &format!("/v1/recordings/{id}")).await;
    assert_eq!(st, 404, "deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_web_recording_shows_its_progress_while_it_renders() {
    let site = tapedeck_testkit::PageServer::start(vec![(
        "/",
        tapedeck_testkit::Page::Body(
            "text/html",
            "<!doctype html><body style='background:#9cf'><h1>Progress</h1></body>".into(),
        ),
    )]);
    let s = start_for_site(site.port).await;
    let key = s.key("ann", false).await;
    let rec = s
        .create(
            &key,
            json!({"title": "Slow render", "preset": "low", "source": {"kind": "web", "url": site.url("/"),
                "mode": "deterministic", "script": [{"type": "wait", "duration_ms": 180000}]}}),
        )
        .await;
    let id = rec["id"].as_str().unwrap().to_string();
    // While it renders, the API says its pace and what is left.
    let live = loop {
        let (_, v) = s.get(&key, &format!("/v1/recordings/{id}")).await;
        if v["stats"]["eta_s"].is_number() || v["status"] == "completed" {
            break v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(live["status"], "recording", "{live}");
    assert_eq!(live["stats"]["frames_planned"], 4320, "{live}");
    assert!(
        live["stats"]["realtime_factor"].as_f64().unwrap() > 0.0,
        "{live}"
    );
    assert!(live["stats"]["eta_s"].as_f64().unwrap() > 0.0, "{live}");
    let out = page_script(
        "progress.mjs",
        vec![s.base.clone(), key.clone(), id.clone()],
    )
    .await;
    // One line: a failure's message then shows right after it.
    println!("{out}");
    assert_eq!(out["pageErrors"], json!([]), "{out}");
    // 180 s at 24 fps: 4320 frames planned; seen part way, on both pages
    // (it renders in about 20 s: long enough for the pages to load first).
    for page in ["list", "watch"] {
        let seen = out[page].as_array().unwrap();
        assert!(!seen.is_empty(), "{page}: {out}");
        for text in seen {
            let t = text.as_str().unwrap();
            assert!(t.contains(" of 4320 · "), "{page}: {t}");
        }
        let first = seen[0].as_str().unwrap();
        assert!(
            !first.starts_with("100%"),
            "{page} saw it only at the end: {out}"
        );
    }
    let done = s.wait_status(&key, &id, "completed").await;
    assert_eq!(done["stats"]["frames_written"], 4320, "{done}");
    assert!(done["stats"].get("eta_s").is_none(), "{done}");
    assert!(done["stats"]["realtime_factor"].as_f64().unwrap() > 0.0);
}
