//! One contract for the metadata repository, run on SQLite and on a real PostgreSQL.

use tapedeck_core::recording::{Recording, SourceKind, SourceSpec, Status};
use tapedeck_core::room::Room;
use tapedeck_core::{RecordingId, RoomId};
use tapedeck_store::repo::{ApiKey, ListFilter, Repo};

fn recording(n: u64, owner: &str, status: Status) -> Recording {
    Recording {
        id: RecordingId::from_parts(1_700_000_000_000 + n, u128::from(n)),
        owner: owner.into(),
        status,
        source: SourceSpec::Frames { input_fps: None },
        title: Some(format!("r{n}")),
        metadata: serde_json::json!({"n": n}),
        created_at: 1_700_000_000_000 + n as i64,
        expires_at: Some(1_700_000_000_000 + n as i64 * 1000),
        size_bytes: Some(n * 100),
        ..Recording::example()
    }
}

async fn rooms_contract(repo: &Repo) {
    let room = |n: u64, host: &str| Room {
        id: RoomId::from_parts(1_700_000_000_000 + n, u128::from(n)),
        name: format!("room {n}"),
        host: host.into(),
        max_participants: 4,
        created_at: 1_700_000_000_000 + n as i64,
        closed_at: None,
        node: None,
        // Kept as stored: a room that records itself, and one that does not.
        auto_record: (n == 1).then(|| serde_json::json!({"layout": "grid", "format": "mp4"})),
        idle_stop_s: (n == 1).then_some(30),
        max_duration_s: (n == 1).then_some(600),
    };
    let (a, b) = (room(1, "alice"), room(2, "bob"));
    repo.insert_room(&a).await.unwrap();
    repo.insert_room(&b).await.unwrap();
    assert_eq!(repo.room(a.id).await.unwrap(), Some(a.clone()));
    // Alice sees the room she hosts; after joining Bob's, both, newest first.
    let names = |rs: Vec<Room>| rs.into_iter().map(|r| r.name).collect::<Vec<_>>();
    assert_eq!(
        names(repo.rooms_of("alice", None, 200).await.unwrap()),
        ["room 1"]
    );
    assert!(!repo.is_member(&b, "alice").await.unwrap());
    repo.add_member(b.id, "alice", 5).await.unwrap();
    repo.add_member(b.id, "alice", 6).await.unwrap(); // again: no-op
    assert!(repo.is_member(&b, "alice").await.unwrap());
    assert!(repo.is_member(&b, "bob").await.unwrap()); // the host
    assert_eq!(
        names(repo.rooms_of("alice", None, 200).await.unwrap()),
        ["room 2", "room 1"]
    );
    assert!(repo.rooms_of("carol", None, 200).await.unwrap().is_empty());
    // Pages: one at a time, the next after the last of the one before.
    let first = repo.rooms_of("alice", None, 1).await.unwrap();
    assert_eq!(names(first.clone()), ["room 2"]);
    let second = repo.rooms_of("alice", Some(first[0].id), 1).await.unwrap();
    assert_eq!(names(second.clone()), ["room 1"]);
    assert!(
        repo.rooms_of("alice", Some(second[0].id), 1)
            .await
            .unwrap()
            .is_empty()
    );
    // Closing is an update of the document; a closed room is not open.
    assert_eq!(repo.open_rooms_of("bob").await.unwrap(), 1);
    let closed = Room {
        closed_at: Some(9),
        ..b.clone()
    };
    repo.update_room(&closed).await.unwrap();
    assert_eq!(repo.room(b.id).await.unwrap(), Some(closed));
    assert_eq!(repo.open_rooms_of("bob").await.unwrap(), 0);
    // A room's recordings, newest first.
    let (r1, r2) = (
        recording(11, "bob", Status::Completed),
        recording(12, "bob", Status::Completed),
    );
    repo.add_room_recording(b.id, r1.id).await.unwrap();
    repo.add_room_recording(b.id, r2.id).await.unwrap();
    assert_eq!(repo.room_recordings(b.id).await.unwrap(), [r2.id, r1.id]);
    assert!(repo.room_recordings(a.id).await.unwrap().is_empty());
}

