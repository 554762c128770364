//! The compiled policy: validation of a [`PolicyFile`], the matcher built from it, evaluation
//! (first matching rule wins) and [`Policy::explain`].
//!
//! Evaluation checks the cheap keys first (scope, verbs, mutating, dry run, namespaces, groups,
//! resources, names, URLs, subjects) and only then the time windows and CEL conditions, so a
//! long policy costs a few comparisons per rule that cannot match.
//!
//! **Fail closed.** A CEL condition that cannot be evaluated (a missing field, a type error, no
//! decoded body) and a change window whose time cannot be computed count as a *match* for
//! `deny` and `approve` rules and as a *non-match* for `allow` rules: an error can make a
//! request harder to get through, never easier. The same holds for what a request may touch
//! but does not name: a list/watch/deletecollection without a namespace matches every
//! `namespaces` of a deny/approve rule, and a collection or a create whose body gives no name
//! matches every `names` of a deny/approve rule; an allow rule matches them only if it lists
//! `""`.

use std::sync::Arc;
use std::time::Duration;

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use serde_saphyr::Spanned;

use crate::decision::{
    Approval, DEFAULT_HOLD, DEFAULT_QUORUM, DEFAULT_RULE, DEFAULT_TTL, Evaluation, FREEZE_RULE,
    FreezeMode, RevealGrant, Verdict,
};
use crate::glob::{Glob, GlobSet};
use crate::model::{
    ActionKind, ApprovalSpec, MatchSpec, PolicyFile, RevealSpec, SubjectsSpec, WindowSpec,
};
use crate::request::{Request, Subject};

/// A policy that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The YAML did not parse into the schema (unknown key, wrong type, ...).
    #[error("invalid policy: {0}")]
    Parse(String),
    /// The values parsed but are not a usable policy.
    #[error("invalid policy:\n  {}", .0.join("\n  "))]
    Invalid(Vec<String>),
}

/// A validated, compiled policy, ready to evaluate requests. Cheap to share (`Arc`) and
/// immutable: reloading builds a new one.
#[derive(Debug)]
pub struct Policy {
    rules: Vec<Rule>,
    default: Action,
    freeze_approval: Option<Approval>,
    reveals: Vec<RevealRule>,
    cel_env: CelEnv,
}

/// A compiled reveal rule.
#[derive(Debug)]
struct RevealRule {
    name: String,
    subjects: SubjectMatcher,
    kinds: Vec<String>,
}

/// The CEL environment (standard library), shared by every condition of a policy.
#[derive(Clone)]
struct CelEnv(Arc<cel::Env>);

impl std::fmt::Debug for CelEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CelEnv(stdlib)")
    }
}

#[derive(Debug)]
struct Rule {
    name: String,
    line: u64,
    matcher: Matcher,
    action: Action,
}

#[derive(Debug, Clone)]
enum Action {
    Allow,
    Deny(String),
    Approve(Approval),
}

impl Action {
    fn verdict(&self) -> Verdict {
        match self {
            Action::Allow => Verdict::Allow,
            Action::Deny(message) => Verdict::Deny {
                message: message.clone(),
            },
            Action::Approve(a) => Verdict::Approve(a.clone()),
        }
    }

    /// Errors in windows and conditions count as a match for rules that restrict.
    fn errors_match(&self) -> bool {
        !matches!(self, Action::Allow)
    }
}

/// Which kind of request a rule can match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Any,
    Resource,
    NonResource,
}

/// The match key that made a rule not match (reported by [`Policy::explain`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Key {
    /// The rule is for resource requests and this is a non-resource URL, or the reverse.
    Scope,
    /// `verbs`
    Verbs,
    /// `mutating`
    Mutating,
    /// `dryRun`
    DryRun,
    /// `apiGroups`
    ApiGroups,
    /// `resources`
    Resources,
    /// `namespaces`
    Namespaces,
    /// `names`
    Names,
    /// `nonResourceURLs`
    NonResourceUrls,
    /// `subjects`
    Subjects,
    /// `when`
    When,
    /// `conditions`
    Conditions,
}

#[derive(Debug)]
struct Matcher {
    scope: Scope,
    verbs: Option<Vec<Box<str>>>,
    mutating: Option<bool>,
    dry_run: Option<bool>,
    api_groups: Option<Vec<Box<str>>>,
    resources: Option<Vec<ResourcePattern>>,
    namespaces: Option<GlobSet>,
    names: Option<GlobSet>,
    non_resource_urls: Option<GlobSet>,
    subjects: Option<SubjectMatcher>,
    inside: Vec<Window>,
    outside: Vec<Window>,
    conditions: Vec<Condition>,
}

