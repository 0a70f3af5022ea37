//! Which addresses a recorded web page may reach.
//!
//! The browser's every request (page, redirect, sub-resource, navigation) is
//! checked against this policy after its host is resolved: private, loopback,
//! link-local and other special-purpose addresses are refused unless the
//! configuration allows them, and only http(s), plus `data:`/`blob:`/`about:`
//! which never leave the browser, are allowed.

use std::net::{IpAddr, Ipv4Addr};

/// The policy for one recording.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetPolicy {
    /// Allow private, loopback and link-local addresses.
    pub allow_private: bool,
    /// `host` or `host:port` entries that are always allowed (e.g. a test server).
    pub allowed_hosts: Vec<String>,
    /// The addresses of this host's own interfaces (public ones included):
    /// a page must not reach a service of the server's machine through
    /// them. Read by the caller (this crate does no IO) when a recording
    /// starts.
    pub own_addrs: Vec<IpAddr>,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Blocked {
    /// Not http(s).
    #[error("`{0}:` URLs are not allowed")]
    Scheme(String),
    /// Unparsable.
    #[error("not a URL")]
    Malformed,
    /// Resolves to a special-purpose address.
    #[error("{}", address_message(.host, .addr, .class))]
    Address {
        /// The host as written.
        host: String,
        /// The refused address.
        addr: IpAddr,
        /// What kind of address it is.
        class: &'static str,
    },
    /// The host did not resolve.
    #[error("{0} does not resolve")]
    Unresolved(String),
}

/// The class of the host's own addresses.
const OWN: &str = "this host's own";

fn address_message(host: &str, addr: &IpAddr, class: &str) -> String {
    let kind = if class == OWN {
        "one of this host's own addresses".to_string()
    } else {
        let article = if class.starts_with(['a', 'e', 'i', 'o', 'u']) {
            "an"
        } else {
            "a"
        };
        format!("{article} {class} address")
    };
    let what = if host.trim_matches(['[', ']']) == addr.to_string() {
        format!("{host} is {kind}")
    } else {
        format!("{host} resolves to {addr}, {kind}")
    };
    format!("{what}; set web.allow_private_networks to allow it")
}

/// What the driver must do with a URL before it may be fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Allowed without a lookup (`data:`, `blob:`, an allowed host, or private networks allowed).
    Allow,
    /// Resolve this host (port for the lookup) and pass the addresses to [`NetPolicy::check_addrs`].
    Resolve {
        /// Host name or literal address.
        host: String,
        /// Port.
        port: u16,
    },
    /// Refused.
    Deny(Blocked),
}

/// The class of a special-purpose address, or `None` for a public one.
pub fn special_class(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_class(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return v4_class(v4);
            }
            let s = v6.segments();
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if v6.is_multicast() {
                Some("multicast")
            } else if s[0] & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if s[0] & 0xfe00 == 0xfc00 {
                Some("private (unique local)")
            } else if s[0] == 0x2001 && s[1] == 0x0db8 || s[0] & 0xfff0 == 0x3ff0 {
                // 2001:db8::/32 and 3fff::/20.
                Some("documentation")
            } else if s[..4] == [0x100, 0, 0, 0] {
                Some("discard-only")
            } else if s[0] == 0x5f00 {
                Some("SRv6 segment identifier")
            } else if s[0] & 0xffc0 == 0xfec0 {
                Some("site-local")
            } else if s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1 {
                Some("NAT64 local use")
            } else if s[0] == 0x64 && s[1] == 0xff9b {
                // NAT64 embeds an IPv4 address in the last 32 bits.
                v4_class(v4_at(s[6], s[7]))
            } else if s[..6] == [0; 6] || s[..6] == [0, 0, 0, 0, 0xffff, 0] {
                // IPv4-compatible (::a.b.c.d, deprecated) and IPv4-translated
                // (::ffff:0:a.b.c.d): the last 32 bits are the address.
                v4_class(v4_at(s[6], s[7]))
            } else if s[0] == 0x2002 {
                // 6to4: the IPv4 address follows the prefix.
                v4_class(v4_at(s[1], s[2]))
            } else if s[0] == 0x2001 && s[1] == 0 {
                // Teredo: the server's IPv4 address, and the client's inverted
                // in the last 32 bits.
                v4_class(v4_at(s[2], s[3])).or(v4_class(v4_at(!s[6], !s[7])))
            } else if s[0] == 0x2001 && s[1] < 0x0200 {
                // The rest of 2001::/23: benchmarking, ORCHID, AMT, ...
                Some("IETF protocol assignment")
            } else {
                None
            }
        }
    }
}

