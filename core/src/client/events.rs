//! What a client session reports: [`Event`] and the structs it carries,
//! with a one-line `Display` for logs. Plain data; no protocol logic.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;

use super::{Track, Transport};
use crate::codec::{AudioFrame, DepacketizeError, MetadataFrame, VideoFrame};
use crate::error::Error;
use crate::message::{Headers, Method};
use crate::rtcp::RtcpPacket;
use crate::rtp::RtpPacket;
use crate::sdp::Sdp;

/// The result of the runtime's connection attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectEvent {
    /// `host:port` that was dialed.
    pub target: String,
    /// From session start to the connection result.
    pub elapsed: Duration,
    /// Local and peer addresses, or why it failed.
    pub result: Result<(SocketAddr, SocketAddr), Error>,
    /// The TLS connection (`rtsps://`): version, cipher suite, the server
    /// certificate's fingerprint; `None` over plain TCP and on failure.
    pub tls: Option<crate::tls::TlsInfo>,
    /// The HTTP tunnel the session goes through ([`Tunnel::Http`](super::Tunnel::Http));
    /// `None` without one and on failure.
    pub tunnel: Option<super::tunnel::TunnelInfo>,
}

/// One request/response pair. A 401 that is retried with credentials is its
/// own event, followed by the retry's.
#[derive(Debug, Clone, PartialEq)]
pub struct MethodEvent {
    /// The request's method.
    pub method: Method,
    /// Request-URI (never with credentials).
    pub url: String,
    /// The request's `CSeq` (RFC 2326 §12.17).
    pub cseq: u32,
    /// The response's status code (`200`, `401`, ...).
    pub status: u16,
    /// The response's reason phrase, as received.
    pub reason: String,
    /// The request's header fields as sent, in order; the `Authorization`
    /// value is masked to its scheme (`Digest ***`).
    pub request_headers: Headers,
    /// The response's header fields, in received order.
    pub headers: Headers,
    /// The response body (the SDP of a DESCRIBE).
    pub body: Bytes,
    /// The parsed SDP, for a successful DESCRIBE.
    pub sdp: Option<Sdp>,
    /// The track a successful SETUP set up.
    pub track: Option<Track>,
    /// From sending the request to receiving the whole response.
    pub elapsed: Duration,
    /// From session start to receiving the whole response.
    pub session_elapsed: Duration,
}

impl MethodEvent {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// One RTP packet.
#[derive(Debug, Clone, PartialEq)]
pub struct RtpEvent {
    /// Index among the set-up tracks ([`Track::index`]).
    pub track: usize,
    /// The interleaved channel over TCP; over UDP and multicast, the channel
    /// the track would have had (`2 × track`; its RTCP `2 × track + 1`).
    pub channel: u8,
    /// The parsed packet; its payload is shared with the received bytes.
    pub packet: RtpPacket,
    /// From session start to when the bytes that completed it were handed in.
    pub recv_tick: Duration,
}

/// One (compound) RTCP packet: received ([`Event::Rtcp`]) or sent
/// ([`Event::RtcpSent`]).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct RtcpEvent {
    /// Index among the set-up tracks ([`Track::index`]).
    pub track: usize,
    /// As in [`RtpEvent::channel`].
    pub channel: u8,
    /// The packets of the compound packet, in order.
    pub packets: Vec<RtcpPacket>,
    /// From session start to when it was received (or handed out to send).
    #[cfg_attr(feature = "serde", serde(rename = "recv_tick_s", with = "crate::duration_secs"))]
    pub recv_tick: Duration,
}

/// The session gave up a transport for another: the server refused UDP at
/// SETUP (the same connection goes on over TCP), or no RTP arrived over UDP
/// after PLAY (TEARDOWN, then a fresh session on a new connection over TCP).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct FallbackEvent {
    /// The transport given up ([`Transport::Udp`]).
    pub from: Transport,
    /// The transport the session goes on with ([`Transport::Tcp`]).
    pub to: Transport,
    /// Why, for the user.
    pub reason: String,
    /// From session start to the fallback.
    #[cfg_attr(
        feature = "serde",
        serde(rename = "session_elapsed_s", with = "crate::duration_secs")
    )]
    pub session_elapsed: Duration,
}

