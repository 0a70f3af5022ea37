//! The media server driven without a socket or a clock: str0m peers (as a
//! browser or a WHIP client would be) exchange datagrams with it in
//! memory, and time moves only when the test moves it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive, TcpType};
use str0m::{Candidate, Event as RtcEvent, Input as RtcInput, Output as RtcOutput, Rtc, RtcConfig};
use tapedeck_core::RoomId;

use super::{Event, Input, Limits, Output, Reply, Sfu, SfuError};
use tapedeck_media::rtc::Endpoints;

use crate::rtc::{Ended, Joiner, PeerId, RoomLimits, RoomMedia, RtcStats, Signal, TrackKind};

const SERVER: &str = "10.0.0.1:40000";

/// The server's addresses: UDP, and TCP at the same port number.
fn server() -> Endpoints {
    Endpoints {
        udp: SERVER.parse().unwrap(),
        tcp: Some(SERVER.parse().unwrap()),
    }
}

/// A participant's browser or WHIP client: a str0m peer at `addr`.
struct Client {
    name: &'static str,
    addr: SocketAddr,
    /// UDP, or TCP only (a network that blocks UDP).
    proto: Protocol,
    rtc: Rtc,
    /// Its id at the server, once joined.
    peer: Option<PeerId>,
    /// Its sending mids (audio, video).
    sends: Option<(Mid, Mid)>,
    connected: bool,
    /// Frames it received: (mid, keyframe).
    got: Vec<(Mid, bool)>,
    /// Keyframe requests it received, per mid.
    pli: Vec<Mid>,
    /// Whether the network passes its datagrams.
    online: bool,
    /// Frames written so far.
    written: u64,
    /// How many ppm its sound's RTP clock runs fast against its picture's.
    audio_ppm: u64,
    /// Its picture's simulcast layers (rid, width, height, bytes a frame);
    /// none: one stream.
    layers: Vec<(&'static str, u16, u16, usize)>,
    /// Layers it stopped sending (its encoder dropped them).
    layers_off: Vec<&'static str>,
    /// Pictures it received: mid, size, RTP time.
    pictures: Vec<(Mid, usize, MediaTime)>,
}

impl Client {
    fn new(name: &'static str, port: u16, proto: Protocol, now: Instant) -> Self {
        let addr: SocketAddr = format!("10.0.0.2:{port}").parse().unwrap();
        let mut rtc = RtcConfig::new()
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .build(now);
        let local = match proto {
            Protocol::Udp => Candidate::host(addr, "udp").unwrap(),
            // As a browser does: an active TCP candidate, which connects
            // to the server's passive one.
            _ => Candidate::builder()
                .tcp()
                .host(addr)
                .tcptype(TcpType::Active)
                .build()
                .unwrap(),
        };
        rtc.add_local_candidate(local);
        Self {
            name,
            addr,
            proto,
            rtc,
            peer: None,
            sends: None,
            connected: false,
            got: vec![],
            pli: vec![],
            online: true,
            written: 0,
            audio_ppm: 0,
            layers: vec![],
            layers_off: vec![],
            pictures: vec![],
        }
    }

    /// An offer to send sound and picture.
    fn offer(&mut self) -> (String, SdpPendingOffer) {
        let mut change = self.rtc.sdp_api();
        let a = change.add_media(
            MediaKind::Audio,
            Direction::SendOnly,
            Some("s".into()),
            None,
            None,
        );
        let simulcast = (!self.layers.is_empty()).then(|| str0m::media::Simulcast {
            send: self
                .layers
                .iter()
                .map(|l| str0m::media::SimulcastLayer::new(l.0))
                .collect(),
            recv: vec![],
        });
        let v = change.add_media(
            MediaKind::Video,
            Direction::SendOnly,
            Some("s".into()),
            None,
            simulcast,
        );
        self.sends = Some((a, v));
        let (offer, pending) = change.apply().unwrap();
        (offer.to_sdp_string(), pending)
    }

