//! Running one URL on each runtime (tokio, smol, blocking) and collecting
//! its events, with a deadline: the one session runner of the cross-runtime
//! tests.
//!
//! [`run`] drives the session on a thread of its own while the calling
//! thread keeps the time, so a session that does not end fails the test at
//! [`Control::limit`] on every runtime (even a blocking one stuck in a read).

use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use rtsp_toolkit_core::client::{ClientOptions, Event};
use rtsp_toolkit_core::stop::{SessionControl, StopSignal};

/// A runtime crate of rtsp-toolkit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// `rtsp-toolkit-tokio`, on a current-thread tokio runtime.
    Tokio,
    /// `rtsp-toolkit-smol`, on `smol::block_on`.
    Smol,
    /// `rtsp-toolkit-blocking`, iterated on its thread.
    Blocking,
}

impl Runtime {
    /// Every runtime.
    pub const ALL: [Runtime; 3] = [Runtime::Tokio, Runtime::Smol, Runtime::Blocking];

    /// Its name, lower case.
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Tokio => "tokio",
            Runtime::Smol => "smol",
            Runtime::Blocking => "blocking",
        }
    }
}

/// When the session is stopped from its own events.
#[derive(Debug, Clone, Copy)]
pub enum StopWhen {
    /// Never: it ends by itself, or at [`Control::stop_after`].
    Never,
    /// Right after the n-th RTP packet (of any track).
    Rtp(usize),
    /// Right after the first event for which this is true.
    Event(fn(&Event) -> bool),
}

/// How [`run`] stops a session, and how long it may take.
///
/// A stop asks for the session's end (TEARDOWN, then Closed); the session
/// runs on until its Closed event either way.
#[derive(Debug, Clone, Copy)]
pub struct Control {
    /// Stop the session this long after it was opened (a watchdog).
    pub stop_after: Option<Duration>,
    /// Stop it as soon as one of its events says so, before the next event
    /// is read (the event is kept).
    pub stop_when: StopWhen,
    /// The session must have ended this long after it was opened, or [`run`]
    /// panics (the session is stopped and left to end in the background).
    pub limit: Duration,
}

impl Control {
    /// No stop: the session must end by itself within `limit`.
    pub fn within(limit: Duration) -> Control {
        Control {
            stop_after: None,
            stop_when: StopWhen::Never,
            limit,
        }
    }

    /// Also stopped `after` its open (if it has not ended yet).
    pub fn stop_after(self, after: Duration) -> Control {
        Control {
            stop_after: Some(after),
            ..self
        }
    }

    /// Also stopped as `when` says.
    pub fn stop_when(self, when: StopWhen) -> Control {
        Control {
            stop_when: when,
            ..self
        }
    }
}

/// What a session gave on one runtime.
#[derive(Debug)]
pub struct Run {
    /// Where it ran.
    pub runtime: Runtime,
    /// Every event, up to and including Closed.
    pub events: Vec<Event>,
    /// Wall-clock time from the [`Control::stop_when`] stop to the Closed
    /// event, when both happened.
    pub stop_to_closed: Option<Duration>,
}

/// Opens `url` on `runtime` and collects its events until the session ends,
/// stopping it as `control` says. Panics (it is for tests) if the session
/// cannot be opened or does not end within [`Control::limit`].
pub fn run(runtime: Runtime, url: &str, opts: ClientOptions, control: Control) -> Run {
    let stop = StopSignal::new();
    let (done, ended) = mpsc::channel::<Run>();
    let started = Instant::now();
    let session = {
        let (url, stop) = (url.to_owned(), stop.clone());
        thread::Builder::new()
            .name(format!("{} session", runtime.name()))
            .spawn(move || {
                let _ = done.send(collect(runtime, &url, opts, stop, control.stop_when));
            })
            .expect("spawn a session thread")
    };
    let mut watchdog = control.stop_after.filter(|after| *after < control.limit);
    loop {
        let deadline = watchdog.unwrap_or(control.limit);
        match ended.recv_timeout(deadline.saturating_sub(started.elapsed())) {
            Ok(run) => {
                session.join().expect("the session thread ends after its result");
                return run;
            }
            // The session thread panicked (before sending its result).
            Err(RecvTimeoutError::Disconnected) => match session.join() {
                Err(panic) => std::panic::resume_unwind(panic),
                Ok(()) => unreachable!("the session thread ended without a result"),
            },
            Err(RecvTimeoutError::Timeout) => {
                stop.stop();
                if watchdog.take().is_none() {
                    panic!(
                        "{}: the session of {url} did not end within {:?}",
                        runtime.name(),
                        control.limit
                    );
                }
            }
        }
    }
}

