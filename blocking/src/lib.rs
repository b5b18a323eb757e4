//! Blocking runtime for rtsp-toolkit: an RTSP client session as an
//! [`Iterator`] of events over [`std::net::TcpStream`], with no async runtime.
//!
//! [`Session`] drives the sans-IO client machine of `rtsp-toolkit-core` on
//! the thread that iterates it: each [`Iterator::next`] writes what the
//! machine wants sent and reads the socket (with a read timeout up to the
//! machine's next deadline, at most [`STOP_POLL`]) until an event is ready.
//! A [`StopSignal`] raised from another thread is noticed within
//! [`STOP_POLL`].
//!
//! # Which runtime to pick
//! - this crate: a program without async, a thread per session, or a
//!   small tool where an `Iterator` is the simplest thing;
//! - `rtsp-toolkit-tokio`: a tokio program (the session runs as a tokio task);
//! - `rtsp-toolkit-smol`: any other executor (the session is a `Stream` that
//!   runs while polled).
//!
//! The events are the same in all three: every protocol decision is in the core.
//! To drive the core from your own event loop instead, see the
//! `custom_loop` example of this crate.
//!
//! ```no_run
//! use std::time::Duration;
//! use rtsp_toolkit_blocking::{ClientOptions, Event, Session};
//!
//! let session = Session::open("rtsp://127.0.0.1:8554/h264_aac.mp4", ClientOptions::default())?;
//! let stop = session.stop_handle();
//! std::thread::spawn(move || {
//!     std::thread::sleep(Duration::from_secs(5));
//!     stop.stop(); // TEARDOWN, then Closed
//! });
//! for event in session {
//!     match event {
//!         Event::Method(m) => println!("{} {} in {:?}", m.method, m.status, m.elapsed),
//!         Event::Closed(c) => println!("closed after {:?}: {:?}", c.session_elapsed, c.error),
//!         _ => {}
//!     }
//! }
//! # Ok::<(), rtsp_toolkit_blocking::Error>(())
//! ```

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The sans-IO core, for everything not re-exported here.
pub use rtsp_toolkit_core as core;
use rtsp_toolkit_core::capture::Recorder;
pub use rtsp_toolkit_core::client::{
    AudioFrameEvent, ClientOptions, ClosedEvent, ConnectEvent, Event, LogKinds, LossEvent, MethodEvent, RtcpEvent,
    RtpEvent, Track, VideoFrameEvent, Warning,
};
pub use rtsp_toolkit_core::codec::{AudioCodec, AudioFrame, VideoCodec, VideoFrame};
pub use rtsp_toolkit_core::stop::StopSignal;
pub use rtsp_toolkit_core::Error;
use rtsp_toolkit_core::Output;

/// Longest a blocked read (or the wait for a connection) goes without
/// looking at the stop signal.
pub const STOP_POLL: Duration = Duration::from_millis(50);
/// Read buffer size: one read hands the machine at most this much.
const READ_CHUNK: usize = 64 * 1024;

/// What a connection attempt thread reports.
type Connected = io::Result<(TcpStream, SocketAddr, SocketAddr)>;

#[derive(Debug)]
enum Conn {
    /// Resolution and connection run on a helper thread, so that a stop is
    /// noticed while they block.
    Connecting(mpsc::Receiver<Connected>),
    Open {
        stream: TcpStream,
        read_closed: bool,
    },
    Closed,
}

/// A running client session: an [`Iterator`] of [`Event`]s that ends after
/// [`Event::Closed`].
///
/// Dropping a session that has not ended closes it cleanly on the dropping
/// thread: TEARDOWN (when a server session exists), its answer or the
/// timeout, then the socket is closed.
#[derive(Debug)]
pub struct Session {
    client: Recorder,
    capture: Option<File>,
    stop: StopSignal,
    stopping: bool,
    conn: Conn,
    buf: Box<[u8]>,
    finished: bool,
}

impl Session {
    /// Starts a session: the connection is made on a helper thread, the rest
    /// happens while the session is iterated.
    ///
    /// Fails at once on a bad URL or options, or when the capture file
    /// cannot be created ([`Error::Config`]); everything else (connection,
    /// auth, timeouts) arrives as events, ending with [`Event::Closed`].
    ///
    /// ```
    /// use rtsp_toolkit_blocking::{ClientOptions, Error, Session};
    /// let err = Session::open("http://127.0.0.1/x", ClientOptions::default()).unwrap_err();
    /// assert!(matches!(err, Error::Config(_)));
    /// ```
    pub fn open(url: &str, options: ClientOptions) -> Result<Session, Error> {
        Session::open_with_stop(url, options, StopSignal::new())
    }

    /// Like [`Session::open`], stopped when `stop` is raised (the same signal
    /// may stop several sessions).
    pub fn open_with_stop(url: &str, options: ClientOptions, stop: StopSignal) -> Result<Session, Error> {
        let capture = match &options.capture {
            Some(path) => Some(
                File::create(path)
                    .map_err(|e| Error::Config(format!("cannot create the capture file {}: {e}", path.display())))?,
            ),
            None => None,
        };
        let start = Instant::now();
        let client = Recorder::new(url, options, start)?;
        let (host, port) = client.connect_target();
        let deadline = start + client.options().timeout;
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("rtsp-connect".into())
            .spawn(move || {
                // The receiver may be gone (session stopped): nothing to do then.
                let _ = tx.send(connect(&host, port, deadline));
            })
            .map_err(|e| Error::Connection(format!("cannot start the connection thread: {e}")))?;
        Ok(Session {
            client,
            capture,
            stop,
            stopping: false,
            conn: Conn::Connecting(rx),
            buf: vec![0; READ_CHUNK].into_boxed_slice(),
            finished: false,
        })
    }