    /// Writes one VP8 picture (a key frame every `key_every`) and one Opus
    /// packet, `self.written` × 33 ms into the stream.
    fn send_frame(&mut self, now: Instant, key_every: u64) {
        let Some((amid, vmid)) = self.sends else {
            return;
        };
        let i = self.written;
        self.written += 1;
        let key = i.is_multiple_of(key_every);
        if !self.layers.is_empty() {
            self.send_layers(now, vmid, key);
        }
        // A VP8 frame tag: bit 0 clear on a key frame.
        let mut picture = vec![if key { 0x10 } else { 0x11 }, 0x02, 0x00, 0x9d, 0x01, 0x2a];
        picture.extend(std::iter::repeat_n(i as u8, 300));
        let video = self
            .layers
            .is_empty()
            .then_some((vmid, Codec::Vp8, picture, 90_000u64));
        for (mid, codec, data, rate) in
            video
                .into_iter()
                .chain([(amid, Codec::Opus, vec![0xfc; 40], 48_000)])
        {
            let ppm = if codec == Codec::Opus {
                self.audio_ppm
            } else {
                0
            };
            let Some(w) = self.rtc.writer(mid) else {
                continue;
            };
            let pt = w
                .payload_params()
                .find(|p| p.spec().codec == codec)
                .map(|p| p.pt())
                .unwrap();
            let freq = str0m::media::Frequency::new(rate as u32).unwrap();
            let ticks = i * rate * (1_000_000 + ppm) / 30 / 1_000_000;
            w.write(pt, now, MediaTime::new(ticks, freq), data).unwrap();
        }
    }
}

/// The server and its peers on a simulated network, at a simulated time.
struct World {
    sfu: Sfu,
    now: Instant,
    clients: Vec<Client>,
    events: Vec<Event>,
    stats: Arc<RtcStats>,
    server_wake: Instant,
}

fn limits() -> Limits {
    Limits {
        max_peers: 10,
        max_connecting_per_caller: 3,
        max_sessions_per_caller: 6,
        connect_timeout: Duration::from_secs(10),
    }
}

fn room() -> RoomId {
    RoomId::from_parts(1_700_000_000_000, 7)
}

fn joiner(name: &str) -> Joiner {
    Joiner {
        name: name.into(),
        user: Some(name.to_lowercase()),
    }
}

impl World {
    fn new(limits: Limits) -> Self {
        let now = Instant::now();
        let stats = Arc::new(RtcStats::default());
        Self {
            sfu: Sfu::new(server(), limits, stats.clone(), now),
            now,
            clients: vec![],
            events: vec![],
            stats,
            server_wake: now,
        }
    }

    fn client(&mut self, name: &'static str) -> usize {
        self.client_over(name, Protocol::Udp)
    }

    fn client_over(&mut self, name: &'static str, proto: Protocol) -> usize {
        let port = 5000 + self.clients.len() as u16;
        self.clients.push(Client::new(name, port, proto, self.now));
        self.clients.len() - 1
    }

    /// Client `c` joins the room with an offer to send; a `signalled`
    /// one (a call page) is also offered the others' tracks.
    fn join(
        &mut self,
        c: usize,
        max_participants: u32,
        signalled: bool,
    ) -> Result<PeerId, SfuError> {
        let (offer, pending) = self.clients[c].offer();
        let input = Input::Join {
            room: room(),
            limits: RoomLimits { max_participants },
            joiner: joiner(self.clients[c].name),
            offer: offer.into(),
            signalled,
        };
        let Reply::Joined(peer, answer) = self.sfu.handle(self.now, input)? else {
            panic!("a join answers Joined");
        };
        let answer = SdpAnswer::from_sdp_string(&answer).unwrap();
        let cl = &mut self.clients[c];
        cl.rtc.sdp_api().accept_answer(pending, answer).unwrap();
        cl.peer = Some(peer);
        Ok(peer)
    }

    /// Moves every datagram and event until nobody has more to say now.
    fn settle(&mut self) {
        for _ in 0..10_000 {
            let mut quiet = true;
            loop {
                match self.sfu.poll_output() {
                    Output::Timeout(at) => {
                        self.server_wake = at;
                        break;
                    }
                    Output::Transmit { proto, to, data } => {
                        quiet = false;
                        let now = self.now;
                        let Some(c) = self
                            .clients
                            .iter_mut()
                            .find(|c| c.addr == to && c.proto == proto)
                        else {
                            continue;
                        };
                        if !c.online {
                            continue;
                        }
                        let input = RtcInput::Receive(
                            now,
                            Receive {
                                proto,
                                source: SERVER.parse().unwrap(),
                                destination: to,
                                contents: data.as_slice().try_into().unwrap(),
                            },
                        );
                        let _ = c.rtc.handle_input(input);
                    }
                    Output::Event(e) => {
                        quiet = false;
                        self.on_event(e);
                    }
                }
            }
            for i in 0..self.clients.len() {
                loop {
                    let out = match self.clients[i].rtc.poll_output() {
                        Ok(out) => out,
                        Err(_) => break,
                    };
                    match out {
                        RtcOutput::Timeout(_) => break,
                        RtcOutput::Transmit(t) => {
                            quiet = false;
                            if self.clients[i].online {
                                let (from, proto) = (self.clients[i].addr, t.proto);
                                let data: Vec<u8> = t.contents.into();
                                let input = Input::Datagram {
                                    proto,
                                    from,
                                    data: &data,
                                };
                                let _ = self.sfu.handle(self.now, input);
                            }
                        }
                        RtcOutput::Event(ev) => {
                            let c = &mut self.clients[i];
                            match ev {
                                RtcEvent::Connected => c.connected = true,
                                RtcEvent::MediaData(d) => {
                                    c.got
                                        .push((d.mid, d.data.first().is_some_and(|b| b & 1 == 0)));
                                    if d.params.spec().codec == Codec::Vp8 {
                                        c.pictures.push((d.mid, d.data.len(), d.time));
                                    }
                                }
                                RtcEvent::KeyframeRequest(r) => c.pli.push(r.mid),
                                _ => {}
                            }
                        }
                    }
                }
            }
            if quiet {
                return;
            }
        }
        panic!("the simulated network never settled");
    }

