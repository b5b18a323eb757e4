//! The RTSP server connection machine (sans-IO).
//!
//! One [`Connection`] per accepted TCP connection, holding at most one RTSP
//! session whose media goes back over the same connection (RTP/AVP/TCP
//! interleaved) or as UDP datagrams to the client's ports (RTP/AVP unicast),
//! per track. The runtime tells it everything that happens as one
//! [`ServerInput`] at a time ([`Connection::handle_input`]: bytes received,
//! end of stream, a deadline that passed, the answer to a path lookup, a
//! UDP pair opened, a datagram received, an abort) and does what
//! [`Connection::poll_output`] says ([`ServerOutput`]: write bytes, look a
//! path up, open a UDP pair, send a datagram, log an event, wait until an
//! instant, close).
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
//!         ServerOutput::Timeout(_) | ServerOutput::Close => break,
//!         _ => {} // lookups, UDP pairs and datagrams, events
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
//! interleaved media due at one instant comes out as ONE
//! [`ServerOutput::Transmit`]: one write per wake-up. Media of UDP tracks
//! comes out as one [`ServerOutput::SendDatagram`] per RTP or RTCP packet,
//! within the same per-call bounds (both kinds count toward the 4 MiB).
//!
//! When a deadline passed while data may be waiting in the socket (the
//! process was descheduled), the runtime reads what is waiting without
//! blocking and gives it as [`ServerInput::Data`] first, then
//! [`ServerInput::Timeout`]: a request that arrived in time counts before the
//! deadline does.
//!
//! # UDP
//! A SETUP with `RTP/AVP;unicast;client_port=a-b` (or `RTP/AVP/UDP`) asks
//! the runtime for a server port pair ([`ServerOutput::OpenUdp`], an even
//! RTP port and the odd one above it, from [`ServerConfig::udp_ports`] or
//! any the OS gives) and replies once it is open
//! ([`ServerInput::UdpOpened`]), with `client_port=`, `server_port=` and
//! `ssrc=`. A track keeps its pair when set up again; pairs live as long as
//! the connection's machine. RTP and the sender reports then go from that
//! pair to the client's IP (the TCP peer's) and ports, paced exactly as
//! over TCP. Datagrams from the client (its IP, either of its ports) on the
//! RTCP socket are read: each receiver-report block about the track becomes
//! a [`ServerEvent::ReceiverReport`], and valid RTCP keeps the session
//! alive like a request. Datagrams from any other address, or to a pair no
//! track uses, are dropped and counted ([`ServerEvent::DatagramsDropped`]).
//!
//! A session playing over UDP only outlives its RTSP connection
//! ([`ServerEvent::Detached`]): it plays on until it ends, until
//! `session_timeout` passes without RTCP from the client or a request
//! naming it on another connection (the runtime hands those in as
//! [`ServerInput::KeepAlive`]), or until a TEARDOWN on another connection
//! (the runtime aborts it). A request naming a session the connection does
//! not own is asked of the runtime ([`ServerOutput::OtherSession`]). The
//! session registry that finds it is the runtime's: `docs/ARCHITECTURE.md`,
//! "Sessions that outlive their connection".
//!
//! The UDP types ([`UdpSocketId`], [`UdpRequest`]) are the server's own, of
//! the same shape as the client's.
//!
//! # Multicast
//! A SETUP with `RTP/AVP;multicast` (or `RTP/AVP/UDP;multicast`) makes the
//! session a member of its path's multicast stream: the connection asks the
//! runtime to join it ([`ServerOutput::Multicast`] with
//! [`MulticastRequest::Join`], once per session) and replies, once joined
//! ([`ServerInput::MulticastJoined`]), with the stream's
//! `destination=G;port=P-(P+1);ttl=T;ssrc=`. Its PLAY asks where the stream
//! is ([`MulticastRequest::Play`], which starts it if it is not playing) and
//! replies with `Range` from there and the `RTP-Info` of the stream's next
//! packets ([`ServerInput::MulticastPlaying`]). A member sends nothing
//! itself: the stream is a [`MulticastStream`] of its own (see the
//! `multicast` module), which the runtime drives on a task of its own;
//! when it ends, the runtime says so ([`ServerInput::MulticastEnded`]) and
//! the session ends as one over TCP does at its end. A member session ends
//! with its RTSP connection (it is not detached); its stream hears of it
//! from the runtime.
//!
//! # Decisions (RFC 2326 leaves room)
//! - `RTP/AVP/TCP`, unicast `RTP/AVP` / `RTP/AVP/UDP` and multicast
//!   `RTP/AVP` / `RTP/AVP/UDP` are offered; the first spec of the
//!   `Transport` list that can be served is taken. UDP needs `client_port`,
//!   and a `destination` other than the client's own address skips the spec
//!   (media never goes to a third address). Multicast groups, ports and TTL
//!   are the server's: a multicast spec naming a `destination` is skipped,
//!   its `port`, `client_port` and `ttl` are not followed. A session is all
//!   multicast or not at all (461 for a mix); one multicast stream per path
//!   and `play_count` (of the session's SETUP), so sessions with other
//!   counts get other streams; a multicast SETUP of a path the connection
//!   did not join, or with another `play_count`, is 455; one whose track the
//!   stream cannot send (no port pair left in `multicast_ports`), or for
//!   which no stream could be joined (every group held), is 461; a PLAY
//!   after the stream ended is 455. A SETUP with no servable spec, no
//!   `Transport`, or malformed channels or ports (`interleaved=x`,
//!   `client_port=0`) is answered 461 Unsupported Transport, and so is a
//!   UDP SETUP for which the runtime could open no pair; 400 is kept for
//!   unparsable requests.
//! - Tracks of one session may mix TCP and UDP; a session with a TCP track
//!   ends with its connection.
//! - A keepalive (GET_PARAMETER, SET_PARAMETER) or TEARDOWN naming another
//!   connection's UDP session refreshes or ends that session; PLAY and
//!   SETUP must come on the session's own connection (454 elsewhere).
//! - ANNOUNCE and RECORD are for publishers of the paths in
//!   [`ServerConfig::publish`] (see [`live`]: 403 for another path, 455
//!   for a path published already, 415 for an SDP without a track we
//!   serve); without such paths they get 405 with `Allow`, as REDIRECT
//!   does; unknown method tokens get 501.
//! - `Range` in PLAY (`npt=T-`, `npt=T1-T2`, `npt=now-`, seconds or
//!   `hh:mm:ss`): the `play_count` play-throughs are one timeline of
//!   `count × duration` (the range end of DESCRIBE and PLAY, open for endless
//!   loops), so `T` picks a play-through and a time in it; playback starts at
//!   the last keyframe at or before it (of the first set-up video track),
//!   and the reply's `Range` says where, its `RTP-Info` gives each track's
//!   next sequence number and the RTP timestamp of that `npt`. An end stops
//!   the media there (SR + BYE). A start past the timeline, an end before
//!   the start, or another unit (`clock=`, `smpte=`) is 457.
//! - `Scale: S` in PLAY paces the media `S` times as fast (0 < S ≤ 64,
//!   echoed in the reply); timestamps stay media time. Other values (reverse,
//!   0) are 501.
//! - PAUSE stops the media where it is (200; again, or after the end: 200,
//!   nothing to do); the next PLAY resumes from there, or from its `Range`.
//!   Sequence numbers and timestamps go on without a jump besides the media
//!   skipped by a seek. PLAY while playing re-plays from its `Range` (or goes
//!   on), PLAY after the end plays again; a multicast member's PAUSE is 200
//!   and changes nothing, and its `Range` is not followed (the group's
//!   stream is live).
//! - `Session` may be omitted on requests after SETUP (one session per
//!   connection); a `Session` naming another id is 454.
//! - TEARDOWN ends the session (its media stops at once, no BYE); the
//!   connection stays, as GStreamer's and live555's servers keep it, until the
//!   client closes it (most do at once) or `idle_timeout` passes, closing with
//!   the reason `Teardown`: GStreamer's rtspsrc can send its PAUSE after its
//!   TEARDOWN. Meanwhile PAUSE and keepalives are 200, PLAY and SETUP 454. A
//!   publisher's TEARDOWN closes at once (its path ends).
//! - SETUP once playing is 455; so is a SETUP for a second presentation on
//!   the same connection.
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
//!   request has arrived for `idle_timeout`; with one, when no request, no
//!   interleaved data and no RTCP datagram from the client has arrived for
//!   `session_timeout`.
//!
//! Media timing is described in the `stream` module: sample due at
//! `play start + loop offset + send_time`, RTP timestamp
//! `base + presentation_time + loop offset in clock units`, sequence numbers
//! continuing across loops, RTCP SR every `rtcp_interval`, SR + BYE at the
//! end, then `linger_after_end` for a TEARDOWN before closing. A session
//! that falls more than `max_lag` behind its schedule catches up only
//! `max_lag` of it and continues from there ([`ServerEvent::FellBehind`]).
//!
//! # Authentication
//! With [`ServerConfig::auth`], every request but `OPTIONS` needs
//! credentials: Digest (SHA-256 or MD5) always, Basic only when allowed. A
//! request without them, or with a stale nonce, is answered `401` with the
//! challenges; wrong ones also get `401` and a [`ServerEvent::AuthFailed`];
//! an address that failed too often gets `503` for a while. The rules, the
//! user file and the nonces are in [`auth`].
//!
//! # RTSP over HTTP tunnels
//! A [`Connection`] does not know about tunnels: the runtime gives it the
//! requests decoded from a tunnel's POST half as ordinary data and writes
//! its output to the GET half. What a tunnel half's HTTP request must be,
//! the base64 of the POST body and the limits are in [`tunnel`].
//!
//! What this is not: no reverse play, no IPv6 multicast, no publisher over
//! UDP; TLS is
//! the runtime's (a layer under this machine); one presentation per
//! connection.

