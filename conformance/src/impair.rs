//! An RTSP-aware impairment relay on loopback: loss, duplication, reordering,
//! delay and jitter between any RTSP server and any client over RTP/UDP.
//!
//! [`Relay`] listens on `127.0.0.1:0` and proxies each RTSP connection to the
//! real server. It reads the RTSP framing both ways (pipelined messages,
//! `Content-Length` bodies, interleaved `$` frames, which pass through
//! untouched) and rewrites only the `Transport` header of SETUP:
//! - in the request, the client's `client_port=a-b` becomes a pair of relay
//!   ports facing the server;
//! - in the reply, the server's `server_port=c-d` becomes a pair of relay ports
//!   facing the client, and `source=` (if present) becomes `127.0.0.1`. The
//!   client's source-address check therefore sees the relay as the server.
//!
//! A SETUP without `client_port` (interleaved TCP, multicast) passes untouched
//! and gets no track: the relay impairs unicast UDP only.
//!
//! Request URLs and every other header are forwarded byte for byte (so Digest
//! credentials stay valid); the server's `Content-Base` still names the server,
//! which is harmless because clients send SETUP on the same connection.
//!
//! Of the datagrams, only RTP from the server to the client goes through the
//! schedule ([`Impairments`]); RTCP both ways and RTP from the client to the
//! server (NAT punches) pass straight through.
//!
//! ## The schedule
//! Decisions are made per *packet index*: the 0-based count of RTP datagrams
//! the relay received from the server on one track (tracks are numbered
//! across the whole relay in the order their SETUP requests arrive). Indices
//! rather than sequence numbers, because servers pick a random first sequence
//! number and a test must be able to write "drop the 4th packet" before it
//! runs. Each decision is a pure function of `(seed, track, index)`
//! ([`Impairments::decide`]), so it does not depend on timing or on the other
//! packets, and the report translates indices back into sequence numbers.
//! - *drop*: the packet is not forwarded;
//! - *duplicate*: a second copy is sent right after the first;
//! - *reorder*: the packet is held back and sent right after the next `d`
//!   forwarded packets of its track, `d` in `1..window` (or after
//!   [`HOLD_LIMIT`] if the stream stops first);
//! - *delay* plus uniform *jitter* in `±J`: the packet is due that long after
//!   it arrived, but never before the packet received ahead of it (jitter
//!   alone does not reorder; only *reorder* does, so a test knows exactly
//!   which packets come late).
//!
//! ## The report
//! [`Relay::report`] (any time) and [`Relay::stop`] give, per track, the
//! sequence numbers received, dropped, duplicated and reordered (forwarded
//! after a packet with a higher extended sequence number), every forwarded
//! packet with its forward instant, and the interarrival jitter (RFC 3550
//! §6.4.1 and A.8, in RTP timestamp units) computed on what the relay
//! forwarded at the instants it forwarded it: the reference a client's
//! reported jitter is compared with. The clock rate is read from the SDP of
//! the DESCRIBE reply (the media whose control URL the SETUP names, else the
//! payload type's `rtpmap`, else the static payload types of RFC 3551);
//! [`TrackReport::jitter_at`] recomputes it at a rate the test gives.
//!
//! ## Example
//! ```no_run
//! use std::time::Duration;
//! use rtsp_toolkit_conformance::impair::{Impairments, Relay, RelayOptions};
//! use rtsp_toolkit_conformance::peers::GstServer;
//!
//! let gst = GstServer::start(None);
//! // 2 % loss, the 10th video packet swapped with the next, ±5 ms jitter;
//! // track 1 (audio) untouched.
//! let video = Impairments::new(42)
//!     .drop_probability(0.02)
//!     .reorder_packets([9], 2)
//!     .jitter(Duration::from_millis(5));
//! let options = RelayOptions::new(Impairments::new(42)).track(0, video);
//! let relay = Relay::start_with(([127, 0, 0, 1], gst.port).into(), options).unwrap();
//! let url = relay.url("h264_aac.mp4"); // give this to the client, over UDP
//! // ... run the client ...
//! let report = relay.stop();
//! let video = &report.tracks[0];
//! println!("dropped {:?}, reordered {:?}, jitter {:?} ticks at {:?} Hz",
//!     video.dropped, video.reordered, video.jitter, video.clock_rate);
//! ```
//! A server "whose UDP never arrives" is `Impairments::new(1).drop_probability(1.0)`
//! (RTCP still passes, and a fallback session over TCP passes untouched).
//!
//! Every thread stops within [`POLL`] of [`Relay::stop`] (or drop) and after
//! [`RelayOptions::lifetime`] at the latest; every buffer is bounded. It only
//! binds and talks to loopback. It is for tests: setup errors are returned,
//! and nothing panics on what the peers send.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often every relay thread checks whether it must stop.
pub const POLL: Duration = Duration::from_millis(20);
/// Longest a packet chosen for reordering waits for the packets it must let pass.
pub const HOLD_LIMIT: Duration = Duration::from_millis(500);
/// Default [`RelayOptions::lifetime`].
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);
/// Longest RTSP message head the relay parses; past it the connection is
/// forwarded unparsed.
const HEAD_LIMIT: usize = 64 * 1024;
/// Largest body the relay buffers to parse; past it the connection is
/// forwarded unparsed.
const BODY_LIMIT: usize = 4 * 1024 * 1024;
/// Most datagrams one track may have waiting (delayed or held); more are dropped
/// and counted in [`TrackReport::overflow`].
const QUEUE_LIMIT: usize = 100_000;
/// Most [`Forwarded`] records kept per track; the jitter figure keeps counting.
const RECORD_LIMIT: usize = 1_000_000;
const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Which packets (by index on their track) one impairment applies to: each
/// packet with this probability, plus the listed indices.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pick {
    /// Chance in `0.0..=1.0` for each packet, drawn from the seed.
    pub probability: f64,
    /// Packet indices always picked.
    pub indices: BTreeSet<u64>,
}

/// A seeded impairment schedule for the server-to-client RTP of one track.
#[derive(Debug, Clone, PartialEq)]
pub struct Impairments {
    /// Seed of every random decision.
    pub seed: u64,
    /// Packets not forwarded.
    pub drop: Pick,
    /// Packets sent twice (not applied to dropped ones).
    pub duplicate: Pick,
    /// Packets held back (not applied to dropped ones).
    pub reorder: Pick,
    /// A held packet is sent after the next `d` forwarded ones, `d` drawn in
    /// `1..window` (so `2` always swaps with the next). At least 2.
    pub reorder_window: usize,
    /// Fixed delay added to every packet.
    pub delay: Duration,
    /// Uniform jitter: each packet's delay gets an offset in `-jitter..=jitter`
    /// (the total is clamped at zero).
    pub jitter: Duration,
}

/// What the schedule does to one packet ([`Impairments::decide`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub drop: bool,
    pub duplicate: bool,
    /// Held back until this many later packets were forwarded; 0: not held.
    pub hold: usize,
    /// Fixed delay plus this packet's jitter.
    pub delay: Duration,
}

impl Default for Impairments {
    fn default() -> Self {
        Impairments::new(1)
    }
}

impl Impairments {
    /// No impairment at all (a transparent relay), with this seed.
    pub fn new(seed: u64) -> Impairments {
        Impairments {
            seed,
            drop: Pick::default(),
            duplicate: Pick::default(),
            reorder: Pick::default(),
            reorder_window: 2,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
        }
    }

    /// Drops each packet with probability `p`.
    pub fn drop_probability(mut self, p: f64) -> Self {
        self.drop.probability = p;
        self
    }

    /// Drops the packets of these indices.
    pub fn drop_packets(mut self, indices: impl IntoIterator<Item = u64>) -> Self {
        self.drop.indices.extend(indices);
        self
    }

    /// Duplicates each packet with probability `p`.
    pub fn duplicate_probability(mut self, p: f64) -> Self {
        self.duplicate.probability = p;
        self
    }

    /// Duplicates the packets of these indices.
    pub fn duplicate_packets(mut self, indices: impl IntoIterator<Item = u64>) -> Self {
        self.duplicate.indices.extend(indices);
        self
    }

