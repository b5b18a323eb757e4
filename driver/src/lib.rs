//! The plumbing the runtimes of rtsp-toolkit share (tokio, smol, blocking).
//!
//! A runtime moves bytes and time between sockets and the sans-IO
//! [`Client`]; everything about that which does not depend on *how* it
//! waits lives here, once, so the three runtimes cannot drift apart (the
//! loop is described in `docs/ARCHITECTURE.md`):
//!
//! - [`ClientDriver`]: the client, its capture file and its stop signal;
//!   opening a session; how a read result, a connection result, a write
//!   failure and a passed deadline become [`Input`]s.
//! - The two timing rules every runtime follows:
//!   1. **Data that arrived before a deadline counts before the deadline.**
//!      When a deadline has passed, the runtime first takes one read of
//!      what is already in the socket without waiting, and hands it in,
//!      then the timeout ([`ClientDriver::deadline_passed`]). A process that
//!      was descheduled past its deadline (stopped, a suspended VM, a slow
//!      consumer) must not take waiting data for silence.
//!   2. **A busy socket does not starve deadlines.** A read that completes
//!      after the deadline is followed by the timeout at once
//!      ([`ClientDriver::read_done`]), so keepalives go out on a steady stream.
//! - One write-timeout semantics: a write fails when it makes **no progress
//!   for the timeout** ([`WriteError::Stalled`]); a peer that keeps taking
//!   bytes, however slowly, is not a stall.
//! - [`connect_blocking`] and [`ConnectAttempt`]: name resolution and
//!   connection on a helper thread, bounded by the session's deadline, for
//!   runtimes without a resolver of their own.
//! - UDP ([`udp`]): binding the port pairs the client asks for
//!   ([`open_pair`]), the table of a session's sockets ([`UdpSockets`]),
//!   and the datagram reads, under the same two rules: when a deadline
//!   passed, the datagrams already waiting (at most [`UDP_BATCH`] a
//!   socket, without waiting) are handed in before the timeout, and a busy
//!   UDP socket is read at most [`UDP_BATCH`] datagrams at a time, followed
//!   by the timeout when the deadline passed meanwhile
//!   ([`ClientDriver::woken_udp`]).
//!
//! - TLS ([`tls`]): the one rustls layer between the socket bytes and the
//!   machines. [`ClientDriver`] puts it in front of the client for
//!   `rtsps://` URLs (the runtimes move ciphertext and never know); the
//!   server's connection loop (`rtsp-toolkit-media`) uses the same type.
//!
//! What this crate is not: it has no protocol logic (that is the core's)
//! and no way of waiting (that is each runtime's).

#![warn(missing_docs)]

pub mod tls;
mod tunnel;
pub mod udp;

use std::fs::File;
use std::future::Future;
use std::io::{self, Write as _};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use rtsp_toolkit_core::client::{Client, ClientOptions, Input, IoFailure, Output, Tunnel, UdpRequest, UdpSocketId};
use rtsp_toolkit_core::stop::{SessionControl, StopSignal};
use rtsp_toolkit_core::Error;
use tls::TlsLayer;
use tunnel::{Answer, ClientTunnel};

pub use udp::{
    bind_multicast, bind_pair, open_pair, DatagramSocket, UdpSockets, MAX_DATAGRAM, RTP_RECV_BUFFER, UDP_BATCH,
};

/// An unpredictable seed (for a machine's SSRCs, sequence numbers, cookies):
/// the system's randomness, through the standard library's hash keys, mixed
/// with the time.
pub fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

/// The wall clock as a 64-bit NTP timestamp (RFC 5905: seconds since 1900
/// in the high half, the fraction in the low half), for the machines' sender
/// reports and `Date` headers.
pub fn ntp_now() -> u64 {
    /// Seconds from 1900-01-01 (NTP's era 0) to 1970-01-01 (Unix time 0).
    const NTP_UNIX_OFFSET: u64 = 2_208_988_800;
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    ((d.as_secs() + NTP_UNIX_OFFSET) << 32) | frac
}

/// Read buffer size of every runtime: one read hands the machine at most this
/// much. Large enough that a busy stream is read in few system calls (each
/// read of a full socket also opens the TCP window and wakes the sender), small
/// enough that the buffer stays in cache while the machine parses it.
pub const READ_CHUNK: usize = 128 * 1024;

/// Why a write to the server failed.
#[derive(Debug)]
pub enum WriteError {
    /// No byte was taken for the session's timeout: the server is not reading.
    Stalled,
    /// The socket took no more bytes (a write returned 0).
    Closed,
    /// The write failed.
    Io(io::Error),
}

impl From<io::Error> for WriteError {
    /// A blocking write's error: a timeout is a stall (the socket's send
    /// timeout bounds each write call, so it measures time without progress).
    fn from(e: io::Error) -> WriteError {
        match e.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => WriteError::Stalled,
            io::ErrorKind::WriteZero => WriteError::Closed,
            _ => WriteError::Io(e),
        }
    }
}

impl WriteError {
    /// The outcome of one write of a write-all loop: the bytes taken (0:
    /// none, try again), or why the loop fails. `after_stall` says the write
    /// is the one plain non-blocking try made when the timeout passed
    /// without progress: then "would block" is the stall.
    pub fn check(written: io::Result<usize>, after_stall: bool) -> Result<usize, WriteError> {
        match written {
            Ok(0) => Err(WriteError::Closed),
            Ok(n) => Ok(n),
            Err(e) if after_stall && e.kind() == io::ErrorKind::WouldBlock => Err(WriteError::Stalled),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
            Err(e) => Err(WriteError::Io(e)),
        }
    }

