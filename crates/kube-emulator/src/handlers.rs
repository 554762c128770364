//! Resource verbs: get, list (selectors, `limit`/`continue`, Table and partial metadata), watch,
//! create, update, patch (all four types), delete, deletecollection, `dryRun=All`, and the
//! `status`, `scale`, `log`, `token` and `approval` subresources; plus the create-only review
//! resources (TokenReview, SelfSubjectReview, SelfSubjectAccessReview, ...).

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{HeaderMap, Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::auth::{self, Identity, TokenClaims};
use crate::error::{ApiError, ApiResult};
use crate::objects::{self, now_rfc3339, now_secs};
use crate::patch::{self, PatchType};
use crate::resources::ResourceInfo;
use crate::respond::{As, Body, Negotiated, bytes_response, value_response};
use crate::router::App;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::store::{Change, EventType};
use crate::table::{self, IncludeObject};
use crate::watch::{self, WatchParams, with_version};

/// One routed resource request.
#[derive(Debug)]
pub struct Ctx {
    /// Server state.
    pub app: Arc<App>,
    /// The resource addressed.
    pub res: ResourceInfo,
    /// Namespace ("" for cluster scope or all namespaces).
    pub ns: String,
    /// No namespace in the path.
    pub all_namespaces: bool,
    /// Object name.
    pub name: Option<String>,
    /// Subresource.
    pub sub: Option<String>,
    /// Query parameters.
    pub q: HashMap<String, String>,
    /// All `dryRun` values.
    pub dry_run: Vec<String>,
    /// Request headers.
    pub headers: HeaderMap,
    /// Request body.
    pub body: Bytes,
    /// Negotiated response format.
    pub neg: Negotiated,
    /// Client accepts gzip.
    pub gzip: bool,
    /// The (possibly impersonated) caller.
    pub identity: Identity,
    /// Legacy `/watch/` prefix used.
    pub watch_prefix: bool,
}

impl Ctx {
    fn qb(&self, k: &str) -> bool {
        self.q.get(k).is_some_and(|v| v == "true" || v == "1")
    }

    fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json")
    }

    /// Validates `dryRun` (query and, for deletes, the body) for an options kind.
    fn dry(&self, options_kind: &str, extra: &[String]) -> ApiResult<bool> {
        let all: Vec<&String> = self.dry_run.iter().chain(extra.iter()).collect();
        if all.iter().any(|v| v.as_str() != "All") {
            let shown: Vec<String> = all.iter().map(|v| format!("\"{v}\"")).collect();
            return Err(ApiError::invalid(
                "meta.k8s.io",
                options_kind,
                "",
                &[(
                    "dryRun".into(),
                    format!(
                        "Unsupported value: []string{{{}}}: supported values: \"All\"",
                        shown.join(", ")
                    ),
                )],
            ));
        }
        Ok(!all.is_empty())
    }

    fn respond(&self, status: StatusCode, v: &Value) -> Response<Body> {
        let out = match self.neg.as_ {
            As::Table => json!({
                "kind": "Table",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": {"resourceVersion": v["metadata"]["resourceVersion"]},
                "columnDefinitions": table::columns(&self.res),
                "rows": [table::row(&self.res, v, now_secs(), self.include())],
            }),
            As::PartialMetadata => table::partial_metadata(v),
            _ => with_version(&self.res, v),
        };
        value_response(
            status,
            &out,
            Negotiated {
                yaml: self.neg.yaml,
                as_: As::Object,
            },
            self.gzip,
        )
    }

    fn include(&self) -> IncludeObject {
        match self.q.get("includeObject").map(String::as_str) {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }

    fn key(&self) -> String {
        self.res.storage_key()
    }

    fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }

    fn parse_body(&self) -> ApiResult<Value> {
        let ct = self.content_type();
        if ct.starts_with("application/vnd.kubernetes.protobuf") {
            return crate::proto::decode(&self.body).map_err(|kind| {
                ApiError::unsupported_media_type(
                    &format!("{ct}; kind {kind} is not decodable by kube-emulator"),
                    "application/json, application/yaml",
                )
            });
        }
        if ct.contains("protobuf") || ct.contains("cbor") {
            return Err(ApiError::unsupported_media_type(
                ct,
                "application/json, application/yaml",
            ));
        }
        if self.body.is_empty() {
            return Err(ApiError::bad_request("the request body is empty"));
        }
        patch::parse_json_or_yaml(&self.body)
    }
}

