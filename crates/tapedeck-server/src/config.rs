//! Configuration: one typed tree. Defaults, then a TOML file, then
//! `TAPEDECK_*` environment variables (`__` separates levels, e.g.
//! `TAPEDECK_LIMITS__MAX_CONCURRENT=8`), then command-line flags.
//!
//! One file on purpose: it is the schema of `config/default.toml`, section
//! by section in the same order, and its test checks the two agree; the
//! sections are plain data with their defaults and cross-field checks.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format as _, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// A secret string: never printed by `Debug`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "\"\""
        } else {
            "[redacted]"
        })
    }
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Listening address and folders.
    pub server: ServerConfig,
    /// Metadata database.
    pub database: DatabaseConfig,
    /// Media storage.
    pub storage: StorageConfig,
    /// Tokens.
    pub auth: AuthConfig,
    /// Limits and quotas.
    pub limits: LimitsConfig,
    /// Retention.
    pub retention: RetentionConfig,
    /// Encoding.
    pub encoder: EncoderConfig,
    /// Webhooks.
    pub webhooks: WebhooksConfig,
    /// Web page recording.
    pub web: WebConfig,
    /// WebRTC rooms.
    pub rtc: RtcConfig,
    /// Uploads (tus).
    pub uploads: UploadsConfig,
    /// Several nodes on one PostgreSQL and one bucket.
    pub cluster: ClusterConfig,
    /// Live outputs (HLS, pictures, RTMP/SRT streams).
    pub outputs: OutputsConfig,
}

/// `[outputs]`: where a recording's streams may be pushed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputsConfig {
    /// Let RTMP/SRT outputs reach private, loopback and link-local addresses.
    pub allow_private_networks: bool,
    /// `host` or `host:port` entries outputs may always reach.
    pub allowed_hosts: Vec<String>,
}

/// `[cluster]`: this server as one node of several sharing one PostgreSQL
/// database and one bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Run as a node of a cluster (needs PostgreSQL and S3, GCS or Azure).
    pub enabled: bool,
    /// This node's name, unique in the cluster: letters, digits, `-`, `_`.
    pub node_id: String,
    /// How the other nodes reach this one (`http://10.0.0.5:8080`).
    pub internal_url: String,
    /// How clients reach this node directly; default `server.public_url`.
    pub public_url: Option<String>,
    /// Seconds between heartbeats.
    pub heartbeat_s: u64,
    /// A node whose last heartbeat is older than this is dead.
    pub node_timeout_s: u64,
    /// On SIGTERM, how long a node lets its live sessions and running
    /// jobs finish (taking no new work) before it stops.
    pub drain_s: u64,
    /// Ship live media to the store while it records (spools, a call's
    /// track files, tus bytes), so a node's loss costs at most one
    /// segment: on in a cluster, off on a server alone unless set.
    pub ship_live: Option<bool>,
    /// Seconds of live media per shipped segment (the most a node loss
    /// costs a recording).
    pub segment_s: u64,
}

impl ClusterConfig {
    /// Whether live media is shipped to the store while it records.
    pub fn ships(&self) -> bool {
        self.ship_live.unwrap_or(self.enabled)
    }
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            node_id: String::new(),
            internal_url: String::new(),
            public_url: None,
            heartbeat_s: 2,
            node_timeout_s: 10,
            drain_s: 60,
            ship_live: None,
            segment_s: 2,
        }
    }
}

/// `[uploads]`: resumable uploads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UploadsConfig {
    /// An upload that receives no bytes this long expires: its recording
    /// fails with `end_reason: upload_expired` (`Upload-Expires` says when).
    pub expire_after_s: u64,
    /// An upload that has received no byte this long after it was created
    /// expires the same way (a presigned one gets its URL's lifetime on top).
    pub start_timeout_s: u64,
    /// How long a presigned upload URL (`POST /v1/uploads/url`) is valid.
    pub url_expires_s: u64,
    /// A presigned upload of more bytes than this is sent in parts, each
    /// to its own URL (on S3 and local storage).
    pub multipart_threshold_bytes: u64,
    /// Bytes per part (at least 5 MiB, S3's smallest part).
    pub part_size_bytes: u64,
}

