//! An upload transcoded as its metadata asked (`format`/`preset`): here on
//! a server alone, on whichever node has room in a cluster
//! (`engine::offload`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use tapedeck_core::recording::{Recording, SourceSpec};
use tapedeck_core::{Code, Failure};
use tapedeck_media::ffmpeg::{self, EncodeSpec};

use crate::engine::services::Services;

/// [`transcode`] here on a server alone; in a cluster, on whichever node's
/// free budget fits it (`engine::offload`), the file going through the
/// bucket both ways.
pub(super) async fn anywhere(
    services: &Services,
    rec: &Recording,
    input: &Path,
    work: &Path,
    spec: &EncodeSpec,
) -> Result<PathBuf, Failure> {
    if !services.config.cluster.enabled {
        return transcode(services, input, work, spec).await;
    }
    let in_ext = input
        .extension()
        .and_then(|e| e.to_str())
        .filter(|e| e.chars().all(|c| c.is_ascii_alphanumeric()))
        .unwrap_or("bin");
    let out = work.join(format!("transcoded.{}", spec.format.extension()));
    let w = crate::engine::offload::Work {
        kind: "transcode",
        rec,
        // A whole file encoded at the recording's size and rate, as fast
        // as it goes: like a camera at the output's rate.
        cost: tapedeck_core::admission::estimate(
            &SourceSpec::Frames { input_fps: None },
            &rec.video,
        ),
        inputs: vec![crate::engine::offload::Input {
            key: format!("recordings/{}/transcode-in.{in_ext}", rec.id),
            local: input.to_path_buf(),
            temporary: true,
        }],
        doc: serde_json::Value::Null,
        ext: spec.format.extension(),
    };
    crate::engine::offload::run_anywhere(services, w, &out)
        .await
        .map_err(|why| Failure::new(Code::EncoderFailed, format!("the transcode failed: {why}")))?;
    Ok(out)
}

/// A claimed transcode job: `inputs[0]` transcoded as `rec` asks, in
/// `dir`; the file.
pub(crate) async fn claimed(
    services: &Services,
    rec: &Recording,
    inputs: &[PathBuf],
    dir: &Path,
) -> Result<PathBuf, String> {
    let spec = super::encode_of(services, rec).ok_or("the recording asks for no transcode")?;
    let input = inputs.first().ok_or("no file to transcode")?;
    transcode(services, input, dir, &spec)
        .await
        .map_err(|f| f.message)
}

/// Transcodes `input` to `spec` (its format, size, rate and quality).
async fn transcode(
    services: &Services,
    input: &Path,
    work: &Path,
    spec: &EncodeSpec,
) -> Result<PathBuf, Failure> {
    let out = work.join(format!("transcoded.{}", spec.format.extension()));
    let args = ffmpeg::transcode_args(spec, input, &out);
    let tools = services.tools.clone();
    tokio::task::spawn_blocking(move || {
        ffmpeg::run_limited(&tools, &tools.ffmpeg, &args, Duration::from_secs(6 * 3600))
    })
    .await
    .map_err(|e| Failure::internal(e.to_string()))?
    .map_err(|e| match e {
        e @ ffmpeg::FfmpegError::PictureTooLarge { .. } => {
            super::media_failure(services, e, "transcode")
        }
        e => Failure::new(Code::EncoderFailed, format!("the transcode failed: {e}")),
    })?;
    Ok(out)
}
