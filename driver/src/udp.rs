//! UDP for client sessions, the same on every runtime: binding the port pairs
//! the client asks for ([`open_pair`]: [`bind_pair`] for unicast,
//! [`bind_multicast`]), the table of a session's sockets ([`UdpSockets`]),
//! and the bounded, non-blocking reads that hand datagrams to the client
//! ([`ClientDriver::take_datagrams`](crate::ClientDriver::take_datagrams)).
//! The core decides what to open and what a datagram means
//! (`docs/ARCHITECTURE.md`, "How to add a transport"); this module only
//! binds, reads and sends.
//!
//! Every socket made here is in non-blocking mode: a runtime waits for
//! readiness its own way (tokio's reactor, async-io's, `poll(2)` in the
//! blocking runtime) and then reads what is there without waiting.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};

use rtsp_toolkit_core::client::{PortRange, UdpBind, UdpSocketId};
/// The socket library the shared UDP code works with (its [`socket2::SockRef`]
/// is how a runtime hands its socket in, [`DatagramSocket::sock_ref`]).
pub use socket2;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// Receive buffer asked for on every RTP socket (`SO_RCVBUF`), best effort.
///
/// Video arrives in bursts: a camera sends a key frame (hundreds of
/// kilobytes at 1080p, more at 4K) at line rate within a few milliseconds,
/// and the operating system drops what does not fit in the socket's buffer
/// while the session is descheduled or busy with the frame before. The
/// default (about 200 KiB on Linux, of which each 1500-byte datagram takes
/// over 2 KiB of bookkeeping) holds well under one such frame. 2 MiB holds
/// a large key frame with room to spare, and is what Linux allows without
/// privileges on many distributions; where the system limit is lower
/// (`net.core.rmem_max` on Linux) the kernel silently gives the limit
/// instead, which is logged at debug level, never an error. RTCP sockets
/// keep the default: a few packets a second.
pub const RTP_RECV_BUFFER: usize = 2 * 1024 * 1024;

/// Most datagrams read from one socket per wake-up, without waiting, before
/// the runtime looks at its deadline and its other sockets again (rule 2 of
/// the [crate docs](crate)). 64 datagrams are about 90 KB of RTP, a few
/// milliseconds of a 100 Mb/s stream: large enough that a busy socket is
/// read in few wake-ups, small enough that a keepalive or a receiver report
/// is never late by more than that.
pub const UDP_BATCH: usize = 64;

/// Size of the buffer datagrams are read into: the largest UDP payload
/// (65 507 bytes over IPv4), so that none is ever truncated.
pub const MAX_DATAGRAM: usize = 64 * 1024;

/// Most messages one read takes (`recvmmsg` on Linux, through a
/// [`Receiver`]), each into a buffer of [`MAX_DATAGRAM`] bytes (a message
/// may be several datagrams coalesced by GRO). A sender that sends one
/// datagram per call wakes the receiver for a few datagrams at a time; this
/// reads them with one system call. The buffers are allocated zeroed and
/// the system maps their pages only when a read writes them, so a session
/// holds about what it reads.
pub const RECV_MESSAGES: usize = 4;

/// Most tries at an even/odd pair among the ports the system chooses, each
/// try taking a port nobody holds (the failed ones are held until the end,
/// so that no port is tried twice).
pub const EPHEMERAL_TRIES: usize = 64;

/// Where the next search of a configured port range starts, so that
/// sessions opening at the same time do not all collide on the first pairs.
static NEXT_PAIR: AtomicUsize = AtomicUsize::new(0);

/// A UDP socket as a runtime holds it, with the non-blocking calls the
/// shared code needs.
pub trait DatagramSocket {
    /// One datagram, without waiting, once the runtime saw the socket
    /// readable (a runtime that tracks readiness clears it here when the
    /// socket would block). `WouldBlock` when nothing is there.
    fn recv_ready(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)>;

    /// One datagram, without waiting, when a deadline passed: a plain
    /// non-blocking call that sees datagrams the runtime's reactor has not
    /// reported yet (rule 1 of the [crate docs](crate)).
    fn recv_waiting(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.recv_ready(buf)
    }

    /// Sends one datagram without waiting (a full send buffer is an error).
    fn send_now(&self, data: &[u8], to: SocketAddr) -> io::Result<usize>;

    /// The socket itself, for the reads the shared code makes through a
    /// [`Receiver`] (several datagrams in one read).
    fn sock_ref(&self) -> socket2::SockRef<'_>;

    /// Runs `read`, one non-blocking read of this socket, once the runtime
    /// saw it readable; a runtime that tracks readiness clears it when
    /// `read` finds nothing (as [`DatagramSocket::recv_ready`] does).
    fn read_ready(&self, read: &mut dyn FnMut() -> io::Result<Reads>) -> io::Result<Reads> {
        read()
    }
}

