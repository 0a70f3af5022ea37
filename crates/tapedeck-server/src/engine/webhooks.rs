//! Webhooks: each event POSTed as JSON to every configured URL, signed and
//! retried with exponential backoff.
//!
//! Headers: `Tapedeck-Event` (type), `Tapedeck-Delivery` (id),
//! `Tapedeck-Timestamp` (unix seconds), `Tapedeck-Signature: v1=HEX` where HEX
//! is HMAC-SHA256(secret, "TIMESTAMP.BODY"). Receivers should check the
//! signature and refuse old timestamps.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tapedeck_core::event::Event;
use tokio::sync::mpsc;

use crate::config::WebhooksConfig;
use crate::engine::metrics::Metrics;

/// The signature header value for `body` sent at `timestamp`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC accepts keys of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac key");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Delay before retry `attempt` (1-based): base, 2 base, 4 base, ... capped at 10 minutes.
pub fn backoff(base_ms: u64, attempt: u32) -> Duration {
    Duration::from_millis(
        base_ms
            .saturating_mul(1u64 << attempt.saturating_sub(1).min(20))
            .min(600_000),
    )
}

/// Runs until the sender side closes: delivers every event to every URL.
pub async fn run(cfg: WebhooksConfig, mut rx: mpsc::UnboundedReceiver<Event>, metrics: Metrics) {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "webhook client");
            return;
        }
    };
    while let Some(event) = rx.recv().await {
        let Ok(body) = serde_json::to_vec(&event) else {
            continue;
        };
        for url in &cfg.urls {
            let (client, url, body, cfg, metrics) = (
                client.clone(),
                url.clone(),
                body.clone(),
                cfg.clone(),
                metrics.clone(),
            );
            let kind = event.kind.clone();
            tokio::spawn(async move { deliver(&client, &url, &kind, body, &cfg, &metrics).await });
        }
    }
}

async fn deliver(
    client: &reqwest::Client,
    url: &str,
    kind: &str,
    body: Vec<u8>,
    cfg: &WebhooksConfig,
    metrics: &Metrics,
) {
    let delivery = crate::engine::principal::random_string(16);
    for attempt in 1..=cfg.max_attempts.max(1) {
        let ts = crate::now_ms() / 1000;
        let res = client
            .post(url)
            .header("content-type", "application/json")
            .header("tapedeck-event", kind)
            .header("tapedeck-delivery", &delivery)
            .header("tapedeck-timestamp", ts.to_string())
            .header("tapedeck-signature", sign(&cfg.secret.0, ts, &body))
            .body(body.clone())
            .send()
            .await;
        match res {
            Ok(r) if r.status().is_success() => {
                metrics.webhook("delivered");
                return;
            }
            Ok(r) => tracing::warn!(url, attempt, status = %r.status(), "webhook refused"),
            Err(e) => tracing::warn!(url, attempt, error = %e, "webhook failed"),
        }
        metrics.webhook("retried");
        if attempt < cfg.max_attempts {
            tokio::time::sleep(backoff(cfg.retry_base_ms, attempt)).await;
        }
    }
    metrics.webhook("abandoned");
    tracing::error!(
        url,
        kind,
        "webhook abandoned after {} attempts",
        cfg.max_attempts
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_of_timestamp_and_body() {
        // Known answer from Python: hmac.new(b"secret", b"1700000000.{}", sha256).hexdigest()
        assert_eq!(
            sign("secret", 1700000000, b"{}"),
            "v1=b8569b78799ff9e3cbff0fc2d63a33a2b57f3282abd07c37ae5e8e7d79a5f163"
        );
        assert_ne!(
            sign("secret", 1700000000, b"{}"),
            sign("secret", 1700000001, b"{}")
        );
    }

    #[test]
    fn backoff_doubles() {
        assert_eq!(backoff(1000, 1), Duration::from_secs(1));
        assert_eq!(backoff(1000, 3), Duration::from_secs(4));
        assert_eq!(backoff(1000, 40), Duration::from_secs(600));
    }
}
