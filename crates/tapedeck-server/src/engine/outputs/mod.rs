//! A recording's live outputs (`core::output`), one module per kind: `hls`
//! (segments while recording, VOD after) and `images` (a picture every N
//! seconds). While a recording records, the live encode writes them in its
//! work folder (`media::ffmpeg::live`); once its file is final, [`finish`]
//! completes what the live encode could not make (a recording rebuilt from
//! its spool, a call's grid composed after stop, an upload, a web page
//! with its sound laid under after) from that file, without re-encoding
//! the video, and [`store`] puts them beside the media.

pub mod clip;
pub mod hls;
pub mod images;
pub mod stream;

use std::path::Path;

use tapedeck_core::Failure;
use tapedeck_core::netpolicy::{NetPolicy, Verdict};
use tapedeck_core::output::{self, OutputSpec, OutputState};
use tapedeck_core::recording::{MediaInfo, Recording, RoomLayout, SourceSpec};
use tapedeck_media::ffmpeg::LiveSpec;

use crate::engine::services::Services;

/// What the live encode of `rec` writes besides its file.
pub fn live_spec(rec: &Recording) -> LiveSpec {
    let mut live = LiveSpec::default();
    for o in &rec.outputs {
        match o.spec {
            OutputSpec::Hls { segment_s } => live.hls_segment_s = Some(segment_s),
            OutputSpec::Images { every_s, width } => live.images = Some((every_s, width)),
            OutputSpec::Rtmp { .. } | OutputSpec::Srt { .. } => {}
        }
    }
    // Streams are pushed from the live segments.
    if live.hls_segment_s.is_none() && rec.outputs.iter().any(|o| o.spec.stream_url().is_some()) {
        live.hls_segment_s = Some(output::DEFAULT_SEGMENT_S);
    }
    live
}

/// Whether `rec`'s outputs come from a live encode while it records: a
/// web or frames recording's own, or a call's grid composed while it runs
/// (`source::room::live`) when it has a live output.
pub fn live_encode(rec: &Recording) -> bool {
    let grid = matches!(&rec.source, SourceSpec::Room(r) if r.layout == RoomLayout::Grid);
    rec.source.traits().own_encode || (grid && live_spec(rec).any())
}

/// Marks the outputs the live encode writes as active (it started).
pub fn started(rec: &mut Recording) {
    for o in &mut rec.outputs {
        if matches!(o.spec, OutputSpec::Hls { .. } | OutputSpec::Images { .. })
            && o.state == OutputState::Pending
        {
            o.state = OutputState::Active;
        }
    }
}

/// Completes `rec`'s HLS and pictures in `work` from its final `media`
/// (described by `info`); each output's state says how it went. Never
/// fails the recording.
pub async fn finish(services: &Services, rec: &mut Recording, media: &Path, info: &MediaInfo) {
    let work = services.work_dir(rec.id);
    for o in &mut rec.outputs {
        let made = match o.spec {
            OutputSpec::Hls { segment_s } => {
                // A call's live grid has no sound and was composed as the
                // media arrived: its VOD is cut from the grid made after.
                let live_is_file = rec.source.traits().own_encode;
                hls::finish(services, &work, media, info, segment_s, live_is_file).await
            }
            OutputSpec::Images { every_s, width } => {
                images::finish(services, &work, media, info, every_s, width).await
            }
            OutputSpec::Rtmp { .. } | OutputSpec::Srt { .. } => {
                // The recording ended: so did its streams.
                if o.state != OutputState::Failed {
                    o.state = OutputState::Stopped;
                }
                continue;
            }
        };
        match made {
            Ok(()) => o.state = OutputState::Completed,
            Err(e) => {
                tracing::warn!(id = %rec.id, output = %o.id, error = %e, "an output could not be made");
                o.state = OutputState::Failed;
                o.last_error = Some(e);
            }
        }
    }
}

/// Puts the completed outputs' files beside the media. A store failure is
/// the recording's (`storage_failed`, retried as the media is).
pub async fn store(services: &Services, rec: &Recording) -> Result<(), Failure> {
    let work = services.work_dir(rec.id);
    for o in rec
        .outputs
        .iter()
        .filter(|o| o.state == OutputState::Completed)
    {
        match o.spec {
            OutputSpec::Hls { .. } => hls::store(services, rec, &work).await?,
            OutputSpec::Images { .. } => images::store(services, rec, &work).await?,
            OutputSpec::Rtmp { .. } | OutputSpec::Srt { .. } => {}
        }
    }
    Ok(())
}

/// The network policy of stream outputs.
pub fn policy(config: &crate::config::Config) -> NetPolicy {
    NetPolicy {
        allow_private: config.outputs.allow_private_networks,
        allowed_hosts: config.outputs.allowed_hosts.clone(),
        own_addrs: tapedeck_media::web::own_addrs(),
    }
}

/// Checks where a stream output's URL goes (resolving a name): a private,
/// loopback, link-local or this host's own address is refused unless
/// `outputs.allow_private_networks` or `outputs.allowed_hosts` let it.
/// The address to connect to (none when the policy lets any through).
pub async fn check_address(
    config: &crate::config::Config,
    url: &str,
) -> Result<Option<std::net::IpAddr>, String> {
    check_address_why(config, url).await.map_err(|(_, m)| m)
}

/// [`check_address`], telling a refused address (true) from a name that
/// did not resolve (false: it may, later).
pub async fn check_address_why(
    config: &crate::config::Config,
    url: &str,
) -> Result<Option<std::net::IpAddr>, (bool, String)> {
    let policy = policy(config);
    let said = |b: tapedeck_core::netpolicy::Blocked| {
        let refused = !matches!(b, tapedeck_core::netpolicy::Blocked::Unresolved(_));
        let m = b.to_string().replace(
            "web.allow_private_networks",
            "outputs.allow_private_networks",
        );
        (refused, m)
    };
    match output::check_endpoint(&policy, url) {
        Verdict::Allow => Ok(None),
        Verdict::Deny(b) => Err(said(b)),
        Verdict::Resolve { host, port } => {
            let addrs: Vec<std::net::IpAddr> = tokio::net::lookup_host((host.as_str(), port))
                .await
                .map(|a| a.map(|s| s.ip()).collect())
                .unwrap_or_default();
            policy.check_addrs(&host, &addrs).map_err(said)?;
            Ok(addrs.first().copied())
        }
    }
}

/// Uploads `files` (names in `dir`) under `prefix`, in order.
async fn put_all(
    services: &Services,
    dir: &Path,
    prefix: &str,
    files: &[String],
) -> Result<(), Failure> {
    for name in files {
        let key = format!("{prefix}/{name}");
        services
            .blobs
            .put_file(&key, &dir.join(name))
            .await
            .map_err(|e| {
                Failure::new(
                    tapedeck_core::Code::StorageFailed,
                    format!("storing {key} failed: {e}"),
                )
            })?;
    }
    Ok(())
}
