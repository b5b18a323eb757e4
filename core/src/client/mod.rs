//! The RTSP client session machine.
//!
//! [`Client`] walks OPTIONS → DESCRIBE → SETUP (each enabled track, RTP over
//! TCP interleaved) → PLAY, keeps the session alive, and sends TEARDOWN when
//! closed. It is sans-IO: the runtime connects the socket, feeds received
//! bytes with [`Client::handle_input`], calls [`Client::handle_timeout`] when
//! the deadline from [`Output::Timeout`] passes, and writes whatever
//! [`Output::Transmit`] gives. Every duration in an [`Event`] is computed from
//! the [`Instant`]s passed in, so the same input gives the same events on
//! every runtime and in replays.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use rtsp_toolkit_core::client::{Client, ClientOptions, Output};
//!
//! let t0 = Instant::now();
//! let mut client = Client::new("rtsp://user:pw@127.0.0.1:8554/cam", ClientOptions::default(), t0).unwrap();
//! assert_eq!(client.connect_target(), ("127.0.0.1".to_string(), 8554));
//! // The runtime connects, then reports it:
//! client.handle_connected(t0 + Duration::from_millis(3), "127.0.0.1:40000".parse().unwrap(), "127.0.0.1:8554".parse().unwrap());
//! let mut sent = Vec::new();
//! loop {
//!     match client.poll_output() {
//!         Output::Transmit(bytes) => sent.extend_from_slice(&bytes),
//!         Output::Event(_) => {}
//!         Output::Timeout(_) | Output::Done => break,
//!     }
//! }
//! assert!(sent.starts_with(b"OPTIONS rtsp://127.0.0.1:8554/cam RTSP/1.0\r\n"));
//! ```
//!
//! Transport is a type ([`TransportKind`]), not an assumption, so that RTP
//! over UDP can be added later without reshaping the events; today only TCP
//! interleaved exists.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use url::Url;

use crate::auth::{self, Authenticator, Credentials};
use crate::codec::{
    AudioFrame, DepacketizeError, Depacketizer, Frame, SequenceTracker, TimestampUnroller, VideoFrame,
    DEFAULT_MAX_FRAME_BYTES,
};
use crate::error::{Error, ProtocolError};
use crate::message::{Decoder, Headers, Limits, Message, Method, Request, Response};
use crate::rtcp::{self, RtcpPacket};
use crate::rtp::RtpPacket;
use crate::sdp::{Media, MediaKind, Sdp};

/// Which message kinds the session logs (the original toolkit's `log_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogKinds(u8);

impl LogKinds {
    /// Nothing.
    pub const NONE: LogKinds = LogKinds(0);
    /// RTSP requests and responses (the default).
    pub const RTSP: LogKinds = LogKinds(1);
    /// Every RTP packet (verbose).
    pub const RTP: LogKinds = LogKinds(2);
    /// Every RTCP packet.
    pub const RTCP: LogKinds = LogKinds(4);
    /// Everything.
    pub const ALL: LogKinds = LogKinds(7);

    /// Whether every kind in `other` is selected.
    pub fn contains(self, other: LogKinds) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for LogKinds {
    type Output = LogKinds;
    fn bitor(self, rhs: LogKinds) -> LogKinds {
        LogKinds(self.0 | rhs.0)
    }
}

impl Default for LogKinds {
    fn default() -> Self {
        LogKinds::RTSP
    }
}

/// Session options. `Default` gives video and audio on, a 4 s timeout (the
/// original toolkit's default) and the default message [`Limits`].
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Set up the first video track of the SDP.
    pub enable_video: bool,
    /// Set up the first audio track of the SDP.
    pub enable_audio: bool,
    /// How long to wait for the connection, for each response, and for any
    /// data while playing.
    pub timeout: Duration,
    /// Connect to this `host:port` instead of the URL's, keeping the URL in
    /// requests (a relay, tunnel or forwarded port).
    pub forward_address: Option<String>,
    /// Label for this session in logs.
    pub session_id: Option<String>,
    /// Prefix for this session's log lines.
    pub log_prefix: String,
    /// Which message kinds are logged.
    pub log: LogKinds,
    /// `User-Agent` header value.
    pub user_agent: String,
    /// Bounds on received messages.
    pub limits: Limits,
    /// Largest frame assembled; a bigger one is dropped with a warning and
    /// the stream goes on at the next frame.
    pub max_frame_bytes: usize,
    /// Assemble video and audio frames (default). Off, the session gives
    /// RTP/RTCP and loss events only, for tools that need packet flow alone
    /// (such as a load generator).
    pub assemble_frames: bool,
    /// Record everything the session receives, with receive instants, to
    /// this file (see [`crate::capture`]); the runtime does the writing.
    pub capture: Option<std::path::PathBuf>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            enable_video: true,
            enable_audio: true,
            timeout: Duration::from_secs(4),
            forward_address: None,
            session_id: None,
            log_prefix: String::new(),
            log: LogKinds::default(),
            user_agent: concat!("rtsp-toolkit/", env!("CARGO_PKG_VERSION")).to_owned(),
            limits: Limits::default(),
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            assemble_frames: true,
            capture: None,
        }
    }
}

/// How a track's media travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportKind {
    /// RTP/AVP/TCP interleaved on the RTSP connection, on these `$` channels.
    TcpInterleaved { rtp_channel: u8, rtcp_channel: u8 },
}

/// A media track that was set up.
#[derive(Debug, Clone, PartialEq)]
pub struct Track {
    /// Index among the set-up tracks (the `track` field of media events).
    pub index: usize,
    /// Index of the media section in the SDP.
    pub media_index: usize,
    pub kind: MediaKind,
    /// Encoding name as the SDP gives it (`H264`, `MPEG4-GENERIC`, ...).
    pub codec: String,
    pub payload_type: u8,
    pub clock_rate: u32,
    pub channels: Option<u16>,
    /// The resolved control URL the track was set up with.
    pub control_url: String,
    pub transport: TransportKind,
}

