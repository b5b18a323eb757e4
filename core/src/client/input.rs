//! [`Input`]: everything a runtime tells the client machine.

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
    /// The runtime opened the UDP pair asked for by
    /// [`Output::OpenUdp`](super::Output::OpenUdp): the RTP port (RTCP is
    /// the next one), or why it could not.
    UdpOpened { pair: u16, result: Result<u16, &'a str> },
    /// One datagram read from a UDP socket of the session, and who sent it.
    Datagram {
        socket: UdpSocketId,
        from: SocketAddr,
        data: &'a [u8],
    },
    /// The user asked the session to end: TEARDOWN when a server session
    /// exists, then [`Event::Closed`](super::Event::Closed). Safe more than
    /// once and in any phase.
    Close,
}
