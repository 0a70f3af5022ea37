//! Room publishers for load and for tests: N WebRTC publishers in one
//! process, each a str0m client with a UDP socket of its own, publishing
//! over WHIP a pre-encoded VP8 clip (IVF) and an Opus clip (Ogg), looped
//! and paced in real time (30 fps video, 20 ms audio frames); a keyframe
//! request starts the video clip over at its first frame (a keyframe), as
//! a browser answers one with a keyframe. The
//! `tapedeck-loadgen` binary runs it from the command line; tests call
//! [`publish`] as a WHIP client that is not a browser.
//!
//! With [`Load::call`] each one joins as the call page does instead
//! ([`call`]): it publishes the same clips and receives every other
//! participant's tracks, counting what arrives.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use str0m::change::SdpAnswer;
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};
use tokio::net::UdpSocket;

mod call;

/// What to publish, where, for how long.
#[derive(Debug, Clone)]
pub struct Load {
    /// The room's WHIP endpoint (tapedeck's, or a peer's for comparison).
    pub whip: String,
    /// One publisher per token (a join token each, so each has a name).
    pub tokens: Vec<String>,
    /// The VP8 clip (IVF).
    pub video: std::path::PathBuf,
    /// The Opus clip (Ogg).
    pub audio: std::path::PathBuf,
    /// How long each publishes once connected.
    pub seconds: u64,
    /// Publisher `i` starts `i * stagger_ms` after the first.
    pub stagger_ms: u64,
    /// `whip` is the room's call page socket (`ws://.../v1/rooms/ID/call`):
    /// each joins as a call page, publishing and receiving the others.
    pub call: bool,
}

/// Runs every publisher to the end; the totals as JSON: publishers,
/// connected, video and audio frames and bytes sent, keyframe requests
/// received, and why each failed publisher failed.
pub async fn publish(a: &Load) -> Result<serde_json::Value, String> {
    let read = |p: &std::path::Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let video = Arc::new(Clip {
        frames: read_ivf(&read(&a.video)?)?,
        step: 3000,
        period: Duration::from_micros(33_333),
    });
    let audio = Arc::new(Clip {
        frames: read_ogg_opus(&read(&a.audio)?)?,
        step: 960,
        period: Duration::from_millis(20),
    });
    if video.frames.is_empty() || audio.frames.is_empty() {
        return Err("a clip without frames".into());
    }
    let totals = Arc::new(Totals::default());
    let until = Instant::now()
        + Duration::from_secs(a.seconds)
        + Duration::from_millis(a.stagger_ms * a.tokens.len() as u64);
    let http = reqwest::Client::new();
    let mut tasks = vec![];
    for (i, token) in a.tokens.iter().enumerate() {
        let p = Publisher {
            whip: a.whip.clone(),
            token: token.clone(),
            http: http.clone(),
            video: video.clone(),
            audio: audio.clone(),
            totals: totals.clone(),
            start: Duration::from_millis(a.stagger_ms * i as u64),
            stop_at: until,
            call: a.call,
        };
        tasks.push(tokio::spawn(p.run()));
    }
    let mut failed = vec![];
    for t in tasks {
        match t.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failed.push(e),
            Err(e) => failed.push(e.to_string()),
        }
    }
    let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
    Ok(serde_json::json!({
        "publishers": a.tokens.len(),
        "connected": g(&totals.connected),
        "video_frames": g(&totals.video_frames),
        "audio_frames": g(&totals.audio_frames),
        "bytes": g(&totals.bytes),
        "keyframe_requests": g(&totals.keyframe_requests),
        "received": {
            "video_frames": g(&totals.recv_video_frames),
            "audio_frames": g(&totals.recv_audio_frames),
            "packets": g(&totals.recv_packets),
            "packets_lost": g(&totals.recv_lost),
            "offers": g(&totals.offers),
        },
        "failed": failed,
    }))
}

/// A clip: frames with their durations in the codec's clock.
struct Clip {
    frames: Vec<Arc<[u8]>>,
    /// Clock ticks per frame.
    step: u64,
    /// Wall time per frame.
    period: Duration,
}

/// VP8 frames of an IVF file (32-byte header; 12-byte frame headers).
fn read_ivf(bytes: &[u8]) -> Result<Vec<Arc<[u8]>>, String> {
    if bytes.len() < 32 || &bytes[..4] != b"DKIF" {
        return Err("not an IVF file".into());
    }
    let header = u16::from_le_bytes([bytes[6], bytes[7]]) as usize;
    let mut at = header;
    let mut out = vec![];
    while at + 12 <= bytes.len() {
        let n =
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize;
        at += 12;
        let end = at
            .checked_add(n)
            .filter(|e| *e <= bytes.len())
            .ok_or("a cut IVF frame")?;
        out.push(Arc::from(&bytes[at..end]));
        at = end;
    }
    Ok(out)
}