/// The result of the runtime's connection attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectEvent {
    /// `host:port` that was dialed.
    pub target: String,
    /// From session start to the connection result.
    pub elapsed: Duration,
    /// Local and peer addresses, or why it failed.
    pub result: Result<(SocketAddr, SocketAddr), Error>,
}

/// One request/response pair. A 401 that is retried with credentials is its
/// own event, followed by the retry's.
#[derive(Debug, Clone, PartialEq)]
pub struct MethodEvent {
    pub method: Method,
    /// Request-URI (never with credentials).
    pub url: String,
    pub cseq: u32,
    pub status: u16,
    pub reason: String,
    pub headers: Headers,
    pub body: Bytes,
    /// The parsed SDP, for a successful DESCRIBE.
    pub sdp: Option<Sdp>,
    /// The track a successful SETUP set up.
    pub track: Option<Track>,
    /// From sending the request to receiving the whole response.
    pub elapsed: Duration,
    /// From session start to receiving the whole response.
    pub session_elapsed: Duration,
}

impl MethodEvent {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// One RTP packet.
#[derive(Debug, Clone, PartialEq)]
pub struct RtpEvent {
    pub track: usize,
    pub channel: u8,
    pub packet: RtpPacket,
    /// From session start to when the bytes that completed it were handed in.
    pub recv_tick: Duration,
}

/// One (compound) RTCP packet.
#[derive(Debug, Clone, PartialEq)]
pub struct RtcpEvent {
    pub track: usize,
    pub channel: u8,
    pub packets: Vec<RtcpPacket>,
    pub recv_tick: Duration,
}

/// One assembled video frame (an access unit, Annex B).
#[derive(Debug, Clone, PartialEq)]
pub struct VideoFrameEvent {
    pub track: usize,
    pub frame: VideoFrame,
    /// The RTP timestamp unrolled across 32-bit wraps (first frame: its own value).
    pub extended_timestamp: i64,
    /// When the packet that completed the frame was handed in.
    pub recv_tick: Duration,
}

/// One assembled audio frame.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioFrameEvent {
    pub track: usize,
    pub frame: AudioFrame,
    /// The RTP timestamp unrolled across 32-bit wraps (first frame: its own value).
    pub extended_timestamp: i64,
    /// When the packet that completed the frame was handed in.
    pub recv_tick: Duration,
}

/// RTP packets missing from a track's sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LossEvent {
    pub track: usize,
    /// Packets missing right before `sequence_number`.
    pub lost: u32,
    /// The first packet received after the gap.
    pub sequence_number: u16,
    /// All packets counted as lost on this track so far.
    pub total_lost: u64,
    pub recv_tick: Duration,
}

/// The session ended.
#[derive(Debug, Clone, PartialEq)]
pub struct ClosedEvent {
    pub session_elapsed: Duration,
    /// `None` for a clean end (stopped by the user, or the server ended the stream with BYE).
    pub error: Option<Error>,
}

/// Something odd that did not end the session.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Warning {
    /// A response's CSeq did not match the request it answered (tolerated, as FFmpeg does).
    CseqMismatch {
        method: Method,
        expected: u32,
        got: Option<u32>,
    },
    /// Interleaved data on a channel no track was set up on (ignored).
    UnknownChannel { channel: u8, len: usize },
    /// An RTP or RTCP packet that could not be parsed (ignored).
    BadPacket { track: usize, channel: u8, error: String },
    /// A keepalive was refused; the session goes on.
    KeepaliveFailed {
        method: Method,
        status: u16,
        fallback: Option<Method>,
    },
    /// The server sent a request; it was answered 501.
    ServerRequest { method: Method },
    /// TEARDOWN got no answer within the timeout.
    TeardownUnanswered,
    /// A packet could not be depacketized; the track resynchronizes at the next frame.
    Depacketize { track: usize, error: DepacketizeError },
    /// No depacketizer for this track's codec: RTP events only, no frames.
    UnsupportedCodec { track: usize, codec: String },
}

/// What the session reports, in order.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    Connect(ConnectEvent),
    /// Boxed: it is large and rare, and every RTP event would pay its size.
    Method(Box<MethodEvent>),
    Rtp(RtpEvent),
    Rtcp(RtcpEvent),
    Video(VideoFrameEvent),
    Audio(AudioFrameEvent),
    Loss(LossEvent),
    Warning(Warning),
    Closed(ClosedEvent),
}

