//! What every runtime's file server shares besides the files: its builder
//! and options, what a bound server shows, and its loops (accepting, and
//! one loop per connection over the sans-IO [`Connection`]).
//!
//! A runtime's server (`rtsp_toolkit_tokio::server`,
//! `rtsp_toolkit_smol::server`) is sockets, a timer and tasks; everything
//! else is here, once, so that the servers cannot drift apart:
//! - [`ServerBuilder`] collects the root and the [`ServerOptions`], opens the
//!   [`Library`] and hands it to the runtime's [`Bind`]; each runtime's
//!   `ServerBuilder` is this type for its own `Server`;
//! - [`Bound`] is what every runtime's `Server` shows (its address, URLs,
//!   connections, shutdown): each `Server` derefs to it;
//! - [`accept_loop`] accepts on the runtime's [`Listener`], applies the
//!   connection limit, makes each connection's machine (its seed and
//!   wall-clock time) and runs it over the runtime's [`ConnectionIo`]: the
//!   machine's outputs done (writes, lookups, UDP pairs opened with
//!   [`rtsp_toolkit_driver::udp`] and registered as the runtime's [`Datagrams`], datagrams
//!   sent, logged events), its inputs given (a read and a passed deadline in
//!   the one order every runtime follows, datagrams received, write
//!   failures, lookup answers, the server's stop);
//! - [`ServerState`] holds the registry of UDP sessions through which a
//!   keepalive or TEARDOWN on one connection reaches a session owned by
//!   another, which may have lost its own connection (`docs/ARCHITECTURE.md`,
//!   "Sessions that outlive their connection");
//! - it also holds the multicast streams, one per path being streamed to a
//!   group (the core's [`MulticastStream`], each on a task of its own that
//!   the accept loop spawns, sending from a pair bound by
//!   [`rtsp_toolkit_driver::udp::bind_multicast_sender`]), the groups they
//!   hold, and each member connection's place in its stream, which it
//!   leaves when its loop ends (`docs/ARCHITECTURE.md`, "Multicast (server)").
//!
//! - and the RTSP-over-HTTP tunnels, by cookie: a connection whose first
//!   line is an HTTP `GET` or `POST` is a tunnel half (the `tunnel` module;
//!   `docs/ARCHITECTURE.md`, "RTSP over HTTP tunnels (server)").
//!
//! The loops are the ones `docs/ARCHITECTURE.md` describes; the runtime's
//! `io` module supplies the two socket rules (data before a deadline, no
//! progress for `write_stall` is a failed write).

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::fmt;
use std::future::{poll_fn, Future};
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::marker::PhantomData;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rtsp_toolkit_core::client::{ClientOptions, Event as ClientEvent};
use rtsp_toolkit_core::server::auth::{AuthConfig, ServerAuth};
use rtsp_toolkit_core::server::{
    CloseReason, Connection, GroupPool, GroupRange, LookupError, MulticastInput, MulticastOutput, MulticastRequest,
    MulticastStream, PlayCount, PortRange, ServerConfig, ServerEvent, ServerInput, ServerOutput, UdpSocketId,
};
use rtsp_toolkit_core::stop::StopSignal;
use rtsp_toolkit_driver::tls::ServerTlsConfig;
use rtsp_toolkit_driver::udp::{Gso, SendBatch};
pub use rtsp_toolkit_driver::{Woken, WriteError};
use tracing::Instrument;

use crate::library::Library;
use crate::MediaSource;

mod backchannel;
mod live;
pub mod metrics;
pub mod relay;
mod tunnel;

/// How long a server's `wait` waits, after a shutdown, for its connections
/// to close.
pub const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

/// Read buffer of a connection: requests are small.
const READ_BUFFER: usize = 16 * 1024;

/// Datagram buffer of a connection: what clients send over UDP is RTCP
/// (receiver reports, a few hundred bytes); longer datagrams are cut, which
/// makes them unparsable, and they are dropped as such.
const DATAGRAM_BUFFER: usize = 4 * 1024;

/// Errors one socket may return in a row within one poll before it is left
/// until the next wake-up (a UDP socket can report an ICMP error of an
/// earlier send as a failed receive; it does not mean the socket is dead).
const RECV_ERRORS_PER_POLL: usize = 4;

/// How long the accept loop waits after a failed accept (`EMFILE` and
/// friends) before it tries again, instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The options of a file server, on every runtime. With the `serde`
/// feature they read and write as the core's options do (durations as
/// seconds: `write_stall_s`; missing fields take the default; unknown ones
/// are refused).
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
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
    #[cfg_attr(
        feature = "serde",
        serde(rename = "write_stall_s", with = "rtsp_toolkit_core::duration_secs")
    )]
    pub write_stall: Duration,
    /// The kernel send buffer of each connection (`SO_SNDBUF`), which bounds
    /// how much media waits for a slow client before `write_stall` counts;
    /// `None` (the default) leaves the OS's autotuning.
    pub send_buffer: Option<u32>,
    /// Called with every event of every connection and multicast stream
    /// (requests answered, sessions started and ended, receiver reports,
    /// warnings), besides the log: for a caller that reports them itself,
    /// such as `serve --json`. Called on the server's tasks: keep it short.
    /// Not serialized (with the `serde` feature it is skipped both ways).
    #[cfg_attr(feature = "serde", serde(skip))]
    pub events: Option<EventHook>,
    /// Ask clients for credentials (default `None`: anyone may play). The
    /// server makes the one [`ServerAuth`] all its connections share from
    /// it, with a random nonce secret, when it starts (into
    /// [`ServerConfig::auth`], which is left alone when this is `None`).
    /// The rules are in `rtsp_toolkit_core::server::auth`. Not serialized
    /// (with the `serde` feature it is skipped both ways).
    #[cfg_attr(feature = "serde", serde(skip))]
    pub auth: Option<AuthConfig>,
    /// Speak RTSPS (RTSP over TLS) with this certificate and key on every
    /// connection (default `None`: plain RTSP); see [`crate::tls`]. Basic
    /// authentication is still offered only with [`AuthConfig::allow_basic`]:
    /// set it for a TLS server (`serve --tls-cert` does). Not serialized
    /// (with the `serde` feature it is skipped both ways).
    #[cfg_attr(feature = "serde", serde(skip))]
    pub tls: Option<ServerTlsConfig>,
    /// Offer the ONVIF audio backchannel and write what each session sends
    /// on it as a WAV file in this directory (default `None`: not offered,
    /// and `Require: www.onvif.org/ver20/backchannel` is answered 551). The
    /// server sets [`ServerConfig::backchannel`] from it; the file names are
    /// `<path>-<session id>.wav` (see `serve --backchannel-dir` in docs/CLI.md).
    /// The codec offered, and decoded into the file, is
    /// [`ServerConfig::backchannel_codec`] (PCMU by default; AAC decodes
    /// with the pure-Rust decoder of [`crate::audio::AudioDecoder`], no
    /// feature needed).
    pub backchannel_dir: Option<PathBuf>,
    /// Relayed paths (default none): each is a live path that the server's
    /// own client pulls from an upstream URL once and serves to any number
    /// of readers, reconnecting with back-off (see [`relay`]).
    pub relays: Vec<relay::RelaySpec>,
    /// Give a new reader of a live path (published or relayed) the path's
    /// packets since its last video keyframe at once, for a first frame
    /// without waiting for the next keyframe (default off: readers start at
    /// the next keyframe). At most 4 MiB per path; a longer GOP is not cached.
    pub gop_cache: bool,
}

