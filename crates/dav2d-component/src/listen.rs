//! Listening, shared by every component that accepts connections: the
//! connection limit, TLS (rustls), accept errors that back off instead of
//! spinning, the constant-time token check, and the gentle close that lets
//! a refused peer read why.
//!
//! A [`Listener`] hands out [`Accepted::Open`] connections while fewer than
//! `max_connections` are open; past that it hands the socket back as
//! [`Accepted::OverLimit`] so the component can say why before closing it.
//! When the process runs out of descriptors (EMFILE) the accept loop sleeps,
//! doubling from 10 ms to 1 s, and logs once per 10 s with the count of
//! failures, instead of logging thousands of lines a second.
//!
//! A connection closed while the peer's bytes sit unread is reset (RST) by
//! the kernel, and the peer may lose the error line written just before.
//! [`close_gently`] and [`close_gently_blocking`] shut the writing side, then
//! read and drop what the peer still sends until it closes too, for at most
//! [`LINGER`] and [`LINGER_BYTES`].

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use subtle::ConstantTimeEq;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

/// The certificate chain and private key a listener serves TLS with (PEM files).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl TlsFiles {
    /// The acceptor these files describe, or what is wrong with them.
    pub fn acceptor(&self) -> Result<TlsAcceptor, String> {
        let certs = CertificateDer::pem_file_iter(&self.cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|error| pem_error(&self.cert, "certificate", &error))?;
        if certs.is_empty() {
            return Err(format!(
                "{} holds no certificate; give a PEM file with a CERTIFICATE block",
                self.cert.display()
            ));
        }
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .map_err(|error| pem_error(&self.key, "private key", &error))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|builder| builder.with_no_client_auth().with_single_cert(certs, key))
            .map_err(|error| {
                format!(
                    "the certificate {} and key {} do not make a TLS server: {error}",
                    self.cert.display(),
                    self.key.display()
                )
            })?;
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

fn pem_error(path: &Path, what: &str, error: &rustls_pki_types::pem::Error) -> String {
    format!(
        "cannot read the {what} {}: {error}; give a PEM file",
        path.display()
    )
}

/// Whether `given` is `token`. Their SHA-256 digests are compared in
/// constant time, so neither the token's bytes nor its length can be
/// learned from response times (a plain compare stops at a length
/// mismatch). Every door that takes a token (HTTP's bearer header, TCP's
/// `AUTH` line, the frame source) uses this.
pub fn token_matches(given: &[u8], token: &str) -> bool {
    let sha = &ring::digest::SHA256;
    let given = ring::digest::digest(sha, given);
    let token = ring::digest::digest(sha, token.as_bytes());
    bool::from(given.as_ref().ct_eq(token.as_ref()))
}

/// Where and how a listening component listens: one shape for the HTTP
/// API and the TCP server (each adds its own protocol settings beside it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenConfig {
    /// Address to bind; loopback by default.
    pub bind: SocketAddr,
    /// When set, a client must present it (HTTP `Authorization: Bearer`,
    /// TCP's first line `AUTH <token>`).
    pub token: Option<String>,
    /// Serve TLS with this certificate and key.
    pub tls: Option<TlsFiles>,
    /// Connections open at once; more are refused with a reason.
    pub max_connections: usize,
}

impl ListenConfig {
    /// Loopback on `port`, no token, no TLS, 1024 connections.
    pub fn loopback(port: u16) -> ListenConfig {
        ListenConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], port)),
            token: None,
            tls: None,
            max_connections: 1024,
        }
    }
}

/// What a listening component asks [`Listener::open`] for.
#[derive(Clone, Debug)]
pub struct ListenOptions<'a> {
    /// `HTTP`, `TCP`: names the listener in logs and errors.
    pub what: &'static str,
    /// The component's name, for logs.
    pub component: &'a str,
    /// The setting of the address, e.g. `http.bind` (its section prefixes `tls`).
    pub setting: &'a str,
    /// Where and how it listens.
    pub listen: &'a ListenConfig,
}

/// A listening socket with a connection limit, optional TLS and accept
/// errors that back off.
pub struct Listener {
    inner: TcpListener,
    tls: Option<TlsAcceptor>,
    open: Arc<Semaphore>,
    backoff: AcceptBackoff,
    what: &'static str,
}

/// The connections open on a [`Listener`] (taken before it serves, so
/// `most` is its limit).
#[derive(Clone, Debug)]
pub struct OpenConnections {
    open: Arc<Semaphore>,
    most: usize,
}