/// Calls `f` with every runtime of [`Runtime::ALL`], each on a thread of its
/// own, all at once; returns the results in that order. A panic in one is
/// resumed once all have ended.
pub fn at_once<T: Send>(f: impl Fn(Runtime) -> T + Sync) -> Vec<T> {
    let f = &f;
    thread::scope(|s| {
        let threads: Vec<_> = Runtime::ALL.map(|runtime| s.spawn(move || f(runtime))).into();
        threads
            .into_iter()
            .map(|t| t.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect()
    })
}

/// The events so far, and the stop that [`StopWhen`] asks for.
struct Collector {
    stop: StopSignal,
    when: StopWhen,
    events: Vec<Event>,
    rtp: usize,
    stopped_at: Option<Instant>,
    closed_at: Option<Instant>,
}

impl Collector {
    fn push(&mut self, event: Event) {
        let now = Instant::now();
        let hit = match self.when {
            StopWhen::Never => false,
            StopWhen::Rtp(n) => {
                if matches!(event, Event::Rtp(_)) {
                    self.rtp += 1;
                }
                self.rtp == n
            }
            StopWhen::Event(pred) => pred(&event),
        };
        if hit && self.stopped_at.is_none() {
            self.stopped_at = Some(now);
            self.stop.stop();
        }
        if matches!(event, Event::Closed(_)) {
            self.closed_at = Some(now);
        }
        self.events.push(event);
    }
}

/// Runs the session on `runtime` in this thread until its events end.
fn collect(runtime: Runtime, url: &str, opts: ClientOptions, stop: StopSignal, when: StopWhen) -> Run {
    let mut c = Collector {
        stop: stop.clone(),
        when,
        events: Vec::new(),
        rtp: 0,
        stopped_at: None,
        closed_at: None,
    };
    match runtime {
        Runtime::Tokio => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime");
            rt.block_on(async {
                let mut session = rtsp_toolkit_tokio::Session::open_with_stop(url, opts, stop)
                    .unwrap_or_else(|e| panic!("{}: open {url}: {e}", runtime.name()));
                while let Some(e) = session.next().await {
                    c.push(e);
                }
            });
        }
        Runtime::Smol => smol::block_on(async {
            let mut session = rtsp_toolkit_smol::Session::open_with_stop(url, opts, stop)
                .unwrap_or_else(|e| panic!("{}: open {url}: {e}", runtime.name()));
            while let Some(e) = session.next().await {
                c.push(e);
            }
        }),
        Runtime::Blocking => {
            for e in rtsp_toolkit_blocking::Session::open_with_stop(url, opts, stop)
                .unwrap_or_else(|e| panic!("{}: open {url}: {e}", runtime.name()))
            {
                c.push(e);
            }
        }
    }
    Run {
        runtime,
        stop_to_closed: c.stopped_at.zip(c.closed_at).map(|(s, e)| e - s),
        events: c.events,
    }
}

/// A session running on a thread of its own, for tests that act on it
/// while it runs (pause it, seek it): its events come over a channel, read
/// with bounded waits, and it is paused and played through its
/// [`SessionControl`] (the same handle every runtime gives).
#[derive(Debug)]
pub struct Live {
    /// Where it runs.
    pub runtime: Runtime,
    /// Stops it (TEARDOWN, then Closed).
    pub stop: StopSignal,
    /// Pauses and plays it.
    pub control: SessionControl,
    /// Every event received so far, in order.
    pub seen: Vec<Event>,
    events: mpsc::Receiver<Event>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Live {
    /// Opens `url` on `runtime` (panics, it is for tests, if it cannot).
    pub fn open(runtime: Runtime, url: &str, opts: ClientOptions) -> Live {
        let stop = StopSignal::new();
        let (tx, events) = mpsc::channel::<Event>();
        let (handle_tx, handle_rx) = mpsc::sync_channel::<SessionControl>(1);
        let thread = {
            let (url, stop) = (url.to_owned(), stop.clone());
            thread::Builder::new()
                .name(format!("{} live session", runtime.name()))
                .spawn(move || forward(runtime, &url, opts, stop, handle_tx, tx))
                .expect("spawn a session thread")
        };
        let control = handle_rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("{}: the session did not open: {e}", runtime.name()));
        Live {
            runtime,
            stop,
            control,
            seen: Vec::new(),
            events,
            thread: Some(thread),
        }
    }

