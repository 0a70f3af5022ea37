//! A room recording's grid, composed after stop (the layout and ffmpeg's
//! arguments are `tapedeck_media::ffmpeg::grid`'s); its progress shows on
//! the recording (`stats.progress`).
//!
//! In a cluster the composing is a job in the shared queue
//! ([`compose_anywhere`]): the track files go to the bucket, and the node
//! whose free budget fits the job's cost ([`run_job`], possibly this one)
//! fetches them, composes the grid and puts it in the bucket, where the
//! room's node takes it back to finish the recording as usual.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tapedeck_core::recording::{Recording, TrackFile};
use tapedeck_core::track::TrackKind;
use tapedeck_core::{Code, Failure};
use tapedeck_media::ffmpeg::EncodeSpec;
use tapedeck_store::jobs::Job;
use tokio::io::AsyncWriteExt;

use crate::engine::services::Services;
use crate::engine::source::Meter;

/// What the grid is encoded as: the recording's encoder settings (MP4 and
/// MKV are H.264/AAC, WebM is VP9/Opus) and its sound's bitrate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GridSpec {
    /// Size, rate, format and quality.
    pub spec: EncodeSpec,
    /// Audio bitrate, kbit/s.
    pub audio_kbps: u32,
}

/// Composes the grid of `tracks` into `work/grid/media.{ext}`; the file.
pub async fn compose(
    services: &Arc<Services>,
    grid: &GridSpec,
    tracks: &[(TrackFile, PathBuf)],
    work: &Path,
    meter: &Arc<Meter>,
) -> Result<PathBuf, Failure> {
    let files: Vec<TrackFile> = tracks.iter().map(|(t, _)| t.clone()).collect();
    let paths: Vec<PathBuf> = tracks.iter().map(|(_, p)| p.clone()).collect();
    let (tools, grid, dir, meter) = (
        services.tools.clone(),
        grid.clone(),
        work.join("grid"),
        meter.clone(),
    );
    tokio::task::spawn_blocking(move || {
        tapedeck_media::ffmpeg::grid::compose(
            &tools,
            &grid.spec,
            grid.audio_kbps,
            &files,
            &paths,
            &dir,
            |p| meter.set_progress(Some(p)),
        )
    })
    .await
    .map_err(|e| Failure::internal(e.to_string()))?
    .map_err(|e| Failure::new(Code::GridFailed, format!("composing the grid failed: {e}")))
}

/// The job kind.
pub const JOB: &str = "grid";

/// The job's id for recording `rec`.
fn job_id(rec: &Recording) -> String {
    format!("grid-{}", rec.id)
}

/// Where the composed grid waits in the bucket for the room's node.
fn part_key(rec: &Recording, ext: &str) -> String {
    format!("recordings/{}/grid-part.{ext}", rec.id)
}

/// [`compose`] here on a server alone; in a cluster, on whichever node's
/// free budget fits it (see the module's doc). The grid file, in
/// `work/grid/`.
pub async fn compose_anywhere(
    services: &Arc<Services>,
    rec: &Recording,
    grid: &GridSpec,
    tracks: &[(TrackFile, PathBuf)],
    work: &Path,
    meter: &Arc<Meter>,
) -> Result<PathBuf, Failure> {
    if !services.config.cluster.enabled {
        return compose(services, grid, tracks, work, meter).await;
    }
    let store_err = |e: tapedeck_store::blob::BlobError| {
        Failure::new(Code::StorageError, format!("the grid's tracks: {e}"))
    };
    for (t, path) in tracks {
        services
            .blobs
            .put_file(&rec.track_key(t), path)
            .await
            .map_err(store_err)?;
    }
    let files: Vec<TrackFile> = tracks.iter().map(|(t, _)| t.clone()).collect();
    let videos = files.iter().filter(|t| t.kind == TrackKind::Video).count();
    let job = Job {
        id: job_id(rec),
        seq: rec.created_at,
        owner: rec.owner.clone(),
        kind: JOB.into(),
        cost: i64::from(tapedeck_core::admission::estimate_grid(&rec.video, videos)),
        doc: serde_json::to_string(&files).map_err(|e| Failure::internal(e.to_string()))?,
    };
    let db = |e: tapedeck_store::repo::RepoError| Failure::internal(format!("the grid's job: {e}"));
    services.repo.enqueue(&job).await.map_err(db)?;
    crate::engine::dispatch::wake_all(services).await;
    tracing::info!(id = %rec.id, cost = job.cost, "grid queued for the cluster");
    // Until a node has done it (the job gone) or failed it.
    loop {
        match services.repo.job_state(&job.id).await.map_err(db)? {
            None => break,
            Some((state, why)) if state == "failed" => {
                let _ = services.repo.finish_job(&job.id).await;
                return Err(Failure::new(Code::GridFailed, why));
            }
            Some(_) => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
    let ext = grid.spec.format.extension();
    let out = work.join("grid").join(format!("media.{ext}"));
    fetch(services, &part_key(rec, ext), &out)
        .await
        .map_err(|e| Failure::new(Code::GridFailed, format!("fetching the grid: {e}")))?;
    let _ = services.blobs.delete(&part_key(rec, ext)).await;
    Ok(out)
}

/// Runs a claimed grid job here: the tracks fetched from the bucket, the
/// grid composed and put back. Errors say why, for the room's node.
pub async fn run_job(services: &Arc<Services>, job: &Job) -> Result<(), String> {
    let id = job
        .id
        .strip_prefix("grid-")
        .and_then(|i| i.parse().ok())
        .ok_or("not a grid job")?;
    let rec = services
        .repo
        .get(id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("its recording is gone")?;
    let files: Vec<TrackFile> = serde_json::from_str(&job.doc).map_err(|e| e.to_string())?;
    let work = services.work_dir(rec.id).join("grid-job");
    let _ = tokio::fs::remove_dir_all(&work).await;
    tokio::fs::create_dir_all(&work)
        .await
        .map_err(|e| e.to_string())?;
    let mut tracks = vec![];
    for t in files {
        let path = work.join(format!("{}.{}", t.id, t.container));
        fetch(services, &rec.track_key(&t), &path).await?;
        tracks.push((t, path));
    }
    let grid = GridSpec {
        spec: super::super::encoding::encode_spec(services, &rec),
        audio_kbps: rec.video.audio_bitrate_kbps,
    };
    let meter = Arc::new(Meter::default());
    let made = compose(services, &grid, &tracks, &work, &meter)
        .await
        .map_err(|f| f.message)?;
    let ext = grid.spec.format.extension();
    let put = services.blobs.put_file(&part_key(&rec, ext), &made).await;
    let _ = tokio::fs::remove_dir_all(&work).await;
    put.map(|_| ())
        .map_err(|e| format!("storing the grid: {e}"))
}

/// Object `key` into the file `to`.
async fn fetch(services: &Services, key: &str, to: &Path) -> Result<(), String> {
    if let Some(dir) = to.parent() {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| e.to_string())?;
    }
    let mut d = services
        .blobs
        .get(key, None)
        .await
        .map_err(|e| e.to_string())?;
    let mut f = tokio::fs::File::create(to)
        .await
        .map_err(|e| e.to_string())?;
    while let Some(chunk) = d.stream.next().await {
        f.write_all(&chunk.map_err(|e| e.to_string())?)
            .await
            .map_err(|e| e.to_string())?;
    }
    f.flush().await.map_err(|e| e.to_string())
}