impl OpenConnections {
    /// Connections open now.
    pub fn count(&self) -> usize {
        self.most.saturating_sub(self.open.available_permits())
    }
}

impl crate::Health for OpenConnections {
    fn status(&self) -> Result<(), String> {
        Ok(())
    }

    fn gauges(&self) -> Vec<crate::Gauge> {
        vec![crate::Gauge::count(
            "connections_open",
            "Connections open on the component's listener.",
            self.count() as u64,
        )]
    }
}

/// What [`Listener::accept`] got.
pub enum Accepted {
    /// A connection within the limit (TLS not yet negotiated).
    Open(Incoming),
    /// A connection past `max_connections`: say why, then drop it.
    OverLimit(TcpStream),
}

impl Listener {
    /// Loads the TLS files, binds (a busy port is an error before anything
    /// runs) and warns when listening beyond loopback without a token or
    /// without TLS: the one way every listening component opens its socket.
    pub fn open(
        io: &tokio::runtime::Handle,
        options: &ListenOptions<'_>,
    ) -> Result<Listener, crate::StartError> {
        let section = options.setting.trim_end_matches(".bind");
        let tls =
            match &options.listen.tls {
                Some(files) => Some(files.acceptor().map_err(|error| {
                    crate::StartError::Other(format!("{section}.tls: {error}"))
                })?),
                None => None,
            };
        let address = options.listen.bind;
        let bound = crate::bind(io, options.what, options.setting, address)?;
        if !address.ip().is_loopback() {
            let (what, component) = (options.what, options.component);
            if options.listen.token.is_none() {
                tracing::warn!(
                    component,
                    %address,
                    "The {what} listener is beyond loopback without a token: anyone who can reach it can write; set {section}.token."
                );
            }
            if tls.is_none() {
                tracing::warn!(
                    component,
                    %address,
                    "The {what} listener is beyond loopback without TLS: data and tokens cross the network in clear text; set {section}.tls."
                );
            }
        }
        Ok(Listener::new(
            bound,
            tls,
            options.listen.max_connections,
            options.what,
        ))
    }

    /// Wraps `inner`; at most `max_connections` are open at once. `what`
    /// (`HTTP`, `TCP`) names the listener in logs.
    pub fn new(
        inner: TcpListener,
        tls: Option<TlsAcceptor>,
        max_connections: usize,
        what: &'static str,
    ) -> Self {
        Self {
            inner,
            tls,
            open: Arc::new(Semaphore::new(
                max_connections.clamp(1, Semaphore::MAX_PERMITS),
            )),
            backoff: AcceptBackoff::default(),
            what,
        }
    }

    /// How many connections are open: the listener's health, which
    /// reports them as the gauge `dav2d_connections_open`.
    pub fn connections(&self) -> OpenConnections {
        OpenConnections {
            open: Arc::clone(&self.open),
            most: self.open.available_permits(),
        }
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// Whether connections are TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The next connection. Accept errors are handled here: the loop
    /// backs off while descriptors are exhausted and never returns them.
    pub async fn accept(&mut self) -> Accepted {
        loop {
            match self.inner.accept().await {
                Ok((stream, peer)) => {
                    self.backoff.succeeded(self.what);
                    let _ = stream.set_nodelay(true);
                    return match Arc::clone(&self.open).try_acquire_owned() {
                        Ok(permit) => Accepted::Open(Incoming {
                            stream,
                            peer,
                            tls: self.tls.clone(),
                            permit,
                        }),
                        Err(_) => Accepted::OverLimit(stream),
                    };
                }
                Err(error) => self.backoff.failed(self.what, &error).await,
            }
        }
    }
}

/// An accepted connection that holds its place under the limit until dropped.
pub struct Incoming {
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    permit: OwnedSemaphorePermit,
}

impl Incoming {
    /// The peer's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The connection, after the TLS handshake when the listener has TLS
    /// (which must finish within `handshake_timeout`).
    pub async fn establish(self, handshake_timeout: Duration) -> io::Result<Connection> {
        let io = match self.tls {
            None => Io::Plain(self.stream),
            Some(acceptor) => {
                let mut stream = self.stream;
                // Plain text where TLS was expected (a ClientHello begins
                // with 0x16): say so readably, as nginx does, then close.
                let mut first = [0u8; 1];
                if let Ok(Ok(1)) =
                    tokio::time::timeout(handshake_timeout, stream.peek(&mut first)).await
                    && first[0] != 0x16
                {
                    let answer = plain_on_tls(first[0]);
                    let _ = stream.write_all(answer.as_bytes()).await;
                    close_gently(&mut stream).await;
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "plain text on a TLS listener",
                    ));
                }
                match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => Io::Tls(Box::new(stream)),
                    Ok(Err(error)) => return Err(error),
                    Err(_) => {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "the TLS handshake did not finish in time",
                        ));
                    }
                }
            }
        };
        Ok(Connection {
            io,
            permit: Some(self.permit),
        })
    }
}

