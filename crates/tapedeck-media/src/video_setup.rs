//! What a passthrough track file's header needs from a video track that
//! arrives encoded from outside (a WebRTC participant): the picture size
//! and the codec's setup record, read from its first key frame; and H.264
//! access units turned into the form Matroska stores.
//!
//! - VP8: the key frame header (RFC 6386 §9.1).
//! - VP9: the uncompressed header (VP9 bitstream specification §6.2).
//! - H.264: the SPS and PPS in the access unit (Annex B, as WebRTC
//!   depacketizes it) make the `avcC` record; the size is the SPS's.
//! - AV1: the sequence header OBU makes the `av1C` record (AV1 ISOBMFF
//!   binding §2.3, as Matroska's AV1 mapping uses it); the size is the
//!   sequence's largest frame.
//!
//! Every parser reads frames a peer sent: it returns `None` on anything it
//! cannot read, never panics (fuzzed by `sdp_offer`'s target).

use crate::h264::{BitReader, Unsupported, nal_type, split_nals, unescape};
use crate::sink::passthrough::Codec;

/// A video track's header fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoSetup {
    /// Picture width.
    pub width: u32,
    /// Picture height.
    pub height: u32,
    /// `avcC` (H.264) or `av1C` (AV1); none for VP8 and VP9.
    pub codec_private: Option<Vec<u8>>,
}

/// The header fields from `key`, a key frame of `codec` as depacketized;
/// `None` when it does not hold what is needed (wait for the next one).
pub fn setup(codec: Codec, key: &[u8]) -> Option<VideoSetup> {
    let plain = |(width, height)| VideoSetup {
        width,
        height,
        codec_private: None,
    };
    match codec {
        Codec::Vp8 => vp8_size(key).map(plain),
        Codec::Vp9 => vp9_size(key).map(plain),
        Codec::H264 => h264_setup(key),
        Codec::Av1 => av1_setup(key),
        Codec::Opus => None,
    }
}

