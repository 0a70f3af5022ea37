//! WebRTC: the media server of rooms. [`sfu::Sfu`] is sans-IO: every
//! peer of every room (a str0m `Rtc` each, [`peer`]) in one state machine,
//! driven by time and input and drained of datagrams, events and its next
//! deadline. One task (`io::run`) owns the UDP socket, the TCP side, the clock and the
//! channels around it. [`Rtc`] is the handle the rest of the server uses:
//! join with an SDP offer, leave, list who is in a room, and subscribe to a
//! room's media (what room recordings write).

pub mod ice;
mod io;
mod loss;
mod peer;
pub mod sfu;
mod simulcast;
mod tcp;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use tapedeck_core::RoomId;
pub use tapedeck_core::track::{TrackCodec, TrackKind, TrackSource};
use tokio::sync::{mpsc, oneshot};

use tapedeck_core::Problem;

/// One peer connection, unique for the life of the process; `peer_N` in
/// the API (the WHIP session's path, the call page's stream ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub u64);

impl Serialize for PeerId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl std::fmt::Display for PeerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "peer_{}", self.0)
    }
}

impl std::str::FromStr for PeerId {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        s.strip_prefix("peer_")
            .and_then(|n| n.parse().ok())
            .map(PeerId)
            .ok_or(())
    }
}

/// Who is joining.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joiner {
    /// The name shown in the call and on the tracks.
    pub name: String,
    /// The API user, None for a guest with a join token.
    pub user: Option<String>,
}

impl Joiner {
    /// Who holds the session, for per-caller limits: the API user, or a
    /// join token's guest (one name in one room).
    pub fn caller(&self, room: RoomId) -> String {
        match &self.user {
            Some(u) => format!("user:{u}"),
            None => format!("guest:{room}:{}", self.name),
        }
    }
}

/// A peer's SDP offer, and which of its media lines carry a shared
/// screen (a call page keeps two for it; a WHIP client has none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// The SDP.
    pub sdp: String,
    /// The mids of the screen's picture and sound.
    pub screen: Vec<String>,
}

impl From<String> for Offer {
    fn from(sdp: String) -> Self {
        Self {
            sdp,
            screen: vec![],
        }
    }
}

/// A room's limits at the time of joining.
#[derive(Debug, Clone, Copy)]
pub struct RoomLimits {
    /// Most peers in the room at once.
    pub max_participants: u32,
}

/// A track as the room's subscribers learn of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrackInfo {
    /// The peer it comes from.
    pub peer: PeerId,
    /// Its participant's name.
    pub participant: String,
    /// Sound or picture.
    pub kind: TrackKind,
    /// Camera, microphone, or a shared screen.
    pub source: TrackSource,
    /// The codec as negotiated, then as it arrives (None: not known yet,
    /// or one tapedeck does not record).
    pub codec: Option<TrackCodec>,
    /// The track within the peer (its SDP mid).
    pub mid: String,
}

/// One depacketized frame of a track.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Whose.
    pub peer: PeerId,
    /// Which track of theirs.
    pub mid: String,
    /// Its RTP time in microseconds (continuous within the track).
    pub rtp_us: i64,
    /// When it was captured on the sender's clock (NTP, µs), from its
    /// track's latest RTCP sender report; `None` before the first.
    pub sender_us: Option<i64>,
    /// When it arrived.
    pub arrived: std::time::Instant,
    /// A sound frame's level as its sender measured it (RFC 6464: 0 the
    /// loudest, 127 silence, -dBov), when it sends the extension.
    pub audio_level: Option<u8>,
    /// Its codec, as it arrived.
    pub codec: TrackCodec,
    /// Whether a decoder can start here.
    pub keyframe: bool,
    /// False when packets before it were lost.
    pub contiguous: bool,
    /// The encoded frame.
    pub data: Arc<[u8]>,
}

