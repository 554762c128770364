//! The store's invariants, run against both backends: every test below exists once for SQLite
//! (a file in a temp dir) and once for PostgreSQL (a fresh database on the server from
//! `scripts/postgres.sh`; the PostgreSQL tests fail, never skip, when
//! `HOLDPOINT_TEST_POSTGRES_URL` is unset).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use holdpoint_store::*;
use jiff::{SignedDuration, Timestamp};
use tokio::sync::Barrier;

/// A database the tests can open several times (restart, second replica).
struct TestDb {
    url: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    async fn sqlite() -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}", dir.path().join("holdpoint.db").display());
        Ok(Self {
            url,
            _dir: Some(dir),
        })
    }

    async fn postgres() -> Result<Self> {
        Ok(Self {
            url: testing::fresh_postgres_url().await?,
            _dir: None,
        })
    }

    async fn open(&self) -> Result<Store> {
        Ok(Store::open(&self.url).await?)
    }
}

fn t0() -> Timestamp {
    "2026-12-02T10:00:00Z".parse().unwrap()
}

fn at(secs: i64) -> Timestamp {
    t0() + SignedDuration::from_secs(secs)
}

fn requester(user: &str) -> Requester {
    Requester {
        username: user.into(),
        groups: vec!["agents".into()],
        uid: Some(format!("uid-{user}")),
        extra: BTreeMap::from([("scopes".to_string(), vec!["a".to_string(), "b".to_string()])]),
        authenticator: "static-token".into(),
        source: Some("10.0.0.7:51000".into()),
    }
}

fn voter(user: &str) -> Voter {
    Voter {
        username: user.into(),
        groups: vec![],
    }
}

fn new_approval(user: &str, body: &str) -> NewApproval {
    NewApproval {
        requester: requester(user),
        request: RequestBinding::new(
            "PATCH",
            "/apis/apps/v1/namespaces/prod/deployments/web",
            "fieldManager=kubectl&force=true",
            Some("application/apply-patch+yaml".into()),
            vec![("accept".into(), "application/json".into())],
            body.as_bytes().to_vec(),
        ),
        summary: RequestSummary {
            verb: "patch".into(),
            group: "apps".into(),
            version: "v1".into(),
            resource: "deployments".into(),
            subresource: None,
            namespace: Some("prod".into()),
            name: Some("web".into()),
        },
        kubectl_command: Some("kubectl apply".into()),
        kubectl_session: Some("sess-1".into()),
        rule: "mutations-need-approval".into(),
        reviewers: Reviewers {
            users: vec!["alice".into(), "bob".into(), "carol".into()],
            groups: vec!["sre".into()],
        },
        quorum: 1,
        mode: ApprovalMode::Execute,
        created_at: t0(),
        expires_at: at(3600),
    }
}

async fn create(store: &Store, new: &NewApproval) -> Result<Approval> {
    let (a, attached) = store.create_or_attach(new).await?;
    ensure!(!attached, "expected a new approval");
    Ok(a)
}

async fn approved(store: &Store, mode: ApprovalMode) -> Result<Approval> {
    let mut n = new_approval("agent", &format!("{mode}"));
    n.mode = mode;
    let a = create(store, &n).await?;
    let r = store
        .vote(&a.id, &voter("alice"), Decision::Approve, None, at(1))
        .await?;
    ensure!(r.approval.state == ApprovalState::Approved);
    Ok(r.approval)
}

fn states(events: &[ApprovalEvent]) -> Vec<(Option<ApprovalState>, ApprovalState)> {
    events.iter().map(|e| (e.from_state, e.to_state)).collect()
}

// ------------------------------------------------------------------ approvals

async fn create_stores_everything_and_records_creation(db: TestDb) -> Result<()> {
    let store = db.open().await?;
    let new = new_approval("agent", "spec: {replicas: 3}");
    let a = create(&store, &new).await?;
    ensure!(a.id.starts_with("ap-") && a.id.len() == 13, "id {}", a.id);
    let got = store.get_approval(&a.id).await?.context("stored")?;
    assert_eq!(got, a);
    assert_eq!(got.state, ApprovalState::Pending);
    assert_eq!(got.requester, new.requester);
    assert_eq!(got.request, new.request);
    assert_eq!(got.request.body, b"spec: {replicas: 3}");
    assert_eq!(got.summary, new.summary);
    assert_eq!(got.reviewers, new.reviewers);
    assert_eq!(got.kubectl_command.as_deref(), Some("kubectl apply"));
    assert_eq!(got.kubectl_session.as_deref(), Some("sess-1"));
    assert_eq!(got.rule, "mutations-need-approval");
    assert_eq!(got.quorum, 1);
    assert_eq!(got.mode, ApprovalMode::Execute);
    assert_eq!(got.created_at, t0());
    assert_eq!(got.expires_at, at(3600));
    assert_eq!(got.decided_at, None);
    assert_eq!(got.result, None);
    assert_eq!(got.binding_key, new.request.binding_key("agent"));
    let events = store.approval_events(&a.id).await?;
    assert_eq!(states(&events), [(None, ApprovalState::Pending)]);
    assert_eq!(events[0].actor, "agent");
    assert_eq!(events[0].seq, 1);
    assert_eq!(events[0].at, t0());
    assert!(store.get_approval("ap-doesnotexist").await?.is_none());
    Ok(())
}

