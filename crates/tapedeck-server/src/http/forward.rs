//! Any node answers any request: a request about a live session another
//! node holds (a recording not yet ended, an upload in progress, a room's
//! call) is passed to that node over its `cluster.internal_url`, streamed
//! both ways: request and response bodies as they come, and a WebSocket
//! upgrade joined end to end once both sides switched protocols. Nothing
//! is buffered whole except a `POST /v1/recordings` body (JSON, under the
//! create limit), read to place the recording: a room's recording goes to
//! the room's node, and one refused `server_busy` here goes to the other
//! nodes, the most free budget first, until one takes it. A room or an
//! upload is made where asked unless that node's budget is all taken
//! (then on the node with the most free). A node that is stopping
//! (draining) sends every new session to the others.
//!
//! The node that answers names itself in `x-tapedeck-node`; a forwarded
//! request carries `x-tapedeck-forwarded-by` (the node and a mark made
//! with the cluster's shared key) so it is never passed on again; a client
//! sending that header without the mark is forwarded like any other. The
//! holder checks the caller's credentials as it would its own.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tapedeck_core::cluster::NodeInfo;
use tapedeck_core::{Code, RecordingId, RoomId};

use crate::http::error::ApiError;
use crate::http::state::AppState;

/// The node that answered.
pub const NODE: HeaderName = HeaderName::from_static("x-tapedeck-node");
/// Set on a request one node passes to another.
pub const FORWARDED_BY: HeaderName = HeaderName::from_static("x-tapedeck-forwarded-by");

/// The largest create body read to place a recording (the create route's
/// own limit is smaller).
const CREATE_BODY_LIMIT: usize = 2 << 20;

/// The middleware: forwards what another node holds, places new
/// recordings, and names the node that answered.
pub async fn route(State(s): State<AppState>, mut req: Request, next: Next) -> Response {
    if !s.node.clustered() {
        return next.run(req).await;
    }
    let mut r = if from_a_node(&s, &req) {
        req.extensions_mut().insert(PlacedByNode);
        next.run(req).await
    } else if creates_session(&req) && !is_create(&req) {
        // A room or an upload: here, unless this node is stopping or its
        // budget is all taken and another's is not.
        let full = s.node.free_cores(&s.supervisor) <= 0.0;
        match (s.node.draining() || full).then_some(()) {
            Some(()) => match most_free(&s).await {
                Some(node) if s.node.draining() || node.cpu.free() > 0.0 => {
                    pass(&s, &node, req).await
                }
                _ => next.run(req).await,
            },
            None => next.run(req).await,
        }
    } else if is_create(&req) {
        place(&s, req, next).await
    } else {
        match holder(&s, req.uri().path()).await {
            Held::There(node) => pass(&s, &node, req).await,
            // A node that stopped holds its sessions until it starts again
            // (and recovers them): only reading the recording is answered
            // here; anything else is to be tried again, not refused for good.
            Held::Stopped(node) if req.method() != Method::GET || is_upgrade(&req) => {
                stopped_node(&node)
            }
            Held::Stopped(_) | Held::Here => next.run(req).await,
        }
    };
    if !r.headers().contains_key(NODE)
        && let Ok(v) = HeaderValue::from_str(&s.node.id)
    {
        r.headers_mut().insert(NODE, v);
    }
    r
}

/// How long connecting to another node may take.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);
/// How often a forwarded request's node is asked whether it still answers.
const STALL_CHECK: std::time::Duration = std::time::Duration::from_secs(5);

/// What a node sends in `x-tapedeck-forwarded-by`: its id and a mark only
/// the cluster's nodes can make (an HMAC under the key they share), so a
/// client cannot pass as a node to have a request answered where it
/// landed.
fn forwarded_by(s: &AppState) -> String {
    let mark = crate::http::secret::signature(&s.share_key, "tapedeck-forwarded");
    format!("{} {mark}", s.node.id)
}

/// Marks a request another node of the cluster forwarded here: a create
/// it placed here, having asked where there is room (so this node takes
/// a camera deferred rather than sending it on again).
#[derive(Debug, Clone, Copy)]
pub struct PlacedByNode;

/// Whether `req` was forwarded by a node of this cluster.
fn from_a_node(s: &AppState, req: &Request) -> bool {
    let Some(v) = req.headers().get(FORWARDED_BY) else {
        return false;
    };
    let mark = crate::http::secret::signature(&s.share_key, "tapedeck-forwarded");
    v.to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .is_some_and(|(_, m)| crate::http::secret::ct_eq(m.as_bytes(), mark.as_bytes()))
}

/// Whether `req` is `POST /v1/recordings`.
fn is_create(req: &Request) -> bool {
    req.method() == Method::POST && req.uri().path() == "/v1/recordings"
}

