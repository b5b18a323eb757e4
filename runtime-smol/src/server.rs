//! The RTSP file server on async-io, for smol and any other executor (media
//! interleaved on the RTSP connection, or over UDP).
//!
//! Every supported file under a root directory (`.mp4 .mkv .wav .aac`, in
//! subdirectories too) is published as `rtsp://HOST:PORT/<relative path>`.
//! The protocol is the core's sans-IO `Connection` machine, the file rules
//! (root confinement, the shared media cache, URLs) are
//! [`rtsp_toolkit_media::library`]'s, and the builder, the accept loop and
//! the loop of each connection are [`rtsp_toolkit_media::serving`]'s: it
//! serves the same way as `rtsp_toolkit_tokio::server`, with the same
//! [`ServerOptions`] and policies. This module gives those loops async-io's
//! sockets and timer, and an executor of its own (below).
//!
//! # Where it runs
//! Like this crate's client, the server spawns nothing on anyone's
//! executor: it runs while [`Server::wait`] is polled. Inside, an
//! [`async_executor::Executor`] of its own holds the accept loop and one
//! task per connection, and `wait` runs it. So:
//! - `smol::block_on(server.wait())` (or awaiting `wait` in any task)
//!   serves on that thread;
//! - `wait` may be polled on several threads at once (it takes `&self`):
//!   each thread then runs connections, for more cores;
//! - before `wait` is polled, connections wait in the listen backlog;
//! - lookups read whole files, so they run on the `blocking` crate's thread
//!   pool (the one smol uses for blocking work), not on these threads.
//!
//! ```no_run
//! use rtsp_toolkit_smol::server::ServerBuilder;
//!
//! smol::block_on(async {
//!     let server = ServerBuilder::new("./media")
//!         .bind("127.0.0.1:8554".parse().unwrap())
//!         .await?;
//!     for url in server.urls() {
//!         println!("{url}");
//!     }
//!     server.wait().await; // serves until `server.shutdown()`
//!     Ok::<(), std::io::Error>(())
//! })
//! # .unwrap();
//! ```
//!
//! Policies (the same on every runtime, see [`ServerOptions`]):
//! - **Slow clients.** A connection whose socket takes no byte for
//!   `write_stall` is dropped; one that keeps taking bytes, however slowly,
//!   is not (its session falls behind instead). Other connections are not
//!   affected (one task each).
//! - **Connection limit.** Past `max_connections`, new connections are
//!   accepted and closed at once, so the listener keeps answering.
//! - **Shutdown.** [`shutdown`](Bound::shutdown) stops accepting and closes every
//!   connection; [`Server::wait`] returns when all are gone.

use std::future::Future;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_executor::{Executor, Task};
use async_io::{Async, Timer};

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
/// ([`serving::ServerBuilder`]), binding this runtime's server. Nothing is
/// served until [`Server::wait`] is polled.
pub type ServerBuilder = serving::ServerBuilder<Server>;

/// A bound server; it serves while [`wait`](Self::wait) is polled (see the
/// [module docs](self)). Dropping it closes every connection. Its address,
/// URLs, connection count and `shutdown` are [`Bound`]'s (it derefs to it;
/// `shutdown` takes effect on the threads that poll `wait`).
#[derive(Debug)]
pub struct Server {
    bound: Bound,
    executor: Arc<Executor<'static>>,
    /// The accept loop; dropping it stops accepting.
    _accept: Task<()>,
}

