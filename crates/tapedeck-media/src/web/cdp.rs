//! A minimal Chrome DevTools Protocol client over `--remote-debugging-pipe`.
//!
//! Written here rather than taken from chromiumoxide: tapedeck needs a dozen
//! commands, several of them experimental (HeadlessExperimental.beginFrame,
//! virtual time, target creation with begin-frame control), the pipe transport
//! (so no debugging port is open and the browser exits when its pipe closes),
//! and sending input without awaiting it before the next frame. The protocol
//! itself is JSON messages with ids, separated by NUL bytes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};

/// A CDP failure.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum CdpError {
    /// The browser answered with an error.
    #[error("{method}: {message}")]
    Protocol {
        /// The command.
        method: String,
        /// The browser's message.
        message: String,
    },
    /// No answer in time.
    #[error("{0}: the browser did not answer in time")]
    Timeout(String),
    /// The pipe closed: the browser exited or crashed.
    #[error("the browser closed its connection (it exited or crashed)")]
    Closed,
}

/// One event from the browser.
#[derive(Debug, Clone)]
pub struct Event {
    /// `Domain.event`.
    pub method: String,
    /// Its parameters.
    pub params: Value,
    /// The session it belongs to (none for the browser itself).
    pub session: Option<String>,
}

type Pending = Arc<Mutex<HashMap<u64, (String, oneshot::Sender<Result<Value, CdpError>>)>>>;

/// A connection to one browser.
#[derive(Clone, Debug)]
pub struct Cdp {
    out: mpsc::UnboundedSender<Vec<u8>>,
    pending: Pending,
    next: Arc<AtomicU64>,
}

/// An answer that will come later (see [`Cdp::send`]).
pub struct Reply {
    method: String,
    rx: oneshot::Receiver<Result<Value, CdpError>>,
}

impl Reply {
    /// Waits for the answer.
    pub async fn wait(self, timeout: Duration) -> Result<Value, CdpError> {
        match tokio::time::timeout(timeout, self.rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(CdpError::Closed),
            Err(_) => Err(CdpError::Timeout(self.method)),
        }
    }

    /// The answer if it has come, `None` while it has not.
    pub fn try_take(&mut self) -> Option<Result<Value, CdpError>> {
        match self.rx.try_recv() {
            Ok(r) => Some(r),
            Err(oneshot::error::TryRecvError::Empty) => None,
            Err(oneshot::error::TryRecvError::Closed) => Some(Err(CdpError::Closed)),
        }
    }
}

impl Cdp {
    /// Starts reading and writing on the pipe ends. Events go to the
    /// returned channel, except `Fetch.requestPaused`, which goes to the second.
    pub fn start<R, W>(
        reader: R,
        mut writer: W,
    ) -> (
        Cdp,
        mpsc::UnboundedReceiver<Event>,
        mpsc::UnboundedReceiver<Event>,
    )
    where
        R: tokio::io::AsyncRead + Unpin + Send + 'static,
        W: tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (out, mut out_rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let (fetch_tx, fetch_rx) = mpsc::unbounded_channel();
        let pending: Pending = Arc::default();
        tokio::spawn(async move {
            while let Some(mut msg) = out_rx.recv().await {
                msg.push(0);
                if writer.write_all(&msg).await.is_err() || writer.flush().await.is_err() {
                    break;
                }
            }
        });
        let p = pending.clone();
        tokio::spawn(async move {
            let mut reader = BufReader::with_capacity(1 << 20, reader);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(0, &mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                if buf.last() == Some(&0) {
                    buf.pop();
                }
                let Ok(msg) = serde_json::from_slice::<Value>(&buf) else {
                    continue;
                };
                if let Some(id) = msg.get("id").and_then(Value::as_u64) {
                    let entry = p.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
                    if let Some((method, tx)) = entry {
                        let r = match msg.get("error") {
                            Some(e) => Err(CdpError::Protocol {
                                method,
                                message: e
                                    .get("message")
                                    .and_then(Value::as_str)
                                    .unwrap_or("error")
                                    .to_string(),
                            }),
                            None => Ok(msg.get("result").cloned().unwrap_or(Value::Null)),
                        };
                        let _ = tx.send(r);
                    }
                } else if let Some(method) = msg.get("method").and_then(Value::as_str) {
                    let ev = Event {
                        method: method.to_string(),
                        params: msg.get("params").cloned().unwrap_or(Value::Null),
                        session: msg
                            .get("sessionId")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                    };
                    let tx = if ev.method == "Fetch.requestPaused" {
                        &fetch_tx
                    } else {
                        &ev_tx
                    };
                    let _ = tx.send(ev);
                }
            }
            // The browser is gone: fail everything still waiting.
            for (_, (_, tx)) in p.lock().unwrap_or_else(|e| e.into_inner()).drain() {
                let _ = tx.send(Err(CdpError::Closed));
            }
        });
        (
            Cdp {
                out,
                pending,
                next: Arc::new(AtomicU64::new(1)),
            },
            ev_rx,
            fetch_rx,
        )
    }

