//! The RTSP server connection machine (sans-IO).
//!
//! One [`Connection`] per accepted TCP connection, holding at most one RTSP
//! session whose media goes back over the same connection, RTP/AVP/TCP
//! interleaved. The runtime tells it everything that happens as one
//! [`ServerInput`] at a time ([`Connection::handle_input`]: bytes received,
//! end of stream, a deadline that passed, the answer to a path lookup, an
//! abort) and does what [`Connection::poll_output`] says ([`ServerOutput`]:
//! write bytes, look a path up, log an event, wait until an instant, close).
//! It never touches a socket, a clock, a file or a random source: time comes
//! in as [`Instant`]s, wall-clock time as one NTP timestamp at creation,
//! randomness as a seed.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Instant;
//! use rtsp_toolkit_core::server::{Connection, ServerConfig, ServerInput, ServerOutput};
//!
//! let t0 = Instant::now();
//! let mut conn = Connection::new(Arc::new(ServerConfig::default()), t0, "127.0.0.1:40000".parse().unwrap(), 7, 0);
//! let request = b"OPTIONS rtsp://127.0.0.1:8554/a.mp4 RTSP/1.0\r\nCSeq: 1\r\n\r\n";
//! conn.handle_input(t0, ServerInput::Data(request));
//! let mut written = Vec::new();
//! loop {
//!     match conn.poll_output() {
//!         ServerOutput::Transmit(bytes) => written.extend_from_slice(&bytes),
//!         ServerOutput::Lookup { .. } | ServerOutput::Event(_) => {}
//!         ServerOutput::Timeout(_) | ServerOutput::Close => break,
//!     }
//! }
//! assert!(written.starts_with(b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n"));
//! ```
//!
//! # Driving it
//!
//! After **every** [`Connection::handle_input`] call the runtime drains
//! [`Connection::poll_output`] until it returns [`ServerOutput::Timeout`] or
//! [`ServerOutput::Close`]. Output is not bounded across calls, only per
//! call: one call produces at most the responses to the requests in its
//! input, or (for [`ServerInput::Timeout`]) at most 1024 samples of media,
//! stopping early once 4 MiB are written; when more media is due, the
//! returned deadline is already past and the runtime simply calls again. All
//! media due at one instant comes out as ONE [`ServerOutput::Transmit`]: one
//! write per wake-up.
//!
//! When a deadline passed while data may be waiting in the socket (the
//! process was descheduled), the runtime reads what is waiting without
//! blocking and gives it as [`ServerInput::Data`] first, then
//! [`ServerInput::Timeout`]: a request that arrived in time counts before the
//! deadline does.
//!
//! # Decisions (RFC 2326 leaves room)
//! - Only `RTP/AVP/TCP` is offered. A SETUP whose `Transport` has no such
//!   spec (UDP, multicast), is missing, or is malformed (`interleaved=x`) is
//!   answered 461 Unsupported Transport; 400 is kept for unparsable requests.
//! - Methods this server knows but does not do (PAUSE, ANNOUNCE, RECORD,
//!   REDIRECT) get 405 with `Allow`; unknown method tokens get 501.
//! - `Range` in PLAY: playback always starts at 0 (no seeking); any other
//!   start is not refused but the reply's `Range: npt=0.000-…` says where it
//!   starts. The range end is `count × duration`, open for endless loops.
//! - `Session` may be omitted on requests after SETUP (one session per
//!   connection); a `Session` naming another id is 454.
//! - PLAY while playing or after the end, and SETUP once playing, are 455;
//!   so is a SETUP for a second presentation on the same connection.
//! - `SET_PARAMETER` with an empty body is 200 (a keepalive), with a body 451.
//! - Request-URIs must be absolute `rtsp://`/`rtsps://` URIs (400 otherwise,
//!   except for OPTIONS, GET_PARAMETER, SET_PARAMETER and TEARDOWN, which do
//!   not look at the URI). Path rules are in [`path`].
//! - `Date` is sent when the runtime gave a wall-clock time (`ntp_at_now ≠ 0`).
//! - A request that cannot be framed (bad request line, header block or body
//!   over the [`Limits`], bad `Content-Length`) is answered 400 without CSeq
//!   and the connection is closed: the stream is out of sync.
//! - Requests arriving while a lookup is outstanding wait (in order, at most
//!   16; more closes the connection).
//! - Timeouts: without a session, the connection closes when no complete
//!   request has arrived for `idle_timeout`; with one, when no request and no
//!   interleaved data has arrived for `session_timeout`.
//!
//! Media timing is described in the `stream` module: sample due at
//! `play start + loop offset + send_time`, RTP timestamp
//! `base + presentation_time + loop offset in clock units`, sequence numbers
//! continuing across loops, RTCP SR every `rtcp_interval`, SR + BYE at the
//! end, then `linger_after_end` for a TEARDOWN before closing. A session
//! that falls more than `max_lag` behind its schedule catches up only
//! `max_lag` of it and continues from there ([`ServerEvent::FellBehind`]).
//!
//! What this is not: no authentication, no UDP or multicast transport, no
//! PAUSE or seeking, no RECORD; one presentation per connection.

