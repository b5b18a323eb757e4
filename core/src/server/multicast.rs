//! Multicast (`RTP/AVP;multicast`): one stream per published path, shared
//! by every session that set it up.
//!
//! A session that asks for multicast does not send anything itself: its
//! [`Connection`](super::Connection) asks the runtime to join the path's
//! stream ([`MulticastRequest::Join`]) and answers SETUP with that stream's
//! group, port pair, TTL and SSRC; its PLAY starts the stream when it is the
//! first, or tells where the running stream is ([`MulticastPosition`]: the
//! `Range` and `RTP-Info` of a late joiner). The stream is a
//! [`MulticastStream`], a sans-IO machine of its own, driven by the runtime
//! on a task of its own with [`MulticastStream::handle_input`] and
//! [`MulticastStream::poll_output`] like a connection; it paces the file with
//! the same code as a unicast session (the `stream` module: the same
//! schedule, `max_lag`, sender reports, `play_count`, and the final BYE).
//!
//! Its life (`docs/ARCHITECTURE.md`, "Multicast (server)"):
//! - created by the first SETUP of its path (and `play_count`), which takes a
//!   group from [`ServerConfig::multicast_groups`] ([`GroupPool`]); track `k`
//!   of the file goes to port pair `k` of [`ServerConfig::multicast_ports`]
//!   on that group, with [`ServerConfig::multicast_ttl`]. Every track of the
//!   file is sent, whichever a session set up; a session receives those it
//!   joins;
//! - started by the first PLAY of one of its members;
//! - ended by the end of its last play-through (SR + BYE, as over TCP), or
//!   when its last member leaves (TEARDOWN, connection closed, session
//!   timeout; SR + BYE when it had started), or at shutdown. Then
//!   [`MulticastOutput::Done`]; a later SETUP of the path starts a new stream.
//!
//! Receiver reports sent to the group are not read: the stream's socket is
//! not bound to the group's ports, and a member's liveness is its RTSP
//! connection's (requests, within `session_timeout`).

use std::collections::VecDeque;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::clock::{self, SplitMix64};
use super::headers::range_end;
use super::stream::{Session, State};
use super::track_out::{Delivery, Sink, UdpDelivery};
use super::{later, LagReport, PlayCount, ServerConfig, ServerEvent, ServerOutput};
use crate::source::MediaSource;

/// A range of IPv4 multicast group addresses, both ends included (e.g.
/// `239.255.42.0-239.255.42.255`), from which each multicast stream takes
/// one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GroupRange {
    first: Ipv4Addr,
    last: Ipv4Addr,
}

impl GroupRange {
    /// `first..=last`, or why not: both must be multicast addresses
    /// (224.0.0.0/4), in order.
    ///
    /// ```
    /// use std::net::Ipv4Addr;
    /// use rtsp_toolkit_core::server::GroupRange;
    /// assert!(GroupRange::new(Ipv4Addr::new(239, 255, 0, 1), Ipv4Addr::new(239, 255, 0, 9)).is_ok());
    /// assert!(GroupRange::new(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 9)).is_err());
    /// assert_eq!("239.1.1.0-239.1.1.255".parse::<GroupRange>().unwrap().len(), 256);
    /// ```
    pub fn new(first: Ipv4Addr, last: Ipv4Addr) -> Result<GroupRange, String> {
        if !first.is_multicast() || !last.is_multicast() {
            return Err(format!(
                "group range {first}-{last}: both ends must be IPv4 multicast addresses (224.0.0.0/4)"
            ));
        }
        if u32::from(first) > u32::from(last) {
            return Err(format!(
                "group range {first}-{last}: the first address is after the last"
            ));
        }
        Ok(GroupRange { first, last })
    }

    /// Parses `FIRST-LAST` (or a single address).
    pub fn parse(s: &str) -> Result<GroupRange, String> {
        let addr = |a: &str| {
            a.trim()
                .parse::<Ipv4Addr>()
                .map_err(|e| format!("bad group address {:?} in {s:?}: {e}", a.trim()))
        };
        match s.split_once('-') {
            Some((a, b)) => GroupRange::new(addr(a)?, addr(b)?),
            None => {
                let a = addr(s)?;
                GroupRange::new(a, a)
            }
        }
    }

    /// The first address.
    pub fn first(&self) -> Ipv4Addr {
        self.first
    }

    /// The last address.
    pub fn last(&self) -> Ipv4Addr {
        self.last
    }

    /// How many addresses it holds.
    pub fn len(&self) -> u64 {
        u64::from(u32::from(self.last) - u32::from(self.first)) + 1
    }