/// What a track received so far ([`Client::track_stats`](super::Client::track_stats)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TrackStats {
    /// Index among the set-up tracks ([`Track::index`]).
    pub track: usize,
    /// RTP packets delivered (each sequence number once).
    pub received: u64,
    /// Packets counted lost (the sum of the track's `Loss` events).
    pub lost: u64,
    /// Copies of packets already received, dropped (over UDP by the
    /// reorder buffer; over TCP, a copy of the packet before).
    pub duplicates: u64,
    /// Packets that came after their gap was given up, or far out of
    /// sequence (over UDP), or behind the last one (over TCP), dropped.
    pub late: u64,
    /// Interarrival jitter (RFC 3550 §6.4.1), in RTP timestamp units.
    pub jitter: u32,
    /// The track's RTP clock rate, to turn `jitter` into time.
    pub clock_rate: u32,
}

impl TrackStats {
    /// The jitter as a duration.
    pub fn jitter_duration(&self) -> Duration {
        if self.clock_rate == 0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(f64::from(self.jitter) / f64::from(self.clock_rate))
    }
}

/// One assembled video frame (an access unit, Annex B).
#[derive(Debug, Clone, PartialEq)]
pub struct VideoFrameEvent {
    /// Index among the set-up tracks ([`Track::index`]).
    pub track: usize,
    /// The frame.
    pub frame: VideoFrame,
    /// The RTP timestamp unrolled across 32-bit wraps (first frame: its own value).
    pub extended_timestamp: i64,
    /// From session start to when the packet that completed the frame was handed in.
    pub recv_tick: Duration,
}

/// One assembled audio frame.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioFrameEvent {
    /// Index among the set-up tracks ([`Track::index`]).
    pub track: usize,
    /// The frame.
    pub frame: AudioFrame,
    /// The RTP timestamp unrolled across 32-bit wraps (first frame: its own value).
    pub extended_timestamp: i64,
    /// From session start to when the packet that completed the frame was handed in.
    pub recv_tick: Duration,
}

/// One ONVIF metadata document assembled (a `vnd.onvif.metadata` track).
#[derive(Debug, Clone, PartialEq)]
pub struct MetadataFrameEvent {
    /// Index among the set-up tracks ([`Track::index`]).
    pub track: usize,
    /// The document.
    pub frame: MetadataFrame,
    /// The RTP timestamp unrolled across 32-bit wraps (first document: its own value).
    pub extended_timestamp: i64,
    /// From session start to when the packet that completed the document was handed in.
    pub recv_tick: Duration,
}

/// RTP packets missing from a track's sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct LossEvent {
    /// Index among the set-up tracks ([`Track::index`]).
    pub track: usize,
    /// Packets missing right before `sequence_number`.
    pub lost: u32,
    /// The first packet received after the gap.
    pub sequence_number: u16,
    /// All packets counted as lost on this track so far.
    pub total_lost: u64,
    /// From session start to when the packet after the gap was handed in.
    #[cfg_attr(feature = "serde", serde(rename = "recv_tick_s", with = "crate::duration_secs"))]
    pub recv_tick: Duration,
}

/// The session ended.
#[derive(Debug, Clone, PartialEq)]
pub struct ClosedEvent {
    /// From session start to the end.
    pub session_elapsed: Duration,
    /// `None` for a clean end (stopped by the user, or the server ended the stream with BYE).
    pub error: Option<Error>,
}

