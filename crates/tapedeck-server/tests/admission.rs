//! Admission by CPU cost: with the budget set low, web recordings wait their
//! turn (fairly across users) and all complete, never more at once than fit;
//! a live frames recording that does not fit is refused with 429
//! `server_busy` (where cameras are not deferred), and nothing running is
//! harmed.

mod support;

// `/metrics` is open (as Prometheus scrapes it); the API is not.

use std::time::Duration;

use serde_json::{Value, json};
use support::*;
use tapedeck_testkit::{Page, PageServer, ffprobe};

const PAGE: &str = "<body style='margin:0;background:#eee'><div id=b style='width:80px;height:80px;background:#c00'></div>
<script>let n=0;(function f(){document.getElementById('b').style.marginLeft=(n++%400)+'px';requestAnimationFrame(f)})()</script></body>";

/// A web recording at the low preset (854x480 at 24 fps): an estimated
/// 0.558 of a core. Two fit in 1.2 cores; a third does not, and neither
/// does a medium-preset frames recording beside two (0.161 at the busy
/// preset, which it would get past half the budget).
const BUDGET: f64 = 1.2;

fn web(url: &str) -> Value {
    json!({"source": {"kind": "web", "url": url, "script": [{"type": "wait", "duration_ms": 500}]},
           "preset": "low"})
}

/// Overlap of [started_at, stopped_at] intervals: the most running at once.
fn most_at_once(recs: &[Value]) -> usize {
    let mut edges = vec![];
    for r in recs {
        let t = |k: &str| {
            r[k].as_str()
                .unwrap_or_else(|| panic!("{k} in {r}"))
                .to_string()
        };
        edges.push((t("started_at"), 1i32));
        edges.push((t("stopped_at"), -1));
    }
    // RFC 3339 in UTC sorts as text; an end before a start at the same instant.
    edges.sort();
    let (mut now, mut most) = (0i32, 0i32);
    for (_, d) in edges {
        now += d;
        most = most.max(now);
    }
    most as usize
}

