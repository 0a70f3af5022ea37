//! The UI: the web page and the call page (HTML, scripts, style, icon),
//! embedded in the binary.

use axum::http::header;
use axum::response::{Html, IntoResponse, Response};

/// A file of the page with its type.
fn asset(mime: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, mime)], body).into_response()
}

const JS: &str = "text/javascript; charset=utf-8";

/// A page: never framed by another site (clickjacking), and its address
/// (a share link's signature, an invite) not sent on as a referrer.
fn page(body: &'static str) -> Response {
    (
        [
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::CONTENT_SECURITY_POLICY, "frame-ancestors 'none'"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        Html(body),
    )
        .into_response()
}

/// `GET /`.
pub async fn index() -> Response {
    page(include_str!("../../assets/index.html"))
}

/// `GET /app.js`.
pub async fn script() -> Response {
    asset(JS, include_str!("../../assets/app.js"))
}

/// `GET /record.js`: the home page's Record tab.
pub async fn record_script() -> Response {
    asset(JS, include_str!("../../assets/record.js"))
}

/// `GET /style.css`.
pub async fn style() -> Response {
    asset(
        "text/css; charset=utf-8",
        include_str!("../../assets/style.css"),
    )
}

/// `GET /favicon.svg` (and `/favicon.ico`, which browsers ask for first).
pub async fn favicon() -> Response {
    asset("image/svg+xml", include_str!("../../assets/favicon.svg"))
}

/// `GET /call/{room}`: the call page (the room is read from the path by its script).
pub async fn call() -> Response {
    page(include_str!("../../assets/call.html"))
}

/// `GET /call.js`.
pub async fn call_script() -> Response {
    asset(JS, include_str!("../../assets/call.js"))
}

/// `GET /call-levels.js`: who is speaking, the microphone meter.
pub async fn call_levels_script() -> Response {
    asset(JS, include_str!("../../assets/call-levels.js"))
}

/// `GET /call-screen.js`: sharing a screen in a call.
pub async fn call_screen_script() -> Response {
    asset(JS, include_str!("../../assets/call-screen.js"))
}

/// `GET /recorder.js`: the in-browser recorder both pages use.
pub async fn recorder_script() -> Response {
    asset(JS, include_str!("../../assets/recorder.js"))
}

/// `GET /r/{id}`: the watch page of one recording (read by its script).
pub async fn watch() -> Response {
    page(include_str!("../../assets/watch.html"))
}

/// `GET /watch.js`.
pub async fn watch_script() -> Response {
    asset(JS, include_str!("../../assets/watch.js"))
}

/// `GET /live-player.js`: plays a live HLS playlist (the watch page, the
/// call page's preview).
pub async fn live_player_script() -> Response {
    asset(JS, include_str!("../../assets/live-player.js"))
}

/// `GET /s/{id}?exp=&sig=`: the public viewer of a share link.
pub async fn shared() -> Response {
    page(include_str!("../../assets/shared.html"))
}

/// `GET /shared.js`.
pub async fn shared_script() -> Response {
    asset(JS, include_str!("../../assets/shared.js"))
}

/// `GET /vendor/hls.js`: hls.js 1.7.4 (light build, from npm; see
/// `assets/vendor/README.md`), which plays a recording's HLS where the
/// browser does not.
pub async fn hls_script() -> Response {
    (
        [
            (header::CONTENT_TYPE, JS),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        include_str!("../../assets/vendor/hls.light.min.js"),
    )
        .into_response()
}

/// `GET /words.js`: every word the pages show about the server's state.
pub async fn words_script() -> Response {
    asset(JS, WORDS)
}

/// The words file, for the test that checks its codes.
pub const WORDS: &str = include_str!("../../assets/words.js");

#[cfg(test)]
mod tests {
    /// The page names kinds as the server does when it searches.
    #[test]
    fn the_pages_kinds_are_the_servers_labels() {
        use tapedeck_core::recording::SourceKind;
        for k in [
            SourceKind::Frames,
            SourceKind::Web,
            SourceKind::Room,
            SourceKind::Upload,
        ] {
            let line = format!("{}: \"{}\",", k.as_str(), k.label());
            assert!(super::WORDS.contains(&line), "words.js lacks {line}");
        }
    }

    /// Every error code the pages put in words is one the server has: a
    /// renamed code would leave a sentence nobody sees.
    #[test]
    fn the_pages_words_name_codes_of_the_catalogue() {
        let body = super::WORDS
            .split("const errors = {")
            .nth(1)
            .and_then(|rest| rest.split("};").next())
            .expect("words.js has its errors table");
        let codes: Vec<&str> = body
            .lines()
            .filter_map(|l| l.trim().split_once(':').map(|(k, _)| k))
            .filter(|k| !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
            .collect();
        assert!(codes.len() > 30, "{codes:?}");
        for code in codes {
            let known = tapedeck_core::Code::parse(code).is_some();
            assert!(known, "words.js explains {code}, which no error carries");
        }
    }
}
