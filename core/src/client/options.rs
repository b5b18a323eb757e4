//! What a client session is asked to do: [`ClientOptions`], and the
//! description of a set-up [`Track`].

use std::net::IpAddr;
use std::time::Duration;

use crate::codec::DEFAULT_MAX_FRAME_BYTES;
use crate::message::Limits;
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

/// Session options. `Default` gives video and audio on, a 4 s timeout
/// and the default message [`Limits`].
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct ClientOptions {
    /// Set up the first video track of the SDP.
    pub enable_video: bool,
    /// Set up the first audio track of the SDP.
    pub enable_audio: bool,
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
        }
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
    TcpInterleaved { rtp_channel: u8, rtcp_channel: u8 },
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
    pub kind: MediaKind,
    /// Encoding name as the SDP gives it (`H264`, `MPEG4-GENERIC`, ...).
    pub codec: String,
    pub payload_type: u8,
    pub clock_rate: u32,
    pub channels: Option<u16>,
    /// The resolved control URL the track was set up with.
    pub control_url: String,
    pub transport: TransportKind,
}
