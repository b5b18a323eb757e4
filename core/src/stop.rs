//! A stop signal shared between whoever wants a session to end and the runtime
//! that drives it.
//!
//! It works the same from a plain thread (`stop()`, `is_stopped()`) and from
//! async code (`stopped().await`, on any executor: it only uses `std::task`
//! wakers), so one signal can stop sessions on different runtimes and be
//! raised from a signal handler's thread. It is not a channel: it carries one
//! bit, set once, never cleared.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

/// Cloneable handle; every clone sees the same signal.
///
/// ```
/// use rtsp_toolkit_core::stop::StopSignal;
/// let stop = StopSignal::new();
/// let other = stop.clone();
/// std::thread::spawn(move || other.stop()).join().unwrap();
/// assert!(stop.is_stopped());
/// ```
#[derive(Debug, Clone, Default)]
pub struct StopSignal {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    stopped: AtomicBool,
    wakers: Mutex<Vec<Waker>>,
}

impl StopSignal {
    /// A signal not yet raised.
    pub fn new() -> Self {
        Self::default()
    }

    /// Raises the signal and wakes every task waiting in [`StopSignal::stopped`].
    pub fn stop(&self) {
        self.inner.stopped.store(true, Ordering::SeqCst);
        let wakers = std::mem::take(&mut *self.inner.wakers.lock().unwrap_or_else(|e| e.into_inner()));
        for w in wakers {
            w.wake();
        }
    }

    /// Whether [`StopSignal::stop`] has been called on any clone.
    pub fn is_stopped(&self) -> bool {
        self.inner.stopped.load(Ordering::SeqCst)
    }

    /// A future that completes once the signal is raised.
    pub fn stopped(&self) -> Stopped {
        Stopped { signal: self.clone() }
    }
}

/// Future returned by [`StopSignal::stopped`].
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct Stopped {
    signal: StopSignal,
}

impl Future for Stopped {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.signal.is_stopped() {
            return Poll::Ready(());
        }
        let mut wakers = self.signal.inner.wakers.lock().unwrap_or_else(|e| e.into_inner());
        // Checked again under the lock: `stop()` may have run in between.
        if self.signal.is_stopped() {
            return Poll::Ready(());
        }
        if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
            // Bounded by the number of distinct tasks waiting on this signal.
            wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// Most requests a [`SessionControl`] holds before the runtime hands them
/// in (a caller that outruns the session gets [`ControlError::Full`]).
pub const CONTROL_QUEUE: usize = 16;

/// Why a [`SessionControl`] did not take a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// The session has ended: nothing will send it.
    #[error("the session has ended")]
    Ended,
    /// [`CONTROL_QUEUE`] requests wait already.
    #[error("{CONTROL_QUEUE} control requests are waiting already")]
    Full,
    /// The request cannot be made as asked (a range that ends before it
    /// starts, a scale of 0).
    #[error("{0}")]
    Invalid(String),
}

/// Cloneable handle that asks a running session to pause or play again:
/// a small bounded queue beside the [`StopSignal`], woken the same way
/// (`requested().await` on any executor, `take()` from a polling thread).
/// The runtimes hand each request in as its [`Input`](crate::client::Input)
/// (`docs/ARCHITECTURE.md`, control inputs); the session answers with
/// `Method` events, or a `Warning::Control` when the request does not fit
/// its phase.
///
/// ```
/// use std::time::Duration;
/// use rtsp_toolkit_core::client::{Control, PlayRange};
/// use rtsp_toolkit_core::stop::SessionControl;
/// let control = SessionControl::new();
/// control.pause().unwrap();
/// control.play_from(PlayRange::from(Duration::from_secs(4)), None).unwrap();
/// assert_eq!(control.take(), Some(Control::Pause));
/// assert!(matches!(control.take(), Some(Control::Play { .. })));
/// control.close();
/// assert!(control.pause().is_err());
/// ```
#[derive(Debug, Clone, Default)]
pub struct SessionControl {
    inner: Arc<ControlInner>,
}

#[derive(Debug, Default)]
struct ControlInner {
    /// Whether the queue may hold something: read without the lock, so that
    /// a runtime looks at the queue for every event at the cost of a load.
    queued: AtomicBool,
    state: Mutex<ControlState>,
}

