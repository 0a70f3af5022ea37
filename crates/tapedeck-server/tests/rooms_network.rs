//! A call's network, as it is outside a test: a participant whose network
//! path drops for a while and comes back, and a server whose candidates
//! name its public address rather than the one it is bound to. The
//! publisher is Debian's Chromium over WHIP (tests/e2e/whip.mjs); the path
//! is cut with an nftables rule dropping every packet to and from the
//! server's media ports, UDP and ICE-TCP (root, as CI runs).

mod support;

use std::net::IpAddr;
use std::time::Duration;

use serde_json::{Value, json};
use support::firewall::Cut;
use support::rooms::*;
use support::*;

/// The room's participants now.
async fn participants(s: &Server, host: &str, room: &str) -> Vec<Value> {
    let (_, r) = s.get(host, &format!("/v1/rooms/{room}")).await;
    r["participants"].as_array().cloned().unwrap_or_default()
}

/// Ann publishes for `cut_s + 8` seconds; 2 s after her media flows, her
/// path is cut for `cut_s`. She must stay in the call and her return must
/// continue her own two track files, with the cut as a gap.
async fn drop_and_return(cut_s: u64) {
    let s = start(|_| {}).await;
    let host = s.key("alice", false).await;
    let room_id = new_room(&s, &host).await;
    let ann = invite(&s, &host, &room_id, "Ann").await;
    let rec = s
        .create(&host, json!({"source": {"kind": "room", "room": room_id}}))
        .await;
    let id = rec["id"].as_str().unwrap().to_string();
    let seconds = cut_s + 8;
    let publisher = tokio::spawn(page_script(
        "whip.mjs",
        vec![s.base.clone(), room_id.clone(), ann, seconds.to_string()],
    ));
    for _ in 0..300 {
        let p = participants(&s, &host, &room_id).await;
        if p.first().and_then(|p| p["frames_in"].as_u64()).unwrap_or(0) > 10 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let frames = |p: &[Value]| p.first().and_then(|p| p["frames_in"].as_u64());
    {
        // Both ways in: with only UDP cut, the call would go on over
        // ICE-TCP (tests/rooms_firewall.rs).
        let tcp = s.state.rtc.tcp_addr.map(|a| a.port());
        let _cut = Cut::media(s.state.rtc.addr.port(), tcp);
        tokio::time::sleep(Duration::from_millis(cut_s * 1000 - 500)).await;
        // Half a second before the path comes back: still in the call.
        let during = participants(&s, &host, &room_id).await;
        assert_eq!(during.len(), 1, "Ann is kept while her path is down");
        let before = frames(&during);
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(
            frames(&participants(&s, &host, &room_id).await),
            before,
            "nothing arrives while the path is cut"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let out = publisher.await.unwrap();
    assert_eq!(out["status"], 201, "{out}");
    // Her session still existed when she left.
    assert_eq!(out["deleteStatus"], 204, "{out}");
    s.post(&host, &format!("/v1/recordings/{id}/stop"), json!({}))
        .await;
    let done = s.wait_status(&host, &id, "completed").await;
    let tracks = done["tracks"].as_array().unwrap();
    println!("{}", serde_json::to_string(tracks).unwrap());
    assert_eq!(tracks.len(), 2, "the same two track files: {done}");
    for t in tracks {
        let file = download_track(&s, &host, &id, t["id"].as_str().unwrap()).await;
        assert_eq!(decode_errors(&file), "", "{t}");
        let (dur, gap) = (duration_s(&file), largest_gap(&file));
        println!(
            "{} {}: {dur:.3} s, largest gap {gap:.3} s",
            t["kind"], t["codec"]
        );
        // The file spans the call, the time after the cut included.
        assert!(dur > seconds as f64 - 1.5, "{t}: {dur} s of {seconds}");
        if t["kind"] == "audio" {
            // Audio is not retransmitted: the cut is its gap.
            let want = cut_s as f64;
            assert!(gap > want - 0.5 && gap < want + 2.0, "{t}: gap {gap}");
        } else {
            // Video after the cut comes from a key frame; packets resent
            // after the cut may fill its last part.
            assert!(gap < cut_s as f64 + 2.0, "{t}: gap {gap}");
            let p = tapedeck_testkit::ffprobe(&file);
            assert!(p.frames as f64 > (seconds - cut_s) as f64 * 10.0, "{p:?}");
        }
    }
}

/// The case: a path cut for 3 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_whose_path_drops_for_3_s_continues_in_the_same_tracks() {
    drop_and_return(3).await;
}

/// Cut for longer than ICE takes to notice (about 13 s without a check):
/// the server keeps the participant through its reconnect grace, and
/// asks for a key frame when the path is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_whose_path_drops_for_17_s_is_kept_and_continues() {
    drop_and_return(17).await;
}

/// This host's address on its default route (what a public address is
/// to a test: reachable, and not the loopback the server binds for it).
fn outward_ip() -> IpAddr {
    let probe = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    // UDP connect sends nothing; it picks the route's source address.
    probe
        .connect("203.0.113.1:9")
        .expect("a default route (the test needs a non-loopback address)");
    probe.local_addr().unwrap().ip()
}

/// With `rtc.public_ip` set the socket is bound to every interface and
/// the candidate names the public address: ICE must match a request to
/// the candidate, not to the 0.0.0.0 the socket is bound to (it did not).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_bound_to_every_interface_answers_at_its_public_address() {
    let ip = outward_ip();
    assert!(!ip.is_loopback() && !ip.is_unspecified(), "{ip}");
    let s = start(|c| c.rtc.public_ip = Some(ip)).await;
    assert_eq!(s.state.rtc.addr.ip(), ip);
    let host = s.key("alice", false).await;
    let room_id = new_room(&s, &host).await;
    let guest = invite(&s, &host, &room_id, "Pub").await;
    let publisher = tokio::spawn(page_script(
        "whip.mjs",
        vec![s.base.clone(), room_id.clone(), guest, "3".into()],
    ));
    let mut most = 0;
    for _ in 0..100 {
        let p = participants(&s, &host, &room_id).await;
        most = most.max(p.first().and_then(|p| p["frames_in"].as_u64()).unwrap_or(0));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let out = publisher.await.unwrap();
    assert_eq!(out["status"], 201, "{out}");
    assert!(out["connectedMs"].as_u64().is_some(), "connected: {out}");
    assert!(most > 30, "frames arrived at {ip}: {most}");
}
