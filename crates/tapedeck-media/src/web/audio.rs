//! The page's sound: the browser's tab recording, started with the video
//! and saved beside it for the encoder to lay under the frames.

use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

use super::options::WebError;
use super::session::Session;

/// How long the tab recording runs on after the last frame.
const AUDIO_TAIL: Duration = Duration::from_millis(250);

/// Starts the browser's tab recording for its audio; the returned instant is
/// the best estimate of the audio's time zero; an error where the browser has
/// no such recording (the video goes on without sound, and says why).
pub(super) async fn start_audio(s: &Session) -> Result<Instant, WebError> {
    let before = Instant::now();
    // The video track of this recording is thrown away: keep it tiny.
    let r = s
        .call(
            "Page.startScreenRecording",
            json!({"audio": true, "maxWidth": 32, "maxHeight": 32, "frameRate": 1}),
        )
        .await;
    let after = Instant::now();
    match r {
        Ok(_) => Ok(before + (after - before) / 2),
        Err(e) => {
            tracing::warn!(error = %e, "this browser cannot record the page's audio");
            Err(WebError::Browser(format!(
                "this browser cannot record the page's audio: {e}"
            )))
        }
    }
}

/// Stops the tab recording and writes it (MP4 with Opus audio) to `path`.
pub(super) async fn save_audio(s: &mut Session, path: &std::path::Path) -> Result<(), WebError> {
    use tokio::io::AsyncWriteExt;
    // Sound reaches the recording after the browser's output latency (about
    // 40-130 ms on its silent output): let the end of the video's audio arrive.
    // Frames keep coming meanwhile, as they do for the recording's video track.
    let until = Instant::now() + AUDIO_TAIL;
    while Instant::now() < until {
        s.begin_frame(None).await?;
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let r = s
        .call_browser("Page.stopScreenRecording", json!({}))
        .await?;
    let handle = r
        .get("stream")
        .and_then(Value::as_str)
        .ok_or_else(|| WebError::Browser("the screen recording gave no stream".into()))?
        .to_string();
    let io =
        |e: std::io::Error| WebError::Browser(format!("could not write the page's audio: {e}"));
    let mut file = tokio::fs::File::create(path).await.map_err(io)?;
    loop {
        let chunk = s
            .call_browser("IO.read", json!({"handle": handle, "size": 1 << 20}))
            .await?;
        let data = chunk.get("data").and_then(Value::as_str).unwrap_or("");
        let bytes = if chunk.get("base64Encoded").and_then(Value::as_bool) == Some(true) {
            base64::engine::general_purpose::STANDARD
                .decode(data)
                .map_err(|e| WebError::Browser(format!("bad audio chunk: {e}")))?
        } else {
            data.as_bytes().to_vec()
        };
        file.write_all(&bytes).await.map_err(io)?;
        if chunk.get("eof").and_then(Value::as_bool) != Some(false) {
            break;
        }
    }
    file.flush().await.map_err(io)?;
    let _ = s.call_browser("IO.close", json!({"handle": handle})).await;
    Ok(())
}
