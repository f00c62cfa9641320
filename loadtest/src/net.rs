//! The tool's HTTP client, and the loopback-only rule for every address it
//! is given (HTTP, PostgreSQL, Redis): it loads only this machine.

use std::time::Duration;

use anyhow::{Context, Result, bail};

/// The HTTP client of every request the tool makes.
pub fn http_client() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(2048)
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// Polls `url` (30 s at most) until it answers 2xx.
pub async fn wait_ok(client: &reqwest::Client, url: &str) -> Result<()> {
    for _ in 0..300 {
        if let Ok(r) = client.get(url).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{url} never answered 200")
}

/// `host:port` of a loopback URL; anything else is refused.
pub fn loopback_addr(url: &str) -> Result<String> {
    let parsed = ensure_loopback(url)?;
    let host = parsed.host_str().unwrap_or_default();
    let port = parsed
        .port_or_known_default()
        .with_context(|| format!("{url:?} has no port"))?;
    Ok(format!("{host}:{port}"))
}

/// Refuses any URL (HTTP, PostgreSQL, Redis) whose host is not loopback: the
/// tool loads only this machine.
pub fn ensure_loopback(url: &str) -> Result<reqwest::Url> {
    let parsed = reqwest::Url::parse(url).with_context(|| format!("bad URL {url:?}"))?;
    let host = parsed.host_str().unwrap_or_default();
    let loopback = host == "localhost"
        || host == "[::1]"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        bail!("the tool only loads loopback addresses (127.0.0.1, localhost, [::1]); got {host:?}");
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_urls() {
        assert_eq!(
            loopback_addr("http://127.0.0.1:8080").unwrap(),
            "127.0.0.1:8080"
        );
        assert_eq!(
            loopback_addr("http://localhost:3000/").unwrap(),
            "localhost:3000"
        );
        assert!(loopback_addr("http://10.0.0.1:8080").is_err());
        assert!(loopback_addr("http://example.com").is_err());
        assert!(ensure_loopback("postgres://postgres@127.0.0.1:5432/test").is_ok());
        assert!(ensure_loopback("redis://db.example.com:6379").is_err());
    }
}
