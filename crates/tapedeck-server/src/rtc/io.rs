//! The media server task: the one task that owns the UDP socket, the TCP
//! side (ICE-TCP), the clock and the channels around the sans-IO
//! [`super::sfu::Sfu`], and carries out what it asks.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use str0m::net::Protocol;
use tapedeck_core::{Problem, RoomId};
use tokio::sync::mpsc;

use super::PeerId;
use super::{Activity, Ask, RoomMedia, RtcStats, Signal, sfu, tcp};

/// What the loop keeps beside the media server: where its events go.
#[derive(Default)]
struct Routes {
    /// Each call page's socket.
    signals: HashMap<PeerId, mpsc::Sender<Signal>>,
    /// Each room's recordings.
    subscribers: HashMap<RoomId, Vec<mpsc::Sender<RoomMedia>>>,
}

/// What the media server task owns beside the media server: its sockets
/// and where it reports.
pub(super) struct Loop {
    pub socket: tokio::net::UdpSocket,
    pub tcp: Option<tcp::TcpSide>,
    pub activity: tokio::sync::broadcast::Sender<Activity>,
    pub stats: Arc<RtcStats>,
}

/// The media server task: the UDP socket, the TCP connections, the clock
/// and the channels around the sans-IO [`sfu::Sfu`].
pub(super) async fn run(
    mut io: Loop,
    at: tapedeck_media::rtc::Endpoints,
    limits: sfu::Limits,
    mut requests: mpsc::Receiver<Ask>,
) {
    let mut sfu = sfu::Sfu::new(at, limits, io.stats.clone(), Instant::now());
    let mut routes = Routes::default();
    let mut buf = vec![0u8; 2048];
    loop {
        let wake = drain(&mut sfu, &io, &mut routes);
        tokio::select! {
            got = io.socket.recv_from(&mut buf) => match got {
                Ok((n, from)) => {
                    let input = sfu::Input::Datagram { proto: Protocol::Udp, from, data: &buf[..n] };
                    let _ = sfu.handle(Instant::now(), input);
                }
                Err(e) => {
                    // ICMP port unreachable from a gone peer shows up here
                    // on some systems: not fatal.
                    tracing::debug!(error = %e, "rtc: recv");
                }
            },
            req = requests.recv() => match req {
                Some(req) => request(&mut sfu, &mut routes, req),
                None => return,
            },
            Some(got) = tcp_next(&mut io.tcp) => {
                let Some(t) = &mut io.tcp else { continue };
                match got {
                    tcp::TcpIn::Accepted(stream, from) => t.open(stream, from),
                    tcp::TcpIn::Datagram { from, data } => {
                        let input = sfu::Input::Datagram { proto: Protocol::Tcp, from, data: &data };
                        let _ = sfu.handle(Instant::now(), input);
                        // A connection whose datagram no peer took (not a
                        // check of a joined peer, or a peer gone) is closed.
                        if !sfu.knows(Protocol::Tcp, from) {
                            t.close(from);
                        }
                    }
                    tcp::TcpIn::Closed(from) => t.close(from),
                }
            }
            () = tokio::time::sleep_until(wake.into()) => {
                let _ = sfu.handle(Instant::now(), sfu::Input::Timeout);
            }
        }
    }
}