/// Whether `req` makes a new session: a recording, a room, an upload.
fn creates_session(req: &Request) -> bool {
    req.method() == Method::POST
        && matches!(
            req.uri().path(),
            "/v1/recordings" | "/v1/rooms" | "/v1/uploads" | "/v1/uploads/url"
        )
}

/// What a path is about, if it names a live session.
enum Session {
    Recording(RecordingId),
    Room(RoomId),
}

/// Segments are read as the router reads them, percent-decoded: an id
/// spelt `%72ec_...` names the same recording as `rec_...`.
fn session_of(path: &str) -> Option<Session> {
    let mut parts = path.trim_start_matches('/').split('/').map(|p| {
        percent_encoding::percent_decode_str(p)
            .decode_utf8()
            .map(|d| d.into_owned())
            .unwrap_or_default()
    });
    if parts.next().as_deref() != Some("v1") {
        return None;
    }
    match (parts.next().as_deref(), parts.next()) {
        (Some("recordings" | "uploads"), Some(id)) => id.parse().ok().map(Session::Recording),
        (Some("rooms"), Some(id)) => id.parse().ok().map(Session::Room),
        _ => None,
    }
}

/// Who holds the session a path names.
enum Held {
    /// Nobody else: this node, none (ended, queued), or no such session.
    Here,
    /// Another node, alive.
    There(NodeInfo),
    /// Another node, which stopped heartbeating (its id).
    Stopped(String),
}

/// Who holds the session `path` names.
async fn holder(s: &AppState, path: &str) -> Held {
    let Some(held_by) = held_by(s, path).await else {
        return Held::Here;
    };
    if held_by == s.node.id {
        return Held::Here;
    }
    match live_node(s, &held_by).await {
        Some(n) => Held::There(n),
        None => Held::Stopped(held_by),
    }
}

/// The node the recording or room `path` names says holds it, while it is
/// live.
async fn held_by(s: &AppState, path: &str) -> Option<String> {
    match session_of(path)? {
        Session::Recording(id) => {
            let rec = s.repo.get(id).await.ok()??;
            (!rec.status.is_terminal()).then_some(rec.node).flatten()
        }
        Session::Room(id) => {
            let room = s.repo.room(id).await.ok()??;
            room.closed_at.is_none().then_some(room.node).flatten()
        }
    }
}

fn is_upgrade(req: &Request) -> bool {
    req.headers().contains_key(header::UPGRADE)
}

/// 503 `node_unreachable` for a session whose node stopped.
fn stopped_node(node: &str) -> Response {
    let mut r = ApiError::new(
        Code::NodeUnreachable,
        format!(
            "node {node} holds this session and has stopped; another node takes it over once the node's heartbeat is cluster.node_timeout_s old, or the node takes it up again if it is back first (try again in a few seconds)"
        ),
    )
    .into_response();
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    r
}

async fn live_node(s: &AppState, id: &str) -> Option<NodeInfo> {
    let nodes = s.node.all(&s.supervisor).await.ok()?;
    nodes.into_iter().find(|n| n.id == id && n.alive)
}

/// `POST /v1/recordings`: a room's recording is made on the room's node;
/// another is made here, or, refused `server_busy` here, on the live node
/// with the most free budget if it has more than this one.
async fn place(s: &AppState, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    // Only a caller the server knows has its body read here: anyone else
    // is refused by the route as usual, without a body held in memory.
    use axum::extract::FromRequestParts;
    if crate::http::auth::Principal::from_request_parts(&mut parts, s)
        .await
        .is_err()
    {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let bytes = match axum::body::to_bytes(body, CREATE_BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::new(Code::TooLarge, "the body is larger than this route takes")
                .into_response();
        }
    };
    let room_node = match room_of(&bytes) {
        Some(room) => match s.repo.room(room).await {
            Ok(Some(r)) if r.closed_at.is_none() => r.node.filter(|n| *n != s.node.id),
            _ => None,
        },
        None => None,
    };
    if let Some(id) = room_node
        && let Some(node) = live_node(s, &id).await
    {
        return pass(s, &node, Request::from_parts(parts, Body::from(bytes))).await;
    }
    let make = |b: &Bytes| Request::from_parts(parts.clone(), Body::from(b.clone()));
    // Here first (unless this node is stopping), then the others by free
    // budget, until one is not busy.
    let others = others_by_free(s).await;
    let mut last = None;
    if !s.node.draining() || others.is_empty() {
        let (busy, r) = refused_busy(next.run(make(&bytes)).await).await;
        if !busy {
            return r;
        }
        last = Some(r);
    }
    for node in others {
        let (busy, r) = refused_busy(pass(s, &node, make(&bytes)).await).await;
        if !busy {
            return r;
        }
        last = Some(r);
    }
    last.unwrap_or_else(|| {
        ApiError::new(Code::NodeUnreachable, "no node could take this recording").into_response()
    })
}