mod clock;
pub mod path;
mod request;
mod sdp_writer;
mod stream;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::message::FramingError;
use crate::message::{Decoder, Headers, Limits, Message, Method, Request};
use crate::source::MediaSource;

use clock::SplitMix64;
pub use path::{PlayCount, Target, TargetError};
use request::RequestInfo;
use stream::{Lag, Session, State};

/// Largest output batch whose buffer is kept for reuse: the batches of most
/// frames fit; a bigger one (a 1080p IDR frame, a catch-up burst) gets a
/// buffer of its own, freed once written, so that a connection keeps at
/// most this much between batches.
const RETAIN_OUTPUT_BYTES: usize = 64 * 1024;
/// At most one [`ServerEvent::FellBehind`] per connection this often.
const LAG_EVENT_INTERVAL: Duration = Duration::from_secs(5);

/// Requests held while a lookup is outstanding.
const MAX_HELD: usize = 16;

/// Server settings, shared by all connections.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Close a session when neither a request nor interleaved data arrived
    /// for this long; announced as `Session: …;timeout=` (default 60 s).
    pub session_timeout: Duration,
    /// Largest RTP payload (default 1400); clamped to 64..=65000.
    pub max_payload: usize,
    /// Bounds on received requests.
    pub limits: Limits,
    /// `Server` header value.
    pub server_name: String,
    /// Interval between RTCP sender reports (default 5 s; at least 100 ms).
    pub rtcp_interval: Duration,
    /// After the last BYE, how long to wait for TEARDOWN before closing (default 5 s).
    pub linger_after_end: Duration,
    /// Close a connection without session when no complete request arrived
    /// for this long (default 30 s).
    pub idle_timeout: Duration,
    /// The first RTP sequence number and the RTP timestamp base of every
    /// track, instead of the seed-derived random ones (default `None`).
    /// For tests and soak runs that must cross the 16-bit sequence and
    /// 32-bit timestamp wrap-arounds early (e.g. `(65500, u32::MAX - 180_000)`);
    /// RFC 3550 wants random values, so leave it `None` otherwise.
    pub initial_rtp: Option<(u16, u32)>,
    /// The most media a session sends as a catch-up burst when it is late
    /// (default 5 s). A late session (the process was descheduled, the
    /// client stopped reading for a while) sends what fell due at once, as
    /// live555 and GStreamer do, and so is back in real time; when it is
    /// later than this (a suspended machine, a client that stopped reading
    /// for long), it sends only the last `max_lag` and skips the rest of the
    /// wait: its schedule moves forward, RTP timestamps stay continuous, and
    /// [`ServerEvent::FellBehind`] reports it. This keeps a long stall of
    /// many sessions from turning into one burst of minutes of media each;
    /// `docs/RELIABILITY.md` has how the default fares after real stalls.
    /// `Duration::ZERO` never bursts (any wake-up a millisecond late moves
    /// the schedule, and is reported); `Duration::MAX` turns the bound off
    /// (every missed sample goes out at once, 4 MiB per write at most).
    pub max_lag: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            session_timeout: Duration::from_secs(60),
            max_payload: 1400,
            limits: Limits::default(),
            server_name: concat!("rtsp-toolkit/", env!("CARGO_PKG_VERSION")).to_owned(),
            rtcp_interval: Duration::from_secs(5),
            linger_after_end: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(30),
            initial_rtp: None,
            max_lag: Duration::from_secs(5),
        }
    }
}

/// Why a path lookup failed. Both "not there" and "not allowed" become 404,
/// so that a client cannot probe what exists outside the served root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    /// No such file (404).
    NotFound,
    /// The file has no track this server can stream; the text says why
    /// (415 Unsupported Media Type; the text is logged, not sent).
    NoSupportedTrack(String),
    /// The path resolves outside the root, or may not be served (404).
    Forbidden,
    /// The file exists but could not be read or parsed; the text is logged,
    /// not sent (500).
    Unreadable(String),
}