/// What the TCP side has next (never, without one).
async fn tcp_next(tcp: &mut Option<tcp::TcpSide>) -> Option<tcp::TcpIn> {
    match tcp {
        Some(t) => t.rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Carries out what the media server asks until it only waits; returns
/// when to wake it.
fn drain(sfu: &mut sfu::Sfu, io: &Loop, routes: &mut Routes) -> Instant {
    let stats = &io.stats;
    loop {
        match sfu.poll_output() {
            sfu::Output::Timeout(at) => return at,
            sfu::Output::Transmit { proto, to, data } => {
                let sent = match proto {
                    Protocol::Udp => io.socket.try_send_to(&data, to).is_ok(),
                    _ => io.tcp.as_ref().is_some_and(|t| t.send(to, data)),
                };
                if !sent {
                    stats.send_dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            sfu::Output::Event(sfu::Event::Signal(peer, signal)) => {
                let ended = matches!(signal, Signal::Ended(_));
                let stalled = routes
                    .signals
                    .get(&peer)
                    .is_some_and(|tx| tx.try_send(signal).is_err());
                if ended {
                    routes.signals.remove(&peer);
                } else if stalled {
                    let _ = sfu.handle(Instant::now(), sfu::Input::SignalStalled { peer });
                }
            }
            sfu::Output::Event(sfu::Event::Media(room, m)) => {
                if matches!(m, RoomMedia::Track(_)) {
                    // Nobody listening is fine.
                    let _ = io.activity.send(Activity::Published(room));
                }
                // One that does not keep up loses the message (it counts
                // a gap), never slows the call.
                let Some(subs) = routes.subscribers.get_mut(&room) else {
                    continue;
                };
                subs.retain(|s| !s.is_closed());
                for s in subs.iter() {
                    if s.try_send(m.clone()).is_ok() && matches!(m, RoomMedia::Frame(_)) {
                        stats.frames_out.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }
}

/// Hands a request of the handle to the media server.
fn request(sfu: &mut sfu::Sfu, routes: &mut Routes, req: Ask) {
    let now = Instant::now();
    match req {
        Ask::Join {
            room,
            limits,
            joiner,
            offer,
            signal,
            reply,
        } => {
            let signalled = signal.is_some();
            let input = sfu::Input::Join {
                room,
                limits,
                joiner,
                offer,
                signalled,
            };
            // The join's own signals (the first offer) go out after the
            // reply; the page's socket is in place before them.
            let r = match sfu.handle(now, input) {
                Ok(sfu::Reply::Joined(peer, answer)) => {
                    if let Some(tx) = signal {
                        routes.signals.insert(peer, tx);
                    }
                    Ok((peer, answer))
                }
                Ok(_) => Err(Problem::internal(
                    "the media server did not answer the join",
                )),
                Err(e) => Err(e.into()),
            };
            let _ = reply.send(r);
        }
        Ask::Answer { peer, sdp, reply } => {
            let r = sfu.handle(now, sfu::Input::Answer { peer, sdp });
            let _ = reply.send(r.map(|_| ()).map_err(Problem::from));
        }
        Ask::MediaState {
            peer,
            audio,
            video,
            screen,
        } => {
            let input = sfu::Input::MediaState {
                peer,
                audio,
                video,
                screen,
            };
            let _ = sfu.handle(now, input);
        }
        Ask::Leave { room, peer, reply } => {
            let left = matches!(
                sfu.handle(now, sfu::Input::Leave { room, peer }),
                Ok(sfu::Reply::Left(true))
            );
            let _ = reply.send(left);
        }
        Ask::Participants { room, reply } => {
            let _ = reply.send(sfu.participants(room));
        }
        Ask::Subscribe { room, tx } => {
            if let Ok(sfu::Reply::Tracks(tracks)) = sfu.handle(now, sfu::Input::Subscribe { room })
            {
                for t in tracks {
                    let _ = tx.try_send(RoomMedia::Track(t));
                }
            }
            routes.subscribers.entry(room).or_default().push(tx);
        }
        Ask::RequestKeyframes { room } => {
            let _ = sfu.handle(now, sfu::Input::RequestKeyframes { room });
        }
        Ask::RequestKeyframe { peer, mid } => {
            let _ = sfu.handle(now, sfu::Input::RequestKeyframe { peer, mid });
        }
        Ask::CloseRoom { room } => {
            let _ = sfu.handle(now, sfu::Input::CloseRoom { room });
            routes.subscribers.remove(&room);
        }
    }
}
