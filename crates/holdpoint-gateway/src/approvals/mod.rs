//! Approvals: what a held request becomes, how its caller waits, and how it is executed.
//!
//! [`Approvals`] is the hold phase's implementation ([`Holder`]) and the service behind the
//! reviewer API ([`api`]). All state lives in the store ([`holdpoint_store::Store`]), never only
//! in this process, so a restart or another replica sees the same approvals:
//!
//! ```text
//!  held request ──create_or_attach──▶ pending ──votes (quorum, distinct, not the requester)──▶ approved
//!       │  waits up to `hold` for a change              │ any deny ──▶ denied (403 with the reason)
//!       │  (store notifications + polling)              ▼
//!       │                              execute mode: begin_execute (exactly one winner)
//!       │                              ──▶ executing ──send the stored bytes──▶ executed | failed
//!       │                              grant mode: the caller's identical request consumes it once
//!       └─ not decided within `hold` ──▶ 429 + Retry-After, message with id, reviewers, URL, `holdpoint wait`
//! ```
//!
//! Who sends an approved `execute` request: whoever sees it approved first calls
//! [`Approvals::execute`] — the API handler that cast the deciding vote, the caller still
//! waiting on it, or the sweeper that runs every second (approvals decided while no caller
//! waited, or by another replica). [`holdpoint_store::Store::begin_execute`] lets exactly one of
//! them send it; an approval left `executing` by a crash becomes `unknown` at the next start and
//! is never resent.

pub mod api;
pub mod freeze;
pub mod review;

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use holdpoint_store::{
    Approval as StoredApproval, ApprovalMode as StoreMode, ApprovalState, ExecutionOutcome,
    NewApproval, RequestBinding, RequestSummary, Requester, Reviewers as StoreReviewers, Store,
    StoreError, UpstreamResult,
};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};

use crate::audit::Audit;
use crate::body;
use crate::clock::Clock;
use crate::error::GatewayError;
use crate::headers::{ForwardContext, upstream_request_headers};
use crate::identity::Identity;
use crate::phases::Exchange;
use crate::phases::decide::{Approval as ApproveAction, ApprovalMode};
use crate::phases::hold::{HoldOutcome, Holder};
use crate::upstream::Upstream;

/// Caller headers kept with a held request and sent with it when it is executed. Everything
/// else (credentials, impersonation, hop-by-hop, forwarding headers) is never stored.
const STORED_HEADERS: [&str; 6] = [
    "accept",
    "content-type",
    "user-agent",
    "kubectl-command",
    "kubectl-session",
    "holdpoint-session",
];

/// The largest upstream answer read back when an approved request is executed; the store keeps
/// at most [`holdpoint_store::MAX_RESULT_BODY`] of it.
const EXECUTE_RESPONSE_LIMIT: usize = 4 * 1024 * 1024;

impl From<StoreError> for GatewayError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::SelfApproval
            | StoreError::NotAReviewer { .. }
            | StoreError::NotRequester(_) => GatewayError::Forbidden(e.to_string()),
            StoreError::NotFound(_) => GatewayError::NotFound(e.to_string()),
            StoreError::Expired(_) | StoreError::WrongState { .. } => {
                GatewayError::Conflict(e.to_string())
            }
            StoreError::Invalid(m) => GatewayError::BadRequest(m),
            StoreError::ReasonRequired => GatewayError::BadRequest(e.to_string()),
            other => GatewayError::StoreUnavailable(other.to_string()),
        }
    }
}

/// Settings of the approval service.
#[derive(Debug, Clone)]
pub struct ApprovalSettings {
    /// Base URL of the reviewer API (the admin listener), shown to callers.
    pub reviewer_url: String,
    /// `Retry-After` of the pending answer.
    pub retry_after: Duration,
    /// Stable name of this gateway instance (`instance_name`), recorded by `begin_execute`;
    /// after a restart the instance turns its own unfinished sends into `unknown`.
    pub instance: String,
    /// Whether executed requests carry `Impersonate-*` headers for the requester.
    pub impersonate: bool,
}

