//! Publishing a presentation to an RTSP server (sans-IO): ANNOUNCE, SETUP
//! with `mode=record`, RECORD, then the media in real time, interleaved on
//! the RTSP connection (RFC 2326 §10.3, §10.11, §12.39), then TEARDOWN.
//!
//! A [`Publisher`] is what a camera is to a server that records it: it
//! sends the [`MediaSource`] it is given as the file server sends it to a
//! reader (the same packetizers, pacing and sender reports: the server's
//! `Session`, which is why this machine lives in the server module), but
//! over a connection it opened itself. Like the other machines it only
//! takes inputs ([`Publisher::handle_input`]: connected, bytes, end of
//! stream, I/O error, a deadline, close) and gives outputs
//! ([`Publisher::poll_output`]: bytes to write, events, the next deadline,
//! done); `docs/ARCHITECTURE.md`, "Publishing".
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Instant;
//! use rtsp_toolkit_core::server::publish::{Publisher, PublishInput, PublishOptions, PublishOutput};
//! use rtsp_toolkit_core::source::MediaSource;
//!
//! # fn source() -> Arc<MediaSource> { unimplemented!() }
//! # fn run(source: Arc<MediaSource>) -> Result<(), Box<dyn std::error::Error>> {
//! let now = Instant::now();
//! let mut p = Publisher::new("rtsp://127.0.0.1:8554/live", source, PublishOptions::default(), now, 7, 0)?;
//! let (host, port) = p.connect_target();
//! let target = (host.to_owned(), port);
//! // ... connect to `target`, then:
//! p.handle_input(now, PublishInput::Connected { local: "127.0.0.1:40000".parse()?, peer: "127.0.0.1:8554".parse()? });
//! while let PublishOutput::Transmit(bytes) = p.poll_output() {
//!     // write `bytes`: the ANNOUNCE
//! #   let _ = bytes;
//! }
//! # let _ = target;
//! # Ok(()) }
//! ```
//!
//! # Decisions
//! - Every track of the source is announced and set up, each on the
//!   interleaved channels `2k`/`2k+1` it asks for; a server that answers
//!   other channels is followed.
//! - A 401 is answered once per request with the URL's credentials (Basic
//!   or Digest, the strongest offered); the following requests carry them.
//! - While recording, a keepalive `OPTIONS` goes out every half of the
//!   session timeout the server gave (`Session: id;timeout=T`, 60 s when
//!   absent); its answer is not waited for (a server that does not answer
//!   it is not an error; one that closes the connection is).
//! - At the end of the media (or on [`PublishInput::Close`]) the sender
//!   reports and BYE go out, then TEARDOWN, whose answer is awaited up to
//!   the timeout; then [`PublishOutput::Done`]. A TEARDOWN answered by
//!   closing or resetting the connection, or not at all, ends the publish
//!   without an error: the media went out.

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::clock::{self, SplitMix64};
use super::path::PlayCount;
use super::sdp_writer::{session_description, Description};
use super::stream::{Session, State};
use super::track_out::{Delivery, Sink};
use super::ServerOutput;
use crate::auth::{parse_challenges, Authenticator, Credentials};
use crate::message::{parse_interleaved, parse_session, Decoder, Headers, Limits, Message, Method, Request, Response};
use crate::source::MediaSource;

/// How a [`Publisher`] behaves.
#[derive(Debug, Clone)]
pub struct PublishOptions {
    /// How long an answer may take, and the connection (default 10 s).
    pub timeout: Duration,
    /// How many times the media is sent back to back (default once;
    /// [`PlayCount::Forever`] until closed).
    pub count: PlayCount,
    /// Largest RTP payload (default 1400 bytes).
    pub max_payload: usize,
    /// The `User-Agent` header (default `rtsp-toolkit/VERSION`).
    pub user_agent: String,
    /// Interval between RTCP sender reports (default 5 s).
    pub rtcp_interval: Duration,
}

impl Default for PublishOptions {
    fn default() -> Self {
        PublishOptions {
            timeout: Duration::from_secs(10),
            count: PlayCount::default(),
            max_payload: 1400,
            user_agent: concat!("rtsp-toolkit/", env!("CARGO_PKG_VERSION")).to_owned(),
            rtcp_interval: Duration::from_secs(5),
        }
    }
}