    /// The next event, waiting at most `wait`; `None` when none came (or
    /// the session ended).
    pub fn next(&mut self, wait: Duration) -> Option<Event> {
        let e = self.events.recv_timeout(wait).ok()?;
        self.seen.push(e.clone());
        Some(e)
    }

    /// Reads events until one for which `pred` is true, and returns it;
    /// panics when none came within `limit`.
    pub fn until(&mut self, limit: Duration, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
        let end = Instant::now() + limit;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.next(left) {
                Some(e) if pred(&e) => return e,
                Some(Event::Closed(c)) => panic!("{}: closed before {what}: {c:?}", self.runtime.name()),
                Some(_) => {}
                None => panic!("{}: no {what} within {limit:?}", self.runtime.name()),
            }
        }
    }

    /// Every event that comes within `wait` (read until then, at most 100 000).
    pub fn during(&mut self, wait: Duration) -> Vec<Event> {
        let end = Instant::now() + wait;
        let mut got = Vec::new();
        for _ in 0..100_000 {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match self.next(left) {
                Some(e) => got.push(e),
                None => break,
            }
        }
        got
    }

    /// Lets it end by itself (or stops it after `limit`), reads its events
    /// up to Closed, and returns every event it gave; panics when it did not
    /// end within twice `limit`.
    pub fn finish(mut self, limit: Duration) -> Vec<Event> {
        let end = Instant::now() + limit;
        let mut stopped = false;
        loop {
            if matches!(self.seen.last(), Some(Event::Closed(_))) {
                break;
            }
            let now = Instant::now();
            if now >= end && !stopped {
                self.stop.stop();
                stopped = true;
            }
            if now >= end + limit {
                panic!(
                    "{}: the session did not end within {:?}",
                    self.runtime.name(),
                    limit * 2
                );
            }
            let wait = if stopped { end + limit - now } else { end - now };
            self.next(wait.max(Duration::from_millis(1)));
        }
        if let Some(t) = self.thread.take() {
            t.join().expect("the session thread ends after Closed");
        }
        std::mem::take(&mut self.seen)
    }
}

impl Drop for Live {
    /// A session not finished is stopped; its thread ends within the
    /// session's timeout, on its own.
    fn drop(&mut self) {
        self.stop.stop();
    }
}

/// Runs the session on `runtime` in this thread, handing its control handle
/// out first, then each event, until its events end (or nobody reads them).
fn forward(
    runtime: Runtime,
    url: &str,
    opts: ClientOptions,
    stop: StopSignal,
    handle: mpsc::SyncSender<SessionControl>,
    tx: mpsc::Sender<Event>,
) {
    fn open_failed<T>(runtime: Runtime, url: &str) -> impl FnOnce(rtsp_toolkit_core::Error) -> T + '_ {
        move |e| panic!("{}: open {url}: {e}", runtime.name())
    }
    let send = |e: Event| {
        if tx.send(e).is_err() {
            stop.stop();
        }
    };
    match runtime {
        Runtime::Tokio => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime");
            rt.block_on(async {
                let mut session = rtsp_toolkit_tokio::Session::open_with_stop(url, opts, stop.clone())
                    .unwrap_or_else(open_failed(runtime, url));
                let _ = handle.send(session.control_handle());
                while let Some(e) = session.next().await {
                    send(e);
                }
            });
        }
        Runtime::Smol => smol::block_on(async {
            let mut session = rtsp_toolkit_smol::Session::open_with_stop(url, opts, stop.clone())
                .unwrap_or_else(open_failed(runtime, url));
            let _ = handle.send(session.control_handle());
            while let Some(e) = session.next().await {
                send(e);
            }
        }),
        Runtime::Blocking => {
            let session = rtsp_toolkit_blocking::Session::open_with_stop(url, opts, stop.clone())
                .unwrap_or_else(open_failed(runtime, url));
            let _ = handle.send(session.control_handle());
            for e in session {
                send(e);
            }
        }
    }
}
