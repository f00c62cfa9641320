//! `--cors-origins` entries, parsed as browsers send `Origin`.

use axum::http::HeaderValue;

/// One `--cors-origins` entry: `http(s)://host[:port]` exactly as a browser sends it in
/// `Origin` (lower case, no default port, no path). A wildcard is refused: any site
/// could then have a browser that holds an operator key call the API.
pub fn cors_origin(s: &str) -> Result<HeaderValue, String> {
    let origin = s.trim().to_ascii_lowercase();
    if origin == "*" {
        return Err("'*' is not accepted: list each origin, like https://ops.example.com".into());
    }
    let shape = || format!("{s:?} is not an origin: expected http(s)://host[:port], no path");
    let (scheme, authority) = origin.split_once("://").ok_or_else(shape)?;
    let default_port = match scheme {
        "https" => ":443",
        "http" => ":80",
        _ => return Err(shape()),
    };
    if !valid_authority(authority) {
        return Err(shape());
    }
    let origin = origin.strip_suffix(default_port).unwrap_or(&origin);
    HeaderValue::from_str(origin).map_err(|_| shape())
}

/// `host[:port]`: a DNS name or IPv4 address, or an IPv6 address in brackets.
fn valid_authority(authority: &str) -> bool {
    let (host_ok, port) = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((addr, rest)) => (
                addr.parse::<std::net::Ipv6Addr>().is_ok(),
                (!rest.is_empty()).then_some(rest.strip_prefix(':').unwrap_or("x")),
            ),
            None => (false, None),
        },
        None => {
            let (host, port) = match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            };
            let name = |b: u8| b.is_ascii_alphanumeric() || b == b'.' || b == b'-';
            (!host.is_empty() && host.bytes().all(name), port)
        }
    };
    host_ok && port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0))
}
