//! What a client session is asked to do: [`ClientOptions`], and the
//! description of a set-up [`Track`].

use std::net::IpAddr;
use std::time::Duration;

use crate::auth::Credentials;
use crate::codec::DEFAULT_MAX_FRAME_BYTES;
use crate::message::{Headers, Limits};
use crate::sdp::MediaKind;
pub use crate::udp::PortRange;

/// Which message kinds the session logs (a bit set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogKinds(u8);

impl LogKinds {
    /// Nothing.
    pub const NONE: LogKinds = LogKinds(0);
    /// RTSP requests and responses (the default).
    pub const RTSP: LogKinds = LogKinds(1);
    /// Every RTP packet (verbose).
    pub const RTP: LogKinds = LogKinds(2);
    /// Every RTCP packet.
    pub const RTCP: LogKinds = LogKinds(4);
    /// Everything.
    pub const ALL: LogKinds = LogKinds(7);

    /// Whether every kind in `other` is selected.
    pub fn contains(self, other: LogKinds) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for LogKinds {
    type Output = LogKinds;
    fn bitor(self, rhs: LogKinds) -> LogKinds {
        LogKinds(self.0 | rhs.0)
    }
}

impl Default for LogKinds {
    fn default() -> Self {
        LogKinds::RTSP
    }
}

/// Session options. `Default` gives the first video and audio tracks over
/// TCP, a 4 s timeout and the default message [`Limits`].
///
/// The struct is `#[non_exhaustive]` so that options can be added without
/// breaking callers: start from [`ClientOptions::default`] and set fields,
/// or chain the `with_*` setters.
///
/// ```
/// use std::time::Duration;
/// use rtsp_toolkit_core::client::{ClientOptions, TrackSelection, Transport};
/// let opts = ClientOptions::default()
///     .with_transport(Transport::Udp)
///     .with_timeout(Duration::from_secs(10))
///     .with_tracks(TrackSelection::All)
///     .with_header("Require", "www.onvif.org/ver20/backchannel");
/// assert_eq!(opts.transport, Transport::Udp);
/// assert_eq!(opts.headers.get("require"), Some("www.onvif.org/ver20/backchannel"));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct ClientOptions {
    /// Set up the first video track of the SDP (with
    /// [`TrackSelection::FirstOfEachKind`], the default).
    pub enable_video: bool,
    /// Set up the first audio track of the SDP (with
    /// [`TrackSelection::FirstOfEachKind`], the default).
    pub enable_audio: bool,
    /// Also set up the first ONVIF metadata track of the SDP (an
    /// `m=application` section with encoding `vnd.onvif.metadata`) with
    /// [`TrackSelection::FirstOfEachKind`]; off by default, so that the
    /// default selection stays the first video and audio. Its documents
    /// come as [`Event::Metadata`](crate::client::Event::Metadata).
    /// [`TrackSelection::All`] and [`TrackSelection::Indexes`] set up
    /// metadata tracks whatever this says.
    pub enable_metadata: bool,
    /// Which media sections of the SDP are set up. The default,
    /// [`TrackSelection::FirstOfEachKind`], takes the first video and the
    /// first audio section (as [`enable_video`](Self::enable_video) and
    /// [`enable_audio`](Self::enable_audio) allow); the others set up any
    /// number of tracks, in SDP order.
    pub tracks: TrackSelection,
    /// User name and password for `401` challenges, in place of the URL's
    /// userinfo (which then is ignored). Keeps passwords out of URLs, shell
    /// history and process lists; never logged or recorded, and never
    /// serialized (with the `serde` feature it is skipped both ways).
    #[cfg_attr(feature = "serde", serde(skip))]
    pub credentials: Option<Credentials>,
    /// Header fields added to every request (`--header`), after the ones
    /// the session writes. The session's own fields (`CSeq`, `Session`,
    /// `Authorization`, `Transport`, `Content-Length`, `User-Agent`: see
    /// [`ClientOptions::user_agent`]) cannot be given here;
    /// [`Client::new`](crate::Client::new) refuses them.
    pub headers: Headers,
    /// How long to wait for the connection, for each response, and for any
    /// data while playing.
    #[cfg_attr(feature = "serde", serde(rename = "timeout_s", with = "crate::duration_secs"))]
    pub timeout: Duration,
    /// Connect to this `host:port` instead of the URL's, keeping the URL in
    /// requests (a relay, tunnel or forwarded port).
    pub forward_address: Option<String>,
    /// Label for this session in logs.
    pub session_id: Option<String>,
    /// Prefix for this session's log lines.
    pub log_prefix: String,
    /// Which message kinds are logged.
    pub log: LogKinds,
    /// `User-Agent` header value.
    pub user_agent: String,
    /// Bounds on received messages.
    pub limits: Limits,
    /// Largest frame assembled; a bigger one is dropped with a warning and
    /// the stream goes on at the next frame.
    pub max_frame_bytes: usize,
    /// Assemble video and audio frames (default). Off, the session gives
    /// RTP/RTCP and loss events only, for tools that need packet flow alone
    /// (such as a load generator).
    pub assemble_frames: bool,
    /// Record everything the session receives, with receive instants, to
    /// this file (see [`crate::capture`]); the runtime does the writing.
    pub capture: Option<std::path::PathBuf>,
    /// How RTP travels: TCP interleaved (the default), UDP, multicast, or
    /// UDP with a fallback to TCP.
    pub transport: Transport,
    /// Local ports for RTP/RTCP over UDP (each track takes an even port and
    /// the odd one above it); `None`: ports the system chooses. The runtime
    /// binds them.
    pub udp_ports: Option<PortRange>,
    /// Most packets a track's reorder buffer holds (UDP and multicast) before
    /// the gap in front of them is declared lost. Default 256: a 1080p key
    /// frame is a few hundred packets at most, and reordering on a network
    /// path spans a handful, so a full buffer means loss, not reordering;
    /// 256 packets of 1500 bytes bound the buffer at under 400 KiB a track.
    pub reorder_packets: usize,
    /// Longest a packet waits in the reorder buffer for the packets before
    /// it (UDP and multicast); then the gap is declared lost. Default 100 ms:
    /// the reorder delay FFmpeg uses, short enough for live viewing, long
    /// enough for reordering on any sane path. Zero releases every packet at
    /// once (no reordering; late packets are dropped).
    #[cfg_attr(feature = "serde", serde(rename = "reorder_window_s", with = "crate::duration_secs"))]
    pub reorder_window: Duration,
    /// With [`Transport::Auto`]: when no RTP arrives on any track for this
    /// long after PLAY is answered, the session is torn down and opened
    /// again over TCP. Default 3 s (gortsplib's choice; FFmpeg's is similar).
    #[cfg_attr(
        feature = "serde",
        serde(rename = "udp_fallback_after_s", with = "crate::duration_secs")
    )]
    pub udp_fallback_after: Duration,
    /// Send RTCP receiver reports (RFC 3550 §6.4.2) on every transport, and
    /// a BYE at TEARDOWN. On by default; off gives a receive-only session
    /// (as retina is).
    pub rtcp_reports: bool,
    /// `rtsps://` only: trust the CA certificates of this PEM file instead of
    /// the system's roots.
    pub ca_file: Option<std::path::PathBuf>,
    /// `rtsps://` only: accept exactly the server certificate whose SHA-256
    /// fingerprint this is (hex, colons allowed: see
    /// [`crate::tls::parse_fingerprint`]), whoever signed it and whatever
    /// names and dates it carries; any other certificate fails the handshake.
    pub tls_fingerprint: Option<String>,
    /// `rtsps://` only: accept any server certificate (self-signed cameras).
    /// The connection is encrypted but not authenticated; a warning is
    /// logged once per session.
    pub insecure: bool,
    /// Go through an RTSP-over-HTTP tunnel ([`Tunnel::Http`]: two HTTP
    /// connections to the URL's port, over TLS for `rtsps://`), for sites
    /// that only let HTTP through. RTP is then interleaved, so
    /// [`ClientOptions::transport`] must be [`Transport::Tcp`].
    pub tunnel: Tunnel,
    /// Where PLAY asks the media to start, as `npt` (`Range: npt=START-`);
    /// `None`: the start. Servers start at a keyframe at or before it; the
    /// `PLAY` event's `Range` header says where.
    #[cfg_attr(feature = "serde", serde(rename = "start_s", with = "crate::duration_secs::option"))]
    pub start: Option<Duration>,
    /// Where PLAY asks the media to end (`Range: npt=START-END`); `None`:
    /// the end of the presentation.
    #[cfg_attr(feature = "serde", serde(rename = "end_s", with = "crate::duration_secs::option"))]
    pub end: Option<Duration>,
    /// `Scale` of the PLAY request (2: twice as fast); `None`: none sent.
    /// Must be finite and not 0.
    pub scale: Option<f64>,
    /// Ask for the ONVIF audio backchannel and send this audio on it
    /// (see [`backchannel`](crate::client::backchannel)): `Require:
    /// www.onvif.org/ver20/backchannel` on DESCRIBE, SETUP and PLAY, the
    /// server's `a=sendonly` audio section set up besides the selected
    /// tracks, and the queued audio sent on it in real time after PLAY.
    /// An AAC section needs an encoder given to the queue
    /// ([`BackchannelAudio::set_aac_encoder`](crate::client::BackchannelAudio::set_aac_encoder)).
    /// Not serialized (the queue is live data).
    #[cfg_attr(feature = "serde", serde(skip))]
    pub backchannel: Option<crate::client::BackchannelAudio>,
}