/// One line per event, for logs and examples: the kind, then its fields.
///
/// ```
/// use std::time::Duration;
/// use rtsp_toolkit_core::client::{ClosedEvent, Event};
/// let e = Event::Closed(ClosedEvent { session_elapsed: Duration::from_millis(1500), error: None });
/// assert_eq!(e.to_string(), "closed   after 1.5s");
/// ```
impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Event::Connect(c) => match &c.result {
                Ok((local, peer)) => write!(f, "connect  {local} -> {peer} in {:?}", c.elapsed),
                Err(e) => write!(f, "connect  {} failed in {:?}: {e}", c.target, c.elapsed),
            },
            Event::Method(m) => write!(
                f,
                "rtsp     {} {} -> {} {} elapsed={:?} session_elapsed={:?}",
                m.method, m.url, m.status, m.reason, m.elapsed, m.session_elapsed
            ),
            Event::Rtp(r) => write!(
                f,
                "rtp      track={} seq={} ts={} marker={} pt={} len={} recv_tick={:?}",
                r.track,
                r.packet.sequence_number,
                r.packet.timestamp,
                r.packet.marker,
                r.packet.payload_type,
                r.packet.payload.len(),
                r.recv_tick
            ),
            Event::Rtcp(r) => {
                write!(f, "rtcp     track={}", r.track)?;
                for p in &r.packets {
                    match p {
                        RtcpPacket::SenderReport(sr) => write!(
                            f,
                            " SR(ssrc={:08x} rtp={} packets={} octets={})",
                            sr.ssrc, sr.rtp_timestamp, sr.packet_count, sr.octet_count
                        )?,
                        RtcpPacket::ReceiverReport(rr) => write!(f, " RR(ssrc={:08x})", rr.ssrc)?,
                        RtcpPacket::SourceDescription(_) => write!(f, " SDES")?,
                        RtcpPacket::Bye(_) => write!(f, " BYE")?,
                        RtcpPacket::Other { packet_type, .. } => write!(f, " PT{packet_type}")?,
                    }
                }
                write!(f, " recv_tick={:?}", r.recv_tick)
            }
            Event::Video(v) => write!(
                f,
                "video    track={} {:?} ts={} size={} keyframe={} new_parameters={} loss={} recv_tick={:?}",
                v.track,
                v.frame.codec,
                v.frame.timestamp,
                v.frame.data.len(),
                v.frame.keyframe,
                v.frame.new_parameters,
                v.frame.loss,
                v.recv_tick
            ),
            Event::Audio(a) => write!(
                f,
                "audio    track={} {:?} ts={} size={} samples={} rate={} channels={} loss={} recv_tick={:?}",
                a.track,
                a.frame.codec,
                a.frame.timestamp,
                a.frame.data.len(),
                a.frame.sample_count,
                a.frame.sample_rate,
                a.frame.channels,
                a.frame.loss,
                a.recv_tick
            ),
            Event::Loss(l) => write!(
                f,
                "loss     track={} lost={} before seq={} total={}",
                l.track, l.lost, l.sequence_number, l.total_lost
            ),
            Event::Warning(w) => write!(f, "warning  {w:?}"),
            Event::Closed(c) => match &c.error {
                None => write!(f, "closed   after {:?}", c.session_elapsed),
                Some(e) => write!(f, "closed   after {:?}: {e}", c.session_elapsed),
            },
        }
    }
}

/// What the runtime should do next.
#[derive(Debug)]
pub enum Output {
    /// Write these bytes to the connection.
    Transmit(Bytes),
    /// Hand this event to the user.
    Event(Event),
    /// Nothing more until input arrives or this instant passes.
    Timeout(Instant),
    /// The session is over: close the connection and stop.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Connecting,
    Options,
    Describe,
    Setup(usize),
    Play,
    Playing,
    TearingDown,
    Closed,
}

/// What turns a track's RTP into frames.
#[derive(Debug)]
struct Receiver {
    sequence: SequenceTracker,
    timeline: TimestampUnroller,
    depacketizer: Option<Depacketizer>,
}

/// Whether a response ended the session.
enum Flow {
    Continue,
    Finished,
}

#[derive(Debug)]
struct Inflight {
    request: Request,
    cseq: u32,
    sent_at: Instant,
    retried_auth: bool,
    keepalive: bool,
}

/// The client session machine. See the [module docs](self).
#[derive(Debug)]
pub struct Client {
    opts: ClientOptions,
    url: Url,
    /// The URL as sent in requests: no userinfo.
    request_url: String,
    credentials: Option<Credentials>,
    authenticator: Option<Authenticator>,
    start: Instant,
    phase: Phase,
    decoder: Decoder,
    next_cseq: u32,
    inflight: VecDeque<Inflight>,
    /// CSeqs of requests abandoned by `close()` (at most a few).
    abandoned: Vec<u32>,
    transmit: VecDeque<Bytes>,
    events: VecDeque<Event>,
    done: bool,
    public_methods: Option<String>,
    base_url: Option<Url>,
    sdp: Option<Sdp>,
    /// (media index, kind) of each track to set up, in SDP order.
    wanted: Vec<usize>,
    tracks: Vec<Track>,
    session: Option<String>,
    session_timeout: Duration,
    keepalive_method: Method,
    keepalive_at: Option<Instant>,
    last_data: Instant,
    byes: Vec<bool>,
    /// Per set-up track, same index as `tracks`.
    receivers: Vec<Receiver>,
    ignored_frames: u64,
    span: tracing::Span,
}

impl Client {
    /// A session for `url` (`rtsp://[user[:password]@]host[:port]/path`),
    /// starting at `now`. Credentials are taken from the URL, percent-decoded,
    /// and never sent in the Request-URI.
    pub fn new(url: &str, opts: ClientOptions, now: Instant) -> Result<Client, Error> {
        if !opts.enable_video && !opts.enable_audio {
            return Err(Error::Config("enable_video and enable_audio are both false".into()));
        }
        if opts.timeout.is_zero() {
            return Err(Error::Config("timeout must be above zero".into()));
        }
        let parsed = Url::parse(url).map_err(|e| Error::Config(format!("bad URL: {e}")))?;
        if parsed.scheme() != "rtsp" {
            return Err(Error::Config(format!(
                "unsupported URL scheme {:?} (only rtsp:// is supported)",
                parsed.scheme()
            )));
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(Error::Config("URL has no host".into()));
        }
        if let Some(fwd) = &opts.forward_address {
            split_host_port(fwd, 554).ok_or_else(|| Error::Config(format!("bad forward address {fwd:?}")))?;
        }
        let credentials = Credentials::from_url(&parsed);
        let mut clean = parsed.clone();
        // Cannot fail for a URL with a host.
        let _ = clean.set_username("");
        let _ = clean.set_password(None);
        let request_url = clean.to_string();
        let span = tracing::info_span!(
            "rtsp_session",
            session_id = opts.session_id.as_deref().unwrap_or(""),
            prefix = opts.log_prefix.as_str(),
            url = request_url.as_str(),
        );
        Ok(Client {
            decoder: Decoder::new(opts.limits),
            url: clean,
            request_url,
            credentials,
            authenticator: None,
            start: now,
            phase: Phase::Connecting,
            next_cseq: 1,
            inflight: VecDeque::new(),
            abandoned: Vec::new(),
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            done: false,
            public_methods: None,
            base_url: None,
            sdp: None,
            wanted: Vec::new(),
            tracks: Vec::new(),
            session: None,
            session_timeout: Duration::from_secs(60),
            keepalive_method: Method::Options,
            keepalive_at: None,
            last_data: now,
            byes: Vec::new(),
            receivers: Vec::new(),
            ignored_frames: 0,
            span,
            opts,
        })
    }

