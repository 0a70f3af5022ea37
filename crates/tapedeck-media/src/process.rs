//! The one wrapper around the programs tapedeck runs: ffmpeg, ffprobe and
//! the browser. Every child is created here, killed when its handle drops,
//! run under a timeout, and keeps the tail of its stderr for the error; each
//! program's runs, failures and timeouts are counted for `/metrics`.

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What went wrong running a program.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The program is not installed.
    #[error("{program} was not found; install it (Debian: apt-get install ffmpeg)")]
    NotFound {
        /// Which program.
        program: String,
    },
    /// It ran and failed.
    #[error("{program} failed ({status}): {stderr}")]
    Failed {
        /// Which program.
        program: String,
        /// Its exit status.
        status: String,
        /// The end of its stderr.
        stderr: String,
    },
    /// It ran too long and was killed.
    #[error("{program} did not finish within {seconds} s and was killed")]
    Timeout {
        /// Which program.
        program: String,
        /// The limit.
        seconds: u64,
    },
    /// Its output could not be understood.
    #[error("could not read {program} output: {message}")]
    Output {
        /// Which program.
        program: String,
        /// What was wrong.
        message: String,
    },
    /// A picture of the input is larger than the decoding limit
    /// ([`crate::ffmpeg::Tools::max_pixels`]): ffmpeg refused to decode it.
    #[error("a picture is {width}x{height}, more than the {limit} pixels allowed")]
    PictureTooLarge {
        /// The picture's width.
        width: u32,
        /// The picture's height.
        height: u32,
        /// The limit, in pixels.
        limit: u64,
    },
    /// Talking to it failed.
    #[error("i/o with {program}: {source}")]
    Io {
        /// Which program.
        program: String,
        /// The error.
        source: io::Error,
    },
}

/// Counts for one program.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProgramStats {
    /// Processes started.
    pub started: u64,
    /// Runs that exited with an error.
    pub failed: u64,
    /// Runs killed for running too long.
    pub timed_out: u64,
}

static STATS: Mutex<BTreeMap<&'static str, ProgramStats>> = Mutex::new(BTreeMap::new());

fn count(label: &'static str, f: impl FnOnce(&mut ProgramStats)) {
    let mut m = STATS.lock().unwrap_or_else(|e| e.into_inner());
    f(m.entry(label).or_default());
}

/// Every program's counts so far, by label (`ffmpeg`, `ffprobe`, `browser`).
pub fn stats() -> Vec<(&'static str, ProgramStats)> {
    let m = STATS.lock().unwrap_or_else(|e| e.into_inner());
    m.iter().map(|(k, v)| (*k, *v)).collect()
}

/// Notes a run that failed (for programs whose exit the caller judges).
pub fn note_failure(label: &'static str) {
    count(label, |s| s.failed += 1);
}

/// A blocking command for `program`; start it with [`spawn`] so it is
/// counted, killed on drop and its stderr kept.
pub fn command(program: &Path) -> Command {
    Command::new(program)
}

/// An async command for `program` that is killed when dropped.
pub fn async_command(program: &Path) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(program);
    c.kill_on_drop(true);
    c
}

/// Why `program` did not start: not installed, or another IO error.
fn spawn_error(program: &str, e: io::Error) -> ProcessError {
    if e.kind() == io::ErrorKind::NotFound {
        ProcessError::NotFound {
            program: program.to_string(),
        }
    } else {
        ProcessError::Io {
            program: program.to_string(),
            source: e,
        }
    }
}

/// Starts `cmd` (made by [`command`]): the child is killed when the
/// returned handle drops, and its stderr (if piped) is kept in a tail.
pub fn spawn(label: &'static str, cmd: &mut Command) -> Result<Running, ProcessError> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut child = cmd.spawn().map_err(|e| spawn_error(&program, e))?;
    count(label, |s| s.started += 1);
    let tail = Arc::new(Mutex::new(Tail::default()));
    let drain = child.stderr.take().map(|e| drain(e, tail.clone()));
    Ok(Running {
        child: Some(child),
        label,
        program,
        tail,
        drain,
    })
}

/// Starts `cmd` (made by [`async_command`]): the child is counted,
/// killed when the returned handle drops, and its stderr (if piped) kept
/// in a tail, like [`spawn`]'s, for programs that run alongside the
/// server's tasks (the browser).
pub fn spawn_async(
    label: &'static str,
    cmd: &mut tokio::process::Command,
) -> Result<AsyncRunning, ProcessError> {
    let program = cmd.as_std().get_program().to_string_lossy().into_owned();
    let mut child = cmd.spawn().map_err(|e| spawn_error(&program, e))?;
    count(label, |s| s.started += 1);
    let tail = Arc::new(Mutex::new(Tail::default()));
    if let Some(mut err) = child.stderr.take() {
        let tail = tail.clone();
        tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                keep(&tail, &buf[..n]);
            }
        });
    }
    Ok(AsyncRunning {
        child,
        label,
        program,
        tail,
    })
}

