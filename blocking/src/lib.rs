//! Blocking runtime for rtsp-toolkit: an RTSP client session as an
//! [`Iterator`] of events over [`std::net::TcpStream`], with no async runtime.
//!
//! [`Session`] drives the sans-IO client machine of `rtsp-toolkit-core` on
//! the thread that iterates it: each [`Iterator::next`] writes what the
//! machine wants sent and reads the socket (with a read timeout up to the
//! machine's next deadline, at most [`STOP_POLL`]) until an event is ready.
//! With RTP over UDP ([`ClientOptions::transport`]), it waits on the RTSP
//! connection and every UDP socket of the session at once (`poll(2)`, same
//! bound), then reads what is ready without waiting. A [`StopSignal`]
//! raised from another thread, and a pause or play request from a
//! [`SessionControl`], are noticed within [`STOP_POLL`].
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

#![warn(missing_docs)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

/// The sans-IO core, for everything not re-exported here.
pub use rtsp_toolkit_core as core;
use rtsp_toolkit_core::client::UdpSocketId;
pub use rtsp_toolkit_core::prelude::*;
use rtsp_toolkit_core::Output;
use rtsp_toolkit_driver::{
    is_would_block, ClientConn, ClientDriver, Connected, UdpSockets, Woken, WriteError, READ_CHUNK,
};

/// Longest a blocked read (or the wait for a connection) goes without
/// looking at the stop signal.
pub const STOP_POLL: Duration = Duration::from_millis(50);

/// The connection: made on a helper thread, so that a stop is noticed while
/// resolution and connection block.
type Conn = ClientConn<Socket>;

/// The open socket.
#[derive(Debug)]
struct Socket {
    stream: TcpStream,
    /// The read timeout set on the socket last, so that it is set again
    /// only when it changes (a system call per read otherwise).
    read_timeout: Option<Duration>,
}

impl Socket {
    fn new(stream: TcpStream) -> std::io::Result<Socket> {
        Ok(Socket {
            stream,
            read_timeout: None,
        })
    }
}

