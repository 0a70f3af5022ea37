//! Just enough H.264 bitstream handling to repeat a picture for free.
//!
//! A held frame (the same picture on the next output tick) is written as a
//! reference P slice in which every macroblock is skipped: the decoder copies
//! the previous picture exactly, and the encoder spends no time on it. The
//! skip slices use a second PPS (id 1, CAVLC, deblocking off) so they are a
//! few bytes whatever x264's PPS says; x264's own slices get their
//! `frame_num` renumbered in place to account for the inserted pictures.
//!
//! Preconditions checked on the SPS: POC type 2 (x264 without B-frames),
//! progressive frames, no scaling matrices. Anything else is refused and the
//! caller encodes held frames normally. Written by hand: no crate edits
//! H.264 slice headers.

/// Why a stream cannot take skip pictures.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("h264: {0}")]
pub struct Unsupported(pub String);

fn unsupported<T>(m: &str) -> Result<T, Unsupported> {
    Err(Unsupported(m.to_string()))
}

/// Removes emulation-prevention bytes (00 00 03 -> 00 00).
pub fn unescape(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// Inserts emulation-prevention bytes.
pub fn escape(rbsp: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(rbsp.len() + 8);
    let mut zeros = 0;
    for &b in rbsp {
        if zeros >= 2 && b <= 3 {
            out.push(3);
            zeros = 0;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// Reads bits MSB first.
pub struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    /// A reader at bit 0 of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }
    /// The bit position.
    pub fn pos(&self) -> usize {
        self.pos
    }
    /// One bit.
    pub fn bit(&mut self) -> Result<u32, Unsupported> {
        let byte = self
            .data
            .get(self.pos / 8)
            .ok_or_else(|| Unsupported("truncated".into()))?;
        let b = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Ok(u32::from(b))
    }
    /// `n` bits (n <= 32).
    pub fn bits(&mut self, n: u32) -> Result<u32, Unsupported> {
        let mut v = 0u32;
        for _ in 0..n {
            v = (v << 1) | self.bit()?;
        }
        Ok(v)
    }
    /// Exp-Golomb unsigned.
    pub fn ue(&mut self) -> Result<u32, Unsupported> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return unsupported("bad exp-golomb code");
            }
        }
        Ok(((1u64 << zeros) - 1 + u64::from(self.bits(zeros)?)) as u32)
    }
    /// Exp-Golomb signed.
    pub fn se(&mut self) -> Result<i32, Unsupported> {
        let k = self.ue()?;
        Ok(if k % 2 == 1 {
            (k / 2 + 1) as i32
        } else {
            -((k / 2) as i32)
        })
    }
}

/// Writes bits MSB first.
#[derive(Default)]
pub struct BitWriter {
    out: Vec<u8>,
    bits: u32,
}

impl BitWriter {
    /// One bit.
    pub fn bit(&mut self, b: u32) {
        if self.bits.is_multiple_of(8) {
            self.out.push(0);
        }
        if b & 1 == 1 {
            let last = self.out.len() - 1;
            self.out[last] |= 1 << (7 - self.bits % 8);
        }
        self.bits += 1;
    }
    /// `n` bits of `v`.
    pub fn bits(&mut self, n: u32, v: u32) {
        for i in (0..n).rev() {
            self.bit((v >> i) & 1);
        }
    }
    /// Exp-Golomb unsigned.
    pub fn ue(&mut self, v: u32) {
        let x = u64::from(v) + 1;
        let len = 64 - x.leading_zeros();
        self.bits(len - 1, 0);
        for i in (0..len).rev() {
            self.bit(((x >> i) & 1) as u32);
        }
    }
    /// Exp-Golomb signed.
    pub fn se(&mut self, v: i32) {
        self.ue(if v > 0 {
            (2 * v - 1) as u32
        } else {
            (-2 * v) as u32
        });
    }
    /// rbsp_trailing_bits, then the bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.bit(1);
        self.out
    }
}

/// What the skip pictures need from the SPS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sps {
    /// Its id.
    pub id: u32,
    /// Bits of `frame_num`.
    pub log2_max_frame_num: u32,
    /// Macroblocks in a picture.
    pub mbs: u32,
    /// Separate colour planes (4:4:4) add a field to slice headers.
    pub separate_colour_plane: bool,
}