/// A callback for the server's events ([`ServerOptions::events`]): the
/// peer of the connection (`None` for a multicast stream's events) and the
/// event.
#[derive(Clone)]
pub struct EventHook(Arc<EventFn>);

/// The function inside an [`EventHook`].
type EventFn = dyn Fn(Option<SocketAddr>, &ServerEvent) + Send + Sync;

impl EventHook {
    /// A hook that calls `f`.
    pub fn new(f: impl Fn(Option<SocketAddr>, &ServerEvent) + Send + Sync + 'static) -> EventHook {
        EventHook(Arc::new(f))
    }
}

impl std::fmt::Debug for EventHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventHook(..)")
    }
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            config: ServerConfig::default(),
            max_connections: 4096,
            write_stall: Duration::from_secs(5),
            send_buffer: None,
            events: None,
            auth: None,
            tls: None,
            backchannel_dir: None,
            relays: Vec::new(),
            gop_cache: false,
        }
    }
}

/// Builds a runtime's server, `S`: the media root and the [`ServerOptions`].
///
/// Each runtime names it for its own `Server`
/// (`rtsp_toolkit_tokio::ServerBuilder` is `ServerBuilder<rtsp_toolkit_tokio::Server>`),
/// so the setters are the same everywhere and only [`bind`](Self::bind)
/// depends on the runtime.
pub struct ServerBuilder<S> {
    root: PathBuf,
    options: ServerOptions,
    /// `fn() -> S`: the builder makes an `S`, and is `Send` and `Sync`
    /// whatever `S` is.
    server: PhantomData<fn() -> S>,
}

impl<S> ServerBuilder<S> {
    /// A server for the files under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        ServerBuilder {
            root: root.into(),
            options: ServerOptions::default(),
            server: PhantomData,
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

    /// The UDP ports of the RTP/RTCP pairs of UDP sessions (default: any
    /// even/odd pair the OS gives).
    pub fn udp_ports(mut self, range: PortRange) -> Self {
        self.options.config.udp_ports = Some(range);
        self
    }

    /// The group addresses of multicast streams (default
    /// `239.255.42.0-239.255.42.255`).
    pub fn multicast_groups(mut self, range: GroupRange) -> Self {
        self.options.config.multicast_groups = range;
        self
    }

    /// The ports of multicast streams: track `k` on pair `k` of the range
    /// (default `5004-5099`).
    pub fn multicast_ports(mut self, range: PortRange) -> Self {
        self.options.config.multicast_ports = range;
        self
    }

    /// The TTL of multicast datagrams (default 1).
    pub fn multicast_ttl(mut self, ttl: u8) -> Self {
        self.options.config.multicast_ttl = ttl;
        self
    }

    /// Most connections at once.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.options.max_connections = n;
        self
    }

    /// Ask for credentials: the users and settings of `auth` (see
    /// [`ServerOptions::auth`]).
    pub fn auth(mut self, auth: AuthConfig) -> Self {
        self.options.auth = Some(auth);
        self
    }

    /// Speak RTSPS on every connection (see [`ServerOptions::tls`]).
    pub fn tls(mut self, tls: ServerTlsConfig) -> Self {
        self.options.tls = Some(tls);
        self
    }

    /// Let clients publish to `path` (ANNOUNCE/RECORD; `*` for any path):
    /// readers of it get the publisher's live stream (see
    /// [`ServerConfig::publish`]). Repeatable.
    pub fn publish(mut self, path: impl Into<String>) -> Self {
        self.options.config.publish.push(path.into());
        self
    }

    /// Offer the ONVIF audio backchannel, writing what clients send into
    /// `dir` (see [`ServerOptions::backchannel_dir`]).
    pub fn backchannel_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.options.backchannel_dir = Some(dir.into());
        self
    }

    /// Relay `url` as live path `name` (see [`relay`]). Repeatable.
    pub fn relay(mut self, name: impl Into<String>, url: impl Into<String>) -> Self {
        self.options.relays.push(relay::RelaySpec {
            name: name.into(),
            url: url.into(),
            transport: rtsp_toolkit_core::client::Transport::Tcp,
        });
        self
    }

    /// All options at once.
    pub fn options(mut self, options: ServerOptions) -> Self {
        self.options = options;
        self
    }
}

impl<S: Bind> ServerBuilder<S> {
    /// Opens the root (see [`Library::open`]), binds `addr` (port 0 picks a
    /// free one) and starts the server the runtime's way: tokio's serves on
    /// the current tokio runtime, smol's while its `wait` is polled. It is
    /// `async` so that the runtime's listener is made within the runtime.
    pub async fn bind(self, addr: SocketAddr) -> io::Result<S> {
        let library = Library::open(&self.root)?;
        S::bind(Arc::new(ServerState::new(library, self.options)), addr)
    }
}

// By hand: derived, they would ask `S` (a server) to be `Clone` and `Debug` too.
impl<S> Clone for ServerBuilder<S> {
    fn clone(&self) -> Self {
        ServerBuilder {
            root: self.root.clone(),
            options: self.options.clone(),
            server: PhantomData,
        }
    }
}

impl<S> fmt::Debug for ServerBuilder<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("root", &self.root)
            .field("options", &self.options)
            .finish()
    }
}

/// A runtime's server, as [`ServerBuilder::bind`] starts it.
pub trait Bind: Sized {
    /// Listens on `addr` (port 0 picks a free one) and serves `state`'s
    /// library with its options. Called from within the runtime (the
    /// builder's `bind` is polled there), after the root was opened.
    fn bind(state: Arc<ServerState>, addr: SocketAddr) -> io::Result<Self>;
}

/// A bound server as every runtime's `Server` shows it: its address, its
/// files, its connections and its stop. Each runtime's `Server` derefs to
/// it and adds what depends on the runtime (how it runs, `wait`).
#[derive(Debug)]
pub struct Bound {
    local_addr: SocketAddr,
    state: Arc<ServerState>,
}

