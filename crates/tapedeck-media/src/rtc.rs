//! WebRTC pieces that read outside input, kept apart from the server so the
//! fuzzers reach them: answering an SDP offer with the server's codecs, and
//! telling a keyframe from the bytes of a depacketized frame.

use std::net::SocketAddr;
use std::time::Instant;

use str0m::change::{SdpAnswer, SdpOffer};
use str0m::format::Codec;
use str0m::net::TcpType;
use str0m::{Candidate, Rtc, RtcConfig};

/// Where peers reach the media server: its UDP port, and the passive TCP
/// port (ICE-TCP, RFC 6544) for networks that block UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoints {
    /// The UDP candidate's address.
    pub udp: SocketAddr,
    /// The TCP candidate's address, if the server listens on TCP.
    pub tcp: Option<SocketAddr>,
}

impl From<SocketAddr> for Endpoints {
    fn from(udp: SocketAddr) -> Self {
        Self { udp, tcp: None }
    }
}

/// A peer's `Rtc` answering `offer` from `at`, and the SDP answer.
/// What a peer's answer learns of what the peer receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feedback {
    /// Nothing (a peer that only sends: WHIP).
    None,
    /// Its RTCP receiver reports, as media egress stats once a second
    /// (loss and bytes per media line), for an estimate of its own. Not
    /// str0m's TWCC estimator: that paces everything sent to the peer at
    /// 1.1 × its estimate, and in a cluster test it left a page with 1 or
    /// 2 packets of a camera in 2 runs of 7.
    Reports,
}

/// ICE lite: the server has a reachable address and never starts checks.
/// Codecs: Opus; VP8, VP9, AV1, H.264 (what the passthrough sink writes).
/// `feedback`: what is learnt of what the peer receives.
pub fn answer(
    offer: &str,
    at: Endpoints,
    now: Instant,
    feedback: Feedback,
) -> Result<(Rtc, String), String> {
    let order = video_preference(offer);
    let offer = SdpOffer::from_sdp_string(offer).map_err(|e| {
        format!(
            "the SDP offer: {}",
            without_addresses(&e.to_string(), offer)
        )
    })?;
    let mut config = RtcConfig::new()
        .set_ice_lite(true)
        .clear_codecs()
        .enable_opus(true, false);
    // The answer lists codecs in the order they were enabled, and the
    // sender uses the first: enable them in the offer's order, so a client
    // that prefers VP9 (or H.264, AV1) sends it.
    for codec in order {
        config = match codec {
            Codec::Vp9 => config.enable_vp9(true),
            Codec::Av1 => config.enable_av1(true),
            Codec::H264 => config.enable_h264(true),
            _ => config.enable_vp8(true),
        };
    }
    match feedback {
        Feedback::None => {}
        Feedback::Reports => {
            config = config.set_stats_interval(Some(std::time::Duration::from_secs(1)));
        }
    }
    let mut rtc = config.build(now);
    let host = Candidate::host(at.udp, "udp").map_err(|e| e.to_string())?;
    rtc.add_local_candidate(host);
    if let Some(tcp) = at.tcp {
        // Passive: the peer connects. Its lower type preference (str0m's
        // default for TCP) keeps UDP first wherever UDP gets through.
        let tcp = Candidate::builder()
            .tcp()
            .host(tcp)
            .tcptype(TcpType::Passive)
            .build()
            .map_err(|e| e.to_string())?;
        rtc.add_local_candidate(tcp);
    }
    let answer = rtc
        .sdp_api()
        .accept_offer(offer)
        .map_err(|e| format!("the SDP offer cannot be answered: {e}"))?;
    let answer = answer.to_sdp_string();
    // Every media line refused (port 0): no codec in common, a session that
    // could never carry anything.
    let taken = answer
        .lines()
        .filter(|l| l.starts_with("m=audio") || l.starts_with("m=video"))
        .filter(|l| l.split_whitespace().nth(1) != Some("0"))
        .count();
    if taken == 0 {
        return Err(
            "the SDP offer has no audio or video tapedeck takes (Opus; VP8, VP9, AV1 or H.264)"
                .into(),
        );
    }
    Ok((rtc, answer))
}

/// A call page's SDP answer to the server's offer, parsed (str0m checks
/// it against the offer when it is applied).
pub fn parse_answer(sdp: &str) -> Result<SdpAnswer, String> {
    SdpAnswer::from_sdp_string(sdp)
        .map_err(|e| format!("the SDP answer: {}", without_addresses(&e.to_string(), sdp)))
}

