//! `tapedeck record` (a web page to a file, no server) and the frames
//! encoding benchmark helper.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tapedeck_core::Format;
use tapedeck_media::ffmpeg::EncodeSpec;
use tapedeck_media::picture::FrameLimits;
use tapedeck_media::sink::encoding::EncodingSink;
use tokio::io::AsyncWriteExt;

use super::RecordArgs;
use crate::config::Config;

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
pub(super) async fn record(mut config: Config, a: RecordArgs) -> Result<(), String> {
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
    // No calls here: any free port, on loopback only.
    config.rtc.udp_port = 0;
    config.rtc.public_ip = Some(std::net::Ipv4Addr::LOCALHOST.into());
    let state = crate::http::app::build_state(config)
        .await
        .map_err(|e| e.to_string())?;
    let who = crate::http::auth::Principal {
        user: "cli".into(),
        admin: true,
    };
    let fps = v.video.fps;
    let rec = crate::http::recordings::new_recording(&state, &who, v, None);
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
            let rf = p.realtime_factor.unwrap_or(video_s / wall);
            let mut line = match p.frames_planned {
                Some(n) => format!(
                    "{}: frame {} of {n}, {video_s:.1} s of video ({rf:.2}x real time)",
                    r.status.as_str(),
                    p.frames_written.min(n)
                ),
                None => format!(
                    "{}: {video_s:.1} s of video ({rf:.2}x real time)",
                    r.status.as_str()
                ),
            };
            if let Some(eta) = p.eta_s {
                line.push_str(&format!(", about {eta:.0} s left"));
            }
            bar.set_message(line);
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
        "wrote {} ({}{} {}x{}, {:.2} s, {} frames; recorded at {:.2}x real time{})",
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
        rec.stats.realtime_factor.unwrap_or(0.0),
        match rec.stats.browsers {
            Some(n) if n > 1 => format!(" by {n} browsers at once"),
            _ => String::new(),
        }
    );
    drop(state);
    drop(work);
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(super) fn encode_frames(
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
        threads: None,
        live: Default::default(),
    };
    let tools = config.tools();
    let start = Instant::now();
    let mut p = EncodingSink::start(tools, spec, FrameLimits::default(), &work)
        .map_err(|e| e.to_string())?;
    for (i, f) in files.iter().enumerate() {
        let bytes = std::fs::read(f).map_err(|e| e.to_string())?;
        p.frame(&bytes, (i as f64 * 1e6 / input_fps).round() as i64)
            .map_err(|e| e.to_string())?;
    }
    let done = p
        .finish_video(Duration::from_secs(3600))
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
        crate::http::auth::random_string(8)
    ));
    std::fs::create_dir_all(&d).map_err(|e| e.to_string())?;
    Ok(d)
}