/// What the runtime tells a [`Publisher`].
#[derive(Debug, Clone, Copy)]
pub enum PublishInput<'a> {
    /// The connection is open.
    Connected {
        /// Its local address.
        local: SocketAddr,
        /// The server's address.
        peer: SocketAddr,
    },
    /// The connection could not be made (the reason as text).
    ConnectFailed(&'a str),
    /// Bytes read from the connection.
    Data(&'a [u8]),
    /// The server closed the connection.
    Eof,
    /// A read or write failed (the reason as text).
    IoError(&'a str),
    /// The deadline of the last [`PublishOutput::Timeout`] passed.
    Timeout,
    /// Stop: the end of the media now (sender reports and BYE), then
    /// TEARDOWN. Safe more than once and in any phase.
    Close,
}

/// What a [`Publisher`] asks of the runtime.
#[derive(Debug)]
pub enum PublishOutput {
    /// Write these bytes to the connection, in order.
    Transmit(Bytes),
    /// Something happened.
    Event(PublishEvent),
    /// Nothing more until this instant (or until more input).
    Timeout(Instant),
    /// Finished: close the connection. The last event was
    /// [`PublishEvent::Finished`].
    Done,
}

/// Why publishing failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishError {
    /// The connection could not be made.
    Connect(String),
    /// Reading or writing failed, or the server closed the connection
    /// before the end.
    Connection(String),
    /// The server refused a request.
    Refused {
        /// The method refused.
        method: String,
        /// The status code.
        status: u16,
        /// The reason phrase.
        reason: String,
    },
    /// No answer in time.
    Timeout {
        /// The method waiting for its answer (or `CONNECT`).
        method: String,
    },
    /// The server broke the protocol (an unparsable message, a missing
    /// `Session` header, ...).
    Protocol(String),
    /// Authentication failed or could not be done.
    Auth(String),
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublishError::Connect(r) => write!(f, "cannot connect: {r}"),
            PublishError::Connection(r) => write!(f, "connection error: {r}"),
            PublishError::Refused { method, status, reason } => {
                write!(f, "{method} refused: {status} {reason}")
            }
            PublishError::Timeout { method } => write!(f, "no answer to {method} in time"),
            PublishError::Protocol(r) => write!(f, "protocol error: {r}"),
            PublishError::Auth(r) => write!(f, "authentication failed: {r}"),
        }
    }
}

impl std::error::Error for PublishError {}

