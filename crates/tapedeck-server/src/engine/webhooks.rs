//! Webhooks: each event POSTed as JSON to every configured URL, signed and
//! retried with exponential backoff; in a cluster through a shared outbox
//! in the database, so each is sent by one node ([`run_outbox`]).
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

use tapedeck_store::outbox::Delivery;
use tapedeck_store::repo::Repo;

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
    let Some(client) = client() else { return };
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

fn client() -> Option<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| tracing::error!(error = %e, "webhook client"))
        .ok()
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
        if post(client, url, kind, &delivery, &body, cfg).await {
            metrics.webhook("delivered");
            return;
        }
        metrics.webhook("retried");
        if attempt < cfg.max_attempts {
            tokio::time::sleep(backoff(cfg.retry_base_ms, attempt)).await;
        }
    }
    abandoned(url, kind, cfg, metrics);
}

fn abandoned(url: &str, kind: &str, cfg: &WebhooksConfig, metrics: &Metrics) {
    metrics.webhook("abandoned");
    tracing::error!(
        url,
        kind,
        "webhook abandoned after {} attempts",
        cfg.max_attempts
    );
}

/// One attempt; whether the receiver took it (a 2xx).
async fn post(
    client: &reqwest::Client,
    url: &str,
    kind: &str,
    delivery: &str,
    body: &[u8],
    cfg: &WebhooksConfig,
) -> bool {
    let ts = crate::now_ms() / 1000;
    let res = client
        .post(url)
        .header("content-type", "application/json")
        .header("tapedeck-event", kind)
        .header("tapedeck-delivery", delivery)
        .header("tapedeck-timestamp", ts.to_string())
        .header("tapedeck-signature", sign(&cfg.secret.0, ts, body))
        .body(body.to_vec())
        .send()
        .await;
    match res {
        Ok(r) if r.status().is_success() => true,
        Ok(r) => {
            tracing::warn!(url, status = %r.status(), "webhook refused");
            false
        }
        Err(e) => {
            tracing::warn!(url, error = %e, "webhook failed");
            false
        }
    }
}

/// How long a node holds a delivery it claimed: longer than one attempt
/// (10 s) can take.
const DELIVERY_LEASE_MS: i64 = 60_000;

/// In a cluster: every event becomes one delivery per URL in the shared
/// outbox, and every node delivers what it claims from it, so each is
/// sent by one node, and one whose node died mid-way is sent again by
/// another once its lease lapsed. Runs until the process ends.
pub async fn run_outbox(
    cfg: WebhooksConfig,
    mut rx: mpsc::UnboundedReceiver<Event>,
    metrics: Metrics,
    repo: Repo,
    node: String,
) {
    let Some(client) = client() else { return };
    let wake = std::sync::Arc::new(tokio::sync::Notify::new());
    let (r, w) = (repo.clone(), wake.clone());
    let urls = cfg.urls.clone();
    tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            let Ok(body) = serde_json::to_string(&event) else {
                continue;
            };
            let items: Vec<Delivery> = urls
                .iter()
                .map(|url| Delivery {
                    id: crate::engine::principal::random_string(16),
                    url: url.clone(),
                    kind: event.kind.clone(),
                    body: body.clone(),
                    attempts: 0,
                })
                .collect();
            if let Err(e) = r.queue_webhooks(&items, crate::now_ms()).await {
                tracing::error!(error = %e, kind = %event.kind, "webhooks not queued");
            }
            w.notify_one();
        }
    });
    loop {
        let now = crate::now_ms();
        match repo
            .claim_webhooks(&node, now, now + DELIVERY_LEASE_MS, 16)
            .await
        {
            Ok(claimed) => {
                for d in claimed {
                    let (client, cfg, metrics, repo) =
                        (client.clone(), cfg.clone(), metrics.clone(), repo.clone());
                    tokio::spawn(
                        async move { send_claimed(&client, d, &cfg, &metrics, &repo).await },
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "claiming webhooks"),
        }
        let _ = tokio::time::timeout(Duration::from_millis(500), wake.notified()).await;
    }
}

/// One attempt of a claimed delivery, and what the outbox keeps of it.
async fn send_claimed(
    client: &reqwest::Client,
    d: Delivery,
    cfg: &WebhooksConfig,
    metrics: &Metrics,
    repo: &Repo,
) {
    let attempts = d.attempts + 1;
    let done = if post(client, &d.url, &d.kind, &d.id, d.body.as_bytes(), cfg).await {
        metrics.webhook("delivered");
        true
    } else if attempts >= i64::from(cfg.max_attempts.max(1)) {
        abandoned(&d.url, &d.kind, cfg, metrics);
        true
    } else {
        metrics.webhook("retried");
        false
    };
    let kept = if done {
        repo.webhook_done(&d.id).await
    } else {
        let wait = backoff(cfg.retry_base_ms, attempts as u32).as_millis() as i64;
        repo.webhook_retry(&d.id, attempts, crate::now_ms() + wait)
            .await
    };
    if let Err(e) = kept {
        tracing::warn!(error = %e, id = %d.id, "the webhook outbox was not updated");
    }
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
