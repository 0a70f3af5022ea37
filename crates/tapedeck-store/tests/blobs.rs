//! Blob storage on local disk, on a real S3 server (s3s-fs with SigV4), on
//! a Google Cloud Storage emulator (gcp-storage-emulator) and on an Azure
//! Blob Storage emulator (Azurite, Shared Key and SAS).

use std::time::Duration;

use futures::TryStreamExt;
use sha2::{Digest, Sha256};
use tapedeck_store::blob::{BlobConfig, BlobError, Blobs};

/// Stores and reads a file of `mib` MiB (over 8: in multipart parts);
/// when `full`, lists and deletes too.
async fn contract(blobs: &Blobs, mib: u32, full: bool) {
    let data: Vec<u8> = (0..mib * 1024 * 1024)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("media.bin");
    std::fs::write(&file, &data).unwrap();
    let stored = blobs
        .put_file("recordings/rec_x/media.mp4", &file)
        .await
        .unwrap();
    assert_eq!(stored.size, data.len() as u64);
    assert_eq!(stored.sha256, hex::encode(Sha256::digest(&data)));
    assert_eq!(
        blobs.size("recordings/rec_x/media.mp4").await.unwrap(),
        data.len() as u64
    );

    let d = blobs
        .get("recordings/rec_x/media.mp4", Some(1000..1100))
        .await
        .unwrap();
    assert_eq!((d.range.clone(), d.total), (1000..1100, data.len() as u64));
    let got: Vec<u8> = d.stream.map_ok(|b| b.to_vec()).try_concat().await.unwrap();
    assert_eq!(&got[..], &data[1000..1100]);

    let whole = blobs.get("recordings/rec_x/media.mp4", None).await.unwrap();
    let got: Vec<u8> = whole
        .stream
        .map_ok(|b| b.to_vec())
        .try_concat()
        .await
        .unwrap();
    assert_eq!(got.len(), data.len());

    blobs
        .put_bytes("recordings/rec_x/poster.jpg", b"poster".to_vec())
        .await
        .unwrap();
    assert!(matches!(
        blobs.get("recordings/nope", None).await,
        Err(BlobError::NotFound(_))
    ));
    if !full {
        return;
    }
    assert_eq!(
        blobs.list("recordings/rec_x").await.unwrap(),
        ["recordings/rec_x/media.mp4", "recordings/rec_x/poster.jpg"]
    );
    blobs.delete("recordings/rec_x/poster.jpg").await.unwrap();
    blobs.check().await.unwrap();
    blobs.delete("recordings/rec_x/media.mp4").await.unwrap();
    blobs.delete("recordings/rec_x/media.mp4").await.unwrap();
    assert!(matches!(
        blobs.size("recordings/rec_x/media.mp4").await,
        Err(BlobError::NotFound(_))
    ));
    assert!(blobs.list("recordings/rec_x").await.unwrap().is_empty());
}