impl Default for UploadsConfig {
    fn default() -> Self {
        Self {
            expire_after_s: 86_400,
            start_timeout_s: 300,
            url_expires_s: 1800,
            multipart_threshold_bytes: 100 * 1024 * 1024,
            part_size_bytes: 16 * 1024 * 1024,
        }
    }
}

/// `[rtc]`: WebRTC rooms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RtcConfig {
    /// The one UDP port every peer's media uses (open it in the firewall).
    pub udp_port: u16,
    /// Also take media over TCP (ICE-TCP, RFC 6544): every answer carries
    /// a passive TCP candidate, used by peers whose network blocks UDP.
    pub tcp: bool,
    /// The TCP port for that (None: the UDP port's number).
    pub tcp_port: Option<u16>,
    /// The address put in ICE candidates, where peers reach the UDP port
    /// (None: the listen address, or this host's own when that is 0.0.0.0).
    pub public_ip: Option<std::net::IpAddr>,
    /// Largest `max_participants` a room may ask for.
    pub max_participants: u32,
    /// Peers connected at once across all rooms.
    pub max_peers: u32,
    /// A peer whose ICE and DTLS have not completed this long after its
    /// offer is dropped (its slot freed).
    pub connect_timeout_s: u64,
    /// Peers not yet connected one caller (an API user, or a join token's
    /// guest) may hold at once; more get 429 `too_many_connecting`.
    pub max_connecting_per_caller: u32,
    /// Sessions one caller may hold in one room, connected or not (a call
    /// page, a WHIP camera, one reconnecting); more get 429
    /// `too_many_sessions`.
    pub max_sessions_per_caller: u32,
    /// STUN and TURN servers handed to participants (`[[rtc.ice_servers]]`).
    pub ice_servers: Vec<crate::rtc::ice::IceServer>,
}

impl Default for RtcConfig {
    fn default() -> Self {
        Self {
            udp_port: 8700,
            tcp: true,
            tcp_port: None,
            public_ip: None,
            max_participants: 50,
            max_peers: 500,
            connect_timeout_s: 10,
            max_connecting_per_caller: 4,
            max_sessions_per_caller: 6,
            ice_servers: vec![],
        }
    }
}

/// `[web]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// chromium-headless-shell, the real binary (not the /usr/bin wrapper script).
    pub browser: PathBuf,
    /// Let pages reach private, loopback and link-local addresses.
    pub allow_private_networks: bool,
    /// `host` or `host:port` entries pages may always reach.
    pub allowed_hosts: Vec<String>,
    /// Browsers running at once (a web recording runs one, or more when it
    /// is split); more wait in the queue.
    pub max_concurrent: u32,
    /// Web recordings that may wait for their turn; more get 429 `queue_full`.
    pub max_queued: u32,
    /// Longest wait for a page to load.
    pub load_timeout_s: u64,
    /// Longest wait for one frame before the page counts as hung.
    pub frame_timeout_s: u64,
    /// How frames are captured: `png` (lossless, the default) or `jpeg` (smaller spool).
    pub capture_format: CaptureFormat,
    /// JPEG quality of captured frames (1-100).
    pub capture_quality: u8,
    /// Browsers one deterministic recording may be rendered by at once,
    /// each a range of its frames (`split: auto`), when the CPU budget and
    /// `max_concurrent` have room for them as they start; 1: never split.
    pub browsers_per_recording: u32,
    /// No range shorter than this (a browser plays everything before its
    /// range first, so short ranges gain little).
    pub min_range_s: u32,
}

