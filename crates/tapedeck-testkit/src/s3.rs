//! S3 servers for tests: s3s-fs (real SigV4 and presigned URLs), one
//! shared per test process with a fresh bucket per call, or one of a
//! test's own that it may stop and start again.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::Ordering;

use super::{DB_COUNTER, find, free_port, scratch, spawn_watched, wait_port};

/// An S3 server (s3s-fs: real SigV4 and presigned URLs) with one empty bucket.
#[derive(Debug, Clone)]
pub struct S3 {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// Bucket name (fresh per call).
    pub bucket: String,
    /// Access key id.
    pub access_key: String,
    /// Secret key.
    pub secret_key: String,
    /// The folder holding the buckets.
    pub root: PathBuf,
}

/// An S3 server of one test's own, which the test may stop and start
/// again (the same port and folder): a store that goes away mid-way.
pub struct StoppableS3 {
    /// A bucket on it.
    pub s3: S3,
    port: u16,
    child: Option<std::process::Child>,
}

impl StoppableS3 {
    /// Starts s3s-fs on a free port with one bucket.
    pub fn start() -> Self {
        let root = scratch(&format!(
            "s3-own-{}",
            DB_COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(root.join("own")).expect("bucket dir");
        let port = free_port();
        let mut me = Self {
            s3: S3 {
                endpoint: format!("http://127.0.0.1:{port}"),
                bucket: "own".into(),
                access_key: "testkey".into(),
                secret_key: "testsecret".into(),
                root,
            },
            port,
            child: None,
        };
        me.resume();
        me
    }

    /// Stops the server (kill -9); its objects stay on disk.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and folder.
    pub fn resume(&mut self) {
        let bin = find(
            "s3s-fs",
            &[],
            "cargo install s3s-fs --version 0.14.1 --features binary --locked",
        );
        let log = self.s3.root.with_extension("log");
        let out = std::fs::File::create(&log).expect("s3s-fs log");
        let child = std::process::Command::new(bin)
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", "testkey", "--secret-key", "testsecret"])
            .arg(&self.s3.root)
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .expect("s3s-fs");
        self.child = Some(child);
        wait_port(self.port, "s3s-fs", &log);
    }
}

impl Drop for StoppableS3 {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.s3.root);
    }
}

static S3_SERVER: OnceLock<(String, PathBuf)> = OnceLock::new();

/// A fresh bucket on the S3 server started for this test process.
pub fn s3() -> S3 {
    let (endpoint, root) = S3_SERVER.get_or_init(|| {
        let bin = find(
            "s3s-fs",
            &[],
            "cargo install s3s-fs --version 0.14.1 --features binary --locked",
        );
        let root = scratch("s3");
        let port = free_port();
        let log = std::env::temp_dir().join(format!("tapedeck-test-{}-s3.log", std::process::id()));
        spawn_watched(
            &format!(
                "{} --host 127.0.0.1 --port {port} --access-key testkey --secret-key testsecret {}",
                bin.display(),
                root.display()
            ),
            &log,
            &root,
        );
        wait_port(port, "s3s-fs", &log);
        (format!("http://127.0.0.1:{port}"), root)
    });
    let bucket = format!("bucket-{}", DB_COUNTER.fetch_add(1, Ordering::SeqCst));
    std::fs::create_dir_all(root.join(&bucket)).expect("bucket dir");
    S3 {
        endpoint: endpoint.clone(),
        bucket,
        access_key: "testkey".into(),
        secret_key: "testsecret".into(),
        root: root.clone(),
    }
}
