//! A recording's live outputs: HLS while it records, pictures every N
//! seconds, and streams pushed out over RTMP or SRT. What a request asks
//! for is parsed and checked here (every error names the output and its
//! field); what each output is doing is its [`OutputState`], kept with the
//! recording.

use serde::{Deserialize, Serialize};

use crate::codes::Code;
use crate::netpolicy::{Blocked, NetPolicy, Verdict};
use crate::recording::{RoomLayout, SourceSpec};

/// Most outputs one recording may have (added while it records included).
pub const MAX_OUTPUTS: usize = 8;

/// Outputs a recording lists, stopped streams included (each added and
/// removed while it records stays listed with its state).
pub const MAX_LISTED: usize = 32;

/// The SRT options a stream URL may carry: what a receiver asks of its
/// callers. Others (`mode=listener`, `localport`, ...) would make the
/// server listen or bind where it was not asked to.
const SRT_OPTIONS: &[&str] = &[
    "streamid",
    "passphrase",
    "pbkeylen",
    "latency",
    "peerlatency",
    "rcvlatency",
    "maxbw",
    "connect_timeout",
    "pkt_size",
    "payload_size",
];
/// Longest stream URL taken.
pub const MAX_URL_LEN: usize = 2048;
/// The HLS segment length when none is asked for, seconds.
pub const DEFAULT_SEGMENT_S: u32 = 2;

/// One output as asked for and kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum OutputSpec {
    /// CMAF (fMP4) segments and a playlist, live while recording and VOD after.
    Hls {
        /// Segment length, seconds (1-10; a keyframe starts each).
        #[serde(default = "default_segment_s")]
        segment_s: u32,
    },
    /// A JPEG every `every_s` seconds of recording time.
    Images {
        /// Seconds of recording between two pictures (1-3600).
        #[serde(default = "default_every_s")]
        every_s: u32,
        /// Picture width (16-3840, even); the height keeps the aspect.
        #[serde(default = "default_width")]
        width: u32,
    },
    /// The live encode pushed to an RTMP server (`rtmp://` or `rtmps://`).
    Rtmp {
        /// Where to push: server, application and stream key.
        url: String,
    },
    /// The live encode pushed as MPEG-TS over SRT (`srt://host:port`).
    Srt {
        /// Where to push (a caller to an SRT listener).
        url: String,
    },
}

fn default_segment_s() -> u32 {
    DEFAULT_SEGMENT_S
}
fn default_every_s() -> u32 {
    10
}
fn default_width() -> u32 {
    640
}

impl OutputSpec {
    /// The kind's name, as in the API.
    pub fn kind(&self) -> &'static str {
        match self {
            OutputSpec::Hls { .. } => "hls",
            OutputSpec::Images { .. } => "images",
            OutputSpec::Rtmp { .. } => "rtmp",
            OutputSpec::Srt { .. } => "srt",
        }
    }

    /// A stream pushed out (RTMP or SRT): its URL.
    pub fn stream_url(&self) -> Option<&str> {
        match self {
            OutputSpec::Rtmp { url } | OutputSpec::Srt { url } => Some(url),
            OutputSpec::Hls { .. } | OutputSpec::Images { .. } => None,
        }
    }
}

/// What an output is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputState {
    /// Not begun: the recording has not started, or a stream waits for its
    /// first keyframe.
    Pending,
    /// Writing or sending.
    Active,
    /// A stream's receiver went away; it is tried again with backoff.
    Retrying,
    /// Removed while recording, or the recording ended; what it made is kept.
    Stopped,
    /// Made and stored with the recording (HLS as VOD, the pictures).
    Completed,
    /// Could not be made; the recording itself is not affected.
    Failed,
}

/// One output of a recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Output {
    /// Its id within the recording (`o1`, `o2`, ...; never reused).
    pub id: String,
    /// What it is.
    #[serde(flatten)]
    pub spec: OutputSpec,
    /// What it is doing.
    pub state: OutputState,
    /// The last thing that went wrong, if anything did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl Output {
    /// A new output, pending.
    pub fn new(id: String, spec: OutputSpec) -> Self {
        Self {
            id,
            spec,
            state: OutputState::Pending,
            last_error: None,
        }
    }
}

