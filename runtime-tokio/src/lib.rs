//! tokio runtime for rtsp-toolkit.
//!
//! [`Session`] drives the sans-IO [`Client`](rtsp_toolkit_core::Client) machine over a
//! [`tokio::net::TcpStream`] (and, with RTP over UDP,
//! [`tokio::net::UdpSocket`]s) and hands its events out as a
//! [`futures_core::Stream`]. This crate only moves bytes and time between
//! the socket and the machine: every protocol decision is in
//! `rtsp-toolkit-core`, so the events are the same on every runtime.
//!
//! ```no_run
//! use futures_util::StreamExt;
//! use rtsp_toolkit_tokio::{ClientOptions, Event, Session};
//!
//! # async fn run() -> Result<(), rtsp_toolkit_tokio::Error> {
//! let mut session = Session::open("rtsp://127.0.0.1:8554/h264_aac.mp4", ClientOptions::default())?;
//! let stop = session.stop_handle(); // stop.stop() from any task or thread ends it with TEARDOWN
//! // session.pause() and session.play_from(PlayRange::from(t), None) pause and seek it.
//! while let Some(event) = session.next().await {
//!     match event {
//!         Event::Method(m) => println!("{} {} in {:?}", m.method, m.status, m.elapsed),
//!         Event::Closed(c) => println!("closed after {:?}: {:?}", c.session_elapsed, c.error),
//!         _ => {}
//!     }
//! }
//! # drop(stop);
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod io;
pub mod publish;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "server")]
pub use server::{serve, EventHook, Server, ServerBuilder, ServerOptions, ServerTlsConfig};

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// The sans-IO core, for everything not re-exported here.
pub use rtsp_toolkit_core as core;
pub use rtsp_toolkit_core::prelude::*;
use rtsp_toolkit_core::Output;
use rtsp_toolkit_driver::{ClientDriver, DatagramSocket, UdpSockets, Woken, READ_CHUNK};

/// Events buffered between the session task and the consumer (plus the batch
/// being filled). When full, the task stops reading the socket (TCP
/// backpressure), so nothing is dropped. Payloads and frames stay views of
/// the client's buffers until the consumer drops them, so a small queue also
/// keeps those buffers small.
const EVENT_QUEUE: usize = 128;
/// Most events in one batch. The task hands events over in batches (what one
/// drain of the machine gives, at most this many), so that the channel's
/// synchronization is paid per batch, not per RTP packet.
const BATCH: usize = 64;

/// A running client session: a [`Stream`](futures_core::Stream) of
/// [`Event`]s that ends after [`Event::Closed`].
///
/// Dropping it stops this session (not the others that share its stop
/// signal): the background task sends TEARDOWN (when a server session
/// exists), waits for the answer up to the timeout, and closes the
/// connection.
#[derive(Debug)]
pub struct Session {
    rx: mpsc::Receiver<Vec<Event>>,
    /// The rest of the batch received last, in order.
    batch: std::vec::IntoIter<Event>,
    stop: StopSignal,
    control: SessionControl,
}

impl Session {
    /// Starts a session on the current tokio runtime.
    ///
    /// Fails at once on a bad URL or options ([`Error::Config`]) or when
    /// called outside a tokio runtime; everything else (connection, auth,
    /// timeouts) arrives as events, ending with [`Event::Closed`].
    pub fn open(url: &str, options: ClientOptions) -> Result<Session, Error> {
        Session::open_with_stop(url, options, StopSignal::new())
    }

