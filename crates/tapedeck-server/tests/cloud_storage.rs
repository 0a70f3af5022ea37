//! `storage.kind = "gcs"` and `"azure"` end to end, each against a real
//! emulator from the registries: a frames recording is stored in the
//! bucket or container, listed, served (ffprobe), shared and deleted.
//! gcp-storage-emulator (PyPI) implements only GET and PUT of the XML API
//! object_store speaks, so on GCS the recording is stored, listed and
//! served, not shared or deleted (docs/uploads.md says what is tested).

mod support;

use serde_json::json;
use support::*;
use tapedeck_server::config::StorageKind;
use tapedeck_testkit::ffprobe;

/// A frames recording of 15 JPEGs (3 s at 5 fps) made and completed; its id.
async fn record(s: &Server, t: &str) -> String {
    let rec = s
        .create(
            t,
            json!({"source": {"kind": "frames"}, "format": "mp4", "preset": "low"}),
        )
        .await;
    let id = rec["id"].as_str().unwrap().to_string();
    let mut ws = connect(&s.ws_url(&format!("/v1/recordings/{id}/frames"), t)).await;
    send_frames(&mut ws, 15, 200.0, |i| jpeg(854, 480, i)).await;
    s.post(t, &format!("/v1/recordings/{id}/stop"), json!({}))
        .await;
    s.wait_status(t, &id, "completed").await;
    id
}

/// Stored in the store (listed there when `store_lists`), listed by the
/// API, and served: the right media.
async fn stored_listed_served(s: &Server, t: &str, id: &str, store_lists: bool) {
    if store_lists {
        let keys = s
            .state
            .blobs
            .list(&format!("recordings/{id}"))
            .await
            .unwrap();
        assert!(keys.iter().any(|k| k.ends_with("/media.mp4")), "{keys:?}");
    }
    let size = s
        .state
        .blobs
        .size(&format!("recordings/{id}/media.mp4"))
        .await;
    assert!(size.unwrap() > 0);
    let (st, list) = s.get(t, "/v1/recordings").await;
    assert_eq!(st, 200);
    assert!(
        list["recordings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == id),
        "{list}"
    );
    let m = ffprobe(&s.download(t, id, "mp4").await);
    assert_eq!(
        (m.codec.as_str(), m.width, m.height, m.frames),
        ("h264", 854, 480, 72)
    );
    let (st, _) = s.get(t, &format!("/v1/recordings/{id}/thumbnail")).await;
    assert_eq!(st, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_on_azure_blob_storage() {
    let az = tapedeck_testkit::azure();
    let s = start(|c| {
        on_azure(c, &az);
    })
    .await;
    assert_eq!(s.state.blobs.kind(), "azure");
    let t = s.key("alice", false).await;
    let id = record(&s, &t).await;
    stored_listed_served(&s, &t, &id, true).await;
    // A share link is the container's own SAS URL.
    let (st, share) = s
        .post(&t, &format!("/v1/recordings/{id}/share"), json!({}))
        .await;
    assert_eq!(st, 200, "{share}");
    let url = share["url"].as_str().unwrap();
    assert!(
        url.starts_with(&az.endpoint) && url.contains("sig="),
        "{url}"
    );
    let r = reqwest::get(url).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(s.delete(&t, &format!("/v1/recordings/{id}")).await, 204);
    assert!(
        s.state
            .blobs
            .list(&format!("recordings/{id}"))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_on_google_cloud_storage() {
    let g = tapedeck_testkit::gcs();
    let s = start(|c| {
        c.storage.kind = StorageKind::Gcs;
        c.storage.bucket = g.bucket.clone();
        c.storage.endpoint = Some(g.endpoint.clone());
        c.storage.credentials = Some(g.credentials.clone());
    })
    .await;
    assert_eq!(s.state.blobs.kind(), "gcs");
    let t = s.key("alice", false).await;
    let id = record(&s, &t).await;
    stored_listed_served(&s, &t, &id, false).await;
}