/// str0m's parse errors name the position as a memory address
/// (`PointerOffset(0x7f…)`): a client must not see the server's addresses.
/// One inside `input` becomes its line; any other goes.
fn without_addresses(message: &str, input: &str) -> String {
    const MARK: &str = "PointerOffset(0x";
    let base = input.as_ptr() as usize;
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find(MARK) {
        out.push_str(&rest[..at]);
        let after = &rest[at + MARK.len()..];
        let end = after.find(')').unwrap_or(after.len());
        let place = usize::from_str_radix(&after[..end], 16)
            .ok()
            .and_then(|p| p.checked_sub(base))
            .filter(|off| *off <= input.len())
            .map(|off| format!("line {}", input[..off].matches('\n').count() + 1))
            .unwrap_or_else(|| "a place in the text".into());
        out.push_str(&place);
        rest = after.get(end + 1..).unwrap_or("");
    }
    out.push_str(rest);
    // Any other bare address (0x and 8 or more hex digits) goes too.
    let mut clean = String::with_capacity(out.len());
    let mut chars = out.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let hex = out[i..]
            .strip_prefix("0x")
            .map(|h| h.chars().take_while(char::is_ascii_hexdigit).count())
            .unwrap_or(0);
        if c == '0' && hex >= 8 {
            clean.push_str("an address");
            for _ in 0..hex + 1 {
                chars.next();
            }
        } else {
            clean.push(c);
        }
    }
    clean
}

/// The video codecs the server takes, in the order the offer's first video
/// section lists them (those it does not list last, in the server's order).
fn video_preference(offer: &str) -> Vec<Codec> {
    let mut pts: Vec<&str> = vec![];
    let mut names: Vec<(&str, Codec)> = vec![];
    let mut in_video = false;
    for line in offer.lines() {
        let line = line.trim_end();
        if let Some(m) = line.strip_prefix("m=") {
            if in_video {
                break;
            }
            in_video = m.starts_with("video ");
            if in_video {
                pts = m.split_whitespace().skip(3).collect();
            }
        } else if in_video && let Some(map) = line.strip_prefix("a=rtpmap:") {
            let (pt, name) = map.split_once(' ').unwrap_or((map, ""));
            let name = name.split('/').next().unwrap_or("").to_ascii_uppercase();
            let codec = match name.as_str() {
                "VP8" => Codec::Vp8,
                "VP9" => Codec::Vp9,
                "AV1" => Codec::Av1,
                "H264" => Codec::H264,
                _ => continue,
            };
            names.push((pt, codec));
        }
    }
    let mut order: Vec<Codec> = vec![];
    for pt in pts {
        if let Some((_, c)) = names.iter().find(|(p, _)| *p == pt)
            && !order.contains(c)
        {
            order.push(*c);
        }
    }
    for c in [Codec::Vp8, Codec::Vp9, Codec::Av1, Codec::H264] {
        if !order.contains(&c) {
            order.push(c);
        }
    }
    order
}

/// Whether a depacketized frame starts a picture a decoder can begin at
/// (audio: always).
pub fn is_keyframe(codec: Codec, data: &[u8]) -> bool {
    match codec {
        // RFC 6386 §9.1: bit 0 of the frame tag is 0 for a key frame.
        Codec::Vp8 => data.first().is_some_and(|b| b & 1 == 0),
        // VP9 uncompressed header: frame marker (2 bits), profile (2 bits,
        // a third reserved bit at profile 3), show_existing_frame, then
        // frame_type (0 = key frame).
        Codec::Vp9 => data.first().is_some_and(|&b| {
            let profile = ((b >> 5) & 1) | (((b >> 4) & 1) << 1);
            let shift = if profile == 3 { 2 } else { 1 };
            let show_existing = (b >> (3 - shift + 1)) & 1;
            let frame_type = (b >> (3 - shift)) & 1;
            b >> 6 == 0b10 && show_existing == 0 && frame_type == 0
        }),
        // Annex B: an IDR slice (type 5) anywhere in the access unit.
        Codec::H264 => annexb_nal_types(data).any(|t| t == 5),
        // AV1: a sequence header OBU (type 1) comes with every key frame.
        Codec::Av1 => av1_obu_types(data).any(|t| t == 1),
        _ => true,
    }
}

/// The picture size (width × height) a key frame of `codec` carries, as
/// depacketized (H.264 in Annex B); None when it holds none readable.
pub fn key_pixels(codec: Codec, data: &[u8]) -> Option<u64> {
    use crate::sink::passthrough::Codec as Track;
    let track = match codec {
        Codec::Vp8 => Track::Vp8,
        Codec::Vp9 => Track::Vp9,
        Codec::Av1 => Track::Av1,
        Codec::H264 => Track::H264,
        _ => return None,
    };
    crate::video_setup::setup(track, data).map(|s| u64::from(s.width) * u64::from(s.height))
}

