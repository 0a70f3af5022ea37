//! ICE-TCP through the media server: a publisher whose network blocks
//! UDP, and a server without a TCP port.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use str0m::net::Protocol;
use tapedeck_media::rtc::Endpoints;

use super::{SERVER, World, limits, room};
use crate::rtc::sfu::{Input, Reply, Sfu};
use crate::rtc::{PeerId, RoomMedia, RtcStats};

/// A network that blocks UDP: a publisher with only a TCP candidate
/// connects to the server's passive TCP one, and its media reaches the
/// room and a call page on UDP alike; every datagram to it goes over TCP.
#[test]
fn a_publisher_over_tcp_only_is_recorded_and_forwarded() {
    let mut w = World::new(limits());
    let ann = w.client_over("Ann", Protocol::Tcp);
    let bob = w.client("Bob");
    let ann_peer = w.join(ann, 4, false).unwrap();
    let bob_peer = w.join(bob, 4, true).unwrap();
    w.run(1_000, false);
    assert!(w.clients[ann].connected, "Ann connected over TCP");
    let _ = w.sfu.handle(w.now, Input::Subscribe { room: room() });
    w.run(2_000, true);
    let ann_frames = w
        .media_of(room())
        .into_iter()
        .filter(|m| matches!(m, RoomMedia::Frame(f) if f.peer == ann_peer))
        .count();
    assert!(
        ann_frames > 80,
        "{ann_frames} frames of Ann for the recording"
    );
    assert!(w.clients[bob].got.len() > 40, "Bob got Ann's pictures");
    let list = w.sfu.participants(room());
    let transport = |p: PeerId| list.iter().find(|x| x.peer == p).unwrap().transport;
    assert_eq!(transport(ann_peer), "tcp");
    assert_eq!(transport(bob_peer), "udp");
}

/// A server without TCP takes no TCP datagram.
#[test]
fn tcp_datagrams_are_strays_where_the_server_has_no_tcp_port() {
    let stats = Arc::new(RtcStats::default());
    let now = Instant::now();
    let only_udp = Endpoints::from(SERVER.parse::<SocketAddr>().unwrap());
    let mut sfu = Sfu::new(only_udp, limits(), stats.clone(), now);
    let input = Input::Datagram {
        proto: Protocol::Tcp,
        from: "10.9.9.9:1234".parse().unwrap(),
        data: b"\x00\x01\x00\x00junkjunk",
    };
    assert_eq!(sfu.handle(now, input), Ok(Reply::Done));
    assert_eq!(
        stats
            .datagrams_stray
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}
