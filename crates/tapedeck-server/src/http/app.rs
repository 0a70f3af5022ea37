//! The app as a function: [`router`] builds the routes over an [`AppState`];
//! [`serve`] runs them on a listener until `shutdown`, so tests start the real
//! server on port 0.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use tapedeck_core::Code;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::HeaderMap;
use axum::routing::{MethodRouter, get, post};
use tapedeck_core::recording::Action;
use tapedeck_media::ffmpeg;
use tapedeck_store::blob::{BlobConfig, Blobs};
use tapedeck_store::repo::Repo;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::config::{Config, StorageKind};
use crate::engine::events::EventBus;
use crate::engine::metrics::Metrics;
use crate::engine::supervisor::Supervisor;
use crate::http::auth::Principal;
use crate::http::frames as frames_socket;
use crate::http::state::AppState;
use crate::http::uploads as upload;
use crate::http::{openapi, recordings as api, rooms as room, ui, ws};

/// Every route.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(ui::index))
        .route("/app.js", get(ui::script))
        .route("/record.js", get(ui::record_script))
        .route("/style.css", get(ui::style))
        .route("/favicon.svg", get(ui::favicon))
        .route("/favicon.ico", get(ui::favicon))
        .route("/call/{room}", get(ui::call))
        .route("/call.js", get(ui::call_script))
        .route("/call-levels.js", get(ui::call_levels_script))
        .route("/call-screen.js", get(ui::call_screen_script))
        .route("/recorder.js", get(ui::recorder_script))
        .route("/words.js", get(ui::words_script))
        .route("/vendor/hls.js", get(ui::hls_script))
        .route("/r/{id}", get(ui::watch))
        .route("/watch.js", get(ui::watch_script))
        .route("/live-player.js", get(ui::live_player_script))
        .route("/s/{id}", get(ui::shared))
        .route("/shared.js", get(ui::shared_script))
        .route("/healthz", get(crate::http::health::healthz))
        .route("/readyz", get(crate::http::health::readyz))
        .route("/metrics", get(crate::http::health::metrics))
        .route("/v1/openapi.json", get(openapi::document))
        .route("/v1/me", get(api::me))
        .route(
            "/v1/session",
            get(crate::http::session::get)
                .post(crate::http::session::create)
                .delete(crate::http::session::delete),
        )
        .route("/v1/session/methods", get(crate::http::session::methods))
        .route("/v1/session/oidc", get(crate::http::oidc::start))
        .route(
            "/v1/session/oidc/callback",
            get(crate::http::oidc::callback),
        )
        .route("/v1/recordings", post(api::create).get(api::list))
        .route(
            "/v1/recordings/{id}",
            get(api::get_one)
                .delete(api::delete)
                .patch(crate::http::library::rename),
        )
        .route("/v1/recordings/{id}/share", post(api::share))
        .route("/v1/admin/recordings/{id}/retry", post(api::retry_store))
        .route("/v1/admin/nodes", get(crate::http::cluster::nodes))
        .route(
            "/v1/recordings/{id}/regenerate",
            post(crate::http::web::regenerate),
        )
        .route("/v1/recordings/{id}/media", get(api::media))
        .route(
            "/v1/recordings/{id}/tracks/{track}/media",
            get(api::track_media),
        )
        .route("/v1/recordings/{id}/frames", get(frames_socket::frames))
        .route(
            "/v1/recordings/{id}/hls/{name}",
            get(crate::http::outputs::hls_file),
        )
        .route(
            "/v1/recordings/{id}/images",
            get(crate::http::outputs::image_list),
        )
        .route(
            "/v1/recordings/{id}/outputs",
            post(crate::http::outputs::add),
        )
        .route(
            "/v1/recordings/{id}/outputs/{oid}",
            axum::routing::delete(crate::http::outputs::remove),
        )
        .route(
            "/v1/recordings/{id}/images/{name}",
            get(crate::http::outputs::image_file),
        )
        .route("/v1/recordings/{id}/pause", action(Action::Pause))
        .route("/v1/recordings/{id}/resume", action(Action::Resume))
        .route("/v1/recordings/{id}/stop", action(Action::Stop))
        .route("/v1/recordings/{id}/cancel", action(Action::Cancel))
        .route("/v1/recordings/{id}/thumbnail", image(api::Image::Poster))
        .route("/v1/recordings/{id}/strip", image(api::Image::Strip))
        .route("/v1/rooms", post(room::create).get(room::list))
        .route("/v1/rooms/{id}", get(room::get_one).delete(room::close))
        .route("/v1/rooms/{id}/invites", post(room::invite))
        .route(
            "/v1/rooms/{id}/whip",
            post(room::whip::publish).options(room::whip::options),
        )
        .route("/v1/rooms/{id}/ice-servers", get(room::call::ice_servers))
        .route(
            "/v1/rooms/{id}/whip/{peer}",
            axum::routing::delete(room::whip::leave),
        )
        .route("/v1/rooms/{id}/recordings", get(room::recordings))
        .route("/v1/rooms/{id}/call", get(room::call::socket))
        .route(
            "/v1/uploads",
            post(upload::tus::create)
                .options(upload::tus::options)
                .layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/v1/uploads/{id}",
            axum::routing::head(upload::tus::head)
                .patch(upload::tus::patch)
                .delete(upload::tus::delete)
                .layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/uploads/url", post(upload::direct::url))
        .route(
            "/v1/uploads/{id}/direct",
            axum::routing::put(upload::direct::put).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/v1/recordings/{id}/complete",
            post(upload::direct::complete),
        )
        .route("/v1/events", get(ws::events))
        .route("/v1/shared/{id}", get(api::shared))
        .route(
            "/v1/shared/{id}/info",
            get(crate::http::library::shared_info),
        )
        .fallback(api::no_route)
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(axum::middleware::map_response(json_too_large))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::http::forward::route,
        ))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            std::time::Duration::from_secs(state.config.server.body_idle_timeout_s),
        ))
        .with_state(state)
}

