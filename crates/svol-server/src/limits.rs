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

pub(crate) type BoxFut<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

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

#[cfg(test)]
mod tests {
    use super::*;
    use tower::{Layer, Service, ServiceExt};

    /// An inner service that answers after `delay`.
    #[derive(Clone)]
    struct Slow(Duration);

    impl tower::Service<http::Request<()>> for Slow {
        type Response = http::Response<String>;
        type Error = std::convert::Infallible;
        type Future = BoxFut<Self::Response, Self::Error>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, _: http::Request<()>) -> Self::Future {
            let d = self.0;
            Box::pin(async move {
                tokio::time::sleep(d).await;
                Ok(http::Response::new("done".to_string()))
            })
        }
    }

    fn req(path: &str) -> http::Request<()> {
        http::Request::builder()
            .uri(path)
            .body(())
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn a_slow_call_gets_deadline_exceeded_but_waits_by_design_do_not() {
        let mut svc =
            DeadlineLayer(Duration::from_millis(50)).layer(Slow(Duration::from_millis(300)));
        let r = svc
            .ready()
            .await
            .unwrap_or_else(|e| match e {})
            .call(req("/svol.v1.Svol/GetAttr"))
            .await
            .unwrap_or_else(|e| match e {});
        let status = tonic::Status::from_header_map(r.headers()).map(|s| s.code());
        assert_eq!(status, Some(tonic::Code::DeadlineExceeded));
        for path in ["/svol.v1.Svol/Lock", "/svol.v1.Svol/Session"] {
            let r = svc
                .ready()
                .await
                .unwrap_or_else(|e| match e {})
                .call(req(path))
                .await
                .unwrap_or_else(|e| match e {});
            assert_eq!(r.body(), "done", "{path} waits as long as it needs");
        }
    }
}
