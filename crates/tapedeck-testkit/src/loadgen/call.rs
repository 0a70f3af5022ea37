//! A load generator's participant joining as the call page does: its
//! offer in a `join` message on the room's call socket, then an answer to
//! each offer of the others' tracks; what it receives is counted.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use futures::{SinkExt, StreamExt};
use str0m::Rtc;
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::media::{MediaData, Mid};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::Totals;

/// The call socket of one participant: the server's messages in, ours out.
pub(super) struct Signal {
    from: mpsc::Receiver<serde_json::Value>,
    to: mpsc::Sender<String>,
}

/// Connects to `url` with `token`, sends the join with `offer`; the
/// server's answer and the socket.
pub(super) async fn join(
    url: &str,
    token: &str,
    offer: SdpOffer,
) -> Result<(SdpAnswer, Signal), String> {
    let (ws, _) = tokio_tungstenite::connect_async(format!("{url}?token={token}"))
        .await
        .map_err(|e| format!("the call socket: {e}"))?;
    let (mut sink, mut stream) = ws.split();
    let join = serde_json::json!({"type": "join", "offer": offer.to_sdp_string()});
    sink.send(Message::text(join.to_string()))
        .await
        .map_err(|e| format!("the join: {e}"))?;
    let answer = loop {
        let m = stream
            .next()
            .await
            .ok_or("the call socket closed before the join was answered")?
            .map_err(|e| e.to_string())?;
        let Message::Text(t) = m else { continue };
        let v: serde_json::Value = serde_json::from_str(&t).map_err(|e| e.to_string())?;
        match v["type"].as_str() {
            Some("joined") => break v["answer"].as_str().unwrap_or_default().to_string(),
            Some("error") | Some("ended") => return Err(format!("the join: {v}")),
            _ => {}
        }
    };
    let answer = SdpAnswer::from_sdp_string(&answer).map_err(|e| format!("the answer: {e}"))?;
    let (in_tx, from) = mpsc::channel(16);
    let (to, mut out_rx) = mpsc::channel::<String>(16);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                m = stream.next() => match m {
                    Some(Ok(Message::Text(t))) => {
                        let Ok(v) = serde_json::from_str::<serde_json::Value>(&t) else { continue };
                        if in_tx.send(v).await.is_err() {
                            return;
                        }
                    }
                    Some(Ok(_)) => {}
                    _ => return,
                },
                out = out_rx.recv() => match out {
                    Some(text) => {
                        if sink.send(Message::text(text)).await.is_err() {
                            return;
                        }
                    }
                    None => {
                        let _ = sink.close().await;
                        return;
                    }
                },
            }
        }
    });
    Ok((answer, Signal { from, to }))
}

/// The next message from the server, or never (no socket, or it closed).
pub(super) async fn next(signal: &mut Option<&mut Signal>) -> serde_json::Value {
    match signal {
        Some(s) => match s.from.recv().await {
            Some(v) => v,
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

impl Signal {
    /// Answers an offer of the others' tracks; a call that ended is an
    /// error.
    pub(super) async fn handle(
        &mut self,
        msg: serde_json::Value,
        rtc: &mut Rtc,
        totals: &Totals,
    ) -> Result<(), String> {
        match msg["type"].as_str() {
            Some("offer") => {
                let offer = SdpOffer::from_sdp_string(msg["sdp"].as_str().unwrap_or_default())
                    .map_err(|e| format!("the server's offer: {e}"))?;
                let answer = rtc
                    .sdp_api()
                    .accept_offer(offer)
                    .map_err(|e| format!("the server's offer: {e}"))?;
                let reply = serde_json::json!({"type": "answer", "sdp": answer.to_sdp_string()});
                self.to
                    .send(reply.to_string())
                    .await
                    .map_err(|_| "the call socket closed")?;
                totals.offers.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Some("ended") => Err(format!("the call ended: {msg}")),
            _ => Ok(()),
        }
    }

    /// Leaves the call.
    pub(super) async fn leave(self) {
        let _ = self.to.send(r#"{"type":"leave"}"#.into()).await;
    }
}

/// What one participant received, per media line: the first and last
/// packet's sequence number and how many packets arrived in whole frames.
#[derive(Default)]
pub(super) struct Received {
    lines: HashMap<Mid, (u64, u64, u64)>,
}

impl Received {
    /// A frame of another participant.
    pub(super) fn frame(&mut self, d: &MediaData, totals: &Totals) {
        let (first, last) = (**d.seq_range.start(), **d.seq_range.end());
        let packets = last.saturating_sub(first) + 1;
        let e = self.lines.entry(d.mid).or_insert((first, last, 0));
        e.0 = e.0.min(first);
        e.1 = e.1.max(last);
        e.2 += packets;
        let frames = if d.params.spec().codec.is_video() {
            &totals.recv_video_frames
        } else {
            &totals.recv_audio_frames
        };
        frames.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds the packets and those missing (never in a whole frame) to
    /// `totals`.
    pub(super) fn finish(&self, totals: &Totals) {
        for &(first, last, got) in self.lines.values() {
            let span = last - first + 1;
            totals.recv_packets.fetch_add(got, Ordering::Relaxed);
            totals
                .recv_lost
                .fetch_add(span.saturating_sub(got), Ordering::Relaxed);
        }
    }
}