/// An H.264 access unit in Annex B (start codes) as AVC units, each NAL
/// after its 4-byte length, access unit delimiters left out.
pub fn annexb_to_avc(au: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(au.len() + 16);
    for nal in nals(au) {
        if nal.is_empty() || nal_type(nal) == 9 {
            continue;
        }
        let len = u32::try_from(nal.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(nal);
    }
    out
}

/// Every NAL unit of a whole access unit (the last one included).
fn nals(au: &[u8]) -> Vec<&[u8]> {
    let (mut nals, tail) = split_nals(au);
    let starts = au.windows(3).any(|w| w == [0, 0, 1]);
    if starts && let Some(last) = au.get(tail + 3..) {
        nals.push(last);
    }
    nals
}

/// Width and height from a VP8 key frame (RFC 6386 §9.1).
fn vp8_size(d: &[u8]) -> Option<(u32, u32)> {
    if d.len() < 10 || d[0] & 1 != 0 || d[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let w = u32::from(u16::from_le_bytes([d[6], d[7]]) & 0x3fff);
    let h = u32::from(u16::from_le_bytes([d[8], d[9]]) & 0x3fff);
    (w > 0 && h > 0).then_some((w, h))
}

/// Width and height from a VP9 key frame's uncompressed header: frame
/// marker, profile, flags, sync code, colour config, then the size.
fn vp9_size(d: &[u8]) -> Option<(u32, u32)> {
    let mut r = BitReader::new(d);
    let mut read = |n| r.bits(n).ok();
    if read(2)? != 2 {
        return None;
    }
    let low = read(1)?;
    let profile = (read(1)? << 1) | low;
    if profile == 3 {
        read(1)?;
    }
    // show_existing_frame, then frame_type (0: key frame).
    if read(1)? != 0 || read(1)? != 0 {
        return None;
    }
    read(2)?; // show_frame, error_resilient_mode
    if read(24)? != 0x49_83_42 {
        return None;
    }
    if profile >= 2 {
        read(1)?; // ten_or_twelve_bit
    }
    let color_space = read(3)?;
    if color_space != 7 {
        read(1)?; // color_range
        if profile == 1 || profile == 3 {
            read(3)?; // subsampling x, y, reserved
        }
    } else if profile == 1 || profile == 3 {
        read(1)?;
    }
    let w = read(16)? + 1;
    let h = read(16)? + 1;
    Some((w, h))
}

/// `avcC` and the size from the first SPS and PPS of an access unit.
fn h264_setup(au: &[u8]) -> Option<VideoSetup> {
    let nals = nals(au);
    let sps = *nals.iter().find(|n| !n.is_empty() && nal_type(n) == 7)?;
    let pps = *nals.iter().find(|n| !n.is_empty() && nal_type(n) == 8)?;
    let (width, height) = sps_size(sps).ok()?;
    if sps.len() < 4 || sps.len() > 0xffff || pps.len() > 0xffff {
        return None;
    }
    // ISO 14496-15 §5.3.3.1: version 1, profile, compatibility, level,
    // 4-byte NAL lengths, one SPS, one PPS.
    let mut avcc = vec![1, sps[1], sps[2], sps[3], 0xff, 0xe1];
    avcc.extend_from_slice(&(sps.len() as u16).to_be_bytes());
    avcc.extend_from_slice(sps);
    avcc.push(1);
    avcc.extend_from_slice(&(pps.len() as u16).to_be_bytes());
    avcc.extend_from_slice(pps);
    Some(VideoSetup {
        width,
        height,
        codec_private: Some(avcc),
    })
}

/// The cropped picture size an SPS (with its header byte) describes
/// (H.264 §7.3.2.1.1 and the frame cropping of §7.4.2.1.1).
fn sps_size(nal: &[u8]) -> Result<(u32, u32), Unsupported> {
    let rbsp = unescape(nal);
    let mut r = BitReader::new(rbsp.get(1..).unwrap_or_default());
    let profile = r.bits(8)?;
    r.bits(16)?; // constraint flags, level
    r.ue()?; // id
    let mut chroma = 1;
    if [100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135].contains(&profile) {
        chroma = r.ue()?;
        if chroma == 3 && r.bit()? == 1 {
            chroma = 0; // separate colour planes: cropped like monochrome
        }
        r.ue()?; // bit depth luma
        r.ue()?; // bit depth chroma
        r.bit()?; // qpprime_y_zero_transform_bypass
        if r.bit()? == 1 {
            let lists = if chroma == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.bit()? == 1 {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    r.ue()?; // log2_max_frame_num_minus4
    match r.ue()? {
        0 => {
            r.ue()?; // log2_max_pic_order_cnt_lsb_minus4
        }
        1 => {
            r.bit()?;
            r.se()?;
            r.se()?;
            for _ in 0..r.ue()?.min(255) {
                r.se()?;
            }
        }
        _ => {}
    }
    r.ue()?; // max_num_ref_frames
    r.bit()?; // gaps_in_frame_num_value_allowed_flag
    let mbs_w = u64::from(r.ue()?) + 1;
    let map_h = u64::from(r.ue()?) + 1;
    let frame_mbs_only = u64::from(r.bit()?);
    if frame_mbs_only == 0 {
        r.bit()?; // mb_adaptive_frame_field_flag
    }
    r.bit()?; // direct_8x8_inference_flag
    let (mut crop_w, mut crop_h) = (0u64, 0u64);
    if r.bit()? == 1 {
        let (l, rt, t, b) = (r.ue()?, r.ue()?, r.ue()?, r.ue()?);
        let (unit_x, unit_y) = match chroma {
            1 => (2, 2 * (2 - frame_mbs_only)),
            2 => (2, 2 - frame_mbs_only),
            _ => (1, 2 - frame_mbs_only),
        };
        crop_w = unit_x * (u64::from(l) + u64::from(rt));
        crop_h = unit_y * (u64::from(t) + u64::from(b));
    }
    let w = (mbs_w * 16).saturating_sub(crop_w);
    let h = ((2 - frame_mbs_only) * map_h * 16).saturating_sub(crop_h);
    match (u32::try_from(w), u32::try_from(h)) {
        (Ok(w), Ok(h)) if w > 0 && h > 0 && w <= 16384 && h <= 16384 => Ok((w, h)),
        _ => Err(Unsupported("picture size out of range".into())),
    }
}

fn skip_scaling_list(r: &mut BitReader, size: u32) -> Result<(), Unsupported> {
    let (mut last, mut next) = (8i32, 8i32);
    for _ in 0..size {
        if next != 0 {
            next = (last + r.se()? + 256) % 256;
        }
        last = if next == 0 { last } else { next };
    }
    Ok(())
}

/// `av1C` and the size from the sequence header OBU of a temporal unit
/// (low-overhead format: each OBU with its size, as str0m depacketizes).
fn av1_setup(tu: &[u8]) -> Option<VideoSetup> {
    let mut at = 0usize;
    while at < tu.len() {
        let header = tu[at];
        let ty = (header >> 3) & 0x0f;
        let ext = usize::from((header >> 2) & 1);
        if (header >> 1) & 1 == 0 {
            return None; // an OBU without its size: cannot be walked
        }
        let mut payload_at = at + 1 + ext;
        let mut size = 0u64;
        for i in 0..8 {
            let b = *tu.get(payload_at)?;
            payload_at += 1;
            size |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                break;
            }
        }
        let end = payload_at.checked_add(usize::try_from(size).ok()?)?;
        let payload = tu.get(payload_at..end)?;
        if ty == 1 {
            let s = av1_sequence(payload).ok()?;
            // av1C: marker and version 1, then profile and level, tier,
            // bit depth, monochrome, subsampling and chroma position; no
            // initial presentation delay; the sequence header OBU itself.
            let mut av1c = vec![
                0x81,
                (s.profile << 5) as u8 | s.level as u8,
                (s.tier << 7
                    | s.high_bitdepth << 6
                    | s.twelve_bit << 5
                    | s.mono << 4
                    | s.sub_x << 3
                    | s.sub_y << 2
                    | s.chroma_position) as u8,
                0,
            ];
            av1c.extend_from_slice(&tu[at..end]);
            return Some(VideoSetup {
                width: s.width,
                height: s.height,
                codec_private: Some(av1c),
            });
        }
        at = end;
    }
    None
}

struct Av1Sequence {
    profile: u32,
    level: u32,
    tier: u32,
    high_bitdepth: u32,
    twelve_bit: u32,
    mono: u32,
    sub_x: u32,
    sub_y: u32,
    chroma_position: u32,
    width: u32,
    height: u32,
}

/// A sequence header OBU's payload (AV1 specification §5.5).
fn av1_sequence(p: &[u8]) -> Result<Av1Sequence, Unsupported> {
    let mut r = BitReader::new(p);
    let profile = r.bits(3)?;
    r.bit()?; // still_picture
    let reduced = r.bit()? == 1;
    let (level, mut tier) = if reduced {
        (r.bits(5)?, 0)
    } else {
        let mut decoder_model = false;
        let mut delay_bits = 0;
        if r.bit()? == 1 {
            // timing_info
            r.bits(32)?;
            r.bits(32)?;
            if r.bit()? == 1 {
                uvlc(&mut r)?;
            }
            decoder_model = r.bit()? == 1;
            if decoder_model {
                delay_bits = r.bits(5)? + 1;
                r.bits(32)?;
                r.bits(10)?; // buffer_removal_time and frame_presentation_time lengths
            }
        }
        let initial_display_delay = r.bit()? == 1;
        let mut first = None;
        for _ in 0..=r.bits(5)? {
            r.bits(12)?; // operating_point_idc
            let level = r.bits(5)?;
            let tier = if level > 7 { r.bit()? } else { 0 };
            first.get_or_insert((level, tier));
            if decoder_model && r.bit()? == 1 {
                r.bits(delay_bits)?;
                r.bits(delay_bits)?;
                r.bit()?;
            }
            if initial_display_delay && r.bit()? == 1 {
                r.bits(4)?;
            }
        }
        first.unwrap_or((0, 0))
    };
    let wbits = r.bits(4)? + 1;
    let hbits = r.bits(4)? + 1;
    let width = r.bits(wbits)?.saturating_add(1);
    let height = r.bits(hbits)?.saturating_add(1);
    if !reduced && r.bit()? == 1 {
        r.bits(7)?; // frame id lengths
    }
    r.bits(3)?; // 128x128 superblocks, filter intra, intra edge filter
    if !reduced {
        r.bits(4)?; // interintra, masked compound, warped motion, dual filter
        let order_hint = r.bit()? == 1;
        if order_hint {
            r.bits(2)?; // jnt_comp, ref_frame_mvs
        }
        let force_screen_content = if r.bit()? == 1 { 2 } else { r.bit()? };
        if force_screen_content > 0 && r.bit()? == 0 {
            r.bit()?; // seq_force_integer_mv
        }
        if order_hint {
            r.bits(3)?;
        }
    }
    r.bits(3)?; // superres, cdef, restoration
    // color_config
    let high_bitdepth = r.bit()?;
    let twelve_bit = if profile == 2 && high_bitdepth == 1 {
        r.bit()?
    } else {
        0
    };
    let mono = if profile == 1 { 0 } else { r.bit()? };
    let (mut primaries, mut transfer, mut matrix) = (2, 2, 2);
    if r.bit()? == 1 {
        primaries = r.bits(8)?;
        transfer = r.bits(8)?;
        matrix = r.bits(8)?;
    }
    let (mut sub_x, mut sub_y, mut chroma_position) = (1, 1, 0);
    if mono == 1 {
        r.bit()?;
    } else if primaries == 1 && transfer == 13 && matrix == 0 {
        (sub_x, sub_y) = (0, 0);
    } else {
        r.bit()?; // color_range
        match profile {
            0 => {}
            1 => (sub_x, sub_y) = (0, 0),
            _ if twelve_bit == 1 => {
                sub_x = r.bit()?;
                sub_y = if sub_x == 1 { r.bit()? } else { 0 };
            }
            _ => (sub_x, sub_y) = (1, 0),
        }
        if sub_x == 1 && sub_y == 1 {
            chroma_position = r.bits(2)?;
        }
    }
    if level > 31 || profile > 7 {
        tier = 0;
    }
    Ok(Av1Sequence {
        profile: profile.min(7),
        level: level.min(31),
        tier,
        high_bitdepth,
        twelve_bit,
        mono,
        sub_x,
        sub_y,
        chroma_position,
        width,
        height,
    })
}

/// AV1's variable-length unsigned code (§4.10.3).
fn uvlc(r: &mut BitReader) -> Result<u32, Unsupported> {
    let mut zeros = 0;
    while r.bit()? == 0 {
        zeros += 1;
        if zeros >= 32 {
            return Ok(u32::MAX);
        }
    }
    Ok(r.bits(zeros)?.saturating_add((1u32 << zeros) - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first video frame ffmpeg makes of `testsrc` at `size` with the
    /// encoder `args`, in the container `format` (`ivf` or `h264`), and the
    /// bytes after `skip`.
    fn first_frame(size: &str, args: &[&str], format: &str, skip: usize) -> Vec<u8> {
        let out = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-f", "lavfi", "-i"])
            .arg(format!("testsrc=s={size}:d=0.1"))
            .args(["-frames:v", "1"])
            .args(args)
            .args(["-f", format, "-"])
            .output()
            .unwrap();
        assert!(out.stdout.len() > skip, "ffmpeg made a frame: {out:?}");
        out.stdout[skip..].to_vec()
    }

    #[test]
    fn vp9_key_frames_say_their_size() {
        // IVF: a 32-byte file header, then a 12-byte frame header.
        let frame = first_frame("640x360", &["-c:v", "libvpx-vp9"], "ivf", 44);
        assert_eq!(vp9_size(&frame), Some((640, 360)));
        assert_eq!(vp9_size(&frame[..3]), None);
        assert_eq!(vp9_size(b"\x00\x00\x00\x00"), None);
    }

    #[test]
    fn vp8_key_frames_say_their_size() {
        // A key frame tag, the start code, 640 x 360.
        let d = [0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01];
        assert_eq!(vp8_size(&d), Some((640, 360)));
        assert_eq!(vp8_size(&d[..9]), None);
        let mut inter = d;
        inter[0] |= 1;
        assert_eq!(vp8_size(&inter), None);
    }

    #[test]
    fn h264_key_frames_give_avcc_and_their_cropped_size() {
        // 1080 is not a multiple of 16: the SPS crops 1088 to 1080.
        for (size, profile) in [("1920x1080", "high"), ("640x360", "baseline")] {
            let au = first_frame(
                size,
                &[
                    "-c:v",
                    "libx264",
                    "-profile:v",
                    profile,
                    "-pix_fmt",
                    "yuv420p",
                ],
                "h264",
                0,
            );
            let s = setup(Codec::H264, &au).unwrap();
            let (w, h) = size.split_once('x').unwrap();
            assert_eq!(
                (s.width.to_string(), s.height.to_string()),
                (w.into(), h.into())
            );
            let avcc = s.codec_private.unwrap();
            assert_eq!((avcc[0], avcc[4], avcc[5]), (1, 0xff, 0xe1));
            // Every NAL of the unit, length-prefixed, none lost.
            let avc = annexb_to_avc(&au);
            let mut at = 0;
            let mut types = vec![];
            while at < avc.len() {
                let len = u32::from_be_bytes(avc[at..at + 4].try_into().unwrap()) as usize;
                types.push(avc[at + 4] & 0x1f);
                at += 4 + len;
            }
            assert_eq!(at, avc.len());
            assert!(
                types.contains(&7) && types.contains(&8) && types.contains(&5),
                "{types:?}"
            );
        }
        // Without an SPS there is nothing to set up from.
        assert_eq!(setup(Codec::H264, &[0, 0, 0, 1, 0x65, 0x88]), None);
        assert_eq!(setup(Codec::H264, &[0, 0, 0, 1, 0x67]), None);
    }

    #[test]
    fn av1_key_frames_give_av1c_and_their_size() {
        // IVF frame of libaom: temporal delimiter, sequence header, frame.
        let tu = first_frame(
            "640x360",
            &[
                "-c:v",
                "libaom-av1",
                "-cpu-used",
                "8",
                "-usage",
                "realtime",
                "-pix_fmt",
                "yuv420p",
            ],
            "ivf",
            44,
        );
        let s = setup(Codec::Av1, &tu).unwrap();
        assert_eq!((s.width, s.height), (640, 360));
        let av1c = s.codec_private.unwrap();
        assert_eq!(av1c[0], 0x81);
        assert_eq!(av1c[1] >> 5, 0, "main profile");
        assert_eq!(av1c[2] & 0b0001_1100, 0b0000_1100, "4:2:0, not monochrome");
        assert_eq!((av1c[4] >> 3) & 0x0f, 1, "the sequence header OBU follows");
        for cut in [1, 3, 8] {
            assert_eq!(setup(Codec::Av1, &tu[..cut]), None);
        }
    }
}