async fn nodes_contract(repo: &Repo) {
    use tapedeck_core::cluster::{NodeCpu, NodeInfo};
    let node = |id: &str, at: i64| NodeInfo {
        id: id.into(),
        internal_url: format!("http://{id}.internal:8080"),
        public_url: format!("https://{id}.example"),
        version: "0.1.0".into(),
        started_at: at,
        heartbeat_at: at,
        cpu: NodeCpu {
            budget: 1.6,
            reserved: 0.4,
            used: 0.2,
        },
        live_sessions: 1,
        jobs_held: 2,
        draining: false,
        alive: false,
    };
    let t = 1_000_000;
    assert_eq!(
        repo.claim_node(&node("n1", t), "run-a", 10_000)
            .await
            .unwrap(),
        Ok(())
    );
    // Another process with the same id while the first heartbeats: refused.
    let held = repo
        .claim_node(&node("n1", t + 3_000), "run-b", 10_000)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(held.heartbeat_age_ms, 3_000);
    assert!(
        repo.heartbeat_node(&node("n1", t + 5_000), "run-a")
            .await
            .unwrap()
    );
    // The same run claiming again (a restart of its heartbeat) keeps it.
    assert_eq!(
        repo.claim_node(&node("n1", t + 6_000), "run-a", 10_000)
            .await
            .unwrap(),
        Ok(())
    );
    // Once its heartbeat is older than the timeout, a new run takes it,
    // and the old one's heartbeats are refused from then on.
    assert_eq!(
        repo.claim_node(&node("n1", t + 16_001), "run-b", 10_000)
            .await
            .unwrap(),
        Ok(())
    );
    assert!(
        !repo
            .heartbeat_node(&node("n1", t + 17_000), "run-a")
            .await
            .unwrap()
    );
    assert_eq!(
        repo.claim_node(&node("n2", t), "run-c", 10_000)
            .await
            .unwrap(),
        Ok(())
    );
    let all = repo.nodes().await.unwrap();
    assert_eq!(
        all.iter()
            .map(|n| (n.id.as_str(), n.heartbeat_at))
            .collect::<Vec<_>>(),
        [("n1", t + 16_001), ("n2", t)]
    );
    assert_eq!(all[1], node("n2", t));
}