/// The id after the largest `oN` in `outputs`.
pub fn next_id(outputs: &[Output]) -> String {
    let n = outputs
        .iter()
        .filter_map(|o| o.id.strip_prefix('o')?.parse::<u32>().ok())
        .max()
        .unwrap_or(0);
    format!("o{}", n + 1)
}

/// An output that cannot be used: which one, which field, why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidOutput {
    /// The field, as `outputs[2].url`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl crate::ErrorCode for InvalidOutput {
    fn code(&self) -> Code {
        Code::InvalidOutput
    }
}

impl From<InvalidOutput> for crate::Problem {
    fn from(e: InvalidOutput) -> Self {
        crate::Problem::from_code(e)
    }
}

/// Which sources take which outputs: HLS and pictures from every source
/// (a room's as its grid), streams from the live encodes (web, frames, a
/// call's grid composed while it runs); an upload has none.
pub fn check_source(spec: &OutputSpec, source: &SourceSpec) -> Result<(), String> {
    let grid = match source {
        SourceSpec::Room(r) => r.layout == RoomLayout::Grid,
        _ => true,
    };
    match spec {
        OutputSpec::Hls { .. } | OutputSpec::Rtmp { .. } | OutputSpec::Srt { .. } if !grid => {
            Err(format!(
                "a room recording has a {} output only with `layout: grid` (one picture to show)",
                spec.kind()
            ))
        }
        OutputSpec::Rtmp { .. } | OutputSpec::Srt { .. }
            if matches!(source, SourceSpec::Upload(_)) =>
        {
            Err(format!(
                "{} streams a live encode: web, frames and room (grid) recordings have one; an upload has none",
                spec.kind()
            ))
        }
        _ => Ok(()),
    }
}

/// Streams carry the live encode as it is: H.264 (FLV and MPEG-TS as
/// players take them), so not a WebM (VP9) recording's.
pub fn check_format(spec: &OutputSpec, format: crate::Format) -> Result<(), String> {
    if spec.stream_url().is_some() && format == crate::Format::Webm {
        return Err(format!(
            "{} carries H.264, and a webm recording is VP9: record as mp4 or mkv to stream it",
            spec.kind()
        ));
    }
    Ok(())
}

/// Parses one output (`value`, the `index`th of the list) and checks its
/// fields, its source, and that its kind is not there twice (HLS,
/// pictures) in `existing`.
pub fn parse_one(
    value: serde_json::Value,
    index: Option<usize>,
    source: &SourceSpec,
    existing: &[OutputSpec],
) -> Result<OutputSpec, InvalidOutput> {
    let at = |field: &str| match index {
        Some(i) if field.is_empty() => format!("outputs[{i}]"),
        Some(i) => format!("outputs[{i}].{field}"),
        None if field.is_empty() => "output".to_string(),
        None => field.to_string(),
    };
    let bad = |field: &str, message: String| InvalidOutput {
        field: at(field),
        message,
    };
    let shape = "an output is {\"kind\": \"hls\" | \"images\" | \"rtmp\" | \"srt\", ...}";
    if !value.is_object() {
        return Err(bad("", format!("not a JSON object ({shape})")));
    }
    let spec: OutputSpec = serde_json::from_value(value).map_err(|e| {
        // Serde names Rust's integer types; a person reads numbers.
        let e = e
            .to_string()
            .replace("expected u32", "expected a whole number");
        bad("", format!("{e} ({shape})"))
    })?;
    match &spec {
        OutputSpec::Hls { segment_s } if !(1..=10).contains(segment_s) => {
            return Err(bad("segment_s", "must be 1 to 10 seconds".into()));
        }
        OutputSpec::Images { every_s, .. } if !(1..=3600).contains(every_s) => {
            return Err(bad("every_s", "must be 1 to 3600 seconds".into()));
        }
        OutputSpec::Images { width, .. } if !(16..=3840).contains(width) || width % 2 != 0 => {
            return Err(bad(
                "width",
                "must be an even number from 16 to 3840".into(),
            ));
        }
        OutputSpec::Rtmp { url } | OutputSpec::Srt { url } => {
            check_url(&spec, url).map_err(|m| bad("url", m))?;
        }
        _ => {}
    }
    check_source(&spec, source).map_err(|m| bad("kind", m))?;
    let single = matches!(spec, OutputSpec::Hls { .. } | OutputSpec::Images { .. });
    if single && existing.iter().any(|e| e.kind() == spec.kind()) {
        return Err(bad(
            "kind",
            format!("a recording has at most one {} output", spec.kind()),
        ));
    }
    if existing.len() >= MAX_OUTPUTS {
        return Err(bad(
            "",
            format!("a recording has at most {MAX_OUTPUTS} outputs"),
        ));
    }
    Ok(spec)
}