    /// Where the runtime should connect: the forward address if set, else the
    /// URL's host and port (554 by default).
    pub fn connect_target(&self) -> (String, u16) {
        if let Some(fwd) = &self.opts.forward_address {
            if let Some(hp) = split_host_port(fwd, 554) {
                return hp;
            }
        }
        let host = self.url.host_str().unwrap_or_default();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        (host.to_owned(), self.url.port().unwrap_or(554))
    }

    /// The options in force.
    pub fn options(&self) -> &ClientOptions {
        &self.opts
    }

    /// The URL as sent in requests (no credentials).
    pub fn url(&self) -> &str {
        &self.request_url
    }

    /// Tracks set up so far.
    pub fn tracks(&self) -> &[Track] {
        &self.tracks
    }

    /// The SDP from DESCRIBE, once received.
    pub fn sdp(&self) -> Option<&Sdp> {
        self.sdp.as_ref()
    }

    /// Interleaved frames received on channels no track uses.
    pub fn ignored_frames(&self) -> u64 {
        self.ignored_frames
    }

    /// Whether the session has ended (the Closed event is queued or delivered).
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// The runtime connected the socket.
    pub fn handle_connected(&mut self, now: Instant, local: SocketAddr, peer: SocketAddr) {
        if self.phase != Phase::Connecting {
            return;
        }
        let _g = self.span.clone().entered();
        let target = self.target_string();
        tracing::debug!(%local, %peer, "connected");
        self.events.push_back(Event::Connect(ConnectEvent {
            target,
            elapsed: now - self.start,
            result: Ok((local, peer)),
        }));
        self.last_data = now;
        self.phase = Phase::Options;
        self.send(now, Method::Options, self.request_url.clone(), Headers::new(), false);
    }

    /// The runtime could not connect; `reason` is shown to the user.
    pub fn handle_connect_failed(&mut self, now: Instant, reason: &str) {
        if self.phase != Phase::Connecting {
            return;
        }
        let err = Error::Connection(format!("cannot connect to {}: {reason}", self.target_string()));
        self.events.push_back(Event::Connect(ConnectEvent {
            target: self.target_string(),
            elapsed: now - self.start,
            result: Err(err.clone()),
        }));
        self.finish(now, Some(err));
    }

    /// Bytes received from the server at `now`.
    pub fn handle_input(&mut self, now: Instant, data: &[u8]) {
        if matches!(self.phase, Phase::Connecting | Phase::Closed) {
            return;
        }
        let _g = self.span.clone().entered();
        self.last_data = now;
        self.decoder.extend(data);
        while self.phase != Phase::Closed {
            match self.decoder.decode() {
                Ok(Some(Message::Response(resp))) => self.on_response(now, resp),
                Ok(Some(Message::Interleaved { channel, payload })) => self.on_interleaved(now, channel, payload),
                Ok(Some(Message::Request(req))) => self.on_server_request(req),
                Ok(None) => break,
                Err(e) => {
                    self.finish(now, Some(Error::Protocol(e)));
                    break;
                }
            }
        }
    }

    /// The server closed the connection (read returned 0) at `now`.
    pub fn handle_eof(&mut self, now: Instant) {
        match self.phase {
            Phase::Closed | Phase::Connecting => {}
            Phase::TearingDown => self.finish(now, None),
            _ if !self.byes.is_empty() && self.byes.iter().all(|b| *b) => self.finish(now, None),
            phase => {
                let what = match phase {
                    Phase::Playing => "while playing".to_owned(),
                    _ => format!("while waiting for the {} response", self.phase_method()),
                };
                self.finish(
                    now,
                    Some(Error::Connection(format!("connection closed by the server {what}"))),
                );
            }
        }
    }

    /// The connection broke (a read or write error) at `now`.
    pub fn handle_io_error(&mut self, now: Instant, reason: &str) {
        if self.phase == Phase::Closed {
            return;
        }
        if self.phase == Phase::TearingDown {
            return self.finish(now, None);
        }
        self.finish(now, Some(Error::Connection(reason.to_owned())));
    }

    /// Checks deadlines at `now`: per-request and read timeouts, keepalives.
    pub fn handle_timeout(&mut self, now: Instant) {
        let _g = self.span.clone().entered();
        let timeout = self.opts.timeout;
        match self.phase {
            Phase::Closed => return,
            Phase::Connecting => {
                if now >= self.start + timeout {
                    self.finish(
                        now,
                        Some(Error::Timeout {
                            waiting_for: format!("connection to {}", self.target_string()),
                            timeout,
                        }),
                    );
                }
                return;
            }
            _ => {}
        }
        if let Some(f) = self.inflight.front() {
            if now >= f.sent_at + timeout {
                if self.phase == Phase::TearingDown {
                    self.events.push_back(Event::Warning(Warning::TeardownUnanswered));
                    return self.finish(now, None);
                }
                let what = format!("response to {}", f.request.method);
                return self.finish(
                    now,
                    Some(Error::Timeout {
                        waiting_for: what,
                        timeout,
                    }),
                );
            }
        }
        if self.phase == Phase::Playing {
            if now >= self.last_data + timeout {
                return self.finish(
                    now,
                    Some(Error::Timeout {
                        waiting_for: "data from the server while playing".into(),
                        timeout,
                    }),
                );
            }
            if let Some(at) = self.keepalive_at {
                if now >= at && self.inflight.is_empty() {
                    self.send_keepalive(now);
                }
            }
        }
    }