async fn invalid_approvals_are_refused_and_nothing_is_stored(db: TestDb) -> Result<()> {
    let store = db.open().await?;
    let mut tampered = new_approval("agent", "a");
    tampered.request.body = b"b".to_vec();
    let mut no_reviewers = new_approval("agent", "a");
    no_reviewers.reviewers = Reviewers::default();
    let mut quorum0 = new_approval("agent", "a");
    quorum0.quorum = 0;
    let mut already_expired = new_approval("agent", "a");
    already_expired.expires_at = t0();
    for bad in [tampered, no_reviewers, quorum0, already_expired] {
        let err = store.create_or_attach(&bad).await.unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    }
    assert!(
        store
            .list_approvals(&ApprovalFilter::default())
            .await?
            .is_empty()
    );
    Ok(())
}

async fn identical_request_attaches_and_different_ones_do_not(db: TestDb) -> Result<()> {
    let store = db.open().await?;
    let first = create(&store, &new_approval("agent", "x")).await?;
    let (again, attached) = store.create_or_attach(&new_approval("agent", "x")).await?;
    assert!(attached);
    assert_eq!(again.id, first.id);
    // Another caller, body, query or content type is another request.
    let other_user = create(&store, &new_approval("agent2", "x")).await?;
    let other_body = create(&store, &new_approval("agent", "y")).await?;
    let mut q = new_approval("agent", "x");
    q.request = RequestBinding::new(
        "PATCH",
        &q.request.path,
        "dryRun=All",
        q.request.content_type.clone(),
        vec![],
        b"x".to_vec(),
    );
    let other_query = create(&store, &q).await?;
    let mut ct = new_approval("agent", "x");
    ct.request.content_type = Some("application/merge-patch+json".into());
    let other_ct = create(&store, &ct).await?;
    let ids: HashSet<_> = [
        &first.id,
        &other_user.id,
        &other_body.id,
        &other_query.id,
        &other_ct.id,
    ]
    .into_iter()
    .collect();
    assert_eq!(ids.len(), 5);
    // Once decided, an identical request makes a new approval.
    store
        .vote(&first.id, &voter("bob"), Decision::Deny, Some("no"), at(5))
        .await?;
    let (fresh, attached) = store.create_or_attach(&new_approval("agent", "x")).await?;
    assert!(!attached);
    assert_ne!(fresh.id, first.id);
    // An approved one (not yet executed) still attaches.
    store
        .vote(&fresh.id, &voter("bob"), Decision::Approve, None, at(6))
        .await?;
    let (same, attached) = store.create_or_attach(&new_approval("agent", "x")).await?;
    assert!(attached);
    assert_eq!(same.id, fresh.id);
    assert_eq!(same.state, ApprovalState::Approved);
    Ok(())
}

async fn twenty_concurrent_identical_creates_yield_one_row(db: TestDb) -> Result<()> {
    let store = db.open().await?;
    let start = Arc::new(Barrier::new(20));
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (store, start) = (store.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                store.create_or_attach(&new_approval("agent", "same")).await
            })
        })
        .collect();
    let mut ids = HashSet::new();
    let mut created = 0;
    for t in tasks {
        let (a, attached) = t.await??;
        ids.insert(a.id);
        if !attached {
            created += 1;
        }
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(created, 1);
    assert_eq!(
        store
            .list_approvals(&ApprovalFilter::default())
            .await?
            .len(),
        1
    );
    Ok(())
}

async fn an_expired_pending_request_is_not_attached_to(db: TestDb) -> Result<()> {
    let store = db.open().await?;
    let old = create(&store, &new_approval("agent", "x")).await?;
    let mut later = new_approval("agent", "x");
    later.created_at = at(3600);
    later.expires_at = at(7200);
    let (new, attached) = store.create_or_attach(&later).await?;
    assert!(!attached);
    assert_ne!(new.id, old.id);
    let old = store.get_approval(&old.id).await?.context("old")?;
    assert_eq!(old.state, ApprovalState::Expired);
    Ok(())
}

async fn the_requester_cannot_approve_or_deny_its_own_request(db: TestDb) -> Result<()> {
    let store = db.open().await?;
    let mut n = new_approval("alice", "x");
    // alice is a reviewer of this rule and in the reviewers' group: still refused.
    n.requester.groups.push("sre".into());
    let a = create(&store, &n).await?;
    let me = Voter {
        username: "alice".into(),
        groups: vec!["sre".into()],
    };
    for (d, r) in [(Decision::Approve, None), (Decision::Deny, Some("mine"))] {
        let err = store.vote(&a.id, &me, d, r, at(1)).await.unwrap_err();
        assert!(matches!(err, StoreError::SelfApproval), "{err}");
    }
    assert!(store.approval_votes(&a.id).await?.is_empty());
    assert_eq!(
        store.get_approval(&a.id).await?.context("a")?.state,
        ApprovalState::Pending
    );
    Ok(())
}

async fn only_reviewers_vote_and_groups_count(db: TestDb) -> Result<()> {
    let store = db.open().await?;
    let a = create(&store, &new_approval("agent", "x")).await?;
    let err = store
        .vote(&a.id, &voter("mallory"), Decision::Approve, None, at(1))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotAReviewer { .. }), "{err}");
    let sre = Voter {
        username: "dave".into(),
        groups: vec!["sre".into()],
    };
    let r = store
        .vote(&a.id, &sre, Decision::Approve, None, at(2))
        .await?;
    assert_eq!(r.approval.state, ApprovalState::Approved);
    let err = store
        .vote("ap-missing", &sre, Decision::Approve, None, at(2))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    Ok(())
}

