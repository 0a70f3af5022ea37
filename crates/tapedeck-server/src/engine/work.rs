//! The work folders (`DATA_DIR/work/ID/`): what a recording keeps on local
//! disk while it records and processes (spool, part files, track files,
//! the browser's profile, the finished file before it is stored).
//!
//! Their bytes count against their owner's quota while they are there
//! ([`Ledger`]): each driver measures its folder as it goes, so an owner
//! cannot fill the disk with uploads or recordings that never reach the
//! store. A folder goes when its recording completes, fails or is
//! cancelled; only one whose media is there and nowhere else keeps it (the
//! store refused the finished file, or the disk filled), still counted. [`sweep`] at start removes what
//! nothing owns.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use tapedeck_core::Code;

use tapedeck_core::RecordingId;
use tapedeck_core::recording::{Recording, Status};

use crate::engine::services::Services;

/// Bytes in each recording's work folder, by owner, and the bytes an
/// upload of a declared length has reserved: an owner's usage counts the
/// larger of the two for each recording, so uploads opened side by side
/// cannot together pass the quota that each one alone fits.
#[derive(Debug, Default)]
pub struct Ledger {
    books: Mutex<Books>,
}

#[derive(Debug, Default)]
struct Books {
    /// Per recording: owner, bytes held, bytes reserved.
    by_id: HashMap<RecordingId, (String, u64, u64)>,
    /// Reservations made before their recording existed, by ticket.
    pending: HashMap<u64, (String, u64)>,
    next: u64,
}

/// A reservation of bytes against an owner's quota, taken before its
/// recording exists: [`Reservation::attach`] gives it to the recording;
/// dropped unattached (the creation failed), it is released.
#[derive(Debug)]
pub struct Reservation<'a> {
    ledger: &'a Ledger,
    ticket: u64,
}

impl Reservation<'_> {
    /// The bytes are now `id`'s (of the same owner).
    pub fn attach(self, id: RecordingId) {
        let mut b = self.ledger.lock();
        if let Some((owner, n)) = b.pending.remove(&self.ticket) {
            let e = b.by_id.entry(id).or_insert((owner, 0, 0));
            e.2 = e.2.max(n);
        }
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.ledger.lock().pending.remove(&self.ticket);
    }
}

impl Books {
    fn owner_bytes(&self, owner: &str, except: Option<RecordingId>) -> u64 {
        let recordings: u64 = self
            .by_id
            .iter()
            .filter(|(id, (o, _, _))| o == owner && Some(**id) != except)
            .map(|(_, (_, held, reserved))| (*held).max(*reserved))
            .sum();
        let pending: u64 = self
            .pending
            .values()
            .filter(|(o, _)| o == owner)
            .map(|(_, n)| *n)
            .sum();
        recordings + pending
    }
}

impl Ledger {
    /// `id` (of `owner`) holds `bytes` now.
    pub fn set(&self, id: RecordingId, owner: &str, bytes: u64) {
        let mut b = self.lock();
        let e = b.by_id.entry(id).or_insert((owner.to_string(), 0, 0));
        e.1 = bytes;
    }

    /// `id`'s folder is gone.
    pub fn forget(&self, id: RecordingId) {
        self.lock().by_id.remove(&id);
    }

    /// What `owner`'s work folders hold or have reserved, `except` one
    /// recording's.
    pub fn owner_bytes(&self, owner: &str, except: Option<RecordingId>) -> u64 {
        self.lock().owner_bytes(owner, except)
    }

    /// Reserves `n` bytes for `owner` if `stored` (what the store holds of
    /// theirs) plus what their work folders hold or have reserved plus `n`
    /// fits `quota` (0: no quota): checked and taken at once, so two
    /// requests cannot both take the last room. Else the bytes in use.
    pub fn reserve(
        &self,
        owner: &str,
        n: u64,
        stored: u64,
        quota: u64,
    ) -> Result<Reservation<'_>, u64> {
        let mut b = self.lock();
        let used = stored.saturating_add(b.owner_bytes(owner, None));
        if quota > 0 && used.saturating_add(n) > quota {
            return Err(used);
        }
        b.next += 1;
        let ticket = b.next;
        b.pending.insert(ticket, (owner.to_string(), n));
        Ok(Reservation {
            ledger: self,
            ticket,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Books> {
        self.books.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The bytes of the files under `dir` (0 if it is not there). Symbolic
/// links are not followed.
pub fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => todo.push(e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map_or(0, |m| m.len()),
                _ => {}
            }
        }
    }
    total
}

/// Whether a recording in this state still needs its work folder: while
/// it is active or processing (recovery rebuilds it from there), and when
/// it failed with its media there and nowhere else: the store refused the
/// finished file (`storage_failed`), or the disk filled and what was
/// spooled before is kept (`disk_full`).
pub fn needed(rec: &Recording) -> bool {
    !rec.status.is_terminal()
        || (rec.status == Status::Failed
            && rec
                .error
                .as_ref()
                .is_some_and(|e| matches!(e.code, Code::StorageFailed | Code::DiskFull)))
}

/// Measures `rec`'s work folder into the ledger (blocking IO off the runtime).
pub async fn measure(services: &Services, rec: &Recording) {
    let dir = services.work_dir(rec.id);
    let bytes = tokio::task::spawn_blocking(move || dir_bytes(&dir))
        .await
        .unwrap_or(0);
    services.work.set(rec.id, &rec.owner, bytes);
}

/// At start: removes every work folder no recording needs (its recording
/// is gone, or ended without needing it: left by an older version or cut
/// off mid-removal) and counts the kept ones in the ledger. Returns how
/// many were removed.
pub async fn sweep(services: &Services) -> Result<usize, tapedeck_core::Problem> {
    let root = services.config.server.data_dir.join("work");
    let Ok(entries) = std::fs::read_dir(&root) else {
        return Ok(0);
    };
    let mut removed = 0;
    for e in entries.flatten() {
        let path = e.path();
        let rec = match e
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<RecordingId>().ok())
        {
            Some(id) => services.repo.get(id).await?,
            // Not a recording's folder: nothing of ours.
            None => continue,
        };
        match rec {
            Some(r) if needed(&r) => measure(services, &r).await,
            _ => {
                if tokio::fs::remove_dir_all(&path).await.is_ok() {
                    removed += 1;
                }
            }
        }
    }
    if removed > 0 {
        tracing::info!(removed, "removed work folders that no recording needs");
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_count_until_their_bytes_arrive_and_cannot_overbook() {
        let l = Ledger::default();
        let id = RecordingId::from_parts(1, 1);
        let r = l.reserve("bob", 400, 100, 1000).unwrap();
        assert_eq!(l.owner_bytes("bob", None), 400);
        // A second one that would pass the quota with the first is refused.
        assert_eq!(l.reserve("bob", 600, 100, 1000).err(), Some(500));
        r.attach(id);
        assert_eq!(l.owner_bytes("bob", None), 400);
        l.set(id, "bob", 150);
        assert_eq!(
            l.owner_bytes("bob", None),
            400,
            "the larger of held and reserved"
        );
        l.set(id, "bob", 450);
        assert_eq!(l.owner_bytes("bob", None), 450);
        assert_eq!(l.owner_bytes("bob", Some(id)), 0);
        // Dropped before it is attached: released.
        drop(l.reserve("bob", 100, 0, 0).unwrap());
        assert_eq!(l.owner_bytes("bob", None), 450);
        l.forget(id);
        assert_eq!(l.owner_bytes("bob", None), 0);
        assert_eq!(l.owner_bytes("ann", None), 0);
    }
}