/// The image format web frames are captured in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaptureFormat {
    /// Lossless.
    Png,
    /// Lossy, at `capture_quality`.
    Jpeg,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            browser: PathBuf::from("/usr/lib/chromium/chromium-headless-shell"),
            allow_private_networks: false,
            allowed_hosts: vec![],
            max_concurrent: 2,
            max_queued: 1000,
            load_timeout_s: 30,
            frame_timeout_s: 20,
            capture_format: CaptureFormat::Png,
            capture_quality: 90,
            browsers_per_recording: 2,
            min_range_s: 5,
        }
    }
}

/// `[server]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Folder for the SQLite database, local media and work files.
    pub data_dir: PathBuf,
    /// Base URL clients reach the server at (for share links); default from `listen`.
    pub public_url: Option<String>,
    /// A client has this long to send a request's line and headers; a
    /// keep-alive connection idle this long between requests is closed.
    pub header_read_timeout_s: u64,
    /// A request body that sends nothing for this long is cut off (a
    /// stalled upload chunk, an offer that never arrives).
    pub body_idle_timeout_s: u64,
}

/// `[database]`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` or `postgres://...`; default `sqlite://DATA_DIR/tapedeck.db`.
    pub url: Option<Secret>,
}

/// Where media goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    /// `DATA_DIR/media`.
    #[default]
    Local,
    /// An S3-compatible bucket.
    S3,
    /// A Google Cloud Storage bucket.
    Gcs,
    /// An Azure Blob Storage container.
    Azure,
}

/// `[storage]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `local`, `s3`, `gcs` or `azure`.
    pub kind: StorageKind,
    /// Bucket (s3, gcs) or container (azure).
    pub bucket: String,
    /// Endpoint URL: an S3-compatible server (s3), an emulator's base URL
    /// (gcs), the account's URL (azure); default the cloud's own.
    pub endpoint: Option<String>,
    /// Region (s3).
    pub region: String,
    /// Access key id (s3).
    pub access_key: String,
    /// Secret key (s3), or the account key (azure; empty: the
    /// environment's Azure credentials).
    pub secret_key: Secret,
    /// Storage account (azure).
    pub account: String,
    /// Service account JSON file (gcs; empty: the application default
    /// credentials). Presigned URLs need a service account's key.
    pub credentials: Option<PathBuf>,
    /// Lifetime of share links.
    pub share_ttl_s: u64,
    /// How long a finished recording the store refuses is stored again
    /// (with backoff from 1 s to 5 min) before it fails; its files are kept.
    pub retry_for_s: u64,
}

/// `[auth]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// HS256 secret for JWTs (`sub` = user, optional `admin: true`); empty disables JWTs.
    pub jwt_secret: Secret,
    /// Key for signing local share links; empty: generated once into the data folder.
    pub share_secret: Secret,
    /// An identity provider's JWKS URL: JWTs signed with its keys (RS256,
    /// ES256, ...) are accepted; empty disables them.
    pub jwks_url: String,
    /// With `jwks_url`: the `iss` tokens must carry (empty: not checked).
    pub jwt_issuer: String,
    /// With `jwks_url`: the `aud` tokens must carry (empty: not checked).
    pub jwt_audience: String,
    /// How long a sign-in on the web page lasts, seconds.
    pub session_ttl_s: u64,
    /// Sign-in with the company's identity provider (OpenID Connect).
    pub oidc: OidcConfig,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwt_secret: Secret::default(),
            share_secret: Secret::default(),
            jwks_url: String::new(),
            jwt_issuer: String::new(),
            jwt_audience: String::new(),
            session_ttl_s: 7 * 24 * 3600,
            oidc: OidcConfig::default(),
        }
    }
}

/// `[auth.oidc]`: the web page's "Sign in with ..." (the authorization code
/// flow with PKCE). Off while `issuer` is empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OidcConfig {
    /// The provider's issuer URL (its discovery document is
    /// `{issuer}/.well-known/openid-configuration`).
    pub issuer: String,
    /// This server's client id at the provider.
    pub client_id: String,
    /// Its secret (sent as HTTP Basic); empty for a public client.
    pub client_secret: Secret,
    /// What the button says: "Sign in with {name}".
    pub name: String,
    /// The scopes asked for.
    pub scopes: String,
    /// The ID token claim that is the user name (falls back to `sub`).
    pub user_claim: String,
    /// Members of this group (in the `groups` claim) are admins; empty: none.
    pub admin_group: String,
}