/// One message a read of a UDP socket gave: `len` bytes at `offset` in the
/// read buffer, from `from`, which are datagrams of `stride` bytes each, the
/// last one possibly shorter (one datagram when `stride == len`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Where the message starts in the read buffer.
    pub offset: usize,
    /// Its length in bytes (all its datagrams).
    pub len: usize,
    /// The size of each datagram but the last.
    pub stride: usize,
    /// The sender.
    pub from: SocketAddr,
}

impl Received {
    /// The datagrams of this message in `buf` (the buffer read into).
    pub fn datagrams<'b>(&self, buf: &'b [u8]) -> impl Iterator<Item = &'b [u8]> + 'b {
        let end = (self.offset + self.len).min(buf.len());
        buf[self.offset.min(end)..end].chunks(self.stride.max(1))
    }
}

/// What one read gave: up to [`RECV_MESSAGES`] messages.
#[derive(Debug, Clone, Copy)]
pub struct Reads {
    /// The messages read, in order; `None` past the last.
    pub messages: [Option<Received>; RECV_MESSAGES],
    /// The read had room for more messages than it took: the socket held
    /// nothing more when it returned. (`false` when that is not known, as
    /// after a read of one datagram.)
    pub drained: bool,
}

impl Reads {
    /// One message of `len` bytes at the start of the buffer.
    pub fn one(len: usize, from: SocketAddr) -> Reads {
        let mut messages = [None; RECV_MESSAGES];
        messages[0] = Some(Received {
            offset: 0,
            len,
            stride: len,
            from,
        });
        Reads {
            messages,
            drained: false,
        }
    }

    /// The messages, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Received> {
        self.messages.iter().flatten()
    }
}

/// The reading side of a socket, through quinn-udp: with UDP GRO (Linux
/// 5.0+) the kernel hands a burst that a GSO sender sent (our server sends a
/// frame's packets so; see [`SendBatch`]) to ONE read as one buffer with its
/// segment size, which [`Receiver::recv`] reports as the stride. The
/// datagrams are the same either way; only the system calls and wake-ups
/// are fewer. Once a `Receiver` exists, every read of its socket must go
/// through it (a plain read could not tell the datagrams of a coalesced
/// buffer apart).
#[derive(Debug)]
pub struct Receiver {
    state: quinn_udp::UdpSocketState,
}

impl Receiver {
    /// Sets `socket` up for it (non-blocking, GRO asked for where there is).
    pub fn new(socket: socket2::SockRef<'_>) -> io::Result<Receiver> {
        let state = quinn_udp::UdpSocketState::new(quinn_udp::UdpSockRef::from(&*socket))?;
        default_path_mtu_discovery(&socket);
        // quinn-udp also asks for each datagram's TOS byte (for QUIC's ECN),
        // a control message per read that RTP has no use for.
        if socket
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .is_some_and(|a| a.is_ipv4())
        {
            let _ = socket.set_recv_tos_v4(false);
        }
        Ok(Receiver { state })
    }

    /// One read into `buf` (up to [`RECV_MESSAGES`] messages, each in its
    /// [`MAX_DATAGRAM`]-byte part of `buf`), without waiting (`WouldBlock`:
    /// nothing there).
    pub fn recv(&self, socket: socket2::SockRef<'_>, buf: &mut [u8]) -> io::Result<Reads> {
        let mut meta = [quinn_udp::RecvMeta::default(); RECV_MESSAGES];
        let count = buf.len().div_ceil(MAX_DATAGRAM).min(RECV_MESSAGES);
        let mut parts = buf.chunks_mut(MAX_DATAGRAM);
        let mut slices: [std::io::IoSliceMut<'_>; RECV_MESSAGES] =
            std::array::from_fn(|_| std::io::IoSliceMut::new(parts.next().unwrap_or_default()));
        let n = self.state.recv(
            quinn_udp::UdpSockRef::from(&*socket),
            &mut slices[..count],
            &mut meta[..count],
        )?;
        if n == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let mut reads = Reads {
            messages: [None; RECV_MESSAGES],
            drained: n < count,
        };
        for (i, m) in meta.iter().take(n.min(count)).enumerate() {
            let len = m.len.min(MAX_DATAGRAM);
            reads.messages[i] = Some(Received {
                offset: i * MAX_DATAGRAM,
                len,
                stride: if m.stride == 0 { len } else { m.stride },
                from: m.addr,
            });
        }
        Ok(reads)
    }
}

/// A non-blocking [`UdpSocket`], as the blocking runtime holds it.
impl DatagramSocket for UdpSocket {
    fn recv_ready(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.recv_from(buf)
    }

    fn send_now(&self, data: &[u8], to: SocketAddr) -> io::Result<usize> {
        self.send_to(data, to)
    }

    fn sock_ref(&self) -> socket2::SockRef<'_> {
        socket2::SockRef::from(self)
    }
}

