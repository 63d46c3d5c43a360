//! A fault layer on the client side, in front of the real `kube::Client`'s
//! HTTP stack: what no server can inject, such as one request (and only one)
//! that never gets an answer, as on a half-open connection.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use http::{Method, Request};

/// Faults armed from the test, shared with the layer.
#[derive(Clone, Default)]
pub struct ClientFaults {
    /// How many of the next PUT requests hang forever.
    hang_puts: Arc<AtomicUsize>,
    /// PUT requests that were hung so far.
    hung: Arc<AtomicUsize>,
}

impl ClientFaults {
    /// The next `n` PUT requests are never answered (the caller's timeout
    /// must end them); later ones go through.
    pub fn hang_next_puts(&self, n: usize) {
        self.hang_puts.store(n, Ordering::SeqCst);
    }

    /// How many requests were hung so far.
    pub fn hung(&self) -> usize {
        self.hung.load(Ordering::SeqCst)
    }

    /// A kube client for `config` behind this layer.
    pub fn client(&self, config: kube::Config) -> kube::Client {
        kube::client::ClientBuilder::try_from(config)
            .expect("client builder")
            .with_layer(self)
            .build()
    }
}

impl<S> tower::Layer<S> for ClientFaults {
    type Service = Faulty<S>;
    fn layer(&self, inner: S) -> Faulty<S> {
        Faulty {
            inner,
            faults: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Faulty<S> {
    inner: S,
    faults: ClientFaults,
}

impl<S, B> tower::Service<Request<B>> for Faulty<S>
where
    S: tower::Service<Request<B>>,
    S::Future: Send + 'static,
    S::Response: 'static,
    S::Error: 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let hang = req.method() == Method::PUT
            && self
                .faults
                .hang_puts
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
        if hang {
            self.faults.hung.fetch_add(1, Ordering::SeqCst);
            Box::pin(std::future::pending())
        } else {
            Box::pin(self.inner.call(req))
        }
    }
}