/// Routes a verb.
pub async fn dispatch(ctx: Ctx, method: Method) -> ApiResult<Response<Body>> {
    if ctx.res.is_virtual() {
        return match (method, &ctx.name) {
            (Method::POST, None) => reviews(&ctx),
            (m, _) => Err(ApiError::method_not_allowed(m.as_str())),
        };
    }
    let sub = ctx.sub.clone();
    match (method, ctx.name.is_some(), sub.as_deref()) {
        (Method::GET | Method::HEAD, false, None) => {
            if ctx.watch_prefix || ctx.qb("watch") {
                start_watch(&ctx)
            } else {
                list(&ctx)
            }
        }
        (Method::GET | Method::HEAD, true, None) => {
            if ctx.watch_prefix || ctx.qb("watch") {
                start_watch(&ctx)
            } else {
                get(&ctx)
            }
        }
        (Method::GET, true, Some("status" | "approval")) => get(&ctx),
        (Method::GET, true, Some("scale")) => {
            let obj = fetch(&ctx)?;
            Ok(value_response(
                StatusCode::OK,
                &objects::scale_of(&ctx.res, &obj),
                Negotiated::JSON,
                ctx.gzip,
            ))
        }
        (Method::GET, true, Some("log")) => {
            let pod = fetch(&ctx)?;
            crate::logs::serve(ctx.app.clone(), pod, &ctx.q)
        }
        (Method::POST, false, None) => {
            if ctx.all_namespaces && ctx.res.namespaced {
                return Err(ApiError::method_not_allowed("POST"));
            }
            create(&ctx)
        }
        (Method::POST, true, Some("token")) => token_request(&ctx),
        (Method::PUT, true, None | Some("status" | "scale" | "approval" | "finalize")) => {
            update(&ctx)
        }
        (Method::PATCH, true, None | Some("status" | "scale" | "approval")) => patch(&ctx),
        (Method::DELETE, true, None) => delete(&ctx),
        (Method::DELETE, false, None) => delete_collection(&ctx),
        (m, _, _) => Err(ApiError::method_not_allowed(m.as_str())),
    }
}

fn fetch(ctx: &Ctx) -> ApiResult<Value> {
    ctx.app
        .store
        .get(&ctx.key(), &ctx.ns, ctx.name())
        .ok_or_else(|| ApiError::not_found(&ctx.res.group, &ctx.res.plural, ctx.name()))
}

fn get(ctx: &Ctx) -> ApiResult<Response<Body>> {
    let obj = fetch(ctx)?;
    Ok(ctx.respond(StatusCode::OK, &obj))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    rv: u64,
    ns: String,
    name: String,
}

