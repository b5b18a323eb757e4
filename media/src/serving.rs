//! What every runtime's file server shares besides the files: its options,
//! the state its accept loop and connections share, and the mapping of a
//! socket read to a [`ServerInput`].
//!
//! A runtime's server (`rtsp_toolkit_tokio::server`,
//! `rtsp_toolkit_smol::server`) is a loop per connection over the sans-IO
//! [`Connection`] and a [`Library`]; this module holds the parts of it that
//! do not depend on the runtime, so that each loop only moves bytes, time
//! and lookups:
//! - [`ServerState::admit`] applies the connection limit and makes the
//!   [`Connection`] of an accepted socket (its seed and wall-clock time);
//! - [`wake`] gives the machine a read and a deadline in the one order every
//!   runtime follows;
//! - [`not_reading`] and [`write_failed`] are the reasons of a failed write;
//! - [`log_event`] logs what the machine reports.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rtsp_toolkit_core::server::{CloseReason, Connection, ServerConfig, ServerEvent, ServerInput};
use rtsp_toolkit_core::stop::StopSignal;

use crate::library::Library;

/// How long a server's `wait` waits, after a shutdown, for its connections
/// to close.
pub const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

/// Seconds from 1900 (NTP's epoch) to 1970 (Unix's).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// The options of a file server, on every runtime.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The protocol settings (payload size, session timeout, ...).
    pub config: ServerConfig,
    /// Most connections at once (default 4096). Past it, new connections
    /// are accepted and closed at once, so the listener keeps answering.
    pub max_connections: usize,
    /// Drop a connection whose socket takes no bytes for this long (default
    /// 5 s): a client that does not read. A client that keeps taking bytes,
    /// however slowly, is not dropped (its session falls behind instead, see
    /// [`ServerConfig::max_lag`]).
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

/// The state a server's accept loop and its connections share.
#[derive(Debug)]
pub struct ServerState {
    library: Arc<Library>,
    options: ServerOptions,
    config: Arc<ServerConfig>,
    connections: AtomicUsize,
    accepted: AtomicU64,
    stop: StopSignal,
    seeds: RandomState,
}

impl ServerState {
    /// The state of a server of `library` with `options`.
    pub fn new(library: Library, options: ServerOptions) -> ServerState {
        ServerState {
            library: Arc::new(library),
            config: Arc::new(options.config.clone()),
            options,
            connections: AtomicUsize::new(0),
            accepted: AtomicU64::new(0),
            stop: StopSignal::new(),
            seeds: RandomState::new(),
        }
    }

    /// The published files.
    pub fn library(&self) -> &Arc<Library> {
        &self.library
    }

    /// The options the server was built with.
    pub fn options(&self) -> &ServerOptions {
        &self.options
    }

    /// Raised by [`shutdown`](Self::shutdown): the accept loop stops, every
    /// connection aborts with `CloseReason::Shutdown`.
    pub fn stop_signal(&self) -> &StopSignal {
        &self.stop
    }

    /// Stops accepting and closes every connection.
    pub fn shutdown(&self) {
        self.stop.stop();
    }

    /// Connections open now.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// A connection from `peer`, accepted just now: its machine and its
    /// place in the count, or `None` (logged) when
    /// [`ServerOptions::max_connections`] are open already, and the socket
    /// is to be closed at once.
    pub fn admit(self: &Arc<Self>, peer: SocketAddr) -> Option<Admitted> {
        let n = self.accepted.fetch_add(1, Ordering::Relaxed) + 1;
        let limit = self.options.max_connections;
        if self.connections.load(Ordering::Relaxed) >= limit {
            tracing::warn!(%peer, limit, "connection limit reached; refused");
            return None;
        }
        self.connections.fetch_add(1, Ordering::Relaxed);
        let connection = Connection::new(self.config.clone(), Instant::now(), peer, self.seed(n), ntp_now());
        Some(Admitted {
            connection,
            state: self.clone(),
        })
    }

    /// A different, unpredictable seed for every connection.
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
}

