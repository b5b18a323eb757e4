//! The RTSP/TCP file server over tokio.
//!
//! Every supported file under a root directory (`.mp4 .mkv .wav .aac`, in
//! subdirectories too) is published as `rtsp://HOST:PORT/<relative path>`.
//! The protocol is the core's sans-IO [`Connection`] machine, the file rules
//! (root confinement, the shared media cache, URLs) are
//! [`rtsp_toolkit_media::library`]'s; this module accepts sockets and, one
//! task per connection, moves bytes, time and lookups between them (lookups
//! on tokio's blocking pool: they read files).
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
//! - **Shutdown.** [`Server::shutdown`] stops accepting and closes every
//!   connection; [`Server::wait`] returns when all are gone.
//!
//! [`ServerConfig::max_lag`]: rtsp_toolkit_core::server::ServerConfig::max_lag

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tracing::Instrument;

use rtsp_toolkit_core::server::{CloseReason, Connection, LookupError, ServerInput, ServerOutput};
pub use rtsp_toolkit_media::library::published_files;
use rtsp_toolkit_media::library::Library;
pub use rtsp_toolkit_media::serving::ServerOptions;
use rtsp_toolkit_media::serving::{self, ServerState};

use crate::io::{read_until, write_all_or_stall, WriteError};

/// Read buffer of a connection: requests are small.
const READ_BUFFER: usize = 16 * 1024;

/// Builds a [`Server`].
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

    /// Binds `addr` (port 0 picks a free one) and starts serving on the
    /// current tokio runtime.
    pub async fn bind(self, addr: SocketAddr) -> io::Result<Server> {
        let library = Library::open(&self.root)?;
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        if let Some(bytes) = self.options.send_buffer {
            // Accepted sockets inherit it from the listener.
            socket.set_send_buffer_size(bytes)?;
        }
        socket.bind(addr)?;
        let listener = socket.listen(1024)?;
        let local_addr = listener.local_addr()?;
        let state = Arc::new(ServerState::new(library, self.options));
        let task = tokio::spawn(accept_loop(listener, state.clone()));
        Ok(Server {
            local_addr,
            state,
            task,
        })
    }
}

/// Serves the files under `root` on `addr` until an I/O error on the listener.
pub async fn serve(root: impl Into<PathBuf>, addr: SocketAddr) -> io::Result<()> {
    let server = ServerBuilder::new(root).bind(addr).await?;
    server.wait().await;
    Ok(())
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    local_addr: SocketAddr,
    state: Arc<ServerState>,
    task: tokio::task::JoinHandle<()>,
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

    /// Stops accepting and closes every connection.
    pub fn shutdown(&self) {
        self.state.shutdown();
    }

    /// Waits until the server stopped and every connection is closed (at
    /// most [`serving::SHUTDOWN_WAIT`] after the stop).
    pub async fn wait(self) {
        let _ = self.task.await;
        let deadline = tokio::time::Instant::now() + serving::SHUTDOWN_WAIT;
        while self.state.connections() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<ServerState>) {
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = state.stop_signal().stopped() => break,
        };
        let (socket, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(admitted) = state.admit(peer) else {
            drop(socket);
            continue;
        };
        let state = state.clone();
        // The span is attached to the task (not entered across awaits), so each
        // log line carries its own connection's peer and nothing else.
        let span = tracing::info_span!("rtsp_conn", %peer);
        tokio::spawn(
            async move {
                let mut admitted = admitted;
                run_connection(socket, &mut admitted.connection, &state).await;
            }
            .instrument(span),
        );
    }
}

/// The connection's loop: the machine's outputs done, its inputs given.
async fn run_connection(mut socket: TcpStream, conn: &mut Connection, state: &ServerState) {
    let _ = socket.set_nodelay(true);
    let mut buf = vec![0u8; READ_BUFFER];
    let stall = state.options().write_stall;
    loop {
        match conn.poll_output() {
            ServerOutput::Transmit(bytes) => {
                let reason = match write_all_or_stall(&socket, &bytes, stall).await {
                    Ok(()) => continue,
                    Err(WriteError::Stalled) => serving::not_reading(stall),
                    Err(WriteError::Io(e)) => serving::write_failed(&e),
                    Err(WriteError::Closed) => serving::write_failed(&io::ErrorKind::WriteZero.into()),
                };
                conn.handle_input(Instant::now(), ServerInput::Abort(reason));
            }
            ServerOutput::Lookup { token, path } => {
                let result = lookup(state.library().clone(), path).await;
                conn.handle_input(Instant::now(), ServerInput::Lookup { token, result });
            }
            ServerOutput::Event(event) => serving::log_event(&event),
            ServerOutput::Timeout(at) => {
                let woken = tokio::select! {
                    biased;
                    _ = state.stop_signal().stopped() => None,
                    woken = read_until(&socket, &mut buf, at) => Some(woken),
                };
                let Some(woken) = woken else {
                    conn.handle_input(Instant::now(), ServerInput::Abort(CloseReason::Shutdown));
                    continue;
                };
                serving::wake(conn, woken.now, woken.read, &buf, woken.deadline_passed);
            }
            ServerOutput::Close => break,
        }
    }
    let _ = socket.shutdown().await;
}

/// A lookup on tokio's blocking pool: it may read a whole file.
async fn lookup(library: Arc<Library>, path: String) -> Result<Arc<rtsp_toolkit_media::MediaSource>, LookupError> {
    tokio::task::spawn_blocking(move || library.lookup(&path))
        .await
        .unwrap_or(Err(LookupError::NotFound))
}