/// The UDP sockets of one session, by [`UdpSocketId::index`], with the
/// buffer datagrams are read into (allocated with the first pair).
#[derive(Debug)]
pub struct UdpSockets<S> {
    slots: Vec<Option<S>>,
    /// The [`Receiver`] of each open socket, by the same index (`None`
    /// where it could not be set up: plain reads then).
    receivers: Vec<Option<Receiver>>,
    open: usize,
    /// Sockets the runtime's last wait saw with nothing to read, by index:
    /// the next [`ClientDriver::take_datagrams`](crate::ClientDriver::take_datagrams)
    /// without a passed deadline skips them.
    idle: Vec<bool>,
    pub(crate) buf: Vec<u8>,
}

impl<S> Default for UdpSockets<S> {
    fn default() -> Self {
        UdpSockets::new()
    }
}

impl<S> UdpSockets<S> {
    /// No sockets.
    pub fn new() -> UdpSockets<S> {
        UdpSockets {
            slots: Vec::new(),
            receivers: Vec::new(),
            open: 0,
            idle: Vec::new(),
            buf: Vec::new(),
        }
    }

    /// Whether the session has no UDP socket (then a runtime waits as over TCP alone).
    pub fn is_empty(&self) -> bool {
        self.open == 0
    }

    /// How many sockets are open.
    pub fn len(&self) -> usize {
        self.open
    }

    /// The [`Receiver`] of socket `id`, if it has one.
    pub fn receiver(&self, id: UdpSocketId) -> Option<&Receiver> {
        self.receivers.get(id.index()).and_then(Option::as_ref)
    }

    /// Adds pair `pair` (replacing it if it was open), without
    /// [`Receiver`]s (plain reads); [`UdpSockets::insert`] sets them up.
    fn insert_plain(&mut self, pair: u16, rtp: S, rtcp: S) {
        let rtp_at = UdpSocketId::rtp(pair).index();
        if self.slots.len() <= rtp_at + 1 {
            self.slots.resize_with(rtp_at + 2, || None);
            self.receivers.resize_with(rtp_at + 2, || None);
            self.idle.resize(rtp_at + 2, false);
        }
        for (at, s) in [(rtp_at, rtp), (rtp_at + 1, rtcp)] {
            self.receivers[at] = None;
            if self.slots[at].replace(s).is_none() {
                self.open += 1;
            }
        }
        if self.buf.is_empty() {
            self.buf = vec![0; RECV_MESSAGES * MAX_DATAGRAM];
        }
    }

    /// Socket `id`, if open.
    pub fn get(&self, id: UdpSocketId) -> Option<&S> {
        self.slots.get(id.index()).and_then(Option::as_ref)
    }

    /// The open sockets, in index order.
    pub fn iter(&self) -> impl Iterator<Item = (UdpSocketId, &S)> + '_ {
        self.slots.iter().enumerate().filter_map(|(i, s)| {
            let id = UdpSocketId {
                pair: u16::try_from(i / 2).ok()?,
                rtcp: i % 2 == 1,
            };
            s.as_ref().map(|s| (id, s))
        })
    }

    /// Closes every socket (a reconnect, the end of the session): dropping
    /// a socket closes it and leaves a multicast group it joined.
    pub fn clear(&mut self) {
        self.slots.clear();
        self.receivers.clear();
        self.idle.clear();
        self.open = 0;
    }

    /// For a runtime that learns which sockets are readable (`poll(2)`):
    /// socket `id` had nothing to read when its wait ended, so the next
    /// [`ClientDriver::take_datagrams`](crate::ClientDriver::take_datagrams)
    /// does not try it, unless a deadline passed (then every socket is
    /// read, rule 1 of the [crate docs](crate)). One system call saved per
    /// wake-up for each quiet socket, such as an RTCP socket between reports.
    pub fn mark_idle(&mut self, id: UdpSocketId) {
        if let Some(idle) = self.idle.get_mut(id.index()) {
            *idle = true;
        }
    }

    /// The idle marks, by socket index, for a round of reads; given back
    /// (cleared) with [`UdpSockets::put_idle`].
    pub(crate) fn take_idle(&mut self) -> Vec<bool> {
        std::mem::take(&mut self.idle)
    }

    pub(crate) fn put_idle(&mut self, idle: Vec<bool>) {
        self.idle = idle;
    }
}

impl<S: DatagramSocket> UdpSockets<S> {
    /// Adds pair `pair` (replacing it if it was open), each socket read
    /// through a [`Receiver`] where one can be set up.
    pub fn insert(&mut self, pair: u16, rtp: S, rtcp: S) {
        self.insert_plain(pair, rtp, rtcp);
        for id in [UdpSocketId::rtp(pair), UdpSocketId::rtcp(pair)] {
            let receiver = self.get(id).map(|s| Receiver::new(s.sock_ref()));
            match receiver {
                Some(Ok(r)) => self.receivers[id.index()] = Some(r),
                Some(Err(e)) => tracing::debug!(socket = ?id, error = %e, "plain reads on this socket"),
                None => {}
            }
        }
    }