/// Whether the session's connection goes through an HTTP tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
#[non_exhaustive]
pub enum Tunnel {
    /// RTSP straight on the connection (the default).
    #[default]
    None,
    /// RTSP over HTTP, the QuickTime scheme (see [`crate::client::tunnel`]):
    /// what FFmpeg's `-rtsp_transport http` and GStreamer's `rtsph://` do.
    Http,
}

/// How a session asks for RTP to be sent (RTSP `Transport` header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
#[non_exhaustive]
pub enum Transport {
    /// `RTP/AVP/TCP;interleaved`: on the RTSP connection. Works through any
    /// firewall or NAT; losses are never seen (TCP retransmits).
    #[default]
    Tcp,
    /// `RTP/AVP;unicast;client_port`: datagrams from the server's ports to ours.
    Udp,
    /// `RTP/AVP;multicast`: the group and ports the server chooses.
    #[cfg_attr(feature = "serde", serde(alias = "udp_multicast", alias = "udp-multicast"))]
    Multicast,
    /// UDP first; TCP when the server refuses UDP (461 or 400 to SETUP) or
    /// no RTP arrives within [`ClientOptions::udp_fallback_after`] of PLAY.
    Auto,
}

impl Transport {
    /// The name used on the command line and in JSON (`tcp`, `udp`, `multicast`, `auto`).
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
            Transport::Multicast => "multicast",
            Transport::Auto => "auto",
        }
    }
}