fn list(ctx: &Ctx) -> ApiResult<Response<Body>> {
    let res = &ctx.res;
    let labels =
        LabelSelector::parse(ctx.q.get("labelSelector").map(String::as_str).unwrap_or(""))?;
    let fields = FieldSelector::parse(
        ctx.q.get("fieldSelector").map(String::as_str).unwrap_or(""),
        &res.group,
        &res.plural,
        res.custom,
    )?;
    let limit: usize = match ctx.q.get("limit") {
        Some(l) if !l.is_empty() => l
            .parse::<i64>()
            .map_err(|_| ApiError::bad_request(format!("invalid limit: {l}")))?
            .max(0) as usize,
        _ => 0,
    };
    let cont: Option<ContinueToken> = match ctx.q.get("continue").filter(|c| !c.is_empty()) {
        Some(c) => Some(
            URL_SAFE_NO_PAD
                .decode(c)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .ok_or_else(|| ApiError::bad_request("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)"))?,
        ),
        None => None,
    };
    let include = ctx.include();
    let now = now_secs();
    let guard = ctx.app.store.read();
    let table_ = guard.table(&ctx.key());
    let list_rv = cont.as_ref().map(|c| c.rv).unwrap_or(guard.rv);
    let ns_filter = if res.namespaced && !ctx.all_namespaces {
        Some(ctx.ns.as_str())
    } else {
        None
    };
    let iter: Box<dyn Iterator<Item = (&(String, String), &Value)>> = match (&cont, ns_filter) {
        (Some(c), _) => Box::new(table_.range((
            std::ops::Bound::Excluded((c.ns.clone(), c.name.clone())),
            std::ops::Bound::Unbounded,
        ))),
        (None, Some(ns)) => Box::new(table_.range((ns.to_string(), String::new())..)),
        (None, None) => Box::new(table_.iter()),
    };
    let mut page: Vec<&Value> = Vec::new();
    let mut remaining: usize = 0;
    let mut last_key: Option<&(String, String)> = None;
    for (k, v) in iter {
        if let Some(ns) = ns_filter
            && k.0 != ns
        {
            break;
        }
        if !labels.matches(v) || !fields.matches(v) {
            continue;
        }
        if limit > 0 && page.len() >= limit {
            remaining += 1;
            continue;
        }
        page.push(v);
        last_key = Some(k);
    }
    let continue_token = if remaining > 0 {
        last_key.map(|k| {
            URL_SAFE_NO_PAD.encode(
                serde_json::to_vec(&ContinueToken {
                    rv: list_rv,
                    ns: k.0.clone(),
                    name: k.1.clone(),
                })
                .unwrap_or_default(),
            )
        })
    } else {
        None
    };
    let mut meta = json!({"resourceVersion": list_rv.to_string()});
    if let Some(c) = &continue_token {
        meta["continue"] = json!(c);
        meta["remainingItemCount"] = json!(remaining);
    }
    match ctx.neg.as_ {
        As::Table => {
            let rows: Vec<Value> = page
                .iter()
                .map(|o| table::row(res, o, now, include))
                .collect();
            let v = json!({
                "kind": "Table",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": meta,
                "columnDefinitions": table::columns(res),
                "rows": rows,
            });
            drop(guard);
            Ok(value_response(
                StatusCode::OK,
                &v,
                Negotiated {
                    yaml: ctx.neg.yaml,
                    as_: As::Object,
                },
                ctx.gzip,
            ))
        }
        As::PartialMetadata => {
            let items: Vec<Value> = page.iter().map(|o| table::partial_metadata(o)).collect();
            let v = json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "items": items});
            drop(guard);
            Ok(value_response(
                StatusCode::OK,
                &v,
                Negotiated {
                    yaml: ctx.neg.yaml,
                    as_: As::Object,
                },
                ctx.gzip,
            ))
        }
        _ if ctx.neg.yaml => {
            let items: Vec<Value> = page.iter().map(|o| with_version(res, o)).collect();
            let v = json!({"kind": format!("{}List", res.kind), "apiVersion": res.api_version(), "metadata": meta, "items": items});
            drop(guard);
            Ok(value_response(StatusCode::OK, &v, ctx.neg, ctx.gzip))
        }
        _ => {
            // Serialize straight from the store, without copying the objects.
            let mut out: Vec<u8> = Vec::with_capacity(256 + page.len() * 512);
            let _ = write!(
                out,
                "{{\"kind\":{},\"apiVersion\":{},\"metadata\":{},\"items\":[",
                json!(format!("{}List", res.kind)),
                json!(res.api_version()),
                meta
            );
            for (i, o) in page.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                if res.custom {
                    let _ = serde_json::to_writer(&mut out, &with_version(res, o));
                } else {
                    let _ = serde_json::to_writer(&mut out, o);
                }
            }
            out.extend_from_slice(b"]}");
            drop(guard);
            Ok(bytes_response(
                StatusCode::OK,
                "application/json",
                out,
                ctx.gzip,
            ))
        }
    }
}