    /// The failure handed to the client, with `reason` ([`WriteError::reason`]):
    /// a stall is [`io::ErrorKind::TimedOut`], a closed socket
    /// [`io::ErrorKind::WriteZero`], else the write's own error.
    pub fn failure<'a>(&self, reason: &'a str) -> IoFailure<'a> {
        match self {
            WriteError::Stalled => IoFailure::new(io::ErrorKind::TimedOut, reason),
            WriteError::Closed => IoFailure::new(io::ErrorKind::WriteZero, reason),
            WriteError::Io(e) => IoFailure::from_io(e, reason),
        }
    }

    /// The reason handed to the client, as the user sees it.
    pub fn reason(&self) -> String {
        match self {
            WriteError::Stalled => "write timed out: the server is not reading".to_owned(),
            WriteError::Closed => "write failed: connection closed".to_owned(),
            WriteError::Io(e) => format!("write failed: {e}"),
        }
    }
}

/// What ended a runtime's wait for a socket and a deadline (its
/// `io::read_until`), client or server: the two rules of the
/// [crate docs](crate) in one value.
#[derive(Debug)]
pub struct Woken {
    /// When it ended.
    pub now: Instant,
    /// The read taken, if any (when the deadline passed: the one read of what
    /// was already waiting): handed to the machine first.
    pub read: Option<io::Result<usize>>,
    /// The deadline passed: the machine gets its timeout after the read.
    pub deadline_passed: bool,
}

impl Woken {
    /// A wait that ended at `now` with `read`, the deadline passed or not.
    pub fn new(now: Instant, read: Option<io::Result<usize>>, deadline_passed: bool) -> Woken {
        Woken {
            now,
            read,
            deadline_passed,
        }
    }
}