#[derive(Debug)]
struct SubjectMatcher {
    users: GlobSet,
    groups: GlobSet,
    who_given: bool,
    authenticators: Option<GlobSet>,
}

impl SubjectMatcher {
    fn new(s: &SubjectsSpec) -> Self {
        SubjectMatcher {
            users: GlobSet::new(&s.users),
            groups: GlobSet::new(&s.groups),
            who_given: !s.users.is_empty() || !s.groups.is_empty(),
            authenticators: (!s.authenticators.is_empty()).then(|| GlobSet::new(&s.authenticators)),
        }
    }

    fn matches(&self, sub: &Subject<'_>) -> bool {
        if self.who_given
            && !(self.users.matches(sub.username)
                || sub.groups.iter().any(|g| self.groups.matches(g)))
        {
            return false;
        }
        self.authenticators
            .as_ref()
            .is_none_or(|a| a.matches(sub.authenticator))
    }
}

#[derive(Debug)]
struct ResourcePattern {
    resource: Glob,
    sub: SubPattern,
}

#[derive(Debug)]
enum SubPattern {
    /// Bare `*`: every resource and subresource (RBAC).
    Everything,
    /// No `/`: the resource itself, not its subresources.
    NoSubresource,
    /// `res/sub`: a non-empty subresource matching the glob.
    Sub(Glob),
}

impl ResourcePattern {
    fn new(pattern: &str) -> ResourcePattern {
        if pattern == "*" {
            return ResourcePattern {
                resource: Glob::Any,
                sub: SubPattern::Everything,
            };
        }
        match pattern.split_once('/') {
            Some((r, s)) => ResourcePattern {
                resource: Glob::new(r),
                sub: SubPattern::Sub(Glob::new(s)),
            },
            None => ResourcePattern {
                resource: Glob::new(pattern),
                sub: SubPattern::NoSubresource,
            },
        }
    }

    fn matches(&self, resource: &str, subresource: &str) -> bool {
        match &self.sub {
            SubPattern::Everything => true,
            SubPattern::NoSubresource => subresource.is_empty() && self.resource.matches(resource),
            SubPattern::Sub(s) => {
                !subresource.is_empty() && self.resource.matches(resource) && s.matches(subresource)
            }
        }
    }
}

#[derive(Debug)]
struct Window {
    source: String,
    cron: Cron,
    duration: jiff::SignedDuration,
    tz: jiff::tz::TimeZone,
}

impl Window {
    /// Whether `now` is inside the window that opened at the latest cron time at or before now.
    /// Windows of one rule have one duration, so an earlier opening cannot still be open when
    /// the latest is closed.
    fn contains(&self, now: jiff::Timestamp) -> Result<bool, String> {
        let zoned = now.to_zoned(self.tz.clone());
        let opened = self
            .cron
            .find_previous_occurrence(&zoned, true)
            .map_err(|e| format!("window {:?}: {e}", self.source))?;
        let closes = opened
            .timestamp()
            .checked_add(self.duration)
            .map_err(|e| format!("window {:?}: {e}", self.source))?;
        Ok(now < closes)
    }
}

#[derive(Debug)]
struct Condition {
    source: String,
    program: cel::Program,
}

/// Per-evaluation CEL state: the context with `object` and `oldObject`, built on first use.
struct CelState<'r> {
    env: &'r Arc<cel::Env>,
    object: Option<&'r serde_json::Value>,
    old_object: Option<&'r serde_json::Value>,
    context: Option<Result<cel::Context<'static, 'static>, String>>,
}

impl CelState<'_> {
    fn context(&mut self) -> Result<&cel::Context<'static, 'static>, String> {
        if self.context.is_none() {
            let build = || -> Result<cel::Context<'static, 'static>, String> {
                let mut ctx = cel::Context::with_env(self.env.clone());
                let to_cel = |v: Option<&serde_json::Value>| match v {
                    None => Ok(cel::Value::Null),
                    Some(v) => cel::to_value(v).map_err(|e| e.to_string()),
                };
                ctx.add_variable_from_value("object", to_cel(self.object)?);
                ctx.add_variable_from_value("oldObject", to_cel(self.old_object)?);
                Ok(ctx)
            };
            self.context = Some(build());
        }
        match self.context.as_ref() {
            Some(Ok(ctx)) => Ok(ctx),
            Some(Err(e)) => Err(e.clone()),
            None => Err("no CEL context".into()),
        }
    }
}

/// What evaluating one condition gave.
enum CondResult {
    True,
    False,
    Error(String),
}