impl Default for OidcConfig {
    fn default() -> Self {
        Self {
            issuer: String::new(),
            client_id: String::new(),
            client_secret: Secret::default(),
            name: "your company".into(),
            scopes: "openid profile email".into(),
            user_claim: "preferred_username".into(),
            admin_group: String::new(),
        }
    }
}

/// `[limits]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Active (pending, recording, paused) recordings on the server.
    pub max_concurrent: u32,
    /// Active recordings per user.
    pub max_concurrent_per_user: u32,
    /// CPU cores recordings may reserve by their estimated cost (0: four
    /// fifths of the machine's cores). A live source that does not fit gets 429
    /// `server_busy` (a camera is spooled and encoded later instead, see
    /// `max_deferred_cameras`); a web recording waits its turn.
    pub cpu_budget_cores: f64,
    /// Cameras (frames recordings) accepted beyond the CPU budget at once:
    /// their pictures are spooled as they arrive and encoded when there
    /// is room, after stop if need be (0: refuse them with `server_busy`).
    pub max_deferred_cameras: u32,
    /// A camera is accepted beyond the budget only while the data folder's
    /// disk has this many bytes free (its pictures wait there).
    pub min_free_disk_bytes: u64,
    /// Longest recording, seconds (a request may ask for less).
    pub max_duration_s: u32,
    /// Largest frame, bytes.
    pub max_frame_bytes: usize,
    /// Widest picture: of a pushed frame, and of an uploaded video or a
    /// call's track (ffmpeg refuses to decode a picture of more pixels than
    /// `max_frame_width` x `max_frame_height`).
    pub max_frame_width: u32,
    /// Tallest picture (as `max_frame_width`).
    pub max_frame_height: u32,
    /// Stored media per user, bytes (0: unlimited).
    pub user_quota_bytes: u64,
    /// Largest output of one recording, bytes (0: unlimited); reaching it stops the recording.
    pub max_size_bytes: u64,
    /// A frame whose timestamp runs this far ahead of the wall clock since
    /// the previous frame is refused as invalid (seconds).
    pub max_timestamp_lead_s: u32,
    /// A recording whose source sends nothing this long is finalized.
    pub idle_timeout_s: u64,
    /// A pending recording whose source never connects is cancelled after this
    /// (and stops holding a concurrency slot).
    pub pending_timeout_s: u64,
    /// A recording paused this long is finalized (`end_reason: idle`).
    pub paused_timeout_s: u64,
    /// Largest upload, bytes (`Upload-Length`, or a deferred length as it grows).
    pub max_upload_bytes: u64,
    /// Active recordings one call guest may send from their browser (they
    /// are filed under the host but take none of the host's slots).
    pub max_uploads_per_guest: u32,
    /// Rooms one user may have open (not closed) at once.
    pub max_open_rooms_per_user: u32,
    /// `/v1/events` WebSockets one user may hold open at once.
    pub max_event_sockets_per_user: u32,
}

/// `[retention]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Days a recording is kept (0: forever).
    pub days: u32,
    /// How often the sweep runs.
    pub sweep_interval_s: u64,
}

/// `[encoder]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EncoderConfig {
    /// The ffmpeg program.
    pub ffmpeg: PathBuf,
    /// The ffprobe program.
    pub ffprobe: PathBuf,
    /// x264 preset for MP4/MKV.
    pub x264_preset: String,
    /// Quality (x264 CRF; VP9 uses CRF + 10).
    pub crf: u32,
    /// Frames queued per recording before new ones are dropped.
    pub queue_frames: usize,
    /// CFR MP4/MKV: write held frames as skip pictures instead of encoding them again.
    pub skip_held: bool,
    /// A recording admitted while the others running hold at least this
    /// share of the CPU budget (`limits.cpu_budget_cores`) is busy: its
    /// encoder starts at `busy_x264_preset` with one thread, and it
    /// reserves what that costs. 0: always; more than 1: never.
    pub busy_above: f64,
    /// The x264 preset of encoders started on a busy server.
    pub busy_x264_preset: String,
}