async fn quorum_needs_distinct_reviewers(db: TestDb) -> Result<()> {
    let store = db.open().await?;
    let mut n = new_approval("agent", "x");
    n.quorum = 2;
    let a = create(&store, &n).await?;
    let r1 = store
        .vote(&a.id, &voter("alice"), Decision::Approve, Some("ok"), at(1))
        .await?;
    assert!(r1.counted);
    assert_eq!(r1.approvals, 1);
    assert_eq!(r1.approval.state, ApprovalState::Pending);
    // The same reviewer again (even with another decision) does not count.
    let r2 = store
        .vote(&a.id, &voter("alice"), Decision::Approve, None, at(2))
        .await?;
    assert!(!r2.counted);
    assert_eq!(r2.approvals, 1);
    assert_eq!(r2.approval.state, ApprovalState::Pending);
    let r3 = store
        .vote(
            &a.id,
            &voter("alice"),
            Decision::Deny,
            Some("changed my mind"),
            at(3),
        )
        .await?;
    assert!(!r3.counted);
    assert_eq!(r3.approval.state, ApprovalState::Pending);
    let r4 = store
        .vote(&a.id, &voter("bob"), Decision::Approve, None, at(4))
        .await?;
    assert!(r4.counted);
    assert_eq!(r4.approvals, 2);
    assert_eq!(r4.approval.state, ApprovalState::Approved);
    assert_eq!(r4.approval.decided_at, Some(at(4)));
    let votes = store.approval_votes(&a.id).await?;
    assert_eq!(
        votes
            .iter()
            .map(|v| (v.reviewer.as_str(), v.decision))
            .collect::<Vec<_>>(),
        [("alice", Decision::Approve), ("bob", Decision::Approve)]
    );
    assert_eq!(votes[0].reason.as_deref(), Some("ok"));
    let events = store.approval_events(&a.id).await?;
    assert_eq!(
        states(&events),
        [
            (None, ApprovalState::Pending),
            (Some(ApprovalState::Pending), ApprovalState::Approved)
        ]
    );
    assert_eq!(events[1].actor, "bob");
    assert_eq!(events[1].at, at(4));
    assert!(events[1].reason.as_deref().unwrap_or("").contains("2 of 2"));
    // Decided: further votes are refused.
    let err = store
        .vote(&a.id, &voter("carol"), Decision::Approve, None, at(5))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::WrongState {
                state: ApprovalState::Approved,
                ..
            }
        ),
        "{err}"
    );
    Ok(())
}

async fn a_denial_needs_a_reason_and_ends_the_approval(db: TestDb) -> Result<()> {
    let store = db.open().await?;
    let mut n = new_approval("agent", "x");
    n.quorum = 2;
    let a = create(&store, &n).await?;
    store
        .vote(&a.id, &voter("alice"), Decision::Approve, None, at(1))
        .await?;
    for reason in [None, Some(""), Some("   ")] {
        let err = store
            .vote(&a.id, &voter("bob"), Decision::Deny, reason, at(2))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::ReasonRequired), "{err}");
    }
    let r = store
        .vote(
            &a.id,
            &voter("bob"),
            Decision::Deny,
            Some("not in prod today"),
            at(3),
        )
        .await?;
    assert_eq!(r.approval.state, ApprovalState::Denied);
    assert_eq!(r.approval.decided_at, Some(at(3)));
    let events = store.approval_events(&a.id).await?;
    let last = events.last().context("event")?;
    assert_eq!(
        (last.from_state, last.to_state),
        (Some(ApprovalState::Pending), ApprovalState::Denied)
    );
    assert_eq!(last.actor, "bob");
    assert_eq!(last.reason.as_deref(), Some("not in prod today"));
    let err = store
        .vote(&a.id, &voter("carol"), Decision::Approve, None, at(4))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::WrongState {
                state: ApprovalState::Denied,
                ..
            }
        ),
        "{err}"
    );
    assert!(!store.begin_execute(&a.id, "gw-1", at(5)).await?);
    Ok(())
}