    /// One read of socket `id` into `buf`, without waiting: through its
    /// [`Receiver`] if it has one, else the runtime's plain call.
    /// `deadline_passed`: the plain non-blocking read of rule 1, else the
    /// runtime saw the socket readable.
    pub fn read(&self, id: UdpSocketId, buf: &mut [u8], deadline_passed: bool) -> io::Result<Reads> {
        let Some(s) = self.get(id) else {
            return Err(io::ErrorKind::NotConnected.into());
        };
        match self.receiver(id) {
            Some(r) if deadline_passed => r.recv(s.sock_ref(), buf),
            Some(r) => s.read_ready(&mut || r.recv(s.sock_ref(), buf)),
            None => {
                let end = MAX_DATAGRAM.min(buf.len());
                let buf = &mut buf[..end];
                let (len, from) = if deadline_passed {
                    s.recv_waiting(buf)?
                } else {
                    s.recv_ready(buf)?
                };
                Ok(Reads::one(len, from))
            }
        }
    }

    /// Sends `data` from socket `id` to `to`, without waiting. A failure is
    /// logged at debug level and otherwise ignored: UDP promises no
    /// delivery, and the client asks for nothing more.
    pub fn send(&self, id: UdpSocketId, to: SocketAddr, data: &[u8]) {
        let Some(s) = self.get(id) else {
            tracing::debug!(socket = ?id, "datagram for a socket that is not open: dropped");
            return;
        };
        if let Err(e) = s.send_now(data, to) {
            tracing::debug!(socket = ?id, %to, error = %e, "datagram send failed");
        }
    }
}

/// Binds the pair `bind` asks for: see [`bind_pair`] and [`bind_multicast`].
pub fn open_pair(bind: &UdpBind) -> io::Result<(UdpSocket, UdpSocket, u16)> {
    match *bind {
        UdpBind::Unicast { local, ports } => bind_pair(local, ports),
        UdpBind::Multicast {
            group,
            port,
            source,
            interface,
        } => bind_multicast(group, port, source, interface),
        _ => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this runtime does not know how to open that kind of UDP socket",
        )),
    }
}

/// Binds an RTP socket on an even port and an RTCP socket on the odd port
/// above it, both on `local`; returns them (non-blocking, the RTP one with
/// [`RTP_RECV_BUFFER`] asked for) and the RTP port.
///
/// With `range`, every pair of the range is tried at most once, starting
/// where the last search of this process stopped; a pair someone else
/// holds (either port) is skipped. Without it, the system chooses: a free
/// port is taken and its neighbour tried (the odd port above an even one,
/// the even one below an odd one), at most [`EPHEMERAL_TRIES`] times.
pub fn bind_pair(local: IpAddr, range: Option<PortRange>) -> io::Result<(UdpSocket, UdpSocket, u16)> {
    match range {
        Some(range) => bind_in_range(local, range),
        None => bind_ephemeral(local),
    }
}

/// Whether a bind failed because the port is taken (or reserved): the
/// search goes on with another pair.
fn port_taken(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::AddrInUse | io::ErrorKind::PermissionDenied)
}

fn bind_in_range(local: IpAddr, range: PortRange) -> io::Result<(UdpSocket, UdpSocket, u16)> {
    let pairs = range.len();
    if pairs == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("port range {range} holds no even/odd pair"),
        ));
    }
    let start = NEXT_PAIR.load(Ordering::Relaxed);
    for i in 0..pairs {
        let k = (start + i) % pairs;
        let Some(rtp) = range.pair(k) else { break };
        match bind_two(local, rtp) {
            Ok((a, b)) => {
                NEXT_PAIR.store(k + 1, Ordering::Relaxed);
                return Ok((a, b, rtp));
            }
            Err(e) if port_taken(&e) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        format!("every UDP port pair of {range} on {local} is taken"),
    ))
}

fn bind_ephemeral(local: IpAddr) -> io::Result<(UdpSocket, UdpSocket, u16)> {
    // Held until the end so that the system hands out a new port each try.
    let mut tried = Vec::new();
    for _ in 0..EPHEMERAL_TRIES {
        let first = bind_one(SocketAddr::new(local, 0))?;
        let port = first.local_addr()?.port();
        let (rtp_port, other) = if port % 2 == 0 {
            (port, port.checked_add(1))
        } else {
            (port - 1, Some(port - 1))
        };
        let neighbour = match other {
            Some(p) if p != 0 => bind_one(SocketAddr::new(local, p)),
            _ => Err(io::ErrorKind::AddrInUse.into()),
        };
        match neighbour {
            Ok(second) => {
                let (rtp, rtcp) = if port % 2 == 0 {
                    (first, second)
                } else {
                    (second, first)
                };
                tune_rtp(&rtp);
                return Ok((rtp, rtcp, rtp_port));
            }
            Err(e) if port_taken(&e) => tried.push(first),
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        format!("no free even/odd UDP port pair on {local} after {EPHEMERAL_TRIES} tries"),
    ))
}

