//! The RTSP file server over tokio (media interleaved on the RTSP
//! connection, or over UDP).
//!
//! Every supported file under a root directory (`.mp4 .mkv .wav .aac`, in
//! subdirectories too) is published as `rtsp://HOST:PORT/<relative path>`.
//! The protocol is the core's sans-IO `Connection` machine, the file rules
//! (root confinement, the shared media cache, URLs) are
//! [`rtsp_toolkit_media::library`]'s, and the builder, the accept loop and
//! the loop of each connection are [`rtsp_toolkit_media::serving`]'s, the
//! same for every runtime. This module gives them tokio: the listener, one
//! task per connection, the sockets (through this crate's `io` module),
//! the UDP sockets of the sessions' RTP/RTCP pairs (bound by
//! `rtsp_toolkit_driver::udp`, within `ServerConfig::udp_ports` when set),
//! and lookups on tokio's blocking pool (they read files).
//!
//! Policies (the same on every runtime, see [`ServerOptions`]):
//! - **Slow clients.** Media is written as it falls due. A connection whose
//!   socket takes no byte for `write_stall` (default 5 s) is dropped: it is
//!   a client that does not read, and holding its backlog would cost memory.
//!   A client that keeps taking bytes, however slowly, is not dropped (its
//!   session falls behind instead, see below). Other connections are not
//!   affected (one task each).
//! - **Connection limit.** Past `max_connections`, new connections are
//!   accepted and closed at once, so the listener keeps answering.
//! - **Late sessions.** A session whose task ran late (the process was
//!   descheduled, the client stopped reading) catches up at most
//!   [`ServerConfig::max_lag`] of media at once and skips the rest of the
//!   wait (logged as a warning, `FellBehind`); see the core's server docs.
//! - **Shutdown.** [`shutdown`](Bound::shutdown) stops accepting and closes every
//!   connection; [`Server::wait`] returns when all are gone.
//!
//! [`ServerConfig::max_lag`]: rtsp_toolkit_core::server::ServerConfig::max_lag

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use rtsp_toolkit_core::server::LookupError;
/// RTSPS: a certificate and key for [`ServerOptions::tls`].
pub use rtsp_toolkit_driver::tls::ServerTlsConfig;
pub use rtsp_toolkit_media::library::published_files;
use rtsp_toolkit_media::library::Library;
use rtsp_toolkit_media::serving::{self, Bind, Bound, ServerState, Woken};
pub use rtsp_toolkit_media::serving::{EventHook, ServerOptions};
use rtsp_toolkit_media::tls::TlsListener;
use rtsp_toolkit_media::MediaSource;

use crate::io::{read_until, write_all_or_stall, WriteError};

/// Builds a [`Server`]: the builder every runtime shares
/// ([`serving::ServerBuilder`]), binding this runtime's server.
///
/// ```no_run
/// # async fn run() -> std::io::Result<()> {
/// let server = rtsp_toolkit_tokio::server::ServerBuilder::new("./media")
///     .payload_size(1200)
///     .session_timeout(std::time::Duration::from_secs(30))
///     .max_connections(2000)
///     .bind("127.0.0.1:8554".parse().unwrap())
///     .await?;
/// println!("serving on {}", server.local_addr());
/// server.wait().await;
/// # Ok(()) }
/// ```
pub type ServerBuilder = serving::ServerBuilder<Server>;

/// A running server, serving on the tokio runtime it was bound on. Its
/// address, URLs, connection count and `shutdown` are [`Bound`]'s (it
/// derefs to it).
#[derive(Debug)]
pub struct Server {
    bound: Bound,
    task: tokio::task::JoinHandle<()>,
}

impl Bind for Server {
    /// Binds `addr` and spawns the accept loop on the current tokio runtime.
    fn bind(state: Arc<ServerState>, addr: SocketAddr) -> io::Result<Server> {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        if let Some(bytes) = state.options().send_buffer {
            // Accepted sockets inherit it from the listener.
            socket.set_send_buffer_size(bytes)?;
        }
        socket.bind(addr)?;
        let listener = socket.listen(1024)?;
        let local_addr = listener.local_addr()?;
        // RTSPS: the same loop over the media crate's TLS wrapper.
        let task = match state.options().tls.clone() {
            Some(tls) => tokio::spawn(serving::accept_loop(
                TlsListener::new(Listener(listener), tls),
                state.clone(),
            )),
            None => tokio::spawn(serving::accept_loop(Listener(listener), state.clone())),
        };
        Ok(Server {
            bound: Bound::new(local_addr, state),
            task,
        })
    }
}