/// Parses a create request's `outputs` list.
pub fn parse_list(
    value: serde_json::Value,
    source: &SourceSpec,
    format: crate::Format,
) -> Result<Vec<OutputSpec>, InvalidOutput> {
    let serde_json::Value::Array(items) = value else {
        return Err(InvalidOutput {
            field: "outputs".into(),
            message: "must be a list of outputs".into(),
        });
    };
    if items.len() > MAX_OUTPUTS {
        return Err(InvalidOutput {
            field: "outputs".into(),
            message: format!(
                "{} outputs; a recording has at most {MAX_OUTPUTS}",
                items.len()
            ),
        });
    }
    let mut out: Vec<OutputSpec> = Vec::with_capacity(items.len());
    for (i, v) in items.into_iter().enumerate() {
        let spec = parse_one(v, Some(i), source, &out)?;
        check_format(&spec, format).map_err(|message| InvalidOutput {
            field: format!("outputs[{i}].kind"),
            message,
        })?;
        out.push(spec);
    }
    Ok(out)
}

/// The form of a stream URL: its scheme matches the kind, it names a host,
/// carries no password, and fits.
fn check_url(spec: &OutputSpec, url: &str) -> Result<(), String> {
    if url.len() > MAX_URL_LEN {
        return Err(format!("must be at most {MAX_URL_LEN} bytes"));
    }
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("must not contain spaces or control characters".into());
    }
    let u = url::Url::parse(url).map_err(|e| format!("not a URL ({e})"))?;
    let schemes: &[&str] = match spec {
        OutputSpec::Rtmp { .. } => &["rtmp", "rtmps"],
        _ => &["srt"],
    };
    if !schemes.contains(&u.scheme()) {
        return Err(format!(
            "`{}:` URLs are not taken here; a {} output takes {}",
            u.scheme(),
            spec.kind(),
            schemes
                .iter()
                .map(|s| format!("{s}://"))
                .collect::<Vec<_>>()
                .join(" or ")
        ));
    }
    if u.host().is_none() {
        return Err("must name a host".into());
    }
    if u.password().is_some() || !u.username().is_empty() {
        return Err("must not carry a user name or password (put a stream key in the path)".into());
    }
    if u.port() == Some(0) {
        return Err("port 0 is not a port to connect to".into());
    }
    match spec {
        OutputSpec::Srt { .. } => {
            if u.port().is_none() {
                return Err("an SRT URL needs a port (srt://host:port)".into());
            }
            if !matches!(u.path(), "" | "/") {
                return Err("an SRT URL has no path (srt://host:port?streamid=...)".into());
            }
            for (k, v) in u.query_pairs() {
                let caller = k == "mode" && v == "caller";
                if !caller && !SRT_OPTIONS.contains(&k.as_ref()) {
                    return Err(format!(
                        "the SRT option `{k}` is not taken (a push is a caller; it may carry {})",
                        SRT_OPTIONS.join(", ")
                    ));
                }
            }
        }
        _ => {
            if u.path().trim_matches('/').is_empty() {
                return Err(
                    "an RTMP URL names the application and stream key (rtmp://host/app/key)".into(),
                );
            }
        }
    }
    Ok(())
}

