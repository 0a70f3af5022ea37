//! The media server's limits: a full room, a full server, a peer that
//! never connects, a caller's unconnected sessions.

use super::*;

#[test]
fn a_full_room_and_a_full_server_refuse_with_their_reasons() {
    let mut w = World::new(Limits {
        max_peers: 2,
        ..limits()
    });
    let ann = w.client("Ann");
    let bob = w.client("Bob");
    let cy = w.client("Cy");
    w.join(ann, 1, false).unwrap();
    assert_eq!(
        w.join(bob, 1, false).unwrap_err(),
        SfuError::RoomFull { in_room: 1, max: 1 }
    );
    // The same person's second session is not another participant.
    let ann2 = w.client("Ann");
    w.join(ann2, 1, false).unwrap();
    assert_eq!(
        w.join(cy, 5, false).unwrap_err(),
        SfuError::TooManyPeers { connected: 2 }
    );
    assert_eq!(w.sfu.participants(room()).len(), 2);
}

#[test]
fn a_peer_that_never_connects_is_dropped_at_its_deadline() {
    let mut w = World::new(limits());
    let ann = w.client("Ann");
    w.clients[ann].online = false;
    let peer = w.join(ann, 4, true).unwrap();
    w.run(9_000, false);
    assert_eq!(
        w.sfu.participants(room()).len(),
        1,
        "kept until its deadline"
    );
    w.run(2_000, false);
    assert_eq!(w.sfu.participants(room()).len(), 0);
    assert_eq!(w.ended(peer), Some(Ended::ConnectTimeout));
    assert_eq!(
        w.stats
            .peers_timed_out
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[test]
fn a_caller_holds_few_unconnected_sessions() {
    let mut w = World::new(Limits {
        max_connecting_per_caller: 2,
        ..limits()
    });
    for _ in 0..2 {
        let c = w.client("Ann");
        w.clients[c].online = false;
        w.join(c, 4, false).unwrap();
    }
    let c = w.client("Ann");
    let e = w.join(c, 4, false).unwrap_err();
    assert!(
        matches!(
            e,
            SfuError::TooManyConnecting {
                connecting: 2,
                timeout_s: 10
            }
        ),
        "{e:?}"
    );
}

#[test]
fn a_caller_holds_few_sessions_in_a_room() {
    let mut w = World::new(Limits {
        max_sessions_per_caller: 3,
        ..limits()
    });
    // Ann's sessions connect (each counts, connected or not).
    for _ in 0..3 {
        let c = w.client("Ann");
        w.join(c, 4, false).unwrap();
        w.run(500, false);
    }
    assert_eq!(w.sfu.participants(room()).len(), 3);
    let c = w.client("Ann");
    let e = w.join(c, 4, false).unwrap_err();
    assert!(
        matches!(e, SfuError::TooManySessions { sessions: 3 }),
        "{e:?}"
    );
    // Someone else still gets in.
    let bob = w.client("Bob");
    w.join(bob, 4, false).unwrap();
}