    /// A call page answers the server's offers as a browser would.
    fn on_event(&mut self, e: Event) {
        if let Event::Signal(peer, Signal::Offer(sdp)) = &e
            && let Some(c) = self.clients.iter_mut().find(|c| c.peer == Some(*peer))
        {
            let offer = SdpOffer::from_sdp_string(sdp).unwrap();
            let answer = c.rtc.sdp_api().accept_offer(offer).unwrap();
            let r = self.sfu.handle(
                self.now,
                Input::Answer {
                    peer: *peer,
                    sdp: answer.to_sdp_string(),
                },
            );
            assert_eq!(r, Ok(Reply::Done));
        }
        self.events.push(e);
    }

    /// Runs `ms` of simulated time in 10 ms steps; every 33 ms each
    /// connected sender writes a frame.
    fn run(&mut self, ms: u64, send: bool) {
        let end = self.now + Duration::from_millis(ms);
        let mut next_frame = self.now;
        while self.now < end {
            self.now += Duration::from_millis(10);
            let now = self.now;
            for c in &mut self.clients {
                let _ = c.rtc.handle_input(RtcInput::Timeout(now));
                if send && c.connected && now >= next_frame {
                    c.send_frame(now, 30);
                }
            }
            if now >= next_frame {
                next_frame += Duration::from_millis(33);
            }
            if now >= self.server_wake {
                let _ = self.sfu.handle(now, Input::Timeout);
            }
            self.settle();
        }
    }

    fn media_of(&self, room: RoomId) -> Vec<&RoomMedia> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Media(r, m) if *r == room => Some(m),
                _ => None,
            })
            .collect()
    }

    fn ended(&self, peer: PeerId) -> Option<Ended> {
        self.events.iter().find_map(|e| match e {
            Event::Signal(p, Signal::Ended(why)) if *p == peer => Some(*why),
            _ => None,
        })
    }
}

#[test]
fn a_publisher_is_forwarded_to_a_call_page_and_recorded_from_a_keyframe() {
    let mut w = World::new(limits());
    let ann = w.client("Ann");
    let bob = w.client("Bob");
    let ann_peer = w.join(ann, 4, false).unwrap();
    let bob_peer = w.join(bob, 4, true).unwrap();
    w.run(1_000, false);
    assert!(w.clients[ann].connected && w.clients[bob].connected);

    // A recording subscribes: Ann's two tracks are live, and she is asked
    // for a key frame on her picture.
    let Ok(Reply::Tracks(tracks)) = w.sfu.handle(w.now, Input::Subscribe { room: room() }) else {
        panic!("subscribing lists the tracks");
    };
    let kinds: Vec<_> = tracks.iter().map(|t| (t.peer, t.kind)).collect();
    assert!(kinds.contains(&(ann_peer, TrackKind::Audio)), "{tracks:?}");
    assert!(kinds.contains(&(ann_peer, TrackKind::Video)), "{tracks:?}");
    // Bob sends too: his tracks are Ann's to receive, not his own.
    w.run(2_000, true);
    let (_, ann_video) = w.clients[ann].sends.unwrap();
    assert!(
        w.clients[ann].pli.contains(&ann_video),
        "Ann was asked for a key frame"
    );

    // Bob's page got an offer for Ann's tracks, answered it, and receives
    // her pictures, starting at a key frame.
    let offers = w
        .events
        .iter()
        .filter(|e| matches!(e, Event::Signal(p, Signal::Offer(_)) if *p == bob_peer))
        .count();
    assert!(offers >= 1);
    let got = &w.clients[bob].got;
    assert!(got.len() > 40, "Bob got {} frames", got.len());
    // The room's media for its recordings: Ann's frames, each marked.
    let frames: Vec<_> = w
        .media_of(room())
        .into_iter()
        .filter_map(|m| match m {
            RoomMedia::Frame(f) if f.peer == ann_peer => Some(f),
            _ => None,
        })
        .collect();
    assert!(frames.len() > 80, "{} frames of Ann", frames.len());
    assert!(frames.iter().any(|f| f.keyframe));
    assert!(
        w.stats
            .frames_forwarded
            .load(std::sync::atomic::Ordering::Relaxed)
            > 40
    );
    // A WHIP publisher has no page: it is never signalled.
    assert!(
        !w.events
            .iter()
            .any(|e| matches!(e, Event::Signal(p, _) if *p == ann_peer))
    );

    // Ann leaves: her tracks end for the recording and Bob's page is told.
    let r = w.sfu.handle(
        w.now,
        Input::Leave {
            room: room(),
            peer: ann_peer,
        },
    );
    assert_eq!(r, Ok(Reply::Left(true)));
    w.settle();
    assert!(
        w.media_of(room())
            .iter()
            .any(|m| matches!(m, RoomMedia::Left(p) if *p == ann_peer))
    );
    let last_list = w.events.iter().rev().find_map(|e| match e {
        Event::Signal(p, Signal::Participants(list)) if *p == bob_peer => Some(list),
        _ => None,
    });
    let names: Vec<_> = last_list.unwrap().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["Bob"]);
    // Leaving twice, or from another room, is not leaving.
    assert_eq!(
        w.sfu.handle(
            w.now,
            Input::Leave {
                room: room(),
                peer: ann_peer
            }
        ),
        Ok(Reply::Left(false))
    );
}

