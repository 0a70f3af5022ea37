//! Media files that lie about themselves, for tests of what tapedeck
//! refuses.

use std::process::Command;

use crate::run_ok;

/// A VP8 WebM of two 256x256 black pictures whose keyframe headers and
/// track header are rewritten to declare `width` x `height` (each below
/// 16384): what a hostile upload of huge pictures looks like to a demuxer
/// and to a decoder's first look, in a few KB. Encoding two real
/// 16000x16000 pictures takes 11 GB and half a minute; the lie is found
/// by the same check (the decoder reads the size from the keyframe header
/// before it allocates the picture).
pub fn declared_size_webm(width: u16, height: u16) -> Vec<u8> {
    assert!(width < 1 << 14 && height < 1 << 14, "VP8 sizes are 14 bits");
    let dir = std::env::temp_dir().join(format!(
        "tapedeck-declared-{}-{width}x{height}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("small.webm");
    run_ok(
        Command::new("ffmpeg")
            .args(["-y", "-v", "error", "-f", "lavfi", "-i"])
            .args(["color=c=black:s=256x256:r=2", "-frames:v", "2", "-g", "1"])
            .args(["-c:v", "libvpx", "-b:v", "50k"])
            .arg(&file),
        "ffmpeg (apt-get install ffmpeg)",
    );
    let mut bytes = std::fs::read(&file).expect("the small WebM");
    let _ = std::fs::remove_dir_all(&dir);
    // VP8 keyframe: start code 9d 01 2a, then 14-bit width and height
    // little-endian (2 bits of scale above each, 0 here).
    let key: [u8; 7] = [0x9d, 0x01, 0x2a, 0x00, 0x01, 0x00, 0x01];
    let mut declared = [0x9d, 0x01, 0x2a, 0, 0, 0, 0];
    declared[3..5].copy_from_slice(&width.to_le_bytes());
    declared[5..7].copy_from_slice(&height.to_le_bytes());
    let keys = replace_all(&mut bytes, &key, &declared);
    assert_eq!(keys, 2, "two keyframe headers");
    // Matroska PixelWidth (b0) and PixelHeight (ba), two-byte values.
    let (w, h) = (width.to_be_bytes(), height.to_be_bytes());
    let pw = replace_all(
        &mut bytes,
        &[0xb0, 0x82, 0x01, 0x00],
        &[0xb0, 0x82, w[0], w[1]],
    );
    let ph = replace_all(
        &mut bytes,
        &[0xba, 0x82, 0x01, 0x00],
        &[0xba, 0x82, h[0], h[1]],
    );
    assert_eq!((pw, ph), (1, 1), "one track header");
    bytes
}

/// Replaces every `from` in `bytes` by `to` (the same length): how many.
fn replace_all(bytes: &mut [u8], from: &[u8], to: &[u8]) -> usize {
    let mut n = 0;
    let mut i = 0;
    while i + from.len() <= bytes.len() {
        if &bytes[i..i + from.len()] == from {
            bytes[i..i + from.len()].copy_from_slice(to);
            n += 1;
            i += from.len();
        } else {
            i += 1;
        }
    }
    n
}