impl LookupError {
    fn status(&self) -> u16 {
        match self {
            LookupError::NotFound | LookupError::Forbidden => 404,
            LookupError::NoSupportedTrack(_) => 415,
            LookupError::Unreadable(_) => 500,
        }
    }
}

/// Why a connection closed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The client sent TEARDOWN.
    Teardown,
    /// The client closed the connection.
    PeerClosed,
    /// A session existed and nothing arrived for `session_timeout`.
    SessionTimeout(Duration),
    /// No session, and no complete request for `idle_timeout`.
    IdleTimeout(Duration),
    /// The presentation ended (BYE sent) and no TEARDOWN came within `linger_after_end`.
    PlaybackEnded,
    /// The input could not be framed as RTSP.
    Protocol(FramingError),
    /// Too many requests pipelined behind an outstanding lookup.
    TooManyPipelined,
    /// The runtime dropped the connection: its socket took no bytes for this
    /// long (see [`ServerInput::Abort`]).
    NotReading(Duration),
    /// The runtime could not write to the socket; the text says why.
    WriteFailed(String),
    /// The server is shutting down.
    Shutdown,
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::Teardown => f.write_str("TEARDOWN"),
            CloseReason::PeerClosed => f.write_str("closed by the client"),
            CloseReason::SessionTimeout(d) => write!(f, "session timed out ({d:?} without requests or data)"),
            CloseReason::IdleTimeout(d) => write!(f, "idle for {d:?} without a request"),
            CloseReason::PlaybackEnded => f.write_str("playback ended, no TEARDOWN"),
            CloseReason::Protocol(e) => write!(f, "bad request: {e}"),
            CloseReason::TooManyPipelined => write!(f, "more than {MAX_HELD} requests pipelined"),
            CloseReason::NotReading(d) => write!(f, "the client took no data for {d:?}"),
            CloseReason::WriteFailed(e) => write!(f, "write failed: {e}"),
            CloseReason::Shutdown => f.write_str("server shutting down"),
        }
    }
}

/// Something for the runtime to log.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerEvent {
    /// A request was answered.
    Request {
        method: Method,
        /// The Request-URI, without userinfo, cut at 512 bytes.
        uri: String,
        cseq: Option<u32>,
        status: u16,
    },
    /// PLAY started the media.
    SessionStarted {
        session_id: String,
        /// The presentation's relative path.
        path: String,
        /// Tracks set up.
        tracks: usize,
        play_count: PlayCount,
    },
    /// The last play-through ended; SR + BYE were sent.
    PlaybackEnded {
        session_id: String,
        /// Play-throughs completed.
        loops: u32,
        /// RTP packets and payload octets sent, all tracks.
        packets: u64,
        octets: u64,
    },
    /// The session was more than [`ServerConfig::max_lag`] behind its
    /// schedule and skipped ahead. Reported at most once per 5 s per
    /// connection, summing the skips since the last report; skips not
    /// reported yet are reported within 5 s, or before `Closed`.
    FellBehind {
        session_id: String,
        /// How late the next sample was at the latest skip.
        behind: Duration,
        /// Total wall-clock time skipped since the last report.
        skipped: Duration,
        /// Skips since the last report.
        times: u32,
    },
    /// The connection is over; [`ServerOutput::Close`] follows.
    Closed {
        reason: CloseReason,
        /// Since the connection was created.
        elapsed: Duration,
    },
}

/// What the runtime should do next.
#[derive(Debug)]
pub enum ServerOutput {
    /// Write these bytes to the connection.
    Transmit(Bytes),
    /// Resolve `path` (relative to the served root, lexically safe, see
    /// [`path`]) and answer with [`ServerInput::Lookup`] and this token.
    Lookup { token: u64, path: String },
    /// Log this.
    Event(ServerEvent),
    /// Nothing more until input arrives or this instant passes.
    Timeout(Instant),
    /// Close the socket; the connection is over.
    Close,
}