/// RTP on `rtp`, RTCP on `rtp + 1`, both on `ip`.
fn bind_two(ip: IpAddr, rtp: u16) -> io::Result<(UdpSocket, UdpSocket)> {
    let rtcp_port = rtp
        .checked_add(1)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "RTP port 65535 has no RTCP port above it"))?;
    let a = bind_one(SocketAddr::new(ip, rtp))?;
    let b = bind_one(SocketAddr::new(ip, rtcp_port))?;
    tune_rtp(&a);
    Ok((a, b))
}

fn bind_one(addr: SocketAddr) -> io::Result<UdpSocket> {
    let s = UdpSocket::bind(addr)?;
    s.set_nonblocking(true)?;
    Ok(s)
}

/// Asks for [`RTP_RECV_BUFFER`]; what the system gave is logged.
fn tune_rtp(s: &UdpSocket) {
    let r = socket2::SockRef::from(s);
    if let Err(e) = r.set_recv_buffer_size(RTP_RECV_BUFFER) {
        tracing::debug!(error = %e, "cannot enlarge the RTP receive buffer");
    }
    if let Ok(got) = r.recv_buffer_size() {
        tracing::debug!(asked = RTP_RECV_BUFFER, got, "RTP receive buffer");
    }
}

/// Joins `group` on `port` (RTP) and `port + 1` (RTCP) on the interface
/// whose address is `interface`; returns the sockets (non-blocking) and
/// `port`.
///
/// Each socket allows the address to be reused (`SO_REUSEADDR`), so several
/// receivers of one group on one host all get its datagrams, and is bound
/// to the group's address on Unix (only the group's datagrams, not
/// unicast to the same port) or to the unspecified address elsewhere. With
/// `source` (IPv4), the join is source-specific (IGMPv3) where the system
/// supports it, else an any-source join; the client checks the source of
/// every datagram either way. IPv6 joins are any-source on the system's
/// default interface for the group. Outgoing RTCP leaves by the same
/// interface (IPv4), with the system's default TTL of 1.
pub fn bind_multicast(
    group: IpAddr,
    port: u16,
    source: Option<IpAddr>,
    interface: IpAddr,
) -> io::Result<(UdpSocket, UdpSocket, u16)> {
    if !group.is_multicast() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{group} is not a multicast address"),
        ));
    }
    let rtcp_port = port.checked_add(1).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "multicast port 65535 has no RTCP port above it",
        )
    })?;
    let rtp = join_one(group, port, source, interface)?;
    let rtcp = join_one(group, rtcp_port, source, interface)?;
    tune_rtp(&rtp);
    Ok((rtp, rtcp, port))
}

fn join_one(group: IpAddr, port: u16, source: Option<IpAddr>, interface: IpAddr) -> io::Result<UdpSocket> {
    let s = Socket::new(
        Domain::for_address(SocketAddr::new(group, port)),
        Type::DGRAM,
        Some(Protocol::UDP),
    )?;
    s.set_reuse_address(true)?;
    let bind_ip = if cfg!(unix) {
        group
    } else if group.is_ipv4() {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    };
    s.bind(&SockAddr::from(SocketAddr::new(bind_ip, port)))?;
    match (group, interface) {
        (IpAddr::V4(g), interface) => {
            let ifa = match interface {
                IpAddr::V4(a) => a,
                IpAddr::V6(a) => a.to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED),
            };
            let ssm = match source.map(|s| s.to_canonical()) {
                Some(IpAddr::V4(src)) => join_ssm_v4(&s, src, g, ifa),
                _ => Err(io::ErrorKind::Unsupported.into()),
            };
            if let Err(e) = ssm {
                if source.is_some() {
                    tracing::debug!(error = %e, %group, "source-specific join refused: joining for any source");
                }
                s.join_multicast_v4(&g, &ifa)?;
            }
            if !ifa.is_unspecified() {
                let _ = s.set_multicast_if_v4(&ifa);
            }
            // What this receiver sends to the group (its reports) is not
            // looped back to the other receivers on this host.
            let _ = s.set_multicast_loop_v4(false);
        }
        (IpAddr::V6(g), _) => {
            s.join_multicast_v6(&g, 0)?;
            let _ = s.set_multicast_loop_v6(false);
        }
    }
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// Binds the sending pair of a server's multicast stream to IPv4 groups:
/// an RTP socket on an even port and the RTCP socket above it, chosen by
/// the system on `local` (the server's address; an IPv6 one other than a
/// mapped IPv4 address binds the IPv4 wildcard), with `IP_MULTICAST_TTL`
/// `ttl`, `IP_MULTICAST_LOOP` on (receivers on the same host get the
/// stream too) and `IP_MULTICAST_IF` `local` when it is a specific address.
/// Returns them (non-blocking) and the RTP port.
///
/// The group's own ports are never bound here: a socket bound there
/// without `SO_REUSEADDR` would keep receivers on this host (FFmpeg,
/// GStreamer) from binding them.
pub fn bind_multicast_sender(local: IpAddr, ttl: u8) -> io::Result<(UdpSocket, UdpSocket, u16)> {
    let v4 = match local {
        IpAddr::V4(a) => a,
        IpAddr::V6(a) => a.to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED),
    };
    let (rtp, rtcp, port) = bind_pair(IpAddr::V4(v4), None)?;
    for s in [&rtp, &rtcp] {
        let r = socket2::SockRef::from(s);
        r.set_multicast_ttl_v4(u32::from(ttl))?;
        r.set_multicast_loop_v4(true)?;
        if !v4.is_unspecified() {
            r.set_multicast_if_v4(&v4)?;
        }
    }
    Ok((rtp, rtcp, port))
}

