//! The OpenAPI document says what the server does: schemathesis runs every
//! check it has (`--checks all`: status codes, content types, response
//! schemas, schema-valid requests accepted, schema-invalid ones rejected,
//! `Allow` on 405, auth enforced, use after delete, ...) with a few hundred
//! examples per operation against the real server, and must find nothing.
//!
//! Before it runs, the test makes a completed recording and a share link, so
//! the media, thumbnail, share and shared-link operations are reached with
//! real data rather than only answering 404. The committed
//! `tests/api/schemathesis.toml` holds the only allowances (rules a JSON
//! schema cannot state), each with why.

mod support;

use std::time::Duration;

use serde_json::json;
use support::*;

/// Examples per operation and phase.
const EXAMPLES: u32 = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_says_what_the_server_does() {
    let s = start(|c| {
        // Generated web recordings go no further than the network policy or
        // a failed lookup; one browser at a time keeps the machine calm.
        c.web.max_concurrent = 1;
    })
    .await;
    let user = s.key("alice", false).await;
    let admin = s.key("root", true).await;
    // The completed recording belongs to another user, so nothing the run
    // lists or deletes as `alice` can reach it; the download operations
    // use its owner's key.
    let owner = s.key("carol", false).await;

    // A completed recording, and a share link to it.
    let rec = s
        .create(
            &owner,
            json!({"source": {"kind": "frames"}, "preset": "low"}),
        )
        .await;
    let done = rec["id"].as_str().unwrap().to_string();
    let mut ws = connect(&s.ws_url(&format!("/v1/recordings/{done}/frames"), &owner)).await;
    send_frames(&mut ws, 6, 100.0, |i| jpeg(320, 240, i)).await;
    drop(ws);
    s.post(&owner, &format!("/v1/recordings/{done}/stop"), json!({}))
        .await;
    s.wait_status(&owner, &done, "completed").await;
    let (st_code, link) = s
        .post(&owner, &format!("/v1/recordings/{done}/share"), json!({}))
        .await;
    assert_eq!(st_code, 200, "{link}");
    let link = url::Url::parse(link["page_url"].as_str().unwrap()).unwrap();
    let query: std::collections::HashMap<_, _> = link.query_pairs().into_owned().collect();

    // A room the user hosts, so room routes are reached with a real one.
    let (_, room) = s
        .post(&user, "/v1/rooms", json!({"name": "schemathesis"}))
        .await;
    let room = room["id"].as_str().unwrap().to_string();

    run_against(
        &s.base,
        Keys { user, admin, owner },
        &done,
        &query,
        &room,
        EXAMPLES,
    )
    .await;
}

/// The three callers: the one the run acts as, an admin, and the owner of
/// the completed recording.
struct Keys {
    user: String,
    admin: String,
    owner: String,
}