/// Something that happened to the connection: the one input of
/// [`Connection::handle_input`].
///
/// Marked `#[non_exhaustive]`: inputs for other transports (a datagram on
/// one of several sockets) may be added.
#[non_exhaustive]
pub enum ServerInput<'a> {
    /// Bytes received from the client.
    Data(&'a [u8]),
    /// The client closed its side of the connection, or reading failed.
    /// What was not written yet is dropped: nobody is left to read it.
    Eof,
    /// The instant of the last [`ServerOutput::Timeout`] passed.
    Timeout,
    /// The answer to [`ServerOutput::Lookup`] `token`. Stale or unknown
    /// tokens are ignored.
    Lookup {
        token: u64,
        result: Result<Arc<MediaSource>, LookupError>,
    },
    /// The runtime ends the connection for a reason of its own (a write that
    /// failed or stalled, shutdown). Nothing more is written; the events not
    /// given yet (a pending [`ServerEvent::FellBehind`] summary, then
    /// [`ServerEvent::Closed`] with the reason) come from
    /// [`Connection::poll_output`], then [`ServerOutput::Close`].
    Abort(CloseReason),
}

impl fmt::Debug for ServerInput<'_> {
    // Not derived: a looked-up MediaSource would print every sample.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerInput::Data(data) => write!(f, "Data({} bytes)", data.len()),
            ServerInput::Eof => f.write_str("Eof"),
            ServerInput::Timeout => f.write_str("Timeout"),
            ServerInput::Lookup { token, result } => f
                .debug_struct("Lookup")
                .field("token", token)
                .field("tracks", &result.as_ref().map(|source| source.tracks.len()))
                .finish(),
            ServerInput::Abort(reason) => f.debug_tuple("Abort").field(reason).finish(),
        }
    }
}

/// A lookup the connection waits for.
#[derive(Debug)]
struct Pending {
    token: u64,
    request: Request,
}
/// The server machine for one TCP connection. See the [module docs](self).
pub struct Connection {
    config: Arc<ServerConfig>,
    created: Instant,
    peer: SocketAddr,
    ntp_at_created: u64,
    rng: SplitMix64,
    max_payload: usize,
    rtcp_interval: Duration,
    decoder: Decoder,
    /// Bytes to write; split off as one Transmit per poll.
    out: BytesMut,
    queue: VecDeque<ServerOutput>,
    closed: bool,
    /// Last complete request (or, with a session, interleaved frame).
    last_activity: Instant,
    held: VecDeque<Request>,
    pending: Option<Pending>,
    next_token: u64,
    /// The last presentation described, reused by SETUP.
    described: Option<(String, Arc<MediaSource>)>,
    play_count: PlayCount,
    session_id: String,
    origin_id: u64,
    session: Option<Session>,
    /// Scratch list of NAL units, reused for every video sample.
    nals: Vec<Bytes>,
    /// Skips not reported yet, and when the last report went out.
    lag: LagReport,
    span: tracing::Span,
}

/// Pending [`ServerEvent::FellBehind`] totals of one connection.
#[derive(Debug, Default)]
struct LagReport {
    behind: Duration,
    skipped: Duration,
    times: u32,
    last_event: Option<Instant>,
}

impl LagReport {
    fn add(&mut self, lag: Lag) {
        self.behind = lag.behind;
        self.skipped = self.skipped.saturating_add(lag.skipped);
        self.times = self.times.saturating_add(1);
    }

    /// Skips are waiting and the last report is old enough.
    fn due(&self, now: Instant) -> bool {
        self.times > 0
            && self
                .last_event
                .is_none_or(|t| now.saturating_duration_since(t) >= LAG_EVENT_INTERVAL)
    }

    /// The [`ServerEvent::FellBehind`] of the skips not reported yet, if any;
    /// the totals start again from zero.
    fn take(&mut self, session_id: &str) -> Option<ServerOutput> {
        if self.times == 0 {
            return None;
        }
        let event = ServerEvent::FellBehind {
            session_id: session_id.to_owned(),
            behind: self.behind,
            skipped: self.skipped,
            times: self.times,
        };
        (self.behind, self.skipped, self.times) = (Duration::ZERO, Duration::ZERO, 0);
        Some(ServerOutput::Event(event))
    }
}

