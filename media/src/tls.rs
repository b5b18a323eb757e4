//! RTSPS for the file server: every runtime's listener and connection
//! sockets wrapped with the driver's one TLS layer
//! ([`rtsp_toolkit_driver::tls::TlsLayer`]), so that the connection loop of
//! [`serving`](crate::serving) runs unchanged over TLS (`docs/ARCHITECTURE.md`, "TLS").
//!
//! A runtime's server wraps its [`Listener`] in a [`TlsListener`] when
//! [`ServerOptions::tls`](crate::serving::ServerOptions::tls) is set; each
//! accepted socket becomes a [`TlsIo`]: the handshake runs in its first
//! reads, the machine's writes are encrypted, its reads decrypted.
//! Interleaved media travels on the TLS connection; a UDP SETUP is still
//! accepted over TLS (RTP and RTCP then travel unencrypted: SRTP is out of
//! scope).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtsp_toolkit_core::server::LookupError;
use rtsp_toolkit_driver::tls::{describe_error, ServerTlsConfig, TlsLayer};
use rtsp_toolkit_driver::{Woken, WriteError};

use crate::library::Library;
use crate::serving::{ConnectionIo, Listener};
use crate::MediaSource;

/// Longest a TLS alert or close_notify may take to write when a connection
/// ends: it is a courtesy, not worth holding the connection.
const CLOSE_WRITE: Duration = Duration::from_millis(200);

/// Longest the handshake's replies may wait for the client to read them.
const HANDSHAKE_WRITE: Duration = Duration::from_secs(5);

/// Ciphertext read at once (a TLS record is at most 16 KiB plus overhead).
const CIPHER_BUFFER: usize = 18 * 1024;

/// A runtime's [`Listener`] whose connections speak TLS ([`TlsIo`]).
#[derive(Debug)]
pub struct TlsListener<L> {
    inner: L,
    config: ServerTlsConfig,
}

impl<L: Listener> TlsListener<L> {
    /// `inner`'s connections, each behind a TLS server connection of `config`.
    pub fn new(inner: L, config: ServerTlsConfig) -> TlsListener<L> {
        TlsListener { inner, config }
    }
}

impl<L: Listener> Listener for TlsListener<L> {
    type Socket = TlsIo<L::Socket>;

    fn accept(&self) -> impl Future<Output = io::Result<(TlsIo<L::Socket>, SocketAddr)>> + Send {
        let accept = self.inner.accept();
        async move {
            let (socket, peer) = accept.await?;
            let layer = TlsLayer::server(&self.config).map_err(io::Error::other)?;
            Ok((TlsIo::new(socket, layer), peer))
        }
    }

    fn sleep(duration: Duration) -> impl Future<Output = ()> + Send {
        L::sleep(duration)
    }

    fn spawn(&self, connection: impl Future<Output = ()> + Send + 'static) {
        self.inner.spawn(connection);
    }
}

/// An accepted connection behind a TLS server connection: what the
/// connection loop reads is plaintext, what it writes is encrypted.
#[derive(Debug)]
pub struct TlsIo<C> {
    inner: C,
    layer: TlsLayer,
    cipher: Vec<u8>,
    /// Plaintext decrypted but not handed out yet (`plain[taken..]`).
    plain: Vec<u8>,
    taken: usize,
}

impl<C: ConnectionIo> TlsIo<C> {
    /// `inner` with `layer` (a [`TlsLayer::server`]) in front.
    pub fn new(inner: C, layer: TlsLayer) -> TlsIo<C> {
        TlsIo {
            inner,
            layer,
            cipher: vec![0; CIPHER_BUFFER],
            plain: Vec::new(),
            taken: 0,
        }
    }

    /// Copies the waiting plaintext into `buf`: how many bytes.
    fn hand_out(&mut self, buf: &mut [u8]) -> usize {
        let waiting = &self.plain[self.taken..];
        let n = waiting.len().min(buf.len());
        buf[..n].copy_from_slice(&waiting[..n]);
        self.taken += n;
        if self.taken == self.plain.len() {
            self.plain.clear();
            self.taken = 0;
        }
        n
    }

    /// Writes what the layer has to send (handshake, alerts, tickets).
    async fn flush(&mut self, stall: Duration) -> Result<(), WriteError> {
        if !self.layer.wants_write() {
            return Ok(());
        }
        let out = self.layer.take_outgoing();
        self.inner.write_all(&out, stall).await
    }
}

impl<C: ConnectionIo> ConnectionIo for TlsIo<C> {
    type Udp = C::Udp;
    type Relay = C::Relay;

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn sleep_until(at: Instant) -> impl Future<Output = ()> + Send {
        C::sleep_until(at)
    }

    async fn write_all(&mut self, bytes: &[u8], stall: Duration) -> Result<(), WriteError> {
        self.layer.send(bytes);
        let out = self.layer.take_outgoing();
        self.inner.write_all(&out, stall).await
    }

    fn lookup(
        library: Arc<Library>,
        path: String,
    ) -> impl Future<Output = Result<Arc<MediaSource>, LookupError>> + Send {
        C::lookup(library, path)
    }

    /// The handshake's replies are written here, as its records arrive:
    /// a wait is cancelled only by the server's stop, a TEARDOWN, or a
    /// datagram of a UDP session, none of which come before the handshake
    /// is done (an interrupted reply would break it).
    async fn read_until(&mut self, buf: &mut [u8], at: Instant) -> Woken {
        loop {
            if self.taken < self.plain.len() {
                let n = self.hand_out(buf);
                let now = Instant::now();
                return Woken::new(now, Some(Ok(n)), now >= at);
            }
            let woken = self.inner.read_until(&mut self.cipher, at).await;
            let n = match woken.read {
                Some(Ok(n)) if n > 0 => n,
                // Nothing, the end of the stream, or a failed read: as is.
                _ => return woken,
            };
            let received = self.layer.receive(&self.cipher[..n], &mut self.plain);
            match received {
                Ok(r) => {
                    if self.flush(HANDSHAKE_WRITE).await.is_err() {
                        let e = io::Error::new(io::ErrorKind::BrokenPipe, "TLS: the client does not read");
                        return Woken::new(Instant::now(), Some(Err(e)), woken.deadline_passed);
                    }
                    if self.taken < self.plain.len() {
                        let n = self.hand_out(buf);
                        return Woken::new(woken.now, Some(Ok(n)), woken.deadline_passed);
                    }
                    if r.closed {
                        return Woken::new(woken.now, Some(Ok(0)), woken.deadline_passed);
                    }
                    if woken.deadline_passed {
                        return Woken::new(woken.now, None, true);
                    }
                }
                Err(e) => {
                    let e = io::Error::new(io::ErrorKind::InvalidData, describe_error(&e, "the client"));
                    tracing::debug!(error = %e, "TLS connection failed");
                    // The alert, for a client that speaks TLS.
                    let _ = self.flush(CLOSE_WRITE).await;
                    return Woken::new(woken.now, Some(Err(e)), woken.deadline_passed);
                }
            }
        }
    }

    async fn close(mut self) {
        if !self.layer.is_handshaking() {
            self.layer.close();
            let _ = self.flush(CLOSE_WRITE).await;
        }
        self.inner.close().await;
    }
}
