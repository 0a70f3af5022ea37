//! The page's sound: the browser's tab recording, started with the video,
//! read into a file beside it as it grows (the encoder lays it under the
//! frames after stop) and handed as it comes to the live outputs, which
//! lay it under their pictures while the page records
//! (`ffmpeg::live_sound`).

use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

use super::cdp::Cdp;
use super::options::WebError;
use super::session::{CMD, Session};
use crate::ffmpeg::live_sound::{SoundHandle, SoundNews};

/// How long the tab recording runs on after the last frame.
const AUDIO_TAIL: Duration = Duration::from_millis(250);

/// How often the growing tab recording is read while it records (the
/// browser adds a fragment every few seconds).
const READ_EVERY: Duration = Duration::from_millis(250);

/// The tab recording, read into the audio file as it grows (and handed to
/// the live outputs) until [`save_audio`].
pub(super) struct Recording {
    /// The best estimate of the audio's time zero.
    pub(super) began: Instant,
    stop: tokio::sync::oneshot::Sender<()>,
    reader: tokio::task::JoinHandle<Result<Read, WebError>>,
    live: Option<SoundHandle>,
}

/// What the reader read while recording.
struct Read {
    file: tokio::fs::File,
    handle: String,
    bytes: u64,
}

impl Recording {
    /// Tells the live outputs (if any) about the recording's time.
    pub(super) fn tell(&self, news: impl FnOnce(&Self) -> SoundNews) {
        if let Some(l) = &self.live {
            l.send(news(self));
        }
    }

    /// Seconds of the tab recording at `t`.
    pub(super) fn at(&self, t: Instant) -> f64 {
        t.saturating_duration_since(self.began).as_secs_f64()
    }
}

fn io(e: std::io::Error) -> WebError {
    WebError::Browser(format!("could not write the page's audio: {e}"))
}

/// Starts the browser's tab recording for its audio, read into `path` as
/// it grows; an error where the browser has no such recording (the video
/// goes on without sound, and says why).
pub(super) async fn start_audio(
    s: &Session,
    path: &std::path::Path,
    live: Option<SoundHandle>,
) -> Result<Recording, WebError> {
    let before = Instant::now();
    // The video track of this recording is thrown away: keep it tiny.
    let r = s
        .call(
            "Page.startScreenRecording",
            json!({"audio": true, "maxWidth": 32, "maxHeight": 32, "frameRate": 1}),
        )
        .await;
    let after = Instant::now();
    let r = match r {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "this browser cannot record the page's audio");
            return Err(WebError::Browser(format!(
                "this browser cannot record the page's audio: {e}"
            )));
        }
    };
    let handle = r
        .get("stream")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let file = tokio::fs::File::create(path).await.map_err(io)?;
    let (stop, mut stopped) = tokio::sync::oneshot::channel();
    let (cdp, sid, to) = (s.cdp.clone(), s.sid.clone(), live.clone());
    let reader = tokio::spawn(async move {
        let mut read = Read {
            file,
            handle,
            bytes: 0,
        };
        // Chromium 156 writes a fragment every 2-4 s (frameRate 1); before
        // the first, a read fails ("Read failed"): nothing to take yet.
        while !read.handle.is_empty() {
            tokio::select! {
                _ = &mut stopped => break,
                _ = tokio::time::sleep(READ_EVERY) => {}
            }
            let Ok((bytes, _)) = read_chunk(&cdp, &sid, &read.handle).await else {
                continue;
            };
            keep(&mut read, bytes, to.as_ref()).await?;
        }
        Ok(read)
    });
    Ok(Recording {
        began: before + (after - before) / 2,
        stop,
        reader,
        live,
    })
}

/// Reads up to a MiB of the tab recording: its bytes and whether it ended.
async fn read_chunk(cdp: &Cdp, sid: &str, handle: &str) -> Result<(Vec<u8>, bool), WebError> {
    let chunk = cdp
        .call(
            Some(sid),
            "IO.read",
            json!({"handle": handle, "size": 1 << 20}),
            CMD,
        )
        .await?;
    let data = chunk.get("data").and_then(Value::as_str).unwrap_or("");
    let bytes = if chunk.get("base64Encoded").and_then(Value::as_bool) == Some(true) {
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|e| WebError::Browser(format!("bad audio chunk: {e}")))?
    } else {
        data.as_bytes().to_vec()
    };
    Ok((
        bytes,
        chunk.get("eof").and_then(Value::as_bool) != Some(false),
    ))
}

/// Appends `bytes` to the file and hands them to the live outputs.
async fn keep(read: &mut Read, bytes: Vec<u8>, live: Option<&SoundHandle>) -> Result<(), WebError> {
    use tokio::io::AsyncWriteExt;
    if bytes.is_empty() {
        return Ok(());
    }
    read.file.write_all(&bytes).await.map_err(io)?;
    read.bytes += bytes.len() as u64;
    if let Some(l) = live {
        l.send(SoundNews::Bytes(bytes));
    }
    Ok(())
}

/// Stops the tab recording and writes the rest of it (MP4 with Opus
/// audio) to its file; the live outputs are told it ended.
pub(super) async fn save_audio(s: &mut Session, rec: Recording) -> Result<(), WebError> {
    let r = finish_audio(s, rec.stop, rec.reader, rec.live.as_ref()).await;
    if let Some(l) = &rec.live {
        l.close();
    }
    r
}

async fn finish_audio(
    s: &mut Session,
    stop: tokio::sync::oneshot::Sender<()>,
    reader: tokio::task::JoinHandle<Result<Read, WebError>>,
    live: Option<&SoundHandle>,
) -> Result<(), WebError> {
    use tokio::io::{AsyncSeekExt, AsyncWriteExt};
    // Sound reaches the recording after the browser's output latency (about
    // 40-130 ms on its silent output): let the end of the video's audio arrive.
    // Frames keep coming meanwhile, as they do for the recording's video track.
    let until = Instant::now() + AUDIO_TAIL;
    while Instant::now() < until {
        s.begin_frame(None).await?;
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let _ = stop.send(());
    let mut read = reader
        .await
        .map_err(|e| WebError::Browser(format!("the audio reader failed: {e}")))??;
    let r = s
        .call_browser("Page.stopScreenRecording", json!({}))
        .await?;
    let handle = r
        .get("stream")
        .and_then(Value::as_str)
        .ok_or_else(|| WebError::Browser("the screen recording gave no stream".into()))?
        .to_string();
    let mut live = live;
    if handle != read.handle && read.bytes > 0 {
        // Another stream than the one read so far: it is read whole.
        read.file.set_len(0).await.map_err(io)?;
        read.file.rewind().await.map_err(io)?;
        live = None;
    }
    loop {
        let (bytes, eof) = read_chunk(&s.cdp, &s.sid, &handle).await?;
        keep(&mut read, bytes, live).await?;
        if eof {
            break;
        }
    }
    read.file.flush().await.map_err(io)?;
    let _ = s.call_browser("IO.close", json!({"handle": handle})).await;
    Ok(())
}
