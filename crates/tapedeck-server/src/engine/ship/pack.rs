//! A pack: the bytes each work file grew by since the pack before (and
//! whole copies of the small files that are rewritten), `TDPACK01`, a u32
//! (little endian) length, that much JSON listing the pieces, then their
//! bytes in order. [`collect`] reads what is due from a work folder,
//! [`apply`] writes a pack into one.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use tapedeck_core::recording::SourceKind;

const PACK_MAGIC: &[u8; 8] = b"TDPACK01";
/// The most bytes one pack carries; a round ships as many as it needs.
const PACK_MAX: u64 = 16 << 20;

/// What of a work folder is shipped, by kind.
#[derive(Debug, Clone, Copy)]
pub(super) enum Rule {
    /// One file, only ever appended to.
    Append(&'static str),
    /// Every file of a folder (but `.json` and `.tmp` ones), appended to.
    AppendIn(&'static str),
    /// One small file, rewritten whole; shipped whole when it changed.
    Whole(&'static str),
}

pub(super) fn rules(kind: SourceKind) -> &'static [Rule] {
    match kind {
        SourceKind::Frames | SourceKind::Web => {
            &[Rule::Append(tapedeck_media::sink::encoding::SPOOL_FILE)]
        }
        SourceKind::Room => &[
            Rule::AppendIn("tracks"),
            Rule::Whole("tracks/manifest.json"),
        ],
        SourceKind::Upload => &[Rule::Append("upload.part")],
    }
}

/// One piece of a pack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Piece {
    pub(super) path: String,
    /// Where in the file it goes (0 for a whole file).
    pub(super) offset: u64,
    pub(super) len: u64,
    /// The whole file (it replaces what was there).
    pub(super) whole: bool,
}

/// A relative path of plain names (what packs may name), or `None`.
pub(super) fn safe_rel(path: &str) -> Option<PathBuf> {
    let p = Path::new(path);
    let plain = !path.is_empty()
        && p.components().all(|c| matches!(c, Component::Normal(_)))
        && p.components().count() <= 3;
    plain.then(|| p.to_path_buf())
}

/// What a whole file looked like: its length and when it was written.
pub(super) type Seen = (u64, std::time::SystemTime);

/// What [`collect`] found due.
pub(super) struct Collected {
    pub(super) pieces: Vec<Piece>,
    pub(super) data: Vec<u8>,
    /// Some were left for the next pack.
    pub(super) more: bool,
    /// What each whole file shipped looked like when it was read (from the
    /// handle it was read through: a file replaced after that is new).
    pub(super) seen: Vec<(String, Seen)>,
}

/// The pieces due now in `work` and their bytes, at most [`PACK_MAX`].
/// `whole_seen` is what each whole file looked like when it was last
/// shipped.
pub(super) fn collect(
    work: &Path,
    rules: &[Rule],
    shipped: &BTreeMap<String, u64>,
    whole_seen: &HashMap<String, Seen>,
) -> std::io::Result<Collected> {
    let mut files: Vec<(String, bool)> = vec![];
    for r in rules {
        match r {
            Rule::Append(f) => files.push((f.to_string(), false)),
            Rule::Whole(f) => files.push((f.to_string(), true)),
            Rule::AppendIn(dir) => {
                let Ok(entries) = std::fs::read_dir(work.join(dir)) else {
                    continue;
                };
                let mut names: Vec<String> = entries
                    .flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                    .filter_map(|e| e.file_name().to_str().map(str::to_string))
                    .filter(|n| !n.ends_with(".json") && !n.ends_with(".tmp"))
                    .collect();
                names.sort();
                files.extend(names.into_iter().map(|n| (format!("{dir}/{n}"), false)));
            }
        }
    }
    let (mut pieces, mut data, mut more, mut seen_now) = (vec![], vec![], false, vec![]);
    for (path, whole) in files {
        let room = PACK_MAX.saturating_sub(data.len() as u64);
        if whole {
            // Its length, time and bytes all from one handle: the file is
            // replaced by a rename, and what is remembered as shipped must
            // be the version whose bytes were read.
            let Ok(mut f) = std::fs::File::open(work.join(&path)) else {
                continue;
            };
            let meta = f.metadata()?;
            let seen = (meta.len(), meta.modified()?);
            if whole_seen.get(&path) == Some(&seen) {
                continue;
            }
            if meta.len() > room && !data.is_empty() {
                more = true;
                continue;
            }
            let mut bytes = vec![];
            f.read_to_end(&mut bytes)?;
            pieces.push(Piece {
                path: path.clone(),
                offset: 0,
                len: bytes.len() as u64,
                whole: true,
            });
            data.extend_from_slice(&bytes);
            seen_now.push((path, seen));
            continue;
        }
        let Ok(meta) = std::fs::metadata(work.join(&path)) else {
            continue;
        };
        let from = shipped.get(&path).copied().unwrap_or(0);
        // A file shorter than what was shipped was cut (a chunk refused
        // after shipping failed): it is shipped again from its new end.
        let from = from.min(meta.len());
        let len = (meta.len() - from).min(room);
        if len < meta.len() - from {
            more = true;
        }
        if len == 0 {
            continue;
        }
        let mut f = std::fs::File::open(work.join(&path))?;
        f.seek(SeekFrom::Start(from))?;
        let at = data.len();
        data.resize(at + len as usize, 0);
        f.read_exact(&mut data[at..])?;
        pieces.push(Piece {
            path,
            offset: from,
            len,
            whole: false,
        });
    }
    Ok(Collected {
        pieces,
        data,
        more,
        seen: seen_now,
    })
}

pub(super) fn encode(pieces: &[Piece], data: Vec<u8>) -> Vec<u8> {
    // Serializing our own struct cannot fail.
    let head = serde_json::to_vec(pieces).unwrap_or_default();
    let mut out = Vec::with_capacity(12 + head.len() + data.len());
    out.extend_from_slice(PACK_MAGIC);
    out.extend_from_slice(&(head.len() as u32).to_le_bytes());
    out.extend_from_slice(&head);
    out.extend_from_slice(&data);
    out
}

fn decode(pack: &[u8]) -> Result<Vec<(Piece, &[u8])>, String> {
    let bad = |why: &str| Err(format!("a shipped pack is damaged: {why}"));
    if pack.len() < 12 || &pack[..8] != PACK_MAGIC {
        return bad("no header");
    }
    let n = u32::from_le_bytes([pack[8], pack[9], pack[10], pack[11]]) as usize;
    let Some(head) = pack.get(12..12 + n) else {
        return bad("short header");
    };
    let pieces: Vec<Piece> = serde_json::from_slice(head).map_err(|e| e.to_string())?;
    let mut at = 12 + n;
    let mut out = vec![];
    for p in pieces {
        let Some(bytes) = pack.get(at..at + p.len as usize) else {
            return bad("short body");
        };
        at += p.len as usize;
        out.push((p, bytes));
    }
    Ok(out)
}

/// Writes one pack's pieces into `work`.
pub(super) fn apply(work: &Path, pack: &[u8]) -> Result<(), String> {
    use std::os::unix::fs::FileExt;
    for (p, bytes) in decode(pack)? {
        let rel = safe_rel(&p.path).ok_or_else(|| format!("a pack names `{}`", p.path))?;
        let path = work.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        }
        if p.whole {
            std::fs::write(&path, bytes).map_err(|e| e.to_string())?;
            continue;
        }
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| e.to_string())?;
        let len = f.metadata().map_err(|e| e.to_string())?.len();
        if p.offset > len {
            return Err(format!("{}: a pack starts past the file's end", p.path));
        }
        f.set_len(p.offset).map_err(|e| e.to_string())?;
        f.write_all_at(bytes, p.offset).map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_rebuild_a_growing_folder() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        let rules = rules(SourceKind::Room);
        std::fs::create_dir_all(src.path().join("tracks")).unwrap();
        let mut shipped = BTreeMap::new();
        let mut seen = HashMap::new();
        let mut packs = vec![];
        for round in 0..3u8 {
            let t = src.path().join("tracks/t1.webm");
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&t)
                .unwrap();
            std::io::Write::write_all(&mut f, &vec![round; 1000]).unwrap();
            std::fs::write(
                src.path().join("tracks/manifest.json"),
                format!("{{\"round\":{round}}}"),
            )
            .unwrap();
            let c = collect(src.path(), rules, &shipped, &seen).unwrap();
            assert!(!c.more);
            for p in &c.pieces {
                shipped.insert(p.path.clone(), p.offset + p.len);
            }
            seen.extend(c.seen);
            packs.push(encode(&c.pieces, c.data));
        }
        // Nothing new: nothing to ship.
        let c = collect(src.path(), rules, &shipped, &seen).unwrap();
        assert!(c.pieces.is_empty(), "{:?}", c.pieces);
        for p in &packs {
            apply(dst.path(), p).unwrap();
        }
        for f in ["tracks/t1.webm", "tracks/manifest.json"] {
            assert_eq!(
                std::fs::read(src.path().join(f)).unwrap(),
                std::fs::read(dst.path().join(f)).unwrap(),
                "{f}"
            );
        }
    }

    #[test]
    fn a_whole_file_replaced_after_it_was_read_is_shipped_again() {
        let src = tempfile::tempdir().unwrap();
        std::fs::create_dir(src.path().join("tracks")).unwrap();
        let rules = rules(SourceKind::Room);
        let m = src.path().join("tracks/manifest.json");
        std::fs::write(&m, "[\"audio\"]").unwrap();
        let first = collect(src.path(), rules, &BTreeMap::new(), &HashMap::new()).unwrap();
        // Replaced (as the room source does) while the first was shipping.
        let tmp = src.path().join("tracks/manifest.json.tmp");
        std::fs::write(&tmp, "[\"audio\",\"video\"]").unwrap();
        std::fs::rename(&tmp, &m).unwrap();
        let seen: HashMap<_, _> = first.seen.into_iter().collect();
        let next = collect(src.path(), rules, &BTreeMap::new(), &seen).unwrap();
        assert_eq!(next.data, b"[\"audio\",\"video\"]", "{:?}", next.pieces);
        // Then it is known as shipped.
        let seen: HashMap<_, _> = next.seen.into_iter().collect();
        let last = collect(src.path(), rules, &BTreeMap::new(), &seen).unwrap();
        assert!(last.pieces.is_empty(), "{:?}", last.pieces);
    }

    #[test]
    fn a_pack_cannot_name_a_path_outside_the_folder() {
        let dst = tempfile::tempdir().unwrap();
        for bad in ["../x", "/etc/x", "a/../../x", ""] {
            let pack = encode(
                &[Piece {
                    path: bad.into(),
                    offset: 0,
                    len: 1,
                    whole: true,
                }],
                vec![1],
            );
            assert!(apply(dst.path(), &pack).is_err(), "{bad}");
        }
        assert!(decode(b"TDPACK01\xff\xff\xff\xff").is_err());
        assert!(decode(b"nope").is_err());
    }
}
