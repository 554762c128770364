// The store's operations, written once and compiled for each backend: `lib.rs` includes this
// file in `sqlite_ops` and in `pg_ops`, each defining `Db` (the sqlx database), `LOCK` (the row
// lock clause appended to a read-check-write SELECT), `NOTIFY` (the statement that announces a
// change to other replicas) and `begin` (how a write transaction starts). Bind values and column
// types are those both databases share: TEXT, BIGINT/INTEGER, BYTEA/BLOB, JSONB/TEXT (through
// `sqlx::types::Json`), BOOLEAN/INTEGER.

use jiff::Timestamp;
use sqlx::Row;
use sqlx::types::Json;

use crate::{
    Approval, ApprovalEvent, ApprovalFilter, ApprovalMode, ApprovalState, Decision,
    ExecutionOutcome, MAX_RESULT_BODY, NewApproval, NewToken, RequestBinding, RequestSummary,
    Requester, Reviewers, Setting, StoreError, StoreEvent, StoredToken, TokenSelector,
    UpstreamResult, Vote, VoteResult, Voter, from_micros, new_id, sha256_hex, to_micros,
};

type Pool = sqlx::Pool<Db>;
type Tx = sqlx::Transaction<'static, Db>;
type DbRow = <Db as sqlx::Database>::Row;
type Res<T> = Result<T, StoreError>;

/// The actor of transitions nobody asked for (expiry, crash recovery).
const SYSTEM_ACTOR: &str = "holdpoint";

const LIVE_STATES: &str = "('pending', 'approved', 'executing')";

const APPROVAL_COLUMNS: &str = "id, state, mode, binding_key, requester, method, path, query, \
    content_type, headers, body, body_sha256, summary, kubectl_command, kubectl_session, rule, \
    reviewers, quorum, created_at, expires_at, decided_at, executor, result_status, \
    result_content_type, result_body, result_truncated";

const TOKEN_COLUMNS: &str = "id, sha256, username, user_groups, uid, description, created_at, \
    expires_at, revoked_at, created_by";

fn opt_micros(v: Option<i64>) -> Res<Option<Timestamp>> {
    v.map(from_micros).transpose()
}

fn approval_from_row(row: &DbRow) -> Res<Approval> {
    let id: String = row.try_get("id")?;
    let state: String = row.try_get("state")?;
    let mode: String = row.try_get("mode")?;
    let quorum: i64 = row.try_get("quorum")?;
    let result_status: Option<i64> = row.try_get("result_status")?;
    let result = match result_status {
        None => None,
        Some(status) => Some(UpstreamResult {
            status: u16::try_from(status)
                .map_err(|_| StoreError::Corrupt(format!("approval {id}: status {status}")))?,
            content_type: row.try_get("result_content_type")?,
            body: row
                .try_get::<Option<Vec<u8>>, _>("result_body")?
                .unwrap_or_default(),
            truncated: row
                .try_get::<Option<bool>, _>("result_truncated")?
                .unwrap_or(false),
        }),
    };
    let Json(headers): Json<Vec<(String, String)>> = row.try_get("headers")?;
    let Json(requester): Json<Requester> = row.try_get("requester")?;
    let Json(summary): Json<RequestSummary> = row.try_get("summary")?;
    let Json(reviewers): Json<Reviewers> = row.try_get("reviewers")?;
    Ok(Approval {
        state: ApprovalState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("approval {id}: state {state}")))?,
        mode: ApprovalMode::parse(&mode)
            .ok_or_else(|| StoreError::Corrupt(format!("approval {id}: mode {mode}")))?,
        binding_key: row.try_get("binding_key")?,
        requester,
        request: RequestBinding {
            method: row.try_get("method")?,
            path: row.try_get("path")?,
            query: row.try_get("query")?,
            content_type: row.try_get("content_type")?,
            headers,
            body: row.try_get("body")?,
            body_sha256: row.try_get("body_sha256")?,
        },
        summary,
        kubectl_command: row.try_get("kubectl_command")?,
        kubectl_session: row.try_get("kubectl_session")?,
        rule: row.try_get("rule")?,
        reviewers,
        quorum: u32::try_from(quorum)
            .map_err(|_| StoreError::Corrupt(format!("approval {id}: quorum {quorum}")))?,
        created_at: from_micros(row.try_get("created_at")?)?,
        expires_at: from_micros(row.try_get("expires_at")?)?,
        decided_at: opt_micros(row.try_get("decided_at")?)?,
        executor: row.try_get("executor")?,
        result,
        id,
    })
}

