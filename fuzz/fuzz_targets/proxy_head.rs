//! Request lines the browser sends to the filtering proxy (method and target,
//! as hyper parses them): routing never panics, a forwarded request is in
//! origin form, and only http/ws targets and CONNECT with a port are routed.
#![no_main]

use hyper::{Method, Uri};
use libfuzzer_sys::fuzz_target;
use tapedeck_media::web::proxy::{Route, route};

fuzz_target!(|data: &[u8]| {
    let Some(space) = data.iter().position(|b| *b == b' ') else {
        return;
    };
    let (Ok(method), Ok(uri)) = (
        Method::from_bytes(&data[..space]),
        Uri::try_from(&data[space + 1..]),
    ) else {
        return;
    };
    match route(&method, &uri) {
        Ok(Route::Forward { host, path, .. }) => {
            assert!(path.starts_with('/'), "{uri} -> {path}");
            assert!(!host.is_empty());
            assert!(matches!(uri.scheme_str(), Some("http" | "ws")), "{uri}");
        }
        Ok(Route::Tunnel { host, .. }) => {
            assert_eq!(method, Method::CONNECT);
            assert!(!host.is_empty());
        }
        Err(_) => {}
    }
});