impl Condition {
    fn eval(&self, state: &mut CelState<'_>) -> CondResult {
        let ctx = match state.context() {
            Ok(ctx) => ctx,
            Err(e) => return CondResult::Error(e),
        };
        match self.program.execute(ctx) {
            Ok(cel::Value::Bool(true)) => CondResult::True,
            Ok(cel::Value::Bool(false)) => CondResult::False,
            Ok(other) => CondResult::Error(format!("evaluated to {other:?}, not a bool")),
            Err(e) => CondResult::Error(e.to_string()),
        }
    }
}

impl Matcher {
    /// Checks every key in order; `trace` (for explain) collects notes on windows and conditions.
    fn check(
        &self,
        req: &Request<'_>,
        errors_match: bool,
        cel: &mut CelState<'_>,
        mut trace: Option<&mut Vec<String>>,
    ) -> Result<(), Key> {
        let info = req.info;
        match self.scope {
            Scope::Any => {}
            Scope::Resource if info.is_resource_request => {}
            Scope::NonResource if !info.is_resource_request => {}
            _ => return Err(Key::Scope),
        }
        if let Some(verbs) = &self.verbs
            && !verbs.iter().any(|v| **v == *info.verb)
        {
            return Err(Key::Verbs);
        }
        if self.mutating.is_some_and(|m| m != req.mutating) {
            return Err(Key::Mutating);
        }
        if self.dry_run.is_some_and(|d| d != req.dry_run) {
            return Err(Key::DryRun);
        }
        // Namespaces early: in multi-team policies they rule out most rules. A collection
        // request without a namespace may touch every namespace (see the module docs).
        if let Some(ns) = &self.namespaces {
            let hit = if info.namespace.is_empty()
                && matches!(info.verb.as_str(), "list" | "watch" | "deletecollection")
            {
                errors_match || ns.matches("")
            } else {
                ns.matches(&info.namespace)
            };
            if !hit {
                return Err(Key::Namespaces);
            }
        }
        if let Some(groups) = &self.api_groups
            && !groups.iter().any(|g| **g == *info.api_group)
        {
            return Err(Key::ApiGroups);
        }
        if let Some(resources) = &self.resources
            && !resources
                .iter()
                .any(|r| r.matches(&info.resource, &info.subresource))
        {
            return Err(Key::Resources);
        }
        // A request whose object name is not known (a collection, or a create whose body gives
        // no name) may touch any name: it matches a deny/approve rule's `names`, and an allow
        // rule's only when it lists `""` (fail closed).
        let collection = || matches!(info.verb.as_str(), "list" | "watch" | "deletecollection");
        if let Some(names) = &self.names {
            let name = req.effective_name();
            let unknown = name.is_empty() && (info.verb == "create" || collection());
            let hit = if unknown {
                errors_match || names.matches("")
            } else {
                names.matches(name)
            };
            if !hit {
                return Err(Key::Names);
            }
        }
        if let Some(urls) = &self.non_resource_urls
            && !urls.matches(&info.path)
        {
            return Err(Key::NonResourceUrls);
        }
        if let Some(s) = &self.subjects
            && !s.matches(&req.subject)
        {
            return Err(Key::Subjects);
        }
        if !self.inside.is_empty() {
            let mut inside_any = false;
            for w in &self.inside {
                match w.contains(req.now) {
                    Ok(true) => inside_any = true,
                    Ok(false) => {}
                    Err(e) => {
                        note(&mut trace, || fail_note(&e, errors_match));
                        inside_any |= errors_match;
                    }
                }
                if inside_any {
                    break;
                }
            }
            if !inside_any {
                return Err(Key::When);
            }
        }
        for w in &self.outside {
            let inside = match w.contains(req.now) {
                Ok(inside) => inside,
                Err(e) => {
                    note(&mut trace, || fail_note(&e, errors_match));
                    !errors_match
                }
            };
            if inside {
                return Err(Key::When);
            }
        }
        for c in &self.conditions {
            match c.eval(cel) {
                CondResult::True => {}
                CondResult::False => {
                    note(&mut trace, || format!("condition `{}` is false", c.source));
                    return Err(Key::Conditions);
                }
                CondResult::Error(e) => {
                    note(&mut trace, || {
                        fail_note(&format!("condition `{}`: {e}", c.source), errors_match)
                    });
                    if !errors_match {
                        return Err(Key::Conditions);
                    }
                }
            }
        }
        Ok(())
    }
}

fn note(trace: &mut Option<&mut Vec<String>>, f: impl FnOnce() -> String) {
    if let Some(t) = trace.as_deref_mut() {
        t.push(f());
    }
}

