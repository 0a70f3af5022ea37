//! The `tapedeck` command line: its arguments ([`args`]), the commands that
//! talk to a server ([`client`]), the install check ([`doctor`]) and the
//! one-shot web recording ([`record`]); this file runs them.

mod args;
mod client;
mod doctor;
mod record;

pub use args::{Cli, ClientArgs, Cmd, KeysCmd, RecordArgs, UsersCmd};

mod users;
use client::{call, download};
use doctor::doctor;
pub use record::record_request;
use record::{encode_frames, record};

use std::path::{Path, PathBuf};

use tapedeck_core::Format;
use tapedeck_store::repo::Repo;

use crate::config::Config;

/// Runs the command line; returns the process exit code.
pub async fn run(cli: Cli) -> i32 {
    match execute(cli).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

fn load_config(file: Option<&Path>, data_dir: Option<PathBuf>) -> Result<Config, String> {
    let mut c = Config::load(file).map_err(|e| e.to_string())?;
    if let Some(d) = data_dir {
        c.server.data_dir = d;
    }
    Ok(c)
}

async fn repo(config: &Config) -> Result<Repo, String> {
    std::fs::create_dir_all(&config.server.data_dir).map_err(|e| format!("data folder: {e}"))?;
    Repo::connect(&config.database_url())
        .await
        .map_err(|e| e.to_string())
}

async fn execute(cli: Cli) -> Result<(), String> {
    let file = cli.config.as_deref();
    match cli.cmd {
        Cmd::Serve { data_dir, listen } => {
            let mut config = load_config(file, data_dir)?;
            config.validate_node().map_err(|e| e.to_string())?;
            if let Some(l) = listen {
                config.server.listen = l;
            }
            match crate::http::app::raise_file_limit() {
                Ok((soft, hard)) if soft < crate::http::app::WANTED_OPEN_FILES => tracing::warn!(
                    soft,
                    hard,
                    "the limit on open files is low: connections beyond it are refused (raise it: LimitNOFILE=65536 in the systemd unit, or ulimit -Hn)"
                ),
                Ok((soft, hard)) => {
                    tracing::info!(soft, hard, "open files limit raised to the hard limit")
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the limit on open files could not be read or raised")
                }
            }
            let listener = tokio::net::TcpListener::bind(config.server.listen)
                .await
                .map_err(|e| format!("cannot listen on {}: {e}", config.server.listen))?;
            let r = repo(&config).await?;
            if r.list_keys().await.map_err(|e| e.to_string())?.is_empty() {
                eprintln!(
                    "no API keys yet: create one with `tapedeck keys create --user NAME --data-dir {}`",
                    config.server.data_dir.display()
                );
            }
            eprintln!(
                "tapedeck listening on http://{} (data in {})",
                listener.local_addr().map_err(|e| e.to_string())?,
                config.server.data_dir.display()
            );
            crate::http::app::serve(config, listener, shutdown_signal()).await
        }
        Cmd::Keys { cmd } => keys(file, cmd).await,
        Cmd::Users { cmd } => users::run(file, cmd).await,
        Cmd::Doctor { data_dir } => doctor(load_config(file, data_dir)?).await,
        Cmd::Ls {
            client,
            status,
            kind,
            limit,
            metadata,
        } => {
            let mut q = vec![("limit".to_string(), limit.to_string())];
            q.extend(status.map(|s| ("status".to_string(), s)));
            q.extend(kind.map(|k| ("kind".to_string(), k)));
            for m in metadata {
                let Some((k, v)) = m.split_once('=') else {
                    return Err(format!("--metadata {m}: expected KEY=VALUE"));
                };
                q.push((format!("metadata.{k}"), v.to_string()));
            }
            let v = call(&client, reqwest::Method::GET, "/v1/recordings", &q).await?;
            let empty = vec![];
            let recs = v["recordings"].as_array().unwrap_or(&empty);
            println!(
                "{:<30} {:<11} {:<7} {:>9} {:>12}  {:<24}  ERROR",
                "ID", "STATUS", "KIND", "DURATION", "SIZE", "CREATED"
            );
            for r in recs {
                println!(
                    "{:<30} {:<11} {:<7} {:>9} {:>12}  {:<24}  {}",
                    r["id"].as_str().unwrap_or(""),
                    r["status"].as_str().unwrap_or(""),
                    r["source"]["kind"].as_str().unwrap_or(""),
                    r["duration_s"]
                        .as_f64()
                        .map(|d| format!("{d:.1}s"))
                        .unwrap_or_else(|| "-".into()),
                    r["size_bytes"]
                        .as_u64()
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "-".into()),
                    r["created_at"].as_str().unwrap_or(""),
                    r["error"]["code"].as_str().unwrap_or("")
                );
            }
            Ok(())
        }
        Cmd::Get { client, id } => {
            let v = call(
                &client,
                reqwest::Method::GET,
                &format!("/v1/recordings/{id}"),
                &[],
            )
            .await?;
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            Ok(())
        }
        Cmd::Stop { client, id } => {
            let v = call(
                &client,
                reqwest::Method::POST,
                &format!("/v1/recordings/{id}/stop"),
                &[],
            )
            .await?;
            println!(
                "{} {}",
                v["id"].as_str().unwrap_or(&id.to_string()),
                v["status"].as_str().unwrap_or("")
            );
            Ok(())
        }
        Cmd::Download { client, id, output } => download(&client, &id.to_string(), output).await,
        Cmd::Record(args) => record(Config::load(file).map_err(|e| e.to_string())?, args).await,
        Cmd::Fixup { input, output } => {
            let f = tapedeck_media::fixup::fixup(&input, &output).map_err(|e| e.to_string())?;
            let cut = f.cut.map(|c| format!(" (cut: {c})")).unwrap_or_default();
            println!(
                "{}: {:.3} s, {} frames in {} clusters, {} bytes{cut}",
                output.display(),
                f.summary.duration_ms / 1000.0,
                f.summary.units,
                f.summary.clusters,
                f.summary.bytes
            );
            Ok(())
        }
        Cmd::EncodeFrames {
            dir,
            input_fps,
            fps,
            width,
            height,
            format,
            output,
        } => {
            let format: Format = serde_json::from_value(serde_json::Value::String(format))
                .map_err(|e| e.to_string())?;
            let config = Config::load(file).map_err(|e| e.to_string())?;
            tokio::task::spawn_blocking(move || {
                encode_frames(
                    &config, &dir, input_fps, fps, width, height, format, &output,
                )
            })
            .await
            .map_err(|e| e.to_string())?
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = ctrl_c => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
    eprintln!("shutting down; active recordings are finalized from their spools at the next start");
}

async fn keys(file: Option<&Path>, cmd: KeysCmd) -> Result<(), String> {
    match cmd {
        KeysCmd::Create {
            user,
            admin,
            data_dir,
        } => {
            let config = load_config(file, data_dir)?;
            let r = repo(&config).await?;
            let (key, token) = crate::http::auth::create_key(&r, &user, admin, crate::now_ms())
                .await
                .map_err(|e| e.message)?;
            println!(
                "created key {} for user {}{}",
                key.id,
                key.user,
                if admin { " (admin)" } else { "" }
            );
            println!("{token}");
            Ok(())
        }
        KeysCmd::List { data_dir } => {
            let r = repo(&load_config(file, data_dir)?).await?;
            for k in r.list_keys().await.map_err(|e| e.to_string())? {
                println!(
                    "{} {} admin={} revoked={} created={}",
                    k.id,
                    k.user,
                    k.admin,
                    k.revoked,
                    tapedeck_core::recording::time_ms::format(k.created_at)
                );
            }
            Ok(())
        }
        KeysCmd::Revoke { id, data_dir } => {
            let r = repo(&load_config(file, data_dir)?).await?;
            if r.revoke_key(&id).await.map_err(|e| e.to_string())? {
                println!("revoked {id}");
                Ok(())
            } else {
                Err(format!("no key {id}"))
            }
        }
    }
}