/// The host and port a stream URL connects to (RTMP's default port is
/// 1935, RTMPS's 443).
pub fn endpoint(url: &str) -> Option<(String, u16)> {
    let u = url::Url::parse(url).ok()?;
    let port = u.port().or(match u.scheme() {
        "rtmp" => Some(1935),
        "rtmps" => Some(443),
        _ => None,
    })?;
    let host = match u.host()? {
        url::Host::Domain(d) => d.to_string(),
        url::Host::Ipv4(a) => a.to_string(),
        url::Host::Ipv6(a) => a.to_string(),
    };
    Some((host, port))
}

/// The first check of a stream URL's host against `policy` (a literal
/// address is decided here; a name must be resolved and its addresses
/// passed to [`NetPolicy::check_addrs`]).
pub fn check_endpoint(policy: &NetPolicy, url: &str) -> Verdict {
    match endpoint(url) {
        Some((host, port)) => policy.check_host(&host, port),
        None => Verdict::Deny(Blocked::Malformed),
    }
}

/// `url` with its host replaced by `addr` (what was checked is what is
/// connected to: no second lookup between the check and the connection).
pub fn pinned(url: &str, addr: std::net::IpAddr) -> Option<String> {
    let mut u = url::Url::parse(url).ok()?;
    // RTMP's default port stays explicit once the host is an address.
    let port = endpoint(url)?.1;
    u.set_ip_host(addr).ok()?;
    u.set_port(Some(port)).ok()?;
    Some(u.to_string())
}

/// Where a push connects: the URL given to ffmpeg, and for RTMP the
/// `tcUrl` the server is told (the name it was given, so a server that
/// routes by host still sees it when the connection goes to the checked
/// address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// What ffmpeg connects to.
    pub connect: String,
    /// RTMP's tcUrl, when the host was replaced by its address.
    pub tc_url: Option<String>,
}

/// The push target of `url` once its host was checked and resolved to
/// `addr` (none: the policy let any address through). SRT and RTMP go to
/// the checked address; RTMPS keeps the name, which TLS needs (server
/// name, certificate), and is checked again just before it connects.
pub fn target(url: &str, addr: Option<std::net::IpAddr>) -> Target {
    let keep = Target {
        connect: url.to_string(),
        tc_url: None,
    };
    let Some(addr) = addr else {
        return keep;
    };
    if url.starts_with("rtmps:") {
        return keep;
    }
    let Some(connect) = pinned(url, addr) else {
        return keep;
    };
    let tc_url = url
        .starts_with("rtmp:")
        .then(|| {
            let base = url.split('?').next().unwrap_or(url);
            base.rsplit_once('/').map(|(app, _)| app.to_string())
        })
        .flatten();
    Target { connect, tc_url }
}

/// Hides what each stream output's URL carries past its host (stream
/// keys, SRT passphrases and stream ids): a recording as someone other
/// than its owner sees it (a participant of its call).
pub fn hide_secrets(outputs: &mut [Output]) {
    for o in outputs {
        if let OutputSpec::Rtmp { url } | OutputSpec::Srt { url } = &mut o.spec {
            *url = redacted(url);
        }
    }
}

