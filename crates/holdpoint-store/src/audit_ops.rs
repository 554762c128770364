// The audit log's operations, written once for both backends like `ops.rs` (which this file
// follows in each backend module, sharing its `Db`, `LOCK`, `begin`, `Pool`, `Tx`, `DbRow` and
// `Res`). Every append takes the `audit_chain` row's lock (`BEGIN IMMEDIATE` on SQLite,
// `SELECT ... FOR UPDATE` on PostgreSQL), so appends from several replicas form one chain.

use std::collections::HashMap;

use std::collections::BTreeSet;

use crate::audit::{
    AppendedEvent, AuditCheckpoint, AuditEvent, AuditFilter, AuditHead, AuditSigner,
    EventContent, NewAuditEvent, SessionKey, event_hash,
};
use crate::pack::{self, Pack, PackEntry};

/// The columns of the one-row-per-event table of before packs (`repack_legacy_audit`).
const LEGACY_COLUMNS: &str =
    "seq, audit_id, kind, at, username, session_id, event, request_body, response_body, \
     prev_hash, hash";
/// Packs read per query when scanning.
const PACKS_PER_READ: i64 = 16;

fn legacy_event_from_row(row: &DbRow) -> Res<AuditEvent> {
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

/// What an appended event's hash covers (and its pack holds).
fn content<'a>(e: &'a NewAuditEvent, session_id: &'a str) -> EventContent<'a> {
    EventContent {
        audit_id: &e.audit_id,
        kind: &e.kind,
        at: e.at,
        username: e.username.as_deref(),
        session_id,
        event: &e.event,
        request_body: e.request_body.as_deref(),
        response_body: e.response_body.as_deref(),
    }
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
        let hash = event_hash(&prev, &content(e, &session_id));
        rows.push(ChainedRow {
            seq,
            event: e,
            session_id,
            prev_hash: prev,
            hash,
        });
        prev = hash;
    }
    let entries: Vec<PackEntry<'_>> = rows
        .iter()
        .map(|r| PackEntry {
            seq: r.seq,
            content: content(r.event, &r.session_id),
            prev_hash: &r.prev_hash,
            hash: &r.hash,
        })
        .collect();
    insert_packs(tx, &entries).await?;
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

/// Packs `entries` (chain order) into `audit_packs` rows with their session and caller keys.
async fn insert_packs(tx: &mut Tx, entries: &[PackEntry<'_>]) -> Res<()> {
    let mut rest = entries;
    for pack in pack::encode_all(entries)? {
        let (these, after) = rest.split_at(usize::try_from(pack.events).unwrap_or(0).min(rest.len()));
        rest = after;
        insert_pack(tx, &pack, these).await?;
    }
    Ok(())
}

async fn insert_pack(tx: &mut Tx, pack: &Pack, entries: &[PackEntry<'_>]) -> Res<()> {
    sqlx::query(
        "INSERT INTO audit_packs (first_seq, last_seq, min_at, max_at, events, bytes, payload) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(pack.first_seq)
    .bind(pack.last_seq)
    .bind(pack.min_at)
    .bind(pack.max_at)
    .bind(pack.events)
    .bind(pack.bytes)
    .bind(&pack.payload)
    .execute(&mut **tx)
    .await?;
    let mut keys = BTreeSet::new();
    for e in entries {
        keys.insert(session_key(e.content.session_id));
        if let Some(u) = e.content.username {
            keys.insert(user_key(u));
        }
    }
    let keys: Vec<String> = keys.into_iter().collect();
    // 2 parameters a key: well under both backends' limits for any batch (`max_batch` <= 10,000).
    for chunk in keys.chunks(5000) {
        let mut qb = sqlx::QueryBuilder::<Db>::new("INSERT INTO audit_pack_keys (key, first_seq) ");
        qb.push_values(chunk, |mut b, k| {
            b.push_bind(k.as_str()).push_bind(pack.first_seq);
        });
        qb.build().execute(&mut **tx).await?;
    }
    Ok(())
}

fn session_key(id: &str) -> String {
    format!("s{id}")
}

fn user_key(name: &str) -> String {
    format!("u{name}")
}

/// The pack that holds `seq` (the last pack starting at or before it), if any: its row key
/// and its events.
async fn pack_holding<'e, E>(
    ex: E,
    seq: i64,
    without_bodies: bool,
) -> Res<Option<(i64, Vec<AuditEvent>)>>
where
    E: sqlx::Executor<'e, Database = Db>,
{
    let row = sqlx::query(
        "SELECT first_seq, payload FROM audit_packs WHERE first_seq <= $1 \
         ORDER BY first_seq DESC LIMIT 1",
    )
    .bind(seq)
    .fetch_optional(ex)
    .await?;
    row.map(|row| Ok((row.try_get("first_seq")?, unpack(&row, without_bodies)?)))
        .transpose()
}

fn unpack(row: &DbRow, without_bodies: bool) -> Res<Vec<AuditEvent>> {
    let first_seq: i64 = row.try_get("first_seq")?;
    let payload: Vec<u8> = row.try_get("payload")?;
    pack::decode(first_seq, &payload, without_bodies)
}

/// The first pack with an event at or after `at` (its latest event is not before it).
async fn first_pack_since(pool: &Pool, at: Timestamp) -> Res<Option<i64>> {
    Ok(
        sqlx::query("SELECT MIN(first_seq) AS start FROM audit_packs WHERE max_at >= $1")
            .bind(to_micros(at))
            .fetch_one(pool)
            .await?
            .try_get("start")?,
    )
}

/// Moves events stored one row each (before packs) into packs, oldest first, a few thousand per
/// transaction under the chain lock (replicas opening at once take turns). A no-op once the old
/// table is empty.
pub(crate) async fn repack_legacy_audit(pool: &Pool) -> Res<u64> {
    let mut moved = 0u64;
    // Opening takes no write lock when there is nothing to move (every open after the first).
    if sqlx::query("SELECT seq FROM audit_events LIMIT 1")
        .fetch_optional(pool)
        .await?
        .is_none()
    {
        return Ok(0);
    }
    loop {
        let mut tx = begin(pool).await?;
        lock_head(&mut tx).await?;
        let rows = sqlx::query(&format!(
            "SELECT {LEGACY_COLUMNS} FROM audit_events ORDER BY seq LIMIT 2000"
        ))
        .fetch_all(&mut *tx)
        .await?;
        let Some(last) = rows.last() else {
            return Ok(moved);
        };
        let last: i64 = last.try_get("seq")?;
        let events = rows
            .iter()
            .map(legacy_event_from_row)
            .collect::<Res<Vec<_>>>()?;
        let entries: Vec<_> = events.iter().map(PackEntry::of).collect();
        insert_packs(&mut tx, &entries).await?;
        sqlx::query("DELETE FROM audit_events WHERE seq <= $1")
            .bind(last)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        moved += events.len() as u64;
    }
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
    let limit = filter.limit.clamp(1, 10_000) as usize;
    let mut out = Vec::new();
    // The first pack that may hold a match: the one holding `after_seq + 1`, the first whose
    // latest event is not before `since`.
    let mut from = i64::MIN;
    if let Some(after) = filter.after_seq {
        let start: Option<i64> =
            sqlx::query("SELECT MAX(first_seq) AS start FROM audit_packs WHERE first_seq <= $1")
                .bind(after.saturating_add(1))
                .fetch_one(pool)
                .await?
                .try_get("start")?;
        from = from.max(start.unwrap_or(i64::MIN));
    }
    if let Some(since) = filter.since {
        match first_pack_since(pool, since).await? {
            Some(start) => from = from.max(start),
            None => return Ok(out),
        }
    }
    loop {
        let mut qb = sqlx::QueryBuilder::<Db>::new(
            "SELECT first_seq, payload FROM audit_packs WHERE first_seq >= ",
        );
        qb.push_bind(from);
        if let Some(since) = filter.since {
            qb.push(" AND max_at >= ").push_bind(to_micros(since));
        }
        if let Some(until) = filter.until {
            qb.push(" AND min_at < ").push_bind(to_micros(until));
        }
        if let Some(u) = &filter.username {
            qb.push(" AND first_seq IN (SELECT first_seq FROM audit_pack_keys WHERE key = ")
                .push_bind(user_key(u))
                .push(")");
        }
        if let Some(s) = &filter.session_id {
            qb.push(" AND first_seq IN (SELECT first_seq FROM audit_pack_keys WHERE key = ")
                .push_bind(session_key(s))
                .push(")");
        }
        qb.push(" ORDER BY first_seq LIMIT ").push_bind(PACKS_PER_READ);
        let rows = qb.build().fetch_all(pool).await?;
        for row in &rows {
            for e in unpack(row, filter.without_bodies)? {
                if matches(filter, &e) {
                    out.push(e);
                    if out.len() == limit {
                        return Ok(out);
                    }
                }
            }
            from = row.try_get::<i64, _>("first_seq")?.saturating_add(1);
        }
        if rows.len() < PACKS_PER_READ as usize {
            return Ok(out);
        }
    }
}

/// Whether a stored event passes `filter` (the packs were chosen by their columns; this checks
/// each event).
fn matches(filter: &AuditFilter, e: &AuditEvent) -> bool {
    filter.after_seq.is_none_or(|a| e.seq > a)
        && filter.since.is_none_or(|t| e.at >= t)
        && filter.until.is_none_or(|t| e.at < t)
        && filter
            .username
            .as_ref()
            .is_none_or(|u| e.username.as_ref() == Some(u))
        && filter
            .session_id
            .as_ref()
            .is_none_or(|s| &e.session_id == s)
        && filter.audit_id.as_ref().is_none_or(|a| &e.audit_id == a)
}

/// The first event at or after `at` (for `--since`).
pub(crate) async fn audit_first_seq_since(pool: &Pool, at: Timestamp) -> Res<Option<i64>> {
    let Some(start) = first_pack_since(pool, at).await? else {
        return Ok(None);
    };
    Ok(pack_holding(pool, start, true)
        .await?
        .and_then(|(_, events)| events.into_iter().find(|e| e.at >= at))
        .map(|e| e.seq))
}

/// Deletes the events before `first_kept` after signing a checkpoint of the last deleted one
/// (so the rest still verifies from there) and appending `record` (the prune, in the chain
/// itself). A pack holding events on both sides is packed again with the kept ones. Returns
/// how many events were deleted.
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
    let (holding_key, holding) = pack_holding(&mut *tx, first_kept - 1, false)
        .await?
        .unwrap_or_default();
    let Some(anchor) = holding.iter().find(|e| e.seq == first_kept - 1) else {
        // Nothing before `first_kept` is left.
        return Ok(0);
    };
    insert_checkpoint(&mut tx, &signer.sign(first_kept - 1, &anchor.hash, now)).await?;
    append_locked(&mut tx, &head, std::slice::from_ref(record), 0).await?;
    let whole: Option<i64> = sqlx::query(
        "SELECT CAST(SUM(events) AS BIGINT) AS n FROM audit_packs \
         WHERE first_seq < $1 AND last_seq < $1",
    )
    .bind(first_kept)
    .fetch_one(&mut *tx)
    .await?
    .try_get("n")?;
    let mut deleted = u64::try_from(whole.unwrap_or(0)).unwrap_or(0);
    sqlx::query("DELETE FROM audit_packs WHERE first_seq < $1 AND last_seq < $1")
        .bind(first_kept)
        .execute(&mut *tx)
        .await?;
    // The pack holding `first_kept - 1` and later events: keep the later ones (its keys go with
    // those of every pack before `first_kept`, below).
    let kept: Vec<&AuditEvent> = holding.iter().filter(|e| e.seq >= first_kept).collect();
    if !kept.is_empty() {
        deleted += (holding.len() - kept.len()) as u64;
        sqlx::query("DELETE FROM audit_packs WHERE first_seq = $1")
            .bind(holding_key)
            .execute(&mut *tx)
            .await?;
        let entries: Vec<_> = kept.into_iter().map(PackEntry::of).collect();
        insert_packs(&mut tx, &entries).await?;
    }
    sqlx::query("DELETE FROM audit_pack_keys WHERE first_seq < $1")
        .bind(first_kept)
        .execute(&mut *tx)
        .await?;
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
    let first: Option<i64> = sqlx::query("SELECT MIN(first_seq) AS first FROM audit_packs")
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
/// bodies, uncompressed) stay; `None` when everything fits.
pub(crate) async fn audit_first_kept_by_size(pool: &Pool, max_bytes: i64) -> Res<Option<i64>> {
    let mut total: i64 = 0;
    let mut before: Option<i64> = None;
    loop {
        let mut qb =
            sqlx::QueryBuilder::<Db>::new("SELECT first_seq, last_seq, bytes FROM audit_packs");
        if let Some(b) = before {
            qb.push(" WHERE first_seq < ").push_bind(b);
        }
        qb.push(" ORDER BY first_seq DESC LIMIT 5000");
        let rows = qb.build().fetch_all(pool).await?;
        if rows.is_empty() {
            return Ok(None);
        }
        for row in &rows {
            let first_seq: i64 = row.try_get("first_seq")?;
            let last_seq: i64 = row.try_get("last_seq")?;
            let bytes: i64 = row.try_get("bytes")?;
            if total.saturating_add(bytes) > max_bytes {
                // The limit falls inside this pack: count its events from the newest.
                let events = pack_holding(pool, last_seq, false).await?.unwrap_or_default().1;
                for e in events.iter().rev() {
                    total = total.saturating_add(PackEntry::of(e).size() as i64);
                    if total > max_bytes {
                        return Ok(Some(e.seq + 1));
                    }
                }
                return Ok(Some(first_seq));
            }
            total += bytes;
            before = Some(first_seq);
        }
    }
}
