//! tokio runtime for rtsp-toolkit.
//!
//! [`Session`] drives the sans-IO [`Client`] machine over a
//! [`tokio::net::TcpStream`] and hands its events out as a
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

mod io;
#[cfg(feature = "server")]
pub mod server;
pub(crate) use io::read_waiting;
#[cfg(feature = "server")]
pub use server::{serve, Server, ServerBuilder, ServerOptions};

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

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

/// Events buffered between the session task and the consumer. When full, the
/// task stops reading the socket (TCP backpressure), so nothing is dropped.
const EVENT_QUEUE: usize = 256;
/// Read buffer size: one read hands the machine at most this much.
const READ_CHUNK: usize = 64 * 1024;

/// A running client session: a [`Stream`](futures_core::Stream) of
/// [`Event`]s that ends after [`Event::Closed`].
///
/// Dropping it stops the session: the background task sends TEARDOWN (when
/// a server session exists), waits for the answer up to the timeout, and
/// closes the connection.
#[derive(Debug)]
pub struct Session {
    rx: mpsc::Receiver<Event>,
    stop: StopSignal,
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
        let capture = open_capture(&options)?;
        let client = Recorder::new(url, options, Instant::now())?;
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        handle.spawn(drive(client, capture, tx, stop.clone()));
        Ok(Session { rx, stop })
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
        self.rx.recv().await
    }
}

impl futures_core::Stream for Session {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.rx.poll_recv(cx)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stop.stop();
    }
}

/// The driving loop: the same shape in every runtime (see DESIGN.md).
async fn drive(mut client: Recorder, mut capture: Option<std::fs::File>, tx: mpsc::Sender<Event>, stop: StopSignal) {
    let timeout = client.options().timeout;
    let (host, port) = client.connect_target();
    let mut connecting = Some(Box::pin(TcpStream::connect((host, port))));
    let mut socket: Option<TcpStream> = None;
    let mut buf = vec![0u8; READ_CHUNK];
    let mut stopping = false;
    let mut consumer_gone = false;
    loop {
        match client.poll_output() {
            Output::Transmit(bytes) => {
                let Some(s) = socket.as_mut() else { continue };
                match tokio::time::timeout(timeout, s.write_all(&bytes)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => client.handle_io_error(Instant::now(), &format!("write failed: {e}")),
                    Err(_) => client.handle_io_error(Instant::now(), "write timed out: the server is not reading"),
                }
            }
            Output::Event(event) => {
                if consumer_gone {
                    continue;
                }
                tokio::select! {
                    biased;
                    permit = tx.reserve() => match permit {
                        Ok(p) => p.send(event),
                        Err(_) => {
                            consumer_gone = true;
                            stopping = true;
                            client.close(Instant::now());
                        }
                    },
                    _ = stop.stopped(), if !stopping => {
                        stopping = true;
                        // The event is kept: deliver it after queuing the close.
                        client.close(Instant::now());
                        if let Ok(p) = tx.reserve().await {
                            p.send(event);
                        } else {
                            consumer_gone = true;
                        }
                    }
                }
            }
            Output::Timeout(at) => {
                save_capture(&mut client, &mut capture);
                let at = tokio::time::Instant::from_std(at);
                if let Some(conn) = connecting.as_mut() {
                    tokio::select! {
                        r = conn => {
                            connecting = None;
                            let now = Instant::now();
                            match r.and_then(|s| Ok((s.local_addr()?, s.peer_addr()?, s))) {
                                Ok((local, peer, s)) => {
                                    let _ = s.set_nodelay(true);
                                    socket = Some(s);
                                    client.handle_connected(now, local, peer);
                                }
                                Err(e) => client.handle_connect_failed(now, &e.to_string()),
                            }
                        }
                        _ = tokio::time::sleep_until(at) => client.handle_timeout(Instant::now()),
                        _ = stop.stopped(), if !stopping => { stopping = true; client.close(Instant::now()) }
                    }
                } else if let Some(s) = socket.as_mut() {
                    tokio::select! {
                        // Data already waiting wins over a deadline that passed
                        // while the consumer was slow: it is not silence.
                        biased;
                        r = s.read(&mut buf) => {
                            let now = Instant::now();
                            match r {
                                Ok(0) => client.handle_eof(now),
                                Ok(n) => client.handle_input(now, &buf[..n]),
                                Err(e) => client.handle_io_error(now, &format!("read failed: {e}")),
                            }
                            // A steady stream must not starve keepalives and other deadlines.
                            if now >= at.into_std() {
                                client.handle_timeout(now);
                            }
                        }
                        _ = tokio::time::sleep_until(at) => {
                            // Data waiting counts before the deadline does (see `read_waiting`).
                            let now = Instant::now();
                            match read_waiting(s, &mut buf) {
                                Some(Ok(0)) => client.handle_eof(now),
                                Some(Ok(n)) => client.handle_input(now, &buf[..n]),
                                Some(Err(e)) => client.handle_io_error(now, &format!("read failed: {e}")),
                                None => {}
                            }
                            client.handle_timeout(now);
                        }
                        _ = stop.stopped(), if !stopping => { stopping = true; client.close(Instant::now()) }
                    }
                } else {
                    tokio::time::sleep_until(at).await;
                    client.handle_timeout(Instant::now());
                }
            }
            Output::Done => break,
        }
    }
    save_capture(&mut client, &mut capture);
    if let Some(mut s) = socket {
        let _ = s.shutdown().await;
    }
}

/// The README's Rust examples, compiled as doc tests so they stay true.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// Creates the file named by [`ClientOptions::capture`], if any.
fn open_capture(options: &ClientOptions) -> Result<Option<std::fs::File>, Error> {
    let Some(path) = &options.capture else { return Ok(None) };
    std::fs::File::create(path)
        .map(Some)
        .map_err(|e| Error::Config(format!("cannot create the capture file {}: {e}", path.display())))
}

/// Appends what the recorder encoded to the capture file. A plain blocking
/// write: captures are small and appended between reads.
fn save_capture(client: &mut Recorder, capture: &mut Option<std::fs::File>) {
    if let Some(file) = capture {
        if let Err(e) = client.write_capture(file) {
            tracing::warn!(error = %e, "capture file write failed; recording stopped");
            *capture = None;
        }
    }
}
