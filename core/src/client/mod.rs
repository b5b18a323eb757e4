//! The RTSP client session machine.
//!
//! [`Client`] walks OPTIONS → DESCRIBE → SETUP (each enabled track, RTP over
//! TCP interleaved) → PLAY, keeps the session alive, and sends TEARDOWN when
//! closed. It is sans-IO, with one input method and one output method (the
//! loop is described in `docs/ARCHITECTURE.md`): the runtime hands in
//! everything that happens as an [`Input`] through [`Client::handle_input`]
//! (the connection result, bytes read, end of stream, an I/O error, a
//! deadline passing, a close request, the user's pause or play), then
//! drains [`Client::poll_output`] until it returns [`Output::Timeout`] or
//! [`Output::Done`], writing what [`Output::Transmit`] gives. Every
//! duration in an [`Event`] is computed from the [`Instant`]s passed in, so
//! the same input gives the same events on every runtime and in replays.
//!
//! When [`ClientOptions::capture`] is set, the client records its own inputs
//! (see [`crate::capture`]); the runtime appends [`Client::take_capture`] to
//! the file.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use rtsp_toolkit_core::client::{Client, ClientOptions, Input, Output};
//!
//! let t0 = Instant::now();
//! let mut client = Client::new("rtsp://user:pw@127.0.0.1:8554/cam", ClientOptions::default(), t0).unwrap();
//! assert_eq!(client.connect_target(), ("127.0.0.1".to_string(), 8554));
//! // The runtime connects, then reports it:
//! let (local, peer) = ("127.0.0.1:40000".parse().unwrap(), "127.0.0.1:8554".parse().unwrap());
//! client.handle_input(t0 + Duration::from_millis(3), Input::Connected { local, peer });
//! let mut sent = Vec::new();
//! loop {
//!     match client.poll_output() {
//!         Output::Transmit(bytes) => sent.extend_from_slice(&bytes),
//!         Output::Event(_) => {}
//!         // With ClientOptions::transport set to UDP: sockets to open, datagrams to send.
//!         Output::SendDatagram { .. } | Output::OpenUdp(_) | Output::Reconnect => {}
//!         Output::Timeout(_) | Output::Done => break,
//!     }
//! }
//! assert!(sent.starts_with(b"OPTIONS rtsp://127.0.0.1:8554/cam RTSP/1.0\r\n"));
//! ```
//!
//! The module's parts: [`options`](ClientOptions) (what the session is asked
//! to do), [`Input`], the events, the RTSP phase machine (`session.rs`) and
//! per-track receiving (`track.rs`).
//!
//! RTP travels as [`ClientOptions::transport`] says: interleaved on the
//! RTSP connection (the default), over UDP or multicast, or UDP with a
//! fallback to TCP. The client never opens a socket: it asks the runtime for
//! UDP port pairs ([`Output::OpenUdp`]), receives [`Input::Datagram`]s and
//! sends [`Output::SendDatagram`]s (see [`UdpSocketId`]). On UDP each track
//! has a reorder buffer; on every transport the client sends RTCP receiver
//! reports (`reports.rs`, [`Event::RtcpSent`]).

pub mod backchannel;
pub mod capture;
mod control;
mod events;
pub(crate) mod input;
pub(crate) mod options;
mod reorder;
mod reports;
mod session;
mod track;
mod transport;
pub mod tunnel;
pub(crate) mod udp;

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use url::Url;

use crate::auth::{Authenticator, Credentials};
use crate::error::{ConnectionError, Error};
use crate::message::{Decoder, Headers, Message, Method, Request};
use crate::sdp::Sdp;
use capture::format::{CaptureHeader, CaptureWriter};