fn token_from_row(row: &DbRow) -> Res<StoredToken> {
    let Json(groups): Json<Vec<String>> = row.try_get("user_groups")?;
    Ok(StoredToken {
        id: row.try_get("id")?,
        sha256: row.try_get("sha256")?,
        username: row.try_get("username")?,
        groups,
        uid: row.try_get("uid")?,
        description: row.try_get("description")?,
        created_at: from_micros(row.try_get("created_at")?)?,
        expires_at: opt_micros(row.try_get("expires_at")?)?,
        revoked_at: opt_micros(row.try_get("revoked_at")?)?,
        created_by: row.try_get("created_by")?,
    })
}

/// Records a token or setting change (same transaction as the change).
async fn store_event(
    tx: &mut Tx,
    now: Timestamp,
    actor: &str,
    kind: &str,
    subject: &str,
    reason: Option<&str>,
    detail: serde_json::Value,
) -> Res<()> {
    sqlx::query(
        "INSERT INTO store_events (at, actor, kind, subject, reason, detail) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(to_micros(now))
    .bind(actor)
    .bind(kind)
    .bind(subject)
    .bind(reason)
    .bind(Json(detail))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

// ---------------------------------------------------------------- tokens

pub(crate) async fn create_token(pool: &Pool, new: &NewToken, now: Timestamp) -> Res<StoredToken> {
    if new.sha256.len() != 64
        || !new
            .sha256
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(StoreError::Invalid(
            "token sha256 must be 64 lowercase hex characters".into(),
        ));
    }
    if new.username.is_empty() {
        return Err(StoreError::Invalid("token username is empty".into()));
    }
    if new.expires_at.is_some_and(|e| e <= now) {
        return Err(StoreError::Invalid("token would already be expired".into()));
    }
    let id = new_id("tk")?;
    let mut tx = begin(pool).await?;
    store_event(
        &mut tx,
        now,
        &new.created_by,
        "token.create",
        &id,
        new.description.as_deref(),
        serde_json::json!({
            "username": new.username,
            "groups": new.groups,
            "expires_at": new.expires_at,
        }),
    )
    .await?;
    sqlx::query(
        "INSERT INTO tokens (id, sha256, username, user_groups, uid, description, created_at, \
         expires_at, revoked_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, $9)",
    )
    .bind(&id)
    .bind(&new.sha256)
    .bind(&new.username)
    .bind(Json(&new.groups))
    .bind(&new.uid)
    .bind(&new.description)
    .bind(to_micros(now))
    .bind(new.expires_at.map(to_micros))
    .bind(&new.created_by)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(StoredToken {
        id,
        sha256: new.sha256.clone(),
        username: new.username.clone(),
        groups: new.groups.clone(),
        uid: new.uid.clone(),
        description: new.description.clone(),
        created_at: now,
        expires_at: new.expires_at,
        revoked_at: None,
        created_by: new.created_by.clone(),
    })
}

pub(crate) async fn lookup_token_by_hash(
    pool: &Pool,
    sha256: &str,
    now: Timestamp,
) -> Res<Option<StoredToken>> {
    let sql = format!(
        "SELECT {TOKEN_COLUMNS} FROM tokens WHERE sha256 = $1 AND revoked_at IS NULL \
         AND (expires_at IS NULL OR expires_at > $2)"
    );
    let row = sqlx::query(&sql)
        .bind(sha256)
        .bind(to_micros(now))
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(token_from_row).transpose()
}

pub(crate) async fn revoke_tokens(
    pool: &Pool,
    which: &TokenSelector,
    by: &str,
    reason: Option<&str>,
    now: Timestamp,
) -> Res<Vec<String>> {
    let mut tx = begin(pool).await?;
    let (sql, arg) = match which {
        TokenSelector::Id(id) => (
            format!("SELECT id, revoked_at FROM tokens WHERE id = $1{LOCK}"),
            id,
        ),
        TokenSelector::User(u) => (
            format!("SELECT id, revoked_at FROM tokens WHERE username = $1 ORDER BY id{LOCK}"),
            u,
        ),
    };
    let rows = sqlx::query(&sql).bind(arg).fetch_all(&mut *tx).await?;
    if rows.is_empty()
        && let TokenSelector::Id(id) = which
    {
        return Err(StoreError::NotFound(format!("token {id}")));
    }
    let mut revoked = Vec::new();
    for row in rows {
        let id: String = row.try_get("id")?;
        let at: Option<i64> = row.try_get("revoked_at")?;
        if at.is_some() {
            continue;
        }
        store_event(
            &mut tx,
            now,
            by,
            "token.revoke",
            &id,
            reason,
            serde_json::Value::Null,
        )
        .await?;
        sqlx::query("UPDATE tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
            .bind(&id)
            .bind(to_micros(now))
            .execute(&mut *tx)
            .await?;
        revoked.push(id);
    }
    tx.commit().await?;
    Ok(revoked)
}

pub(crate) async fn list_tokens(pool: &Pool) -> Res<Vec<StoredToken>> {
    let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created_at, id");
    let rows = sqlx::query(&sql).fetch_all(pool).await?;
    rows.iter().map(token_from_row).collect()
}

// ---------------------------------------------------------------- settings

pub(crate) async fn get_setting(pool: &Pool, key: &str) -> Res<Option<Setting>> {
    let row =
        sqlx::query("SELECT name, value, updated_by, updated_at FROM settings WHERE name = $1")
            .bind(key)
            .fetch_optional(pool)
            .await?;
    let Some(row) = row else { return Ok(None) };
    let Json(value): Json<serde_json::Value> = row.try_get("value")?;
    Ok(Some(Setting {
        key: row.try_get("name")?,
        value,
        updated_by: row.try_get("updated_by")?,
        updated_at: from_micros(row.try_get("updated_at")?)?,
    }))
}

pub(crate) async fn set_setting(
    pool: &Pool,
    key: &str,
    value: &serde_json::Value,
    by: &str,
    reason: Option<&str>,
    now: Timestamp,
) -> Res<Setting> {
    if key.is_empty() {
        return Err(StoreError::Invalid("setting key is empty".into()));
    }
    let mut tx = begin(pool).await?;
    store_event(&mut tx, now, by, "setting.set", key, reason, value.clone()).await?;
    sqlx::query(
        "INSERT INTO settings (name, value, updated_by, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (name) DO UPDATE SET value = excluded.value, \
         updated_by = excluded.updated_by, updated_at = excluded.updated_at",
    )
    .bind(key)
    .bind(Json(value))
    .bind(by)
    .bind(to_micros(now))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Setting {
        key: key.to_owned(),
        value: value.clone(),
        updated_by: by.to_owned(),
        updated_at: now,
    })
}

// ---------------------------------------------------------------- approvals

async fn select_approval(tx: &mut Tx, id: &str) -> Res<Option<Approval>> {
    let sql = format!("SELECT {APPROVAL_COLUMNS} FROM approvals WHERE id = $1{LOCK}");
    let row = sqlx::query(&sql).bind(id).fetch_optional(&mut **tx).await?;
    row.as_ref().map(approval_from_row).transpose()
}

async fn select_live_by_key(tx: &mut Tx, key: &str) -> Res<Option<Approval>> {
    let sql = format!(
        "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE binding_key = $1 \
         AND state IN {LIVE_STATES}{LOCK}"
    );
    let row = sqlx::query(&sql)
        .bind(key)
        .fetch_optional(&mut **tx)
        .await?;
    row.as_ref().map(approval_from_row).transpose()
}

/// Writes the event, then moves `id` from `from` to `to`; the row must be locked by this
/// transaction (read with `LOCK`), so the conditional update cannot miss.
#[allow(clippy::too_many_arguments)]
async fn transition(
    tx: &mut Tx,
    id: &str,
    from: ApprovalState,
    to: ApprovalState,
    actor: &str,
    reason: Option<&str>,
    now: Timestamp,
    decided: bool,
) -> Res<()> {
    let seq: i64 = sqlx::query(
        "SELECT COALESCE(MAX(seq), 0) + 1 AS next FROM approval_events WHERE approval_id = $1",
    )
    .bind(id)
    .fetch_one(&mut **tx)
    .await?
    .try_get("next")?;
    insert_event(tx, id, seq, Some(from), to, actor, reason, now).await?;
    let done = sqlx::query(
        "UPDATE approvals SET state = $2, decided_at = COALESCE($4, decided_at) \
         WHERE id = $1 AND state = $3",
    )
    .bind(id)
    .bind(to.as_str())
    .bind(from.as_str())
    .bind(decided.then(|| to_micros(now)))
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() != 1 {
        return Err(StoreError::Conflict("approval changed during a transition"));
    }
    notify(tx, id, to).await
}

#[allow(clippy::too_many_arguments)]
async fn insert_event(
    tx: &mut Tx,
    id: &str,
    seq: i64,
    from: Option<ApprovalState>,
    to: ApprovalState,
    actor: &str,
    reason: Option<&str>,
    now: Timestamp,
) -> Res<()> {
    sqlx::query(
        "INSERT INTO approval_events (approval_id, seq, from_state, to_state, actor, reason, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(seq)
    .bind(from.map(ApprovalState::as_str))
    .bind(to.as_str())
    .bind(actor)
    .bind(reason)
    .bind(to_micros(now))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn notify(tx: &mut Tx, id: &str, to: ApprovalState) -> Res<()> {
    if let Some(sql) = NOTIFY {
        sqlx::query(sql)
            .bind(format!("{id}:{to}"))
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Pending approvals and unused grants expire; approved `execute` ones are sent instead.
fn expirable(a: &Approval, now: Timestamp) -> bool {
    a.expires_at <= now
        && (a.state == ApprovalState::Pending
            || (a.state == ApprovalState::Approved && a.mode == ApprovalMode::Grant))
}

async fn expire_locked(tx: &mut Tx, a: &Approval, now: Timestamp) -> Res<()> {
    let reason = if a.state == ApprovalState::Pending {
        "no decision within the time to live"
    } else {
        "the grant was not used within the time to live"
    };
    transition(
        tx,
        &a.id,
        a.state,
        ApprovalState::Expired,
        SYSTEM_ACTOR,
        Some(reason),
        now,
        true,
    )
    .await
}

fn validate_new(new: &NewApproval) -> Res<()> {
    if new.requester.username.is_empty() {
        return Err(StoreError::Invalid("requester username is empty".into()));
    }
    if new.request.method.is_empty() || new.request.path.is_empty() {
        return Err(StoreError::Invalid(
            "request method or path is empty".into(),
        ));
    }
    if sha256_hex(&new.request.body) != new.request.body_sha256 {
        return Err(StoreError::Invalid(
            "body_sha256 does not match the body".into(),
        ));
    }
    if new.reviewers.is_empty() {
        return Err(StoreError::Invalid("an approval needs reviewers".into()));
    }
    if new.quorum == 0 {
        return Err(StoreError::Invalid("quorum must be at least 1".into()));
    }
    if new.expires_at <= new.created_at {
        return Err(StoreError::Invalid(
            "expires_at must be after created_at".into(),
        ));
    }
    Ok(())
}

/// Returns (approval, attached, id of a stale live approval expired on the way).
pub(crate) async fn create_or_attach(
    pool: &Pool,
    new: &NewApproval,
) -> Res<(Approval, bool, Option<String>)> {
    validate_new(new)?;
    let key = new.request.binding_key(&new.requester.username);
    let now = new.created_at;
    let mut expired = None;
    // A concurrent identical create can win the insert (PostgreSQL); the next round attaches.
    for _ in 0..5 {
        let mut tx = begin(pool).await?;
        if let Some(live) = select_live_by_key(&mut tx, &key).await? {
            if expirable(&live, now) {
                expire_locked(&mut tx, &live, now).await?;
                expired = Some(live.id.clone());
            } else {
                tx.commit().await?;
                return Ok((live, true, expired));
            }
        }
        let id = new_id("ap")?;
        let sql = format!(
            "INSERT INTO approvals (id, state, mode, binding_key, requester_username, requester, \
             method, path, query, content_type, headers, body, body_sha256, summary, namespace, \
             kubectl_command, kubectl_session, rule, reviewers, quorum, created_at, expires_at) \
             VALUES ($1, 'pending', $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
             $16, $17, $18, $19, $20, $21) \
             ON CONFLICT (binding_key) WHERE state IN {LIVE_STATES} DO NOTHING"
        );
        let done = sqlx::query(&sql)
            .bind(&id)
            .bind(new.mode.as_str())
            .bind(&key)
            .bind(&new.requester.username)
            .bind(Json(&new.requester))
            .bind(&new.request.method)
            .bind(&new.request.path)
            .bind(&new.request.query)
            .bind(&new.request.content_type)
            .bind(Json(&new.request.headers))
            .bind(&new.request.body)
            .bind(&new.request.body_sha256)
            .bind(Json(&new.summary))
            .bind(&new.summary.namespace)
            .bind(&new.kubectl_command)
            .bind(&new.kubectl_session)
            .bind(&new.rule)
            .bind(Json(&new.reviewers))
            .bind(i64::from(new.quorum))
            .bind(to_micros(now))
            .bind(to_micros(new.expires_at))
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            // Another transaction created it first; the expiry above (if any) is theirs too.
            tx.rollback().await?;
            expired = None;
            continue;
        }
        let reason = format!("held by rule {}", new.rule);
        insert_event(
            &mut tx,
            &id,
            1,
            None,
            ApprovalState::Pending,
            &new.requester.username,
            Some(&reason),
            now,
        )
        .await?;
        notify(&mut tx, &id, ApprovalState::Pending).await?;
        let approval = select_approval(&mut tx, &id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("approval {id} vanished")))?;
        tx.commit().await?;
        return Ok((approval, false, expired));
    }
    Err(StoreError::Conflict(
        "identical approvals kept being created concurrently",
    ))
}

async fn count_approvals(tx: &mut Tx, id: &str) -> Res<u32> {
    let n: i64 = sqlx::query(
        "SELECT COUNT(*) AS n FROM approval_votes WHERE approval_id = $1 AND decision = 'approve'",
    )
    .bind(id)
    .fetch_one(&mut **tx)
    .await?
    .try_get("n")?;
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

pub(crate) async fn vote(
    pool: &Pool,
    id: &str,
    voter: &Voter,
    decision: Decision,
    reason: Option<&str>,
    now: Timestamp,
) -> Res<VoteResult> {
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    if decision == Decision::Deny && reason.is_none() {
        return Err(StoreError::ReasonRequired);
    }
    let mut tx = begin(pool).await?;
    let a = select_approval(&mut tx, id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("approval {id}")))?;
    if voter.username == a.requester.username {
        return Err(StoreError::SelfApproval);
    }
    if !a.reviewers.includes(voter) {
        return Err(StoreError::NotAReviewer {
            id: id.to_owned(),
            user: voter.username.clone(),
        });
    }
    if a.state != ApprovalState::Pending {
        return Err(StoreError::WrongState {
            id: id.to_owned(),
            state: a.state,
            operation: "voted on",
        });
    }
    if a.expires_at <= now {
        expire_locked(&mut tx, &a, now).await?;
        tx.commit().await?;
        return Err(StoreError::Expired(id.to_owned()));
    }
    let inserted = sqlx::query(
        "INSERT INTO approval_votes (approval_id, reviewer, decision, reason, at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (approval_id, reviewer) DO NOTHING",
    )
    .bind(id)
    .bind(&voter.username)
    .bind(decision.as_str())
    .bind(reason)
    .bind(to_micros(now))
    .execute(&mut *tx)
    .await?;
    let approvals = count_approvals(&mut tx, id).await?;
    if inserted.rows_affected() == 0 {
        tx.rollback().await?;
        return Ok(VoteResult {
            approval: a,
            counted: false,
            approvals,
        });
    }
    match decision {
        Decision::Deny => {
            transition(
                &mut tx,
                id,
                ApprovalState::Pending,
                ApprovalState::Denied,
                &voter.username,
                reason,
                now,
                true,
            )
            .await?;
        }
        Decision::Approve if approvals >= a.quorum => {
            let why = match reason {
                Some(r) => format!("quorum reached ({approvals} of {}): {r}", a.quorum),
                None => format!("quorum reached ({approvals} of {})", a.quorum),
            };
            transition(
                &mut tx,
                id,
                ApprovalState::Pending,
                ApprovalState::Approved,
                &voter.username,
                Some(&why),
                now,
                true,
            )
            .await?;
        }
        Decision::Approve => {}
    }
    let approval = select_approval(&mut tx, id)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("approval {id} vanished")))?;
    tx.commit().await?;
    Ok(VoteResult {
        approval,
        counted: true,
        approvals,
    })
}

