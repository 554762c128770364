//! The audit log's store side on both backends: the chain, sessions, checkpoints, concurrent
//! appenders (replicas), pruning, packing the events of before packs, and `verify_audit` against
//! every kind of tampering done with plain SQL on the SQLite file and the PostgreSQL database
//! (by someone who also knows the pack format: `Raw::rewrite`).

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use holdpoint_store::audit::{EventContent, GENESIS_HASH, event_hash};
use holdpoint_store::pack::{self, PackEntry};
use holdpoint_store::verify::PRUNE_KIND;
use holdpoint_store::*;
use jiff::{SignedDuration, Timestamp};

struct TestDb {
    url: String,
    dir: tempfile::TempDir,
}

impl TestDb {
    async fn sqlite() -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}", dir.path().join("holdpoint.db").display());
        Ok(Self { url, dir })
    }

    async fn postgres() -> Result<Self> {
        Ok(Self {
            url: testing::fresh_postgres_url().await?,
            dir: tempfile::tempdir()?,
        })
    }

    async fn open(&self) -> Result<Store> {
        Ok(Store::open(&self.url).await?)
    }

    fn signer(&self) -> Result<AuditSigner> {
        Ok(AuditSigner::load_or_create(
            &self.dir.path().join("audit.key"),
        )?)
    }

    /// A plain connection to the same database, for tampering.
    async fn raw(&self) -> Result<Raw> {
        Ok(if self.url.starts_with("sqlite:") {
            Raw::Sqlite(sqlx::SqlitePool::connect(&self.url).await?)
        } else {
            Raw::Pg(sqlx::PgPool::connect(&self.url).await?)
        })
    }
}

enum Raw {
    Sqlite(sqlx::SqlitePool),
    Pg(sqlx::PgPool),
}

#[derive(Clone)]
enum Val {
    I(i64),
    S(String),
    B(Vec<u8>),
    /// NULL bytes.
    NoBytes,
}

impl Raw {
    async fn exec(&self, sql: &str, binds: &[Val]) -> Result<u64> {
        macro_rules! run {
            ($pool:expr) => {{
                let mut q = sqlx::query(sql);
                for b in binds {
                    q = match b.clone() {
                        Val::I(i) => q.bind(i),
                        Val::S(s) => q.bind(s),
                        Val::B(b) => q.bind(b),
                        Val::NoBytes => q.bind(None::<Vec<u8>>),
                    };
                }
                q.execute($pool).await?.rows_affected()
            }};
        }
        Ok(match self {
            Raw::Sqlite(p) => run!(p),
            Raw::Pg(p) => run!(p),
        })
    }

    /// Every stored event in pack order, decoded from the payloads with plain SQL.
    async fn events(&self) -> Result<Vec<AuditEvent>> {
        const SQL: &str = "SELECT first_seq, payload FROM audit_packs ORDER BY first_seq";
        let rows: Vec<(i64, Vec<u8>)> = match self {
            Raw::Sqlite(p) => sqlx::query_as(SQL).fetch_all(p).await?,
            Raw::Pg(p) => sqlx::query_as(SQL).fetch_all(p).await?,
        };
        let mut out = Vec::new();
        for (first, payload) in rows {
            out.extend(pack::decode(first, &payload, false)?);
        }
        Ok(out)
    }