fn start_watch(ctx: &Ctx) -> ApiResult<Response<Body>> {
    let res = &ctx.res;
    let mut fs = ctx.q.get("fieldSelector").cloned().unwrap_or_default();
    if let Some(n) = &ctx.name {
        if !fs.is_empty() {
            fs.push(',');
        }
        fs.push_str(&format!("metadata.name={n}"));
    }
    let params = WatchParams {
        resource_version: ctx.q.get("resourceVersion").cloned(),
        rv_match: ctx
            .q
            .get("resourceVersionMatch")
            .cloned()
            .filter(|s| !s.is_empty()),
        send_initial: ctx.q.get("sendInitialEvents").map(|v| v == "true"),
        bookmarks: ctx.qb("allowWatchBookmarks"),
        timeout: ctx
            .q
            .get("timeoutSeconds")
            .and_then(|t| t.parse::<u64>().ok())
            .filter(|t| *t > 0)
            .map(Duration::from_secs)
            .unwrap_or(watch::DEFAULT_TIMEOUT),
        namespace: if res.namespaced && !ctx.all_namespaces {
            Some(ctx.ns.clone())
        } else {
            None
        },
        labels: LabelSelector::parse(ctx.q.get("labelSelector").map(String::as_str).unwrap_or(""))?,
        fields: FieldSelector::parse(&fs, &res.group, &res.plural, res.custom)?,
        neg: ctx.neg,
        include: ctx.include(),
    };
    watch::serve(ctx.app.clone(), res.clone(), params)
}

fn create(ctx: &Ctx) -> ApiResult<Response<Body>> {
    let dry = ctx.dry("CreateOptions", &[])?;
    let mut obj = ctx.parse_body()?;
    let now = now_rfc3339();
    let name = {
        let g = ctx.app.store.read();
        objects::prepare_create(&ctx.res, &mut obj, &ctx.ns, &g, &now)?
    };
    let res = &ctx.res;
    let (created, _) = ctx
        .app
        .store
        .modify(&ctx.key(), &ctx.ns, &name, dry, |cur, _, _| {
            if cur.is_some() {
                return Err(ApiError::already_exists(&res.group, &res.plural, &name));
            }
            Ok(Change::Create(obj))
        })?;
    if !dry {
        after_create(&ctx.app, res, &created);
    }
    Ok(ctx.respond(StatusCode::CREATED, &created))
}

/// Side effects of creations (the namespace controller's `default` ServiceAccount).
pub fn after_create(app: &App, res: &ResourceInfo, obj: &Value) {
    if res.group.is_empty() && res.plural == "namespaces" {
        let ns = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        ensure_service_account(app, &ns, "default");
    }
}

/// Creates a ServiceAccount if it does not exist.
pub fn ensure_service_account(app: &App, ns: &str, name: &str) {
    let Some(res) = app.store.resolve("", "v1", "serviceaccounts") else {
        return;
    };
    let mut sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": ns}});
    let now = now_rfc3339();
    let prepared = {
        let g = app.store.read();
        objects::prepare_create(&res, &mut sa, ns, &g, &now)
    };
    if prepared.is_ok() {
        let _ = app
            .store
            .modify("/serviceaccounts", ns, name, false, |cur, _, _| {
                Ok(match cur {
                    Some(c) => Change::Unchanged(c.clone()),
                    None => Change::Create(sa),
                })
            });
    }
}

fn check_precondition_rv(ctx: &Ctx, cur: &Value, new: &Value) -> ApiResult<()> {
    if let Some(rv) = new["metadata"]["resourceVersion"].as_str()
        && !rv.is_empty()
        && cur["metadata"]["resourceVersion"].as_str() != Some(rv)
    {
        return Err(ApiError::conflict(
            &ctx.res.group,
            &ctx.res.plural,
            ctx.name(),
        ));
    }
    Ok(())
}