/// Something odd that did not end the session.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Warning {
    /// A response's CSeq did not match the request it answered (tolerated, as FFmpeg does).
    CseqMismatch {
        /// The method of the oldest outstanding request, which the response is taken to answer.
        method: Method,
        /// That request's `CSeq`.
        expected: u32,
        /// The response's `CSeq`; `None` when it has none or it is not a number.
        got: Option<u32>,
    },
    /// Interleaved data on a channel no track was set up on (ignored).
    UnknownChannel {
        /// The interleaved channel (the byte after `$`).
        channel: u8,
        /// Payload length in bytes.
        len: usize,
    },
    /// An RTP or RTCP packet that could not be parsed (ignored).
    BadPacket {
        /// Index among the set-up tracks ([`Track::index`]).
        track: usize,
        /// As in [`RtpEvent::channel`].
        channel: u8,
        /// Why it could not be parsed.
        error: String,
    },
    /// A keepalive was refused; the session goes on.
    KeepaliveFailed {
        /// The keepalive request's method (`GET_PARAMETER` or `OPTIONS`).
        method: Method,
        /// The response's status code (not 2xx).
        status: u16,
        /// The method used for keepalives from then on (`OPTIONS` after a
        /// refused `GET_PARAMETER`); `None` when it does not change.
        fallback: Option<Method>,
    },
    /// The server sent a request; it was answered 501.
    ServerRequest {
        /// The request's method.
        method: Method,
    },
    /// TEARDOWN got no answer within the timeout.
    TeardownUnanswered,
    /// A packet could not be depacketized; the track resynchronizes at the next frame.
    Depacketize {
        /// Index among the set-up tracks ([`Track::index`]).
        track: usize,
        /// What was wrong.
        error: DepacketizeError,
    },
    /// No depacketizer for this track's codec: RTP events only, no frames.
    UnsupportedCodec {
        /// Index among the set-up tracks ([`Track::index`]).
        track: usize,
        /// The encoding name as the SDP gives it ([`Track::codec`]).
        codec: String,
    },
    /// The ONVIF backchannel cannot send (see [`ClientOptions::backchannel`](super::ClientOptions::backchannel)).
    Backchannel {
        /// Index among the set-up tracks ([`Track::index`]) of the
        /// backchannel track; `None` when there is none.
        track: Option<usize>,
        /// Why, in words.
        reason: String,
    },
    /// A datagram on a track's UDP socket from an address that is not the
    /// server's: dropped (reported for the first datagram of each address,
    /// counted in [`Client::foreign_datagrams`](super::Client::foreign_datagrams)).
    ForeignDatagram {
        /// Index among the set-up tracks ([`Track::index`]) whose socket received it.
        track: usize,
        /// The sender's address.
        from: SocketAddr,
    },
    /// A video track's pictures changed size mid-stream: a keyframe came
    /// with a sequence parameter set (SPS) of another width or height than
    /// the one before (a camera whose resolution was changed while it
    /// streams; the SDP may still give the old one). The frames go on; a
    /// recorder or decoder must start anew at this keyframe.
    ResolutionChange {
        /// Index among the set-up tracks ([`Track::index`]).
        track: usize,
        /// Width and height until now.
        from: (u32, u32),
        /// Width and height from this keyframe on.
        to: (u32, u32),
    },
    /// A track's RTP timestamp jumped, forward or back, by more than a
    /// second beyond the time between the two packets' arrivals (same
    /// SSRC, no seek between): an encoder or DVR whose timeline moved. The
    /// frames go on with the new timeline (their timestamps say where);
    /// a recorder or player that follows the timestamps must take the jump.
    TimestampJump {
        /// Index among the set-up tracks ([`Track::index`]).
        track: usize,
        /// The RTP timestamp of the packet before.
        from: u32,
        /// The RTP timestamp of this packet.
        to: u32,
        /// How far, in milliseconds of the track's clock (negative: back).
        jump_ms: i64,
    },
    /// A PAUSE or PLAY the user asked for ([`Input::Pause`](super::Input::Pause),
    /// [`Input::Play`](super::Input::Play)) was not sent, or the server
    /// refused it; the session goes on as it was.
    Control {
        /// `PAUSE` or `PLAY`.
        method: Method,
        /// The server's status when it refused; `None` when the request was
        /// not sent (not playing or paused, another one unanswered, a range
        /// that cannot be).
        status: Option<u16>,
        /// Why, in words.
        reason: String,
    },
    /// DESCRIBE's `Content-Base` (or `Content-Location`) is not an absolute
    /// `rtsp://` or `rtsps://` URL with a host: ignored, and the controls
    /// are resolved against the next base (RFC 2326 §C.1.1:
    /// `Content-Location`, then the request URL). SV3C cameras answer
    /// their own `192.168.1.10:554/stream0/`, without a scheme.
    BadContentBase {
        /// `Content-Base` or `Content-Location`.
        header: &'static str,
        /// Its value, as the server sent it.
        value: String,
        /// The base URL used instead.
        used: String,
    },
}

impl Warning {
    /// A name for the kind of warning, for tools to filter on:
    /// `cseq_mismatch`, `unknown_channel`, `bad_packet`, `keepalive_failed`,
    /// `server_request`, `teardown_unanswered`, `depacketize`,
    /// `unsupported_codec`, `foreign_datagram`, `backchannel`,
    /// `resolution_change`, `timestamp_jump`, `control` or
    /// `bad_content_base`.
    pub fn kind(&self) -> &'static str {
        match self {
            Warning::CseqMismatch { .. } => "cseq_mismatch",
            Warning::UnknownChannel { .. } => "unknown_channel",
            Warning::BadPacket { .. } => "bad_packet",
            Warning::KeepaliveFailed { .. } => "keepalive_failed",
            Warning::ServerRequest { .. } => "server_request",
            Warning::TeardownUnanswered => "teardown_unanswered",
            Warning::Depacketize { .. } => "depacketize",
            Warning::UnsupportedCodec { .. } => "unsupported_codec",
            Warning::ForeignDatagram { .. } => "foreign_datagram",
            Warning::Backchannel { .. } => "backchannel",
            Warning::ResolutionChange { .. } => "resolution_change",
            Warning::TimestampJump { .. } => "timestamp_jump",
            Warning::Control { .. } => "control",
            Warning::BadContentBase { .. } => "bad_content_base",
        }
    }

    /// The track it is about, if it is about one.
    pub fn track(&self) -> Option<usize> {
        match self {
            Warning::BadPacket { track, .. }
            | Warning::Depacketize { track, .. }
            | Warning::UnsupportedCodec { track, .. }
            | Warning::ForeignDatagram { track, .. }
            | Warning::ResolutionChange { track, .. }
            | Warning::TimestampJump { track, .. } => Some(*track),
            Warning::Backchannel { track, .. } => *track,
            _ => None,
        }
    }
}

