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
    stream_header(&[raw_video(1, width, height)])
}

/// [`header`] with a second track (2): 48 kHz stereo 16-bit PCM, its
/// blocks written with [`block_prefix`].
pub fn header_with_pcm(width: u32, height: u32) -> Vec<u8> {
    stream_header(&[raw_video(1, width, height), pcm_track(2)])
}

/// A stream of H.264 video (track 1: `avcc`, its decoder configuration;
/// blocks of length-prefixed NAL units) over 48 kHz stereo 16-bit PCM
/// (track 2), each block written with [`block_prefix_key`].
pub fn header_h264_pcm(width: u32, height: u32, avcc: &[u8]) -> Vec<u8> {
    let mut video = vec![];
    uint(&mut video, 0xB0, u64::from(width)); // PixelWidth
    uint(&mut video, 0xBA, u64::from(height)); // PixelHeight
    let h264 = track(1, 1, b"V_MPEG4/ISO/AVC", Some(avcc), 0xE0, &video);
    stream_header(&[h264, pcm_track(2)])
}

/// Track `number`'s 48 kHz stereo 16-bit PCM.
fn pcm_track(number: u64) -> Vec<u8> {
    let mut audio = vec![];
    float(&mut audio, 0xB5, 48_000.0); // SamplingFrequency
    uint(&mut audio, 0x9F, 2); // Channels
    uint(&mut audio, 0x6264, 16); // BitDepth
    track(number, 2, b"A_PCM/INT/LIT", None, 0xE1, &audio)
}

/// A stream of one Opus track (48 kHz, two channels, as WebRTC sends it),
/// each packet written with [`block_prefix`]: what a decoder reads.
pub fn opus_header() -> Vec<u8> {
    let mut head = b"OpusHead".to_vec();
    head.extend_from_slice(&[1, 2, 0, 0]); // version, channels, pre-skip
    head.extend_from_slice(&48_000u32.to_le_bytes()); // input rate
    head.extend_from_slice(&[0, 0, 0]); // gain, mapping family 0
    let mut audio = vec![];
    float(&mut audio, 0xB5, 48_000.0);
    uint(&mut audio, 0x9F, 2);
    stream_header(&[track(1, 2, b"A_OPUS", Some(&head), 0xE1, &audio)])
}

/// The EBML header, a segment of unknown size (a stream), its info at
/// 1 µs a tick, and `tracks`.
fn stream_header(tracks: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    ebml_header(&mut out, b"matroska");

    put_id(&mut out, 0x1853_8067); // Segment
    out.extend_from_slice(&[0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]); // unknown size

    let mut info = vec![];
    uint(&mut info, 0x2AD7B1, 1000); // TimestampScale: 1 µs
    element(&mut info, 0x4D80, b"tapedeck"); // MuxingApp
    element(&mut info, 0x5741, b"tapedeck"); // WritingApp
    element(&mut out, 0x1549_A966, &info);

    let mut all = vec![];
    for t in tracks {
        element(&mut all, 0xAE, t); // TrackEntry
    }
    element(&mut out, 0x1654_AE6B, &all);
    out
}

/// Track `number`'s raw I420 video.
fn raw_video(number: u64, width: u32, height: u32) -> Vec<u8> {
    let mut video = vec![];
    uint(&mut video, 0xB0, u64::from(width)); // PixelWidth
    uint(&mut video, 0xBA, u64::from(height)); // PixelHeight
    element(&mut video, 0x2EB524, b"I420"); // ColourSpace
    track(number, 1, b"V_UNCOMPRESSED", None, 0xE0, &video)
}

/// A track entry's body: its number (and UID), type (1 video, 2 audio),
/// codec, and its Video (0xE0) or Audio (0xE1) element.
fn track(
    number: u64,
    kind: u64,
    codec: &[u8],
    private: Option<&[u8]>,
    settings_id: u32,
    settings: &[u8],
) -> Vec<u8> {
    let mut track = vec![];
    uint(&mut track, 0xD7, number); // TrackNumber
    uint(&mut track, 0x73C5, number); // TrackUID
    uint(&mut track, 0x83, kind); // TrackType
    uint(&mut track, 0x9C, 0); // FlagLacing
    element(&mut track, 0x86, codec); // CodecID
    if let Some(p) = private {
        element(&mut track, 0x63A2, p); // CodecPrivate
    }
    element(&mut track, settings_id, settings);
    track
}

/// The bytes before a block of `track` (1-15) at `pts_us`, `len` bytes
/// long: a cluster holding one SimpleBlock (the bytes follow).
pub fn block_prefix(track: u8, pts_us: i64, len: usize) -> Vec<u8> {
    block_prefix_key(track, pts_us, len, true)
}

/// [`block_prefix`] for a block that is a key frame or not (H.264's
/// pictures between key pictures are not).
pub fn block_prefix_key(track: u8, pts_us: i64, len: usize, key: bool) -> Vec<u8> {
    let mut cluster_head = vec![];
    uint(&mut cluster_head, 0xE7, pts_us.max(0) as u64); // Cluster Timestamp
    let block_len = 4 + len;
    let mut out = Vec::with_capacity(64);
    put_id(&mut out, 0x1F43_B675); // Cluster
    put_size(&mut out, (cluster_head.len() + 1 + 8 + block_len) as u64);
    out.extend_from_slice(&cluster_head);
    put_id(&mut out, 0xA3);
    put_size(&mut out, block_len as u64);
    let flags = if key { 0x80 } else { 0x00 };
    out.extend_from_slice(&[0x80 | (track & 0x0F), 0x00, 0x00, flags]);
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
        // SimpleBlock: track 1 (0x81), relative timestamp 0, flags keyframe.
        None => return block_prefix(1, pts_us, frame_len),
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
