//! The UI: the web page (one HTML page, its script and style), embedded in the binary.

use axum::http::header;
use axum::response::{Html, IntoResponse, Response};

/// `GET /`.
pub async fn index() -> Html<&'static str> {
    Html(include_str!("../web/index.html"))
}

/// `GET /app.js`.
pub async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../web/app.js"),
    )
        .into_response()
}

/// `GET /style.css`.
pub async fn style() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../web/style.css"),
    )
        .into_response()
}

/// `GET /call/{room}`: the call page (the room is read from the path by its script).
pub async fn call() -> Html<&'static str> {
    Html(include_str!("../web/call.html"))
}

/// `GET /call.js`.
pub async fn call_script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../web/call.js"),
    )
        .into_response()
}

/// `GET /recorder.js`: the in-browser recorder both pages use.
pub async fn recorder_script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../web/recorder.js"),
    )
        .into_response()
}
