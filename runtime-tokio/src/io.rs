//! The socket plumbing of this runtime, shared by the client and the
//! server: one read of what is already waiting, and a write that fails
//! only when it makes no progress (see `rtsp_toolkit_driver` for the rules).

use std::io::{Read as _, Write as _};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use rtsp_toolkit_driver::{is_would_block, WriteError};

/// One read of what is already in the socket, without waiting: `None` when
/// nothing is there.
///
/// For a deadline that passed: when the process was descheduled (stopped,
/// a suspended VM) past it, the peer's data may be waiting although tokio's
/// reactor has not reported readiness yet (after `SIGCONT` the timer can
/// fire in the same turn, and tokio tries a read only once readiness is
/// known). This is a plain non-blocking `recv` on the socket, which tokio
/// set to non-blocking mode.
pub(crate) fn read_waiting(s: &TcpStream, buf: &mut [u8]) -> Option<std::io::Result<usize>> {
    match (&*socket2::SockRef::from(s)).read(buf) {
        Err(e) if is_would_block(&e) => None,
        r => Some(r),
    }
}

/// Writes all of `bytes`, failing with [`WriteError::Stalled`] when the
/// socket takes no byte for `stall` (a peer that keeps taking bytes is not
/// dropped, however long the whole batch takes).
///
/// When `stall` passes without a byte taken, one plain non-blocking write is
/// tried before giving up: if this process was descheduled past the stall
/// while the peer kept reading, the socket has room that tokio's reactor
/// may not have reported yet.
pub(crate) async fn write_all_or_stall(
    socket: &mut TcpStream,
    mut bytes: &[u8],
    stall: Duration,
) -> Result<(), WriteError> {
    while !bytes.is_empty() {
        let n = match tokio::time::timeout(stall, socket.write(bytes)).await {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(WriteError::Io(e)),
            Err(_) => match (&*socket2::SockRef::from(&*socket)).write(bytes) {
                Ok(n) => n,
                Err(e) if is_would_block(&e) => return Err(WriteError::Stalled),
                Err(e) => return Err(WriteError::Io(e)),
            },
        };
        if n == 0 {
            return Err(WriteError::Closed);
        }
        bytes = &bytes[n..];
    }
    Ok(())
}
