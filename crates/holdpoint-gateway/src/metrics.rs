//! Prometheus metrics of the data path, served on the admin listener at `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use kube_request::RequestInfo;

use crate::phases::Exchange;

/// Labels of the request metrics. Every value comes from a fixed set, whatever the caller sends:
/// a path or method the caller made up must not create new time series (unbounded label values
/// would let any caller grow the gateway's memory).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The apiserver verb (`get`, `list`, `watch`, ...); `other` for anything else, empty when
    /// the request was refused before it was classified.
    pub verb: &'static str,
    /// A built-in `resource` or `resource/subresource`, `nonresource` for non-resource URLs,
    /// `other` for the rest (custom resources, unknown names).
    pub resource: &'static str,
    /// The outcome label of the exchange.
    pub outcome: &'static str,
}

/// The verbs the apiserver derives from a request.
const VERBS: &[&str] = &[
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
    "proxy",
    "head",
    "options",
];

/// Built-in resources and subresources worth a label of their own.
const RESOURCES: &[&str] = &[
    "pods",
    "pods/log",
    "pods/exec",
    "pods/attach",
    "pods/portforward",
    "pods/proxy",
    "pods/status",
    "pods/eviction",
    "pods/ephemeralcontainers",
    "services",
    "services/proxy",
    "nodes",
    "nodes/proxy",
    "namespaces",
    "configmaps",
    "secrets",
    "serviceaccounts",
    "serviceaccounts/token",
    "events",
    "endpoints",
    "endpointslices",
    "persistentvolumeclaims",
    "persistentvolumes",
    "deployments",
    "deployments/scale",
    "deployments/status",
    "replicasets",
    "replicasets/scale",
    "statefulsets",
    "statefulsets/scale",
    "daemonsets",
    "jobs",
    "cronjobs",
    "ingresses",
    "networkpolicies",
    "roles",
    "rolebindings",
    "clusterroles",
    "clusterrolebindings",
    "customresourcedefinitions",
    "leases",
    "tokenreviews",
    "subjectaccessreviews",
    "selfsubjectaccessreviews",
    "selfsubjectrulesreviews",
    "selfsubjectreviews",
    "certificatesigningrequests",
    "certificatesigningrequests/approval",
];

/// `needle` as one of `set`'s static strings, or `other`.
fn bounded(set: &'static [&'static str], needle: &str) -> &'static str {
    set.iter()
        .copied()
        .find(|s| *s == needle)
        .unwrap_or("other")
}

type HistogramFamily = Family<RequestLabels, Histogram, fn() -> Histogram>;

/// Label of the masked-values counter: the masking rule (`secret.data`, `env.name`,
/// `text.<detector>`: a set fixed by the code and the configured detector names).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MaskRuleLabels {
    /// The rule.
    pub rule: String,
}

/// Label of the revealed-objects counter: the kind (from the policy's reveal rules).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RevealLabels {
    /// The object kind served unmasked.
    pub kind: String,
}

/// The metrics registry and its handles.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: HistogramFamily,
    masked: Family<MaskRuleLabels, Counter>,
    revealed: Family<RevealLabels, Counter>,
    mask_failures: Counter,
    /// The audit log's writer and sinks.
    pub audit: AuditMetrics,
}

/// Labels of a sink's metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SinkLabels {
    /// `file` or `webhook`.
    pub sink: &'static str,
}

/// The audit log's health, as metrics (`holdpoint_audit_*`).
#[derive(Debug, Default, Clone)]
pub struct AuditMetrics {
    /// Events durably written to the store.
    pub events_written: Counter,
    /// Write transactions (batches) that failed.
    pub write_failures: Counter,
    /// 1 while the last write succeeded, 0 while the store fails.
    pub store_healthy: Gauge,
    /// Events waiting to be written.
    pub queue_depth: Gauge,
    /// Events of reads dropped because the queue was full (never mutations: those are refused).
    pub events_dropped: Counter,
    /// The alarm of `audit.reads: serve`: reads served while the store could not record them.
    pub unrecorded_reads: Counter,
    /// Requests refused because their record could not be written (fail closed).
    pub refused: Counter,
    /// Signed checkpoints written.
    pub checkpoints: Counter,
    /// Events pruned by retention.
    pub pruned: Counter,
    /// Events a sink delivered.
    pub sink_events: Family<SinkLabels, Counter>,
    /// Sink deliveries that failed (the store keeps every event regardless).
    pub sink_failures: Family<SinkLabels, Counter>,
}