pub(crate) async fn cancel(
    pool: &Pool,
    id: &str,
    by: &str,
    reason: Option<&str>,
    now: Timestamp,
) -> Res<Approval> {
    let mut tx = begin(pool).await?;
    let a = select_approval(&mut tx, id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("approval {id}")))?;
    if by != a.requester.username {
        return Err(StoreError::NotRequester(id.to_owned()));
    }
    if a.state != ApprovalState::Pending {
        return Err(StoreError::WrongState {
            id: id.to_owned(),
            state: a.state,
            operation: "cancelled",
        });
    }
    let reason = reason
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .unwrap_or("cancelled by the requester");
    transition(
        &mut tx,
        id,
        ApprovalState::Pending,
        ApprovalState::Cancelled,
        by,
        Some(reason),
        now,
        true,
    )
    .await?;
    let a = select_approval(&mut tx, id)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("approval {id} vanished")))?;
    tx.commit().await?;
    Ok(a)
}

pub(crate) async fn expire_due(pool: &Pool, now: Timestamp) -> Res<Vec<String>> {
    let ids: Vec<String> = sqlx::query(
        "SELECT id FROM approvals WHERE expires_at <= $1 \
         AND (state = 'pending' OR (state = 'approved' AND mode = 'grant')) \
         ORDER BY expires_at LIMIT 1000",
    )
    .bind(to_micros(now))
    .fetch_all(pool)
    .await?
    .iter()
    .map(|r| r.try_get("id"))
    .collect::<Result<_, _>>()?;
    let mut expired = Vec::new();
    for id in ids {
        let mut tx = begin(pool).await?;
        // Re-read under the lock: a vote may have decided it meanwhile.
        if let Some(a) = select_approval(&mut tx, &id).await?
            && expirable(&a, now)
        {
            expire_locked(&mut tx, &a, now).await?;
            tx.commit().await?;
            expired.push(id);
        }
    }
    Ok(expired)
}