    /// Holds back each packet with probability `p`, within `window` packets.
    pub fn reorder_probability(mut self, p: f64, window: usize) -> Self {
        self.reorder.probability = p;
        self.reorder_window = window.max(2);
        self
    }

    /// Holds back the packets of these indices, within `window` packets.
    pub fn reorder_packets(mut self, indices: impl IntoIterator<Item = u64>, window: usize) -> Self {
        self.reorder.indices.extend(indices);
        self.reorder_window = window.max(2);
        self
    }

    /// Delays every packet by `delay`.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Adds a uniform offset in `-jitter..=jitter` to each packet's delay.
    pub fn jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
        self
    }

    /// The decision for packet `index` of `track`: a pure function of the
    /// seed, the track and the index.
    pub fn decide(&self, track: usize, index: u64) -> Decision {
        let draw = |salt: u64| unit(mix(self.seed, track as u64, index, salt));
        let picked = |pick: &Pick, salt: u64| {
            pick.indices.contains(&index) || (pick.probability > 0.0 && draw(salt) < pick.probability)
        };
        let drop = picked(&self.drop, 1);
        let duplicate = !drop && picked(&self.duplicate, 2);
        let hold = if !drop && picked(&self.reorder, 3) {
            let span = self.reorder_window.max(2) as u64 - 1;
            1 + (mix(self.seed, track as u64, index, 4) % span) as usize
        } else {
            0
        };
        let jitter = self.jitter.as_nanos().min(u64::MAX as u128 / 4) as f64;
        let offset = (draw(5) * 2.0 - 1.0) * jitter;
        let nanos = (self.delay.as_nanos() as f64 + offset).max(0.0);
        Decision {
            drop,
            duplicate,
            hold,
            delay: Duration::from_nanos(nanos as u64),
        }
    }
}

/// splitmix64 over the decision's coordinates.
fn mix(seed: u64, track: u64, index: u64, salt: u64) -> u64 {
    let mut z = seed
        ^ track.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ index.wrapping_mul(0xc2b2_ae3d_27d4_eb4f)
        ^ salt.wrapping_mul(0x1656_67b1_9e37_79f9);
    for _ in 0..2 {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
    }
    z
}

/// A number in `0.0..1.0` from 53 bits of `x`.
fn unit(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// How a [`Relay`] runs.
#[derive(Debug, Clone)]
pub struct RelayOptions {
    /// The schedule of every track without its own entry in `tracks`.
    pub impairments: Impairments,
    /// Per-track schedules, by track index (SETUP order across the relay).
    pub tracks: HashMap<usize, Impairments>,
    /// Every thread stops after this long even if [`Relay::stop`] is never called.
    pub lifetime: Duration,
}

impl RelayOptions {
    /// `impairments` on every track, [`DEFAULT_LIFETIME`].
    pub fn new(impairments: Impairments) -> RelayOptions {
        RelayOptions {
            impairments,
            tracks: HashMap::new(),
            lifetime: DEFAULT_LIFETIME,
        }
    }

    /// Gives track `track` its own schedule.
    pub fn track(mut self, track: usize, impairments: Impairments) -> RelayOptions {
        self.tracks.insert(track, impairments);
        self
    }

    fn for_track(&self, track: usize) -> &Impairments {
        self.tracks.get(&track).unwrap_or(&self.impairments)
    }
}

/// One datagram the relay sent to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forwarded {
    pub seq: u16,
    pub timestamp: u32,
    /// When it was sent, from the relay's start.
    pub at: Duration,
    /// The second copy of a duplicated packet.
    pub copy: bool,
}

/// What the relay did on one track.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrackReport {
    /// Index across the relay, in SETUP order.
    pub track: usize,
    /// Index of the RTSP connection (accept order) that set it up.
    pub connection: usize,
    /// The SETUP request's URL.
    pub url: String,
    /// The client's own `client_port` pair.
    pub client_ports: (u16, u16),
    /// The relay's ports given to the server as `client_port`.
    pub relay_server_side: (u16, u16),
    /// The relay's ports given to the client as `server_port`.
    pub relay_client_side: (u16, u16),
    /// The server's `server_port` pair, once its SETUP reply was seen.
    pub server_ports: Option<(u16, u16)>,
    /// The SETUP reply's status code.
    pub status: Option<u16>,
    /// Clock rate from the SDP or the static payload type, once a packet came.
    pub clock_rate: Option<u32>,
    /// Sequence numbers of the RTP packets received from the server, in
    /// arrival order: position `i` is packet index `i` of the schedule.
    pub received: Vec<u16>,
    /// Sequence numbers dropped by the schedule.
    pub dropped: Vec<u16>,
    /// Sequence numbers sent twice.
    pub duplicated: Vec<u16>,
    /// Sequence numbers forwarded after a higher one (first copies only).
    pub reordered: Vec<u16>,
    /// Every datagram sent to the client, in order (up to a million).
    pub forwarded: Vec<Forwarded>,
    /// RFC 3550 interarrival jitter of the forwarded first copies, in
    /// timestamp units at `clock_rate`.
    pub jitter: Option<f64>,
    /// Datagrams on the RTP port too short or not version 2, passed through.
    pub not_rtp: u64,
    /// RTCP datagrams server → client.
    pub rtcp_to_client: u64,
    /// RTCP datagrams client → server.
    pub rtcp_to_server: u64,
    /// RTP datagrams client → server (punches).
    pub rtp_to_server: u64,
    /// Datagrams dropped because their destination was not known yet (client
    /// → server before the SETUP reply) or a send failed.
    pub unroutable: u64,
    /// Datagrams dropped because the track's queue was full.
    pub overflow: u64,
    /// Datagrams still delayed or held when the relay stopped.
    pub unsent: u64,
}

impl TrackReport {
    /// The interarrival jitter of the forwarded first copies at `clock_rate`
    /// (for a test that knows the rate better than the SDP).
    pub fn jitter_at(&self, clock_rate: u32) -> Option<f64> {
        interarrival_jitter(
            self.forwarded.iter().filter(|f| !f.copy).map(|f| (f.at, f.timestamp)),
            clock_rate,
        )
    }

    /// Sequence numbers the client was sent at least once, in first-send order.
    pub fn delivered(&self) -> Vec<u16> {
        self.forwarded.iter().filter(|f| !f.copy).map(|f| f.seq).collect()
    }
}

/// Everything the relay did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// RTSP connections accepted.
    pub connections: usize,
    /// One entry per SETUP that offered `client_port`, in order.
    pub tracks: Vec<TrackReport>,
}

/// RFC 3550 interarrival jitter (§6.4.1, A.8) of packets given as (arrival
/// instant, RTP timestamp) in arrival order, in timestamp units at
/// `clock_rate`: `J += (|D| - J) / 16` for each packet after the first, with
/// `D` the difference of consecutive transit times. `None` for fewer than two
/// packets.
pub fn interarrival_jitter(packets: impl IntoIterator<Item = (Duration, u32)>, clock_rate: u32) -> Option<f64> {
    let mut state = JitterState::default();
    for (at, ts) in packets {
        state.add(at, ts, clock_rate);
    }
    state.value()
}

#[derive(Debug, Clone, Copy, Default)]
struct JitterState {
    last: Option<(Duration, u32)>,
    jitter: f64,
    count: u64,
}

impl JitterState {
    fn add(&mut self, at: Duration, ts: u32, clock_rate: u32) {
        if let Some((last_at, last_ts)) = self.last {
            let arrival = (at.as_secs_f64() - last_at.as_secs_f64()) * f64::from(clock_rate);
            let sent = f64::from(ts.wrapping_sub(last_ts) as i32);
            let d = arrival - sent;
            self.jitter += (d.abs() - self.jitter) / 16.0;
        }
        self.last = Some((at, ts));
        self.count += 1;
    }

    fn value(&self) -> Option<f64> {
        (self.count >= 2).then_some(self.jitter)
    }
}

