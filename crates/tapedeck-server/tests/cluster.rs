//! Nodes of a cluster on one PostgreSQL and one bucket (s3s-fs): each
//! claims its node id and heartbeats; `GET /v1/admin/nodes` lists them with
//! their load; a node killed with `kill -9` is dead once its heartbeat is
//! older than `cluster.node_timeout_s`; a second process with a held id, and
//! a node on SQLite or local storage, refuse to start naming the setting.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::*;
use tapedeck_server::config::Secret;

/// [`support::cluster::cluster_env`] as borrowed pairs.
fn cluster_env(
    pg: &str,
    s3: &tapedeck_testkit::S3,
    id: &str,
    internal: &str,
) -> Vec<(&'static str, &'static str)> {
    support::cluster::cluster_env(pg, s3, id, internal)
        .into_iter()
        .map(|(k, v)| {
            let leak = |x: String| -> &'static str { Box::leak(x.into_boxed_str()) };
            (leak(k), leak(v))
        })
        .collect()
}

/// `tapedeck serve` that must fail: its stderr.
fn refused(data: &std::path::Path, env: &[(&str, &str)]) -> String {
    let out = std::process::Command::new(BIN)
        .args(["serve", "--data-dir"])
        .arg(data)
        .args(["--listen", "127.0.0.1:0"])
        .env("TAPEDECK_RTC__UDP_PORT", "0")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(!out.status.success(), "it started");
    String::from_utf8_lossy(&out.stderr).to_string()
}

