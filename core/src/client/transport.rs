//! How a session's RTP travels, beyond the RTSP phase machine: the UDP
//! pairs it asks the runtime for, the `Transport` header it sends and reads
//! back, datagrams in (with the source check) and out, the receiver reports
//! and BYE, and the fallback from UDP to TCP (`docs/ARCHITECTURE.md`, "UDP").

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use bytes::{BufMut, BytesMut};

use super::reorder::{Released, Reorder};
use super::reports::{randomized, report_interval, seed_of};
use super::{
    Client, ClientOptions, Event, FallbackEvent, Output, Phase, RtcpEvent, Track, TrackStats, Transport, TransportKind,
    UdpBind, UdpRequest, UdpSocketId, Warning,
};
use crate::error::{ConnectionError, Error, ProtocolError};
use crate::message::{encode_interleaved, Method};
use crate::rand::SplitMix64;
use crate::rtcp::{self, ReceiverReport};

/// Distinct foreign addresses reported with a warning; more are only counted.
const MAX_FOREIGN_REPORTED: usize = 16;

/// The transport side of a [`Client`].
#[derive(Debug)]
pub(super) struct State {
    /// What SETUP asks for now (`Auto` starts as `Udp`).
    mode: Transport,
    /// `Auto` was asked and has not fallen back yet.
    auto: bool,
    local: Option<SocketAddr>,
    peer: Option<SocketAddr>,
    /// When the current connection attempt started.
    pub(super) connecting_since: Instant,
    rng: SplitMix64,
    /// Our SSRC in receiver reports.
    ssrc: u32,
    cname: String,
    pub(super) reports_at: Option<Instant>,
    /// Running average of our compound RTCP size (RFC 3550 §6.3.3).
    avg_rtcp_size: f64,
    /// `Auto`: PLAY was answered and no RTP came yet; fall back at this instant.
    pub(super) fallback_at: Option<Instant>,
    /// The TEARDOWN under way is the fallback's: reconnect when it ends.
    reconnect_pending: bool,
    /// The RTP port of each pair the runtime opened, by pair.
    opened: Vec<Option<u16>>,
    foreign: u64,
    foreign_from: Vec<SocketAddr>,
    /// Scratch for packets the reorder buffers release.
    pub(super) released: VecDeque<Released>,
    /// Datagram payloads are copied in here and split off, so that a
    /// packet costs no allocation of its own (one per [`ARENA`] bytes).
    arena: BytesMut,
}

/// Size of each block datagram payloads are copied into.
const ARENA: usize = 64 * 1024;

impl State {
    pub(super) fn new(opts: &ClientOptions, now: Instant) -> State {
        State {
            mode: match opts.transport {
                Transport::Auto => Transport::Udp,
                t => t,
            },
            auto: opts.transport == Transport::Auto,
            local: None,
            peer: None,
            connecting_since: now,
            rng: SplitMix64::new(0),
            ssrc: 0,
            cname: String::new(),
            reports_at: None,
            avg_rtcp_size: 0.0,
            fallback_at: None,
            reconnect_pending: false,
            opened: Vec::new(),
            foreign: 0,
            foreign_from: Vec::new(),
            released: VecDeque::new(),
            arena: BytesMut::new(),
        }
    }

    /// The connection is up: the SSRC and report timer draw from a
    /// generator seeded with the session's own inputs (so replays agree).
    pub(super) fn on_connected(&mut self, local: SocketAddr, peer: SocketAddr, url: &str) {
        self.local = Some(local);
        self.peer = Some(peer);
        let seed = seed_of(format!("{local} {peer} {url}").as_bytes());
        self.rng = SplitMix64::new(seed);
        self.ssrc = self.rng.next_u64() as u32;
        self.cname = format!("rtsp-toolkit@{}", local.ip());
    }

    /// The user stopped the session: no fresh session after the TEARDOWN.
    pub(super) fn cancel_reconnect(&mut self) {
        self.reconnect_pending = false;
        self.fallback_at = None;
    }