impl Deref for Server {
    type Target = Bound;

    fn deref(&self) -> &Bound {
        &self.bound
    }
}

impl Server {
    /// Waits until the server stopped and every connection is closed (at
    /// most [`serving::SHUTDOWN_WAIT`] after the stop).
    pub async fn wait(self) {
        let _ = self.task.await;
        let deadline = tokio::time::Instant::now() + serving::SHUTDOWN_WAIT;
        while self.bound.connections() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Serves the files under `root` on `addr` until an I/O error on the listener.
pub async fn serve(root: impl Into<PathBuf>, addr: SocketAddr) -> io::Result<()> {
    let server = ServerBuilder::new(root).bind(addr).await?;
    server.wait().await;
    Ok(())
}

/// The listening socket, on the current tokio runtime.
#[derive(Debug)]
struct Listener(TcpListener);

impl serving::Listener for Listener {
    type Socket = Socket;

    async fn accept(&self) -> io::Result<(Socket, SocketAddr)> {
        let (socket, peer) = self.0.accept().await?;
        let _ = socket.set_nodelay(true);
        Ok((Socket(socket), peer))
    }

    async fn sleep(duration: Duration) {
        tokio::time::sleep(duration).await;
    }

    fn spawn(&self, connection: impl Future<Output = ()> + Send + 'static) {
        tokio::spawn(connection);
    }
}

/// An accepted connection's socket.
#[derive(Debug)]
struct Socket(TcpStream);

/// One socket of a UDP session's RTP/RTCP pair, on tokio's reactor.
#[derive(Debug)]
struct Udp(tokio::net::UdpSocket);

impl serving::Datagrams for Udp {
    fn from_std(socket: std::net::UdpSocket) -> io::Result<Udp> {
        tokio::net::UdpSocket::from_std(socket).map(Udp)
    }

    fn poll_recv_from(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<(usize, SocketAddr)>> {
        let mut read = tokio::io::ReadBuf::new(buf);
        match self.0.poll_recv_from(cx, &mut read) {
            Poll::Ready(Ok(from)) => Poll::Ready(Ok((read.filled().len(), from))),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// A plain non-blocking `sendto`: tokio's `try_send_to` refuses to try
    /// until its reactor has seen the socket writable, which drops the
    /// first datagrams of a fresh socket.
    fn try_send_to(&self, data: &[u8], to: SocketAddr) -> io::Result<usize> {
        socket2::SockRef::from(&self.0).send_to(data, &to.into())
    }

    fn sock_ref(&self) -> socket2::SockRef<'_> {
        socket2::SockRef::from(&self.0)
    }
}

impl serving::ConnectionIo for Socket {
    type Udp = Udp;
    type Relay = crate::Session;

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }

    async fn sleep_until(at: Instant) {
        tokio::time::sleep_until(at.into()).await;
    }

    async fn write_all(&mut self, bytes: &[u8], stall: Duration) -> Result<(), WriteError> {
        write_all_or_stall(&self.0, bytes, stall).await
    }

    /// On tokio's blocking pool.
    async fn lookup(library: Arc<Library>, path: String) -> Result<Arc<MediaSource>, LookupError> {
        tokio::task::spawn_blocking(move || library.lookup(&path))
            .await
            .unwrap_or(Err(LookupError::NotFound))
    }

    async fn read_until(&mut self, buf: &mut [u8], at: Instant) -> Woken {
        read_until(&self.0, buf, at).await
    }

    async fn close(mut self) {
        let _ = self.0.shutdown().await;
    }
}

/// A relay pulls its upstream with this runtime's client session.
impl serving::RelaySource for crate::Session {
    fn open(
        url: &str,
        options: rtsp_toolkit_core::client::ClientOptions,
        stop: rtsp_toolkit_core::stop::StopSignal,
    ) -> Result<Self, String> {
        crate::Session::open_with_stop(url, options, stop).map_err(|e| e.to_string())
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<rtsp_toolkit_core::client::Event>> {
        futures_core::Stream::poll_next(std::pin::Pin::new(self), cx)
    }
}
