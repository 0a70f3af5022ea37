//! Matroska (EBML) by hand: the element writers, a streaming reader
//! ([`read`]), and the raw-frames stream the encoding sink pipes into
//! ffmpeg (one track of I420 frames with microsecond timestamps, unknown-size
//! segment). The passthrough sink (`sink::passthrough`) writes its files
//! with the same element writers.
//!
//! Written by hand because it is small and the crates that write Matroska
//! either buffer whole clusters, lack `V_UNCOMPRESSED`, or cannot reserve
//! space for a duration and seek head to fill in at the end; ffmpeg reads the
//! colour space FourCC (`I420`) from the track header.

pub mod read;

/// EBML element with a known-size body.
pub(crate) fn element(out: &mut Vec<u8>, id: u32, body: &[u8]) {
    put_id(out, id);
    put_size(out, body.len() as u64);
    out.extend_from_slice(body);
}

pub(crate) fn put_id(out: &mut Vec<u8>, id: u32) {
    let bytes = id.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    out.extend_from_slice(&bytes[skip..]);
}

/// Sizes are written in 8 bytes: simple and always valid.
pub(crate) fn put_size(out: &mut Vec<u8>, size: u64) {
    let v = (1u64 << 56) | size;
    out.extend_from_slice(&v.to_be_bytes());
}

pub(crate) fn uint(out: &mut Vec<u8>, id: u32, v: u64) {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count().min(7);
    element(out, id, &bytes[skip..]);
}

/// A float element (8 bytes).
pub(crate) fn float(out: &mut Vec<u8>, id: u32, v: f64) {
    element(out, id, &v.to_be_bytes());
}

/// The EBML header for `doc_type` (`matroska` or `webm`).
pub(crate) fn ebml_header(out: &mut Vec<u8>, doc_type: &[u8]) {
    let mut ebml = vec![];
    uint(&mut ebml, 0x4286, 1); // EBMLVersion
    uint(&mut ebml, 0x42F7, 1); // EBMLReadVersion
    uint(&mut ebml, 0x42F2, 4); // EBMLMaxIDLength
    uint(&mut ebml, 0x42F3, 8); // EBMLMaxSizeLength
    element(&mut ebml, 0x4282, doc_type); // DocType
    uint(&mut ebml, 0x4287, 4); // DocTypeVersion
    uint(&mut ebml, 0x4285, 2); // DocTypeReadVersion
    element(out, 0x1A45_DFA3, &ebml);
}

/// The header: EBML, segment of unknown size, info, the one track.
pub fn header(width: u32, height: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    ebml_header(&mut out, b"matroska");

    put_id(&mut out, 0x1853_8067); // Segment
    out.extend_from_slice(&[0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]); // unknown size

    let mut info = vec![];
    uint(&mut info, 0x2AD7B1, 1000); // TimestampScale: 1 µs
    element(&mut info, 0x4D80, b"tapedeck"); // MuxingApp
    element(&mut info, 0x5741, b"tapedeck"); // WritingApp
    element(&mut out, 0x1549_A966, &info);

    let mut video = vec![];
    uint(&mut video, 0xB0, u64::from(width)); // PixelWidth
    uint(&mut video, 0xBA, u64::from(height)); // PixelHeight
    element(&mut video, 0x2EB524, b"I420"); // ColourSpace
    let mut track = vec![];
    uint(&mut track, 0xD7, 1); // TrackNumber
    uint(&mut track, 0x73C5, 1); // TrackUID
    uint(&mut track, 0x83, 1); // TrackType: video
    uint(&mut track, 0x9C, 0); // FlagLacing
    element(&mut track, 0x86, b"V_UNCOMPRESSED"); // CodecID
    element(&mut track, 0xE0, &video);
    let mut tracks = vec![];
    element(&mut tracks, 0xAE, &track);
    element(&mut out, 0x1654_AE6B, &tracks);
    out
}

/// The bytes before a frame: a cluster holding one keyframe at `pts_us` (the
/// frame bytes follow, so they are never copied). With `duration_us` the
/// frame is a BlockGroup with an explicit BlockDuration, which tells ffmpeg
/// how long the last frame lasts.
pub fn frame_prefix(pts_us: i64, frame_len: usize, duration_us: Option<i64>) -> Vec<u8> {
    let mut cluster_head = vec![];
    uint(&mut cluster_head, 0xE7, pts_us.max(0) as u64); // Cluster Timestamp
    let block_len = 4 + frame_len;
    let mut out = Vec::with_capacity(64);
    put_id(&mut out, 0x1F43_B675); // Cluster
    match duration_us {
        None => {
            // SimpleBlock: track 1 (0x81), relative timestamp 0, flags keyframe.
            put_size(&mut out, (cluster_head.len() + 1 + 8 + block_len) as u64);
            out.extend_from_slice(&cluster_head);
            put_id(&mut out, 0xA3);
            put_size(&mut out, block_len as u64);
            out.extend_from_slice(&[0x81, 0x00, 0x00, 0x80]);
        }
        Some(d) => {
            let mut dur = vec![];
            uint(&mut dur, 0x9B, d.max(1) as u64); // BlockDuration
            let group_len = dur.len() + 1 + 8 + block_len;
            put_size(&mut out, (cluster_head.len() + 1 + 8 + group_len) as u64);
            out.extend_from_slice(&cluster_head);
            put_id(&mut out, 0xA0); // BlockGroup
            put_size(&mut out, group_len as u64);
            out.extend_from_slice(&dur);
            put_id(&mut out, 0xA1); // Block
            put_size(&mut out, block_len as u64);
            out.extend_from_slice(&[0x81, 0x00, 0x00, 0x00]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_eight_byte_vints() {
        let mut v = vec![];
        put_size(&mut v, 5);
        assert_eq!(v, [1, 0, 0, 0, 0, 0, 0, 5]);
        let p = frame_prefix(40_000, 12, None);
        assert_eq!(&p[..4], &[0x1F, 0x43, 0xB6, 0x75]);
        assert_eq!(&p[p.len() - 4..], &[0x81, 0, 0, 0x80]);
    }
}
