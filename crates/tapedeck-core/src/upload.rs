//! The tus 1.0.0 protocol's outside input, parsed without I/O: the header
//! values a client sends (`Upload-Length`, `Upload-Offset`,
//! `Upload-Defer-Length`, `Upload-Checksum`, `Tus-Resumable`) and
//! `Upload-Metadata`, with what tapedeck reads from it.
//!
//! Every parser refuses what the protocol does not allow, with a message
//! naming the header; none panics (fuzzed by `tus_headers`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// The protocol version spoken.
pub const TUS_VERSION: &str = "1.0.0";
/// The extensions `OPTIONS` advertises.
pub const TUS_EXTENSIONS: &str =
    "creation,creation-with-upload,creation-defer-length,termination,expiration,checksum";
/// The checksum algorithms taken.
pub const TUS_CHECKSUMS: &str = "sha1,sha256";
/// `Upload-Metadata` longer than this is refused.
pub const MAX_METADATA_BYTES: usize = 4096;

/// A header the client got wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{header}: {message}")]
pub struct HeaderError {
    /// The header's name.
    pub header: &'static str,
    /// What is wrong with it.
    pub message: String,
}

fn bad(header: &'static str, message: impl Into<String>) -> HeaderError {
    HeaderError {
        header,
        message: message.into(),
    }
}

/// A byte count (`Upload-Length`, `Upload-Offset`): decimal digits only.
pub fn parse_count(header: &'static str, value: &str) -> Result<u64, HeaderError> {
    if value.is_empty() || value.len() > 20 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(
            header,
            format!("{value:?} is not a non-negative integer"),
        ));
    }
    value
        .parse()
        .map_err(|_| bad(header, format!("{value:?} is too large")))
}

/// `Upload-Defer-Length`: only `1` is allowed.
pub fn parse_defer_length(value: &str) -> Result<(), HeaderError> {
    if value == "1" {
        Ok(())
    } else {
        Err(bad("Upload-Defer-Length", format!("{value:?} is not 1")))
    }
}

/// `Tus-Resumable` must name the version spoken.
pub fn check_resumable(value: Option<&str>) -> Result<(), HeaderError> {
    match value {
        Some(TUS_VERSION) => Ok(()),
        Some(v) => Err(bad(
            "Tus-Resumable",
            format!("version {v:?} is not spoken (only {TUS_VERSION})"),
        )),
        None => Err(bad(
            "Tus-Resumable",
            format!("missing (send {TUS_VERSION})"),
        )),
    }
}

/// A checksum algorithm of the checksum extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumAlgorithm {
    /// SHA-1 (what tus-js-client and most clients send).
    Sha1,
    /// SHA-256.
    Sha256,
}

impl ChecksumAlgorithm {
    /// The digest length in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            ChecksumAlgorithm::Sha1 => 20,
            ChecksumAlgorithm::Sha256 => 32,
        }
    }
}

/// Why `Upload-Checksum` is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChecksumError {
    /// An algorithm that is not taken (the protocol says 400).
    #[error("Upload-Checksum: algorithm {0:?} is not supported ({TUS_CHECKSUMS})")]
    Unsupported(String),
    /// Not `ALGORITHM BASE64`.
    #[error("Upload-Checksum: {0}")]
    Invalid(String),
}

/// `Upload-Checksum`: `ALGORITHM BASE64-DIGEST`.
pub fn parse_checksum(value: &str) -> Result<(ChecksumAlgorithm, Vec<u8>), ChecksumError> {
    let (algo, digest) = value
        .split_once(' ')
        .ok_or_else(|| ChecksumError::Invalid("not \"ALGORITHM DIGEST\"".into()))?;
    let algo = match algo {
        "sha1" => ChecksumAlgorithm::Sha1,
        "sha256" => ChecksumAlgorithm::Sha256,
        other => return Err(ChecksumError::Unsupported(other.chars().take(32).collect())),
    };
    let digest = STANDARD
        .decode(digest.trim())
        .map_err(|e| ChecksumError::Invalid(format!("the digest is not base64: {e}")))?;
    if digest.len() != algo.digest_len() {
        return Err(ChecksumError::Invalid(format!(
            "a {algo:?} digest is {} bytes, not {}",
            algo.digest_len(),
            digest.len()
        )));
    }
    Ok((algo, digest))
}

/// What an upload says about itself in `Upload-Metadata`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadMetadata {
    /// The file's name on the client.
    pub filename: Option<String>,
    /// Its media type (`video/webm`).
    pub filetype: Option<String>,
    /// The recording's title.
    pub title: Option<String>,
    /// A room the upload belongs to.
    pub room: Option<String>,
    /// A format to transcode to (`mp4`, `webm`, `mkv`).
    pub format: Option<String>,
    /// A quality preset for the transcode.
    pub preset: Option<String>,
    /// Outputs made from the file (`[{"kind": "hls"}]`), as JSON.
    pub outputs: Option<String>,
}