/// A running client session: an [`Iterator`] of [`Event`]s that ends after
/// [`Event::Closed`].
///
/// Dropping a session that has not ended closes it cleanly on the dropping
/// thread: TEARDOWN (when a server session exists), its answer or the
/// timeout, then the socket is closed.
#[derive(Debug)]
pub struct Session {
    driver: ClientDriver,
    conn: Conn,
    /// The session's UDP sockets (non-blocking), when RTP travels over UDP.
    udp: UdpSockets<UdpSocket>,
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
        let driver = ClientDriver::open(url, options, stop)?;
        Ok(Session {
            conn: Conn::start(&driver),
            driver,
            udp: UdpSockets::new(),
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
        self.driver.stop_signal().clone()
    }

    /// Asks the session to end (TEARDOWN, then [`Event::Closed`]) by raising
    /// its stop signal: sessions opened with the same signal end too. Keep
    /// iterating to see it close.
    pub fn stop(&self) {
        self.driver.stop_signal().stop();
    }

    /// Asks the server to pause the playing session (`PAUSE`), at the next
    /// [`Iterator::next`]. The answer comes as an [`Event::Method`]; while
    /// paused, no media arrives and the session stays alive (keepalives, no
    /// read timeout). A PAUSE that does not fit the session's phase (not
    /// playing yet, paused already, another request unanswered) or that the
    /// server refuses is a [`Warning::Control`], and the session goes on as
    /// it was. Fails only when the session has ended or
    /// [`CONTROL_QUEUE`](rtsp_toolkit_core::stop::CONTROL_QUEUE) requests wait already.
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
    /// use std::time::Duration;
    /// use rtsp_toolkit_blocking::{ClientOptions, PlayRange, Session};
    /// let mut session = Session::open("rtsp://127.0.0.1:8554/cam", ClientOptions::default()).unwrap();
    /// let control = session.control_handle(); // or session.pause() between events
    /// std::thread::spawn(move || {
    ///     control.pause().unwrap();
    ///     control.play_from(PlayRange::from(Duration::from_secs(30)), None).unwrap();
    /// });
    /// for event in session.by_ref() { /* ... */ }
    /// ```
    pub fn play_from(&self, range: PlayRange, scale: Option<f64>) -> Result<(), ControlError> {
        self.driver.control().play_from(range, scale)
    }

    /// A handle that pauses and plays this session from any thread
    /// ([`SessionControl::pause`], [`SessionControl::play_from`]); the
    /// iterating thread sees it within [`STOP_POLL`].
    pub fn control_handle(&self) -> SessionControl {
        self.driver.control().clone()
    }

    /// Stops the session and runs it to its end; returns the last events.
    pub fn close(mut self) -> Vec<Event> {
        self.stop();
        self.by_ref().collect()
    }

    fn write(&mut self, bytes: &[u8]) {
        let Conn::Open {
            stream: Socket { stream, .. },
            ..
        } = &mut self.conn
        else {
            return;
        };
        // The send timeout bounds each write call: it measures time without progress.
        let result = stream
            .set_write_timeout(Some(self.driver.timeout()))
            .and_then(|()| stream.write_all(bytes));
        if let Err(e) = result {
            self.driver.write_failed(WriteError::from(e));
        }
    }

    /// Waits for input, the connection, or `at` (at most [`STOP_POLL`]) and
    /// tells the client what happened.
    fn wait(&mut self, at: Instant) {
        let wait = at
            .saturating_duration_since(Instant::now())
            .clamp(Duration::from_millis(1), STOP_POLL);
        if !self.udp.is_empty() && !matches!(self.conn, Conn::Connecting(_)) {
            return self.wait_with_udp(at, wait);
        }
        match &mut self.conn {
            Conn::Connecting(attempt) => {
                if let Some(result) = attempt.wait(wait) {
                    self.connected(result);
                }
            }
            Conn::Open {
                stream: Socket { stream, read_timeout },
                read_closed: false,
            } => {
                let set = if *read_timeout == Some(wait) {
                    Ok(())
                } else {
                    *read_timeout = None;
                    stream.set_read_timeout(Some(wait)).map(|()| *read_timeout = Some(wait))
                };
                let r = set.and_then(|()| stream.read(&mut self.buf));
                self.conn.note_read(&r);
                self.driver.read_done(r, &self.buf, Some(at));
            }
            Conn::Open { .. } | Conn::Closed => std::thread::sleep(wait),
        }
    }

    /// [`Session::wait`] for a session with UDP sockets: `poll(2)` on the
    /// connection (while it can be read) and every UDP socket for up to
    /// `wait`, then one read of the connection if it is readable, the
    /// datagrams, and the timeout, in the driver's order.
    fn wait_with_udp(&mut self, at: Instant, wait: Duration) {
        let tcp = match &mut self.conn {
            Conn::Open {
                stream: Socket { stream, read_timeout },
                read_closed: false,
            } => {
                // Readable means a read returns at once; the timeout only
                // bounds a read woken for nothing.
                if *read_timeout != Some(STOP_POLL) {
                    *read_timeout = None;
                    if stream.set_read_timeout(Some(STOP_POLL)).is_ok() {
                        *read_timeout = Some(STOP_POLL);
                    }
                }
                Some(&*stream)
            }
            _ => None,
        };
        let (tcp_ready, udp_ready) = poll_ready(tcp, &mut self.udp, wait);
        let read = match &mut self.conn {
            Conn::Open {
                stream: Socket { stream, .. },
                read_closed: false,
            } if tcp_ready => Some(stream.read(&mut self.buf)),
            _ => None,
        };
        if let Some(r) = &read {
            self.conn.note_read(r);
        }
        let now = Instant::now();
        let read = match read {
            None if now >= at => self.take_waiting(),
            r => r,
        };
        self.driver.woken_udp(
            Woken::new(now, read, now >= at),
            &self.buf,
            udp_ready,
            &mut self.udp,
            at,
        );
    }

    /// Closes the connection and every UDP socket, and connects again (the
    /// client's fallback from UDP to TCP).
    fn reconnect(&mut self) {
        self.udp.clear();
        if let Some(old) = self.conn.restart(&self.driver) {
            let _ = old.stream.shutdown(Shutdown::Both);
        }
    }

    /// For a deadline that passed: the connection result if it is there
    /// (handed in), or one read of what waits in the socket, without waiting.
    fn take_waiting(&mut self) -> Option<std::io::Result<usize>> {
        let buf = &mut self.buf;
        self.conn.take_waiting(&mut self.driver, Socket::new, |s| {
            let r = s.stream.set_nonblocking(true).and_then(|()| s.stream.read(buf));
            let _ = s.stream.set_nonblocking(false);
            match r {
                Err(e) if is_would_block(&e) => None,
                r => Some(r),
            }
        })
    }

    fn connected(&mut self, result: Connected) {
        self.conn.connected(&mut self.driver, result, Socket::new);
    }

    fn finish(&mut self) {
        self.finished = true;
        self.udp.clear();
        if let Conn::Open { stream, .. } = std::mem::replace(&mut self.conn, Conn::Closed) {
            let _ = stream.stream.shutdown(Shutdown::Both);
        }
    }
}

impl Iterator for Session {
    type Item = Event;

