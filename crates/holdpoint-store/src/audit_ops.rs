// The audit log's operations, written once for both backends like `ops.rs` (which this file
// follows in each backend module, sharing its `Db`, `LOCK`, `begin`, `Pool`, `Tx`, `DbRow` and
// `Res`). Every append takes the `audit_chain` row's lock (`BEGIN IMMEDIATE` on SQLite,
// `SELECT ... FOR UPDATE` on PostgreSQL), so appends from several replicas form one chain.

use std::collections::HashMap;

use crate::audit::{
    AppendedEvent, AuditCheckpoint, AuditEvent, AuditFilter, AuditHead, AuditSigner,
    EventContent, NewAuditEvent, SessionKey, event_hash,
};

const AUDIT_COLUMNS: &str =
    "seq, audit_id, kind, at, username, session_id, event, request_body, response_body, \
     prev_hash, hash";
const AUDIT_COLUMNS_NO_BODIES: &str =
    "seq, audit_id, kind, at, username, session_id, event, NULL AS request_body, \
     NULL AS response_body, prev_hash, hash";


fn audit_event_from_row(row: &DbRow) -> Res<AuditEvent> {
    Ok(AuditEvent {
        seq: row.try_get("seq")?,
        audit_id: row.try_get("audit_id")?,
        kind: row.try_get("kind")?,
        at: from_micros(row.try_get("at")?)?,
        username: row.try_get("username")?,
        session_id: row.try_get("session_id")?,
        event: row.try_get("event")?,
        request_body: row.try_get("request_body")?,
        response_body: row.try_get("response_body")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

fn checkpoint_from_row(row: &DbRow) -> Res<AuditCheckpoint> {
    Ok(AuditCheckpoint {
        seq: row.try_get("seq")?,
        hash: row.try_get("hash")?,
        at: from_micros(row.try_get("at")?)?,
        key_id: row.try_get("key_id")?,
        signature: row.try_get("signature")?,
    })
}

async fn lock_head(tx: &mut Tx) -> Res<AuditHead> {
    let row = sqlx::query(&format!(
        "SELECT seq, hash FROM audit_chain WHERE id = 1{LOCK}"
    ))
    .fetch_one(&mut **tx)
    .await?;
    Ok(AuditHead {
        seq: row.try_get("seq")?,
        hash: row.try_get("hash")?,
    })
}

/// A row ready to insert.
struct ChainedRow<'a> {
    seq: i64,
    event: &'a NewAuditEvent,
    session_id: String,
    prev_hash: [u8; 32],
    hash: [u8; 32],
}

/// Appends `events` after the head the transaction holds locked; returns where they went and
/// leaves the new head written (not committed).
async fn append_locked(
    tx: &mut Tx,
    head: &AuditHead,
    events: &[NewAuditEvent],
    gap_micros: i64,
) -> Res<Vec<AppendedEvent>> {
    let mut prev: [u8; 32] = head
        .hash
        .as_slice()
        .try_into()
        .map_err(|_| StoreError::Corrupt("audit chain head hash".into()))?;
    let mut seq = head.seq;
    // The open gap session of each caller in this batch: (session, last time, changed).
    let mut gaps: HashMap<&str, (String, i64, bool)> = HashMap::new();
    let mut rows = Vec::with_capacity(events.len());
    for e in events {
        let at = to_micros(e.at);
        let session_id = match &e.session {
            SessionKey::Fixed(id) => id.clone(),
            SessionKey::Gap(caller) => {
                if !gaps.contains_key(caller.as_str()) {
                    let row = sqlx::query(
                        "SELECT session_id, last_at FROM audit_gap_sessions WHERE caller = $1",
                    )
                    .bind(caller)
                    .fetch_optional(&mut **tx)
                    .await?;
                    let open = match row {
                        Some(r) => (r.try_get("session_id")?, r.try_get("last_at")?, false),
                        None => (String::new(), i64::MIN, false),
                    };
                    gaps.insert(caller.as_str(), open);
                }
                let open = gaps
                    .get_mut(caller.as_str())
                    .ok_or(StoreError::Conflict("gap session cache"))?;
                if open.0.is_empty() || at.saturating_sub(open.1) > gap_micros {
                    open.0 = new_id("s")?;
                }
                open.1 = open.1.max(at);
                open.2 = true;
                open.0.clone()
            }
        };
        seq += 1;
        let hash = event_hash(
            &prev,
            &EventContent {
                audit_id: &e.audit_id,
                kind: &e.kind,
                at: e.at,
                username: e.username.as_deref(),
                session_id: &session_id,
                event: &e.event,
                request_body: e.request_body.as_deref(),
                response_body: e.response_body.as_deref(),
            },
        );
        rows.push(ChainedRow {
            seq,
            event: e,
            session_id,
            prev_hash: prev,
            hash,
        });
        prev = hash;
    }
    insert_audit_rows(tx, &rows).await?;
    for (caller, (session_id, last_at, changed)) in &gaps {
        if *changed {
            sqlx::query(
                "INSERT INTO audit_gap_sessions (caller, session_id, last_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (caller) DO UPDATE SET session_id = excluded.session_id, \
                 last_at = excluded.last_at",
            )
            .bind(*caller)
            .bind(session_id)
            .bind(*last_at)
            .execute(&mut **tx)
            .await?;
        }
    }
    sqlx::query("UPDATE audit_chain SET seq = $1, hash = $2 WHERE id = 1")
        .bind(seq)
        .bind(&prev[..])
        .execute(&mut **tx)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| AppendedEvent {
            seq: r.seq,
            session_id: r.session_id,
            hash: r.hash,
        })
        .collect())
}