pub use backchannel::{BackchannelAudio, BackchannelCodec, BackchannelError};
pub use events::{
    AudioFrameEvent, ClosedEvent, ConnectEvent, Event, FallbackEvent, LossEvent, MetadataFrameEvent, MethodEvent,
    RtcpEvent, RtpEvent, TrackStats, VideoFrameEvent, Warning,
};
pub use input::{Control, Input, IoFailure, PlayRange, Scale};
pub use options::{ClientOptions, LogKinds, PortRange, Track, TrackSelection, Transport, TransportKind, Tunnel};
pub use session::join_control;
use session::split_host_port;
use track::TrackState;
pub use udp::{UdpBind, UdpRequest, UdpSocketId};

/// What the runtime should do next.
#[derive(Debug)]
pub enum Output {
    /// Write these bytes to the connection.
    Transmit(Bytes),
    /// Send this datagram from the session's UDP socket `socket` to `to`
    /// (a failed send is not reported: UDP gives no guarantee anyway).
    SendDatagram {
        /// The socket to send from.
        socket: UdpSocketId,
        /// The destination address.
        to: SocketAddr,
        /// The datagram's bytes.
        data: Bytes,
    },
    /// Open a UDP socket pair as asked, then hand in
    /// [`Input::UdpOpened`] for its `pair`.
    OpenUdp(UdpRequest),
    /// Close the connection and every UDP socket of the session, connect
    /// again to [`Client::connect_target`], and hand in
    /// [`Input::Connected`] or [`Input::ConnectFailed`] (the session falls
    /// back from UDP to TCP: [`Event::Fallback`]).
    Reconnect,
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
    /// Waiting for the runtime to open track `i`'s UDP pair (before its
    /// SETUP for unicast, after it for multicast).
    OpenUdp(usize),
    Setup(usize),
    Play,
    Playing,
    /// The user's PAUSE was answered: keepalives and reports go on, no
    /// media is expected (no read timeout).
    Paused,
    TearingDown,
    Closed,
}

/// Whether a response ended the session.
enum Flow {
    Continue,
    Finished,
}

#[derive(Debug)]
struct Inflight {
    request: Request,
    /// Every header field as sent, `Authorization` masked (for the event).
    sent_headers: Headers,
    cseq: u32,
    sent_at: Instant,
    auth: AuthRetry,
    keepalive: bool,
    /// A PAUSE or PLAY the user asked for (`Input::Pause`, `Input::Play`).
    control: bool,
}

/// How often a request was sent again after a `401`.
#[derive(Debug, Clone, Copy, Default)]
struct AuthRetry {
    /// Once after a real refusal (the first challenge, or credentials
    /// rejected): a second refusal ends the session.
    retried: bool,
    /// After `stale=true` with a new nonce: not a refusal, but bounded.
    stale: u8,
}

/// Most `stale=true` retries of one request (a server that calls every
/// nonce stale must not keep the client looping).
const MAX_STALE_RETRIES: u8 = 3;

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
    /// Outputs other than events, in order: writes, datagrams, socket requests.
    io: VecDeque<Output>,
    events: VecDeque<Event>,
    done: bool,
    public_methods: Option<String>,
    base_url: Option<Url>,
    sdp: Option<Sdp>,
    /// (media index, kind) of each track to set up, in SDP order.
    wanted: Vec<usize>,
    /// The set-up tracks, in SETUP order (the `track` index of events).
    tracks: Vec<TrackState>,
    session: Option<String>,
    session_timeout: Duration,
    keepalive_method: Method,
    keepalive_at: Option<Instant>,
    last_data: Instant,
    /// PLAY was answered: from then on a BYE on every track ends the stream.
    phase_reached_playing: bool,
    ignored_frames: u64,
    /// Records the inputs when [`ClientOptions::capture`] is set.
    recorder: Option<CaptureWriter>,
    /// The transport state: UDP ports, reports, fallback (`transport.rs`).
    udp: transport::State,
    span: tracing::Span,
    /// The TLS handshake's result, for the next `Connect` event.
    tls_info: Option<crate::tls::TlsInfo>,
    tunnel_info: Option<tunnel::TunnelInfo>,
    /// Sends the backchannel's audio once PLAY is answered.
    pacer: Option<backchannel::Pacer>,
}