fn update(ctx: &Ctx) -> ApiResult<Response<Body>> {
    let dry = ctx.dry("UpdateOptions", &[])?;
    let body = ctx.parse_body()?;
    let res = &ctx.res;
    let now = now_rfc3339();
    let sub = ctx.sub.as_deref();
    let (obj, _) =
        ctx.app
            .store
            .modify(&ctx.key(), &ctx.ns, ctx.name(), dry, |cur, inner, _| {
                let cur =
                    cur.ok_or_else(|| ApiError::not_found(&res.group, &res.plural, ctx.name()))?;
                if sub == Some("scale") {
                    check_precondition_rv(ctx, cur, &body)?;
                    let replicas = body["spec"]["replicas"].as_i64().unwrap_or(0);
                    let mut new = cur.clone();
                    objects::set_replicas(res, &mut new, replicas);
                    objects::prepare_update(res, cur, &mut new, None, inner, &now)?;
                    return Ok(if new == *cur {
                        Change::Unchanged(new)
                    } else {
                        Change::Update(new)
                    });
                }
                let mut new = body;
                check_precondition_rv(ctx, cur, &new)?;
                let sub = if sub == Some("approval") {
                    Some("status")
                } else {
                    sub
                };
                objects::prepare_update(res, cur, &mut new, sub, inner, &now)?;
                if let Some(m) = new["metadata"].as_object_mut() {
                    m.insert(
                        "resourceVersion".into(),
                        cur["metadata"]["resourceVersion"].clone(),
                    );
                }
                Ok(if new == *cur {
                    Change::Unchanged(new)
                } else {
                    Change::Update(new)
                })
            })?;
    if ctx.sub.as_deref() == Some("scale") {
        return Ok(value_response(
            StatusCode::OK,
            &objects::scale_of(res, &obj),
            Negotiated::JSON,
            ctx.gzip,
        ));
    }
    Ok(ctx.respond(StatusCode::OK, &obj))
}

fn patch(ctx: &Ctx) -> ApiResult<Response<Body>> {
    let dry = ctx.dry("PatchOptions", &[])?;
    let res = &ctx.res;
    let ct = ctx.content_type().to_string();
    let accepted = if res.custom {
        "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
    } else {
        "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json"
    };
    let pt = PatchType::from_content_type(&ct)
        .ok_or_else(|| ApiError::unsupported_media_type(&ct, accepted))?;
    if pt == PatchType::Strategic && res.custom {
        return Err(ApiError::unsupported_media_type(&ct, accepted));
    }
    let field_manager = ctx.q.get("fieldManager").cloned().unwrap_or_default();
    if pt == PatchType::Apply && field_manager.is_empty() {
        return Err(ApiError::invalid(
            "meta.k8s.io",
            "PatchOptions",
            "",
            &[(
                "fieldManager".into(),
                "Required value: is required for apply patch".into(),
            )],
        ));
    }
    let patch_value: Option<Value> = match pt {
        PatchType::Json => None,
        PatchType::Apply => Some(patch::parse_json_or_yaml(&ctx.body)?),
        _ => Some(
            serde_json::from_slice(&ctx.body)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?,
        ),
    };
    if pt == PatchType::Apply
        && let Some(p) = &patch_value
    {
        let n = p["metadata"]["name"].as_str().unwrap_or("");
        if n != ctx.name() && ctx.sub.is_none() {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({})",
                ctx.name()
            )));
        }
    }
    let now = now_rfc3339();
    let sub = ctx.sub.as_deref();
    let mut created = false;
    let (obj, _) =
        ctx.app
            .store
            .modify(&ctx.key(), &ctx.ns, ctx.name(), dry, |cur, inner, _| {
                let Some(cur) = cur else {
                    if pt == PatchType::Apply && sub.is_none() {
                        let mut obj = patch_value.clone().unwrap_or_default();
                        objects::prepare_create(res, &mut obj, &ctx.ns, inner, &now)?;
                        created = true;
                        return Ok(Change::Create(obj));
                    }
                    return Err(ApiError::not_found(&res.group, &res.plural, ctx.name()));
                };
                let base = if sub == Some("scale") {
                    objects::scale_of(res, cur)
                } else {
                    cur.clone()
                };
                let patched = match pt {
                    PatchType::Json => patch::apply_json_patch(&base, &ctx.body)?,
                    PatchType::Merge => patch::apply_merge_patch(
                        &base,
                        patch_value.as_ref().unwrap_or(&Value::Null),
                    ),
                    PatchType::Strategic => {
                        patch::apply_strategic(&base, patch_value.as_ref().unwrap_or(&Value::Null))?
                    }
                    PatchType::Apply => {
                        let applied = patch_value.clone().unwrap_or_default();
                        if res.custom {
                            patch::apply_merge_patch(&base, &applied)
                        } else {
                            patch::apply_strategic(&base, &applied)?
                        }
                    }
                };
                check_precondition_rv(ctx, cur, &patched)?;
                let mut new = if sub == Some("scale") {
                    let mut n = cur.clone();
                    objects::set_replicas(
                        res,
                        &mut n,
                        patched["spec"]["replicas"].as_i64().unwrap_or(0),
                    );
                    n
                } else {
                    patched
                };
                let sub = match sub {
                    Some("scale") => None,
                    Some("approval") => Some("status"),
                    s => s,
                };
                objects::prepare_update(res, cur, &mut new, sub, inner, &now)?;
                if let Some(m) = new["metadata"].as_object_mut() {
                    m.insert(
                        "resourceVersion".into(),
                        cur["metadata"]["resourceVersion"].clone(),
                    );
                }
                Ok(if new == *cur {
                    Change::Unchanged(new)
                } else {
                    Change::Update(new)
                })
            })?;
    if created && !dry {
        after_create(&ctx.app, res, &obj);
    }
    if ctx.sub.as_deref() == Some("scale") {
        return Ok(value_response(
            StatusCode::OK,
            &objects::scale_of(res, &obj),
            Negotiated::JSON,
            ctx.gzip,
        ));
    }
    Ok(ctx.respond(
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        &obj,
    ))
}

