//! One headless browser process per web recording.
//!
//! The real binary is spawned (never a shell wrapper, which would orphan the
//! browser when killed) with the DevTools protocol on a pipe: no port is
//! opened, and when tapedeck exits, even by `kill -9`, the pipe closes and the
//! browser shuts down. Dropping [`Browser`] kills it and removes its profile.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use command_fds::{CommandFdExt, FdMapping};
use tokio::sync::mpsc;

use super::cdp::{Cdp, Event};

/// Where the browsers are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowserPaths {
    /// chromium-headless-shell (virtual time and begin-frame control).
    pub headless_shell: PathBuf,
}

impl Default for BrowserPaths {
    fn default() -> Self {
        Self {
            headless_shell: PathBuf::from("/usr/lib/chromium/chromium-headless-shell"),
        }
    }
}

/// Could not start a browser.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The binary is missing or not executable.
    #[error(
        "could not start the browser {path}: {source} (install the `chromium-headless-shell` package)"
    )]
    Spawn {
        /// The binary.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Pipes or the profile folder.
    #[error("could not prepare the browser: {0}")]
    Io(#[from] std::io::Error),
}

/// A running browser.
pub struct Browser {
    child: crate::process::AsyncRunning,
    profile: PathBuf,
    /// Its process id.
    pub pid: Option<u32>,
}

/// How to start it.
#[derive(Debug, Clone)]
pub struct LaunchOptions {
    /// The binary.
    pub binary: PathBuf,
    /// Run under begin-frame control (deterministic mode).
    pub begin_frame_control: bool,
    /// Window size in CSS pixels.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Device scale factor.
    pub scale: f64,
    /// Profile folder (created, and removed on drop).
    pub profile: PathBuf,
    /// The filtering proxy every connection goes through.
    pub proxy: Option<std::net::SocketAddr>,
    /// Let the page make sound, to record it (never played on the host).
    pub audio: bool,
}

/// The resolved real binary: `/usr/bin/...` entries that are shell scripts point elsewhere.
pub fn resolve_binary(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// True if the file starts with `#!` (a script, not the browser).
pub fn is_script(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 2];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .map(|_| &head == b"#!")
        .unwrap_or(false)
}

impl Browser {
    /// Starts the browser and connects to it.
    pub async fn launch(
        opts: &LaunchOptions,
    ) -> Result<
        (
            Browser,
            Cdp,
            mpsc::UnboundedReceiver<Event>,
            mpsc::UnboundedReceiver<Event>,
        ),
        LaunchError,
    > {
        std::fs::create_dir_all(&opts.profile)?;
        let (to_browser_r, to_browser_w) = std::io::pipe()?;
        let (from_browser_r, from_browser_w) = std::io::pipe()?;
        // Killed when dropped (the process wrapper sets it).
        let mut cmd = crate::process::async_command(&opts.binary);
        cmd.args([
            "--remote-debugging-pipe",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--disable-extensions",
            "--disable-breakpad",
            "--disable-crash-reporter",
            "--disable-domain-reliability",
            "--disable-client-side-phishing-detection",
            "--no-first-run",
            "--no-default-browser-check",
            // Media plays as it would for a visitor who clicked.
            "--autoplay-policy=no-user-gesture-required",
            "--hide-scrollbars",
            "--disable-smooth-scrolling",
            "--force-color-profile=srgb",
            "--font-render-hinting=none",
            // Frames in one process so the browser-wide request filter sees every request.
            "--disable-site-isolation-trials",
            "--disable-features=IsolateOrigins,site-per-process,Translate,MediaRouter,OptimizationHints,DialMediaRouteProvider,InterestFeedContentSuggestions,AutofillServerCommunication",
            // WebRTC may not open UDP around the request filter.
            "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
            "--webrtc-ip-handling-policy=disable_non_proxied_udp",
        ]);
        if opts.begin_frame_control {
            cmd.args([
                "--enable-begin-frame-control",
                "--run-all-compositor-stages-before-draw",
                "--disable-threaded-animation",
                "--disable-threaded-scrolling",
                "--disable-checker-imaging",
                "--disable-image-animation-resync",
                "--disable-new-content-rendering-timeout",
            ]);
        }
        if opts.audio {
            // Tab capture records the page's sound; the host must not hear it:
            // no PulseAudio and an ALSA device that does not exist leave
            // Chromium on its silent fake output, which still runs the page's audio.
            cmd.env("PULSE_SERVER", "unix:/nonexistent/tapedeck")
                .arg("--alsa-output-device=tapedeck-no-output");
        } else {
            cmd.arg("--mute-audio");
        }
        if let Some(p) = opts.proxy {
            // Every scheme, loopback included (Chromium bypasses it by default).
            cmd.arg(format!("--proxy-server=http://{p}"))
                .arg("--proxy-bypass-list=<-loopback>");
        }
        cmd.arg(format!("--window-size={},{}", opts.width, opts.height))
            .arg(format!("--force-device-scale-factor={}", opts.scale))
            .arg(format!("--user-data-dir={}", opts.profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        cmd.fd_mappings(vec![
            FdMapping {
                parent_fd: to_browser_r.into(),
                child_fd: 3,
            },
            FdMapping {
                parent_fd: from_browser_w.into(),
                child_fd: 4,
            },
        ])
        .map_err(|e| std::io::Error::other(e.to_string()))?;
        let child = crate::process::spawn_async("browser", &mut cmd).map_err(|e| match e {
            crate::process::ProcessError::Io { source, .. } => LaunchError::Spawn {
                path: opts.binary.clone(),
                source,
            },
            // Not found (the one other error spawning gives).
            _ => LaunchError::Spawn {
                path: opts.binary.clone(),
                source: std::io::ErrorKind::NotFound.into(),
            },
        })?;
        // The child's ends must close here so a dead browser reads as EOF.
        drop(cmd);
        let pid = child.id();
        let reader = tokio::net::unix::pipe::Receiver::from_owned_fd(from_browser_r.into())?;
        let writer = tokio::net::unix::pipe::Sender::from_owned_fd(to_browser_w.into())?;
        let (cdp, events, fetch) = Cdp::start(reader, writer);
        Ok((
            Browser {
                child,
                profile: opts.profile.clone(),
                pid,
            },
            cdp,
            events,
            fetch,
        ))
    }

    /// The browser's last 20 lines on stderr (for crash reports).
    pub fn stderr_tail(&self) -> String {
        let text = self.child.stderr_text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Whether the process has exited, with its status.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.exited()
    }

    /// Kills the browser and waits for it (10 s at most).
    pub async fn close(mut self) {
        self.child.kill(std::time::Duration::from_secs(10)).await;
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Drop for Browser {
    /// The process wrapper kills it when its handle drops.
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// The browser's `--version` line.
pub fn version(program: &Path) -> Result<String, crate::process::ProcessError> {
    let out = crate::process::run(
        "browser",
        program,
        &["--version".into()],
        std::time::Duration::from_secs(20),
    )?;
    Ok(String::from_utf8_lossy(&out).trim().to_string())
}
