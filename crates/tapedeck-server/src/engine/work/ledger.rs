//! The ledger of work-folder bytes per owner, and the bytes uploads of a
//! declared length reserve (see the module above).

use std::collections::HashMap;
use std::sync::Mutex;

use tapedeck_core::RecordingId;

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