/// What happens to a room's call, for what acts on calls beginning (a
/// room that records itself): sent for every room, cheap (no frames).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    /// A participant began sending a track.
    Published(RoomId),
}

/// What a room's subscribers receive.
#[derive(Debug, Clone)]
pub enum RoomMedia {
    /// A track began (also sent, for every live track, on subscribing).
    Track(TrackInfo),
    /// A frame of a track.
    Frame(Frame),
    /// A peer left or was dropped: its tracks end.
    Left(PeerId),
}

/// A participant in a call, as `GET /v1/rooms/{id}` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Participant {
    /// The peer connection.
    pub peer: PeerId,
    /// Name in the call.
    pub name: String,
    /// The API user (absent for guests).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Whether ICE and DTLS are up.
    pub connected: bool,
    /// What it sends.
    pub tracks: Vec<TrackInfo>,
    /// Frames received from it.
    pub frames_in: u64,
    /// Microphone on (as the call page says; WHIP publishers: true).
    pub audio: bool,
    /// Camera on.
    pub video: bool,
    /// Sharing a screen (its tracks' `source` is `screen`).
    pub screen: bool,
    /// How its media reaches the server: `udp`, or `tcp` (ICE-TCP, where
    /// UDP is blocked). A TURN relay's media comes from the relay, over UDP.
    pub transport: &'static str,
}

/// What the media server tells a call page (over its socket).
#[derive(Debug, Clone)]
pub enum Signal {
    /// An SDP offer to answer: the tracks it receives changed.
    Offer(String),
    /// Who is in the call now.
    Participants(Vec<Participant>),
    /// The peer was ended (left, dropped, or the room closed).
    Ended(Ended),
}

/// Why a peer was ended, as its call page is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// It left.
    Left,
    /// str0m refused its input or failed.
    Failed,
    /// Its network path stayed down past the reconnect grace.
    Disconnected,
    /// It did not connect within `rtc.connect_timeout_s`.
    ConnectTimeout,
    /// Its call page did not read its socket.
    SignallingStalled,
    /// The host closed the room.
    RoomClosed,
}

impl Ended {
    /// The word the call page gets.
    pub fn as_str(self) -> &'static str {
        match self {
            Ended::Left => "left",
            Ended::Failed => "failed",
            Ended::Disconnected => "disconnected",
            Ended::ConnectTimeout => "connect_timeout",
            Ended::SignallingStalled => "signalling_stalled",
            Ended::RoomClosed => "room_closed",
        }
    }
}

/// Counters across all peers (for `/metrics` and the benchmarks).
#[derive(Debug, Default)]
pub struct RtcStats {
    /// Peers now connected or connecting.
    pub peers: AtomicU64,
    /// Datagrams received.
    pub datagrams_in: AtomicU64,
    /// Datagrams no peer accepted (strays, garbage).
    pub datagrams_stray: AtomicU64,
    /// Peers dropped for misbehaving (input str0m refused).
    pub peers_dropped: AtomicU64,
    /// Peers dropped for not connecting within `rtc.connect_timeout_s`.
    pub peers_timed_out: AtomicU64,
    /// Datagrams the socket could not take (send buffer full).
    pub send_dropped: AtomicU64,
    /// Frames handed to subscribers.
    pub frames_out: AtomicU64,
    /// Frames forwarded to other participants.
    pub frames_forwarded: AtomicU64,
}

