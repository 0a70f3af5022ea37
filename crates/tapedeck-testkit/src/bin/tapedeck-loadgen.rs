//! Load generator for rooms: N WebRTC publishers in one process, each a
//! str0m client with a UDP socket of its own, publishing over WHIP a
//! pre-encoded VP8 clip (IVF) and an Opus clip (Ogg), looped and paced in
//! real time (30 fps video, 20 ms audio frames).
//!
//!   tapedeck-loadgen --whip URL --token T [--token T2 ...] --video clip.ivf
//!       --audio clip.opus --seconds S [--stagger-ms 20]
//!
//!   tapedeck-loadgen --call ws://HOST/v1/rooms/ID/call --token T... (as above)
//!
//! joins each as a call page does instead: publishing, and receiving the
//! others' tracks (what arrived is under `received` in the output).
//!
//!   tapedeck-loadgen --dead-offer
//!
//! prints an offer whose candidate nothing answers (a session that never
//! connects). One publisher per `--token` (a join token each, so each has a name of
//! its own). `--whip` is the room's WHIP endpoint (tapedeck's, or a peer's
//! for comparison). Prints one JSON line: publishers connected, frames and
//! bytes sent, and those that failed with why.

use tapedeck_testkit::loadgen::{Load, publish};

fn args() -> Result<Load, String> {
    let mut a = Load {
        whip: String::new(),
        tokens: vec![],
        video: Default::default(),
        audio: Default::default(),
        seconds: 60,
        stagger_ms: 20,
        call: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().ok_or(format!("{k} needs a value"));
        match k.as_str() {
            "--whip" => a.whip = v()?,
            "--call" => {
                a.whip = v()?;
                a.call = true;
            }
            "--token" => a.tokens.push(v()?),
            "--video" => a.video = v()?.into(),
            "--audio" => a.audio = v()?.into(),
            "--seconds" => a.seconds = v()?.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--stagger-ms" => {
                a.stagger_ms = v()?.parse().map_err(|e| format!("--stagger-ms: {e}"))?
            }
            _ => return Err(format!("unknown argument {k}")),
        }
    }
    if a.whip.is_empty()
        || a.tokens.is_empty()
        || a.video.as_os_str().is_empty()
        || a.audio.as_os_str().is_empty()
    {
        return Err("usage: tapedeck-loadgen --whip URL|--call URL --token T... --video clip.ivf --audio clip.opus [--seconds S]".into());
    }
    Ok(a)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    if std::env::args().nth(1).as_deref() == Some("--dead-offer") {
        match tapedeck_testkit::loadgen::dead_offer() {
            Ok(sdp) => print!("{sdp}"),
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1);
            }
        }
        return;
    }
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    match publish(&a).await {
        Ok(totals) => println!("{totals}"),
        Err(e) => {
            eprintln!("tapedeck-loadgen: {e}");
            std::process::exit(1);
        }
    }
}
