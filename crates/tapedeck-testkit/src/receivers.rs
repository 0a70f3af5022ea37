//! Stream receivers for tests of stream outputs: Debian's nginx with
//! libnginx-mod-rtmp (an RTMP server that records what is published to
//! it), and ffmpeg as an SRT listener writing what it receives. Each is
//! killed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The RTMP module Debian's libnginx-mod-rtmp installs.
const RTMP_MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";

/// nginx receiving RTMP on 127.0.0.1:`port`, application `live`, every
/// stream recorded to its own FLV (one file per publish).
pub struct NginxRtmp {
    /// Its port.
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl NginxRtmp {
    /// Starts one on a free port, its files in `dir`.
    pub fn start(dir: &Path) -> Self {
        let mut n = Self {
            port: crate::free_port(),
            dir: dir.to_path_buf(),
            child: None,
        };
        n.restart();
        n
    }

    /// `rtmp://127.0.0.1:PORT/live/NAME`.
    pub fn url(&self, name: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{name}", self.port)
    }

    /// Starts it (again, on the same port) and waits for it to listen.
    pub fn restart(&mut self) {
        assert!(
            Path::new(RTMP_MODULE).exists(),
            "no {RTMP_MODULE}: apt-get install libnginx-mod-rtmp (scripts/setup.sh --test)"
        );
        let rec = self.dir.join("rec");
        std::fs::create_dir_all(&rec).unwrap();
        let d = self.dir.display();
        let conf = format!(
            "load_module {RTMP_MODULE};\n\
             daemon off;\nmaster_process off;\nworker_processes 1;\n\
             pid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
             events {{ worker_connections 64; }}\n\
             rtmp {{ server {{ listen 127.0.0.1:{port}; chunk_size 4096;\n\
               application live {{ live on; record all; record_path {d}/rec; record_unique on; }} }} }}\n",
            port = self.port
        );
        let path = self.dir.join("nginx.conf");
        std::fs::write(&path, conf).unwrap();
        let child = Command::new("nginx")
            .args(["-p", &d.to_string(), "-e", &format!("{d}/error.log"), "-c"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("nginx (apt-get install nginx-core libnginx-mod-rtmp)");
        self.child = Some(child);
        crate::wait_port(self.port, "nginx (RTMP)", &self.dir.join("error.log"));
    }

    /// Kills it at once (`kill -9`): a receiver gone mid-stream.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The FLV files it recorded, oldest first.
    pub fn recorded(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.join("rec"))
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        files.retain(|p| p.extension().is_some_and(|e| e == "flv"));
        files.sort();
        files
    }
}

impl Drop for NginxRtmp {
    fn drop(&mut self) {
        self.kill();
    }
}

/// ffmpeg listening for one SRT caller on 127.0.0.1:`port`, copying what
/// it receives into an MPEG-TS file.
pub struct SrtListener {
    /// Its port.
    pub port: u16,
    /// The file it writes.
    pub file: PathBuf,
    child: Child,
}

impl SrtListener {
    /// Starts one on a free port, writing `file`.
    pub fn start(file: &Path) -> Self {
        let port = crate::free_port();
        let child = Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-i"])
            .arg(format!("srt://127.0.0.1:{port}?mode=listener"))
            .args(["-c", "copy", "-f", "mpegts"])
            .arg(file)
            .stdout(Stdio::null())
            // It says "Input/output error" when its caller goes, as it should.
            .stderr(Stdio::null())
            .spawn()
            .expect("ffmpeg");
        // SRT is UDP: nothing to connect to; give it a moment to bind.
        std::thread::sleep(Duration::from_millis(500));
        Self {
            port,
            file: file.to_path_buf(),
            child,
        }
    }

    /// `srt://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("srt://127.0.0.1:{}", self.port)
    }

    /// Waits up to `within` for it to end (its caller went away): whether it did.
    pub fn ended(&mut self, within: Duration) -> bool {
        let until = Instant::now() + within;
        while Instant::now() < until {
            if self.child.try_wait().ok().flatten().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

impl Drop for SrtListener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
