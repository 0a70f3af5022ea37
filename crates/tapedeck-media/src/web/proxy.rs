//! The recording browser's only way out: a filtering HTTP proxy.
//!
//! The browser is started with this proxy for every scheme and without the
//! usual loopback bypass, so every connection it opens (HTTP, HTTPS and
//! WebSocket tunnels, WebRTC over TCP) arrives here. The proxy resolves the
//! host itself, checks every address against the [`NetPolicy`] and connects
//! to the address it checked, so a name cannot resolve to a public address
//! for the check and a private one for the connection (DNS rebinding).
//! HTTP/1.1 framing is hyper's; the policy hook, routing and tunnels are
//! here, since no proxy crate offers a per-connection policy hook. Plain
//! `http://` requests keep their connections alive on both sides.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Empty, combinators::BoxBody};
use hyper::body::{Bytes, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tapedeck_core::netpolicy::{NetPolicy, Verdict};
use tokio::net::{TcpListener, TcpStream};

type Body = BoxBody<Bytes, hyper::Error>;
type Blocked = Arc<Mutex<Vec<String>>>;

/// A running proxy; stops when dropped.
pub struct Proxy {
    /// Where it listens (127.0.0.1).
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a proxy enforcing `policy`; refusals are appended to `blocked`.
pub async fn start(policy: NetPolicy, blocked: Blocked) -> std::io::Result<Proxy> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let Ok((client, _)) = listener.accept().await else {
                break;
            };
            conns.spawn(serve(client, policy.clone(), blocked.clone()));
            // Reap finished connections; aborting the proxy aborts the rest
            // (tunnels run in their own tasks, which end with their sockets).
            while conns.try_join_next().is_some() {}
        }
    });
    Ok(Proxy { addr, task })
}