/// The approval service: the hold phase and what the reviewer API calls.
#[derive(Debug, Clone)]
pub struct Approvals {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    upstream: Upstream,
    clock: Arc<dyn Clock>,
    settings: ApprovalSettings,
    audit: Option<Audit>,
}

impl Approvals {
    /// A service on `store`, executing through `upstream`; approved requests it sends are
    /// recorded in `audit`.
    pub fn new(
        store: Store,
        upstream: Upstream,
        clock: Arc<dyn Clock>,
        settings: ApprovalSettings,
        audit: Option<Audit>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                upstream,
                clock,
                settings,
                audit,
            }),
        }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Now, from the injected clock.
    pub fn now(&self) -> jiff::Timestamp {
        self.inner.clock.now()
    }

    /// The reviewer API's base URL.
    pub fn reviewer_url(&self) -> &str {
        &self.inner.settings.reviewer_url
    }

    /// At start: approvals this instance (by its stable name) left `executing` become
    /// `unknown`; they are never resent. Other replicas' sends in progress are not touched.
    pub async fn recover(&self) -> Result<Vec<String>, StoreError> {
        let ids = self
            .inner
            .store
            .recover_after_crash(Some(&self.inner.settings.instance), self.now())
            .await?;
        for id in &ids {
            tracing::warn!(approval = %id, "approval was executing when the gateway stopped; its outcome is unknown and it is not resent");
        }
        Ok(ids)
    }

    /// Expires what is due and executes approved `execute` approvals nobody has sent yet.
    /// Runs every `interval` until `cancel`.
    pub async fn sweep_forever(
        self,
        interval: Duration,
        cancel: tokio_util::sync::CancellationToken,
    ) {
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
            if let Err(e) = self.sweep_once().await {
                tracing::warn!(error = %e, "approval sweep failed");
            }
        }
    }

    /// One sweep (see [`Approvals::sweep_forever`]).
    pub async fn sweep_once(&self) -> Result<(), StoreError> {
        self.inner.store.expire_due(self.now()).await?;
        let approved = self
            .inner
            .store
            .list_approvals(&holdpoint_store::ApprovalFilter {
                state: Some(ApprovalState::Approved),
                limit: 1000,
                ..Default::default()
            })
            .await?;
        for a in approved
            .into_iter()
            .filter(|a| a.mode == StoreMode::Execute)
        {
            self.execute(&a.id).await?;
        }
        Ok(())
    }

    /// Sends an approved `execute` approval upstream if nobody else has: marks it `executing`
    /// first (only one caller wins), sends exactly the stored bytes as the requester, records
    /// the answer. Returns the approval as it is afterwards.
    pub async fn execute(&self, id: &str) -> Result<StoredApproval, StoreError> {
        let store = &self.inner.store;
        let won = store
            .begin_execute(id, &self.inner.settings.instance, self.now())
            .await?;
        if won {
            let approval = store
                .get_approval(id)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("approval {id}")))?;
            let (outcome, result) = match self.send(&approval).await {
                Ok(result) => (ExecutionOutcome::Executed, Some(result)),
                Err(e) => {
                    tracing::warn!(approval = %id, error = %e, "sending the approved request failed");
                    (ExecutionOutcome::Failed, None)
                }
            };
            let done = store
                .finish_execute(id, outcome, result.as_ref(), self.now())
                .await?;
            tracing::info!(approval = %id, ?outcome, status = result.as_ref().map(|r| r.status), "approved request executed");
            self.record_execution(&done).await;
        }
        store
            .get_approval(id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("approval {id}")))
    }

    /// Records an approved request the gateway sent itself: what was sent (masked), the votes,
    /// and the upstream's answer, in the requester's session.
    async fn record_execution(&self, a: &StoredApproval) {
        let Some(audit) = &self.inner.audit else {
            return;
        };
        let votes = self
            .inner
            .store
            .approval_votes(&a.id)
            .await
            .unwrap_or_default();
        let header = |n: &str| {
            a.request
                .headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.clone())
        };
        let caller = crate::phases::record::CallerHeaders {
            user_agent: header("user-agent"),
            kubectl_command: a.kubectl_command.clone(),
            kubectl_session: a.kubectl_session.clone(),
            holdpoint_session: header("holdpoint-session"),
        };
        crate::audit::recorder::record_execution(
            audit,
            a,
            &requester_identity(&a.requester),
            caller,
            api::approval_note(a, &votes),
        );
    }

    /// Sends the stored request upstream with the gateway's credential, as the requester.
    async fn send(&self, approval: &StoredApproval) -> Result<UpstreamResult, GatewayError> {
        let r = &approval.request;
        let path_and_query = if r.query.is_empty() {
            r.path.clone()
        } else {
            format!("{}?{}", r.path, r.query)
        };
        let mut req = Request::new(Full::new(Bytes::from(r.body.clone())));
        *req.method_mut() = r
            .method
            .parse()
            .map_err(|_| GatewayError::Internal("stored method".into()))?;
        *req.uri_mut() = self.inner.upstream.uri_for(&path_and_query)?;
        *req.headers_mut() = self.upstream_headers(approval, None)?;
        let resp = self.inner.upstream.send(req).await?;
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = Limited::new(resp.into_body(), EXECUTE_RESPONSE_LIMIT)
            .collect()
            .await
            .map_err(|e| GatewayError::UpstreamUnavailable(e.to_string()))?
            .to_bytes();
        Ok(UpstreamResult::new(status, content_type, bytes.to_vec()))
    }

    /// The headers an approved request is sent with: the stored caller headers through the same
    /// hygiene as the data path, plus the requester's identity when impersonating.
    /// `accept` overrides the stored `Accept` (the reviewer view asks for JSON).
    fn upstream_headers(
        &self,
        approval: &StoredApproval,
        accept: Option<&str>,
    ) -> Result<HeaderMap, GatewayError> {
        let mut incoming = HeaderMap::new();
        for (name, value) in &approval.request.headers {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                incoming.append(n, v);
            }
        }
        match accept {
            Some(accept) => {
                incoming.insert(
                    header::ACCEPT,
                    HeaderValue::from_str(accept).unwrap_or(HeaderValue::from_static("*/*")),
                );
            }
            None => {
                // the answer goes back to the caller through the mask phase: ask for JSON only,
                // as the data path does (the caller's Accept was checked when it was held)
                let stored = incoming
                    .get(header::ACCEPT)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                incoming.insert(
                    header::ACCEPT,
                    crate::phases::mask::json_only_accept(stored.as_deref())
                        .unwrap_or(HeaderValue::from_static("application/json")),
                );
            }
        }
        // Refused, never sent without them: missing Impersonate-* would run the request as the
        // gateway itself.
        let identity = if self.inner.settings.impersonate {
            requester_identity(&approval.requester)
                .impersonation_headers()
                .map_err(|why| {
                    GatewayError::Forbidden(format!(
                        "the requester's identity cannot be passed to the Kubernetes API server: {why}"
                    ))
                })?
        } else {
            Vec::new()
        };
        let peer = approval
            .requester
            .source
            .as_deref()
            .and_then(|s| s.parse::<std::net::SocketAddr>().ok())
            .map(|a| a.ip())
            .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
        let audit_id = format!("{}-{}", approval.id, uuid::Uuid::new_v4().simple());
        let ctx = ForwardContext {
            peer,
            audit_id: &audit_id,
            upgrade: None,
            identity: &identity,
        };
        Ok(upstream_request_headers(&incoming, &ctx))
    }

    /// Sends an arbitrary read or dry run upstream for the reviewer view, as the requester.
    pub(crate) async fn send_for_review(
        &self,
        approval: &StoredApproval,
        method: http::Method,
        path_and_query: &str,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), GatewayError> {
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = method;
        *req.uri_mut() = self.inner.upstream.uri_for(path_and_query)?;
        *req.headers_mut() = self.upstream_headers(approval, Some("application/json"))?;
        let resp = self.inner.upstream.send(req).await?;
        let status = resp.status();
        let bytes = Limited::new(resp.into_body(), EXECUTE_RESPONSE_LIMIT)
            .collect()
            .await
            .map_err(|e| GatewayError::UpstreamUnavailable(e.to_string()))?
            .to_bytes();
        Ok((status, bytes))
    }

    async fn hold_request(
        &self,
        ex: &mut Exchange,
        headers: &HeaderMap,
        action: &ApproveAction,
        upgrade: bool,
    ) -> Result<HoldOutcome, GatewayError> {
        let store = &self.inner.store;
        let identity = ex
            .identity
            .as_ref()
            .ok_or_else(|| GatewayError::Internal("hold before authenticate".into()))?;
        // An upgrade (exec, attach, port-forward) can only run on the caller's own connection.
        let mode = match (upgrade, action.mode) {
            (true, _) | (false, ApprovalMode::Grant) => StoreMode::Grant,
            (false, ApprovalMode::Execute) => StoreMode::Execute,
        };
        let (path, query) = match ex.path.split_once('?') {
            Some((p, q)) => (p.to_owned(), q.to_owned()),
            None => (ex.path.clone(), String::new()),
        };
        let stored_headers = STORED_HEADERS
            .iter()
            .filter_map(|n| {
                headers
                    .get(*n)
                    .and_then(|v| v.to_str().ok())
                    .map(|v| ((*n).to_owned(), v.to_owned()))
            })
            .collect();
        let binding = RequestBinding::new(
            ex.method.as_str(),
            path,
            query,
            ex.content_type.clone(),
            stored_headers,
            ex.body.to_vec(),
        );
        let now = self.now();
        if mode == StoreMode::Grant
            && let Some(used) = store
                .consume_grant(&binding.binding_key(&identity.username), now)
                .await?
        {
            tracing::info!(approval = %used.id, "approved grant used by the identical request");
            ex.approval = Some(api::approval_note(&used, &[]));
            return Ok(HoldOutcome::Forward);
        }
        let header_text = |n: &str| {
            headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let info = ex.info.as_ref();
        let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        let new = NewApproval {
            requester: Requester {
                username: identity.username.clone(),
                groups: identity.groups.clone(),
                uid: identity.uid.clone(),
                extra: identity.extra.clone(),
                authenticator: identity.authenticator.clone(),
                source: Some(ex.peer.to_string()),
            },
            request: binding,
            summary: RequestSummary {
                verb: info.map(|i| i.verb.clone()).unwrap_or_default(),
                group: info.map(|i| i.api_group.clone()).unwrap_or_default(),
                version: info.map(|i| i.api_version.clone()).unwrap_or_default(),
                resource: info.map(|i| i.resource.clone()).unwrap_or_default(),
                subresource: info.and_then(|i| non_empty(&i.subresource)),
                namespace: info.and_then(|i| non_empty(&i.namespace)),
                name: info.and_then(|i| non_empty(&i.name)),
            },
            kubectl_command: header_text("kubectl-command"),
            kubectl_session: header_text("kubectl-session"),
            rule: ex
                .decision
                .as_ref()
                .map(|d| match d {
                    crate::phases::decide::Decision::Allow { rule }
                    | crate::phases::decide::Decision::Deny { rule, .. }
                    | crate::phases::decide::Decision::Hold { rule, .. } => rule.clone(),
                })
                .unwrap_or_default(),
            reviewers: StoreReviewers {
                users: action.reviewers.users.clone(),
                groups: action.reviewers.groups.clone(),
            },
            quorum: action.quorum,
            mode,
            created_at: now,
            expires_at: now
                .checked_add(jiff::SignedDuration::try_from(action.ttl).unwrap_or_default())
                .unwrap_or(now),
        };
        // A retry of an executed request (a client that re-sends between two holds, or an
        // agent that re-sends after `holdpoint wait`) gets the recorded answer while the
        // approval's time to live lasts: the request is never applied twice.
        let replay = match mode {
            StoreMode::Execute => store
                .list_approvals(&holdpoint_store::ApprovalFilter {
                    binding_key: Some(new.request.binding_key(&identity.username)),
                    limit: 1,
                    ..Default::default()
                })
                .await?
                .into_iter()
                .next()
                .filter(|a| {
                    a.mode == StoreMode::Execute
                        && matches!(
                            a.state,
                            ApprovalState::Executed
                                | ApprovalState::Failed
                                | ApprovalState::Unknown
                        )
                        && a.expires_at > now
                }),
            StoreMode::Grant => None,
        };
        let (mut approval, attached) = match replay {
            Some(done) => (done, true),
            None => store.create_or_attach(&new).await?,
        };
        if attached {
            tracing::info!(approval = %approval.id, state = %approval.state, "identical request attached to its approval");
        } else {
            tracing::info!(approval = %approval.id, rule = %approval.rule, "request held for approval");
        }
        ex.approval = Some(api::approval_note(&approval, &[]));

        let deadline = tokio::time::Instant::now() + action.hold;
        loop {
            match approval.state {
                ApprovalState::Approved if approval.mode == StoreMode::Execute => {
                    approval = self.execute(&approval.id).await?;
                    continue;
                }
                ApprovalState::Approved => {
                    // grant: this caller's own request uses it, once.
                    if store
                        .consume_grant(&approval.binding_key, self.now())
                        .await?
                        .is_some()
                    {
                        return Ok(HoldOutcome::Forward);
                    }
                    approval = refetch(store, &approval.id).await?;
                    if approval.state == ApprovalState::Approved {
                        return Err(GatewayError::Internal(format!(
                            "approval {} is approved but its grant could not be used",
                            approval.id
                        )));
                    }
                    continue;
                }
                ApprovalState::Executed | ApprovalState::Failed | ApprovalState::Unknown
                    if approval.mode == StoreMode::Execute =>
                {
                    return executed_response(&approval);
                }
                ApprovalState::Executed => {
                    return Err(GatewayError::Conflict(format!(
                        "approval {} was already used by an identical request; send it again to ask for a new approval",
                        approval.id
                    )));
                }
                ApprovalState::Denied => {
                    let reason = self.denial_reason(&approval).await;
                    return Err(GatewayError::Forbidden(format!(
                        "request denied by {reason} (approval {})",
                        approval.id
                    )));
                }
                ApprovalState::Expired => {
                    return Err(GatewayError::Forbidden(format!(
                        "approval {} expired before reviewers decided; sending the request again asks for a new approval",
                        approval.id
                    )));
                }
                ApprovalState::Cancelled => {
                    return Err(GatewayError::Forbidden(format!(
                        "approval {} was cancelled by the requester",
                        approval.id
                    )));
                }
                ApprovalState::Failed | ApprovalState::Unknown => {
                    return Err(GatewayError::Conflict(format!(
                        "approval {} is {}",
                        approval.id, approval.state
                    )));
                }
                ApprovalState::Pending | ApprovalState::Executing => {}
            }
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            if remaining.is_zero() {
                return Err(GatewayError::Pending {
                    message: self.pending_message(&approval),
                    retry_after: self.inner.settings.retry_after.as_secs().max(1),
                });
            }
            approval = store
                .wait_for_change(&approval.id, approval.state, remaining)
                .await?;
        }
    }

    async fn denial_reason(&self, approval: &StoredApproval) -> String {
        let votes = self
            .inner
            .store
            .approval_votes(&approval.id)
            .await
            .unwrap_or_default();
        match votes
            .iter()
            .find(|v| v.decision == holdpoint_store::Decision::Deny)
        {
            Some(v) => format!(
                "reviewer {}: {}",
                v.reviewer,
                v.reason.as_deref().unwrap_or("no reason given")
            ),
            None => "a reviewer".into(),
        }
    }

    /// The message a caller gets while its request waits: everything an agent needs, since
    /// agent tools drop every field of a `Status` but the message.
    pub fn pending_message(&self, approval: &StoredApproval) -> String {
        let mut who = Vec::new();
        if !approval.reviewers.users.is_empty() {
            who.push(format!("user {}", approval.reviewers.users.join(", ")));
        }
        if !approval.reviewers.groups.is_empty() {
            who.push(format!("group {}", approval.reviewers.groups.join(", ")));
        }
        let mut m = format!(
            "Holdpoint is holding this request for human approval: approval {id} is {state}, waiting for {quorum} approval(s) from {who} (review: {url}/v1/approvals/{id}). ",
            id = approval.id,
            state = approval.state,
            quorum = approval.quorum,
            who = who.join(" or "),
            url = self.inner.settings.reviewer_url,
        );
        let _ = write!(
            m,
            "Wait for the decision with `holdpoint wait {id}`, or send the identical request again later: it attaches to the same approval and is never applied twice. It expires at {exp}.",
            id = approval.id,
            exp = approval.expires_at,
        );
        if approval.mode == StoreMode::Grant {
            m.push_str(" Once approved, send the identical request again to run it (once).");
        } else {
            m.push_str(" Once approved, Holdpoint sends it itself.");
        }
        m
    }
}