    /// A handle that stops this session from any thread.
    ///
    /// ```no_run
    /// # use rtsp_toolkit_blocking::{ClientOptions, Session};
    /// let session = Session::open("rtsp://127.0.0.1:8554/cam", ClientOptions::default()).unwrap();
    /// let stop = session.stop_handle();
    /// std::thread::spawn(move || stop.stop());
    /// let events: Vec<_> = session.collect(); // ends with Closed within the timeout
    /// ```
    pub fn stop_handle(&self) -> StopSignal {
        self.stop.clone()
    }

    /// Asks the session to end (TEARDOWN, then [`Event::Closed`]). Keep
    /// iterating to see it close.
    pub fn stop(&self) {
        self.stop.stop();
    }

    /// Stops the session and runs it to its end; returns the last events.
    pub fn close(mut self) -> Vec<Event> {
        self.stop();
        self.by_ref().collect()
    }

    fn save_capture(&mut self) {
        if let Some(file) = &mut self.capture {
            if let Err(e) = self.client.write_capture(file) {
                tracing::warn!(error = %e, "capture file write failed; recording stopped");
                self.capture = None;
            }
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        let Conn::Open { stream, .. } = &mut self.conn else {
            return;
        };
        let timeout = self.client.options().timeout;
        let result = stream
            .set_write_timeout(Some(timeout))
            .and_then(|()| stream.write_all(bytes));
        if let Err(e) = result {
            let reason = if is_timeout(&e) {
                "write timed out: the server is not reading".to_owned()
            } else {
                format!("write failed: {e}")
            };
            self.client.handle_io_error(Instant::now(), &reason);
        }
    }

    /// Waits for input, the connection, or `at` (at most [`STOP_POLL`]) and
    /// tells the client what happened.
    fn wait(&mut self, at: Instant) {
        let now = Instant::now();
        let wait = at
            .saturating_duration_since(now)
            .clamp(Duration::from_millis(1), STOP_POLL);
        match &mut self.conn {
            Conn::Connecting(rx) => match rx.recv_timeout(wait) {
                Ok(Ok((stream, local, peer))) => {
                    let _ = stream.set_nodelay(true);
                    self.conn = Conn::Open {
                        stream,
                        read_closed: false,
                    };
                    self.client.handle_connected(Instant::now(), local, peer);
                }
                Ok(Err(e)) if e.kind() == io::ErrorKind::TimedOut => {
                    // The attempt ran into the session's deadline: the
                    // client reports the connection timeout when it passes.
                    self.conn = Conn::Closed;
                }
                Ok(Err(e)) => {
                    self.conn = Conn::Closed;
                    self.client.handle_connect_failed(Instant::now(), &e.to_string());
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    self.conn = Conn::Closed;
                    self.client
                        .handle_connect_failed(Instant::now(), "the connection thread ended");
                }
            },
            Conn::Open {
                stream,
                read_closed: false,
            } => {
                let r = stream
                    .set_read_timeout(Some(wait))
                    .and_then(|()| stream.read(&mut self.buf));
                let now = Instant::now();
                match r {
                    Ok(0) => {
                        if let Conn::Open { read_closed, .. } = &mut self.conn {
                            *read_closed = true;
                        }
                        self.client.handle_eof(now);
                    }
                    Ok(n) => self.client.handle_input(now, &self.buf[..n]),
                    Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => self.client.handle_io_error(now, &format!("read failed: {e}")),
                }
            }
            Conn::Open { .. } | Conn::Closed => std::thread::sleep(wait),
        }
    }

    fn finish(&mut self) {
        self.finished = true;
        self.save_capture();
        if let Conn::Open { stream, .. } = std::mem::replace(&mut self.conn, Conn::Closed) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

impl Iterator for Session {
    type Item = Event;

    /// The driving loop of DESIGN.md: runs until an event is ready.
    fn next(&mut self) -> Option<Event> {
        loop {
            if self.finished {
                return None;
            }
            if !self.stopping && self.stop.is_stopped() {
                self.stopping = true;
                self.client.close(Instant::now());
            }
            match self.client.poll_output() {
                Output::Transmit(bytes) => self.write(&bytes),
                Output::Event(event) => return Some(event),
                Output::Timeout(at) => {
                    self.save_capture();
                    let late = Instant::now() >= at;
                    // When late (the session was not iterated for a while),
                    // this is a 1 ms look: data waiting in the socket must
                    // count before "no data within the timeout" does.
                    self.wait(at);
                    if late {
                        self.client.handle_timeout(Instant::now());
                    }
                }
                Output::Done => {
                    self.finish();
                    return None;
                }
            }
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        if !self.stopping {
            self.stopping = true;
            self.client.close(Instant::now());
        }
        // Bounded: the client gives TEARDOWN at most its timeout for an answer.
        for _ in self.by_ref() {}
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

/// Resolves `host` and connects to each address in turn until `deadline`.
fn connect(host: &str, port: u16, deadline: Instant) -> Connected {
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

#[cfg(test)]
mod tests {
    #[test]
    fn session_can_move_between_threads() {
        fn is_send<T: Send + Unpin>() {}
        is_send::<super::Session>();
        is_send::<super::StopSignal>();
    }
}