impl Bound {
    /// A server listening on `local_addr` (the address actually bound),
    /// serving `state`.
    pub fn new(local_addr: SocketAddr, state: Arc<ServerState>) -> Bound {
        Bound { local_addr, state }
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The canonical media root.
    pub fn root(&self) -> &Path {
        self.state.library().root()
    }

    /// `rtsp://ADDR/<path>` for every published file, sorted
    /// (`rtsps://` when the server speaks TLS).
    pub fn urls(&self) -> Vec<String> {
        let urls = self.state.library().urls(self.local_addr);
        if self.state.options.tls.is_none() {
            return urls;
        }
        urls.into_iter()
            .map(|u| {
                u.strip_prefix("rtsp://")
                    .map_or(u.clone(), |rest| format!("rtsps://{rest}"))
            })
            .collect()
    }

    /// Connections open now.
    pub fn connections(&self) -> usize {
        self.state.connections()
    }

    /// Stops accepting and closes every connection.
    pub fn shutdown(&self) {
        self.state.shutdown();
    }

    /// The state its accept loop and connections share.
    pub fn state(&self) -> &Arc<ServerState> {
        &self.state
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
    /// The UDP sessions, by session id, that requests on other connections
    /// may refresh or end (see `docs/ARCHITECTURE.md`, "Sessions that
    /// outlive their connection").
    sessions: Mutex<HashMap<String, Arc<SessionLink>>>,
    /// The multicast streams, by path and `play_count`.
    multicast: Mutex<Streams>,
    /// The groups the streams hold (locked after `multicast`, never before).
    groups: Arc<Mutex<GroupPool>>,
    /// Tasks for the accept loop to spawn (the multicast streams), and the
    /// accept loop's waker.
    spawns: Spawns,
    /// The RTSP-over-HTTP tunnels, by cookie.
    tunnels: tunnel::Tunnels,
    /// The live paths: published by a connection, read by others.
    live: Arc<live::LivePaths>,
    /// From a live packet's arrival to its write to a reader.
    live_latency: live::Latency,
}

/// [`ServerState::spawns`]: not `Debug` (futures are not).
#[derive(Default)]
struct Spawns(Mutex<(Vec<Task>, Option<Waker>)>);

impl fmt::Debug for Spawns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Spawns({} waiting)", lock(&self.0).0.len())
    }
}

/// A task handed to the runtime's [`Listener::spawn`].
type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The multicast streams of a server.
#[derive(Debug, Default)]
struct Streams {
    by_path: HashMap<(String, PlayCount), Arc<StreamEntry>>,
    next_member: u64,
}

/// One multicast stream: its machine, shared by its task (which drives it)
/// and its members' connection loops (which join, play and leave).
#[derive(Debug)]
struct StreamEntry {
    key: (String, PlayCount),
    machine: Mutex<MulticastStream>,
    /// Wakes the stream's task after a member's input.
    wake: Notify,
    /// Raised when the stream is over; members then end as at the end of a
    /// presentation.
    ended: StopSignal,
    /// Its group, given back when the last reference goes.
    _lease: GroupLease,
}

/// A group held by a stream; given back to the pool on drop.
#[derive(Debug)]
struct GroupLease {
    group: std::net::Ipv4Addr,
    pool: Arc<Mutex<GroupPool>>,
}

impl Drop for GroupLease {
    fn drop(&mut self) {
        lock(&self.pool).give_back(self.group);
    }
}

/// A connection's place in a multicast stream; it leaves on drop.
#[derive(Debug)]
struct Membership {
    entry: Arc<StreamEntry>,
    id: u64,
    /// The stream's end was handed to the connection.
    end_told: bool,
}

impl Drop for Membership {
    fn drop(&mut self) {
        lock(&self.entry.machine).handle_input(Instant::now(), MulticastInput::Leave(self.id));
        self.entry.wake.notify();
    }
}

/// A wake-up for one waiting task, kept until it is taken.
#[derive(Debug, Default)]
struct Notify(Mutex<(bool, Option<Waker>)>);