pub(crate) async fn begin_execute(
    pool: &Pool,
    id: &str,
    executor: &str,
    now: Timestamp,
) -> Res<bool> {
    let mut tx = begin(pool).await?;
    let a = select_approval(&mut tx, id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("approval {id}")))?;
    if a.state != ApprovalState::Approved || a.mode != ApprovalMode::Execute {
        return Ok(false);
    }
    transition(
        &mut tx,
        id,
        ApprovalState::Approved,
        ApprovalState::Executing,
        executor,
        Some("sending the approved request"),
        now,
        false,
    )
    .await?;
    sqlx::query("UPDATE approvals SET executor = $2 WHERE id = $1")
        .bind(id)
        .bind(executor)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}

pub(crate) async fn finish_execute(
    pool: &Pool,
    id: &str,
    outcome: ExecutionOutcome,
    result: Option<&UpstreamResult>,
    now: Timestamp,
) -> Res<Approval> {
    let mut tx = begin(pool).await?;
    let a = select_approval(&mut tx, id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("approval {id}")))?;
    if a.state != ApprovalState::Executing {
        return Err(StoreError::WrongState {
            id: id.to_owned(),
            state: a.state,
            operation: "finished",
        });
    }
    let (to, reason) = match (outcome, result) {
        (ExecutionOutcome::Executed, Some(r)) => (
            ApprovalState::Executed,
            format!("the upstream answered {}", r.status),
        ),
        (ExecutionOutcome::Executed, None) => (ApprovalState::Executed, "sent".to_owned()),
        (ExecutionOutcome::Failed, _) => (
            ApprovalState::Failed,
            "the upstream did not answer".to_owned(),
        ),
    };
    let executor = a
        .executor
        .clone()
        .unwrap_or_else(|| SYSTEM_ACTOR.to_owned());
    transition(
        &mut tx,
        id,
        ApprovalState::Executing,
        to,
        &executor,
        Some(&reason),
        now,
        false,
    )
    .await?;
    if let Some(r) = result {
        let body = &r.body[..r.body.len().min(MAX_RESULT_BODY)];
        sqlx::query(
            "UPDATE approvals SET result_status = $2, result_content_type = $3, result_body = $4, \
             result_truncated = $5 WHERE id = $1",
        )
        .bind(id)
        .bind(i64::from(r.status))
        .bind(&r.content_type)
        .bind(body)
        .bind(r.truncated || r.body.len() > MAX_RESULT_BODY)
        .execute(&mut *tx)
        .await?;
    }
    let a = select_approval(&mut tx, id)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("approval {id} vanished")))?;
    tx.commit().await?;
    Ok(a)
}