impl Bind for Server {
    /// Binds `addr`; the accept loop runs on the server's own executor, in
    /// [`Server::wait`].
    fn bind(state: Arc<ServerState>, addr: SocketAddr) -> io::Result<Server> {
        let listener = Async::new(listen(addr, state.options().send_buffer)?)?;
        let local_addr = listener.get_ref().local_addr()?;
        let executor = Arc::new(Executor::new());
        let listener = Listener {
            listener,
            executor: Arc::downgrade(&executor),
        };
        // RTSPS: the same loop over the media crate's TLS wrapper.
        let accept = match state.options().tls.clone() {
            Some(tls) => executor.spawn(serving::accept_loop(TlsListener::new(listener, tls), state.clone())),
            None => executor.spawn(serving::accept_loop(listener, state.clone())),
        };
        Ok(Server {
            bound: Bound::new(local_addr, state),
            executor,
            _accept: accept,
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
    /// Serves until [`shutdown`](Bound::shutdown), then returns when every
    /// connection is closed (at most [`serving::SHUTDOWN_WAIT`] after the
    /// stop). Several threads may poll it at once.
    pub async fn wait(&self) {
        self.executor
            .run(async {
                self.state().stop_signal().stopped().await;
                let deadline = Instant::now() + serving::SHUTDOWN_WAIT;
                while self.connections() > 0 && Instant::now() < deadline {
                    Timer::after(Duration::from_millis(10)).await;
                }
            })
            .await;
    }
}

/// Serves the files under `root` on `addr`, on the calling task, until the
/// process ends.
pub async fn serve(root: impl Into<PathBuf>, addr: SocketAddr) -> io::Result<()> {
    let server = ServerBuilder::new(root).bind(addr).await?;
    server.wait().await;
    Ok(())
}

/// The listening socket: `SO_REUSEADDR`, and the send buffer that accepted
/// sockets inherit.
fn listen(addr: SocketAddr, send_buffer: Option<u32>) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if let Some(bytes) = send_buffer {
        socket.set_send_buffer_size(bytes as usize)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// The listening socket, and the server's executor that runs the
/// connections (held weakly: the executor holds this loop).
#[derive(Debug)]
struct Listener {
    listener: Async<TcpListener>,
    executor: Weak<Executor<'static>>,
}

impl serving::Listener for Listener {
    type Socket = Socket;

    async fn accept(&self) -> io::Result<(Socket, SocketAddr)> {
        let (stream, peer) = self.listener.accept().await?;
        let _ = stream.get_ref().set_nodelay(true);
        Ok((Socket(stream), peer))
    }

    async fn sleep(duration: Duration) {
        Timer::after(duration).await;
    }

    fn spawn(&self, connection: impl Future<Output = ()> + Send + 'static) {
        if let Some(executor) = self.executor.upgrade() {
            executor.spawn(connection).detach();
        }
    }
}

/// An accepted connection's socket.
#[derive(Debug)]
struct Socket(Async<TcpStream>);

/// One socket of a UDP session's RTP/RTCP pair, on async-io's reactor.
#[derive(Debug)]
struct Udp(Async<UdpSocket>);

/// Spurious readiness reports tolerated in one poll before yielding.
const SPURIOUS_WAKES: usize = 8;

impl serving::Datagrams for Udp {
    fn from_std(socket: UdpSocket) -> io::Result<Udp> {
        Async::new(socket).map(Udp)
    }

    fn poll_recv_from(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<(usize, SocketAddr)>> {
        for _ in 0..SPURIOUS_WAKES {
            match self.0.get_ref().recv_from(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => match self.0.poll_readable(cx) {
                    Poll::Ready(Ok(())) => continue,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                },
                r => return Poll::Ready(r),
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    fn try_send_to(&self, data: &[u8], to: SocketAddr) -> io::Result<usize> {
        self.0.get_ref().send_to(data, to)
    }

    fn sock_ref(&self) -> socket2::SockRef<'_> {
        socket2::SockRef::from(self.0.get_ref())
    }
}

impl serving::ConnectionIo for Socket {
    type Udp = Udp;
    type Relay = crate::Session;

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().local_addr()
    }

    async fn sleep_until(at: Instant) {
        Timer::at(at).await;
    }

    async fn write_all(&mut self, bytes: &[u8], stall: Duration) -> Result<(), WriteError> {
        write_all_or_stall(&self.0, bytes, stall).await
    }

    /// On the `blocking` crate's thread pool.
    async fn lookup(library: Arc<Library>, path: String) -> Result<Arc<MediaSource>, LookupError> {
        blocking::unblock(move || library.lookup(&path)).await
    }

    async fn read_until(&mut self, buf: &mut [u8], at: Instant) -> Woken {
        read_until(&self.0, buf, at).await
    }

    async fn close(self) {
        let _ = self.0.get_ref().shutdown(Shutdown::Write);
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
