//! Prometheus metrics: HTTP requests, resolutions by outcome and by rule, proxied calls by
//! upstream, latency histograms.

use std::sync::Arc;
use std::time::Duration;

use agent_identity::identity_proxy::{CallObserver, ProxiedCall};
use agent_identity::{Denial, RequestContext, Resolution, ResolutionObserver};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};

use super::AppState;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: &'static str,
    method: &'static str,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResolutionLabels {
    outcome: &'static str,
    rule: RuleLabel,
    reason: &'static str,
    /// `primary` or `canary`: which of the rule's credentials was granted or refused.
    arm: &'static str,
}

/// A rule id as a label value: shares the router's `Arc<str>`, so counting a resolution copies
/// no string.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct RuleLabel(Option<Arc<str>>);

impl EncodeLabelValue for RuleLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.0.as_deref().unwrap_or(""), encoder)
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    upstream: RuleLabel,
    /// `2xx` ... `5xx`, or `failed` when the upstream gave no answer.
    status: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    upstream: RuleLabel,
    /// `sent` (request bodies) or `received` (answer bodies).
    direction: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric the sidecar exports. Labels are bounded: routes are the matched route templates
/// (`unmatched` otherwise), rules are rule ids, reasons are denial codes. No label carries a user,
/// a resource or a secret.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: HistogramFamily<RouteLabels>,
    resolutions: Family<ResolutionLabels, Counter>,
    proxy_calls: Family<UpstreamLabels, Counter>,
    proxy_duration: HistogramFamily<UpstreamLabels>,
    proxy_bytes: Family<DirectionLabels, Counter>,
    config_generation: Gauge,
    config_reloaded_at: Gauge<f64, std::sync::atomic::AtomicU64>,
    config_reloads: Family<ReloadLabels, Counter>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    /// `applied` or `refused`.
    outcome: &'static str,
}

fn latency_histogram() -> Histogram {
    // 50 µs to about 3.3 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 17))
}

impl Metrics {
    /// A registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("agent_identity");
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route, method and status",
            http_requests.clone(),
        );
        let http_duration: HistogramFamily<RouteLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by route",
            http_duration.clone(),
        );
        let resolutions = Family::<ResolutionLabels, Counter>::default();
        registry.register(
            "resolutions",
            "Resolutions, by outcome, deciding rule, denial reason and arm (primary or canary)",
            resolutions.clone(),
        );
        let proxy_calls = Family::<UpstreamLabels, Counter>::default();
        registry.register(
            "proxy_calls",
            "Proxied calls, by upstream and status class",
            proxy_calls.clone(),
        );
        let proxy_duration: HistogramFamily<UpstreamLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "proxy_call_duration_seconds",
            "Time from a proxied call's arrival to the end of its answer, by upstream",
            proxy_duration.clone(),
        );
        let proxy_bytes = Family::<DirectionLabels, Counter>::default();
        registry.register(
            "proxy_body_bytes",
            "Body bytes proxied, by upstream and direction",
            proxy_bytes.clone(),
        );
        let config_generation = Gauge::default();
        registry.register(
            "config_generation",
            "The configuration in force: 1 as started, one more at each reload applied",
            config_generation.clone(),
        );
        let config_reloaded_at = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "config_loaded_timestamp_seconds",
            "When the configuration in force was loaded, in seconds since 1970",
            config_reloaded_at.clone(),
        );
        let config_reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "config_reloads",
            "Configuration reloads, by outcome (applied, refused)",
            config_reloads.clone(),
        );
        let metrics = Self {
            registry,
            http_requests,
            http_duration,
            resolutions,
            proxy_calls,
            proxy_duration,
            proxy_bytes,
            config_generation,
            config_reloaded_at,
            config_reloads,
        };
        metrics.config_loaded(1);
        metrics
    }

    /// Records that configuration `generation` is in force from now.
    pub fn config_loaded(&self, generation: u64) {
        self.config_generation
            .set(i64::try_from(generation).unwrap_or(i64::MAX));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |since| since.as_secs_f64());
        self.config_reloaded_at.set(now);
    }

    /// Counts one reload, applied or refused.
    pub fn config_reload(&self, applied: bool) {
        let outcome = if applied { "applied" } else { "refused" };
        self.config_reloads
            .get_or_create(&ReloadLabels { outcome })
            .inc();
    }

    /// Records one answered HTTP request.
    pub fn record_request(
        &self,
        route: &'static str,
        method: &'static str,
        status: u16,
        elapsed: Duration,
    ) {
        self.http_requests
            .get_or_create(&HttpLabels {
                route,
                method,
                status,
            })
            .inc();
        self.http_duration
            .get_or_create(&RouteLabels { route })
            .observe(elapsed.as_secs_f64());
    }

    /// The metrics in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Feeds resolutions into [`Metrics`].
#[derive(Debug, Clone)]
pub struct MetricsObserver(pub Arc<Metrics>);

/// Counts each resolution by outcome, rule and reason. Its latency is the `/api/resolve` route's
/// in `http_request_duration_seconds`: a second histogram would cost every resolution another
/// lock for the same figure.
impl ResolutionObserver for MetricsObserver {
    fn observe(&self, _: &RequestContext, outcome: Result<&Resolution, &Denial>, _: Duration) {
        let labels = match outcome {
            Ok(resolution) => ResolutionLabels {
                outcome: "granted",
                rule: RuleLabel(Some(resolution.rule_id.clone())),
                reason: "",
                arm: resolution.arm.as_str(),
            },
            Err(denial) => ResolutionLabels {
                outcome: "denied",
                rule: RuleLabel(denial.rule_id.clone()),
                reason: denial.reason.code(),
                arm: denial.arm.as_str(),
            },
        };
        self.0.resolutions.get_or_create(&labels).inc();
    }
}

/// Counts each proxied call by upstream (a configured name: bounded) and status class.
impl CallObserver for MetricsObserver {
    fn call_ended(&self, call: &ProxiedCall) {
        let upstream = RuleLabel(Some(call.upstream.clone()));
        let labels = UpstreamLabels {
            upstream: upstream.clone(),
            status: match call.status {
                Some(100..=199) => "1xx",
                Some(200..=299) => "2xx",
                Some(300..=399) => "3xx",
                Some(400..=499) => "4xx",
                Some(_) => "5xx",
                None => "failed",
            },
        };
        self.0.proxy_calls.get_or_create(&labels).inc();
        self.0
            .proxy_duration
            .get_or_create(&labels)
            .observe(call.duration.as_secs_f64());
        for (direction, bytes) in [("sent", call.bytes_sent), ("received", call.bytes_received)] {
            self.0
                .proxy_bytes
                .get_or_create(&DirectionLabels {
                    upstream: upstream.clone(),
                    direction,
                })
                .inc_by(bytes);
        }
    }
}

/// `GET /metrics`: OpenMetrics text.
pub(crate) async fn metrics_text(State(state): State<Arc<AppState>>) -> Response {
    let mut response = state.metrics.encode().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}
