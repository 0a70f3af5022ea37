//! Blobs: media and thumbnails on local disk or in an S3-compatible bucket.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::signer::Signer;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, WriteMultipart};
use sha2::{Digest, Sha256};
use tapedeck_core::ErrorCode;
use tokio::io::AsyncReadExt;

/// Where blobs live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobConfig {
    /// A folder on local disk.
    Local {
        /// The root folder.
        root: PathBuf,
    },
    /// An S3-compatible bucket.
    S3 {
        /// Bucket name.
        bucket: String,
        /// Endpoint URL (None: AWS).
        endpoint: Option<String>,
        /// Region.
        region: String,
        /// Access key id.
        access_key: String,
        /// Secret key.
        secret_key: String,
    },
}

/// A blob operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// No such object.
    #[error("object {0} not found")]
    NotFound(String),
    /// The requested byte range is not in the object.
    #[error("range not satisfiable")]
    Range,
    /// The store failed.
    #[error("storage: {0}")]
    Store(#[from] object_store::Error),
    /// Reading the local file to upload failed.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

impl ErrorCode for BlobError {
    fn code(&self) -> &'static str {
        match self {
            BlobError::NotFound(_) => "not_found",
            BlobError::Range => "range_not_satisfiable",
            _ => "storage_error",
        }
    }
    fn status(&self) -> u16 {
        match self {
            BlobError::NotFound(_) => 404,
            BlobError::Range => 416,
            _ => 503,
        }
    }
}

fn map_err(key: &str, e: object_store::Error) -> BlobError {
    match e {
        object_store::Error::NotFound { .. } => BlobError::NotFound(key.to_string()),
        object_store::Error::NotModified { .. } | object_store::Error::Precondition { .. } => {
            BlobError::Range
        }
        e => BlobError::Store(e),
    }
}

/// What was stored by [`Blobs::put_file`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Bytes written.
    pub size: u64,
    /// SHA-256 of the content, hex.
    pub sha256: String,
}

/// A readable slice of an object.
pub struct Download {
    /// The bytes.
    pub stream: BoxStream<'static, Result<Bytes, BlobError>>,
    /// The range served.
    pub range: Range<u64>,
    /// The whole object's size.
    pub total: u64,
}

/// The blob store.
#[derive(Clone, Debug)]
pub struct Blobs {
    store: Arc<dyn ObjectStore>,
    s3: Option<Arc<AmazonS3>>,
}

/// Upload part size: large enough for S3's 5 MiB minimum.
const PART: usize = 8 * 1024 * 1024;

impl Blobs {
    /// Opens the store described by `cfg`.
    pub fn open(cfg: &BlobConfig) -> Result<Self, BlobError> {
        match cfg {
            BlobConfig::Local { root } => {
                std::fs::create_dir_all(root).map_err(|e| BlobError::Io {
                    path: root.display().to_string(),
                    source: e,
                })?;
                let fs = LocalFileSystem::new_with_prefix(root)?;
                Ok(Self {
                    store: Arc::new(fs),
                    s3: None,
                })
            }
            BlobConfig::S3 {
                bucket,
                endpoint,
                region,
                access_key,
                secret_key,
            } => {
                let mut b = AmazonS3Builder::new()
                    .with_bucket_name(bucket)
                    .with_region(region)
                    .with_access_key_id(access_key)
                    .with_secret_access_key(secret_key);
                if let Some(ep) = endpoint {
                    b = b
                        .with_endpoint(ep)
                        .with_allow_http(ep.starts_with("http://"))
                        .with_virtual_hosted_style_request(false);
                }
                let s3 = Arc::new(b.build()?);
                Ok(Self {
                    store: s3.clone(),
                    s3: Some(s3),
                })
            }
        }
    }