/// Parses an SPS NAL (with its header byte) and checks it suits skip pictures.
pub fn parse_sps(nal: &[u8]) -> Result<Sps, Unsupported> {
    let rbsp = unescape(nal);
    let mut r = BitReader::new(
        rbsp.get(1..)
            .ok_or_else(|| Unsupported("empty SPS".into()))?,
    );
    let profile = r.bits(8)?;
    r.bits(16)?; // constraint flags, level
    let id = r.ue()?;
    let mut separate_colour_plane = false;
    if [100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135].contains(&profile) {
        let chroma = r.ue()?;
        if chroma == 3 {
            separate_colour_plane = r.bit()? == 1;
        }
        r.ue()?; // bit depth luma
        r.ue()?; // bit depth chroma
        r.bit()?; // qpprime_y_zero_transform_bypass
        if r.bit()? == 1 {
            return unsupported("scaling matrices");
        }
    }
    let log2_max_frame_num = r.ue()?.saturating_add(4);
    if log2_max_frame_num > 16 {
        return unsupported("log2_max_frame_num out of range");
    }
    if r.ue()? != 2 {
        return unsupported("picture order count type is not 2 (B-frames?)");
    }
    r.ue()?; // max_num_ref_frames
    r.bit()?; // gaps_in_frame_num_value_allowed_flag
    let w = r.ue()?.saturating_add(1);
    let h = r.ue()?.saturating_add(1);
    if w > 1024 || h > 1024 {
        return unsupported("picture size out of range");
    }
    if r.bit()? != 1 {
        return unsupported("interlaced");
    }
    Ok(Sps {
        id,
        log2_max_frame_num,
        mbs: w * h,
        separate_colour_plane,
    })
}

/// The PPS (id 1) the skip slices refer to: CAVLC, one reference, deblocking control present.
pub fn skip_pps(sps: &Sps) -> Vec<u8> {
    let mut w = BitWriter::default();
    w.ue(SKIP_PPS_ID);
    w.ue(sps.id);
    w.bit(0); // entropy_coding_mode_flag: CAVLC
    w.bit(0); // bottom_field_pic_order_in_frame_present_flag
    w.ue(0); // num_slice_groups_minus1
    w.ue(0); // num_ref_idx_l0_default_active_minus1
    w.ue(0); // num_ref_idx_l1_default_active_minus1
    w.bit(0); // weighted_pred_flag
    w.bits(2, 0); // weighted_bipred_idc
    w.se(0); // pic_init_qp_minus26
    w.se(0); // pic_init_qs_minus26
    w.se(0); // chroma_qp_index_offset
    w.bit(1); // deblocking_filter_control_present_flag
    w.bit(0); // constrained_intra_pred_flag
    w.bit(0); // redundant_pic_cnt_present_flag
    let mut nal = vec![0x68]; // nal_ref_idc 3, type 8
    nal.extend(escape(&w.finish()));
    nal
}

/// The PPS id of skip slices (x264 uses 0).
pub const SKIP_PPS_ID: u32 = 1;

/// A reference P slice of all-skipped macroblocks: an exact copy of the previous picture.
pub fn skip_slice(sps: &Sps, frame_num: u32) -> Vec<u8> {
    let mut w = BitWriter::default();
    w.ue(0); // first_mb_in_slice
    w.ue(5); // slice_type: P (all slices of the picture)
    w.ue(SKIP_PPS_ID);
    if sps.separate_colour_plane {
        w.bits(2, 0);
    }
    w.bits(sps.log2_max_frame_num, frame_num);
    w.bit(0); // num_ref_idx_active_override_flag
    w.bit(0); // ref_pic_list_modification_flag_l0
    w.bit(0); // adaptive_ref_pic_marking_mode_flag: sliding window
    w.se(0); // slice_qp_delta
    w.ue(1); // disable_deblocking_filter_idc: off
    w.ue(sps.mbs); // mb_skip_run: every macroblock
    let mut nal = vec![0x41]; // nal_ref_idc 2, type 1 (non-IDR slice)
    nal.extend(escape(&w.finish()));
    nal
}

/// NAL unit type.
pub fn nal_type(nal: &[u8]) -> u8 {
    nal.first().map(|b| b & 0x1F).unwrap_or(0)
}

/// Whether a slice NAL starts a new picture (first_mb_in_slice == 0).
pub fn starts_picture(nal: &[u8]) -> bool {
    let rbsp = unescape(&nal[..nal.len().min(16)]);
    matches!(nal_type(nal), 1 | 5)
        && BitReader::new(rbsp.get(1..).unwrap_or(&[])).ue().ok() == Some(0)
}

/// Rewrites `frame_num` of a slice NAL (type 1 or 5) in place of its bits.
pub fn set_frame_num(nal: &[u8], sps: &Sps, frame_num: u32) -> Result<Vec<u8>, Unsupported> {
    // The header is at the front: where no zero byte is near it, escaped
    // and unescaped bytes are the same there, and the rest of the slice
    // (most of the bytes) is copied as it is.
    let head = nal.len().min(32);
    if !nal[..head].contains(&0) {
        let pos = frame_num_pos(&nal[..head], sps);
        if let Ok(pos) = pos {
            let end = (pos + sps.log2_max_frame_num as usize).div_ceil(8);
            // Untouched non-zero bytes after the rewritten ones: no
            // emulation-prevention byte can be needed across the seam.
            if end + 2 <= head {
                let mut out = nal.to_vec();
                write_frame_num(&mut out, pos, sps, frame_num)?;
                if !out[..end].contains(&0) {
                    return Ok(out);
                }
            }
        }
    }
    set_frame_num_unescaped(nal, sps, frame_num)
}

