//! An uploaded file as its client described it (an upload recording's
//! source), and how a direct upload is cut into parts (S3 multipart, or
//! tapedeck's own part URLs on local storage): at most 10 000 parts.

use serde::{Deserialize, Serialize};

/// An uploaded file, as its client described it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadSource {
    /// The file's name on the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// Its media type as the client said (`video/webm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filetype: Option<String>,
    /// Its size (`Upload-Length`); none while the client defers it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u64>,
    /// The room it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<crate::RoomId>,
    /// Transcode to the recording's `format` and `preset` (they were asked
    /// for); otherwise the file is kept as it came, fixed up.
    #[serde(default)]
    pub transcode: bool,
    /// SHA-256 of the bytes received (hex), once they all arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Sent with one PUT to a presigned URL (the bucket's, or one signed by
    /// tapedeck), then completed with `POST /v1/recordings/{id}/complete`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub direct: bool,
    /// The SHA-256 (hex) the client said the file has: checked at complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_sha256: Option<String>,
    /// Sent in parts, each to its own presigned URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multipart: Option<MultipartSpec>,
    /// Sent by a call's guest (their name in the call, from an invite's
    /// join token): the upload is the room host's, filed under the room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest: Option<String>,
}

/// A direct upload in parts: part `n` (from 1) holds bytes
/// `(n-1)*part_size ..` up to `part_size` of them; the last holds the rest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultipartSpec {
    /// Bytes per part (all but the last).
    pub part_size: u64,
    /// How many parts.
    pub parts: u32,
    /// The bucket's id of the multipart upload (none on local storage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_id: Option<String>,
}

impl MultipartSpec {
    /// The parts of a `size`-byte file for a wanted `part_size`: at most
    /// 10 000 parts (S3's limit), the size raised to fit.
    pub fn plan(size: u64, part_size: u64) -> Self {
        let part_size = part_size.max(size.div_ceil(10_000)).max(1);
        Self {
            part_size,
            parts: size.div_ceil(part_size) as u32,
            upload_id: None,
        }
    }

    /// The size of part `n` (from 1) of a `size`-byte file; None outside.
    pub fn part_len(&self, size: u64, n: u32) -> Option<u64> {
        if n == 0 || n > self.parts {
            return None;
        }
        let start = u64::from(n - 1) * self.part_size;
        Some((size - start).min(self.part_size))
    }
}

#[cfg(test)]
mod tests {
    use super::MultipartSpec;

    #[test]
    fn parts_cover_the_file_and_stay_under_ten_thousand() {
        let m = MultipartSpec::plan(100, 30);
        assert_eq!((m.part_size, m.parts), (30, 4));
        let lens: Vec<u64> = (0..=5).filter_map(|n| m.part_len(100, n)).collect();
        assert_eq!(lens, [30, 30, 30, 10]);
        let m = MultipartSpec::plan(90, 30);
        assert_eq!(m.parts, 3);
        assert_eq!(m.part_len(90, 3), Some(30));
        let big = 1u64 << 40;
        let m = MultipartSpec::plan(big, 16 << 20);
        assert!(m.parts <= 10_000);
        assert_eq!(
            (1..=m.parts)
                .map(|n| m.part_len(big, n).unwrap())
                .sum::<u64>(),
            big
        );
    }
}
