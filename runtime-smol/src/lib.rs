//! smol / async-io runtime for rtsp-toolkit, usable on any executor.
//!
//! [`Session`] drives the sans-IO client machine of `rtsp-toolkit-core` over
//! an [`async_io::Async`]`<`[`std::net::TcpStream`]`>` (and, with RTP over
//! UDP, [`async_io::Async`]`<`[`std::net::UdpSocket`]`>`s) with
//! [`async_io::Timer`]s, and is itself the [`Stream`](futures_core::Stream)
//! of [`Event`]s. Nothing is spawned: the session makes progress while it is
//! polled ([`Session::next_event`], `StreamExt::next`), so it works under
//! `smol::block_on`, `async-executor`, `futures::executor`, or inside
//! someone else's task. async-io runs its own reactor thread when no
//! `block_on` of it is driving one, so no setup is needed.
//!
//! # Which runtime to pick
//! - this crate: an async program that is not on tokio (smol, async-std's
//!   successors, a custom executor), or a library that must not choose an
//!   executor for its users;
//! - `rtsp-toolkit-tokio`: a tokio program (the session runs as a tokio task);
//! - `rtsp-toolkit-blocking`: no async at all; a thread per session and an
//!   `Iterator` of events.
//!
//! The events are the same in all three: every protocol decision is in the core.
//!
//! ```no_run
//! use futures_lite::StreamExt;
//! use rtsp_toolkit_smol::{ClientOptions, Event, Session};
//!
//! smol::block_on(async {
//!     let mut session = Session::open("rtsp://127.0.0.1:8554/h264_aac.mp4", ClientOptions::default())?;
//!     let stop = session.stop_handle(); // stop.stop() from any task or thread ends it with TEARDOWN
//!     while let Some(event) = session.next().await {
//!         match event {
//!             Event::Method(m) => println!("{} {} in {:?}", m.method, m.status, m.elapsed),
//!             Event::Closed(c) => println!("closed after {:?}: {:?}", c.session_elapsed, c.error),
//!             _ => {}
//!         }
//!     }
//!     # drop(stop);
//!     Ok::<(), rtsp_toolkit_smol::Error>(())
//! })
//! # .unwrap();
//! ```
//!
//! # Ending a session
//! [`Session::stop`] (or a [`StopSignal`] from anywhere) asks for TEARDOWN;
//! keep polling to see [`Event::Closed`], or `session.close().await` does
//! both. Because nothing runs the session once it is dropped, [`Drop`] of a
//! session that has not ended does a short *blocking* close on the current
//! thread: it writes TEARDOWN and waits for the answer for at most
//! [`DROP_CLOSE_WAIT`] (or the session timeout if shorter), then closes the
//! socket.

#![warn(missing_docs)]

mod io;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "server")]
pub use server::{serve, EventHook, Server, ServerBuilder, ServerOptions, ServerTlsConfig};

use std::future::Future;
use std::io::Read as _;
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_io::{Async, Timer};
use futures_lite::AsyncRead;

/// The sans-IO core, for everything not re-exported here.
pub use rtsp_toolkit_core as core;
use rtsp_toolkit_core::client::{Input, IoFailure, UdpSocketId};
pub use rtsp_toolkit_core::prelude::*;
use rtsp_toolkit_core::stop::{Requested, Stopped};
use rtsp_toolkit_core::Output;
use rtsp_toolkit_driver::{ClientConn, ClientDriver, DatagramSocket, UdpSockets, Woken, WriteError, READ_CHUNK};

/// Longest a [`Drop`] of a running session blocks the current thread waiting
/// for the TEARDOWN answer.
pub const DROP_CLOSE_WAIT: Duration = Duration::from_millis(500);

/// The connection: resolution and connection run on a helper thread
/// (async-io has no resolver); the open stream is shared with the write in
/// progress, which owns a handle to it.
type Conn = ClientConn<Arc<Async<TcpStream>>>;