impl std::str::FromStr for Transport {
    type Err = String;

    /// ```
    /// use rtsp_toolkit_core::client::Transport;
    /// assert_eq!("UDP".parse::<Transport>(), Ok(Transport::Udp));
    /// assert!("sctp".parse::<Transport>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<Transport, String> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Transport::Tcp),
            "udp" => Ok(Transport::Udp),
            "multicast" | "udp_multicast" | "udp-multicast" => Ok(Transport::Multicast),
            "auto" => Ok(Transport::Auto),
            _ => Err(format!(
                "unknown transport {s:?} (expected tcp, udp, multicast or auto)"
            )),
        }
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            enable_video: true,
            enable_audio: true,
            enable_metadata: false,
            tracks: TrackSelection::FirstOfEachKind,
            credentials: None,
            headers: Headers::new(),
            timeout: Duration::from_secs(4),
            forward_address: None,
            session_id: None,
            log_prefix: String::new(),
            log: LogKinds::default(),
            user_agent: concat!("rtsp-toolkit/", env!("CARGO_PKG_VERSION")).to_owned(),
            limits: Limits::default(),
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            assemble_frames: true,
            capture: None,
            transport: Transport::Tcp,
            udp_ports: None,
            reorder_packets: 256,
            reorder_window: Duration::from_millis(100),
            udp_fallback_after: Duration::from_secs(3),
            rtcp_reports: true,
            ca_file: None,
            tls_fingerprint: None,
            insecure: false,
            tunnel: Tunnel::None,
            start: None,
            end: None,
            scale: None,
            backchannel: None,
        }
    }
}

