//! Blobs: media and thumbnails on local disk, in an S3-compatible bucket,
//! on Google Cloud Storage or in Azure Blob Storage (all through
//! object_store).

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tapedeck_core::Code;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as ObjectPath;
use object_store::signer::{SignedUrlOptions, Signer};
use object_store::{
    ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, WriteMultipart,
};
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
    /// A Google Cloud Storage bucket.
    Gcs {
        /// Bucket name.
        bucket: String,
        /// A service account JSON file (None: the application default
        /// credentials). Signed URLs need a service account's key.
        credentials: Option<PathBuf>,
        /// Base URL (None: Google's; an emulator's otherwise).
        endpoint: Option<String>,
    },
    /// An Azure Blob Storage container.
    Azure {
        /// Storage account.
        account: String,
        /// Container name.
        container: String,
        /// The account's access key (None: the environment's credentials).
        access_key: Option<String>,
        /// The account's URL (None: `https://ACCOUNT.blob.core.windows.net`;
        /// an emulator's, such as Azurite's `http://HOST:PORT/ACCOUNT`).
        endpoint: Option<String>,
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
    fn code(&self) -> Code {
        match self {
            BlobError::NotFound(_) => Code::NotFound,
            BlobError::Range => Code::RangeNotSatisfiable,
            _ => Code::StorageError,
        }
    }
}

impl From<BlobError> for tapedeck_core::Problem {
    fn from(e: BlobError) -> Self {
        tapedeck_core::Problem::from_code(e)
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
    /// Presigned URLs, where the store makes them.
    signer: Option<Arc<dyn Signer>>,
    /// S3: presigned multipart uploads (parts signed with their query).
    s3: Option<Arc<AmazonS3>>,
    kind: &'static str,
    /// A local store's folder.
    local_root: Option<std::path::PathBuf>,
}

/// A multipart upload a client sends straight to the bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectMultipart {
    /// The store's id of the upload.
    pub upload_id: String,
    /// A presigned `PUT` URL per part, part 1 first.
    pub part_urls: Vec<url::Url>,
}