/// The open stream as the session holds it.
fn shared(s: TcpStream) -> std::io::Result<Arc<Async<TcpStream>>> {
    Ok(Arc::new(Async::new(s)?))
}

/// A UDP socket of the session on async-io's reactor; reads and sends are
/// plain non-blocking calls on the socket, which never miss a datagram the
/// reactor has not reported yet.
#[derive(Debug)]
struct Udp(Async<UdpSocket>);

impl Udp {
    fn new(s: UdpSocket) -> std::io::Result<Udp> {
        Ok(Udp(Async::new(s)?))
    }
}

impl DatagramSocket for Udp {
    fn recv_ready(&self, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
        self.0.get_ref().recv_from(buf)
    }

    fn send_now(&self, data: &[u8], to: SocketAddr) -> std::io::Result<usize> {
        self.0.get_ref().send_to(data, to)
    }

    fn sock_ref(&self) -> rtsp_toolkit_driver::udp::socket2::SockRef<'_> {
        rtsp_toolkit_driver::udp::socket2::SockRef::from(self.0.get_ref())
    }
}

/// A request being written (`io::write_all_or_stall` on the shared stream).
type Writing = Pin<Box<dyn Future<Output = Result<(), WriteError>> + Send>>;

/// A running client session: a [`Stream`](futures_core::Stream) of
/// [`Event`]s that ends after [`Event::Closed`]. It runs while polled; see
/// the [crate docs](crate) for how it ends and what `Drop` does.
pub struct Session {
    driver: ClientDriver,
    stopped: Stopped,
    /// Wakes the session when a pause or play request is queued.
    requested: Requested,
    conn: Conn,
    /// The session's UDP sockets, when RTP travels over UDP.
    udp: UdpSockets<Udp>,
    writing: Option<Writing>,
    timer: Timer,
    /// The instant `timer` is set for (`None`: not set, or it fired).
    timer_at: Option<Instant>,
    buf: Box<[u8]>,
    finished: bool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let conn = match &self.conn {
            Conn::Connecting(_) => "connecting",
            Conn::Open { .. } => "open",
            Conn::Closed => "closed",
        };
        f.debug_struct("Session")
            .field("url", &self.driver.client().url())
            .field("conn", &conn)
            .field("stopping", &self.driver.is_stopping())
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Starts a session. Nothing happens until it is polled.
    ///
    /// Fails at once on a bad URL or options, or when the capture file
    /// cannot be created ([`Error::Config`]); everything else (connection,
    /// auth, timeouts) arrives as events, ending with [`Event::Closed`].
    ///
    /// ```
    /// use rtsp_toolkit_smol::{ClientOptions, Error, Session};
    /// let err = Session::open("http://127.0.0.1/x", ClientOptions::default()).unwrap_err();
    /// assert!(matches!(err, Error::Config(_)));
    /// ```
    pub fn open(url: &str, options: ClientOptions) -> Result<Session, Error> {
        Session::open_with_stop(url, options, StopSignal::new())
    }

    /// Like [`Session::open`], stopped when `stop` is raised (the same signal
    /// may stop several sessions, or come from a thread).
    pub fn open_with_stop(url: &str, options: ClientOptions, stop: StopSignal) -> Result<Session, Error> {
        let driver = ClientDriver::open(url, options, stop)?;
        Ok(Session {
            stopped: driver.stop_signal().stopped(),
            requested: driver.control().requested(),
            conn: Conn::start(&driver),
            driver,
            udp: UdpSockets::new(),
            writing: None,
            timer: Timer::never(),
            timer_at: None,
            buf: vec![0; READ_CHUNK].into_boxed_slice(),
            finished: false,
        })
    }

    /// A handle that stops this session from anywhere.
    pub fn stop_handle(&self) -> StopSignal {
        self.driver.stop_signal().clone()
    }