impl RtcStats {
    /// A snapshot of one counter.
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// What the handle asks of the media server task.
enum Ask {
    Join {
        room: RoomId,
        limits: RoomLimits,
        joiner: Joiner,
        offer: Offer,
        signal: Option<mpsc::Sender<Signal>>,
        reply: oneshot::Sender<Result<(PeerId, String), Problem>>,
    },
    Answer {
        peer: PeerId,
        sdp: String,
        reply: oneshot::Sender<Result<(), Problem>>,
    },
    MediaState {
        peer: PeerId,
        audio: bool,
        video: bool,
        screen: bool,
    },
    Leave {
        room: RoomId,
        peer: PeerId,
        reply: oneshot::Sender<bool>,
    },
    Participants {
        room: RoomId,
        reply: oneshot::Sender<Vec<Participant>>,
    },
    Subscribe {
        room: RoomId,
        tx: mpsc::Sender<RoomMedia>,
    },
    RequestKeyframes {
        room: RoomId,
    },
    RequestKeyframe {
        peer: PeerId,
        mid: String,
    },
    CloseRoom {
        room: RoomId,
    },
}

/// The handle to the media server task.
#[derive(Clone, Debug)]
pub struct Rtc {
    tx: mpsc::Sender<Ask>,
    /// Where peers send media.
    pub addr: SocketAddr,
    /// Where peers whose network blocks UDP connect (ICE-TCP), if on.
    pub tcp_addr: Option<SocketAddr>,
    /// Counters.
    pub stats: Arc<RtcStats>,
    activity: tokio::sync::broadcast::Sender<Activity>,
}

/// The media socket, with buffers for many peers' bursts: every call's
/// packets queue here while the task works. The kernel caps the size at
/// `net.core.rmem_max`/`wmem_max` (raise them for hundreds of peers).
fn bind_udp(addr: SocketAddr) -> std::io::Result<tokio::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    let _ = socket.set_recv_buffer_size(BUFFER_BYTES);
    let _ = socket.set_send_buffer_size(BUFFER_BYTES);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    tokio::net::UdpSocket::from_std(socket.into())
}

/// Socket buffer asked for, each way.
const BUFFER_BYTES: usize = 4 << 20;

fn gone() -> Problem {
    Problem::internal("the media server task has stopped")
}

impl Rtc {
    /// Binds the UDP port (`0.0.0.0:udp_port`) and starts the task; peers
    /// are told `candidate_ip` (the public address) and the bound port.
    pub async fn start(
        config: &crate::config::RtcConfig,
        candidate_ip: IpAddr,
    ) -> Result<Self, String> {
        let udp_port = config.udp_port;
        let bind = SocketAddr::new(
            if candidate_ip.is_loopback() {
                candidate_ip
            } else {
                IpAddr::from([0, 0, 0, 0])
            },
            udp_port,
        );
        let socket = bind_udp(bind)
            .map_err(|e| format!("rtc: cannot bind UDP {bind}: {e} (set rtc.udp_port)"))?;
        let port = socket.local_addr().map_err(|e| e.to_string())?.port();
        let addr = SocketAddr::new(candidate_ip, port);
        let tcp = if config.tcp {
            // The UDP port's number by default; an ephemeral UDP port (0,
            // tests) takes any free TCP port when its number is taken.
            let want = SocketAddr::new(bind.ip(), config.tcp_port.unwrap_or(port));
            let listener = match tokio::net::TcpListener::bind(want).await {
                Ok(l) => l,
                Err(_) if config.tcp_port.is_none() && udp_port == 0 => {
                    tokio::net::TcpListener::bind(SocketAddr::new(bind.ip(), 0))
                        .await
                        .map_err(|e| format!("rtc: cannot bind TCP {}: {e}", bind.ip()))?
                }
                Err(e) => {
                    return Err(format!(
                        "rtc: cannot bind TCP {want}: {e} (set rtc.tcp_port, or rtc.tcp = false)"
                    ));
                }
            };
            let port = listener.local_addr().map_err(|e| e.to_string())?.port();
            Some((listener, SocketAddr::new(candidate_ip, port)))
        } else {
            None
        };
        let tcp_addr = tcp.as_ref().map(|(_, a)| *a);
        let tcp = tcp.map(|(l, _)| tcp::TcpSide::new(l, config.max_peers as usize * 4));
        let stats = Arc::new(RtcStats::default());
        let (tx, rx) = mpsc::channel(256);
        let (activity, _) = tokio::sync::broadcast::channel(1024);
        let limits = sfu::Limits {
            max_peers: config.max_peers,
            max_connecting_per_caller: config.max_connecting_per_caller,
            max_sessions_per_caller: config.max_sessions_per_caller,
            connect_timeout: std::time::Duration::from_secs(config.connect_timeout_s),
        };
        let at = tapedeck_media::rtc::Endpoints {
            udp: addr,
            tcp: tcp_addr,
        };
        let loop_side = io::Loop {
            socket,
            tcp,
            activity: activity.clone(),
            stats: stats.clone(),
        };
        tokio::spawn(io::run(loop_side, at, limits, rx));
        Ok(Self {
            tx,
            addr,
            tcp_addr,
            stats,
            activity,
        })
    }