impl Client {
    /// A session for `url` (`rtsp://[user[:password]@]host[:port]/path`),
    /// starting at `now`. Credentials are taken from the URL, percent-decoded,
    /// and never sent in the Request-URI.
    pub fn new(url: &str, opts: ClientOptions, now: Instant) -> Result<Client, Error> {
        if opts.tracks == TrackSelection::FirstOfEachKind
            && !opts.enable_video
            && !opts.enable_audio
            && !opts.enable_metadata
        {
            return Err(Error::Config("enable_video and enable_audio are both false".into()));
        }
        if opts.tracks == TrackSelection::Indexes(Vec::new()) {
            return Err(Error::Config("the track selection names no track".into()));
        }
        check_headers(&opts.headers)?;
        if opts.timeout.is_zero() {
            return Err(Error::Config("timeout must be above zero".into()));
        }
        if opts.transport == Transport::Auto && opts.udp_fallback_after.is_zero() {
            return Err(Error::Config(
                "udp_fallback_after must be above zero (zero would fall back before any RTP could arrive)".into(),
            ));
        }
        if opts.tunnel == Tunnel::Http && opts.transport != Transport::Tcp {
            return Err(Error::Config(format!(
                "an HTTP tunnel carries RTP interleaved: the transport must be tcp, not {}",
                opts.transport
            )));
        }
        if let (Some(start), Some(end)) = (opts.start, opts.end) {
            if end <= start {
                return Err(Error::Config(format!(
                    "the end ({}) must be after the start ({})",
                    npt(end),
                    npt(start)
                )));
            }
        }
        if opts.scale.is_some_and(|s| !s.is_finite() || s == 0.0) {
            return Err(Error::Config("scale must be a finite number other than 0".into()));
        }
        let parsed = Url::parse(url).map_err(|e| Error::Config(format!("bad URL: {e}")))?;
        if parsed.scheme() != "rtsp" && parsed.scheme() != "rtsps" {
            return Err(Error::Config(format!(
                "unsupported URL scheme {:?} (rtsp:// and rtsps:// are supported)",
                parsed.scheme()
            )));
        }
        if let Some(pin) = &opts.tls_fingerprint {
            crate::tls::parse_fingerprint(pin).map_err(|e| Error::Config(format!("bad tls_fingerprint: {e}")))?;
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(Error::Config("URL has no host".into()));
        }
        if let Some(fwd) = &opts.forward_address {
            split_host_port(fwd, 554).ok_or_else(|| Error::Config(format!("bad forward address {fwd:?}")))?;
        }
        // Credentials given as an option win over the URL's.
        let credentials = opts.credentials.clone().or_else(|| Credentials::from_url(&parsed));
        let had_credentials = credentials.is_some() || !parsed.username().is_empty();
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
        let mut client = Client {
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
            io: VecDeque::new(),
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
            phase_reached_playing: false,
            ignored_frames: 0,
            recorder: None,
            udp: transport::State::new(&opts, now),
            span,
            tls_info: None,
            tunnel_info: None,
            pacer: None,
            opts,
        };
        if client.opts.capture.is_some() {
            let header = CaptureHeader::for_options(&client.request_url, had_credentials, &client.opts);
            client.recorder = Some(CaptureWriter::new(&header, now));
        }
        Ok(client)
    }

    /// Where the runtime should connect: the forward address if set, else the
    /// URL's host and port (554 by default, 322 for `rtsps://`).
    pub fn connect_target(&self) -> (String, u16) {
        if let Some(fwd) = &self.opts.forward_address {
            if let Some(hp) = split_host_port(fwd, 554) {
                return hp;
            }
        }
        let default = if self.is_tls() {
            crate::tls::DEFAULT_RTSPS_PORT
        } else {
            554
        };
        (self.tls_server_name(), self.url.port().unwrap_or(default))
    }

    /// Whether the session runs over TLS (an `rtsps://` URL): the runtime
    /// puts a TLS layer between the socket and this machine, and hands
    /// [`Input::Connected`] in once the handshake is done
    /// ([`Client::set_tls_info`] first).
    pub fn is_tls(&self) -> bool {
        self.url.scheme() == "rtsps"
    }