/// What happened, in words (without the track, which [`Warning::track`] gives).
///
/// ```
/// use rtsp_toolkit_core::client::Warning;
/// let w = Warning::UnsupportedCodec { track: 1, codec: "VP8".into() };
/// assert_eq!(w.to_string(), "unsupported codec VP8: no frames, RTP statistics only");
/// ```
impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Warning::CseqMismatch { method, expected, got } => {
                write!(f, "{method} response has CSeq {got:?}, expected {expected}")
            }
            Warning::UnknownChannel { channel, len } => {
                write!(f, "{len} bytes on interleaved channel {channel}, which no track uses")
            }
            Warning::BadPacket { channel, error, .. } => write!(f, "unusable packet on channel {channel}: {error}"),
            Warning::KeepaliveFailed {
                method,
                status,
                fallback: Some(fallback),
            } => write!(f, "keepalive {method} answered {status}; using {fallback} instead"),
            Warning::KeepaliveFailed { method, status, .. } => write!(f, "keepalive {method} answered {status}"),
            Warning::ServerRequest { method } => write!(f, "the server sent a {method} request (answered 501)"),
            Warning::TeardownUnanswered => f.write_str("TEARDOWN got no answer"),
            Warning::Depacketize { error, .. } => write!(f, "{error}"),
            Warning::UnsupportedCodec { codec, .. } => {
                write!(f, "unsupported codec {codec}: no frames, RTP statistics only")
            }
            Warning::Backchannel { reason, .. } => write!(f, "backchannel: {reason}"),
            Warning::ForeignDatagram { from, .. } => write!(
                f,
                "datagram from {from}, which is not the server: dropped (more from there are only counted)"
            ),
            Warning::Control {
                method,
                status: Some(status),
                reason,
            } => write!(
                f,
                "{method} refused by the server: {status} {reason}; the session goes on"
            ),
            Warning::Control { method, reason, .. } => write!(f, "{method} not sent: {reason}"),
            Warning::ResolutionChange { from, to, .. } => write!(
                f,
                "the picture size changed from {}x{} to {}x{} (a new SPS at a keyframe)",
                from.0, from.1, to.0, to.1
            ),
            Warning::TimestampJump { from, to, jump_ms, .. } => write!(
                f,
                "RTP timestamp jumped {:+.3} s (from {from} to {to}); the frames go on with the new timeline",
                *jump_ms as f64 / 1000.0
            ),
            Warning::BadContentBase { header, value, used } => write!(
                f,
                "{header} {value:?} is not an absolute rtsp:// URL: ignored; controls resolved against {used}"
            ),
        }
    }
}

/// What the session reports, in order.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(tag = "type", rename_all = "snake_case"))]
#[non_exhaustive]
pub enum Event {
    /// The result of the runtime's connection attempt.
    Connect(ConnectEvent),
    /// One request and its response. Boxed: it is large and rare, and every
    /// RTP event would pay its size.
    #[cfg_attr(feature = "serde", serde(rename = "rtsp"))]
    Method(Box<MethodEvent>),
    /// An RTP packet received (on UDP and multicast, once the track's reorder buffer releases it).
    Rtp(RtpEvent),
    /// An RTCP packet received.
    Rtcp(RtcpEvent),
    /// An RTCP packet the client sent (receiver report, BYE).
    RtcpSent(RtcpEvent),
    /// The session changed transport (see [`FallbackEvent`]).
    Fallback(FallbackEvent),
    /// A video frame assembled.
    Video(VideoFrameEvent),
    /// An audio frame assembled.
    Audio(AudioFrameEvent),
    /// An ONVIF metadata document assembled.
    Metadata(MetadataFrameEvent),
    /// Packets missing from a track's sequence, reported right before the
    /// RTP event of the packet after the gap.
    Loss(LossEvent),
    /// Something odd that did not end the session.
    Warning(Warning),
    /// The session ended.
    Closed(ClosedEvent),
}

