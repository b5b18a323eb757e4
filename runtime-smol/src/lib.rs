//! smol / async-io runtime for rtsp-toolkit, usable on any executor.
//!
//! [`Session`] drives the sans-IO client machine of `rtsp-toolkit-core` over
//! an [`async_io::Async`]`<`[`std::net::TcpStream`]`>` with
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

// Named apart from `std::io`, which this file imports as `io`.
#[cfg(feature = "server")]
pub mod server;
#[path = "io.rs"]
mod sockets;
#[cfg(feature = "server")]
pub use server::{serve, Server, ServerBuilder, ServerOptions};

use std::fs::File;
use std::future::Future;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use async_io::{Async, Timer};
use bytes::Bytes;
use futures_lite::{AsyncRead, AsyncWrite};

/// The sans-IO core, for everything not re-exported here.
pub use rtsp_toolkit_core as core;
use rtsp_toolkit_core::capture::Recorder;
pub use rtsp_toolkit_core::client::{
    AudioFrameEvent, ClientOptions, ClosedEvent, ConnectEvent, Event, LogKinds, LossEvent, MethodEvent, RtcpEvent,
    RtpEvent, Track, VideoFrameEvent, Warning,
};
pub use rtsp_toolkit_core::codec::{AudioCodec, AudioFrame, VideoCodec, VideoFrame};
pub use rtsp_toolkit_core::stop::StopSignal;
use rtsp_toolkit_core::stop::Stopped;
pub use rtsp_toolkit_core::Error;
use rtsp_toolkit_core::Output;

/// Read buffer size: one read hands the machine at most this much.
const READ_CHUNK: usize = 64 * 1024;

/// Longest a [`Drop`] of a running session blocks the current thread waiting
/// for the TEARDOWN answer.
pub const DROP_CLOSE_WAIT: Duration = Duration::from_millis(500);

type Connecting = Pin<Box<dyn Future<Output = io::Result<Async<TcpStream>>> + Send>>;

enum Conn {
    Connecting(Connecting),
    Open {
        stream: Async<TcpStream>,
        read_closed: bool,
    },
    Closed,
}

/// Bytes being written, with where the write got to and when it gives up.
struct Pending {
    bytes: Bytes,
    done: usize,
    deadline: Instant,
}