/// Whether `r` is a 429 `server_busy`, and `r` (its small body read).
async fn refused_busy(r: Response) -> (bool, Response) {
    if r.status() != StatusCode::TOO_MANY_REQUESTS {
        return (false, r);
    }
    let (parts, body) = r.into_parts();
    let bytes = axum::body::to_bytes(body, 64 << 10)
        .await
        .unwrap_or_default();
    let busy = serde_json::from_slice::<serde_json::Value>(&bytes)
        .is_ok_and(|v| v["error"]["code"] == Code::ServerBusy.as_str());
    (busy, Response::from_parts(parts, Body::from(bytes)))
}

/// The live nodes other than this one, not draining, the most free budget
/// first.
async fn others_by_free(s: &AppState) -> Vec<NodeInfo> {
    let mut nodes: Vec<NodeInfo> = match s.node.all(&s.supervisor).await {
        Ok(n) => n,
        Err(_) => return vec![],
    };
    nodes.retain(|n| n.alive && !n.draining && n.id != s.node.id);
    nodes.sort_by(|a, b| b.cpu.free().total_cmp(&a.cpu.free()));
    nodes
}

/// The room a create body records, if it is a room's recording.
fn room_of(body: &[u8]) -> Option<RoomId> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    if v["source"]["kind"] != "room" {
        return None;
    }
    v["source"]["room"].as_str()?.parse().ok()
}

/// The live node other than this one, not draining, with the most free
/// CPU budget.
async fn most_free(s: &AppState) -> Option<NodeInfo> {
    others_by_free(s).await.into_iter().next()
}

/// Hop-by-hop headers a proxy does not pass on (RFC 9110 7.6.1); an
/// upgrade keeps `connection` and `upgrade`.
const HOP: [&str; 6] = [
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "keep-alive",
];

/// Passes `req` to `node` and its answer back, bodies streamed; a
/// WebSocket upgrade is joined end to end.
async fn pass(s: &AppState, node: &NodeInfo, mut req: Request) -> Response {
    let Some((authority, uri)) = target(&node.internal_url, req.uri()) else {
        tracing::error!(node = %node.id, url = %node.internal_url, "a node's internal_url is not an http:// URL");
        return unreachable_node(node);
    };
    let upgrade = is_upgrade(&req);
    let call_socket = upgrade && req.uri().path().ends_with("/call");
    let client_side = upgrade.then(|| hyper::upgrade::on(&mut req));
    *req.uri_mut() = uri;
    let headers = req.headers_mut();
    for h in HOP {
        headers.remove(h);
    }
    if !upgrade {
        headers.remove(header::CONNECTION);
        headers.remove(header::UPGRADE);
    }
    if let Ok(v) = HeaderValue::from_str(&forwarded_by(s)) {
        headers.insert(FORWARDED_BY, v);
    }
    let connect = tokio::net::TcpStream::connect(&authority);
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(Ok(st)) => st,
        Ok(Err(e)) => {
            tracing::warn!(node = %node.id, error = %e, "cannot reach the node holding a session");
            return unreachable_node(node);
        }
        Err(_) => {
            tracing::warn!(node = %node.id, "connecting to the node holding a session timed out");
            return unreachable_node(node);
        }
    };
    let _ = stream.set_nodelay(true);
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, conn) = match hyper::client::conn::http1::handshake(io).await {
        Ok(x) => x,
        Err(e) => {
            tracing::warn!(node = %node.id, error = %e, "handshake with a node failed");
            return unreachable_node(node);
        }
    };
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "a forwarded connection ended with an error");
        }
    });
    // A node that stalls (stopped, swapping) still takes connections: the
    // answer is awaited while the node answers `/healthz`, not forever.
    // No fixed timeout: a long upload chunk is answered only once read.
    let sent = sender.send_request(req);
    tokio::pin!(sent);
    let answered = loop {
        tokio::select! {
            r = &mut sent => break r,
            _ = tokio::time::sleep(STALL_CHECK) => {
                if !answers(&authority).await {
                    tracing::warn!(node = %node.id, "the node holding a session stopped answering");
                    return unreachable_node(node);
                }
            }
        }
    };
    let mut resp = match answered {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(node = %node.id, error = %e, "a forwarded request failed");
            return unreachable_node(node);
        }
    };
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS
        && let Some(client_side) = client_side
    {
        let node_side = hyper::upgrade::on(&mut resp);
        tokio::spawn(async move {
            let (Ok(client), Ok(held)) = (client_side.await, node_side.await) else {
                return;
            };
            join_sockets(client, held, call_socket.then_some(authority)).await;
        });
        let (parts, _) = resp.into_parts();
        return Response::from_parts(parts, Body::empty());
    }
    resp.map(Body::new)
}