/// Opus packets of an Ogg file (the two header packets left out).
fn read_ogg_opus(bytes: &[u8]) -> Result<Vec<Arc<[u8]>>, String> {
    let mut at = 0;
    let mut packets = vec![];
    let mut packet = vec![];
    while at + 27 <= bytes.len() {
        if &bytes[at..at + 4] != b"OggS" {
            return Err(format!("no Ogg page at {at}"));
        }
        let segments = bytes[at + 26] as usize;
        let table = bytes
            .get(at + 27..at + 27 + segments)
            .ok_or("a cut Ogg page")?;
        let mut body = at + 27 + segments;
        for &len in table {
            let end = body + len as usize;
            packet.extend_from_slice(bytes.get(body..end).ok_or("a cut Ogg page")?);
            body = end;
            if len < 255 {
                packets.push(Arc::from(std::mem::take(&mut packet)));
            }
        }
        at = body;
    }
    Ok(packets.into_iter().skip(2).collect())
}

#[derive(Default)]
struct Totals {
    connected: AtomicU64,
    video_frames: AtomicU64,
    audio_frames: AtomicU64,
    bytes: AtomicU64,
    keyframe_requests: AtomicU64,
    /// What call participants received of the others: frames, packets in
    /// them, packets missing from each track's sequence, offers answered.
    recv_video_frames: AtomicU64,
    recv_audio_frames: AtomicU64,
    recv_packets: AtomicU64,
    recv_lost: AtomicU64,
    offers: AtomicU64,
}

/// A publisher's SDP offer (Opus and VP8, send only) whose one candidate
/// is 127.0.0.1's discard port, where nothing answers: a WHIP session made
/// with it never connects (for the hostile load in `bench/hostile.sh`).
pub fn dead_offer() -> Result<String, String> {
    let mut rtc = RtcConfig::new()
        .clear_codecs()
        .enable_opus(true, false)
        .enable_vp8(true)
        .build(Instant::now());
    let host = Candidate::host(([127, 0, 0, 1], 9).into(), "udp").map_err(|e| e.to_string())?;
    rtc.add_local_candidate(host);
    let mut change = rtc.sdp_api();
    for kind in [MediaKind::Audio, MediaKind::Video] {
        change.add_media(kind, Direction::SendOnly, Some("s".into()), None, None);
    }
    let (offer, _) = change.apply().ok_or("no offer")?;
    Ok(offer.to_sdp_string())
}

struct Publisher {
    whip: String,
    token: String,
    http: reqwest::Client,
    video: Arc<Clip>,
    audio: Arc<Clip>,
    totals: Arc<Totals>,
    start: Duration,
    stop_at: Instant,
    call: bool,
}