async fn refetch(store: &Store, id: &str) -> Result<StoredApproval, GatewayError> {
    store
        .get_approval(id)
        .await?
        .ok_or_else(|| GatewayError::NotFound(format!("approval {id}")))
}

/// The identity an approval's requester had, for impersonation when it is executed.
fn requester_identity(r: &Requester) -> Identity {
    Identity {
        username: r.username.clone(),
        groups: r.groups.clone(),
        uid: r.uid.clone(),
        extra: r.extra.clone(),
        authenticator: r.authenticator.clone(),
    }
}

/// The caller's answer for an executed approval: the upstream's own answer, as stored.
fn executed_response(approval: &StoredApproval) -> Result<HoldOutcome, GatewayError> {
    match (&approval.state, &approval.result) {
        (ApprovalState::Executed, Some(result)) if !result.truncated => {
            let mut resp = Response::new(body::full(Bytes::from(result.body.clone())));
            *resp.status_mut() =
                StatusCode::from_u16(result.status).unwrap_or(StatusCode::BAD_GATEWAY);
            if let Some(ct) = result
                .content_type
                .as_deref()
                .and_then(|c| HeaderValue::from_str(c).ok())
            {
                resp.headers_mut().insert(header::CONTENT_TYPE, ct);
            }
            Ok(HoldOutcome::Respond(resp))
        }
        (ApprovalState::Executed, Some(result)) => Err(GatewayError::Conflict(format!(
            "approval {} was executed (upstream status {}), but its answer is too large to replay; read the object to see the result",
            approval.id, result.status
        ))),
        (ApprovalState::Unknown, _) => Err(GatewayError::Conflict(format!(
            "approval {} was being sent when the gateway stopped; its outcome is unknown and it is not resent: check the object",
            approval.id
        ))),
        _ => Err(GatewayError::UpstreamUnavailable(format!(
            "approval {} was approved but sending it failed",
            approval.id
        ))),
    }
}

impl Holder for Approvals {
    fn hold<'a>(
        &'a self,
        exchange: &'a mut Exchange,
        headers: &'a HeaderMap,
        action: &'a ApproveAction,
        upgrade: bool,
    ) -> BoxFuture<'a, Result<HoldOutcome, GatewayError>> {
        Box::pin(async move {
            let outcome = self.hold_request(exchange, headers, action, upgrade).await;
            // The record phase shows the approval as it is when the request leaves, with votes.
            if let Some(note) = &mut exchange.approval
                && let Ok(Some(a)) = self.inner.store.get_approval(&note.id).await
            {
                let votes = self
                    .inner
                    .store
                    .approval_votes(&a.id)
                    .await
                    .unwrap_or_default();
                *note = api::approval_note(&a, &votes);
            }
            outcome
        })
    }
}

/// The response body of an executed approval, for the API.
pub(crate) fn result_json(result: &UpstreamResult) -> serde_json::Value {
    let body = std::str::from_utf8(&result.body)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok());
    serde_json::json!({
        "status": result.status,
        "contentType": result.content_type,
        "truncated": result.truncated,
        "body": body,
    })
}