    /// Never empty (a range from [`GroupRange::new`] holds its first address).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Address `i` of the range (`i < len()`).
    pub fn get(&self, i: u64) -> Option<Ipv4Addr> {
        let i = u32::try_from(i).ok()?;
        let a = u32::from(self.first).checked_add(i)?;
        (a <= u32::from(self.last)).then(|| Ipv4Addr::from(a))
    }
}

impl Default for GroupRange {
    /// `239.255.42.0-239.255.42.255`: 256 groups in the IPv4 local scope
    /// (RFC 2365), which routers at the site's edge do not forward.
    fn default() -> Self {
        GroupRange {
            first: Ipv4Addr::new(239, 255, 42, 0),
            last: Ipv4Addr::new(239, 255, 42, 255),
        }
    }
}

impl std::str::FromStr for GroupRange {
    type Err = String;

    fn from_str(s: &str) -> Result<GroupRange, String> {
        GroupRange::parse(s)
    }
}

impl fmt::Display for GroupRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

/// The groups of a [`GroupRange`] that streams hold: each running stream
/// has one to itself, given back when the stream is gone. Pure bookkeeping;
/// the runtime keeps one per server.
#[derive(Debug, Clone)]
pub struct GroupPool {
    range: GroupRange,
    /// Held groups, as offsets into the range, sorted.
    held: Vec<u64>,
}

impl GroupPool {
    /// No group held yet.
    pub fn new(range: GroupRange) -> GroupPool {
        GroupPool {
            range,
            held: Vec::new(),
        }
    }

    /// The lowest free group, now held; `None` when every group is.
    pub fn take(&mut self) -> Option<Ipv4Addr> {
        // `held` is sorted: the first offset that differs from its index is free.
        let free = self
            .held
            .iter()
            .enumerate()
            .find(|(i, held)| *i as u64 != **held)
            .map_or(self.held.len() as u64, |(i, _)| i as u64);
        let group = self.range.get(free)?;
        self.held.insert(free as usize, free);
        Some(group)
    }

    /// Gives `group` back (ignored if it was not held).
    pub fn give_back(&mut self, group: Ipv4Addr) {
        let offset = u64::from(u32::from(group).wrapping_sub(u32::from(self.range.first)));
        if let Ok(i) = self.held.binary_search(&offset) {
            self.held.remove(i);
        }
    }

    /// Groups held now.
    pub fn held(&self) -> usize {
        self.held.len()
    }
}

/// Where a member receives one track of a multicast stream: the SETUP
/// reply's `destination`, `port` (and the next one for RTCP), `ttl` and
/// `ssrc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MulticastTrack {
    /// The group address (`destination`).
    pub group: Ipv4Addr,
    /// The RTP port; RTCP is the next one.
    pub port: u16,
    /// The datagrams' TTL.
    pub ttl: u8,
    /// The track's RTP SSRC.
    pub ssrc: u32,
}

/// Where a running multicast stream is when a member plays: the PLAY
/// reply's `Range` (from `start` to `end`) and `RTP-Info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MulticastPosition {
    /// Time since the stream started (0 for the session that starts it).
    pub start: Duration,
    /// The end of the presentation (`play_count` × duration), `None` when endless.
    pub end: Option<Duration>,
    /// The stream's `play_count` (that of its first SETUP).
    pub play_count: PlayCount,
    /// Per source track: the sequence number of the next packet and the
    /// RTP timestamp of `start` (`None` for a track the stream does not send).
    pub tracks: Vec<Option<(u16, u32)>>,
}

/// What a connection asks the runtime for its multicast session
/// ([`ServerOutput::Multicast`]).
pub enum MulticastRequest {
    /// Join (creating it if needed) the stream of `path` played `play_count`
    /// times, made from `source`; answer with
    /// [`ServerInput::MulticastJoined`](super::ServerInput::MulticastJoined)
    /// and this token. The membership lasts until the connection's
    /// [`ServerOutput::Close`].
    Join {
        /// Echoed in the answer.
        token: u64,
        /// The presentation's relative path.
        path: String,
        /// How many times it plays (streams differ by it).
        play_count: PlayCount,
        /// The media, already looked up by the connection.
        source: Arc<MediaSource>,
    },
    /// Start the joined stream if it is not playing yet, and answer where
    /// it is with [`ServerInput::MulticastPlaying`](super::ServerInput::MulticastPlaying).
    Play {
        /// Echoed in the answer.
        token: u64,
    },
}