    /// Rewrites the audit log as someone with write access to the database and the pack format
    /// could: `edit` gets every event in order and changes, removes, inserts or reorders them;
    /// they are then packed again, `per_pack` events a pack, with plain SQL.
    async fn rewrite(
        &self,
        per_pack: usize,
        edit: impl FnOnce(&mut Vec<AuditEvent>),
    ) -> Result<()> {
        let mut events = self.events().await?;
        edit(&mut events);
        self.exec("DELETE FROM audit_packs", &[]).await?;
        self.exec("DELETE FROM audit_pack_keys", &[]).await?;
        for chunk in events.chunks(per_pack) {
            let entries: Vec<_> = chunk.iter().map(PackEntry::of).collect();
            let p = pack::encode(&entries)?;
            self.exec(
                "INSERT INTO audit_packs (first_seq, last_seq, min_at, max_at, events, bytes, \
                 payload) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    Val::I(p.first_seq),
                    Val::I(p.last_seq),
                    Val::I(p.min_at),
                    Val::I(p.max_at),
                    Val::I(p.events),
                    Val::I(p.bytes),
                    Val::B(p.payload),
                ],
            )
            .await?;
            for s in chunk
                .iter()
                .map(|e| e.session_id.as_str())
                .collect::<std::collections::BTreeSet<_>>()
            {
                self.exec(
                    "INSERT INTO audit_pack_keys (key, first_seq) VALUES ($1, $2)",
                    &[Val::S(format!("s{s}")), Val::I(p.first_seq)],
                )
                .await?;
            }
        }
        Ok(())
    }
}

/// The position of event `seq` in a list of events starting at 1.
fn nth(seq: i64) -> usize {
    usize::try_from(seq - 1).unwrap_or(0)
}

fn t0() -> Timestamp {
    "2026-12-02T10:00:00Z".parse().unwrap()
}

fn at(secs: i64) -> Timestamp {
    t0() + SignedDuration::from_secs(secs)
}

fn event(n: i64, user: &str, session: SessionKey) -> NewAuditEvent {
    NewAuditEvent {
        audit_id: format!("req-{n}"),
        kind: "request".into(),
        at: at(n),
        username: Some(user.into()),
        session,
        event: format!("{{\"auditID\":\"req-{n}\",\"verb\":\"get\"}}"),
        request_body: (n % 2 == 0).then(|| format!("request {n}").into_bytes()),
        response_body: Some(format!("response {n}").into_bytes()),
    }
}

const GAP: Duration = Duration::from_secs(60);

/// Appends `n` events (one per second, user `agent`, one per call) and signs a checkpoint
/// after every `every`th.
async fn fill(store: &Store, signer: &AuditSigner, n: i64, every: i64) -> Result<()> {
    for i in 1..=n {
        store
            .append_audit(&[event(i, "agent", SessionKey::Gap("agent".into()))], GAP)
            .await?;
        if i % every == 0 {
            store.audit_checkpoint(signer, at(i)).await?;
        }
    }
    Ok(())
}

async fn all(store: &Store) -> Result<Vec<AuditEvent>> {
    Ok(store
        .audit_events(&AuditFilter {
            limit: 10_000,
            ..Default::default()
        })
        .await?)
}

async fn verify(store: &Store, signer: &AuditSigner) -> Result<VerifyReport> {
    Ok(store
        .verify_audit(std::slice::from_ref(signer.public_key()), None)
        .await?)
}

fn first_problem(r: &VerifyReport) -> Result<&Problem> {
    r.problems.first().context("verify found nothing")
}

// ------------------------------------------------------------------ the chain