pub mod auth;
mod clock;
mod fault_run;
pub mod faults;
mod headers;
pub mod live;
mod multicast;
pub mod path;
pub mod profile;
pub mod publish;
mod record;
mod request;
mod request_auth;
mod sdp_writer;
mod stream;
mod track_out;
pub mod tunnel;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::message::FramingError;
use crate::message::{Decoder, Headers, Limits, Message, Method, Request};
use crate::rtcp::{self, RtcpPacket};
use crate::source::MediaSource;

pub use crate::udp::{PortRange, UdpSocketId};
use clock::SplitMix64;
pub use faults::{FaultError, FaultEvent, Faults, Quirk};
pub use multicast::{
    GroupPool, GroupRange, MulticastEnd, MulticastInput, MulticastOutput, MulticastPosition, MulticastRequest,
    MulticastStream, MulticastTrack,
};
pub use path::{PlayCount, Target, TargetError};
use request::RequestInfo;
use stream::{Lag, Session, State};
use track_out::Sink;

/// Largest output batch whose buffer is kept for reuse: the batches of most
/// frames fit; a bigger one (a 1080p IDR frame, a catch-up burst) gets a
/// buffer of its own, freed once written, so that a connection keeps at
/// most this much between batches.
const RETAIN_OUTPUT_BYTES: usize = 64 * 1024;
/// At most one [`ServerEvent::FellBehind`] per connection this often.
const LAG_EVENT_INTERVAL: Duration = Duration::from_secs(5);

/// [`ServerConfig::multicast_ports`] by default.
const DEFAULT_MULTICAST_PORTS: PortRange = match PortRange::new_const(5004, 5099) {
    Some(r) => r,
    None => panic!("a valid range"),
};

/// Requests held while a lookup is outstanding.
const MAX_HELD: usize = 16;

/// Server settings, shared by all connections.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct ServerConfig {
    /// Close a session when neither a request, nor interleaved data, nor
    /// RTCP from the client over UDP arrived for this long; announced as
    /// `Session: …;timeout=` (default 60 s).
    #[cfg_attr(
        feature = "serde",
        serde(rename = "session_timeout_s", with = "crate::duration_secs")
    )]
    pub session_timeout: Duration,
    /// Largest RTP payload (default 1400); clamped to 64..=65000.
    pub max_payload: usize,
    /// Bounds on received requests.
    pub limits: Limits,
    /// `Server` header value.
    pub server_name: String,
    /// Interval between RTCP sender reports (default 5 s; at least 100 ms).
    #[cfg_attr(feature = "serde", serde(rename = "rtcp_interval_s", with = "crate::duration_secs"))]
    pub rtcp_interval: Duration,
    /// After the last BYE, how long to wait for TEARDOWN before closing
    /// (default 10 s: GStreamer's client, for one, plays out its 2 s jitter
    /// buffer and then PAUSEs before its TEARDOWN); each request meanwhile
    /// starts it again.
    #[cfg_attr(
        feature = "serde",
        serde(rename = "linger_after_end_s", with = "crate::duration_secs")
    )]
    pub linger_after_end: Duration,
    /// Close a connection without session when no complete request arrived
    /// for this long (default 30 s).
    #[cfg_attr(feature = "serde", serde(rename = "idle_timeout_s", with = "crate::duration_secs"))]
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
    #[cfg_attr(feature = "serde", serde(rename = "max_lag_s", with = "crate::duration_secs"))]
    pub max_lag: Duration,
    /// The UDP ports of the server's RTP/RTCP pairs for `RTP/AVP` (UDP)
    /// sessions: each pair is an even RTP port and the odd port above it,
    /// both within the range. `None` (the default) lets the OS choose an
    /// even/odd pair. Passed on in every [`UdpRequest`]; the runtime binds.
    pub udp_ports: Option<PortRange>,
    /// The group addresses of multicast streams (`RTP/AVP;multicast`): each
    /// path streamed to a group holds one of them while it streams (default
    /// `239.255.42.0-239.255.42.255`, see [`GroupRange::default`]). When all
    /// are held, a multicast SETUP is answered 461.
    pub multicast_groups: GroupRange,
    /// The ports of multicast streams: track `k` of a file goes to the RTP
    /// port of pair `k` of the range (and RTCP to the odd port above), on the
    /// stream's group (default `5004-5099`: 5004 is RTP's registered port).
    /// A track beyond the range's pairs cannot be set up over multicast (461).
    pub multicast_ports: PortRange,
    /// The TTL (hop limit) of multicast datagrams (default 1: the local
    /// network only).
    pub multicast_ttl: u8,
    /// Offer RTP over unicast UDP (default on). UDP media goes to the RTSP
    /// peer's address: behind a TCP proxy or port forward that address is the
    /// proxy's host, where a client could aim the media at any UDP port, so
    /// such a deployment turns this off (a UDP SETUP is then 461 and clients
    /// fall back to TCP).
    pub udp: bool,
    /// Offer `RTP/AVP;multicast` (default on).
    pub multicast: bool,
    /// Offer the ONVIF audio backchannel (default off): to a request with
    /// `Require: www.onvif.org/ver20/backchannel`, DESCRIBE adds an
    /// `a=sendonly` audio section of [`ServerConfig::backchannel_codec`]
    /// (`trackID=N`, N the number of
    /// the file's tracks), SETUP of it takes TCP interleaved channels, and
    /// the RTP the client sends there comes out as
    /// [`ServerOutput::Backchannel`]. Off, such a request is answered `551
    /// Option not supported`, as is any other `Require` tag (RFC 2326 §12.32).
    pub backchannel: bool,
    /// The codec of the backchannel section offered (default PCMU/8000;
    /// see [`BackchannelCodec::offered_media`](crate::client::BackchannelCodec::offered_media)
    /// for each codec's section). The server does not check what arrives:
    /// the runtime decodes it as this codec.
    pub backchannel_codec: crate::client::BackchannelCodec,
    /// Ask for credentials (default `None`: no authentication). Every
    /// request but `OPTIONS` then needs a user of [`auth::ServerAuth`]'s;
    /// the one `ServerAuth` of a server is shared by all its connections
    /// (the nonce secret, the failures per address). See [`auth`]. Not
    /// serialized (with the `serde` feature it is skipped both ways: users'
    /// keys never leave the process).
    #[cfg_attr(feature = "serde", serde(skip))]
    pub auth: Option<Arc<auth::ServerAuth>>,
    /// The seed of the camera simulator's faults for URLs without `seed=`
    /// (default 0; `serve --seed`): see [`faults`].
    pub fault_seed: u64,
    /// Report each session's progress ([`ServerEvent::Progress`]) this
    /// often while it exists, and once more when its connection closes
    /// (default `None`: never). For metrics (`serve --metrics`): counters
    /// of what was sent, and how far behind its schedule a session is.
    #[cfg_attr(
        feature = "serde",
        serde(default, rename = "progress_interval_s", with = "crate::duration_secs::option")
    )]
    pub progress_interval: Option<Duration>,
    /// The paths clients may publish to (`ANNOUNCE`, `SETUP` with
    /// `mode=record`, `RECORD`; default none: ANNOUNCE and RECORD are then
    /// 405 as before). A path as in the URL without the leading `/`
    /// (`live/cam1`), or `*` for any path. Readers of a published path get
    /// its live stream (see [`live`]); authentication applies as to every
    /// request.
    pub publish: Vec<String>,
    /// Fault profiles by path (`serve --profile PATH=FILE`, see [`profile`]):
    /// the camera simulator's faults for every session of that path whose
    /// URL asks for none itself (default none). Not serialized (with the
    /// `serde` feature it is skipped both ways).
    #[cfg_attr(feature = "serde", serde(skip))]
    pub profiles: Vec<(String, Faults)>,
}

