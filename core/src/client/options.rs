//! What a client session is asked to do: [`ClientOptions`], and the
//! description of a set-up [`Track`].

use std::time::Duration;

use crate::codec::DEFAULT_MAX_FRAME_BYTES;
use crate::message::Limits;
use crate::sdp::MediaKind;

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
pub struct ClientOptions {
    /// Set up the first video track of the SDP.
    pub enable_video: bool,
    /// Set up the first audio track of the SDP.
    pub enable_audio: bool,
    /// How long to wait for the connection, for each response, and for any
    /// data while playing.
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
        }
    }
}

/// How a track's media travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportKind {
    /// RTP/AVP/TCP interleaved on the RTSP connection, on these `$` channels.
    TcpInterleaved { rtp_channel: u8, rtcp_channel: u8 },
}

/// A media track that was set up.
#[derive(Debug, Clone, PartialEq)]
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