/// Chainable setters, one per field (the fields stay public).
impl ClientOptions {
    /// Sets [`ClientOptions::start`] and [`ClientOptions::end`].
    pub fn with_range(mut self, start: Option<Duration>, end: Option<Duration>) -> Self {
        self.start = start;
        self.end = end;
        self
    }
    /// Sets [`ClientOptions::scale`].
    pub fn with_scale(mut self, scale: Option<f64>) -> Self {
        self.scale = scale;
        self
    }
    /// Sets [`ClientOptions::tunnel`].
    pub fn with_tunnel(mut self, tunnel: Tunnel) -> Self {
        self.tunnel = tunnel;
        self
    }
    /// Sets [`ClientOptions::enable_video`].
    pub fn with_video(mut self, on: bool) -> Self {
        self.enable_video = on;
        self
    }
    /// Sets [`ClientOptions::enable_audio`].
    pub fn with_audio(mut self, on: bool) -> Self {
        self.enable_audio = on;
        self
    }
    /// Sets [`ClientOptions::enable_metadata`].
    pub fn with_metadata(mut self, on: bool) -> Self {
        self.enable_metadata = on;
        self
    }
    /// Sets [`ClientOptions::backchannel`].
    pub fn with_backchannel(mut self, audio: crate::client::BackchannelAudio) -> Self {
        self.backchannel = Some(audio);
        self
    }
    /// Sets [`ClientOptions::tracks`].
    pub fn with_tracks(mut self, tracks: TrackSelection) -> Self {
        self.tracks = tracks;
        self
    }
    /// Sets [`ClientOptions::credentials`].
    pub fn with_credentials(mut self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.credentials = Some(Credentials {
            username: username.into(),
            password: password.into(),
        });
        self
    }
    /// Appends a field to [`ClientOptions::headers`].
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push(name, value);
        self
    }
    /// Sets [`ClientOptions::timeout`].
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
    /// Sets [`ClientOptions::forward_address`].
    pub fn with_forward_address(mut self, host_port: impl Into<String>) -> Self {
        self.forward_address = Some(host_port.into());
        self
    }
    /// Sets [`ClientOptions::session_id`].
    pub fn with_session_id(mut self, id: impl Into<String>) -> Self {
        self.session_id = Some(id.into());
        self
    }
    /// Sets [`ClientOptions::log_prefix`].
    pub fn with_log_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.log_prefix = prefix.into();
        self
    }
    /// Sets [`ClientOptions::log`].
    pub fn with_log(mut self, log: LogKinds) -> Self {
        self.log = log;
        self
    }
    /// Sets [`ClientOptions::user_agent`].
    pub fn with_user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }
    /// Sets [`ClientOptions::limits`].
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }
    /// Sets [`ClientOptions::max_frame_bytes`].
    pub fn with_max_frame_bytes(mut self, bytes: usize) -> Self {
        self.max_frame_bytes = bytes;
        self
    }
    /// Sets [`ClientOptions::assemble_frames`].
    pub fn with_assemble_frames(mut self, on: bool) -> Self {
        self.assemble_frames = on;
        self
    }
    /// Sets [`ClientOptions::capture`].
    pub fn with_capture(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.capture = Some(path.into());
        self
    }
    /// Sets [`ClientOptions::transport`].
    pub fn with_transport(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }
    /// Sets [`ClientOptions::udp_ports`].
    pub fn with_udp_ports(mut self, ports: PortRange) -> Self {
        self.udp_ports = Some(ports);
        self
    }
    /// Sets [`ClientOptions::reorder_packets`].
    pub fn with_reorder_packets(mut self, packets: usize) -> Self {
        self.reorder_packets = packets;
        self
    }
    /// Sets [`ClientOptions::reorder_window`].
    pub fn with_reorder_window(mut self, window: Duration) -> Self {
        self.reorder_window = window;
        self
    }
    /// Sets [`ClientOptions::udp_fallback_after`].
    pub fn with_udp_fallback_after(mut self, after: Duration) -> Self {
        self.udp_fallback_after = after;
        self
    }
    /// Sets [`ClientOptions::rtcp_reports`].
    pub fn with_rtcp_reports(mut self, on: bool) -> Self {
        self.rtcp_reports = on;
        self
    }
    /// Sets [`ClientOptions::ca_file`].
    pub fn with_ca_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }
    /// Sets [`ClientOptions::tls_fingerprint`].
    pub fn with_tls_fingerprint(mut self, hex: impl Into<String>) -> Self {
        self.tls_fingerprint = Some(hex.into());
        self
    }
    /// Sets [`ClientOptions::insecure`].
    pub fn with_insecure(mut self, on: bool) -> Self {
        self.insecure = on;
        self
    }
}