    /// Ends the session: TEARDOWN when a server session exists, then Closed.
    /// Safe to call more than once and in any phase.
    pub fn close(&mut self, now: Instant) {
        let _g = self.span.clone().entered();
        match self.phase {
            Phase::Closed | Phase::TearingDown => {}
            _ if self.session.is_some() => {
                self.phase = Phase::TearingDown;
                // Requests still unanswered (a keepalive racing the stop) are
                // abandoned, but their answers must not be taken for TEARDOWN's.
                self.abandoned = self.inflight.drain(..).map(|f| f.cseq).collect();
                let url = self.aggregate_url();
                self.send(now, Method::Teardown, url, Headers::new(), false);
            }
            _ => self.finish(now, None),
        }
    }

    /// The next thing to do. Call until it returns [`Output::Timeout`] or
    /// [`Output::Done`] after every `handle_*` call.
    pub fn poll_output(&mut self) -> Output {
        if let Some(b) = self.transmit.pop_front() {
            return Output::Transmit(b);
        }
        if let Some(e) = self.events.pop_front() {
            return Output::Event(e);
        }
        if self.phase == Phase::Closed {
            self.done = true;
            return Output::Done;
        }
        Output::Timeout(self.next_deadline())
    }

    fn next_deadline(&self) -> Instant {
        let t = self.opts.timeout;
        if self.phase == Phase::Connecting {
            return self.start + t;
        }
        let mut at = match self.inflight.front() {
            Some(f) => f.sent_at + t,
            None => self.last_data + t,
        };
        if self.phase == Phase::Playing {
            at = at.min(self.last_data + t);
            if let (Some(k), true) = (self.keepalive_at, self.inflight.is_empty()) {
                at = at.min(k);
            }
        }
        at
    }

    fn target_string(&self) -> String {
        let (h, p) = self.connect_target();
        if h.contains(':') {
            format!("[{h}]:{p}")
        } else {
            format!("{h}:{p}")
        }
    }

