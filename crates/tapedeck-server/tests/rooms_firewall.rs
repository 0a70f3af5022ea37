//! Calls through a firewall that blocks UDP to the server: an nftables rule
//! drops every datagram to its media port (root, as CI runs), and Debian's
//! Chromium still joins, is heard by the other participant and recorded:
//! over ICE-TCP (the passive TCP candidate in every answer, the call
//! page's and WHIP's), and through Debian's coturn over TURN-TCP (the
//! server's TCP off; only the relay's datagrams pass).

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use support::firewall::Cut;
use support::rooms::*;
use support::*;
use tapedeck_server::rtc::ice::IceServer;

/// Ann (host, signed in) and Bob (invited) call each other on the call
/// page for `seconds` while the room is recorded; what their pages
/// received, the participants' transports seen by the server during the
/// call, and the completed recording.
async fn call_recorded(s: &Server, seconds: u64) -> (Value, Vec<String>, Value) {
    let host = s.key("ann", false).await;
    let room = new_room(s, &host).await;
    let guest = invite(s, &host, &room, "Bob").await;
    let rec = s
        .create(&host, json!({"source": {"kind": "room", "room": room}}))
        .await;
    let id = rec["id"].as_str().unwrap().to_string();
    let pages = tokio::spawn(page_script(
        "call_cluster.mjs",
        vec![
            s.base.clone(),
            s.base.clone(),
            room.clone(),
            host.clone(),
            guest,
            seconds.to_string(),
        ],
    ));
    // The server's view while both are in: how each one's media arrives.
    let mut transports = vec![];
    for _ in 0..600 {
        let (_, r) = s.get(&host, &format!("/v1/rooms/{room}")).await;
        let list = r["participants"].as_array().cloned().unwrap_or_default();
        let flowing = list
            .iter()
            .filter(|p| p["frames_in"].as_u64().unwrap_or(0) > 30)
            .count();
        if list.len() == 2 && flowing == 2 {
            transports = list
                .iter()
                .map(|p| p["transport"].as_str().unwrap_or("").to_string())
                .collect();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let out = pages.await.unwrap();
    s.post(&host, &format!("/v1/recordings/{id}/stop"), json!({}))
        .await;
    let done = s.wait_status(&host, &id, "completed").await;
    // Each track file decodes and spans the call.
    let tracks = done["tracks"].as_array().unwrap();
    assert_eq!(tracks.len(), 4, "two people, sound and picture: {done}");
    for t in tracks {
        let file = download_track(s, &host, &id, t["id"].as_str().unwrap()).await;
        assert_eq!(decode_errors(&file), "", "{t}");
        let d = duration_s(&file);
        assert!(d > seconds as f64 - 1.0, "{t}: {d} s of a {seconds} s call");
    }
    (out, transports, done)
}

/// Both pages received the other's picture and heard the other's sound.
fn both_saw_and_heard(out: &Value) {
    assert!(out.get("guestErrors").is_none(), "{out}");
    for who in ["host", "guest"] {
        let got = &out[who];
        assert!(
            got["video"]["framesDecoded"].as_u64().unwrap_or(0) > 30,
            "{who}: {out}"
        );
        assert!(
            got["audio"]["packets"].as_u64().unwrap_or(0) > 100,
            "{who}: {out}"
        );
        assert!(
            got["audio"]["energy"].as_f64().unwrap_or(0.0) > 0.0,
            "{who} heard nothing: {out}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_where_udp_is_blocked_goes_over_tcp_and_is_recorded() {
    let s = start(|_| {}).await;
    let tcp = s.state.rtc.tcp_addr.expect("TCP is on by default");
    assert_eq!(tcp.port(), s.state.rtc.addr.port(), "the UDP port's number");
    let _blocked = Cut::udp_to(s.state.rtc.addr.port(), None);
    let (out, transports, _) = call_recorded(&s, 4).await;
    println!("{out}");
    both_saw_and_heard(&out);
    for who in ["host", "guest"] {
        assert_eq!(out[who]["path"]["protocol"], "tcp", "{who}: {out}");
        // Straight to the server (an active TCP end, which Chromium learns
        // as peer-reflexive), no relay.
        assert_ne!(out[who]["path"]["type"], "relay", "{who}: {out}");
    }
    assert_eq!(transports, ["tcp", "tcp"], "as the server saw them");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whip_publisher_where_udp_is_blocked_goes_over_tcp_and_is_recorded() {
    let s = start(|_| {}).await;
    let _blocked = Cut::udp_to(s.state.rtc.addr.port(), None);
    let host = s.key("alice", false).await;
    let room = new_room(&s, &host).await;
    let ann = invite(&s, &host, &room, "Ann").await;
    let rec = s
        .create(&host, json!({"source": {"kind": "room", "room": room}}))
        .await;
    let id = rec["id"].as_str().unwrap().to_string();
    let out = page_script("whip.mjs", vec![s.base.clone(), room, ann, "4".into()]).await;
    println!("{out}");
    assert_eq!(out["status"], 201, "{out}");
    assert_eq!(out["path"]["protocol"], "tcp", "{out}");
    s.post(&host, &format!("/v1/recordings/{id}/stop"), json!({}))
        .await;
    let done = s.wait_status(&host, &id, "completed").await;
    let tracks = done["tracks"].as_array().unwrap();
    assert_eq!(tracks.len(), 2, "{done}");
    for t in tracks {
        let file = download_track(&s, &host, &id, t["id"].as_str().unwrap()).await;
        assert_eq!(decode_errors(&file), "", "{t}");
        assert!(duration_s(&file) > 3.0, "{t}");
    }
}

/// Debian's coturn on loopback: TCP (and UDP) on `port`, relaying from
/// `relay` ports, credentials from a shared secret.
struct Turn {
    child: Child,
    port: u16,
    relay: (u16, u16),
}

const SECRET: &str = "tapedeck-test-secret";

impl Turn {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // Relay ports above Linux's ephemeral range (32768-60999), so no
        // other socket of the machine sends from them.
        let lo = 61_000 + (std::process::id() % 200) as u16 * 20;
        let relay = (lo, lo + 19);
        let dir = tempfile::tempdir().unwrap().keep();
        let mut child = Command::new("turnserver")
            .args([
                "-n",
                "--listening-ip=127.0.0.1",
                "--relay-ip=127.0.0.1",
                &format!("--listening-port={port}"),
                &format!("--min-port={}", relay.0),
                &format!("--max-port={}", relay.1),
                "--use-auth-secret",
                &format!("--static-auth-secret={SECRET}"),
                "--realm=tapedeck.test",
                // The server is on loopback in the test (denied by default).
                "--allow-loopback-peers",
                "--no-cli",
                "--no-tls",
                "--no-dtls",
                "--log-file=stdout",
                &format!("--pidfile={}", dir.join("turn.pid").display()),
                &format!("--userdb={}", dir.join("turn.db").display()),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("turnserver (scripts/setup.sh --test installs coturn)");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Self { child, port, relay };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("turnserver did not listen on {port}");
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_where_only_a_turn_relay_gets_through_goes_over_turn_tcp_and_is_recorded() {
    let turn = Turn::start();
    let s = start(|c| {
        // No ICE-TCP: the relay is the only way in.
        c.rtc.tcp = false;
        c.rtc.ice_servers = vec![IceServer {
            urls: vec![format!("turn:127.0.0.1:{}?transport=tcp", turn.port)],
            username: None,
            credential: None,
            secret: Some(SECRET.into()),
            ttl_s: 600,
        }];
    })
    .await;
    assert_eq!(s.state.rtc.tcp_addr, None);
    let relay = format!("{}-{}", turn.relay.0, turn.relay.1);
    let _blocked = Cut::udp_to(s.state.rtc.addr.port(), Some(&relay));
    let (out, transports, _) = call_recorded(&s, 4).await;
    println!("{out}");
    both_saw_and_heard(&out);
    for who in ["host", "guest"] {
        assert_eq!(out[who]["path"]["type"], "relay", "{who}: {out}");
        assert_eq!(out[who]["path"]["relayProtocol"], "tcp", "{who}: {out}");
    }
    // The relay's datagrams reach the server over UDP.
    assert_eq!(transports, ["udp", "udp"]);
}

/// The call page and WHIP clients are handed the configured servers, with
/// credentials of their own; a caller of another room, or none, is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ice_servers_are_handed_to_the_room_callers_only() {
    let s = start(|c| {
        c.rtc.ice_servers = vec![IceServer {
            urls: vec!["turn:turn.example.com:3478?transport=tcp".into()],
            username: None,
            credential: None,
            secret: Some(SECRET.into()),
            ttl_s: 600,
        }];
    })
    .await;
    let host = s.key("ann", false).await;
    let room = new_room(&s, &host).await;
    let other = new_room(&s, &host).await;
    let bob = invite(&s, &host, &room, "Bob").await;
    let get = |q: String| {
        let c = s.client();
        let url = format!("{}/v1/rooms/{q}", s.base);
        async move {
            let r = c.get(url).send().await.unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (st, r) = get(format!("{room}/ice-servers?token={bob}")).await;
    assert_eq!(st, 200, "{r}");
    let handed = &r["ice_servers"][0];
    assert_eq!(
        handed["urls"],
        json!(["turn:turn.example.com:3478?transport=tcp"])
    );
    let user = handed["username"].as_str().unwrap();
    assert!(user.ends_with(&format!(":guest:{room}:Bob")), "{user}");
    assert!(handed["credential"].as_str().unwrap().len() > 20);
    assert!(
        !r.to_string().contains(SECRET),
        "the secret stays on the server"
    );
    // Bob's invite is for one room; no token, no servers.
    let (st, r) = get(format!("{other}/ice-servers?token={bob}")).await;
    assert_eq!(st, 401, "{r}");
    let (st, r) = get(format!("{room}/ice-servers")).await;
    assert_eq!(st, 401, "{r}");
    // WHIP: OPTIONS hands them as Link headers (RFC 9725 §4.6).
    let r = s
        .client()
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/v1/rooms/{room}/whip", s.base),
        )
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let link = r.headers()["link"].to_str().unwrap().to_string();
    assert!(
        link.starts_with(
            "<turn:turn.example.com:3478?transport=tcp>; rel=\"ice-server\"; username=\""
        ),
        "{link}"
    );
    assert!(link.contains("credential-type=\"password\""), "{link}");
}
