//! Socket plumbing of this crate's loops, client and server, on
//! [`async_io::Async`] sockets, with the rules every runtime of rtsp-toolkit
//! follows (`docs/ARCHITECTURE.md`):
//! - **Data before a deadline.** When a deadline passed, one non-blocking
//!   read of what is already waiting is taken first ([`read_until`]), and
//!   the caller gives it to the machine before the timeout: data that
//!   arrived in time is not silence.
//! - **Write timeout.** A write fails only when the socket takes no byte
//!   for the whole timeout ([`write_all_or_stall`]): a peer that keeps
//!   taking bytes, however slowly, is not stalled.

use std::io::{self, Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use async_io::{Async, Timer};
use futures_lite::future;

pub(crate) use rtsp_toolkit_driver::{Woken, WriteError};

/// One read of what is already in the socket, without waiting: `None` when
/// nothing is there. async-io put the socket in non-blocking mode.
pub(crate) fn read_waiting(s: &Async<TcpStream>, buf: &mut [u8]) -> Option<io::Result<usize>> {
    match s.get_ref().read(buf) {
        Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => None,
        r => Some(r),
    }
}

/// Waits until data arrives or `at` passes, whichever is first; when `at`
/// passed, the read is the one [`read_waiting`] takes. Cancel-safe: a
/// cancelled wait has read nothing. (The server's loop; the client's is a
/// poll function.)
#[cfg_attr(not(feature = "server"), allow(dead_code))]
pub(crate) async fn read_until(s: &Async<TcpStream>, buf: &mut [u8], at: Instant) -> Woken {
    let read = future::or(async { Some(s.read_with(|s| (&*s).read(buf)).await) }, async {
        Timer::at(at).await;
        None
    })
    .await;
    let now = Instant::now();
    match read {
        Some(r) => Woken {
            now,
            read: Some(r),
            deadline_passed: now >= at,
        },
        None => Woken {
            now,
            read: read_waiting(s, buf),
            deadline_passed: true,
        },
    }
}

/// Writes all of `bytes`, failing with [`WriteError::Stalled`] when the
/// socket takes no byte for `timeout` (each byte taken starts the timeout
/// again, however long the whole takes).
///
/// When `timeout` passes without a byte taken, one plain non-blocking write
/// is tried before giving up: if this process was descheduled past the
/// timeout while the peer kept reading, the socket has room that the
/// reactor may not have reported yet.
pub(crate) async fn write_all_or_stall(
    s: &Async<TcpStream>,
    mut bytes: &[u8],
    timeout: Duration,
) -> Result<(), WriteError> {
    while !bytes.is_empty() {
        // A timeout too long for an Instant never fires.
        let stall = Instant::now().checked_add(timeout).map_or_else(Timer::never, Timer::at);
        let written = future::or(async { Some(s.write_with(|s| (&*s).write(bytes)).await) }, async {
            stall.await;
            None
        })
        .await;
        let n = match written {
            Some(r) => WriteError::check(r, false)?,
            None => WriteError::check(s.get_ref().write(bytes), true)?,
        };
        bytes = &bytes[n..];
    }
    Ok(())
}

/// Writes all of `bytes` on a blocking socket, giving up at `deadline` (the
/// bounded close of a dropped client session).
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
