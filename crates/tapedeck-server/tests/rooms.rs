//! Rooms through the real API: create, list, see, close, invite; who may do
//! what (host, participant, outsider, admin).

mod support;

use serde_json::json;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_belong_to_their_host_and_participants() {
    let s = start(|c| c.outputs.allow_private_networks = true).await;
    let alice = s.key("alice", false).await;
    let bob = s.key("bob", false).await;
    let carol = s.key("carol", false).await;
    let admin = s.key("root", true).await;

    // Alice creates a room and is its host.
    let (st, room) = s
        .post(
            &alice,
            "/v1/rooms",
            json!({"name": "Standup", "max_participants": 4}),
        )
        .await;
    assert_eq!(st, 201, "{room}");
    let id = room["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("room_"), "{room}");
    assert_eq!(room["host"], "alice");
    assert_eq!(room["max_participants"], 4);
    assert_eq!(room["join_url"], format!("{}/call/{id}", s.base));
    assert!(room["closed_at"].is_null());
    let (_, mine) = s.get(&alice, "/v1/rooms").await;
    assert_eq!(mine["rooms"][0]["id"], id.as_str());

    // Outsiders see nothing: 404 as for a room that does not exist.
    for path in [
        format!("/v1/rooms/{id}"),
        format!("/v1/rooms/{id}/recordings"),
    ] {
        assert_eq!(s.get(&bob, &path).await.0, 404, "{path}");
    }
    assert!(
        s.get(&bob, "/v1/rooms").await.1["rooms"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let (st, _) = s
        .post(
            &bob,
            &format!("/v1/rooms/{id}/invites"),
            json!({"name": "x"}),
        )
        .await;
    assert_eq!(st, 404);

    // A participant (one who joined) sees it but may not control it.
    s.state
        .repo
        .add_member(id.parse().unwrap(), "carol", 0)
        .await
        .unwrap();
    let (st, seen) = s.get(&carol, &format!("/v1/rooms/{id}")).await;
    assert_eq!((st, &seen["name"]), (200, &json!("Standup")));
    assert_eq!(
        s.get(&carol, "/v1/rooms").await.1["rooms"][0]["id"],
        id.as_str()
    );
    let (st, e) = s
        .post(
            &carol,
            &format!("/v1/rooms/{id}/invites"),
            json!({"name": "x"}),
        )
        .await;
    assert_eq!((st, &e["error"]["code"]), (403, &json!("not_room_host")));
    let r = s
        .client()
        .delete(format!("{}/v1/rooms/{id}", s.base))
        .bearer_auth(&carol)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        s.get(&carol, &format!("/v1/rooms/{id}/recordings")).await.1["recordings"],
        json!([])
    );
    // She sees the host's recording of the call, not its stream's key.
    let rec = s
        .create(
            &alice,
            json!({"source": {"kind": "room", "room": id, "layout": "grid"},
                   "outputs": [{"kind": "rtmp", "url": "rtmp://127.0.0.1:1/live/SECRETKEY"},
                               {"kind": "srt", "url": "srt://127.0.0.1:2?passphrase=hushhushhush"}]}),
        )
        .await;
    let rid = rec["id"].as_str().unwrap();
    assert_eq!(
        rec["outputs"][0]["url"], "rtmp://127.0.0.1:1/live/SECRETKEY",
        "the owner sees it whole"
    );
    for path in [
        format!("/v1/rooms/{id}/recordings"),
        format!("/v1/recordings/{rid}"),
    ] {
        let (st, seen) = s.get(&carol, &path).await;
        let text = seen.to_string();
        assert_eq!(st, 200, "{path}: {text}");
        assert!(
            text.contains("rtmp://127.0.0.1:1/")
                && !text.contains("SECRETKEY")
                && !text.contains("hush"),
            "{path}: {text}"
        );
    }
    let (st, _) = s
        .post(&alice, &format!("/v1/recordings/{rid}/cancel"), json!({}))
        .await;
    assert_eq!(st, 200);

    // The host invites a guest: a join token for this room, with a link.
    let (st, inv) = s
        .post(
            &alice,
            &format!("/v1/rooms/{id}/invites"),
            json!({"name": "Bob B.", "expires_in_s": 3600}),
        )
        .await;
    assert_eq!(st, 201, "{inv}");
    let token = inv["token"].as_str().unwrap();
    let claims = tapedeck_server::http::rooms::token::verify(&s.state.share_key, token, 0).unwrap();
    assert_eq!(claims.room.to_string(), id);
    assert_eq!(claims.name, "Bob B.");
    assert!(
        inv["join_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/call/{id}?token={token}"))
    );
    // A join token is not an API key: it opens nothing else.
    assert_eq!(s.get(token, "/v1/recordings").await.0, 401);

    // Bad input names the field.
    for (body, field) in [
        (json!({"name": ""}), "name"),
        (
            json!({"name": "x", "max_participants": 1}),
            "max_participants",
        ),
        (
            json!({"name": "x", "max_participants": 51}),
            "max_participants",
        ),
    ] {
        let (st, e) = s.post(&alice, "/v1/rooms", body.clone()).await;
        assert_eq!(st, 422, "{body}");
        assert!(
            e["error"]["message"].as_str().unwrap().starts_with(field),
            "{e}"
        );
    }
    assert_eq!(
        s.get(&alice, "/v1/rooms/room_nope").await.1["error"]["code"],
        "invalid_id"
    );

    // An admin may close any room; closed rooms take no invites.
    let r = s
        .client()
        .delete(format!("{}/v1/rooms/{id}", s.base))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (_, closed) = s.get(&alice, &format!("/v1/rooms/{id}")).await;
    assert!(closed["closed_at"].is_string(), "{closed}");
    let (st, e) = s
        .post(
            &alice,
            &format!("/v1/rooms/{id}/invites"),
            json!({"name": "x"}),
        )
        .await;
    assert_eq!((st, &e["error"]["code"]), (409, &json!("room_closed")));
}

/// The recording events of a room reach everyone in it (`/v1/events`), not
/// only the host who owns the recording; outsiders get none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rooms_recording_events_reach_everyone_in_the_room() {
    let s = start(|_| {}).await;
    let alice = s.key("alice", false).await;
    let bob = s.key("bob", false).await;
    let carol = s.key("carol", false).await;
    let (_, room) = s.post(&alice, "/v1/rooms", json!({"name": "x"})).await;
    let room = room["id"].as_str().unwrap().to_string();
    s.state
        .repo
        .add_member(room.parse().unwrap(), "bob", 0)
        .await
        .unwrap();
    let mut bob_ev = connect(&s.ws_url("/v1/events", &bob)).await;
    let mut carol_ev = connect(&s.ws_url("/v1/events", &carol)).await;
    let rec = s
        .create(&alice, json!({"source": {"kind": "room", "room": room}}))
        .await;
    let ev = next_json(&mut bob_ev).await;
    assert_eq!(
        (ev["type"].as_str(), ev["recording"]["id"].as_str()),
        (Some("recording.created"), rec["id"].as_str())
    );
    // Carol's first event is her own recording's, not the room's.
    let mine = s
        .create(&carol, json!({"source": {"kind": "frames"}}))
        .await;
    let ev = next_json(&mut carol_ev).await;
    assert_eq!(ev["recording"]["id"], mine["id"]);
}