    /// Our SSRC in RTCP.
    pub(super) fn own_ssrc(&self) -> u32 {
        self.ssrc
    }

    /// SETUP may still fall back to TCP.
    pub(super) fn can_fall_back(&self) -> bool {
        self.auto && self.mode == Transport::Udp
    }

    /// Receiver reports are due at `now`.
    pub(super) fn reports_due(&self, now: Instant) -> bool {
        self.reports_at.is_some_and(|at| now >= at)
    }

    /// Our SSRC (receiver reports, and the backchannel's RTP).
    pub(super) fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// A number from the session's generator (seeded from its own inputs,
    /// so that replays agree).
    pub(super) fn next_random(&mut self) -> u64 {
        self.rng.next_u64()
    }

    pub(super) fn peer_ip(&self) -> IpAddr {
        self.peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.ip())
    }
}

/// `key=value` parameters of the first transport spec of a `Transport` header.
fn transport_params(header: &str) -> (String, Vec<(String, String)>) {
    let first = header.split(',').next().unwrap_or("");
    let mut parts = first.split(';');
    let spec = parts.next().unwrap_or("").trim().to_ascii_uppercase();
    let params = parts
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), v.trim().to_owned()),
            None => (p.trim().to_ascii_lowercase(), String::new()),
        })
        .collect();
    (spec, params)
}

/// `a-b` or `a` (then `a+1`) as a port pair.
fn port_pair(v: &str) -> Option<(u16, u16)> {
    match v.split_once('-') {
        Some((a, b)) => Some((a.trim().parse().ok()?, b.trim().parse().ok()?)),
        None => {
            let a: u16 = v.trim().parse().ok()?;
            Some((a, a.checked_add(1)?))
        }
    }
}

/// An SSRC as servers write it: hex (RFC 2326), sometimes decimal.
fn parse_ssrc(v: &str) -> Option<u32> {
    u32::from_str_radix(v.trim(), 16).ok().or_else(|| v.trim().parse().ok())
}

impl Client {
    /// The transport this session asks for now (`Auto` shows as the
    /// transport it is trying).
    pub fn transport(&self) -> Transport {
        self.udp.mode
    }

    /// What each set-up track received so far, in track order.
    pub fn track_stats(&self) -> Vec<TrackStats> {
        self.tracks.iter().map(|t| t.stats()).collect()
    }

    /// Datagrams dropped because they did not come from the server.
    pub fn foreign_datagrams(&self) -> u64 {
        self.udp.foreign
    }