    /// The URL's host, without brackets: the name a TLS layer sends (SNI)
    /// and checks the certificate against.
    pub fn tls_server_name(&self) -> String {
        let host = self.url.host_str().unwrap_or_default();
        host.trim_start_matches('[').trim_end_matches(']').to_owned()
    }

    /// What the TLS handshake of the connection about to be handed in
    /// ([`Input::Connected`]) settled; the next [`ConnectEvent`] carries it.
    /// Not recorded in captures (a replay's `Connect` event has no `tls`).
    pub fn set_tls_info(&mut self, info: crate::tls::TlsInfo) {
        self.tls_info = Some(info);
    }

    /// The HTTP tunnel of the connection about to be handed in
    /// ([`Input::Connected`]); the next [`ConnectEvent`] carries it. Not
    /// recorded in captures (a capture holds the RTSP inside the tunnel).
    pub fn set_tunnel_info(&mut self, info: tunnel::TunnelInfo) {
        self.tunnel_info = Some(info);
    }

    /// For [`Tunnel::Http`]: the request-target and the `Host` header of the
    /// tunnel's two HTTP requests ([`tunnel::get_request`]).
    pub fn tunnel_target(&self) -> (String, String) {
        let host = match (self.url.host_str(), self.url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => String::new(),
        };
        (tunnel::request_target(&self.url), host)
    }

    /// The `Range` value of PLAY: `npt=START-[END]` from the options.
    pub(crate) fn play_range(&self) -> String {
        let start = npt(self.opts.start.unwrap_or_default());
        match self.opts.end {
            Some(end) => format!("npt={start}-{}", npt(end)),
            None => format!("npt={start}-"),
        }
    }

    /// The options in force.
    pub fn options(&self) -> &ClientOptions {
        &self.opts
    }

    /// The URL as sent in requests (no credentials).
    pub fn url(&self) -> &str {
        &self.request_url
    }

    /// Tracks set up so far, in SETUP order.
    pub fn tracks(&self) -> impl ExactSizeIterator<Item = &Track> + '_ {
        self.tracks.iter().map(|t| &t.track)
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

    /// Everything that happens to the session comes in here, at `now`
    /// (see [`Input`]); then drain [`Client::poll_output`]. Inputs that do
    /// not apply in the current phase are ignored, so a runtime never has to
    /// know the phase. When recording, the input is recorded first.
    pub fn handle_input(&mut self, now: Instant, input: Input<'_>) {
        if let Some(rec) = &mut self.recorder {
            rec.record(now, input);
        }
        match input {
            Input::Connected { local, peer } => self.on_connected(now, local, peer),
            Input::ConnectFailed(failure) => self.on_connect_failed(now, failure),
            Input::Data(data) => self.on_data(now, data),
            Input::Eof => self.on_eof(now),
            Input::IoError(failure) => self.on_io_error(now, failure),
            Input::Timeout => self.on_timeout(now),
            Input::Close => {
                // The user's stop ends the session, fallback or not.
                self.udp.cancel_reconnect();
                self.close(now)
            }
            Input::UdpOpened { pair, result } => self.on_udp_opened(now, pair, result),
            Input::Datagram { socket, from, data } => self.on_datagram(now, socket, from, data),
            Input::Pause => self.on_control(now, Method::Pause, PlayRange::resume(), None),
            Input::Play { range, scale } => self.on_control(now, Method::Play, range, scale),
        }
    }

    /// Whether inputs are being recorded ([`ClientOptions::capture`] set
    /// and [`Client::stop_recording`] not called).
    pub fn is_recording(&self) -> bool {
        self.recorder.is_some()
    }

    /// The capture bytes encoded since the last call, to be appended to the
    /// capture file (the header first); `None` when not recording or
    /// nothing is new.
    pub fn take_capture(&mut self) -> Option<Bytes> {
        self.recorder
            .as_mut()
            .filter(|w| w.pending() > 0)
            .map(CaptureWriter::take)
    }