    /// Asks the session to end (TEARDOWN, then [`Event::Closed`]) by raising
    /// its stop signal: sessions opened with the same signal end too. Keep
    /// reading events to see it close.
    pub fn stop(&self) {
        self.driver.stop_signal().stop();
    }

    /// Asks the server to pause the playing session (`PAUSE`). The answer
    /// comes as an [`Event::Method`]; while paused, no media arrives and the
    /// session stays alive (keepalives, no read timeout). A PAUSE that does
    /// not fit the session's phase (not playing yet, paused already, another
    /// request unanswered) or that the server refuses is a
    /// [`Warning::Control`], and the session goes on as it was. Fails only
    /// when the session has ended or [`CONTROL_QUEUE`](rtsp_toolkit_core::stop::CONTROL_QUEUE)
    /// requests wait already. Like everything here, it happens while the
    /// session is polled.
    pub fn pause(&self) -> Result<(), ControlError> {
        self.driver.control().pause()
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
    /// # fn run(session: rtsp_toolkit_smol::Session) -> Result<(), rtsp_toolkit_smol::ControlError> {
    /// use std::time::Duration;
    /// use rtsp_toolkit_smol::PlayRange;
    /// session.pause()?;
    /// session.play_from(PlayRange::from(Duration::from_secs(30)), None)?;
    /// # Ok(()) }
    /// ```
    pub fn play_from(&self, range: PlayRange, scale: Option<f64>) -> Result<(), ControlError> {
        self.driver.control().play_from(range, scale)
    }

    /// A handle that pauses and plays this session from any task or thread
    /// ([`SessionControl::pause`], [`SessionControl::play_from`]); the
    /// session task is woken.
    pub fn control_handle(&self) -> SessionControl {
        self.driver.control().clone()
    }

    /// The next event, or `None` after [`Event::Closed`].
    pub async fn next_event(&mut self) -> Option<Event> {
        futures_lite::future::poll_fn(|cx| self.poll_event(cx)).await
    }

    /// Stops the session and runs it to its end (TEARDOWN answered or timed
    /// out), without blocking a thread; returns the last events.
    pub async fn close(mut self) -> Vec<Event> {
        self.stop();
        let mut rest = Vec::new();
        while let Some(e) = self.next_event().await {
            rest.push(e);
        }
        rest
    }

    /// The driving loop of `docs/ARCHITECTURE.md`, as a poll function: it
    /// runs until an event is ready or everything waits on the socket, timer
    /// or stop signal.
    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        loop {
            if self.finished {
                return Poll::Ready(None);
            }
            // A raised stop is handed in at once (an atomic load); the waker
            // is left with the stop signal only before the session waits.
            self.driver.check_stop();
            self.driver.check_control();
            if self.writing.is_some() {
                match self.poll_write(cx) {
                    Poll::Ready(()) => continue,
                    Poll::Pending if self.stop_raised(cx) => continue,
                    Poll::Pending => return Poll::Pending,
                }
            }
            match self.driver.poll_output() {
                Output::Transmit(bytes) => {
                    if let Conn::Open { stream, .. } = &self.conn {
                        let (stream, timeout) = (stream.clone(), self.driver.timeout());
                        self.writing = Some(Box::pin(async move {
                            io::write_all_or_stall(&stream, &bytes, timeout).await
                        }));
                    }
                }
                Output::SendDatagram { socket, to, data } => self.udp.send(socket, to, &data),
                Output::OpenUdp(request) => self.driver.open_udp(&request, &mut self.udp, Udp::new),
                Output::Reconnect => self.reconnect(),
                Output::Event(event) => return Poll::Ready(Some(event)),
                Output::Timeout(at) => {
                    if Instant::now() < at {
                        if self.poll_socket(cx, at).is_ready() {
                            continue;
                        }
                        // The timer moves only when the deadline comes earlier
                        // than it is set for. A later one (each read moves the
                        // session's read deadline) is taken up when the timer
                        // fires early: moving an async-io timer is a message
                        // to the reactor, which may be on another thread.
                        if self.timer_at.is_none_or(|t| at < t) {
                            self.timer.set_at(at);
                            self.timer_at = Some(at);
                        }
                        if Pin::new(&mut self.timer).poll(cx).is_pending() {
                            if self.stop_raised(cx) {
                                continue;
                            }
                            return Poll::Pending;
                        }
                        self.timer_at = None;
                        if Instant::now() < at {
                            // Fired for an earlier deadline: set it for this one.
                            continue;
                        }
                    }
                    self.timer_at = None;
                    let waiting = self.take_waiting();
                    if self.udp.is_empty() {
                        self.driver.deadline_passed(waiting, &self.buf);
                    } else {
                        let w = Woken::new(Instant::now(), waiting, true);
                        self.driver.woken_udp(w, &self.buf, false, &mut self.udp, at);
                    }
                }
                Output::Done => {
                    self.finish();
                    return Poll::Ready(None);
                }
            }
        }
    }