/// A body over a route's limit is refused by axum's extractor in plain
/// text: it becomes the API's JSON error like every other.
async fn json_too_large(r: axum::response::Response) -> axum::response::Response {
    use axum::response::IntoResponse;
    let json = r
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if r.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE && !json {
        return crate::http::error::ApiError::new(
            Code::TooLarge,
            "the body is larger than this route takes",
        )
        .into_response();
    }
    r
}

fn action(a: Action) -> MethodRouter<AppState> {
    post(move |s: State<AppState>, p: Principal, id: UrlPath<String>| api::action(s, p, id, a))
}

fn image(which: api::Image) -> MethodRouter<AppState> {
    get(
        move |s: State<AppState>, p: Principal, id: UrlPath<String>, h: HeaderMap| {
            api::image(s, p, id, h, which)
        },
    )
}

/// Opens storage and the database, recovers interrupted recordings, and builds the state.
pub async fn build_state(config: Config) -> Result<AppState, String> {
    let data = &config.server.data_dir;
    std::fs::create_dir_all(data)
        .map_err(|e| format!("cannot create the data folder {}: {e}", data.display()))?;
    let repo = Repo::connect(&config.database_url())
        .await
        .map_err(|e| format!("database: {e}"))?;
    let blobs = build_blobs(&config)?;
    // A node claims its id before it recovers anything as its own.
    let node = Arc::new(crate::engine::cluster::Node::new(&config));
    node.join(&repo).await?;
    let share_key = share_key(&config, data, &repo).await?;
    let metrics = Metrics::new();
    let hooks = if config.webhooks.urls.is_empty() {
        None
    } else {
        let (tx, rx) = mpsc::unbounded_channel();
        if node.clustered() {
            tokio::spawn(crate::engine::webhooks::run_outbox(
                config.webhooks.clone(),
                rx,
                metrics.clone(),
                repo.clone(),
                node.id.clone(),
            ));
        } else {
            tokio::spawn(crate::engine::webhooks::run(
                config.webhooks.clone(),
                rx,
                metrics.clone(),
            ));
        }
        Some(tx)
    };
    let mut events = EventBus::new(hooks);
    if node.clustered() {
        let (tx, rx) = mpsc::unbounded_channel();
        events = events.with_nodes(tx);
        crate::engine::signals::spawn(repo.clone(), node.id.clone(), rx, events.clone());
    }
    let rtc = crate::rtc::Rtc::start(&config.rtc, candidate_ip(&config)).await?;
    let supervisor = Supervisor::new(
        config.clone(),
        repo.clone(),
        blobs.clone(),
        events.clone(),
        metrics.clone(),
        rtc.clone(),
    );
    crate::engine::work::sweep(&supervisor.services)
        .await
        .map_err(|e| format!("work folders: {e}"))?;
    crate::engine::recovery::recover(&supervisor)
        .await
        .map_err(|e| format!("recovery: {e}"))?;
    tokio::spawn(supervisor.clone().sweep_forever());
    node.clone().spawn(supervisor.clone());
    crate::engine::dispatch::spawn(supervisor.clone(), node.clone());
    crate::engine::takeover::spawn(supervisor.clone(), node.clone());
    crate::engine::source::room::auto::spawn(
        supervisor.clone(),
        node.clustered().then(|| node.id.clone()),
    );
    let config_auth = config.auth.clone();
    Ok(AppState {
        services: supervisor.services.clone(),
        supervisor,
        share_key: Arc::new(share_key),
        encoder_check: Arc::default(),
        sockets: Arc::default(),
        signins: Arc::default(),
        oidc: crate::http::jwks::Provider::new(&config_auth.oidc).map(Arc::new),
        node,
        jwks: (!config_auth.jwks_url.is_empty()).then(|| {
            Arc::new(crate::http::jwks::Jwks::new(
                &config_auth.jwks_url,
                &config_auth.jwt_issuer,
                &config_auth.jwt_audience,
            ))
        }),
    })
}

/// The address peers are told to send media to: `rtc.public_ip`, else the
/// listen address, else (listening on every address) the one this host
/// would use to reach the internet.
fn candidate_ip(config: &Config) -> std::net::IpAddr {
    if let Some(ip) = config.rtc.public_ip {
        return ip;
    }
    let listen = config.server.listen.ip();
    if !listen.is_unspecified() {
        return listen;
    }
    // Connecting a UDP socket sends nothing; it only picks the route.
    std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect("192.0.2.1:9").map(|()| s))
        .and_then(|s| s.local_addr())
        .map(|a| a.ip())
        .unwrap_or(listen)
}

