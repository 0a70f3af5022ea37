//! A video track's picture size, read from its first key frame (what the
//! track file's header needs before the first frame is written).

/// Width and height from a VP9 key frame's uncompressed header (VP9
/// bitstream specification §6.2): frame marker, profile, flags, sync code,
/// colour config, then the size.
pub(super) fn vp9_size(d: &[u8]) -> Option<(u32, u32)> {
    let mut bits = Bits { d, at: 0 };
    if bits.read(2)? != 2 {
        return None;
    }
    let low = bits.read(1)?;
    let profile = (bits.read(1)? << 1) | low;
    if profile == 3 {
        bits.read(1)?;
    }
    // show_existing_frame, then frame_type (0: key frame).
    if bits.read(1)? != 0 || bits.read(1)? != 0 {
        return None;
    }
    bits.read(2)?; // show_frame, error_resilient_mode
    if bits.read(24)? != 0x49_83_42 {
        return None;
    }
    if profile >= 2 {
        bits.read(1)?; // ten_or_twelve_bit
    }
    let color_space = bits.read(3)?;
    if color_space != 7 {
        bits.read(1)?; // color_range
        if profile == 1 || profile == 3 {
            bits.read(3)?; // subsampling x, y, reserved
        }
    } else if profile == 1 || profile == 3 {
        bits.read(1)?;
    }
    let w = bits.read(16)? + 1;
    let h = bits.read(16)? + 1;
    Some((w, h))
}

/// A big-endian bit reader over a byte slice.
struct Bits<'a> {
    d: &'a [u8],
    at: usize,
}

impl Bits<'_> {
    fn read(&mut self, n: usize) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            let byte = *self.d.get(self.at / 8)?;
            v = (v << 1) | u32::from((byte >> (7 - self.at % 8)) & 1);
            self.at += 1;
        }
        Some(v)
    }
}

/// Width and height from a VP8 key frame (RFC 6386 §9.1).
pub(super) fn vp8_size(d: &[u8]) -> Option<(u32, u32)> {
    if d.len() < 10 || d[0] & 1 != 0 || d[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let w = u32::from(u16::from_le_bytes([d[6], d[7]]) & 0x3fff);
    let h = u32::from(u16::from_le_bytes([d[8], d[9]]) & 0x3fff);
    (w > 0 && h > 0).then_some((w, h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp9_key_frames_say_their_size() {
        // What libvpx-vp9 writes first for a 640x360 profile-0 key frame.
        let out = std::process::Command::new("ffmpeg")
            .args([
                "-v",
                "error",
                "-f",
                "lavfi",
                "-i",
                "testsrc=s=640x360:d=0.1",
            ])
            .args(["-frames:v", "1", "-c:v", "libvpx-vp9", "-f", "ivf", "-"])
            .output()
            .unwrap();
        let ivf = out.stdout;
        assert!(ivf.len() > 44, "ffmpeg made an IVF file");
        let frame = &ivf[32 + 12..];
        assert_eq!(vp9_size(frame), Some((640, 360)));
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
}