/// A running client session: a [`Stream`](futures_core::Stream) of
/// [`Event`]s that ends after [`Event::Closed`]. It runs while polled; see
/// the [crate docs](crate) for how it ends and what `Drop` does.
pub struct Session {
    client: Recorder,
    capture: Option<File>,
    stop: StopSignal,
    stopped: Stopped,
    stopping: bool,
    conn: Conn,
    writing: Option<Pending>,
    timer: Timer,
    timer_at: Option<Instant>,
    write_timer: Timer,
    write_timer_at: Option<Instant>,
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
            .field("url", &self.client.url())
            .field("conn", &conn)
            .field("stopping", &self.stopping)
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
        let capture = match &options.capture {
            Some(path) => Some(
                File::create(path)
                    .map_err(|e| Error::Config(format!("cannot create the capture file {}: {e}", path.display())))?,
            ),
            None => None,
        };
        let client = Recorder::new(url, options, Instant::now())?;
        let (host, port) = client.connect_target();
        Ok(Session {
            client,
            capture,
            stopped: stop.stopped(),
            stop,
            stopping: false,
            conn: Conn::Connecting(Box::pin(connect(host, port))),
            writing: None,
            timer: Timer::never(),
            timer_at: None,
            write_timer: Timer::never(),
            write_timer_at: None,
            buf: vec![0; READ_CHUNK].into_boxed_slice(),
            finished: false,
        })
    }

    /// A handle that stops this session from anywhere.
    pub fn stop_handle(&self) -> StopSignal {
        self.stop.clone()
    }

    /// Asks the session to end (TEARDOWN, then [`Event::Closed`]). Keep
    /// reading events to see it close.
    pub fn stop(&self) {
        self.stop.stop();
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

    fn save_capture(&mut self) {
        if let Some(file) = &mut self.capture {
            if let Err(e) = self.client.write_capture(file) {
                tracing::warn!(error = %e, "capture file write failed; recording stopped");
                self.capture = None;
            }
        }
    }

    /// The driving loop of DESIGN.md, as a poll function: it runs until an
    /// event is ready or everything waits on the socket, timer or stop signal.
    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        loop {
            if self.finished {
                return Poll::Ready(None);
            }
            if !self.stopping && Pin::new(&mut self.stopped).poll(cx).is_ready() {
                self.stopping = true;
                self.client.close(Instant::now());
            }
            if self.writing.is_some() {
                match self.poll_write(cx) {
                    Poll::Ready(()) => continue,
                    Poll::Pending => return Poll::Pending,
                }
            }
            match self.client.poll_output() {
                Output::Transmit(bytes) => {
                    if matches!(self.conn, Conn::Open { .. }) {
                        let deadline = Instant::now() + self.client.options().timeout;
                        self.writing = Some(Pending {
                            bytes,
                            done: 0,
                            deadline,
                        });
                    }
                }
                Output::Event(event) => return Poll::Ready(Some(event)),
                Output::Timeout(at) => {
                    self.save_capture();
                    if Instant::now() >= at {
                        // A deadline passed. Take one read first: if the session
                        // was not polled for a while, data waiting in the socket
                        // must count before "no data within the timeout" does.
                        // Then the deadline is handled, so a busy socket cannot
                        // starve keepalives and timeouts.
                        let _ = self.poll_socket(cx);
                        self.timer_at = None;
                        self.client.handle_timeout(Instant::now());
                        continue;
                    }
                    if self.poll_socket(cx).is_ready() {
                        continue;
                    }
                    if self.timer_at != Some(at) {
                        self.timer.set_at(at);
                        self.timer_at = Some(at);
                    }
                    if Pin::new(&mut self.timer).poll(cx).is_ready() {
                        self.timer_at = None;
                        self.client.handle_timeout(Instant::now());
                        continue;
                    }
                    return Poll::Pending;
                }
                Output::Done => {
                    self.finish();
                    return Poll::Ready(None);
                }
            }
        }
    }

    /// Polls the connection attempt or a read; `Ready` when the client was told something.
    fn poll_socket(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match &mut self.conn {
            Conn::Connecting(fut) => {
                let result = std::task::ready!(fut.as_mut().poll(cx));
                let now = Instant::now();
                match result.and_then(|s| Ok((s.get_ref().local_addr()?, s.get_ref().peer_addr()?, s))) {
                    Ok((local, peer, stream)) => {
                        let _ = stream.get_ref().set_nodelay(true);
                        self.conn = Conn::Open {
                            stream,
                            read_closed: false,
                        };
                        self.client.handle_connected(now, local, peer);
                    }
                    Err(e) => {
                        self.conn = Conn::Closed;
                        self.client.handle_connect_failed(now, &e.to_string());
                    }
                }
                Poll::Ready(())
            }
            Conn::Open {
                stream,
                read_closed: false,
            } => {
                let r = std::task::ready!(Pin::new(stream).poll_read(cx, &mut self.buf));
                let now = Instant::now();
                match r {
                    Ok(0) => {
                        if let Conn::Open { read_closed, .. } = &mut self.conn {
                            *read_closed = true;
                        }
                        self.client.handle_eof(now);
                    }
                    Ok(n) => self.client.handle_input(now, &self.buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => self.client.handle_io_error(now, &format!("read failed: {e}")),
                }
                Poll::Ready(())
            }
            Conn::Open { .. } | Conn::Closed => Poll::Pending,
        }
    }

    /// Advances the pending write; `Ready` when it is done or failed.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Conn::Open { stream, .. } = &mut self.conn else {
            self.writing = None;
            return Poll::Ready(());
        };
        let Some(w) = &mut self.writing else {
            return Poll::Ready(());
        };
        while w.done < w.bytes.len() {
            match Pin::new(&mut *stream).poll_write(cx, &w.bytes[w.done..]) {
                Poll::Ready(Ok(0)) => {
                    self.writing = None;
                    self.client
                        .handle_io_error(Instant::now(), "write failed: connection closed");
                    return Poll::Ready(());
                }
                Poll::Ready(Ok(n)) => w.done += n,
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Poll::Ready(Err(e)) => {
                    self.writing = None;
                    self.client
                        .handle_io_error(Instant::now(), &format!("write failed: {e}"));
                    return Poll::Ready(());
                }
                Poll::Pending => {
                    if self.write_timer_at != Some(w.deadline) {
                        self.write_timer.set_at(w.deadline);
                        self.write_timer_at = Some(w.deadline);
                    }
                    if Pin::new(&mut self.write_timer).poll(cx).is_ready() {
                        self.write_timer_at = None;
                        self.writing = None;
                        self.client
                            .handle_io_error(Instant::now(), "write timed out: the server is not reading");
                        return Poll::Ready(());
                    }
                    return Poll::Pending;
                }
            }
        }
        self.writing = None;
        Poll::Ready(())
    }

    fn finish(&mut self) {
        self.finished = true;
        self.save_capture();
        if let Conn::Open { stream, .. } = std::mem::replace(&mut self.conn, Conn::Closed) {
            let _ = stream.get_ref().shutdown(Shutdown::Both);
        }
    }

    /// The blocking close of [`Drop`]: TEARDOWN, its answer for at most
    /// [`DROP_CLOSE_WAIT`], then the socket is closed.
    fn close_blocking(&mut self) {
        let now = Instant::now();
        let deadline = now + DROP_CLOSE_WAIT.min(self.client.options().timeout);
        let mut stream = match std::mem::replace(&mut self.conn, Conn::Closed) {
            Conn::Open {
                stream,
                read_closed: false,
            } => stream
                .into_inner()
                .and_then(|s| s.set_nonblocking(false).map(|()| s))
                .ok(),
            _ => None,
        };
        self.client.close(now);
        if let (Some(s), Some(w)) = (stream.as_mut(), self.writing.take()) {
            // Finish the request that was half written, or the stream is garbage.
            if blocking_write(s, &w.bytes[w.done..], deadline).is_err() {
                stream = None;
            }
        }
        let mut buf = [0u8; 16 * 1024];
        loop {
            let now = Instant::now();
            match self.client.poll_output() {
                Output::Transmit(bytes) => {
                    if let Some(s) = &mut stream {
                        if let Err(e) = blocking_write(s, &bytes, deadline) {
                            self.client
                                .handle_io_error(Instant::now(), &format!("write failed: {e}"));
                        }
                    }
                }
                Output::Event(_) => {}
                Output::Timeout(at) => {
                    let Some(s) = &mut stream else {
                        // No connection to answer: give up at once.
                        self.client.handle_io_error(now, "session dropped");
                        continue;
                    };
                    if now >= deadline {
                        self.client
                            .handle_io_error(now, "session dropped before TEARDOWN was answered");
                        continue;
                    }
                    if now >= at {
                        self.client.handle_timeout(now);
                        continue;
                    }
                    let wait = at.min(deadline) - now;
                    let _ = s.set_read_timeout(Some(wait.max(Duration::from_millis(1))));
                    match s.read(&mut buf) {
                        Ok(0) => self.client.handle_eof(Instant::now()),
                        Ok(n) => self.client.handle_input(Instant::now(), &buf[..n]),
                        Err(e) if is_timeout(&e) => {}
                        Err(e) => self
                            .client
                            .handle_io_error(Instant::now(), &format!("read failed: {e}")),
                    }
                }
                Output::Done => break,
            }
        }
        self.finished = true;
        self.save_capture();
        if let Some(s) = stream {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
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

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

fn blocking_write(s: &mut TcpStream, mut bytes: &[u8], deadline: Instant) -> io::Result<()> {
    while !bytes.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "write timed out"));
        }
        s.set_write_timeout(Some(left))?;
        match s.write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Resolves `host` and connects to each address in turn. The session's