fn delete_options(ctx: &Ctx) -> ApiResult<Value> {
    if ctx.body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(&ctx.body)
        .map_err(|e| ApiError::bad_request(format!("error decoding DeleteOptions: {e}")))
}

fn body_dry_run(opts: &Value) -> Vec<String> {
    opts["dryRun"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(String::from))
        .collect()
}

fn mark_deleted(res: &ResourceInfo, obj: &mut Value, grace: Option<i64>) {
    let now = now_rfc3339();
    if res.group.is_empty() && res.plural == "pods" {
        obj["metadata"]["deletionTimestamp"] = json!(now);
        obj["metadata"]["deletionGracePeriodSeconds"] = json!(grace.unwrap_or(30));
    }
    if res.group.is_empty() && res.plural == "namespaces" {
        obj["metadata"]["deletionTimestamp"] = json!(now);
        obj["status"]["phase"] = json!("Terminating");
    }
}

fn delete(ctx: &Ctx) -> ApiResult<Response<Body>> {
    let opts = delete_options(ctx)?;
    let dry = ctx.dry("DeleteOptions", &body_dry_run(&opts))?;
    let res = &ctx.res;
    if res.group.is_empty()
        && res.plural == "namespaces"
        && matches!(ctx.name(), "default" | "kube-system" | "kube-public")
    {
        return Err(ApiError::forbidden(format!(
            "namespaces \"{}\" is forbidden: this namespace may not be deleted",
            ctx.name()
        )));
    }
    let grace = opts["gracePeriodSeconds"]
        .as_i64()
        .or_else(|| ctx.q.get("gracePeriodSeconds").and_then(|g| g.parse().ok()));
    let pre = opts["preconditions"].clone();
    let (obj, _) = ctx.app.store.modify(&ctx.key(), &ctx.ns, ctx.name(), dry, |cur, _, _| {
        let cur = cur.ok_or_else(|| ApiError::not_found(&res.group, &res.plural, ctx.name()))?;
        if let Some(uid) = pre["uid"].as_str()
            && cur["metadata"]["uid"].as_str() != Some(uid)
        {
            return Err(ApiError {
                code: StatusCode::CONFLICT,
                reason: "Conflict",
                message: format!(
                    "Operation cannot be fulfilled on {} \"{}\": Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    res.plural,
                    ctx.name(),
                    cur["metadata"]["uid"].as_str().unwrap_or("")
                ),
                details: Some(json!({"name": ctx.name(), "group": res.group, "kind": res.plural})),
            });
        }
        if let Some(rv) = pre["resourceVersion"].as_str()
            && cur["metadata"]["resourceVersion"].as_str() != Some(rv)
        {
            return Err(ApiError::conflict(&res.group, &res.plural, ctx.name()));
        }
        let mut gone = cur.clone();
        mark_deleted(res, &mut gone, grace);
        Ok(Change::Delete(gone))
    })?;
    if !dry {
        after_delete(&ctx.app, res, &obj);
    }
    if res.returns_deleted_object() {
        return Ok(ctx.respond(StatusCode::OK, &obj));
    }
    let status = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": ctx.name(), "group": res.group, "kind": res.plural, "uid": obj["metadata"]["uid"]},
    });
    Ok(value_response(
        StatusCode::OK,
        &status,
        Negotiated::JSON,
        ctx.gzip,
    ))
}

