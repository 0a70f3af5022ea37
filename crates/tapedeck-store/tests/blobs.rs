//! Blob storage on local disk and on a real S3 server (s3s-fs with SigV4).

use std::time::Duration;

use futures::TryStreamExt;
use sha2::{Digest, Sha256};
use tapedeck_store::blob::{BlobConfig, BlobError, Blobs};

async fn contract(blobs: &Blobs) {
    // 20 MiB: three multipart parts.
    let data: Vec<u8> = (0..20 * 1024 * 1024u32)
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

    assert!(matches!(
        blobs.get("recordings/nope", None).await,
        Err(BlobError::NotFound(_))
    ));
    blobs.check().await.unwrap();
    blobs.delete("recordings/rec_x/media.mp4").await.unwrap();
    blobs.delete("recordings/rec_x/media.mp4").await.unwrap();
    assert!(matches!(
        blobs.size("recordings/rec_x/media.mp4").await,
        Err(BlobError::NotFound(_))
    ));
}

#[tokio::test]
async fn local() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = Blobs::open(&BlobConfig::Local {
        root: dir.path().join("media"),
    })
    .unwrap();
    contract(&blobs).await;
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
    contract(&blobs).await;

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
    // A tampered signature is refused by the server.
    let u = url.as_str();
    let at = u.find("X-Amz-Signature=").unwrap() + "X-Amz-Signature=".len();
    let flipped = if &u[at..at + 1] == "0" { "1" } else { "0" };
    let bad = format!("{}{}{}", &u[..at], flipped, &u[at + 1..]);
    assert_eq!(reqwest::get(bad).await.unwrap().status(), 403);
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