impl ServerConfig {
    /// The profile of `path` ([`ServerConfig::profiles`]), if it has one.
    pub fn profile_for(&self, path: &str) -> Option<Faults> {
        let path = path.trim_matches('/');
        self.profiles
            .iter()
            .find(|(p, _)| p.trim_matches('/') == path)
            .map(|(_, f)| *f)
    }

    /// Whether `path` may be published to ([`ServerConfig::publish`]).
    pub fn may_publish(&self, path: &str) -> bool {
        let path = path.trim_matches('/');
        !path.is_empty() && self.publish.iter().any(|p| p == "*" || p.trim_matches('/') == path)
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            session_timeout: Duration::from_secs(60),
            fault_seed: 0,
            max_payload: 1400,
            limits: Limits::default(),
            server_name: concat!("rtsp-toolkit/", env!("CARGO_PKG_VERSION")).to_owned(),
            rtcp_interval: Duration::from_secs(5),
            linger_after_end: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            initial_rtp: None,
            max_lag: Duration::from_secs(5),
            udp_ports: None,
            multicast_groups: GroupRange::default(),
            multicast_ports: DEFAULT_MULTICAST_PORTS,
            multicast_ttl: 1,
            progress_interval: None,
            udp: true,
            multicast: true,
            backchannel: false,
            backchannel_codec: crate::client::BackchannelCodec::Pcmu,
            auth: None,
            publish: Vec::new(),
            profiles: Vec::new(),
        }
    }
}

/// A UDP port pair for the runtime to open (the server's own request: it
/// binds on the connection's address, and never joins a group).
///
/// The runtime binds an even RTP port and the odd RTCP port above it, on
/// the local address the RTSP connection came in on, within `bind` (`None`:
/// any pair the OS gives), retrying on conflicts; it answers with
/// [`ServerInput::UdpOpened`]. The pair lives until the connection's
/// [`ServerOutput::Close`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpRequest {
    /// The connection's name for the pair, used in [`UdpSocketId`].
    pub pair: u16,
    /// The ports to bind within ([`ServerConfig::udp_ports`]).
    pub bind: Option<PortRange>,
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
    /// The URL's `close_after=` fault closed it (see [`faults`]).
    Fault,
    /// A reader of a live path did not keep up: more of the publisher's
    /// packets waited for it than the runtime keeps (it is dropped so that
    /// it never holds up the publisher or the other readers).
    SlowReader,
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
            CloseReason::Fault => f.write_str("closed by the close_after fault"),
            CloseReason::SlowReader => f.write_str("did not keep up with the live stream"),
        }
    }
}

/// How a session's media goes to its client (by its set-up tracks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum SessionTransport {
    /// Interleaved on the RTSP connection (`RTP/AVP/TCP`; also over TLS and
    /// HTTP tunnels, which the runtime handles).
    Tcp,
    /// Unicast UDP (`RTP/AVP`).
    Udp,
    /// A member of the path's multicast stream.
    Multicast,
    /// Some tracks interleaved, some over UDP.
    Mixed,
}

impl SessionTransport {
    /// The name used in logs and metrics labels (`tcp`, `udp`, `multicast`, `mixed`).
    pub fn as_str(self) -> &'static str {
        match self {
            SessionTransport::Tcp => "tcp",
            SessionTransport::Udp => "udp",
            SessionTransport::Multicast => "multicast",
            SessionTransport::Mixed => "mixed",
        }
    }
}