async fn appends_form_one_chain_with_a_head(db: TestDb) -> Result<()> {
    let store = db.open().await?;
    assert_eq!(store.audit_head().await?.seq, 0);
    let batch: Vec<_> = (1..=3)
        .map(|i| event(i, "agent", SessionKey::Fixed("k-1".into())))
        .collect();
    let appended = store.append_audit(&batch, GAP).await?;
    assert_eq!(
        appended.iter().map(|a| a.seq).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    let more = store
        .append_audit(&[event(4, "agent", SessionKey::Fixed("k-1".into()))], GAP)
        .await?;
    assert_eq!(more[0].seq, 4);
    let rows = all(&store).await?;
    assert_eq!(rows.len(), 4);
    let mut prev = GENESIS_HASH.to_vec();
    for (row, new) in rows.iter().zip(batch.iter().chain([&event(
        4,
        "agent",
        SessionKey::Fixed("k-1".into()),
    )])) {
        assert_eq!(
            row.prev_hash, prev,
            "event {} links to the one before",
            row.seq
        );
        assert_eq!(
            row.hash,
            event_hash(
                &prev,
                &EventContent {
                    audit_id: &new.audit_id,
                    kind: &new.kind,
                    at: new.at,
                    username: new.username.as_deref(),
                    session_id: "k-1",
                    event: &new.event,
                    request_body: new.request_body.as_deref(),
                    response_body: new.response_body.as_deref(),
                }
            )
            .to_vec()
        );
        assert_eq!(row.request_body, new.request_body);
        assert_eq!(row.response_body, new.response_body);
        assert_eq!(row.event, new.event);
        prev = row.hash.clone();
    }
    let head = store.audit_head().await?;
    assert_eq!((head.seq, head.hash), (4, prev));
    // Filters and paging.
    let page = store
        .audit_events(&AuditFilter {
            after_seq: Some(1),
            limit: 2,
            without_bodies: true,
            ..Default::default()
        })
        .await?;
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 3]);
    assert!(page.iter().all(|e| e.response_body.is_none()));
    let by_id = store
        .audit_events(&AuditFilter {
            audit_id: Some("req-3".into()),
            ..Default::default()
        })
        .await?;
    assert_eq!(by_id.len(), 1);
    let since = store
        .audit_events(&AuditFilter {
            since: Some(at(3)),
            until: Some(at(4)),
            ..Default::default()
        })
        .await?;
    assert_eq!(since.iter().map(|e| e.seq).collect::<Vec<_>>(), [3]);
    let r = store.verify_audit(&[], None).await?;
    ensure!(r.holds(), "{r:#?}");
    assert!(r.checkpoints_unverified);
    assert_eq!((r.events, r.first_seq, r.last_seq), (4, Some(1), Some(4)));
    Ok(())
}

async fn gap_sessions_follow_each_caller(db: TestDb) -> Result<()> {
    let store = db.open().await?;
    let gap = |user: &str| SessionKey::Gap(user.into());
    let e = |n: i64, secs: i64, user: &str, s: SessionKey| {
        let mut e = event(n, user, s);
        e.at = at(secs);
        e
    };
    let r = store
        .append_audit(
            &[
                e(1, 0, "alice", gap("alice")),
                e(2, 10, "bob", gap("bob")),
                e(3, 30, "alice", gap("alice")),
                e(4, 40, "alice", SessionKey::Fixed("k-x".into())),
            ],
            GAP,
        )
        .await?;
    assert_eq!(
        r[0].session_id, r[2].session_id,
        "within the gap: same session"
    );
    assert_ne!(r[0].session_id, r[1].session_id, "another caller");
    assert_eq!(r[3].session_id, "k-x");
    // Next batch: still within alice's gap (30 s + 60 s), then after it.
    let r2 = store
        .append_audit(
            &[
                e(5, 80, "alice", gap("alice")),
                e(6, 200, "alice", gap("alice")),
            ],
            GAP,
        )
        .await?;
    assert_eq!(r2[0].session_id, r[0].session_id);
    assert_ne!(
        r2[1].session_id, r[0].session_id,
        "after the gap: a new session"
    );
    // Another replica continues the same open session.
    let other = db.open().await?;
    let r3 = other
        .append_audit(&[e(7, 230, "alice", gap("alice"))], GAP)
        .await?;
    assert_eq!(r3[0].session_id, r2[1].session_id);
    let in_session = store
        .audit_events(&AuditFilter {
            session_id: Some(r[0].session_id.clone()),
            ..Default::default()
        })
        .await?;
    assert_eq!(
        in_session.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [1, 3, 5]
    );
    Ok(())
}

