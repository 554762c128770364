//! Prometheus metrics of the data path, served on the admin listener at `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::phases::Exchange;

/// Labels of the request metrics (bounded: verbs, resource types and outcomes).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The apiserver verb (`get`, `list`, `watch`, ...), empty when unclassified.
    pub verb: String,
    /// `resource` or `resource/subresource`; `nonresource` for non-resource URLs.
    pub resource: String,
    /// The outcome label of the exchange.
    pub outcome: String,
}

type HistogramFamily = Family<RequestLabels, Histogram, fn() -> Histogram>;

/// The metrics registry and its handles.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: HistogramFamily,
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
        Self {
            registry,
            requests,
            latency,
        }
    }
}

impl Metrics {
    /// Counts one finished exchange.
    pub fn observe(&self, ex: &Exchange) {
        let (verb, resource) = match &ex.info {
            Some(i) if i.is_resource_request => (
                i.verb.clone(),
                if i.subresource.is_empty() {
                    i.resource.clone()
                } else {
                    format!("{}/{}", i.resource, i.subresource)
                },
            ),
            Some(i) => (i.verb.clone(), "nonresource".into()),
            None => (String::new(), String::new()),
        };
        let labels = RequestLabels {
            verb,
            resource,
            outcome: ex.outcome.into(),
        };
        self.requests.get_or_create(&labels).inc();
        self.latency
            .get_or_create(&labels)
            .observe(ex.started.elapsed().as_secs_f64());
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
