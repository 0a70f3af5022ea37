//! The `tapedeck` command line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use futures::StreamExt;
use tapedeck_core::Format;
use tapedeck_media::ffmpeg::{self, EncodeSpec, Tools};
use tapedeck_media::picture::FrameLimits;
use tapedeck_media::sink::encoding::EncodingSink;
use tapedeck_store::repo::Repo;
use tokio::io::AsyncWriteExt;

use crate::config::Config;

/// tapedeck: a self-hosted recording server.
#[derive(Debug, Parser)]
#[command(name = "tapedeck", version, about)]
pub struct Cli {
    /// A TOML configuration file (default: ./tapedeck.toml if present).
    #[arg(long, global = true, env = "TAPEDECK_CONFIG")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Run the server (API, web page, recorders).
    Serve {
        /// Data folder (database, media, work files).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Address to listen on.
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Manage API keys (works on the database directly).
    Keys {
        /// What to do with keys.
        #[command(subcommand)]
        cmd: KeysCmd,
    },
    /// Check ffmpeg, the database and storage, and say how to fix what is missing.
    Doctor {
        /// Data folder.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// List recordings on a running server.
    Ls {
        /// Server and token.
        #[command(flatten)]
        client: ClientArgs,
        /// Only this status.
        #[arg(long)]
        status: Option<String>,
        /// Only this source kind.
        #[arg(long)]
        kind: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Show one recording as JSON.
    Get {
        /// Server and token.
        #[command(flatten)]
        client: ClientArgs,
        /// Recording id.
        id: String,
    },
    /// Stop a recording.
    Stop {
        /// Server and token.
        #[command(flatten)]
        client: ClientArgs,
        /// Recording id.
        id: String,
    },
    /// Download a recording's media, with a progress bar.
    Download {
        /// Server and token.
        #[command(flatten)]
        client: ClientArgs,
        /// Recording id.
        id: String,
        /// Output file (default: ID.EXT).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Record a web page to a file, no server needed.
    Record(RecordArgs),
    /// Encode a folder of images as a frames recording would (for benchmarks).
    #[command(hide = true)]
    EncodeFrames {
        /// Folder of JPEG/PNG/WebP files, taken in name order.
        #[arg(long)]
        dir: PathBuf,
        /// Rate the frames arrive at (sets their timestamps).
        #[arg(long)]
        input_fps: f64,
        /// Output frame rate.
        #[arg(long, default_value_t = 30)]
        fps: u32,
        /// Output width.
        #[arg(long, default_value_t = 1280)]
        width: u32,
        /// Output height.
        #[arg(long, default_value_t = 720)]
        height: u32,
        /// Output container.
        #[arg(long, default_value = "mp4")]
        format: String,
        /// Output file.
        #[arg(short, long)]
        output: PathBuf,
    },
}

/// `tapedeck record`.
#[derive(Debug, Args)]
pub struct RecordArgs {
    /// The page (http or https).
    pub url: String,
    /// Output file; its extension picks the format unless --format is given.
    #[arg(short, long)]
    pub output: PathBuf,
    /// A script file (YAML or JSON list of steps).
    #[arg(long, conflicts_with_all = ["template", "auto"])]
    pub script: Option<PathBuf>,
    /// A template: hero_showcase, features_tour or full_page_scroll.
    #[arg(long, conflicts_with = "auto")]
    pub template: Option<String>,
    /// An automatic tour of this many seconds (the default is 10).
    #[arg(long)]
    pub auto: Option<u32>,
    /// Quality preset: low, medium, high, ultra.
    #[arg(long, default_value = "medium")]
    pub preset: String,
    /// Output size WxH.
    #[arg(long)]
    pub size: Option<String>,
    /// Frame rate.
    #[arg(long)]
    pub fps: Option<u32>,
    /// Container: mp4, webm, mkv.
    #[arg(long)]
    pub format: Option<String>,
    /// deterministic (virtual time, the default) or realtime.
    #[arg(long, default_value = "deterministic")]
    pub mode: String,
    /// CSS viewport WxH (default: the output size).
    #[arg(long)]
    pub viewport: Option<String>,
    /// Video bitrate cap in kbit/s (default: the preset's).
    #[arg(long)]
    pub bitrate_kbps: Option<u32>,
    /// Let the page reach private, loopback and link-local addresses.
    #[arg(long)]
    pub allow_private: bool,
    /// Realtime mode: leave out the page's audio.
    #[arg(long)]
    pub no_audio: bool,
}

/// Key commands.
#[derive(Debug, Subcommand)]
pub enum KeysCmd {
    /// Create a key; the token is the last line printed.
    Create {
        /// The user the key authenticates.
        #[arg(long)]
        user: String,
        /// The key sees every user's recordings.
        #[arg(long)]
        admin: bool,
        /// Data folder.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// List keys.
    List {
        /// Data folder.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Revoke a key by id.
    Revoke {
        /// Key id (key_...).
        id: String,
        /// Data folder.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

/// Where the server is and how to sign in.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// Server URL.
    #[arg(long, env = "TAPEDECK_URL", default_value = "http://127.0.0.1:8700")]
    pub server: String,
    /// Bearer token (API key or JWT).
    #[arg(long, env = "TAPEDECK_TOKEN", hide_env_values = true)]
    pub token: String,
}

/// Runs the command line; returns the process exit code.
pub async fn run(cli: Cli) -> i32 {
    match execute(cli).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

fn load_config(file: Option<&Path>, data_dir: Option<PathBuf>) -> Result<Config, String> {
    let mut c = Config::load(file).map_err(|e| e.to_string())?;
    if let Some(d) = data_dir {
        c.server.data_dir = d;
    }
    Ok(c)
}

async fn repo(config: &Config) -> Result<Repo, String> {
    std::fs::create_dir_all(&config.server.data_dir).map_err(|e| format!("data folder: {e}"))?;
    Repo::connect(&config.database_url())
        .await
        .map_err(|e| e.to_string())
}

async fn execute(cli: Cli) -> Result<(), String> {
    let file = cli.config.as_deref();
    match cli.cmd {
        Cmd::Serve { data_dir, listen } => {
            let mut config = load_config(file, data_dir)?;
            if let Some(l) = listen {
                config.server.listen = l;
            }
            let listener = tokio::net::TcpListener::bind(config.server.listen)
                .await
                .map_err(|e| format!("cannot listen on {}: {e}", config.server.listen))?;
            let r = repo(&config).await?;
            if r.list_keys().await.map_err(|e| e.to_string())?.is_empty() {
                eprintln!(
                    "no API keys yet: create one with `tapedeck keys create --user NAME --data-dir {}`",
                    config.server.data_dir.display()
                );
            }
            eprintln!(
                "tapedeck listening on http://{} (data in {})",
                listener.local_addr().map_err(|e| e.to_string())?,
                config.server.data_dir.display()
            );
            crate::app::serve(config, listener, shutdown_signal()).await
        }
        Cmd::Keys { cmd } => keys(file, cmd).await,
        Cmd::Doctor { data_dir } => doctor(load_config(file, data_dir)?).await,
        Cmd::Ls {
            client,
            status,
            kind,
            limit,
        } => {
            let mut q = vec![("limit".to_string(), limit.to_string())];
            q.extend(status.map(|s| ("status".to_string(), s)));
            q.extend(kind.map(|k| ("kind".to_string(), k)));
            let v = call(&client, reqwest::Method::GET, "/v1/recordings", &q).await?;
            let empty = vec![];
            let recs = v["recordings"].as_array().unwrap_or(&empty);
            println!(
                "{:<30} {:<11} {:<7} {:>9} {:>12}  {:<24}  ERROR",
                "ID", "STATUS", "KIND", "DURATION", "SIZE", "CREATED"
            );
            for r in recs {
                println!(
                    "{:<30} {:<11} {:<7} {:>9} {:>12}  {:<24}  {}",
                    r["id"].as_str().unwrap_or(""),
                    r["status"].as_str().unwrap_or(""),
                    r["source"]["kind"].as_str().unwrap_or(""),
                    r["duration_s"]
                        .as_f64()
                        .map(|d| format!("{d:.1}s"))
                        .unwrap_or_else(|| "-".into()),
                    r["size_bytes"]
                        .as_u64()
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "-".into()),
                    r["created_at"].as_str().unwrap_or(""),
                    r["error"]["code"].as_str().unwrap_or("")
                );
            }
            Ok(())
        }
        Cmd::Get { client, id } => {
            let v = call(
                &client,
                reqwest::Method::GET,
                &format!("/v1/recordings/{id}"),
                &[],
            )
            .await?;
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            Ok(())
        }
        Cmd::Stop { client, id } => {
            let v = call(
                &client,
                reqwest::Method::POST,
                &format!("/v1/recordings/{id}/stop"),
                &[],
            )
            .await?;
            println!(
                "{} {}",
                v["id"].as_str().unwrap_or(&id),
                v["status"].as_str().unwrap_or("")
            );
            Ok(())
        }
        Cmd::Download { client, id, output } => download(&client, &id, output).await,
        Cmd::Record(args) => record(Config::load(file).map_err(|e| e.to_string())?, args).await,
        Cmd::EncodeFrames {
            dir,
            input_fps,
            fps,
            width,
            height,
            format,
            output,
        } => {
            let format: Format = serde_json::from_value(serde_json::Value::String(format))
                .map_err(|e| e.to_string())?;
            let config = Config::load(file).map_err(|e| e.to_string())?;
            tokio::task::spawn_blocking(move || {
                encode_frames(
                    &config, &dir, input_fps, fps, width, height, format, &output,
                )
            })
            .await
            .map_err(|e| e.to_string())?
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = ctrl_c => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
    eprintln!("shutting down; active recordings are finalized from their spools at the next start");
}

async fn keys(file: Option<&Path>, cmd: KeysCmd) -> Result<(), String> {
    match cmd {
        KeysCmd::Create {
            user,
            admin,
            data_dir,
        } => {
            let config = load_config(file, data_dir)?;
            let r = repo(&config).await?;
            let (key, token) = crate::auth::create_key(&r, &user, admin, crate::now_ms())
                .await
                .map_err(|e| e.message)?;
            println!(
                "created key {} for user {}{}",
                key.id,
                key.user,
                if admin { " (admin)" } else { "" }
            );
            println!("{token}");
            Ok(())
        }
        KeysCmd::List { data_dir } => {
            let r = repo(&load_config(file, data_dir)?).await?;
            for k in r.list_keys().await.map_err(|e| e.to_string())? {
                println!(
                    "{} {} admin={} revoked={} created={}",
                    k.id,
                    k.user,
                    k.admin,
                    k.revoked,
                    tapedeck_core::recording::time_ms::format(k.created_at)
                );
            }
            Ok(())
        }
        KeysCmd::Revoke { id, data_dir } => {
            let r = repo(&load_config(file, data_dir)?).await?;
            if r.revoke_key(&id).await.map_err(|e| e.to_string())? {
                println!("revoked {id}");
                Ok(())
            } else {
                Err(format!("no key {id}"))
            }
        }
    }
}

async fn call(
    c: &ClientArgs,
    method: reqwest::Method,
    path: &str,
    query: &[(String, String)],
) -> Result<serde_json::Value, String> {
    let base = format!("{}{path}", c.server.trim_end_matches('/'));
    let url = url::Url::parse_with_params(&base, query)
        .map_err(|e| format!("bad server URL {}: {e}", c.server))?;
    let resp = reqwest::Client::new()
        .request(method, url)
        .bearer_auth(&c.token)
        .send()
        .await
        .map_err(|e| format!("cannot reach {}: {e}", c.server))?;
    let status = resp.status();
    let v: serde_json::Value = resp.json().await.unwrap_or(serde_json::Value::Null);
    if !status.is_success() {
        return Err(format!(
            "{} {}: {}",
            status.as_u16(),
            v["error"]["code"].as_str().unwrap_or(""),
            v["error"]["message"].as_str().unwrap_or("")
        ));
    }
    Ok(v)
}

async fn download(c: &ClientArgs, id: &str, output: Option<PathBuf>) -> Result<(), String> {
    let rec = call(
        c,
        reqwest::Method::GET,
        &format!("/v1/recordings/{id}"),
        &[],
    )
    .await?;
    let ext = rec["format"].as_str().unwrap_or("mp4");
    let out = output.unwrap_or_else(|| PathBuf::from(format!("{id}.{ext}")));
    let url = format!(
        "{}/v1/recordings/{id}/media",
        c.server.trim_end_matches('/')
    );
    let resp = reqwest::Client::new()
        .get(&url)
        .bearer_auth(&c.token)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        let s = resp.status();
        let v: serde_json::Value = resp.json().await.unwrap_or_default();
        return Err(format!(
            "{} {}",
            s.as_u16(),
            v["error"]["message"].as_str().unwrap_or("")
        ));
    }
    let total = resp.content_length().unwrap_or(0);
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let tmp = out.with_extension(format!("{ext}.part"));
    let mut f = tokio::fs::File::create(&tmp)
        .await
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    let mut stream = resp.bytes_stream();
    let mut got = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| format!("download interrupted: {e}"))?;
        f.write_all(&chunk).await.map_err(|e| e.to_string())?;
        got += chunk.len() as u64;
        bar.set_position(got);
    }
    f.flush().await.map_err(|e| e.to_string())?;
    if total > 0 && got != total {
        return Err(format!("download incomplete: {got} of {total} bytes"));
    }
    tokio::fs::rename(&tmp, &out)
        .await
        .map_err(|e| e.to_string())?;
    bar.finish_and_clear();
    println!("{} ({got} bytes)", out.display());
    Ok(())
}

async fn doctor(config: Config) -> Result<(), String> {
    let mut failed = 0;
    let mut line = |ok: bool, what: &str, detail: String| {
        println!(
            "{} {what}: {detail}",
            if ok { "ok     " } else { "MISSING" }
        );
        if !ok {
            failed += 1;
        }
    };
    match ffmpeg::version(&config.encoder.ffmpeg) {
        Ok(v) => {
            let list = tapedeck_media::process::run(
                "ffmpeg",
                &config.encoder.ffmpeg,
                &["-hide_banner".into(), "-encoders".into()],
                std::time::Duration::from_secs(20),
            )
            .map(|o| String::from_utf8_lossy(&o).into_owned())
            .unwrap_or_default();
            let need = ["libx264", "libvpx-vp9"];
            let missing: Vec<_> = need.iter().filter(|e| !list.contains(*e)).collect();
            line(
                missing.is_empty(),
                "ffmpeg",
                if missing.is_empty() {
                    v
                } else {
                    format!(
                        "{v}; encoders missing: {missing:?}; install Debian's ffmpeg (apt-get install ffmpeg)"
                    )
                },
            );
        }
        Err(e) => line(
            false,
            "ffmpeg",
            format!("{e}; install it: apt-get install ffmpeg (or set encoder.ffmpeg)"),
        ),
    }
    match ffmpeg::version(&config.encoder.ffprobe) {
        Ok(v) => line(true, "ffprobe", v),
        Err(e) => line(
            false,
            "ffprobe",
            format!("{e}; it comes with ffmpeg: apt-get install ffmpeg"),
        ),
    }
    for (what, path, package, required) in [
        (
            "chromium-headless-shell",
            config.web.browser.clone(),
            "chromium-headless-shell",
            true,
        ),
        (
            "chromium",
            PathBuf::from("/usr/lib/chromium/chromium"),
            "chromium",
            false,
        ),
    ] {
        let real = tapedeck_media::web::browser::resolve_binary(&path);
        let version = tapedeck_media::process::run(
            "browser",
            &real,
            &["--version".into()],
            std::time::Duration::from_secs(20),
        )
        .ok()
        .map(|o| String::from_utf8_lossy(&o).trim().to_string());
        let (ok, detail) = match version {
            _ if tapedeck_media::web::browser::is_script(&real) => (
                false,
                format!(
                    "{} is a shell script; point web.browser at the real binary (/usr/lib/chromium/chromium-headless-shell)",
                    real.display()
                ),
            ),
            Some(v) if required => (true, format!("{v} at {} (web recordings)", real.display())),
            Some(v) => (
                true,
                format!(
                    "{v} at {} (the browser the end-to-end tests drive)",
                    real.display()
                ),
            ),
            None if required => (
                false,
                format!(
                    "{} does not run; web recordings need it: apt-get install {package} (or set web.browser)",
                    real.display()
                ),
            ),
            None => (
                true,
                format!(
                    "not installed (optional; apt-get install {package} for the end-to-end tests)"
                ),
            ),
        };
        line(ok, what, detail);
    }
    let data = &config.server.data_dir;
    let probe = data.join(".doctor");
    let writable = std::fs::create_dir_all(data)
        .and_then(|_| std::fs::write(&probe, b"ok"))
        .and_then(|_| std::fs::remove_file(&probe));
    line(
        writable.is_ok(),
        "data folder",
        match writable {
            Ok(()) => format!("{} is writable", data.display()),
            Err(e) => format!("{}: {e}; choose another with --data-dir", data.display()),
        },
    );
    let db = Repo::connect(&config.database_url()).await;
    line(
        db.is_ok(),
        "database",
        match &db {
            Ok(r) => format!("{} answers", r.backend()),
            Err(e) => format!("{e}; check database.url (TAPEDECK_DATABASE__URL)"),
        },
    );
    match crate::app::build_blobs(&config) {
        Ok(b) => {
            let r = b.check().await;
            line(
                r.is_ok(),
                "storage",
                match r {
                    Ok(()) => format!("{} storage accepts writes", b.kind()),
                    Err(e) => format!("{e}; check the [storage] settings"),
                },
            );
        }
        Err(e) => line(false, "storage", e),
    }
    if failed > 0 {
        Err(format!("{failed} check(s) failed"))
    } else {
        Ok(())
    }
}

/// The create request `tapedeck record` sends to its embedded server.
pub fn record_request(a: &RecordArgs) -> Result<serde_json::Value, String> {
    let mut source = serde_json::json!({"kind": "web", "url": a.url, "mode": a.mode});
    if a.no_audio {
        source["audio"] = false.into();
    }
    if let Some(f) = &a.script {
        let text = std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
        let script = tapedeck_core::script::Script::parse_text(&text)
            .map_err(|e| format!("{}: {e}", f.display()))?;
        source["script"] = serde_json::to_value(script).map_err(|e| e.to_string())?;
    }
    if let Some(t) = &a.template {
        source["template"] = serde_json::json!(t);
    }
    if let Some(n) = a.auto {
        source["auto"] = serde_json::json!({"duration_s": n});
    }
    if let Some(v) = &a.viewport {
        source["viewport"] = serde_json::json!(v);
    }
    let format = match &a.format {
        Some(f) => f.clone(),
        None => a
            .output
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("mp4")
            .to_ascii_lowercase(),
    };
    let mut body = serde_json::json!({"source": source, "format": format, "preset": a.preset});
    if let Some(size) = &a.size {
        let (w, h) = tapedeck_core::web::parse_size(size)
            .ok_or_else(|| format!("--size `{size}` is not WxH"))?;
        body["width"] = w.into();
        body["height"] = h.into();
    }
    if let Some(fps) = a.fps {
        body["fps"] = fps.into();
    }
    if let Some(b) = a.bitrate_kbps {
        body["video_bitrate_kbps"] = b.into();
    }
    Ok(body)
}

/// Records a web page with an embedded server in a temporary folder.
async fn record(mut config: Config, a: RecordArgs) -> Result<(), String> {
    let body = record_request(&a)?;
    let v = tapedeck_core::request::parse_create(body.to_string().as_bytes())
        .map_err(|e| e.to_string())?;
    let out_dir = a
        .output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let work = RemoveOnDrop(tempdir_in(out_dir)?);
    config.server.data_dir = work.0.clone();
    config.database.url = None;
    config.storage.kind = crate::config::StorageKind::Local;
    config.webhooks.urls.clear();
    config.web.allow_private_networks |= a.allow_private;
    let state = crate::app::build_state(config)
        .await
        .map_err(|e| e.to_string())?;
    let who = crate::auth::Principal {
        user: "cli".into(),
        admin: true,
    };
    let fps = v.video.fps;
    let rec = crate::api::new_recording(&state, &who, v, None);
    let id = rec.id;
    state
        .supervisor
        .create(rec)
        .await
        .map_err(|e| e.message.clone())?;
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    let started = Instant::now();
    let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
    let mut stopping = false;
    let rec = loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = &mut ctrl_c, if !stopping => {
                stopping = true;
                bar.println("stopping: finishing the video recorded so far");
                if let Ok(Some(r)) = state.repo.get(id).await {
                    let _ = state.supervisor.act(r, tapedeck_core::recording::Action::Stop).await;
                }
            }
        }
        let Some(r) = state.repo.get(id).await.map_err(|e| e.to_string())? else {
            return Err("the recording disappeared".into());
        };
        if let Some(p) = state.supervisor.progress(id) {
            let video_s = p.frames_written as f64 / f64::from(fps.max(1));
            let wall = started.elapsed().as_secs_f64().max(1e-3);
            bar.set_message(format!(
                "{}: {video_s:.1} s of video ({:.2}x real time)",
                r.status.as_str(),
                video_s / wall
            ));
        } else {
            bar.set_message(r.status.as_str().to_string());
        }
        if r.status.is_terminal() {
            break r;
        }
    };
    bar.finish_and_clear();
    if rec.status != tapedeck_core::recording::Status::Completed {
        return Err(format!(
            "the recording {}: {}",
            rec.status.as_str(),
            rec.error
                .as_ref()
                .map(|f| f.to_string())
                .unwrap_or_else(|| "no reason given".into())
        ));
    }
    let mut dl = state
        .blobs
        .get(&rec.media_key(), None)
        .await
        .map_err(|e| e.to_string())?;
    let part = a.output.with_extension("part");
    let mut f = tokio::fs::File::create(&part)
        .await
        .map_err(|e| format!("{}: {e}", part.display()))?;
    while let Some(chunk) = dl.stream.next().await {
        f.write_all(&chunk.map_err(|e| e.to_string())?)
            .await
            .map_err(|e| format!("{}: {e}", part.display()))?;
    }
    f.sync_all().await.map_err(|e| e.to_string())?;
    tokio::fs::rename(&part, &a.output)
        .await
        .map_err(|e| format!("{}: {e}", a.output.display()))?;
    let m = rec.media.clone().unwrap_or_default();
    eprintln!(
        "wrote {} ({}{} {}x{}, {:.2} s, {} frames; recorded at {:.2}x real time)",
        a.output.display(),
        m.video_codec,
        m.audio_codec
            .as_deref()
            .map(|c| format!(" + {c}"))
            .unwrap_or_default(),
        m.width,
        m.height,
        m.duration_s,
        m.frames.unwrap_or(0),
        rec.stats.realtime_factor.unwrap_or(0.0)
    );
    drop(state);
    drop(work);
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn encode_frames(
    config: &Config,
    dir: &Path,
    input_fps: f64,
    fps: u32,
    width: u32,
    height: u32,
    format: Format,
    output: &Path,
) -> Result<(), String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    let work = tempdir_in(output.parent().unwrap_or(Path::new(".")))?;
    let spec = EncodeSpec {
        width,
        height,
        fps,
        cfr: true,
        format,
        video_bitrate_kbps: 2500,
        x264_preset: config.encoder.x264_preset.clone(),
        crf: config.encoder.crf,
        skip_held: config.encoder.skip_held,
    };
    let tools = Tools {
        ffmpeg: config.encoder.ffmpeg.clone(),
        ffprobe: config.encoder.ffprobe.clone(),
    };
    let start = Instant::now();
    let mut p = EncodingSink::start(tools, spec, FrameLimits::default(), &work)
        .map_err(|e| e.to_string())?;
    for (i, f) in files.iter().enumerate() {
        let bytes = std::fs::read(f).map_err(|e| e.to_string())?;
        p.frame(&bytes, (i as f64 * 1e6 / input_fps).round() as i64)
            .map_err(|e| e.to_string())?;
    }
    let done = p
        .finish(Duration::from_secs(3600))
        .map_err(|e| e.to_string())?;
    std::fs::rename(&done.output, output).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&work);
    println!(
        "{}",
        serde_json::json!({"frames_in": done.counters.frames_in, "frames_out": done.counters.frames_out,
            "cpu_s": done.cpu_s, "wall_s": start.elapsed().as_secs_f64(), "output": output})
    );
    Ok(())
}

/// Removes a temporary folder when dropped.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempdir_in(parent: &Path) -> Result<PathBuf, String> {
    let d = parent.join(format!(
        ".tapedeck-encode-{}",
        crate::auth::random_string(8)
    ));
    std::fs::create_dir_all(&d).map_err(|e| e.to_string())?;
    Ok(d)
}