/// Cascades of deletions: namespace contents, a CRD's custom resources.
pub fn after_delete(app: &App, res: &ResourceInfo, obj: &Value) {
    if res.group.is_empty() && res.plural == "namespaces" {
        if let Some(ns) = obj["metadata"]["name"].as_str() {
            app.store.purge_namespace(ns);
        }
    } else if res.group == "apiextensions.k8s.io" && res.plural == "customresourcedefinitions" {
        let g = obj["spec"]["group"].as_str().unwrap_or("");
        let p = obj["spec"]["names"]["plural"].as_str().unwrap_or("");
        app.store.purge_key(&format!("{g}/{p}"));
    }
}

fn delete_collection(ctx: &Ctx) -> ApiResult<Response<Body>> {
    let opts = delete_options(ctx)?;
    let dry = ctx.dry("DeleteOptions", &body_dry_run(&opts))?;
    let res = &ctx.res;
    let labels =
        LabelSelector::parse(ctx.q.get("labelSelector").map(String::as_str).unwrap_or(""))?;
    let fields = FieldSelector::parse(
        ctx.q.get("fieldSelector").map(String::as_str).unwrap_or(""),
        &res.group,
        &res.plural,
        res.custom,
    )?;
    let ns = if res.namespaced && !ctx.all_namespaces {
        Some(ctx.ns.as_str())
    } else {
        None
    };
    let removed: Vec<Value> = if dry {
        let g = ctx.app.store.read();
        g.table(&ctx.key())
            .iter()
            .filter(|((n, _), v)| {
                ns.is_none_or(|w| w == n) && labels.matches(v) && fields.matches(v)
            })
            .map(|(_, v)| v.clone())
            .collect()
    } else {
        ctx.app
            .store
            .remove_where(&ctx.key(), ns, |v| labels.matches(v) && fields.matches(v))
    };
    if !dry {
        for o in &removed {
            after_delete(&ctx.app, res, o);
        }
    }
    let items: Vec<Value> = removed
        .into_iter()
        .map(|mut o| {
            mark_deleted(res, &mut o, None);
            with_version(res, &o)
        })
        .collect();
    let v = json!({
        "kind": format!("{}List", res.kind),
        "apiVersion": res.api_version(),
        "metadata": {"resourceVersion": ctx.app.store.current_rv().to_string()},
        "items": items,
    });
    Ok(value_response(
        StatusCode::OK,
        &v,
        Negotiated::JSON,
        ctx.gzip,
    ))
}

fn token_request(ctx: &Ctx) -> ApiResult<Response<Body>> {
    let _dry = ctx.dry("CreateOptions", &[])?;
    let sa = fetch(ctx)?;
    let body = if ctx.body.is_empty() {
        json!({})
    } else {
        ctx.parse_body()?
    };
    let spec = &body["spec"];
    let exp_secs = spec["expirationSeconds"].as_i64().unwrap_or(3600);
    if exp_secs < 600 {
        return Err(ApiError::invalid(
            "authentication.k8s.io",
            "TokenRequest",
            "",
            &[(
                "spec.expirationSeconds".into(),
                "Invalid value: may not specify a duration less than 10 minutes".into(),
            )],
        ));
    }
    let mut audiences: Vec<String> = spec["audiences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().map(String::from))
        .collect();
    if audiences.is_empty() {
        audiences = vec![auth::ISSUER.to_string()];
    }
    let now = now_secs();
    let exp = now + exp_secs;
    let claims = TokenClaims {
        namespace: ctx.ns.clone(),
        name: ctx.name().to_string(),
        sa_uid: sa["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        audiences: audiences.clone(),
        exp,
        jti: uuid::Uuid::new_v4().to_string(),
        bound: spec["boundObjectRef"]
            .as_object()
            .map(|_| spec["boundObjectRef"].clone()),
    };
    // Even with dryRun=All a real, usable token is returned (like the apiserver).
    let token = ctx.app.signer.mint(&claims, now);
    let exp_ts = jiff::Timestamp::from_second(exp)
        .map(|t| t.to_string())
        .unwrap_or_default();
    let mut out_spec = json!({"audiences": audiences, "expirationSeconds": exp_secs, "boundObjectRef": spec["boundObjectRef"].clone()});
    if spec["boundObjectRef"].is_null() {
        out_spec["boundObjectRef"] = Value::Null;
    }
    let v = json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": ctx.name(), "namespace": ctx.ns, "creationTimestamp": now_rfc3339()},
        "spec": out_spec,
        "status": {"token": token, "expirationTimestamp": exp_ts},
    });
    Ok(value_response(
        StatusCode::CREATED,
        &v,
        Negotiated::JSON,
        ctx.gzip,
    ))
}

