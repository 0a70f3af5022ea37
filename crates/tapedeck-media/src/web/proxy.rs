//! The recording browser's only way out: a filtering HTTP proxy.
//!
//! The browser is started with this proxy for every scheme and without the
//! usual loopback bypass, so every connection it opens (HTTP, HTTPS and
//! WebSocket tunnels, WebRTC over TCP) arrives here. The proxy resolves the
//! host itself, checks every address against the [`NetPolicy`] and connects
//! to the address it checked, so a name cannot resolve to a public address
//! for the check and a private one for the connection (DNS rebinding).
//! Written here because no proxy crate offers a per-connection policy hook
//! with this little code; it only routes bytes, it never parses bodies.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tapedeck_core::netpolicy::{NetPolicy, Verdict};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Longest request head accepted.
const MAX_HEAD: usize = 64 * 1024;

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
pub async fn start(policy: NetPolicy, blocked: Arc<Mutex<Vec<String>>>) -> std::io::Result<Proxy> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let Ok((client, _)) = listener.accept().await else {
                break;
            };
            let (policy, blocked) = (policy.clone(), blocked.clone());
            conns.spawn(async move {
                if let Err(reason) = serve(client, &policy).await {
                    tracing::info!(%reason, "proxy refused a connection");
                    blocked
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(reason);
                }
            });
            // Reap finished connections; aborting the proxy aborts the rest.
            while conns.try_join_next().is_some() {}
        }
    });
    Ok(Proxy { addr, task })
}