/// One connection from the browser: any number of requests, in turn.
async fn serve(client: TcpStream, policy: NetPolicy, blocked: Blocked) {
    // The upstream connection of the last plain request, kept for the next
    // one to the same host and port.
    let upstream: Arc<tokio::sync::Mutex<Option<Upstream>>> = Arc::default();
    let service = hyper::service::service_fn(move |req| {
        let (policy, blocked, upstream) = (policy.clone(), blocked.clone(), upstream.clone());
        async move { Ok::<_, std::convert::Infallible>(handle(req, &policy, &blocked, &upstream).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .preserve_header_case(true)
        .serve_connection(TokioIo::new(client), service)
        .with_upgrades()
        .await;
}

struct Upstream {
    host: String,
    port: u16,
    sender: SendRequest<Incoming>,
}

/// Logs a refused request and keeps its reason for the recording's error.
pub fn note_refusal(blocked: &Mutex<Vec<String>>, reason: String) {
    tracing::info!(%reason, "request refused");
    blocked
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(reason);
}

fn status(code: StatusCode) -> Response<Body> {
    let mut r = Response::new(Empty::new().map_err(|never| match never {}).boxed());
    *r.status_mut() = code;
    r
}

/// A refusal that also ends the browser's connection.
fn refuse(code: StatusCode) -> Response<Body> {
    let mut r = status(code);
    r.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

async fn handle(
    mut req: Request<Incoming>,
    policy: &NetPolicy,
    blocked: &Blocked,
    upstream: &tokio::sync::Mutex<Option<Upstream>>,
) -> Response<Body> {
    let Ok(route) = route(req.method(), req.uri()) else {
        return refuse(StatusCode::BAD_REQUEST);
    };
    let (host, port) = match &route {
        Route::Tunnel { host, port } | Route::Forward { host, port, .. } => (host.clone(), *port),
    };
    let mut cached = upstream.lock().await;
    let reuse = matches!(route, Route::Forward { .. })
        && cached
            .as_ref()
            .is_some_and(|u| u.host == host && u.port == port && !u.sender.is_closed());
    if !reuse {
        *cached = None;
        let addrs = match checked_addrs(policy, &host, port).await {
            Ok(a) => a,
            Err(r @ Refusal::Blocked { .. }) => {
                note_refusal(blocked, r.to_string());
                return refuse(StatusCode::FORBIDDEN);
            }
            Err(Refusal::Unresolved(_)) => return refuse(StatusCode::BAD_GATEWAY),
        };
        let Ok(stream) = connect(&addrs).await else {
            return refuse(StatusCode::BAD_GATEWAY);
        };
        if let Route::Tunnel { .. } = route {
            // The browser speaks TLS (or anything) through the tunnel.
            let up = hyper::upgrade::on(req);
            tokio::spawn(async move {
                if let Ok(up) = up.await {
                    let mut stream = stream;
                    let _ = tokio::io::copy_bidirectional(&mut TokioIo::new(up), &mut stream).await;
                }
            });
            return status(StatusCode::OK);
        }
        let Ok((sender, conn)) = hyper::client::conn::http1::Builder::new()
            .preserve_header_case(true)
            .handshake(TokioIo::new(stream))
            .await
        else {
            return refuse(StatusCode::BAD_GATEWAY);
        };
        tokio::spawn(conn.with_upgrades());
        *cached = Some(Upstream {
            host: host.clone(),
            port,
            sender,
        });
    }
    let Route::Forward { path, .. } = route else {
        return refuse(StatusCode::BAD_REQUEST);
    };
    let Some(up) = cached.as_mut() else {
        return refuse(StatusCode::BAD_GATEWAY);
    };
    let wants_upgrade = req.headers().contains_key(header::UPGRADE);
    let client_upgrade = wants_upgrade.then(|| hyper::upgrade::on(&mut req));
    let Ok(path) = path.parse::<Uri>() else {
        return refuse(StatusCode::BAD_REQUEST);
    };
    *req.uri_mut() = path;
    strip_hop_headers(req.headers_mut(), wants_upgrade);
    if up.sender.ready().await.is_err() {
        *cached = None;
        return refuse(StatusCode::BAD_GATEWAY);
    }
    let resp = match up.sender.send_request(req).await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(error = %e, "upstream request failed");
            *cached = None;
            return refuse(StatusCode::BAD_GATEWAY);
        }
    };
    let mut resp = resp;
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        // A WebSocket (or other upgrade) asked for in plain form: join both
        // upgraded connections. This upstream connection is spent.
        *cached = None;
        if let Some(client_upgrade) = client_upgrade {
            let server_upgrade = hyper::upgrade::on(&mut resp);
            tokio::spawn(async move {
                if let (Ok(c), Ok(s)) = tokio::join!(client_upgrade, server_upgrade) {
                    let _ =
                        tokio::io::copy_bidirectional(&mut TokioIo::new(c), &mut TokioIo::new(s))
                            .await;
                }
            });
        }
    }
    resp.map(|b| b.boxed())
}

/// Drops what belongs to the browser's hop only: proxy headers, and the
/// connection headers (hyper keeps each side's connection itself).
fn strip_hop_headers(h: &mut HeaderMap, keep_upgrade: bool) {
    let named: Vec<String> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !(keep_upgrade && n == "upgrade"))
        .collect();
    for n in named {
        h.remove(n.as_str());
    }
    for n in [
        "proxy-connection",
        "proxy-authorization",
        "keep-alive",
        "te",
        "trailer",
    ] {
        h.remove(n);
    }
    if keep_upgrade {
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        h.remove(header::CONNECTION);
        h.remove(header::UPGRADE);
    }
}

/// Why [`checked_addrs`] gives no address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The policy refuses the host or an address it resolves to.
    #[error("{host} is not allowed: {reason}")]
    Blocked {
        /// `host:port` as asked.
        host: String,
        /// Why.
        reason: String,
    },
    /// The name does not resolve (a typo, or no DNS): not the policy's doing.
    #[error("{0} does not resolve")]
    Unresolved(String),
}