    /// Before the session waits: registers the waker with the stop signal
    /// and the control queue, and hands in the close, or the pause and play
    /// requests, if there were any meanwhile (then the session does not wait).
    fn stop_raised(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.driver.is_stopping() && Pin::new(&mut self.stopped).poll(cx).is_ready() {
            self.driver.stop_now();
            return true;
        }
        // A pause or play request queued meanwhile is handed in the same way.
        !self.driver.is_stopping() && Pin::new(&mut self.requested).poll(cx).is_ready() && self.driver.check_control()
    }

    /// Polls the connection attempt, or a read and every UDP socket; `Ready`
    /// when the client was told something.
    fn poll_socket(&mut self, cx: &mut Context<'_>, deadline: Instant) -> Poll<()> {
        if let Conn::Connecting(attempt) = &mut self.conn {
            let result = std::task::ready!(Pin::new(attempt).poll(cx));
            self.conn.connected(&mut self.driver, result, shared);
            return Poll::Ready(());
        }
        let read = match &mut self.conn {
            Conn::Open {
                stream,
                read_closed: false,
            } => match Pin::new(&mut &**stream).poll_read(cx, &mut self.buf) {
                Poll::Ready(r) => Some(r),
                Poll::Pending => None,
            },
            _ => None,
        };
        if let Some(r) = &read {
            self.conn.note_read(r);
        }
        if self.udp.is_empty() {
            let Some(r) = read else { return Poll::Pending };
            self.driver.read_done(r, &self.buf, Some(deadline));
            return Poll::Ready(());
        }
        // Every socket is polled, so that each has the waker; the ones with
        // nothing to read are not tried this time (they wake us when they have).
        let ready: Vec<(UdpSocketId, bool)> = self
            .udp
            .iter()
            .map(|(id, s)| (id, s.0.poll_readable(cx).is_ready()))
            .collect();
        let udp_ready = ready.iter().any(|(_, r)| *r);
        if read.is_none() && !udp_ready {
            return Poll::Pending;
        }
        if udp_ready {
            for (id, _) in ready.iter().filter(|(_, r)| !*r) {
                self.udp.mark_idle(*id);
            }
        }
        let now = Instant::now();
        let woken = Woken::new(now, read, now >= deadline);
        self.driver
            .woken_udp(woken, &self.buf, udp_ready, &mut self.udp, deadline);
        Poll::Ready(())
    }

    /// Closes the connection and every UDP socket, and connects again (the
    /// client's fallback from UDP to TCP).
    fn reconnect(&mut self) {
        self.udp.clear();
        self.writing = None;
        if let Some(old) = self.conn.restart(&self.driver) {
            let _ = old.get_ref().shutdown(Shutdown::Both);
        }
    }

    /// For a deadline that passed: the connection result if it is there
    /// (handed in), or one read of what waits in the socket, without waiting.
    fn take_waiting(&mut self) -> Option<std::io::Result<usize>> {
        let buf = &mut self.buf;
        self.conn
            .take_waiting(&mut self.driver, shared, |s| io::read_waiting(s, buf))
    }

