//! The socket plumbing of this runtime: a write that fails only when it
//! makes no progress for the timeout (see `rtsp_toolkit_driver` for the
//! rules), and the bounded blocking write of a session's `Drop`.

use std::future::Future;
use std::io::{self, Write as _};
use std::net::TcpStream;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_io::{Async, Timer};
use bytes::Bytes;
use futures_lite::AsyncWrite;

use rtsp_toolkit_driver::{is_would_block, WriteError};

/// Bytes being written, with where the write got to and a timer that runs
/// from the last progress.
pub(crate) struct Pending {
    bytes: Bytes,
    done: usize,
    timer: Timer,
    /// When the timer is set to fire (`last progress + timeout`).
    timer_at: Option<Instant>,
    last_progress: Instant,
}

impl Pending {
    pub(crate) fn new(bytes: Bytes) -> Pending {
        Pending {
            bytes,
            done: 0,
            timer: Timer::never(),
            timer_at: None,
            last_progress: Instant::now(),
        }
    }

    /// What is left to write.
    pub(crate) fn rest(&self) -> &[u8] {
        &self.bytes[self.done..]
    }

    /// Advances the write; `Ready` when it is done or failed.
    pub(crate) fn poll(
        &mut self,
        stream: &mut Async<TcpStream>,
        stall: Duration,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), WriteError>> {
        while self.done < self.bytes.len() {
            match Pin::new(&mut *stream).poll_write(cx, &self.bytes[self.done..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(WriteError::Closed)),
                Poll::Ready(Ok(n)) => {
                    self.done += n;
                    self.last_progress = Instant::now();
                }
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(WriteError::Io(e))),
                Poll::Pending => {
                    let at = self.last_progress + stall;
                    if self.timer_at != Some(at) {
                        self.timer.set_at(at);
                        self.timer_at = Some(at);
                    }
                    if Pin::new(&mut self.timer).poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    // The stall passed: one plain write first, in case the
                    // reactor has not reported room yet (the process was
                    // descheduled while the peer kept reading).
                    self.timer_at = None;
                    match stream.get_ref().write(&self.bytes[self.done..]) {
                        Ok(0) => return Poll::Ready(Err(WriteError::Closed)),
                        Ok(n) => {
                            self.done += n;
                            self.last_progress = Instant::now();
                        }
                        Err(e) if is_would_block(&e) => return Poll::Ready(Err(WriteError::Stalled)),
                        Err(e) => return Poll::Ready(Err(WriteError::Io(e))),
                    }
                }
            }
        }
        Poll::Ready(Ok(()))
    }
}

/// Writes all of `bytes` on a blocking socket, giving up at `deadline`.
pub(crate) fn blocking_write(s: &mut TcpStream, mut bytes: &[u8], deadline: Instant) -> io::Result<()> {
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