/// One line per event, for logs and examples: the kind, then its fields.
///
/// ```
/// use std::time::Duration;
/// use rtsp_toolkit_core::client::{ClosedEvent, Event};
/// let e = Event::Closed(ClosedEvent { session_elapsed: Duration::from_millis(1500), error: None });
/// assert_eq!(e.to_string(), "closed   after 1.5s");
/// ```
impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Event::Connect(c) => match &c.result {
                Ok((local, peer)) => write!(f, "connect  {local} -> {peer} in {:?}", c.elapsed),
                Err(e) => write!(f, "connect  {} failed in {:?}: {e}", c.target, c.elapsed),
            },
            Event::Method(m) => write!(
                f,
                "rtsp     {} {} -> {} {} elapsed={:?} session_elapsed={:?}",
                m.method, m.url, m.status, m.reason, m.elapsed, m.session_elapsed
            ),
            Event::Rtp(r) => write!(
                f,
                "rtp      track={} seq={} ts={} marker={} pt={} len={} recv_tick={:?}",
                r.track,
                r.packet.sequence_number,
                r.packet.timestamp,
                r.packet.marker,
                r.packet.payload_type,
                r.packet.payload.len(),
                r.recv_tick
            ),
            Event::Rtcp(r) | Event::RtcpSent(r) => {
                let dir = if matches!(self, Event::RtcpSent(_)) {
                    "rtcp-out"
                } else {
                    "rtcp    "
                };
                write!(f, "{dir} track={}", r.track)?;
                for p in &r.packets {
                    match p {
                        RtcpPacket::SenderReport(sr) => write!(
                            f,
                            " SR(ssrc={:08x} rtp={} packets={} octets={})",
                            sr.ssrc, sr.rtp_timestamp, sr.packet_count, sr.octet_count
                        )?,
                        RtcpPacket::ReceiverReport(rr) => {
                            write!(f, " RR(ssrc={:08x}", rr.ssrc)?;
                            for b in &rr.reports {
                                write!(
                                    f,
                                    " lost={}/{} jitter={} seq={}",
                                    b.fraction_lost, b.cumulative_lost, b.jitter, b.highest_sequence
                                )?;
                            }
                            write!(f, ")")?
                        }
                        RtcpPacket::SourceDescription(_) => write!(f, " SDES")?,
                        RtcpPacket::Bye(_) => write!(f, " BYE")?,
                        RtcpPacket::Other { packet_type, .. } => write!(f, " PT{packet_type}")?,
                    }
                }
                write!(f, " recv_tick={:?}", r.recv_tick)
            }
            Event::Video(v) => write!(
                f,
                "video    track={} {:?} ts={} size={} keyframe={} new_parameters={} loss={} recv_tick={:?}",
                v.track,
                v.frame.codec,
                v.frame.timestamp,
                v.frame.data.len(),
                v.frame.keyframe,
                v.frame.new_parameters,
                v.frame.loss,
                v.recv_tick
            ),
            Event::Audio(a) => write!(
                f,
                "audio    track={} {:?} ts={} size={} samples={} rate={} channels={} loss={} recv_tick={:?}",
                a.track,
                a.frame.codec,
                a.frame.timestamp,
                a.frame.data.len(),
                a.frame.sample_count,
                a.frame.sample_rate,
                a.frame.channels,
                a.frame.loss,
                a.recv_tick
            ),
            Event::Metadata(m) => write!(
                f,
                "metadata track={} ts={} size={} loss={} recv_tick={:?}",
                m.track,
                m.frame.timestamp,
                m.frame.data.len(),
                m.frame.loss,
                m.recv_tick
            ),
            Event::Loss(l) => write!(
                f,
                "loss     track={} lost={} before seq={} total={}",
                l.track, l.lost, l.sequence_number, l.total_lost
            ),
            Event::Fallback(e) => write!(f, "fallback {} -> {}: {}", e.from, e.to, e.reason),
            Event::Warning(w) => write!(f, "warning  {w:?}"),
            Event::Closed(c) => match &c.error {
                None => write!(f, "closed   after {:?}", c.session_elapsed),
                Some(e) => write!(f, "closed   after {:?}: {e}", c.session_elapsed),
            },
        }
    }
}