    /// Like [`Session::open`], stopped when `stop` is raised (the same signal
    /// may stop several sessions, or come from a thread).
    pub fn open_with_stop(url: &str, options: ClientOptions, stop: StopSignal) -> Result<Session, Error> {
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|_| Error::Config("Session::open must be called within a tokio runtime".into()))?;
        let driver = ClientDriver::open(url, options, stop.clone())?;
        let control = driver.control().clone();
        let (tx, rx) = mpsc::channel(EVENT_QUEUE / BATCH);
        handle.spawn(drive(driver, tx));
        Ok(Session {
            rx,
            batch: Vec::new().into_iter(),
            stop,
            control,
        })
    }

    /// Asks the server to pause the playing session (`PAUSE`). The answer
    /// comes as an [`Event::Method`]; while paused, no media arrives and the
    /// session stays alive (keepalives, no read timeout). A PAUSE that does
    /// not fit the session's phase (not playing yet, paused already, another
    /// request unanswered) or that the server refuses is a
    /// [`Warning::Control`], and the session goes on as it was. Fails only
    /// when the session has ended or [`CONTROL_QUEUE`](rtsp_toolkit_core::stop::CONTROL_QUEUE)
    /// requests wait already.
    pub fn pause(&self) -> Result<(), ControlError> {
        self.control.pause()
    }

    /// Asks the server to play again (`PLAY`): from where it paused
    /// ([`PlayRange::resume`]) or from another time (a seek, while paused
    /// or playing), with a `Scale` if given. The answer comes as an
    /// [`Event::Method`]; its `RTP-Info` sets each track's next sequence
    /// number, so a seek is no [`Event::Loss`]. A range or scale that
    /// cannot be sent fails here ([`ControlError::Invalid`]); the rest is as
    /// for [`Session::pause`].
    ///
    /// ```no_run
    /// # async fn run(session: rtsp_toolkit_tokio::Session) -> Result<(), rtsp_toolkit_tokio::ControlError> {
    /// use std::time::Duration;
    /// use rtsp_toolkit_tokio::PlayRange;
    /// session.pause()?;
    /// session.play_from(PlayRange::resume(), None)?; // on from where it paused
    /// session.play_from(PlayRange::from(Duration::from_secs(30)), Some(2.0))?; // seek, twice as fast
    /// # Ok(()) }
    /// ```
    pub fn play_from(&self, range: PlayRange, scale: Option<f64>) -> Result<(), ControlError> {
        self.control.play_from(range, scale)
    }

    /// A handle that pauses and plays this session from any task or thread
    /// ([`SessionControl::pause`], [`SessionControl::play_from`]).
    pub fn control_handle(&self) -> SessionControl {
        self.control.clone()
    }

    /// A handle that stops this session from anywhere.
    pub fn stop_handle(&self) -> StopSignal {
        self.stop.clone()
    }

    /// Asks the session to end (TEARDOWN, then [`Event::Closed`]) by raising
    /// its stop signal: sessions opened with the same signal
    /// ([`Session::open_with_stop`]) end too. Keep reading events to see it
    /// close.
    pub fn stop(&self) {
        self.stop.stop();
    }

    /// The next event, or `None` after [`Event::Closed`].
    pub async fn next_event(&mut self) -> Option<Event> {
        std::future::poll_fn(|cx| self.poll_event(cx)).await
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        loop {
            if let Some(event) = self.batch.next() {
                return Poll::Ready(Some(event));
            }
            match std::task::ready!(self.rx.poll_recv(cx)) {
                Some(batch) => self.batch = batch.into_iter(),
                None => return Poll::Ready(None),
            }
        }
    }
}

impl futures_core::Stream for Session {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.poll_event(cx)
    }
}

/// A UDP socket of the session: on tokio's reactor for readiness, with a
/// second handle on the same socket for the plain non-blocking calls
/// (tokio answers "would block" without a system call until its reactor
/// has seen the socket readable or writable, which it may not have yet
/// after the process was descheduled, or right after the socket was made).
#[derive(Debug)]
struct Udp {
    io: tokio::net::UdpSocket,
    raw: std::net::UdpSocket,
}

impl Udp {
    fn new(s: std::net::UdpSocket) -> std::io::Result<Udp> {
        let raw = s.try_clone()?;
        Ok(Udp {
            io: tokio::net::UdpSocket::from_std(s)?,
            raw,
        })
    }
}