/// What happened while publishing.
#[derive(Debug, Clone, PartialEq)]
pub enum PublishEvent {
    /// A request was answered.
    Response {
        /// The request's method.
        method: String,
        /// Its Request-URI.
        url: String,
        /// The status code.
        status: u16,
        /// The reason phrase.
        reason: String,
        /// From sending the request to its whole answer.
        elapsed: Duration,
    },
    /// RECORD was answered 200: the media goes out from now on.
    Recording {
        /// The server's session id.
        session: String,
        /// The tracks set up.
        tracks: usize,
    },
    /// The end: what was sent and, when it failed, why.
    Finished {
        /// Times the media was sent through (a partial last one counts).
        loops: u32,
        /// RTP packets sent.
        packets: u64,
        /// RTP payload octets sent.
        octets: u64,
        /// `None` when everything went out and the TEARDOWN was answered
        /// (or the close was asked for).
        error: Option<PublishError>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Connecting,
    /// Waiting for the answer to ANNOUNCE, a SETUP, RECORD.
    Announcing,
    SettingUp(usize),
    Recording,
    /// RECORD answered; media flowing.
    Sending,
    TearingDown,
    Done,
}

/// The publishing machine: one connection, one presentation.
#[derive(Debug)]
pub struct Publisher {
    options: PublishOptions,
    /// The Request-URI (the URL without credentials).
    uri: String,
    host: String,
    port: u16,
    credentials: Option<Credentials>,
    auth: Option<Authenticator>,
    session: Session,
    server_session: Option<String>,
    keepalive_every: Duration,
    next_keepalive: Option<Instant>,
    phase: Phase,
    cseq: u32,
    /// The request waiting for its answer: CSeq, method, URI, headers,
    /// body, when sent, whether it was already retried with credentials.
    pending: Option<Pending>,
    /// Answers not waited for (keepalives), by CSeq; a few at most.
    ignored: VecDeque<u32>,
    decoder: Decoder,
    out: BytesMut,
    scratch: BytesMut,
    datagrams: VecDeque<ServerOutput>,
    nals: Vec<Bytes>,
    events: VecDeque<PublishEvent>,
    rng: SplitMix64,
    created: Instant,
    ntp_at_created: u64,
    origin_id: u64,
    deadline: Option<Instant>,
    loops: u32,
    close_asked: bool,
}

#[derive(Debug)]
struct Pending {
    cseq: u32,
    method: Method,
    uri: String,
    headers: Headers,
    body: Bytes,
    sent: Instant,
    retried: bool,
}

impl Publisher {
    /// A publisher of `source` to `url` (`rtsp://[user:password@]host[:port]/path`).
    /// `seed` picks the SSRCs, sequence numbers and timestamps (give each
    /// publisher a different one); `ntp_at_now` is the wall clock at `now`
    /// as an NTP timestamp, for the sender reports (0: unknown).
    ///
    /// # Errors
    ///
    /// A text saying what is wrong with the URL, or that the source has no
    /// track.
    pub fn new(
        url: &str,
        source: Arc<MediaSource>,
        options: PublishOptions,
        now: Instant,
        seed: u64,
        ntp_at_now: u64,
    ) -> Result<Publisher, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("bad URL {url:?}: {e}"))?;
        if parsed.scheme() != "rtsp" {
            return Err(format!(
                "only rtsp:// URLs can be published to, not {}://",
                parsed.scheme()
            ));
        }
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("no host in {url:?}"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = parsed.port().unwrap_or(554);
        if source.tracks.is_empty() {
            return Err("the source has no track to publish".to_owned());
        }
        let credentials = Credentials::from_url(&parsed);
        let mut clean = parsed.clone();
        let _ = clean.set_username("");
        let _ = clean.set_password(None);
        let uri = clean.as_str().trim_end_matches('/').to_owned();
        let path = clean.path().to_owned();
        let mut rng = SplitMix64::new(seed);
        let origin_id = rng.next_u64() >> 1;
        let deadline = Some(later(now, options.timeout));
        Ok(Publisher {
            options,
            uri,
            host,
            port,
            credentials,
            auth: None,
            session: Session::new(String::new(), path, source),
            server_session: None,
            keepalive_every: Duration::from_secs(30),
            next_keepalive: None,
            phase: Phase::Connecting,
            cseq: 0,
            pending: None,
            ignored: VecDeque::new(),
            decoder: Decoder::new(Limits::default()),
            out: BytesMut::new(),
            scratch: BytesMut::new(),
            datagrams: VecDeque::new(),
            nals: Vec::new(),
            events: VecDeque::new(),
            rng,
            created: now,
            ntp_at_created: ntp_at_now,
            origin_id,
            deadline,
            loops: 0,
            close_asked: false,
        })
    }

    /// The host and port to connect to.
    pub fn connect_target(&self) -> (&str, u16) {
        (&self.host, self.port)
    }

    /// Hands in what happened at `now`.
    pub fn handle_input(&mut self, now: Instant, input: PublishInput<'_>) {
        if self.phase == Phase::Done {
            return;
        }
        match input {
            PublishInput::Connected { .. } => {
                if self.phase == Phase::Connecting {
                    if self.close_asked {
                        self.finish(None);
                        return;
                    }
                    self.phase = Phase::Announcing;
                    let sdp = session_description(&Description {
                        source: &self.session.source,
                        authority: &self.authority(),
                        name: self.session.path.rsplit('/').next().unwrap_or(""),
                        origin_id: self.origin_id,
                        range_end: None,
                        backchannel: None,
                    });
                    let headers = Headers::new().with("Content-Type", "application/sdp");
                    self.request(now, Method::Announce, self.uri.clone(), headers, Bytes::from(sdp));
                }
            }
            PublishInput::ConnectFailed(reason) => self.finish(Some(PublishError::Connect(reason.to_owned()))),
            PublishInput::Data(data) => {
                self.decoder.extend(data);
                self.read(now);
            }
            PublishInput::Eof => {
                let error = (!matches!(self.phase, Phase::TearingDown))
                    .then(|| PublishError::Connection("the server closed the connection".to_owned()));
                self.finish(error);
            }
            // A server may reset the connection instead of answering TEARDOWN (FFmpeg's listen mode
            // does): once the media went out, that is the end, not a failure.
            PublishInput::IoError(reason) => {
                let error = (self.phase != Phase::TearingDown).then(|| PublishError::Connection(reason.to_owned()));
                self.finish(error);
            }
            PublishInput::Timeout => self.on_timeout(now),
            PublishInput::Close => self.close(now),
        }
    }