fn client_options(endpoint: &Option<String>) -> ClientOptions {
    ClientOptions::new()
        .with_allow_http(endpoint.as_ref().is_some_and(|e| e.starts_with("http://")))
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
                    local_root: Some(root.clone()),
                    store: Arc::new(fs),
                    signer: None,
                    s3: None,
                    kind: "local",
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
                    signer: Some(s3.clone()),
                    s3: Some(s3),
                    kind: "s3",
                    local_root: None,
                })
            }
            BlobConfig::Gcs {
                bucket,
                credentials,
                endpoint,
            } => {
                let mut b = GoogleCloudStorageBuilder::new()
                    .with_bucket_name(bucket)
                    .with_client_options(client_options(endpoint));
                if let Some(path) = credentials {
                    b = b.with_service_account_path(path.display().to_string());
                }
                if let Some(ep) = endpoint {
                    b = b.with_base_url(ep);
                }
                let gcs = Arc::new(b.build()?);
                Ok(Self {
                    store: gcs.clone(),
                    signer: Some(gcs),
                    s3: None,
                    kind: "gcs",
                    local_root: None,
                })
            }
            BlobConfig::Azure {
                account,
                container,
                access_key,
                endpoint,
            } => {
                let mut b = MicrosoftAzureBuilder::new()
                    .with_account(account)
                    .with_container_name(container)
                    .with_client_options(client_options(endpoint));
                if let Some(k) = access_key {
                    b = b.with_access_key(k);
                }
                if let Some(ep) = endpoint {
                    b = b.with_endpoint(ep.clone());
                }
                let az = Arc::new(b.build()?);
                Ok(Self {
                    store: az.clone(),
                    signer: Some(az),
                    s3: None,
                    kind: "azure",
                    local_root: None,
                })
            }
        }
    }

    /// Where `key` is on this machine's disk, for a local store (a
    /// program that reads files, as ffmpeg does, is given the path).
    pub fn local_path(&self, key: &str) -> Option<std::path::PathBuf> {
        let root = self.local_root.as_ref()?;
        let path = ObjectPath::parse(key).ok()?;
        Some(
            path.parts()
                .fold(root.clone(), |p, part| p.join(part.as_ref())),
        )
    }

    /// `local`, `s3`, `gcs` or `azure`.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// Whether blobs live in a bucket (not on this machine's disk).
    pub fn is_bucket(&self) -> bool {
        self.kind != "local"
    }

    /// The keys under `prefix`, sorted.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, BlobError> {
        let mut keys: Vec<String> = self
            .store
            .list(Some(&ObjectPath::from(prefix)))
            .map(|m| m.map(|m| m.location.to_string()))
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()
            .map_err(|e| map_err(prefix, e))?;
        keys.sort();
        Ok(keys)
    }

    /// Streams a local file into `key` (multipart), hashing it on the way.
    pub async fn put_file(&self, key: &str, file: &Path) -> Result<Stored, BlobError> {
        let io = |e| BlobError::Io {
            path: file.display().to_string(),
            source: e,
        };
        let mut f = tokio::fs::File::open(file).await.map_err(io)?;
        let path = ObjectPath::from(key);
        // A file of one part goes in one request.
        let len = f.metadata().await.map_err(io)?.len();
        if len <= PART as u64 {
            let mut bytes = Vec::with_capacity(len as usize);
            f.read_to_end(&mut bytes).await.map_err(io)?;
            let stored = Stored {
                size: bytes.len() as u64,
                sha256: hex::encode(Sha256::digest(&bytes)),
            };
            self.store
                .put(&path, bytes.into())
                .await
                .map_err(|e| map_err(key, e))?;
            return Ok(stored);
        }
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

    /// Reads all of a small object (a manifest, a shipped segment);
    /// `None` when there is no such object.
    pub async fn get_bytes(&self, key: &str) -> Result<Option<Vec<u8>>, BlobError> {
        match self.store.get(&ObjectPath::from(key)).await {
            Ok(r) => Ok(Some(r.bytes().await.map_err(|e| map_err(key, e))?.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(map_err(key, e)),
        }
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

    /// A presigned GET URL valid for `expires_in` (None on local storage).
    pub async fn presign_get(
        &self,
        key: &str,
        expires_in: Duration,
    ) -> Result<Option<url::Url>, BlobError> {
        self.presign(object_store::signer::Method::GET, key, expires_in)
            .await
    }

    /// A presigned PUT URL valid for `expires_in`: a client uploads `key`
    /// straight to the bucket (None on local storage).
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
        match &self.signer {
            Some(s) => Ok(Some(
                s.signed_url(method, &ObjectPath::from(key), expires_in)
                    .await
                    .map_err(|e| map_err(key, e))?,
            )),
            None => Ok(None),
        }
    }

    /// Starts a multipart upload of `parts` parts to `key` a client sends
    /// straight to the bucket, each part with its own presigned URL (S3
    /// only: None elsewhere).
    pub async fn presign_multipart(
        &self,
        key: &str,
        parts: u32,
        expires_in: Duration,
    ) -> Result<Option<DirectMultipart>, BlobError> {
        let Some(s3) = &self.s3 else {
            return Ok(None);
        };
        let path = ObjectPath::from(key);
        let upload_id = s3
            .create_multipart(&path)
            .await
            .map_err(|e| map_err(key, e))?;
        let mut part_urls = Vec::with_capacity(parts as usize);
        for n in 1..=parts {
            let opts = SignedUrlOptions::default().with_query([
                ("partNumber", n.to_string()),
                ("uploadId", upload_id.clone()),
            ]);
            part_urls.push(
                s3.signed_url_opts(object_store::signer::Method::PUT, &path, expires_in, &opts)
                    .await
                    .map_err(|e| map_err(key, e))?,
            );
        }
        Ok(Some(DirectMultipart {
            upload_id,
            part_urls,
        }))
    }

    /// Completes a multipart upload of [`Blobs::presign_multipart`] from
    /// the parts' ETags, part 1 first.
    pub async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        etags: Vec<String>,
    ) -> Result<(), BlobError> {
        let Some(s3) = &self.s3 else {
            return Err(BlobError::NotFound(key.to_string()));
        };
        let parts = etags
            .into_iter()
            .map(|content_id| PartId { content_id })
            .collect();
        s3.complete_multipart(&ObjectPath::from(key), &upload_id.to_string(), parts)
            .await
            .map_err(|e| map_err(key, e))?;
        Ok(())
    }

    /// Drops a multipart upload's parts.
    pub async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), BlobError> {
        if let Some(s3) = &self.s3 {
            s3.abort_multipart(&ObjectPath::from(key), &upload_id.to_string())
                .await
                .map_err(|e| map_err(key, e))?;
        }
        Ok(())
    }

    /// Checks the store accepts writes and reads (readiness).
    pub async fn check(&self) -> Result<(), BlobError> {
        // Under the prefix recordings are stored at: a writable root with a
        // read-only `recordings/` would otherwise pass. A key of this check's
        // own: the nodes of a cluster check one bucket at once, and one's
        // delete must not fail another's read.
        static CHECKS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let n = CHECKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let key = format!("recordings/_readyz-{}-{nanos}-{n}", std::process::id());
        self.put_bytes(&key, b"ok".to_vec()).await?;
        let read = self.size(&key).await;
        let deleted = self.delete(&key).await;
        read?;
        deleted
    }
}