    fn phase_method(&self) -> &'static str {
        match self.phase {
            Phase::Options => "OPTIONS",
            Phase::Describe => "DESCRIBE",
            Phase::Setup(_) => "SETUP",
            Phase::Play => "PLAY",
            Phase::TearingDown => "TEARDOWN",
            _ => "pending",
        }
    }

    fn finish(&mut self, now: Instant, error: Option<Error>) {
        if self.phase == Phase::Closed {
            return;
        }
        match &error {
            Some(e) => tracing::warn!(error = %e, "session closed"),
            None => tracing::debug!("session closed"),
        }
        self.phase = Phase::Closed;
        self.inflight.clear();
        self.events.push_back(Event::Closed(ClosedEvent {
            session_elapsed: now - self.start,
            error,
        }));
    }

    fn send(&mut self, now: Instant, method: Method, uri: String, extra: Headers, keepalive: bool) {
        let request = Request {
            method,
            uri,
            headers: extra,
            body: Bytes::new(),
        };
        self.send_request(now, request, false, keepalive);
    }

    fn send_request(&mut self, now: Instant, mut request: Request, retried_auth: bool, keepalive: bool) {
        let cseq = self.next_cseq;
        self.next_cseq = self.next_cseq.wrapping_add(1);
        let mut headers = Headers::new()
            .with("CSeq", cseq.to_string())
            .with("User-Agent", self.opts.user_agent.clone());
        if let Some(s) = &self.session {
            headers.push("Session", s.clone());
        }
        if let Some(a) = &mut self.authenticator {
            headers.push("Authorization", a.authorization(request.method.as_str(), &request.uri));
        }
        for (n, v) in request.headers.iter() {
            if !["CSeq", "User-Agent", "Session", "Authorization"]
                .iter()
                .any(|h| h.eq_ignore_ascii_case(n))
            {
                headers.push(n, v);
            }
        }
        let extra = std::mem::replace(&mut request.headers, headers);
        if self.opts.log.contains(LogKinds::RTSP) {
            tracing::info!(method = %request.method, uri = %request.uri, cseq, "request");
        }
        let mut out = BytesMut::new();
        request.encode(&mut out);
        self.transmit.push_back(out.freeze());
        // Keep only the caller's headers, so an auth retry rebuilds the rest.
        request.headers = extra;
        self.inflight.push_back(Inflight {
            request,
            cseq,
            sent_at: now,
            retried_auth,
            keepalive,
        });
    }

    fn on_server_request(&mut self, req: Request) {
        // Servers may send SET_PARAMETER/ANNOUNCE/OPTIONS to clients; refuse politely.
        let mut headers = Headers::new();
        if let Some(c) = req.headers.get("CSeq") {
            headers.push("CSeq", c);
        }
        let resp = Response {
            status: 501,
            reason: "Not Implemented".into(),
            headers,
            body: Bytes::new(),
        };
        let mut out = BytesMut::new();
        resp.encode(&mut out);
        self.transmit.push_back(out.freeze());
        self.events
            .push_back(Event::Warning(Warning::ServerRequest { method: req.method }));
    }

    fn on_response(&mut self, now: Instant, resp: Response) {
        let got = resp.headers.cseq();
        if got.is_some_and(|c| self.abandoned.contains(&c)) {
            tracing::debug!(
                cseq = got,
                status = resp.status,
                "answer to an abandoned request, ignored"
            );
            return;
        }
        let pos = got.and_then(|c| self.inflight.iter().position(|f| f.cseq == c));
        let inflight = match pos {
            Some(p) => self.inflight.remove(p).expect("index from position"),
            None => match self.inflight.pop_front() {
                Some(f) => {
                    self.events.push_back(Event::Warning(Warning::CseqMismatch {
                        method: f.request.method.clone(),
                        expected: f.cseq,
                        got,
                    }));
                    f
                }
                None => {
                    tracing::debug!(status = resp.status, "response to no request, ignored");
                    return;
                }
            },
        };
        if self.opts.log.contains(LogKinds::RTSP) {
            tracing::info!(method = %inflight.request.method, status = resp.status, reason = %resp.reason, "response");
        }
        let mut event = MethodEvent {
            method: inflight.request.method.clone(),
            url: inflight.request.uri.clone(),
            cseq: inflight.cseq,
            status: resp.status,
            reason: resp.reason.clone(),
            headers: resp.headers.clone(),
            body: resp.body.clone(),
            sdp: None,
            track: None,
            elapsed: now - inflight.sent_at,
            session_elapsed: now - self.start,
        };
        // A 401 to a keepalive too: a Digest nonce may expire mid-session.
        // Re-authenticate once with the new challenge; a second 401 ends it.
        if resp.status == 401 && self.phase != Phase::TearingDown {
            self.events.push_back(Event::Method(Box::new(event)));
            return self.on_unauthorized(now, inflight, &resp);
        }
        if inflight.keepalive {
            self.events.push_back(Event::Method(Box::new(event)));
            self.on_keepalive_response(now, &inflight, resp.status);
            return;
        }
        let ok = (200..300).contains(&resp.status);
        let result = if ok || self.phase == Phase::TearingDown {
            self.on_success(now, &resp, &mut event)
        } else if self.phase == Phase::Options {
            // Some cameras refuse OPTIONS; DESCRIBE is what matters.
            self.on_success(now, &resp, &mut event)
        } else {
            Err(Error::Response {
                method: inflight.request.method.clone(),
                status: resp.status,
                reason: resp.reason.clone(),
            })
        };
        self.events.push_back(Event::Method(Box::new(event)));
        match result {
            Ok(Flow::Continue) => {}
            Ok(Flow::Finished) => self.finish(now, None),
            Err(e) => self.finish(now, Some(e)),
        }
    }

    fn on_unauthorized(&mut self, now: Instant, inflight: Inflight, resp: &Response) {
        let method = inflight.request.method.clone();
        let refuse = |reason: &str| Error::Response {
            method: method.clone(),
            status: 401,
            reason: reason.to_owned(),
        };
        let Some(creds) = self.credentials.clone() else {
            return self.finish(
                now,
                Some(refuse(&format!("{} (no credentials in the URL)", resp.reason))),
            );
        };
        if inflight.retried_auth {
            return self.finish(now, Some(refuse(&format!("{} (credentials rejected)", resp.reason))));
        }
        let values: Vec<&str> = resp.headers.get_all("WWW-Authenticate").collect();
        let authenticator = auth::parse_challenges(&values)
            .map_err(ProtocolError::Auth)
            .and_then(|chs| {
                let ch = auth::choose(&chs).ok_or(ProtocolError::Auth(auth::AuthError::NoSupportedChallenge))?;
                Authenticator::new(creds, ch.clone()).map_err(ProtocolError::Auth)
            });
        match authenticator {
            Ok(a) => {
                tracing::debug!(scheme = a.scheme(), "retrying with credentials");
                self.authenticator = Some(a);
                self.send_request(now, inflight.request, true, inflight.keepalive);
            }
            Err(e) => self.finish(now, Some(Error::Protocol(e))),
        }
    }

    fn on_keepalive_response(&mut self, now: Instant, inflight: &Inflight, status: u16) {
        if !(200..300).contains(&status) {
            let fallback = (inflight.request.method == Method::GetParameter).then_some(Method::Options);
            if let Some(m) = &fallback {
                self.keepalive_method = m.clone();
            }
            self.events.push_back(Event::Warning(Warning::KeepaliveFailed {
                method: inflight.request.method.clone(),
                status,
                fallback: fallback.clone(),
            }));
            if fallback.is_some() && self.phase == Phase::Playing {
                // Try the fallback at once: the session timeout is running.
                self.send_keepalive(now);
                return;
            }
        }
        self.schedule_keepalive(now);
    }

    fn on_success(&mut self, now: Instant, resp: &Response, event: &mut MethodEvent) -> Result<Flow, Error> {
        match self.phase {
            Phase::Options => {
                self.public_methods = resp.headers.get("Public").map(str::to_owned);
                self.keepalive_method = if self
                    .public_methods
                    .as_deref()
                    .is_some_and(|p| p.split(',').any(|m| m.trim().eq_ignore_ascii_case("GET_PARAMETER")))
                {
                    Method::GetParameter
                } else {
                    Method::Options
                };
                self.phase = Phase::Describe;
                let url = self.request_url.clone();
                self.send(
                    now,
                    Method::Describe,
                    url,
                    Headers::new().with("Accept", "application/sdp"),
                    false,
                );
            }
            Phase::Describe => {
                let sdp = Sdp::parse(&resp.body).map_err(ProtocolError::Sdp)?;
                let base = resp
                    .headers
                    .get("Content-Base")
                    .or_else(|| resp.headers.get("Content-Location"))
                    .and_then(|b| Url::parse(b).ok())
                    .unwrap_or_else(|| self.url.clone());
                self.base_url = Some(base);
                self.wanted = self.choose_tracks(&sdp)?;
                event.sdp = Some(sdp.clone());
                self.sdp = Some(sdp);
                self.phase = Phase::Setup(0);
                self.send_setup(now, 0);
            }
            Phase::Setup(i) => {
                let track = self.on_setup(resp, i)?;
                event.track = Some(track);
                if i + 1 < self.wanted.len() {
                    self.phase = Phase::Setup(i + 1);
                    self.send_setup(now, i + 1);
                } else {
                    self.phase = Phase::Play;
                    let url = self.aggregate_url();
                    self.send(
                        now,
                        Method::Play,
                        url,
                        Headers::new().with("Range", "npt=0.000-"),
                        false,
                    );
                }
            }
            Phase::Play => {
                self.phase = Phase::Playing;
                self.byes = vec![false; self.tracks.len()];
                self.schedule_keepalive(now);
            }
            // Finished by the caller, after the TEARDOWN event itself.
            Phase::TearingDown => return Ok(Flow::Finished),
            Phase::Connecting | Phase::Playing | Phase::Closed => {}
        }
        Ok(Flow::Continue)
    }

    fn choose_tracks(&self, sdp: &Sdp) -> Result<Vec<usize>, Error> {
        let first = |kind: MediaKind| sdp.media.iter().position(|m| m.kind == kind);
        let mut wanted: Vec<usize> = [
            self.opts.enable_video.then(|| first(MediaKind::Video)).flatten(),
            self.opts.enable_audio.then(|| first(MediaKind::Audio)).flatten(),
        ]
        .into_iter()
        .flatten()
        .collect();
        wanted.sort_unstable();
        if wanted.is_empty() {
            let kinds: Vec<String> = sdp
                .media
                .iter()
                .map(|m| format!("{:?}", m.kind).to_lowercase())
                .collect();
            let enabled = match (self.opts.enable_video, self.opts.enable_audio) {
                (true, true) => "video or audio",
                (true, false) => "video (audio is disabled)",
                _ => "audio (video is disabled)",
            };
            return Err(Error::Protocol(ProtocolError::NoTracks(format!(
                "the SDP has no {enabled} media; it has [{}]",
                kinds.join(", ")
            ))));
        }
        Ok(wanted)
    }

    fn send_setup(&mut self, now: Instant, i: usize) {
        let media = self.media(i).clone();
        let url = self.control_url(media.control.as_deref());
        let ch = (2 * i) as u8;
        let transport = format!("RTP/AVP/TCP;unicast;interleaved={}-{}", ch, ch + 1);
        self.send(
            now,
            Method::Setup,
            url,
            Headers::new().with("Transport", transport),
            false,
        );
    }

    fn media(&self, i: usize) -> &Media {
        let sdp = self.sdp.as_ref().expect("SETUP only after DESCRIBE");
        &sdp.media[self.wanted[i]]
    }

    fn on_setup(&mut self, resp: &Response, i: usize) -> Result<Track, Error> {
        let missing = |header: &'static str, detail: &str| {
            Error::Protocol(ProtocolError::MissingHeader {
                method: Method::Setup,
                header,
                detail: detail.to_owned(),
            })
        };
        let session_value = resp
            .headers
            .get("Session")
            .ok_or_else(|| missing("Session", "absent"))?;
        let mut parts = session_value.split(';');
        let id = parts.next().unwrap_or("").trim();
        if id.is_empty() {
            return Err(missing("Session", "empty session id"));
        }
        for p in parts {
            if let Some(t) = p.trim().strip_prefix("timeout=") {
                if let Ok(secs) = t.trim().parse::<u64>() {
                    self.session_timeout = Duration::from_secs(secs.clamp(1, 3600));
                }
            }
        }
        self.session = Some(id.to_owned());
        let requested = (2 * i) as u8;
        let (rtp_channel, rtcp_channel) = match resp.headers.get("Transport") {
            Some(t) => parse_interleaved(t).unwrap_or((requested, requested + 1)),
            None => (requested, requested + 1),
        };
        if let Some(t) = resp.headers.get("Transport") {
            if t.to_ascii_uppercase().contains("RTP/AVP") && !t.to_ascii_uppercase().contains("TCP") {
                return Err(missing("Transport", &format!("server chose a non-TCP transport: {t}")));
            }
        }
        let media = self.media(i).clone();
        let track = Track {
            index: self.tracks.len(),
            media_index: self.wanted[i],
            kind: media.kind.clone(),
            codec: media.codec.clone(),
            payload_type: media.payload_type,
            clock_rate: media.clock_rate,
            channels: media.channels,
            control_url: self.control_url(media.control.as_deref()),
            transport: TransportKind::TcpInterleaved {
                rtp_channel,
                rtcp_channel,
            },
        };
        let depacketizer = match Depacketizer::new(&media, self.opts.max_frame_bytes) {
            Ok(_) if !self.opts.assemble_frames => None,
            Ok(d) => Some(d),
            Err(e) => {
                tracing::warn!(track = track.index, codec = %media.codec, error = %e, "no frames for this track");
                self.events.push_back(Event::Warning(Warning::UnsupportedCodec {
                    track: track.index,
                    codec: format!("{} ({e})", media.codec),
                }));
                None
            }
        };
        self.receivers.push(Receiver {
            sequence: SequenceTracker::new(),
            timeline: TimestampUnroller::new(),
            depacketizer,
        });
        self.tracks.push(track.clone());
        Ok(track)
    }

    /// Resolves `a=control` against the base URL (RFC 2326 C.1.1). Like most
    /// clients, the base is treated as a directory even without a trailing
    /// slash, because cameras serve `Content-Base: rtsp://h/stream` with
    /// `a=control:track1` and mean `rtsp://h/stream/track1`.
    fn control_url(&self, control: Option<&str>) -> String {
        let base = self.base_url.clone().unwrap_or_else(|| self.url.clone());
        join_control(&base, control)
    }

    fn aggregate_url(&self) -> String {
        let session_control = self.sdp.as_ref().and_then(|s| s.attribute("control"));
        self.control_url(session_control)
    }

    fn schedule_keepalive(&mut self, now: Instant) {
        let interval = (self.session_timeout.min(Duration::from_secs(60)) / 2).max(Duration::from_millis(500));
        self.keepalive_at = Some(now + interval);
    }

    fn send_keepalive(&mut self, now: Instant) {
        self.keepalive_at = None;
        let method = self.keepalive_method.clone();
        let url = match method {
            Method::Options => self.request_url.clone(),
            _ => self.aggregate_url(),
        };
        self.send(now, method, url, Headers::new(), true);
    }

    fn on_interleaved(&mut self, now: Instant, channel: u8, payload: Bytes) {
        let found = self.tracks.iter().find_map(|t| match t.transport {
            TransportKind::TcpInterleaved { rtp_channel, .. } if rtp_channel == channel => Some((t.index, false)),
            TransportKind::TcpInterleaved { rtcp_channel, .. } if rtcp_channel == channel => Some((t.index, true)),
            _ => None,
        });
        let recv_tick = now - self.start;
        let Some((track, is_rtcp)) = found else {
            self.ignored_frames += 1;
            self.events.push_back(Event::Warning(Warning::UnknownChannel {
                channel,
                len: payload.len(),
            }));
            return;
        };
        if is_rtcp {
            match rtcp::parse_compound(&payload) {
                Ok(packets) => {
                    if self.opts.log.contains(LogKinds::RTCP) {
                        tracing::info!(track, packets = packets.len(), "rtcp");
                    }
                    if packets.iter().any(|p| matches!(p, RtcpPacket::Bye(_))) {
                        if let Some(b) = self.byes.get_mut(track) {
                            *b = true;
                        }
                    }
                    self.events.push_back(Event::Rtcp(RtcpEvent {
                        track,
                        channel,
                        packets,
                        recv_tick,
                    }));
                    // Every track said BYE: the stream is over (as ffprobe sees it).
                    // Servers such as GStreamer's keep the connection open after
                    // that, so end the session ourselves.
                    if self.phase == Phase::Playing && self.byes.iter().all(|b| *b) {
                        tracing::debug!("BYE on every track; tearing down");
                        self.close(now);
                    }
                }
                Err(e) => self.events.push_back(Event::Warning(Warning::BadPacket {
                    track,
                    channel,
                    error: e.to_string(),
                })),
            }
            return;
        }
        match RtpPacket::parse(payload) {
            Ok(packet) => {
                if self.opts.log.contains(LogKinds::RTP) {
                    tracing::info!(
                        track,
                        seq = packet.sequence_number,
                        ts = packet.timestamp,
                        marker = packet.marker,
                        len = packet.payload.len(),
                        "rtp"
                    );
                }
                self.on_rtp(track, channel, packet, recv_tick);
            }
            Err(e) => self.events.push_back(Event::Warning(Warning::BadPacket {
                track,
                channel,
                error: e.to_string(),
            })),
        }
    }
}

