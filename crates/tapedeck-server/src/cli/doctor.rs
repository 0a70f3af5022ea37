//! `tapedeck doctor`: checks the install and the configuration.

use std::path::PathBuf;
use tapedeck_core::Code;

use tapedeck_media::ffmpeg;
use tapedeck_store::repo::Repo;

use crate::config::Config;

pub(super) async fn doctor(config: Config) -> Result<(), String> {
    let mut failed = 0;
    let mut line = |ok: bool, what: &str, detail: String| {
        println!(
            "{} {what}: {detail}",
            if ok { "ok     " } else { "MISSING" }
        );
        if !ok {
            failed += 1;
        }
    };
    match ffmpeg::version(&config.encoder.ffmpeg) {
        Ok(v) => {
            let missing = ffmpeg::missing_encoders(&config.encoder.ffmpeg).unwrap_or_default();
            line(
                missing.is_empty(),
                "ffmpeg",
                if missing.is_empty() {
                    v
                } else {
                    format!(
                        "{v}; encoders missing: {missing:?}; install Debian's ffmpeg (apt-get install ffmpeg)"
                    )
                },
            );
        }
        Err(e) => line(
            false,
            "ffmpeg",
            format!("{e}; install it: apt-get install ffmpeg (or set encoder.ffmpeg)"),
        ),
    }
    // Listed encoders are not enough: the arguments must work on this ffmpeg.
    for (name, r) in crate::engine::source::encoding::check_encoders(&config) {
        let what = format!("encode {name}");
        match r {
            Ok(()) => line(true, &what, "a two-frame test encode works".into()),
            Err(e) => line(false, &what, e),
        }
    }
    match ffmpeg::version(&config.encoder.ffprobe) {
        Ok(v) => line(true, "ffprobe", v),
        Err(e) => line(
            false,
            "ffprobe",
            format!("{e}; it comes with ffmpeg: apt-get install ffmpeg"),
        ),
    }
    for (what, path, package, required) in [
        (
            "chromium-headless-shell",
            config.web.browser.clone(),
            "chromium-headless-shell",
            true,
        ),
        (
            "chromium",
            PathBuf::from("/usr/lib/chromium/chromium"),
            "chromium",
            false,
        ),
    ] {
        let real = tapedeck_media::web::browser::resolve_binary(&path);
        let version = tapedeck_media::web::browser::version(&real).ok();
        let (ok, detail) = match version {
            _ if tapedeck_media::web::browser::is_script(&real) => (
                false,
                format!(
                    "{} is a shell script; point web.browser at the real binary (/usr/lib/chromium/chromium-headless-shell)",
                    real.display()
                ),
            ),
            Some(v) if required => (true, format!("{v} at {} (web recordings)", real.display())),
            Some(v) => (
                true,
                format!(
                    "{v} at {} (the browser the end-to-end tests drive)",
                    real.display()
                ),
            ),
            None if required => (
                false,
                format!(
                    "{} does not run; web recordings need it: apt-get install {package} (or set web.browser)",
                    real.display()
                ),
            ),
            None => (
                true,
                format!(
                    "not installed (optional; apt-get install {package} for the end-to-end tests)"
                ),
            ),
        };
        line(ok, what, detail);
    }
    // What `tapedeck serve` will have: it raises the soft limit to the hard one.
    match rlimit::Resource::NOFILE.get() {
        Ok((_, hard)) if hard < crate::http::app::WANTED_OPEN_FILES => println!(
            "warning open files: the hard limit is {hard}; every connection, call peer and upload holds some, so the server refuses clients past it: raise it (LimitNOFILE=65536 in the systemd unit, or /etc/security/limits.conf)"
        ),
        Ok((soft, hard)) => println!(
            "ok      open files: {hard} (the server raises its soft limit, {soft} now, to that)"
        ),
        Err(e) => println!("warning open files: the limit could not be read: {e}"),
    }
    let data = &config.server.data_dir;
    let probe = data.join(".doctor");
    let writable = std::fs::create_dir_all(data)
        .and_then(|_| std::fs::write(&probe, b"ok"))
        .and_then(|_| std::fs::remove_file(&probe));
    line(
        writable.is_ok(),
        "data folder",
        match writable {
            Ok(()) => format!("{} is writable", data.display()),
            Err(e) => format!("{}: {e}; choose another with --data-dir", data.display()),
        },
    );
    let db = Repo::connect(&config.database_url()).await;
    line(
        db.is_ok(),
        "database",
        match &db {
            Ok(r) => format!("{} answers", r.backend()),
            Err(e) => format!("{e}; check database.url (TAPEDECK_DATABASE__URL)"),
        },
    );
    // Finished recordings the store refused: they wait in `processing`,
    // their files kept; `POST /v1/admin/recordings/ID/retry` hurries one.
    if let Ok(repo) = &db {
        let filter = tapedeck_store::repo::ListFilter {
            status: Some(tapedeck_core::recording::Status::Processing),
            limit: 1000,
            ..Default::default()
        };
        let waiting: Vec<String> = repo
            .list(&filter)
            .await
            .unwrap_or_default()
            .into_iter()
            .filter_map(|r| {
                let n = r.note.filter(|n| n.code == Code::StorageRetry)?;
                Some(format!("{} ({})", r.id, n.message))
            })
            .collect();
        if !waiting.is_empty() {
            println!(
                "waiting storage: {} recording(s) wait for the store (requeue: POST /v1/admin/recordings/ID/retry): {}",
                waiting.len(),
                waiting.join("; ")
            );
        }
    }
    match crate::http::app::build_blobs(&config) {
        Ok(b) => {
            let r = b.check().await;
            line(
                r.is_ok(),
                "storage",
                match r {
                    Ok(()) => format!("{} storage accepts writes", b.kind()),
                    Err(e) => format!("{e}; check the [storage] settings"),
                },
            );
        }
        Err(e) => line(false, "storage", e),
    }
    if failed > 0 {
        Err(format!("{failed} check(s) failed"))
    } else {
        Ok(())
    }
}
