//! The UDP sockets of a session, as the client names them to the runtime:
//! [`UdpSocketId`], and the [`UdpRequest`] that asks the runtime to open a
//! pair (`docs/ARCHITECTURE.md`, "UDP").
//!
//! The client never opens a socket. When a track needs UDP it says
//! [`Output::OpenUdp`](super::Output::OpenUdp); the runtime binds the two
//! sockets (joining the group for multicast) and answers with
//! [`Input::UdpOpened`](super::Input::UdpOpened). From then on datagrams on
//! them come in as [`Input::Datagram`](super::Input::Datagram) and go out as
//! [`Output::SendDatagram`](super::Output::SendDatagram). The runtime closes
//! them all at [`Output::Reconnect`](super::Output::Reconnect) and at
//! [`Output::Done`](super::Output::Done).

use std::net::IpAddr;

use super::PortRange;
pub use crate::udp::UdpSocketId;

/// What the runtime is asked to open: two sockets, answered with
/// [`Input::UdpOpened`](super::Input::UdpOpened) for the same `pair`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpRequest {
    /// The pair's number: the index of the track it is for, in SETUP order
    /// (the [`UdpSocketId::pair`] of its two sockets).
    pub pair: u16,
    /// Where and how to bind the two sockets.
    pub bind: UdpBind,
}

/// How to bind a pair.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UdpBind {
    /// RTP on an even port and RTCP on the odd port above it, both on
    /// `local` (the local address of the RTSP connection, so that the
    /// family and interface match the server's). From `ports` when given,
    /// else ports the system chooses; a pair taken by someone else is
    /// skipped. The answer is the RTP port.
    Unicast {
        /// The address to bind on.
        local: IpAddr,
        /// The range to take the pair from; `None`: ports the system chooses.
        ports: Option<PortRange>,
    },
    /// RTP on `port` and RTCP on `port + 1`, both joined to `group` on the
    /// interface of `interface` (source-specific when `source` is given and
    /// the system supports it; the client filters by source either way).
    /// The answer is `port`.
    Multicast {
        /// The multicast group to join (the SETUP reply's `destination=`).
        group: IpAddr,
        /// The RTP port (the first of the reply's `port=`); RTCP is `port + 1`.
        port: u16,
        /// The media's sender (the reply's `source=`, else the RTSP server's
        /// address), for a source-specific join; `None`: an any-source join.
        source: Option<IpAddr>,
        /// The local address whose interface joins the group (the RTSP
        /// connection's; unspecified when not known).
        interface: IpAddr,
    },
}
