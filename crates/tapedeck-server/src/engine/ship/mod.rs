//! Shipping live media (`cluster.ship_live`): while a recording records,
//! what its work folder would be rebuilt from after a crash (the frames
//! spool, a call's track files and their manifest, an upload's part file)
//! goes to the store every `cluster.segment_s`, so that when its node dies
//! another node rebuilds the folder from the store ([`restore`]) and
//! finishes the recording (`engine::takeover`).
//!
//! Under `live/ID/` in the store: `pack-NNNNNNNN`, each holding the bytes
//! appended to those files since the pack before (and whole copies of the
//! small files that are rewritten rather than appended to), and
//! `manifest.json`, written after each pack: how many packs count and how
//! far each file is shipped. A pack whose manifest was not written does
//! not count; it is written again under the same name. The files shipped
//! are only appended to while the recording is live, so a pack is a byte
//! range of each; shipping ends before the source closes them (finishing
//! a file rewrites its header). An upload's chunk is shipped before it is
//! acknowledged ([`Shipping::now`]).
//!
//! Own format, as the spool's ([`pack`]): byte ranges of growing files
//! with a commit point a reader can trust is not what any sync crate does
//! (they copy whole files, or need a server of their own).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tapedeck_core::RecordingId;
use tapedeck_core::recording::{Recording, SourceKind};
use tokio::sync::{mpsc, oneshot};

use crate::engine::services::Services;

mod pack;
use pack::{apply, collect, encode, rules, safe_rel};

/// How long a chunk's shipping is tried before its PATCH is refused.
const NOW_FOR: Duration = Duration::from_secs(30);
/// How long the last round before a source closes is tried.
const FINISH_FOR: Duration = Duration::from_secs(10);

/// What the store holds of a recording's live media.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Packs that count: `pack-00000000` up to this one, not included.
    pub packs: u64,
    /// How many bytes of each file are shipped (a whole file: its length).
    pub files: BTreeMap<String, u64>,
    /// Bytes shipped in all.
    pub bytes: u64,
    /// When the last pack was written (ms since the epoch).
    pub updated_ms: i64,
}

fn prefix(id: RecordingId) -> String {
    format!("live/{id}/")
}

fn manifest_key(id: RecordingId) -> String {
    format!("live/{id}/manifest.json")
}

fn pack_key(id: RecordingId, seq: u64) -> String {
    format!("live/{id}/pack-{seq:08}")
}

/// Why [`restore`] did not rebuild a work folder.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The store could not be read now (away, refusing): try again later;
    /// what it holds is still there.
    #[error("the store cannot be read now: {0}")]
    Store(String),
    /// What was shipped is damaged, or this node's disk failed: finish
    /// with what the work folder has.
    #[error("{0}")]
    Damaged(String),
}

/// Rebuilds `id`'s work folder from what was shipped; `None` when nothing
/// was. A file already in `work` longer than what was shipped is kept as
/// it is (this node wrote it); one shorter gets what the store has.
pub async fn restore(
    services: &Services,
    id: RecordingId,
) -> Result<Option<Manifest>, RestoreError> {
    let blobs = &services.blobs;
    let store = |e: tapedeck_store::blob::BlobError| RestoreError::Store(e.to_string());
    let damaged = |e: String| RestoreError::Damaged(e);
    let Some(m) = blobs.get_bytes(&manifest_key(id)).await.map_err(store)? else {
        return Ok(None);
    };
    let m: Manifest =
        serde_json::from_slice(&m).map_err(|e| damaged(format!("the manifest: {e}")))?;
    let work = services.work_dir(id);
    let fresh = work.join("shipped.tmp");
    let _ = tokio::fs::remove_dir_all(&fresh).await;
    tokio::fs::create_dir_all(&fresh)
        .await
        .map_err(|e| damaged(e.to_string()))?;
    for seq in 0..m.packs {
        let key = pack_key(id, seq);
        let pack = blobs
            .get_bytes(&key)
            .await
            .map_err(store)?
            .ok_or_else(|| damaged(format!("{key} is missing")))?;
        let dir = fresh.clone();
        tokio::task::spawn_blocking(move || apply(&dir, &pack))
            .await
            .map_err(|e| damaged(e.to_string()))?
            .map_err(damaged)?;
    }
    let (w, f, files) = (work.clone(), fresh.clone(), m.files.clone());
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        for path in files.keys() {
            let Some(rel) = safe_rel(path) else { continue };
            let (from, to) = (f.join(&rel), w.join(&rel));
            let have = std::fs::metadata(&to).map_or(0, |m| m.len());
            let got = std::fs::metadata(&from).map_or(0, |m| m.len());
            if got > have || path.ends_with(".json") {
                if let Some(d) = to.parent() {
                    std::fs::create_dir_all(d)?;
                }
                std::fs::rename(&from, &to)?;
            }
        }
        std::fs::remove_dir_all(&f)
    })
    .await
    .map_err(|e| damaged(e.to_string()))?
    .map_err(|e| damaged(e.to_string()))?;
    Ok(Some(m))
}

/// Removes what was shipped of `id` (it ended; the store has its file).
pub async fn forget(services: &Services, id: RecordingId) {
    let keys = match services.blobs.list(&prefix(id)).await {
        Ok(k) => k,
        Err(e) => {
            tracing::warn!(%id, error = %e, "listing shipped media to remove");
            return;
        }
    };
    for k in keys {
        if let Err(e) = services.blobs.delete(&k).await {
            tracing::warn!(key = %k, error = %e, "removing shipped media");
        }
    }
}