async fn jobs_contract(repo: &Repo) {
    use tapedeck_store::jobs::Job;
    let job = |id: &str, seq: i64, owner: &str, cost: i64| Job {
        id: id.into(),
        seq,
        owner: owner.into(),
        kind: "web".into(),
        cost,
        doc: format!("{{\"job\": \"{id}\"}}"),
    };
    for (i, (id, owner)) in [("a1", "ann"), ("a2", "ann"), ("a3", "ann"), ("b1", "bob")]
        .iter()
        .enumerate()
    {
        repo.enqueue(&job(id, i as i64, owner, 500)).await.unwrap();
    }
    // Queued twice: still once.
    repo.enqueue(&job("a1", 0, "ann", 500)).await.unwrap();
    assert_eq!(repo.queued_jobs(None).await.unwrap(), 4);
    assert_eq!(repo.queued_jobs(Some("ann")).await.unwrap(), 3);
    assert_eq!(repo.job_position("a1").await.unwrap(), Some(1));
    assert_eq!(repo.job_position("b1").await.unwrap(), Some(4));
    assert_eq!(repo.job_position("zz").await.unwrap(), None);
    // Nothing fits a node with less free than a job costs.
    assert_eq!(repo.claim("n1", 499, 10, 1_000).await.unwrap(), None);
    // Ann's first, then bob's (never served) before ann's second.
    let order = [
        repo.claim("n1", 500, 10, 1_000).await.unwrap().unwrap(),
        repo.claim("n2", 500, 11, 1_000).await.unwrap().unwrap(),
        repo.claim("n1", 500, 12, 1_000).await.unwrap().unwrap(),
    ];
    assert_eq!(order[0], job("a1", 0, "ann", 500));
    assert_eq!(
        order.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(),
        ["a1", "b1", "a2"]
    );
    // n1's leases are renewed; n2's lapses and its job is queued again,
    // to be claimed before ann's third (bob was served longer ago).
    assert_eq!(repo.renew_leases("n1", 5_000).await.unwrap(), 2);
    assert_eq!(
        repo.take_back_lapsed(2_000).await.unwrap(),
        vec!["b1".to_string()]
    );
    assert_eq!(
        repo.claim("n3", 500, 20, 9_000).await.unwrap().unwrap().id,
        "b1"
    );
    // A draining node hands one back; a finished one goes.
    assert!(repo.hand_back("a2", "n1").await.unwrap());
    assert!(!repo.hand_back("a2", "n1").await.unwrap());
    assert!(repo.finish_job("a1").await.unwrap());
    // A node with no browser free claims no web recording.
    assert_eq!(
        repo.claim_fitting("n9", i64::MAX, 39, 9_000, false)
            .await
            .unwrap(),
        None
    );
    // A failed job is kept, out of the queue, saying why.
    repo.enqueue(&job("f1", 8, "fay", 500)).await.unwrap();
    assert_eq!(
        repo.job_state("f1").await.unwrap().map(|s| s.0),
        Some("queued".to_string())
    );
    let f = repo
        .claim("n9", i64::MAX, 40, 9_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(f.id, "f1", "fay was never served");
    repo.fail_job("f1", "it broke").await.unwrap();
    assert_eq!(
        repo.job_state("f1").await.unwrap(),
        Some(("failed".to_string(), "it broke".to_string()))
    );
    assert!(repo.finish_job("f1").await.unwrap());
    assert_eq!(repo.job_state("f1").await.unwrap(), None);
    // A held job cannot be withdrawn; a queued one can, once.
    assert!(!repo.withdraw_job("b1").await.unwrap());
    repo.enqueue(&job("c1", 9, "cat", 500)).await.unwrap();
    assert!(repo.withdraw_job("c1").await.unwrap());
    assert!(!repo.withdraw_job("c1").await.unwrap());
    let rest: Vec<String> = [
        repo.claim("n1", 500, 30, 9_000).await.unwrap(),
        repo.claim("n1", 500, 31, 9_000).await.unwrap(),
        repo.claim("n1", 500, 32, 9_000).await.unwrap(),
    ]
    .into_iter()
    .flatten()
    .map(|j| j.id)
    .collect();
    assert_eq!(rest, ["a2", "a3"]);
    for id in ["a2", "a3", "b1"] {
        assert!(repo.finish_job(id).await.unwrap());
    }
    assert_eq!(repo.queued_jobs(None).await.unwrap(), 0);
}

async fn outbox_contract(repo: &Repo) {
    use tapedeck_store::outbox::Delivery;
    // A shared secret is the first one offered, for every node.
    assert_eq!(repo.shared_secret("k", "first").await.unwrap(), "first");
    assert_eq!(repo.shared_secret("k", "second").await.unwrap(), "first");
    // One holder of a lease at a time; it renews; another takes it once
    // it lapsed.
    assert!(repo.try_lease("retention", "n1", 100, 1_000).await.unwrap());
    assert!(!repo.try_lease("retention", "n2", 500, 1_500).await.unwrap());
    assert!(repo.try_lease("retention", "n1", 900, 2_000).await.unwrap());
    assert!(
        !repo
            .try_lease("retention", "n2", 1_999, 3_000)
            .await
            .unwrap()
    );
    assert!(
        repo.try_lease("retention", "n2", 2_001, 3_000)
            .await
            .unwrap()
    );
    repo.drop_lease("retention", "n1").await.unwrap();
    assert!(
        !repo
            .try_lease("retention", "n1", 2_002, 3_000)
            .await
            .unwrap()
    );
    repo.drop_lease("retention", "n2").await.unwrap();
    assert!(
        repo.try_lease("retention", "n1", 2_003, 3_000)
            .await
            .unwrap()
    );

    let d = |id: &str| Delivery {
        id: id.into(),
        url: "http://hooks/x".into(),
        kind: "recording.completed".into(),
        body: format!("{{\"id\": \"{id}\"}}"),
        attempts: 0,
    };
    repo.queue_webhooks(&[d("w1"), d("w2")], 10).await.unwrap();
    repo.queue_webhooks(&[d("w1")], 11).await.unwrap();
    // Not due before its time; claimed once.
    assert!(
        repo.claim_webhooks("n1", 9, 100, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let got = repo.claim_webhooks("n1", 10, 100, 1).await.unwrap();
    assert_eq!(got, vec![d("w1")]);
    let got = repo.claim_webhooks("n2", 20, 100, 10).await.unwrap();
    assert_eq!(got, vec![d("w2")]);
    assert!(
        repo.claim_webhooks("n2", 20, 100, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // w1 failed once: due again later; w2's node died: its lease lapses
    // and another node takes it.
    repo.webhook_retry("w1", 1, 200).await.unwrap();
    let got = repo.claim_webhooks("n3", 150, 300, 10).await.unwrap();
    assert_eq!(got, vec![d("w2")]);
    let got = repo.claim_webhooks("n3", 200, 300, 10).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].id.as_str(), got[0].attempts), ("w1", 1));
    repo.webhook_done("w1").await.unwrap();
    repo.webhook_done("w2").await.unwrap();
    assert!(
        repo.claim_webhooks("n3", 10_000, 20_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn contract(repo: Repo) {
    outbox_contract(&repo).await;
    jobs_contract(&repo).await;
    nodes_contract(&repo).await;
    rooms_contract(&repo).await;
    for n in 1..=5 {
        let owner = if n % 2 == 0 { "bob" } else { "alice" };
        let status = if n == 5 {
            Status::Recording
        } else {
            Status::Completed
        };
        repo.insert(&recording(n, owner, status)).await.unwrap();
    }
    // Round trip of the whole document.
    let r3 = recording(3, "alice", Status::Completed);
    assert_eq!(repo.get(r3.id).await.unwrap(), Some(r3.clone()));
    assert_eq!(repo.get(RecordingId::from_parts(1, 1)).await.unwrap(), None);

    // Own recordings, newest first, with a cursor.
    let f = ListFilter {
        owner: Some("alice".into()),
        limit: 2,
        ..Default::default()
    };
    let page1 = repo.list(&f).await.unwrap();
    assert_eq!(
        page1
            .iter()
            .map(|r| r.title.clone().unwrap())
            .collect::<Vec<_>>(),
        ["r5", "r3"]
    );
    let page2 = repo
        .list(&ListFilter {
            before: Some(page1[1].id),
            ..f.clone()
        })
        .await
        .unwrap();
    assert_eq!(
        page2
            .iter()
            .map(|r| r.title.clone().unwrap())
            .collect::<Vec<_>>(),
        ["r1"]
    );
    let all = repo
        .list(&ListFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 5);
    let rec = repo
        .list(&ListFilter {
            status: Some(Status::Recording),
            kind: Some(SourceKind::Frames),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(rec.len(), 1);
    let none = repo
        .list(&ListFilter {
            kind: Some(SourceKind::Web),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(none.is_empty());

    // Update, counts and usage.
    let mut r5 = recording(5, "alice", Status::Recording);
    assert_eq!(repo.count_active(Some("alice")).await.unwrap(), 1);
    assert_eq!(repo.count_active(None).await.unwrap(), 1);
    r5.status = Status::Processing;
    r5.size_bytes = Some(10_000);
    repo.update(&r5).await.unwrap();
    assert_eq!(repo.count_active(None).await.unwrap(), 0);
    assert_eq!(
        repo.in_statuses(&[Status::Processing]).await.unwrap(),
        vec![r5.clone()]
    );
    assert_eq!(repo.usage_bytes("alice").await.unwrap(), 100 + 300 + 10_000);
    assert_eq!(repo.usage_bytes("nobody").await.unwrap(), 0);

    // Retention and delete.
    let expired = repo.expired(1_700_000_000_000 + 2500, 10).await.unwrap();
    assert_eq!(expired.len(), 2);
    assert!(repo.delete(expired[0].id).await.unwrap());
    assert!(!repo.delete(expired[0].id).await.unwrap());
    assert_eq!(repo.get(expired[0].id).await.unwrap(), None);

    // Keys: found by hash, revoked keys are not.
    let key = ApiKey {
        id: "key_1".into(),
        user: "alice".into(),
        admin: true,
        created_at: 5,
        revoked: false,
    };
    repo.create_key(&key, "hash1").await.unwrap();
    assert_eq!(repo.find_key("hash1").await.unwrap(), Some(key.clone()));
    assert_eq!(repo.find_key("hash2").await.unwrap(), None);
    assert!(repo.revoke_key("key_1").await.unwrap());
    assert_eq!(repo.find_key("hash1").await.unwrap(), None);
    assert!(repo.list_keys().await.unwrap()[0].revoked);
    accounts_contract(&repo).await;
    metadata_contract(&repo).await;
}

/// `metadata.KEY=VALUE` filters: the database decides as
/// `MetadataFilter::matches` does.
async fn metadata_contract(repo: &Repo) {
    use tapedeck_core::search::parse_metadata_filter;
    let docs = [
        serde_json::json!({"lead": "42", "team": "sales"}),
        serde_json::json!({"lead": 42, "won": true}),
        serde_json::json!({"lead": 4.5, "won": false, "team": "Sales"}),
        serde_json::json!({"deep": {"lead": "42"}, "tags": ["42"]}),
    ];
    let mut all = vec![];
    for (i, doc) in docs.into_iter().enumerate() {
        let mut r = recording(100 + i as u64, "meta", Status::Completed);
        r.metadata = doc;
        repo.insert(&r).await.unwrap();
        all.push(r);
    }
    for filters in [
        vec![("lead", "42")],
        vec![("lead", "4.5")],
        vec![("won", "true")],
        vec![("won", "false")],
        vec![("team", "sales")],
        vec![("lead", "42"), ("team", "sales")],
        vec![("lead", "43")],
        vec![("tags", "42")],
        vec![("deep", "42")],
    ] {
        let metadata: Vec<_> = filters
            .iter()
            .map(|(k, v)| parse_metadata_filter(&format!("metadata.{k}"), v).unwrap())
            .collect();
        let got: Vec<_> = repo
            .list(&ListFilter {
                owner: Some("meta".into()),
                limit: 10,
                metadata: metadata.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        let want: Vec<_> = all
            .iter()
            .rev()
            .filter(|r| metadata.iter().all(|m| m.matches(r)))
            .map(|r| r.id)
            .collect();
        assert_eq!(got, want, "{filters:?}");
    }
    // The first filter finds both the string and the number 42.
    let lead = parse_metadata_filter("metadata.lead", "42").unwrap();
    assert_eq!(all.iter().filter(|r| lead.matches(r)).count(), 2);
}

async fn accounts_contract(repo: &Repo) {
    use tapedeck_store::accounts::{Session, User};
    let ann = User {
        name: "ann".into(),
        password_hash: "$argon2id$first".into(),
        admin: false,
        created_at: 1,
    };
    assert!(repo.put_user(&ann, false).await.unwrap());
    // Creating again does not overwrite; replacing does.
    let changed = User {
        password_hash: "$argon2id$second".into(),
        admin: true,
        ..ann.clone()
    };
    assert!(!repo.put_user(&changed, false).await.unwrap());
    assert_eq!(repo.user("ann").await.unwrap(), Some(ann.clone()));
    assert!(repo.put_user(&changed, true).await.unwrap());
    assert_eq!(repo.user("ann").await.unwrap(), Some(changed.clone()));
    assert_eq!(repo.user("nobody").await.unwrap(), None);
    assert_eq!(repo.users().await.unwrap(), [changed]);

    let session = |via: &str, key_id: Option<&str>, expires_at| Session {
        user: "ann".into(),
        admin: false,
        via: via.into(),
        key_id: key_id.map(String::from),
        created_at: 10,
        expires_at,
    };
    let by_password = session("password", None, 1_000);
    repo.create_session("s1", &by_password).await.unwrap();
    assert_eq!(
        repo.session("s1", 999).await.unwrap(),
        Some(by_password.clone())
    );
    assert_eq!(repo.session("s1", 1_000).await.unwrap(), None, "expired");
    assert_eq!(repo.session("s2", 0).await.unwrap(), None);
    // A session opened with an API key ends when the key is revoked.
    let key = ApiKey {
        id: "key_2".into(),
        user: "ann".into(),
        admin: false,
        created_at: 5,
        revoked: false,
    };
    repo.create_key(&key, "hash2").await.unwrap();
    let by_key = session("api_key", Some("key_2"), 1_000);
    repo.create_session("s2", &by_key).await.unwrap();
    assert_eq!(repo.session("s2", 0).await.unwrap(), Some(by_key));
    repo.revoke_key("key_2").await.unwrap();
    assert_eq!(repo.session("s2", 0).await.unwrap(), None, "key revoked");
    // Signing out ends one; a new password or a deleted account ends all.
    repo.create_session("s3", &session("oidc", None, 5_000))
        .await
        .unwrap();
    repo.end_session("s3").await.unwrap();
    assert_eq!(repo.session("s3", 0).await.unwrap(), None);
    repo.create_session("s4", &session("password", None, 5_000))
        .await
        .unwrap();
    assert_eq!(repo.sweep_sessions(2_000).await.unwrap(), 2, "s1 and s2");
    let key3 = ApiKey {
        id: "key_3".into(),
        ..key.clone()
    };
    repo.create_key(&key3, "hash3").await.unwrap();
    assert!(repo.delete_user("ann").await.unwrap());
    assert_eq!(repo.find_key("hash3").await.unwrap(), None, "keys revoked");
    assert_eq!(repo.session("s4", 0).await.unwrap(), None);
    assert_eq!(repo.user("ann").await.unwrap(), None);
}

#[tokio::test]
async fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let repo = Repo::connect(&url).await.unwrap();
    assert_eq!(repo.backend(), "sqlite");
    // No other node to signal on SQLite.
    assert!(repo.listen(&["tapedeck_test"]).await.unwrap().is_none());
    repo.signal("tapedeck_test", "hello").await.unwrap();
    contract(repo).await;
    // Reopening migrates idempotently and keeps the data (the 4 of the
    // contract that were not deleted, and its 4 with metadata).
    let again = Repo::connect(&url).await.unwrap();
    assert_eq!(
        again
            .list(&ListFilter {
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap()
            .len(),
        8
    );
}

#[tokio::test]
async fn postgres() {
    let url = tapedeck_testkit::postgres_url();
    let repo = Repo::connect(&url).await.unwrap();
    assert_eq!(repo.backend(), "postgres");
    // A signal reaches a listener of its channel, not of another.
    let mut l = repo.listen(&["tapedeck_test"]).await.unwrap().unwrap();
    repo.signal("elsewhere", "no").await.unwrap();
    repo.signal("tapedeck_test", "hello").await.unwrap();
    let got = tokio::time::timeout(std::time::Duration::from_secs(10), l.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, ("tapedeck_test".to_string(), "hello".to_string()));
    contract(repo).await;
}

/// Nodes claiming at once from one PostgreSQL: every job is claimed
/// exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn claims_at_once_never_take_one_job_twice() {
    let repo = Repo::connect(&tapedeck_testkit::postgres_url())
        .await
        .unwrap();
    for i in 0..60 {
        let job = tapedeck_store::jobs::Job {
            id: format!("j{i}"),
            seq: i,
            owner: format!("user{}", i % 5),
            kind: "web".into(),
            cost: 100,
            doc: "{}".into(),
        };
        repo.enqueue(&job).await.unwrap();
    }
    let claimers = (0..6).map(|n| {
        let repo = repo.clone();
        tokio::spawn(async move {
            let mut mine = vec![];
            while let Some(j) = repo.claim(&format!("n{n}"), 1000, 1, 10_000).await.unwrap() {
                mine.push(j.id);
            }
            mine
        })
    });
    let mut all: Vec<String> = vec![];
    for c in claimers {
        all.extend(c.await.unwrap());
    }
    all.sort();
    let mut want: Vec<String> = (0..60).map(|i| format!("j{i}")).collect();
    want.sort();
    assert_eq!(all, want);
}

#[tokio::test]
async fn bad_url_is_a_clear_error() {
    let e = Repo::connect("mysql://x").await.unwrap_err();
    assert!(e.to_string().contains("sqlite://"), "{e}");
}