/// An admitted connection: its machine, counted in
/// [`ServerState::connections`] until this is dropped.
#[derive(Debug)]
pub struct Admitted {
    /// The connection machine, created at admission.
    pub connection: Connection,
    state: Arc<ServerState>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.state.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Gives `conn` what a wait for data ended with, in the order every runtime
/// follows: the read first, then the timeout when the deadline passed. So a
/// request that arrived before a deadline counts before the deadline does
/// (the read taken when a deadline passed is a non-blocking one of what is
/// already waiting).
///
/// `read` is the result of reading into `buf`: the bytes read, or the end of
/// the stream (0 bytes, or a failed read: the connection cannot go on
/// either way).
pub fn wake(conn: &mut Connection, now: Instant, read: Option<io::Result<usize>>, buf: &[u8], deadline_passed: bool) {
    if let Some(read) = read {
        let input = match read {
            Ok(n) if n > 0 => ServerInput::Data(&buf[..n.min(buf.len())]),
            Ok(_) => ServerInput::Eof,
            Err(e) => {
                tracing::debug!(error = %e, "read failed; closing");
                ServerInput::Eof
            }
        };
        conn.handle_input(now, input);
    }
    if deadline_passed {
        conn.handle_input(now, ServerInput::Timeout);
    }
}

/// The reason to abort a connection whose socket took no byte for `stall`
/// ([`ServerOptions::write_stall`]); logged as a warning.
pub fn not_reading(stall: Duration) -> CloseReason {
    tracing::warn!(stall = ?stall, "client is not reading; connection dropped");
    CloseReason::NotReading(stall)
}

/// The reason to abort a connection whose write failed; logged.
pub fn write_failed(error: &io::Error) -> CloseReason {
    tracing::debug!(%error, "write failed; closing");
    CloseReason::WriteFailed(error.to_string())
}

/// Logs an event of the connection machine: [`ServerEvent::FellBehind`] as a
/// warning, the others at info level.
pub fn log_event(event: &ServerEvent) {
    match event {
        ServerEvent::FellBehind { .. } => tracing::warn!(?event, "rtsp: session fell behind its schedule"),
        _ => tracing::info!(?event, "rtsp"),
    }
}

/// 64-bit NTP time now (seconds since 1900 in the high half).
fn ntp_now() -> u64 {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() + NTP_UNIX_OFFSET;
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtsp_toolkit_core::server::ServerOutput;

    fn state(max_connections: usize) -> Arc<ServerState> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/media");
        let options = ServerOptions {
            max_connections,
            ..ServerOptions::default()
        };
        Arc::new(ServerState::new(Library::open(root).unwrap(), options))
    }

    #[test]
    fn admission_counts_until_dropped_and_refuses_past_the_limit() {
        let state = state(2);
        let peer = "127.0.0.1:40000".parse().unwrap();
        let a = state.admit(peer).unwrap();
        let b = state.admit(peer).unwrap();
        assert_eq!(state.connections(), 2);
        assert!(state.admit(peer).is_none());
        drop(a);
        assert_eq!(state.connections(), 1);
        let c = state.admit(peer).unwrap();
        drop((b, c));
        assert_eq!(state.connections(), 0);
    }

    /// Feeds `wake` and returns the bytes written and whether the connection closed.
    fn woken(
        conn: &mut Connection,
        read: Option<io::Result<usize>>,
        buf: &[u8],
        deadline_passed: bool,
    ) -> (usize, bool) {
        wake(conn, Instant::now(), read, buf, deadline_passed);
        let mut written = 0;
        loop {
            match conn.poll_output() {
                ServerOutput::Transmit(b) => written += b.len(),
                ServerOutput::Close => return (written, true),
                ServerOutput::Timeout(_) => return (written, false),
                _ => {}
            }
        }
    }

    #[test]
    fn a_wake_gives_the_read_first_then_the_timeout() {
        let state = state(1);
        let peer = "127.0.0.1:40000".parse().unwrap();
        let options = b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n";
        let mut a = state.admit(peer).unwrap();
        let (written, closed) = woken(&mut a.connection, Some(Ok(options.len())), options, true);
        assert!(
            written > 0 && !closed,
            "answered, and the timeout was not the idle one yet"
        );
        let (_, closed) = woken(&mut a.connection, Some(Ok(0)), options, false);
        assert!(closed, "0 bytes is the end of the stream");
        drop(a);
        let mut b = state.admit(peer).unwrap();
        let reset = Err(io::ErrorKind::ConnectionReset.into());
        assert_eq!(woken(&mut b.connection, Some(reset), options, false), (0, true));
    }

    #[test]
    fn ntp_time_is_after_2020() {
        // 2020-01-01 is 3,786,825,600 s after 1900.
        assert!(ntp_now() >> 32 > 3_786_825_600);
    }
}