/// `[webhooks]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// URLs that receive every event.
    pub urls: Vec<String>,
    /// HMAC-SHA256 key for the `Tapedeck-Signature` header.
    pub secret: Secret,
    /// Attempts per delivery.
    pub max_attempts: u32,
    /// First retry delay; doubles each time.
    pub retry_base_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8700)),
            data_dir: PathBuf::from("data"),
            public_url: None,
            header_read_timeout_s: 20,
            body_idle_timeout_s: 30,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            kind: StorageKind::Local,
            bucket: String::new(),
            endpoint: None,
            region: "us-east-1".into(),
            access_key: String::new(),
            secret_key: Secret::default(),
            account: String::new(),
            credentials: None,
            share_ttl_s: 3600,
            retry_for_s: 86_400,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_concurrent: 32,
            max_concurrent_per_user: 8,
            cpu_budget_cores: 0.0,
            max_duration_s: 4 * 3600,
            max_frame_bytes: 8 * 1024 * 1024,
            max_frame_width: 7680,
            max_frame_height: 4320,
            user_quota_bytes: 20 * 1024 * 1024 * 1024,
            max_size_bytes: 0,
            max_timestamp_lead_s: 60,
            max_deferred_cameras: 500,
            min_free_disk_bytes: 1 << 30,
            idle_timeout_s: 120,
            pending_timeout_s: 300,
            paused_timeout_s: 3600,
            max_upload_bytes: 8 * 1024 * 1024 * 1024,
            max_uploads_per_guest: 2,
            max_open_rooms_per_user: 100,
            max_event_sockets_per_user: 16,
        }
    }
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            days: 30,
            sweep_interval_s: 300,
        }
    }
}

impl Default for EncoderConfig {
    fn default() -> Self {
        Self {
            ffmpeg: "ffmpeg".into(),
            ffprobe: "ffprobe".into(),
            x264_preset: "veryfast".into(),
            crf: 23,
            queue_frames: 64,
            skip_held: true,
            busy_above: 0.5,
            busy_x264_preset: "ultrafast".into(),
        }
    }
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self {
            urls: vec![],
            secret: Secret::default(),
            max_attempts: 6,
            retry_base_ms: 1000,
        }
    }
}