pub(crate) async fn recover_after_crash(
    pool: &Pool,
    executor: Option<&str>,
    now: Timestamp,
) -> Res<Vec<String>> {
    let ids: Vec<String> = sqlx::query(
        "SELECT id FROM approvals WHERE state = 'executing' AND ($1 IS NULL OR executor = $1) \
         ORDER BY id",
    )
    .bind(executor)
    .fetch_all(pool)
    .await?
    .iter()
    .map(|r| r.try_get("id"))
    .collect::<Result<_, _>>()?;
    let mut recovered = Vec::new();
    for id in ids {
        let mut tx = begin(pool).await?;
        if let Some(a) = select_approval(&mut tx, &id).await?
            && a.state == ApprovalState::Executing
            && executor.is_none_or(|e| a.executor.as_deref() == Some(e))
        {
            transition(
                &mut tx,
                &id,
                ApprovalState::Executing,
                ApprovalState::Unknown,
                SYSTEM_ACTOR,
                Some("the gateway stopped while sending this request; its outcome is unknown and it is not resent"),
                now,
                false,
            )
            .await?;
            tx.commit().await?;
            recovered.push(id);
        }
    }
    Ok(recovered)
}

/// Returns (the grant used now, id of a grant that had expired instead).
pub(crate) async fn consume_grant(
    pool: &Pool,
    binding_key: &str,
    now: Timestamp,
) -> Res<(Option<Approval>, Option<String>)> {
    let mut tx = begin(pool).await?;
    let Some(a) = select_live_by_key(&mut tx, binding_key).await? else {
        return Ok((None, None));
    };
    if a.state != ApprovalState::Approved || a.mode != ApprovalMode::Grant {
        return Ok((None, None));
    }
    if expirable(&a, now) {
        expire_locked(&mut tx, &a, now).await?;
        tx.commit().await?;
        return Ok((None, Some(a.id)));
    }
    transition(
        &mut tx,
        &a.id,
        ApprovalState::Approved,
        ApprovalState::Executed,
        &a.requester.username,
        Some("the requester sent the granted request"),
        now,
        false,
    )
    .await?;
    let used = select_approval(&mut tx, &a.id).await?;
    tx.commit().await?;
    Ok((used, None))
}