enum Ask {
    /// Ship what is there now; the reply says whether it is in the store.
    Now(oneshot::Sender<Result<(), String>>),
    /// Ship the rest and stop.
    Finish(oneshot::Sender<()>),
}

/// The recordings being shipped on this node.
#[derive(Debug, Default)]
pub struct Shipping {
    live: Mutex<HashMap<RecordingId, mpsc::Sender<Ask>>>,
}

impl Shipping {
    /// Starts shipping `rec` (as it is now in its work folder), if
    /// `cluster.ship_live` is on.
    pub fn start(&self, services: &Arc<Services>, rec: &Recording) {
        if !services.config.cluster.ships() {
            return;
        }
        let (tx, rx) = mpsc::channel(8);
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(rec.id, tx);
        let shipper = Shipper {
            services: services.clone(),
            id: rec.id,
            kind: rec.source.kind(),
            m: Manifest::default(),
            whole_seen: HashMap::new(),
        };
        tokio::spawn(shipper.run(rx));
    }

    fn sender(&self, id: RecordingId) -> Option<mpsc::Sender<Ask>> {
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
    }

    /// Ships `id`'s work folder as it is now and waits until the store has
    /// it (tried for 30 s); `Ok` at once when `id` is not shipped.
    pub async fn now(&self, id: RecordingId) -> Result<(), String> {
        let Some(tx) = self.sender(id) else {
            return Ok(());
        };
        let (reply, rx) = oneshot::channel();
        if tx.send(Ask::Now(reply)).await.is_err() {
            return Ok(());
        }
        rx.await.unwrap_or(Ok(()))
    }

    /// Ships the rest of `id` and stops shipping it (its source is about
    /// to close).
    pub async fn finish(&self, id: RecordingId) {
        let tx = self
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        if let Some(tx) = tx {
            let (reply, rx) = oneshot::channel();
            if tx.send(Ask::Finish(reply)).await.is_ok() {
                let _ = rx.await;
            }
        }
    }

    /// Stops shipping `id` without shipping more (it ended).
    pub fn stop(&self, id: RecordingId) {
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }

    /// Ships the rest of everything shipped here (the node is leaving).
    pub async fn finish_all(&self) {
        let ids: Vec<RecordingId> = self
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .copied()
            .collect();
        for id in ids {
            let _ = self.now(id).await;
        }
    }
}

/// One recording's shipping task.
struct Shipper {
    services: Arc<Services>,
    id: RecordingId,
    kind: SourceKind,
    m: Manifest,
    whole_seen: HashMap<String, (u64, std::time::SystemTime)>,
}

impl Shipper {
    async fn run(mut self, mut asks: mpsc::Receiver<Ask>) {
        // Continues what was shipped before (a restart, a takeover).
        match self.services.blobs.get_bytes(&manifest_key(self.id)).await {
            Ok(Some(b)) => {
                if let Ok(m) = serde_json::from_slice(&b) {
                    self.m = m;
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(id = %self.id, error = %e, "reading what was shipped"),
        }
        let every = Duration::from_secs(self.services.config.cluster.segment_s.max(1));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if let Err(e) = self.round().await {
                        self.services.metrics.ship_failed();
                        tracing::warn!(id = %self.id, error = %e, "shipping live media failed; trying again");
                    }
                }
                ask = asks.recv() => match ask {
                    Some(Ask::Now(reply)) => {
                        let _ = reply.send(self.round_for(NOW_FOR).await);
                    }
                    Some(Ask::Finish(reply)) => {
                        if let Err(e) = self.round_for(FINISH_FOR).await {
                            tracing::warn!(id = %self.id, error = %e, "the last of the live media was not shipped");
                        }
                        let _ = reply.send(());
                        return;
                    }
                    None => return,
                },
            }
        }
    }

    /// A round, tried again with backoff for up to `limit`.
    async fn round_for(&mut self, limit: Duration) -> Result<(), String> {
        let until = Instant::now() + limit;
        let mut wait = Duration::from_millis(200);
        loop {
            match self.round().await {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() + wait >= until => return Err(e),
                Err(e) => {
                    self.services.metrics.ship_failed();
                    tracing::warn!(id = %self.id, error = %e, "shipping live media failed; trying again");
                }
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(2));
        }
    }

    /// Ships what is new, in as many packs as it takes.
    async fn round(&mut self) -> Result<(), String> {
        loop {
            let (work, files, seen) = (
                self.services.work_dir(self.id),
                self.m.files.clone(),
                self.whole_seen.clone(),
            );
            let rules = rules(self.kind);
            let pack::Collected {
                pieces,
                data,
                more,
                seen,
            } = tokio::task::spawn_blocking(move || collect(&work, rules, &files, &seen))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("reading the work folder: {e}"))?;
            if pieces.is_empty() {
                return Ok(());
            }
            let bytes = data.len() as u64;
            let blobs = &self.services.blobs;
            blobs
                .put_bytes(&pack_key(self.id, self.m.packs), encode(&pieces, data))
                .await
                .map_err(|e| e.to_string())?;
            let mut next = self.m.clone();
            next.packs += 1;
            next.bytes += bytes;
            next.updated_ms = crate::now_ms();
            for p in &pieces {
                next.files.insert(p.path.clone(), p.offset + p.len);
            }
            // Serializing our own struct cannot fail.
            let doc = serde_json::to_vec(&next).unwrap_or_default();
            blobs
                .put_bytes(&manifest_key(self.id), doc)
                .await
                .map_err(|e| e.to_string())?;
            self.m = next;
            self.whole_seen.extend(seen);
            self.services.metrics.shipped(self.kind.as_str(), bytes);
            if !more {
                return Ok(());
            }
        }
    }
}
