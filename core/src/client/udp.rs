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
    pub pair: u16,
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
    Unicast { local: IpAddr, ports: Option<PortRange> },
    /// RTP on `port` and RTCP on `port + 1`, both joined to `group` on the
    /// interface of `interface` (source-specific when `source` is given and
    /// the system supports it; the client filters by source either way).
    /// The answer is `port`.
    Multicast {
        group: IpAddr,
        port: u16,
        source: Option<IpAddr>,
        interface: IpAddr,
    },
}
