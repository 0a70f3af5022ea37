//! Commands that talk to a running server over its API.

use std::path::PathBuf;

use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use super::ClientArgs;

pub(super) async fn call(
    c: &ClientArgs,
    method: reqwest::Method,
    path: &str,
    query: &[(String, String)],
) -> Result<serde_json::Value, String> {
    let base = format!("{}{path}", c.server.trim_end_matches('/'));
    let url = url::Url::parse_with_params(&base, query)
        .map_err(|e| format!("bad server URL {}: {e}", c.server))?;
    let resp = reqwest::Client::new()
        .request(method, url)
        .bearer_auth(&c.token)
        .send()
        .await
        .map_err(|e| format!("cannot reach {}: {e}", c.server))?;
    let status = resp.status();
    let v: serde_json::Value = resp.json().await.unwrap_or(serde_json::Value::Null);
    if !status.is_success() {
        return Err(format!(
            "{} {}: {}",
            status.as_u16(),
            v["error"]["code"].as_str().unwrap_or(""),
            v["error"]["message"].as_str().unwrap_or("")
        ));
    }
    Ok(v)
}

pub(super) async fn download(
    c: &ClientArgs,
    id: &str,
    output: Option<PathBuf>,
) -> Result<(), String> {
    let rec = call(
        c,
        reqwest::Method::GET,
        &format!("/v1/recordings/{id}"),
        &[],
    )
    .await?;
    let ext = rec["format"].as_str().unwrap_or("mp4");
    let out = output.unwrap_or_else(|| PathBuf::from(format!("{id}.{ext}")));
    let url = format!(
        "{}/v1/recordings/{id}/media",
        c.server.trim_end_matches('/')
    );
    let resp = reqwest::Client::new()
        .get(&url)
        .bearer_auth(&c.token)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        let s = resp.status();
        let v: serde_json::Value = resp.json().await.unwrap_or_default();
        return Err(format!(
            "{} {}",
            s.as_u16(),
            v["error"]["message"].as_str().unwrap_or("")
        ));
    }
    let total = resp.content_length().unwrap_or(0);
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let tmp = out.with_extension(format!("{ext}.part"));
    let mut f = tokio::fs::File::create(&tmp)
        .await
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    let mut stream = resp.bytes_stream();
    let mut got = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| format!("download interrupted: {e}"))?;
        f.write_all(&chunk).await.map_err(|e| e.to_string())?;
        got += chunk.len() as u64;
        bar.set_position(got);
    }
    f.flush().await.map_err(|e| e.to_string())?;
    if total > 0 && got != total {
        return Err(format!("download incomplete: {got} of {total} bytes"));
    }
    tokio::fs::rename(&tmp, &out)
        .await
        .map_err(|e| e.to_string())?;
    bar.finish_and_clear();
    println!("{} ({got} bytes)", out.display());
    Ok(())
}