/// Resolves `host` and returns the addresses the policy allows connecting to.
pub async fn checked_addrs(
    policy: &NetPolicy,
    host: &str,
    port: u16,
) -> Result<Vec<SocketAddr>, String> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let shown = if bare.contains(':') {
        format!("[{bare}]:{port}")
    } else {
        format!("{bare}:{port}")
    };
    let check_all = match policy.check_url(&format!("http://{shown}/")) {
        Verdict::Deny(b) => return Err(format!("{shown} is not allowed: {b}")),
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
    if check_all {
        let ips: Vec<_> = addrs.iter().map(SocketAddr::ip).collect();
        policy
            .check_addrs(bare, &ips)
            .map_err(|b| format!("{shown} is not allowed: {b}"))?;
    }
    if addrs.is_empty() {
        return Err(format!("{shown} does not resolve"));
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

/// The parts of a proxy request head this proxy needs.
#[derive(Debug, PartialEq, Eq)]
pub enum Target {
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
        /// The head to send upstream.
        head: Vec<u8>,
    },
}

/// Parses a request head sent to a proxy.
pub fn parse_head(head: &[u8]) -> Result<Target, String> {
    let text = std::str::from_utf8(head).map_err(|_| "request head is not UTF-8".to_string())?;
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or_default();
    let mut parts = first.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("bad request line `{first}`"));
    };
    if method == "CONNECT" {
        let (host, port) = target
            .rsplit_once(':')
            .ok_or_else(|| format!("CONNECT target `{target}` has no port"))?;
        let port = port
            .parse()
            .map_err(|_| format!("bad port in `{target}`"))?;
        return Ok(Target::Tunnel {
            host: host.to_string(),
            port,
        });
    }
    let url = url::Url::parse(target).map_err(|_| format!("`{target}` is not an absolute URL"))?;
    if !matches!(url.scheme(), "http" | "ws") {
        return Err(format!("`{}:` is not proxied", url.scheme()));
    }
    let host = url.host_str().ok_or("no host")?.to_string();
    let port = url.port_or_known_default().unwrap_or(80);
    // The path and query exactly as sent: what follows the authority.
    let after_scheme = target.split_once("://").map(|(_, r)| r).unwrap_or("");
    let path = after_scheme
        .find(['/', '?'])
        .map(|i| &after_scheme[i..])
        .unwrap_or("/");
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_string()
    };
    let mut out = format!("{method} {path} {version}\r\n");
    for line in lines.take_while(|l| !l.is_empty()) {
        let name = line.split(':').next().unwrap_or("").to_ascii_lowercase();
        if name == "proxy-connection" || name == "connection" || name == "proxy-authorization" {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    // One request per connection: the browser may send the next one to another host.
    out.push_str("Connection: close\r\n\r\n");
    Ok(Target::Forward {
        host,
        port,
        head: out.into_bytes(),
    })
}

async fn serve(mut client: TcpStream, policy: &NetPolicy) -> Result<(), String> {
    let mut buf = Vec::with_capacity(4096);
    let head_end = loop {
        let mut chunk = [0u8; 4096];
        let n = client.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_HEAD {
            let _ = client
                .write_all(
                    b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n\r\n",
                )
                .await;
            return Ok(());
        }
    };
    let target = match parse_head(&buf[..head_end]) {
        Ok(t) => t,
        Err(_) => {
            let _ = client
                .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                .await;
            return Ok(());
        }
    };
    let (host, port) = match &target {
        Target::Tunnel { host, port } | Target::Forward { host, port, .. } => (host.clone(), *port),
    };
    let addrs = match checked_addrs(policy, &host, port).await {
        Ok(a) => a,
        Err(reason) => {
            let _ = client
                .write_all(
                    b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                )
                .await;
            return Err(reason);
        }
    };
    let Ok(mut upstream) = connect(&addrs).await else {
        let _ = client
            .write_all(
                b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )
            .await;
        return Ok(());
    };
    match target {
        Target::Tunnel { .. } => {
            client
                .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                .await
                .map_err(|e| e.to_string())?;
            upstream
                .write_all(&buf[head_end..])
                .await
                .map_err(|e| e.to_string())?;
        }
        Target::Forward { head, .. } => {
            upstream.write_all(&head).await.map_err(|e| e.to_string())?;
            upstream
                .write_all(&buf[head_end..])
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads() {
        assert_eq!(
            parse_head(b"CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n")
                .unwrap(),
            Target::Tunnel {
                host: "example.org".into(),
                port: 443
            }
        );
        let Target::Forward { host, port, head } = parse_head(
            b"GET http://a.example:8080/x/y?z=1 HTTP/1.1\r\nHost: a.example:8080\r\nProxy-Connection: keep-alive\r\nAccept: */*\r\n\r\n",
        )
        .unwrap() else {
            panic!("not forward")
        };
        assert_eq!((host.as_str(), port), ("a.example", 8080));
        assert_eq!(
            String::from_utf8(head).unwrap(),
            "GET /x/y?z=1 HTTP/1.1\r\nHost: a.example:8080\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
        for (target, path) in [
            ("http://h/", "/"),
            ("http://h:81", "/"),
            ("http://h?q=1", "/?q=1"),
            ("http://h/a//b?c=/d", "/a//b?c=/d"),
        ] {
            let Ok(Target::Forward { head, .. }) =
                parse_head(format!("GET {target} HTTP/1.1\r\n\r\n").as_bytes())
            else {
                panic!("{target}")
            };
            assert!(
                String::from_utf8(head)
                    .unwrap()
                    .starts_with(&format!("GET {path} HTTP/1.1\r\n")),
                "{target}"
            );
        }
        assert!(parse_head(b"GET /relative HTTP/1.1\r\n\r\n").is_err());
        assert!(parse_head(b"GET ftp://x/ HTTP/1.1\r\n\r\n").is_err());
        assert!(parse_head(b"CONNECT nohost HTTP/1.1\r\n\r\n").is_err());
        assert!(parse_head(b"\xff\xfe").is_err());
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
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(blocked.lock().unwrap()[0].contains("loopback"));

        let open = NetPolicy {
            allow_private: false,
            allowed_hosts: vec![format!("127.0.0.1:{}", up.port())],
        };
        let p = start(open, Arc::default()).await.unwrap();
        let mut c = TcpStream::connect(p.addr).await.unwrap();
        c.write_all(format!("CONNECT 127.0.0.1:{} HTTP/1.1\r\n\r\nping", up.port()).as_bytes())
            .await
            .unwrap();
        let mut got = vec![0u8; 43];
        c.read_exact(&mut got).await.unwrap();
        assert_eq!(&got[..39], b"HTTP/1.1 200 Connection Established\r\n\r\n");
        assert_eq!(&got[39..], b"ping");
    }
}
