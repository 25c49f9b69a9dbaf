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

/// Requests in flight over all of a server's connections, and how many
/// may be. Never waited on, so a counter does (a semaphore would take a
/// lock to give a permit back).
#[derive(Debug)]
pub(crate) struct Budget {
    used: AtomicUsize,
    max: usize,
}

impl Budget {
    pub(crate) fn new(max: usize) -> Budget {
        Budget {
            used: AtomicUsize::new(0),
            max,
        }
    }

    /// Takes one request's share; false when all are taken.
    fn take(&self) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                (used < self.max).then_some(used + 1)
            })
            .is_ok()
    }

    fn give_back(&self) {
        self.used.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Requests on one connection, and what its watchdog has asked of it.
#[derive(Debug)]
pub(crate) struct Activity {
    budget: Arc<Budget>,
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
    /// A connection's activity, its requests held to `budget`.
    pub(crate) fn new(budget: Arc<Budget>) -> Activity {
        Activity {
            budget,
            in_flight: AtomicUsize::new(0),
            ended: AtomicU64::new(0),
            frames: AtomicU64::new(0),
            order: AtomicU8::new(Order::Serve as u8),
            waker: AtomicWaker::new(),
        }
    }

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

    /// A request begins, if the server's budget has room for it.
    fn begin(self: &Arc<Self>) -> Option<InFlight> {
        if !self.budget.take() {
            return None;
        }
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        Some(InFlight {
            activity: Arc::clone(self),
        })
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

/// One request in flight, holding its share of the server's request
/// budget; ends when dropped.
#[derive(Debug)]
pub(crate) struct InFlight {
    activity: Arc<Activity>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.activity.ended.fetch_add(1, Ordering::AcqRel);
        self.activity.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.activity.budget.give_back();
    }
}

/// A service whose requests are counted in an [`Activity`] and held to
/// the server's request budget.
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
        match self.activity.begin() {
            Some(in_flight) => TrackedFuture::Called {
                inner: self.inner.call(req),
                in_flight: Some(in_flight),
            },
            None => TrackedFuture::Refused,
        }
    }
}

pin_project_lite::pin_project! {
    /// The service's answer, the request staying in flight in its body; or
    /// 503 at once when the server's request budget is spent.
    #[project = TrackedFutureProj]
    pub(crate) enum TrackedFuture<F> {
        Called {
            #[pin]
            inner: F,
            in_flight: Option<InFlight>,
        },
        Refused,
    }
}

impl<F, B, E> Future for TrackedFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<TrackedBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            TrackedFutureProj::Called { inner, in_flight } => {
                let result = std::task::ready!(inner.poll(cx));
                let in_flight = in_flight.take();
                Poll::Ready(result.map(|response| {
                    response.map(|body| TrackedBody::Served {
                        inner: body,
                        in_flight,
                    })
                }))
            }
            TrackedFutureProj::Refused => {
                let mut response = Response::new(TrackedBody::Refused);
                *response.status_mut() = hyper::StatusCode::SERVICE_UNAVAILABLE;
                response.headers_mut().insert(
                    hyper::header::RETRY_AFTER,
                    hyper::header::HeaderValue::from_static("1"),
                );
                Poll::Ready(Ok(response))
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its request in flight until it is sent
    /// or dropped; empty for a refused request.
    #[project = TrackedBodyProj]
    pub(crate) enum TrackedBody<B> {
        Served {
            #[pin]
            inner: B,
            in_flight: Option<InFlight>,
        },
        Refused,
    }
}

impl<B: http_body::Body> http_body::Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        match self.project() {
            TrackedBodyProj::Served { inner, in_flight } => {
                let frame = inner.poll_frame(cx);
                if let (Poll::Ready(Some(_)), Some(in_flight)) = (&frame, in_flight.as_ref()) {
                    in_flight.activity.frames.fetch_add(1, Ordering::Relaxed);
                }
                frame
            }
            TrackedBodyProj::Refused => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            TrackedBody::Served { inner, .. } => inner.is_end_stream(),
            TrackedBody::Refused => true,
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            TrackedBody::Served { inner, .. } => inner.size_hint(),
            TrackedBody::Refused => http_body::SizeHint::with_exact(0),
        }
    }
}