/// Whether an I/O error only means "nothing yet, try again".
pub fn is_would_block(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// A [`Client`] as a runtime drives it: with its capture file and its stop
/// signal. Every method that hands something in reads the clock once, here,
/// so that the instant of an input is taken the same way on every runtime.
#[derive(Debug)]
pub struct ClientDriver {
    client: Client,
    capture: Option<File>,
    stop: StopSignal,
    stopping: bool,
    /// The user's PAUSE and PLAY requests, handed in by
    /// [`ClientDriver::check_control`] (`docs/ARCHITECTURE.md`, control inputs).
    control: SessionControl,
    /// `rtsps://`: the TLS layer between the socket and the client.
    tls: Option<ClientTls>,
    /// [`Tunnel::Http`]: the tunnel between the connection (under TLS, if
    /// any) and the client.
    tunnel: Option<ClientTunnel>,
    /// Bytes of the driver's own for the connection (the tunnel's GET), to
    /// go out before the client's (through TLS, if any).
    own_output: Vec<u8>,
}

impl Drop for ClientDriver {
    /// A handle's later requests get `ControlError::Ended`.
    fn drop(&mut self) {
        self.control.close();
    }
}

/// The TLS side of an `rtsps://` session: its settings, and the layer of
/// the current connection (a new one for each connection).
#[derive(Debug)]
struct ClientTls {
    config: Arc<rustls::ClientConfig>,
    /// The name checked against the certificate (and sent as SNI).
    name: String,
    layer: Option<TlsLayer>,
    /// The socket is connected and the handshake runs: the addresses to hand
    /// in ([`Input::Connected`]) once it is done.
    handshaking: Option<(SocketAddr, SocketAddr)>,
    /// The plaintext of the last read (a buffer kept for the next).
    plain: Vec<u8>,
}

impl ClientDriver {
    /// A session for `url` starting now: checks the options, creates the
    /// capture file named by [`ClientOptions::capture`] (if any).
    ///
    /// ```
    /// use rtsp_toolkit_core::client::ClientOptions;
    /// use rtsp_toolkit_core::stop::{SessionControl, StopSignal};
    /// use rtsp_toolkit_driver::ClientDriver;
    /// let err = ClientDriver::open("http://127.0.0.1/x", ClientOptions::default(), StopSignal::new()).unwrap_err();
    /// assert!(err.to_string().contains("unsupported URL scheme"));
    /// ```
    pub fn open(url: &str, options: ClientOptions, stop: StopSignal) -> Result<ClientDriver, Error> {
        let capture = match &options.capture {
            Some(path) => Some(
                File::create(path)
                    .map_err(|e| Error::Config(format!("cannot create the capture file {}: {e}", path.display())))?,
            ),
            None => None,
        };
        let client = Client::new(url, options, Instant::now())?;
        let tls = if client.is_tls() {
            let options = client.options();
            let config = tls::client_config(options).map_err(Error::Config)?;
            if options.insecure && options.tls_fingerprint.is_none() {
                tracing::warn!(
                    url = client.url(),
                    "insecure: the server's TLS certificate is not checked (the connection is encrypted, \
                     but anyone in the path could be the server)"
                );
            }
            Some(ClientTls {
                config,
                name: client.tls_server_name(),
                layer: None,
                handshaking: None,
                plain: Vec::new(),
            })
        } else {
            None
        };
        let tunnel = (client.options().tunnel == Tunnel::Http).then(|| {
            ClientTunnel::new(
                client.tunnel_target(),
                client.connect_target(),
                &client.options().user_agent,
                tls.as_ref().map(|t| (t.config.clone(), t.name.clone())),
                client.options().timeout,
            )
        });
        Ok(ClientDriver {
            client,
            capture,
            stop,
            stopping: false,
            control: SessionControl::new(),
            tls,
            tunnel,
            own_output: Vec::new(),
        })
    }

    /// The client machine, to read from.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The session's timeout (connection, responses, writes).
    pub fn timeout(&self) -> Duration {
        self.client.options().timeout
    }

    /// The stop signal this session obeys.
    pub fn stop_signal(&self) -> &StopSignal {
        &self.stop
    }

    /// The queue of the user's PAUSE and PLAY requests for this session
    /// (the runtimes' `pause()`, `play_from()` and `control_handle()`).
    /// Wait on it with [`SessionControl::requested`] beside the stop signal,
    /// then call [`ClientDriver::check_control`].
    pub fn control(&self) -> &SessionControl {
        &self.control
    }

    /// Hands in every request waiting in [`ClientDriver::control`], in
    /// order, as its [`Input`]; whether there was any. After the stop
    /// they are dropped: the session is ending.
    pub fn check_control(&mut self) -> bool {
        let mut any = false;
        while let Some(c) = self.control.take() {
            any = true;
            if !self.stopping {
                self.input(c.input());
            }
        }
        any
    }

    /// Whether the session was asked to stop (the close was handed in).
    pub fn is_stopping(&self) -> bool {
        self.stopping
    }

    /// Hands in the close once, if the stop signal was raised; whether the
    /// session is stopping.
    pub fn check_stop(&mut self) -> bool {
        if !self.stopping && self.stop.is_stopped() {
            self.stop_now();
        }
        self.stopping
    }

    /// Asks the session to end now (TEARDOWN, then Closed), once.
    pub fn stop_now(&mut self) {
        if !self.stopping {
            self.stopping = true;
            self.input(Input::Close);
        }
    }

    /// The next thing to do ([`Client::poll_output`]). Before the runtime
    /// waits ([`Output::Timeout`]) and at the end ([`Output::Done`]), the
    /// capture recorded so far is appended to its file.
    ///
    /// Over TLS, the bytes to write are the TLS layer's: the handshake's,
    /// then the client's requests encrypted.
    ///
    /// Through an HTTP tunnel, the client's bytes go to the tunnel's POST
    /// half, and the connection carries the GET.
    pub fn poll_output(&mut self) -> Output {
        self.check_tunnel(None);
        if let Some(layer) = self.tls.as_mut().and_then(|t| t.layer.as_mut()) {
            if !self.own_output.is_empty() {
                layer.send(&std::mem::take(&mut self.own_output));
            }
            if layer.wants_write() {
                return Output::Transmit(layer.take_outgoing().into());
            }
        } else if self.tls.is_none() && !self.own_output.is_empty() {
            return Output::Transmit(std::mem::take(&mut self.own_output).into());
        }
        let mut polled = self.client.poll_output();
        // The client's bytes for an open tunnel go to its POST half.
        while let Output::Transmit(plain) = &polled {
            let Some(writer) = self.tunnel.as_mut().and_then(|t| t.writer()) else {
                break;
            };
            writer.send(plain.to_vec());
            polled = self.client.poll_output();
        }
        let out = match polled {
            Output::Transmit(plain) => match &mut self.tls {
                None => Output::Transmit(plain),
                Some(t) => match t.layer.as_mut() {
                    Some(layer) => {
                        layer.send(&plain);
                        Output::Transmit(layer.take_outgoing().into())
                    }
                    // No TLS connection: nothing goes out in the clear.
                    None => Output::Transmit(Default::default()),
                },
            },
            Output::Reconnect => {
                if let Some(t) = &mut self.tls {
                    t.layer = None;
                    t.handshaking = None;
                }
                if let Some(t) = &mut self.tunnel {
                    t.reset();
                }
                self.own_output.clear();
                Output::Reconnect
            }
            out => out,
        };
        if matches!(out, Output::Timeout(_) | Output::Done) {
            self.save_capture();
        }
        if matches!(out, Output::Done) {
            self.control.close();
        }
        out
    }

    /// Hands `input` in, now.
    pub fn input(&mut self, input: Input<'_>) {
        self.client.handle_input(Instant::now(), input);
    }

    /// The connection attempt ended. A timed-out attempt is not reported:
    /// the client's own deadline reports the connection timeout.
    ///
    /// Over TLS, the handshake starts here, and the client is told it is
    /// connected once the handshake is done.
    pub fn connected(&mut self, result: io::Result<(SocketAddr, SocketAddr)>) {
        match result {
            Ok((local, peer)) => match &mut self.tls {
                None => self.connection_up(Instant::now(), local, peer),
                Some(t) => match TlsLayer::client(&t.config, &t.name) {
                    Ok(layer) => {
                        t.layer = Some(layer);
                        t.handshaking = Some((local, peer));
                    }
                    Err(reason) => self.input(Input::ConnectFailed(IoFailure::new(
                        io::ErrorKind::InvalidInput,
                        &reason,
                    ))),
                },
            },
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {}
            Err(e) => {
                let reason = e.to_string();
                self.input(Input::ConnectFailed(IoFailure::from_io(&e, &reason)));
            }
        }
    }

    /// A wait ended: its read into `buf` is handed in first, then the
    /// timeout if the deadline passed (rules 1 and 2 of the [crate docs](crate)).
    ///
    /// A failure of an HTTP tunnel's POST half goes in first: it is why
    /// nothing answers.
    pub fn woken(&mut self, woken: Woken, buf: &[u8]) {
        self.check_tunnel(Some(woken.now));
        if let Some(result) = woken.read {
            self.feed_read(woken.now, result, buf);
        }
        if woken.deadline_passed {
            self.client.handle_input(woken.now, Input::Timeout);
        }
    }

    /// A read into `buf` finished; [`ClientDriver::woken`] with whether
    /// `deadline` has passed.
    pub fn read_done(&mut self, result: io::Result<usize>, buf: &[u8], deadline: Option<Instant>) {
        let now = Instant::now();
        self.woken(Woken::new(now, Some(result), deadline.is_some_and(|at| now >= at)), buf);
    }

    /// The deadline passed; [`ClientDriver::woken`] with the one read of
    /// what was already waiting (`None`: nothing, or no socket).
    pub fn deadline_passed(&mut self, waiting: Option<io::Result<usize>>, buf: &[u8]) {
        self.woken(Woken::new(Instant::now(), waiting, true), buf);
    }

    /// Opens the UDP pair `request` asks for ([`open_pair`]), turns each
    /// socket into what the runtime holds with `wrap`, adds them to `udp`,
    /// and hands in [`Input::UdpOpened`]: the RTP port, or why not.
    pub fn open_udp<S: DatagramSocket>(
        &mut self,
        request: &UdpRequest,
        udp: &mut UdpSockets<S>,
        mut wrap: impl FnMut(UdpSocket) -> io::Result<S>,
    ) {
        let pair = request.pair;
        let opened = open_pair(&request.bind).and_then(|(rtp, rtcp, port)| Ok((wrap(rtp)?, wrap(rtcp)?, port)));
        match opened {
            Ok((rtp, rtcp, port)) => {
                tracing::debug!(pair, port, "UDP pair open");
                udp.insert(pair, rtp, rtcp);
                self.input(Input::UdpOpened { pair, result: Ok(port) });
            }
            Err(e) => {
                let reason = e.to_string();
                tracing::debug!(pair, error = %reason, "cannot open the UDP pair");
                self.input(Input::UdpOpened {
                    pair,
                    result: Err(&reason),
                });
            }
        }
    }

    /// Hands in one datagram read from socket `socket`, sent by `from`, now.
    pub fn datagram(&mut self, socket: UdpSocketId, from: SocketAddr, data: &[u8]) {
        self.input(Input::Datagram { socket, from, data });
    }

    /// Reads what waits on every socket of `udp`, without waiting, at most
    /// [`UDP_BATCH`] datagrams a socket, and hands each in; returns how
    /// many. `deadline_passed`: the reads are the plain non-blocking calls
    /// of [`DatagramSocket::recv_waiting`] (rule 1), else the runtime saw a
    /// socket readable ([`DatagramSocket::recv_ready`]). A read error other
    /// than "nothing there" (an ICMP error some systems report on UDP
    /// sockets) is logged at debug level and ends that socket's turn: it
    /// does not end the session.
    pub fn take_datagrams<S: DatagramSocket>(&mut self, udp: &mut UdpSockets<S>, deadline_passed: bool) -> usize {
        let mut buf = std::mem::take(&mut udp.buf);
        if buf.is_empty() {
            buf = vec![0; udp::RECV_MESSAGES * MAX_DATAGRAM];
        }
        let mut taken = 0;
        let mut idle = udp.take_idle();
        for (id, _) in udp.iter() {
            if idle.get(id.index()).is_some_and(|&i| i) && !deadline_passed {
                continue;
            }
            for _ in 0..UDP_BATCH {
                match udp.read(id, &mut buf, deadline_passed) {
                    Ok(reads) => {
                        // Several messages per read (recvmmsg), several
                        // datagrams per message when the system coalesced them
                        // (GRO); all of them were there when the read returned.
                        let now = Instant::now();
                        for m in reads.iter() {
                            for data in m.datagrams(&buf) {
                                let from = m.from;
                                self.client
                                    .handle_input(now, Input::Datagram { socket: id, from, data });
                                taken += 1;
                            }
                        }
                        // A read that had room for more found the socket empty:
                        // no second call to hear so (the runtime's next wait
                        // sees anything that arrives later).
                        if reads.drained {
                            break;
                        }
                    }
                    Err(e) if is_would_block(&e) => break,
                    Err(e) => {
                        tracing::debug!(socket = ?id, error = %e, "UDP read failed");
                        break;
                    }
                }
            }
        }
        udp.buf = buf;
        idle.fill(false);
        udp.put_idle(idle);
        taken
    }

    /// A wait of a session with UDP sockets ended, for deadline `at`: hands
    /// in, in this order, the read of `woken` (as [`ClientDriver::woken`]),
    /// the datagrams ([`ClientDriver::take_datagrams`]: when `udp_ready`
    /// says the runtime saw a socket readable, and always when the deadline
    /// passed, rule 1), then the timeout if `at` passed by then (rule 2: a
    /// busy UDP socket does not starve deadlines).
    pub fn woken_udp<S: DatagramSocket>(
        &mut self,
        woken: Woken,
        buf: &[u8],
        udp_ready: bool,
        udp: &mut UdpSockets<S>,
        at: Instant,
    ) {
        self.check_tunnel(Some(woken.now));
        if let Some(result) = woken.read {
            self.feed_read(woken.now, result, buf);
        }
        let taken = if udp_ready || woken.deadline_passed {
            self.take_datagrams(udp, woken.deadline_passed)
        } else {
            0
        };
        // Inputs go in at non-decreasing instants: after datagrams, the clock again.
        let now = if taken > 0 { Instant::now() } else { woken.now };
        if woken.deadline_passed || now >= at {
            self.client.handle_input(now, Input::Timeout);
        }
    }

    /// A write failed.
    pub fn write_failed(&mut self, error: WriteError) {
        let reason = error.reason();
        if self.tls.as_mut().is_some_and(|t| t.handshaking.take().is_some()) {
            let reason = format!("TLS handshake failed: {reason}");
            self.input(Input::ConnectFailed(error.failure(&reason)));
            return;
        }
        self.input(Input::IoError(error.failure(&reason)));
    }

    /// Appends the capture recorded so far to the capture file. A failed
    /// write stops the recording (logged), not the session.
    pub fn save_capture(&mut self) {
        let Some(file) = &mut self.capture else { return };
        let Some(bytes) = self.client.take_capture() else {
            return;
        };
        if let Err(e) = file.write_all(&bytes) {
            tracing::warn!(error = %e, "capture file write failed; recording stopped");
            self.capture = None;
            self.client.stop_recording();
        }
    }

    fn feed_read(&mut self, now: Instant, result: io::Result<usize>, buf: &[u8]) {
        if self.tls.is_some() {
            return self.feed_tls(now, result, buf);
        }
        match result {
            Ok(0) => self.eof(now),
            Ok(n) => self.deliver(now, &buf[..n.min(buf.len())]),
            Err(e) if is_would_block(&e) => {}
            Err(e) => {
                let reason = format!("read failed: {e}");
                self.client
                    .handle_input(now, Input::IoError(IoFailure::from_io(&e, &reason)));
            }
        }
    }
}

impl ClientDriver {
    /// [`ClientDriver::feed_read`] over TLS: the ciphertext read goes
    /// through the layer; the handshake's end hands in the connection (with
    /// [`Client::set_tls_info`]), its failure the connection's failure.
    fn feed_tls(&mut self, now: Instant, result: io::Result<usize>, buf: &[u8]) {
        let Some(t) = self.tls.as_mut() else { return };
        let handshaking = t.handshaking.is_some();
        let fail = |client: &mut Client, kind: io::ErrorKind, reason: &str, handshaking: bool| {
            let failure = IoFailure::new(kind, reason);
            let input = if handshaking {
                Input::ConnectFailed(failure)
            } else {
                Input::IoError(failure)
            };
            client.handle_input(now, input);
        };
        let data = match result {
            Ok(0) if handshaking => {
                t.handshaking = None;
                let reason = "the server closed the connection during the TLS handshake (not a TLS port?)";
                return fail(&mut self.client, io::ErrorKind::UnexpectedEof, reason, true);
            }
            Ok(0) => return self.eof(now),
            Ok(n) => &buf[..n.min(buf.len())],
            Err(e) if is_would_block(&e) => return,
            Err(e) => {
                t.handshaking = None;
                let reason = format!("read failed: {e}");
                return fail(&mut self.client, e.kind(), &reason, handshaking);
            }
        };
        let Some(layer) = t.layer.as_mut() else { return };
        let mut plain = std::mem::take(&mut t.plain);
        plain.clear();
        match layer.receive(data, &mut plain) {
            Ok(received) => {
                if received.handshake_done {
                    if let Some((local, peer)) = t.handshaking.take() {
                        if let Some(info) = layer.info() {
                            tracing::debug!(
                                version = info.version,
                                cipher_suite = info.cipher_suite,
                                "TLS handshake done"
                            );
                            self.client.set_tls_info(info);
                        }
                        self.connection_up(now, local, peer);
                    }
                }
                if !plain.is_empty() {
                    self.deliver(now, &plain);
                }
                if received.closed {
                    self.eof(now);
                }
            }
            Err(e) => {
                t.handshaking = None;
                let reason = tls::describe_error(&e, &t.name);
                fail(&mut self.client, io::ErrorKind::InvalidData, &reason, handshaking);
            }
        }
        if let Some(t) = self.tls.as_mut() {
            t.plain = plain;
        }
    }
}

impl ClientDriver {
    /// The connection is up (past its TLS handshake, if any): the client is
    /// told, or, through a tunnel, the GET goes out first.
    fn connection_up(&mut self, now: Instant, local: SocketAddr, peer: SocketAddr) {
        match &mut self.tunnel {
            Some(t) => self.own_output = t.start(local, peer),
            None => self.client.handle_input(now, Input::Connected { local, peer }),
        }
    }

    /// Plain bytes from the connection: to the client, or, while a tunnel's
    /// GET is answered, to the tunnel (its answer opens the tunnel, and
    /// the RTSP after its head goes on to the client).
    fn deliver(&mut self, now: Instant, data: &[u8]) {
        let Some(t) = self.tunnel.as_mut().filter(|t| t.is_answering()) else {
            return self.client.handle_input(now, Input::Data(data));
        };
        match t.answer(data) {
            Answer::Pending => {}
            Answer::Open {
                local,
                peer,
                info,
                rest,
            } => {
                tracing::debug!(cookie = info.cookie, server = ?info.server, "HTTP tunnel open");
                self.client.set_tunnel_info(info);
                self.client.handle_input(now, Input::Connected { local, peer });
                if !rest.is_empty() {
                    self.client.handle_input(now, Input::Data(&rest));
                }
            }
            Answer::Failed(e) => {
                let reason = e.to_string();
                self.client.handle_input(
                    now,
                    Input::ConnectFailed(IoFailure::new(io::ErrorKind::ConnectionRefused, &reason)),
                );
            }
        }
    }

    /// The connection's end of stream: a failed connection while a tunnel's
    /// GET waits for its answer.
    fn eof(&mut self, now: Instant) {
        match self.tunnel.as_mut().filter(|t| t.is_answering()) {
            Some(t) => {
                t.reset();
                let reason = "HTTP tunnel: the server closed the connection instead of answering the GET \
                              (does it accept tunnels on this port?)";
                self.client.handle_input(
                    now,
                    Input::ConnectFailed(IoFailure::new(io::ErrorKind::UnexpectedEof, reason)),
                );
            }
            None => self.client.handle_input(now, Input::Eof),
        }
    }

    /// Hands in the tunnel's POST failure, once, when there is one.
    /// Hands in a failure of the tunnel's POST half, if one happened, at
    /// `now` (the clock is read only then when `None`: this runs for every
    /// output, and most sessions have no tunnel).
    fn check_tunnel(&mut self, now: Option<Instant>) {
        let Some(writer) = self.tunnel.as_mut().and_then(|t| t.writer()) else {
            return;
        };
        if let Some((kind, reason)) = writer.take_failure() {
            let now = now.unwrap_or_else(Instant::now);
            self.client
                .handle_input(now, Input::IoError(IoFailure::new(kind, &reason)));
        }
    }
}

/// What a connection attempt gives: the stream with its local and peer addresses.
pub type Connected = io::Result<(TcpStream, SocketAddr, SocketAddr)>;

/// Resolves `host` and connects to each of its addresses in turn until one
/// answers or `deadline` passes (then `TimedOut`). Blocks the calling thread.
pub fn connect_blocking(host: &str, port: u16, deadline: Instant) -> Connected {
    let addrs: Vec<SocketAddr> = (host, port).to_socket_addrs()?.collect();
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the host name resolved to no address");
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "connection timed out"));
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(s) => {
                let (local, peer) = (s.local_addr()?, s.peer_addr()?);
                return Ok((s, local, peer));
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// The connection of a client session in a runtime that connects with a
/// [`ConnectAttempt`] (smol, blocking): the attempt, then the open stream
/// `S` as that runtime holds it.
#[derive(Debug)]
pub enum ClientConn<S> {
    /// Resolving and connecting on a helper thread.
    Connecting(ConnectAttempt),
    /// Connected; `read_closed` once a read returned end of stream.
    Open {
        /// The connected socket.
        stream: S,
        /// A read returned end of stream.
        read_closed: bool,
    },
    /// Failed, or over.
    Closed,
}

impl<S> ClientConn<S> {
    /// Starts connecting to the session's target, bounded by its timeout.
    pub fn start(driver: &ClientDriver) -> ClientConn<S> {
        let (host, port) = driver.client().connect_target();
        ClientConn::Connecting(ConnectAttempt::start(host, port, Instant::now() + driver.timeout()))
    }

    /// The attempt ended: `wrap` turns the stream (`TCP_NODELAY` set) into
    /// what the runtime holds, and the driver is told.
    pub fn connected(
        &mut self,
        driver: &mut ClientDriver,
        result: Connected,
        wrap: impl FnOnce(TcpStream) -> io::Result<S>,
    ) {
        let opened = result.and_then(|(s, local, peer)| {
            let _ = s.set_nodelay(true);
            Ok((wrap(s)?, local, peer))
        });
        match opened {
            Ok((stream, local, peer)) => {
                *self = ClientConn::Open {
                    stream,
                    read_closed: false,
                };
                driver.connected(Ok((local, peer)));
            }
            Err(e) => {
                *self = ClientConn::Closed;
                driver.connected(Err(e));
            }
        }
    }

    /// Starts a new connection attempt to the session's target (the
    /// client's [`Output::Reconnect`]); returns the open stream it replaces,
    /// for the runtime to close.
    pub fn restart(&mut self, driver: &ClientDriver) -> Option<S> {
        match std::mem::replace(self, ClientConn::start(driver)) {
            ClientConn::Open { stream, .. } => Some(stream),
            ClientConn::Connecting(_) | ClientConn::Closed => None,
        }
    }

    /// Notes a read's result: end of stream closes the read side.
    pub fn note_read(&mut self, r: &io::Result<usize>) {
        if let (Ok(0), ClientConn::Open { read_closed, .. }) = (r, self) {
            *read_closed = true;
        }
    }

    /// For a deadline that passed (rule 1 of the [crate docs](crate)): the
    /// connection result if it is there (handed to the driver), or
    /// `read_now`, one read without waiting, on the open stream.
    pub fn take_waiting(
        &mut self,
        driver: &mut ClientDriver,
        wrap: impl FnOnce(TcpStream) -> io::Result<S>,
        read_now: impl FnOnce(&mut S) -> Option<io::Result<usize>>,
    ) -> Option<io::Result<usize>> {
        match self {
            ClientConn::Connecting(attempt) => {
                if let Some(result) = attempt.wait(Duration::ZERO) {
                    self.connected(driver, result, wrap);
                }
                None
            }
            ClientConn::Open {
                stream,
                read_closed: false,
            } => {
                let r = read_now(stream)?;
                self.note_read(&r);
                Some(r)
            }
            ClientConn::Open { .. } | ClientConn::Closed => None,
        }
    }
}

/// [`connect_blocking`] on a short-lived helper thread, so that the session
/// notices a stop while name resolution or the connection blocks. Await it
/// (it is a [`Future`] that needs no executor support) or poll it with
/// [`ConnectAttempt::wait`].
#[derive(Debug)]
pub struct ConnectAttempt {
    shared: Arc<Mutex<AttemptState>>,
}

#[derive(Debug, Default)]
struct AttemptState {
    result: Option<Connected>,
    waker: Option<Waker>,
    /// The thread has finished (its result may already be taken).
    ended: bool,
}

impl ConnectAttempt {
    /// Starts connecting to `host:port`, giving up at `deadline`.
    pub fn start(host: String, port: u16, deadline: Instant) -> ConnectAttempt {
        let shared = Arc::new(Mutex::new(AttemptState::default()));
        let theirs = shared.clone();
        let spawned = std::thread::Builder::new().name("rtsp-connect".into()).spawn(move || {
            let result = connect_blocking(&host, port, deadline);
            let waker = {
                let mut st = theirs.lock().unwrap_or_else(|e| e.into_inner());
                st.result = Some(result);
                st.ended = true;
                st.waker.take()
            };
            if let Some(w) = waker {
                w.wake();
            }
        });
        if let Err(e) = spawned {
            let mut st = shared.lock().unwrap_or_else(|e| e.into_inner());
            st.result = Some(Err(io::Error::other(format!(
                "cannot start the connection thread: {e}"
            ))));
            st.ended = true;
        }
        ConnectAttempt { shared }
    }

    /// Waits up to `wait` for the result (blocking); `None` while it runs.
    pub fn wait(&mut self, wait: Duration) -> Option<Connected> {
        let until = Instant::now() + wait;
        loop {
            if let Some(r) = self.take() {
                return Some(r);
            }
            let now = Instant::now();
            if now >= until {
                return None;
            }
            // A short nap: the attempt ends within the session timeout anyway,
            // and the stop signal is looked at between waits.
            std::thread::sleep((until - now).min(Duration::from_millis(2)));
        }
    }

    fn take(&mut self) -> Option<Connected> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner()).result.take()
    }
}