impl DatagramSocket for Udp {
    /// Through tokio, which clears its readiness when nothing is left.
    fn recv_ready(&self, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
        self.io.try_recv_from(buf)
    }

    fn recv_waiting(&self, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
        self.raw.recv_from(buf)
    }

    fn send_now(&self, data: &[u8], to: SocketAddr) -> std::io::Result<usize> {
        self.raw.send_to(data, to)
    }

    fn sock_ref(&self) -> rtsp_toolkit_driver::udp::socket2::SockRef<'_> {
        rtsp_toolkit_driver::udp::socket2::SockRef::from(&self.raw)
    }

    /// Through tokio's readiness: a read that finds nothing clears it.
    fn read_ready(
        &self,
        read: &mut dyn FnMut() -> std::io::Result<rtsp_toolkit_driver::udp::Reads>,
    ) -> std::io::Result<rtsp_toolkit_driver::udp::Reads> {
        self.io.try_io(tokio::io::Interest::READABLE, read)
    }
}

/// Ready once a UDP socket of the session is readable (every socket gets the waker).
async fn udp_readable(udp: &UdpSockets<Udp>) {
    std::future::poll_fn(|cx| {
        let ready = udp
            .iter()
            .fold(false, |any, (_, s)| s.io.poll_recv_ready(cx).is_ready() || any);
        if ready {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await
}

/// What ended a wait on the open connection.
enum Wake {
    /// The connection's read, or the deadline.
    Tcp(Woken),
    /// A UDP socket is readable.
    Udp,
    /// The stop signal.
    Stop,
    /// The [`Session`] was dropped: this session ends (not the others that
    /// share its stop signal).
    Gone,
    /// A pause or play request of the user's.
    Control,
}

/// The driving loop, the same in every runtime (`docs/ARCHITECTURE.md`):
/// drain the machine, then wait for the socket, the deadline or the stop
/// signal, and hand in what happened.
async fn drive(mut d: ClientDriver, tx: mpsc::Sender<Vec<Event>>) {
    let timeout = d.timeout();
    let stop = d.stop_signal().clone();
    let control = d.control().clone();
    let (host, port) = d.client().connect_target();
    let mut connecting = Some(Box::pin(TcpStream::connect((host, port))));
    let mut socket: Option<TcpStream> = None;
    let mut udp: UdpSockets<Udp> = UdpSockets::new();
    let mut buf = vec![0u8; READ_CHUNK];
    let mut batch = Vec::new();
    let mut consumer_gone = false;
    loop {
        let out = d.poll_output();
        if let Output::Event(event) = out {
            if !consumer_gone {
                batch.push(event);
            }
            if batch.len() >= BATCH {
                send_batch(&mut d, &tx, &stop, &mut batch, &mut consumer_gone).await;
            }
            continue;
        }
        // The events go out before the task writes or waits, so that none
        // waits for the socket.
        if !batch.is_empty() {
            let stopping = d.is_stopping();
            send_batch(&mut d, &tx, &stop, &mut batch, &mut consumer_gone).await;
            // A stop noticed while sending queued a TEARDOWN: a deadline
            // polled before it is stale, so poll again instead of waiting.
            if matches!(out, Output::Timeout(_)) && d.is_stopping() != stopping {
                continue;
            }
        }
        match out {
            Output::Transmit(bytes) => {
                let Some(s) = socket.as_mut() else { continue };
                if let Err(e) = io::write_all_or_stall(s, &bytes, timeout).await {
                    d.write_failed(e);
                }
            }
            Output::SendDatagram { socket, to, data } => udp.send(socket, to, &data),
            Output::OpenUdp(request) => d.open_udp(&request, &mut udp, Udp::new),
            Output::Reconnect => {
                // Everything closes; the session starts again over TCP.
                udp.clear();
                if let Some(mut s) = socket.take() {
                    let _ = s.shutdown().await;
                }
                let (host, port) = d.client().connect_target();
                connecting = Some(Box::pin(TcpStream::connect((host, port))));
            }
            Output::Event(_) => {}
            Output::Timeout(at) => {
                // A request queued while the task was busy goes in first.
                if d.check_control() {
                    continue;
                }
                let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(at));
                if let Some(conn) = connecting.as_mut() {
                    tokio::select! {
                        r = conn => {
                            connecting = None;
                            match io::connected(r) {
                                Ok((local, peer, s)) => {
                                    socket = Some(s);
                                    d.connected(Ok((local, peer)));
                                }
                                Err(e) => d.connected(Err(e)),
                            }
                        }
                        _ = sleep => d.deadline_passed(None, &[]),
                        _ = stop.stopped(), if !d.is_stopping() => d.stop_now(),
                        _ = tx.closed(), if !d.is_stopping() => {
                            consumer_gone = true;
                            d.stop_now();
                        }
                        _ = control.requested(), if !d.is_stopping() => {
                            d.check_control();
                        }
                    }
                } else if let Some(s) = socket.as_ref() {
                    // Data already waiting wins over a deadline that passed
                    // while the consumer was slow: it is not silence.
                    let wake = tokio::select! {
                        biased;
                        woken = io::read_until(s, &mut buf, at) => Wake::Tcp(woken),
                        () = udp_readable(&udp), if !udp.is_empty() => Wake::Udp,
                        _ = stop.stopped(), if !d.is_stopping() => Wake::Stop,
                        _ = tx.closed(), if !d.is_stopping() => Wake::Gone,
                        _ = control.requested(), if !d.is_stopping() => Wake::Control,
                    };
                    match wake {
                        Wake::Tcp(w) if udp.is_empty() => d.woken(w, &buf),
                        // The datagrams are read too (without a system call
                        // when tokio saw none), so that a busy connection
                        // does not starve them.
                        Wake::Tcp(w) => d.woken_udp(w, &buf, true, &mut udp, at),
                        Wake::Udp => {
                            let now = Instant::now();
                            let read = if now >= at { io::read_waiting(s, &mut buf) } else { None };
                            d.woken_udp(Woken::new(now, read, now >= at), &buf, true, &mut udp, at);
                        }
                        Wake::Stop => d.stop_now(),
                        Wake::Gone => {
                            consumer_gone = true;
                            d.stop_now();
                        }
                        Wake::Control => {
                            d.check_control();
                        }
                    }
                } else {
                    tokio::select! {
                        _ = sleep => d.deadline_passed(None, &[]),
                        _ = control.requested(), if !d.is_stopping() => {
                            d.check_control();
                        }
                    }
                }
            }
            Output::Done => break,
        }
    }
    udp.clear();
    if let Some(mut s) = socket {
        let _ = s.shutdown().await;
    }
}

/// Hands `batch` to the consumer, waiting for room in the channel (TCP
/// backpressure); a stop raised meanwhile is handed in first, and the batch
/// still delivered. When the consumer is gone, the session is stopped and
/// its events dropped.
async fn send_batch(
    d: &mut ClientDriver,
    tx: &mpsc::Sender<Vec<Event>>,
    stop: &StopSignal,
    batch: &mut Vec<Event>,
    consumer_gone: &mut bool,
) {
    let events = std::mem::replace(batch, Vec::with_capacity(BATCH));
    if *consumer_gone {
        return;
    }
    tokio::select! {
        biased;
        permit = tx.reserve() => match permit {
            Ok(p) => p.send(events),
            Err(_) => {
                *consumer_gone = true;
                d.stop_now();
            }
        },
        _ = stop.stopped(), if !d.is_stopping() => {
            // The events are kept: deliver them after queuing the close.
            d.stop_now();
            if let Ok(p) = tx.reserve().await {
                p.send(events);
            } else {
                *consumer_gone = true;
            }
        }
    }
}

/// The README's Rust examples, compiled as doc tests so they stay true.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