    /// Advances the pending write; `Ready` when it is done or failed.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(w) = &mut self.writing else {
            return Poll::Ready(());
        };
        let result = std::task::ready!(w.as_mut().poll(cx));
        self.writing = None;
        if let Err(e) = result {
            self.driver.write_failed(e);
        }
        Poll::Ready(())
    }

    fn finish(&mut self) {
        self.finished = true;
        self.udp.clear();
        if let Conn::Open { stream, .. } = std::mem::replace(&mut self.conn, Conn::Closed) {
            let _ = stream.get_ref().shutdown(Shutdown::Both);
        }
    }

    /// The blocking close of [`Drop`]: TEARDOWN, its answer for at most
    /// [`DROP_CLOSE_WAIT`], then the socket is closed.
    fn close_blocking(&mut self) {
        let deadline = Instant::now() + DROP_CLOSE_WAIT.min(self.driver.timeout());
        // Finish the request that was half written, or the stream is garbage.
        let half_written = self.writing.take().is_some_and(|w| {
            let finished = futures_lite::future::block_on(futures_lite::future::or(async { w.await.is_ok() }, async {
                Timer::at(deadline).await;
                false
            }));
            !finished
        });
        let mut stream = match std::mem::replace(&mut self.conn, Conn::Closed) {
            Conn::Open {
                stream,
                read_closed: false,
            } if !half_written => Arc::try_unwrap(stream)
                .ok()
                .and_then(|s| s.into_inner().ok())
                .and_then(|s| s.set_nonblocking(false).map(|()| s).ok()),
            _ => None,
        };
        self.driver.stop_now();
        let mut buf = [0u8; 16 * 1024];
        loop {
            let now = Instant::now();
            match self.driver.poll_output() {
                Output::Transmit(bytes) => {
                    if let Some(s) = &mut stream {
                        if let Err(e) = io::blocking_write(s, &bytes, deadline) {
                            self.driver.write_failed(WriteError::Io(e));
                        }
                    }
                }
                // The BYE of a UDP session's last receiver reports.
                Output::SendDatagram { socket, to, data } => self.udp.send(socket, to, &data),
                // The session is ending: no new sockets, no new connection.
                Output::OpenUdp(_) => {}
                Output::Reconnect => self.driver.input(Input::ConnectFailed(dropped("session dropped"))),
                Output::Event(_) => {}
                Output::Timeout(at) => {
                    let Some(s) = &mut stream else {
                        // No connection to answer: give up at once.
                        self.driver.input(Input::IoError(dropped("session dropped")));
                        continue;
                    };
                    if now >= deadline {
                        self.driver
                            .input(Input::IoError(dropped("session dropped before TEARDOWN was answered")));
                        continue;
                    }
                    if now >= at {
                        self.driver.deadline_passed(None, &[]);
                        continue;
                    }
                    let wait = at.min(deadline) - now;
                    let _ = s.set_read_timeout(Some(wait.max(Duration::from_millis(1))));
                    let r = s.read(&mut buf);
                    self.driver.read_done(r, &buf, None);
                }
                Output::Done => break,
            }
        }
        self.finished = true;
        self.udp.clear();
        if let Some(s) = stream {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// What ends the session when it is dropped mid-way: no I/O failed, the
/// session went away (nobody sees the event).
fn dropped(reason: &str) -> IoFailure<'_> {
    IoFailure::new(std::io::ErrorKind::Other, reason)
}

impl futures_core::Stream for Session {
    type Item = Event;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.get_mut().poll_event(cx)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Other sessions sharing the signal are not stopped: only this one ends.
        if !self.finished {
            self.close_blocking();
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn session_can_move_between_threads() {
        fn is_send<T: Send + Unpin>() {}
        is_send::<super::Session>();
        is_send::<super::StopSignal>();
    }
}
