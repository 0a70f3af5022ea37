//! ICE-TCP (RFC 6544): media over TCP for peers whose network blocks UDP.
//! Every answer names a passive TCP candidate; the peer connects, and each
//! datagram (STUN, DTLS, SRTP) travels framed by a 2-byte length (RFC
//! 4571). This module is the IO of it: the listener, one task per
//! connection unframing what arrives and framing what leaves; the media
//! server sees datagrams with `Protocol::Tcp`, the same as UDP ones.
//!
//! Written here rather than taken from a crate: the framing is four lines,
//! and the limits (connections per address, the first datagram's deadline,
//! idleness) are this server's.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// A connection must send its first datagram (a STUN check) this soon.
const FIRST_WITHIN: Duration = Duration::from_secs(5);
/// A connection silent this long is closed (ICE checks every few seconds).
const IDLE: Duration = Duration::from_secs(30);
/// Connections one remote address may hold at once.
const PER_IP: usize = 64;
/// Datagrams queued towards one connection before more are dropped: a
/// peer that stops reading holds at most this many (about 380 KiB), a few
/// hundred ms of a call's media on top of the kernel's socket buffer.
const OUT_QUEUE: usize = 256;
/// The largest datagram taken: ICE, DTLS and SRTP keep theirs under an
/// MTU. A longer frame closes the connection (what a peer may hold in the
/// loop's queue stays small).
const MAX_FRAME: u16 = 4096;

/// What the listener and the connections tell the loop.
pub(super) enum TcpIn {
    /// A peer connected.
    Accepted(TcpStream, SocketAddr),
    /// A datagram arrived.
    Datagram { from: SocketAddr, data: Vec<u8> },
    /// It closed.
    Closed(SocketAddr),
}

/// The TCP side of the media server: its listener and open connections.
pub(super) struct TcpSide {
    /// Each connection's queue of datagrams to send.
    conns: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>,
    per_ip: HashMap<IpAddr, usize>,
    max: usize,
    to_loop: mpsc::Sender<TcpIn>,
    /// What the connections tell the loop.
    pub rx: mpsc::Receiver<TcpIn>,
}

impl TcpSide {
    /// Around a bound listener (its accepting task ends with the loop),
    /// with at most `max` connections.
    pub fn new(listener: TcpListener, max: usize) -> Self {
        let (to_loop, rx) = mpsc::channel(1024);
        let accepted = to_loop.clone();
        tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, from)) => {
                        if accepted.send(TcpIn::Accepted(stream, from)).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        // Out of descriptors, mostly: wait rather than spin.
                        tracing::debug!(error = %e, "rtc: TCP accept");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        Self {
            conns: HashMap::new(),
            per_ip: HashMap::new(),
            max,
            to_loop,
            rx,
        }
    }

    /// Takes a connection, unless the limits are reached (then it is
    /// closed at once).
    pub fn open(&mut self, stream: TcpStream, from: SocketAddr) {
        let n = self.per_ip.get(&from.ip()).copied().unwrap_or(0);
        if self.conns.len() >= self.max || n >= PER_IP {
            tracing::debug!(%from, "rtc: TCP connection refused (too many)");
            return;
        }
        let _ = stream.set_nodelay(true);
        let (tx, rx) = mpsc::channel(OUT_QUEUE);
        self.conns.insert(from, tx);
        *self.per_ip.entry(from.ip()).or_default() += 1;
        tokio::spawn(connection(stream, from, self.to_loop.clone(), rx));
    }

    /// Closes a connection (nobody owns it, or it closed itself).
    pub fn close(&mut self, from: SocketAddr) {
        if self.conns.remove(&from).is_some()
            && let Some(n) = self.per_ip.get_mut(&from.ip())
        {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&from.ip());
            }
        }
    }

    /// Queues a datagram on `to`'s connection; false if there is none or
    /// its queue is full.
    pub fn send(&self, to: SocketAddr, data: Vec<u8>) -> bool {
        self.conns
            .get(&to)
            .is_some_and(|c| c.try_send(data).is_ok())
    }
}

/// One connection: unframes what arrives for the loop, frames what the
/// loop queues. Ends when either side closes, a frame is late or the loop
/// drops its queue.
async fn connection(
    stream: TcpStream,
    from: SocketAddr,
    to_loop: mpsc::Sender<TcpIn>,
    mut out: mpsc::Receiver<Vec<u8>>,
) {
    let (mut r, mut w) = stream.into_split();
    let reading = async {
        let mut wait = FIRST_WITHIN;
        loop {
            let Ok(Some(data)) = tokio::time::timeout(wait, read_frame(&mut r)).await else {
                return;
            };
            wait = IDLE;
            if to_loop.send(TcpIn::Datagram { from, data }).await.is_err() {
                return;
            }
        }
    };
    let writing = async {
        while let Some(data) = out.recv().await {
            if w.write_all(&frame(&data)).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        () = reading => {}
        () = writing => {}
    }
    let _ = to_loop.send(TcpIn::Closed(from)).await;
}

/// One RFC 4571 frame: None at the end of the stream, on an error, or for
/// a frame over [`MAX_FRAME`].
async fn read_frame(r: &mut (impl AsyncReadExt + Unpin)) -> Option<Vec<u8>> {
    let len = r.read_u16().await.ok()?;
    if len > MAX_FRAME {
        return None;
    }
    let mut data = vec![0; usize::from(len)];
    r.read_exact(&mut data).await.ok()?;
    Some(data)
}

/// `data` framed: its length in two bytes, then it. A datagram is at most
/// an MTU, far under 64 KiB.
fn frame(data: &[u8]) -> Vec<u8> {
    let len = u16::try_from(data.len()).unwrap_or(u16::MAX);
    let mut framed = Vec::with_capacity(data.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(&data[..usize::from(len)]);
    framed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_go_through_whole_and_in_order_however_the_stream_splits_them() {
        let mut bytes = vec![];
        for n in [0usize, 1, 1200, 4096] {
            bytes.extend(frame(&vec![n as u8; n]));
        }
        // Read back one byte at a time: a frame may arrive in pieces.
        let (mut a, mut b) = tokio::io::duplex(1);
        tokio::spawn(async move { a.write_all(&bytes).await.unwrap() });
        for n in [0usize, 1, 1200, 4096] {
            assert_eq!(read_frame(&mut b).await.unwrap(), vec![n as u8; n]);
        }
        assert_eq!(read_frame(&mut b).await, None, "the end of the stream");
    }

    #[tokio::test]
    async fn a_frame_longer_than_any_datagram_ends_the_connection() {
        let (mut a, mut b) = tokio::io::duplex(1 << 17);
        a.write_all(&frame(&vec![1; 4097])).await.unwrap();
        a.write_all(&frame(&[2; 10])).await.unwrap();
        assert_eq!(read_frame(&mut b).await, None);
    }

    #[tokio::test]
    async fn a_stream_cut_inside_a_frame_yields_nothing_of_it() {
        let mut bytes = frame(&[7; 100]);
        bytes.truncate(50);
        let (mut a, mut b) = tokio::io::duplex(64);
        a.write_all(&bytes).await.unwrap();
        drop(a);
        assert_eq!(read_frame(&mut b).await, None);
    }
}
