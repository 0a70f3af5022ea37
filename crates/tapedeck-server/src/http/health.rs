//! `/healthz`, `/readyz` and `/metrics`: whether the process answers,
//! whether it can record (the database, the store, the work folder, a real
//! encode), and its counters.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::http::state::AppState;

/// `GET /healthz`: the process answers.
pub async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: database, storage and ffmpeg work.
pub async fn readyz(State(s): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    let db = s
        .repo
        .ping()
        .await
        .map(|_| "ok".to_string())
        .unwrap_or_else(|e| e.to_string());
    let storage = s
        .blobs
        .check()
        .await
        .map(|_| "ok".to_string())
        .unwrap_or_else(|e| e.to_string());
    let ffmpeg = encoder_check(&s)
        .await
        .map(|_| "ok".to_string())
        .unwrap_or_else(|e| e);
    let work = work_check(&s.config.server.data_dir.join("work"))
        .await
        .map(|_| "ok".to_string())
        .unwrap_or_else(|e| e);
    // A draining node (SIGTERM) is not ready: a load balancer's check
    // sends new requests elsewhere while its sessions finish.
    let draining = s.node.draining();
    let ok = db == "ok" && storage == "ok" && ffmpeg == "ok" && work == "ok" && !draining;
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    // The reasons name paths, hosts and programs: for admins only; anyone
    // else (a load balancer) learns which part fails.
    let admin = match crate::http::rooms::whip::bearer(&headers) {
        Some(t) => crate::http::auth::authenticate(&s, &t)
            .await
            .is_ok_and(|p| p.admin),
        None => false,
    };
    let say = |r: String| {
        if admin || r == "ok" {
            r
        } else {
            "failing".to_string()
        }
    };
    (
        status,
        Json(
            json!({"ready": ok, "database": say(db), "storage": say(storage),
            "ffmpeg": say(ffmpeg), "work": say(work), "draining": draining}),
        ),
    )
        .into_response()
}

/// Whether recordings can write their work files (spool, live output,
/// thumbnails) under `work`: a file is made, written, synced and removed.
async fn work_check(work: &std::path::Path) -> Result<(), String> {
    use tokio::io::AsyncWriteExt;
    let probe = work.join(format!(".readyz-{}", std::process::id()));
    let r = async {
        tokio::fs::create_dir_all(work).await?;
        let mut f = tokio::fs::File::create(&probe).await?;
        f.write_all(b"ok").await?;
        f.sync_all().await?;
        tokio::fs::remove_file(&probe).await
    }
    .await;
    r.map_err(|e| format!("{}: {e}", work.display()))
}

/// A real two-frame encode per output path, at most every five minutes
/// (listing ffmpeg's encoders said "fine" where every recording failed).
async fn encoder_check(s: &AppState) -> Result<(), String> {
    const EVERY: Duration = Duration::from_secs(300);
    let mut last = s.encoder_check.lock().await;
    if let Some((at, r)) = last.as_ref()
        && at.elapsed() < EVERY
    {
        return r.clone();
    }
    let config = s.config.clone();
    let r = tokio::task::spawn_blocking(move || {
        let failed: Vec<String> = crate::engine::source::encoding::check_encoders(&config)
            .into_iter()
            .filter_map(|(name, r)| r.err().map(|e| format!("{name}: {e}")))
            .collect();
        if failed.is_empty() {
            Ok(())
        } else {
            Err(failed.join("; "))
        }
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    *last = Some((std::time::Instant::now(), r.clone()));
    r
}

/// `GET /metrics`: Prometheus text.
pub async fn metrics(State(s): State<AppState>) -> Response {
    match s.node.all(&s.supervisor).await {
        Ok(nodes) => s.metrics.cluster(&nodes),
        Err(e) => tracing::warn!(error = %e, "the cluster's nodes could not be read"),
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics
            .render(&s.rtc.stats, s.supervisor.services.sources.gate.figures()),
    )
        .into_response()
}