/// What a client that spoke plain text to a TLS listener is told: an HTTP
/// answer when its first byte can begin a request line, a JSON line
/// otherwise (the TCP protocol's error shape).
fn plain_on_tls(first: u8) -> String {
    const WHY: &str = "this port speaks TLS; connect with TLS (https:// for HTTP)";
    if first.is_ascii_uppercase() {
        format!(
            "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{WHY}\n",
            WHY.len() + 1
        )
    } else {
        format!("{{\"error\": \"{WHY}\"}}\n")
    }
}

enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

/// An open connection, plain or TLS, counted under its listener's limit.
pub struct Connection {
    io: Io,
    /// Its place under the limit (`None` once it only lingers).
    permit: Option<OwnedSemaphorePermit>,
}

impl Connection {
    /// Gives back its place under the limit, then closes gently
    /// ([`close_gently`]): a peer left lingering never keeps others out.
    pub async fn close_gently(mut self) {
        self.permit = None;
        close_gently(&mut self).await;
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(stream) => stream.is_write_vectored(),
            Io::Tls(stream) => stream.is_write_vectored(),
        }
    }
}

/// The sleep after failed accepts: doubling from 10 ms to 1 s while they
/// fail, and one log line per 10 s with how many failed.
#[derive(Default)]
struct AcceptBackoff {
    delay: Duration,
    failures: u64,
    logged: Option<Instant>,
}

const LOG_EVERY: Duration = Duration::from_secs(10);

impl AcceptBackoff {
    async fn failed(&mut self, what: &'static str, error: &io::Error) {
        self.failures += 1;
        if self.logged.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
            tracing::warn!(
                %error,
                failures = self.failures,
                "Accepting a {what} connection failed; backing off (raise the descriptor limit, `ulimit -n`, or lower max_connections)."
            );
            self.logged = Some(Instant::now());
            self.failures = 0;
        }
        self.delay = (self.delay * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
        tokio::time::sleep(self.delay).await;
    }

    fn succeeded(&mut self, what: &'static str) {
        if self.delay > Duration::ZERO {
            self.delay = Duration::ZERO;
            if self.failures > 0 {
                tracing::info!(
                    failures = self.failures,
                    "Accepting {what} connections again."
                );
                self.failures = 0;
            }
        }
    }
}

/// How long a gentle close waits for the peer to close its side.
pub const LINGER: Duration = Duration::from_secs(2);
/// The most a gentle close reads and drops before it closes anyway.
pub const LINGER_BYTES: usize = 16 << 20;

/// Closes `stream` so the peer can still read what was written: shuts the
/// writing side, then reads and drops what the peer still sends until it
/// closes, for at most [`LINGER`] and [`LINGER_BYTES`].
pub async fn close_gently<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) {
    let drain = async {
        let _ = stream.shutdown().await;
        let mut scratch = [0u8; 8 << 10];
        let mut dropped = 0;
        while dropped < LINGER_BYTES {
            match stream.read(&mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(n) => dropped += n,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// [`close_gently`] for a blocking socket, on a short-lived thread of its
/// own so the caller goes on at once.
pub fn close_gently_blocking(stream: std::net::TcpStream) {
    let linger = move || {
        use std::io::Read;
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let _ = stream.set_nonblocking(false);
        let until = Instant::now() + LINGER;
        let mut scratch = [0u8; 8 << 10];
        let mut dropped = 0;
        while dropped < LINGER_BYTES {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
                break;
            }
            match (&stream).read(&mut scratch) {
                Ok(0) | Err(_) => break,
                Ok(n) => dropped += n,
            }
        }
    };
    if std::thread::Builder::new()
        .name("dav2d-linger".into())
        .spawn(linger)
        .is_err()
    {
        tracing::debug!("No thread for a gentle close; the socket closes at once.");
    }
}