/// The call page's socket refuses what it cannot use with a clear code,
/// before and after the upgrade, and stays up for good messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_call_socket_refuses_bad_tokens_and_messages() {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let s = start(|_| {}).await;
    let alice = s.key("alice", false).await;
    let (_, room) = s.post(&alice, "/v1/rooms", json!({"name": "x"})).await;
    let room = room["id"].as_str().unwrap().to_string();
    let (_, other) = s.post(&alice, "/v1/rooms", json!({"name": "y"})).await;
    let other = other["id"].as_str().unwrap().to_string();
    let (_, inv) = s
        .post(
            &alice,
            &format!("/v1/rooms/{other}/invites"),
            json!({"name": "g"}),
        )
        .await;
    let ws_base = s.base.replace("http://", "ws://");
    let path = format!("/v1/rooms/{room}/call");

    // Before the upgrade: no token, another room's join token → 401.
    for url in [
        format!("{ws_base}{path}"),
        s.ws_url(&path, inv["token"].as_str().unwrap()),
    ] {
        match tokio_tungstenite::connect_async(&url).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
                assert_eq!(r.status(), 401, "{url}")
            }
            other => panic!("{url}: {other:?}"),
        }
    }
    // Not a WebSocket: 400 not_websocket.
    let (st, e) = s.get(&alice, &path).await;
    assert_eq!((st, &e["error"]["code"]), (400, &json!("not_websocket")));

    // After: garbage first is an error and the end; a bad SDP is invalid_sdp.
    let mut ws = connect(&s.ws_url(&path, &alice)).await;
    ws.send(Message::Text("{not json".into())).await.unwrap();
    let m = next_json(&mut ws).await;
    assert_eq!(
        (m["type"].as_str(), m["code"].as_str()),
        (Some("error"), Some("invalid_json"))
    );
    let mut ws = connect(&s.ws_url(&path, &alice)).await;
    ws.send(Message::Text(r#"{"type": "answer", "sdp": "v=0"}"#.into()))
        .await
        .unwrap();
    let m = next_json(&mut ws).await;
    assert_eq!(m["code"], "invalid_request", "{m}");
    let mut ws = connect(&s.ws_url(&path, &alice)).await;
    ws.send(Message::Text(
        r#"{"type": "join", "offer": "v=0\r\nbogus"}"#.into(),
    ))
    .await
    .unwrap();
    let m = next_json(&mut ws).await;
    assert_eq!(m["code"], "invalid_sdp", "{m}");
    assert!(
        s.state
            .rtc
            .participants(room.parse().unwrap())
            .await
            .is_empty()
    );

    // A closed room takes no one.
    let r = s
        .client()
        .delete(format!("{}/v1/rooms/{room}", s.base))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    match tokio_tungstenite::connect_async(&s.ws_url(&path, &alice)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 409),
        other => panic!("{other:?}"),
    }
}
