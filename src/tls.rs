//! TLS on the HTTP port (`[server.tls]`), for sites without a proxy: HTTPS and WSS on the
//! same port as the plain surface would use.
//!
//! Owns: reading the certificate chain and key into a rustls server config (ring provider,
//! HTTP/1.1 only), [`TlsListener`], which accepts TCP connections and hands axum the ones
//! whose handshake completed, and reading the private CA that connect mode trusts for
//! `wss://` (`source.ca`, [`load_ca`]). Must not: know routes or tokens.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// How long a client may take over its handshake before the connection is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshaken connections waiting for the server; when full, handshake tasks wait.
const PENDING: usize = 64;

/// Why the TLS files are unusable; `key` is the config key to name.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct TlsError {
    pub key: &'static str,
    pub message: String,
}

/// A `source.ca` file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("cannot read source.ca {path}: {error}")]
    Read {
        path: String,
        error: rustls::pki_types::pem::Error,
    },
    #[error("source.ca {path} holds no certificate")]
    Empty { path: String },
    #[error("source.ca {path}: a certificate is not usable as a root: {error}")]
    Root { path: String, error: rustls::Error },
}

/// The CA certificates of a PEM file (`source.ca`).
pub fn load_ca(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, CaError> {
    let shown = || path.display().to_string();
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|error| CaError::Read {
            path: shown(),
            error,
        })?;
    if certs.is_empty() {
        return Err(CaError::Empty { path: shown() });
    }
    Ok(certs)
}

/// The rustls server config of `cert` (a PEM chain, leaf first) and `key` (a PEM private
/// key: PKCS#8, PKCS#1 or SEC1).
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let err = |key: &'static str, message: String| TlsError { key, message };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect())
        .map_err(|e| {
            err(
                "server.tls.cert",
                format!("cannot read certificates from {}: {e}", cert.display()),
            )
        })?;
    if chain.is_empty() {
        return Err(err(
            "server.tls.cert",
            format!("no PEM certificate in {}", cert.display()),
        ));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        err(
            "server.tls.key",
            format!("cannot read a private key from {}: {e}", key.display()),
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err("server.tls", format!("tls setup: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| {
            err(
                "server.tls.key",
                format!("the key does not fit the certificate: {e}"),
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Accepts TCP connections and yields them once their TLS handshake is done. Handshakes run
/// in tasks of their own, so a slow client holds up nobody; they end with `shutdown`.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    pub fn new(
        tcp: TcpListener,
        config: Arc<rustls::ServerConfig>,
        shutdown: CancellationToken,
    ) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(PENDING);
        let acceptor = TlsAcceptor::from(config);
        tokio::spawn(async move {
            loop {
                let (stream, peer) = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    r = tcp.accept() => match r {
                        Ok(c) => c,
                        Err(e) => {
                            // Out of file descriptors and the like: wait rather than spin.
                            tracing::warn!(error = %e, "cannot accept a connection");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    },
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                let shutdown = shutdown.clone();
                tokio::spawn(async move {
                    let handshake =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                    let tls = tokio::select! {
                        _ = shutdown.cancelled() => return,
                        r = handshake => match r {
                            Ok(Ok(tls)) => tls,
                            Ok(Err(e)) => {
                                tracing::debug!(peer = %peer, error = %e, "tls handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(peer = %peer, "tls handshake timed out");
                                return;
                            }
                        },
                    };
                    let _ = tx.send((tls, peer)).await;
                });
            }
        });
        Ok(TlsListener { ready, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The accept task ended: the daemon is shutting down.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}