async fn concurrent_votes_reaching_quorum_approve_exactly_once(db: TestDb) -> Result<()> {
    let store = db.open().await?;
    for round in 0..20 {
        let mut n = new_approval("agent", &format!("round {round}"));
        n.quorum = 2;
        let a = create(&store, &n).await?;
        let start = Arc::new(Barrier::new(3));
        let tasks: Vec<_> = ["alice", "bob", "carol"]
            .into_iter()
            .map(|who| {
                let (store, id, start) = (store.clone(), a.id.clone(), start.clone());
                tokio::spawn(async move {
                    start.wait().await;
                    store
                        .vote(&id, &voter(who), Decision::Approve, None, at(1))
                        .await
                })
            })
            .collect();
        let mut ok = 0;
        for t in tasks {
            match t.await? {
                Ok(r) if r.counted => ok += 1,
                Ok(_) => {}
                // The third vote may arrive after the quorum: refused, not counted.
                Err(StoreError::WrongState {
                    state: ApprovalState::Approved,
                    ..
                }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        ensure!((2..=3).contains(&ok), "{ok} votes counted");
        let a = store.get_approval(&a.id).await?.context("a")?;
        assert_eq!(a.state, ApprovalState::Approved);
        let approvals = states(&store.approval_events(&a.id).await?)
            .into_iter()
            .filter(|s| s.1 == ApprovalState::Approved)
            .count();
        assert_eq!(approvals, 1, "one approval transition");
    }
    Ok(())
}

async fn begin_execute_has_exactly_one_winner(db: TestDb) -> Result<()> {
    let store = db.open().await?;
    for round in 0..20 {
        let mut n = new_approval("agent", &format!("race {round}"));
        n.created_at = at(round);
        let a = create(&store, &n).await?;
        store
            .vote(&a.id, &voter("alice"), Decision::Approve, None, at(round))
            .await?;
        let start = Arc::new(Barrier::new(8));
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let (store, id, start) = (store.clone(), a.id.clone(), start.clone());
                tokio::spawn(async move {
                    start.wait().await;
                    store.begin_execute(&id, &format!("gw-{i}"), at(2)).await
                })
            })
            .collect();
        let mut winners = 0;
        for t in tasks {
            if t.await?? {
                winners += 1;
            }
        }
        assert_eq!(winners, 1, "round {round}");
        let executing = states(&store.approval_events(&a.id).await?)
            .into_iter()
            .filter(|s| s.1 == ApprovalState::Executing)
            .count();
        assert_eq!(executing, 1, "round {round}");
    }
    let a = approved(&store, ApprovalMode::Execute).await?;
    assert!(store.begin_execute(&a.id, "gw-0", at(2)).await?);
    let a = store.get_approval(&a.id).await?.context("a")?;
    assert_eq!(a.state, ApprovalState::Executing);
    assert!(a.executor.as_deref().is_some_and(|e| e.starts_with("gw-")));
    // Once executing, nobody else wins either.
    assert!(!store.begin_execute(&a.id, "gw-late", at(3)).await?);
    let body = vec![b'x'; MAX_RESULT_BODY + 10];
    let result = UpstreamResult::new(201, Some("application/json".into()), body);
    assert!(result.truncated);
    let done = store
        .finish_execute(&a.id, ExecutionOutcome::Executed, Some(&result), at(4))
        .await?;
    assert_eq!(done.state, ApprovalState::Executed);
    let stored = done.result.context("result")?;
    assert_eq!(stored.status, 201);
    assert_eq!(stored.content_type.as_deref(), Some("application/json"));
    assert_eq!(stored.body.len(), MAX_RESULT_BODY);
    assert!(stored.truncated);
    // Finishing twice is refused.
    let err = store
        .finish_execute(&a.id, ExecutionOutcome::Executed, None, at(5))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::WrongState {
                state: ApprovalState::Executed,
                ..
            }
        ),
        "{err}"
    );
    assert!(!store.begin_execute(&a.id, "gw-1", at(6)).await?);
    assert_eq!(
        states(&store.approval_events(&a.id).await?),
        [
            (None, ApprovalState::Pending),
            (Some(ApprovalState::Pending), ApprovalState::Approved),
            (Some(ApprovalState::Approved), ApprovalState::Executing),
            (Some(ApprovalState::Executing), ApprovalState::Executed),
        ]
    );
    Ok(())
}

async fn oversized_result_body_is_bounded_by_the_store(db: TestDb) -> Result<()> {
    let store = db.open().await?;
    let a = approved(&store, ApprovalMode::Execute).await?;
    assert!(store.begin_execute(&a.id, "gw", at(2)).await?);
    let raw = UpstreamResult {
        status: 500,
        content_type: None,
        body: vec![0; MAX_RESULT_BODY * 2],
        truncated: false,
    };
    let done = store
        .finish_execute(&a.id, ExecutionOutcome::Failed, Some(&raw), at(3))
        .await?;
    assert_eq!(done.state, ApprovalState::Failed);
    let r = done.result.context("result")?;
    assert_eq!(
        (r.status, r.body.len(), r.truncated),
        (500, MAX_RESULT_BODY, true)
    );
    Ok(())
}

async fn pending_and_grant_approvals_are_not_executed(db: TestDb) -> Result<()> {
    let store = db.open().await?;
    let pending = create(&store, &new_approval("agent", "p")).await?;
    assert!(!store.begin_execute(&pending.id, "gw", at(1)).await?);
    let grant = approved(&store, ApprovalMode::Grant).await?;
    assert!(!store.begin_execute(&grant.id, "gw", at(2)).await?);
    let err = store
        .begin_execute("ap-missing", "gw", at(2))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    Ok(())
}