fn reserved_cores(metrics: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with("tapedeck_cpu_cores{what=\"reserved\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no reserved figure in {metrics}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn web_recordings_wait_their_turn_fairly_and_live_ones_are_refused_when_busy() {
    let site = PageServer::start(vec![("/", Page::Body("text/html", PAGE.into()))]);
    let s = start(|c| {
        c.web.allowed_hosts = vec![format!("127.0.0.1:{}", site.port)];
        c.limits.cpu_budget_cores = BUDGET;
        // The budget, not the browser count, is what binds here.
        c.web.max_concurrent = 20;
        // Cameras are refused when busy, not spooled for later (tests/deferred.rs).
        c.limits.max_deferred_cameras = 0;
    })
    .await;
    let ann = s.key("ann", false).await;
    let bob = s.key("bob", false).await;

    let mut ids = vec![];
    for i in 0..19 {
        let r = s.create(&ann, web(&site.url("/"))).await;
        let want = if i < 2 { None } else { Some(i as u64 - 1) };
        assert_eq!(r["queue_position"].as_u64(), want, "ann's job {i}: {r}");
        assert_eq!(r["status"], "pending");
        ids.push((ann.clone(), r["id"].as_str().unwrap().to_string()));
    }
    // Ann has two running: bob's one job goes next, not after her 17.
    let r = s.create(&bob, web(&site.url("/"))).await;
    assert_eq!(r["queue_position"], 1, "{r}");
    let bobs = r["id"].as_str().unwrap().to_string();
    ids.push((bob.clone(), bobs.clone()));
    let (_, got) = s.get(&bob, &format!("/v1/recordings/{bobs}")).await;
    assert!(
        got["queue_position"].as_u64().is_some_and(|p| p <= 2),
        "{got}"
    );

    // A live source does not wait: two web recordings hold the budget now.
    let metrics = s.metrics().await;
    assert!((reserved_cores(&metrics) - 1.116).abs() < 1e-6, "{metrics}");
    assert!(
        metrics.contains("tapedeck_cpu_cores{what=\"budget\"} 1.2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tapedeck_web_queue_length 18"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tapedeck_cpu_cores{what=\"used\"}"),
        "{metrics}"
    );
    let (st, v) = s
        .post(
            &bob,
            "/v1/recordings",
            json!({"source": {"kind": "frames"}, "preset": "medium"}),
        )
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (429, Some("server_busy")),
        "{v}"
    );
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("1.12 of 1.20 cores") && msg.contains("0.16"),
        "{msg}"
    );

    // Cancelling a waiting one takes it out of the queue at once.
    let bob_entry = ids.pop().unwrap();
    let (ann_tok, last) = ids.pop().unwrap();
    ids.push(bob_entry);
    let (st, v) = s
        .post(
            &ann_tok,
            &format!("/v1/recordings/{last}/cancel"),
            json!({}),
        )
        .await;
    assert_eq!((st, v["status"].as_str()), (200, Some("cancelled")), "{v}");
    let (_, v) = s.get(&ann_tok, &format!("/v1/recordings/{last}")).await;
    assert_eq!(v["queue_position"], Value::Null, "{v}");

    // Every other one completes, whole.
    let mut done = vec![];
    let mut peak_reserved: f64 = 0.0;
    for (tok, id) in &ids {
        let r = loop {
            let (_, r) = s.get(tok, &format!("/v1/recordings/{id}")).await;
            let m = s.metrics().await;
            peak_reserved = peak_reserved.max(reserved_cores(&m));
            match r["status"].as_str() {
                Some("completed") => break r,
                Some("failed" | "cancelled") => panic!("{id}: {r}"),
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        let p = ffprobe(&s.download(tok, id, "mp4").await);
        assert_eq!((p.width, p.height, p.frames), (854, 480, 12), "{id}: {p:?}");
        done.push(r);
    }
    assert_eq!(done.len(), 19);
    assert!(peak_reserved <= BUDGET + 1e-9, "{peak_reserved}");
    let most = most_at_once(&done);
    assert!((1..=2).contains(&most), "{most} web recordings ran at once");
    // Bob's job was not left for last: it ended before most of ann's.
    let bob_done = done.last().unwrap()["completed_at"]
        .as_str()
        .unwrap()
        .to_string();
    let after = done[..18]
        .iter()
        .filter(|r| r["completed_at"].as_str().unwrap() > bob_done.as_str())
        .count();
    assert!(
        after >= 10,
        "only {after} of ann's 18 finished after bob's one"
    );
    // With the queue empty the budget is whole again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let m = s.metrics().await;
    assert_eq!(reserved_cores(&m), 0.0, "{m}");
    let r = s
        .create(&bob, json!({"source": {"kind": "frames"}, "preset": "low"}))
        .await;
    assert_eq!(r["status"], "pending");
}

/// A live recording holds its estimate from creation until it has ended,
/// whatever its kind; one admitted while the others hold more than half the
/// budget is busy: it reserves the busy estimate and its encoder runs at
/// the busy preset with one thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_recordings_hold_their_reservation_and_busy_ones_encode_faster() {
    // A 720p camera at 5 fps: 0.066 of a core, 0.034 when busy. In 0.18:
    // two calm ones (0.132, past half the budget), a busy third (0.166),
    // and no room for a fourth.
    let s = start(|c| {
        c.limits.cpu_budget_cores = 0.18;
        c.encoder.x264_preset = "ultrafast".into();
        c.limits.max_deferred_cameras = 0;
        c.encoder.busy_x264_preset = "superfast".into();
    })
    .await;
    let ann = s.key("ann", false).await;
    let camera = json!({"source": {"kind": "frames", "input_fps": 5}, "preset": "medium"});
    let mut ids = vec![];
    for _ in 0..3 {
        let r = s.create(&ann, camera.clone()).await;
        ids.push(r["id"].as_str().unwrap().to_string());
    }
    let m = s.metrics().await;
    assert!((reserved_cores(&m) - 0.166).abs() < 1e-6, "{m}");
    let (st, v) = s.post(&ann, "/v1/recordings", camera.clone()).await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (429, Some("server_busy")),
        "{v}"
    );
    for id in &ids {
        let mut ws = connect(&s.ws_url(&format!("/v1/recordings/{id}/frames"), &ann)).await;
        for k in 0..5 {
            send_frame(&mut ws, Some(f64::from(k) * 200.0), jpeg(1280, 720, k)).await;
        }
        s.wait_status(&ann, id, "recording").await;
        let (st, _) = s
            .post(&ann, &format!("/v1/recordings/{id}/stop"), json!({}))
            .await;
        assert_eq!(st, 200);
        s.wait_status(&ann, id, "completed").await;
    }
    let m = s.metrics().await;
    assert_eq!(reserved_cores(&m), 0.0, "{m}");
    // x264 writes its settings into the stream: ultrafast has subme=0,
    // superfast subme=1.
    let mut options = vec![];
    for id in &ids {
        let media = std::fs::read(s.download(&ann, id, "mp4").await).unwrap();
        let at = media
            .windows(9)
            .position(|w| w == b"options: ")
            .expect("x264's settings in the stream");
        options.push(String::from_utf8_lossy(&media[at..at + 600]).to_string());
    }
    assert!(options[0].contains(" subme=0 "), "{}", options[0]);
    assert!(options[1].contains(" subme=0 "), "{}", options[1]);
    assert!(
        options[2].contains(" subme=1 ") && options[2].contains(" threads=1 "),
        "{}",
        options[2]
    );
    let next = s.create(&ann, camera).await;
    assert_eq!(next["status"], "pending", "{next}");
}