    /// The next thing to do; call until [`PublishOutput::Timeout`] or
    /// [`PublishOutput::Done`].
    pub fn poll_output(&mut self) -> PublishOutput {
        if let Some(e) = self.events.pop_front() {
            return PublishOutput::Event(e);
        }
        if !self.out.is_empty() {
            return PublishOutput::Transmit(self.out.split().freeze());
        }
        if self.phase == Phase::Done {
            return PublishOutput::Done;
        }
        let mut at = self.deadline;
        if self.phase == Phase::Sending {
            at = earliest(at, self.session.next_deadline());
            at = earliest(at, self.next_keepalive);
        }
        PublishOutput::Timeout(at.unwrap_or_else(|| later(self.created, Duration::from_secs(86_400 * 365))))
    }

    /// The wall clock at `now`, as an NTP timestamp, for the sender reports.
    fn ntp_at(&self, now: Instant) -> u64 {
        clock::ntp_add(self.ntp_at_created, now.saturating_duration_since(self.created))
    }

    fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    fn request(&mut self, now: Instant, method: Method, uri: String, headers: Headers, body: Bytes) {
        self.send(now, method, uri, headers, body, false);
    }

    fn send(&mut self, now: Instant, method: Method, uri: String, headers: Headers, body: Bytes, retried: bool) {
        self.cseq += 1;
        let mut h = Headers::new().with("CSeq", self.cseq.to_string());
        for (name, value) in headers.iter() {
            h.push(name, value);
        }
        h.push("User-Agent", self.options.user_agent.clone());
        if let Some(id) = &self.server_session {
            h.push("Session", id.clone());
        }
        if let Some(auth) = self.auth.as_mut() {
            h.push("Authorization", auth.authorization(method.as_str(), &uri));
        }
        Request {
            method: method.clone(),
            uri: uri.clone(),
            headers: h,
            body: body.clone(),
        }
        .encode(&mut self.out);
        self.pending = Some(Pending {
            cseq: self.cseq,
            method,
            uri,
            headers,
            body,
            sent: now,
            retried,
        });
        self.deadline = Some(later(now, self.options.timeout));
    }

    fn read(&mut self, now: Instant) {
        loop {
            match self.decoder.decode() {
                Ok(None) => return,
                Ok(Some(Message::Response(r))) => self.on_response(now, r),
                // RTCP receiver reports from the server, or anything else on a channel: not used.
                Ok(Some(Message::Interleaved { .. })) => {}
                Ok(Some(Message::Request(r))) => {
                    // A server's request (OPTIONS, GET_PARAMETER): answered 501, as the client does.
                    let cseq = r.headers.get("CSeq").unwrap_or("0").to_owned();
                    Response {
                        status: 501,
                        reason: "Not Implemented".to_owned(),
                        headers: Headers::new().with("CSeq", cseq),
                        body: Bytes::new(),
                    }
                    .encode(&mut self.out);
                }
                Err(e) => {
                    self.finish(Some(PublishError::Protocol(format!(
                        "unreadable message from the server: {e}"
                    ))));
                    return;
                }
            }
            if self.phase == Phase::Done {
                return;
            }
        }
    }