pub(crate) async fn get_approval(pool: &Pool, id: &str) -> Res<Option<Approval>> {
    let sql = format!("SELECT {APPROVAL_COLUMNS} FROM approvals WHERE id = $1");
    let row = sqlx::query(&sql).bind(id).fetch_optional(pool).await?;
    row.as_ref().map(approval_from_row).transpose()
}

pub(crate) async fn list_approvals(pool: &Pool, filter: &ApprovalFilter) -> Res<Vec<Approval>> {
    let sql = format!(
        "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE ($1 IS NULL OR state = $1) \
         AND ($2 IS NULL OR requester_username = $2) AND ($3 IS NULL OR namespace = $3) \
         AND ($5 IS NULL OR binding_key = $5) \
         ORDER BY created_at DESC, id DESC LIMIT $4"
    );
    let rows = sqlx::query(&sql)
        .bind(filter.state.map(ApprovalState::as_str))
        .bind(&filter.requester)
        .bind(&filter.namespace)
        .bind(i64::from(filter.limit.clamp(1, 1000)))
        .bind(&filter.binding_key)
        .fetch_all(pool)
        .await?;
    rows.iter().map(approval_from_row).collect()
}

pub(crate) async fn approval_events(pool: &Pool, id: &str) -> Res<Vec<ApprovalEvent>> {
    let rows = sqlx::query(
        "SELECT approval_id, seq, from_state, to_state, actor, reason, at FROM approval_events \
         WHERE approval_id = $1 ORDER BY seq",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            let from: Option<String> = row.try_get("from_state")?;
            let to: String = row.try_get("to_state")?;
            let parse = |s: &str| {
                ApprovalState::parse(s)
                    .ok_or_else(|| StoreError::Corrupt(format!("event of {id}: state {s}")))
            };
            Ok(ApprovalEvent {
                approval_id: row.try_get("approval_id")?,
                seq: row.try_get("seq")?,
                from_state: from.as_deref().map(parse).transpose()?,
                to_state: parse(&to)?,
                actor: row.try_get("actor")?,
                reason: row.try_get("reason")?,
                at: from_micros(row.try_get("at")?)?,
            })
        })
        .collect()
}