/// An IPv4-mapped IPv6 address as its IPv4 address; others as they are.
fn canonical(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(a, IpAddr::V4),
        a => a,
    }
}

/// The IPv4 addresses an IPv6 address may carry: IPv4-compatible and
/// -translated, NAT64, 6to4, and both of Teredo's.
fn embedded_v4(v6: std::net::Ipv6Addr) -> Vec<Ipv4Addr> {
    let s = v6.segments();
    if s[..6] == [0; 6] || s[..6] == [0, 0, 0, 0, 0xffff, 0] || (s[0] == 0x64 && s[1] == 0xff9b) {
        vec![v4_at(s[6], s[7])]
    } else if s[0] == 0x2002 {
        vec![v4_at(s[1], s[2])]
    } else if s[0] == 0x2001 && s[1] == 0 {
        vec![v4_at(s[2], s[3]), v4_at(!s[6], !s[7])]
    } else {
        vec![]
    }
}

/// The IPv4 address in two 16-bit groups.
fn v4_at(hi: u16, lo: u16) -> Ipv4Addr {
    Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo))
}

fn v4_class(v4: Ipv4Addr) -> Option<&'static str> {
    let o = v4.octets();
    if v4.is_loopback() {
        Some("loopback")
    } else if v4.is_private() {
        Some("private")
    } else if v4.is_link_local() {
        Some("link-local")
    } else if v4.is_unspecified() || o[0] == 0 {
        Some("unspecified")
    } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
        Some("shared (carrier-grade NAT)")
    } else if v4.is_broadcast() || v4.is_multicast() || o[0] >= 240 {
        Some("reserved")
    } else if o[0] == 192 && o[1] == 0 && o[2] == 0 {
        Some("protocol assignment")
    } else if o[0] == 198 && (o[1] & 0xfe) == 18 {
        Some("benchmarking")
    } else if matches!(
        (o[0], o[1], o[2]),
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113)
    ) {
        Some("documentation")
    } else if matches!(
        (o[0], o[1], o[2]),
        (192, 88, 99) | (192, 31, 196) | (192, 52, 193) | (192, 175, 48)
    ) {
        // 6to4 relay anycast, AS112 (two) and AMT.
        Some("special-purpose")
    } else {
        None
    }
}

