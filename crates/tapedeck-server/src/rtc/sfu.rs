//! The media server task: one UDP socket, every peer, one loop.
//!
//! Cost is per event, not per peer: a datagram goes to the peer its source
//! address belongs to (a new address is matched once with `Rtc::accepts`,
//! which reads the STUN username), and a peer's timer is woken only when
//! its own `poll_output` deadline is due (a heap of deadlines). str0m's
//! chat example scans every peer per datagram and times out every peer per
//! loop, which at 200 peers and ~180 packets/s each is millions of calls a
//! second.
//!
//! A peer whose input str0m refuses (bad DTLS, garbage SRTP, a broken
//! state) is dropped and counted; no other peer is touched.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use str0m::net::{Protocol, Receive};
use str0m::{Event, IceConnectionState, Input, Output};
use tapedeck_core::RoomId;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::peer::Peer;
use super::{Command, PeerId, RoomMedia, RtcStats};
use crate::error::ApiError;

struct Sfu {
    socket: UdpSocket,
    local: SocketAddr,
    max_peers: u32,
    peers: HashMap<PeerId, Peer>,
    by_addr: HashMap<SocketAddr, PeerId>,
    timers: BinaryHeap<Reverse<(Instant, PeerId)>>,
    subscribers: HashMap<RoomId, Vec<mpsc::Sender<RoomMedia>>>,
    next_id: u64,
    stats: Arc<RtcStats>,
}