#[test]
fn junk_datagrams_harm_no_call() {
    let mut w = World::new(limits());
    let ann = w.client("Ann");
    let bob = w.client("Bob");
    let ann_peer = w.join(ann, 4, false).unwrap();
    w.join(bob, 4, true).unwrap();
    w.run(1_000, false);
    // Strangers send garbage, empty and oversized datagrams.
    let stranger: SocketAddr = "10.9.9.9:1234".parse().unwrap();
    for data in [
        &[][..],
        &[0u8; 3][..],
        &[0x80u8; 1500][..],
        b"\x00\x01\x00\x00junkjunk",
    ] {
        let r = w.sfu.handle(
            w.now,
            Input::Datagram {
                proto: Protocol::Udp,
                from: stranger,
                data,
            },
        );
        assert_eq!(r, Ok(Reply::Done));
    }
    assert!(
        w.stats
            .datagrams_stray
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 4
    );
    w.run(2_000, true);
    assert_eq!(w.sfu.participants(room()).len(), 2);
    assert!(w.clients[bob].got.len() > 40);
    assert!(w.ended(ann_peer).is_none());
}

#[test]
fn a_page_that_does_not_read_its_socket_is_ended() {
    let mut w = World::new(limits());
    let ann = w.client("Ann");
    let peer = w.join(ann, 4, true).unwrap();
    w.settle();
    w.sfu.handle(w.now, Input::SignalStalled { peer }).unwrap();
    w.settle();
    assert_eq!(w.ended(peer), Some(Ended::SignallingStalled));
    assert!(w.sfu.participants(room()).is_empty());
}

#[test]
fn a_peer_whose_network_drops_is_kept_for_the_grace_then_ended() {
    let mut w = World::new(limits());
    let ann = w.client("Ann");
    let bob = w.client("Bob");
    let ann_peer = w.join(ann, 4, false).unwrap();
    w.join(bob, 4, true).unwrap();
    w.run(1_000, true);
    assert!(w.clients[ann].connected);
    // Ann's network goes away for 22 s (ICE calls it disconnected after
    // about 16 s), then comes back within the grace: she is still in the
    // call and her pictures reach Bob again.
    w.clients[ann].online = false;
    w.run(22_000, true);
    assert_eq!(w.sfu.participants(room()).len(), 2, "kept within the grace");
    let before = w.clients[bob].got.len();
    w.clients[ann].online = true;
    w.run(3_000, true);
    assert!(w.ended(ann_peer).is_none());
    assert!(
        w.clients[bob].got.len() > before + 20,
        "her pictures flow again"
    );
    // Gone for longer than the grace: she is ended, as disconnected.
    w.clients[ann].online = false;
    w.run(40_000, false);
    assert_eq!(w.sfu.participants(room()).len(), 1);
    assert!(w.stats.peers.load(std::sync::atomic::Ordering::Relaxed) == 1);
    assert!(
        w.media_of(room())
            .iter()
            .any(|m| matches!(m, RoomMedia::Left(p) if *p == ann_peer))
    );
}

mod limits;
mod simulcast;
mod sync;
mod tcp;