pub(crate) async fn append_audit(
    pool: &Pool,
    events: &[NewAuditEvent],
    gap_micros: i64,
) -> Res<Vec<AppendedEvent>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let mut tx = begin(pool).await?;
    let head = lock_head(&mut tx).await?;
    let appended = append_locked(&mut tx, &head, events, gap_micros).await?;
    tx.commit().await?;
    Ok(appended)
}

pub(crate) async fn audit_head(pool: &Pool) -> Res<AuditHead> {
    let row = sqlx::query("SELECT seq, hash FROM audit_chain WHERE id = 1")
        .fetch_one(pool)
        .await?;
    Ok(AuditHead {
        seq: row.try_get("seq")?,
        hash: row.try_get("hash")?,
    })
}

async fn insert_checkpoint(tx: &mut Tx, cp: &AuditCheckpoint) -> Res<()> {
    sqlx::query(
        "INSERT INTO audit_checkpoints (seq, hash, at, key_id, signature) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (seq) DO NOTHING",
    )
    .bind(cp.seq)
    .bind(&cp.hash)
    .bind(to_micros(cp.at))
    .bind(&cp.key_id)
    .bind(&cp.signature)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(crate) async fn audit_checkpoint(
    pool: &Pool,
    signer: &AuditSigner,
    now: Timestamp,
) -> Res<Option<AuditCheckpoint>> {
    let mut tx = begin(pool).await?;
    let head = lock_head(&mut tx).await?;
    let last: Option<i64> = sqlx::query("SELECT MAX(seq) AS last FROM audit_checkpoints")
        .fetch_one(&mut *tx)
        .await?
        .try_get("last")?;
    if head.seq == 0 || last.is_some_and(|l| l >= head.seq) {
        return Ok(None);
    }
    let cp = signer.sign(head.seq, &head.hash, now);
    insert_checkpoint(&mut tx, &cp).await?;
    tx.commit().await?;
    Ok(Some(cp))
}

pub(crate) async fn audit_checkpoints(pool: &Pool, from_seq: i64) -> Res<Vec<AuditCheckpoint>> {
    let rows = sqlx::query(
        "SELECT seq, hash, at, key_id, signature FROM audit_checkpoints WHERE seq >= $1 \
         ORDER BY seq",
    )
    .bind(from_seq)
    .fetch_all(pool)
    .await?;
    rows.iter().map(checkpoint_from_row).collect()
}

pub(crate) async fn audit_events(pool: &Pool, filter: &AuditFilter) -> Res<Vec<AuditEvent>> {
    let columns = if filter.without_bodies {
        AUDIT_COLUMNS_NO_BODIES
    } else {
        AUDIT_COLUMNS
    };
    let mut qb = sqlx::QueryBuilder::<Db>::new(format!(
        "SELECT {columns} FROM audit_events WHERE 1 = 1"
    ));
    if let Some(after) = filter.after_seq {
        qb.push(" AND seq > ").push_bind(after);
    }
    if let Some(since) = filter.since {
        qb.push(" AND at >= ").push_bind(to_micros(since));
    }
    if let Some(until) = filter.until {
        qb.push(" AND at < ").push_bind(to_micros(until));
    }
    if let Some(u) = &filter.username {
        qb.push(" AND username = ").push_bind(u.as_str());
    }
    if let Some(s) = &filter.session_id {
        qb.push(" AND session_id = ").push_bind(s.as_str());
    }
    if let Some(a) = &filter.audit_id {
        qb.push(" AND audit_id = ").push_bind(a.as_str());
    }
    qb.push(" ORDER BY seq LIMIT ")
        .push_bind(i64::from(filter.limit.clamp(1, 10_000)));
    let rows = qb.build().fetch_all(pool).await?;
    rows.iter().map(audit_event_from_row).collect()
}

/// The first event at or after `at` (for `--since`).
pub(crate) async fn audit_first_seq_since(pool: &Pool, at: Timestamp) -> Res<Option<i64>> {
    let row = sqlx::query("SELECT MIN(seq) AS first FROM audit_events WHERE at >= $1")
        .bind(to_micros(at))
        .fetch_one(pool)
        .await?;
    Ok(row.try_get("first")?)
}

/// Deletes the events before `first_kept` after signing a checkpoint of the last deleted one
/// (so the rest still verifies from there) and appending `record` (the prune, in the chain
/// itself). Returns how many events were deleted.
pub(crate) async fn prune_audit(
    pool: &Pool,
    first_kept: i64,
    signer: &AuditSigner,
    record: &NewAuditEvent,
    now: Timestamp,
) -> Res<u64> {
    let mut tx = begin(pool).await?;
    let head = lock_head(&mut tx).await?;
    if first_kept > head.seq + 1 {
        return Err(StoreError::Invalid(format!(
            "cannot keep from event {first_kept}: the last event is {}",
            head.seq
        )));
    }
    let anchor = sqlx::query("SELECT seq, hash FROM audit_events WHERE seq = $1")
        .bind(first_kept - 1)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(anchor) = anchor else {
        // Nothing before `first_kept` is left.
        return Ok(0);
    };
    let anchor_hash: Vec<u8> = anchor.try_get("hash")?;
    insert_checkpoint(&mut tx, &signer.sign(first_kept - 1, &anchor_hash, now)).await?;
    append_locked(&mut tx, &head, std::slice::from_ref(record), 0).await?;
    let deleted = sqlx::query("DELETE FROM audit_events WHERE seq < $1")
        .bind(first_kept)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    sqlx::query("DELETE FROM audit_checkpoints WHERE seq < $1")
        .bind(first_kept - 1)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(deleted)
}

/// The first event still kept, and the sequence number from which the newest `keep` events
/// start.
pub(crate) async fn audit_bounds(pool: &Pool) -> Res<(Option<i64>, i64)> {
    let first: Option<i64> = sqlx::query("SELECT MIN(seq) AS first FROM audit_events")
        .fetch_one(pool)
        .await?
        .try_get("first")?;
    let head = audit_head(pool).await?;
    Ok((first, head.seq))
}

pub(crate) async fn audit_sink_cursor(pool: &Pool, name: &str) -> Res<Option<i64>> {
    let row = sqlx::query("SELECT seq FROM audit_sink_cursors WHERE name = $1")
        .bind(name)
        .fetch_optional(pool)
        .await?;
    row.map(|r| r.try_get("seq").map_err(StoreError::from))
        .transpose()
}

pub(crate) async fn set_audit_sink_cursor(pool: &Pool, name: &str, seq: i64) -> Res<()> {
    sqlx::query(
        "INSERT INTO audit_sink_cursors (name, seq) VALUES ($1, $2) \
         ON CONFLICT (name) DO UPDATE SET seq = excluded.seq",
    )
    .bind(name)
    .bind(seq)
    .execute(pool)
    .await?;
    Ok(())
}

/// The first event to keep so that at most `max_bytes` of the newest events (event text and
/// stored bodies) stay; `None` when everything fits.
pub(crate) async fn audit_first_kept_by_size(pool: &Pool, max_bytes: i64) -> Res<Option<i64>> {
    let mut total: i64 = 0;
    let mut before: Option<i64> = None;
    loop {
        let mut qb = sqlx::QueryBuilder::<Db>::new(
            "SELECT seq, LENGTH(event) + COALESCE(LENGTH(request_body), 0) + \
             COALESCE(LENGTH(response_body), 0) AS size FROM audit_events",
        );
        if let Some(b) = before {
            qb.push(" WHERE seq < ").push_bind(b);
        }
        qb.push(" ORDER BY seq DESC LIMIT 5000");
        let rows = qb.build().fetch_all(pool).await?;
        if rows.is_empty() {
            return Ok(None);
        }
        for row in &rows {
            let seq: i64 = row.try_get("seq")?;
            let size: i64 = row.try_get::<Option<i64>, _>("size")?.unwrap_or(0);
            total = total.saturating_add(size);
            if total > max_bytes {
                return Ok(Some(seq + 1));
            }
            before = Some(seq);
        }
    }
}
