//! A cluster on loopback: real nodes (the binary) on one PostgreSQL and one
//! s3s-fs bucket, HAProxy in front; and a small client for any of them.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::{BIN, Proc, metric, serve_binary};

/// The environment that makes `tapedeck serve` node `id` of a cluster.
pub fn cluster_env(
    pg: &str,
    s3: &tapedeck_testkit::S3,
    id: &str,
    internal: &str,
) -> Vec<(String, String)> {
    [
        ("TAPEDECK_DATABASE__URL", pg),
        ("TAPEDECK_STORAGE__KIND", "s3"),
        ("TAPEDECK_STORAGE__BUCKET", &s3.bucket),
        ("TAPEDECK_STORAGE__ENDPOINT", &s3.endpoint),
        ("TAPEDECK_STORAGE__ACCESS_KEY", &s3.access_key),
        ("TAPEDECK_STORAGE__SECRET_KEY", &s3.secret_key),
        ("TAPEDECK_CLUSTER__ENABLED", "true"),
        ("TAPEDECK_CLUSTER__NODE_ID", id),
        ("TAPEDECK_CLUSTER__INTERNAL_URL", internal),
        ("TAPEDECK_CLUSTER__HEARTBEAT_S", "1"),
        ("TAPEDECK_CLUSTER__NODE_TIMEOUT_S", "3"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// One node: its address and process.
pub struct ClusterNode {
    pub id: String,
    pub base: String,
    pub port: u16,
    pub proc: Proc,
    env: Vec<(String, String)>,
    pub data: std::path::PathBuf,
}

impl ClusterNode {
    /// SIGTERM, as systemd stops a node; waits until the process exits.
    pub fn terminate(&mut self) {
        self.terminate_started();
        self.wait_stopped();
    }

    /// SIGTERM, not waiting.
    pub fn terminate_started(&mut self) {
        let pid = self.proc.0.id().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(sent.success());
    }

    /// Until the process exited.
    pub fn wait_stopped(&mut self) {
        let start = Instant::now();
        while self.proc.0.try_wait().unwrap().is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(90),
                "{} did not stop",
                self.id
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts it again with the same id, data and port.
    pub fn start_again(&mut self) {
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.proc = serve_binary(&self.data, self.port, &env);
    }
}

/// Nodes `n1..nN` behind HAProxy.
pub struct Cluster {
    pub pg: String,
    pub s3: tapedeck_testkit::S3,
    pub lb: String,
    pub nodes: Vec<ClusterNode>,
    pub dir: tempfile::TempDir,
}

impl Cluster {
    /// `n` nodes; `extra(i)` adds environment to node `i` (0-based).
    pub fn start(n: usize, extra: impl Fn(usize) -> Vec<(String, String)>) -> Self {
        Self::start_on(tapedeck_testkit::s3(), n, extra)
    }

    /// [`Cluster::start`] on the bucket `s3` (one the test may stop).
    pub fn start_on(
        s3: tapedeck_testkit::S3,
        n: usize,
        extra: impl Fn(usize) -> Vec<(String, String)>,
    ) -> Self {
        let pg = tapedeck_testkit::postgres_url();
        let dir = tempfile::tempdir().unwrap();
        let mut nodes = Vec::new();
        for i in 0..n {
            let id = format!("n{}", i + 1);
            let port = tapedeck_testkit::free_port();
            let base = format!("http://127.0.0.1:{port}");
            let mut env = cluster_env(&pg, &s3, &id, &base);
            env.extend(extra(i));
            let data = dir.path().join(&id);
            let pairs: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let proc = serve_binary(&data, port, &pairs);
            nodes.push(ClusterNode {
                id,
                base,
                port,
                proc,
                env,
                data,
            });
        }
        let ports: Vec<u16> = nodes.iter().map(|n| n.port).collect();
        let lb = tapedeck_testkit::haproxy(&ports);
        Self {
            pg,
            s3,
            lb,
            nodes,
            dir,
        }
    }

    /// An API key made with `tapedeck keys create` on the shared database,
    /// with the cluster's settings but no node's name (as on an admin's
    /// machine).
    pub fn key(&self, user: &str, admin: bool) -> String {
        let mut cmd = std::process::Command::new(BIN);
        cmd.args(["keys", "create", "--user", user, "--data-dir"])
            .arg(self.dir.path().join("keys"));
        for (k, v) in cluster_env(&self.pg, &self.s3, "", "") {
            if !k.starts_with("TAPEDECK_CLUSTER__NODE_ID") && !k.contains("INTERNAL_URL") {
                cmd.env(k, v);
            }
        }
        if admin {
            cmd.arg("--admin");
        }
        super::key_made_by(&mut cmd)
    }

    /// The node called `id`.
    pub fn node(&self, id: &str) -> &ClusterNode {
        self.nodes.iter().find(|n| n.id == id).unwrap()
    }

    /// Whether a round of requests through the load balancer reached every
    /// node.
    async fn lb_ready(&self) -> bool {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..(2 * self.nodes.len()) {
            let Ok(r) = reqwest::get(format!("{}/healthz", self.lb)).await else {
                return false;
            };
            if r.status() != 200 {
                return false;
            }
            if let Some(n) = r.headers().get("x-tapedeck-node") {
                seen.insert(n.to_str().unwrap_or("").to_string());
            }
        }
        seen.len() == self.nodes.len()
    }

    /// Until every node lists every other alive (heartbeats seen).
    pub async fn wait_alive(&self, admin: &str) {
        let start = Instant::now();
        loop {
            let mut all = true;
            for n in &self.nodes {
                let (_, v) = call(&n.base, admin, "GET", "/v1/admin/nodes", None).await;
                // Alive, and heartbeating with its figures since the claim.
                let alive = v["nodes"].as_array().map_or(0, |l| {
                    l.iter()
                        .filter(|x| x["alive"] == true && x["cpu"]["budget"].as_f64() > Some(0.0))
                        .count()
                });
                all &= alive == self.nodes.len();
            }
            // And the load balancer sends to every node (its checks of
            // /readyz passed).
            if all && self.lb_ready().await {
                return;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "nodes never met");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// A JSON call to `base`: status, body (`null` when not JSON) and the
/// node that answered.
pub async fn call_at(
    base: &str,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value, String) {
    let mut r = reqwest::Client::new()
        .request(method.parse().unwrap(), format!("{base}{path}"))
        .bearer_auth(token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    let node = r
        .headers()
        .get("x-tapedeck-node")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let code = r.status().as_u16();
    let v = r.json().await.unwrap_or(Value::Null);
    (code, v, node)
}

/// [`call_at`] without the node.
pub async fn call(
    base: &str,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let (c, v, _) = call_at(base, token, method, path, body).await;
    (c, v)
}

/// Polls the recording through `base` until it is `want`.
pub async fn wait_for(base: &str, token: &str, id: &str, want: &str) -> Value {
    let start = Instant::now();
    loop {
        let (_, v) = call(base, token, "GET", &format!("/v1/recordings/{id}"), None).await;
        let st = v["status"].as_str().unwrap_or("").to_string();
        if st == want {
            return v;
        }
        if ["completed", "failed", "cancelled"].contains(&st.as_str())
            || start.elapsed() > Duration::from_secs(180)
        {
            panic!("recording {id} is {st}, wanted {want}: {v}");
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

/// The media of a completed recording, through `base`, into `dir`.
pub async fn download_at(
    base: &str,
    token: &str,
    id: &str,
    dir: &std::path::Path,
) -> std::path::PathBuf {
    let r = reqwest::Client::new()
        .get(format!("{base}/v1/recordings/{id}/media"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let p = dir.join(format!("download-{id}"));
    std::fs::write(&p, r.bytes().await.unwrap()).unwrap();
    p
}

/// Stops the recording through `base` (200 asserted) and waits until it
/// completed.
pub async fn stop_and_complete(base: &str, token: &str, id: &str) -> Value {
    let (code, v) = call(
        base,
        token,
        "POST",
        &format!("/v1/recordings/{id}/stop"),
        None,
    )
    .await;
    assert_eq!(code, 200, "stop {id}: {v}");
    wait_for(base, token, id, "completed").await
}

/// How many jobs of `kind` the node at `base` ran (its `/metrics`).
pub async fn jobs_run(base: &str, kind: &str) -> u64 {
    metric(
        base,
        &format!("tapedeck_cluster_jobs_run_total{{kind=\"{kind}\"}}"),
    )
    .await
}

/// Track `tid` of recording `id`, through `base`, into `dir`.
pub async fn track_file(
    base: &str,
    token: &str,
    id: &str,
    tid: &str,
    dir: &std::path::Path,
) -> std::path::PathBuf {
    let r = reqwest::Client::new()
        .get(format!("{base}/v1/recordings/{id}/tracks/{tid}/media"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "track {tid} of {id}");
    let file = dir.join(format!("track-{id}-{tid}"));
    std::fs::write(&file, r.bytes().await.unwrap()).unwrap();
    file
}

/// Webhook deliveries as they arrive: headers' event and delivery id, and
/// whether this one was acknowledged (the first of all is refused once).
#[derive(Clone, Default)]
pub struct Hooks {
    pub got: std::sync::Arc<std::sync::Mutex<Vec<Got>>>,
}

/// Event type, recording id, delivery id, acknowledged.
pub type Got = (String, String, String, bool);

pub async fn hooks() -> (String, Hooks) {
    let h = Hooks::default();
    let h2 = h.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let h = h2.clone();
            async move {
                let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                let mut got = h.got.lock().unwrap();
                let ok = !got.is_empty();
                got.push((
                    headers["tapedeck-event"].to_str().unwrap().to_string(),
                    v["recording"]["id"].as_str().unwrap().to_string(),
                    headers["tapedeck-delivery"].to_str().unwrap().to_string(),
                    ok,
                ));
                if ok {
                    axum::http::StatusCode::OK
                } else {
                    axum::http::StatusCode::SERVICE_UNAVAILABLE
                }
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (url, h)
}

/// A camera (`body`) made at node `node` (`base`), which must hold it, and
/// its frames socket opened on that node: its id and the socket.
pub async fn camera_on(base: &str, node: &str, token: &str, body: Value) -> (String, super::Ws) {
    let (code, cam) = call(base, token, "POST", "/v1/recordings", Some(body)).await;
    assert_eq!((code, cam["node"].as_str()), (201, Some(node)), "{cam}");
    let id = cam["id"].as_str().unwrap().to_string();
    let ws = super::connect(&format!(
        "{}/v1/recordings/{id}/frames?token={token}",
        base.replace("http://", "ws://")
    ))
    .await;
    (id, ws)
}