/// Resolves `host` and returns the addresses the policy allows connecting to.
pub async fn checked_addrs(
    policy: &NetPolicy,
    host: &str,
    port: u16,
) -> Result<Vec<SocketAddr>, Refusal> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let shown = if bare.contains(':') {
        format!("[{bare}]:{port}")
    } else {
        format!("{bare}:{port}")
    };
    let blocked = |reason: String| Refusal::Blocked {
        host: shown.clone(),
        reason,
    };
    let check_all = match policy.check_url(&format!("http://{shown}/")) {
        Verdict::Deny(b) => return Err(blocked(b.to_string())),
        Verdict::Allow => false,
        Verdict::Resolve { .. } => true,
    };
    let addrs: Vec<SocketAddr> = match tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::lookup_host((bare, port)),
    )
    .await
    {
        Ok(Ok(a)) => a.collect(),
        _ => vec![],
    };
    if addrs.is_empty() {
        return Err(Refusal::Unresolved(bare.to_string()));
    }
    if check_all {
        let ips: Vec<_> = addrs.iter().map(SocketAddr::ip).collect();
        policy
            .check_addrs(bare, &ips)
            .map_err(|b| blocked(b.to_string()))?;
    }
    Ok(addrs)
}

/// Connects to the first address that answers.
pub async fn connect(addrs: &[SocketAddr]) -> std::io::Result<TcpStream> {
    let mut last = std::io::Error::other("no address");
    for a in addrs {
        match tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(a)).await {
            Ok(Ok(s)) => return Ok(s),
            Ok(Err(e)) => last = e,
            Err(_) => last = std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"),
        }
    }
    Err(last)
}

/// Where a request to the proxy goes.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// `CONNECT host:port`: a tunnel.
    Tunnel {
        /// Host.
        host: String,
        /// Port.
        port: u16,
    },
    /// `GET http://host:port/path`: a plain request, forwarded in origin form.
    Forward {
        /// Host.
        host: String,
        /// Port.
        port: u16,
        /// Path and query as sent, for the upstream request line.
        path: String,
    },
}

