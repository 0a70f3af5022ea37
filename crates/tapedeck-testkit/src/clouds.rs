//! Cloud storage emulators for the storage tests, started once per test
//! process: gcp-storage-emulator (PyPI) for Google Cloud Storage and
//! Azurite (npm) for Azure Blob Storage.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::{DB_COUNTER, free_port, scratch, spawn_watched, tools_cache, wait_port};

/// One HTTP/1.1 request to `127.0.0.1:port` over a plain socket (the
/// emulators' set-up calls); the status code. A server that has bound its
/// port may still reset the first connections while it starts (the GCS
/// emulator did in a full run), so a failed connection is tried again for
/// up to 30 s before the test fails.
fn raw_http(port: u16, head: &str, body: &[u8]) -> u16 {
    use std::io::{Read, Write};
    let attempt = || -> std::io::Result<String> {
        let mut s = TcpStream::connect(("127.0.0.1", port))?;
        s.write_all(head.as_bytes())?;
        s.write_all(body)?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    };
    let start = std::time::Instant::now();
    let out = loop {
        match attempt() {
            Ok(out) if !out.is_empty() => break out,
            Ok(_) if start.elapsed() < std::time::Duration::from_secs(30) => {}
            Err(_) if start.elapsed() < std::time::Duration::from_secs(30) => {}
            Ok(_) => panic!("port {port} closed the connection without an answer"),
            Err(e) => panic!("port {port}: {e}"),
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    out.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// A Google Cloud Storage emulator (gcp-storage-emulator from PyPI).
pub struct Gcs {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// A fresh bucket.
    pub bucket: String,
    /// A service account file that points object_store at the emulator
    /// (`gcs_base_url`) without OAuth.
    pub credentials: PathBuf,
}

static GCS_SERVER: OnceLock<(u16, PathBuf)> = OnceLock::new();
static GCS_FRONT: OnceLock<u16> = OnceLock::new();
static ETAGS: AtomicU32 = AtomicU32::new(0);

/// A proxy in front of gcp-storage-emulator for the parts of the XML API
/// object_store uses and the emulator lacks: it adds the `ETag` and
/// `Last-Modified` headers its XML answers leave out (real GCS sends them,
/// and object_store needs them) and turns HEAD into GET; everything else passes through as it is. Returns
/// its port.
fn etag_front(upstream: u16) -> u16 {
    use std::io::{BufRead, BufReader, Write};
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for client in l.incoming().flatten() {
            std::thread::spawn(move || {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    return;
                };
                let (c_in, mut s_out) = (
                    client.try_clone().expect("clone"),
                    server.try_clone().expect("clone"),
                );
                // It has no HEAD on its XML paths either: a HEAD goes up
                // as a GET, and the body of the answer is dropped.
                let mut c_in = BufReader::new(c_in);
                let mut first = String::new();
                if c_in.read_line(&mut first).unwrap_or(0) == 0 {
                    return;
                }
                let head_only = first.starts_with("HEAD ");
                if head_only {
                    first = first.replacen("HEAD ", "GET ", 1);
                }
                if s_out.write_all(first.as_bytes()).is_err() {
                    return;
                }
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c_in, &mut s_out);
                    let _ = s_out.shutdown(std::net::Shutdown::Write);
                });
                // The emulator answers in HTTP/1.0: one response per
                // connection, ended by closing it.
                let mut from = BufReader::new(server);
                let mut to = client;
                let mut head = Vec::new();
                let (mut etag, mut modified) = (false, false);
                loop {
                    let mut line = String::new();
                    if from.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let lower = line.to_ascii_lowercase();
                    etag |= lower.starts_with("etag:");
                    modified |= lower.starts_with("last-modified:");
                    if line == "\r\n" {
                        if !etag {
                            let n = ETAGS.fetch_add(1, Ordering::SeqCst);
                            head.extend_from_slice(format!("ETag: \"front-{n}\"\r\n").as_bytes());
                        }
                        if !modified {
                            let now = httpdate::fmt_http_date(std::time::SystemTime::now());
                            head.extend_from_slice(format!("Last-Modified: {now}\r\n").as_bytes());
                        }
                        head.extend_from_slice(b"\r\n");
                        break;
                    }
                    head.extend_from_slice(line.as_bytes());
                }
                if to.write_all(&head).is_ok() && !head_only {
                    let _ = std::io::copy(&mut from, &mut to);
                }
            });
        }
    });
    port
}