/// The clock rate of the static payload types of RFC 3551 §6.
fn static_clock_rate(pt: u8) -> Option<u32> {
    match pt {
        0 | 3..=5 | 7..=9 | 12 | 13 | 15 | 18 => Some(8000),
        6 => Some(16000),
        10 | 11 => Some(44100),
        16 => Some(11025),
        17 => Some(22050),
        14 | 25 | 26 | 28 | 31..=34 => Some(90000),
        _ => None,
    }
}

/// A relay between one RTSP server and its clients; stopped on drop.
#[derive(Debug)]
pub struct Relay {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    stop: AtomicBool,
    server: SocketAddr,
    options: RelayOptions,
    started: Instant,
    report: Mutex<Report>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Shared {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.started.elapsed() >= self.options.lifetime
    }

    fn report(&self) -> MutexGuard<'_, Report> {
        self.report.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn track<R>(&self, track: usize, f: impl FnOnce(&mut TrackReport) -> R) -> Option<R> {
        self.report().tracks.get_mut(track).map(f)
    }

    fn spawn(self: &Arc<Self>, f: impl FnOnce(Arc<Shared>) + Send + 'static) -> io::Result<()> {
        let shared = Arc::clone(self);
        let handle = std::thread::Builder::new()
            .name("impair-relay".into())
            .spawn(move || f(shared))?;
        self.threads.lock().unwrap_or_else(|e| e.into_inner()).push(handle);
        Ok(())
    }
}

impl Relay {
    /// A relay to the RTSP server at `server` (a loopback address), applying
    /// `impairments` to every track.
    pub fn start(server: SocketAddr, impairments: Impairments) -> io::Result<Relay> {
        Relay::start_with(server, RelayOptions::new(impairments))
    }