/// Routes a request the browser sent to the proxy (request target as parsed
/// by hyper).
pub fn route(method: &Method, uri: &Uri) -> Result<Route, String> {
    let authority = uri
        .authority()
        .ok_or_else(|| format!("`{uri}` has no host"))?;
    let host = authority.host().to_string();
    if host.is_empty() {
        return Err(format!("`{uri}` has no host"));
    }
    if method == Method::CONNECT {
        let port = authority
            .port_u16()
            .ok_or_else(|| format!("CONNECT target `{uri}` has no port"))?;
        return Ok(Route::Tunnel { host, port });
    }
    let port = match uri.scheme_str() {
        Some("http" | "ws") => authority.port_u16().unwrap_or(80),
        Some(s) => return Err(format!("`{s}:` is not proxied")),
        None => return Err(format!("`{uri}` is not an absolute URL")),
    };
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    Ok(Route::Forward { host, port, path })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn routed(method: &str, target: &str) -> Result<Route, String> {
        let uri: Uri = target.parse().map_err(|e| format!("{e}"))?;
        route(&Method::from_bytes(method.as_bytes()).unwrap(), &uri)
    }

    #[test]
    fn routes() {
        assert_eq!(
            routed("CONNECT", "example.org:443").unwrap(),
            Route::Tunnel {
                host: "example.org".into(),
                port: 443
            }
        );
        assert_eq!(
            routed("GET", "http://a.example:8080/x/y?z=1").unwrap(),
            Route::Forward {
                host: "a.example".into(),
                port: 8080,
                path: "/x/y?z=1".into()
            }
        );
        for (target, path) in [
            ("http://h/", "/"),
            ("http://h:81", "/"),
            ("http://h?q=1", "/?q=1"),
            ("http://h/a//b?c=/d", "/a//b?c=/d"),
            ("ws://h/socket", "/socket"),
        ] {
            let Ok(Route::Forward { path: got, .. }) = routed("GET", target) else {
                panic!("{target}")
            };
            assert_eq!(got, path, "{target}");
        }
        assert!(routed("GET", "/relative").is_err());
        assert!(routed("GET", "ftp://x/").is_err());
        assert!(routed("GET", "https://x/").is_err());
        assert!(routed("CONNECT", "nohost").is_err());
    }

    /// An HTTP/1.1 server that keeps connections alive, answering each
    /// request with its path and body; counts the connections it accepted.
    async fn keep_alive_server() -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                        let path = req.uri().path().to_string();
                        let body = req.collect().await?.to_bytes();
                        let text = format!("{path} {}", String::from_utf8_lossy(&body));
                        Ok::<_, hyper::Error>(Response::new(http_body_util::Full::new(
                            Bytes::from(text),
                        )))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(s), svc)
                        .await;
                });
            }
        });
        (addr, accepted)
    }

    #[tokio::test]
    async fn plain_requests_share_one_upstream_connection() {
        let (up, accepted) = keep_alive_server().await;
        let policy = NetPolicy {
            allow_private: false,
            allowed_hosts: vec![format!("127.0.0.1:{}", up.port())],
            own_addrs: vec![],
        };
        let p = start(policy, Arc::default()).await.unwrap();
        let mut c = TcpStream::connect(p.addr).await.unwrap();
        // Three requests on one browser connection, one with a body.
        let mut got = String::new();
        for (i, body) in ["", "hello", ""].iter().enumerate() {
            c.write_all(
                format!(
                    "POST http://127.0.0.1:{}/r{i} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nProxy-Connection: keep-alive\r\nContent-Length: {}\r\n\r\n{body}",
                    up.port(),
                    up.port(),
                    body.len()
                )
                .as_bytes(),
            )
            .await
            .unwrap();
            let mut buf = vec![0u8; 4096];
            let n = c.read(&mut buf).await.unwrap();
            let resp = String::from_utf8_lossy(&buf[..n]).into_owned();
            assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
            got.push_str(resp.rsplit("\r\n\r\n").next().unwrap());
            got.push('|');
        }
        assert_eq!(got, "/r0 |/r1 hello|/r2 |");
        assert_eq!(
            accepted.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "each request opened its own upstream connection"
        );
    }

    #[tokio::test]
    async fn refuses_private_addresses_and_tunnels_to_allowed_ones() {
        let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let up = upstream.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = upstream.accept().await {
                let mut b = [0u8; 64];
                let n = s.read(&mut b).await.unwrap_or(0);
                let _ = s.write_all(&b[..n]).await;
            }
        });
        let blocked = Arc::default();
        let strict = start(NetPolicy::default(), Arc::clone(&blocked))
            .await
            .unwrap();
        let mut c = TcpStream::connect(strict.addr).await.unwrap();
        c.write_all(format!("CONNECT 127.0.0.1:{} HTTP/1.1\r\n\r\n", up.port()).as_bytes())
            .await
            .unwrap();
        let mut resp = String::new();
        c.read_to_string(&mut resp).await.unwrap();
        assert!(resp.starts_with("HTTP/1.1 403"), "{resp}");
        assert!(blocked.lock().unwrap()[0].contains("loopback"));
        // A plain request to a private address is refused the same way.
        let mut c = TcpStream::connect(strict.addr).await.unwrap();
        c.write_all(b"GET http://10.1.2.3/ HTTP/1.1\r\nHost: 10.1.2.3\r\n\r\n")
            .await
            .unwrap();
        let mut resp = String::new();
        c.read_to_string(&mut resp).await.unwrap();
        assert!(resp.starts_with("HTTP/1.1 403"), "{resp}");

        let open = NetPolicy {
            allow_private: false,
            allowed_hosts: vec![format!("127.0.0.1:{}", up.port())],
            own_addrs: vec![],
        };
        let p = start(open, Arc::default()).await.unwrap();
        let mut c = TcpStream::connect(p.addr).await.unwrap();
        c.write_all(format!("CONNECT 127.0.0.1:{} HTTP/1.1\r\n\r\nping", up.port()).as_bytes())
            .await
            .unwrap();
        // The 200 head, then the echo of what followed the request head.
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        while !got.ends_with(b"ping") {
            let n = c.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(text.ends_with("\r\n\r\nping"), "{text}");
    }
}