    /// The `Transport` header of track `i`'s SETUP; `None` when the UDP pair
    /// must be opened first (asked for here).
    pub(super) fn setup_transport(&mut self, i: usize) -> Option<String> {
        match self.udp.mode {
            Transport::Udp => {
                let Some(port) = self.udp.opened.get(i).copied().flatten() else {
                    let local = self.udp.local.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |l| l.ip());
                    self.phase = Phase::OpenUdp(i);
                    self.io.push_back(Output::OpenUdp(UdpRequest {
                        pair: i as u16,
                        bind: UdpBind::Unicast {
                            local,
                            ports: self.opts.udp_ports,
                        },
                    }));
                    return None;
                };
                Some(format!("RTP/AVP;unicast;client_port={}-{}", port, port + 1))
            }
            Transport::Multicast => Some("RTP/AVP;multicast".to_owned()),
            _ => {
                let ch = (2 * i) as u8;
                Some(format!("RTP/AVP/TCP;unicast;interleaved={}-{}", ch, ch + 1))
            }
        }
    }

    /// The transport of track `i` as the SETUP reply's `Transport` header sets it.
    pub(super) fn reply_transport(&self, i: usize, header: Option<&str>) -> Result<TransportKind, Error> {
        let bad = |detail: String| {
            Error::Protocol(ProtocolError::MissingHeader {
                method: Method::Setup,
                header: "Transport",
                detail,
            })
        };
        let requested = (2 * i).min(254) as u8;
        let tcp_default = TransportKind::TcpInterleaved {
            rtp_channel: requested,
            rtcp_channel: requested + 1,
        };
        let peer_ip = self.udp.peer_ip();
        let Some(header) = header else {
            return Ok(match self.udp.mode {
                Transport::Udp => TransportKind::Udp {
                    client_ports: self.client_ports(i),
                    server_ports: None,
                    source: peer_ip,
                    ssrc: None,
                },
                Transport::Multicast => return Err(bad("absent: the multicast group is unknown".into())),
                _ => tcp_default,
            });
        };
        let (spec, params) = transport_params(header);
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let ssrc = get("ssrc").and_then(parse_ssrc);
        let source = match get("source") {
            Some(s) => Some(
                s.trim_matches(|c| c == '[' || c == ']')
                    .parse::<IpAddr>()
                    .map_err(|_| bad(format!("bad source address in {header:?}")))?,
            ),
            None => None,
        };
        if spec.contains("TCP") || get("interleaved").is_some() {
            // The server chose TCP (even when asked for UDP): follow it.
            let (rtp_channel, rtcp_channel) =
                crate::message::parse_interleaved(header).unwrap_or((requested, requested + 1));
            return Ok(TransportKind::TcpInterleaved {
                rtp_channel,
                rtcp_channel,
            });
        }
        match self.udp.mode {
            Transport::Udp | Transport::Multicast if get("multicast").is_some() => {
                let group = get("destination")
                    .and_then(|d| d.trim_matches(|c| c == '[' || c == ']').parse::<IpAddr>().ok())
                    .filter(IpAddr::is_multicast)
                    .ok_or_else(|| bad(format!("multicast without a multicast destination: {header:?}")))?;
                let ports = get("port")
                    .and_then(port_pair)
                    .ok_or_else(|| bad(format!("multicast without a port: {header:?}")))?;
                Ok(TransportKind::Multicast {
                    group,
                    ports,
                    ttl: get("ttl").and_then(|t| t.parse().ok()),
                    source: source.unwrap_or(peer_ip),
                    ssrc,
                })
            }
            Transport::Multicast => Err(bad(format!("multicast asked, the server answered {header:?}"))),
            Transport::Udp => Ok(TransportKind::Udp {
                client_ports: self.client_ports(i),
                server_ports: get("server_port").and_then(port_pair),
                source: source.unwrap_or(peer_ip),
                ssrc,
            }),
            _ => Err(bad(format!("server chose a non-TCP transport: {header}"))),
        }
    }

    fn client_ports(&self, i: usize) -> (u16, u16) {
        let p = self.udp.opened.get(i).copied().flatten().unwrap_or(0);
        (p, p.wrapping_add(1))
    }

    /// The reorder buffer of a new track: UDP and multicast only.
    pub(super) fn reorder_for(&self, track: &Track) -> Option<Reorder> {
        match track.transport {
            TransportKind::TcpInterleaved { .. } => None,
            _ => Some(Reorder::new(self.opts.reorder_packets, self.opts.reorder_window)),
        }
    }

    /// Where track `i`'s RTCP goes: the interleaved channel, or the socket
    /// and address of its datagrams; `None` when unknown.
    fn rtcp_route(&self, i: usize) -> Option<Result<u8, SocketAddr>> {
        let t = &self.tracks[i].track;
        match t.transport {
            TransportKind::TcpInterleaved { rtcp_channel, .. } => Some(Ok(rtcp_channel)),
            // To the RTSP server itself: never to a third address the reply named.
            TransportKind::Udp {
                server_ports: Some((_, rtcp)),
                ..
            } => Some(Err(SocketAddr::new(self.udp.peer_ip(), rtcp))),
            TransportKind::Udp { .. } => None,
            TransportKind::Multicast { group, ports, .. } => Some(Err(SocketAddr::new(group, ports.1))),
        }
    }

    /// Opens the path through NATs and firewalls on the way back: one
    /// datagram from each of track `i`'s sockets to the server's ports.
    pub(super) fn punch(&mut self, now: Instant, i: usize) {
        let t = &self.tracks[i].track;
        let TransportKind::Udp {
            server_ports: Some((rtp, _)),
            ..
        } = t.transport
        else {
            return;
        };
        // To the RTSP server itself, like the reports (`rtcp_route`).
        let ip = self.udp.peer_ip();
        // An RTP header with no payload: what FFmpeg and gortsplib send too.
        let mut header = BytesMut::with_capacity(12);
        header.put_u8(0x80);
        header.put_u8(t.payload_type & 0x7f);
        header.put_u16(0);
        header.put_u32(0);
        header.put_u32(self.udp.ssrc);
        self.io.push_back(Output::SendDatagram {
            socket: UdpSocketId::rtp(i as u16),
            to: SocketAddr::new(ip, rtp),
            data: header.freeze(),
        });
        if self.opts.rtcp_reports {
            self.send_report(now, i, false);
        }
    }

    /// Multicast track `i` was set up: join its group before going on.
    pub(super) fn open_multicast(&mut self, i: usize) {
        let TransportKind::Multicast {
            group, ports, source, ..
        } = self.tracks[i].track.transport
        else {
            return;
        };
        let interface = self.udp.local.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |l| l.ip());
        self.phase = Phase::OpenUdp(i);
        self.io.push_back(Output::OpenUdp(UdpRequest {
            pair: i as u16,
            bind: UdpBind::Multicast {
                group,
                port: ports.0,
                source: Some(source),
                interface,
            },
        }));
    }

    pub(super) fn on_udp_opened(&mut self, now: Instant, pair: u16, result: Result<u16, &str>) {
        let i = usize::from(pair);
        if self.phase != Phase::OpenUdp(i) {
            return;
        }
        let _g = self.span.clone().entered();
        // A pair is an even RTP port above 0 with its RTCP port above it.
        let result = result.and_then(|port| {
            if port != 0 && port % 2 == 0 && port < u16::MAX {
                Ok(port)
            } else {
                Err("the runtime reported an RTP port that is not even and below 65535")
            }
        });
        match result {
            Ok(port) => {
                if self.udp.opened.len() <= i {
                    self.udp.opened.resize(i + 1, None);
                }
                self.udp.opened[i] = Some(port);
                // Multicast pairs are opened after their SETUP (the track
                // exists); unicast ones before it.
                let set_up = self.tracks.get(i).is_some_and(|t| t.track.index == i);
                if set_up {
                    self.after_setup(now, i);
                } else {
                    self.phase = super::Phase::Setup(i);
                    self.send_setup(now, i);
                }
            }
            Err(reason) if self.udp.can_fall_back() => {
                // A multicast answer whose group could not be joined: the
                // track it set up is dropped and set up again over TCP.
                self.tracks.truncate(i);
                let reason = format!("cannot open UDP ports: {reason}");
                self.fall_back_in_place(now, reason);
                self.phase = super::Phase::Setup(i);
                self.send_setup(now, i);
            }
            Err(reason) => {
                let what = if self.udp.mode == Transport::Multicast {
                    "join the multicast group"
                } else {
                    "open UDP ports"
                };
                // The runtime gives no io::Error kind for the UDP ports.
                let message = format!("cannot {what} for track {i}: {reason}");
                let error = ConnectionError::new(std::io::ErrorKind::Other, message);
                self.finish(now, Some(Error::Connection(error)));
            }
        }
    }

    /// The server refused UDP at SETUP of track `i`: go on over TCP on this connection.
    pub(super) fn fall_back_at_setup(&mut self, now: Instant, i: usize, status: u16, reason: &str) {
        self.fall_back_in_place(now, format!("the server answered {status} {reason} to SETUP over UDP"));
        self.send_setup(now, i);
    }

    fn fall_back_in_place(&mut self, now: Instant, reason: String) {
        tracing::info!(%reason, "falling back to TCP");
        self.udp.auto = false;
        self.udp.mode = Transport::Tcp;
        self.events.push_back(Event::Fallback(FallbackEvent {
            from: Transport::Udp,
            to: Transport::Tcp,
            reason,
            session_elapsed: now - self.start,
        }));
    }

    /// PLAY was answered: the report timer starts, and with `Auto` the
    /// wait for the first RTP.
    pub(super) fn on_playing(&mut self, now: Instant) {
        if self.opts.rtcp_reports {
            let t = report_interval(true, None, 2, self.udp.avg_rtcp_size as usize);
            let unit = self.udp.rng.unit();
            self.udp.reports_at = Some(now + randomized(t, unit));
        }
        let on_udp = self
            .tracks
            .iter()
            .any(|t| matches!(t.track.transport, TransportKind::Udp { .. }));
        if self.udp.can_fall_back() && on_udp {
            let wait = self.opts.udp_fallback_after.min(self.opts.timeout);
            self.udp.fallback_at = Some(now + wait);
        }
        self.start_backchannel(now);
    }

    pub(super) fn udp_fallback_due(&self, now: Instant) -> bool {
        self.udp.fallback_at.is_some_and(|at| now >= at)
    }

    /// No RTP over UDP: TEARDOWN, then a fresh session over TCP on a new
    /// connection (when the TEARDOWN ends, [`Client::reconnect_instead_of_finish`]).
    pub(super) fn start_fallback(&mut self, now: Instant, reason: &str) {
        let after = self.opts.udp_fallback_after.min(self.opts.timeout);
        self.udp.fallback_at = None;
        self.fall_back_in_place(now, format!("{reason} within {after:?} of PLAY"));
        self.udp.reconnect_pending = true;
        self.close(now);
    }

    /// Whether the end of the session under way is the fallback's TEARDOWN
    /// ending: then the session starts again over TCP instead.
    pub(super) fn reconnect_instead_of_finish(&mut self, now: Instant) -> bool {
        if !(self.udp.reconnect_pending && self.phase == Phase::TearingDown) {
            return false;
        }
        tracing::debug!("reconnecting over TCP");
        self.udp.reconnect_pending = false;
        self.udp.connecting_since = now;
        self.udp.opened.clear();
        self.udp.reports_at = None;
        self.decoder = crate::message::Decoder::new(self.opts.limits);
        self.inflight.clear();
        self.abandoned.clear();
        self.session = None;
        self.tracks.clear();
        self.wanted.clear();
        self.base_url = None;
        self.keepalive_at = None;
        self.phase_reached_playing = false;
        self.phase = Phase::Connecting;
        self.io.push_back(Output::Reconnect);
        true
    }

    /// One datagram on socket `socket` from `from`.
    pub(super) fn on_datagram(&mut self, now: Instant, socket: UdpSocketId, from: SocketAddr, data: &[u8]) {
        if matches!(self.phase, Phase::Connecting | Phase::Closed) {
            return;
        }
        let i = usize::from(socket.pair);
        let from_ip = from.ip().to_canonical();
        let accepted = self.tracks.get(i).map(|t| match t.track.transport {
            TransportKind::Udp {
                server_ports, source, ..
            } => {
                from_ip == source.to_canonical()
                    && server_ports.is_none_or(|(rtp, rtcp)| from.port() == if socket.rtcp { rtcp } else { rtp })
            }
            TransportKind::Multicast { source, .. } => from_ip == source.to_canonical(),
            TransportKind::TcpInterleaved { .. } => false,
        });
        match accepted {
            Some(true) => {}
            // Other receivers of a multicast group send their reports to
            // the group's RTCP port too: members, not strangers; not ours to read.
            Some(false) if socket.rtcp && matches!(self.tracks[i].track.transport, TransportKind::Multicast { .. }) => {
                return;
            }
            Some(false) => {
                self.udp.foreign += 1;
                if self.udp.foreign_from.len() < MAX_FOREIGN_REPORTED && !self.udp.foreign_from.contains(&from) {
                    self.udp.foreign_from.push(from);
                    self.events
                        .push_back(Event::Warning(Warning::ForeignDatagram { track: i, from }));
                }
                return;
            }
            // A pair whose SETUP is not answered yet: nothing to give it to.
            None => {
                self.ignored_frames += 1;
                return;
            }
        }
        let _g = self.span.clone().entered();
        self.last_data = now;
        let arena = &mut self.udp.arena;
        // The block again from its start once every packet split off it has
        // been dropped (no allocation, memory still in cache), else a new
        // block: the old one lives on in the packets split off it.
        if arena.capacity() < data.len() && !arena.try_reclaim(data.len()) {
            *arena = BytesMut::with_capacity(ARENA.max(data.len()));
        }
        arena.extend_from_slice(data);
        let payload = arena.split().freeze();
        if socket.rtcp {
            let channel = self.tracks[i].rtcp_channel();
            return self.on_track_rtcp(now, i, channel, payload);
        }
        self.udp.fallback_at = None;
        let log = self.opts.log;
        let mut released = std::mem::take(&mut self.udp.released);
        self.tracks[i].on_udp_rtp(now, self.start, payload, log, &mut self.events, &mut released);
        self.udp.released = released;
    }

    /// Gives up the reorder gaps whose wait ended at `now`.
    pub(super) fn expire_reorder(&mut self, now: Instant) {
        let log = self.opts.log;
        let mut released = std::mem::take(&mut self.udp.released);
        for t in &mut self.tracks {
            if t.reorder_deadline().is_some_and(|d| now >= d) {
                t.expire(now, self.start, log, &mut self.events, &mut released);
            }
        }
        self.udp.released = released;
    }

    /// Sends a receiver report on every track (with a BYE at the end).
    pub(super) fn send_reports(&mut self, now: Instant, bye: bool) {
        if !self.opts.rtcp_reports {
            return;
        }
        if bye {
            // What the buffers hold is delivered before we leave.
            let log = self.opts.log;
            let mut released = std::mem::take(&mut self.udp.released);
            for t in &mut self.tracks {
                t.flush(self.start, log, &mut self.events, &mut released);
            }
            self.udp.released = released;
        }
        for i in 0..self.tracks.len() {
            self.send_report(now, i, bye);
        }
        let t = report_interval(false, None, 2, self.udp.avg_rtcp_size as usize);
        let unit = self.udp.rng.unit();
        self.udp.reports_at = (!bye).then(|| now + randomized(t, unit));
    }

    /// One compound RTCP packet for track `i`: RR (with the track's report
    /// block once a packet came), SDES CNAME, and BYE when leaving.
    fn send_report(&mut self, now: Instant, i: usize, bye: bool) {
        let Some(route) = self.rtcp_route(i) else { return };
        let ssrc = self.udp.ssrc;
        let block = self.tracks[i].reception.report_block(now);
        let mut out = BytesMut::new();
        rtcp::encode_receiver_report(
            &ReceiverReport {
                ssrc,
                reports: block.into_iter().collect(),
            },
            &mut out,
        );
        rtcp::encode_sdes_cname(ssrc, &self.udp.cname, &mut out);
        if bye {
            rtcp::encode_bye(&[ssrc], None, &mut out);
        }
        let data = out.freeze();
        let size = data.len() as f64 + 28.0; // UDP and IP headers count (§6.2)
        self.udp.avg_rtcp_size = if self.udp.avg_rtcp_size == 0.0 {
            size
        } else {
            self.udp.avg_rtcp_size + (size - self.udp.avg_rtcp_size) / 16.0
        };
        let packets = rtcp::parse_compound(&data).unwrap_or_default();
        match route {
            Ok(channel) => {
                let mut framed = BytesMut::new();
                if encode_interleaved(channel, &data, &mut framed).is_err() {
                    return;
                }
                self.io.push_back(Output::Transmit(framed.freeze()));
            }
            Err(to) => self.io.push_back(Output::SendDatagram {
                socket: UdpSocketId::rtcp(i as u16),
                to,
                data,
            }),
        }
        let channel = self.tracks[i].rtcp_channel();
        self.events.push_back(Event::RtcpSent(RtcpEvent {
            track: i,
            channel,
            packets,
            recv_tick: now - self.start,
        }));
    }
}