pub(crate) async fn approval_votes(pool: &Pool, id: &str) -> Res<Vec<Vote>> {
    let rows = sqlx::query(
        "SELECT approval_id, reviewer, decision, reason, at FROM approval_votes \
         WHERE approval_id = $1 ORDER BY at, reviewer",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            let d: String = row.try_get("decision")?;
            Ok(Vote {
                approval_id: row.try_get("approval_id")?,
                reviewer: row.try_get("reviewer")?,
                decision: Decision::parse(&d)
                    .ok_or_else(|| StoreError::Corrupt(format!("vote on {id}: {d}")))?,
                reason: row.try_get("reason")?,
                at: from_micros(row.try_get("at")?)?,
            })
        })
        .collect()
}

pub(crate) async fn store_events(
    pool: &Pool,
    subject: Option<&str>,
    limit: u32,
) -> Res<Vec<StoreEvent>> {
    let rows = sqlx::query(
        "SELECT at, actor, kind, subject, reason, detail FROM store_events \
         WHERE ($1 IS NULL OR subject = $1) ORDER BY id DESC LIMIT $2",
    )
    .bind(subject)
    .bind(i64::from(limit.clamp(1, 10_000)))
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            let Json(detail): Json<serde_json::Value> = row.try_get("detail")?;
            Ok(StoreEvent {
                at: from_micros(row.try_get("at")?)?,
                actor: row.try_get("actor")?,
                kind: row.try_get("kind")?,
                subject: row.try_get("subject")?,
                reason: row.try_get("reason")?,
                detail,
            })
        })
        .collect()
}

/// The states of the given approvals (ids that do not exist are left out). One query per 500
/// ids, reading two columns: what the waiters' shared poller needs, never the bodies.
pub(crate) async fn approval_states(
    pool: &Pool,
    ids: &[String],
) -> Res<Vec<(String, ApprovalState)>> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let params: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT id, state FROM approvals WHERE id IN ({})",
            params.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for id in chunk {
            query = query.bind(id);
        }
        for row in query.fetch_all(pool).await? {
            let id: String = row.try_get("id")?;
            let state: String = row.try_get("state")?;
            let state = ApprovalState::parse(&state)
                .ok_or_else(|| StoreError::Corrupt(format!("approval {id}: state {state}")))?;
            out.push((id, state));
        }
    }
    Ok(out)
}