    fn on_response(&mut self, now: Instant, r: Response) {
        let cseq = r.headers.cseq();
        if let Some(i) = self.ignored.iter().position(|c| Some(*c) == cseq) {
            self.ignored.remove(i);
            return;
        }
        let Some(p) = self.pending.take() else {
            return;
        };
        if cseq.is_some_and(|c| c != p.cseq) {
            // An answer to something else: keep waiting.
            self.pending = Some(p);
            return;
        }
        self.events.push_back(PublishEvent::Response {
            method: p.method.as_str().to_owned(),
            url: p.uri.clone(),
            status: r.status,
            reason: r.reason.clone(),
            elapsed: now.saturating_duration_since(p.sent),
        });
        if r.status == 401 && !p.retried {
            let Some(credentials) = self.credentials.clone() else {
                self.finish(Some(PublishError::Auth(
                    "the server asks for credentials and the URL has none".to_owned(),
                )));
                return;
            };
            let values: Vec<&str> = r.headers.get_all("WWW-Authenticate").collect();
            let auth = parse_challenges(&values)
                .map_err(|e| e.to_string())
                .and_then(|c| Authenticator::from_challenges(credentials, &c).map_err(|e| e.to_string()));
            match auth {
                Ok(a) => {
                    self.auth = Some(a);
                    self.send(now, p.method, p.uri, p.headers, p.body, true);
                }
                Err(e) => self.finish(Some(PublishError::Auth(e))),
            }
            return;
        }
        if self.phase == Phase::TearingDown {
            self.finish(None);
            return;
        }
        if !(200..300).contains(&r.status) {
            let error = if r.status == 401 {
                PublishError::Auth(format!("{} answered 401 to the credentials", p.method.as_str()))
            } else {
                PublishError::Refused {
                    method: p.method.as_str().to_owned(),
                    status: r.status,
                    reason: r.reason,
                }
            };
            self.finish(Some(error));
            return;
        }
        self.deadline = None;
        match self.phase {
            Phase::Announcing => self.setup(now, 0),
            Phase::SettingUp(k) => {
                if let Err(e) = self.on_setup(k, &r) {
                    self.finish(Some(PublishError::Protocol(e)));
                    return;
                }
                if k + 1 < self.session.source.tracks.len() {
                    self.setup(now, k + 1);
                } else {
                    self.phase = Phase::Recording;
                    let headers = Headers::new().with("Range", "npt=0.000-");
                    self.request(now, Method::Record, self.uri.clone(), headers, Bytes::new());
                }
            }
            Phase::Recording => {
                self.phase = Phase::Sending;
                self.session.play(now, self.options.count, self.options.rtcp_interval);
                self.next_keepalive = Some(later(now, self.keepalive_every));
                self.events.push_back(PublishEvent::Recording {
                    session: self.server_session.clone().unwrap_or_default(),
                    tracks: self.session.tracks.len(),
                });
                if self.close_asked {
                    self.close(now);
                } else {
                    self.pump(now);
                }
            }
            Phase::Connecting | Phase::Sending | Phase::TearingDown | Phase::Done => {}
        }
    }

    fn setup(&mut self, now: Instant, k: usize) {
        self.phase = Phase::SettingUp(k);
        let url = format!("{}/trackID={k}", self.uri);
        let transport = format!("RTP/AVP/TCP;unicast;interleaved={}-{};mode=record", 2 * k, 2 * k + 1);
        self.request(
            now,
            Method::Setup,
            url,
            Headers::new().with("Transport", transport),
            Bytes::new(),
        );
    }

    /// Reads the SETUP answer of track `k`: the session id (and its
    /// timeout) and the channels; sets the track up.
    fn on_setup(&mut self, k: usize, r: &Response) -> Result<(), String> {
        let session = r
            .headers
            .get("Session")
            .ok_or_else(|| "SETUP answered without a Session header".to_owned())?;
        let (id, timeout) =
            parse_session(session).ok_or_else(|| format!("SETUP answered with an empty session id ({session:?})"))?;
        if let Some(t) = timeout {
            // Half the timeout, at least a second, at most 30 s.
            self.keepalive_every = Duration::from_secs((t / 2).clamp(1, 30));
        }
        self.server_session = Some(id.to_owned());
        let (mut rtp, mut rtcp) = ((2 * k) as u8, (2 * k + 1) as u8);
        if let Some(t) = r.headers.get("Transport") {
            match parse_interleaved(t) {
                Some(channels) => (rtp, rtcp) = channels,
                None if t.contains("interleaved=") => {
                    return Err(format!("SETUP answered with bad interleaved channels: {t:?}"))
                }
                None => {}
            }
        }
        let url = format!("{}/trackID={k}", self.uri);
        self.session.set_up(
            k,
            Delivery::Interleaved { rtp, rtcp },
            url,
            &mut self.rng,
            self.options.max_payload,
            None,
        );
        Ok(())
    }

    fn on_timeout(&mut self, now: Instant) {
        if self.deadline.is_some_and(|d| now >= d) {
            let method = match (&self.pending, self.phase) {
                (Some(p), _) => p.method.as_str().to_owned(),
                (None, Phase::Connecting) => "CONNECT".to_owned(),
                _ => "the request".to_owned(),
            };
            if self.phase == Phase::TearingDown {
                // The media went out; an unanswered TEARDOWN is not a failure of the publish.
                self.finish(None);
            } else {
                self.finish(Some(PublishError::Timeout { method }));
            }
            return;
        }
        if self.phase == Phase::Sending {
            if self.next_keepalive.is_some_and(|k| now >= k) && self.pending.is_none() {
                self.next_keepalive = Some(later(now, self.keepalive_every));
                self.keepalive(now);
            }
            self.pump(now);
        }
    }