impl Client {
    fn on_rtp(&mut self, track: usize, channel: u8, packet: RtpPacket, recv_tick: Duration) {
        let rx = &mut self.receivers[track];
        let lost = rx.sequence.observe(packet.sequence_number);
        if lost > 0 {
            self.events.push_back(Event::Loss(LossEvent {
                track,
                lost,
                sequence_number: packet.sequence_number,
                total_lost: rx.sequence.total_lost(),
                recv_tick,
            }));
        }
        let pushed = rx.depacketizer.as_mut().map(|d| d.push(&packet, lost));
        self.events.push_back(Event::Rtp(RtpEvent {
            track,
            channel,
            packet,
            recv_tick,
        }));
        if let Some(Err(error)) = pushed {
            self.events
                .push_back(Event::Warning(Warning::Depacketize { track, error }));
        }
        let Some(d) = rx.depacketizer.as_mut() else { return };
        while let Some(frame) = d.pull() {
            self.events.push_back(match frame {
                Frame::Video(frame) => Event::Video(VideoFrameEvent {
                    track,
                    extended_timestamp: rx.timeline.extend(frame.timestamp),
                    frame,
                    recv_tick,
                }),
                Frame::Audio(frame) => Event::Audio(AudioFrameEvent {
                    track,
                    extended_timestamp: rx.timeline.extend(frame.timestamp),
                    frame,
                    recv_tick,
                }),
            });
        }
    }
}