/// A fresh bucket on the GCS emulator started for this test process.
pub fn gcs() -> Gcs {
    let (port, root) = GCS_SERVER.get_or_init(|| {
        let bin = tools_cache().join("gcs-emulator/bin/gcp-storage-emulator");
        assert!(
            bin.is_file(),
            "{} is missing: run scripts/setup.sh --test",
            bin.display()
        );
        let root = scratch("gcs");
        let port = free_port();
        let log = root.join("gcs.log");
        spawn_watched(
            &format!(
                "{} start --host 127.0.0.1 --port {port} --in-memory --quiet",
                bin.display()
            ),
            &log,
            &root,
        );
        wait_port(port, "gcp-storage-emulator", &log);
        (port, root)
    });
    let front = *GCS_FRONT.get_or_init(|| etag_front(*port));
    // No "-": object_store percent-encodes it in the path, and the
    // emulator matches bucket names before decoding.
    let bucket = format!("bucket{}", DB_COUNTER.fetch_add(1, Ordering::SeqCst));
    let body = format!("{{\"name\": \"{bucket}\"}}");
    let status = raw_http(
        *port,
        &format!(
            "POST /storage/v1/b?project=test HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        ),
        body.as_bytes(),
    );
    assert_eq!(status, 200, "creating bucket {bucket} on the GCS emulator");
    let endpoint = format!("http://127.0.0.1:{front}");
    let credentials = root.join(format!("{bucket}.json"));
    std::fs::write(
        &credentials,
        format!(
            r#"{{"private_key": "unused", "private_key_id": "unused", "client_email": "test@example.com", "disable_oauth": true, "gcs_base_url": "{endpoint}"}}"#
        ),
    )
    .expect("service account file");
    Gcs {
        endpoint,
        bucket,
        credentials,
    }
}

/// An Azure Blob Storage emulator (Azurite from npm, installed in
/// tests/e2e), with its well-known development account.
pub struct Azure {
    /// The account's URL, `http://127.0.0.1:PORT/devstoreaccount1`.
    pub endpoint: String,
    /// `devstoreaccount1`.
    pub account: String,
    /// The account's well-known key.
    pub access_key: String,
    /// A fresh container.
    pub container: String,
}

/// Azurite's development account key (public: it is in Azure's documentation).
const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

static AZURITE: OnceLock<u16> = OnceLock::new();

/// A fresh container on the Azurite started for this test process.
pub fn azure() -> Azure {
    use base64::Engine;
    use hmac::Mac;
    let port = *AZURITE.get_or_init(|| {
        let bin = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/e2e/node_modules/.bin/azurite-blob");
        assert!(
            bin.is_file(),
            "{} is missing: run scripts/setup.sh --test",
            bin.display()
        );
        let root = scratch("azurite");
        let port = free_port();
        let log = root.join("azurite.log");
        spawn_watched(
            &format!(
                "{} --blobHost 127.0.0.1 --blobPort {port} --location {} --skipApiVersionCheck",
                bin.display(),
                root.display()
            ),
            &log,
            &root,
        );
        wait_port(port, "azurite", &log);
        port
    });
    let account = "devstoreaccount1";
    let container = format!("container-{}", DB_COUNTER.fetch_add(1, Ordering::SeqCst));
    // Create Container, signed with the account key (Shared Key).
    let date = httpdate::fmt_http_date(std::time::SystemTime::now());
    let version = "2021-08-06";
    let to_sign = format!(
        "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n/{account}/{account}/{container}\nrestype:container"
    );
    let key = base64::engine::general_purpose::STANDARD
        .decode(AZURITE_KEY)
        .expect("key");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).expect("hmac");
    mac.update(to_sign.as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let status = raw_http(
        port,
        &format!(
            "PUT /{account}/{container}?restype=container HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nx-ms-date: {date}\r\nx-ms-version: {version}\r\nAuthorization: SharedKey {account}:{sig}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
        b"",
    );
    assert_eq!(status, 201, "creating container {container} on Azurite");
    Azure {
        endpoint: format!("http://127.0.0.1:{port}/{account}"),
        account: account.into(),
        access_key: AZURITE_KEY.into(),
        container,
    }
}