    /// An OPTIONS whose answer is not waited for.
    fn keepalive(&mut self, now: Instant) {
        self.request(now, Method::Options, self.uri.clone(), Headers::new(), Bytes::new());
        if let Some(p) = self.pending.take() {
            self.ignored.push_back(p.cseq);
            while self.ignored.len() > 4 {
                self.ignored.pop_front();
            }
        }
        self.deadline = None;
    }

    fn pump(&mut self, now: Instant) {
        let ntp = self.ntp_at(now);
        let mut sink = Sink::new(&mut self.out, &mut self.datagrams, &mut self.scratch, None);
        if let Some(f) = self.session.pump(now, ntp, &mut sink, &mut self.nals, Duration::ZERO) {
            self.loops = f.loops;
            self.teardown(now);
        }
        self.datagrams.clear();
    }

    fn close(&mut self, now: Instant) {
        self.close_asked = true;
        match self.phase {
            Phase::Connecting => self.finish(None),
            Phase::Sending => {
                let ntp = self.ntp_at(now);
                let mut sink = Sink::new(&mut self.out, &mut self.datagrams, &mut self.scratch, None);
                if let Some(f) = self.session.stop(now, ntp, &mut sink, Duration::ZERO) {
                    // Stopped inside play-through `f.loops` (0-based): it counts.
                    self.loops = f.loops.saturating_add(1);
                }
                self.datagrams.clear();
                self.teardown(now);
            }
            // The answer in flight comes first; RECORD's then closes at once.
            Phase::Announcing | Phase::SettingUp(_) | Phase::Recording => {
                if self.server_session.is_some() && self.phase != Phase::Recording {
                    self.teardown(now);
                } else if self.server_session.is_none() {
                    self.finish(None);
                }
            }
            Phase::TearingDown | Phase::Done => {}
        }
    }

    fn teardown(&mut self, now: Instant) {
        if matches!(self.phase, Phase::TearingDown | Phase::Done) {
            return;
        }
        self.phase = Phase::TearingDown;
        self.next_keepalive = None;
        self.request(now, Method::Teardown, self.uri.clone(), Headers::new(), Bytes::new());
    }

    fn finish(&mut self, error: Option<PublishError>) {
        if self.phase == Phase::Done {
            return;
        }
        let (packets, octets) = self.session.totals();
        let loops = match &self.session.state {
            // Failed while sending: at least the one being sent counts.
            State::Playing(_) => self.loops.max(1),
            _ => self.loops,
        };
        self.events.push_back(PublishEvent::Finished {
            loops,
            packets,
            octets,
            error,
        });
        self.phase = Phase::Done;
        self.pending = None;
        self.deadline = None;
    }
}