#[tokio::test]
async fn local() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = Blobs::open(&BlobConfig::Local {
        root: dir.path().join("media"),
    })
    .unwrap();
    contract(&blobs, 20, true).await;
    contract(&blobs, 3, true).await;
    assert_eq!(
        blobs
            .presign_get("x", Duration::from_secs(60))
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn s3_with_presigned_urls() {
    let s3 = tapedeck_testkit::s3();
    let cfg = BlobConfig::S3 {
        bucket: s3.bucket.clone(),
        endpoint: Some(s3.endpoint.clone()),
        region: "us-east-1".into(),
        access_key: s3.access_key.clone(),
        secret_key: s3.secret_key.clone(),
    };
    let blobs = Blobs::open(&cfg).unwrap();
    contract(&blobs, 20, true).await;

    // A tampered signature is refused by the server.
    presigned_get_is_signed(&blobs, "X-Amz-Signature").await;
    // Wrong credentials are refused.
    let wrong = Blobs::open(&BlobConfig::S3 {
        bucket: s3.bucket,
        endpoint: Some(s3.endpoint),
        region: "us-east-1".into(),
        access_key: s3.access_key,
        secret_key: "wrong".into(),
    })
    .unwrap();
    assert!(wrong.check().await.is_err());
}

#[tokio::test]
async fn gcs_emulator() {
    let g = tapedeck_testkit::gcs();
    let blobs = Blobs::open(&BlobConfig::Gcs {
        bucket: g.bucket.clone(),
        credentials: Some(g.credentials.clone()),
        endpoint: Some(g.endpoint.clone()),
    })
    .unwrap();
    assert_eq!(blobs.kind(), "gcs");
    // The emulator implements little of the XML API object_store speaks
    // (its own is the JSON API): GET and PUT, but no multipart upload, no
    // listing and no DELETE (501). So: one part's worth, in one request,
    // stored and read back, whole and in ranges (testkit's front fills in
    // the headers the emulator leaves out). Real GCS does the rest; it is
    // not tested here.
    contract(&blobs, 6, false).await;
}

#[tokio::test]
async fn azure_emulator_with_signed_urls() {
    let a = tapedeck_testkit::azure();
    let cfg = |key: &str| BlobConfig::Azure {
        account: a.account.clone(),
        container: a.container.clone(),
        access_key: Some(key.to_string()),
        endpoint: Some(a.endpoint.clone()),
    };
    let blobs = Blobs::open(&cfg(&a.access_key)).unwrap();
    assert_eq!(blobs.kind(), "azure");
    contract(&blobs, 20, true).await;

    // A SAS URL made with the account key: a plain GET reads the blob, a
    // tampered one is refused.
    presigned_get_is_signed(&blobs, "sig").await;
    // A presigned PUT: a client that is not tapedeck uploads with it.
    let put = blobs
        .presign_put("uploads/rec_z", Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    let r = reqwest::Client::new()
        .put(put)
        .header("x-ms-blob-type", "BlockBlob")
        .body(vec![7u8; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    assert_eq!(blobs.size("uploads/rec_z").await.unwrap(), 1000);
    // Wrong credentials are refused.
    let wrong = Blobs::open(&cfg("d3Jvbmc=")).unwrap();
    assert!(wrong.check().await.is_err());
}

/// A presigned GET reads a stored object, and the same URL with one
/// character of its `param` (the signature) changed is refused with 403.
async fn presigned_get_is_signed(blobs: &Blobs, param: &str) {
    blobs
        .put_bytes("recordings/rec_y/poster.jpg", b"poster".to_vec())
        .await
        .unwrap();
    let url = blobs
        .presign_get("recordings/rec_y/poster.jpg", Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    let body = reqwest::get(url.clone()).await.unwrap();
    assert_eq!(body.status(), 200);
    assert_eq!(&body.bytes().await.unwrap()[..], b"poster");
    let u = url.as_str();
    let at = u.find(&format!("{param}=")).unwrap() + param.len() + 1;
    // Hex and base64 both have 0 and 1.
    let flipped = if &u[at..at + 1] == "0" { "1" } else { "0" };
    let bad = format!("{}{}{}", &u[..at], flipped, &u[at + 1..]);
    assert_eq!(reqwest::get(bad).await.unwrap().status(), 403);
}

/// The readiness check of several nodes on one bucket at once: each has a
/// key of its own, so none fails another's (one shared key did: a delete
/// between another's write and read).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn checks_at_once_on_one_bucket_all_pass() {
    let s3 = tapedeck_testkit::s3();
    let cfg = BlobConfig::S3 {
        bucket: s3.bucket.clone(),
        endpoint: Some(s3.endpoint.clone()),
        region: "us-east-1".into(),
        access_key: s3.access_key.clone(),
        secret_key: s3.secret_key.clone(),
    };
    let nodes: Vec<Blobs> = (0..3).map(|_| Blobs::open(&cfg).unwrap()).collect();
    let mut checks = vec![];
    for round in 0..20 {
        for b in &nodes {
            let b = b.clone();
            checks.push(tokio::spawn(async move {
                b.check().await.map_err(|e| format!("{round}: {e}"))
            }));
        }
    }
    for c in checks {
        c.await.unwrap().unwrap();
    }
    // Nothing left behind.
    assert!(nodes[0].list("recordings/").await.unwrap().is_empty());
}