/// The configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// File or environment did not parse.
    #[error("configuration: {0}")]
    Parse(#[from] Box<figment::Error>),
    /// Values that do not fit together.
    #[error("configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// The ffmpeg and ffprobe to run. They decode at most a
    /// `max_frame_width` x `max_frame_height` picture, and at least the
    /// largest a recording's settings may ask for (7680 x 4320): tapedeck's
    /// own encodes are probed and thumbnailed under the same limit.
    pub fn tools(&self) -> tapedeck_media::ffmpeg::Tools {
        let frame =
            u64::from(self.limits.max_frame_width) * u64::from(self.limits.max_frame_height);
        tapedeck_media::ffmpeg::Tools {
            ffmpeg: self.encoder.ffmpeg.clone(),
            ffprobe: self.encoder.ffprobe.clone(),
            max_pixels: frame.max(tapedeck_media::ffmpeg::DEFAULT_MAX_PIXELS),
        }
    }

    /// Loads defaults, then `file` (if given or if `tapedeck.toml` exists), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(f) => {
                if !f.exists() {
                    return Err(ConfigError::Invalid(format!(
                        "config file {} does not exist",
                        f.display()
                    )));
                }
                fig = fig.merge(Toml::file(f));
            }
            None => fig = fig.merge(Toml::file("tapedeck.toml")),
        }
        fig = fig.merge(
            Env::prefixed("TAPEDECK_")
                .split("__")
                .ignore(&["token", "url", "config", "log"]),
        );
        let cfg: Config = fig.extract().map_err(|e| ConfigError::Parse(Box::new(e)))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parses a TOML document over the defaults (no environment).
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let cfg: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(text))
            .extract()
            .map_err(|e| ConfigError::Parse(Box::new(e)))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// `[cluster]`: a node needs a name, an address for the others, and
    /// the shared database and storage.
    fn validate_cluster(&self) -> Result<(), ConfigError> {
        let c = &self.cluster;
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_string()));
        if c.segment_s == 0 || c.segment_s > 60 {
            return bad("cluster.segment_s must be 1 to 60 seconds");
        }
        if !c.enabled {
            return Ok(());
        }
        let pg =
            self.database.url.as_ref().is_some_and(|u| {
                u.0.starts_with("postgres://") || u.0.starts_with("postgresql://")
            });
        if !pg {
            return bad(
                "cluster.enabled needs PostgreSQL shared by every node: set database.url to postgres://... (SQLite is one node's)",
            );
        }
        if self.storage.kind == StorageKind::Local {
            return bad(
                "cluster.enabled needs storage every node reaches: set storage.kind to \"s3\", \"gcs\" or \"azure\" (local storage is one node's)",
            );
        }
        if c.heartbeat_s == 0 || c.node_timeout_s <= c.heartbeat_s {
            return bad(
                "cluster.heartbeat_s must be at least 1 and cluster.node_timeout_s longer than it",
            );
        }
        Ok(())
    }

    /// What a node that serves needs beyond [`Config::validate`]: in a
    /// cluster, its name and the address the others reach it at (the
    /// other commands, `tapedeck keys` on any machine, need neither).
    pub fn validate_node(&self) -> Result<(), ConfigError> {
        let c = &self.cluster;
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_string()));
        if !c.enabled {
            return Ok(());
        }
        let id_ok = !c.node_id.is_empty()
            && c.node_id.len() <= 64
            && c.node_id
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_');
        if c.node_id.is_empty() {
            return bad("cluster.node_id must be set: this node's name, unique in the cluster");
        }
        if !id_ok {
            return bad(&format!(
                "cluster.node_id `{}` is not a name: 1-64 letters, digits, '-' or '_'",
                c.node_id
            ));
        }
        if !c.internal_url.starts_with("http://") {
            return bad(
                "cluster.internal_url must be the http:// URL the other nodes reach this one at (on a private network)",
            );
        }
        Ok(())
    }

    /// Checks values that serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_string()));
        if let Some(p) = self.rtc.ice_servers.iter().find_map(|s| s.problem()) {
            return bad(&p);
        }
        if self.storage.kind != StorageKind::Local && self.storage.bucket.is_empty() {
            return bad("storage.kind = \"s3\", \"gcs\" or \"azure\" needs storage.bucket");
        }
        if self.uploads.part_size_bytes < 5 * 1024 * 1024 {
            return bad(
                "uploads.part_size_bytes must be at least 5242880 (5 MiB, S3's smallest part)",
            );
        }
        if self.storage.kind == StorageKind::Azure && self.storage.account.is_empty() {
            return bad("storage.kind = \"azure\" needs storage.account");
        }
        if !(self.limits.cpu_budget_cores >= 0.0 && self.limits.cpu_budget_cores <= 4096.0) {
            return bad("limits.cpu_budget_cores must be 0 (the machine's cores) to 4096");
        }
        if self.limits.max_concurrent == 0 || self.limits.max_concurrent_per_user == 0 {
            return bad(
                "limits.max_concurrent and limits.max_concurrent_per_user must be at least 1",
            );
        }
        if self.limits.max_duration_s == 0 {
            return bad("limits.max_duration_s must be at least 1");
        }
        if !(self.encoder.busy_above >= 0.0 && self.encoder.busy_above.is_finite()) {
            return bad("encoder.busy_above must be a share of the budget, 0 or more");
        }
        if self.encoder.queue_frames == 0 {
            return bad("encoder.queue_frames must be at least 1");
        }
        self.validate_cluster()?;
        if self.auth.session_ttl_s < 60 {
            return bad("auth.session_ttl_s must be at least 60");
        }
        let oidc = &self.auth.oidc;
        if !oidc.issuer.is_empty() {
            if !(oidc.issuer.starts_with("https://") || oidc.issuer.starts_with("http://")) {
                return bad("auth.oidc.issuer must be an http(s) URL");
            }
            if oidc.client_id.is_empty() {
                return bad("auth.oidc.issuer needs auth.oidc.client_id");
            }
            if !oidc.scopes.split_whitespace().any(|s| s == "openid") {
                return bad("auth.oidc.scopes must include openid");
            }
        }
        if let Some(u) = &self.database.url
            && !(u.0.starts_with("sqlite://")
                || u.0.starts_with("postgres://")
                || u.0.starts_with("postgresql://"))
        {
            return bad("database.url must start with sqlite:// or postgres://");
        }
        Ok(())
    }

    /// The database URL, defaulting to SQLite in the data folder.
    pub fn database_url(&self) -> String {
        match &self.database.url {
            Some(u) => u.0.clone(),
            None => format!(
                "sqlite://{}",
                self.server.data_dir.join("tapedeck.db").display()
            ),
        }
    }

    /// The base URL for links.
    pub fn public_url(&self) -> String {
        match &self.server.public_url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => format!("http://{}", self.server.listen),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_in_default_toml_parses_to_the_defaults() {
        let text = include_str!("../../../config/default.toml");
        let cfg = Config::from_toml(text).unwrap();
        assert_eq!(cfg, Config::default());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        assert!(Config::from_toml("[limits]\nmax_concurent = 3").is_err());
        let e = Config::from_toml("[storage]\nkind = \"s3\"").unwrap_err();
        assert!(e.to_string().contains("bucket"), "{e}");
        assert!(Config::from_toml("[server]\nlisten = \"nope\"").is_err());
    }

    #[test]
    fn a_cluster_node_needs_the_shared_database_and_storage_and_a_name() {
        let node = "[cluster]\nenabled = true\nnode_id = \"n1\"\ninternal_url = \"http://10.0.0.5:8080\"\n";
        let shared = "[database]\nurl = \"postgres://db/tapedeck\"\n[storage]\nkind = \"s3\"\nbucket = \"media\"\n";
        let e = Config::from_toml(node).unwrap_err().to_string();
        assert!(
            e.contains("database.url") && e.contains("PostgreSQL"),
            "{e}"
        );
        let pg_only = format!("{node}[database]\nurl = \"postgres://db/tapedeck\"\n");
        let e = Config::from_toml(&pg_only).unwrap_err().to_string();
        assert!(e.contains("storage.kind"), "{e}");
        assert!(Config::from_toml(&format!("{node}{shared}")).is_ok());
        // A node that serves needs a name and an address; `tapedeck keys`
        // with the same settings on any machine needs neither.
        let node_check = |toml: &str| Config::from_toml(toml).unwrap().validate_node();
        assert!(node_check(&format!("{node}{shared}")).is_ok());
        let nameless = format!("{}{shared}", node.replace("n1", "n 1"));
        let e = node_check(&nameless).unwrap_err().to_string();
        assert!(e.contains("cluster.node_id"), "{e}");
        let unnamed = format!("{}{shared}", node.replace("node_id = \"n1\"\n", ""));
        let e = node_check(&unnamed).unwrap_err().to_string();
        assert!(e.contains("cluster.node_id must be set"), "{e}");
        let no_url = format!("{}{shared}", node.replace("http://10.0.0.5:8080", ""));
        let e = node_check(&no_url).unwrap_err().to_string();
        assert!(e.contains("cluster.internal_url"), "{e}");
        // One node alone needs none of it.
        assert!(Config::from_toml("[cluster]\nenabled = false").is_ok());
    }

    #[test]
    fn secrets_are_redacted() {
        let mut c = Config::default();
        c.auth.jwt_secret = Secret("hunter2".into());
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