impl fmt::Display for SessionTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something for the runtime to log.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(tag = "type", rename_all = "snake_case"))]
#[non_exhaustive]
pub enum ServerEvent {
    /// A request was answered.
    Request {
        /// The request's method.
        method: Method,
        /// The Request-URI, without userinfo, cut at 512 bytes.
        uri: String,
        /// The request's `CSeq`, when it had a valid one.
        cseq: Option<u32>,
        /// The status code answered.
        status: u16,
    },
    /// PLAY started the media.
    SessionStarted {
        /// The RTSP session id (the `Session` header).
        session_id: String,
        /// The presentation's relative path.
        path: String,
        /// Tracks set up.
        tracks: usize,
        /// How many times the presentation plays (the URL's `play_count`).
        play_count: PlayCount,
        /// How its media goes to the client.
        transport: SessionTransport,
    },
    /// A PAUSE stopped the media.
    Paused {
        /// The RTSP session id.
        session_id: String,
        /// Where it stopped, as `npt` (the media time of the next sample).
        #[cfg_attr(feature = "serde", serde(rename = "npt_s", with = "crate::duration_secs"))]
        npt: Duration,
    },
    /// A PLAY after the first (after a PAUSE, or with a `Range` or `Scale`
    /// while playing) started the media again.
    Resumed {
        /// The RTSP session id.
        session_id: String,
        /// Where it starts, as `npt` (a seek starts at a keyframe at or
        /// before the `Range` asked).
        #[cfg_attr(feature = "serde", serde(rename = "npt_s", with = "crate::duration_secs"))]
        npt: Duration,
        /// The `Scale` in force, as the request gave it (`None`: 1).
        scale: Option<String>,
    },
    /// The last play-through ended; SR + BYE were sent.
    PlaybackEnded {
        /// The RTSP session id.
        session_id: String,
        /// Play-throughs completed.
        loops: u32,
        /// RTP packets sent, all tracks.
        packets: u64,
        /// RTP payload octets sent, all tracks (RFC 3550's sender octet count).
        octets: u64,
    },
    /// The session was more than [`ServerConfig::max_lag`] behind its
    /// schedule and skipped ahead. Reported at most once per 5 s per
    /// connection, summing the skips since the last report; skips not
    /// reported yet are reported within 5 s, or before `Closed`.
    FellBehind {
        /// The RTSP session id.
        session_id: String,
        /// How late the next sample was at the latest skip.
        #[cfg_attr(feature = "serde", serde(rename = "behind_s", with = "crate::duration_secs"))]
        behind: Duration,
        /// Total wall-clock time skipped since the last report.
        #[cfg_attr(feature = "serde", serde(rename = "skipped_s", with = "crate::duration_secs"))]
        skipped: Duration,
        /// Skips since the last report.
        times: u32,
    },
    /// A session's totals, every [`ServerConfig::progress_interval`] while
    /// it exists (once set up), and once more, with `last`, just before its
    /// connection's [`ServerEvent::Closed`]. Off by default; for metrics.
    Progress {
        /// The RTSP session id.
        session_id: String,
        /// The presentation's relative path.
        path: String,
        /// How its media goes to the client.
        transport: SessionTransport,
        /// RTP packets sent since the session was set up, all tracks (a
        /// multicast member sends none itself: its stream does).
        packets: u64,
        /// RTP payload octets sent likewise.
        octets: u64,
        /// How late the session's next sample is now (zero when on time,
        /// paused, or at the end).
        #[cfg_attr(feature = "serde", serde(rename = "behind_s", with = "crate::duration_secs"))]
        behind: Duration,
        /// The session is over: its connection is closing.
        last: bool,
    },
    /// The client's RTCP receiver report on a UDP track, as the client
    /// reports it (RFC 3550 §6.4.1): one per report block about our SSRC.
    ReceiverReport {
        /// The RTSP session id.
        session_id: String,
        /// The track's index in the presentation (its `trackID`).
        track: usize,
        /// Fraction of packets lost since the client's previous report, in
        /// 1/256ths.
        fraction_lost: u8,
        /// Packets lost since the start (negative with duplicates).
        cumulative_lost: i32,
        /// Extended highest sequence number received.
        highest_sequence: u32,
        /// Interarrival jitter, converted from the track's clock units.
        #[cfg_attr(feature = "serde", serde(rename = "jitter_s", with = "crate::duration_secs"))]
        jitter: Duration,
        /// RTP packets this server had sent on the track when the report came.
        sent: u64,
    },
    /// Datagrams came to the session's UDP ports from an address other than
    /// the client's (or to a pair no track uses) and were dropped: nobody
    /// else can feed a session. The first is reported at once, later ones
    /// at most every 5 s (summed), and those not reported yet before
    /// `Closed`.
    DatagramsDropped {
        /// Dropped since the last report.
        dropped: u64,
        /// The sender of the last one.
        last_from: SocketAddr,
    },
    /// The RTSP connection closed while the session plays over UDP only: it
    /// goes on without it until it ends, expires (no request naming it on
    /// another connection and no RTCP from the client for
    /// `session_timeout`), or a TEARDOWN on another connection ends it. The
    /// runtime stops reading the connection's socket but keeps its UDP
    /// sockets.
    Detached {
        /// The RTSP session id.
        session_id: String,
    },
    /// A path's multicast stream started (the first PLAY of its sessions).
    MulticastStarted {
        /// The presentation's relative path.
        path: String,
        /// The multicast group it is sent to.
        group: Ipv4Addr,
        /// Tracks sent.
        tracks: usize,
        /// How many times the presentation plays.
        play_count: PlayCount,
    },
    /// A path's multicast stream ended (SR + BYE sent if it had started).
    MulticastEnded {
        /// The presentation's relative path.
        path: String,
        /// The multicast group it was sent to.
        group: Ipv4Addr,
        /// Why it ended.
        reason: MulticastEnd,
        /// Play-throughs completed.
        loops: u32,
        /// RTP packets sent, all tracks.
        packets: u64,
        /// RTP payload octets sent, all tracks.
        octets: u64,
    },
    /// A request's credentials were refused (answered `401`; or, when the
    /// address is blocked after too many, `503`: see [`auth`]). Never a
    /// password or an `Authorization` value.
    AuthFailed {
        /// The user named, only when it is one of the server's users.
        user: Option<String>,
        /// Why they were refused.
        reason: auth::Refusal,
    },
    /// The camera simulator did something to the session (a fault or quirk
    /// its URL asked for, see [`faults`]): one event per fault done, so
    /// that a test can compare what its client saw with what was done.
    Fault {
        /// The RTSP session id (the connection's, before SETUP).
        session_id: String,
        /// Since the session's first PLAY (`None` before it).
        #[cfg_attr(
            feature = "serde",
            serde(rename = "since_play_s", with = "crate::duration_secs::option")
        )]
        since_play: Option<Duration>,
        /// What was done.
        #[cfg_attr(feature = "serde", serde(flatten))]
        fault: FaultEvent,
    },
    /// A publisher's RECORD: the path is live (see [`live`]).
    Publishing {
        /// The publisher's RTSP session id.
        session_id: String,
        /// The path published.
        path: String,
        /// Tracks set up, of those announced that this server serves.
        tracks: usize,
        /// Announced tracks left out (a codec this server cannot serve), with why.
        skipped: Vec<String>,
    },
    /// A relayed path's upstream (the runtime's relay, not a connection):
    /// its session is up (its DESCRIBE answered, the path live), or it was
    /// lost and is being opened again.
    Upstream {
        /// The relayed path.
        path: String,
        /// Up, or lost.
        up: bool,
        /// Why it was lost.
        reason: Option<String>,
    },
    /// The connection is over; [`ServerOutput::Close`] follows.
    Closed {
        /// Why it closed.
        reason: CloseReason,
        /// Since the connection was created.
        #[cfg_attr(feature = "serde", serde(rename = "elapsed_s", with = "crate::duration_secs"))]
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
    /// When the Request-URI (or an earlier one on the connection) had a
    /// `codec` query parameter, `path` ends with `?codec=NAME`
    /// ([`Target::resource`]): the encoding a WAV file is to be served in.
    Lookup {
        /// Echoed in the answer.
        token: u64,
        /// The path to resolve.
        path: String,
    },
    /// Open a UDP port pair and answer with [`ServerInput::UdpOpened`] (a
    /// SETUP over UDP waits for it, as for a lookup).
    OpenUdp(UdpRequest),
    /// Send `data` as one datagram from `socket` to `to`. A datagram the
    /// socket cannot take now is dropped (UDP is lossy; the client's
    /// receiver reports will show it).
    SendDatagram {
        /// The connection's socket to send from.
        socket: UdpSocketId,
        /// The client's address and port.
        to: SocketAddr,
        /// The datagram (one RTP or RTCP packet).
        data: Bytes,
    },
    /// A request on this connection names a session this connection does
    /// not own (`session_id`): find it among the server's UDP sessions that
    /// may outlive their connection, refresh it (keepalive) or end it
    /// (`teardown`), and answer with [`ServerInput::OtherSession`].
    OtherSession {
        /// Echoed in the answer.
        token: u64,
        /// The session named by the request.
        session_id: String,
        /// End the session (a TEARDOWN) rather than refresh it.
        teardown: bool,
    },
    /// The session's multicast stream: join it (a SETUP) or play it (a
    /// PLAY); see [`MulticastRequest`].
    Multicast(MulticastRequest),
    /// Log this.
    Event(ServerEvent),
    /// An RTP packet the client sent on its ONVIF backchannel track (see
    /// [`ServerConfig::backchannel`]): audio for the runtime to store or play.
    Backchannel {
        /// The RTSP session's id.
        session_id: String,
        /// The presentation's relative path.
        path: String,
        /// The packet (of [`ServerConfig::backchannel_codec`], as the SDP offered it).
        packet: crate::rtp::RtpPacket,
    },
    /// A publisher's ANNOUNCE of `path` (one of [`ServerConfig::publish`]):
    /// make the path live with `source` (its tracks; no samples) unless
    /// another connection publishes it, and answer with
    /// [`ServerInput::Announced`]. The path stays live while this
    /// connection lives: the runtime ends it (and tells its readers,
    /// [`ServerInput::LiveEnded`]) when the connection closes.
    Announce {
        /// Echoed in the answer.
        token: u64,
        /// The path, relative, without query.
        path: String,
        /// The presentation readers get.
        source: Arc<MediaSource>,
    },
    /// An RTP packet the publisher sent on track `track` (of the announced
    /// source) after its RECORD: for the runtime to hand to every reader
    /// of the path as [`ServerInput::LivePacket`].
    Published {
        /// The track, an index into the announced source's tracks.
        track: usize,
        /// The packet as the publisher sent it.
        packet: crate::rtp::RtpPacket,
    },
    /// A reader's first PLAY of live path `path`: from now on, give this
    /// connection the path's packets ([`ServerInput::LivePacket`]) and its
    /// end ([`ServerInput::LiveEnded`]; at once when it is not live any more).
    ReadLive {
        /// The path, relative, without query.
        path: String,
    },
    /// Nothing more until input arrives or this instant passes.
    Timeout(Instant),
    /// Close the socket; the connection is over.
    Close,
}

