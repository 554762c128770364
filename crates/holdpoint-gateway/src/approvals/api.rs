//! The reviewer REST API, served on the admin listener: list, show (with everything a reviewer
//! needs to decide), approve, deny, cancel, wait; the freeze; and the OpenAPI document that
//! describes it all (`/openapi.json`, from `openapi.yaml` next to this file).
//!
//! Callers authenticate with the same authenticator chain as the data path. Authorisation:
//! approving and denying is for the approval's reviewers (from the policy rule that held it,
//! checked by the store, which also refuses self-approval); cancelling is for the requester;
//! seeing an approval is for its requester, its reviewers and the configured admins; switching
//! the freeze is for the admins. Every error is a Kubernetes `Status`, like the data path's.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use holdpoint_store::{
    Approval as StoredApproval, ApprovalFilter, ApprovalState, Decision as Vote, FreezeMode, Voter,
};
use http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Approvals, result_json, review};
use crate::audit::event::holdpoint_object;
use crate::audit::{AdminAction, Audit};
use crate::error::GatewayError;
use crate::identity::Identity;
use crate::phases::authenticate::{AuthChain, ConnectionInfo};
use crate::phases::decide::FreezeHandle;

/// The OpenAPI 3 document of this API (YAML source; served as JSON).
pub const OPENAPI_YAML: &str = include_str!("openapi.yaml");

/// Who may see every approval and switch the freeze.
#[derive(Debug, Clone, Default)]
pub struct Admins {
    /// Usernames.
    pub users: Vec<String>,
    /// Groups.
    pub groups: Vec<String>,
}

impl Admins {
    fn includes(&self, who: &Identity) -> bool {
        self.users.contains(&who.username) || who.groups.iter().any(|g| self.groups.contains(g))
    }
}

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct ApiState {
    /// The approval service.
    pub approvals: Approvals,
    /// The authenticator chain (the data path's).
    pub auth: Arc<AuthChain>,
    /// Admins.
    pub admins: Admins,
    /// The freeze the decider reads; updated at once when switched here.
    pub freeze: FreezeHandle,
    /// The audit log reviewer and admin actions are recorded in.
    pub audit: Option<Audit>,
}

impl ApiState {
    /// Records a reviewer or admin action in the audit log.
    async fn record(&self, who: &Identity, peer: std::net::IpAddr, action: AdminAction<'_>) {
        if let Some(audit) = &self.audit {
            audit
                .admin(&AdminAction {
                    actor: Some(who),
                    source: Some(peer),
                    ..action
                })
                .await;
        }
    }
}

/// An approval and its votes, as the audit log records them.
pub(crate) fn approval_note(
    a: &StoredApproval,
    votes: &[holdpoint_store::Vote],
) -> crate::phases::record::ApprovalNote {
    crate::phases::record::ApprovalNote {
        id: a.id.clone(),
        state: a.state.to_string(),
        mode: a.mode.to_string(),
        votes: votes
            .iter()
            .map(|v| crate::phases::record::VoteNote {
                reviewer: v.reviewer.clone(),
                decision: v.decision.as_str().into(),
                reason: v.reason.clone(),
                at: v.at,
            })
            .collect(),
    }
}

/// The audit record of an API action on approval `id`: `Ok(note)` when it was done, else the
/// error it was refused with.
fn approval_action<'a>(
    action: &'a str,
    id: &str,
    result: Result<crate::phases::record::ApprovalNote, &GatewayError>,
    reason: Option<String>,
) -> AdminAction<'a> {
    let (status, outcome, note) = match result {
        Ok(note) => (200, "ok".to_owned(), Some(note)),
        Err(e) => (e.status_code().as_u16(), e.to_string(), None),
    };
    AdminAction {
        actor: None,
        actor_name: None,
        source: None,
        action,
        request_uri: format!("/v1/approvals/{id}/{action}"),
        object: holdpoint_object("approvals", id),
        outcome,
        status,
        reason,
        detail: None,
        approval: note,
        user_agent: None,
    }
}

/// An error as the API answers it: a Kubernetes `Status`.
pub(crate) struct ApiError(pub(crate) GatewayError);

impl From<GatewayError> for ApiError {
    fn from(e: GatewayError) -> Self {
        Self(e)
    }
}