async fn recover_after_crash_marks_executing_unknown_and_never_resends(db: TestDb) -> Result<()> {
    let store = db.open().await?;
    let mine = approved(&store, ApprovalMode::Execute).await?;
    assert!(store.begin_execute(&mine.id, "gw-a", at(2)).await?);
    let mut n = new_approval("agent", "other replica");
    n.quorum = 1;
    let theirs = create(&store, &n).await?;
    store
        .vote(&theirs.id, &voter("bob"), Decision::Approve, None, at(1))
        .await?;
    assert!(store.begin_execute(&theirs.id, "gw-b", at(2)).await?);
    // Restart of gw-a only touches gw-a's.
    drop(store);
    let store = db.open().await?;
    assert_eq!(
        store.recover_after_crash(Some("gw-a"), at(10)).await?,
        vec![mine.id.clone()]
    );
    let mine = store.get_approval(&mine.id).await?.context("mine")?;
    assert_eq!(mine.state, ApprovalState::Unknown);
    assert_eq!(
        store
            .get_approval(&theirs.id)
            .await?
            .context("theirs")?
            .state,
        ApprovalState::Executing
    );
    assert!(!store.begin_execute(&mine.id, "gw-a", at(11)).await?);
    let err = store
        .finish_execute(&mine.id, ExecutionOutcome::Executed, None, at(11))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::WrongState {
                state: ApprovalState::Unknown,
                ..
            }
        ),
        "{err}"
    );
    let last = store
        .approval_events(&mine.id)
        .await?
        .pop()
        .context("event")?;
    assert_eq!(
        (last.from_state, last.to_state),
        (Some(ApprovalState::Executing), ApprovalState::Unknown)
    );
    assert_eq!(last.actor, "holdpoint");
    assert!(last.reason.as_deref().unwrap_or("").contains("not resent"));
    // Without an executor name: every executing approval.
    assert_eq!(
        store.recover_after_crash(None, at(12)).await?,
        vec![theirs.id.clone()]
    );
    assert!(store.recover_after_crash(None, at(13)).await?.is_empty());
    // An identical request after `unknown` is a new approval (the old one is final).
    let (fresh, attached) = store
        .create_or_attach(&new_approval("agent", "execute"))
        .await?;
    assert!(!attached);
    assert_ne!(fresh.id, mine.id);
    Ok(())
}

async fn grant_is_consumed_once_within_its_ttl(db: TestDb) -> Result<()> {
    let store = db.open().await?;
    let g = approved(&store, ApprovalMode::Grant).await?;
    // Another caller's identical request has another key: nothing to consume.
    let other_key = g.request.binding_key("someone-else");
    assert!(store.consume_grant(&other_key, at(2)).await?.is_none());
    let start = Arc::new(Barrier::new(10));
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (store, key, start) = (store.clone(), g.binding_key.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                store.consume_grant(&key, at(3)).await
            })
        })
        .collect();
    let mut used = 0;
    for t in tasks {
        if let Some(a) = t.await?? {
            assert_eq!(a.state, ApprovalState::Executed);
            used += 1;
        }
    }
    assert_eq!(used, 1);
    assert!(store.consume_grant(&g.binding_key, at(4)).await?.is_none());
    let last = store.approval_events(&g.id).await?.pop().context("event")?;
    assert_eq!(
        (last.from_state, last.to_state),
        (Some(ApprovalState::Approved), ApprovalState::Executed)
    );
    assert_eq!(last.actor, "agent");
    // A pending grant cannot be consumed.
    let mut n = new_approval("agent", "pending grant");
    n.mode = ApprovalMode::Grant;
    let p = create(&store, &n).await?;
    assert!(store.consume_grant(&p.binding_key, at(5)).await?.is_none());
    Ok(())
}

async fn an_expired_grant_is_not_consumed(db: TestDb) -> Result<()> {
    let store = db.open().await?;
    let g = approved(&store, ApprovalMode::Grant).await?;
    assert!(
        store
            .consume_grant(&g.binding_key, at(3600))
            .await?
            .is_none()
    );
    assert_eq!(
        store.get_approval(&g.id).await?.context("g")?.state,
        ApprovalState::Expired
    );
    Ok(())
}

async fn expiry(db: TestDb) -> Result<()> {
    let store = db.open().await?;
    let pending = create(&store, &new_approval("agent", "pending")).await?;
    let grant = approved(&store, ApprovalMode::Grant).await?;
    let exec = approved(&store, ApprovalMode::Execute).await?;
    let mut short = new_approval("agent", "later");
    short.expires_at = at(7200);
    let later = create(&store, &short).await?;
    assert!(store.expire_due(at(3599)).await?.is_empty());
    let mut expired = store.expire_due(at(3600)).await?;
    expired.sort();
    let mut want = vec![pending.id.clone(), grant.id.clone()];
    want.sort();
    assert_eq!(expired, want);
    for id in &want {
        let a = store.get_approval(id).await?.context("a")?;
        assert_eq!(a.state, ApprovalState::Expired);
        assert_eq!(a.decided_at, Some(at(3600)));
        let last = store.approval_events(id).await?.pop().context("event")?;
        assert_eq!(last.actor, "holdpoint");
        assert_eq!(last.to_state, ApprovalState::Expired);
    }
    // An approved execute-mode approval is sent, not expired; a later one waits.
    assert_eq!(
        store.get_approval(&exec.id).await?.context("e")?.state,
        ApprovalState::Approved
    );
    assert_eq!(
        store.get_approval(&later.id).await?.context("l")?.state,
        ApprovalState::Pending
    );
    // A vote after the time to live expires it and is refused.
    let err = store
        .vote(
            &later.id,
            &voter("alice"),
            Decision::Approve,
            None,
            at(7200),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Expired(_)), "{err}");
    assert_eq!(
        store.get_approval(&later.id).await?.context("l")?.state,
        ApprovalState::Expired
    );
    assert!(store.approval_votes(&later.id).await?.is_empty());
    Ok(())
}