/// Joins a client's WebSocket to the node's, bytes as they come. When
/// the node's side ends and the node is gone (a call page's socket,
/// `call` the node's address), the client is told so as the node would
/// have (`ended`, reason `node_lost`: the page may join again, on the node
/// that takes the room over) before its socket is closed.
async fn join_sockets(
    client: hyper::upgrade::Upgraded,
    held: hyper::upgrade::Upgraded,
    call: Option<String>,
) {
    use tokio::io::AsyncWriteExt;
    let client = hyper_util::rt::TokioIo::new(client);
    let held = hyper_util::rt::TokioIo::new(held);
    let (mut cr, mut cw) = tokio::io::split(client);
    let (mut hr, mut hw) = tokio::io::split(held);
    let up = async {
        let _ = tokio::io::copy(&mut cr, &mut hw).await;
        let _ = hw.shutdown().await;
    };
    let down = async {
        let _ = tokio::io::copy(&mut hr, &mut cw).await;
        if let Some(addr) = call
            && !answers(&addr).await
        {
            let _ = cw.write_all(&node_lost_frames()).await;
        }
        let _ = cw.shutdown().await;
    };
    tokio::join!(up, down);
}

/// Whether the node at `addr` answers `GET /healthz` within a second (a
/// connection alone is not enough: a dying process's listening socket may
/// still take one).
async fn answers(addr: &str) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ask = async {
        let mut st = tokio::net::TcpStream::connect(addr).await.ok()?;
        st.write_all(
            format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .ok()?;
        let mut head = [0u8; 12];
        st.read_exact(&mut head).await.ok()?;
        Some(head.starts_with(b"HTTP/1.1 200"))
    };
    tokio::time::timeout(std::time::Duration::from_secs(1), ask)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// A server's WebSocket text frame `{"type":"ended","reason":"node_lost"}`
/// and a close frame (1001, going away), unmasked as a server sends them.
fn node_lost_frames() -> Vec<u8> {
    let text = br#"{"type":"ended","reason":"node_lost"}"#;
    let mut out = vec![0x81, text.len() as u8];
    out.extend_from_slice(text);
    out.extend_from_slice(&[0x88, 0x02, 0x03, 0xE9]);
    out
}

/// `host:port` of an `http://` internal URL, and the request's path on it.
fn target(internal_url: &str, uri: &Uri) -> Option<(String, Uri)> {
    let base: Uri = internal_url.parse().ok()?;
    if base.scheme_str() != Some("http") {
        return None;
    }
    let auth = base.authority()?;
    let authority = format!("{}:{}", auth.host(), auth.port_u16().unwrap_or(80));
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    Some((authority, path.parse().ok()?))
}

fn unreachable_node(node: &NodeInfo) -> Response {
    let mut r = ApiError::new(
        Code::NodeUnreachable,
        format!(
            "node {} holds this session and cannot be reached now; if it stopped, another node takes it over once its heartbeat is cluster.node_timeout_s old (try again in a few seconds)",
            node.id
        ),
    )
    .into_response();
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_their_sessions() {
        let id = RecordingId::from_parts(1, 2);
        let frames = format!("/v1/recordings/{id}/frames");
        assert!(matches!(session_of(&frames), Some(Session::Recording(r)) if r == id));
        let upload = format!("/v1/uploads/{id}");
        assert!(matches!(session_of(&upload), Some(Session::Recording(r)) if r == id));
        assert!(session_of("/v1/recordings").is_none());
        assert!(session_of("/v1/uploads/url").is_none());
        assert!(session_of("/v1/events").is_none());
        assert!(session_of("/v1/rooms/nope/call").is_none());
        assert!(session_of(&format!("/v2/recordings/{id}")).is_none());
        // Spelt with escapes, as the router decodes it.
        let escaped = format!("/v1/recordings/%72{}", &id.to_string()[1..]);
        assert!(matches!(session_of(&escaped), Some(Session::Recording(r)) if r == id));
    }

    #[test]
    fn targets_keep_the_path_and_query() {
        let uri: Uri = "/v1/recordings/x/frames?token=a".parse().unwrap();
        let (a, u) = target("http://10.0.0.5:8080", &uri).unwrap();
        assert_eq!(a, "10.0.0.5:8080");
        assert_eq!(u.to_string(), "/v1/recordings/x/frames?token=a");
        assert_eq!(target("http://n1", &uri).unwrap().0, "n1:80");
        assert!(target("https://n1", &uri).is_none());
    }
}