/// Header fields the session writes itself; [`ClientOptions::headers`]
/// cannot carry them.
pub(crate) const SESSION_HEADERS: [&str; 6] = [
    "CSeq",
    "Session",
    "Authorization",
    "Transport",
    "Content-Length",
    "User-Agent",
];

/// Which media sections of the SDP a session sets up
/// ([`ClientOptions::tracks`]). Tracks are set up, and numbered in events,
/// in SDP order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum TrackSelection {
    /// The first video and the first audio section, as
    /// [`ClientOptions::enable_video`] and [`ClientOptions::enable_audio`]
    /// allow (the default), and the first ONVIF metadata section when
    /// [`ClientOptions::enable_metadata`] asks for it (off by default).
    #[default]
    FirstOfEachKind,
    /// Every media section (video, audio, application, ...). Sections whose
    /// codec has no depacketizer give RTP statistics and a warning.
    All,
    /// Every video section.
    Video,
    /// Every audio section.
    Audio,
    /// These media sections, by their index in the SDP (0 is the first
    /// `m=` line); duplicates are set up once.
    Indexes(Vec<usize>),
}

impl TrackSelection {
    /// The selection on the command line (`first`, `all`, `video`, `audio`,
    /// or indexes such as `0,2`).
    pub fn to_arg(&self) -> String {
        match self {
            TrackSelection::FirstOfEachKind => "first".to_owned(),
            TrackSelection::All => "all".to_owned(),
            TrackSelection::Video => "video".to_owned(),
            TrackSelection::Audio => "audio".to_owned(),
            TrackSelection::Indexes(v) => v.iter().map(usize::to_string).collect::<Vec<_>>().join(","),
        }
    }
}

impl std::str::FromStr for TrackSelection {
    type Err = String;

