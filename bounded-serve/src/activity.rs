//! What a connection's deadlines are measured on, and how its watchdog
//! tells it to close.
//!
//! A request is in flight from the moment hyper hands it to the service
//! until its response body has been sent or dropped. Counting costs a few
//! atomic operations per request and no clock read: the watchdog, which
//! wakes only at deadlines, reads the clock and sees from the counters
//! whether anything happened since it last looked.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;
use hyper::body::Incoming;
use hyper::service::Service;
use hyper::{Request, Response};

/// Requests on one connection, and what its watchdog has asked of it.
#[derive(Debug, Default)]
pub(crate) struct Activity {
    in_flight: AtomicUsize,
    ended: AtomicU64,
    /// Response body frames sent: a long response that keeps sending is
    /// making progress.
    frames: AtomicU64,
    order: AtomicU8,
    waker: AtomicWaker,
}

/// What the watchdog asks of a connection; each asks more than the last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub(crate) enum Order {
    Serve = 0,
    /// Finish what is in flight, take nothing new (HTTP/2: GOAWAY).
    CloseGracefully = 1,
    /// Close the socket now.
    Drop = 2,
}

/// A reading of a connection's counters, to compare with a later one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Seen {
    pub(crate) in_flight: usize,
    pub(crate) ended: u64,
    pub(crate) frames: u64,
}

impl Seen {
    /// Whether a request has started on the connection.
    pub(crate) fn started(self) -> bool {
        self.in_flight > 0 || self.ended > 0
    }
}

impl Activity {
    /// The counters now. The ever-growing ones are read first: a request
    /// ending between the reads then shows as a change at the next look,
    /// never as a reading that a later one could equal by chance.
    pub(crate) fn seen(&self) -> Seen {
        let ended = self.ended.load(Ordering::Acquire);
        let frames = self.frames.load(Ordering::Acquire);
        Seen {
            in_flight: self.in_flight.load(Ordering::Acquire),
            ended,
            frames,
        }
    }

    /// Asks the connection for `order` (never less than it was asked).
    pub(crate) fn order(&self, order: Order) {
        self.order.fetch_max(order as u8, Ordering::AcqRel);
        self.waker.wake();
    }

    /// The next order above `after`, once there is one.
    pub(crate) fn next_order(&self, after: Order) -> NextOrder<'_> {
        NextOrder {
            activity: self,
            after,
        }
    }

    fn current_order(&self) -> Order {
        match self.order.load(Ordering::Acquire) {
            0 => Order::Serve,
            1 => Order::CloseGracefully,
            _ => Order::Drop,
        }
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(self))
    }
}

/// Resolves to the first order above the one given.
#[derive(Debug)]
pub(crate) struct NextOrder<'a> {
    activity: &'a Activity,
    after: Order,
}

impl Future for NextOrder<'_> {
    type Output = Order;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Order> {
        let order = self.activity.current_order();
        if order > self.after {
            return Poll::Ready(order);
        }
        self.activity.waker.register(cx.waker());
        // An order given between the load and the registration.
        let order = self.activity.current_order();
        if order > self.after {
            Poll::Ready(order)
        } else {
            Poll::Pending
        }
    }
}

/// One request in flight; ends when dropped.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.ended.fetch_add(1, Ordering::AcqRel);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
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
                in_flight,
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
        in_flight: Option<InFlight>,
    }
}

impl<B: http_body::Body> http_body::Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = this.inner.poll_frame(cx);
        if let (Poll::Ready(Some(_)), Some(in_flight)) = (&frame, this.in_flight.as_ref()) {
            in_flight.0.frames.fetch_add(1, Ordering::Relaxed);
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