/// Runs schemathesis against `target` with `examples` per operation.
async fn run_against(
    target: &str,
    Keys { user, admin, owner }: Keys,
    done: &str,
    query: &std::collections::HashMap<String, String>,
    room: &str,
    examples: u32,
) {
    let st = tapedeck_testkit::schemathesis();
    // The committed allowances plus this run's data.
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/api/schemathesis.toml"
    ))
    .unwrap();
    let config = format!(
        r#"headers = {{ Authorization = "Bearer {user}" }}
hooks = "{hooks}"

{base}
# This run's data (written by the test).
[[operations]]
include-path-regex = "^/v1/recordings/\\{{id\\}}/(media|thumbnail|strip|share)$"
headers = {{ Authorization = "Bearer {owner}" }}
parameters = {{ "path.id" = "{done}" }}

[[operations]]
include-path-regex = "^/v1/rooms/\\{{id\\}}"
parameters = {{ "path.id" = "{room}" }}

[[operations]]
include-name = "GET /v1/shared/{{id}}"
parameters = {{ "path.id" = "{done}", "query.exp" = {exp}, "query.sig" = "{sig}" }}

[[operations]]
include-name = "POST /v1/admin/recordings/{{id}}/retry"
headers = {{ Authorization = "Bearer {admin}" }}
parameters = {{ "path.id" = "{done}" }}
"#,
        hooks = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/api/hooks.py"),
        exp = query["exp"],
        sig = query["sig"],
    );
    let config_path = dir.path().join("schemathesis.toml");
    std::fs::write(&config_path, config).unwrap();

    let out = tokio::time::timeout(
        Duration::from_secs(900),
        tokio::process::Command::new(&st)
            .arg("--config-file")
            .arg(&config_path)
            .args(["--no-color", "run"])
            .arg(format!("{target}/v1/openapi.json"))
            // Every check but one: closing a room (`DELETE /v1/rooms/{id}`)
            // ends its call, and the room stays readable with `closed_at`
            // and its recordings (people look back at their calls), which
            // `use_after_free` takes for a deleted resource still served.
            // (A per-operation allowance in the config file cannot undo
            // `--checks all`.) A deleted recording is 404 afterwards:
            // tests/frames_recording.rs.
            .args(["--checks", "all", "--exclude-checks", "use_after_free"])
            .arg("--max-examples")
            .arg(examples.to_string())
            .args(["--seed", "20261129", "--generation-database", "none"])
            .args(["--request-timeout", "30"])
            .current_dir(dir.path())
            .output(),
    )
    .await
    .expect("schemathesis finished in 15 minutes")
    .expect("schemathesis runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let summary: String = text
        .lines()
        .skip_while(|l| !l.contains("SUMMARY"))
        .collect::<Vec<_>>()
        .join("\n");
    println!("{summary}");
    assert!(
        out.status.success(),
        "schemathesis found failures:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // It really ran: every operation, thousands of cases, none failed.
    let operations: usize = tapedeck_server::http::openapi::spec()["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p.as_object().unwrap().len())
        .sum();
    // schemathesis leaves out the document's own route (/v1/openapi.json)
    // unless a filter names it.
    let tested = operations - 1;
    assert!(
        summary.contains(&format!("Selected: {tested}/{tested}"))
            && summary.contains(&format!("Tested: {tested}")),
        "{tested} operations: {summary}"
    );
    let cases: u64 = summary
        .lines()
        .find(|l| l.contains("generated,"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        cases >= u64::from(examples) * 10,
        "only {cases} cases: {summary}"
    );
    assert!(summary.contains(&format!("{cases} passed")), "{summary}");
}

/// The same through HAProxy in front of three nodes (on one PostgreSQL and
/// one bucket), with fewer examples: here it is forwarding and the shared
/// state that are checked, every request landing on any node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_a_load_balancer_in_front_of_three_nodes() {
    use support::cluster::{Cluster, call, wait_for};
    let c = Cluster::start(3, |_| {
        vec![("TAPEDECK_WEB__MAX_CONCURRENT".into(), "1".into())]
    });
    let admin = c.key("root", true);
    let user = c.key("alice", false);
    let owner = c.key("carol", false);
    c.wait_alive(&admin).await;
    let (code, rec) = call(
        &c.lb,
        &owner,
        "POST",
        "/v1/recordings",
        Some(json!({"source": {"kind": "frames"}, "preset": "low"})),
    )
    .await;
    assert_eq!(code, 201, "{rec}");
    let done = rec["id"].as_str().unwrap().to_string();
    let mut ws = connect(&format!(
        "{}/v1/recordings/{done}/frames?token={owner}",
        c.lb.replace("http://", "ws://")
    ))
    .await;
    send_frames(&mut ws, 6, 100.0, |i| jpeg(320, 240, i)).await;
    progress_until(&mut ws, |v| v["frames_received"] == 6).await;
    drop(ws);
    call(
        &c.lb,
        &owner,
        "POST",
        &format!("/v1/recordings/{done}/stop"),
        None,
    )
    .await;
    wait_for(&c.lb, &owner, &done, "completed").await;
    let (code, link) = call(
        &c.lb,
        &owner,
        "POST",
        &format!("/v1/recordings/{done}/share"),
        Some(json!({})),
    )
    .await;
    assert_eq!(code, 200, "{link}");
    let link = url::Url::parse(link["page_url"].as_str().unwrap()).unwrap();
    let query: std::collections::HashMap<_, _> = link.query_pairs().into_owned().collect();
    let (_, room) = call(
        &c.lb,
        &user,
        "POST",
        "/v1/rooms",
        Some(json!({"name": "schemathesis"})),
    )
    .await;
    let room = room["id"].as_str().unwrap().to_string();
    run_against(&c.lb, Keys { user, admin, owner }, &done, &query, &room, 50).await;
}
