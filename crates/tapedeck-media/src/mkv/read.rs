//! A streaming EBML reader: element headers read at an offset of any
//! `Read + Seek`, bodies read only when asked and only up to a bound, so a
//! file of any size (or any garbage) is walked with flat memory and never
//! panics.

use std::io::{self, Read, Seek, SeekFrom};

/// One element's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Element {
    /// The element ID with its length marker (e.g. `0x1F43B675` for Cluster).
    pub id: u32,
    /// Offset of the ID.
    pub start: u64,
    /// Offset of the body.
    pub body: u64,
    /// Body size; `None` for an unknown size (a live stream's segment).
    pub size: Option<u64>,
}

impl Element {
    /// Offset just past the body, if its size is known.
    pub fn end(&self) -> Option<u64> {
        self.size.and_then(|s| self.body.checked_add(s))
    }
}

/// A variable-length integer at the start of `buf`: (value without the
/// marker, length, all value bits set). `None` if `buf` is too short or the
/// first byte is zero.
pub fn vint(buf: &[u8]) -> Option<(u64, usize, bool)> {
    let first = *buf.first()?;
    let len = first.leading_zeros() as usize + 1;
    if len > 8 || buf.len() < len {
        return None;
    }
    let mut v = u64::from(first) & (0xFF >> len);
    for b in &buf[1..len] {
        v = (v << 8) | u64::from(*b);
    }
    let ones = v == (1u64 << (7 * len)) - 1;
    Some((v, len, ones))
}

/// An element ID at the start of `buf` (marker kept): (id, length).
pub fn id(buf: &[u8]) -> Option<(u32, usize)> {
    let first = *buf.first()?;
    let len = first.leading_zeros() as usize + 1;
    if len > 4 || buf.len() < len {
        return None;
    }
    let v = buf[..len]
        .iter()
        .fold(0u32, |acc, b| (acc << 8) | u32::from(*b));
    Some((v, len))
}

/// Reads element headers and small bodies from `r`.
pub struct Reader<R> {
    r: R,
    len: u64,
}

impl<R: Read + Seek> Reader<R> {
    /// A reader over `r`, whose length is measured once.
    pub fn new(mut r: R) -> io::Result<Self> {
        let len = r.seek(SeekFrom::End(0))?;
        Ok(Self { r, len })
    }

    /// The length of what is read.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether there is nothing to read.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The element whose header starts at `pos`; `None` when the header is
    /// cut off by the end or is not a valid header.
    pub fn header(&mut self, pos: u64) -> io::Result<Option<Element>> {
        if pos >= self.len {
            return Ok(None);
        }
        let n = (self.len - pos).min(12) as usize;
        let mut buf = [0u8; 12];
        self.r.seek(SeekFrom::Start(pos))?;
        self.r.read_exact(&mut buf[..n])?;
        let Some((id, il)) = id(&buf[..n]) else {
            return Ok(None);
        };
        let Some((size, sl, unknown)) = vint(&buf[il..n]) else {
            return Ok(None);
        };
        Ok(Some(Element {
            id,
            start: pos,
            body: pos + (il + sl) as u64,
            size: if unknown { None } else { Some(size) },
        }))
    }

    /// Up to `max` bytes of `e`'s body (fewer at the end of the input).
    pub fn body(&mut self, e: &Element, max: usize) -> io::Result<Vec<u8>> {
        let avail = self.len.saturating_sub(e.body);
        let want = e.size.unwrap_or(avail).min(avail).min(max as u64) as usize;
        let mut buf = vec![0u8; want];
        self.r.seek(SeekFrom::Start(e.body))?;
        self.r.read_exact(&mut buf)?;
        Ok(buf)
    }

    /// The children of `parent` (or of everything from `from` to the end
    /// for an unknown size) whose headers are complete; stops at the first
    /// header that is not valid.
    pub fn children(&mut self, parent: &Element) -> io::Result<Vec<Element>> {
        let end = parent.end().unwrap_or(self.len).min(self.len);
        let mut out = vec![];
        let mut pos = parent.body;
        while pos < end {
            let Some(e) = self.header(pos)? else { break };
            out.push(e);
            match e.end() {
                Some(next) if next > pos => pos = next,
                _ => break,
            }
            if out.len() > 1_000_000 {
                break;
            }
        }
        Ok(out)
    }
}

/// The unsigned integer in an element body.
pub fn uint(body: &[u8]) -> u64 {
    body.iter()
        .take(8)
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn vints_and_ids() {
        assert_eq!(vint(&[0x81]), Some((1, 1, false)));
        assert_eq!(vint(&[0xFF]), Some((127, 1, true)));
        assert_eq!(vint(&[0x40, 0x02]), Some((2, 2, false)));
        assert_eq!(
            vint(&[0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]),
            Some(((1 << 56) - 1, 8, true))
        );
        assert_eq!(vint(&[0x00]), None);
        assert_eq!(vint(&[0x40]), None);
        assert_eq!(id(&[0x1F, 0x43, 0xB6, 0x75]), Some((0x1F43_B675, 4)));
        assert_eq!(id(&[0xA3]), Some((0xA3, 1)));
        assert_eq!(id(&[0x08]), None);
    }

    #[test]
    fn walks_children_and_stops_at_garbage() {
        let mut v = vec![];
        crate::mkv::uint(&mut v, 0xE7, 5);
        crate::mkv::element(&mut v, 0xA3, b"abc");
        v.push(0x00); // not a valid ID
        let mut r = Reader::new(Cursor::new(v.clone())).unwrap();
        let parent = Element {
            id: 0,
            start: 0,
            body: 0,
            size: None,
        };
        let kids = r.children(&parent).unwrap();
        assert_eq!(kids.len(), 2);
        assert_eq!(kids[0].id, 0xE7);
        assert_eq!(uint(&r.body(&kids[0], 8).unwrap()), 5);
        assert_eq!(r.body(&kids[1], 2).unwrap(), b"ab");
    }
}