fn fail_note(error: &str, errors_match: bool) -> String {
    if errors_match {
        format!("{error}: could not be evaluated, counts as a match (fail closed)")
    } else {
        format!(
            "{error}: could not be evaluated, counts as no match for an allow rule (fail closed)"
        )
    }
}

/// One rule's part in an [`Explanation`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RuleTrace {
    /// The rule's name.
    pub rule: String,
    /// Its line in the policy file.
    pub line: u64,
    /// `None` when it matched; otherwise the key that did not match.
    pub missed: Option<Key>,
    /// Why, in words.
    pub reason: String,
    /// Notes on windows and conditions (errors, fail-closed choices).
    pub notes: Vec<String>,
}

/// Why the policy decided what it did: every rule tried, in order, until one matched.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Explanation {
    /// The rules tried.
    pub rules: Vec<RuleTrace>,
    /// The rule the rules' evaluation ended at (a rule name or `default`).
    pub matched: String,
    /// The final answer (after the freeze, if any).
    pub evaluation: Evaluation,
    /// What the freeze changed, if anything.
    pub freeze: Option<String>,
}

impl Policy {
    /// Parses, validates and compiles a policy from YAML.
    pub fn from_yaml(text: &str) -> Result<Policy, PolicyError> {
        let file: PolicyFile =
            serde_saphyr::from_str(text).map_err(|e| PolicyError::Parse(e.to_string()))?;
        Policy::compile(&file)
    }

    /// The default policy for AI agents shipped with Holdpoint (`default-policy.yaml`).
    pub fn default_for_agents() -> Policy {
        #[allow(clippy::expect_used)]
        Policy::from_yaml(crate::DEFAULT_POLICY_YAML).expect("the embedded default policy is valid")
    }

    /// Validates a parsed file and compiles it. Collects every problem, each with its line.
    pub fn compile(file: &PolicyFile) -> Result<Policy, PolicyError> {
        let mut problems = Vec::new();
        let cel_env = CelEnv(Arc::new(cel::Env::stdlib()));
        let mut rules = Vec::with_capacity(file.rules.len());
        let mut seen = std::collections::HashSet::new();
        for spec in &file.rules {
            let line = spec.name.referenced.line();
            let name = spec.name.value.clone();
            let at = format!("line {line}: rule {name:?}");
            if name.trim().is_empty() {
                problems.push(format!("line {line}: a rule needs a name"));
            } else if name == DEFAULT_RULE || name == FREEZE_RULE {
                problems.push(format!("{at}: the name is reserved"));
            } else if !seen.insert(name.clone()) {
                problems.push(format!("{at}: duplicate rule name"));
            }
            let action = compile_action(
                &spec.action,
                spec.message.as_deref(),
                spec.approval.as_ref(),
                &at,
                &mut problems,
            );
            let matcher = compile_match(&spec.matches, &cel_env, &at, &mut problems);
            if let (Some(action), Some(matcher)) = (action, matcher) {
                rules.push(Rule {
                    name,
                    line,
                    matcher,
                    action,
                });
            }
        }
        let default = compile_action(
            &file.default.action,
            file.default.message.as_deref(),
            file.default.approval.as_ref(),
            "default",
            &mut problems,
        );
        let freeze_approval = file
            .freeze
            .as_ref()
            .and_then(|f| compile_approval(&f.approval, "freeze.approval", &mut problems));
        let reveals = compile_reveals(&file.reveal, &mut problems);
        if !problems.is_empty() {
            return Err(PolicyError::Invalid(problems));
        }
        let Some(default) = default else {
            return Err(PolicyError::Invalid(vec!["default: invalid action".into()]));
        };
        Ok(Policy {
            rules,
            default,
            freeze_approval,
            reveals,
            cel_env,
        })
    }

    /// The kinds `subject` sees unmasked: every reveal rule whose subjects match contributes
    /// its kinds. Empty (everything masked) unless a rule names the caller.
    pub fn reveal_for(&self, subject: &Subject<'_>) -> RevealGrant {
        let mut grant = RevealGrant::default();
        for r in &self.reveals {
            if r.subjects.matches(subject) {
                grant.rules.push(r.name.clone());
                grant.kinds.extend(r.kinds.iter().cloned());
            }
        }
        grant.kinds.sort();
        grant.kinds.dedup();
        grant
    }