#[derive(Debug, Default)]
struct ControlState {
    queue: std::collections::VecDeque<Control>,
    closed: bool,
    wakers: Vec<Waker>,
}

use crate::client::{Control, PlayRange, Scale};

impl SessionControl {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ControlState> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `control` and wakes the task driving the session.
    pub fn send(&self, control: Control) -> Result<(), ControlError> {
        let wakers = {
            let mut st = self.lock();
            if st.closed {
                return Err(ControlError::Ended);
            }
            if st.queue.len() >= CONTROL_QUEUE {
                return Err(ControlError::Full);
            }
            st.queue.push_back(control);
            self.inner.queued.store(true, Ordering::SeqCst);
            std::mem::take(&mut st.wakers)
        };
        for w in wakers {
            w.wake();
        }
        Ok(())
    }

    /// Asks for `PAUSE` ([`Control::Pause`]).
    pub fn pause(&self) -> Result<(), ControlError> {
        self.send(Control::Pause)
    }

    /// Asks for `PLAY` with `range` and `scale` ([`Control::Play`]); a
    /// range or scale that cannot be sent is refused here.
    pub fn play_from(&self, range: PlayRange, scale: Option<f64>) -> Result<(), ControlError> {
        range.check().map_err(ControlError::Invalid)?;
        let scale = scale.map(Scale::new).transpose().map_err(ControlError::Invalid)?;
        self.send(Control::Play { range, scale })
    }

    /// The oldest request waiting (for the runtime).
    pub fn take(&self) -> Option<Control> {
        if !self.is_requested() {
            return None;
        }
        let mut st = self.lock();
        let c = st.queue.pop_front();
        self.inner.queued.store(!st.queue.is_empty(), Ordering::SeqCst);
        c
    }

    /// Whether a request waits (one atomic load).
    pub fn is_requested(&self) -> bool {
        self.inner.queued.load(Ordering::SeqCst)
    }

    /// The session ended: later requests get [`ControlError::Ended`], and
    /// those waiting are dropped.
    pub fn close(&self) {
        let mut st = self.lock();
        st.closed = true;
        st.queue.clear();
        self.inner.queued.store(false, Ordering::SeqCst);
        st.wakers.clear();
    }

    /// A future that completes once a request waits.
    pub fn requested(&self) -> Requested {
        Requested { control: self.clone() }
    }
}

/// Future returned by [`SessionControl::requested`].
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct Requested {
    control: SessionControl,
}

impl Future for Requested {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut st = self.control.lock();
        if !st.queue.is_empty() {
            return Poll::Ready(());
        }
        if !st.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            // Bounded by the number of distinct tasks waiting on this queue.
            st.wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Wake;

    struct Flag(AtomicBool);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[test]
    fn future_wakes_on_stop() {
        let stop = StopSignal::new();
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        let mut fut = stop.stopped();
        assert!(Pin::new(&mut fut).poll(&mut cx).is_pending());
        assert!(Pin::new(&mut fut).poll(&mut cx).is_pending());
        assert_eq!(stop.inner.wakers.lock().unwrap().len(), 1);
        stop.clone().stop();
        assert!(flag.0.load(Ordering::SeqCst));
        assert!(Pin::new(&mut fut).poll(&mut cx).is_ready());
    }

    #[test]
    fn control_queue_wakes_is_bounded_and_closes() {
        let control = SessionControl::new();
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        let mut fut = control.requested();
        assert!(Pin::new(&mut fut).poll(&mut cx).is_pending());
        control.clone().pause().unwrap();
        assert!(flag.0.load(Ordering::SeqCst));
        assert!(Pin::new(&mut fut).poll(&mut cx).is_ready());
        for _ in 1..CONTROL_QUEUE {
            control.pause().unwrap();
        }
        assert_eq!(control.pause(), Err(ControlError::Full));
        assert!(matches!(
            control.play_from(PlayRange::resume(), Some(0.0)),
            Err(ControlError::Invalid(_))
        ));
        assert_eq!(control.take(), Some(Control::Pause));
        control.close();
        assert_eq!(control.take(), None);
        assert_eq!(control.pause(), Err(ControlError::Ended));
    }
}
