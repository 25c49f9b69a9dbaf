//! What a connection's deadlines are measured on: whether a request has
//! started on it, how many are in flight, and since when it has been idle.
//! A request is in flight from the moment hyper hands it to the service
//! until its response body has been sent or dropped.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use hyper::body::Incoming;
use hyper::service::Service;
use hyper::{Request, Response};
use tokio::time::Instant;

use crate::Limits;

/// Requests in flight on one connection, and when it last had none.
#[derive(Debug)]
pub(crate) struct Activity {
    opened: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds after `opened` when the last request ended; `u64::MAX`
    /// before the first request started.
    idle_since_ms: AtomicU64,
}

const NO_REQUEST_YET: u64 = u64::MAX;

impl Activity {
    pub(crate) fn new() -> Activity {
        Activity {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(NO_REQUEST_YET),
        }
    }

    /// When the connection is due to close if nothing changes: a whole
    /// request must have started within `header_read_timeout` of opening,
    /// and none in flight for `idle_timeout` closes it. With a request in
    /// flight, the check comes again an idle timeout later.
    pub(crate) fn deadline(&self, limits: &Limits) -> Instant {
        let now = Instant::now();
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return now + limits.idle_timeout;
        }
        match self.idle_since_ms.load(Ordering::Acquire) {
            NO_REQUEST_YET => self.opened + limits.header_read_timeout,
            ms => self.opened + std::time::Duration::from_millis(ms) + limits.idle_timeout,
        }
    }

    /// Whether a request has started on the connection.
    pub(crate) fn started(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) > 0
            || self.idle_since_ms.load(Ordering::Acquire) != NO_REQUEST_YET
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(self))
    }
}

/// One request in flight; ends when dropped.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        let ms = u64::try_from(activity.opened.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        activity.idle_since_ms.store(ms, Ordering::Release);
        activity.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A service whose requests are counted in an [`Activity`].
#[derive(Debug)]
pub(crate) struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Tracked<S> {
    pub(crate) fn new(inner: S, activity: Arc<Activity>) -> Tracked<S> {
        Tracked { inner, activity }
    }
}

impl<S, B> Service<Request<Incoming>> for Tracked<S>
where
    S: Service<Request<Incoming>, Response = Response<B>>,
{
    type Response = Response<TrackedBody<B>>;
    type Error = S::Error;
    type Future = TrackedFuture<S::Future>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let in_flight = self.activity.begin();
        TrackedFuture {
            inner: self.inner.call(req),
            in_flight: Some(in_flight),
        }
    }
}

pin_project_lite::pin_project! {
    /// The service's answer; the request stays in flight in its body.
    pub(crate) struct TrackedFuture<F> {
        #[pin]
        inner: F,
        in_flight: Option<InFlight>,
    }
}

impl<F, B, E> Future for TrackedFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<TrackedBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        let in_flight = this.in_flight.take();
        Poll::Ready(result.map(|response| {
            response.map(|body| TrackedBody {
                inner: body,
                _in_flight: in_flight,
            })
        }))
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its request in flight until it is sent
    /// or dropped.
    pub(crate) struct TrackedBody<B> {
        #[pin]
        inner: B,
        _in_flight: Option<InFlight>,
    }
}

impl<B: http_body::Body> http_body::Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