impl Notify {
    fn notify(&self) {
        let waker = {
            let mut s = lock(&self.0);
            s.0 = true;
            s.1.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Ready once notified since the last time it was ready.
    fn poll_notified(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = lock(&self.0);
        if std::mem::take(&mut s.0) {
            return Poll::Ready(());
        }
        s.1 = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// Locks `m`, whether or not a holder panicked.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What another connection can do to a UDP session: refresh it (a
/// keepalive naming it) or end it (a TEARDOWN naming it). The session's own
/// connection loop reads both.
#[derive(Debug, Default)]
struct SessionLink {
    /// The latest keepalive from another connection not handed in yet.
    keepalive: Mutex<Option<Instant>>,
    teardown: StopSignal,
}

/// A session's place in [`ServerState`]'s registry, removed on drop.
#[derive(Debug)]
struct Registered {
    id: String,
    link: Arc<SessionLink>,
    state: Arc<ServerState>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut sessions = self.state.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if sessions.get(&self.id).is_some_and(|l| Arc::ptr_eq(l, &self.link)) {
            sessions.remove(&self.id);
        }
    }
}

impl ServerState {
    /// The state of a server of `library` with `options`.
    pub fn new(library: Library, options: ServerOptions) -> ServerState {
        let groups = GroupPool::new(options.config.multicast_groups);
        let seeds = RandomState::new();
        let mut config = options.config.clone();
        config.backchannel |= options.backchannel_dir.is_some();
        if let Some(auth) = &options.auth {
            let mut secret = [0u8; 32];
            for (i, chunk) in secret.chunks_mut(8).enumerate() {
                chunk.copy_from_slice(&random_u64(&seeds, u64::MAX - i as u64).to_le_bytes());
            }
            config.auth = Some(Arc::new(ServerAuth::new(auth.clone(), secret, Instant::now())));
        }
        let gop_cache = options.gop_cache;
        ServerState {
            library: Arc::new(library),
            config: Arc::new(config),
            options,
            connections: AtomicUsize::new(0),
            accepted: AtomicU64::new(0),
            stop: StopSignal::new(),
            seeds,
            sessions: Mutex::new(HashMap::new()),
            multicast: Mutex::new(Streams::default()),
            groups: Arc::new(Mutex::new(groups)),
            spawns: Spawns::default(),
            tunnels: tunnel::Tunnels::default(),
            live: Arc::new(live::LivePaths::new(gop_cache)),
            live_latency: live::Latency::default(),
        }
    }

    /// The `q` quantile (0 to 1) of the time from a live packet's arrival
    /// (at its publisher's connection or its relay) to the end of the write
    /// that took it to a reader, over every packet and reader so far
    /// (within 9 %); `None` before the first. With [`ServerState::live_packets_written`].
    pub fn live_latency(&self, q: f64) -> Option<Duration> {
        self.live_latency.quantile(q)
    }

    /// Live packets written to readers so far (the samples of [`ServerState::live_latency`]).
    pub fn live_packets_written(&self) -> u64 {
        self.live_latency.count()
    }

    /// Paths a publisher makes live now.
    pub fn live_paths(&self) -> usize {
        self.live.len()
    }

    /// RTSP-over-HTTP tunnels open now: paired, or one half waiting for the
    /// other (at most `rtsp_toolkit_core::server::tunnel::MAX_UNPAIRED` of
    /// those).
    pub fn tunnels(&self) -> usize {
        self.tunnels.len()
    }

    /// Multicast streams running now (each holds a group).
    pub fn multicast_streams(&self) -> usize {
        lock(&self.multicast).by_path.len()
    }

    /// Hands `task` to the accept loop, which spawns it.
    fn spawn(&self, task: Task) {
        let waker = {
            let mut s = lock(&self.spawns.0);
            s.0.push(task);
            s.1.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// The tasks waiting to be spawned, or `Pending` (registering `cx`).
    fn poll_spawns(&self, cx: &mut Context<'_>) -> Poll<Vec<Task>> {
        let mut s = lock(&self.spawns.0);
        if s.0.is_empty() {
            s.1 = Some(cx.waker().clone());
            return Poll::Pending;
        }
        Poll::Ready(std::mem::take(&mut s.0))
    }

    /// Joins the multicast stream of `path` played `play_count` times as a
    /// new member, making the stream (a group from the pool, a sending pair
    /// on `local_ip`, a task) when none is running.
    fn join_multicast<C: ConnectionIo + 'static>(
        self: &Arc<Self>,
        path: String,
        play_count: PlayCount,
        source: Arc<MediaSource>,
        local_ip: IpAddr,
    ) -> Result<Membership, String> {
        let now = Instant::now();
        let mut streams = lock(&self.multicast);
        streams.next_member += 1;
        let id = streams.next_member;
        let key = (path, play_count);
        if let Some(entry) = streams.by_path.get(&key) {
            let mut machine = lock(&entry.machine);
            if !machine.is_done() {
                machine.handle_input(now, MulticastInput::Join(id));
                drop(machine);
                return Ok(Membership {
                    entry: entry.clone(),
                    id,
                    end_told: false,
                });
            }
        }
        let group = lock(&self.groups)
            .take()
            .ok_or_else(|| format!("every multicast group of {} is in use", self.config.multicast_groups))?;
        let lease = GroupLease {
            group,
            pool: self.groups.clone(),
        };
        let (rtp, rtcp, port) = rtsp_toolkit_driver::udp::bind_multicast_sender(local_ip, self.config.multicast_ttl)
            .map_err(|e| format!("cannot bind a multicast sender: {e}"))?;
        let (rtp, rtcp) = (
            C::Udp::from_std(rtp).map_err(|e| e.to_string())?,
            C::Udp::from_std(rtcp).map_err(|e| e.to_string())?,
        );
        let seed = self.seed(self.accepted.load(Ordering::Relaxed) ^ (u64::from(port) << 48));
        // A live path's stream passes its publisher's packets on.
        let live = self.live.source(&key.0).is_some_and(|s| Arc::ptr_eq(&s, &source));
        let reading = if live { self.live.read(&key.0) } else { None };
        let mut machine = MulticastStream::new(
            &self.config,
            now,
            key.0.clone(),
            play_count,
            source,
            group,
            seed,
            rtsp_toolkit_driver::ntp_now(),
        );
        if live {
            machine = machine.live();
        }
        machine.handle_input(now, MulticastInput::Join(id));
        tracing::debug!(path = key.0.as_str(), %group, sender_port = port, live, "multicast stream made");
        let entry = Arc::new(StreamEntry {
            key: key.clone(),
            machine: Mutex::new(machine),
            wake: Notify::default(),
            ended: StopSignal::new(),
            _lease: lease,
        });
        streams.by_path.insert(key, entry.clone());
        drop(streams);
        let span = tracing::info_span!(parent: None, "rtsp_multicast", %group, path = entry.key.0.as_str());
        self.spawn(Box::pin(
            run_multicast::<C>(entry.clone(), rtp, rtcp, reading, self.clone()).instrument(span),
        ));
        Ok(Membership {
            entry,
            id,
            end_told: false,
        })
    }

    /// UDP sessions open now (with or without their connection).
    pub fn udp_sessions(&self) -> usize {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Puts `id` in the registry.
    fn register(self: &Arc<Self>, id: &str) -> Registered {
        let link = Arc::new(SessionLink::default());
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_owned(), link.clone());
        Registered {
            id: id.to_owned(),
            link,
            state: self.clone(),
        }
    }

    /// A request on another connection named session `id` at `now`:
    /// refreshes it, or ends it (`teardown`). Whether it exists.
    fn touch(&self, id: &str, teardown: bool, now: Instant) -> bool {
        let Some(link) = self.sessions.lock().unwrap_or_else(|p| p.into_inner()).get(id).cloned() else {
            return false;
        };
        if teardown {
            link.teardown.stop();
        } else {
            *link.keepalive.lock().unwrap_or_else(|p| p.into_inner()) = Some(now);
        }
        true
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
    fn admit(self: &Arc<Self>, peer: SocketAddr) -> Option<Admitted> {
        let n = self.accepted.fetch_add(1, Ordering::Relaxed) + 1;
        let limit = self.options.max_connections;
        if self.connections.load(Ordering::Relaxed) >= limit {
            tracing::warn!(%peer, limit, "connection limit reached; refused");
            return None;
        }
        self.connections.fetch_add(1, Ordering::Relaxed);
        let connection = Connection::new(
            self.config.clone(),
            Instant::now(),
            peer,
            self.seed(n),
            rtsp_toolkit_driver::ntp_now(),
        );
        Some(Admitted {
            connection,
            state: self.clone(),
        })
    }

    /// A different, unpredictable seed for every connection.
    fn seed(&self, salt: u64) -> u64 {
        random_u64(&self.seeds, salt)
    }
}

/// An unpredictable value: `salt` and the wall-clock time hashed with the
/// process's random keys of `seeds`.
fn random_u64(seeds: &RandomState, salt: u64) -> u64 {
    let mut h = seeds.build_hasher();
    h.write_u64(salt);
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish()
}

/// An admitted connection: its machine, counted in
/// [`ServerState::connections`] until this is dropped.
#[derive(Debug)]
struct Admitted {
    /// The connection machine, created at admission.
    connection: Connection,
    state: Arc<ServerState>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.state.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A runtime's listening socket and tasks, as [`accept_loop`] uses them.
pub trait Listener: Send + Sync {
    /// An accepted connection's socket.
    type Socket: ConnectionIo + 'static;

    /// The next connection and its peer's address.
    fn accept(&self) -> impl Future<Output = io::Result<(Self::Socket, SocketAddr)>> + Send;

    /// Waits for `duration` (a back-off after a failed accept).
    fn sleep(duration: Duration) -> impl Future<Output = ()> + Send;

    /// Runs a connection's loop as a task of its own.
    fn spawn(&self, connection: impl Future<Output = ()> + Send + 'static);
}

/// An accepted socket as a runtime moves its bytes, and the runtime's place
/// for blocking work: what a connection's loop leaves to the runtime. Each
/// runtime implements it with its `io` module.
pub trait ConnectionIo: Send {
    /// The runtime's UDP socket, for the pairs of UDP sessions.
    type Udp: Datagrams + 'static;
    /// The runtime's client session, for relays.
    type Relay: RelaySource;

    /// The local address the connection came in on (UDP pairs are bound on
    /// its IP).
    fn local_addr(&self) -> io::Result<SocketAddr>;

    /// Waits until `at` (a connection whose UDP session outlived its
    /// socket has only deadlines and datagrams to wait for).
    fn sleep_until(at: Instant) -> impl Future<Output = ()> + Send;

    /// Writes all of `bytes`, failing with [`WriteError::Stalled`] when the
    /// socket takes no byte for `stall` (a client that keeps taking bytes,
    /// however slowly, has not stalled).
    fn write_all(&mut self, bytes: &[u8], stall: Duration) -> impl Future<Output = Result<(), WriteError>> + Send;

    /// Looks `path` up in `library` where blocking is allowed (it may read a
    /// whole file), off the threads that move bytes.
    fn lookup(
        library: Arc<Library>,
        path: String,
    ) -> impl Future<Output = Result<Arc<MediaSource>, LookupError>> + Send;

    /// Waits until data arrives in `buf` or `at` passes, whichever is first;
    /// when `at` passed, the read is a non-blocking one of what is already
    /// waiting. Cancel-safe: a cancelled wait has read nothing.
    fn read_until(&mut self, buf: &mut [u8], at: Instant) -> impl Future<Output = Woken> + Send;

    /// Shuts the socket's write side, once the connection is over.
    fn close(self) -> impl Future<Output = ()> + Send;
}

/// A runtime's client session as a relay pulls its upstream with it.
pub trait RelaySource: Send + Sized + 'static {
    /// Opens a session of `url` (it connects in the background: its events
    /// say how that went); it ends when `stop` is raised.
    fn open(url: &str, options: ClientOptions, stop: StopSignal) -> Result<Self, String>;

    /// The session's next event; `Ready(None)` once it is over.
    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<ClientEvent>>;
}

/// A UDP socket as a runtime polls it: one of a session's RTP/RTCP pair.
pub trait Datagrams: Send + Sync + Sized {
    /// Registers a bound, non-blocking socket ([`rtsp_toolkit_driver::udp::bind_pair`])
    /// with the runtime's reactor. Called within the runtime.
    fn from_std(socket: std::net::UdpSocket) -> io::Result<Self>;

    /// One datagram into `buf` (cut to its length): its length and sender;
    /// `Pending` registers `cx` for the next one.
    fn poll_recv_from(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<(usize, SocketAddr)>>;

    /// Sends one datagram now, without waiting: a socket whose buffer is
    /// full fails with `WouldBlock` and the datagram is dropped (UDP is
    /// lossy; waiting would hold up the session's other packets).
    fn try_send_to(&self, data: &[u8], to: SocketAddr) -> io::Result<usize>;

    /// The socket itself, for sends the runtime has no call for (several
    /// datagrams in one GSO send, [`rtsp_toolkit_driver::udp::Gso`]), made
    /// without waiting like [`Datagrams::try_send_to`].
    fn sock_ref(&self) -> socket2::SockRef<'_>;
}

/// Accepts connections on `listener` until `state`'s stop, each in a task
/// of its own (see the [module docs](self)). Past
/// [`ServerOptions::max_connections`], a connection is accepted and closed
/// at once, so the listener keeps answering.
pub async fn accept_loop<L: Listener>(listener: L, state: Arc<ServerState>) {
    for spec in state.options.relays.clone() {
        let span = tracing::info_span!(parent: None, "rtsp_relay", path = spec.name.as_str());
        listener.spawn(relay::run::<L::Socket>(state.clone(), spec).instrument(span));
    }
    while let Some(next) = unless_stopped(&state.stop, next_work(&listener, &state)).await {
        let accepted = match next {
            Work::Spawn(tasks) => {
                for task in tasks {
                    listener.spawn(task);
                }
                continue;
            }
            Work::Accepted(accepted) => accepted,
        };
        let (socket, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                L::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        // Refused: the socket is dropped, so closed.
        if let Some(admitted) = state.admit(peer) {
            // The span is attached to the task (not entered across awaits), so
            // each log line carries its own connection's peer and nothing else.
            listener.spawn(tunnel::serve(socket, admitted).instrument(tracing::info_span!("rtsp_conn", %peer)));
        }
    }
}

/// What the accept loop does next.
enum Work<S> {
    /// Spawn these (multicast streams).
    Spawn(Vec<Task>),
    /// A connection, or a failed accept.
    Accepted(io::Result<(S, SocketAddr)>),
}

/// The next connection, or tasks to spawn, whichever comes first (the
/// tasks first: they are few).
async fn next_work<L: Listener>(listener: &L, state: &ServerState) -> Work<L::Socket> {
    let mut accept = pin!(listener.accept());
    poll_fn(|cx| {
        if let Poll::Ready(tasks) = state.poll_spawns(cx) {
            return Poll::Ready(Work::Spawn(tasks));
        }
        accept.as_mut().poll(cx).map(Work::Accepted)
    })
    .await
}

/// A multicast stream's task: its machine driven (datagrams sent from its
/// pair, events logged), woken at its deadlines and after its members'
/// inputs, until it is done (or the server stops); then its members are
/// told, and it leaves the server's streams.
async fn run_multicast<C: ConnectionIo + 'static>(
    entry: Arc<StreamEntry>,
    rtp: C::Udp,
    rtcp: C::Udp,
    mut reading: Option<live::Reading>,
    state: Arc<ServerState>,
) {
    let mut unsent = 0u64;
    loop {
        let next = {
            let mut machine = lock(&entry.machine);
            loop {
                match machine.poll_output() {
                    MulticastOutput::SendDatagram {
                        rtcp: is_rtcp,
                        to,
                        data,
                    } => {
                        let socket = if is_rtcp { &rtcp } else { &rtp };
                        if let Err(e) = socket.try_send_to(&data, to) {
                            if unsent == 0 {
                                tracing::debug!(error = %e, %to, "a multicast datagram could not be sent; dropped");
                            }
                            unsent += 1;
                        }
                    }
                    MulticastOutput::Event(event) => log_event(&state, None, &event),
                    MulticastOutput::Timeout(at) => break Some(at),
                    MulticastOutput::Done => break None,
                }
            }
        };
        let Some(at) = next else { break };
        let (stopped, live_ready) = {
            let mut stopped = pin!(state.stop.stopped());
            let mut sleep = pin!(C::sleep_until(at));
            let reading = reading.as_ref();
            poll_fn(|cx| {
                if stopped.as_mut().poll(cx).is_ready() {
                    return Poll::Ready((true, false));
                }
                if entry.wake.poll_notified(cx).is_ready() || sleep.as_mut().poll(cx).is_ready() {
                    return Poll::Ready((false, false));
                }
                if reading.is_some_and(|r| r.poll_ready(cx).is_ready()) {
                    return Poll::Ready((false, true));
                }
                Poll::Pending
            })
            .await
        };
        if live_ready {
            if let Some(r) = reading.as_ref() {
                let taken = r.take();
                let now = Instant::now();
                let mut machine = lock(&entry.machine);
                for (track, packet, _) in &taken.packets {
                    machine.handle_input(now, MulticastInput::LivePacket { track: *track, packet });
                }
                // A stream that cannot keep up with its path ends as at the path's end.
                if taken.ended || taken.overflowed {
                    reading = None;
                    machine.handle_input(now, MulticastInput::LiveEnded);
                }
            }
            continue;
        }
        let input = if stopped {
            MulticastInput::Shutdown
        } else {
            MulticastInput::Timeout
        };
        lock(&entry.machine).handle_input(Instant::now(), input);
    }
    if unsent > 0 {
        tracing::debug!(unsent, "multicast datagrams the sockets did not take");
    }
    entry.ended.stop();
    let mut streams = lock(&state.multicast);
    if streams.by_path.get(&entry.key).is_some_and(|e| Arc::ptr_eq(e, &entry)) {
        streams.by_path.remove(&entry.key);
    }
}

/// The connection's loop: the machine's outputs done, its inputs given.
///
/// Besides the TCP socket, it holds the UDP pairs the machine asked for
/// and, once the session plays over UDP, the session's place in the
/// server's registry. When the machine detaches (its UDP session outlived
/// the RTSP connection), the TCP socket is closed and the loop goes on
/// with the deadlines and the datagrams only.
///
/// `first` is what was read before (the bytes that told RTSP from a tunnel
/// request), handed to the machine first.
async fn run_connection<C: ConnectionIo + 'static>(io: C, mut admitted: Admitted, first: &[u8]) {
    let state = admitted.state.clone();
    let conn = &mut admitted.connection;
    if !first.is_empty() {
        conn.handle_input(Instant::now(), ServerInput::Data(first));
    }
    let stall = state.options.write_stall;
    let local_ip = match io.local_addr() {
        Ok(local) => local.ip(),
        Err(_) if conn.peer().is_ipv6() => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        Err(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    };
    let mut io = Some(io);
    let mut buf = vec![0u8; READ_BUFFER];
    let mut datagram = Vec::new();
    let mut pairs: Vec<UdpPair<C::Udp>> = Vec::new();
    let mut registered: Option<Registered> = None;
    let mut membership: Option<Membership> = None;
    let mut unsent = 0u64;
    let mut backchannel = backchannel::BackchannelWav::default();
    // The path this connection publishes, and the one it reads.
    let mut publication: Option<live::Publication> = None;
    let mut reading: Option<live::Reading> = None;
    // Arrivals of the live packets handed in, until the write that takes them.
    let mut arrivals: Vec<Instant> = Vec::new();
    // Consecutive datagrams to one client, sent as one (GSO) when the next
    // output is anything else or does not fit.
    let mut batch: Option<SendBatch> = None;
    loop {
        let output = conn.poll_output();
        if !matches!(output, ServerOutput::SendDatagram { .. }) {
            if let Some(b) = batch.take() {
                send_batch(&pairs, &b, &mut unsent);
            }
        }
        match output {
            ServerOutput::Transmit(bytes) => {
                let Some(io) = io.as_mut() else { continue };
                if let Err(e) = io.write_all(&bytes, stall).await {
                    conn.handle_input(Instant::now(), ServerInput::Abort(write_failure(e, stall)));
                }
                record_latency(&state, &mut arrivals);
            }
            ServerOutput::SendDatagram { socket, to, data } => {
                if let Some(b) = batch.as_mut() {
                    let max = pairs
                        .iter()
                        .find(|p| p.id == socket.pair)
                        .map_or(1, |p| p.max_segments(socket.rtcp));
                    if b.push(socket, to, &data, max) {
                        continue;
                    }
                }
                if let Some(b) = batch.replace(SendBatch::new(socket, to, &data)) {
                    send_batch(&pairs, &b, &mut unsent);
                }
                record_latency(&state, &mut arrivals);
            }
            ServerOutput::OpenUdp(request) => {
                let opened = open_pair::<C::Udp>(local_ip, request.bind, request.pair);
                let result = match &opened {
                    Ok(pair) => Ok(pair.port),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot open a UDP port pair");
                        Err(e.to_string())
                    }
                };
                pairs.extend(opened.ok());
                let result = result.as_ref().map(|p| *p).map_err(String::as_str);
                conn.handle_input(
                    Instant::now(),
                    ServerInput::UdpOpened {
                        pair: request.pair,
                        result,
                    },
                );
                if registered.is_none() && !pairs.is_empty() {
                    registered = conn.session_id().map(|id| state.register(id));
                }
            }
            ServerOutput::OtherSession {
                token,
                session_id,
                teardown,
            } => {
                let now = Instant::now();
                let found = state.touch(&session_id, teardown, now);
                conn.handle_input(now, ServerInput::OtherSession { token, found });
            }
            ServerOutput::Lookup { token, path } => {
                // A live path first: a publisher's presentation shadows a file of that name.
                let live_path = path.split('?').next().unwrap_or(&path);
                if let Some(source) = state.live.source(live_path) {
                    conn.handle_input(Instant::now(), ServerInput::LiveFound { token, source });
                    continue;
                }
                let result = C::lookup(state.library.clone(), path).await;
                conn.handle_input(Instant::now(), ServerInput::Lookup { token, result });
            }
            ServerOutput::Announce { token, path, source } => {
                // A second ANNOUNCE on this connection replaces its first.
                publication = None;
                let result = match state.live.publish(path, source) {
                    Ok(p) => {
                        publication = Some(p);
                        Ok(())
                    }
                    Err(e) => Err(e),
                };
                let result = result.as_ref().map(|_| ()).map_err(String::as_str);
                conn.handle_input(Instant::now(), ServerInput::Announced { token, result });
            }
            ServerOutput::Published { track, packet } => {
                if let Some(p) = &publication {
                    p.send(track, &packet);
                }
            }
            ServerOutput::ReadLive { path } => {
                reading = state.live.read(&path);
                if reading.is_none() {
                    conn.handle_input(Instant::now(), ServerInput::LiveEnded);
                }
            }
            ServerOutput::Multicast(MulticastRequest::Join {
                token,
                path,
                play_count,
                source,
            }) => {
                if membership.is_none() {
                    match state.join_multicast::<C>(path, play_count, source, local_ip) {
                        Ok(m) => membership = Some(m),
                        Err(e) => {
                            tracing::warn!(error = e.as_str(), "cannot join a multicast stream");
                            conn.handle_input(Instant::now(), ServerInput::MulticastJoined { token, result: Err(&e) });
                            continue;
                        }
                    }
                }
                let tracks = membership
                    .as_ref()
                    .map(|m| lock(&m.entry.machine).tracks().to_vec())
                    .unwrap_or_default();
                conn.handle_input(
                    Instant::now(),
                    ServerInput::MulticastJoined {
                        token,
                        result: Ok(&tracks),
                    },
                );
            }
            ServerOutput::Multicast(MulticastRequest::Play { token }) => {
                let now = Instant::now();
                let position = membership.as_ref().and_then(|m| {
                    let mut machine = lock(&m.entry.machine);
                    let position = machine.position(now);
                    machine.handle_input(now, MulticastInput::Play(m.id));
                    drop(machine);
                    m.entry.wake.notify();
                    position
                });
                conn.handle_input(now, ServerInput::MulticastPlaying { token, position });
            }
            ServerOutput::Event(event) => log_event(&state, Some(conn.peer()), &event),
            ServerOutput::Backchannel {
                session_id,
                path,
                packet,
            } => backchannel.packet(
                state.options.backchannel_dir.as_deref(),
                state.options.config.backchannel_codec,
                &session_id,
                &path,
                &packet,
            ),
            ServerOutput::Timeout(at) => {
                if conn.is_detached() {
                    if let Some(io) = io.take() {
                        io.close().await;
                    }
                }
                let link = registered.as_ref().map(|r| &*r.link);
                let ended = membership.as_ref().filter(|m| !m.end_told).map(|m| &m.entry.ended);
                let woken = wait(
                    &state.stop,
                    link,
                    ended,
                    reading.as_ref(),
                    io.as_mut(),
                    &mut buf,
                    at,
                    &pairs,
                    &mut datagram,
                )
                .await;
                if let Some(link) = link {
                    let keepalive = link.keepalive.lock().unwrap_or_else(|p| p.into_inner()).take();
                    if let Some(at) = keepalive {
                        conn.handle_input(at, ServerInput::KeepAlive);
                    }
                }
                match woken {
                    Wake::Stopped => conn.handle_input(Instant::now(), ServerInput::Abort(CloseReason::Shutdown)),
                    Wake::TornDown => conn.handle_input(Instant::now(), ServerInput::Abort(CloseReason::Teardown)),
                    Wake::Read(woken) => wake(conn, woken.now, woken.read, &buf, woken.deadline_passed),
                    Wake::Slept(now) => conn.handle_input(now, ServerInput::Timeout),
                    Wake::MulticastEnded => {
                        if let Some(m) = membership.as_mut() {
                            m.end_told = true;
                        }
                        conn.handle_input(Instant::now(), ServerInput::MulticastEnded);
                    }
                    Wake::Datagram { socket, from, len } => {
                        let data = &datagram[..len.min(datagram.len())];
                        conn.handle_input(Instant::now(), ServerInput::Datagram { socket, from, data });
                    }
                    Wake::Live => {
                        let Some(r) = reading.as_ref() else { continue };
                        let taken = r.take();
                        let now = Instant::now();
                        if taken.overflowed {
                            reading = None;
                            conn.handle_input(now, ServerInput::Abort(CloseReason::SlowReader));
                            continue;
                        }
                        for (track, packet, received) in &taken.packets {
                            let before = conn.live_forwarded();
                            conn.handle_input(now, ServerInput::LivePacket { track: *track, packet });
                            // Bounded: a connection that writes nothing any more measures nothing.
                            if conn.live_forwarded() != before && arrivals.len() < live::MAX_BATCH * 4 {
                                arrivals.push(*received);
                            }
                        }
                        if taken.ended {
                            reading = None;
                            conn.handle_input(now, ServerInput::LiveEnded);
                        }
                    }
                }
            }
            ServerOutput::Close => break,
        }
    }
    if unsent > 0 {
        tracing::debug!(unsent, "datagrams the sockets did not take");
    }
    backchannel.finish();
    drop(reading);
    drop(publication);
    drop(registered);
    drop(membership);
    if let Some(io) = io {
        io.close().await;
    }
}

/// The live packets handed in since the last write were written (or sent) now.
fn record_latency(state: &ServerState, arrivals: &mut Vec<Instant>) {
    if arrivals.is_empty() {
        return;
    }
    let now = Instant::now();
    for at in arrivals.drain(..) {
        state.live_latency.record(now.saturating_duration_since(at));
    }
}

/// Sends a batch of datagrams: one GSO send when it holds several, else
/// one datagram. What the socket does not take is counted and dropped.
fn send_batch<U: Datagrams>(pairs: &[UdpPair<U>], batch: &SendBatch, unsent: &mut u64) {
    let socket = batch.socket();
    let Some(pair) = pairs.iter().find(|p| p.id == socket.pair) else {
        *unsent += batch.len() as u64;
        return;
    };
    let (contents, _) = batch.contents();
    let sent = match (&pair.gso, socket.rtcp, batch.len()) {
        (Some(gso), false, n) if n > 1 => gso.send(pair.rtp.sock_ref(), batch),
        _ => pair
            .socket(socket.rtcp)
            .try_send_to(contents, batch.destination())
            .map(drop),
    };
    if let Err(e) = sent {
        if *unsent == 0 {
            tracing::debug!(error = %e, to = %batch.destination(), "datagrams could not be sent; dropped");
        }
        *unsent += batch.len() as u64;
    }
}

/// One of a connection's UDP pairs.
struct UdpPair<U> {
    id: u16,
    port: u16,
    rtp: U,
    rtcp: U,
    /// GSO on the RTP socket, when the system has it (media goes out
    /// there; the RTCP socket sends one sender report at a time).
    gso: Option<Gso>,
}

impl<U> UdpPair<U> {
    fn socket(&self, rtcp: bool) -> &U {
        if rtcp {
            &self.rtcp
        } else {
            &self.rtp
        }
    }

    /// Most datagrams one send from `rtcp`'s socket may carry.
    fn max_segments(&self, rtcp: bool) -> usize {
        match (&self.gso, rtcp) {
            (Some(gso), false) => gso.max_segments(),
            _ => 1,
        }
    }
}

/// Binds pair `id` on `ip` within `range` and registers it with the runtime.
fn open_pair<U: Datagrams>(ip: IpAddr, range: Option<PortRange>, id: u16) -> io::Result<UdpPair<U>> {
    let (rtp, rtcp, port) = rtsp_toolkit_driver::udp::bind_pair(ip, range)?;
    let gso = Gso::new(socket2::SockRef::from(&rtp))
        .ok()
        .filter(|g| g.max_segments() > 1);
    Ok(UdpPair {
        id,
        port,
        rtp: U::from_std(rtp)?,
        rtcp: U::from_std(rtcp)?,
        gso,
    })
}

/// What ended a connection's wait.
enum Wake {
    /// The server is stopping.
    Stopped,
    /// A TEARDOWN on another connection named the session.
    TornDown,
    /// The TCP socket's wait ended (data, end of stream, or the deadline).
    Read(Woken),
    /// The deadline passed (no TCP socket any more), at this instant.
    Slept(Instant),
    /// The session's multicast stream ended.
    MulticastEnded,
    /// The live path read has packets waiting, ended, or dropped this reader.
    Live,
    /// A datagram of `len` bytes is in the datagram buffer.
    Datagram {
        socket: UdpSocketId,
        from: SocketAddr,
        len: usize,
    },
}

/// Waits for whatever comes first: the server's stop, a TEARDOWN from
/// another connection, the TCP socket or the deadline `at` (the runtime's
/// `read_until`, with its data-before-deadline rule; only the deadline once
/// the socket is gone), or a datagram on one of `pairs`. The stop and the
/// TCP socket or deadline are polled before the datagrams, so that no flood
/// of datagrams can hold up the media or a shutdown.
#[allow(clippy::too_many_arguments)] // the things a connection waits for, and its buffers
async fn wait<C: ConnectionIo>(
    stop: &StopSignal,
    link: Option<&SessionLink>,
    multicast_ended: Option<&StopSignal>,
    live: Option<&live::Reading>,
    io: Option<&mut C>,
    buf: &mut [u8],
    at: Instant,
    pairs: &[UdpPair<C::Udp>],
    datagram: &mut Vec<u8>,
) -> Wake {
    if !pairs.is_empty() && datagram.is_empty() {
        datagram.resize(DATAGRAM_BUFFER, 0);
    }
    let mut stopped = pin!(stop.stopped());
    let mut torn_down = pin!(async {
        match link {
            Some(link) => link.teardown.stopped().await,
            None => std::future::pending().await,
        }
    });
    let mut ended = pin!(async {
        match multicast_ended {
            Some(ended) => ended.stopped().await,
            None => std::future::pending().await,
        }
    });
    let mut socket = pin!(async {
        match io {
            Some(io) => Wake::Read(io.read_until(buf, at).await),
            None => {
                C::sleep_until(at).await;
                Wake::Slept(Instant::now())
            }
        }
    });
    poll_fn(|cx| {
        if stopped.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Wake::Stopped);
        }
        if torn_down.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Wake::TornDown);
        }
        if ended.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Wake::MulticastEnded);
        }
        if let Poll::Ready(woken) = socket.as_mut().poll(cx) {
            return Poll::Ready(woken);
        }
        if live.is_some_and(|r| r.poll_ready(cx).is_ready()) {
            return Poll::Ready(Wake::Live);
        }
        for pair in pairs {
            for rtcp in [false, true] {
                for _ in 0..RECV_ERRORS_PER_POLL {
                    match pair.socket(rtcp).poll_recv_from(cx, datagram) {
                        Poll::Ready(Ok((len, from))) => {
                            let socket = UdpSocketId { pair: pair.id, rtcp };
                            return Poll::Ready(Wake::Datagram { socket, from, len });
                        }
                        Poll::Ready(Err(e)) => tracing::trace!(error = %e, "UDP receive failed"),
                        Poll::Pending => break,
                    }
                }
            }
        }
        Poll::Pending
    })
    .await
}

