//! The request as the policy sees it: who, what (the apiserver's `RequestInfo`), dry run, the
//! decoded bodies, whether it mutates, the time and the freeze state. Built by the caller (the
//! gateway's decide phase, or `holdpoint policy explain`); nothing here does I/O.

use kube_request::RequestInfo;

use crate::decision::Freeze;

/// Who is calling.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// Username.
    pub username: &'a str,
    /// Groups.
    pub groups: &'a [String],
    /// The authenticator that produced the identity (`static-token`, `oidc:<issuer>`, ...).
    pub authenticator: &'a str,
}

/// One request, as the policy evaluates it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The caller.
    pub subject: Subject<'a>,
    /// The classification.
    pub info: &'a RequestInfo,
    /// `true` only for a real dry run (`dryRun=All` as the apiserver reads it, see
    /// `kube_request::DryRun::for_request`).
    pub dry_run: bool,
    /// Whether the request changes anything. [`Request::new`] sets it from
    /// `RequestInfo::is_mutating`: everything but `get`/`list`/`watch` by `GET`/`HEAD` mutates,
    /// except the review APIs (`selfsubjectaccessreviews`, `selfsubjectrulesreviews`,
    /// `subjectaccessreviews`, `localsubjectaccessreviews`, `selfsubjectreviews`,
    /// `tokenreviews`), which only read; exec/attach/port-forward/proxy and TokenRequest mutate
    /// whatever the method; unknown verbs mutate.
    pub mutating: bool,
    /// The decoded object being written (for patches: the patch document), if any.
    pub object: Option<&'a serde_json::Value>,
    /// The object as it is now, if the caller knows it.
    pub old_object: Option<&'a serde_json::Value>,
    /// Now (from the injected clock).
    pub now: jiff::Timestamp,
    /// The freeze in force, if any.
    pub freeze: Option<&'a Freeze>,
}

impl<'a> Request<'a> {
    /// A request without bodies and without a freeze; `mutating` from the classification.
    pub fn new(
        subject: Subject<'a>,
        info: &'a RequestInfo,
        dry_run: bool,
        now: jiff::Timestamp,
    ) -> Self {
        Request {
            subject,
            info,
            dry_run,
            mutating: info.is_mutating(),
            object: None,
            old_object: None,
            now,
            freeze: None,
        }
    }

    /// With the object being written.
    pub fn with_object(mut self, object: Option<&'a serde_json::Value>) -> Self {
        self.object = object;
        self
    }

    /// With the object as it is now.
    pub fn with_old_object(mut self, old_object: Option<&'a serde_json::Value>) -> Self {
        self.old_object = old_object;
        self
    }

    /// With the freeze in force.
    pub fn with_freeze(mut self, freeze: Option<&'a Freeze>) -> Self {
        self.freeze = freeze;
        self
    }

    /// The name the rule's `names` match: the path's name, or for a `create` the body's
    /// `metadata.name`.
    pub fn effective_name(&self) -> &'a str {
        if self.info.name.is_empty()
            && self.info.verb == "create"
            && let Some(name) = self
                .object
                .and_then(|o| o.get("metadata"))
                .and_then(|m| m.get("name"))
                .and_then(|n| n.as_str())
        {
            return name;
        }
        &self.info.name
    }
}