/// An async child that is killed when dropped (the command's
/// `kill_on_drop`), with its stderr's tail.
pub struct AsyncRunning {
    child: tokio::process::Child,
    label: &'static str,
    program: String,
    tail: Arc<Mutex<Tail>>,
}

impl AsyncRunning {
    /// Its process id, while it runs.
    pub fn id(&self) -> Option<u32> {
        self.child.id()
    }

    /// The program's name as it was started.
    pub fn program(&self) -> &str {
        &self.program
    }

    /// The whole kept tail of stderr (the last 8 KiB).
    pub fn stderr_text(&self) -> String {
        tail_text(&self.tail)
    }

    /// Whether it has exited, with its status (a failure is counted).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        let status = self.child.try_wait().ok().flatten()?;
        if !status.success() {
            count(self.label, |s| s.failed += 1);
        }
        Some(status)
    }

    /// Its stdin (if piped), taken.
    pub fn take_stdin(&mut self) -> Option<tokio::process::ChildStdin> {
        self.child.stdin.take()
    }

    /// Waits for it to exit (a failure is counted).
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        let status = self.child.wait().await?;
        if !status.success() {
            count(self.label, |s| s.failed += 1);
        }
        Ok(status)
    }

    /// Kills it and waits up to `timeout` for it to be gone.
    pub async fn kill(&mut self, timeout: Duration) {
        let _ = self.child.start_kill();
        if tokio::time::timeout(timeout, self.child.wait())
            .await
            .is_err()
        {
            count(self.label, |s| s.timed_out += 1);
        }
    }
}

/// A running child that is killed when dropped.
pub struct Running {
    child: Option<Child>,
    label: &'static str,
    program: String,
    tail: Arc<Mutex<Tail>>,
    drain: Option<JoinHandle<()>>,
}

impl Running {
    /// The child, to take its pipes.
    pub fn child(&mut self) -> &mut Child {
        self.child
            .as_mut()
            .expect("the child runs until waited for")
    }

    /// The program's name as it was started.
    pub fn program(&self) -> &str {
        &self.program
    }

    /// The last meaningful lines of stderr so far.
    pub fn stderr_tail(&self) -> String {
        error_lines(&tail_text(&self.tail))
    }

    /// The whole kept tail of stderr (the last 8 KiB).
    pub fn stderr_text(&self) -> String {
        tail_text(&self.tail)
    }

    /// Waits up to `timeout` for the child to exit: its stderr is read to
    /// the end; a failure carries its tail, a timeout kills it.
    pub fn wait(&mut self, timeout: Duration) -> Result<(), ProcessError> {
        let status = self.wait_status(timeout)?;
        if !status.success() {
            count(self.label, |s| s.failed += 1);
            return Err(ProcessError::Failed {
                program: self.program.clone(),
                status: status.to_string(),
                stderr: self.stderr_tail(),
            });
        }
        Ok(())
    }

    /// Like [`Running::wait`], returning the exit status, whatever it is.
    pub fn wait_status(&mut self, timeout: Duration) -> Result<ExitStatus, ProcessError> {
        let child = self.child();
        let status = wait_timeout(child, timeout).map_err(|e| ProcessError::Io {
            program: self.program.clone(),
            source: e,
        })?;
        let Some(status) = status else {
            count(self.label, |s| s.timed_out += 1);
            return Err(ProcessError::Timeout {
                program: self.program.clone(),
                seconds: timeout.as_secs(),
            });
        };
        self.child = None;
        if let Some(d) = self.drain.take() {
            let _ = d.join();
        }
        Ok(status)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs `program` to completion under `timeout`: its stdout, or an error
/// carrying the end of its stderr.
pub fn run(
    label: &'static str,
    program: &Path,
    args: &[String],
    timeout: Duration,
) -> Result<Vec<u8>, ProcessError> {
    run_capture(label, program, args, timeout).0
}

/// Like [`run`], with the kept tail of stderr (its last 8 KiB) whether the
/// program succeeded or not: what it said beside its result.
pub fn run_capture(
    label: &'static str,
    program: &Path,
    args: &[String],
    timeout: Duration,
) -> (Result<Vec<u8>, ProcessError>, String) {
    let mut cmd = command(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut running = match spawn(label, &mut cmd) {
        Ok(r) => r,
        Err(e) => return (Err(e), String::new()),
    };
    let name = running.program.clone();
    let Some(mut stdout) = running.child().stdout.take() else {
        return (Err(io_err(&name, "no stdout")), String::new());
    };
    let out_thread = std::thread::spawn(move || {
        let mut v = vec![];
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let result = running.wait(timeout);
    let out = out_thread.join().unwrap_or_default();
    (result.map(|()| out), running.stderr_text())
}

/// An I/O error with a program.
pub fn io_err(program: &str, message: &str) -> ProcessError {
    ProcessError::Io {
        program: program.into(),
        source: io::Error::other(message.to_string()),
    }
}

/// Keeps the last few KiB of a stream.
#[derive(Default)]
struct Tail(VecDeque<u8>);

const TAIL_BYTES: usize = 8192;

fn drain(mut from: impl Read + Send + 'static, tail: Arc<Mutex<Tail>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            keep(&tail, &buf[..n]);
        }
    })
}

/// Appends `bytes` to the tail, keeping its last [`TAIL_BYTES`].
fn keep(tail: &Mutex<Tail>, bytes: &[u8]) {
    let mut t = tail.lock().unwrap_or_else(|e| e.into_inner());
    t.0.extend(bytes);
    let extra = t.0.len().saturating_sub(TAIL_BYTES);
    t.0.drain(..extra);
}

fn tail_text(tail: &Arc<Mutex<Tail>>) -> String {
    let t = tail.lock().unwrap_or_else(|e| e.into_inner());
    String::from_utf8_lossy(&t.0.iter().copied().collect::<Vec<_>>()).into_owned()
}

/// The last meaningful lines of stderr, for error messages: the lines that
/// say what went wrong when there are some (a full disk, a refused write),
/// not x264's closing statistics or ffmpeg's "Conversion failed!".
pub fn error_lines(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("bench:") && !l.trim().is_empty())
        .collect();
    let errors: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            (l.contains("error") || l.contains("denied") || l.contains("no space"))
                && !l.contains("conversion failed")
        })
        .collect();
    let pick = if errors.is_empty() { &lines } else { &errors };
    without_addresses(&pick[pick.len().saturating_sub(4)..].join(" | "))
}