impl Publisher {
    async fn run(self) -> Result<(), String> {
        tokio::time::sleep(self.start).await;
        let socket = UdpSocket::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let local = socket.local_addr().map_err(|e| e.to_string())?;
        let mut rtc = RtcConfig::new()
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .build(Instant::now());
        let host = Candidate::host(local, "udp").map_err(|e| e.to_string())?;
        rtc.add_local_candidate(host);
        let mut change = rtc.sdp_api();
        let amid = change.add_media(
            MediaKind::Audio,
            Direction::SendOnly,
            Some("s".into()),
            None,
            None,
        );
        let vmid = change.add_media(
            MediaKind::Video,
            Direction::SendOnly,
            Some("s".into()),
            None,
            None,
        );
        let (offer, pending) = change.apply().ok_or("no offer")?;
        if self.call {
            let (answer, mut signal) = call::join(&self.whip, &self.token, offer).await?;
            rtc.sdp_api()
                .accept_answer(pending, answer)
                .map_err(|e| format!("the answer: {e}"))?;
            let result = self
                .stream(&mut rtc, &socket, local, amid, vmid, Some(&mut signal))
                .await;
            signal.leave().await;
            return result;
        }
        let r = self
            .http
            .post(&self.whip)
            .bearer_auth(&self.token)
            .header("content-type", "application/sdp")
            .body(offer.to_sdp_string())
            .send()
            .await
            .map_err(|e| format!("WHIP POST: {e}"))?;
        let status = r.status();
        let location = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = r.text().await.map_err(|e| e.to_string())?;
        if status.as_u16() != 201 {
            return Err(format!("WHIP POST {status}: {text}"));
        }
        let answer = SdpAnswer::from_sdp_string(&text).map_err(|e| format!("the answer: {e}"))?;
        rtc.sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| format!("the answer: {e}"))?;
        let result = self
            .stream(&mut rtc, &socket, local, amid, vmid, None)
            .await;
        if let Some(loc) = location {
            let url = reqwest::Url::parse(&self.whip)
                .and_then(|base| base.join(&loc))
                .map_err(|e| e.to_string())?;
            let _ = self.http.delete(url).bearer_auth(&self.token).send().await;
        }
        result
    }

    async fn stream(
        &self,
        rtc: &mut Rtc,
        socket: &UdpSocket,
        local: SocketAddr,
        amid: Mid,
        vmid: Mid,
        mut signal: Option<&mut call::Signal>,
    ) -> Result<(), String> {
        let mut buf = vec![0u8; 2000];
        let mut received = call::Received::default();
        // A keyframe request waiting for the next whole second of the
        // stream (call participants: the clip's flashes stay on whole
        // seconds, where its beeps are).
        let mut keyframe_due = false;
        let mut connected = false;
        let (mut vi, mut ai) = (0u64, 0u64);
        // The clip's frame `vi - vbase` goes next (a keyframe request
        // starts it over).
        let mut vbase = 0u64;
        let t0 = Instant::now();
        let (mut next_v, mut next_a) = (t0, t0);
        loop {
            // Drive until str0m only waits.
            let wake = loop {
                match rtc.poll_output().map_err(|e| e.to_string())? {
                    Output::Timeout(t) => break t,
                    Output::Transmit(t) => {
                        let _ = socket.try_send_to(&t.contents, t.destination);
                    }
                    Output::Event(Event::Connected) => {
                        connected = true;
                        self.totals.connected.fetch_add(1, Ordering::Relaxed);
                        (next_v, next_a) = (Instant::now(), Instant::now());
                    }
                    Output::Event(Event::KeyframeRequest(_)) => {
                        self.totals
                            .keyframe_requests
                            .fetch_add(1, Ordering::Relaxed);
                        // As a browser does: the next frame is a keyframe
                        // (the clip begins with one).
                        if self.call {
                            keyframe_due = true;
                        } else {
                            vbase = vi;
                        }
                    }
                    Output::Event(Event::MediaData(d)) => received.frame(&d, &self.totals),
                    Output::Event(_) => {}
                }
            };
            let now = Instant::now();
            if now >= self.stop_at {
                received.finish(&self.totals);
                return if connected {
                    Ok(())
                } else {
                    Err("never connected".into())
                };
            }
            if !connected && now.duration_since(t0) > Duration::from_secs(20) {
                return Err("not connected after 20 s".into());
            }
            let mut due = wake.min(self.stop_at);
            if connected {
                due = due.min(next_v).min(next_a);
            }
            let sleep = tokio::time::sleep_until(due.into());
            tokio::select! {
                got = socket.recv_from(&mut buf) => {
                    if let Ok((n, from)) = got {
                        let Ok(contents) = buf[..n].try_into() else { continue };
                        let input = Input::Receive(Instant::now(), Receive {
                            proto: Protocol::Udp,
                            source: from,
                            destination: local,
                            contents,
                        });
                        rtc.handle_input(input).map_err(|e| e.to_string())?;
                    }
                }
                msg = call::next(&mut signal) => {
                    if let Some(s) = signal.as_deref_mut() {
                        s.handle(msg, rtc, &self.totals).await?;
                    }
                }
                () = sleep => {
                    let now = Instant::now();
                    if connected && now >= next_v {
                        if keyframe_due && vi % 30 == 0 {
                            (vbase, keyframe_due) = (vi, false);
                        }
                        self.send(rtc, vmid, &self.video, (vi, vi - vbase), now, Codec::Vp8)?;
                        vi += 1;
                        next_v += self.video.period;
                    }
                    if connected && now >= next_a {
                        self.send(rtc, amid, &self.audio, (ai, ai), now, Codec::Opus)?;
                        ai += 1;
                        next_a += self.audio.period;
                    }
                    rtc.handle_input(Input::Timeout(Instant::now())).map_err(|e| e.to_string())?;
                }
            }
        }
    }

    fn send(
        &self,
        rtc: &mut Rtc,
        mid: Mid,
        clip: &Clip,
        // The frame's number in the stream (its time), and in the clip.
        (i, at): (u64, u64),
        now: Instant,
        codec: Codec,
    ) -> Result<(), String> {
        let Some(w) = rtc.writer(mid) else {
            return Ok(());
        };
        let Some(pt) = w
            .payload_params()
            .find(|p| p.spec().codec == codec)
            .map(|p| p.pt())
        else {
            return Err(format!("{codec:?} was not negotiated"));
        };
        let frame = clip.frames[(at % clip.frames.len() as u64) as usize].clone();
        let (freq, counter) = if codec == Codec::Vp8 {
            (Frequency::NINETY_KHZ, &self.totals.video_frames)
        } else {
            (Frequency::FORTY_EIGHT_KHZ, &self.totals.audio_frames)
        };
        self.totals
            .bytes
            .fetch_add(frame.len() as u64, Ordering::Relaxed);
        w.write(pt, now, MediaTime::new(i * clip.step, freq), frame)
            .map_err(|e| e.to_string())?;
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}
