//! [`Input`]: everything a runtime tells the client machine.

use std::io;
use std::net::SocketAddr;

use super::UdpSocketId;

/// Something that happened to the session, handed to
/// [`Client::handle_input`](super::Client::handle_input) with the instant it
/// happened.
///
/// Every kind of input is recorded and replayed (see [`crate::capture`]);
/// a new kind is a new variant, so the enum is `#[non_exhaustive]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Input<'a> {
    /// The runtime connected the socket.
    Connected {
        /// The socket's local address.
        local: SocketAddr,
        /// The server's address.
        peer: SocketAddr,
    },
    /// The runtime could not connect (a connection attempt that timed out
    /// is not handed in: the client's own deadline reports it).
    ConnectFailed(IoFailure<'a>),
    /// Bytes read from the connection.
    Data(&'a [u8]),
    /// The server closed the connection (a read returned 0).
    Eof,
    /// The connection broke (a read or write error).
    IoError(IoFailure<'a>),
    /// The deadline of the last [`Output::Timeout`](super::Output::Timeout) passed
    /// (an early call does nothing wrong: deadlines not reached are kept).
    Timeout,
    /// The runtime opened the UDP pair asked for by
    /// [`Output::OpenUdp`](super::Output::OpenUdp): the RTP port (RTCP is
    /// the next one), or why it could not.
    UdpOpened {
        /// The [`UdpRequest::pair`](super::UdpRequest::pair) it answers.
        pair: u16,
        /// The RTP port bound (even, above 0), or why the pair could not be opened.
        result: Result<u16, &'a str>,
    },
    /// One datagram read from a UDP socket of the session, and who sent it.
    Datagram {
        /// The socket that received it.
        socket: UdpSocketId,
        /// The sender's address.
        from: SocketAddr,
        /// The datagram's bytes.
        data: &'a [u8],
    },
    /// The user asked the session to end: TEARDOWN when a server session
    /// exists, then [`Event::Closed`](super::Event::Closed). Safe more than
    /// once and in any phase.
    Close,
}

/// An I/O failure, as a runtime hands it in ([`Input::ConnectFailed`],
/// [`Input::IoError`]): it becomes the session's
/// [`Error::Connection`](crate::Error::Connection), whose
/// [`ConnectionError`](crate::ConnectionError) has this kind and the
/// `std::io::Error` rebuilt from it.
///
/// ```
/// use std::io;
/// use rtsp_toolkit_core::client::IoFailure;
/// let e = io::Error::from(io::ErrorKind::ConnectionReset);
/// let reason = format!("read failed: {e}");
/// let failure = IoFailure::from_io(&e, &reason);
/// assert_eq!(failure.kind, io::ErrorKind::ConnectionReset);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoFailure<'a> {
    /// What kind of failure (`ConnectionRefused`, `ConnectionReset`, ...).
    /// Captures record it; kinds outside the set they know are recorded,
    /// and reported, as [`io::ErrorKind::Other`].
    pub kind: io::ErrorKind,
    /// What a person reads: the `io::Error`'s text, perhaps with what was
    /// being done (`read failed: ...`).
    pub reason: &'a str,
    /// The operating system's error code, when it was one
    /// (`io::Error::raw_os_error`): the session's error then keeps an
    /// `io::Error` equal to the original. Not recorded in captures (codes
    /// differ between systems), so a replay's `io::Error` is built from the
    /// kind and reason.
    pub os_code: Option<i32>,
}

impl<'a> IoFailure<'a> {
    /// A failure of `kind` with no OS error code.
    pub fn new(kind: io::ErrorKind, reason: &'a str) -> IoFailure<'a> {
        IoFailure {
            kind,
            reason,
            os_code: None,
        }
    }

    /// `error`'s kind and OS code, with `reason` as the text (often
    /// `error.to_string()`, perhaps with context).
    pub fn from_io(error: &io::Error, reason: &'a str) -> IoFailure<'a> {
        IoFailure {
            kind: error.kind(),
            reason,
            os_code: error.raw_os_error(),
        }
    }

    /// The `std::io::Error` this failure stands for: the OS error of its
    /// code, else one of its kind with its reason as the text.
    pub fn to_io_error(&self) -> io::Error {
        match self.os_code {
            Some(code) => io::Error::from_raw_os_error(code),
            None => io::Error::new(self.kind, self.reason.to_owned()),
        }
    }
}