    /// A relay to `server` with per-track schedules and a lifetime.
    pub fn start_with(server: SocketAddr, options: RelayOptions) -> io::Result<Relay> {
        if !server.ip().is_loopback() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the impairment relay only talks to loopback",
            ));
        }
        let listener = TcpListener::bind((LOOPBACK, 0))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            server,
            options,
            started: Instant::now(),
            report: Mutex::new(Report::default()),
            threads: Mutex::new(Vec::new()),
        });
        let accept_shared = Arc::clone(&shared);
        let accept = std::thread::Builder::new()
            .name("impair-accept".into())
            .spawn(move || accept_loop(listener, accept_shared))?;
        Ok(Relay {
            addr,
            shared,
            accept: Some(accept),
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `rtsp://127.0.0.1:PORT/NAME` through the relay.
    pub fn url(&self, name: &str) -> String {
        format!("rtsp://127.0.0.1:{}/{name}", self.addr.port())
    }

    /// What the relay did so far.
    pub fn report(&self) -> Report {
        self.shared.report().clone()
    }

    /// Stops every thread (within [`POLL`]) and returns the final report.
    pub fn stop(mut self) -> Report {
        self.halt();
        self.report()
    }

    fn halt(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        // Threads may spawn threads (a connection spawns its tracks' pumps);
        // every one ends within POLL of the stop flag, so this ends too.
        for _ in 0..1000 {
            let batch: Vec<_> = std::mem::take(&mut *self.shared.threads.lock().unwrap_or_else(|e| e.into_inner()));
            if batch.is_empty() {
                break;
            }
            for handle in batch {
                let _ = handle.join();
            }
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.halt();
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    while !shared.stopping() {
        match listener.accept() {
            Ok((client, peer)) => {
                let connection = {
                    let mut report = shared.report();
                    report.connections += 1;
                    report.connections - 1
                };
                let _ = shared.spawn(move |shared| {
                    let _ = serve_connection(&shared, client, peer, connection);
                });
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(POLL / 4),
            Err(_) => std::thread::sleep(POLL / 4),
        }
    }
}

/// What a pending request (by CSeq) expects of its response.
#[derive(Debug, Clone)]
enum Pending {
    Describe {
        url: String,
    },
    Setup {
        track: usize,
        route: Arc<Route>,
        url: String,
        /// How many SETUPs this connection had before this one.
        order: usize,
    },
}

/// One RTSP connection's state shared by its two directions.
#[derive(Debug, Default)]
struct ConnState {
    pending: HashMap<String, Pending>,
    media: Vec<SdpMedia>,
    setups: usize,
}

/// A media section of the DESCRIBE reply's SDP.
#[derive(Debug, Clone, Default, PartialEq)]
struct SdpMedia {
    /// The control URL's path (absolute or relative as written).
    control: Option<String>,
    /// `rtpmap` payload type → clock rate.
    rates: Vec<(u8, u32)>,
}

/// Where a track's datagrams go once known.
#[derive(Debug, Default)]
struct Route {
    /// The server's RTP and RTCP addresses (from the SETUP reply).
    server: Mutex<Option<(SocketAddr, SocketAddr)>>,
    media: Mutex<Option<SdpMedia>>,
}

impl Route {
    fn server(&self) -> Option<(SocketAddr, SocketAddr)> {
        *self.server.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn serve_connection(shared: &Arc<Shared>, client: TcpStream, peer: SocketAddr, connection: usize) -> io::Result<()> {
    client.set_nonblocking(false)?;
    let server = TcpStream::connect_timeout(&shared.server, Duration::from_secs(5))?;
    for s in [&client, &server] {
        s.set_read_timeout(Some(POLL))?;
        s.set_write_timeout(Some(Duration::from_secs(5)))?;
        s.set_nodelay(true)?;
    }
    let state = Arc::new(Mutex::new(ConnState::default()));
    let (client_r, server_w) = (client.try_clone()?, server.try_clone()?);
    let up_state = Arc::clone(&state);
    shared.spawn(move |shared| {
        let mut dir = Direction::Up {
            peer: peer.ip(),
            connection,
        };
        pump_stream(&shared, client_r, server_w, &up_state, &mut dir);
    })?;
    let mut dir = Direction::Down;
    pump_stream(shared, server, client, &state, &mut dir);
    Ok(())
}

#[derive(Debug)]
enum Direction {
    /// Client → server: requests.
    Up { peer: IpAddr, connection: usize },
    /// Server → client: responses.
    Down,
}

/// Copies one direction of an RTSP connection, message by message,
/// rewriting what must be rewritten; at EOF shuts the other side's write half.
fn pump_stream(
    shared: &Arc<Shared>,
    mut from: TcpStream,
    mut to: TcpStream,
    state: &Arc<Mutex<ConnState>>,
    dir: &mut Direction,
) {
    let mut buf: Vec<u8> = Vec::new();
    let mut raw = false;
    let mut chunk = vec![0u8; 64 * 1024];
    while !shared.stopping() {
        let n = match from.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        if raw {
            if to.write_all(&chunk[..n]).is_err() {
                break;
            }
            continue;
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut out = Vec::new();
        let mut used = 0;
        loop {
            match next_frame(&buf[used..]) {
                Frame::Incomplete => break,
                Frame::Unparseable => {
                    raw = true;
                    out.extend_from_slice(&buf[used..]);
                    used = buf.len();
                    break;
                }
                Frame::Interleaved(len) => {
                    out.extend_from_slice(&buf[used..used + len]);
                    used += len;
                }
                Frame::Message { head, body } => {
                    let message = &buf[used..used + head + body];
                    let rewritten = match dir {
                        Direction::Up { peer, connection } => {
                            on_request(shared, state, *peer, *connection, message, head)
                        }
                        Direction::Down => on_response(shared, state, message, head),
                    };
                    match rewritten {
                        Some(bytes) => out.extend_from_slice(&bytes),
                        None => out.extend_from_slice(message),
                    }
                    used += head + body;
                }
            }
        }
        buf.drain(..used);
        if to.write_all(&out).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    if shared.stopping() {
        let _ = from.shutdown(Shutdown::Both);
    }
}

/// The next unit of an RTSP byte stream.
#[derive(Debug, PartialEq, Eq)]
enum Frame {
    Incomplete,
    /// Not RTSP as far as the relay can tell, or too large to buffer.
    Unparseable,
    /// A `$` frame of this total length.
    Interleaved(usize),
    /// A message: head length (through the blank line) and body length.
    Message {
        head: usize,
        body: usize,
    },
}

fn next_frame(buf: &[u8]) -> Frame {
    if buf.is_empty() {
        return Frame::Incomplete;
    }
    if buf[0] == b'$' {
        if buf.len() < 4 {
            return Frame::Incomplete;
        }
        let len = 4 + usize::from(u16::from_be_bytes([buf[2], buf[3]]));
        return if buf.len() < len {
            Frame::Incomplete
        } else {
            Frame::Interleaved(len)
        };
    }
    // Blank lines between messages are allowed (RFC 2326 §4): pass them on.
    if buf[0] == b'\r' || buf[0] == b'\n' {
        let blank = buf.iter().take_while(|&&b| b == b'\r' || b == b'\n').count();
        return Frame::Message { head: blank, body: 0 };
    }
    let Some(head) = head_end(&buf[..buf.len().min(HEAD_LIMIT)]) else {
        return if buf.len() >= HEAD_LIMIT {
            Frame::Unparseable
        } else {
            Frame::Incomplete
        };
    };
    let text = String::from_utf8_lossy(&buf[..head]);
    let body = header(&text, "content-length")
        .map(|v| v.trim().parse::<usize>())
        .unwrap_or(Ok(0));
    match body {
        Ok(body) if body <= BODY_LIMIT => {
            if buf.len() < head + body {
                Frame::Incomplete
            } else {
                Frame::Message { head, body }
            }
        }
        _ => Frame::Unparseable,
    }
}

/// Length of the head through its blank line (`\r\n\r\n`, or a bare `\n\n`).
fn head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4);
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|p| p + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The value of the first header called `name` (case-insensitive).
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

/// `head` with the value of every `Transport` header mapped by `f`.
fn map_transport(head: &str, mut f: impl FnMut(&str) -> String) -> String {
    let mut out = String::with_capacity(head.len() + 32);
    for line in head.split_inclusive('\n') {
        let (content, ending) = split_ending(line);
        match content.split_once(':') {
            Some((name, value)) if name.trim().eq_ignore_ascii_case("transport") => {
                out.push_str(name);
                out.push_str(": ");
                out.push_str(&f(value.trim()));
                out.push_str(ending);
            }
            _ => out.push_str(line),
        }
    }
    out
}

fn split_ending(line: &str) -> (&str, &str) {
    if let Some(c) = line.strip_suffix("\r\n") {
        (c, "\r\n")
    } else if let Some(c) = line.strip_suffix('\n') {
        (c, "\n")
    } else {
        (line, "")
    }
}

/// Rewrites a `Transport` value: every `key=a[-b]` parameter becomes
/// `key=p-q` and, with `source`, every `source=` becomes `source=127.0.0.1`.
/// Returns the new value and the first pair it replaced (`b` defaults to `a + 1`).
pub fn rewrite_transport(value: &str, key: &str, ports: (u16, u16), source: bool) -> (String, Option<(u16, u16)>) {
    let mut found = None;
    let specs: Vec<String> = value
        .split(',')
        .map(|spec| {
            let params: Vec<String> = spec
                .split(';')
                .map(|param| {
                    let (name, val) = match param.split_once('=') {
                        Some((n, v)) => (n.trim(), Some(v.trim())),
                        None => return param.to_string(),
                    };
                    if name.eq_ignore_ascii_case(key) {
                        if let (Some(pair), None) = (val.and_then(parse_pair), found) {
                            found = Some(pair);
                        }
                        return format!("{name}={}-{}", ports.0, ports.1);
                    }
                    if source && name.eq_ignore_ascii_case("source") {
                        return format!("{name}=127.0.0.1");
                    }
                    param.to_string()
                })
                .collect();
            params.join(";")
        })
        .collect();
    (specs.join(","), found)
}

fn parse_pair(v: &str) -> Option<(u16, u16)> {
    match v.split_once('-') {
        Some((a, b)) => Some((a.trim().parse().ok()?, b.trim().parse().ok()?)),
        None => {
            let a: u16 = v.trim().parse().ok()?;
            Some((a, a.checked_add(1)?))
        }
    }
}

/// Whether a `Transport` value offers `key=` in any of its alternatives.
fn has_param(value: &str, key: &str) -> bool {
    value.split([',', ';']).any(|p| {
        p.split_once('=')
            .is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case(key))
    })
}

fn state_lock(state: &Mutex<ConnState>) -> MutexGuard<'_, ConnState> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// A request from the client: records DESCRIBE and SETUP by CSeq, and gives
/// a SETUP with `client_port` its relay track. `Some` when rewritten.
fn on_request(
    shared: &Arc<Shared>,
    state: &Arc<Mutex<ConnState>>,
    peer: IpAddr,
    connection: usize,
    message: &[u8],
    head: usize,
) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(&message[..head]).ok()?;
    let mut first = text.lines().next()?.split_whitespace();
    let (method, url) = (first.next()?, first.next()?.to_string());
    let cseq = header(text, "cseq")?.to_string();
    if method.eq_ignore_ascii_case("DESCRIBE") {
        state_lock(state).pending.insert(cseq, Pending::Describe { url });
        return None;
    }
    if !method.eq_ignore_ascii_case("SETUP") {
        return None;
    }
    let transport = header(text, "transport")?;
    if !has_param(transport, "client_port") {
        return None;
    }
    let order = {
        let mut st = state_lock(state);
        st.setups += 1;
        st.setups - 1
    };
    let (track, route, server_side) = match new_track(shared, peer, connection, &url, transport) {
        Ok(t) => t,
        Err(_) => return None,
    };
    state_lock(state).pending.insert(
        cseq,
        Pending::Setup {
            track,
            route: Arc::clone(&route),
            url,
            order,
        },
    );
    let new_head = map_transport(text, |v| rewrite_transport(v, "client_port", server_side, false).0);
    let mut out = new_head.into_bytes();
    out.extend_from_slice(&message[head..]);
    Some(out)
}

/// A response from the server: parses DESCRIBE's SDP, and rewrites SETUP's
/// `server_port` and `source`. `Some` when rewritten.
fn on_response(shared: &Arc<Shared>, state: &Arc<Mutex<ConnState>>, message: &[u8], head: usize) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(&message[..head]).ok()?;
    let status_line = text.lines().next()?;
    if !status_line.starts_with("RTSP/") {
        return None;
    }
    let status: Option<u16> = status_line.split_whitespace().nth(1).and_then(|s| s.parse().ok());
    let cseq = header(text, "cseq")?;
    let pending = state_lock(state).pending.remove(cseq)?;
    match pending {
        Pending::Describe { url } => {
            let base = header(text, "content-base")
                .or_else(|| header(text, "content-location"))
                .map(str::to_string)
                .unwrap_or(url);
            let sdp = String::from_utf8_lossy(&message[head..]);
            state_lock(state).media = parse_sdp(&sdp, &base);
            None
        }
        Pending::Setup {
            track,
            route,
            url,
            order,
        } => {
            // Resolved here, not at the request: a client may pipeline its
            // SETUPs before the DESCRIBE reply came back.
            let media = {
                let st = state_lock(state);
                let path = url_path(&url);
                let by_control = st.media.iter().find(|m| m.control.as_deref() == Some(path));
                by_control.or(st.media.get(order)).cloned()
            };
            *route.media.lock().unwrap_or_else(|e| e.into_inner()) = media;
            shared.track(track, |t| t.status = status);
            let transport = header(text, "transport")?;
            let relay_side = shared.track(track, |t| t.relay_client_side)?;
            let (value, server_ports) = rewrite_transport(transport, "server_port", relay_side, true);
            if let Some((rtp, rtcp)) = server_ports {
                let ip = shared.server.ip();
                *route.server.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some((SocketAddr::new(ip, rtp), SocketAddr::new(ip, rtcp)));
                shared.track(track, |t| t.server_ports = Some((rtp, rtcp)));
            }
            let mut out = map_transport(text, |_| value.clone()).into_bytes();
            out.extend_from_slice(&message[head..]);
            Some(out)
        }
    }
}

/// The media sections of an SDP, their control URLs resolved against `base`
/// and reduced to paths.
fn parse_sdp(sdp: &str, base: &str) -> Vec<SdpMedia> {
    let mut media: Vec<SdpMedia> = Vec::new();
    for line in sdp.lines().take(10_000) {
        let line = line.trim();
        if line.starts_with("m=") {
            media.push(SdpMedia::default());
            continue;
        }
        let Some(m) = media.last_mut() else { continue };
        if let Some(control) = line.strip_prefix("a=control:") {
            let control = control.trim();
            let full = if control.contains("://") {
                control.to_string()
            } else if base.ends_with('/') {
                format!("{base}{control}")
            } else {
                format!("{base}/{control}")
            };
            m.control = Some(url_path(&full).to_string());
        } else if let Some(map) = line.strip_prefix("a=rtpmap:") {
            let mut it = map.split_whitespace();
            let pt = it.next().and_then(|p| p.parse::<u8>().ok());
            let rate = it
                .next()
                .and_then(|enc| enc.split('/').nth(1))
                .and_then(|r| r.parse::<u32>().ok());
            if let (Some(pt), Some(rate)) = (pt, rate) {
                m.rates.push((pt, rate));
            }
        }
    }
    media
}

/// The path of an `rtsp://host/path` URL, without a trailing `/`.
fn url_path(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let path = rest.find('/').map_or("", |i| &rest[i..]);
    path.trim_end_matches('/')
}

/// Binds an even/odd pair of consecutive UDP ports on loopback.
fn bind_pair() -> io::Result<(UdpSocket, UdpSocket)> {
    let mut last = io::Error::new(io::ErrorKind::AddrInUse, "no free even/odd port pair");
    for _ in 0..200 {
        let rtp = UdpSocket::bind((LOOPBACK, 0))?;
        let port = rtp.local_addr()?.port();
        if port % 2 != 0 || port == u16::MAX {
            continue;
        }
        match UdpSocket::bind((LOOPBACK, port + 1)) {
            Ok(rtcp) => return Ok((rtp, rtcp)),
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn ports(pair: &(UdpSocket, UdpSocket)) -> io::Result<(u16, u16)> {
    Ok((pair.0.local_addr()?.port(), pair.1.local_addr()?.port()))
}

/// A new track for a SETUP offering `client_port`: two relay port pairs and
/// the four threads that move its datagrams. Returns its index, its route and
/// the pair to give the server.
fn new_track(
    shared: &Arc<Shared>,
    peer: IpAddr,
    connection: usize,
    url: &str,
    transport: &str,
) -> io::Result<(usize, Arc<Route>, (u16, u16))> {
    let client_ports = transport
        .split([',', ';'])
        .find_map(|p| {
            let (n, v) = p.split_once('=')?;
            n.trim().eq_ignore_ascii_case("client_port").then(|| parse_pair(v))?
        })
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad client_port"))?;
    let server_side = bind_pair()?;
    let client_side = bind_pair()?;
    let (server_ports, client_side_ports) = (ports(&server_side)?, ports(&client_side)?);
    let route = Arc::new(Route {
        server: Mutex::new(None),
        media: Mutex::new(None),
    });
    let track = {
        let mut report = shared.report();
        let track = report.tracks.len();
        report.tracks.push(TrackReport {
            track,
            connection,
            url: url.to_string(),
            client_ports,
            relay_server_side: server_ports,
            relay_client_side: client_side_ports,
            ..TrackReport::default()
        });
        track
    };
    let to_client = (
        SocketAddr::new(peer, client_ports.0),
        SocketAddr::new(peer, client_ports.1),
    );
    let (s_rtp, s_rtcp) = server_side;
    let (c_rtp, c_rtcp) = client_side;
    for s in [&s_rtp, &s_rtcp, &c_rtp, &c_rtcp] {
        s.set_read_timeout(Some(POLL))?;
    }
    // Server → client RTCP.
    let (from, to) = (s_rtcp.try_clone()?, c_rtcp.try_clone()?);
    shared.spawn(move |sh| pass_through(&sh, track, from, to, |_| Some(to_client.1), |t| &mut t.rtcp_to_client))?;
    // Client → server RTCP and RTP.
    let r = Arc::clone(&route);
    shared.spawn(move |sh| {
        pass_through(
            &sh,
            track,
            c_rtcp,
            s_rtcp,
            |_| r.server().map(|s| s.1),
            |t| &mut t.rtcp_to_server,
        )
    })?;
    let (from, to, r) = (c_rtp.try_clone()?, s_rtp.try_clone()?, Arc::clone(&route));
    shared.spawn(move |sh| {
        pass_through(
            &sh,
            track,
            from,
            to,
            |_| r.server().map(|s| s.0),
            |t| &mut t.rtp_to_server,
        )
    })?;
    // Server → client RTP, through the schedule.
    let r = Arc::clone(&route);
    shared.spawn(move |sh| impair_rtp(&sh, track, s_rtp, c_rtp, to_client.0, &r))?;
    Ok((track, route, server_ports))
}

/// Forwards every datagram received on `from` out of `to` to `dest()`,
/// counting it in the report field `count`.
fn pass_through(
    shared: &Shared,
    track: usize,
    from: UdpSocket,
    to: UdpSocket,
    dest: impl Fn(&SocketAddr) -> Option<SocketAddr>,
    count: impl Fn(&mut TrackReport) -> &mut u64,
) {
    let mut buf = vec![0u8; 65_536];
    while !shared.stopping() {
        let (n, src) = match from.recv_from(&mut buf) {
            Ok(r) => r,
            Err(_) => continue,
        };
        match dest(&src) {
            Some(d) if to.send_to(&buf[..n], d).is_ok() => {
                shared.track(track, |t| *count(t) += 1);
            }
            _ => {
                shared.track(track, |t| t.unroutable += 1);
            }
        }
    }
}

/// One datagram on its way to the client.
#[derive(Debug)]
struct Queued {
    due: Instant,
    data: Vec<u8>,
    rtp: Option<(u16, u32)>,
    copy: bool,
}

/// A datagram held back for reordering.
#[derive(Debug)]
struct Held {
    remaining: usize,
    since: Instant,
    packets: Vec<Queued>,
}

/// The RTP fields the relay uses: payload type, sequence number, timestamp.
fn rtp_fields(data: &[u8]) -> Option<(u8, u16, u32)> {
    if data.len() < 12 || data[0] >> 6 != 2 {
        return None;
    }
    Some((
        data[1] & 0x7f,
        u16::from_be_bytes([data[2], data[3]]),
        u32::from_be_bytes([data[4], data[5], data[6], data[7]]),
    ))
}

/// Per-track state of what was forwarded.
#[derive(Debug, Default)]
struct Sent {
    jitter: JitterState,
    last_ext: Option<i64>,
    max_ext: Option<i64>,
}

impl Sent {
    /// Extends `seq` to the value nearest the last one.
    fn extend(&mut self, seq: u16) -> i64 {
        let ext = match self.last_ext {
            None => i64::from(seq),
            Some(last) => last + i64::from(seq.wrapping_sub(last as u16) as i16),
        };
        self.last_ext = Some(ext);
        ext
    }
}

/// Server → client RTP of one track, through its schedule.
fn impair_rtp(shared: &Shared, track: usize, from: UdpSocket, to: UdpSocket, dest: SocketAddr, route: &Route) {
    let plan = shared.options.for_track(track).clone();
    let mut buf = vec![0u8; 65_536];
    let mut queue: VecDeque<Queued> = VecDeque::new();
    let mut held: Vec<Held> = Vec::new();
    let mut index: u64 = 0;
    let mut last_due: Option<Instant> = None;
    let mut sent = Sent::default();
    let mut clock_rate: Option<u32> = None;
    while !shared.stopping() {
        let now = Instant::now();
        // Held packets whose followers never came.
        let mut i = 0;
        while i < held.len() {
            if now.duration_since(held[i].since) >= HOLD_LIMIT {
                let h = held.remove(i);
                for mut q in h.packets {
                    q.due = last_due.map_or(now, |d| d.max(now));
                    queue.push_back(q);
                }
            } else {
                i += 1;
            }
        }
        // Everything due.
        while queue.front().is_some_and(|q| q.due <= Instant::now()) {
            let Some(q) = queue.pop_front() else { break };
            send_one(shared, track, &to, dest, q, &mut sent, clock_rate);
        }
        let now = Instant::now();
        let wait = queue
            .front()
            .map_or(POLL, |q| q.due.saturating_duration_since(now))
            .clamp(Duration::from_micros(200), POLL);
        let _ = from.set_read_timeout(Some(wait));
        let (n, _src) = match from.recv_from(&mut buf) {
            Ok(r) => r,
            Err(_) => continue,
        };
        let arrived = Instant::now();
        let data = buf[..n].to_vec();
        let Some((pt, seq, ts)) = rtp_fields(&data) else {
            shared.track(track, |t| t.not_rtp += 1);
            let _ = to.send_to(&data, dest);
            continue;
        };
        if clock_rate.is_none() {
            clock_rate = rate_for(route, pt);
            shared.track(track, |t| t.clock_rate = clock_rate);
        }
        let decision = plan.decide(track, index);
        index += 1;
        shared.track(track, |t| {
            t.received.push(seq);
            if decision.drop {
                t.dropped.push(seq);
            }
        });
        if decision.drop {
            continue;
        }
        if queue.len() + held.len() >= QUEUE_LIMIT {
            shared.track(track, |t| t.overflow += 1);
            continue;
        }
        let due = last_due.map_or(arrived + decision.delay, |d| d.max(arrived + decision.delay));
        last_due = Some(due);
        let mut packets = vec![Queued {
            due,
            data: data.clone(),
            rtp: Some((seq, ts)),
            copy: false,
        }];
        if decision.duplicate {
            packets.push(Queued {
                due,
                data,
                rtp: Some((seq, ts)),
                copy: true,
            });
        }
        // This packet lets each held one advance; those done follow it.
        let mut released = Vec::new();
        let mut i = 0;
        while i < held.len() {
            held[i].remaining -= 1;
            if held[i].remaining == 0 {
                released.push(held.remove(i));
            } else {
                i += 1;
            }
        }
        if decision.hold > 0 {
            held.push(Held {
                remaining: decision.hold,
                since: arrived,
                packets,
            });
        } else {
            queue.extend(packets);
        }
        for h in released {
            for mut q in h.packets {
                q.due = due;
                queue.push_back(q);
            }
        }
    }
    let unsent = queue.len() + held.iter().map(|h| h.packets.len()).sum::<usize>();
    shared.track(track, |t| t.unsent += unsent as u64);
}

/// The clock rate for payload type `pt` on a track: its SDP media's
/// `rtpmap` (the only one if there is one), else the static table.
fn rate_for(route: &Route, pt: u8) -> Option<u32> {
    let media = route.media.lock().unwrap_or_else(|e| e.into_inner());
    let from_sdp = media.as_ref().and_then(|m| {
        m.rates
            .iter()
            .find(|(p, _)| *p == pt)
            .or(if m.rates.len() == 1 { m.rates.first() } else { None })
            .map(|(_, r)| *r)
    });
    from_sdp.or_else(|| static_clock_rate(pt))
}

fn send_one(
    shared: &Shared,
    track: usize,
    to: &UdpSocket,
    dest: SocketAddr,
    q: Queued,
    sent: &mut Sent,
    clock_rate: Option<u32>,
) {
    if to.send_to(&q.data, dest).is_err() {
        shared.track(track, |t| t.unroutable += 1);
        return;
    }
    let at = shared.started.elapsed();
    let Some((seq, ts)) = q.rtp else { return };
    let mut reordered = false;
    if !q.copy {
        let ext = sent.extend(seq);
        reordered = sent.max_ext.is_some_and(|m| ext < m);
        sent.max_ext = Some(sent.max_ext.map_or(ext, |m| m.max(ext)));
        if let Some(rate) = clock_rate {
            sent.jitter.add(at, ts, rate);
        }
    }
    shared.track(track, |t| {
        if t.forwarded.len() < RECORD_LIMIT {
            t.forwarded.push(Forwarded {
                seq,
                timestamp: ts,
                at,
                copy: q.copy,
            });
        }
        if q.copy {
            t.duplicated.push(seq);
        }
        if reordered {
            t.reordered.push(seq);
        }
        t.jitter = sent.jitter.value();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_secs(5);

    #[test]
    fn rewrites_client_port_server_port_and_source() {
        let (v, old) = rewrite_transport(
            "RTP/AVP;unicast;client_port=5000-5001,RTP/AVP/TCP;unicast;interleaved=0-1",
            "client_port",
            (40000, 40001),
            false,
        );
        assert_eq!(
            v,
            "RTP/AVP;unicast;client_port=40000-40001,RTP/AVP/TCP;unicast;interleaved=0-1"
        );
        assert_eq!(old, Some((5000, 5001)));

        let (v, old) = rewrite_transport(
            "RTP/AVP;unicast;Client_Port=5000;server_port=6970-6971;source=10.1.2.3;ssrc=1A2B3C4D",
            "server_port",
            (41000, 41001),
            true,
        );
        assert_eq!(
            v,
            "RTP/AVP;unicast;Client_Port=5000;server_port=41000-41001;source=127.0.0.1;ssrc=1A2B3C4D"
        );
        assert_eq!(old, Some((6970, 6971)));
        assert_eq!(parse_pair("5000"), Some((5000, 5001)));
        assert_eq!(parse_pair("x-1"), None);

        let head = "SETUP rtsp://h/a RTSP/1.0\r\nCSeq: 3\r\ntransport:RTP/AVP;client_port=8-9\r\n\r\n";
        let out = map_transport(head, |v| rewrite_transport(v, "client_port", (2, 3), false).0);
        assert_eq!(
            out,
            "SETUP rtsp://h/a RTSP/1.0\r\nCSeq: 3\r\ntransport: RTP/AVP;client_port=2-3\r\n\r\n"
        );
    }

    #[test]
    fn frames_pipelined_messages_bodies_and_interleaved_data() {
        let mut bytes = b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n".to_vec();
        bytes.extend_from_slice(b"$\x01\x00\x03abc");
        bytes.extend_from_slice(b"SET_PARAMETER * RTSP/1.0\r\nContent-Length: 4\r\n\r\nx: y");
        assert_eq!(next_frame(&bytes), Frame::Message { head: 31, body: 0 });
        assert_eq!(next_frame(&bytes[31..]), Frame::Interleaved(7));
        assert_eq!(next_frame(&bytes[38..]), Frame::Message { head: 47, body: 4 });
        assert_eq!(next_frame(&bytes[38..bytes.len() - 1]), Frame::Incomplete);
        assert_eq!(next_frame(b"$\x00\x00"), Frame::Incomplete);
        assert_eq!(next_frame(&[b'A'; HEAD_LIMIT]), Frame::Unparseable);
        assert_eq!(
            next_frame(b"X RTSP/1.0\r\nContent-Length: 99999999999\r\n\r\n"),
            Frame::Unparseable
        );
    }

    #[test]
    fn decisions_are_pure_and_follow_the_schedule() {
        let plan = Impairments::new(7)
            .drop_probability(0.1)
            .duplicate_probability(0.05)
            .reorder_probability(0.05, 4)
            .drop_packets([3])
            .jitter(Duration::from_millis(10))
            .delay(Duration::from_millis(5));
        let n = 20_000;
        let decisions: Vec<Decision> = (0..n).map(|i| plan.decide(0, i)).collect();
        assert_eq!(decisions, (0..n).map(|i| plan.decide(0, i)).collect::<Vec<_>>());
        assert_ne!(decisions, (0..n).map(|i| plan.decide(1, i)).collect::<Vec<_>>());
        assert!(decisions[3].drop);
        let frac = |f: &dyn Fn(&Decision) -> bool| decisions.iter().filter(|d| f(d)).count() as f64 / n as f64;
        assert!((frac(&|d| d.drop) - 0.1).abs() < 0.01);
        assert!((frac(&|d| d.duplicate) - 0.045).abs() < 0.01);
        assert!((frac(&|d| d.hold > 0) - 0.045).abs() < 0.01);
        assert!(decisions
            .iter()
            .all(|d| d.hold <= 3 && !(d.drop && (d.duplicate || d.hold > 0))));
        assert!(decisions.iter().all(|d| d.delay <= Duration::from_millis(15)));
        assert!(decisions.iter().any(|d| d.delay < Duration::from_millis(1)));
        let none = Impairments::new(7);
        assert!((0..1000).all(|i| none.decide(0, i)
            == Decision {
                drop: false,
                duplicate: false,
                hold: 0,
                delay: Duration::ZERO
            }));
    }

    #[test]
    fn jitter_of_a_known_delay_pattern() {
        // 20 ms packets at 8 kHz (160 ticks), delayed alternately 0 and 10 ms:
        // every transit difference is ±80 ticks, so after n differences
        // J = 80 (1 - (15/16)^n).
        let ms = Duration::from_millis;
        let packets: Vec<(Duration, u32)> = (0..100u32)
            .map(|i| {
                (
                    ms(20 * u64::from(i) + 10 * u64::from(i % 2)),
                    (u32::MAX - 500).wrapping_add(160 * i),
                )
            })
            .collect();
        let j = interarrival_jitter(packets.iter().copied(), 8000).unwrap();
        let expected = 80.0 * (1.0 - (15.0f64 / 16.0).powi(99));
        assert!((j - expected).abs() < 1e-6, "{j} vs {expected}");
        // A constant delay is no jitter.
        let steady = (0..50u32).map(|i| (ms(7 + 20 * u64::from(i)), 160 * i));
        assert!(interarrival_jitter(steady, 8000).unwrap().abs() < 1e-6);
        assert_eq!(interarrival_jitter([(ms(1), 5)], 8000), None);
    }

    /// Reads `count` frames (messages or `$` frames) from `s`.
    fn read_frames(s: &mut TcpStream, count: usize) -> Vec<Vec<u8>> {
        s.set_read_timeout(Some(WAIT)).unwrap();
        let (mut buf, mut out, mut chunk) = (Vec::new(), Vec::new(), [0u8; 4096]);
        for _ in 0..1000 {
            loop {
                let len = match next_frame(&buf) {
                    Frame::Message { head, body } => head + body,
                    Frame::Interleaved(len) => len,
                    _ => break,
                };
                out.push(buf.drain(..len).collect());
            }
            if out.len() >= count {
                return out;
            }
            let n = s.read(&mut chunk).expect("read within the timeout");
            assert!(n > 0, "closed after {} frames", out.len());
            buf.extend_from_slice(&chunk[..n]);
        }
        panic!("too many reads");
    }

    fn transport_of(message: &[u8]) -> String {
        let text = String::from_utf8_lossy(message);
        header(&text, "transport").unwrap().to_string()
    }

    fn pair_of(transport: &str, key: &str) -> (u16, u16) {
        transport
            .split([';', ','])
            .find_map(|p| p.strip_prefix(&format!("{key}=")).and_then(parse_pair))
            .unwrap()
    }

    fn udp_pair() -> (UdpSocket, UdpSocket) {
        let pair = bind_pair().unwrap();
        pair.0.set_read_timeout(Some(WAIT)).unwrap();
        pair.1.set_read_timeout(Some(WAIT)).unwrap();
        pair
    }

    /// A fake server and client, a SETUP done through the relay.
    struct Session {
        relay: Relay,
        server_udp: (UdpSocket, UdpSocket),
        client_udp: (UdpSocket, UdpSocket),
        /// The relay's ports as the server was told (`client_port`).
        relay_server_side: (u16, u16),
        /// The relay's ports as the client was told (`server_port`).
        relay_client_side: (u16, u16),
        _tcp: (TcpStream, TcpStream),
    }

    fn session(options: RelayOptions) -> Session {
        let listener = TcpListener::bind((LOOPBACK, 0)).unwrap();
        let server_addr = listener.local_addr().unwrap();
        let relay = Relay::start_with(server_addr, options).unwrap();
        let server_udp = udp_pair();
        let client_udp = udp_pair();
        let cp = ports(&client_udp).unwrap();
        let sp = ports(&server_udp).unwrap();

        let options = b"OPTIONS rtsp://127.0.0.1/m RTSP/1.0\r\nCSeq: 1\r\n\r\n".to_vec();
        let describe = b"DESCRIBE rtsp://127.0.0.1/m RTSP/1.0\r\nCSeq: 2\r\n\r\n".to_vec();
        let set_parameter =
            b"SET_PARAMETER rtsp://127.0.0.1/m RTSP/1.0\r\nCSeq: 3\r\nContent-Length: 24\r\n\r\nclient_port=1-2\r\nSETUP\r\n"
                .to_vec();
        let frame = b"$\x00\x00\x05hello".to_vec();
        let setup = format!(
            "SETUP rtsp://127.0.0.1:{}/m/trackID=0 RTSP/1.0\r\nCSeq: 4\r\n\
             Transport: RTP/AVP;unicast;client_port={}-{},RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n",
            relay.addr().port(),
            cp.0,
            cp.1
        )
        .into_bytes();
        let mut client = TcpStream::connect(relay.addr()).unwrap();
        let all = [&options[..], &describe, &set_parameter, &frame, &setup];
        client.write_all(&all.concat()).unwrap();

        listener.set_nonblocking(false).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        let got = read_frames(&mut server, 5);
        // Everything but SETUP's Transport passes unchanged.
        assert_eq!(got[..4], [options, describe, set_parameter, frame]);
        let sent_transport = transport_of(&got[4]);
        let relay_server_side = pair_of(&sent_transport, "client_port");
        assert_ne!(relay_server_side, cp);
        assert_eq!(relay_server_side.0 % 2, 0);
        assert_eq!(relay_server_side.1, relay_server_side.0 + 1);
        assert!(sent_transport.ends_with(",RTP/AVP/TCP;unicast;interleaved=0-1"));
        assert_eq!(
            String::from_utf8_lossy(&got[4]).replace(&sent_transport, "T"),
            String::from_utf8_lossy(&setup).replace(&transport_of(&setup), "T")
        );

        let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=t\r\nt=0 0\r\na=control:*\r\n\
                   m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:trackID=0\r\n\
                   m=audio 0 RTP/AVP 8\r\na=control:trackID=1\r\n";
        let replies = [
            b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nPublic: OPTIONS, DESCRIBE, SETUP\r\n\r\n".to_vec(),
            format!(
                "RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Base: rtsp://127.0.0.1:{}/m/\r\n\
                 Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
                server_addr.port(),
                sdp.len()
            )
            .into_bytes(),
            b"RTSP/1.0 200 OK\r\nCSeq: 3\r\n\r\n".to_vec(),
            b"$\x01\x00\x02hi".to_vec(),
            format!(
                "RTSP/1.0 200 OK\r\nCSeq: 4\r\nSession: 77;timeout=60\r\nTransport: \
                 RTP/AVP;unicast;client_port={}-{};server_port={}-{};source=10.9.8.7;ssrc=00ABCDEF\r\n\r\n",
                relay_server_side.0, relay_server_side.1, sp.0, sp.1
            )
            .into_bytes(),
        ];
        server.write_all(&replies.concat()).unwrap();
        let back = read_frames(&mut client, 5);
        assert_eq!(back[..4], replies[..4]);
        let reply_transport = transport_of(&back[4]);
        let relay_client_side = pair_of(&reply_transport, "server_port");
        assert_ne!(relay_client_side, sp);
        assert_eq!(
            reply_transport,
            format!(
                "RTP/AVP;unicast;client_port={}-{};server_port={}-{};source=127.0.0.1;ssrc=00ABCDEF",
                relay_server_side.0, relay_server_side.1, relay_client_side.0, relay_client_side.1
            )
        );
        let report = relay.report();
        assert_eq!(report.connections, 1);
        assert_eq!(report.tracks.len(), 1);
        let t = &report.tracks[0];
        assert_eq!((t.client_ports, t.server_ports, t.status), (cp, Some(sp), Some(200)));
        assert_eq!(
            (t.relay_server_side, t.relay_client_side),
            (relay_server_side, relay_client_side)
        );
        Session {
            relay,
            server_udp,
            client_udp,
            relay_server_side,
            relay_client_side,
            _tcp: (client, server),
        }
    }

    fn rtp(seq: u16, ts: u32) -> Vec<u8> {
        let mut p = vec![0x80, 96];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
        p.extend_from_slice(b"payload");
        p
    }

    impl Session {
        /// Sends `n` RTP packets from the server on a thread (the client
        /// receives meanwhile: its socket buffer would not hold them all),
        /// `gap` apart, seq from `seq0`, 1800 ticks apart.
        fn send(&self, seq0: u16, n: u16, gap: Duration) {
            let to = (LOOPBACK, self.relay_server_side.0);
            let socket = self.server_udp.0.try_clone().unwrap();
            std::thread::spawn(move || {
                for i in 0..n {
                    let p = rtp(seq0.wrapping_add(i), 1800 * u32::from(i));
                    socket.send_to(&p, to).unwrap();
                    std::thread::sleep(gap);
                }
            });
        }

        /// Receives `n` datagrams at the client (checking their source).
        fn receive(&self, n: usize) -> Vec<u16> {
            let mut buf = [0u8; 2048];
            (0..n)
                .map(|_| {
                    let (len, from) = self.client_udp.0.recv_from(&mut buf).expect("a datagram");
                    assert_eq!(from, SocketAddr::new(LOOPBACK, self.relay_client_side.0));
                    rtp_fields(&buf[..len]).unwrap().1
                })
                .collect()
        }

        fn nothing_more(&self) {
            self.client_udp
                .0
                .set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let mut buf = [0u8; 2048];
            assert!(self.client_udp.0.recv_from(&mut buf).is_err(), "an unexpected datagram");
        }
    }

    #[test]
    fn drops_duplicates_and_reorders_exactly_as_scheduled_and_reported() {
        let plan = Impairments::new(3)
            .drop_packets([3, 7])
            .duplicate_packets([5])
            .reorder_packets([10], 2);
        let s = session(RelayOptions::new(plan));
        let seq = |i: u16| 65530u16.wrapping_add(i);
        s.send(seq(0), 20, Duration::from_millis(2));
        let order = [0, 1, 2, 4, 5, 5, 6, 8, 9, 11, 10, 12, 13, 14, 15, 16, 17, 18, 19];
        let expected: Vec<u16> = order.iter().map(|&i| seq(i)).collect();
        assert_eq!(s.receive(expected.len()), expected);
        s.nothing_more();

        // RTCP both ways and the client's RTP punch pass straight through.
        let mut buf = [0u8; 64];
        s.client_udp
            .1
            .send_to(b"rr", (LOOPBACK, s.relay_client_side.1))
            .unwrap();
        let (n, from) = s.server_udp.1.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from.port()), (&b"rr"[..], s.relay_server_side.1));
        s.server_udp
            .1
            .send_to(b"sr", (LOOPBACK, s.relay_server_side.1))
            .unwrap();
        let (n, from) = s.client_udp.1.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from.port()), (&b"sr"[..], s.relay_client_side.1));
        s.client_udp
            .0
            .send_to(b"punch", (LOOPBACK, s.relay_client_side.0))
            .unwrap();
        let (n, from) = s.server_udp.0.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from.port()), (&b"punch"[..], s.relay_server_side.0));

        let relay_port = s.relay.addr().port();
        let report = s.relay.stop();
        let t = &report.tracks[0];
        assert_eq!(t.received, (0..20).map(seq).collect::<Vec<_>>());
        assert_eq!(t.dropped, [seq(3), seq(7)]);
        assert_eq!(t.duplicated, [seq(5)]);
        assert_eq!(t.reordered, [seq(10)]);
        let mut sent: Vec<u16> = expected.clone();
        sent.dedup();
        assert_eq!(t.delivered(), sent);
        assert_eq!(t.forwarded.iter().map(|f| f.seq).collect::<Vec<_>>(), expected);
        assert_eq!(t.clock_rate, Some(90000), "from the SDP's control URL");
        assert_eq!((t.rtcp_to_server, t.rtcp_to_client, t.rtp_to_server), (1, 1, 1));
        assert_eq!((t.unroutable, t.overflow, t.unsent, t.not_rtp), (0, 0, 0, 0));
        assert_eq!(t.url, format!("rtsp://127.0.0.1:{relay_port}/m/trackID=0"));
    }

    #[test]
    fn random_schedule_matches_what_the_client_sees() {
        let plan = Impairments::new(99)
            .drop_probability(0.1)
            .duplicate_probability(0.05)
            .reorder_probability(0.05, 4);
        let s = session(RelayOptions::new(plan.clone()));
        let n = 300u16;
        s.send(1000, n, Duration::from_micros(500));
        let decisions: Vec<Decision> = (0..u64::from(n)).map(|i| plan.decide(0, i)).collect();
        let dropped: Vec<u16> = (0..n)
            .filter(|&i| decisions[usize::from(i)].drop)
            .map(|i| 1000 + i)
            .collect();
        let dups = decisions.iter().filter(|d| d.duplicate).count();
        let got = s.receive(usize::from(n) - dropped.len() + dups);
        s.nothing_more();
        let report = s.relay.stop();
        let t = &report.tracks[0];
        assert_eq!(t.dropped, dropped);
        assert_eq!(t.forwarded.iter().map(|f| f.seq).collect::<Vec<_>>(), got);
        // What the client saw: duplicates and late packets.
        let (mut seen, mut dup_seen, mut late, mut max) = (BTreeSet::new(), Vec::new(), Vec::new(), 0);
        for &q in &got {
            if !seen.insert(q) {
                dup_seen.push(q);
                continue;
            }
            if q < max {
                late.push(q);
            }
            max = max.max(q);
        }
        assert_eq!(t.duplicated, dup_seen);
        assert_eq!(t.reordered, late);
        assert!(!late.is_empty() && !dup_seen.is_empty() && !dropped.is_empty());
        let missing: Vec<u16> = (1000..1000 + n).filter(|q| !seen.contains(q)).collect();
        assert_eq!(missing, dropped);
    }

    #[test]
    fn jitter_is_measured_on_what_was_forwarded() {
        let plan = Impairments::new(5).jitter(Duration::from_millis(10));
        let s = session(RelayOptions::new(plan));
        s.send(0, 40, Duration::from_millis(20));
        let got = s.receive(40);
        assert_eq!(got, (0..40).collect::<Vec<_>>(), "jitter alone does not reorder");
        let report = s.relay.stop();
        let t = &report.tracks[0];
        let j = t.jitter.unwrap();
        assert!((j - t.jitter_at(90000).unwrap()).abs() < 1e-6);
        // Uniform ±10 ms gives about 2/3 × 10 ms = 600 ticks at 90 kHz; the
        // machine's own scheduling adds some. A loose bound: this is about
        // the figure being the forwarded packets', not about the schedule.
        assert!(j > 100.0 && j < 1800.0, "jitter {j}");
    }

    #[test]
    fn stops_promptly_and_on_drop() {
        let s = session(RelayOptions::new(Impairments::new(1).delay(Duration::from_secs(60))));
        s.send(0, 3, Duration::ZERO);
        std::thread::sleep(Duration::from_millis(50));
        let t0 = Instant::now();
        let report = s.relay.stop();
        assert!(t0.elapsed() < Duration::from_secs(2));
        assert_eq!(report.tracks[0].unsent, 3, "three packets were still delayed");
        let relay = Relay::start(SocketAddr::new(LOOPBACK, 9), Impairments::new(1)).unwrap();
        let t0 = Instant::now();
        drop(relay);
        assert!(t0.elapsed() < Duration::from_secs(2));
        assert!(Relay::start("192.0.2.1:554".parse().unwrap(), Impairments::new(1)).is_err());
    }
}