async fn call(
    base: &str,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    let mut r = reqwest::Client::new()
        .request(method, format!("{base}{path}"))
        .bearer_auth(token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    r.send().await.unwrap().json().await.unwrap()
}

/// The queue is the database's pending web recordings: after `kill -9` of
/// the real binary, the next start queues them again in the order they were
/// made, round robin across users, and every one completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_survives_kill_9() {
    let site = PageServer::start(vec![("/", Page::Body("text/html", PAGE.into()))]);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ann = binary_key(&data, "ann");
    let bob = binary_key(&data, "bob");
    let port = tapedeck_testkit::free_port();
    let base = format!("http://127.0.0.1:{port}");
    // One low-preset web recording (0.558 of a core) at a time.
    let env = [
        ("TAPEDECK_LIMITS__CPU_BUDGET_CORES", "0.7"),
        ("TAPEDECK_WEB__ALLOW_PRIVATE_NETWORKS", "true"),
    ];
    let mut server = serve_binary(&data, port, &env);
    let post = reqwest::Method::POST;
    let mut made = vec![];
    for (i, token) in [&ann, &ann, &ann, &bob].into_iter().enumerate() {
        let mut body = web(&site.url("/"));
        if i == 0 {
            // Still recording when the server dies.
            body["source"]["script"] = json!([{"type": "wait", "duration_ms": 60000}]);
        }
        let r = call(&base, token, post.clone(), "/v1/recordings", Some(body)).await;
        assert_eq!(r["status"], "pending", "{r}");
        made.push((
            token.clone(),
            r["id"].as_str().unwrap().to_string(),
            r["queue_position"].clone(),
        ));
    }
    let positions: Vec<Value> = made.iter().map(|m| m.2.clone()).collect();
    // Ann has one running, so bob's one goes next.
    assert_eq!(positions, [Value::Null, json!(1), json!(2), json!(1)]);
    let get = reqwest::Method::GET;
    let third = format!("/v1/recordings/{}", made[2].1);
    assert_eq!(
        call(&base, &ann, get.clone(), &third, None).await["queue_position"],
        3
    );
    let first = format!("/v1/recordings/{}", made[0].1);
    while call(&base, &ann, get.clone(), &first, None).await["status"] != "recording" {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    server.kill_9();
    let _server = serve_binary(&data, port, &env);

    // Ann's second and third and bob's one waited: they queue again in the
    // order they were made; ann's second fits at once, so bob's goes before
    // ann's third.
    let mut done = vec![];
    for (token, id, _) in &made[1..] {
        let start = std::time::Instant::now();
        let r = loop {
            let r = call(
                &base,
                token,
                get.clone(),
                &format!("/v1/recordings/{id}"),
                None,
            )
            .await;
            match r["status"].as_str() {
                Some("completed") => break r,
                Some("failed" | "cancelled") => panic!("{id}: {r}"),
                _ if start.elapsed() > Duration::from_secs(120) => panic!("{id}: {r}"),
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        let media = reqwest::Client::new()
            .get(format!("{base}/v1/recordings/{id}/media"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let path = dir.path().join(format!("{id}.mp4"));
        std::fs::write(&path, &media).unwrap();
        let p = ffprobe(&path);
        assert_eq!((p.width, p.height, p.frames), (854, 480, 12), "{id}: {p:?}");
        done.push(r);
    }
    let at = |r: &Value| r["started_at"].as_str().unwrap().to_string();
    assert!(
        at(&done[2]) < at(&done[1]),
        "bob's started before ann's third: {done:?}"
    );
    assert!(
        at(&done[0]) < at(&done[2]),
        "ann's second started first: {done:?}"
    );
    // The one that was recording when the server died was finished from
    // what it had spooled.
    let first = call(&base, &ann, get, &first, None).await;
    assert_eq!(first["end_reason"], "recovered", "{first}");
}
