//! [`Input`]: everything a runtime tells the client machine.

use std::net::SocketAddr;

/// Something that happened to the session, handed to
/// [`Client::handle_input`](super::Client::handle_input) with the instant it
/// happened.
///
/// A new kind of input (a datagram on one of several sockets, for RTP over
/// UDP) is a new variant: it is recorded and replayed like every other, so
/// the enum is `#[non_exhaustive]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Input<'a> {
    /// The runtime connected the socket.
    Connected { local: SocketAddr, peer: SocketAddr },
    /// The runtime could not connect; the reason is shown to the user.
    ConnectFailed(&'a str),
    /// Bytes read from the connection.
    Data(&'a [u8]),
    /// The server closed the connection (a read returned 0).
    Eof,
    /// The connection broke (a read or write error); the reason is shown to the user.
    IoError(&'a str),
    /// The deadline of the last [`Output::Timeout`](super::Output::Timeout) passed
    /// (an early call does nothing wrong: deadlines not reached are kept).
    Timeout,
    /// The user asked the session to end: TEARDOWN when a server session
    /// exists, then [`Event::Closed`](super::Event::Closed). Safe more than
    /// once and in any phase.
    Close,
}