/// Opens the configured blob store.
pub fn build_blobs(config: &Config) -> Result<Blobs, String> {
    let blob_cfg = match config.storage.kind {
        StorageKind::Local => BlobConfig::Local {
            root: config.server.data_dir.join("media"),
        },
        StorageKind::S3 => BlobConfig::S3 {
            bucket: config.storage.bucket.clone(),
            endpoint: config.storage.endpoint.clone(),
            region: config.storage.region.clone(),
            access_key: config.storage.access_key.clone(),
            secret_key: config.storage.secret_key.0.clone(),
        },
        StorageKind::Gcs => BlobConfig::Gcs {
            bucket: config.storage.bucket.clone(),
            credentials: config.storage.credentials.clone(),
            endpoint: config.storage.endpoint.clone(),
        },
        StorageKind::Azure => BlobConfig::Azure {
            account: config.storage.account.clone(),
            container: config.storage.bucket.clone(),
            access_key: Some(config.storage.secret_key.0.clone()).filter(|k| !k.is_empty()),
            endpoint: config.storage.endpoint.clone(),
        },
    };
    Blobs::open(&blob_cfg).map_err(|e| format!("storage: {e}"))
}

/// The key of share links, invites and upload URLs: `auth.share_secret`,
/// else, in a cluster, one key every node reads from the database (a link
/// made on one node is checked on another), else one kept in the data
/// folder.
async fn share_key(config: &Config, data: &Path, repo: &Repo) -> Result<Vec<u8>, String> {
    if !config.auth.share_secret.0.is_empty() {
        return Ok(config.auth.share_secret.0.as_bytes().to_vec());
    }
    if config.cluster.enabled {
        let mine = crate::http::auth::random_string(48);
        return repo
            .shared_secret("share_key", &mine)
            .await
            .map(String::into_bytes)
            .map_err(|e| format!("database: {e}"));
    }
    let path = data.join("share.key");
    if let Ok(k) = std::fs::read(&path)
        && k.len() >= 32
    {
        return Ok(k);
    }
    let k = crate::http::auth::random_string(48).into_bytes();
    std::fs::write(&path, &k).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(k)
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    if let Err(e) = ffmpeg::version(&config.encoder.ffmpeg) {
        tracing::warn!(error = %e, "ffmpeg is not usable; recordings will fail (run `tapedeck doctor`)");
    }
    let header_timeout = std::time::Duration::from_secs(config.server.header_read_timeout_s.max(1));
    let drain = std::time::Duration::from_secs(config.cluster.drain_s);
    let state = build_state(config).await?;
    let (node, supervisor) = (state.node.clone(), state.supervisor.clone());
    let app = router(state);
    // A node of a cluster drains before it stops serving: its sockets and
    // forwarded requests go on meanwhile.
    let (n, sup) = (node.clone(), supervisor.clone());
    let shutdown = async move {
        shutdown.await;
        if n.clustered() {
            n.drain_for(&sup, drain).await;
        }
    };
    serve_on(listener, app, header_timeout, shutdown).await;
    node.leave(&supervisor).await;
    Ok(())
}

/// Open files the server wants at least: every connection, WebSocket,
/// call peer's files, upload and child process holds some.
pub const WANTED_OPEN_FILES: u64 = 8192;

/// Raises the soft limit on open files to the hard limit (systemd's default
/// soft limit is 1024); returns the soft limit now and the hard one.
pub fn raise_file_limit() -> std::io::Result<(u64, u64)> {
    let soft = rlimit::increase_nofile_limit(u64::MAX)?;
    let (_, hard) = rlimit::Resource::NOFILE.get()?;
    Ok((soft, hard))
}

/// How long a graceful shutdown waits for connections to finish.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// Serves `app` on `listener` (HTTP/1.1 with upgrades) until `shutdown`
/// resolves, then lets connections finish for up to 30 s. Unlike
/// `axum::serve` it sets a timer: a connection that sends half a request
/// and stops, or stays idle between requests, is closed after
/// `header_timeout` (`server.header_read_timeout_s`) instead of holding a
/// file descriptor forever. An accept error (out of file descriptors) is
/// logged and retried.
pub async fn serve_on(
    listener: TcpListener,
    app: Router,
    header_timeout: std::time::Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let live = Arc::new(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection failed; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let svc = hyper_util::service::TowerToHyperService::new(app.clone());
        let conn = http
            .serve_connection(TokioIo::new(stream), svc)
            .with_upgrades();
        let (mut stop, held) = (stop_rx.clone(), live.clone());
        tokio::spawn(async move {
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                // The one change is to true: shutting down.
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
            drop(held);
        });
    }
    let _ = stop_tx.send(true);
    let until = tokio::time::Instant::now() + SHUTDOWN_GRACE;
    while Arc::strong_count(&live) > 1 && tokio::time::Instant::now() < until {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