/// timeout bounds the whole attempt (the client times out the connection).
async fn connect(host: String, port: u16) -> io::Result<Async<TcpStream>> {
    let addrs = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => Resolve::start(host, port).await?,
    };
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the host name resolved to no address");
    for addr in addrs {
        match Async::<TcpStream>::connect(addr).await {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// A name lookup on a short-lived thread (std's resolver blocks, and async-io
/// has none), awaited without any executor support.
struct Resolve {
    shared: Arc<Mutex<ResolveState>>,
}

type Resolved = io::Result<Vec<SocketAddr>>;

#[derive(Default)]
struct ResolveState {
    result: Option<Resolved>,
    waker: Option<Waker>,
}

impl Resolve {
    fn start(host: String, port: u16) -> Resolve {
        let shared = Arc::new(Mutex::new(ResolveState::default()));
        let theirs = shared.clone();
        let spawned = std::thread::Builder::new().name("rtsp-resolve".into()).spawn(move || {
            let result = (host.as_str(), port).to_socket_addrs().map(Iterator::collect);
            let waker = {
                let mut st = theirs.lock().unwrap_or_else(|e| e.into_inner());
                st.result = Some(result);
                st.waker.take()
            };
            if let Some(w) = waker {
                w.wake();
            }
        });
        if let Err(e) = spawned {
            shared.lock().unwrap_or_else(|e| e.into_inner()).result = Some(Err(e));
        }
        Resolve { shared }
    }
}

impl Future for Resolve {
    type Output = Resolved;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Resolved> {
        let mut st = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        match st.result.take() {
            Some(r) => Poll::Ready(r),
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
    fn session_can_move_between_threads() {
        fn is_send<T: Send + Unpin>() {}
        is_send::<super::Session>();
        is_send::<super::StopSignal>();
    }
}
