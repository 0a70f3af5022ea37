//! Shared helpers: the real server on port 0, keys, frames over a real WebSocket.
#![allow(dead_code)]

pub mod cluster;
pub mod disk;
pub mod firewall;
pub mod pages;
#[allow(unused_imports)]
pub use pages::*;
pub mod rooms;
pub mod sync;

use std::io::Cursor;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tapedeck_server::config::Config;
use tokio_tungstenite::tungstenite::Message;

/// A server running in this test process.
pub struct Server {
    pub base: String,
    pub data: PathBuf,
    pub state: tapedeck_server::http::state::AppState,
    _dir: Option<tempfile::TempDir>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

pub fn config(data: &std::path::Path) -> Config {
    let mut c = Config::default();
    c.server.data_dir = data.to_path_buf();
    c.server.listen = "127.0.0.1:0".parse().unwrap();
    c.encoder.x264_preset = "ultrafast".into();
    // Tests run side by side: each media server on a port of its own.
    c.rtc.udp_port = 0;
    c
}

/// Starts the app on port 0 with a fresh data folder; `tweak` edits the config.
pub async fn start(tweak: impl FnOnce(&mut Config)) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    tweak(&mut c);
    let mut s = start_with(c).await;
    s._dir = Some(dir);
    s
}

/// A server whose web recordings may reach the test's page server at `port`
/// on loopback (and nothing else private).
pub async fn start_for_site(port: u16) -> Server {
    start(|c| c.web.allowed_hosts = vec![format!("127.0.0.1:{port}")]).await
}