/// `Upload-Metadata`: comma-separated `KEY BASE64-VALUE` pairs (the value
/// may be left out). Keys must be unique and free of spaces and commas.
/// Values of the keys tapedeck reads must be UTF-8 text of at most 256
/// characters; other keys are ignored.
pub fn parse_metadata(value: &str) -> Result<UploadMetadata, HeaderError> {
    const H: &str = "Upload-Metadata";
    if value.len() > MAX_METADATA_BYTES {
        return Err(bad(H, format!("longer than {MAX_METADATA_BYTES} bytes")));
    }
    let mut m = UploadMetadata::default();
    let mut seen: Vec<&str> = vec![];
    for pair in value.split(',') {
        let pair = pair.trim();
        if pair.is_empty() {
            continue;
        }
        let (key, encoded) = match pair.split_once(' ') {
            Some((k, v)) => (k, Some(v.trim())),
            None => (pair, None),
        };
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad(H, format!("key {key:?} is not a token")));
        }
        if seen.contains(&key) {
            return Err(bad(H, format!("key {key:?} is given twice")));
        }
        seen.push(key);
        let slot = match key {
            "filename" | "name" => &mut m.filename,
            "filetype" | "type" => &mut m.filetype,
            "title" => &mut m.title,
            "room" => &mut m.room,
            "format" => &mut m.format,
            "preset" => &mut m.preset,
            "outputs" => &mut m.outputs,
            _ => continue,
        };
        let bytes = match encoded {
            Some(v) => STANDARD
                .decode(v)
                .map_err(|e| bad(H, format!("the value of {key:?} is not base64: {e}")))?,
            None => vec![],
        };
        let text = String::from_utf8(bytes)
            .map_err(|_| bad(H, format!("the value of {key:?} is not UTF-8")))?;
        if text.chars().count() > 256 || text.chars().any(char::is_control) {
            return Err(bad(
                H,
                format!(
                    "the value of {key:?} is longer than 256 characters or has control characters"
                ),
            ));
        }
        if slot.is_none() {
            *slot = Some(text);
        }
    }
    Ok(m)
}

/// `Upload-Metadata` for `m`, as `HEAD` gives it back.
pub fn format_metadata(m: &UploadMetadata) -> String {
    [
        ("filename", &m.filename),
        ("filetype", &m.filetype),
        ("title", &m.title),
        ("room", &m.room),
        ("format", &m.format),
        ("preset", &m.preset),
        ("outputs", &m.outputs),
    ]
    .iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k} {}", STANDARD.encode(v))))
    .collect::<Vec<_>>()
    .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_plain_decimal() {
        assert_eq!(parse_count("Upload-Length", "0"), Ok(0));
        assert_eq!(parse_count("Upload-Length", "12345"), Ok(12345));
        for bad in [
            "",
            "-1",
            "+1",
            "1.5",
            " 1",
            "0x10",
            "99999999999999999999999",
        ] {
            let e = parse_count("Upload-Offset", bad).unwrap_err();
            assert_eq!(e.header, "Upload-Offset", "{bad}");
        }
        assert!(parse_defer_length("1").is_ok());
        assert!(parse_defer_length("0").is_err());
        assert!(check_resumable(Some("1.0.0")).is_ok());
        assert!(check_resumable(Some("0.2.2")).is_err());
        assert!(check_resumable(None).is_err());
    }

    #[test]
    fn checksums_name_an_algorithm_and_a_digest_of_its_length() {
        let sha1 = "sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0=";
        assert_eq!(parse_checksum(sha1).unwrap().0, ChecksumAlgorithm::Sha1);
        assert!(matches!(
            parse_checksum("md5 1B2M2Y8AsgTpgAmY7PhCfg=="),
            Err(ChecksumError::Unsupported(_))
        ));
        assert!(matches!(
            parse_checksum("sha1"),
            Err(ChecksumError::Invalid(_))
        ));
        assert!(matches!(
            parse_checksum("sha256 Kq5sNclPz7QV2+lfQIuc6R7oRu0="),
            Err(ChecksumError::Invalid(_))
        ));
        assert!(matches!(
            parse_checksum("sha1 !!!"),
            Err(ChecksumError::Invalid(_))
        ));
    }

    #[test]
    fn metadata_pairs_are_read_and_written_back() {
        // What tus-js-client sends for {filename: "a b.webm", filetype: "video/webm"}.
        let m = parse_metadata("filename YSBiLndlYm0=,filetype dmlkZW8vd2VibQ==,is_confidential")
            .unwrap();
        assert_eq!(m.filename.as_deref(), Some("a b.webm"));
        assert_eq!(m.filetype.as_deref(), Some("video/webm"));
        assert_eq!(parse_metadata(&format_metadata(&m)), Ok(m));
        assert_eq!(parse_metadata(""), Ok(UploadMetadata::default()));
        for bad in [
            "filename !!!",
            "filename YQ==,filename Yg==",
            "title /w==",
            "title AQ==",
        ] {
            assert_eq!(
                parse_metadata(bad).unwrap_err().header,
                "Upload-Metadata",
                "{bad}"
            );
        }
        assert!(parse_metadata(&"x".repeat(5000)).is_err());
    }
}