impl NetPolicy {
    fn host_allowed(&self, host: &str, port: u16) -> bool {
        let with_port = format!("{host}:{port}");
        self.allowed_hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(host) || h.eq_ignore_ascii_case(&with_port))
    }

    /// First check of a URL, before any lookup.
    pub fn check_url(&self, url: &str) -> Verdict {
        let Ok(u) = url::Url::parse(url) else {
            return Verdict::Deny(Blocked::Malformed);
        };
        match u.scheme() {
            "http" | "https" | "ws" | "wss" => {}
            "data" | "blob" | "about" => return Verdict::Allow,
            s => return Verdict::Deny(Blocked::Scheme(s.to_string())),
        }
        let Some(host) = u.host() else {
            return Verdict::Deny(Blocked::Malformed);
        };
        let port = u.port_or_known_default().unwrap_or(80);
        let name = match &host {
            url::Host::Domain(d) => d.to_string(),
            url::Host::Ipv4(a) => a.to_string(),
            url::Host::Ipv6(a) => a.to_string(),
        };
        self.check_host(&name, port)
    }

    /// The check of a host (a name, or a literal address as `url` writes
    /// it without brackets) and port, before any lookup: for other
    /// protocols' URLs (a stream output's RTMP or SRT).
    pub fn check_host(&self, name: &str, port: u16) -> Verdict {
        let name = name
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        if self.host_allowed(&name, port)
            || self.host_allowed(&format!("[{name}]"), port)
            || self.allow_private
        {
            return Verdict::Allow;
        }
        match name.parse::<IpAddr>() {
            Ok(a) => self.verdict_addr(&name, a),
            Err(_) => {
                let d = name.trim_end_matches('.').to_ascii_lowercase();
                if d == "localhost" || d.ends_with(".localhost") {
                    return Verdict::Deny(Blocked::Address {
                        host: name,
                        addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
                        class: "loopback",
                    });
                }
                Verdict::Resolve { host: name, port }
            }
        }
    }

    fn verdict_addr(&self, host: &str, addr: IpAddr) -> Verdict {
        // The special class says more (loopback, private) when there is one.
        match special_class(addr).or(self.is_own(addr).then_some(OWN)) {
            Some(class) => Verdict::Deny(Blocked::Address {
                host: host.to_string(),
                addr,
                class,
            }),
            None => Verdict::Allow,
        }
    }

    /// Whether `addr` is one of this host's own, also when it carries one
    /// in IPv6 (`::ffff:a.b.c.d` and the other forms [`special_class`] reads).
    fn is_own(&self, addr: IpAddr) -> bool {
        let own = |a: IpAddr| self.own_addrs.iter().any(|o| canonical(*o) == a);
        let a = canonical(addr);
        own(a)
            || matches!(a, IpAddr::V6(v6) if embedded_v4(v6).into_iter().any(|v4| own(IpAddr::V4(v4))))
    }

    /// Second check: every address a host resolved to must be public.
    pub fn check_addrs(&self, host: &str, addrs: &[IpAddr]) -> Result<(), Blocked> {
        if addrs.is_empty() {
            return Err(Blocked::Unresolved(host.to_string()));
        }
        if self.allow_private {
            return Ok(());
        }
        for a in addrs {
            if let Verdict::Deny(b) = self.verdict_addr(host, *a) {
                return Err(b);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    fn deny(p: &NetPolicy, url: &str) -> bool {
        matches!(p.check_url(url), Verdict::Deny(_))
    }

    #[test]
    fn refuses_special_addresses_by_default() {
        let p = NetPolicy::default();
        for url in [
            "http://127.0.0.1/",
            "http://127.8.9.1:8080/x",
            "http://10.0.0.1/",
            "http://172.16.5.4/",
            "http://192.168.1.1/",
            "http://169.254.169.254/latest/meta-data",
            "http://0.0.0.0/",
            "http://100.64.0.1/",
            "http://[::1]/",
            "http://[fe80::1]/",
            "http://[fd00::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[::127.0.0.1]/",
            "http://[::ffff:0:a00:1]/",
            "http://[2002:7f00:1::]/",
            "http://[2002:a9fe:a9fe::1]/",
            "http://[2001:0:7f00:1::]/",
            "http://[2001:0:5db8:d70e::f5ff:fffe]/",
            "http://[fec0::1]/",
            "http://[64:ff9b:1::5db8:d70e]/",
            "http://localhost:3000/",
            "http://192.0.2.10/",
            "http://198.51.100.7:8080/",
            "http://203.0.113.200/",
            "http://192.88.99.1/",
            "http://[::ffff:192.0.2.10]/",
            "http://[::ffff:203.0.113.5]:81/",
            "http://[3fff::1]/",
            "http://[100::1]/",
            "http://[2001:2::1]/",
            "http://[2001:20::1]/",
            "http://[5f00::1]/",
            "http://app.localhost/",
            "file:///etc/passwd",
            "ftp://example.org/",
            "chrome://settings",
            "javascript:alert(1)",
        ] {
            assert!(deny(&p, url), "{url} should be refused");
        }
        assert_eq!(p.check_url("data:text/html,hi"), Verdict::Allow);
        assert_eq!(p.check_url("http://93.184.215.14/"), Verdict::Allow);
        assert_eq!(
            p.check_url("https://example.org/a"),
            Verdict::Resolve {
                host: "example.org".into(),
                port: 443
            }
        );
    }

    #[test]
    fn resolved_addresses_are_checked() {
        let p = NetPolicy::default();
        let public: IpAddr = "93.184.215.14".parse().unwrap();
        let private: IpAddr = "10.1.2.3".parse().unwrap();
        assert!(p.check_addrs("a.example", &[public]).is_ok());
        let e = p.check_addrs("a.example", &[public, private]).unwrap_err();
        assert!(
            e.to_string().starts_with("a.example resolves to 10.1.2.3"),
            "{e}"
        );
        let Verdict::Deny(e) = p.check_url("http://[::1]:8/") else {
            panic!("loopback allowed")
        };
        assert!(
            e.to_string().starts_with("::1 is a loopback address"),
            "{e}"
        );
        assert!(e.to_string().contains("private"), "{e}");
        assert!(matches!(
            p.check_addrs("a.example", &[]),
            Err(Blocked::Unresolved(_))
        ));
    }

    #[test]
    fn the_hosts_own_addresses_are_refused() {
        let own: IpAddr = "93.184.215.99".parse().unwrap();
        let p = NetPolicy {
            own_addrs: vec![own, "2600:1f18::5".parse().unwrap()],
            ..NetPolicy::default()
        };
        for url in [
            "http://93.184.215.99:8000/",
            "http://[::ffff:93.184.215.99]/",
            "http://[::ffff:5db8:d763]/",
            "http://[2002:5db8:d763::1]/",
            "http://[64:ff9b::5db8:d763]/",
            "http://[2600:1f18::5]:3000/",
        ] {
            let Verdict::Deny(e) = p.check_url(url) else {
                panic!("{url} should be refused")
            };
            assert!(
                e.to_string()
                    .contains("is one of this host's own addresses"),
                "{url}: {e}"
            );
        }
        let e = p.check_addrs("me.example", &[own]).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("me.example resolves to 93.184.215.99, one of this host's own"),
            "{e}"
        );
        // A special address of the host's says its class.
        let lo = NetPolicy {
            own_addrs: vec!["127.0.0.1".parse().unwrap()],
            ..NetPolicy::default()
        };
        let Verdict::Deny(e) = lo.check_url("http://127.0.0.1:1/") else {
            panic!("loopback allowed")
        };
        assert!(e.to_string().contains("loopback"), "{e}");
        // A neighbour is not the host.
        assert_eq!(p.check_url("http://93.184.215.98/"), Verdict::Allow);
        // Private networks allowed: the host too (a development setup).
        let open = NetPolicy {
            allow_private: true,
            ..p
        };
        assert_eq!(open.check_url("http://93.184.215.99/"), Verdict::Allow);
    }

    #[test]
    fn configuration_opens_private_networks_or_named_hosts() {
        let open = NetPolicy {
            allow_private: true,
            ..NetPolicy::default()
        };
        assert_eq!(open.check_url("http://127.0.0.1:9/"), Verdict::Allow);
        assert!(deny(&open, "file:///etc/passwd"));
        let one = NetPolicy {
            allowed_hosts: vec!["127.0.0.1:8080".into()],
            ..NetPolicy::default()
        };
        assert_eq!(one.check_url("http://127.0.0.1:8080/x"), Verdict::Allow);
        assert!(deny(&one, "http://127.0.0.1:8081/x"));
    }

    proptest::proptest! {
        /// Every way IPv6 carries an IPv4 address is refused exactly when
        /// that IPv4 address is.
        #[test]
        fn embedded_ipv4_follows_the_ipv4_rules(a: u32) {
            let v4 = Ipv4Addr::from(a);
            let refused = v4_class(v4).is_some();
            let (hi, lo) = ((a >> 16) as u16, a as u16);
            let public = (0x5db8u16, 0xd70eu16); // 93.184.215.14
            let forms = [
                v4.to_ipv6_mapped(),
                Ipv6Addr::new(0, 0, 0, 0, 0, 0, hi, lo),
                Ipv6Addr::new(0, 0, 0, 0, 0xffff, 0, hi, lo),
                Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, hi, lo),
                Ipv6Addr::new(0x2002, hi, lo, 0, 0, 0, 0, 1),
                // Teredo with this address as the client behind a public server.
                Ipv6Addr::new(0x2001, 0, public.0, public.1, 0, 0, !hi, !lo),
                // Teredo with this address as the server of a private client
                // (10.0.0.1, inverted): refused whatever the server.
                Ipv6Addr::new(0x2001, 0, hi, lo, 0, 0, 0xf5ff, 0xfffe),
            ];
            for (i, v6) in forms.iter().enumerate() {
                let got = special_class(IpAddr::V6(*v6)).is_some();
                if i == 6 {
                    proptest::prop_assert!(got, "{v6}");
                } else if *v6 == Ipv6Addr::UNSPECIFIED || *v6 == Ipv6Addr::LOCALHOST {
                    proptest::prop_assert!(got, "{v6}");
                } else {
                    proptest::prop_assert_eq!(got, refused, "{} for {}", v6, v4);
                }
            }
        }
    }
}
