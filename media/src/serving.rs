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
//! - [`received`] turns the result of a read into the input it means;
//! - [`log_event`] logs what the machine reports.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rtsp_toolkit_core::server::{Connection, ServerConfig, ServerEvent, ServerInput};
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

/// The input a read of the connection's socket into `buf` means: the bytes
/// read, or [`ServerInput::Eof`] for the end of the stream and for a failed
/// read (the connection cannot go on either way).
pub fn received(read: io::Result<usize>, buf: &[u8]) -> ServerInput<'_> {
    match read {
        Ok(n) if n > 0 => ServerInput::Data(&buf[..n.min(buf.len())]),
        Ok(_) => ServerInput::Eof,
        Err(e) => {
            tracing::debug!(error = %e, "read failed; closing");
            ServerInput::Eof
        }
    }
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

    #[test]
    fn a_read_means_data_or_the_end() {
        let buf = [1u8, 2, 3];
        assert!(matches!(received(Ok(2), &buf), ServerInput::Data([1, 2])));
        assert!(matches!(received(Ok(0), &buf), ServerInput::Eof));
        assert!(matches!(
            received(Err(io::ErrorKind::ConnectionReset.into()), &buf),
            ServerInput::Eof
        ));
        assert!(matches!(received(Ok(9), &buf), ServerInput::Data([1, 2, 3])));
    }

    #[test]
    fn ntp_time_is_after_2020() {
        // 2020-01-01 is 3,786,825,600 s after 1900.
        assert!(ntp_now() >> 32 > 3_786_825_600);
    }
}