pub async fn start_with(mut c: Config) -> Server {
    if let Ok(f) = std::env::var("TAPEDECK_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(f))
            .with_test_writer()
            .try_init();
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    c.server.public_url = Some(format!("http://{addr}"));
    let data = c.server.data_dir.clone();
    let header_timeout = std::time::Duration::from_secs(c.server.header_read_timeout_s);
    let state = tapedeck_server::http::app::build_state(c).await.unwrap();
    let app = tapedeck_server::http::app::router(state.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(tapedeck_server::http::app::serve_on(
        listener,
        app,
        header_timeout,
        async {
            let _ = rx.await;
        },
    ));
    Server {
        base: format!("http://{addr}"),
        data,
        state,
        _dir: None,
        stop: Some(tx),
    }
}

impl Server {
    /// A new API key's token.
    pub async fn key(&self, user: &str, admin: bool) -> String {
        tapedeck_server::http::auth::create_key(&self.state.repo, user, admin, 0)
            .await
            .unwrap()
            .1
    }

    pub fn client(&self) -> reqwest::Client {
        reqwest::Client::new()
    }

    pub async fn post(&self, token: &str, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .client()
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn post_raw(&self, token: &str, path: &str, body: &'static [u8]) -> (u16, Value) {
        let r = self
            .client()
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .body(body)
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    /// `/metrics` as Prometheus scrapes it (no token).
    pub async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn get(&self, token: &str, path: &str) -> (u16, Value) {
        let r = self
            .client()
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    /// The body of `GET path` (a path on the server, or a whole URL), as
    /// `token` when given.
    pub async fn bytes(&self, token: Option<&str>, path: &str) -> Vec<u8> {
        let url = match path.starts_with("http") {
            true => path.to_string(),
            false => format!("{}{path}", self.base),
        };
        let mut req = self.client().get(url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.unwrap().bytes().await.unwrap().to_vec()
    }

    /// `DELETE path` as `token`; the status.
    pub async fn delete(&self, token: &str, path: &str) -> u16 {
        self.client()
            .delete(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    pub async fn create(&self, token: &str, body: Value) -> Value {
        let (s, v) = self.post(token, "/v1/recordings", body).await;
        assert_eq!(s, 201, "{v}");
        v
    }

    /// Waits until the recording reaches `status` (or any final status) and returns it.
    pub async fn wait_status(&self, token: &str, id: &str, want: &str) -> Value {
        let start = Instant::now();
        loop {
            let (_, v) = self.get(token, &format!("/v1/recordings/{id}")).await;
            let st = v["status"].as_str().unwrap_or("").to_string();
            if st == want {
                return v;
            }
            if ["completed", "failed", "cancelled"].contains(&st.as_str())
                || start.elapsed() > Duration::from_secs(120)
            {
                panic!("recording {id} is {st}, wanted {want}: {v}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn ws_url(&self, path: &str, token: &str) -> String {
        format!(
            "{}{path}?token={token}",
            self.base.replace("http://", "ws://")
        )
    }

    /// Downloads the media of a completed recording to a file.
    pub async fn download(&self, token: &str, id: &str, ext: &str) -> PathBuf {
        let r = self
            .client()
            .get(format!("{}/v1/recordings/{id}/media", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let bytes = r.bytes().await.unwrap();
        let p = self.data.join(format!("download-{id}.{ext}"));
        std::fs::write(&p, &bytes).unwrap();
        p
    }
}

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next text message of `ws` as JSON (within a minute).
pub async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(60), ws.next())
            .await
            .expect("a message within a minute")
            .expect("the socket is open")
            .expect("a message");
        if m.is_text() {
            return serde_json::from_str(m.to_text().unwrap()).unwrap();
        }
    }
}

pub async fn connect(url: &str) -> Ws {
    tokio_tungstenite::connect_async(url)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"))
        .0
}

/// Sends one frame, with a timestamp when given.
pub async fn send_frame(ws: &mut Ws, pts_ms: Option<f64>, bytes: Vec<u8>) {
    if let Some(p) = pts_ms {
        ws.send(Message::Text(json!({"pts_ms": p}).to_string().into()))
            .await
            .unwrap();
    }
    ws.send(Message::Binary(bytes.into())).await.unwrap();
}

/// Sends `n` pictures, `picture(i)` at `i * every_ms`, on the frames
/// socket `ws`; returns once the server has counted them all.
pub async fn send_frames(ws: &mut Ws, n: u32, every_ms: f64, picture: impl Fn(u32) -> Vec<u8>) {
    for i in 0..n {
        send_frame(ws, Some(f64::from(i) * every_ms), picture(i)).await;
    }
    progress_until(ws, |v| v["frames_received"] == n).await;
}

/// Sends one frame; false once the server has closed the socket.
pub async fn try_send_frame(ws: &mut Ws, pts_ms: f64, bytes: Vec<u8>) -> bool {
    ws.send(Message::Text(json!({"pts_ms": pts_ms}).to_string().into()))
        .await
        .is_ok()
        && ws.send(Message::Binary(bytes.into())).await.is_ok()
}

/// Reads progress messages until one satisfies `pred`.
pub async fn progress_until(ws: &mut Ws, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let msg = tokio::time::timeout(left, ws.next())
            .await
            .expect("progress in time")
            .expect("socket open")
            .unwrap();
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(&t).unwrap();
            if std::env::var("TD_DEBUG").is_ok() {
                eprintln!("progress {v}");
            }
            if pred(&v) {
                return v;
            }
        }
    }
}

/// A JPEG of `w`x`h` whose colour encodes `n` (visible motion between frames).
pub fn jpeg(w: u32, h: u32, n: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        let band = ((x + n * 16) / 32 + y / 32) % 2;
        image::Rgb([(n * 37 % 256) as u8, if band == 0 { 40 } else { 220 }, 128])
    });
    let mut out = Cursor::new(vec![]);
    img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

/// RGB frames of a video at its own rate, scaled to `w`x`h`.
pub fn frames(video: &std::path::Path, w: u32, h: u32) -> Vec<Vec<u8>> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(video)
        .args([
            "-vf",
            &format!("scale={w}:{h}"),
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout
        .chunks_exact((w * h * 3) as usize)
        .map(<[u8]>::to_vec)
        .collect()
}

pub fn px(f: &[u8], w: u32, x: u32, y: u32) -> [u8; 3] {
    let i = ((y * w + x) * 3) as usize;
    [f[i], f[i + 1], f[i + 2]]
}

/// The `tapedeck` binary of this build.
pub const BIN: &str = env!("CARGO_BIN_EXE_tapedeck");

/// A child process killed (and reaped) when dropped.
pub struct Proc(pub std::process::Child);

impl Proc {
    /// `kill -9`, as a crash or the OOM killer would, then reaps it.
    pub fn kill_9(&mut self) {
        let killed = std::process::Command::new("kill")
            .args(["-9", &self.0.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success(), "kill -9 failed");
        let _ = self.0.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `tapedeck serve` of the real binary with extra environment, once it
/// accepts connections.
pub fn serve_binary(data: &std::path::Path, port: u16, env: &[(&str, &str)]) -> Proc {
    let child = std::process::Command::new(BIN)
        .args(["serve", "--data-dir"])
        .arg(data)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("TAPEDECK_ENCODER__X264_PRESET", "ultrafast")
        .env("TAPEDECK_RTC__UDP_PORT", "0")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Proc(child)
}

/// The value of the metric `series` (its name and labels as printed) at
/// `base`'s `/metrics`, 0 when it is not there.
pub async fn metric(base: &str, series: &str) -> u64 {
    let m = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    m.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

/// An API key for `user`, made with `tapedeck keys create`.
pub fn binary_key(data: &std::path::Path, user: &str) -> String {
    key_made_by(
        std::process::Command::new(BIN)
            .args(["keys", "create", "--user", user, "--data-dir"])
            .arg(data),
    )
}

/// The key `tapedeck keys create` printed (its last line), success asserted.
pub fn key_made_by(cmd: &mut std::process::Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_string()
}

/// What a browser's MediaRecorder writes, made by ffmpeg: VP8 and Opus in
/// live WebM (unknown sizes, no cues, no duration).
pub fn live_webm(dir: &std::path::Path, seconds: u32) -> PathBuf {
    let out = dir.join("camera.webm");
    let r = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=s=320x240:r=30:d={seconds}"))
        .args(["-f", "lavfi", "-i"])
        .arg(format!("sine=f=440:d={seconds}"))
        .args(["-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8"])
        .args(["-b:v", "600k", "-c:a", "libopus", "-live", "1"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(r.status.success(), "{r:?}");
    out
}

/// A tus request: `method` on `path` of `base` with `Tus-Resumable`,
/// `headers` and `body`.
pub async fn tus_request(
    base: &str,
    token: &str,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> reqwest::Response {
    let mut r = reqwest::Client::new()
        .request(method.parse().unwrap(), format!("{base}{path}"))
        .bearer_auth(token)
        .header("Tus-Resumable", "1.0.0");
    for (k, v) in headers {
        r = r.header(*k, v);
    }
    r.body(body).send().await.unwrap()
}

/// A response header as text ("" when missing).
pub fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// The picture of `path` at `at_s` seconds as RGB, `w` x `h` (ffmpeg).
pub fn frame_rgb(path: &std::path::Path, at_s: f64, w: usize, h: usize) -> Vec<u8> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-ss", &format!("{at_s:.3}"), "-i"])
        .arg(path)
        .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout.len(), w * h * 3, "a frame at {at_s} s");
    out.stdout
}

/// Writes `dir/name` with ffmpeg from a lavfi `source` (`extra`: duration,
/// codec...); its path.
pub fn lavfi(dir: &std::path::Path, name: &str, source: &str, extra: &[&str]) -> String {
    let p = dir.join(name);
    let r = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i", source])
        .args(extra)
        .arg(&p)
        .output()
        .unwrap();
    assert!(r.status.success(), "{r:?}");
    p.display().to_string()
}

/// Starts a tus upload of `bytes` (all of them, or the first `sent`)
/// titled `title`; its recording id.
pub async fn upload_titled(
    s: &Server,
    key: &str,
    title: &str,
    bytes: &[u8],
    sent: usize,
) -> String {
    use base64::Engine;
    let b64 = |t: &str| base64::engine::general_purpose::STANDARD.encode(t);
    let r = tus_request(
        &s.base,
        key,
        "POST",
        "/v1/uploads",
        &[
            ("Upload-Length", bytes.len().to_string()),
            (
                "Upload-Metadata",
                format!("filename {},title {}", b64("clip.webm"), b64(title)),
            ),
            ("Content-Type", "application/offset+octet-stream".into()),
        ],
        bytes[..sent].to_vec(),
    )
    .await;
    assert_eq!(r.status(), 201);
    header(&r, "location")
        .rsplit('/')
        .next()
        .unwrap()
        .to_string()
}

/// A 2 s 640x360 VP8 WebM uploaded whole and completed, titled `title`.
pub async fn completed_upload(s: &Server, key: &str, title: &str) -> String {
    let file = lavfi(
        &s.data,
        "two-seconds.webm",
        "testsrc2=s=640x360:r=30",
        &["-t", "2", "-c:v", "libvpx", "-b:v", "500k"],
    );
    let bytes = std::fs::read(&file).unwrap();
    let id = upload_titled(s, key, title, &bytes, bytes.len()).await;
    s.wait_status(key, &id, "completed").await;
    id
}

/// Points `c` at the Azurite container `az`.
pub fn on_azure(c: &mut Config, az: &tapedeck_testkit::Azure) {
    use tapedeck_server::config::{Secret, StorageKind};
    c.storage.kind = StorageKind::Azure;
    c.storage.account = az.account.clone();
    c.storage.bucket = az.container.clone();
    c.storage.endpoint = Some(az.endpoint.clone());
    c.storage.secret_key = Secret(az.access_key.clone());
}

/// Points `c` at an S3 bucket at `endpoint` with the key `access`/`secret`.
pub fn on_s3(c: &mut Config, endpoint: &str, bucket: &str, access: &str, secret: &str) {
    use tapedeck_server::config::{Secret, StorageKind};
    c.storage.kind = StorageKind::S3;
    c.storage.bucket = bucket.into();
    c.storage.endpoint = Some(endpoint.into());
    c.storage.access_key = access.into();
    c.storage.secret_key = Secret(secret.into());
}