/// The OBU types of an AV1 temporal unit (low-overhead format, each OBU
/// with its size; a unit without a size ends the walk).
fn av1_obu_types(data: &[u8]) -> impl Iterator<Item = u8> + '_ {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        let header = *data.get(at)?;
        let ty = (header >> 3) & 0x0f;
        let has_ext = (header >> 2) & 1 == 1;
        let has_size = (header >> 1) & 1 == 1;
        at += 1 + usize::from(has_ext);
        if has_size {
            let mut size = 0usize;
            for i in 0..8 {
                let b = *data.get(at)?;
                at += 1;
                size |= usize::from(b & 0x7f) << (7 * i);
                if b & 0x80 == 0 {
                    break;
                }
            }
            at = at.saturating_add(size);
        } else {
            at = data.len();
        }
        Some(ty)
    })
}

fn annexb_nal_types(data: &[u8]) -> impl Iterator<Item = u8> + '_ {
    data.windows(4).enumerate().filter_map(move |(i, w)| {
        let start = if w[..3] == [0, 0, 1] {
            i + 3
        } else if w == [0, 0, 0, 1] {
            i + 4
        } else {
            return None;
        };
        data.get(start).map(|b| b & 0x1f)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offers_video_order_is_kept() {
        let offer = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 98 96 45\r\na=rtpmap:96 VP8/90000\r\n\
            a=rtpmap:98 VP9/90000\r\na=rtpmap:45 AV1/90000\r\n";
        assert_eq!(
            super::video_preference(offer),
            [Codec::Vp9, Codec::Vp8, Codec::Av1, Codec::H264]
        );
        assert_eq!(
            super::video_preference("garbage"),
            [Codec::Vp8, Codec::Vp9, Codec::Av1, Codec::H264]
        );
    }

    #[test]
    fn sdp_errors_show_no_memory_address() {
        let now = Instant::now();
        let at: SocketAddr = "127.0.0.1:9".parse().unwrap();
        for bad in [
            "v=0\r\nnonsense\r\n",
            "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video x\r\n",
            "garbage",
            "",
        ] {
            let Err(e) = answer(bad, at.into(), now, Feedback::None) else {
                panic!("{bad:?} answered")
            };
            assert!(!e.contains("PointerOffset") && !e.contains("0x7"), "{e}");
            assert!(e.starts_with("the SDP offer"), "{e}");
        }
        let m = without_addresses("bad at PointerOffset(0x1) and 0x7f45aa01beef here", "x");
        assert_eq!(m, "bad at a place in the text and an address here");
        let input = "line one\nline two";
        let p = format!("PointerOffset(0x{:x})", input.as_ptr() as usize + 10);
        assert_eq!(without_addresses(&p, input), "line 2");
    }

    /// An offer whose every codec is one tapedeck does not take is
    /// refused, not answered with every line at port 0.
    #[test]
    fn an_offer_with_no_codec_in_common_is_refused() {
        let mut rtc = RtcConfig::new()
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .build(Instant::now());
        rtc.add_local_candidate(Candidate::host("127.0.0.1:9".parse().unwrap(), "udp").unwrap());
        let mut change = rtc.sdp_api();
        for kind in [
            str0m::media::MediaKind::Audio,
            str0m::media::MediaKind::Video,
        ] {
            change.add_media(kind, str0m::media::Direction::SendOnly, None, None, None);
        }
        let offer = change.apply().unwrap().0.to_sdp_string();
        let at: SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert!(answer(&offer, at.into(), Instant::now(), Feedback::None).is_ok());
        let foreign = offer
            .replace("VP8/90000", "FOO/90000")
            .replace("opus/48000/2", "BAR/8000");
        assert_ne!(foreign, offer);
        let e = answer(&foreign, at.into(), Instant::now(), Feedback::None)
            .err()
            .unwrap();
        assert!(e.contains("no audio or video tapedeck takes"), "{e}");
    }

    #[test]
    fn keyframes_are_told_from_other_frames() {
        assert!(is_keyframe(
            Codec::Vp8,
            &[0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a]
        ));
        assert!(!is_keyframe(Codec::Vp8, &[0x31, 0x02, 0x00]));
        assert!(!is_keyframe(Codec::Vp8, &[]));
        assert!(is_keyframe(
            Codec::H264,
            &[0, 0, 0, 1, 0x67, 0, 0, 1, 0x68, 0, 0, 1, 0x65]
        ));
        assert!(!is_keyframe(Codec::H264, &[0, 0, 0, 1, 0x41, 0x9a]));
        // VP9 profile 0: 10 0 0 0 ... key frame; 10 0 0 1 ... inter frame.
        assert!(is_keyframe(Codec::Vp9, &[0b1000_0010]));
        assert!(!is_keyframe(Codec::Vp9, &[0b1000_0110]));
        assert!(is_keyframe(Codec::Opus, &[1, 2, 3]));
        // AV1: temporal delimiter (type 2, size 0), then a sequence header
        // (type 1): key; temporal delimiter then a frame (type 6): not.
        assert!(is_keyframe(Codec::Av1, &[0x12, 0x00, 0x0a, 0x01, 0xff]));
        assert!(!is_keyframe(Codec::Av1, &[0x12, 0x00, 0x32, 0x01, 0xff]));
    }
}