impl From<holdpoint_store::StoreError> for ApiError {
    fn from(e: holdpoint_store::StoreError) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> axum::response::Response {
        let resp = self.0.to_response();
        let (parts, body) = resp.into_parts();
        axum::response::Response::from_parts(parts, axum::body::Body::new(body))
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

/// The API's routes (the admin listener adds `/healthz`, `/metrics`, ...).
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/v1/approvals", get(list))
        .route("/v1/approvals/{id}", get(show))
        .route("/v1/approvals/{id}/approve", post(approve))
        .route("/v1/approvals/{id}/deny", post(deny))
        .route("/v1/approvals/{id}/cancel", post(cancel))
        .route("/v1/approvals/{id}/wait", get(wait))
        .route("/v1/freeze", get(get_freeze).put(put_freeze))
        .with_state(state)
}

/// The state of an admin-listener API whose callers authenticate with the data path's chain.
pub(crate) trait Authenticates {
    /// The chain.
    fn chain(&self) -> &AuthChain;
    /// The audit log refused authentications are recorded in.
    fn audit(&self) -> Option<&Audit>;
}

impl Authenticates for ApiState {
    fn chain(&self) -> &AuthChain {
        &self.auth
    }

    fn audit(&self) -> Option<&Audit> {
        self.audit.as_ref()
    }
}

/// The authenticated caller of an API request: every handler takes one, so no route can forget
/// to authenticate. Uses the data path's chain on the request headers and the connection the
/// admin listener attached (`ConnectionInfo` extension).
pub(crate) struct Caller(pub(crate) Identity, pub(crate) std::net::IpAddr);

impl<S: Authenticates + Send + Sync> axum::extract::FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let conn = parts
            .extensions
            .get::<ConnectionInfo>()
            .ok_or_else(|| GatewayError::Internal("no connection info".into()))?;
        match state.chain().authenticate(&parts.headers, conn).await {
            Ok(identity) => Ok(Caller(identity, conn.peer.ip())),
            Err(e) => {
                // Recorded like the data path's refusals: source, path, why (never the
                // credential); not waited for, so a flood of bad tokens cannot stall the API.
                if let Some(audit) = state.audit() {
                    audit.admin_refused(&AdminAction {
                        actor: None,
                        actor_name: Some("system:anonymous".into()),
                        source: Some(conn.peer.ip()),
                        action: "authenticate",
                        request_uri: parts.uri.path().to_owned(),
                        object: Default::default(),
                        outcome: e.to_string(),
                        status: e.status_code().as_u16(),
                        reason: None,
                        detail: None,
                        approval: None,
                        user_agent: parts
                            .headers
                            .get(http::header::USER_AGENT)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned),
                    });
                }
                Err(e.into())
            }
        }
    }
}

async fn openapi() -> ApiResult<Json<Value>> {
    let doc: Value = serde_saphyr::from_str(OPENAPI_YAML)
        .map_err(|e| GatewayError::Internal(format!("openapi document: {e}")))?;
    Ok(Json(doc))
}

fn may_see(state: &ApiState, who: &Identity, a: &StoredApproval) -> bool {
    a.requester.username == who.username
        || a.reviewers.includes(&voter(who))
        || state.admins.includes(who)
}

fn voter(who: &Identity) -> Voter {
    Voter {
        username: who.username.clone(),
        groups: who.groups.clone(),
    }
}

/// The summary of an approval, as listed.
fn summary_json(a: &StoredApproval) -> Value {
    json!({
        "id": a.id,
        "state": a.state,
        "mode": a.mode,
        "requester": a.requester,
        "request": {
            "method": a.request.method,
            "path": a.request.path,
            "query": a.request.query,
            "contentType": a.request.content_type,
            "bodySha256": a.request.body_sha256,
            "bodyBytes": a.request.body.len(),
        },
        "summary": a.summary,
        "kubectlCommand": a.kubectl_command,
        "kubectlSession": a.kubectl_session,
        "rule": a.rule,
        "reviewers": a.reviewers,
        "quorum": a.quorum,
        "createdAt": a.created_at,
        "expiresAt": a.expires_at,
        "decidedAt": a.decided_at,
        "result": a.result.as_ref().map(result_json),
    })
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    state: Option<String>,
    requester: Option<String>,
    namespace: Option<String>,
    limit: Option<u32>,
}