fn node<'a>(list: &'a Value, id: &str) -> &'a Value {
    list["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == id)
        .unwrap_or_else(|| panic!("no node {id}: {list}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_heartbeat_are_listed_and_die_and_an_id_is_held_once() {
    let pg = tapedeck_testkit::postgres_url();
    let s3 = tapedeck_testkit::s3();
    let dir = tempfile::tempdir().unwrap();

    // Node n1 in this process, node n2 the real binary.
    let s = start(|c| {
        c.database.url = Some(Secret(pg.clone()));
        on_s3(c, &s3.endpoint, &s3.bucket, &s3.access_key, &s3.secret_key);
        c.cluster.enabled = true;
        c.cluster.node_id = "n1".into();
        c.cluster.internal_url = "http://127.0.0.1:1".into();
        c.cluster.heartbeat_s = 1;
        c.cluster.node_timeout_s = 3;
    })
    .await;
    // A live recording and a room made on n1 say so.
    let ann = s.key("ann", false).await;
    let rec = s
        .create(&ann, json!({"source": {"kind": "frames"}, "preset": "low"}))
        .await;
    assert_eq!(rec["node"], "n1", "{rec}");
    let id = rec["id"].as_str().unwrap().to_string();
    let mut ws = connect(&s.ws_url(&format!("/v1/recordings/{id}/frames"), &ann)).await;
    send_frames(&mut ws, 10, 200.0, |i| jpeg(640, 360, i)).await;
    let (code, room) = s.post(&ann, "/v1/rooms", json!({"name": "standup"})).await;
    assert_eq!((code, room["node"].as_str()), (201, Some("n1")), "{room}");

    let port = tapedeck_testkit::free_port();
    let n2_url = format!("http://127.0.0.1:{port}");
    let mut n2 = serve_binary(
        &dir.path().join("n2"),
        port,
        &cluster_env(&pg, &s3, "n2", &n2_url),
    );

    // A key made on the shared database works on every node.
    let made = std::process::Command::new(BIN)
        .args(["keys", "create", "--user", "root", "--admin", "--data-dir"])
        .arg(dir.path().join("keys"))
        .env("TAPEDECK_DATABASE__URL", &pg)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let admin = String::from_utf8(made.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_string();
    let user = s.key("ann", false).await;

    let (code, v) = s.get(&user, "/v1/admin/nodes").await;
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (403, Some("not_admin")),
        "{v}"
    );
    let list = |base: String, token: String| async move {
        let r = reqwest::Client::new()
            .get(format!("{base}/v1/admin/nodes"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json::<Value>().await.unwrap()
    };
    // Both nodes, seen from either, alive, with their figures.
    let start_t = Instant::now();
    let seen = loop {
        let a = list(s.base.clone(), admin.clone()).await;
        let b = list(n2_url.clone(), admin.clone()).await;
        let heartbeats = a["nodes"].as_array().map_or(0, |n| n.len());
        // n2 heartbeated, and n1 since the recording began.
        if heartbeats == 2
            && node(&a, "n2")["heartbeat_at"] != node(&a, "n2")["started_at"]
            && node(&a, "n1")["live_sessions"] == 1
        {
            assert_eq!(a["nodes"], b["nodes"].clone(), "both read the same table");
            break a;
        }
        assert!(start_t.elapsed() < Duration::from_secs(20), "{a}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(seen["clustered"], true);
    assert_eq!(seen["this_node"], "n1");
    let n2_row = node(&seen, "n2");
    assert_eq!(n2_row["alive"], true, "{n2_row}");
    assert_eq!(n2_row["internal_url"], n2_url.as_str());
    assert_eq!(n2_row["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(n2_row["draining"], false);
    assert!(n2_row["cpu"]["budget"].as_f64().unwrap() > 0.0, "{n2_row}");
    assert_eq!(n2_row["live_sessions"], 0);
    assert_eq!(node(&seen, "n1")["live_sessions"], 1, "{seen}");

    // n2 started and recovered nothing of n1's: the recording goes on
    // there, its socket takes frames, and it completes whole.
    for i in 10..20 {
        send_frame(&mut ws, Some(f64::from(i) * 200.0), jpeg(640, 360, i)).await;
    }
    progress_until(&mut ws, |v| v["frames_received"] == 20).await;
    let (code, _) = s
        .post(&ann, &format!("/v1/recordings/{id}/stop"), json!({}))
        .await;
    assert_eq!(code, 200);
    let done = s.wait_status(&ann, &id, "completed").await;
    assert_eq!(done["node"], "n1");
    assert_eq!(done["stats"]["frames_in"], 20, "{done}");

    // A second process with n2's id is refused while n2 heartbeats.
    let mut env = cluster_env(&pg, &s3, "n2", &n2_url);
    env.push(("TAPEDECK_RTC__UDP_PORT", "0"));
    let e = refused(&dir.path().join("n2-again"), &env);
    assert!(
        e.contains("cluster.node_id `n2` is held by a running node"),
        "{e}"
    );

    // The capacity metric counts both nodes' free budget.
    let metric = |text: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with("tapedeck_cluster_capacity_free "))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(-1.0)
    };
    // The recording ended: once n1's next heartbeat says so, all of both
    // budgets is free.
    let budget = |n: &Value| n["cpu"]["budget"].as_f64().unwrap();
    let whole = budget(node(&seen, "n1")) + budget(n2_row);
    let since = Instant::now();
    loop {
        let both = metric(&s.metrics().await);
        if (both - whole).abs() < 0.01 {
            break;
        }
        assert!(since.elapsed() < Duration::from_secs(5), "{both} {seen}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // kill -9: n2 stops heartbeating and is dead after node_timeout_s.
    n2.kill_9();
    let killed = Instant::now();
    let dead = loop {
        let a = list(s.base.clone(), admin.clone()).await;
        if node(&a, "n2")["alive"] == false {
            break a;
        }
        assert!(killed.elapsed() < Duration::from_secs(15), "{a}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(node(&dead, "n1")["alive"], true);
    let one = metric(&s.metrics().await);
    assert!((one - budget(node(&dead, "n1"))).abs() < 0.01, "{one}");
    assert!(
        s.metrics()
            .await
            .contains("tapedeck_cluster_nodes{state=\"dead\"} 1")
    );
    // Its id is free again: a new run of n2 takes it.
    let _n2 = serve_binary(
        &dir.path().join("n2"),
        port,
        &cluster_env(&pg, &s3, "n2", &n2_url),
    );
}

#[test]
fn a_node_on_one_machine_s_database_or_disk_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let on = [
        ("TAPEDECK_CLUSTER__ENABLED", "true"),
        ("TAPEDECK_CLUSTER__NODE_ID", "n1"),
        ("TAPEDECK_CLUSTER__INTERNAL_URL", "http://127.0.0.1:9"),
    ];
    let e = refused(dir.path(), &on);
    assert!(
        e.contains("database.url") && e.contains("PostgreSQL"),
        "{e}"
    );
    let mut pg_only = on.to_vec();
    pg_only.push(("TAPEDECK_DATABASE__URL", "postgres://127.0.0.1:9/x"));
    let e = refused(dir.path(), &pg_only);
    assert!(e.contains("storage.kind"), "{e}");
}

/// Nodes (here six `tapedeck keys create`, which connect and migrate as a
/// node does) started at the same instant on a new PostgreSQL database
/// all start: one migrates at a time.
#[test]
fn processes_started_at_once_on_a_new_database_all_migrate_it() {
    let pg = tapedeck_testkit::postgres_url();
    let dir = tempfile::tempdir().unwrap();
    let children: Vec<_> = (0..6)
        .map(|i| {
            std::process::Command::new(BIN)
                .args(["keys", "create", "--user", &format!("u{i}"), "--data-dir"])
                .arg(dir.path().join(format!("k{i}")))
                .env("TAPEDECK_DATABASE__URL", &pg)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