    /// Stops recording (say, the capture file could not be written);
    /// returns what was not taken yet.
    pub fn stop_recording(&mut self) -> Option<Bytes> {
        self.recorder.take().map(|mut w| w.take())
    }

    fn on_connected(&mut self, now: Instant, local: SocketAddr, peer: SocketAddr) {
        if self.phase != Phase::Connecting {
            return;
        }
        let _g = self.span.clone().entered();
        let target = self.target_string();
        tracing::debug!(%local, %peer, "connected");
        self.udp.on_connected(local, peer, &self.request_url);
        self.events.push_back(Event::Connect(ConnectEvent {
            target,
            elapsed: now - self.start,
            result: Ok((local, peer)),
            tls: self.tls_info.take(),
            tunnel: self.tunnel_info.take(),
        }));
        self.last_data = now;
        self.phase = Phase::Options;
        self.send(now, Method::Options, self.request_url.clone(), Headers::new(), false);
    }

    fn on_connect_failed(&mut self, now: Instant, failure: IoFailure<'_>) {
        if self.phase != Phase::Connecting {
            return;
        }
        let message = format!("cannot connect to {}: {}", self.target_string(), failure.reason);
        let err = Error::Connection(connection_error(message, failure));
        self.events.push_back(Event::Connect(ConnectEvent {
            target: self.target_string(),
            elapsed: now - self.start,
            result: Err(err.clone()),
            tls: None,
            tunnel: None,
        }));
        self.finish(now, Some(err));
    }