    /// Sends a command and returns a handle to its answer without waiting.
    pub fn send(&self, session: Option<&str>, method: &str, params: Value) -> Reply {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, (method.to_string(), tx));
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = Value::String(s.to_string());
        }
        if self.out.send(msg.to_string().into_bytes()).is_err()
            && let Some((_, tx)) = self
                .pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id)
        {
            let _ = tx.send(Err(CdpError::Closed));
        }
        Reply {
            method: method.to_string(),
            rx,
        }
    }

    /// Sends a command and waits up to `timeout` for its answer.
    pub async fn call(
        &self,
        session: Option<&str>,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, CdpError> {
        self.send(session, method, params).wait(timeout).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn matches_answers_to_commands_and_routes_events() {
        let (client_end, mut browser_end) = tokio::io::duplex(1 << 16);
        let (r, w) = tokio::io::split(client_end);
        let (cdp, mut events, mut fetch) = Cdp::start(r, w);
        let a = cdp.send(None, "A.one", json!({}));
        let b = cdp.send(Some("s1"), "B.two", json!({"x": 1}));
        let mut got = vec![0u8; 4096];
        let n = tokio::io::AsyncReadExt::read(&mut browser_end, &mut got)
            .await
            .unwrap();
        let sent: Vec<Value> = got[..n]
            .split(|b| *b == 0)
            .filter(|m| !m.is_empty())
            .map(|m| serde_json::from_slice(m).unwrap())
            .collect();
        assert_eq!(sent[1]["sessionId"], "s1");
        let (ia, ib) = (
            sent[0]["id"].as_u64().unwrap(),
            sent[1]["id"].as_u64().unwrap(),
        );
        let reply = format!(
            "{{\"id\":{ib},\"result\":{{\"v\":2}}}}\0{{\"method\":\"Fetch.requestPaused\",\"params\":{{}}}}\0{{\"method\":\"Page.x\",\"params\":{{}},\"sessionId\":\"s1\"}}\0{{\"id\":{ia},\"error\":{{\"message\":\"nope\"}}}}\0"
        );
        browser_end.write_all(reply.as_bytes()).await.unwrap();
        assert_eq!(b.wait(Duration::from_secs(1)).await.unwrap()["v"], 2);
        assert_eq!(
            a.wait(Duration::from_secs(1)).await.unwrap_err(),
            CdpError::Protocol {
                method: "A.one".into(),
                message: "nope".into()
            }
        );
        assert_eq!(fetch.recv().await.unwrap().method, "Fetch.requestPaused");
        assert_eq!(events.recv().await.unwrap().session.as_deref(), Some("s1"));
        let c = cdp.send(None, "C.three", json!({}));
        drop(browser_end);
        assert_eq!(
            c.wait(Duration::from_secs(1)).await.unwrap_err(),
            CdpError::Closed
        );
    }
}