/// `url` with the path and query hidden past the application (RTMP stream
/// keys, SRT passphrases): what logs and errors may show.
pub fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => {
            let host = u.host_str().unwrap_or("");
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!("{}://{host}{port}/…", u.scheme())
        }
        Err(_) => "(not a URL)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn frames() -> SourceSpec {
        SourceSpec::Frames { input_fps: None }
    }

    fn parse(v: serde_json::Value) -> Result<Vec<OutputSpec>, InvalidOutput> {
        parse_list(v, &frames(), crate::Format::Mp4)
    }

    #[test]
    fn outputs_are_parsed_with_their_defaults() {
        let o = parse(json!([
            {"kind": "hls"},
            {"kind": "images", "every_s": 5},
            {"kind": "rtmp", "url": "rtmp://live.example.org/app/key"},
            {"kind": "srt", "url": "srt://ingest.example.org:9000?streamid=x"}
        ]))
        .unwrap();
        assert_eq!(o[0], OutputSpec::Hls { segment_s: 2 });
        assert_eq!(
            o[1],
            OutputSpec::Images {
                every_s: 5,
                width: 640
            }
        );
        assert_eq!(o[2].stream_url(), Some("rtmp://live.example.org/app/key"));
        assert_eq!(o.len(), 4);
    }

    #[test]
    fn bad_outputs_name_the_output_and_field() {
        let field = |v| parse(v).unwrap_err().field;
        assert_eq!(
            field(json!([{"kind": "hls"}, {"kind": "rtmp", "url": "file:///etc/passwd"}])),
            "outputs[1].url"
        );
        let e = parse(json!([{"kind": "rtmp", "url": "http://x.org/a"}])).unwrap_err();
        assert!(e.message.contains("rtmp://"), "{e}");
        assert_eq!(
            field(json!([{"kind": "srt", "url": "srt://x.org"}])),
            "outputs[0].url"
        );
        assert_eq!(
            field(json!([{"kind": "rtmp", "url": "rtmp://u:p@x.org/a"}])),
            "outputs[0].url"
        );
        assert_eq!(
            field(json!([{"kind": "hls", "segment_s": 0}])),
            "outputs[0].segment_s"
        );
        assert_eq!(
            field(json!([{"kind": "images", "width": 641}])),
            "outputs[0].width"
        );
        assert_eq!(field(json!([{"kind": "dash"}])), "outputs[0]");
        assert_eq!(field(json!([{"kind": "hls", "bitrate": 5}])), "outputs[0]");
        assert_eq!(
            field(json!([{"kind": "hls"}, {"kind": "hls"}])),
            "outputs[1].kind"
        );
        assert_eq!(field(json!({"kind": "hls"})), "outputs");
        let e = parse(json!([[{"kind": "hls"}]])).unwrap_err();
        assert!(e.message.contains("not a JSON object"), "{e}");
        let e = parse(json!([{"kind": "hls", "segment_s": 1.5}])).unwrap_err();
        assert!(e.message.contains("expected a whole number"), "{e}");
        for (bad, says) in [
            ("srt://x.org:9000?mode=listener", "`mode`"),
            ("srt://x.org:9000?localport=18929", "`localport`"),
            ("srt://x.org:9000/path", "no path"),
            ("srt://x.org:0", "port 0"),
            ("rtmp://x.org", "application"),
            ("rtmp://x.org:0/app/key", "port 0"),
        ] {
            let e = parse(
                json!([{"kind": if bad.starts_with("srt") { "srt" } else { "rtmp" }, "url": bad}]),
            )
            .unwrap_err();
            assert!(e.message.contains(says), "{bad}: {e}");
        }
        assert!(
            parse(json!([{"kind": "srt", "url": "srt://x.org:9000?mode=caller&streamid=a&latency=200"}]))
                .is_ok()
        );
        let long = format!("rtmp://x.org/{}", "k".repeat(3000));
        assert_eq!(
            field(json!([{"kind": "rtmp", "url": long}])),
            "outputs[0].url"
        );
        let many: Vec<_> = (0..10_000)
            .map(|i| json!({"kind": "rtmp", "url": format!("rtmp://x.org/a/{i}")}))
            .collect();
        let e = parse(serde_json::Value::Array(many)).unwrap_err();
        assert_eq!(e.field, "outputs");
        assert!(e.message.contains("10000"), "{e}");
        use crate::ErrorCode;
        assert_eq!((e.code(), e.status()), (Code::InvalidOutput, 422));
        let srt = json!([{"kind": "srt", "url": "srt://x.org:9000"}]);
        let e = parse_list(srt, &frames(), crate::Format::Webm).unwrap_err();
        assert_eq!(e.field, "outputs[0].kind");
    }

    #[test]
    fn rooms_stream_and_segment_only_their_grid() {
        let id = crate::RoomId::from_parts(1_700_000_000_000, 1);
        let room = |layout| SourceSpec::Room(crate::recording::RoomSource { room: id, layout });
        let hls = json!([{"kind": "hls"}]);
        assert!(parse_list(hls.clone(), &room(RoomLayout::Grid), crate::Format::Mp4).is_ok());
        let e = parse_list(hls, &room(RoomLayout::Tracks), crate::Format::Mp4).unwrap_err();
        assert!(e.message.contains("grid"), "{e}");
        assert!(
            parse_list(
                json!([{"kind": "images"}]),
                &room(RoomLayout::Tracks),
                crate::Format::Mp4
            )
            .is_ok()
        );
        // Streams of the grid composed while the call runs; not of tracks.
        let rtmp = json!([{"kind": "rtmp", "url": "rtmp://x.org/a/k"}]);
        assert!(parse_list(rtmp.clone(), &room(RoomLayout::Grid), crate::Format::Mp4).is_ok());
        assert!(parse_list(rtmp, &room(RoomLayout::Tracks), crate::Format::Mp4).is_err());
    }

    #[test]
    fn others_see_streams_without_their_keys() {
        let mut outs = vec![
            Output::new("o1".into(), OutputSpec::Hls { segment_s: 2 }),
            Output::new(
                "o2".into(),
                OutputSpec::Rtmp {
                    url: "rtmp://a.example.org/live/SECRETKEY".into(),
                },
            ),
            Output::new(
                "o3".into(),
                OutputSpec::Srt {
                    url: "srt://b.example.org:9000?passphrase=hush".into(),
                },
            ),
        ];
        hide_secrets(&mut outs);
        let text = serde_json::to_string(&outs).unwrap();
        assert!(
            !text.contains("SECRETKEY") && !text.contains("hush"),
            "{text}"
        );
        assert!(
            text.contains("rtmp://a.example.org/") && text.contains("srt://b.example.org:9000/"),
            "{text}"
        );
    }

    #[test]
    fn endpoints_are_checked_and_pinned() {
        let policy = NetPolicy::default();
        assert!(matches!(
            check_endpoint(&policy, "rtmp://127.0.0.1/live/k"),
            Verdict::Deny(_)
        ));
        assert!(matches!(
            check_endpoint(&policy, "srt://[::1]:9000"),
            Verdict::Deny(_)
        ));
        assert_eq!(
            check_endpoint(&policy, "rtmp://live.example.org/app/k"),
            Verdict::Resolve {
                host: "live.example.org".into(),
                port: 1935
            }
        );
        let open = NetPolicy {
            allowed_hosts: vec!["127.0.0.1:1935".into()],
            ..NetPolicy::default()
        };
        assert_eq!(
            check_endpoint(&open, "rtmp://127.0.0.1/live/k"),
            Verdict::Allow
        );
        assert_eq!(
            pinned(
                "rtmp://live.example.org/app/key",
                "203.0.113.5".parse().unwrap()
            )
            .unwrap(),
            "rtmp://203.0.113.5:1935/app/key"
        );
        assert_eq!(redacted("rtmp://x.org/app/secret"), "rtmp://x.org/…");
        let ip: std::net::IpAddr = "203.0.113.5".parse().unwrap();
        let t = target("rtmp://live.example.org/app/key", Some(ip));
        assert_eq!(t.connect, "rtmp://203.0.113.5:1935/app/key");
        assert_eq!(t.tc_url.as_deref(), Some("rtmp://live.example.org/app"));
        let t = target("rtmps://live.example.org:443/app/key", Some(ip));
        assert_eq!(
            (t.connect.as_str(), t.tc_url),
            ("rtmps://live.example.org:443/app/key", None)
        );
        let t = target("srt://ingest.example.org:9000?streamid=a", Some(ip));
        assert_eq!(t.connect, "srt://203.0.113.5:9000?streamid=a");
        assert_eq!(next_id(&[]), "o1");
        let o = Output::new("o7".into(), OutputSpec::Hls { segment_s: 2 });
        assert_eq!(next_id(&[o]), "o8");
    }
}