/// Something that happened to the connection: the one input of
/// [`Connection::handle_input`].
///
/// Marked `#[non_exhaustive]`: inputs for other transports may be added.
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
        /// The token of the [`ServerOutput::Lookup`] answered.
        token: u64,
        /// The media, or why there is none.
        result: Result<Arc<MediaSource>, LookupError>,
    },
    /// The answer to [`ServerOutput::OpenUdp`]: the RTP port bound (RTCP is
    /// the next one), or why no pair could be opened. Unknown pairs are
    /// ignored.
    UdpOpened {
        /// The pair of the [`UdpRequest`] answered.
        pair: u16,
        /// The RTP port bound, or why none could be.
        result: Result<u16, &'a str>,
    },
    /// A datagram arrived on one of the connection's UDP sockets.
    Datagram {
        /// The socket it arrived on.
        socket: UdpSocketId,
        /// The sender.
        from: SocketAddr,
        /// The datagram.
        data: &'a [u8],
    },
    /// The answer to [`ServerOutput::OtherSession`] `token`: whether the
    /// session was found (and refreshed or torn down).
    OtherSession {
        /// The token of the [`ServerOutput::OtherSession`] answered.
        token: u64,
        /// Whether the session was found.
        found: bool,
    },
    /// A request on another connection named this connection's session: it
    /// is alive (activity at `now`).
    KeepAlive,
    /// The answer to [`MulticastRequest::Join`] `token`: where the stream
    /// sends each track of the file (`None`: not sent), or why it could not
    /// be joined (no free group, no socket). Stale tokens are ignored.
    MulticastJoined {
        /// The token of the [`MulticastRequest::Join`] answered.
        token: u64,
        /// The stream's tracks, or why it could not be joined.
        result: Result<&'a [Option<MulticastTrack>], &'a str>,
    },
    /// The answer to [`MulticastRequest::Play`] `token`: where the stream is
    /// (`None`: it is over).
    MulticastPlaying {
        /// The token of the [`MulticastRequest::Play`] answered.
        token: u64,
        /// Where the stream is, `None` when it is over.
        position: Option<MulticastPosition>,
    },
    /// The session's multicast stream ended (its last play-through): the
    /// session ends as it would over TCP (it waits `linger_after_end` for a
    /// TEARDOWN, then closes).
    MulticastEnded,
    /// The answer to [`ServerOutput::Announce`] `token`: the path is now
    /// live, or why not (another connection publishes it). Stale tokens are
    /// ignored.
    Announced {
        /// The token of the [`ServerOutput::Announce`] answered.
        token: u64,
        /// `Ok`, or why the path cannot be published.
        result: Result<(), &'a str>,
    },
    /// An answer to [`ServerOutput::Lookup`] `token`: the path is live, a
    /// publisher's presentation (the source of its
    /// [`ServerOutput::Announce`]).
    LiveFound {
        /// The token of the [`ServerOutput::Lookup`] answered.
        token: u64,
        /// The live presentation.
        source: Arc<MediaSource>,
    },
    /// A packet of the live path this connection reads
    /// ([`ServerOutput::ReadLive`]), as its publisher sent it on `track`;
    /// `now` is when it arrived.
    LivePacket {
        /// The track, an index into the live source's tracks.
        track: usize,
        /// The publisher's packet.
        packet: &'a crate::rtp::RtpPacket,
    },
    /// The live path this connection reads is not live any more (its
    /// publisher left): SR + BYE on every track, then the session waits
    /// `linger_after_end` for a TEARDOWN, as at the end of a file.
    LiveEnded,
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
            ServerInput::UdpOpened { pair, result } => f
                .debug_struct("UdpOpened")
                .field("pair", pair)
                .field("result", result)
                .finish(),
            ServerInput::Datagram { socket, from, data } => f
                .debug_struct("Datagram")
                .field("socket", socket)
                .field("from", from)
                .field("len", &data.len())
                .finish(),
            ServerInput::OtherSession { token, found } => f
                .debug_struct("OtherSession")
                .field("token", token)
                .field("found", found)
                .finish(),
            ServerInput::KeepAlive => f.write_str("KeepAlive"),
            ServerInput::MulticastJoined { token, result } => f
                .debug_struct("MulticastJoined")
                .field("token", token)
                .field("result", result)
                .finish(),
            ServerInput::MulticastPlaying { token, position } => f
                .debug_struct("MulticastPlaying")
                .field("token", token)
                .field("position", position)
                .finish(),
            ServerInput::MulticastEnded => f.write_str("MulticastEnded"),
            ServerInput::Announced { token, result } => f
                .debug_struct("Announced")
                .field("token", token)
                .field("result", result)
                .finish(),
            ServerInput::LiveFound { token, source } => f
                .debug_struct("LiveFound")
                .field("token", token)
                .field("tracks", &source.tracks.len())
                .finish(),
            ServerInput::LivePacket { track, packet } => f
                .debug_struct("LivePacket")
                .field("track", track)
                .field("seq", &packet.sequence_number)
                .field("len", &packet.payload.len())
                .finish(),
            ServerInput::LiveEnded => f.write_str("LiveEnded"),
            ServerInput::Abort(reason) => f.debug_tuple("Abort").field(reason).finish(),
        }
    }
}

/// An answer the connection waits for before it goes on with `request`.
#[derive(Debug)]
struct Pending {
    /// The lookup or other-session token, or the UDP pair.
    token: u64,
    request: Request,
    wait: Wait,
}

/// What a [`Pending`] request waits for.
#[derive(Debug)]
enum Wait {
    /// [`ServerInput::Lookup`].
    Lookup,
    /// [`ServerInput::UdpOpened`]; the SETUP is dispatched again with this
    /// source once the pair is open.
    Udp(Arc<MediaSource>),
    /// [`ServerInput::OtherSession`].
    OtherSession,
    /// [`ServerInput::MulticastJoined`]; the SETUP is dispatched again with
    /// this source once the stream of `path` and `play_count` is joined.
    MulticastJoin {
        source: Arc<MediaSource>,
        path: String,
        play_count: PlayCount,
    },
    /// [`ServerInput::MulticastPlaying`].
    MulticastPlay,
    /// [`ServerInput::Announced`] for this announcement.
    Announce(Arc<live::Announced>),
    /// The camera simulator's `slow=` or `freeze=`: the request is
    /// dispatched at this instant (a [`ServerInput::Timeout`] at or after
    /// it).
    Slow(Instant),
}

