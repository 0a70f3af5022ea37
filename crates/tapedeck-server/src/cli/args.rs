//! The command line's arguments.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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
    /// Manage the web page's local accounts (works on the database directly).
    Users {
        /// What to do with accounts.
        #[command(subcommand)]
        cmd: UsersCmd,
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
        /// Only those whose metadata has KEY=VALUE (repeat for more).
        #[arg(long = "metadata", value_name = "KEY=VALUE")]
        metadata: Vec<String>,
    },
    /// Show one recording as JSON.
    Get {
        /// Server and token.
        #[command(flatten)]
        client: ClientArgs,
        /// Recording id (`rec_` and 26 characters; checked before it
        /// goes into a URL or a file name).
        id: tapedeck_core::RecordingId,
    },
    /// Stop a recording.
    Stop {
        /// Server and token.
        #[command(flatten)]
        client: ClientArgs,
        /// Recording id (`rec_` and 26 characters; checked before it
        /// goes into a URL or a file name).
        id: tapedeck_core::RecordingId,
    },
    /// Download a recording's media, with a progress bar.
    Download {
        /// Server and token.
        #[command(flatten)]
        client: ClientArgs,
        /// Recording id (`rec_` and 26 characters; checked before it
        /// goes into a URL or a file name).
        id: tapedeck_core::RecordingId,
        /// Output file (default: ID.EXT).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Record a web page to a file, no server needed.
    Record(RecordArgs),
    /// Give a browser's MediaRecorder WebM its duration and cues (seekable),
    /// frames untouched, as uploads are processed; no server needed.
    Fixup {
        /// The recorded file.
        input: PathBuf,
        /// Where to write the fixed file (WebM; Matroska for H.264).
        output: PathBuf,
    },
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

/// Account commands. The password is asked for on the terminal (twice),
/// or read as one line from standard input when that is not a terminal.
#[derive(Debug, Subcommand)]
pub enum UsersCmd {
    /// Create an account.
    Create {
        /// The user name (1-64 letters, digits, - _ . @).
        name: String,
        /// The account sees every user's recordings.
        #[arg(long)]
        admin: bool,
        /// Data folder.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Set an account's password; its browsers are signed out.
    Passwd {
        /// The user name.
        name: String,
        /// Data folder.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// List accounts.
    List {
        /// Data folder.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Delete an account (its recordings stay); its browsers are signed out
    /// and its API keys revoked.
    Delete {
        /// The user name.
        name: String,
        /// Data folder.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}