#[cfg(not(any(
    target_os = "dragonfly",
    target_os = "haiku",
    target_os = "hurd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "redox",
    target_os = "fuchsia",
    target_os = "nto",
    target_os = "espidf",
    target_os = "vita",
    target_os = "wasi",
    target_os = "horizon"
)))]
fn join_ssm_v4(s: &Socket, source: Ipv4Addr, group: Ipv4Addr, interface: Ipv4Addr) -> io::Result<()> {
    s.join_ssm_v4(&source, &group, &interface)
}

/// No source-specific joins here: the caller joins for any source.
#[cfg(any(
    target_os = "dragonfly",
    target_os = "haiku",
    target_os = "hurd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "redox",
    target_os = "fuchsia",
    target_os = "nto",
    target_os = "espidf",
    target_os = "vita",
    target_os = "wasi",
    target_os = "horizon"
))]
fn join_ssm_v4(_: &Socket, _: Ipv4Addr, _: Ipv4Addr, _: Ipv4Addr) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    #[test]
    fn a_read_with_room_left_drained_the_socket() {
        let (rtp, _rtcp, port) = bind_pair(LOCAL, None).unwrap();
        let receiver = Receiver::new(socket2::SockRef::from(&rtp)).unwrap();
        let sender = UdpSocket::bind((LOCAL, 0)).unwrap();
        // Sizes that differ, so that no two are coalesced into one message.
        let sent = RECV_MESSAGES + 2;
        for i in 0..sent {
            sender.send_to(&vec![7u8; 100 + i * 10], (LOCAL, port)).unwrap();
        }
        let mut buf = vec![0; RECV_MESSAGES * MAX_DATAGRAM];
        let mut got = 0;
        let mut reads = 0;
        loop {
            let r = receiver.recv(socket2::SockRef::from(&rtp), &mut buf).unwrap();
            reads += 1;
            let messages = r.iter().count();
            got += r.iter().map(|m| m.datagrams(&buf).count()).sum::<usize>();
            // Not drained means every slot was filled.
            assert!(r.drained || messages == RECV_MESSAGES, "{r:?}");
            if r.drained {
                break;
            }
            assert!(reads < 10);
        }
        assert_eq!(got, sent);
        // Drained: nothing left to read.
        let e = receiver.recv(socket2::SockRef::from(&rtp), &mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        assert!(!Reads::one(1, (LOCAL, 1).into()).drained);
    }

    #[test]
    fn ephemeral_pairs_are_even_and_odd_and_distinct() {
        let mut held = Vec::new();
        for _ in 0..4 {
            let (rtp, rtcp, port) = bind_pair(LOCAL, None).unwrap();
            assert_eq!(port % 2, 0);
            assert_eq!(rtp.local_addr().unwrap().port(), port);
            assert_eq!(rtcp.local_addr().unwrap().port(), port + 1);
            held.push((rtp, rtcp));
        }
    }

    #[test]
    fn a_range_skips_pairs_taken_and_fails_when_full() {
        // A pair the system chose is free now; a range of three pairs around it.
        let (a, b, p) = bind_pair(LOCAL, None).unwrap();
        drop((a, b));
        let Ok(range) = PortRange::new(p, p + 5) else { return };
        // Someone else holds the RTCP port of the first pair and the RTP port of the second.
        let blockers = [UdpSocket::bind((LOCAL, p + 1)), UdpSocket::bind((LOCAL, p + 2))];
        if blockers.iter().any(Result::is_err) {
            return; // another test took them meanwhile: nothing to check
        }
        let (_r, _c, got) = bind_pair(LOCAL, Some(range)).unwrap();
        assert_eq!(got, p + 4, "the only free pair");
        let err = bind_pair(LOCAL, Some(range)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        assert!(err.to_string().contains("taken"), "{err}");
    }

    #[test]
    fn the_table_indexes_pairs_and_closes_them() {
        let mut t = UdpSockets::new();
        let (rtp, rtcp, port) = bind_pair(LOCAL, None).unwrap();
        t.insert(1, rtp, rtcp);
        assert_eq!(t.len(), 2);
        assert!(t.get(UdpSocketId::rtp(0)).is_none());
        let ids: Vec<_> = t.iter().map(|(id, _)| id).collect();
        assert_eq!(ids, [UdpSocketId::rtp(1), UdpSocketId::rtcp(1)]);
        assert_eq!(
            t.get(UdpSocketId::rtcp(1)).unwrap().local_addr().unwrap().port(),
            port + 1
        );
        t.clear();
        assert!(t.is_empty());
        // Closed: the ports can be bound again.
        UdpSocket::bind((LOCAL, port)).unwrap();
        UdpSocket::bind((LOCAL, port + 1)).unwrap();
    }

    #[test]
    fn a_multicast_sender_is_an_even_odd_pair_with_its_ttl_and_loop() {
        let (rtp, rtcp, port) = bind_multicast_sender(LOCAL, 3).unwrap();
        assert_eq!(port % 2, 0);
        assert_eq!(rtp.local_addr().unwrap(), SocketAddr::new(LOCAL, port));
        assert_eq!(rtcp.local_addr().unwrap().port(), port + 1);
        for s in [&rtp, &rtcp] {
            assert_eq!(s.multicast_ttl_v4().unwrap(), 3);
            assert!(s.multicast_loop_v4().unwrap());
        }
        let (rtp, _, _) = bind_multicast_sender(IpAddr::V6(Ipv6Addr::LOCALHOST), 1).unwrap();
        assert!(rtp.local_addr().unwrap().is_ipv4());
    }

    #[test]
    fn multicast_checks_its_arguments() {
        let e = bind_multicast(LOCAL, 5000, None, LOCAL).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let group = IpAddr::V4(Ipv4Addr::new(239, 1, 2, 3));
        let e = bind_multicast(group, 65535, None, LOCAL).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }
}

/// Consecutive datagrams from one socket to one destination, gathered to
/// go out as ONE send with UDP segmentation offload (GSO, Linux 4.18+): the
/// kernel cuts the buffer into datagrams of `segment` bytes (the last may
/// be shorter), so a video frame's RTP packets, which the packetizer makes
/// all the same size but the last, cost one system call and one trip
/// through the stack instead of one per packet. The receiver sees the same
/// datagrams either way.
///
/// Gathering stops at a datagram of another size than the first (a shorter
/// one is taken as the last), at `max_segments`, or at 64 KiB; the caller
/// then sends what it has ([`Gso::send`]) and starts a new batch.
#[derive(Debug)]
pub struct SendBatch {
    socket: UdpSocketId,
    to: SocketAddr,
    segment: usize,
    count: usize,
    /// A datagram shorter than `segment` was taken: nothing may follow it.
    closed: bool,
    buf: Vec<u8>,
}

/// The largest buffer one GSO send may carry (a UDP datagram's length field).
const GSO_MAX_BYTES: usize = 65_000;

impl SendBatch {
    /// A batch of one datagram.
    pub fn new(socket: UdpSocketId, to: SocketAddr, data: &[u8]) -> SendBatch {
        SendBatch {
            socket,
            to,
            segment: data.len(),
            count: 1,
            closed: data.is_empty(),
            buf: data.to_vec(),
        }
    }

    /// Adds `data` if it may follow in one GSO send (same socket and
    /// destination, not longer than the first, nothing after a shorter one,
    /// within `max_segments` and 64 KiB); whether it was taken.
    pub fn push(&mut self, socket: UdpSocketId, to: SocketAddr, data: &[u8], max_segments: usize) -> bool {
        let fits = socket == self.socket
            && to == self.to
            && !self.closed
            && !data.is_empty()
            && data.len() <= self.segment
            && self.count < max_segments
            && self.buf.len() + data.len() <= GSO_MAX_BYTES;
        if fits {
            self.buf.extend_from_slice(data);
            self.count += 1;
            self.closed = data.len() < self.segment;
        }
        fits
    }

    /// The socket the datagrams go from.
    pub fn socket(&self) -> UdpSocketId {
        self.socket
    }

    /// Where they go.
    pub fn destination(&self) -> SocketAddr {
        self.to
    }

    /// How many datagrams it holds.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether it holds none (never: a batch starts with one).
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The datagrams, one after another, and the size of each but the last.
    pub fn contents(&self) -> (&[u8], usize) {
        (&self.buf, self.segment)
    }
}

/// A socket's sending state for [`SendBatch`]es: whether and how far the
/// system segments for us ([`Gso::max_segments`] is 1 without GSO, and
/// then a batch is never more than one datagram).
#[derive(Debug)]
pub struct Gso {
    state: quinn_udp::UdpSocketState,
}

impl Gso {
    /// Probes `socket` (it is set non-blocking, which the runtimes' sockets
    /// already are).
    pub fn new(socket: socket2::SockRef<'_>) -> io::Result<Gso> {
        let state = quinn_udp::UdpSocketState::new(quinn_udp::UdpSockRef::from(&*socket))?;
        default_path_mtu_discovery(&socket);
        Ok(Gso { state })
    }

    /// Most datagrams one send may carry here.
    pub fn max_segments(&self) -> usize {
        self.state.max_gso_segments()
    }

    /// Sends `batch` now, without waiting (a full socket buffer fails with
    /// `WouldBlock`: the datagrams are lost, as UDP may lose them anyway).
    pub fn send(&self, socket: socket2::SockRef<'_>, batch: &SendBatch) -> io::Result<()> {
        let (contents, segment) = batch.contents();
        let transmit = quinn_udp::Transmit {
            destination: batch.to,
            ecn: None,
            contents,
            segment_size: (batch.count > 1).then_some(segment),
            src_ip: None,
        };
        self.state.try_send(quinn_udp::UdpSockRef::from(&*socket), &transmit)
    }
}

#[cfg(test)]
mod gso_tests {
    use super::*;

    const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    #[test]
    fn a_batch_takes_equal_datagrams_and_one_shorter_last() {
        let to: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let s = UdpSocketId::rtp(0);
        let mut b = SendBatch::new(s, to, &[1; 10]);
        assert!(b.push(s, to, &[2; 10], 64));
        assert!(!b.push(s, to, &[3; 11], 64), "longer than the first");
        assert!(!b.push(UdpSocketId::rtcp(0), to, &[3; 10], 64), "another socket");
        assert!(
            !b.push(s, "127.0.0.1:5002".parse().unwrap(), &[3; 10], 64),
            "another destination"
        );
        assert!(b.push(s, to, &[4; 4], 64), "a shorter last one");
        assert!(!b.push(s, to, &[5; 4], 64), "nothing after the shorter one");
        assert_eq!(b.len(), 3);
        assert_eq!(b.contents().1, 10);
        assert_eq!(b.contents().0.len(), 24);
        let mut b = SendBatch::new(s, to, &[1; 10]);
        assert!(!b.push(s, to, &[1; 10], 1), "max_segments");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn full_size_packets_may_still_be_fragmented() {
        use rustix::net::sockopt::{ip_mtu_discover, Ipv4PathMtuDiscovery};
        let s = UdpSocket::bind((LOOPBACK, 0)).unwrap();
        let _gso = Gso::new(socket2::SockRef::from(&s)).unwrap();
        assert_eq!(ip_mtu_discover(&s).unwrap(), Ipv4PathMtuDiscovery::WANT);
        let r = UdpSocket::bind((LOOPBACK, 0)).unwrap();
        let _rx = Receiver::new(socket2::SockRef::from(&r)).unwrap();
        assert_eq!(ip_mtu_discover(&r).unwrap(), Ipv4PathMtuDiscovery::WANT);
    }

    #[test]
    fn a_batch_arrives_as_its_datagrams() {
        let rx = UdpSocket::bind((LOOPBACK, 0)).unwrap();
        rx.set_read_timeout(Some(std::time::Duration::from_secs(2))).unwrap();
        let tx = UdpSocket::bind((LOOPBACK, 0)).unwrap();
        tx.set_nonblocking(true).unwrap();
        let gso = Gso::new(socket2::SockRef::from(&tx)).unwrap();
        let to = rx.local_addr().unwrap();
        let s = UdpSocketId::rtp(0);
        let mut batch = SendBatch::new(s, to, &[7; 1400]);
        let mut n = 1;
        while n < 40 && batch.push(s, to, &[n as u8; 1400], gso.max_segments()) {
            n += 1;
        }
        batch.push(s, to, &[0xee; 99], gso.max_segments());
        gso.send(socket2::SockRef::from(&tx), &batch).unwrap();
        let mut buf = [0u8; 2000];
        let mut sizes = Vec::new();
        for _ in 0..batch.len() {
            let (len, from) = rx.recv_from(&mut buf).unwrap();
            assert_eq!(from, tx.local_addr().unwrap());
            sizes.push((len, buf[0]));
        }
        assert_eq!(sizes.len(), batch.len());
        assert!(
            sizes[..sizes.len() - 1].iter().all(|(len, _)| *len == 1400),
            "{sizes:?}"
        );
        if batch.len() > 1 {
            assert_eq!(*sizes.last().unwrap(), (99, 0xee));
        }
    }
}

/// Puts path MTU discovery back to the system's default ("want": Don't
/// Fragment, and fragment once the path MTU is known to be smaller).
/// quinn-udp sets it to "probe" (always Don't Fragment, ignoring the path
/// MTU), which suits QUIC's own MTU probing but would silently lose every
/// full-size RTP packet on a path with a smaller MTU (a VPN, a tunnel).
fn default_path_mtu_discovery(socket: &socket2::SockRef<'_>) {
    #[cfg(target_os = "linux")]
    {
        use rustix::net::sockopt::{self, Ipv4PathMtuDiscovery, Ipv6PathMtuDiscovery};
        let v6 = socket
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .is_some_and(|a| a.is_ipv6());
        let set = if v6 {
            sockopt::set_ipv6_mtu_discover(&**socket, Ipv6PathMtuDiscovery::WANT)
        } else {
            sockopt::set_ip_mtu_discover(&**socket, Ipv4PathMtuDiscovery::WANT)
        };
        if let Err(e) = set {
            tracing::debug!(error = %e, "path MTU discovery left as quinn-udp set it");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = socket;
}
