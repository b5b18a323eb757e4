//! The RTSP/TCP file server over tokio.
//!
//! Every supported file under a root directory (`.mp4 .mkv .wav .aac`, in
//! subdirectories too) is published as `rtsp://HOST:PORT/<relative path>`.
//! The protocol is the core's sans-IO [`Connection`] machine; this module
//! only accepts sockets, moves bytes and time, and answers the machine's
//! lookups from the filesystem.
//!
//! Policies (documented here because they are the runtime's):
//! - **Root confinement.** The core rejects traversal lexically; here the
//!   path is joined to the canonical root, canonicalized (symlinks resolved)
//!   and must still be inside the root and be a regular file with a
//!   supported extension, else the client gets 404.
//! - **Shared media.** A file is demuxed once into an `Arc<MediaSource>`
//!   shared by every session playing it (sample data are views of one
//!   buffer); it is dropped when the last session ends.
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

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use tokio::sync::OnceCell;
use tracing::Instrument;

use rtsp_toolkit_core::server::{
    CloseReason, Connection, LookupError, ServerConfig, ServerEvent, ServerInput, ServerOutput,
};
use rtsp_toolkit_core::source::MediaSource;
use rtsp_toolkit_core::stop::StopSignal;

/// Options of [`serve`] and [`ServerBuilder`].
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The protocol settings (payload size, session timeout, ...).
    pub config: ServerConfig,
    /// Most connections at once (default 4096).
    pub max_connections: usize,
    /// Drop a connection whose socket takes no bytes for this long (default 5 s).
    pub write_stall: Duration,
    /// The kernel send buffer of each connection (`SO_SNDBUF`), which bounds
    /// how much media waits for a slow client before `write_stall` counts;
    /// `None` (the default) leaves the OS's autotuning.
    pub send_buffer: Option<u32>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            config: ServerConfig::default(),
            max_connections: 4096,
            write_stall: Duration::from_secs(5),
            send_buffer: None,
        }
    }
}

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

    /// Binds `addr` (port 0 picks a free one) and starts serving.
    pub async fn bind(self, addr: SocketAddr) -> io::Result<Server> {
        let root = std::fs::canonicalize(&self.root)
            .map_err(|e| io::Error::new(e.kind(), format!("media root {}: {e}", self.root.display())))?;
        if !root.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("media root {} is not a directory", root.display()),
            ));
        }
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
        let shared = Arc::new(Shared {
            root,
            config: Arc::new(self.options.config.clone()),
            options: self.options,
            cache: Mutex::new(HashMap::new()),
            connections: AtomicUsize::new(0),
            stop: StopSignal::new(),
            seeds: std::collections::hash_map::RandomState::new(),
        });
        let task = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(Server {
            local_addr,
            shared,
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
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The canonical media root.
    pub fn root(&self) -> &Path {
        &self.shared.root
    }

    /// `rtsp://ADDR/<path>` for every published file, sorted.
    pub fn urls(&self) -> Vec<String> {
        published_files(&self.shared.root)
            .into_iter()
            .map(|p| format!("rtsp://{}/{}", self.local_addr, url_path(&p)))
            .collect()
    }

    /// Connections open now.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::Relaxed)
    }

    /// Stops accepting and closes every connection.
    pub fn shutdown(&self) {
        self.shared.stop.stop();
    }

    /// Waits until the server stopped and every connection is closed.
    pub async fn wait(self) {
        let _ = self.task.await;
        // Connection tasks hold the shared state; wait for them to drop it.
        for _ in 0..500 {
            if self.shared.connections.load(Ordering::Relaxed) == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

type CacheSlot = Arc<OnceCell<Result<Arc<MediaSource>, LookupError>>>;

#[derive(Debug)]
struct Shared {
    root: PathBuf,
    options: ServerOptions,
    config: Arc<ServerConfig>,
    /// Canonical path → the loaded source, while some session holds it.
    cache: Mutex<HashMap<PathBuf, (Weak<MediaSource>, CacheSlot)>>,
    connections: AtomicUsize,
    stop: StopSignal,
    seeds: std::collections::hash_map::RandomState,
}

impl Shared {
    fn seed(&self, salt: u64) -> u64 {
        let mut h = self.seeds.build_hasher();
        h.write_u64(salt);
        h.write_u128(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos(),
        );
        h.finish()
    }

    /// The file for a lexically safe relative path, confined to the root.
    fn resolve(&self, relative: &str) -> Result<PathBuf, LookupError> {
        let joined = self.root.join(relative);
        let canonical = std::fs::canonicalize(&joined).map_err(|_| LookupError::NotFound)?;
        if !canonical.starts_with(&self.root) {
            tracing::warn!(path = relative, "refused: resolves outside the media root");
            return Err(LookupError::Forbidden);
        }
        if !canonical.is_file() || rtsp_toolkit_media::FileKind::from_path(&canonical).is_none() {
            return Err(LookupError::NotFound);
        }
        Ok(canonical)
    }

    async fn lookup(&self, relative: &str) -> Result<Arc<MediaSource>, LookupError> {
        let path = self.resolve(relative)?;
        let slot = {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            cache.retain(|_, (weak, slot)| weak.strong_count() > 0 || !slot.initialized());
            if let Some(source) = cache.get(&path).and_then(|(w, _)| w.upgrade()) {
                return Ok(source);
            }
            cache
                .entry(path.clone())
                .or_insert_with(|| (Weak::new(), Arc::new(OnceCell::new())))
                .1
                .clone()
        };
        let loaded = slot
            .get_or_init(|| async {
                let p = path.clone();
                let result = tokio::task::spawn_blocking(move || rtsp_toolkit_media::open(&p))
                    .await
                    .map_err(|_| LookupError::NotFound)?;
                result.map(Arc::new).map_err(|e| {
                    tracing::info!(path = %path.display(), error = %e, "cannot serve");
                    match e {
                        rtsp_toolkit_media::MediaError::NoSupportedTrack { .. } => {
                            LookupError::NoSupportedTrack(e.to_string())
                        }
                        _ => LookupError::NotFound,
                    }
                })
            })
            .await
            .clone();
        if let Ok(source) = &loaded {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(entry) = cache.get_mut(&path) {
                entry.0 = Arc::downgrade(source);
            }
        } else {
            // Do not cache failures: the file may be fixed or appear later.
            self.cache.lock().unwrap_or_else(|e| e.into_inner()).remove(&path);
        }
        loaded
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut n: u64 = 0;
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shared.stop.stopped() => break,
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
        n += 1;
        if shared.connections.load(Ordering::Relaxed) >= shared.options.max_connections {
            tracing::warn!(%peer, limit = shared.options.max_connections, "connection limit reached; refused");
            drop(socket);
            continue;
        }
        shared.connections.fetch_add(1, Ordering::Relaxed);
        let shared = shared.clone();
        let seed = shared.seed(n);
        // The span is attached to the task (not entered across awaits), so each
        // log line carries its own connection's peer and nothing else.
        let span = tracing::info_span!("rtsp_conn", %peer);
        tokio::spawn(
            async move {
                run_connection(socket, peer, seed, &shared).await;
                shared.connections.fetch_sub(1, Ordering::Relaxed);
            }
            .instrument(span),
        );
    }
}

/// 64-bit NTP time now (seconds since 1900 in the high half).
fn ntp_now() -> u64 {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() + 2_208_988_800;
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

async fn run_connection(mut socket: TcpStream, peer: SocketAddr, seed: u64, shared: &Shared) {
    let _ = socket.set_nodelay(true);
    let mut conn = Connection::new(shared.config.clone(), Instant::now(), peer, seed, ntp_now());
    let mut buf = vec![0u8; 16 * 1024];
    let stall = shared.options.write_stall;
    loop {
        match conn.poll_output() {
            ServerOutput::Transmit(bytes) => match write_all_or_stall(&mut socket, &bytes, stall).await {
                Ok(()) => {}
                Err(None) => {
                    tracing::warn!(stall = ?stall, "client is not reading; connection dropped");
                    conn.handle_input(Instant::now(), ServerInput::Abort(CloseReason::NotReading(stall)));
                }
                Err(Some(e)) => {
                    tracing::debug!(error = %e, "write failed; closing");
                    conn.handle_input(
                        Instant::now(),
                        ServerInput::Abort(CloseReason::WriteFailed(e.to_string())),
                    );
                }
            },
            ServerOutput::Lookup { token, path } => {
                let result = shared.lookup(&path).await;
                conn.handle_input(Instant::now(), ServerInput::Lookup { token, result });
            }
            ServerOutput::Event(event) => log_event(&event),
            ServerOutput::Timeout(at) => {
                let at = tokio::time::Instant::from_std(at);
                tokio::select! {
                    biased;
                    _ = shared.stop.stopped() => conn.handle_input(Instant::now(), ServerInput::Abort(CloseReason::Shutdown)),
                    r = socket.read(&mut buf) => {
                        let now = Instant::now();
                        match r {
                            Ok(0) | Err(_) => conn.handle_input(now, ServerInput::Eof),
                            Ok(n) => conn.handle_input(now, ServerInput::Data(&buf[..n])),
                        }
                        if now >= at.into_std() {
                            conn.handle_input(now, ServerInput::Timeout);
                        }
                    }
                    _ = tokio::time::sleep_until(at) => {
                        // Requests waiting count before the deadline does (see `read_waiting`).
                        let now = Instant::now();
                        match crate::read_waiting(&socket, &mut buf) {
                            Some(Ok(0)) | Some(Err(_)) => conn.handle_input(now, ServerInput::Eof),
                            Some(Ok(n)) => conn.handle_input(now, ServerInput::Data(&buf[..n])),
                            None => {}
                        }
                        conn.handle_input(now, ServerInput::Timeout);
                    }
                }
            }
            ServerOutput::Close => break,
        }
    }
    let _ = socket.shutdown().await;
}

/// Writes all of `bytes`, failing with `Err(None)` when the socket takes no
/// byte for `stall` (a slow client that keeps taking bytes is not dropped,
/// however long the whole batch takes), `Err(Some(e))` on an I/O error.
///
/// When `stall` passes without a byte taken, one plain non-blocking write is
/// tried before giving up: if this process was descheduled past the stall
/// (stopped, a suspended VM) while the client kept reading, the socket has
/// room that tokio's reactor may not have reported yet.
async fn write_all_or_stall(
    socket: &mut TcpStream,
    mut bytes: &[u8],
    stall: Duration,
) -> Result<(), Option<io::Error>> {
    use std::io::Write as _;
    while !bytes.is_empty() {
        let n = match tokio::time::timeout(stall, socket.write(bytes)).await {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(Some(e)),
            Err(_) => match (&*socket2::SockRef::from(&*socket)).write(bytes) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(None),
                Err(e) => return Err(Some(e)),
            },
        };
        if n == 0 {
            return Err(Some(io::ErrorKind::WriteZero.into()));
        }
        bytes = &bytes[n..];
    }
    Ok(())
}

fn log_event(event: &ServerEvent) {
    match event {
        ServerEvent::FellBehind { .. } => tracing::warn!(?event, "rtsp: session fell behind its schedule"),
        _ => tracing::info!(?event, "rtsp"),
    }
}

/// Every servable file under `root`, as paths relative to it, sorted.
/// Symlinks are followed only when they stay inside the root; depth and
/// count are bounded.
pub fn published_files(root: &Path) -> Vec<PathBuf> {
    const MAX_FILES: usize = 100_000;
    const MAX_DEPTH: usize = 32;
    let Ok(root) = std::fs::canonicalize(root) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut stack = vec![(root.clone(), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            if out.len() >= MAX_FILES {
                break;
            }
            let Ok(path) = std::fs::canonicalize(entry.path()) else {
                continue;
            };
            if !path.starts_with(&root) {
                continue;
            }
            if path.is_dir() {
                if depth < MAX_DEPTH {
                    stack.push((entry.path(), depth + 1));
                }
            } else if rtsp_toolkit_media::FileKind::from_path(&entry.path()).is_some() {
                if let Ok(rel) = entry.path().strip_prefix(&root) {
                    out.push(rel.to_path_buf());
                } else if let Ok(rel) = path.strip_prefix(&root) {
                    out.push(rel.to_path_buf());
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// A relative path as a URL path: `/` separators, each segment percent-encoded.
fn url_path(p: &Path) -> String {
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
        .add(b' ')
        .add(b'"')
        .add(b'#')
        .add(b'%')
        .add(b'<')
        .add(b'>')
        .add(b'?')
        .add(b'`')
        .add(b'{')
        .add(b'}')
        .add(b'/')
        .add(b'\\');
    p.components()
        .map(|c| percent_encoding::utf8_percent_encode(&c.as_os_str().to_string_lossy(), SEGMENT).to_string())
        .collect::<Vec<_>>()
        .join("/")
}