    /// `first`, `all`, `video`, `audio`, or media section indexes separated
    /// by commas.
    ///
    /// ```
    /// use rtsp_toolkit_core::client::TrackSelection;
    /// assert_eq!("all".parse(), Ok(TrackSelection::All));
    /// assert_eq!("0, 2".parse(), Ok(TrackSelection::Indexes(vec![0, 2])));
    /// assert!("2,x".parse::<TrackSelection>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<TrackSelection, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "first" | "default" => return Ok(TrackSelection::FirstOfEachKind),
            "all" => return Ok(TrackSelection::All),
            "video" => return Ok(TrackSelection::Video),
            "audio" => return Ok(TrackSelection::Audio),
            _ => {}
        }
        let mut indexes = Vec::new();
        for part in s.split(',') {
            let part = part.trim();
            let i: usize = part.parse().map_err(|_| {
                format!("bad track selection {s:?} (expected all, video, audio, first, or indexes such as 0,2)")
            })?;
            if i > 255 {
                return Err(format!("track index {i} is too large (at most 255)"));
            }
            if !indexes.contains(&i) {
                indexes.push(i);
            }
        }
        Ok(TrackSelection::Indexes(indexes))
    }
}

/// How a track's media travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(tag = "kind", rename_all = "lowercase"))]
#[non_exhaustive]
pub enum TransportKind {
    /// RTP/AVP/TCP interleaved on the RTSP connection, on these `$` channels.
    #[cfg_attr(feature = "serde", serde(rename = "tcp"))]
    TcpInterleaved {
        /// The channel of RTP: the first of the reply's `interleaved=`, else
        /// the one asked for.
        rtp_channel: u8,
        /// The channel of RTCP: the second of the reply's `interleaved=`
        /// (the first plus one when it gives one), else the one asked for.
        rtcp_channel: u8,
    },
    /// RTP/AVP over unicast UDP.
    Udp {
        /// Our RTP and RTCP ports.
        client_ports: (u16, u16),
        /// The server's RTP and RTCP ports (`server_port=`); `None` when the
        /// reply gave none: datagrams are then taken from any port of the
        /// server's address, and no RTCP is sent.
        server_ports: Option<(u16, u16)>,
        /// Where the media comes from: the reply's `source=`, else the RTSP
        /// server's address.
        source: IpAddr,
        /// The SSRC the server announced (`ssrc=`), if any.
        ssrc: Option<u32>,
    },
    /// RTP/AVP over UDP multicast.
    Multicast {
        /// The group joined (`destination=`).
        group: IpAddr,
        /// The group's RTP and RTCP ports (`port=`).
        ports: (u16, u16),
        /// The TTL the server announced.
        ttl: Option<u8>,
        /// Only datagrams from this address are taken (the reply's `source=`,
        /// else the RTSP server's address).
        source: IpAddr,
        /// The SSRC the server announced (`ssrc=`), if any.
        ssrc: Option<u32>,
    },
}

impl TransportKind {
    /// `tcp`, `udp` or `multicast`.
    pub fn name(&self) -> &'static str {
        match self {
            TransportKind::TcpInterleaved { .. } => "tcp",
            TransportKind::Udp { .. } => "udp",
            TransportKind::Multicast { .. } => "multicast",
        }
    }
}

/// A media track that was set up.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Track {
    /// Index among the set-up tracks (the `track` field of media events).
    pub index: usize,
    /// Index of the media section in the SDP.
    pub media_index: usize,
    /// The media type of the section (`m=video`, `m=audio`, ...).
    pub kind: MediaKind,
    /// Encoding name as the SDP gives it (`H264`, `MPEG4-GENERIC`, ...).
    pub codec: String,
    /// The RTP payload type (0–127) the SDP gives the track (the first format of its `m=` line).
    pub payload_type: u8,
    /// RTP clock rate in Hz (from `a=rtpmap` or the RFC 3551 static table); 0 when unknown.
    pub clock_rate: u32,
    /// Channel count from the `a=rtpmap` encoding parameters (or the static
    /// table); `None` when absent.
    pub channels: Option<u16>,
    /// The resolved control URL the track was set up with.
    pub control_url: String,
    /// How the track's media travels, as the SETUP reply set it.
    pub transport: TransportKind,
}
