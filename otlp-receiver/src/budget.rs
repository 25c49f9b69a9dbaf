//! The bytes of requests in flight, bounded over every connection of both
//! listeners. The per-request limit (`ServerConfig::max_body_bytes`) bounds
//! one request; a thousand clients sending at once could each still hold
//! that much (and as much again decompressed). Each request reserves what it
//! reads and decompresses, and gives it back when it is answered; a request
//! that would take the server past its budget is refused with a retryable
//! answer (HTTP 503 with `Retry-After`, gRPC `UNAVAILABLE`), which OTLP
//! exporters retry with backoff.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// Bytes held by requests in flight, against a limit.
#[derive(Debug)]
pub(crate) struct ByteBudget {
    held: AtomicUsize,
    limit: usize,
}

/// A request's share of the budget, given back on drop. Shared (in an
/// `Arc`) between a request's body, which grows it as frames arrive, and
/// its handler, which grows it by what it decompresses and holds it until
/// the request is answered.
#[derive(Debug)]
pub(crate) struct Reservation {
    budget: Arc<ByteBudget>,
    held: AtomicUsize,
}

/// The budget has no room for what a request asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Exhausted {
    pub limit: usize,
    /// What the request was taking: its declared length, its body, what it
    /// decompresses or decodes to.
    pub what: &'static str,
}

impl std::fmt::Display for Exhausted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the receiver holds its limit of {} bytes of requests in flight, with no room for \
             {}; retry later",
            self.limit, self.what
        )
    }
}

impl std::error::Error for Exhausted {}

impl ByteBudget {
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            held: AtomicUsize::new(0),
            limit,
        })
    }

    /// An empty reservation that grows as the request is read.
    pub(crate) fn reserve(self: &Arc<Self>) -> Reservation {
        Reservation {
            budget: Arc::clone(self),
            held: AtomicUsize::new(0),
        }
    }

    /// The most all requests may hold at once.
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes held now, over all requests.
    pub(crate) fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }
}

impl Reservation {
    /// The budget this reservation is part of.
    pub(crate) fn budget(&self) -> &ByteBudget {
        &self.budget
    }

    /// Bytes this request holds.
    pub(crate) fn held(&self) -> usize {
        self.held.load(Ordering::Acquire)
    }

    /// Takes `bytes` more for `what`, or nothing if that would pass the limit.
    pub(crate) fn grow(&self, bytes: usize, what: &'static str) -> Result<(), Exhausted> {
        let limit = self.budget.limit;
        self.budget
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(bytes).filter(|&after| after <= limit)
            })
            .map_err(|_| Exhausted { limit, what })?;
        self.held.fetch_add(bytes, Ordering::AcqRel);
        Ok(())
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let held = *self.held.get_mut();
        self.budget.held.fetch_sub(held, Ordering::AcqRel);
    }
}

/// A request body that takes each data frame's bytes from a reservation
/// before handing the frame on; past the budget it fails with `refusal`
/// (gRPC: a `tonic::Status`, which tonic answers as it is). The first
/// `prepaid` bytes were reserved before reading (a declared length).
pub(crate) struct BudgetedBody<B> {
    inner: B,
    reservation: Arc<Reservation>,
    prepaid: usize,
    refusal: fn(Exhausted) -> Box<dyn std::error::Error + Send + Sync>,
}

impl<B> BudgetedBody<B> {
    pub(crate) fn new(
        inner: B,
        reservation: Arc<Reservation>,
        prepaid: usize,
        refusal: fn(Exhausted) -> Box<dyn std::error::Error + Send + Sync>,
    ) -> Self {
        Self {
            inner,
            reservation,
            prepaid,
            refusal,
        }
    }
}

/// A reader (a decompressor) whose output is taken from a reservation as
/// it is produced, so a small compressed body cannot inflate past the
/// budget before it is counted. Past it, the read fails with [`Exhausted`]
/// inside the `io::Error`.
pub(crate) struct BudgetedRead<'a, R> {
    pub inner: R,
    pub reservation: &'a Reservation,
}

impl<R: std::io::Read> std::io::Read for BudgetedRead<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.reservation
            .grow(n, "what it decompresses to")
            .map_err(std::io::Error::other)?;
        Ok(n)
    }
}

impl<B> Body for BudgetedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let prepaid = data.len().min(this.prepaid);
                    this.prepaid -= prepaid;
                    if let Err(exhausted) = this.reservation.grow(data.len() - prepaid, "its body")
                    {
                        return Poll::Ready(Some(Err((this.refusal)(exhausted))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_share_one_limit_and_give_back_on_drop() {
        let budget = ByteBudget::new(100);
        let a = budget.reserve();
        let b = budget.reserve();
        a.grow(60, "x").unwrap();
        assert_eq!(
            b.grow(41, "its body"),
            Err(Exhausted {
                limit: 100,
                what: "its body"
            })
        );
        b.grow(40, "x").unwrap();
        assert_eq!((budget.held(), a.held(), b.held()), (100, 60, 40));
        assert!(a.grow(1, "x").is_err());
        drop(a);
        assert_eq!(budget.held(), 40);
        b.grow(60, "x").unwrap();
        drop(b);
        assert_eq!(budget.held(), 0);
        // A request larger than the whole budget never fits, and takes nothing.
        let c = budget.reserve();
        assert!(c.grow(usize::MAX, "x").is_err());
        assert_eq!(budget.held(), 0);
    }
}