async fn only_the_requester_cancels_and_only_while_pending(db: TestDb) -> Result<()> {
    let store = db.open().await?;
    let a = create(&store, &new_approval("agent", "x")).await?;
    let err = store.cancel(&a.id, "alice", None, at(1)).await.unwrap_err();
    assert!(matches!(err, StoreError::NotRequester(_)), "{err}");
    let c = store
        .cancel(&a.id, "agent", Some("wrong namespace"), at(2))
        .await?;
    assert_eq!(c.state, ApprovalState::Cancelled);
    assert_eq!(c.decided_at, Some(at(2)));
    let last = store.approval_events(&a.id).await?.pop().context("event")?;
    assert_eq!(
        (last.actor.as_str(), last.reason.as_deref()),
        ("agent", Some("wrong namespace"))
    );
    let err = store.cancel(&a.id, "agent", None, at(3)).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::WrongState {
                state: ApprovalState::Cancelled,
                ..
            }
        ),
        "{err}"
    );
    let err = store
        .vote(&a.id, &voter("alice"), Decision::Approve, None, at(3))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::WrongState { .. }), "{err}");
    let ap = approved(&store, ApprovalMode::Execute).await?;
    let err = store
        .cancel(&ap.id, "agent", None, at(3))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::WrongState {
                state: ApprovalState::Approved,
                ..
            }
        ),
        "{err}"
    );
    Ok(())
}

async fn list_filters_and_orders_newest_first(db: TestDb) -> Result<()> {
    let store = db.open().await?;
    let mut ids = Vec::new();
    for i in 0..5i64 {
        let mut n = new_approval(if i % 2 == 0 { "agent" } else { "bot" }, &i.to_string());
        n.created_at = at(i);
        if i == 4 {
            n.summary.namespace = Some("dev".into());
        }
        ids.push(create(&store, &n).await?.id);
    }
    store
        .vote(&ids[0], &voter("alice"), Decision::Deny, Some("no"), at(10))
        .await?;
    let all = store.list_approvals(&ApprovalFilter::default()).await?;
    assert_eq!(
        all.iter().map(|a| a.id.clone()).collect::<Vec<_>>(),
        ids.iter().rev().cloned().collect::<Vec<_>>()
    );
    let pending = store
        .list_approvals(&ApprovalFilter {
            state: Some(ApprovalState::Pending),
            ..Default::default()
        })
        .await?;
    assert_eq!(pending.len(), 4);
    let bot = store
        .list_approvals(&ApprovalFilter {
            requester: Some("bot".into()),
            ..Default::default()
        })
        .await?;
    assert_eq!(
        bot.iter().map(|a| a.id.clone()).collect::<Vec<_>>(),
        [ids[3].clone(), ids[1].clone()]
    );
    let dev = store
        .list_approvals(&ApprovalFilter {
            namespace: Some("dev".into()),
            ..Default::default()
        })
        .await?;
    assert_eq!(dev.len(), 1);
    assert_eq!(dev[0].id, ids[4]);
    let same_request = store
        .list_approvals(&ApprovalFilter {
            binding_key: Some(dev[0].binding_key.clone()),
            ..Default::default()
        })
        .await?;
    assert_eq!(
        same_request
            .iter()
            .map(|a| a.id.clone())
            .collect::<Vec<_>>(),
        [ids[4].clone()]
    );
    let two = store
        .list_approvals(&ApprovalFilter {
            limit: 2,
            ..Default::default()
        })
        .await?;
    assert_eq!(two.len(), 2);
    let none = store
        .list_approvals(&ApprovalFilter {
            state: Some(ApprovalState::Denied),
            requester: Some("bot".into()),
            ..Default::default()
        })
        .await?;
    assert!(none.is_empty());
    Ok(())
}

