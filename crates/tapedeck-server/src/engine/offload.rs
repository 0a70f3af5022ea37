//! Post-processing a node hands to its cluster: a job in the shared queue
//! (`store::jobs`) with its estimated cost, run by whichever node's free
//! budget fits it (`dispatch` claims it, [`run_claimed`] runs it), the
//! node that asked waiting meanwhile ([`run_anywhere`]). The files the
//! work reads go through the bucket, and so does the file it makes. On a
//! server alone nothing is handed over: the caller runs the work itself.
//!
//! Kinds: `grid` (a call's grid after stop, `source::room::grid`),
//! `transcode` (an upload transcoded as its metadata asked,
//! `source::upload`) and `encode` (a deferred camera's spool,
//! `source::frames`). A kind may send back a report beside its file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tapedeck_core::admission::MilliCores;
use tapedeck_core::recording::Recording;
use tapedeck_store::jobs::Job;
use tokio::io::AsyncWriteExt;

use crate::engine::services::Services;

/// One file the work reads.
#[derive(Debug, Clone)]
pub struct Input {
    /// Its object in the bucket (built from the recording's id).
    pub key: String,
    /// Where it is on this node.
    pub local: PathBuf,
    /// Removed from the bucket once the work is done (a track file stays:
    /// it is the recording's own).
    pub temporary: bool,
}

/// Work to hand over.
#[derive(Debug)]
pub struct Work<'a> {
    /// `grid` or `transcode`.
    pub kind: &'static str,
    /// The recording it is for.
    pub rec: &'a Recording,
    /// Its estimated cost.
    pub cost: MilliCores,
    /// The files it reads.
    pub inputs: Vec<Input>,
    /// What else it needs, as its kind reads it.
    pub doc: serde_json::Value,
    /// The extension of the file it makes.
    pub ext: &'static str,
}

/// What the job carries.
#[derive(Debug, Serialize, Deserialize)]
struct JobDoc {
    /// Each input's key and file name.
    inputs: Vec<(String, String)>,
    doc: serde_json::Value,
    /// Where the result goes.
    out: String,
    ext: String,
}

fn job_id(kind: &str, rec: &Recording) -> String {
    format!("{kind}-{}", rec.id)
}

/// Runs `w` on whichever node has room, waiting until it is done; the
/// file it made lands at `out`, and its report, if its kind makes one,
/// is returned. Errors say why (the kind's own words when the node that
/// ran it failed).
pub async fn run_anywhere(
    services: &Services,
    w: Work<'_>,
    out: &Path,
) -> Result<Option<serde_json::Value>, String> {
    for i in &w.inputs {
        services
            .blobs
            .put_file(&i.key, &i.local)
            .await
            .map_err(|e| format!("storing its input: {e}"))?;
    }
    let out_key = format!("recordings/{}/{}-out.{}", w.rec.id, w.kind, w.ext);
    let names = w
        .inputs
        .iter()
        .map(|i| {
            let name = i
                .local
                .file_name()
                .map_or("input".into(), |n| n.to_string_lossy().into_owned());
            (i.key.clone(), name)
        })
        .collect();
    let doc = JobDoc {
        inputs: names,
        doc: w.doc,
        out: out_key.clone(),
        ext: w.ext.into(),
    };
    let job = Job {
        id: job_id(w.kind, w.rec),
        seq: w.rec.created_at,
        owner: w.rec.owner.clone(),
        kind: w.kind.into(),
        cost: i64::from(w.cost),
        doc: serde_json::to_string(&doc).map_err(|e| e.to_string())?,
    };
    let db = |e: tapedeck_store::repo::RepoError| format!("the cluster's queue: {e}");
    services.repo.enqueue(&job).await.map_err(db)?;
    crate::engine::dispatch::wake_all(services).await;
    tracing::info!(id = %w.rec.id, kind = w.kind, cost = w.cost, "handed to the cluster");
    let done = loop {
        match services.repo.job_state(&job.id).await.map_err(db)? {
            None => break Ok(()),
            Some((state, why)) if state == "failed" => {
                let _ = services.repo.finish_job(&job.id).await;
                break Err(why);
            }
            Some(_) => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    };
    let fetched = match done {
        Ok(()) => match fetch(services, &out_key, out).await {
            Ok(()) => Ok(report(services, &out_key).await),
            Err(why) => Err(why),
        },
        Err(why) => Err(why),
    };
    let _ = services.blobs.delete(&out_key).await;
    let _ = services.blobs.delete(&report_key(&out_key)).await;
    for i in w.inputs.iter().filter(|i| i.temporary) {
        let _ = services.blobs.delete(&i.key).await;
    }
    fetched
}

/// Runs a claimed job here: its inputs fetched into a folder of its own,
/// the kind's work done, the result put in the bucket. Errors say why,
/// for the node that waits.
pub async fn run_claimed(services: &std::sync::Arc<Services>, job: &Job) -> Result<(), String> {
    let id = job
        .id
        .strip_prefix(&format!("{}-", job.kind))
        .and_then(|i| i.parse().ok())
        .ok_or("the job names no recording")?;
    let rec = services
        .repo
        .get(id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("its recording is gone")?;
    let doc: JobDoc = serde_json::from_str(&job.doc).map_err(|e| e.to_string())?;
    let dir = services.work_dir(rec.id).join(format!("{}-job", job.kind));
    let _ = tokio::fs::remove_dir_all(&dir).await;
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| e.to_string())?;
    let result = async {
        let mut inputs = vec![];
        for (key, name) in &doc.inputs {
            // A name from the job is a file name only: no folder in it.
            let name = Path::new(name).file_name().ok_or("an input has no name")?;
            let path = dir.join(name);
            fetch(services, key, &path).await?;
            inputs.push(path);
        }
        let (made, made_report) = match job.kind.as_str() {
            "grid" => (
                crate::engine::source::room::grid::run_claimed(
                    services, &rec, &inputs, &doc.doc, &dir,
                )
                .await?,
                None,
            ),
            "transcode" => (
                crate::engine::source::upload::transcode_claimed(services, &rec, &inputs, &dir)
                    .await?,
                None,
            ),
            "encode" => {
                let (file, r) =
                    crate::engine::source::encoding::encode_claimed(services, &rec, &dir).await?;
                (file, Some(r))
            }
            other => return Err(format!("no such kind of job: {other}")),
        };
        if let Some(r) = made_report {
            services
                .blobs
                .put_bytes(&report_key(&doc.out), r.to_string().into_bytes())
                .await
                .map_err(|e| format!("storing the report: {e}"))?;
        }
        services
            .blobs
            .put_file(&doc.out, &made)
            .await
            .map(|_| ())
            .map_err(|e| format!("storing the result: {e}"))
    }
    .await;
    let _ = tokio::fs::remove_dir_all(&dir).await;
    result
}

/// Where the report of the job whose file goes to `out_key` is kept.
fn report_key(out_key: &str) -> String {
    format!("{out_key}.report.json")
}

/// The report beside the file at `out_key`, if its kind made one.
async fn report(services: &Services, out_key: &str) -> Option<serde_json::Value> {
    let bytes = services
        .blobs
        .get_bytes(&report_key(out_key))
        .await
        .ok()??;
    serde_json::from_slice(&bytes).ok()
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
        .map_err(|e| format!("fetching {key}: {e}"))?;
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