    fn on_data(&mut self, now: Instant, data: &[u8]) {
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
                    self.finish(now, Some(Error::Protocol(e.into())));
                    break;
                }
            }
        }
    }

    fn on_eof(&mut self, now: Instant) {
        match self.phase {
            Phase::Closed | Phase::Connecting => {}
            Phase::TearingDown => self.finish(now, None),
            _ if self.all_tracks_said_bye() => self.finish(now, None),
            phase => {
                let what = match phase {
                    Phase::Playing => "while playing".to_owned(),
                    Phase::Paused => "while paused".to_owned(),
                    _ => format!("while waiting for the {} response", self.phase_method()),
                };
                let message = format!("connection closed by the server {what}");
                self.finish(
                    now,
                    Some(Error::Connection(ConnectionError::new(
                        io::ErrorKind::UnexpectedEof,
                        message,
                    ))),
                );
            }
        }
    }

    fn on_io_error(&mut self, now: Instant, failure: IoFailure<'_>) {
        if self.phase == Phase::Closed {
            return;
        }
        if self.phase == Phase::TearingDown {
            return self.finish(now, None);
        }
        let err = connection_error(failure.reason.to_owned(), failure);
        self.finish(now, Some(Error::Connection(err)));
    }

    /// Checks deadlines at `now`: per-request and read timeouts, keepalives.
    fn on_timeout(&mut self, now: Instant) {
        let _g = self.span.clone().entered();
        let timeout = self.opts.timeout;
        match self.phase {
            Phase::Closed => return,
            Phase::Connecting => {
                if now >= self.udp.connecting_since + timeout {
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
        if let Phase::OpenUdp(i) = self.phase {
            // The runtime has not answered the request for UDP ports.
            if now >= self.last_data + timeout {
                return self.finish(
                    now,
                    Some(Error::Timeout {
                        waiting_for: format!("the runtime to open UDP ports for track {i}"),
                        timeout,
                    }),
                );
            }
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
        self.expire_reorder(now);
        if self.phase == Phase::Playing && self.udp_fallback_due(now) {
            return self.start_fallback(now, "no RTP arrived over UDP");
        }
        if self.phase == Phase::Playing {
            self.pace_backchannel(now);
        }
        let in_session = matches!(self.phase, Phase::Playing | Phase::Paused);
        if in_session && self.udp.reports_due(now) {
            self.send_reports(now, false);
        }
        if in_session {
            // Paused, silence is what was asked for: no read timeout (the
            // keepalives' answers are awaited like any request's).
            if self.phase == Phase::Playing && now >= self.last_data + timeout {
                return self.finish(
                    now,
                    Some(Error::Timeout {
                        waiting_for: "data from the server while playing".into(),
                        timeout,
                    }),
                );
            }
            match self.keepalive_at {
                Some(at) if now >= at && self.inflight.is_empty() => self.send_keepalive(now),
                // Paused, the keepalive is the deadline: there is always one.
                None if self.inflight.is_empty() => self.schedule_keepalive(now),
                _ => {}
            }
        }
    }

    /// Ends the session: TEARDOWN when a server session exists, then Closed.
    /// Safe more than once and in any phase.
    fn close(&mut self, now: Instant) {
        let _g = self.span.clone().entered();
        match self.phase {
            Phase::Closed | Phase::TearingDown => {}
            _ if self.session.is_some() => {
                if self.phase_reached_playing {
                    self.send_reports(now, true);
                }
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
        if let Some(o) = self.io.pop_front() {
            return o;
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
            return self.udp.connecting_since + t;
        }
        let mut at = match self.inflight.front() {
            Some(f) => f.sent_at + t,
            // Paused, the next thing due is the keepalive (or a report).
            None if self.phase == Phase::Paused => self.keepalive_at.unwrap_or(self.last_data + t),
            None => self.last_data + t,
        };
        if self.phase == Phase::Paused {
            if let (Some(k), true) = (self.keepalive_at, self.inflight.is_empty()) {
                at = at.min(k);
            }
            if let Some(r) = self.udp.reports_at {
                at = at.min(r);
            }
        }
        if self.phase == Phase::Playing {
            at = at.min(self.last_data + t);
            if let (Some(k), true) = (self.keepalive_at, self.inflight.is_empty()) {
                at = at.min(k);
            }
            let pacer = self.pacer.as_ref().and_then(backchannel::Pacer::deadline);
            for d in [self.udp.reports_at, self.udp.fallback_at, pacer].into_iter().flatten() {
                at = at.min(d);
            }
        }
        for d in self.tracks.iter().filter_map(TrackState::reorder_deadline) {
            at = at.min(d);
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
            Phase::Setup(_) | Phase::OpenUdp(_) => "SETUP",
            Phase::Play => "PLAY",
            Phase::TearingDown => "TEARDOWN",
            _ => "pending",
        }
    }
}

/// The session's error for an I/O failure handed in: `message`, the
/// failure's kind as a capture records it (so that a replay compares equal),
/// and the `io::Error` it stands for.
fn connection_error(message: String, failure: IoFailure<'_>) -> ConnectionError {
    let kind = capture::format::portable_kind(failure.kind);
    ConnectionError::from_parts(kind, message, Some(failure.to_io_error()))
}

/// `d` as `npt` seconds with milliseconds (`2.500`).
fn npt(d: Duration) -> String {
    format!("{}.{:03}", d.as_secs(), d.subsec_millis())
}

#[cfg(test)]
mod tests;

/// Refuses [`ClientOptions::headers`] that the session writes itself, and
/// fields that would not be one header line.
fn check_headers(headers: &Headers) -> Result<(), Error> {
    for (name, value) in headers.iter() {
        let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        if name.is_empty() || !name.chars().all(token) {
            return Err(Error::Config(format!("bad header name {name:?}")));
        }
        if value.chars().any(|c| c == '\r' || c == '\n' || c == '\0') {
            return Err(Error::Config(format!("header {name} has a line break in its value")));
        }
        if let Some(own) = options::SESSION_HEADERS.iter().find(|h| h.eq_ignore_ascii_case(name)) {
            let hint = match *own {
                "Authorization" => " (give credentials instead)",
                "User-Agent" => " (set user_agent instead)",
                _ => "",
            };
            return Err(Error::Config(format!(
                "header {own} is written by the session and cannot be set{hint}"
            )));
        }
    }
    Ok(())
}