/// Resolves an SDP `a=control` value against a base URL; see
/// [`Client`]'s handling of Content-Base. `None` and `*` mean the base itself.
///
/// ```
/// use rtsp_toolkit_core::client::join_control;
/// let base = url::Url::parse("rtsp://h/cam?x=1").unwrap();
/// assert_eq!(join_control(&base, Some("trackID=1")), "rtsp://h/cam/trackID=1");
/// assert_eq!(join_control(&base, Some("rtsp://other/t")), "rtsp://other/t");
/// assert_eq!(join_control(&base, Some("*")), "rtsp://h/cam?x=1");
/// ```
pub fn join_control(base: &Url, control: Option<&str>) -> String {
    let control = control.map(str::trim).unwrap_or("*");
    if control.is_empty() || control == "*" {
        return base.to_string();
    }
    if let Ok(abs) = Url::parse(control) {
        return abs.to_string();
    }
    let mut dir = base.clone();
    dir.set_query(None);
    dir.set_fragment(None);
    if !dir.path().ends_with('/') {
        let p = format!("{}/", dir.path());
        dir.set_path(&p);
    }
    dir.join(control)
        .map(|u| u.to_string())
        .unwrap_or_else(|_| format!("{dir}{control}"))
}

fn parse_interleaved(transport: &str) -> Option<(u8, u8)> {
    // A server may list several transports; the first is the one chosen.
    let first = transport.split(',').next()?;
    let v = first.split(';').find_map(|p| p.trim().strip_prefix("interleaved="))?;
    let mut it = v.split('-');
    let a: u8 = it.next()?.trim().parse().ok()?;
    let b: u8 = match it.next() {
        Some(b) => b.trim().parse().ok()?,
        None => a.checked_add(1)?,
    };
    Some((a, b))
}

fn split_host_port(s: &str, default_port: u16) -> Option<(String, u16)> {
    let s = s.trim();
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => default_port,
            None => return None,
        };
        return Some((host.to_owned(), port));
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => Some((h.to_owned(), p.parse().ok()?)).filter(|(h, _)| !h.is_empty()),
        Some(_) => Some((s.to_owned(), default_port)),
        None if !s.is_empty() => Some((s.to_owned(), default_port)),
        None => None,
    }
}

#[cfg(test)]
mod tests;