impl Connection {
    /// A connection from `peer` accepted at `now`.
    ///
    /// `seed` is the runtime's randomness (session id, SSRCs, initial
    /// sequence numbers and timestamps all derive from it: give every
    /// connection a different, unpredictable one). `ntp_at_now` is the
    /// 64-bit NTP wall-clock time at `now` (0 if unknown: RTCP then carries
    /// NTP times from 0 and `Date` is omitted).
    pub fn new(config: Arc<ServerConfig>, now: Instant, peer: SocketAddr, seed: u64, ntp_at_now: u64) -> Connection {
        let mut rng = SplitMix64::new(seed);
        let session_id = format!("{:016X}", rng.next_u64());
        let origin_id = rng.next_u64() >> 1;
        let span = tracing::debug_span!("rtsp_server_connection", %peer, session = session_id.as_str());
        Connection {
            decoder: Decoder::new(config.limits),
            max_payload: config.max_payload.clamp(64, 65_000),
            rtcp_interval: config.rtcp_interval.max(Duration::from_millis(100)),
            config,
            created: now,
            peer,
            ntp_at_created: ntp_at_now,
            rng,
            out: BytesMut::new(),
            queue: VecDeque::new(),
            closed: false,
            last_activity: now,
            held: VecDeque::new(),
            pending: None,
            next_token: 1,
            described: None,
            play_count: PlayCount::ONCE,
            session_id,
            origin_id,
            session: None,
            nals: Vec::new(),
            lag: LagReport::default(),
            span,
        }
    }

    /// The client's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The session id, once SETUP created the session.
    pub fn session_id(&self) -> Option<&str> {
        self.session.as_ref().map(|s| s.id.as_str())
    }

    /// Whether the connection is over (a Close is or was returned).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Tells the machine what happened at `now`; then drain
    /// [`poll_output`](Self::poll_output).
    pub fn handle_input(&mut self, now: Instant, input: ServerInput<'_>) {
        match input {
            ServerInput::Data(data) => self.on_data(now, data),
            ServerInput::Eof => self.on_eof(now),
            ServerInput::Timeout => self.on_timeout(now),
            ServerInput::Lookup { token, result } => self.on_lookup(now, token, result),
            ServerInput::Abort(reason) => self.abort(now, reason),
        }
    }