/// [`set_frame_num`] the long way: the whole slice unescaped, rewritten
/// and escaped again.
fn set_frame_num_unescaped(nal: &[u8], sps: &Sps, frame_num: u32) -> Result<Vec<u8>, Unsupported> {
    let mut rbsp = unescape(nal);
    let pos = frame_num_pos(&rbsp, sps)?;
    write_frame_num(&mut rbsp, pos, sps, frame_num)?;
    let mut out = vec![rbsp[0]];
    out.extend(escape(&rbsp[1..]));
    Ok(out)
}

/// The bit position of `frame_num` in a slice NAL's unescaped bytes.
fn frame_num_pos(rbsp: &[u8], sps: &Sps) -> Result<usize, Unsupported> {
    let mut r = BitReader::new(rbsp.get(1..).unwrap_or(&[]));
    r.ue()?; // first_mb_in_slice
    r.ue()?; // slice_type
    r.ue()?; // pps id
    if sps.separate_colour_plane {
        r.bits(2)?;
    }
    Ok(8 + r.pos())
}

fn write_frame_num(
    rbsp: &mut [u8],
    pos: usize,
    sps: &Sps,
    frame_num: u32,
) -> Result<(), Unsupported> {
    for i in 0..sps.log2_max_frame_num as usize {
        let bit = (frame_num >> (sps.log2_max_frame_num as usize - 1 - i)) & 1;
        let (byte, shift) = ((pos + i) / 8, 7 - (pos + i) % 8);
        let b = rbsp
            .get_mut(byte)
            .ok_or_else(|| Unsupported("truncated slice".into()))?;
        *b = (*b & !(1 << shift)) | ((bit as u8) << shift);
    }
    Ok(())
}

/// Splits an Annex B byte stream into NAL units; returns the NALs and the unused tail.
pub fn split_nals(buf: &[u8]) -> (Vec<&[u8]>, usize) {
    let starts: Vec<usize> = memchr::memmem::find_iter(buf, &[0, 0, 1])
        .map(|i| i + 3)
        .collect();
    let mut nals = vec![];
    for w in starts.windows(2) {
        let mut end = w[1] - 3;
        while end > w[0] && buf[end - 1] == 0 {
            end -= 1;
        }
        nals.push(&buf[w[0]..end]);
    }
    // The last NAL may be incomplete: keep it (with its start code) for later.
    let tail = starts
        .last()
        .map(|s| s - 3)
        .unwrap_or(buf.len().saturating_sub(3));
    (nals, tail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn exp_golomb_round_trip() {
        let mut w = BitWriter::default();
        for v in [0u32, 1, 2, 7, 255, 3600, 1 << 20] {
            w.ue(v);
        }
        w.se(-3);
        w.se(4);
        let bytes = w.finish();
        let mut r = BitReader::new(&bytes);
        for v in [0u32, 1, 2, 7, 255, 3600, 1 << 20] {
            assert_eq!(r.ue().unwrap(), v);
        }
        assert_eq!((r.se().unwrap(), r.se().unwrap()), (-3, 4));
    }

    #[test]
    fn split_keeps_the_incomplete_tail() {
        let s = [0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 1, 0x65, 9];
        let (nals, tail) = split_nals(&s);
        assert_eq!(nals, vec![&[0x67, 1, 2][..], &[0x68, 3][..]]);
        assert_eq!(&s[tail..], &[0, 0, 1, 0x65, 9]);
    }

    proptest! {
        #[test]
        fn escape_round_trips_and_has_no_start_codes(data in proptest::collection::vec(0u8..5, 0..200)) {
            let e = escape(&data);
            prop_assert_eq!(unescape(&e), data);
            prop_assert!(!e.windows(3).any(|w| w[0] == 0 && w[1] == 0 && w[2] <= 2));
        }

        #[test]
        fn frame_num_rewritten_in_place_matches_the_long_way(
            first_mb in 0u32..4000,
            slice_type in 0u32..10,
            bits in 4u32..16,
            old in any::<u32>(),
            new in any::<u32>(),
            payload in proptest::collection::vec(prop_oneof![Just(0u8), any::<u8>()], 0..120),
        ) {
            let sps = Sps { id: 0, log2_max_frame_num: bits, mbs: 3600, separate_colour_plane: false };
            let mut w = BitWriter::default();
            w.ue(first_mb);
            w.ue(slice_type);
            w.ue(0);
            w.bits(bits, old & ((1 << bits) - 1));
            for b in &payload {
                w.bits(8, u32::from(*b));
            }
            let mut nal = vec![0x41];
            nal.extend(escape(&w.finish()));
            let fast = set_frame_num(&nal, &sps, new & ((1 << bits) - 1));
            let long = set_frame_num_unescaped(&nal, &sps, new & ((1 << bits) - 1));
            prop_assert_eq!(fast.as_ref().ok(), long.as_ref().ok());
            let out = fast.unwrap();
            prop_assert!(!out.windows(3).any(|w| w[0] == 0 && w[1] == 0 && w[2] <= 2));
        }

        #[test]
        fn parsers_never_panic(data in proptest::collection::vec(any::<u8>(), 0..64), n in 0u32..4096) {
            if let Ok(sps) = parse_sps(&data) {
                let _ = set_frame_num(&data, &sps, n);
            }
            let _ = starts_picture(&data);
            let _ = split_nals(&data);
        }
    }
}
