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
}
