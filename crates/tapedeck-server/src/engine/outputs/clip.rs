//! Any time range of a recording as its own MP4, cut without re-encoding:
//! from the stored file once completed, from the HLS segments while it
//! records (only those the range needs, joined after their init segment:
//! one fragmented MP4). ffmpeg starts at the keyframe before the range and
//! writes an edit list, so playback begins exactly at `start`.

use std::path::{Path, PathBuf};

use tapedeck_core::output::OutputSpec;
use tapedeck_core::recording::Recording;
use tapedeck_core::{Code, Problem, Status};
use tapedeck_media::ffmpeg::{copy, live};

use crate::engine::services::Services;

/// The longest range one request may ask for, seconds.
pub const MAX_DURATION_S: f64 = 6.0 * 3600.0;

/// A range cut into a file of its own (removed when dropped).
pub struct Clip {
    /// The MP4.
    pub path: PathBuf,
}

impl Drop for Clip {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Checks a range: `start` at or after 0, `duration` at least 1 ms and at most
/// [`MAX_DURATION_S`].
pub fn check(start_s: f64, duration_s: f64) -> Result<(), Problem> {
    if !start_s.is_finite() || start_s < 0.0 {
        return Err(Problem::new(
            Code::InvalidQuery,
            "start: must be a number of seconds, 0 or more",
        ));
    }
    // At least a millisecond: anything shorter holds no picture.
    if !(0.001..=MAX_DURATION_S).contains(&duration_s) {
        return Err(Problem::new(
            Code::InvalidQuery,
            format!(
                "duration: must be a number of seconds, 0.001 or more, at most {MAX_DURATION_S}"
            ),
        ));
    }
    Ok(())
}

/// Cuts `duration_s` of `rec` from `start_s`.
pub async fn clip(
    services: &Services,
    rec: &Recording,
    start_s: f64,
    duration_s: f64,
) -> Result<Clip, Problem> {
    check(start_s, duration_s)?;
    let dir = services.config.server.data_dir.join("clips");
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| Problem::internal(format!("the clips folder: {e}")))?;
    let name = format!("{}-{:016x}", rec.id, rand::random::<u64>());
    let out = Clip {
        path: dir.join(format!("{name}.mp4")),
    };
    let (input, offset, joined) = match rec.status {
        Status::Completed => {
            let total = rec.duration_s.unwrap_or(0.0);
            if start_s >= total {
                return Err(past(start_s, total, "its end"));
            }
            let key = rec.media_key();
            let input = match services.blobs.local_path(&key) {
                Some(p) => p.display().to_string(),
                None => services
                    .blobs
                    .presign_get(&key, std::time::Duration::from_secs(3600))
                    .await?
                    .map(|u| u.to_string())
                    .ok_or_else(|| Problem::internal("the store gives no URL to read from"))?,
            };
            (input, start_s, None)
        }
        Status::Recording | Status::Paused | Status::Processing => {
            if !rec
                .outputs
                .iter()
                .any(|o| matches!(o.spec, OutputSpec::Hls { .. }))
            {
                return Err(Problem::new(
                    Code::NotReady,
                    "a range of a recording in progress is cut from its HLS segments; this one has no hls output (create it with \"outputs\": [{\"kind\": \"hls\"}])",
                ));
            }
            let hls = services.work_dir(rec.id).join(live::HLS_DIR);
            let src = Clip {
                path: dir.join(format!("{name}.src.mp4")),
            };
            let (dst, hls2) = (src.path.clone(), hls.clone());
            let first = tokio::task::spawn_blocking(move || {
                join_segments(&hls2, start_s, duration_s, &dst)
            })
            .await
            .map_err(|e| Problem::internal(e.to_string()))??;
            (src.path.display().to_string(), start_s - first, Some(src))
        }
        s => {
            return Err(Problem::new(
                Code::NotReady,
                format!("the recording is {}; it has no media", s.as_str()),
            ));
        }
    };
    let (tools, path) = (services.tools.clone(), out.path.clone());
    tokio::task::spawn_blocking(move || copy::clip(&tools, &input, offset, duration_s, &path))
        .await
        .map_err(|e| Problem::internal(e.to_string()))?
        .map_err(|e| Problem::internal(format!("cutting the range failed: {e}")))?;
    drop(joined);
    Ok(out)
}

fn past(start_s: f64, total: f64, what: &str) -> Problem {
    // To the millisecond; a huge one in exponent form (1e308 has 309 digits).
    let start = if start_s < 1e9 {
        format!("{start_s:.3}")
    } else {
        format!("{start_s:e}")
    };
    Problem::new(
        Code::RangeNotSatisfiable,
        format!("start: {start} s is past {what} ({total:.3} s)"),
    )
}

/// Joins the init segment and the segments of `hls` that hold
/// `[start_s, start_s + duration_s)` into `out`; the time the first of
/// them starts at.
fn join_segments(hls: &Path, start_s: f64, duration_s: f64, out: &Path) -> Result<f64, Problem> {
    let text = std::fs::read_to_string(hls.join(live::PLAYLIST))
        .map_err(|_| Problem::new(Code::NotReady, "the recording has no HLS segment yet"))?;
    let mut at = 0.0;
    let mut first = None;
    let mut chosen = vec![];
    let mut length = None;
    for line in text.lines() {
        if let Some(d) = line.strip_prefix("#EXTINF:") {
            length = d
                .trim_end_matches(',')
                .split(',')
                .next()
                .and_then(|d| d.parse::<f64>().ok());
        } else if !line.is_empty() && !line.starts_with('#') {
            let d = length.take().unwrap_or(0.0);
            if at + d > start_s && at < start_s + duration_s && live::is_hls_name(line) {
                first.get_or_insert(at);
                chosen.push(line.to_string());
            }
            at += d;
        }
    }
    let Some(first) = first else {
        return Err(past(start_s, at, "the live edge"));
    };
    let io = |e: std::io::Error| Problem::internal(format!("joining segments: {e}"));
    let mut w = std::io::BufWriter::new(std::fs::File::create(out).map_err(io)?);
    for name in std::iter::once(live::INIT.to_string()).chain(chosen) {
        let mut f = std::fs::File::open(hls.join(&name)).map_err(io)?;
        std::io::copy(&mut f, &mut w).map_err(io)?;
    }
    std::io::Write::flush(&mut w).map_err(io)?;
    Ok(first)
}