async fn list(
    State(state): State<ApiState>,
    Caller(who, _): Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let state_filter = match q.state.as_deref() {
        None | Some("") => None,
        Some(s) => Some(
            ApprovalState::parse(s)
                .ok_or_else(|| GatewayError::BadRequest(format!("unknown state {s:?}")))?,
        ),
    };
    let filter = ApprovalFilter {
        state: state_filter,
        requester: q.requester,
        namespace: q.namespace,
        limit: q.limit.unwrap_or(100).clamp(1, 1000),
        ..Default::default()
    };
    let items: Vec<Value> = state
        .approvals
        .store()
        .list_approvals(&filter)
        .await?
        .iter()
        .filter(|a| may_see(&state, &who, a))
        .map(summary_json)
        .collect();
    Ok(Json(json!({ "items": items })))
}

async fn visible(state: &ApiState, who: &Identity, id: &str) -> ApiResult<StoredApproval> {
    let a = state
        .approvals
        .store()
        .get_approval(id)
        .await?
        .filter(|a| may_see(state, who, a))
        // Not visible and not there look the same: ids are not disclosed.
        .ok_or_else(|| GatewayError::NotFound(format!("approval {id} not found")))?;
    Ok(a)
}

async fn show(
    State(state): State<ApiState>,
    Caller(who, _): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let a = visible(&state, &who, &id).await?;
    let store = state.approvals.store();
    let votes: Vec<Value> = store
        .approval_votes(&id)
        .await?
        .into_iter()
        .map(|v| json!({"reviewer": v.reviewer, "decision": v.decision, "reason": v.reason, "at": v.at}))
        .collect();
    let events: Vec<Value> = store
        .approval_events(&id)
        .await?
        .into_iter()
        .map(|e| json!({"from": e.from_state, "to": e.to_state, "actor": e.actor, "reason": e.reason, "at": e.at}))
        .collect();
    let mut out = summary_json(&a);
    out["votes"] = Value::Array(votes);
    out["events"] = Value::Array(events);
    out["review"] = review_json(&state.approvals, &a).await;
    Ok(Json(out))
}

/// Everything a reviewer sees besides the approval itself: the decoded request, the live
/// object, the server-side dry run of the same request and the diff between them, and the risk
/// flags. Nothing is sent for real: reads and `dryRun=All` only.
async fn review_json(approvals: &Approvals, a: &StoredApproval) -> Value {
    let format = kube_request::BodyFormat::from_content_type(
        a.request.content_type.as_deref().unwrap_or(""),
    );
    let decoded = review::decode_body(&format, &a.request.body);
    let info = kube_request::classify(
        &a.request.method.parse().unwrap_or(Method::GET),
        &a.request.path,
        (!a.request.query.is_empty()).then_some(a.request.query.as_str()),
    )
    .ok();
    let flags = info
        .as_ref()
        .map(|i| review::flags(i, decoded.as_ref()))
        .unwrap_or_default();
    let mut out = json!({
        "request": decoded.as_ref().map(review::to_yaml),
        "requestUndecoded": decoded.is_none() && !a.request.body.is_empty(),
        "flags": flags,
    });
    let Some(info) = info.filter(|i| i.is_resource_request) else {
        return out;
    };
    let writes = !matches!(info.verb.as_str(), "get" | "list" | "watch" | "")
        && info.subresource.is_empty()
        || matches!(info.subresource.as_str(), "status" | "scale");
    if !writes {
        return out;
    }
    // The live object (for writes to an existing object).
    let live = if info.name.is_empty() {
        None
    } else {
        // Only plain objects and their `status`/`scale` get here: each is readable at the
        // request's own path, so live and dry-run result are the same kind of object.
        let object_path = a.request.path.clone();
        match approvals
            .send_for_review(a, Method::GET, &object_path, bytes::Bytes::new())
            .await
        {
            Ok((status, body)) if status.is_success() => serde_json::from_slice(&body).ok(),
            _ => None,
        }
    };
    // The same request as a server-side dry run.
    let query = if a.request.query.is_empty() {
        "dryRun=All".to_owned()
    } else {
        format!("{}&dryRun=All", a.request.query)
    };
    let method = a.request.method.parse().unwrap_or(Method::GET);
    let dry = approvals
        .send_for_review(
            a,
            method,
            &format!("{}?{query}", a.request.path),
            bytes::Bytes::from(a.request.body.clone()),
        )
        .await;
    let (dry_status, dry_value) = match dry {
        Ok((status, body)) => (
            Some(status.as_u16()),
            serde_json::from_slice::<Value>(&body).ok(),
        ),
        Err(e) => (None, Some(json!({"error": e.to_string()}))),
    };
    let after = match info.verb.as_str() {
        "delete" => None,
        _ => dry_value
            .as_ref()
            .filter(|v| v.get("kind").and_then(Value::as_str) != Some("Status")),
    };
    out["live"] = live.as_ref().map(review::to_yaml).into();
    out["dryRun"] = json!({
        "status": dry_status,
        "result": dry_value.as_ref().map(review::to_yaml),
    });
    if info.verb == "deletecollection" {
        out["wouldDelete"] = dry_value
            .as_ref()
            .and_then(|v| v.get("items"))
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| i.pointer("/metadata/name").and_then(Value::as_str))
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .into();
    } else {
        out["diff"] = Value::String(review::diff(live.as_ref(), after));
    }
    out
}