impl fmt::Debug for MulticastRequest {
    // Not derived: the shared MediaSource would print every sample.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MulticastRequest::Join {
                token,
                path,
                play_count,
                source,
            } => f
                .debug_struct("Join")
                .field("token", token)
                .field("path", path)
                .field("play_count", play_count)
                .field("tracks", &source.tracks.len())
                .finish(),
            MulticastRequest::Play { token } => f.debug_struct("Play").field("token", token).finish(),
        }
    }
}

/// Something that happened to a multicast stream: the one input of
/// [`MulticastStream::handle_input`]. Members are named by the runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MulticastInput<'a> {
    /// A session joined (its SETUP).
    Join(u64),
    /// A member played: the stream starts if it was not playing. Ask
    /// [`MulticastStream::position`] for the reply first.
    Play(u64),
    /// A member left (TEARDOWN, its connection closed or timed out). The
    /// last one to leave ends the stream.
    Leave(u64),
    /// The instant of the last [`MulticastOutput::Timeout`] passed (or the
    /// runtime woke the stream after a `Play`): send what is due.
    Timeout,
    /// The server is shutting down: end now (SR + BYE if playing).
    Shutdown,
    /// A packet of the live path this stream sends (made with
    /// [`MulticastStream::live`]), as its publisher sent it on `track`:
    /// passed on re-stamped once the stream plays, as to a unicast reader
    /// (see [`live`](super::live)).
    LivePacket {
        /// The track, an index into the live source's tracks.
        track: usize,
        /// The publisher's packet.
        packet: &'a crate::rtp::RtpPacket,
    },
    /// The live path is not live any more: SR + BYE, and the stream is over.
    LiveEnded,
}

/// Why a multicast stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum MulticastEnd {
    /// Its last play-through ended.
    PlaybackEnded,
    /// Its last member left.
    NoMembers,
    /// The server is shutting down.
    Shutdown,
}

impl fmt::Display for MulticastEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MulticastEnd::PlaybackEnded => "playback ended",
            MulticastEnd::NoMembers => "its last session left",
            MulticastEnd::Shutdown => "server shutting down",
        })
    }
}

/// What the runtime should do for a multicast stream next.
#[derive(Debug)]
pub enum MulticastOutput {
    /// Send `data` as one datagram to `to` (the group and a track's RTP or
    /// RTCP port), from the stream's RTP socket or, when `rtcp`, its RTCP
    /// socket. One the socket cannot take now is dropped.
    SendDatagram {
        /// From the RTCP socket rather than the RTP one.
        rtcp: bool,
        /// The group and port.
        to: SocketAddr,
        /// The datagram.
        data: Bytes,
    },
    /// Log this ([`ServerEvent::MulticastStarted`],
    /// [`ServerEvent::MulticastEnded`], [`ServerEvent::FellBehind`]).
    Event(ServerEvent),
    /// Nothing more until an input arrives or this instant passes.
    Timeout(Instant),
    /// The stream is over: close its sockets; tell its members
    /// ([`ServerInput::MulticastEnded`](super::ServerInput::MulticastEnded)).
    Done,
}

/// The multicast stream of one path: see the [server module docs](super#multicast)
/// and `docs/ARCHITECTURE.md`, "Multicast (server)".
pub struct MulticastStream {
    session: Session,
    group: Ipv4Addr,
    ttl: u8,
    tracks: Vec<Option<MulticastTrack>>,
    play_count: PlayCount,
    members: Vec<u64>,
    created: Instant,
    ntp_at_created: u64,
    rtcp_interval: Duration,
    max_lag: Duration,
    /// The instant of the latest input (the base of the idle deadline).
    last_now: Instant,
    queue: VecDeque<ServerOutput>,
    /// Unused (no interleaved track), for the [`Sink`].
    stream_buf: BytesMut,
    datagram_buf: BytesMut,
    nals: Vec<Bytes>,
    lag: LagReport,
    done: bool,
    span: tracing::Span,
}