async fn wait_for_change_wakes_on_a_decision_and_times_out(db: TestDb) -> Result<()> {
    let store = db.open().await?;
    // Notifications, not polling, must wake the waiter.
    store.set_poll_interval(Duration::from_secs(30));
    let a = create(&store, &new_approval("agent", "x")).await?;
    let started = std::time::Instant::now();
    let timed_out = store
        .wait_for_change(&a.id, ApprovalState::Pending, Duration::from_millis(200))
        .await?;
    assert_eq!(timed_out.state, ApprovalState::Pending);
    assert!(started.elapsed() >= Duration::from_millis(200));
    let waiter = {
        let (store, id) = (store.clone(), a.id.clone());
        tokio::spawn(async move {
            store
                .wait_for_change(&id, ApprovalState::Pending, Duration::from_secs(20))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    store
        .vote(&a.id, &voter("alice"), Decision::Approve, None, at(1))
        .await?;
    let woke = waiter.await??;
    assert_eq!(woke.state, ApprovalState::Approved);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    Ok(())
}

/// Another replica (a second `Store` on the same database) decides: the waiter sees it through
/// PostgreSQL LISTEN/NOTIFY at once, or through polling on SQLite.
async fn a_waiter_sees_another_replicas_decision(db: TestDb) -> Result<()> {
    let one = db.open().await?;
    let two = db.open().await?;
    let notified = one.backend_name() == "postgres";
    one.set_poll_interval(if notified {
        Duration::from_secs(30)
    } else {
        Duration::from_millis(100)
    });
    let a = create(&one, &new_approval("agent", "x")).await?;
    let waiter = {
        let (store, id) = (one.clone(), a.id.clone());
        tokio::spawn(async move {
            store
                .wait_for_change(&id, ApprovalState::Pending, Duration::from_secs(20))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    two.vote(&a.id, &voter("bob"), Decision::Deny, Some("no"), at(1))
        .await?;
    let woke = waiter.await??;
    assert_eq!(woke.state, ApprovalState::Denied);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    Ok(())
}

async fn state_survives_a_restart(db: TestDb) -> Result<()> {
    let store = db.open().await?;
    let pending = create(&store, &new_approval("agent", "pending")).await?;
    let done = approved(&store, ApprovalMode::Execute).await?;
    let token = store
        .create_token(&new_token("deadbeef", "ci", None), t0())
        .await?;
    store
        .set_freeze(true, FreezeMode::Hold, Some("incident 42"), "alice", at(1))
        .await?;
    store.close().await;
    drop(store);
    let store = db.open().await?;
    assert_eq!(
        store.get_approval(&pending.id).await?.context("pending")?,
        pending
    );
    assert_eq!(
        store.get_approval(&done.id).await?.context("done")?.state,
        ApprovalState::Approved
    );
    // Still decidable after the restart, and identical requests still attach.
    let (same, attached) = store
        .create_or_attach(&new_approval("agent", "pending"))
        .await?;
    assert!(attached);
    assert_eq!(same.id, pending.id);
    let r = store
        .vote(&pending.id, &voter("carol"), Decision::Approve, None, at(2))
        .await?;
    assert_eq!(r.approval.state, ApprovalState::Approved);
    assert_eq!(store.approval_events(&pending.id).await?.len(), 2);
    assert_eq!(
        store
            .lookup_token_by_hash(&token.sha256, at(2))
            .await?
            .map(|t| t.id),
        Some(token.id)
    );
    let f = store.freeze().await?;
    assert!(f.on);
    assert_eq!(f.mode, FreezeMode::Hold);
    assert_eq!(f.reason.as_deref(), Some("incident 42"));
    assert_eq!(f.by, "alice");
    assert_eq!(f.at, Some(at(1)));
    Ok(())
}

async fn debug_output_never_shows_request_or_result_bodies(db: TestDb) -> Result<()> {
    let store = db.open().await?;
    let secret = "c3VwZXItc2VjcmV0LXBhc3N3b3Jk";
    let a = create(
        &store,
        &new_approval("agent", &format!("data: {{password: {secret}}}")),
    )
    .await?;
    let dbg = format!(
        "{a:?} {:?}",
        UpstreamResult::new(200, None, secret.as_bytes().to_vec())
    );
    assert!(!dbg.contains(secret), "{dbg}");
    assert!(!format!("{store:?}").contains("postgres://"));
    Ok(())
}

// ------------------------------------------------------------------ tokens

fn new_token(tag: &str, user: &str, expires: Option<Timestamp>) -> NewToken {
    NewToken {
        sha256: sha256_hex(tag.as_bytes()),
        username: user.into(),
        groups: vec!["ci".into(), "deployers".into()],
        uid: Some("u-1".into()),
        description: Some(format!("token {tag}")),
        expires_at: expires,
        created_by: "admin".into(),
    }
}

async fn tokens_lifecycle(db: TestDb) -> Result<()> {
    let store = db.open().await?;
    let a = store
        .create_token(&new_token("a", "ci", None), t0())
        .await?;
    let b = store
        .create_token(&new_token("b", "ci", Some(at(60))), t0())
        .await?;
    let c = store
        .create_token(&new_token("c", "other", None), t0())
        .await?;
    assert!(a.id.starts_with("tk-"));
    let found = store
        .lookup_token_by_hash(&sha256_hex(b"a"), at(1))
        .await?
        .context("a")?;
    assert_eq!(found, a);
    assert_eq!(found.groups, ["ci", "deployers"]);
    // Expiry is exclusive: refused from the expiry instant on.
    assert!(
        store
            .lookup_token_by_hash(&b.sha256, at(59))
            .await?
            .is_some()
    );
    assert!(
        store
            .lookup_token_by_hash(&b.sha256, at(60))
            .await?
            .is_none()
    );
    assert!(
        store
            .lookup_token_by_hash(&sha256_hex(b"nope"), at(1))
            .await?
            .is_none()
    );
    // Revoke by id.
    assert_eq!(
        store
            .revoke_tokens(
                &TokenSelector::Id(a.id.clone()),
                "admin",
                Some("leaked"),
                at(2)
            )
            .await?,
        vec![a.id.clone()]
    );
    assert!(
        store
            .lookup_token_by_hash(&a.sha256, at(3))
            .await?
            .is_none()
    );
    assert!(
        store
            .revoke_tokens(&TokenSelector::Id(a.id.clone()), "admin", None, at(4))
            .await?
            .is_empty()
    );
    let err = store
        .revoke_tokens(
            &TokenSelector::Id("tk-missing".into()),
            "admin",
            None,
            at(4),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    // Revoke by user: every token of that user, not others'.
    assert_eq!(
        store
            .revoke_tokens(&TokenSelector::User("ci".into()), "admin", None, at(5))
            .await?,
        vec![b.id.clone()]
    );
    assert!(
        store
            .lookup_token_by_hash(&c.sha256, at(6))
            .await?
            .is_some()
    );
    let list = store.list_tokens().await?;
    assert_eq!(list.len(), 3);
    let a2 = list.iter().find(|t| t.id == a.id).context("listed")?;
    assert_eq!(a2.revoked_at, Some(at(2)));
    assert!(!a2.is_valid_at(at(3)));
    // Changes are recorded with who and why.
    let events = store.store_events(Some(&a.id), 10).await?;
    assert_eq!(
        events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
        ["token.revoke", "token.create"]
    );
    assert_eq!(events[0].actor, "admin");
    assert_eq!(events[0].reason.as_deref(), Some("leaked"));
    assert_eq!(events[0].at, at(2));
    Ok(())
}

async fn invalid_or_duplicate_tokens_are_refused(db: TestDb) -> Result<()> {
    let store = db.open().await?;
    let mut bad = new_token("x", "ci", None);
    bad.sha256 = "ABCDEF".repeat(10) + "ABCD";
    assert!(matches!(
        store.create_token(&bad, t0()).await.unwrap_err(),
        StoreError::Invalid(_)
    ));
    bad.sha256 = "zz".repeat(32);
    assert!(matches!(
        store.create_token(&bad, t0()).await.unwrap_err(),
        StoreError::Invalid(_)
    ));
    let expired = new_token("y", "ci", Some(t0()));
    assert!(matches!(
        store.create_token(&expired, t0()).await.unwrap_err(),
        StoreError::Invalid(_)
    ));
    store
        .create_token(&new_token("dup", "ci", None), t0())
        .await?;
    let err = store
        .create_token(&new_token("dup", "ci2", None), t0())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Database(_)), "{err}");
    assert_eq!(store.list_tokens().await?.len(), 1);
    assert_eq!(
        store.store_events(None, 100).await?.len(),
        1,
        "refused changes leave no event"
    );
    Ok(())
}

async fn settings_and_freeze(db: TestDb) -> Result<()> {
    let store = db.open().await?;
    assert_eq!(store.freeze().await?, Freeze::default());
    assert!(store.get_setting("x").await?.is_none());
    let v = serde_json::json!({"a": [1, 2]});
    store
        .set_setting("x", &v, "alice", Some("why"), t0())
        .await?;
    store
        .set_setting("x", &serde_json::json!(3), "bob", None, at(1))
        .await?;
    let s = store.get_setting("x").await?.context("x")?;
    assert_eq!(
        (s.value, s.updated_by.as_str(), s.updated_at),
        (serde_json::json!(3), "bob", at(1))
    );
    let f = store
        .set_freeze(true, FreezeMode::Deny, Some("release"), "alice", at(2))
        .await?;
    assert_eq!(store.freeze().await?, f);
    let off = store
        .set_freeze(false, FreezeMode::Deny, None, "bob", at(3))
        .await?;
    assert!(!store.freeze().await?.on);
    assert_eq!(store.freeze().await?, off);
    let events = store.store_events(Some("freeze"), 10).await?;
    assert_eq!(events.len(), 2);
    assert_eq!(
        (events[0].actor.as_str(), events[1].actor.as_str()),
        ("bob", "alice")
    );
    assert_eq!(events[1].reason.as_deref(), Some("release"));
    Ok(())
}

async fn bad_urls_are_refused_without_echoing_them(_db: TestDb) -> Result<()> {
    for url in ["mysql://u:hunter2@h/db", "", "hunter2"] {
        let err = Store::open(url).await.unwrap_err();
        assert!(matches!(err, StoreError::InvalidUrl(_)), "{err}");
        assert!(!err.to_string().contains("hunter2"));
    }
    Ok(())
}

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() -> anyhow::Result<()> {
                    super::$name(super::TestDb::sqlite().await?).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() -> anyhow::Result<()> {
                    super::$name(super::TestDb::postgres().await?).await
                }
            )*
        }
    };
}

both_backends!(
    create_stores_everything_and_records_creation,
    invalid_approvals_are_refused_and_nothing_is_stored,
    identical_request_attaches_and_different_ones_do_not,
    twenty_concurrent_identical_creates_yield_one_row,
    an_expired_pending_request_is_not_attached_to,
    the_requester_cannot_approve_or_deny_its_own_request,
    only_reviewers_vote_and_groups_count,
    quorum_needs_distinct_reviewers,
    a_denial_needs_a_reason_and_ends_the_approval,
    concurrent_votes_reaching_quorum_approve_exactly_once,
    begin_execute_has_exactly_one_winner,
    oversized_result_body_is_bounded_by_the_store,
    pending_and_grant_approvals_are_not_executed,
    recover_after_crash_marks_executing_unknown_and_never_resends,
    grant_is_consumed_once_within_its_ttl,
    an_expired_grant_is_not_consumed,
    expiry,
    only_the_requester_cancels_and_only_while_pending,
    list_filters_and_orders_newest_first,
    wait_for_change_wakes_on_a_decision_and_times_out,
    a_waiter_sees_another_replicas_decision,
    state_survives_a_restart,
    debug_output_never_shows_request_or_result_bodies,
    tokens_lifecycle,
    invalid_or_duplicate_tokens_are_refused,
    settings_and_freeze,
    bad_urls_are_refused_without_echoing_them,
);
