//! What is known of a proxied call when it ends: the audit event, and what a [`CallObserver`]
//! (metrics) is told.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::Stream;
use http::Method;
use identity_router::UsageMeter;
use tracing::info;

use crate::usage::UsageScanner;

/// One proxied call, as it ended: reported once, when the answer's body has been passed on
/// (or the caller went away, or the upstream failed). No secret, header or query in it.
///
/// ```
/// use identity_proxy::ProxiedCall;
/// fn status_class(call: &ProxiedCall) -> &'static str {
///     match call.status {
///         Some(200..=299) => "2xx",
///         Some(_) => "other",
///         None => "failed",
///     }
/// }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ProxiedCall {
    /// The upstream's configured name.
    pub upstream: Arc<str>,
    /// The method.
    pub method: Method,
    /// The path under the upstream's base, without its query.
    pub path: String,
    /// The rule that chose the credential.
    pub rule_id: Arc<str>,
    /// The credential's id.
    pub credential_id: String,
    /// Whom the credential acted for.
    pub resolved_for: String,
    /// The upstream's status; `None` when it gave none (unreachable, timed out).
    pub status: Option<u16>,
    /// Request body bytes sent on.
    pub bytes_sent: u64,
    /// Answer body bytes passed back.
    pub bytes_received: u64,
    /// True when the answer's body was passed back to its end.
    pub complete: bool,
    /// From the call's arrival to its end.
    pub duration: Duration,
}

/// Told of every proxied call when it ends: a metrics sink. Called on the task that ended the
/// call; keep it quick.
///
/// ```
/// use identity_proxy::{CallObserver, ProxiedCall};
/// #[derive(Debug)]
/// struct Count(std::sync::atomic::AtomicU64);
/// impl CallObserver for Count {
///     fn call_ended(&self, _call: &ProxiedCall) {
///         self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
///     }
/// }
/// ```
pub trait CallObserver: Send + Sync + std::fmt::Debug + 'static {
    /// `call` has ended.
    fn call_ended(&self, call: &ProxiedCall);
}

/// A call in flight: reported once, by [`Report::end`] or when dropped.
#[derive(Debug)]
pub(crate) struct Report {
    pub(crate) call: ProxiedCall,
    pub(crate) started: Instant,
    /// Request bytes, counted as the body streams out.
    pub(crate) sent: Arc<AtomicU64>,
    pub(crate) observer: Option<Arc<dyn CallObserver>>,
    ended: bool,
    /// What the router's gates keep while the credential is in use (a concurrency slot):
    /// given back when the answer has been passed on, with this report.
    holds: Vec<Arc<dyn std::any::Any + Send + Sync>>,
    /// The answer's usage, read as it streams by, and who is told of it.
    usage: Option<(UsageScanner, Vec<Arc<dyn UsageMeter>>)>,
}

impl Report {
    pub(crate) fn new(
        call: ProxiedCall,
        started: Instant,
        sent: Arc<AtomicU64>,
        observer: Option<Arc<dyn CallObserver>>,
    ) -> Self {
        Self {
            call,
            started,
            sent,
            observer,
            ended: false,
            holds: Vec::new(),
            usage: None,
        }
    }

    /// Reads the answer's usage with `scanner`, and tells `meters` of it when the answer has
    /// been passed on whole.
    pub(crate) fn metering(
        mut self,
        scanner: UsageScanner,
        meters: &[Arc<dyn UsageMeter>],
    ) -> Self {
        self.usage = Some((scanner, meters.to_vec()));
        self
    }

    /// Keeps `holds` until the call is over.
    pub(crate) fn holding(mut self, holds: &[Arc<dyn std::any::Any + Send + Sync>]) -> Self {
        self.holds = holds.to_vec();
        self
    }

    /// Ends the call now: the audit event, then the observer.
    pub(crate) fn end(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        if self.ended {
            return;
        }
        self.ended = true;
        let call = &mut self.call;
        call.duration = self.started.elapsed();
        call.bytes_sent = self.sent.load(Ordering::Relaxed);
        info!(
            target: "agent_identity::audit",
            message = "proxied call",
            upstream = &*call.upstream,
            method = call.method.as_str(),
            path = call.path.as_str(),
            rule_id = &*call.rule_id,
            credential_id = call.credential_id.as_str(),
            resolved_for = call.resolved_for.as_str(),
            status = call.status,
            bytes_sent = call.bytes_sent,
            bytes_received = call.bytes_received,
            complete = call.complete,
            duration_ms = u64::try_from(call.duration.as_millis()).unwrap_or(u64::MAX),
        );
        if let Some(observer) = &self.observer {
            observer.call_ended(call);
        }
    }
}

impl Drop for Report {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The answer's body, counted as it passes; the call is reported when it ends or is dropped
/// (a caller that goes away mid-stream ends the call, `complete: false`).
pub(crate) struct Metered<S> {
    inner: S,
    report: Option<Report>,
}

impl<S> Metered<S> {
    pub(crate) fn new(inner: S, report: Report) -> Self {
        Self {
            inner,
            report: Some(report),
        }
    }
}

impl<S, E> Stream for Metered<S>
where
    S: Stream<Item = Result<axum::body::Bytes, E>> + Unpin,
{
    type Item = Result<axum::body::Bytes, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = Pin::new(&mut self.inner).poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(chunk))) => {
                if let Some(report) = &mut self.report {
                    report.call.bytes_received += chunk.len() as u64;
                    if let Some((scanner, _)) = &mut report.usage {
                        scanner.feed(chunk);
                    }
                }
            }
            Poll::Ready(None) => {
                if let Some(mut report) = self.report.take() {
                    report.call.complete = true;
                    if let Some((scanner, meters)) = report.usage.take()
                        && let Some(usage) = scanner.finish()
                    {
                        for meter in meters {
                            meter.record(&usage);
                        }
                    }
                    report.end();
                }
            }
            // An error mid-stream: reported, as incomplete, when the body is dropped.
            Poll::Ready(Some(Err(_))) | Poll::Pending => {}
        }
        polled
    }
}