    /// Joins `room` with an SDP offer; returns the peer and the SDP answer.
    /// With `signal` (a call page) the peer also receives everyone else's
    /// tracks, renegotiated over it; without (WHIP) it only publishes.
    pub async fn join(
        &self,
        room: RoomId,
        limits: RoomLimits,
        joiner: Joiner,
        offer: Offer,
        signal: Option<mpsc::Sender<Signal>>,
    ) -> Result<(PeerId, String), Problem> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Ask::Join {
                room,
                limits,
                joiner,
                offer,
                signal,
                reply,
            })
            .await
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    /// A call page's answer to the server's last offer.
    pub async fn answer(&self, peer: PeerId, sdp: String) -> Result<(), Problem> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Ask::Answer { peer, sdp, reply })
            .await
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    /// A call page turned its microphone, camera or screen sharing on or
    /// off.
    pub async fn media_state(&self, peer: PeerId, audio: bool, video: bool, screen: bool) {
        let ask = Ask::MediaState {
            peer,
            audio,
            video,
            screen,
        };
        let _ = self.tx.send(ask).await;
    }

    /// Ends a peer; false if it was not in `room`.
    pub async fn leave(&self, room: RoomId, peer: PeerId) -> bool {
        let (reply, rx) = oneshot::channel();
        if self
            .tx
            .send(Ask::Leave { room, peer, reply })
            .await
            .is_err()
        {
            return false;
        }
        rx.await.unwrap_or(false)
    }

    /// Who is in `room` now.
    pub async fn participants(&self, room: RoomId) -> Vec<Participant> {
        let (reply, rx) = oneshot::channel();
        if self
            .tx
            .send(Ask::Participants { room, reply })
            .await
            .is_err()
        {
            return vec![];
        }
        rx.await.unwrap_or_default()
    }

    /// Receives `room`'s media from now on (first the tracks already live).
    pub async fn subscribe(&self, room: RoomId, capacity: usize) -> mpsc::Receiver<RoomMedia> {
        let (tx, rx) = mpsc::channel(capacity);
        let _ = self.tx.send(Ask::Subscribe { room, tx }).await;
        rx
    }

    /// Asks every sender in `room` for a keyframe (a recording starts or resumes).
    pub async fn request_keyframes(&self, room: RoomId) {
        let _ = self.tx.send(Ask::RequestKeyframes { room }).await;
    }

    /// Asks one track's sender for a keyframe (a recording waits for one
    /// on it). Rate-limited per track at the sender (one a second); a
    /// request refused there, or made before the track's first packet,
    /// is for the caller to make again.
    pub async fn request_keyframe(&self, peer: PeerId, mid: String) {
        let _ = self.tx.send(Ask::RequestKeyframe { peer, mid }).await;
    }

    /// What happens in every room's call from now on.
    pub fn activity(&self) -> tokio::sync::broadcast::Receiver<Activity> {
        self.activity.subscribe()
    }

    /// Ends every peer of `room`.
    pub async fn close_room(&self, room: RoomId) {
        let _ = self.tx.send(Ask::CloseRoom { room }).await;
    }
}