/// `text` without the memory addresses ffmpeg puts in its log context
/// (`[matroska,webm @ 0x5651...]` becomes `[matroska,webm]`): they say
/// nothing to a user and tell an attacker where the heap is.
fn without_addresses(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(" @ 0x") {
        out.push_str(&rest[..at]);
        let after = &rest[at + " @ 0x".len()..];
        let hex = after
            .find(|c: char| !c.is_ascii_hexdigit())
            .unwrap_or(after.len());
        rest = &after[hex..];
    }
    out.push_str(rest);
    out
}

fn wait_timeout(child: &mut Child, timeout: Duration) -> io::Result<Option<ExitStatus>> {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait()? {
            return Ok(Some(s));
        }
        if start.elapsed() >= timeout {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn error_lines_carry_no_memory_address() {
        let stderr = "[matroska,webm @ 0x56516bd0b740] Duplicate element\n\
                      [IMGUTILS @ 0x7ffc29132330] Picture size error\n";
        assert_eq!(error_lines(stderr), "[IMGUTILS] Picture size error");
        let stderr = "[matroska,webm @ 0x56516bd0b740] Element at 0x67 exceeds\n\
                      work/x: End of file\n";
        assert_eq!(
            error_lines(stderr),
            "[matroska,webm] Element at 0x67 exceeds | work/x: End of file"
        );
    }

    use super::*;

    #[test]
    fn the_cause_comes_before_the_statistics() {
        let stderr = "Input #0, matroska\n\
            [out#0/mp4 @ 0x1] Error opening output /data/work/x/live.mp4: Permission denied\n\
            Error opening output file /data/work/x/live.mp4.\n\
            [libx264 @ 0x2] frame I:1 Avg QP:20.00 size: 1234\n\
            [libx264 @ 0x2] kb/s:123.45\n\
            Conversion failed!\n";
        let e = error_lines(stderr);
        assert!(e.contains("Permission denied"), "{e}");
        assert!(
            !e.contains("kb/s") && !e.contains("Conversion failed"),
            "{e}"
        );
        assert_eq!(error_lines("a\nb\n\nbench: utime=1s\nc\n"), "a | b | c");
    }

    #[test]
    fn runs_counts_and_keeps_stderr() {
        let out = run(
            "test-sh",
            Path::new("sh"),
            &["-c".into(), "echo out; echo oops >&2; exit 3".into()],
            Duration::from_secs(10),
        );
        match out {
            Err(ProcessError::Failed { stderr, .. }) => assert_eq!(stderr, "oops"),
            other => panic!("{other:?}"),
        }
        let ok = run(
            "test-sh",
            Path::new("sh"),
            &["-c".into(), "echo out".into()],
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(ok, b"out\n");
        let slow = run(
            "test-sh",
            Path::new("sh"),
            &["-c".into(), "sleep 5".into()],
            Duration::from_millis(100),
        );
        assert!(
            matches!(slow, Err(ProcessError::Timeout { .. })),
            "{slow:?}"
        );
        let s = stats()
            .into_iter()
            .find(|(l, _)| *l == "test-sh")
            .unwrap()
            .1;
        assert_eq!((s.started, s.failed, s.timed_out), (3, 1, 1));
        assert!(matches!(
            run(
                "test-none",
                Path::new("/nonexistent/x"),
                &[],
                Duration::from_secs(1)
            ),
            Err(ProcessError::NotFound { .. })
        ));
    }
}