/// `work`'s output, or `None` once `stop` is raised (checked first, so a
/// stop is not starved by a busy socket). Dropping `work` cancels it.
async fn unless_stopped<F: Future>(stop: &StopSignal, work: F) -> Option<F::Output> {
    let mut stopped = pin!(stop.stopped());
    let mut work = pin!(work);
    poll_fn(|cx| {
        if stopped.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        work.as_mut().poll(cx).map(Some)
    })
    .await
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
fn wake(conn: &mut Connection, now: Instant, read: Option<io::Result<usize>>, buf: &[u8], deadline_passed: bool) {
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

/// The reason to abort a connection whose write failed with `error`; logged.
fn write_failure(error: WriteError, stall: Duration) -> CloseReason {
    match error {
        WriteError::Stalled => not_reading(stall),
        WriteError::Io(e) => write_failed(&e),
        WriteError::Closed => write_failed(&io::ErrorKind::WriteZero.into()),
    }
}

/// The reason to abort a connection whose socket took no byte for `stall`
/// ([`ServerOptions::write_stall`]); logged as a warning.
fn not_reading(stall: Duration) -> CloseReason {
    tracing::warn!(stall = ?stall, "client is not reading; connection dropped");
    CloseReason::NotReading(stall)
}

/// The reason to abort a connection whose write failed; logged.
fn write_failed(error: &io::Error) -> CloseReason {
    tracing::debug!(%error, "write failed; closing");
    CloseReason::WriteFailed(error.to_string())
}

/// Logs an event of the connection machine: [`ServerEvent::FellBehind`]
/// and [`ServerEvent::DatagramsDropped`] as warnings, the client's receiver
/// reports (its loss and jitter) in a line of their own, the others at info
/// level.
fn log_event(state: &ServerState, peer: Option<SocketAddr>, event: &ServerEvent) {
    if let Some(hook) = &state.options.events {
        (hook.0)(peer, event);
    }
    match event {
        ServerEvent::FellBehind { .. } => tracing::warn!(?event, "rtsp: session fell behind its schedule"),
        ServerEvent::AuthFailed { user, reason } => tracing::warn!(
            peer = ?peer,
            user = user.as_deref().unwrap_or("-"),
            %reason,
            "rtsp: credentials refused"
        ),
        ServerEvent::DatagramsDropped { dropped, last_from } => {
            tracing::warn!(dropped, %last_from, "rtsp: datagrams from another address than the client's dropped")
        }
        ServerEvent::ReceiverReport {
            session_id,
            track,
            fraction_lost,
            cumulative_lost,
            jitter,
            sent,
            ..
        } => tracing::info!(
            session = session_id.as_str(),
            track,
            lost_percent = format_args!("{:.1}", f64::from(*fraction_lost) * 100.0 / 256.0),
            cumulative_lost,
            sent,
            jitter_ms = format_args!("{:.2}", jitter.as_secs_f64() * 1000.0),
            "rtsp: receiver report"
        ),
        _ => tracing::info!(?event, "rtsp"),
    }
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

    /// Polls `f` once.
    fn poll_once<F: Future>(f: F) -> Poll<F::Output> {
        let mut f = pin!(f);
        f.as_mut()
            .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
    }

    #[test]
    fn a_stop_wins_over_work_that_is_ready_too() {
        let stop = StopSignal::new();
        assert_eq!(poll_once(unless_stopped(&stop, async { 7 })), Poll::Ready(Some(7)));
        assert_eq!(
            poll_once(unless_stopped(&stop, std::future::pending::<()>())),
            Poll::Pending
        );
        stop.stop();
        assert_eq!(poll_once(unless_stopped(&stop, async { 7 })), Poll::Ready(None));
    }
}