fn reviews(ctx: &Ctx) -> ApiResult<Response<Body>> {
    let _ = ctx.dry("CreateOptions", &[])?;
    let res = &ctx.res;
    let mut body = if ctx.body.is_empty() {
        json!({})
    } else {
        ctx.parse_body()?
    };
    objects::check_type(res, &mut body)?;
    body["metadata"] = json!({"creationTimestamp": null});
    let status = match res.plural.as_str() {
        "tokenreviews" => {
            ctx.app
                .token_reviews
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let token = body["spec"]["token"].as_str().unwrap_or("");
            let wanted: Vec<String> = body["spec"]["audiences"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a.as_str().map(String::from))
                .collect();
            let claims = ctx.app.signer.verify(token, now_secs());
            let ident = ctx.app.authenticate_token(token);
            match (ident, claims) {
                (Some(id), claims) => {
                    let token_aud = claims
                        .map(|c| c.audiences)
                        .unwrap_or_else(|| vec![auth::ISSUER.to_string()]);
                    let check: Vec<String> = if wanted.is_empty() {
                        vec![auth::ISSUER.to_string()]
                    } else {
                        wanted.clone()
                    };
                    let common: Vec<String> = check
                        .iter()
                        .filter(|a| token_aud.contains(a))
                        .cloned()
                        .collect();
                    if common.is_empty() {
                        json!({"authenticated": false, "user": {}, "error": "[invalid bearer token, token audiences [...] is invalid for the target audiences]"})
                    } else {
                        json!({"authenticated": true, "user": id.to_user_info(), "audiences": common})
                    }
                }
                (None, _) => {
                    json!({"authenticated": false, "user": {}, "error": "[invalid bearer token, service account token has been invalidated]"})
                }
            }
        }
        "selfsubjectreviews" => json!({"userInfo": ctx.identity.to_user_info()}),
        "selfsubjectaccessreviews" | "subjectaccessreviews" => {
            json!({"allowed": true, "reason": "kube-emulator allows every request"})
        }
        "selfsubjectrulesreviews" => json!({
            "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
            "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
            "incomplete": false,
        }),
        _ => json!({}),
    };
    body["status"] = status;
    Ok(value_response(
        StatusCode::CREATED,
        &body,
        Negotiated::JSON,
        ctx.gzip,
    ))
}

/// Inserts (creates or replaces) an object directly, creating its namespace if needed.
pub fn insert_object(app: &App, mut obj: Value) -> ApiResult<Value> {
    let av = obj["apiVersion"].as_str().unwrap_or("").to_string();
    let kind = obj["kind"].as_str().unwrap_or("").to_string();
    let res = app
        .store
        .resolve_kind(&av, &kind)
        .ok_or_else(|| ApiError::bad_request(format!("no resource for {av} {kind}")))?;
    let ns = if res.namespaced {
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string();
        if !app.store.read().namespace_exists(&ns) {
            insert_object(
                app,
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
            )?;
        }
        ns
    } else {
        String::new()
    };
    let now = now_rfc3339();
    let name = {
        let g = app.store.read();
        objects::prepare_create(&res, &mut obj, &ns, &g, &now)?
    };
    let key = res.storage_key();
    let (v, ev) = app.store.modify(&key, &ns, &name, false, |cur, inner, _| {
        Ok(match cur {
            None => Change::Create(obj),
            Some(c) => {
                let mut new = obj;
                objects::prepare_update(&res, c, &mut new, None, inner, &now)?;
                Change::Update(new)
            }
        })
    })?;
    if ev == Some(EventType::Added) {
        after_create(app, &res, &v);
    }
    Ok(v)
}