    /// The driving loop of `docs/ARCHITECTURE.md`: runs until an event is ready.
    fn next(&mut self) -> Option<Event> {
        loop {
            if self.finished {
                return None;
            }
            self.driver.check_stop();
            self.driver.check_control();
            match self.driver.poll_output() {
                Output::Transmit(bytes) => self.write(&bytes),
                Output::SendDatagram { socket, to, data } => self.udp.send(socket, to, &data),
                Output::OpenUdp(request) => self.driver.open_udp(&request, &mut self.udp, Ok),
                Output::Reconnect => self.reconnect(),
                Output::Event(event) => return Some(event),
                Output::Timeout(at) => {
                    if Instant::now() >= at {
                        let waiting = self.take_waiting();
                        if self.udp.is_empty() {
                            self.driver.deadline_passed(waiting, &self.buf);
                        } else {
                            let w = Woken::new(Instant::now(), waiting, true);
                            self.driver.woken_udp(w, &self.buf, false, &mut self.udp, at);
                        }
                    } else {
                        self.wait(at);
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
        self.driver.stop_now();
        // Bounded: the client gives TEARDOWN at most its timeout for an answer.
        for _ in self.by_ref() {}
    }
}

/// Waits up to `wait` until `tcp` or a socket of `udp` is readable (or
/// broken: then its read says how); whether the connection is, and whether
/// a UDP socket is. An interrupted wait reports nothing ready; a failed one
/// (it should not fail) is logged and waits out `wait`, so that the loop
/// cannot spin.
fn poll_ready(tcp: Option<&TcpStream>, udp: &mut UdpSockets<UdpSocket>, wait: Duration) -> (bool, bool) {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let mut fds = Vec::with_capacity(1 + udp.len());
    if let Some(s) = tcp {
        fds.push(PollFd::new(s, PollFlags::IN));
    }
    for (_, s) in udp.iter() {
        fds.push(PollFd::new(s, PollFlags::IN));
    }
    let timeout = Timespec::try_from(wait).ok();
    match poll(&mut fds, timeout.as_ref()) {
        Ok(_) => {}
        Err(rustix::io::Errno::INTR) => return (false, false),
        Err(e) => {
            tracing::debug!(error = %e, "poll failed");
            std::thread::sleep(wait);
            return (false, false);
        }
    }
    let ready = |f: &PollFd<'_>| {
        f.revents()
            .intersects(PollFlags::IN | PollFlags::ERR | PollFlags::HUP | PollFlags::NVAL)
    };
    let first_udp = usize::from(tcp.is_some());
    let tcp_ready = tcp.is_some() && fds.first().is_some_and(ready);
    let ready: Vec<bool> = fds[first_udp..].iter().map(ready).collect();
    drop(fds);
    let udp_ready = ready.contains(&true);
    if udp_ready {
        // The sockets with nothing to read are not tried this time.
        let quiet: Vec<UdpSocketId> = udp
            .iter()
            .zip(&ready)
            .filter(|(_, ready)| !**ready)
            .map(|((id, _), _)| id)
            .collect();
        for id in quiet {
            udp.mark_idle(id);
        }
    }
    (tcp_ready, udp_ready)
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
