//! Recovery: a file the sink was writing when the server stopped is walked
//! (never trusting its bytes), cut after its last complete cluster, and
//! finalized like a finished one.

use std::fs::OpenOptions;
use std::io::{self, Read, Seek};
use std::path::Path;

use super::layout::{Index, Layout, write_index};
use super::*;
use crate::mkv::read::{self, Reader};

/// Why a file could not be recovered.
#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    /// The file is not one this sink wrote (or its header is cut off).
    #[error("not a passthrough file: {0}")]
    NotOurs(&'static str),
    /// Reading or writing failed.
    #[error("recovering: {0}")]
    Io(#[from] io::Error),
}

/// What [`scan`] found in a file the sink was writing.
#[derive(Debug, Clone)]
pub(super) struct Scanned {
    pub(super) layout: Layout,
    pub(super) index: Index,
    /// Where the last complete cluster ends: the file is cut here.
    pub(super) good_end: u64,
}

/// Walks a file this sink wrote (finished, or cut anywhere): its layout and
/// the index of its complete clusters. Never panics, whatever the bytes.
pub(super) fn scan<R: Read + Seek>(r: R) -> Result<Scanned, RecoverError> {
    let mut rd = Reader::new(r)?;
    let ebml = rd
        .header(0)?
        .ok_or(RecoverError::NotOurs("no EBML header"))?;
    if ebml.id != 0x1A45_DFA3 {
        return Err(RecoverError::NotOurs("no EBML header"));
    }
    let seg_at = ebml
        .end()
        .ok_or(RecoverError::NotOurs("EBML header size"))?;
    let seg = rd
        .header(seg_at)?
        .filter(|e| e.id == SEGMENT)
        .ok_or(RecoverError::NotOurs("no segment"))?;
    if seg.body - seg.start != 12 {
        return Err(RecoverError::NotOurs("segment size is not 8 bytes"));
    }
    let mut seg_open = seg;
    seg_open.size = None; // a finished file is scanned again as if cut
    let kids = rd.children(&seg_open)?;
    let mut layout = Layout {
        segment_size: seg.body - 8,
        segment_body: seg.body,
        seek_room: 0,
        duration_room: 0,
        info: 0,
        tracks: 0,
    };
    let mut index = Index::default();
    let mut cue_track = None;
    let mut good_end = None;
    for e in kids {
        let Some(end) = e.end().filter(|end| *end <= rd.len()) else {
            break; // cut here
        };
        match e.id {
            VOID | SEEK_HEAD if layout.seek_room == 0 => layout.seek_room = e.start,
            INFO => {
                layout.info = e.start - seg.body;
                for c in rd.children(&e)? {
                    if matches!(c.id, VOID | 0x4489) && c.end() == Some(c.start + 18) {
                        layout.duration_room = c.start;
                    }
                }
            }
            TRACKS => {
                layout.tracks = e.start - seg.body;
                for t in rd.children(&e)? {
                    let mut number = None;
                    let mut video = false;
                    for f in rd.children(&t)? {
                        match f.id {
                            TRACK_NUMBER => number = Some(read::uint(&rd.body(&f, 8)?)),
                            TRACK_TYPE => video = read::uint(&rd.body(&f, 8)?) == 1,
                            _ => {}
                        }
                    }
                    match (number, cue_track) {
                        (Some(n), None) => cue_track = Some((n, video)),
                        (Some(n), Some((_, false))) if video => cue_track = Some((n, video)),
                        _ => {}
                    }
                }
            }
            CLUSTER => {
                let (cue_n, cue_video) = cue_track.ok_or(RecoverError::NotOurs("no tracks"))?;
                let mut time = None;
                let mut first = true;
                let mut cue = false;
                for b in rd.children(&e)? {
                    if b.end().is_none_or(|x| x > end) {
                        break;
                    }
                    match b.id {
                        TIMECODE => time = Some(read::uint(&rd.body(&b, 8)?) as i64),
                        SIMPLE_BLOCK => {
                            let head = rd.body(&b, 12)?;
                            let Some((n, l, _)) = read::vint(&head) else {
                                continue;
                            };
                            let (Some(t), Some(rel), Some(flags)) =
                                (time, head.get(l..l + 2), head.get(l + 2))
                            else {
                                continue;
                            };
                            let at = t + i64::from(i16::from_be_bytes([rel[0], rel[1]]));
                            if first {
                                cue = n == cue_n && (flags & 0x80 != 0 || !cue_video);
                                first = false;
                            }
                            if (1..=126).contains(&n) {
                                index.saw(n as usize - 1, at);
                            }
                        }
                        _ => {}
                    }
                }
                index.clusters += 1;
                if let (true, Some(t)) = (cue, time) {
                    index.cues.push((t as u64, cue_n, e.start - seg.body));
                }
                good_end = Some(end);
            }
            CUES => break,
            _ => {}
        }
    }
    if layout.seek_room == 0 || layout.duration_room == 0 || layout.tracks == 0 {
        return Err(RecoverError::NotOurs("header cut off"));
    }
    let good_end = match good_end {
        Some(e) => e,
        // No cluster: keep the header only.
        None => rd
            .header(layout.segment_body + layout.tracks)?
            .and_then(|t| t.end())
            .ok_or(RecoverError::NotOurs("tracks"))?,
    };
    Ok(Scanned {
        layout,
        index,
        good_end,
    })
}

/// Finalizes a file the sink was writing when the server stopped: cuts it
/// after its last complete cluster and writes cues, duration and seek head.
/// Harmless on a file already finalized.
pub fn recover(path: &Path) -> Result<Summary, RecoverError> {
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    let s = scan(&mut file)?;
    file.set_len(s.good_end)?;
    let summary = write_index(&mut file, &s.layout, &s.index)?;
    file.sync_all()?;
    Ok(summary)
}

/// Scans arbitrary bytes as [`recover`] would (for fuzzing): never panics.
pub fn scan_bytes(bytes: &[u8]) -> Result<(u64, u64), RecoverError> {
    let s = scan(io::Cursor::new(bytes))?;
    Ok((s.index.units, s.good_end))
}