impl MulticastStream {
    /// The stream of `path` (played `play_count` times) made from `source`,
    /// on `group`, created at `now`. `seed` and `ntp_at_now` as for
    /// [`Connection::new`](super::Connection::new). Track `k` of the source
    /// goes to port pair `k` of [`ServerConfig::multicast_ports`]; a track
    /// beyond the range's pairs is not sent.
    #[allow(clippy::too_many_arguments)] // each is one fact about the stream
    pub fn new(
        config: &ServerConfig,
        now: Instant,
        path: String,
        play_count: PlayCount,
        source: Arc<MediaSource>,
        group: Ipv4Addr,
        seed: u64,
        ntp_at_now: u64,
    ) -> MulticastStream {
        let mut rng = SplitMix64::new(seed);
        let id = format!("{:016X}", rng.next_u64());
        let span = tracing::debug_span!("rtsp_multicast", %group, path = path.as_str());
        let ntracks = source.tracks.len();
        let mut session = Session::new(id, path, source);
        let max_payload = config.max_payload.clamp(64, 65_000);
        let ttl = config.multicast_ttl;
        let mut tracks = vec![None; ntracks];
        for (k, slot) in tracks.iter_mut().enumerate() {
            let Some(port) = config.multicast_ports.pair(k) else {
                tracing::warn!(track = k, ports = %config.multicast_ports, "no multicast port pair left for this track; it is not sent");
                continue;
            };
            let delivery = Delivery::Udp(UdpDelivery {
                pair: 0,
                server_port: 0,
                rtp: SocketAddr::new(IpAddr::V4(group), port),
                rtcp: SocketAddr::new(IpAddr::V4(group), port + 1),
            });
            let ssrc = session.set_up(k, delivery, String::new(), &mut rng, max_payload, config.initial_rtp);
            *slot = Some(MulticastTrack { group, port, ttl, ssrc });
        }
        MulticastStream {
            session,
            group,
            ttl,
            tracks,
            play_count,
            members: Vec::new(),
            created: now,
            ntp_at_created: ntp_at_now,
            rtcp_interval: config.rtcp_interval.max(Duration::from_millis(100)),
            max_lag: config.max_lag,
            last_now: now,
            queue: VecDeque::new(),
            stream_buf: BytesMut::new(),
            datagram_buf: BytesMut::new(),
            nals: Vec::new(),
            lag: LagReport::default(),
            done: false,
            span,
        }
    }

    /// The same stream, of a live path: its source is a publisher's
    /// announce, its first PLAY passes on the packets the runtime hands in
    /// ([`MulticastInput::LivePacket`]) instead of playing a file, and it
    /// ends at [`MulticastInput::LiveEnded`] (or when its last member leaves).
    pub fn live(mut self) -> MulticastStream {
        self.session.live = true;
        self
    }

    /// Its group.
    pub fn group(&self) -> Ipv4Addr {
        self.group
    }

    /// Its TTL.
    pub fn ttl(&self) -> u8 {
        self.ttl
    }

    /// Where each source track is sent (`None`: not sent, no port pair).
    pub fn tracks(&self) -> &[Option<MulticastTrack>] {
        &self.tracks
    }

    /// Members now.
    pub fn members(&self) -> usize {
        self.members.len()
    }

    /// Whether it started playing (and has not ended).
    pub fn is_playing(&self) -> bool {
        matches!(self.session.state, State::Playing(_) | State::Live(_)) && !self.done
    }

    /// Whether it is over ([`MulticastOutput::Done`] is or was returned): a
    /// new session of its path needs a new stream.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Where a member that plays at `now` joins: where the stream is, or
    /// the start when it is not playing yet. `None` once it is over.
    pub fn position(&self, now: Instant) -> Option<MulticastPosition> {
        if self.done || matches!(self.session.state, State::Ended { .. }) {
            return None;
        }
        let start = self.session.elapsed(now).unwrap_or(Duration::ZERO);
        let mut tracks = vec![None; self.tracks.len()];
        if self.session.live {
            for (source_track, seq, ts) in self.session.live_rtp_info(now) {
                if let Some(slot) = tracks.get_mut(source_track) {
                    *slot = Some((seq, ts));
                }
            }
        } else {
            for t in &self.session.tracks {
                if let Some(slot) = tracks.get_mut(t.source_track) {
                    *slot = Some(t.rtp_info_at(start));
                }
            }
        }
        Some(MulticastPosition {
            start,
            end: if self.session.live {
                None
            } else {
                range_end(&self.session.source, self.play_count)
            },
            play_count: self.play_count,
            tracks,
        })
    }

