//! Socket plumbing of this crate's loops, client and server, with the rules
//! every runtime of rtsp-toolkit follows (`docs/ARCHITECTURE.md`):
//! - **Data before a deadline.** When a deadline passed, one non-blocking
//!   read of what is already waiting is taken first ([`read_until`],
//!   [`read_waiting`]), and the caller gives it to the machine before the
//!   timeout: data that arrived in time is not silence.
//! - **Write timeout.** A write fails only when the socket takes no byte
//!   for the whole timeout ([`write_all_or_stall`]): a peer that keeps
//!   taking bytes, however slowly, is not stalled.

use std::io::{self, Read as _, Write as _};
use std::time::{Duration, Instant};

use std::net::SocketAddr;

use tokio::net::TcpStream;

pub(crate) use rtsp_toolkit_driver::{Woken, WriteError};

/// One read of what is already in the socket, without waiting: `None` when
/// nothing is there.
///
/// For a deadline that passed: when the process was descheduled (stopped,
/// a suspended VM) past it, the peer's data may be waiting although tokio's
/// reactor has not reported readiness yet (after `SIGCONT` the timer can
/// fire in the same turn, and tokio tries a read only once readiness is
/// known), and waiting data is not silence. This is a plain non-blocking
/// `recv` on the socket, which tokio set to non-blocking mode.
pub(crate) fn read_waiting(s: &TcpStream, buf: &mut [u8]) -> Option<io::Result<usize>> {
    match (&*socket2::SockRef::from(s)).read(buf) {
        Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => None,
        r => Some(r),
    }
}

/// Waits until data arrives or `at` passes, whichever is first; when `at`
/// passed, the read is the one [`read_waiting`] takes. Cancel-safe: a
/// cancelled wait has read nothing.
pub(crate) async fn read_until(s: &TcpStream, buf: &mut [u8], at: Instant) -> Woken {
    tokio::select! {
        biased;
        r = read_some(s, buf) => {
            let now = Instant::now();
            Woken { now, read: Some(r), deadline_passed: now >= at }
        }
        _ = tokio::time::sleep_until(at.into()) => Woken {
            now: Instant::now(),
            read: read_waiting(s, buf),
            deadline_passed: true,
        },
    }
}

/// One read, once the socket is readable.
async fn read_some(s: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        s.readable().await?;
        match s.try_read(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            r => return r,
        }
    }
}

/// Writes all of `bytes`, failing with [`WriteError::Stalled`] when the
/// socket takes no byte for `timeout` (each byte taken starts the timeout
/// again, however long the whole takes).
///
/// When `timeout` passes without a byte taken, one plain non-blocking write
/// is tried before giving up: if this process was descheduled past the
/// timeout while the peer kept reading, the socket has room that tokio's
/// reactor may not have reported yet.
pub(crate) async fn write_all_or_stall(s: &TcpStream, mut bytes: &[u8], timeout: Duration) -> Result<(), WriteError> {
    while !bytes.is_empty() {
        let n = match tokio::time::timeout(timeout, write_some(s, bytes)).await {
            Ok(r) => WriteError::check(r, false)?,
            Err(_) => WriteError::check((&*socket2::SockRef::from(s)).write(bytes), true)?,
        };
        bytes = &bytes[n..];
    }
    Ok(())
}

/// One write, once the socket is writable.
async fn write_some(s: &TcpStream, bytes: &[u8]) -> io::Result<usize> {
    loop {
        s.writable().await?;
        match s.try_write(bytes) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            r => return r,
        }
    }
}

/// A finished connect, ready for a machine: its local and peer addresses,
/// with Nagle off (requests and interleaved media go out at once).
pub(crate) fn connected(r: io::Result<TcpStream>) -> io::Result<(SocketAddr, SocketAddr, TcpStream)> {
    let s = r?;
    let _ = s.set_nodelay(true);
    Ok((s.local_addr()?, s.peer_addr()?, s))
}