impl Future for ConnectAttempt {
    type Output = Connected;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Connected> {
        let mut st = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        match st.result.take() {
            Some(r) => Poll::Ready(r),
            None if st.ended => Poll::Ready(Err(io::Error::other("the connection thread ended"))),
            None => {
                st.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ntp_time_is_after_2020() {
        // 2020-01-01 is 3,786,825,600 s after 1900.
        assert!(super::ntp_now() >> 32 > 3_786_825_600);
    }

    use super::*;

    #[test]
    fn connect_attempt_reports_refusal_and_success() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut ok = ConnectAttempt::start("127.0.0.1".into(), port, deadline);
        let mut got = None;
        for _ in 0..500 {
            got = ok.wait(Duration::from_millis(10));
            if got.is_some() {
                break;
            }
        }
        let (_, _, peer) = got.expect("connected within 5 s").unwrap();
        assert_eq!(peer.port(), port);
        drop(listener);
        let mut refused = ConnectAttempt::start("127.0.0.1".into(), port, deadline);
        let mut got = None;
        for _ in 0..500 {
            got = refused.wait(Duration::from_millis(10));
            if got.is_some() {
                break;
            }
        }
        assert!(got.expect("answered within 5 s").is_err());
    }

    #[test]
    fn a_timed_out_connection_is_left_to_the_clients_deadline() {
        let mut d = ClientDriver::open("rtsp://127.0.0.1:1/x", ClientOptions::default(), StopSignal::new()).unwrap();
        d.connected(Err(io::Error::new(io::ErrorKind::TimedOut, "slow")));
        assert!(matches!(d.poll_output(), Output::Timeout(_)), "no event yet");
        d.connected(Err(io::Error::new(io::ErrorKind::ConnectionRefused, "refused")));
        match d.poll_output() {
            Output::Event(rtsp_toolkit_core::client::Event::Connect(c)) => {
                assert!(c.result.unwrap_err().to_string().contains("refused"))
            }
            other => panic!("{other:?}"),
        }
    }

    /// The inputs a driver recorded, from its capture file.
    fn recorded(d: &mut ClientDriver, path: &std::path::Path) -> Vec<rtsp_toolkit_core::capture::RecordKind> {
        d.save_capture();
        let bytes = std::fs::read(path).unwrap();
        let capture = rtsp_toolkit_core::capture::Capture::parse(&bytes).unwrap();
        capture.records.into_iter().map(|r| r.kind).collect()
    }

    /// A driver recording to a fresh capture file, and a UDP pair in a table.
    fn udp_driver(name: &str) -> (ClientDriver, std::path::PathBuf, UdpSockets<UdpSocket>, u16) {
        let path = std::env::temp_dir().join(format!("rtsp-driver-{name}-{}.cap", std::process::id()));
        let opts = ClientOptions::default().with_capture(path.clone());
        let d = ClientDriver::open("rtsp://127.0.0.1:1/x", opts, StopSignal::new()).unwrap();
        let mut udp = UdpSockets::new();
        let (rtp, rtcp, port) = bind_pair(std::net::Ipv4Addr::LOCALHOST.into(), None).unwrap();
        udp.insert(0, rtp, rtcp);
        (d, path, udp, port)
    }

    fn kinds(records: &[rtsp_toolkit_core::capture::RecordKind]) -> Vec<&'static str> {
        use rtsp_toolkit_core::capture::RecordKind as K;
        records
            .iter()
            .map(|r| match r {
                K::Datagram { .. } => "datagram",
                K::Timeout => "timeout",
                K::Input(_) => "data",
                _ => "other",
            })
            .collect()
    }

    #[test]
    fn datagrams_waiting_at_a_deadline_go_in_before_the_timeout() {
        let (mut d, path, mut udp, port) = udp_driver("rule1");
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..3u8 {
            sender.send_to(&[i], ("127.0.0.1", port)).unwrap();
        }
        sender.send_to(b"rtcp", ("127.0.0.1", port + 1)).unwrap();
        let at = Instant::now();
        d.woken_udp(Woken::new(Instant::now(), None, true), &[], false, &mut udp, at);
        let records = recorded(&mut d, &path);
        let _ = std::fs::remove_file(&path);
        assert_eq!(
            kinds(&records),
            ["datagram", "datagram", "datagram", "datagram", "timeout"]
        );
        use rtsp_toolkit_core::capture::RecordKind as K;
        let K::Datagram { socket, from, data } = &records[3] else {
            panic!()
        };
        assert_eq!(
            (*socket, *from, &data[..]),
            (UdpSocketId::rtcp(0), sender.local_addr().unwrap(), &b"rtcp"[..])
        );
    }

    #[test]
    fn a_socket_marked_idle_is_skipped_once_but_read_at_a_deadline() {
        let (mut d, path, mut udp, port) = udp_driver("idle");
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        sender.send_to(b"rtcp", ("127.0.0.1", port + 1)).unwrap();
        let far = Instant::now() + Duration::from_secs(60);
        // The runtime saw the RTCP socket quiet (it was not, by the time of
        // the read): skipped this round.
        udp.mark_idle(UdpSocketId::rtcp(0));
        d.woken_udp(Woken::new(Instant::now(), None, false), &[], true, &mut udp, far);
        assert_eq!(kinds(&recorded(&mut d, &path)), Vec::<&str>::new());
        // The mark lasts one round: the next one reads it.
        d.woken_udp(Woken::new(Instant::now(), None, false), &[], true, &mut udp, far);
        assert_eq!(kinds(&recorded(&mut d, &path)), ["datagram"]);
        // At a passed deadline every socket is read, marked or not (rule 1).
        // (The capture file holds every round so far.)
        sender.send_to(b"rtcp", ("127.0.0.1", port + 1)).unwrap();
        udp.mark_idle(UdpSocketId::rtcp(0));
        d.woken_udp(Woken::new(Instant::now(), None, true), &[], false, &mut udp, far);
        let records = recorded(&mut d, &path);
        let _ = std::fs::remove_file(&path);
        assert_eq!(kinds(&records), ["datagram", "datagram", "timeout"]);
    }

    #[test]
    fn a_busy_socket_is_read_in_batches_and_does_not_starve_the_deadline() {
        let (mut d, path, mut udp, port) = udp_driver("rule2");
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..(UDP_BATCH + 10) {
            sender.send_to(&(i as u32).to_be_bytes(), ("127.0.0.1", port)).unwrap();
        }
        // Readable, deadline far: one batch, no timeout.
        let far = Instant::now() + Duration::from_secs(60);
        d.woken_udp(Woken::new(Instant::now(), None, false), &[], true, &mut udp, far);
        // Readable again, and the deadline has passed by the end of the batch: the rest, then the timeout.
        let near = Instant::now();
        d.woken_udp(Woken::new(Instant::now(), None, false), &[], true, &mut udp, near);
        let records = recorded(&mut d, &path);
        let _ = std::fs::remove_file(&path);
        let k = kinds(&records);
        assert_eq!(k.len(), UDP_BATCH + 11, "{k:?}");
        assert!(k[..UDP_BATCH + 10].iter().all(|k| *k == "datagram"), "{k:?}");
        assert_eq!(k[UDP_BATCH + 10], "timeout");
    }

    #[test]
    fn udp_pairs_are_opened_and_reported() {
        use rtsp_toolkit_core::capture::RecordKind as K;
        use rtsp_toolkit_core::client::{UdpBind, UdpRequest};
        let (mut d, path, _, _) = udp_driver("open");
        let mut udp: UdpSockets<UdpSocket> = UdpSockets::new();
        let local = std::net::Ipv4Addr::LOCALHOST.into();
        d.open_udp(
            &UdpRequest {
                pair: 1,
                bind: UdpBind::Unicast { local, ports: None },
            },
            &mut udp,
            Ok,
        );
        assert_eq!(udp.len(), 2);
        // The wrap fails: reported, nothing kept.
        let mut failed: UdpSockets<UdpSocket> = UdpSockets::new();
        d.open_udp(
            &UdpRequest {
                pair: 0,
                bind: UdpBind::Unicast { local, ports: None },
            },
            &mut failed,
            |_| Err(io::Error::other("no reactor")),
        );
        assert!(failed.is_empty());
        let records = recorded(&mut d, &path);
        let _ = std::fs::remove_file(&path);
        let port = udp.get(UdpSocketId::rtp(1)).unwrap().local_addr().unwrap().port();
        assert_eq!(
            records[0],
            K::UdpOpened {
                pair: 1,
                result: Ok(port)
            }
        );
        assert_eq!(
            records[1],
            K::UdpOpened {
                pair: 0,
                result: Err("no reactor".into())
            }
        );
    }

    #[test]
    fn one_write_checked() {
        use io::ErrorKind::{Interrupted, WouldBlock};
        assert_eq!(WriteError::check(Ok(7), false).unwrap(), 7);
        assert_eq!(WriteError::check(Err(Interrupted.into()), false).unwrap(), 0);
        assert!(matches!(WriteError::check(Ok(0), false), Err(WriteError::Closed)));
        assert!(matches!(
            WriteError::check(Err(WouldBlock.into()), true),
            Err(WriteError::Stalled)
        ));
        assert!(matches!(
            WriteError::check(Err(WouldBlock.into()), false),
            Err(WriteError::Io(_))
        ));
    }

    #[test]
    fn write_error_reasons() {
        assert_eq!(
            WriteError::Stalled.reason(),
            "write timed out: the server is not reading"
        );
        assert_eq!(WriteError::Closed.reason(), "write failed: connection closed");
    }
}