    /// Number of reveal rules.
    pub fn reveal_rules(&self) -> usize {
        self.reveals.len()
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether any rule looks at the decoded body (CEL conditions, or `names` that read a
    /// create's `metadata.name`): callers can skip decoding bodies when it does not.
    pub fn uses_object(&self) -> bool {
        self.rules
            .iter()
            .any(|r| !r.matcher.conditions.is_empty() || r.matcher.names.is_some())
    }

    /// `true` when the policy has no rules (only the default action).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Decides for one request: the first matching rule's action (or the default), then the
    /// freeze, if one is in force.
    pub fn evaluate(&self, req: &Request<'_>) -> Evaluation {
        let mut cel = self.cel_state(req);
        let (rule, action) = self
            .rules
            .iter()
            .find(|r| {
                r.matcher
                    .check(req, r.action.errors_match(), &mut cel, None)
                    .is_ok()
            })
            .map(|r| (r.name.as_str(), &r.action))
            .unwrap_or((DEFAULT_RULE, &self.default));
        self.apply_freeze(req, rule, action).0
    }

    /// Like [`Policy::evaluate`], and says why: every rule tried and why each did not match.
    pub fn explain(&self, req: &Request<'_>) -> Explanation {
        let mut cel = self.cel_state(req);
        let mut traces = Vec::new();
        let mut decided: Option<(&str, &Action)> = None;
        for r in &self.rules {
            let mut notes = Vec::new();
            let result = r
                .matcher
                .check(req, r.action.errors_match(), &mut cel, Some(&mut notes));
            let reason = match result {
                Ok(()) => format!("matched: {}", describe_action(&r.action)),
                Err(key) => miss_reason(key, &r.matcher, req),
            };
            traces.push(RuleTrace {
                rule: r.name.clone(),
                line: r.line,
                missed: result.err(),
                reason,
                notes,
            });
            if result.is_ok() {
                decided = Some((&r.name, &r.action));
                break;
            }
        }
        let (rule, action) = decided.unwrap_or((DEFAULT_RULE, &self.default));
        let (evaluation, freeze) = self.apply_freeze(req, rule, action);
        Explanation {
            rules: traces,
            matched: rule.to_owned(),
            evaluation,
            freeze,
        }
    }

    fn cel_state<'r>(&'r self, req: &Request<'r>) -> CelState<'r> {
        CelState {
            env: &self.cel_env.0,
            object: req.object,
            old_object: req.old_object,
            context: None,
        }
    }

    /// A freeze overrides the rules for mutating requests: `deny` mode denies them all; `hold`
    /// mode holds what the rules would allow (with `freeze.approval`; without it, denies),
    /// keeps what they hold, and keeps what they deny denied.
    fn apply_freeze(
        &self,
        req: &Request<'_>,
        rule: &str,
        action: &Action,
    ) -> (Evaluation, Option<String>) {
        let plain = Evaluation {
            rule: rule.to_owned(),
            verdict: action.verdict(),
        };
        let Some(freeze) = req.freeze else {
            return (plain, None);
        };
        if !req.mutating {
            return (plain, None);
        }
        let denied = |why: String| {
            Evaluation {
                rule: FREEZE_RULE.to_owned(),
                verdict: Verdict::Deny {
                    message: format!("changes are frozen: {}", freeze.reason),
                },
            }
            .with_note(why)
        };
        match (freeze.mode, action) {
            (FreezeMode::Deny, _) => denied("the freeze denies every mutating request".into()),
            (FreezeMode::Hold, Action::Deny(_)) => (
                plain,
                Some("the freeze holds mutations, and the rules deny this one".into()),
            ),
            (FreezeMode::Hold, Action::Approve(_)) => (
                plain,
                Some("the freeze holds mutations; the rule already holds this one".into()),
            ),
            (FreezeMode::Hold, Action::Allow) => match &self.freeze_approval {
                Some(approval) => (
                    Evaluation {
                        rule: FREEZE_RULE.to_owned(),
                        verdict: Verdict::Approve(approval.clone()),
                    },
                    Some("the freeze holds a mutation the rules allow".into()),
                ),
                None => denied(
                    "the freeze holds mutations, but the policy has no freeze.approval: denied"
                        .into(),
                ),
            },
        }
    }
}

trait WithNote {
    fn with_note(self, note: String) -> (Evaluation, Option<String>);
}

impl WithNote for Evaluation {
    fn with_note(self, note: String) -> (Evaluation, Option<String>) {
        (self, Some(note))
    }
}

fn describe_action(a: &Action) -> String {
    match a {
        Action::Allow => "allow".into(),
        Action::Deny(m) => format!("deny ({m})"),
        Action::Approve(a) => {
            let mut who: Vec<String> = a
                .reviewers
                .users
                .iter()
                .map(|u| format!("user {u}"))
                .collect();
            who.extend(a.reviewers.groups.iter().map(|g| format!("group {g}")));
            let friendly = |d: Duration| {
                jiff::SignedDuration::try_from(d)
                    .map(|s| format!("{s:#}"))
                    .unwrap_or_else(|_| format!("{d:?}"))
            };
            let mode = match a.mode {
                crate::decision::ApprovalMode::Execute => "execute",
                crate::decision::ApprovalMode::Grant => "grant",
            };
            format!(
                "approve by {} (quorum {}, ttl {}, hold {}, mode {mode})",
                who.join(", "),
                a.quorum,
                friendly(a.ttl),
                friendly(a.hold),
            )
        }
    }
}

fn miss_reason(key: Key, m: &Matcher, req: &Request<'_>) -> String {
    let info = req.info;
    let list = |v: &Option<Vec<Box<str>>>| {
        v.as_ref()
            .map(|v| {
                v.iter()
                    .map(|s| format!("{s:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    match key {
        Key::Scope => {
            if info.is_resource_request {
                "the rule is for non-resource URLs; this is a resource request".into()
            } else {
                "the rule is for resources; this is a non-resource URL".into()
            }
        }
        Key::Verbs => format!("verb {:?} is not one of [{}]", info.verb, list(&m.verbs)),
        Key::Mutating => format!(
            "the rule is for {} requests; this one {}",
            if m.mutating == Some(true) {
                "mutating"
            } else {
                "read-only"
            },
            if req.mutating {
                "mutates"
            } else {
                "only reads"
            }
        ),
        Key::DryRun => format!(
            "the rule is for {}; this request is {}",
            if m.dry_run == Some(true) {
                "dry runs (dryRun=All)"
            } else {
                "requests that are not dry runs"
            },
            if req.dry_run {
                "a dry run"
            } else {
                "not a dry run"
            }
        ),
        Key::ApiGroups => format!(
            "API group {:?} is not one of [{}]",
            info.api_group,
            list(&m.api_groups)
        ),
        Key::Resources => {
            let r = if info.subresource.is_empty() {
                info.resource.clone()
            } else {
                format!("{}/{}", info.resource, info.subresource)
            };
            format!("resource {r:?} does not match the rule's resources")
        }
        Key::Namespaces => format!(
            "namespace {:?} does not match the rule's namespaces",
            info.namespace
        ),
        Key::Names => format!(
            "name {:?} does not match the rule's names",
            req.effective_name()
        ),
        Key::NonResourceUrls => format!(
            "path {:?} does not match the rule's nonResourceURLs",
            info.path
        ),
        Key::Subjects => format!(
            "caller {:?} (groups {:?}, authenticator {:?}) is not one of the rule's subjects",
            req.subject.username, req.subject.groups, req.subject.authenticator
        ),
        Key::When => format!("the time {} is not in the rule's windows", req.now),
        Key::Conditions => "a condition is not true".into(),
    }
}

fn compile_action(
    kind: &Spanned<ActionKind>,
    message: Option<&str>,
    approval: Option<&ApprovalSpec>,
    at: &str,
    problems: &mut Vec<String>,
) -> Option<Action> {
    let line = kind.referenced.line();
    match kind.value {
        ActionKind::Allow | ActionKind::Deny if approval.is_some() => {
            problems.push(format!(
                "{at} (line {line}): `approval` is only for the approve action"
            ));
            None
        }
        ActionKind::Allow if message.is_some() => {
            problems.push(format!("{at} (line {line}): `message` is only for deny"));
            None
        }
        ActionKind::Allow => Some(Action::Allow),
        ActionKind::Deny => Some(Action::Deny(
            message
                .map(str::to_owned)
                .unwrap_or_else(|| "denied by policy".to_owned()),
        )),
        ActionKind::Approve => {
            if message.is_some() {
                problems.push(format!("{at} (line {line}): `message` is only for deny"));
            }
            match approval {
                None => {
                    problems.push(format!(
                        "{at} (line {line}): the approve action needs `approval` with reviewers"
                    ));
                    None
                }
                Some(spec) => compile_approval(spec, at, problems).map(Action::Approve),
            }
        }
    }
}

fn compile_approval(spec: &ApprovalSpec, at: &str, problems: &mut Vec<String>) -> Option<Approval> {
    let before = problems.len();
    if spec.reviewers.is_empty() {
        problems.push(format!(
            "{at}: approval.reviewers needs at least one user or group (nobody could approve)"
        ));
    }
    let quorum = spec.quorum.unwrap_or(DEFAULT_QUORUM);
    if quorum == 0 {
        problems.push(format!("{at}: approval.quorum must be at least 1"));
    }
    if spec.reviewers.groups.is_empty()
        && !spec.reviewers.users.is_empty()
        && quorum as usize > spec.reviewers.users.len()
    {
        problems.push(format!(
            "{at}: approval.quorum {quorum} is more than the {} listed reviewer(s)",
            spec.reviewers.users.len()
        ));
    }
    let ttl = duration(spec.ttl.as_ref(), DEFAULT_TTL, "ttl", at, problems);
    let hold = duration(spec.hold.as_ref(), DEFAULT_HOLD, "hold", at, problems);
    if let (Some(ttl), Some(hold)) = (ttl, hold) {
        if ttl.is_zero() {
            problems.push(format!("{at}: approval.ttl must be positive"));
        }
        if hold > ttl {
            problems.push(format!(
                "{at}: approval.hold ({hold:?}) must not exceed approval.ttl ({ttl:?})"
            ));
        }
    }
    if problems.len() != before {
        return None;
    }
    Some(Approval {
        reviewers: spec.reviewers.clone(),
        quorum,
        ttl: ttl?,
        hold: hold?,
        mode: spec.mode.unwrap_or_default(),
    })
}

fn duration(
    text: Option<&Spanned<String>>,
    default: Duration,
    what: &str,
    at: &str,
    problems: &mut Vec<String>,
) -> Option<Duration> {
    let Some(text) = text else {
        return Some(default);
    };
    match parse_duration(&text.value) {
        Ok(d) => Some(d),
        Err(e) => {
            problems.push(format!(
                "{at} (line {}): approval.{what}: {e}",
                text.referenced.line()
            ));
            None
        }
    }
}

/// Parses `10s`, `1h 30m`, `PT1H` (jiff's friendly and ISO 8601 formats); never negative.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let signed: jiff::SignedDuration = text
        .parse()
        .map_err(|e| format!("invalid duration {text:?}: {e}"))?;
    Duration::try_from(signed).map_err(|_| format!("duration {text:?} must not be negative"))
}

fn str_list(v: &Option<Vec<String>>) -> Option<Vec<Box<str>>> {
    let v = v.as_ref()?;
    if v.iter().any(|s| s == "*") {
        return None;
    }
    Some(v.iter().map(|s| s.as_str().into()).collect())
}

fn compile_match(
    spec: &MatchSpec,
    env: &CelEnv,
    at: &str,
    problems: &mut Vec<String>,
) -> Option<Matcher> {
    let before = problems.len();
    let resource_keys = spec.api_groups.is_some()
        || spec.resources.is_some()
        || spec.namespaces.is_some()
        || spec.names.is_some();
    let scope = match (resource_keys, spec.non_resource_urls.is_some()) {
        (true, true) => {
            problems.push(format!(
                "{at}: nonResourceURLs cannot be combined with apiGroups, resources, namespaces or names (split the rule)"
            ));
            Scope::Any
        }
        (true, false) => Scope::Resource,
        (false, true) => Scope::NonResource,
        (false, false) => Scope::Any,
    };
    for (what, list) in [
        ("verbs", &spec.verbs),
        ("apiGroups", &spec.api_groups),
        ("resources", &spec.resources),
        ("namespaces", &spec.namespaces),
        ("names", &spec.names),
        ("nonResourceURLs", &spec.non_resource_urls),
    ] {
        if list.as_ref().is_some_and(Vec::is_empty) {
            problems.push(format!(
                "{at}: match.{what} is empty and could never match; leave it out to match anything"
            ));
        }
    }
    if let Some(resources) = &spec.resources {
        for r in resources {
            if r.matches('/').count() > 1 || r.starts_with('/') || r.ends_with('/') {
                problems.push(format!(
                    "{at}: resource {r:?} must be `resource` or `resource/subresource`"
                ));
            }
        }
    }
    if let Some(urls) = &spec.non_resource_urls {
        for u in urls {
            if !u.starts_with('/') && u != "*" {
                problems.push(format!("{at}: nonResourceURL {u:?} must start with `/`"));
            }
        }
    }
    let subjects = spec.subjects.as_ref().map(SubjectMatcher::new);
    if spec
        .subjects
        .as_ref()
        .is_some_and(|s| s.users.is_empty() && s.groups.is_empty() && s.authenticators.is_empty())
    {
        problems.push(format!(
            "{at}: match.subjects needs users, groups or authenticators; leave it out to match anyone"
        ));
    }
    let mut window_list = |list: &[WindowSpec]| -> Vec<Window> {
        list.iter()
            .filter_map(|w| compile_window(w, at, problems))
            .collect()
    };
    let (inside, outside) = match &spec.when {
        Some(when) => {
            let inside = window_list(&when.inside);
            let outside = window_list(&when.outside);
            if when.inside.is_empty() && when.outside.is_empty() {
                problems.push(format!("{at}: match.when needs inside or outside windows"));
            }
            (inside, outside)
        }
        None => (Vec::new(), Vec::new()),
    };
    let mut conditions = Vec::new();
    for c in &spec.conditions {
        match env.0.compile(&c.value) {
            Ok(program) => conditions.push(Condition {
                source: c.value.clone(),
                program,
            }),
            Err(e) => problems.push(format!(
                "{at} (line {}): condition {:?} does not compile: {e}",
                c.referenced.line(),
                c.value
            )),
        }
    }
    if problems.len() != before {
        return None;
    }
    let globs =
        |v: &Option<Vec<String>>| v.as_ref().map(|v| GlobSet::new(v)).filter(|g| !g.is_any());
    Some(Matcher {
        scope,
        verbs: str_list(&spec.verbs),
        mutating: spec.mutating,
        dry_run: spec.dry_run,
        api_groups: str_list(&spec.api_groups),
        resources: spec
            .resources
            .as_ref()
            .filter(|r| !r.iter().any(|r| r == "*"))
            .map(|r| r.iter().map(|p| ResourcePattern::new(p)).collect()),
        namespaces: globs(&spec.namespaces),
        names: globs(&spec.names),
        non_resource_urls: globs(&spec.non_resource_urls),
        subjects,
        inside,
        outside,
        conditions,
    })
}

/// Reveal rules: unique names, explicit kinds, and subjects that name someone (never `*` alone:
/// masking stays on for everyone else).
fn compile_reveals(specs: &[RevealSpec], problems: &mut Vec<String>) -> Vec<RevealRule> {
    let mut out = Vec::with_capacity(specs.len());
    let mut seen = std::collections::HashSet::new();
    for spec in specs {
        let line = spec.name.referenced.line();
        let name = spec.name.value.clone();
        let at = format!("line {line}: reveal {name:?}");
        let before = problems.len();
        if name.trim().is_empty() {
            problems.push(format!("line {line}: a reveal rule needs a name"));
        } else if !seen.insert(name.clone()) {
            problems.push(format!("{at}: duplicate reveal name"));
        }
        let s = &spec.subjects;
        if s.users.is_empty() && s.groups.is_empty() {
            problems.push(format!(
                "{at}: subjects needs users or groups (a reveal names who sees the values)"
            ));
        }
        if s.users.iter().chain(&s.groups).any(|p| p.trim() == "*") {
            problems.push(format!(
                "{at}: subjects must not be `*`: masking stays on for everyone not named"
            ));
        }
        if spec.kinds.is_empty() {
            problems.push(format!("{at}: kinds is empty"));
        }
        for k in &spec.kinds {
            if k.trim().is_empty() || k.contains('*') || k.contains('/') {
                problems.push(format!(
                    "{at}: kind {k:?} must be an object kind as written in `kind` (e.g. Secret)"
                ));
            }
        }
        if problems.len() == before {
            out.push(RevealRule {
                name,
                subjects: SubjectMatcher::new(s),
                kinds: spec.kinds.clone(),
            });
        }
    }
    out
}

fn compile_window(w: &WindowSpec, at: &str, problems: &mut Vec<String>) -> Option<Window> {
    let line = w.cron.referenced.line();
    let cron = CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(&w.cron.value);
    let cron = match cron {
        Ok(c) => Some(c),
        Err(e) => {
            problems.push(format!("{at} (line {line}): cron {:?}: {e}", w.cron.value));
            None
        }
    };
    let duration = match parse_duration(&w.duration.value) {
        Ok(d) if d.is_zero() => {
            problems.push(format!(
                "{at} (line {}): window duration must be positive",
                w.duration.referenced.line()
            ));
            None
        }
        Ok(d) => jiff::SignedDuration::try_from(d).ok(),
        Err(e) => {
            problems.push(format!(
                "{at} (line {}): window duration: {e}",
                w.duration.referenced.line()
            ));
            None
        }
    };
    let tz = match &w.time_zone {
        None => Some(jiff::tz::TimeZone::UTC),
        Some(name) => match jiff::tz::TimeZone::get(&name.value) {
            Ok(tz) => Some(tz),
            Err(e) => {
                problems.push(format!(
                    "{at} (line {}): time zone {:?}: {e}",
                    name.referenced.line(),
                    name.value
                ));
                None
            }
        },
    };
    Some(Window {
        source: format!(
            "{} for {} in {}",
            w.cron.value,
            w.duration.value,
            w.time_zone.as_ref().map_or("UTC", |t| t.value.as_str())
        ),
        cron: cron?,
        duration: duration?,
        tz: tz?,
    })
}