pub(super) async fn run(
    socket: UdpSocket,
    candidate: SocketAddr,
    max_peers: u32,
    mut commands: mpsc::Receiver<Command>,
    stats: Arc<RtcStats>,
) {
    let local = socket.local_addr().unwrap_or(candidate);
    let mut sfu = Sfu {
        socket,
        local,
        max_peers,
        peers: HashMap::new(),
        by_addr: HashMap::new(),
        timers: BinaryHeap::new(),
        subscribers: HashMap::new(),
        next_id: 1,
        stats,
    };
    let mut buf = vec![0u8; 2048];
    loop {
        let next = sfu.timers.peek().map(|Reverse((at, _))| *at);
        let sleep = async {
            match next {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            got = sfu.socket.recv_from(&mut buf) => match got {
                Ok((n, from)) => sfu.datagram(&buf[..n], from),
                Err(e) => {
                    // ICMP port unreachable from a gone peer shows up here
                    // on some systems: not fatal.
                    tracing::debug!(error = %e, "rtc: recv");
                }
            },
            cmd = commands.recv() => match cmd {
                Some(cmd) => sfu.command(cmd, candidate),
                None => return,
            },
            () = sleep => sfu.timers_due(),
        }
    }
}

impl Sfu {
    fn datagram(&mut self, data: &[u8], from: SocketAddr) {
        self.stats.datagrams_in.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let Ok(contents) = data.try_into() else {
            self.stats.datagrams_stray.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source: from,
                destination: self.local,
                contents,
            },
        );
        let id = match self.by_addr.get(&from) {
            Some(id) => Some(*id),
            // A new address: its first packet is a STUN check naming the
            // peer's ICE username; only then is every peer asked.
            None => self
                .peers
                .values()
                .find(|p| p.rtc.accepts(&input))
                .map(|p| p.id),
        };
        let Some(id) = id else {
            self.stats.datagrams_stray.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        if !peer.addrs.contains(&from) {
            peer.addrs.push(from);
            self.by_addr.insert(from, id);
        }
        if let Err(e) = peer.rtc.handle_input(input) {
            tracing::info!(peer = %id, error = %e, "rtc: dropping a peer whose input was refused");
            self.stats.peers_dropped.fetch_add(1, Ordering::Relaxed);
            self.remove(id);
            return;
        }
        self.drive(id);
    }

    fn timers_due(&mut self) {
        let now = Instant::now();
        while let Some(Reverse((at, id))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(peer) = self.peers.get_mut(&id) else {
                continue;
            };
            // A stale entry: the peer asked for another time since.
            if peer.wake_at != Some(at) {
                continue;
            }
            peer.wake_at = None;
            if peer.rtc.handle_input(Input::Timeout(now)).is_err() {
                self.stats.peers_dropped.fetch_add(1, Ordering::Relaxed);
                self.remove(id);
                continue;
            }
            self.drive(id);
        }
    }

    /// Polls one peer until it only waits: sends what it sends, passes on
    /// what it receives, and sets its next timer.
    fn drive(&mut self, id: PeerId) {
        let now = Instant::now();
        loop {
            let Some(peer) = self.peers.get_mut(&id) else {
                return;
            };
            if !peer.rtc.is_alive() {
                self.remove(id);
                return;
            }
            let out = match peer.rtc.poll_output() {
                Ok(out) => out,
                Err(e) => {
                    tracing::info!(peer = %id, error = %e, "rtc: dropping a peer that failed");
                    self.stats.peers_dropped.fetch_add(1, Ordering::Relaxed);
                    self.remove(id);
                    return;
                }
            };
            match out {
                Output::Timeout(at) => {
                    if peer.wake_at != Some(at) {
                        peer.wake_at = Some(at);
                        self.timers.push(Reverse((at, id)));
                    }
                    return;
                }
                Output::Transmit(t) => {
                    if self.socket.try_send_to(&t.contents, t.destination).is_err() {
                        self.stats.send_dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Output::Event(ev) => match ev {
                    Event::Connected => {
                        peer.connected = true;
                        peer.request_keyframes(now);
                    }
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        self.remove(id);
                        return;
                    }
                    Event::MediaAdded(m) => {
                        peer.track_added(m.mid, m.kind);
                        if let Some(t) = peer.tracks.iter().find(|t| t.mid == m.mid) {
                            let (room, info) = (peer.room, t.info.clone());
                            self.publish(room, RoomMedia::Track(info));
                        }
                    }
                    Event::MediaData(d) => {
                        let frame = peer.frame(&d, now);
                        let room = peer.room;
                        self.publish(room, RoomMedia::Frame(frame));
                    }
                    _ => {}
                },
            }
        }
    }

    /// Hands `m` to `room`'s subscribers. One that does not keep up loses
    /// the message (it counts a gap), never slows the call.
    fn publish(&mut self, room: RoomId, m: RoomMedia) {
        let Some(subs) = self.subscribers.get_mut(&room) else {
            return;
        };
        subs.retain(|s| !s.is_closed());
        for s in subs.iter() {
            if s.try_send(m.clone()).is_ok() && matches!(m, RoomMedia::Frame(_)) {
                self.stats.frames_out.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn remove(&mut self, id: PeerId) {
        if let Some(mut peer) = self.peers.remove(&id) {
            peer.rtc.disconnect();
            for a in &peer.addrs {
                self.by_addr.remove(a);
            }
            self.stats.peers.fetch_sub(1, Ordering::Relaxed);
            self.publish(peer.room, RoomMedia::Left(id));
        }
    }

    fn command(&mut self, cmd: Command, candidate: SocketAddr) {
        match cmd {
            Command::Join {
                room,
                limits,
                joiner,
                offer,
                reply,
            } => {
                let in_room = self.peers.values().filter(|p| p.room == room).count();
                let r = if self.peers.len() >= self.max_peers as usize {
                    Err(ApiError::new(
                        429,
                        "too_many_peers",
                        format!("{} peers are connected (rtc.max_peers)", self.peers.len()),
                    ))
                } else if in_room >= limits.max_participants as usize {
                    Err(ApiError::new(
                        403,
                        "room_full",
                        format!(
                            "the room has {in_room} of its {} participants",
                            limits.max_participants
                        ),
                    ))
                } else {
                    let id = PeerId(self.next_id);
                    self.next_id += 1;
                    match Peer::accept(id, room, joiner, &offer, candidate, Instant::now()) {
                        Ok((peer, answer)) => {
                            self.peers.insert(id, peer);
                            self.stats.peers.fetch_add(1, Ordering::Relaxed);
                            self.drive(id);
                            Ok((id, answer))
                        }
                        Err(m) => Err(ApiError::bad_request("invalid_sdp", m)),
                    }
                };
                let _ = reply.send(r);
            }
            Command::Leave { room, peer, reply } => {
                let here = self.peers.get(&peer).is_some_and(|p| p.room == room);
                if here {
                    self.remove(peer);
                }
                let _ = reply.send(here);
            }
            Command::Participants { room, reply } => {
                let mut list: Vec<_> = self
                    .peers
                    .values()
                    .filter(|p| p.room == room)
                    .map(Peer::participant)
                    .collect();
                list.sort_by_key(|p| p.peer);
                let _ = reply.send(list);
            }
            Command::Subscribe { room, tx } => {
                for p in self.peers.values().filter(|p| p.room == room) {
                    for t in &p.tracks {
                        let _ = tx.try_send(RoomMedia::Track(t.info.clone()));
                    }
                }
                self.subscribers.entry(room).or_default().push(tx);
                self.request_keyframes(room);
            }
            Command::RequestKeyframes { room } => self.request_keyframes(room),
            Command::CloseRoom { room } => {
                let ids: Vec<_> = self
                    .peers
                    .values()
                    .filter(|p| p.room == room)
                    .map(|p| p.id)
                    .collect();
                for id in ids {
                    self.remove(id);
                }
                self.subscribers.remove(&room);
            }
        }
    }

    fn request_keyframes(&mut self, room: RoomId) {
        let now = Instant::now();
        let ids: Vec<_> = self
            .peers
            .values()
            .filter(|p| p.room == room)
            .map(|p| p.id)
            .collect();
        for id in ids {
            if let Some(p) = self.peers.get_mut(&id) {
                p.request_keyframes(now);
            }
            self.drive(id);
        }
    }
}