    /// Tells the stream what happened at `now`; then drain
    /// [`poll_output`](Self::poll_output).
    pub fn handle_input(&mut self, now: Instant, input: MulticastInput<'_>) {
        self.last_now = self.last_now.max(now);
        if self.done {
            return;
        }
        let _g = self.span.clone().entered();
        match input {
            MulticastInput::Join(member) => {
                if !self.members.contains(&member) {
                    self.members.push(member);
                }
            }
            MulticastInput::Play(member) => {
                if !self.members.contains(&member) {
                    self.members.push(member);
                }
                if self.session.is_ready() {
                    tracing::debug!("multicast stream started");
                    if self.session.live {
                        self.session.play_live(now, self.rtcp_interval);
                    } else {
                        self.session.play(now, self.play_count, self.rtcp_interval);
                    }
                    self.queue.push_back(ServerOutput::Event(ServerEvent::MulticastStarted {
                        path: self.session.path.clone(),
                        group: self.group,
                        tracks: self.session.tracks.len(),
                        play_count: self.play_count,
                    }));
                }
            }
            MulticastInput::Leave(member) => {
                self.members.retain(|m| *m != member);
                if self.members.is_empty() {
                    self.finish(now, MulticastEnd::NoMembers);
                }
            }
            MulticastInput::Timeout => self.pump(now),
            MulticastInput::Shutdown => self.finish(now, MulticastEnd::Shutdown),
            MulticastInput::LivePacket { track, packet } => {
                let mut sink = Sink::new(&mut self.stream_buf, &mut self.queue, &mut self.datagram_buf, None);
                self.session.forward(now, track, packet, &mut sink);
            }
            MulticastInput::LiveEnded => {
                let ntp = self.ntp_at(now);
                let mut sink = Sink::new(&mut self.stream_buf, &mut self.queue, &mut self.datagram_buf, None);
                let finished = self.session.end_live(now, ntp, &mut sink, Duration::ZERO);
                let (packets, octets) = finished.map_or((0, 0), |f| (f.packets, f.octets));
                self.ended(MulticastEnd::PlaybackEnded, 0, packets, octets);
            }
        }
    }

    /// The next thing to do. Call until it returns
    /// [`MulticastOutput::Timeout`] or [`MulticastOutput::Done`] after every
    /// [`handle_input`](Self::handle_input). Bounded per call as a
    /// connection's media is (1024 samples, 4 MiB).
    pub fn poll_output(&mut self) -> MulticastOutput {
        while let Some(o) = self.queue.pop_front() {
            match o {
                ServerOutput::SendDatagram { socket, to, data } => {
                    return MulticastOutput::SendDatagram {
                        rtcp: socket.rtcp,
                        to,
                        data,
                    }
                }
                ServerOutput::Event(e) => return MulticastOutput::Event(e),
                _ => {}
            }
        }
        if self.done {
            return MulticastOutput::Done;
        }
        let at = self
            .session
            .next_deadline()
            .unwrap_or_else(|| later(self.last_now, Duration::from_secs(3600)));
        MulticastOutput::Timeout(at)
    }

    fn ntp_at(&self, now: Instant) -> u64 {
        clock::ntp_add(self.ntp_at_created, now.saturating_duration_since(self.created))
    }

    /// Sends what is due, like a connection's session; the end of the last
    /// play-through ends the stream.
    fn pump(&mut self, now: Instant) {
        let ntp = self.ntp_at(now);
        if let Some(lag) = self.session.resync(now, self.max_lag) {
            tracing::debug!(behind = ?lag.behind, skipped = ?lag.skipped, "fell behind; skipped ahead");
            self.lag.add(lag);
        }
        if self.lag.due(now) {
            self.lag.last_event = Some(now);
            let event = self.lag.take(&self.session.id);
            self.queue.extend(event);
        }
        let mut sink = Sink::new(&mut self.stream_buf, &mut self.queue, &mut self.datagram_buf, None);
        let finished = self.session.pump(now, ntp, &mut sink, &mut self.nals, Duration::ZERO);
        if let Some(f) = finished {
            self.ended(MulticastEnd::PlaybackEnded, f.loops, f.packets, f.octets);
        }
    }

    /// Ends the stream now (SR + BYE on every track when it was playing).
    fn finish(&mut self, now: Instant, reason: MulticastEnd) {
        let ntp = self.ntp_at(now);
        let mut sink = Sink::new(&mut self.stream_buf, &mut self.queue, &mut self.datagram_buf, None);
        let finished = self.session.stop(now, ntp, &mut sink, Duration::ZERO);
        let (loops, packets, octets) = finished.map_or((0, 0, 0), |f| (f.loops, f.packets, f.octets));
        self.ended(reason, loops, packets, octets);
    }

    fn ended(&mut self, reason: MulticastEnd, loops: u32, packets: u64, octets: u64) {
        tracing::debug!(%reason, loops, packets, "multicast stream ended");
        let lag = self.lag.take(&self.session.id);
        self.queue.extend(lag);
        self.queue.push_back(ServerOutput::Event(ServerEvent::MulticastEnded {
            path: self.session.path.clone(),
            group: self.group,
            reason,
            loops,
            packets,
            octets,
        }));
        self.done = true;
    }
}

impl fmt::Debug for MulticastStream {
    // Not derived: the shared MediaSource would print every sample.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MulticastStream")
            .field("path", &self.session.path)
            .field("group", &self.group)
            .field("ttl", &self.ttl)
            .field("play_count", &self.play_count)
            .field("members", &self.members.len())
            .field("playing", &self.is_playing())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}