#[derive(Debug, Deserialize, Default)]
struct ReasonBody {
    #[serde(default)]
    reason: Option<String>,
}

async fn vote(
    state: ApiState,
    who: Identity,
    peer: std::net::IpAddr,
    id: String,
    decision: Vote,
    body: Option<Json<ReasonBody>>,
) -> ApiResult<Json<Value>> {
    let reason = body.and_then(|Json(b)| b.reason).filter(|r| !r.is_empty());
    if decision == Vote::Deny && reason.is_none() {
        return Err(GatewayError::BadRequest("a denial needs a reason".into()).into());
    }
    let voted = state
        .approvals
        .store()
        .vote(
            &id,
            &voter(&who),
            decision,
            reason.as_deref(),
            state.approvals.now(),
        )
        .await
        .map_err(GatewayError::from);
    let note = match &voted {
        Ok(r) => Ok(approval_note(
            &r.approval,
            &state.approvals.store().approval_votes(&id).await?,
        )),
        Err(e) => Err(e),
    };
    state
        .record(
            &who,
            peer,
            approval_action(decision.as_str(), &id, note, reason.clone()),
        )
        .await;
    let result = voted?;
    tracing::info!(approval = %id, reviewer = %who.username, ?decision, counted = result.counted, state = %result.approval.state, "vote");
    let mut approval = result.approval;
    if approval.state == ApprovalState::Approved
        && approval.mode == holdpoint_store::ApprovalMode::Execute
    {
        // Sent at once from here; the waiting caller (if any) reads the stored answer.
        approval = state.approvals.execute(&approval.id).await?;
        if approval.state == ApprovalState::Executing {
            // Someone else (the waiting caller, the sweeper) won the send: show its outcome.
            approval = state
                .approvals
                .store()
                .wait_for_change(
                    &approval.id,
                    ApprovalState::Executing,
                    Duration::from_secs(30),
                )
                .await?;
        }
    }
    let mut out = summary_json(&approval);
    out["counted"] = result.counted.into();
    out["approvals"] = result.approvals.into();
    Ok(Json(out))
}

async fn approve(
    State(state): State<ApiState>,
    Caller(who, peer): Caller,
    Path(id): Path<String>,
    body: Option<Json<ReasonBody>>,
) -> ApiResult<Json<Value>> {
    vote(state, who, peer, id, Vote::Approve, body).await
}

async fn deny(
    State(state): State<ApiState>,
    Caller(who, peer): Caller,
    Path(id): Path<String>,
    body: Option<Json<ReasonBody>>,
) -> ApiResult<Json<Value>> {
    vote(state, who, peer, id, Vote::Deny, body).await
}