/// A publisher's side of a live path (see [`live`]).
#[derive(Debug)]
struct Publishing {
    path: String,
    announced: Arc<live::Announced>,
    /// Per announced track: the interleaved (RTP, RTCP) channels of its SETUP.
    channels: Vec<Option<(u8, u8)>>,
    /// RECORD was answered: its packets are passed on.
    recording: bool,
}

/// The multicast stream this connection joined, and where it sends each
/// track of the file.
#[derive(Debug, Clone)]
struct Joined {
    path: String,
    play_count: PlayCount,
    tracks: Vec<Option<MulticastTrack>>,
}

/// A UDP pair the runtime opened for this connection.
#[derive(Debug, Clone, Copy)]
struct OpenPair {
    pair: u16,
    rtp_port: u16,
}

/// Pending [`ServerEvent::DatagramsDropped`] count of one connection.
#[derive(Debug, Default)]
struct DropReport {
    dropped: u64,
    last_from: Option<SocketAddr>,
    last_event: Option<Instant>,
}

impl DropReport {
    fn add(&mut self, from: SocketAddr) {
        self.dropped = self.dropped.saturating_add(1);
        self.last_from = Some(from);
    }

    fn due(&self, now: Instant) -> bool {
        self.dropped > 0
            && self
                .last_event
                .is_none_or(|t| now.saturating_duration_since(t) >= LAG_EVENT_INTERVAL)
    }

    fn take(&mut self) -> Option<ServerOutput> {
        let last_from = self.last_from?;
        if self.dropped == 0 {
            return None;
        }
        let event = ServerEvent::DatagramsDropped {
            dropped: self.dropped,
            last_from,
        };
        self.dropped = 0;
        Some(ServerOutput::Event(event))
    }
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
    /// The `codec` query parameter asked for on this connection.
    codec: Option<String>,
    session_id: String,
    origin_id: u64,
    session: Option<Session>,
    /// Scratch list of NAL units, reused for every video sample.
    nals: Vec<Bytes>,
    /// Skips not reported yet, and when the last report went out.
    lag: LagReport,
    /// UDP pairs opened for this connection, used by a track or spare.
    udp_pairs: Vec<OpenPair>,
    next_pair: u16,
    /// Scratch buffer the datagrams are split off.
    datagram_buf: BytesMut,
    /// Foreign datagrams not reported yet.
    drops: DropReport,
    /// The RTSP connection is gone; the UDP session plays on.
    detached: bool,
    /// The multicast stream joined, once joined (for the connection's life).
    multicast: Option<Joined>,
    /// The camera simulator's faults, when a URL asked for some.
    faults: Option<fault_run::FaultRun>,
    /// Why the last fault query was refused, for the 400's body.
    fault_refusal: Option<String>,
    /// When the next [`ServerEvent::Progress`] is due (with a session and
    /// [`ServerConfig::progress_interval`]).
    progress_at: Option<Instant>,
    /// The live path described last (its lookup found a publisher's).
    live_described: Option<Arc<MediaSource>>,
    /// This connection publishes a path.
    publishing: Option<Publishing>,
    /// The live path read was told to the runtime ([`ServerOutput::ReadLive`]).
    reading_live: bool,
    /// Live packets passed on to the client ([`Connection::live_forwarded`]).
    live_forwarded: u64,
    /// TEARDOWN was answered: the connection closes at this instant, or at
    /// the client's end of stream if that comes first.
    torn_down: Option<Instant>,
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
            codec: None,
            session_id,
            origin_id,
            session: None,
            nals: Vec::new(),
            lag: LagReport::default(),
            udp_pairs: Vec::new(),
            next_pair: 0,
            datagram_buf: BytesMut::new(),
            drops: DropReport::default(),
            detached: false,
            multicast: None,
            faults: None,
            live_described: None,
            publishing: None,
            reading_live: false,
            torn_down: None,
            live_forwarded: 0,
            fault_refusal: None,
            progress_at: None,
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

    /// How many of the live path's packets ([`ServerInput::LivePacket`]) this
    /// connection passed on to its client so far (the others waited for a
    /// keyframe, or came while paused): a runtime measuring the time to the
    /// write counts only these.
    pub fn live_forwarded(&self) -> u64 {
        self.live_forwarded
    }

    /// Whether the RTSP connection is gone while the UDP session plays on
    /// ([`ServerEvent::Detached`]): the runtime no longer reads its socket,
    /// only the UDP sockets and the deadline.
    pub fn is_detached(&self) -> bool {
        self.detached && !self.closed
    }

    /// Tells the machine what happened at `now`; then drain
    /// [`poll_output`](Self::poll_output).
    pub fn handle_input(&mut self, now: Instant, input: ServerInput<'_>) {
        if let Some(f) = self.faults.as_mut() {
            f.set_now(now);
        }
        match input {
            ServerInput::Data(data) => self.on_data(now, data),
            ServerInput::Eof => self.on_eof(now),
            ServerInput::Timeout => self.on_timeout(now),
            ServerInput::Lookup { token, result } => self.on_lookup(now, token, result),
            ServerInput::UdpOpened { pair, result } => self.on_udp_opened(now, pair, result),
            ServerInput::Datagram { socket, from, data } => self.on_datagram(now, socket, from, data),
            ServerInput::OtherSession { token, found } => self.on_other_session(now, token, found),
            ServerInput::KeepAlive => {
                if self.session.is_some() && !self.closed {
                    self.last_activity = self.last_activity.max(now);
                }
            }
            ServerInput::MulticastJoined { token, result } => self.on_multicast_joined(now, token, result),
            ServerInput::MulticastPlaying { token, position } => self.on_multicast_playing(now, token, position),
            ServerInput::MulticastEnded => self.on_multicast_ended(now),
            ServerInput::Announced { token, result } => self.on_announced(now, token, result),
            ServerInput::LiveFound { token, source } => self.on_live_found(now, token, source),
            ServerInput::LivePacket { track, packet } => self.on_live_packet(now, track, packet),
            ServerInput::LiveEnded => self.on_live_ended(now),
            ServerInput::Abort(reason) => self.abort(now, reason),
        }
        // A session set up by this input: its first progress report is due an interval on.
        if self.progress_at.is_none() && self.session.is_some() && !self.closed {
            self.progress_at = self.config.progress_interval.map(|i| later(now, i.max(PROGRESS_MIN)));
        }
    }

