//! Playwright scripts from tests/e2e, run with `node`: to the end, or in
//! the background, read line by line.

use serde_json::Value;

/// Runs a Playwright script from tests/e2e with `node` and returns its last
/// line (the script's result) as JSON; fails with what it printed.
pub async fn page_script(script: &str, args: Vec<String>) -> Value {
    page_script_env(script, args, &[]).await
}

/// A page script running in the background, its output read line by line.
pub struct LiveScript {
    name: String,
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    last: String,
}

impl LiveScript {
    /// Starts `node tests/e2e/SCRIPT ARGS...`.
    pub fn start(script: &str, args: Vec<String>) -> Self {
        use std::io::BufRead;
        let e2e = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/e2e");
        let mut child = std::process::Command::new("node")
            .arg(e2e.join(script))
            .args(args)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("node");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        Self {
            name: script.into(),
            child,
            lines,
            last: String::new(),
        }
    }

    /// Waits (up to `secs`) for the line `want`.
    pub async fn wait_line(&mut self, want: &str, secs: u64) {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            match self.lines.try_recv() {
                Ok(l) if l == want => return,
                Ok(l) => self.last = l,
                Err(std::sync::mpsc::TryRecvError::Empty) => {
                    assert!(
                        std::time::Instant::now() < until,
                        "{}: no `{want}` in {secs} s",
                        self.name
                    );
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(_) => panic!("{} ended before `{want}`: {}", self.name, self.last),
            }
        }
    }

    /// Waits for the script to end; its last line, as JSON.
    pub async fn finish(mut self) -> Value {
        let (name, mut child) = (self.name.clone(), self.child);
        let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
            .await
            .unwrap();
        while let Ok(l) = self.lines.recv() {
            self.last = l;
        }
        assert!(status.success(), "{name} failed: {}", self.last);
        serde_json::from_str(&self.last).unwrap()
    }
}

/// [`page_script`] with environment variables for the script.
pub async fn page_script_env(script: &str, args: Vec<String>, env: &[(&str, String)]) -> Value {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let e2e = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/e2e");
    assert!(
        e2e.join("node_modules/playwright-core").exists(),
        "run scripts/test.sh (npm ci in tests/e2e) first"
    );
    let path = e2e.join(script);
    let name = script.to_string();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg(path)
            .args(args)
            .envs(env)
            .output()
            .expect("node")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{name} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}