    fn on_data(&mut self, now: Instant, data: &[u8]) {
        if self.closed {
            return;
        }
        let _g = self.span.clone().entered();
        self.decoder.extend(data);
        while !self.closed {
            match self.decoder.decode() {
                Ok(Some(Message::Request(mut req))) => {
                    self.last_activity = now;
                    if self.pending.is_some() {
                        if self.held.len() >= MAX_HELD {
                            self.close(now, CloseReason::TooManyPipelined);
                        } else {
                            // Bodies are ignored; only whether there was one
                            // matters (SET_PARAMETER). Do not keep up to
                            // `max_body_bytes` per held request alive.
                            if !req.body.is_empty() {
                                req.body = Bytes::from_static(b"-");
                            }
                            self.held.push_back(req);
                        }
                    } else {
                        self.dispatch(now, req, None);
                    }
                }
                Ok(Some(Message::Interleaved { channel, payload })) => {
                    // Receiver reports or anything else: ignored, but a sign of life.
                    tracing::trace!(channel, len = payload.len(), "interleaved data from the client");
                    if self.session.is_some() {
                        self.last_activity = now;
                    }
                }
                Ok(Some(Message::Response(resp))) => {
                    tracing::debug!(status = resp.status, "response from the client ignored");
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "unparsable request");
                    let info = RequestInfo {
                        method: Method::Other(String::new()),
                        uri: String::new(),
                        cseq: None,
                    };
                    self.respond(now, &info, 400, Headers::new(), Bytes::new());
                    self.close(now, CloseReason::Protocol(e));
                }
            }
        }
    }

    fn on_timeout(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        let _g = self.span.clone().entered();
        if now >= self.activity_deadline() {
            let reason = if self.session.is_some() {
                CloseReason::SessionTimeout(self.config.session_timeout)
            } else {
                CloseReason::IdleTimeout(self.config.idle_timeout)
            };
            return self.close(now, reason);
        }
        self.pump(now);
    }

    fn on_lookup(&mut self, now: Instant, token: u64, result: Result<Arc<MediaSource>, LookupError>) {
        if self.closed || self.pending.as_ref().is_none_or(|p| p.token != token) {
            return;
        }
        let _g = self.span.clone().entered();
        let Some(Pending { request, .. }) = self.pending.take() else {
            return;
        };
        match result {
            Ok(source) if source.tracks.is_empty() => {
                tracing::debug!("lookup gave a source without tracks");
                self.refuse(now, &request, 415);
            }
            Ok(source) => self.dispatch(now, request, Some(source)),
            Err(e) => {
                tracing::debug!(error = ?e, "lookup failed");
                self.refuse(now, &request, e.status());
            }
        }
        while self.pending.is_none() && !self.closed {
            let Some(req) = self.held.pop_front() else { break };
            self.dispatch(now, req, None);
        }
    }

    fn on_eof(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        // Nobody is left to read what was not written yet.
        self.out.clear();
        self.close(now, CloseReason::PeerClosed);
    }

    fn abort(&mut self, now: Instant, reason: CloseReason) {
        self.out.clear();
        self.queue.retain(|o| matches!(o, ServerOutput::Event(_)));
        self.close(now, reason);
    }

    /// The next thing to do. Call until it returns [`ServerOutput::Timeout`]
    /// or [`ServerOutput::Close`] after every
    /// [`handle_input`](Self::handle_input).
    pub fn poll_output(&mut self) -> ServerOutput {
        if !self.out.is_empty() {
            let batch = self.out.split().freeze();
            // The buffer is reused for the next batch, and once this one is
            // written `reserve` would take back its whole allocation: every
            // connection would keep the largest batch it ever sent (an IDR
            // frame, a catch-up burst of up to 4 MiB) for good, and the
            // server's RSS would grow in steps with every stall. Above the
            // bound, start afresh instead.
            if batch.len() > RETAIN_OUTPUT_BYTES {
                self.out = BytesMut::new();
            }
            return ServerOutput::Transmit(batch);
        }
        if let Some(o) = self.queue.pop_front() {
            return o;
        }
        if self.closed {
            return ServerOutput::Close;
        }
        ServerOutput::Timeout(self.next_deadline())
    }

    fn next_deadline(&self) -> Instant {
        let at = self.activity_deadline();
        match self.session.as_ref().and_then(Session::next_deadline) {
            Some(media) => at.min(media),
            None => at,
        }
    }

    fn activity_deadline(&self) -> Instant {
        let limit = if self.session.is_some() {
            self.config.session_timeout
        } else {
            self.config.idle_timeout
        };
        later(self.last_activity, limit)
    }

    fn ntp_at(&self, now: Instant) -> u64 {
        clock::ntp_add(self.ntp_at_created, now.saturating_duration_since(self.created))
    }

    /// Sends due media; closes after the linger time.
    fn pump(&mut self, now: Instant) {
        let ntp = self.ntp_at(now);
        let linger = self.config.linger_after_end;
        let Some(session) = self.session.as_mut() else {
            return;
        };
        if let Some(lag) = session.resync(now, self.config.max_lag) {
            tracing::debug!(behind = ?lag.behind, skipped = ?lag.skipped, "fell behind; skipped ahead");
            self.lag.add(lag);
        }
        if self.lag.due(now) {
            self.lag.last_event = Some(now);
            self.queue.extend(self.lag.take(&session.id));
        }
        if let Some(f) = session.pump(now, ntp, &mut self.out, &mut self.nals, linger) {
            tracing::debug!(loops = f.loops, packets = f.packets, "playback ended");
            self.queue.push_back(ServerOutput::Event(ServerEvent::PlaybackEnded {
                session_id: session.id.clone(),
                loops: f.loops,
                packets: f.packets,
                octets: f.octets,
            }));
        }
        if let State::Ended { close_at } = session.state {
            if now >= close_at {
                self.close(now, CloseReason::PlaybackEnded);
            }
        }
    }

    fn close(&mut self, now: Instant, reason: CloseReason) {
        if self.closed {
            return;
        }
        tracing::debug!(%reason, "connection closed");
        if let Some(session) = &self.session {
            self.queue.extend(self.lag.take(&session.id));
        }
        self.closed = true;
        self.held.clear();
        self.pending = None;
        self.session = None;
        self.described = None;
        self.queue.push_back(ServerOutput::Event(ServerEvent::Closed {
            reason,
            elapsed: now.saturating_duration_since(self.created),
        }));
    }
}

impl fmt::Debug for Connection {
    // Not derived: the shared MediaSource would print every sample.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("peer", &self.peer)
            .field("session", &self.session_id())
            .field("path", &self.session.as_ref().map(|s| s.path.as_str()))
            .field("pending_lookup", &self.pending.as_ref().map(|p| p.token))
            .field("held_requests", &self.held.len())
            .field("play_count", &self.play_count)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

/// `t + d`, or a year after `t` if that overflows (or `t` itself).
fn later(t: Instant, d: Duration) -> Instant {
    t.checked_add(d)
        .or_else(|| t.checked_add(Duration::from_secs(365 * 86_400)))
        .unwrap_or(t)
}