/// Two replicas (two `Store`s on one database) appending at once: one chain, no gaps, no fork.
async fn concurrent_replicas_append_to_one_chain(db: TestDb) -> Result<()> {
    let one = db.open().await?;
    let two = db.open().await?;
    let mut tasks = Vec::new();
    for t in 0..8i64 {
        let store = if t % 2 == 0 { one.clone() } else { two.clone() };
        tasks.push(tokio::spawn(async move {
            for i in 0..25i64 {
                let n = t * 100 + i;
                let batch: Vec<_> = (0..(i % 3 + 1))
                    .map(|k| event(n * 10 + k, "agent", SessionKey::Gap(format!("u{t}"))))
                    .collect();
                store.append_audit(&batch, GAP).await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let rows = all(&one).await?;
    let expected: i64 = (0..8)
        .map(|_| (0..25).map(|i| i % 3 + 1).sum::<i64>())
        .sum();
    assert_eq!(rows.len() as i64, expected);
    assert!(rows.iter().enumerate().all(|(i, e)| e.seq == i as i64 + 1));
    let r = one.verify_audit(&[], None).await?;
    ensure!(r.holds(), "{r:#?}");
    Ok(())
}

async fn checkpoints_sign_the_head_once(db: TestDb) -> Result<()> {
    let store = db.open().await?;
    let signer = db.signer()?;
    assert!(
        store.audit_checkpoint(&signer, t0()).await?.is_none(),
        "empty log"
    );
    fill(&store, &signer, 10, 4).await?;
    let cps = store.audit_checkpoints(0).await?;
    assert_eq!(cps.iter().map(|c| c.seq).collect::<Vec<_>>(), [4, 8]);
    assert!(cps.iter().all(|c| signer.public_key().verifies(c)));
    let cp = store
        .audit_checkpoint(&signer, at(11))
        .await?
        .context("new events: a checkpoint")?;
    assert_eq!(cp.seq, 10);
    assert_eq!(cp.hash, store.audit_head().await?.hash);
    assert!(store.audit_checkpoint(&signer, at(12)).await?.is_none());
    let r = verify(&store, &signer).await?;
    ensure!(r.holds(), "{r:#?}");
    assert_eq!((r.checkpoints, r.last_checkpoint), (3, Some(10)));
    assert_eq!(r.unsigned_tail(), 0);
    // The same key survives a restart (file); another key is not trusted.
    let again = db.signer()?;
    assert_eq!(again.public_key(), signer.public_key());
    let stranger = AuditSigner::load_or_create(&db.dir.path().join("other.key"))?;
    let r = store
        .verify_audit(std::slice::from_ref(stranger.public_key()), None)
        .await?;
    assert_eq!(first_problem(&r)?.kind, ProblemKind::Checkpoint);
    assert!(first_problem(&r)?.detail.contains("not trusted"), "{r:#?}");
    // A public key round-trips through base64 (the CLI's --public-key).
    let b64 = signer.public_key().to_base64();
    assert_eq!(&AuditPublicKey::from_base64(&b64)?, signer.public_key());
    assert!(AuditPublicKey::from_base64("not base64!").is_err());
    Ok(())
}

async fn verify_since_starts_at_a_checkpoint(db: TestDb) -> Result<()> {
    let store = db.open().await?;
    let signer = db.signer()?;
    fill(&store, &signer, 30, 10).await?;
    // Damage before the starting checkpoint is not looked at with --since ...
    db.raw()
        .await?
        .rewrite(4, |ev| ev[nth(3)].event = "edited".into())
        .await?;
    let r = store
        .verify_audit(std::slice::from_ref(signer.public_key()), Some(at(25)))
        .await?;
    ensure!(r.holds(), "{r:#?}");
    assert_eq!(r.first_seq, Some(21), "starts after checkpoint 20");
    // ... but a full walk finds it.
    let r = verify(&store, &signer).await?;
    assert_eq!(first_problem(&r)?.seq, 3);
    Ok(())
}

// ------------------------------------------------------------------ tampering

async fn tampered<F>(db: &TestDb, tamper: F) -> Result<VerifyReport>
where
    F: AsyncFnOnce(&Raw, &Store) -> Result<()>,
{
    let store = db.open().await?;
    let signer = db.signer()?;
    fill(&store, &signer, 20, 5).await?;
    let r = verify(&store, &signer).await?;
    ensure!(r.holds(), "before tampering: {r:#?}");
    let raw = db.raw().await?;
    tamper(&raw, &store).await?;
    verify(&store, &signer).await
}

async fn an_edited_body_is_found(db: TestDb) -> Result<()> {
    let r = tampered(&db, async |raw, _| {
        raw.rewrite(4, |ev| {
            ev[nth(7)].response_body = Some(b"something else".to_vec());
        })
        .await
    })
    .await?;
    let p = first_problem(&r)?;
    assert_eq!((p.seq, p.kind), (7, ProblemKind::Edited), "{r:#?}");
    Ok(())
}

async fn an_edited_event_or_user_is_found(db: TestDb) -> Result<()> {
    let r = tampered(&db, async |raw, _| {
        raw.rewrite(4, |ev| ev[nth(12)].username = Some("someone-else".into()))
            .await
    })
    .await?;
    let p = first_problem(&r)?;
    assert_eq!((p.seq, p.kind), (12, ProblemKind::Edited), "{r:#?}");
    Ok(())
}

async fn a_deleted_event_is_found(db: TestDb) -> Result<()> {
    let r = tampered(&db, async |raw, _| {
        raw.rewrite(4, |ev| ev.retain(|e| e.seq != 9)).await
    })
    .await?;
    let p = first_problem(&r)?;
    assert_eq!((p.seq, p.kind), (9, ProblemKind::Deleted), "{r:#?}");
    Ok(())
}

async fn a_deleted_and_renumbered_event_is_found(db: TestDb) -> Result<()> {
    let r = tampered(&db, async |raw, _| {
        raw.rewrite(4, |ev| {
            ev.retain(|e| e.seq != 9);
            for e in ev.iter_mut().filter(|e| e.seq > 9) {
                e.seq -= 1;
            }
        })
        .await?;
        raw.exec("UPDATE audit_chain SET seq = seq - 1", &[])
            .await?;
        Ok(())
    })
    .await?;
    let p = first_problem(&r)?;
    assert_eq!((p.seq, p.kind), (9, ProblemKind::Deleted), "{r:#?}");
    Ok(())
}

async fn swapped_events_are_found(db: TestDb) -> Result<()> {
    let r = tampered(&db, async |raw, _| {
        raw.rewrite(4, |ev| {
            ev.swap(nth(13), nth(14));
            ev[nth(13)].seq = 13;
            ev[nth(14)].seq = 14;
        })
        .await
    })
    .await?;
    let p = first_problem(&r)?;
    assert_eq!((p.seq, p.kind), (13, ProblemKind::Reordered), "{r:#?}");
    Ok(())
}

/// An insertion by someone who knows the hash function: the new event links correctly to the
/// one before, and later events are renumbered, so only the next link breaks.
async fn an_inserted_event_is_found(db: TestDb) -> Result<()> {
    let r = tampered(&db, async |raw, store| {
        let before = store
            .audit_events(&AuditFilter {
                audit_id: Some("req-11".into()),
                ..Default::default()
            })
            .await?
            .pop()
            .context("event 11")?;
        let fake = event(99, "agent", SessionKey::Fixed("s-x".into()));
        let hash = event_hash(
            &before.hash,
            &EventContent {
                audit_id: &fake.audit_id,
                kind: &fake.kind,
                at: fake.at,
                username: fake.username.as_deref(),
                session_id: "s-x",
                event: &fake.event,
                request_body: None,
                response_body: None,
            },
        );
        raw.rewrite(4, |ev| {
            for e in ev.iter_mut().filter(|e| e.seq > 11) {
                e.seq += 1;
            }
            ev.insert(
                nth(12),
                AuditEvent {
                    seq: 12,
                    audit_id: fake.audit_id.clone(),
                    kind: fake.kind.clone(),
                    at: fake.at,
                    username: Some("agent".into()),
                    session_id: "s-x".into(),
                    event: fake.event.clone(),
                    request_body: None,
                    response_body: None,
                    prev_hash: before.hash.clone(),
                    hash: hash.to_vec(),
                },
            );
        })
        .await?;
        raw.exec("UPDATE audit_chain SET seq = seq + 1", &[])
            .await?;
        Ok(())
    })
    .await?;
    let p = first_problem(&r)?;
    assert_eq!((p.seq, p.kind), (12, ProblemKind::Inserted), "{r:#?}");
    Ok(())
}

async fn an_appended_forgery_is_found(db: TestDb) -> Result<()> {
    let r = tampered(&db, async |raw, _| {
        raw.rewrite(4, |ev| {
            ev.push(AuditEvent {
                seq: 21,
                audit_id: "forged".into(),
                kind: "request".into(),
                at: Timestamp::UNIX_EPOCH,
                username: Some("agent".into()),
                session_id: "s".into(),
                event: "{}".into(),
                request_body: None,
                response_body: None,
                prev_hash: vec![1; 32],
                hash: vec![2; 32],
            });
        })
        .await
    })
    .await?;
    let p = first_problem(&r)?;
    assert_eq!(p.seq, 21, "{r:#?}");
    assert!(
        r.problems.iter().any(|p| p.kind == ProblemKind::Inserted),
        "{r:#?}"
    );
    Ok(())
}

async fn a_truncated_tail_is_found(db: TestDb) -> Result<()> {
    let r = tampered(&db, async |raw, _| {
        raw.rewrite(4, |ev| ev.truncate(16)).await
    })
    .await?;
    let p = first_problem(&r)?;
    assert_eq!((p.seq, p.kind), (17, ProblemKind::Truncated), "{r:#?}");
    // Moving the head back too: the checkpoint at 20 still covers the missing events.
    let r = tampered(&TestDb::sqlite_or_same(&db).await?, async |raw, store| {
        let keep = store
            .audit_events(&AuditFilter {
                audit_id: Some("req-16".into()),
                ..Default::default()
            })
            .await?
            .pop()
            .context("event 16")?;
        raw.rewrite(4, |ev| ev.truncate(16)).await?;
        raw.exec(
            "UPDATE audit_chain SET seq = 16, hash = $1",
            &[Val::B(keep.hash)],
        )
        .await?;
        Ok(())
    })
    .await?;
    let p = first_problem(&r)?;
    assert_eq!((p.seq, p.kind), (17, ProblemKind::Truncated), "{r:#?}");
    Ok(())
}

/// Whoever rewrites the chain consistently (recomputing every hash after an edit) still cannot
/// sign: the next checkpoint catches it.
async fn a_recomputed_chain_fails_its_checkpoint(db: TestDb) -> Result<()> {
    let r = tampered(&db, async |raw, store| {
        let rows = all(store).await?;
        let mut prev = rows[5].prev_hash.clone();
        raw.rewrite(4, |ev| {
            for (i, row) in ev.iter_mut().enumerate().skip(5) {
                if i == 5 {
                    row.event = "{\"verb\":\"nothing to see\"}".into();
                }
                row.prev_hash = prev.clone();
                row.hash = row.computed_hash(&prev).to_vec();
                prev = row.hash.clone();
            }
        })
        .await?;
        raw.exec("UPDATE audit_chain SET hash = $1", &[Val::B(prev)])
            .await?;
        Ok(())
    })
    .await?;
    let p = first_problem(&r)?;
    assert_eq!((p.seq, p.kind), (10, ProblemKind::Edited), "{r:#?}");
    assert!(p.detail.contains("checkpoint"), "{r:#?}");
    Ok(())
}

async fn a_forged_checkpoint_is_found(db: TestDb) -> Result<()> {
    let r = tampered(&db, async |raw, _| {
        raw.exec(
            "UPDATE audit_checkpoints SET signature = $1 WHERE seq = 15",
            &[Val::B(vec![7; 64])],
        )
        .await?;
        Ok(())
    })
    .await?;
    let p = first_problem(&r)?;
    assert_eq!((p.seq, p.kind), (15, ProblemKind::Checkpoint), "{r:#?}");
    Ok(())
}

// ------------------------------------------------------------------ pruning

fn prune_record(first_kept: i64) -> NewAuditEvent {
    NewAuditEvent {
        audit_id: format!("prune-{first_kept}"),
        kind: PRUNE_KIND.into(),
        at: at(1000),
        username: Some("holdpoint".into()),
        session: SessionKey::Fixed("holdpoint".into()),
        event: format!("{{\"holdpoint\":{{\"prune\":{{\"firstKept\":{first_kept}}}}}}}"),
        request_body: None,
        response_body: None,
    }
}

async fn pruning_keeps_the_rest_verifiable(db: TestDb) -> Result<()> {
    let store = db.open().await?;
    let signer = db.signer()?;
    fill(&store, &signer, 20, 5).await?;
    // Packs of three (1-3, 4-6, 7-9, ...): keeping from 8 cuts the pack 7-9.
    db.raw().await?.rewrite(3, |_| {}).await?;
    ensure!(verify(&store, &signer).await?.holds());
    assert!(
        store
            .prune_audit(8, &signer, &prune_record(9), at(1000))
            .await
            .is_err(),
        "the record must name the first event kept"
    );
    let deleted = store
        .prune_audit(8, &signer, &prune_record(8), at(1000))
        .await?;
    assert_eq!(deleted, 7);
    let rows = all(&store).await?;
    assert_eq!(rows.first().map(|e| e.seq), Some(8));
    assert_eq!(rows.last().map(|e| e.kind.as_str()), Some(PRUNE_KIND));
    let r = verify(&store, &signer).await?;
    ensure!(r.holds(), "{r:#?}");
    assert_eq!(r.first_seq, Some(8));
    // Pruning again where nothing is left before is a no-op.
    assert_eq!(
        store
            .prune_audit(8, &signer, &prune_record(8), at(1001))
            .await?,
        0
    );
    // Deleting more than the prune recorded is found.
    db.raw()
        .await?
        .rewrite(4, |ev| ev.retain(|e| e.seq >= 10))
        .await?;
    let r = verify(&store, &signer).await?;
    let p = first_problem(&r)?;
    assert_eq!(p.kind, ProblemKind::Deleted, "{r:#?}");
    Ok(())
}

/// `audit verify` while retention prunes and appends its records (a running gateway, here
/// pruning every 10 ms): never reported as tampering.
async fn verify_during_pruning_holds(db: TestDb) -> Result<()> {
    let store = db.open().await?;
    let signer = db.signer()?;
    fill(&store, &signer, 200, 50).await?;
    let pruner = {
        let store = store.clone();
        let signer = db.signer()?;
        tokio::spawn(async move {
            for keep in (2..150).step_by(2) {
                store
                    .prune_audit(keep, &signer, &prune_record(keep), at(1000))
                    .await?;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            anyhow::Ok(())
        })
    };
    let mut walks = 0;
    while !pruner.is_finished() {
        let r = verify(&store, &signer).await?;
        ensure!(r.holds(), "walk {walks} during pruning: {r:#?}");
        walks += 1;
    }
    pruner.await??;
    ensure!(walks > 3, "only {walks} walks ran during the pruning");
    ensure!(verify(&store, &signer).await?.holds());
    Ok(())
}

/// Events stored one row each (before packs) are packed when the store opens: same events,
/// chain intact, the old table emptied, appends continue the chain.
async fn legacy_rows_are_packed_on_open(db: TestDb) -> Result<()> {
    let store = db.open().await?;
    let raw = db.raw().await?;
    let mut prev = GENESIS_HASH.to_vec();
    let mut expected = Vec::new();
    for n in 1..=5 {
        let e = event(n, "agent", SessionKey::Fixed("legacy".into()));
        let mut stored = AuditEvent {
            seq: n,
            audit_id: e.audit_id,
            kind: e.kind,
            at: e.at,
            username: e.username,
            session_id: "legacy".into(),
            event: e.event,
            request_body: e.request_body,
            response_body: e.response_body,
            prev_hash: prev.clone(),
            hash: Vec::new(),
        };
        stored.hash = stored.computed_hash(&prev).to_vec();
        prev = stored.hash.clone();
        let bytes = |b: &Option<Vec<u8>>| b.clone().map_or(Val::NoBytes, Val::B);
        raw.exec(
            "INSERT INTO audit_events (seq, audit_id, kind, at, username, session_id, event, \
             request_body, response_body, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            &[
                Val::I(n),
                Val::S(stored.audit_id.clone()),
                Val::S(stored.kind.clone()),
                Val::I(stored.at.as_microsecond()),
                Val::S("agent".into()),
                Val::S(stored.session_id.clone()),
                Val::S(stored.event.clone()),
                bytes(&stored.request_body),
                bytes(&stored.response_body),
                Val::B(stored.prev_hash.clone()),
                Val::B(stored.hash.clone()),
            ],
        )
        .await?;
        expected.push(stored);
    }
    raw.exec("UPDATE audit_chain SET seq = 5, hash = $1", &[Val::B(prev)])
        .await?;
    drop(store);
    let store = db.open().await?;
    assert_eq!(all(&store).await?, expected);
    assert_eq!(
        raw.exec("DELETE FROM audit_events", &[]).await?,
        0,
        "moved, not copied"
    );
    store
        .append_audit(
            &[event(6, "agent", SessionKey::Fixed("legacy".into()))],
            GAP,
        )
        .await?;
    let in_session = store
        .audit_events(&AuditFilter {
            session_id: Some("legacy".into()),
            username: Some("agent".into()),
            ..Default::default()
        })
        .await?;
    assert_eq!(in_session.len(), 6);
    let r = store.verify_audit(&[], None).await?;
    ensure!(r.holds() && r.events == 6, "{r:#?}");
    Ok(())
}

async fn debug_output_never_shows_bodies(db: TestDb) -> Result<()> {
    let store = db.open().await?;
    let signer = db.signer()?;
    let mut e = event(1, "agent", SessionKey::Fixed("s".into()));
    e.request_body = Some(b"hunter2-secret".to_vec());
    store.append_audit(std::slice::from_ref(&e), GAP).await?;
    let rows = all(&store).await?;
    let dbg = format!("{e:?} {rows:?} {signer:?}");
    assert!(!dbg.contains("hunter2"), "{dbg}");
    Ok(())
}

impl TestDb {
    /// A second, fresh database of the same backend.
    async fn sqlite_or_same(like: &TestDb) -> Result<TestDb> {
        if like.url.starts_with("sqlite:") {
            TestDb::sqlite().await
        } else {
            TestDb::postgres().await
        }
    }
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
    appends_form_one_chain_with_a_head,
    gap_sessions_follow_each_caller,
    concurrent_replicas_append_to_one_chain,
    checkpoints_sign_the_head_once,
    verify_since_starts_at_a_checkpoint,
    an_edited_body_is_found,
    an_edited_event_or_user_is_found,
    a_deleted_event_is_found,
    a_deleted_and_renumbered_event_is_found,
    swapped_events_are_found,
    an_inserted_event_is_found,
    an_appended_forgery_is_found,
    a_truncated_tail_is_found,
    a_recomputed_chain_fails_its_checkpoint,
    a_forged_checkpoint_is_found,
    pruning_keeps_the_rest_verifiable,
    verify_during_pruning_holds,
    legacy_rows_are_packed_on_open,
    debug_output_never_shows_bodies,
);
