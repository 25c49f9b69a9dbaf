//! The response body wrapper shared by the HTTP server and gRPC layers: the
//! response is only over when its body is, so spans and durations end at
//! the end of the body (a slow stream counts in full), not when the headers
//! are ready.
//!
//! The body is polled inside the request's span, as tower-http's trace body
//! does: work done while streaming belongs to the request, and
//! `tracing-opentelemetry` ends a span at its last exit, so this is also
//! what makes the exported span end with the body.

use std::pin::Pin;
use std::task::{Context, Poll};

/// What a layer does as the body ends. A body may be polled again after
/// its end, or report trailers and then end, so observers record only the
/// first ending they see.
pub trait BodyObserver {
    /// The span to poll the body in, until the body has ended.
    fn span(&self) -> Option<&tracing::Span>;
    /// A trailers frame went by (gRPC carries its status there).
    fn on_trailers(&mut self, trailers: &http::HeaderMap);
    /// The body failed.
    fn on_error(&mut self);
    /// The body ended.
    fn on_end(&mut self);
}

pin_project_lite::pin_project! {
    /// A response body, passed through unchanged, that tells its observer
    /// how it ended.
    #[derive(Debug)]
    pub struct ObservedBody<B, O> {
        #[pin]
        inner: B,
        observer: O,
    }
}

impl<B, O> ObservedBody<B, O> {
    pub(crate) fn new(inner: B, observer: O) -> Self {
        ObservedBody { inner, observer }
    }
}

impl<B: http_body::Body, O: BodyObserver> http_body::Body for ObservedBody<B, O> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let poll = match this.observer.span() {
            Some(span) => {
                let _entered = span.enter();
                this.inner.poll_frame(cx)
            }
            None => this.inner.poll_frame(cx),
        };
        match &poll {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    this.observer.on_trailers(trailers);
                }
            }
            Poll::Ready(Some(Err(_))) => this.observer.on_error(),
            Poll::Ready(None) => this.observer.on_end(),
            Poll::Pending => {}
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
