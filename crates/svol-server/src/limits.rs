//! What one connection or one request may cost the server: a deadline on
//! every call that is not meant to wait (the session stream and a blocking
//! lock wait by design), on top of tonic's per-connection stream and
//! concurrency limits set in `run`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tonic::Status;

/// Calls that legitimately outlive any deadline.
fn waits_by_design(path: &str) -> bool {
    matches!(path, "/svol.v1.Svol/Session" | "/svol.v1.Svol/Lock")
}

#[derive(Clone)]
pub(crate) struct DeadlineLayer(pub(crate) Duration);

impl<S> tower::Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;
    fn layer(&self, inner: S) -> Deadline<S> {
        Deadline {
            inner,
            limit: self.0,
        }
    }
}

/// Answers `DEADLINE_EXCEEDED` for a call still running after the limit
/// (its work is dropped with the future).
#[derive(Clone)]
pub(crate) struct Deadline<S> {
    inner: S,
    limit: Duration,
}

type BoxFut<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B, R> tower::Service<http::Request<B>> for Deadline<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = BoxFut<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let exempt = waits_by_design(req.uri().path());
        let limit = self.limit;
        let fut = self.inner.call(req);
        Box::pin(async move {
            if exempt {
                return fut.await;
            }
            match tokio::time::timeout(limit, fut).await {
                Ok(r) => r,
                Err(_) => Ok(Status::deadline_exceeded(format!(
                    "the server gave up on this call after {limit:?}"
                ))
                .into_http()),
            }
        })
    }
}