async fn cancel(
    State(state): State<ApiState>,
    Caller(who, peer): Caller,
    Path(id): Path<String>,
    body: Option<Json<ReasonBody>>,
) -> ApiResult<Json<Value>> {
    let reason = body.and_then(|Json(b)| b.reason);
    let cancelled = state
        .approvals
        .store()
        .cancel(&id, &who.username, reason.as_deref(), state.approvals.now())
        .await
        .map_err(GatewayError::from);
    let note = cancelled.as_ref().map(|a| approval_note(a, &[]));
    state
        .record(&who, peer, approval_action("cancel", &id, note, reason))
        .await;
    Ok(Json(summary_json(&cancelled?)))
}

#[derive(Debug, Deserialize)]
struct WaitQuery {
    /// `30s`, `5m`, ... (default 60 s, at most 10 minutes per call).
    timeout: Option<String>,
}

async fn wait(
    State(state): State<ApiState>,
    Caller(who, _): Caller,
    Path(id): Path<String>,
    Query(q): Query<WaitQuery>,
) -> ApiResult<Json<Value>> {
    let timeout = match q.timeout.as_deref() {
        None | Some("") => Duration::from_secs(60),
        Some(t) => crate::config::parse_duration(t)
            .map_err(|e| GatewayError::BadRequest(format!("timeout: {e}")))?,
    }
    .min(Duration::from_secs(600));
    let deadline = tokio::time::Instant::now() + timeout;
    let mut a = visible(&state, &who, &id).await?;
    loop {
        if a.state == ApprovalState::Approved && a.mode == holdpoint_store::ApprovalMode::Execute {
            a = state.approvals.execute(&a.id).await?;
            continue;
        }
        // (approved `execute` approvals were just executed above)
        let settled = !matches!(a.state, ApprovalState::Pending | ApprovalState::Executing);
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        if settled || remaining.is_zero() {
            break;
        }
        a = state
            .approvals
            .store()
            .wait_for_change(&a.id, a.state, remaining)
            .await?;
    }
    let mut out = summary_json(&a);
    if a.state == ApprovalState::Denied {
        let votes = state.approvals.store().approval_votes(&a.id).await?;
        out["denial"] = votes
            .iter()
            .find(|v| v.decision == Vote::Deny)
            .map(|v| json!({"reviewer": v.reviewer, "reason": v.reason}))
            .into();
    }
    Ok(Json(out))
}

async fn get_freeze(State(state): State<ApiState>, _caller: Caller) -> ApiResult<Json<Value>> {
    let f = state.approvals.store().freeze().await?;
    Ok(Json(serde_json::to_value(f).unwrap_or_default()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FreezeBody {
    on: bool,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    mode: Option<FreezeMode>,
}

async fn put_freeze(
    State(state): State<ApiState>,
    Caller(who, peer): Caller,
    Json(body): Json<FreezeBody>,
) -> ApiResult<impl IntoResponse> {
    let action = if body.on { "freeze.on" } else { "freeze.off" };
    let record = |status: u16, outcome: String, detail: Option<Value>| AdminAction {
        actor: None,
        actor_name: None,
        source: None,
        action,
        request_uri: "/v1/freeze".into(),
        object: holdpoint_object("settings", "freeze"),
        outcome,
        status,
        reason: body.reason.clone(),
        detail,
        approval: None,
        user_agent: None,
    };
    if !state.admins.includes(&who) {
        let e = GatewayError::Forbidden(format!(
            "{} may not switch the freeze: only the configured admins may",
            who.username
        ));
        state
            .record(&who, peer, record(403, e.to_string(), None))
            .await;
        return Err(e.into());
    }
    if body.on && body.reason.as_deref().unwrap_or("").is_empty() {
        return Err(GatewayError::BadRequest("a freeze needs a reason".into()).into());
    }
    let f = state
        .approvals
        .store()
        .set_freeze(
            body.on,
            body.mode.unwrap_or_default(),
            body.reason.as_deref(),
            &who.username,
            state.approvals.now(),
        )
        .await?;
    super::freeze::apply(&state.freeze, &f);
    tracing::warn!(on = f.on, by = %who.username, reason = ?f.reason, "freeze switched");
    state
        .record(
            &who,
            peer,
            record(200, "ok".into(), serde_json::to_value(&f).ok()),
        )
        .await;
    Ok((
        StatusCode::OK,
        Json(serde_json::to_value(f).unwrap_or_default()),
    ))
}