fn later(t: Instant, d: Duration) -> Instant {
    t.checked_add(d).unwrap_or(t + Duration::from_secs(86_400 * 365))
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Decoder;
    use crate::rtp::RtpPacket;

    const URL: &str = "rtsp://user:secret@127.0.0.1:8554/live/cam";

    struct Run {
        p: Publisher,
        now: Instant,
        /// What the publisher wrote, decoded.
        sent: Decoder,
        events: Vec<PublishEvent>,
        done: bool,
        deadline: Option<Instant>,
    }

    impl Run {
        fn new() -> Run {
            let now = Instant::now();
            let source = Arc::new(super::super::tests::synthetic_source());
            let p = Publisher::new(URL, source, PublishOptions::default(), now, 7, 0).unwrap();
            let mut r = Run {
                p,
                now,
                sent: Decoder::new(Limits::default()),
                events: Vec::new(),
                done: false,
                deadline: None,
            };
            r.input(PublishInput::Connected {
                local: "127.0.0.1:40000".parse().unwrap(),
                peer: "127.0.0.1:8554".parse().unwrap(),
            });
            r
        }

        fn input(&mut self, input: PublishInput<'_>) {
            self.p.handle_input(self.now, input);
            loop {
                match self.p.poll_output() {
                    PublishOutput::Transmit(b) => self.sent.extend(&b),
                    PublishOutput::Event(e) => self.events.push(e),
                    PublishOutput::Timeout(at) => {
                        self.deadline = Some(at);
                        break;
                    }
                    PublishOutput::Done => {
                        self.done = true;
                        break;
                    }
                }
            }
        }

        /// The next message the publisher sent.
        fn next_sent(&mut self) -> Option<Message> {
            self.sent.decode().unwrap()
        }

        fn next_request(&mut self) -> Request {
            loop {
                match self.next_sent() {
                    Some(Message::Request(r)) => return r,
                    Some(_) => continue,
                    None => panic!("no request sent"),
                }
            }
        }

        fn answer(&mut self, text: &str) {
            let text = text.replace('\n', "\r\n");
            self.input(PublishInput::Data(text.as_bytes()));
        }

        /// Advances to the next deadline.
        fn tick(&mut self) {
            let at = self.deadline.expect("a deadline");
            self.now = self.now.max(at);
            self.input(PublishInput::Timeout);
        }
    }

    fn to_record(r: &mut Run) {
        let announce = r.next_request();
        assert_eq!(announce.method, Method::Announce);
        assert_eq!(
            announce.uri, "rtsp://127.0.0.1:8554/live/cam",
            "no credentials in the URI"
        );
        assert_eq!(announce.headers.get("Content-Type"), Some("application/sdp"));
        let sdp = std::str::from_utf8(&announce.body).unwrap();
        assert!(
            sdp.contains("m=video 0 RTP/AVP 96") && sdp.contains("a=control:trackID=1"),
            "{sdp}"
        );
        r.answer("RTSP/1.0 200 OK\nCSeq: 1\n\n");
        let setup = r.next_request();
        assert_eq!(setup.method, Method::Setup);
        assert_eq!(setup.uri, "rtsp://127.0.0.1:8554/live/cam/trackID=0");
        assert_eq!(
            setup.headers.get("Transport"),
            Some("RTP/AVP/TCP;unicast;interleaved=0-1;mode=record")
        );
        r.answer(
            "RTSP/1.0 200 OK\nCSeq: 2\nSession: abc;timeout=10\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\n\n",
        );
        let setup = r.next_request();
        assert_eq!(setup.uri, "rtsp://127.0.0.1:8554/live/cam/trackID=1");
        assert_eq!(setup.headers.get("Session"), Some("abc"));
        // The server moves the audio to channels 6-7: followed.
        r.answer("RTSP/1.0 200 OK\nCSeq: 3\nSession: abc\nTransport: RTP/AVP/TCP;unicast;interleaved=6-7\n\n");
        let record = r.next_request();
        assert_eq!(record.method, Method::Record);
        assert_eq!(record.headers.get("Session"), Some("abc"));
        r.answer("RTSP/1.0 200 OK\nCSeq: 4\nSession: abc\n\n");
        assert!(r
            .events
            .iter()
            .any(|e| matches!(e, PublishEvent::Recording { session, tracks: 2 } if session == "abc")));
    }

    #[test]
    fn announces_sets_up_records_sends_everything_and_tears_down() {
        let mut r = Run::new();
        to_record(&mut r);
        let mut rtp = [0usize; 2];
        let mut keepalives = 0;
        let mut teardown = None;
        for _ in 0..10_000 {
            while let Some(m) = r.next_sent() {
                match m {
                    Message::Interleaved { channel: 0, payload } => {
                        RtpPacket::parse(payload).unwrap();
                        rtp[0] += 1;
                    }
                    Message::Interleaved { channel: 6, payload } => {
                        RtpPacket::parse(payload).unwrap();
                        rtp[1] += 1;
                    }
                    Message::Interleaved { channel: 1 | 7, .. } => {}
                    Message::Request(q) if q.method == Method::Options => keepalives += 1,
                    Message::Request(q) if q.method == Method::Teardown => teardown = Some(q),
                    other => panic!("unexpected {other:?}"),
                }
            }
            if teardown.is_some() {
                break;
            }
            r.tick();
        }
        let teardown = teardown.expect("TEARDOWN at the end");
        assert_eq!(teardown.headers.get("Session"), Some("abc"));
        assert!(rtp[0] > 10 && rtp[1] > 5, "{rtp:?}");
        assert_eq!(
            keepalives, 0,
            "the 400 ms of media end before the first keepalive (5 s)"
        );
        let cseq = teardown.headers.cseq().unwrap();
        r.answer(&format!("RTSP/1.0 200 OK\nCSeq: {cseq}\n\n"));
        assert!(r.done);
        match r.events.last() {
            Some(PublishEvent::Finished {
                packets,
                error: None,
                loops: 1,
                ..
            }) => assert_eq!(*packets as usize, rtp[0] + rtp[1]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn keepalives_go_out_at_half_the_session_timeout_while_looping_until_closed() {
        let mut r = Run::new();
        r.p.options.count = PlayCount::Forever;
        to_record(&mut r);
        let start = r.now;
        let mut keepalives = Vec::new();
        for _ in 0..100_000 {
            while let Some(m) = r.next_sent() {
                if let Message::Request(q) = m {
                    assert_eq!(q.method, Method::Options);
                    keepalives.push(r.now - start);
                    // Answered late and out of turn: ignored.
                    let cseq = q.headers.cseq().unwrap();
                    r.answer(&format!("RTSP/1.0 200 OK\nCSeq: {cseq}\n\n"));
                }
            }
            if r.now - start > Duration::from_secs(12) {
                break;
            }
            r.tick();
        }
        assert_eq!(keepalives.len(), 2, "{keepalives:?}");
        assert!(keepalives[0] >= Duration::from_secs(5) && keepalives[0] < Duration::from_millis(5100));
        r.input(PublishInput::Close);
        let mut teardown = None;
        while let Some(m) = r.next_sent() {
            if let Message::Request(q) = m {
                teardown = Some(q);
            }
        }
        let teardown = teardown.expect("TEARDOWN after close");
        assert_eq!(teardown.method, Method::Teardown);
        // No answer: after the timeout the publish still counts as done, without error.
        r.tick();
        assert!(r.done);
        assert!(matches!(
            r.events.last(),
            Some(PublishEvent::Finished { error: None, .. })
        ));
    }

    #[test]
    fn a_401_is_answered_with_the_urls_credentials_once() {
        let mut r = Run::new();
        let announce = r.next_request();
        assert!(announce.headers.get("Authorization").is_none());
        r.answer("RTSP/1.0 401 Unauthorized\nCSeq: 1\nWWW-Authenticate: Digest realm=\"cam\", nonce=\"n1\"\n\n");
        let again = r.next_request();
        assert_eq!(again.method, Method::Announce);
        assert_eq!(again.body, announce.body);
        let auth = again.headers.get("Authorization").unwrap();
        assert!(auth.starts_with("Digest username=\"user\""), "{auth}");
        r.answer("RTSP/1.0 401 Unauthorized\nCSeq: 2\nWWW-Authenticate: Digest realm=\"cam\", nonce=\"n2\"\n\n");
        assert!(r.done);
        assert!(matches!(
            r.events.last(),
            Some(PublishEvent::Finished {
                error: Some(PublishError::Auth(_)),
                ..
            })
        ));
    }

    #[test]
    fn refusals_timeouts_and_a_closed_connection_end_with_their_error() {
        let mut r = Run::new();
        r.next_request();
        r.answer("RTSP/1.0 403 Forbidden\nCSeq: 1\n\n");
        assert!(matches!(
            r.events.last(),
            Some(PublishEvent::Finished { error: Some(PublishError::Refused { status: 403, method, .. }), .. }) if method == "ANNOUNCE"
        ));
        let mut r = Run::new();
        r.tick();
        assert!(matches!(
            r.events.last(),
            Some(PublishEvent::Finished { error: Some(PublishError::Timeout { method }), .. }) if method == "ANNOUNCE"
        ));
        let mut r = Run::new();
        to_record(&mut r);
        r.tick();
        r.input(PublishInput::Eof);
        assert!(matches!(
            r.events.last(),
            Some(PublishEvent::Finished {
                error: Some(PublishError::Connection(_)),
                ..
            })
        ));
        let mut r = Run::new();
        r.answer("garbage that is not RTSP\n\n");
        assert!(r.done);
        assert!(matches!(
            r.events.last(),
            Some(PublishEvent::Finished {
                error: Some(PublishError::Protocol(_)),
                ..
            })
        ));
    }

    #[test]
    fn bad_urls_are_refused() {
        let source = Arc::new(super::super::tests::synthetic_source());
        let now = Instant::now();
        for url in ["http://x/y", "rtsp://", "not a url"] {
            assert!(
                Publisher::new(url, source.clone(), PublishOptions::default(), now, 1, 0).is_err(),
                "{url}"
            );
        }
    }
}
