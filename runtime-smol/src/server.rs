//! The RTSP/TCP file server on async-io, for smol and any other executor.
//!
//! Every supported file under a root directory (`.mp4 .mkv .wav .aac`, in
//! subdirectories too) is published as `rtsp://HOST:PORT/<relative path>`.
//! The protocol is the core's sans-IO [`Connection`] machine, the file rules
//! (root confinement, the shared media cache, URLs) are
//! [`rtsp_toolkit_media::library`]'s; this module accepts sockets and moves
//! bytes, time and lookups between them. It serves the same way as
//! `rtsp_toolkit_tokio::server`, with the same [`ServerOptions`] and
//! policies.
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
//! - **Shutdown.** [`Server::shutdown`] stops accepting and closes every
//!   connection; [`Server::wait`] returns when all are gone.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use async_executor::{Executor, Task};
use async_io::{Async, Timer};
use futures_lite::future;
use tracing::Instrument;

use rtsp_toolkit_core::server::{CloseReason, Connection, LookupError, ServerInput, ServerOutput};
use rtsp_toolkit_media::library::Library;
pub use rtsp_toolkit_media::serving::ServerOptions;
use rtsp_toolkit_media::serving::{self, ServerState};
use rtsp_toolkit_media::MediaSource;

use crate::io::{read_until, write_all_or_stall, WriteError};

/// Read buffer of a connection: requests are small.
const READ_BUFFER: usize = 16 * 1024;

/// Builds a [`Server`].
#[derive(Debug, Clone)]
pub struct ServerBuilder {
    root: PathBuf,
    options: ServerOptions,
}

impl ServerBuilder {
    /// A server for the files under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        ServerBuilder {
            root: root.into(),
            options: ServerOptions::default(),
        }
    }

    /// Largest RTP payload (default fits a 1500-byte MTU).
    pub fn payload_size(mut self, bytes: usize) -> Self {
        self.options.config.max_payload = bytes;
        self
    }

    /// Sessions with no activity for this long are expired.
    pub fn session_timeout(mut self, timeout: Duration) -> Self {
        self.options.config.session_timeout = timeout;
        self
    }

    /// Most connections at once.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.options.max_connections = n;
        self
    }

    /// All options at once.
    pub fn options(mut self, options: ServerOptions) -> Self {
        self.options = options;
        self
    }

    /// Binds `addr` (port 0 picks a free one). Nothing is served until
    /// [`Server::wait`] is polled.
    pub async fn bind(self, addr: SocketAddr) -> io::Result<Server> {
        let library = Library::open(&self.root)?;
        let listener = Async::new(listen(addr, self.options.send_buffer)?)?;
        let local_addr = listener.get_ref().local_addr()?;
        let state = Arc::new(ServerState::new(library, self.options));
        let executor = Arc::new(Executor::new());
        let accept = executor.spawn(accept_loop(listener, state.clone(), Arc::downgrade(&executor)));
        Ok(Server {
            local_addr,
            state,
            executor,
            _accept: accept,
        })
    }
}

/// Serves the files under `root` on `addr`, on the calling task, until the
/// process ends.
pub async fn serve(root: impl Into<PathBuf>, addr: SocketAddr) -> io::Result<()> {
    let server = ServerBuilder::new(root).bind(addr).await?;
    server.wait().await;
    Ok(())
}

/// A bound server; it serves while [`wait`](Self::wait) is polled (see the
/// [module docs](self)). Dropping it closes every connection.
#[derive(Debug)]
pub struct Server {
    local_addr: SocketAddr,
    state: Arc<ServerState>,
    executor: Arc<Executor<'static>>,
    /// The accept loop; dropping it stops accepting.
    _accept: Task<()>,
}

impl Server {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The canonical media root.
    pub fn root(&self) -> &Path {
        self.state.library().root()
    }

    /// `rtsp://ADDR/<path>` for every published file, sorted.
    pub fn urls(&self) -> Vec<String> {
        self.state.library().urls(self.local_addr)
    }

    /// Connections open now.
    pub fn connections(&self) -> usize {
        self.state.connections()
    }

    /// Stops accepting and closes every connection (on the threads that
    /// poll [`wait`](Self::wait)).
    pub fn shutdown(&self) {
        self.state.shutdown();
    }

    /// Serves until [`shutdown`](Self::shutdown), then returns when every
    /// connection is closed (at most [`serving::SHUTDOWN_WAIT`] after the
    /// stop). Several threads may poll it at once.
    pub async fn wait(&self) {
        self.executor
            .run(async {
                self.state.stop_signal().stopped().await;
                let deadline = Instant::now() + serving::SHUTDOWN_WAIT;
                while self.state.connections() > 0 && Instant::now() < deadline {
                    Timer::after(Duration::from_millis(10)).await;
                }
            })
            .await;
    }
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

async fn accept_loop(listener: Async<TcpListener>, state: Arc<ServerState>, executor: Weak<Executor<'static>>) {
    loop {
        let accepted = future::or(async { Some(listener.accept().await) }, async {
            state.stop_signal().stopped().await;
            None
        })
        .await;
        let Some(accepted) = accepted else { break };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                Timer::after(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(mut admitted) = state.admit(peer) else {
            drop(stream);
            continue;
        };
        let Some(executor) = executor.upgrade() else { break };
        let state = state.clone();
        let span = tracing::info_span!("rtsp_conn", %peer);
        executor
            .spawn(async move { run_connection(stream, &mut admitted.connection, &state).await }.instrument(span))
            .detach();
    }
}

/// The connection's loop: the machine's outputs done, its inputs given.
async fn run_connection(stream: Async<TcpStream>, conn: &mut Connection, state: &ServerState) {
    let _ = stream.get_ref().set_nodelay(true);
    let mut buf = vec![0u8; READ_BUFFER];
    let stall = state.options().write_stall;
    loop {
        match conn.poll_output() {
            ServerOutput::Transmit(bytes) => {
                let reason = match write_all_or_stall(&stream, &bytes, stall).await {
                    Ok(()) => continue,
                    Err(WriteError::Stalled) => serving::not_reading(stall),
                    Err(WriteError::Io(e)) => serving::write_failed(&e),
                    Err(WriteError::Closed) => serving::write_failed(&std::io::ErrorKind::WriteZero.into()),
                };
                conn.handle_input(Instant::now(), ServerInput::Abort(reason));
            }
            ServerOutput::Lookup { token, path } => {
                let result = lookup(state.library().clone(), path).await;
                conn.handle_input(Instant::now(), ServerInput::Lookup { token, result });
            }
            ServerOutput::Event(event) => serving::log_event(&event),
            ServerOutput::Timeout(at) => {
                let woken = future::or(
                    async {
                        state.stop_signal().stopped().await;
                        None
                    },
                    async { Some(read_until(&stream, &mut buf, at).await) },
                )
                .await;
                let Some(woken) = woken else {
                    conn.handle_input(Instant::now(), ServerInput::Abort(CloseReason::Shutdown));
                    continue;
                };
                serving::wake(conn, woken.now, woken.read, &buf, woken.deadline_passed);
            }
            ServerOutput::Close => break,
        }
    }
    let _ = stream.get_ref().shutdown(std::net::Shutdown::Write);
}

/// A lookup on the `blocking` crate's thread pool: it may read a whole file.
async fn lookup(library: Arc<Library>, path: String) -> Result<Arc<MediaSource>, LookupError> {
    blocking::unblock(move || library.lookup(&path)).await
}
