//! The auditor API on the admin listener: sessions (list, show), the event export (JSON lines,
//! streamed) and a verification of the chain with the gateway's own key. For the configured
//! admins (`admin.users`/`admin.groups`) and auditors (`audit.auditors`); everyone else gets a
//! 403. Errors are Kubernetes `Status` objects, like the reviewer API's.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use holdpoint_store::{AuditFilter, AuditPublicKey};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Audit;
use super::query::{self, QueryError, Selection};
use crate::approvals::api::{ApiError, ApiResult, Authenticates, Caller};
use crate::config::Principals;
use crate::error::GatewayError;
use crate::identity::Identity;
use crate::phases::authenticate::AuthChain;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AuditApiState {
    /// The audit log.
    pub audit: Audit,
    /// The data path's authenticator chain.
    pub auth: Arc<AuthChain>,
    /// Who may read the log: the admins and the auditors.
    pub readers: Principals,
    /// The key checkpoints are verified with.
    pub public_key: AuditPublicKey,
}

impl Authenticates for AuditApiState {
    fn chain(&self) -> &AuthChain {
        &self.auth
    }

    fn audit(&self) -> Option<&Audit> {
        Some(&self.audit)
    }
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        match e {
            QueryError::NoSession(_) => ApiError(GatewayError::NotFound(e.to_string())),
            QueryError::Store(s) => ApiError(s.into()),
            QueryError::Corrupt { .. } => ApiError(GatewayError::Internal(e.to_string())),
        }
    }
}

/// The routes.
pub fn router(state: AuditApiState) -> Router {
    Router::new()
        .route("/v1/audit/sessions", get(list))
        .route("/v1/audit/sessions/{id}", get(show))
        .route("/v1/audit/events", get(export))
        .route("/v1/audit/verify", get(verify))
        .with_state(state)
}

fn authorize(state: &AuditApiState, who: &Identity) -> Result<(), ApiError> {
    let ok = state.readers.users.contains(&who.username)
        || who.groups.iter().any(|g| state.readers.groups.contains(g));
    if ok {
        Ok(())
    } else {
        Err(ApiError(GatewayError::Forbidden(format!(
            "{} may not read the audit log: only the configured admins and auditors may",
            who.username
        ))))
    }
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    user: Option<String>,
    since: Option<String>,
    limit: Option<usize>,
}

fn since(state: &AuditApiState, text: Option<&str>) -> Result<Option<jiff::Timestamp>, ApiError> {
    text.filter(|t| !t.is_empty())
        .map(|t| query::parse_since(t, state.audit.now()))
        .transpose()
        .map_err(|e| ApiError(GatewayError::BadRequest(e)))
}

async fn list(
    State(state): State<AuditApiState>,
    Caller(who, _): Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    authorize(&state, &who)?;
    let sel = Selection {
        since: since(&state, q.since.as_deref())?,
        user: q.user.filter(|u| !u.is_empty()),
        ..Default::default()
    };
    let items = query::sessions(
        state.audit.store(),
        &sel,
        q.limit.unwrap_or(100).clamp(1, 10_000),
    )
    .await?;
    Ok(Json(json!({ "items": items })))
}

#[derive(Debug, Deserialize)]
struct ShowQuery {
    #[serde(default)]
    bodies: bool,
}

async fn show(
    State(state): State<AuditApiState>,
    Caller(who, _): Caller,
    Path(id): Path<String>,
    Query(q): Query<ShowQuery>,
) -> ApiResult<Json<Value>> {
    authorize(&state, &who)?;
    let events = query::session(state.audit.store(), &id, q.bodies).await?;
    Ok(Json(json!({
        "id": id,
        "timeline": query::timeline(&events, q.bodies),
        "events": events.iter().map(query::to_jsonl).collect::<Vec<_>>(),
    })))
}

#[derive(Debug, Deserialize)]
struct ExportQuery {
    format: Option<String>,
    since: Option<String>,
    user: Option<String>,
    session: Option<String>,
}

/// Streams the events as JSON lines, a page at a time.
async fn export(
    State(state): State<AuditApiState>,
    Caller(who, _): Caller,
    Query(q): Query<ExportQuery>,
) -> ApiResult<impl IntoResponse> {
    authorize(&state, &who)?;
    let k8s = match q.format.as_deref() {
        None | Some("") | Some("jsonl") => false,
        Some("k8s-audit") => true,
        Some(other) => {
            return Err(ApiError(GatewayError::BadRequest(format!(
                "unknown format {other:?}: jsonl or k8s-audit"
            ))));
        }
    };
    let since = since(&state, q.since.as_deref())?;
    let store = state.audit.store().clone();
    let filter = AuditFilter {
        since,
        username: q.user.filter(|u| !u.is_empty()),
        session_id: q.session.filter(|s| !s.is_empty()),
        limit: 1000,
        ..Default::default()
    };
    let pages = futures::stream::unfold(Some(None), move |after| {
        let store = store.clone();
        let filter = filter.clone();
        async move {
            let after: Option<i64> = after?;
            let page = match store
                .audit_events(&AuditFilter {
                    after_seq: after,
                    ..filter
                })
                .await
            {
                Ok(p) => p,
                Err(e) => return Some((Err(std::io::Error::other(e.to_string())), None)),
            };
            if page.is_empty() {
                return None;
            }
            let next = (page.len() == 1000).then(|| page.last().map(|e| e.seq));
            let mut out = Vec::new();
            for row in page {
                let line = match query::Stored::decode(row) {
                    Ok(s) if k8s => query::to_k8s(&s),
                    Ok(s) => query::to_jsonl(&s),
                    Err(e) => return Some((Err(std::io::Error::other(e.to_string())), None)),
                };
                out.extend_from_slice(line.to_string().as_bytes());
                out.push(b'\n');
            }
            Some((Ok(bytes::Bytes::from(out)), next))
        }
    });
    Ok((
        [(http::header::CONTENT_TYPE, "application/x-ndjson")],
        axum::body::Body::from_stream(pages),
    ))
}

async fn verify(
    State(state): State<AuditApiState>,
    Caller(who, _): Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    authorize(&state, &who)?;
    let since = since(&state, q.since.as_deref())?;
    let report = state
        .audit
        .store()
        .verify_audit(std::slice::from_ref(&state.public_key), since)
        .await
        .map_err(|e| ApiError(e.into()))?;
    Ok(Json(json!({
        "holds": report.holds(),
        "unsignedTail": report.unsigned_tail(),
        "report": report,
    })))
}
