//! Serving the HTTP API, over TLS when given a certificate, with bounds a hostile client
//! cannot stretch: connections in all and
//! per address (refused at accept), headers within `header_timeout`, a connection that moves
//! no byte for `idle_timeout` closed, and each request answered within `request_timeout`
//! (a body dribbled slowly included: 408). Bodies are limited to 64 KiB in [`crate::http`].

use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tidewatch_connectors::limits::ConnectionLimits;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tower::ServiceExt;

type Request = axum::http::Request<hyper::body::Incoming>;

/// Loads a PEM certificate chain and its key for serving TLS.
pub fn tls_acceptor(cert: &std::path::Path, key: &std::path::Path) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow::anyhow!("http.tls cert {}: {e}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| anyhow::anyhow!("http.tls key {}: {e}", key.display()))?;
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| anyhow::anyhow!("http.tls: {e}"))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    pub max_connections: usize,
    pub max_per_address: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub request_timeout: Duration,
}

/// What the limits refused, for `/metrics`.
#[derive(Debug, Default)]
pub struct HttpCounts {
    pub refused: AtomicU64,
    pub idle_closed: AtomicU64,
}

/// Serves `app` on `listener` until `stop` resolves; then lets requests in flight finish
/// (for at most 5 s).
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: HttpLimits,
    counts: Arc<HttpCounts>,
    stop: impl std::future::Future<Output = ()>,
) {
    let app = app.layer(tower_http::timeout::TimeoutLayer::with_status_code(
        axum::http::StatusCode::REQUEST_TIMEOUT,
        limits.request_timeout,
    ));
    let connections = ConnectionLimits::new(limits.max_connections, limits.max_per_address);
    let (closing, closed) = tokio::sync::watch::channel(false);
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors, most likely: wait rather than spin.
                    tracing::warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        let Some(slot) = connections.take(peer.ip()) else {
            counts.refused.fetch_add(1, Ordering::Relaxed);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        // Each request carries its peer's address (login throttling counts by it).
        let service = TowerToHyperService::new(app.clone().map_request(move |mut request: Request| {
            request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
            request
        }));
        let (counts, closed, tls) = (counts.clone(), closed.clone(), tls.clone());
        tokio::spawn(async move {
            let _slot = slot;
            match tls {
                None => connection(stream, service, limits, counts, closed).await,
                // The handshake, too, within the header timeout.
                Some(tls) => match tokio::time::timeout(limits.header_timeout, tls.accept(stream)).await {
                    Ok(Ok(stream)) => connection(stream, service, limits, counts, closed).await,
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                },
            }
        });
    }
    let _ = closing.send(true);
    // Connections finish what they are answering; the open count falls to zero.
    let deadline = Instant::now() + Duration::from_secs(5);
    while connections.open() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Serves one connection until it ends, goes idle, or the server stops.
async fn connection<S>(
    stream: S,
    service: TowerToHyperService<
        impl tower::Service<Request, Response = axum::response::Response, Error = std::convert::Infallible, Future: Send>
            + Clone
            + Send
            + 'static,
    >,
    limits: HttpLimits,
    counts: Arc<HttpCounts>,
    mut closed: tokio::sync::watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(AtomicI64::new(0));
    let started = Instant::now();
    let io = TokioIo::new(Watched { inner: stream, activity: activity.clone(), started });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).keep_alive(true);
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let mut check = tokio::time::interval(Duration::from_secs(1).min(limits.idle_timeout));
    let mut shutting = false;
    loop {
        tokio::select! {
            _ = &mut connection => break,
            _ = check.tick(), if !shutting => {
                let idle = started.elapsed().as_millis() as i64 - activity.load(Ordering::Relaxed);
                if idle >= limits.idle_timeout.as_millis() as i64 {
                    counts.idle_closed.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
            _ = closed.changed(), if !shutting => {
                shutting = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// A stream that notes when it last moved a byte (ms since `started`).
struct Watched<S> {
    inner: S,
    activity: Arc<AtomicI64>,
    started: Instant,
}

impl<S> Watched<S> {
    fn moved(&self) {
        self.activity.store(self.started.elapsed().as_millis() as i64, Ordering::Relaxed);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.moved();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.moved();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