impl AuditMetrics {
    fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("audit");
        r.register(
            "events_written",
            "Audit events durably written to the store",
            self.events_written.clone(),
        );
        r.register(
            "write_failures",
            "Audit write transactions that failed",
            self.write_failures.clone(),
        );
        r.register(
            "store_healthy",
            "1 while the audit store writes, 0 while it fails",
            self.store_healthy.clone(),
        );
        r.register(
            "queue_depth",
            "Audit events waiting to be written",
            self.queue_depth.clone(),
        );
        r.register(
            "events_dropped",
            "Audit events of reads dropped because the write queue was full",
            self.events_dropped.clone(),
        );
        r.register(
            "unrecorded_reads",
            "Reads served while the audit store could not record them (audit.reads: serve)",
            self.unrecorded_reads.clone(),
        );
        r.register(
            "refused",
            "Requests refused because their audit record could not be written",
            self.refused.clone(),
        );
        r.register(
            "checkpoints",
            "Signed audit checkpoints written",
            self.checkpoints.clone(),
        );
        r.register(
            "pruned",
            "Audit events deleted by retention",
            self.pruned.clone(),
        );
        r.register(
            "sink_events",
            "Audit events delivered by a sink",
            self.sink_events.clone(),
        );
        r.register(
            "sink_failures",
            "Audit sink deliveries that failed (the store keeps the events)",
            self.sink_failures.clone(),
        );
    }
}

fn latency_histogram() -> Histogram {
    // 0.25 ms .. ~8 s
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("holdpoint");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency: HistogramFamily = Family::new_with_constructor(latency_histogram);
        registry.register(
            "requests",
            "Requests handled by the data path",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from request arrival to response head",
            latency.clone(),
        );
        let masked = Family::<MaskRuleLabels, Counter>::default();
        registry.register(
            "masked_values",
            "Values masked in responses, by masking rule",
            masked.clone(),
        );
        let revealed = Family::<RevealLabels, Counter>::default();
        registry.register(
            "revealed_objects",
            "Objects served unmasked because a policy reveal rule names the caller, by kind",
            revealed.clone(),
        );
        let mask_failures = Counter::default();
        registry.register(
            "mask_failures",
            "Responses cut off because they could not be masked (not JSON, too large, truncated)",
            mask_failures.clone(),
        );
        let audit = AuditMetrics::default();
        audit.register(&mut registry);
        Self {
            registry,
            requests,
            latency,
            masked,
            revealed,
            mask_failures,
            audit,
        }
    }
}

impl Metrics {
    /// Counts one finished exchange.
    pub fn observe(&self, ex: &Exchange) {
        let labels = labels_for(ex.info.as_ref(), ex.outcome);
        self.requests.get_or_create(&labels).inc();
        self.latency
            .get_or_create(&labels)
            .observe(ex.started.elapsed().as_secs_f64());
    }

    /// Counts what masking one response did.
    pub fn observe_mask(&self, summary: &holdpoint_mask::MaskSummary) {
        for (rule, n) in summary.iter() {
            self.masked
                .get_or_create(&MaskRuleLabels { rule: rule.into() })
                .inc_by(n);
        }
        for (kind, n) in summary.revealed() {
            self.revealed
                .get_or_create(&RevealLabels { kind: kind.into() })
                .inc_by(n);
        }
    }

    /// Counts a response cut off because it could not be masked.
    pub fn mask_failed(&self) {
        self.mask_failures.inc();
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The bounded labels of one exchange.
fn labels_for(info: Option<&RequestInfo>, outcome: &'static str) -> RequestLabels {
    let (verb, resource) = match info {
        Some(i) if i.is_resource_request => {
            let resource = if i.subresource.is_empty() {
                bounded(RESOURCES, &i.resource)
            } else {
                RESOURCES
                    .iter()
                    .copied()
                    .find(|r| {
                        r.split_once('/') == Some((i.resource.as_str(), i.subresource.as_str()))
                    })
                    .unwrap_or("other")
            };
            (bounded(VERBS, &i.verb), resource)
        }
        Some(i) => (bounded(VERBS, &i.verb), "nonresource"),
        None => ("", ""),
    };
    RequestLabels {
        verb,
        resource,
        outcome,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(method: &str, path: &str) -> RequestLabels {
        let info = kube_request::classify(&method.parse().unwrap(), path, None).unwrap();
        labels_for(Some(&info), "forwarded")
    }

    #[test]
    fn known_verbs_and_resources_keep_their_names() {
        let l = labels("GET", "/api/v1/namespaces/demo/pods/web-0/log");
        assert_eq!((l.verb, l.resource), ("get", "pods/log"));
        let l = labels("GET", "/apis/apps/v1/deployments");
        assert_eq!((l.verb, l.resource), ("list", "deployments"));
    }

    #[test]
    fn caller_made_up_names_collapse_to_other() {
        let l = labels("GET", "/api/v1/namespaces/demo/made-up-0001/x");
        assert_eq!(l.resource, "other");
        let l = labels("GET", "/api/v1/namespaces/demo/pods/web-0/made-up");
        assert_eq!(l.resource, "other");
        let l = labels("FROBNICATE", "/api/v1/pods");
        assert_eq!(l.verb, "other");
        let l = labels("GET", "/made/up/path");
        assert_eq!((l.verb, l.resource), ("get", "nonresource"));
    }
}