    /// `local` or `s3`.
    pub fn kind(&self) -> &'static str {
        if self.s3.is_some() { "s3" } else { "local" }
    }

    /// Streams a local file into `key` (multipart), hashing it on the way.
    pub async fn put_file(&self, key: &str, file: &Path) -> Result<Stored, BlobError> {
        let io = |e| BlobError::Io {
            path: file.display().to_string(),
            source: e,
        };
        let mut f = tokio::fs::File::open(file).await.map_err(io)?;
        let path = ObjectPath::from(key);
        let upload = self
            .store
            .put_multipart(&path)
            .await
            .map_err(|e| map_err(key, e))?;
        let mut w = WriteMultipart::new_with_chunk_size(upload, PART);
        let mut hash = Sha256::new();
        let mut size = 0u64;
        let mut buf = vec![0u8; 1024 * 1024];
        let sent: Result<(), BlobError> = async {
            loop {
                let n = f.read(&mut buf).await.map_err(io)?;
                if n == 0 {
                    return Ok(());
                }
                hash.update(&buf[..n]);
                size += n as u64;
                w.wait_for_capacity(4).await.map_err(|e| map_err(key, e))?;
                w.write(&buf[..n]);
            }
        }
        .await;
        if let Err(e) = sent {
            // Parts already with the store would otherwise stay there,
            // unseen and billed, until a lifecycle rule removes them.
            if let Err(abort) = w.abort().await {
                tracing::warn!(key, error = %abort, "aborting a failed multipart upload failed");
            }
            return Err(e);
        }
        w.finish().await.map_err(|e| map_err(key, e))?;
        Ok(Stored {
            size,
            sha256: hex::encode(hash.finalize()),
        })
    }

    /// Stores small bytes (thumbnails).
    pub async fn put_bytes(&self, key: &str, bytes: Vec<u8>) -> Result<(), BlobError> {
        self.store
            .put(&ObjectPath::from(key), bytes.into())
            .await
            .map_err(|e| map_err(key, e))?;
        Ok(())
    }

    /// Reads `key`, or `range` of it (end exclusive, clamped to the size).
    pub async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Download, BlobError> {
        let path = ObjectPath::from(key);
        let opts = GetOptions {
            range: range.map(GetRange::Bounded),
            ..Default::default()
        };
        let r = self
            .store
            .get_opts(&path, opts)
            .await
            .map_err(|e| map_err(key, e))?;
        let total = r.meta.size;
        let served = r.range.clone();
        let owned_key = key.to_string();
        let stream = r
            .into_stream()
            .map(move |c| c.map_err(|e| map_err(&owned_key, e)))
            .boxed();
        Ok(Download {
            stream,
            range: served,
            total,
        })
    }

    /// Size of `key`.
    pub async fn size(&self, key: &str) -> Result<u64, BlobError> {
        Ok(self
            .store
            .head(&ObjectPath::from(key))
            .await
            .map_err(|e| map_err(key, e))?
            .size)
    }

    /// Deletes `key`; a missing key is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), BlobError> {
        match self.store.delete(&ObjectPath::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(BlobError::Store(e)),
        }
    }

    /// A presigned GET URL valid for `expires_in` (S3 only; local storage returns None).
    pub async fn presign_get(
        &self,
        key: &str,
        expires_in: Duration,
    ) -> Result<Option<url::Url>, BlobError> {
        self.presign(object_store::signer::Method::GET, key, expires_in)
            .await
    }

    /// A presigned PUT URL valid for `expires_in`: a client uploads `key`
    /// straight to the bucket (S3 only; local storage returns None).
    pub async fn presign_put(
        &self,
        key: &str,
        expires_in: Duration,
    ) -> Result<Option<url::Url>, BlobError> {
        self.presign(object_store::signer::Method::PUT, key, expires_in)
            .await
    }

    async fn presign(
        &self,
        method: object_store::signer::Method,
        key: &str,
        expires_in: Duration,
    ) -> Result<Option<url::Url>, BlobError> {
        match &self.s3 {
            Some(s3) => Ok(Some(
                s3.signed_url(method, &ObjectPath::from(key), expires_in)
                    .await
                    .map_err(|e| map_err(key, e))?,
            )),
            None => Ok(None),
        }
    }

    /// Checks the store accepts writes and reads (readiness).
    pub async fn check(&self) -> Result<(), BlobError> {
        // Under the prefix recordings are stored at: a writable root with a
        // read-only `recordings/` would otherwise pass.
        let key = "recordings/_readyz";
        self.put_bytes(key, b"ok".to_vec()).await?;
        self.size(key).await?;
        self.delete(key).await
    }
}