    fn on_data(&mut self, now: Instant, data: &[u8]) {
        if self.closed || self.detached {
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
                        self.admit(now, req);
                    }
                }
                Ok(Some(Message::Interleaved { channel, payload })) => {
                    if self.publishing.is_some() {
                        self.on_published(now, channel, payload);
                        continue;
                    }
                    // Receiver reports or anything else: ignored, but a sign of life.
                    tracing::trace!(channel, len = payload.len(), "interleaved data from the client");
                    if let Some(session) = &self.session {
                        self.last_activity = now;
                        if session.backchannel.is_some_and(|(rtp, _)| rtp == channel) {
                            match crate::rtp::RtpPacket::parse(payload) {
                                Ok(packet) => self.queue.push_back(ServerOutput::Backchannel {
                                    session_id: session.id.clone(),
                                    path: session.path.clone(),
                                    packet,
                                }),
                                Err(e) => tracing::debug!(error = %e, "unusable backchannel RTP"),
                            }
                        }
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
        if self.torn_down.is_some_and(|t| now >= t) {
            return self.close(now, CloseReason::Teardown);
        }
        if now >= self.activity_deadline() {
            let reason = if self.session.is_some() || self.publishing.is_some() {
                CloseReason::SessionTimeout(self.session_timeout())
            } else {
                CloseReason::IdleTimeout(self.config.idle_timeout)
            };
            return self.close(now, reason);
        }
        if matches!(self.pending, Some(Pending { wait: Wait::Slow(at), .. }) if now >= at) {
            if let Some(Pending { request, .. }) = self.pending.take() {
                self.dispatch(now, request, None);
                self.resume_held(now);
            }
        }
        self.pump(now);
    }

    /// Dispatches a new request, or, when the camera simulator's `slow=` is
    /// on (the connection's faults, else the request's own URL's) or a
    /// `freeze=` is, makes it wait for its instant first.
    fn admit(&mut self, now: Instant, req: Request) {
        let frozen = self.faults.as_mut().and_then(|f| f.frozen_until(now, &mut self.queue));
        let slow = match &self.faults {
            Some(f) => f.spec.slow,
            None => match path::parse_target(&req.uri) {
                Ok(Target {
                    faults: Ok(Some(spec)), ..
                }) => spec.slow,
                _ => Duration::ZERO,
            },
        };
        let at = later(now, slow).max(frozen.unwrap_or(now));
        if at <= now {
            return self.dispatch(now, req, None);
        }
        let fault = FaultEvent::Slow {
            method: req.method.clone(),
            delay_ms: u32::try_from(at.saturating_duration_since(now).as_millis()).unwrap_or(u32::MAX),
        };
        let event = match &self.faults {
            Some(f) => f.event(fault),
            None => ServerOutput::Event(ServerEvent::Fault {
                session_id: self.session_id.clone(),
                since_play: None,
                fault,
            }),
        };
        self.queue.push_back(event);
        self.pending = Some(Pending {
            token: 0,
            request: req,
            wait: Wait::Slow(at),
        });
    }

    fn on_lookup(&mut self, now: Instant, token: u64, result: Result<Arc<MediaSource>, LookupError>) {
        let Some(Pending { request, .. }) = self.answered(token, |w| matches!(w, Wait::Lookup)) else {
            return;
        };
        let _g = self.span.clone().entered();
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
        self.resume_held(now);
    }

    /// The pending request that the answer with `token` is for, taken, when
    /// the connection waits for an answer of the kind `is` accepts (else
    /// `None`: a stale or unknown token, or the connection is closed).
    fn answered(&mut self, token: u64, is: fn(&Wait) -> bool) -> Option<Pending> {
        if self.closed || self.pending.as_ref().is_none_or(|p| p.token != token || !is(&p.wait)) {
            return None;
        }
        self.pending.take()
    }

    /// Dispatches the requests held behind an answer, until one waits again.
    fn resume_held(&mut self, now: Instant) {
        while self.pending.is_none() && !self.closed {
            let Some(req) = self.held.pop_front() else { break };
            self.admit(now, req);
        }
    }

    fn on_udp_opened(&mut self, now: Instant, pair: u16, result: Result<u16, &str>) {
        let Some(Pending {
            request,
            wait: Wait::Udp(source),
            ..
        }) = self.answered(u64::from(pair), |w| matches!(w, Wait::Udp(_)))
        else {
            return;
        };
        let _g = self.span.clone().entered();
        match result {
            Ok(rtp_port) if rtp_port % 2 == 0 && rtp_port != 0 && rtp_port < u16::MAX => {
                self.udp_pairs.push(OpenPair { pair, rtp_port });
                self.dispatch(now, request, Some(source));
            }
            Ok(rtp_port) => {
                tracing::warn!(rtp_port, "the runtime opened no even/odd pair; UDP SETUP refused");
                self.refuse_udp(now, &request);
            }
            Err(e) => {
                tracing::warn!(error = e, "no UDP port pair; UDP SETUP refused");
                self.refuse_udp(now, &request);
            }
        }
        self.resume_held(now);
    }

    fn on_multicast_joined(&mut self, now: Instant, token: u64, result: Result<&[Option<MulticastTrack>], &str>) {
        let Some(Pending {
            request,
            wait:
                Wait::MulticastJoin {
                    source,
                    path,
                    play_count,
                },
            ..
        }) = self.answered(token, |w| matches!(w, Wait::MulticastJoin { .. }))
        else {
            return;
        };
        let _g = self.span.clone().entered();
        self.multicast_joined(now, request, source, (path, play_count), result);
        self.resume_held(now);
    }

    fn on_multicast_playing(&mut self, now: Instant, token: u64, position: Option<MulticastPosition>) {
        let Some(Pending { request, .. }) = self.answered(token, |w| matches!(w, Wait::MulticastPlay)) else {
            return;
        };
        let _g = self.span.clone().entered();
        self.answer_multicast_play(now, &request, position);
        self.resume_held(now);
    }

    /// The path's stream ended: a member session ends as a session over TCP
    /// does at its end (it waits `linger_after_end` for a TEARDOWN).
    fn on_multicast_ended(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        let linger = self.config.linger_after_end;
        if let Some(session) = self
            .session
            .as_mut()
            .filter(|s| s.is_multicast() && !matches!(s.state, State::Ended { .. }))
        {
            let _g = self.span.clone().entered();
            tracing::debug!("the multicast stream ended");
            session.state = State::Ended {
                close_at: later(now, linger),
            };
        }
    }

    /// 461 to a UDP SETUP that got no pair; a session without tracks is dropped.
    fn refuse_udp(&mut self, now: Instant, request: &Request) {
        if self.session.as_ref().is_some_and(|s| s.tracks.is_empty()) {
            self.session = None;
        }
        self.refuse(now, request, 461);
    }

    fn on_other_session(&mut self, now: Instant, token: u64, found: bool) {
        let Some(Pending { request, .. }) = self.answered(token, |w| matches!(w, Wait::OtherSession)) else {
            return;
        };
        let _g = self.span.clone().entered();
        self.answer_other_session(now, &request, found);
        self.resume_held(now);
    }

    /// A datagram on one of the session's sockets: RTCP from the client is
    /// read (receiver reports) and keeps the session alive; anything from
    /// another address, or on a pair no track uses, is dropped and counted.
    fn on_datagram(&mut self, now: Instant, socket: UdpSocketId, from: SocketAddr, data: &[u8]) {
        if self.closed {
            return;
        }
        let _g = self.span.clone().entered();
        let Some(session) = self.session.as_ref() else {
            self.drop_datagram(now, from);
            return;
        };
        let Some(track) = session.udp_track(socket.pair) else {
            self.drop_datagram(now, from);
            return;
        };
        if !track.is_client(from) {
            tracing::debug!(%from, "datagram from another address than the client's; dropped");
            self.drop_datagram(now, from);
            return;
        }
        if !socket.rtcp {
            // A NAT "punch" packet or the like: from the client, not RTCP.
            tracing::trace!(len = data.len(), "datagram on the RTP port from the client");
            return;
        }
        let Ok(packets) = rtcp::parse_compound(&Bytes::copy_from_slice(data)) else {
            tracing::debug!(len = data.len(), "unparsable RTCP from the client; ignored");
            return;
        };
        self.last_activity = self.last_activity.max(now);
        let (ssrc, clock_rate, source_track, sent) =
            (track.ssrc(), track.clock_rate, track.source_track, track.packets_sent());
        let session_id = session.id.clone();
        for packet in &packets {
            let blocks = match packet {
                RtcpPacket::ReceiverReport(rr) => &rr.reports,
                RtcpPacket::SenderReport(sr) => &sr.reports,
                _ => continue,
            };
            for block in blocks.iter().filter(|b| b.ssrc == ssrc) {
                let jitter = Duration::from_nanos(u64::from(block.jitter) * 1_000_000_000 / u64::from(clock_rate));
                tracing::debug!(
                    track = source_track,
                    fraction_lost = block.fraction_lost,
                    cumulative_lost = block.cumulative_lost,
                    ?jitter,
                    "receiver report"
                );
                self.queue.push_back(ServerOutput::Event(ServerEvent::ReceiverReport {
                    session_id: session_id.clone(),
                    track: source_track,
                    fraction_lost: block.fraction_lost,
                    cumulative_lost: block.cumulative_lost,
                    highest_sequence: block.highest_sequence,
                    jitter,
                    sent,
                }));
            }
        }
    }

    fn drop_datagram(&mut self, now: Instant, from: SocketAddr) {
        self.drops.add(from);
        if self.drops.due(now) {
            self.drops.last_event = Some(now);
            self.queue.extend(self.drops.take());
        }
    }

    fn on_eof(&mut self, now: Instant) {
        if self.closed || self.detached {
            return;
        }
        // Nobody is left to read what was not written yet.
        self.out.clear();
        if self.torn_down.is_some() {
            return self.close(now, CloseReason::Teardown);
        }
        if let Some(session) = self.session.as_ref().filter(|s| s.plays_over_udp_only()) {
            let _g = self.span.clone().entered();
            tracing::debug!("connection closed; the UDP session plays on");
            self.detached = true;
            self.held.clear();
            self.pending = None;
            self.queue.push_back(ServerOutput::Event(ServerEvent::Detached {
                session_id: session.id.clone(),
            }));
            return;
        }
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
        let mut at = self.activity_deadline();
        at = self.torn_down.map_or(at, |t| at.min(t));
        at = self.progress_at.map_or(at, |p| at.min(p));
        let stall_end = self.faults.as_ref().and_then(fault_run::FaultRun::stall_end);
        match (self.session.as_ref().and_then(Session::next_deadline), stall_end) {
            // Stalled: nothing of the media before the stall's end.
            (Some(media), Some(end)) => at = at.min(media.max(end)),
            (Some(media), None) => at = at.min(media),
            (None, _) => {}
        }
        if let Some(Pending {
            wait: Wait::Slow(slow), ..
        }) = &self.pending
        {
            at = at.min(*slow);
        }
        match self.faults.as_ref().and_then(fault_run::FaultRun::next_deadline) {
            Some(f) => at.min(f),
            None => at,
        }
    }

    /// The session timeout in force: the URL's `session_timeout=`, else the
    /// server's.
    fn session_timeout(&self) -> Duration {
        self.faults
            .as_ref()
            .and_then(|f| f.spec.session_timeout)
            .unwrap_or(self.config.session_timeout)
    }

    /// Whether the URL asked for quirk `q`; if so, its event for `method`.
    fn quirk(&mut self, q: Quirk, method: &Method) -> bool {
        let Some(f) = self.faults.as_ref().filter(|f| f.spec.has(q)) else {
            return false;
        };
        let event = f.event(FaultEvent::Quirk {
            quirk: q,
            method: method.clone(),
        });
        self.queue.push_back(event);
        true
    }

    fn activity_deadline(&self) -> Instant {
        let limit = if self.session.is_some() || self.publishing.is_some() {
            self.session_timeout()
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
        if self.drops.due(now) {
            self.drops.last_event = Some(now);
            self.queue.extend(self.drops.take());
        }
        if let Some(f) = self.faults.as_mut() {
            f.release_due(now, &mut self.queue);
            if f.close_due(now) {
                let event = f.close_event();
                self.queue.push_back(event);
                return self.close(now, CloseReason::Fault);
            }
            if f.stalled(now, &mut self.queue) {
                return;
            }
        }
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
        if let Some(at) = self.progress_at.filter(|&at| now >= at) {
            let interval = self.config.progress_interval.unwrap_or(PROGRESS_MIN).max(PROGRESS_MIN);
            // The next report an interval after this one, or after now when this one was late.
            let next = later(at, interval);
            self.progress_at = Some(if next > now { next } else { later(now, interval) });
            self.queue.push_back(ServerOutput::Event(progress(session, now, false)));
        }
        let mut sink = Sink::new(
            &mut self.out,
            &mut self.queue,
            &mut self.datagram_buf,
            self.faults.as_mut(),
        );
        let finished = session.pump(now, ntp, &mut sink, &mut self.nals, linger);
        if let Some(faults) = self.faults.as_mut() {
            if faults.closing {
                let event = faults.close_event();
                self.queue.push_back(event);
                return self.close(now, CloseReason::Fault);
            }
            if finished.is_some() {
                faults.flush(&mut self.queue);
            }
        }
        let Some(session) = self.session.as_mut() else {
            return;
        };
        if let Some(f) = finished {
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

    /// TEARDOWN (answered): the session's media stops at once; a publisher's
    /// connection closes (its path ends with it). Any other connection stays,
    /// as GStreamer's and live555's servers keep it, until the client closes
    /// it (most do at once) or `idle_timeout` passes, then closes with the
    /// reason `Teardown`: GStreamer's rtspsrc sends PAUSE and TEARDOWN from
    /// two threads when it stops, so its PAUSE can come after the TEARDOWN,
    /// however late its thread runs. Meanwhile PAUSE and keepalives are
    /// answered (200, nothing to do), PLAY and SETUP are 454.
    fn teardown(&mut self, now: Instant) {
        if self.publishing.is_some() || self.session.is_none() {
            return self.close(now, CloseReason::Teardown);
        }
        let end = later(now, self.config.idle_timeout);
        if let Some(session) = self.session.as_mut() {
            // Ended without a BYE: the client asked for the end. Its own
            // linger never comes before the connection's.
            session.state = State::Ended {
                close_at: later(end, Duration::from_secs(1)),
            };
        }
        self.torn_down = Some(self.torn_down.unwrap_or(end));
    }

    fn close(&mut self, now: Instant, reason: CloseReason) {
        if self.closed {
            return;
        }
        tracing::debug!(%reason, "connection closed");
        if let Some(session) = &self.session {
            self.queue.extend(self.lag.take(&session.id));
            if self.progress_at.is_some() {
                self.queue.push_back(ServerOutput::Event(progress(session, now, true)));
            }
        }
        self.queue.extend(self.drops.take());
        self.progress_at = None;
        self.closed = true;
        self.held.clear();
        self.pending = None;
        self.session = None;
        self.described = None;
        self.publishing = None;
        self.live_described = None;
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

/// The shortest [`ServerConfig::progress_interval`] taken (a smaller one is raised to it).
const PROGRESS_MIN: Duration = Duration::from_millis(100);

/// The [`ServerEvent::Progress`] of `session` at `now`.
fn progress(session: &Session, now: Instant, last: bool) -> ServerEvent {
    let (packets, octets) = session.totals();
    ServerEvent::Progress {
        session_id: session.id.clone(),
        path: session.path.clone(),
        transport: session.transport(),
        packets,
        octets,
        behind: session.behind(now),
        last,
    }
}

/// `t + d`, or a year after `t` if that overflows (or `t` itself).
fn later(t: Instant, d: Duration) -> Instant {
    t.checked_add(d)
        .or_else(|| t.checked_add(Duration::from_secs(365 * 86_400)))
        .unwrap_or(t)
}
