//! The hand-written `Serialize`/`Deserialize` impls of the `serde` feature:
//! the types whose JSON form is not their Rust shape (the representations
//! are described in the crate docs, "Serialization"). The other types derive
//! theirs beside their definition. Most impls here serialize a borrowed
//! stand-in struct that derives `Serialize`, so that the field names and
//! their order are written down once, as a struct.

use std::borrow::Cow;
use std::fmt;
use std::net::SocketAddr;

use serde::de::{self, Deserializer};
use serde::ser::{SerializeStruct, Serializer};
use serde::{Deserialize, Serialize};

use crate::auth::AuthError;
use crate::client::{
    AudioFrameEvent, ClosedEvent, ConnectEvent, LogKinds, MetadataFrameEvent, MethodEvent, PortRange, RtpEvent, Track,
    VideoFrameEvent, Warning,
};
use crate::codec::{AudioCodec, AudioFrame, DepacketizeError, MetadataFrame, VideoCodec, VideoFrame};
use crate::error::{ConnectionError, Error, ProtocolError};
use crate::message::{FramingError, Headers, Method};
use crate::rtcp::{Bye, ReceiverReport, ReportBlock, RtcpPacket, SdesChunk, SenderReport};
use crate::rtp::RtpPacket;
use crate::sdp::{Media, MediaKind, SdpError};
use crate::server::{CloseReason, GroupRange, PlayCount};

/// `d` in seconds.
fn secs(d: std::time::Duration) -> f64 {
    d.as_secs_f64()
}

/// Serializes a value as its `Display` text.
struct Text<'a, T: fmt::Display + ?Sized>(&'a T);

impl<T: fmt::Display + ?Sized> Serialize for Text<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self.0)
    }
}

use crate::duration_secs::lossy_text;

/// Errors other than [`Error`] serialize as their message.
macro_rules! as_message {
    ($($t:ty),*) => {$(
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    )*};
}

as_message!(ProtocolError, FramingError, AuthError, SdpError, DepacketizeError);

/// `connection`, `timeout`, `protocol`, `response` or `config`.
pub(crate) fn error_kind(e: &Error) -> &'static str {
    match e {
        Error::Connection(_) => "connection",
        Error::Timeout { .. } => "timeout",
        Error::Protocol(_) => "protocol",
        Error::Response { .. } => "response",
        Error::Config(_) => "config",
    }
}

/// The name of an `io::ErrorKind` (its Rust name: `ConnectionRefused`).
fn io_kind_name(kind: std::io::ErrorKind) -> String {
    format!("{kind:?}")
}

impl Serialize for Error {
    /// `{kind, message, ...}`: the kind's own fields after the message.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Error", 5)?;
        st.serialize_field("kind", error_kind(self))?;
        st.serialize_field("message", &Text(self))?;
        match self {
            Error::Connection(c) => st.serialize_field("io_kind", &io_kind_name(c.kind()))?,
            Error::Timeout { waiting_for, timeout } => {
                st.serialize_field("waiting_for", waiting_for)?;
                st.serialize_field("timeout_s", &secs(*timeout))?;
            }
            Error::Response { method, status, reason } => {
                st.serialize_field("method", method)?;
                st.serialize_field("status", status)?;
                st.serialize_field("reason", reason)?;
            }
            Error::Protocol(_) | Error::Config(_) => {}
        }
        st.end()
    }
}

impl Serialize for ConnectionError {
    /// `{io_kind, message}`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("ConnectionError", 2)?;
        st.serialize_field("io_kind", &io_kind_name(self.kind()))?;
        st.serialize_field("message", self.message())?;
        st.end()
    }
}

impl Serialize for Method {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Method {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Method, D::Error> {
        Ok(Method::from_token(&String::deserialize(d)?))
    }
}

impl Serialize for MediaKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match self {
            MediaKind::Video => "video",
            MediaKind::Audio => "audio",
            MediaKind::Application => "application",
            MediaKind::Other(other) => other,
        })
    }
}

impl<'de> Deserialize<'de> for MediaKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<MediaKind, D::Error> {
        let s = String::deserialize(d)?;
        Ok(match s.as_str() {
            "video" => MediaKind::Video,
            "audio" => MediaKind::Audio,
            "application" => MediaKind::Application,
            _ => MediaKind::Other(s),
        })
    }
}

/// A type written as text (`5000-5999`) and read with its parser.
macro_rules! as_text {
    ($($t:ty),*) => {$(
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<$t, D::Error> {
                String::deserialize(d)?.parse().map_err(de::Error::custom)
            }
        }
    )*};
}

as_text!(PortRange, GroupRange);

impl Serialize for PlayCount {
    /// The `play_count=` value: the number of play-throughs, 0 for forever.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(match self {
            PlayCount::Times(n) => n.get(),
            PlayCount::Forever => 0,
        })
    }
}

impl<'de> Deserialize<'de> for PlayCount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<PlayCount, D::Error> {
        Ok(match std::num::NonZeroU32::new(u32::deserialize(d)?) {
            Some(n) => PlayCount::Times(n),
            None => PlayCount::Forever,
        })
    }
}

/// The names of [`LogKinds`]' kinds, in bit order.
const LOG_KINDS: [(&str, LogKinds); 3] = [
    ("rtsp", LogKinds::RTSP),
    ("rtp", LogKinds::RTP),
    ("rtcp", LogKinds::RTCP),
];

impl Serialize for LogKinds {
    /// The selected kinds' names: `["rtsp", "rtcp"]`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(
            LOG_KINDS
                .iter()
                .filter(|(_, k)| self.contains(*k))
                .map(|(name, _)| name),
        )
    }
}

impl<'de> Deserialize<'de> for LogKinds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<LogKinds, D::Error> {
        let mut kinds = LogKinds::NONE;
        for name in Vec::<Cow<'de, str>>::deserialize(d)? {
            match LOG_KINDS.iter().find(|(n, _)| *n == name) {
                Some((_, k)) => kinds = kinds | *k,
                None => {
                    let expected = "one of rtsp, rtp, rtcp";
                    return Err(de::Error::invalid_value(de::Unexpected::Str(&name), &expected));
                }
            }
        }
        Ok(kinds)
    }
}

impl Serialize for ConnectEvent {
    /// `{target, elapsed_s, local, peer, error, tls, tunnel}`: the addresses or the error's message, the rest `null`;
    /// `tls` (`{version, cipher_suite, peer_fingerprint}`) only over TLS, `tunnel` (`{cookie, server}`) only
    /// through an HTTP tunnel.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Repr<'a> {
            target: &'a str,
            elapsed_s: f64,
            local: Option<SocketAddr>,
            peer: Option<SocketAddr>,
            error: Option<Text<'a, Error>>,
            #[serde(skip_serializing_if = "Option::is_none")]
            tls: Option<&'a crate::tls::TlsInfo>,
            #[serde(skip_serializing_if = "Option::is_none")]
            tunnel: Option<&'a crate::client::tunnel::TunnelInfo>,
        }
        let (local, peer, error) = match &self.result {
            Ok((local, peer)) => (Some(*local), Some(*peer), None),
            Err(e) => (None, None, Some(Text(e))),
        };
        Repr {
            target: &self.target,
            elapsed_s: secs(self.elapsed),
            local,
            peer,
            error,
            tls: self.tls.as_ref(),
            tunnel: self.tunnel.as_ref(),
        }
        .serialize(s)
    }
}

impl Serialize for MethodEvent {
    /// `{method, url, cseq, status, reason, elapsed_s, session_elapsed_s,
    /// [media], [track], request_headers, headers, body}`: `media` (the
    /// SDP's media sections) only for a parsed SDP, `track` only for a
    /// SETUP that set one up; `request_headers` as sent (`Authorization`
    /// masked by the session), `headers` the response's; `body` as text.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Repr<'a> {
            method: &'a Method,
            url: &'a str,
            cseq: u32,
            status: u16,
            reason: &'a str,
            elapsed_s: f64,
            session_elapsed_s: f64,
            #[serde(skip_serializing_if = "Option::is_none")]
            media: Option<&'a [Media]>,
            #[serde(skip_serializing_if = "Option::is_none")]
            track: Option<&'a Track>,
            request_headers: &'a Headers,
            headers: &'a Headers,
            #[serde(serialize_with = "lossy_text")]
            body: &'a bytes::Bytes,
        }
        Repr {
            method: &self.method,
            url: &self.url,
            cseq: self.cseq,
            status: self.status,
            reason: &self.reason,
            elapsed_s: secs(self.elapsed),
            session_elapsed_s: secs(self.session_elapsed),
            media: self.sdp.as_ref().map(|sdp| sdp.media.as_slice()),
            track: self.track.as_ref(),
            request_headers: &self.request_headers,
            headers: &self.headers,
            body: &self.body,
        }
        .serialize(s)
    }
}

/// The RTP header fields a receiver uses, and the payload's size.
#[derive(Serialize)]
struct RtpRepr {
    seq: u16,
    timestamp: u32,
    ssrc: u32,
    marker: bool,
    payload_type: u8,
    size: usize,
}

impl RtpRepr {
    fn of(p: &RtpPacket) -> RtpRepr {
        RtpRepr {
            seq: p.sequence_number,
            timestamp: p.timestamp,
            ssrc: p.ssrc,
            marker: p.marker,
            payload_type: p.payload_type,
            size: p.payload.len(),
        }
    }
}

impl Serialize for RtpPacket {
    /// `{seq, timestamp, ssrc, marker, payload_type, size}`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        RtpRepr::of(self).serialize(s)
    }
}

impl Serialize for RtpEvent {
    /// `{track, channel, seq, timestamp, ssrc, marker, payload_type, size, recv_tick_s}`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let p = &self.packet;
        let mut st = s.serialize_struct("RtpEvent", 9)?;
        st.serialize_field("track", &self.track)?;
        st.serialize_field("channel", &self.channel)?;
        st.serialize_field("seq", &p.sequence_number)?;
        st.serialize_field("timestamp", &p.timestamp)?;
        st.serialize_field("ssrc", &p.ssrc)?;
        st.serialize_field("marker", &p.marker)?;
        st.serialize_field("payload_type", &p.payload_type)?;
        st.serialize_field("size", &p.payload.len())?;
        st.serialize_field("recv_tick_s", &secs(self.recv_tick))?;
        st.end()
    }
}

#[derive(Serialize)]
struct SenderReportRepr<'a> {
    ssrc: u32,
    ntp_timestamp: u64,
    rtp_timestamp: u32,
    packet_count: u32,
    octet_count: u32,
    /// How many report blocks.
    reports: usize,
    blocks: &'a [ReportBlock],
}

impl<'a> SenderReportRepr<'a> {
    fn of(sr: &'a SenderReport) -> Self {
        SenderReportRepr {
            ssrc: sr.ssrc,
            ntp_timestamp: sr.ntp_timestamp,
            rtp_timestamp: sr.rtp_timestamp,
            packet_count: sr.packet_count,
            octet_count: sr.octet_count,
            reports: sr.reports.len(),
            blocks: &sr.reports,
        }
    }
}

#[derive(Serialize)]
struct ReceiverReportRepr<'a> {
    ssrc: u32,
    reports: usize,
    blocks: &'a [ReportBlock],
}

impl<'a> ReceiverReportRepr<'a> {
    fn of(rr: &'a ReceiverReport) -> Self {
        ReceiverReportRepr {
            ssrc: rr.ssrc,
            reports: rr.reports.len(),
            blocks: &rr.reports,
        }
    }
}

impl Serialize for SenderReport {
    /// `{ssrc, ntp_timestamp, rtp_timestamp, packet_count, octet_count,
    /// reports, blocks}`: `reports` counts the report blocks, `blocks` lists them.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        SenderReportRepr::of(self).serialize(s)
    }
}

impl Serialize for ReceiverReport {
    /// `{ssrc, reports, blocks}`, as a [`SenderReport`]'s.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ReceiverReportRepr::of(self).serialize(s)
    }
}

impl Serialize for RtcpPacket {
    /// Tagged by `kind`: `sr`, `rr`, `sdes` (`cname`: the first CNAME, and
    /// the `chunks`), `bye`, `other` (`packet_type`, `count`, `size`).
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(tag = "kind", rename_all = "lowercase")]
        enum Repr<'a> {
            Sr(SenderReportRepr<'a>),
            Rr(ReceiverReportRepr<'a>),
            Sdes {
                cname: Option<&'a str>,
                chunks: &'a [SdesChunk],
            },
            Bye(&'a Bye),
            Other {
                packet_type: u8,
                count: u8,
                size: usize,
            },
        }
        match self {
            RtcpPacket::SenderReport(sr) => Repr::Sr(SenderReportRepr::of(sr)),
            RtcpPacket::ReceiverReport(rr) => Repr::Rr(ReceiverReportRepr::of(rr)),
            RtcpPacket::SourceDescription(chunks) => Repr::Sdes {
                cname: chunks.iter().find_map(SdesChunk::cname),
                chunks,
            },
            RtcpPacket::Bye(bye) => Repr::Bye(bye),
            RtcpPacket::Other {
                packet_type,
                count,
                payload,
            } => Repr::Other {
                packet_type: *packet_type,
                count: *count,
                size: payload.len(),
            },
        }
        .serialize(s)
    }
}

#[derive(Serialize)]
struct VideoRepr {
    #[serde(skip_serializing_if = "Option::is_none")]
    track: Option<usize>,
    codec: VideoCodec,
    timestamp: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    extended_timestamp: Option<i64>,
    size: usize,
    keyframe: bool,
    new_parameters: bool,
    loss: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    recv_tick_s: Option<f64>,
}

impl VideoRepr {
    fn of(f: &VideoFrame) -> Self {
        VideoRepr {
            track: None,
            codec: f.codec,
            timestamp: f.timestamp,
            extended_timestamp: None,
            size: f.data.len(),
            keyframe: f.keyframe,
            new_parameters: f.new_parameters,
            loss: f.loss,
            recv_tick_s: None,
        }
    }
}

impl Serialize for VideoFrame {
    /// `{codec, timestamp, size, keyframe, new_parameters, loss}`: the data as its size.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        VideoRepr::of(self).serialize(s)
    }
}

impl Serialize for VideoFrameEvent {
    /// `{track, codec, timestamp, extended_timestamp, size, keyframe,
    /// new_parameters, loss, recv_tick_s}`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        VideoRepr {
            track: Some(self.track),
            extended_timestamp: Some(self.extended_timestamp),
            recv_tick_s: Some(secs(self.recv_tick)),
            ..VideoRepr::of(&self.frame)
        }
        .serialize(s)
    }
}

#[derive(Serialize)]
struct AudioRepr {
    #[serde(skip_serializing_if = "Option::is_none")]
    track: Option<usize>,
    codec: AudioCodec,
    timestamp: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    extended_timestamp: Option<i64>,
    size: usize,
    samples: u32,
    sample_rate: u32,
    channels: u16,
    loss: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    recv_tick_s: Option<f64>,
}

impl AudioRepr {
    fn of(f: &AudioFrame) -> Self {
        AudioRepr {
            track: None,
            codec: f.codec,
            timestamp: f.timestamp,
            extended_timestamp: None,
            size: f.data.len(),
            samples: f.sample_count,
            sample_rate: f.sample_rate,
            channels: f.channels,
            loss: f.loss,
            recv_tick_s: None,
        }
    }
}

impl Serialize for AudioFrame {
    /// `{codec, timestamp, size, samples, sample_rate, channels, loss}`:
    /// `samples` per channel, the data as its size.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        AudioRepr::of(self).serialize(s)
    }
}

impl Serialize for AudioFrameEvent {
    /// `{track, codec, timestamp, extended_timestamp, size, samples,
    /// sample_rate, channels, loss, recv_tick_s}`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        AudioRepr {
            track: Some(self.track),
            extended_timestamp: Some(self.extended_timestamp),
            recv_tick_s: Some(secs(self.recv_tick)),
            ..AudioRepr::of(&self.frame)
        }
        .serialize(s)
    }
}

#[derive(Serialize)]
struct MetadataRepr {
    #[serde(skip_serializing_if = "Option::is_none")]
    track: Option<usize>,
    timestamp: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    extended_timestamp: Option<i64>,
    size: usize,
    loss: u32,
    root: Option<String>,
    topic: Option<String>,
    xml: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    recv_tick_s: Option<f64>,
}

impl MetadataRepr {
    fn of(f: &MetadataFrame) -> Self {
        let summary = crate::codec::onvif_metadata::summary(&f.data);
        MetadataRepr {
            track: None,
            timestamp: f.timestamp,
            extended_timestamp: None,
            size: f.data.len(),
            loss: f.loss,
            root: summary.root,
            topic: summary.topic,
            xml: String::from_utf8_lossy(&f.data).into_owned(),
            recv_tick_s: None,
        }
    }
}

impl Serialize for MetadataFrame {
    /// `{timestamp, size, loss, root, topic, xml}`: the root element and the
    /// first event topic as [`onvif_metadata::summary`](crate::codec::onvif_metadata::summary)
    /// finds them (or `null`), and the document itself as text (invalid
    /// UTF-8 replaced).
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        MetadataRepr::of(self).serialize(s)
    }
}

impl Serialize for MetadataFrameEvent {
    /// `{track, timestamp, extended_timestamp, size, loss, root, topic, xml,
    /// recv_tick_s}`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        MetadataRepr {
            track: Some(self.track),
            extended_timestamp: Some(self.extended_timestamp),
            recv_tick_s: Some(secs(self.recv_tick)),
            ..MetadataRepr::of(&self.frame)
        }
        .serialize(s)
    }
}

impl Serialize for ClosedEvent {
    /// `{session_elapsed_s, error, error_kind}`: the error's message and
    /// kind (`connection`, `timeout`, `protocol`, `response`, `config`), or
    /// two `null`s for a clean end.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Repr<'a> {
            session_elapsed_s: f64,
            error: Option<Text<'a, Error>>,
            error_kind: Option<&'static str>,
        }
        Repr {
            session_elapsed_s: secs(self.session_elapsed),
            error: self.error.as_ref().map(Text),
            error_kind: self.error.as_ref().map(error_kind),
        }
        .serialize(s)
    }
}

impl Serialize for Warning {
    /// `{kind, track, message, ...}`: the kind (`cseq_mismatch`, ...,
    /// [`Warning::kind`]), the track or `null`, the text
    /// ([`Warning`]'s `Display`), then the variant's own fields.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Warning", 6)?;
        st.serialize_field("kind", self.kind())?;
        st.serialize_field("track", &self.track())?;
        st.serialize_field("message", &Text(self))?;
        match self {
            Warning::CseqMismatch { method, expected, got } => {
                st.serialize_field("method", method)?;
                st.serialize_field("expected", expected)?;
                st.serialize_field("got", got)?;
            }
            Warning::UnknownChannel { channel, len } => {
                st.serialize_field("channel", channel)?;
                st.serialize_field("len", len)?;
            }
            Warning::BadPacket { channel, error, .. } => {
                st.serialize_field("channel", channel)?;
                st.serialize_field("error", error)?;
            }
            Warning::KeepaliveFailed {
                method,
                status,
                fallback,
            } => {
                st.serialize_field("method", method)?;
                st.serialize_field("status", status)?;
                st.serialize_field("fallback", fallback)?;
            }
            Warning::ServerRequest { method } => st.serialize_field("method", method)?,
            Warning::TeardownUnanswered => {}
            Warning::Depacketize { error, .. } => st.serialize_field("error", error)?,
            Warning::UnsupportedCodec { codec, .. } => st.serialize_field("codec", codec)?,
            Warning::ForeignDatagram { from, .. } => st.serialize_field("from", from)?,
            Warning::Backchannel { reason, .. } => st.serialize_field("reason", reason)?,
            Warning::ResolutionChange { from, to, .. } => {
                st.serialize_field("from", from)?;
                st.serialize_field("to", to)?;
            }
            Warning::TimestampJump { from, to, jump_ms, .. } => {
                st.serialize_field("from", from)?;
                st.serialize_field("to", to)?;
                st.serialize_field("jump_ms", jump_ms)?;
            }
            Warning::Control { method, status, reason } => {
                st.serialize_field("method", method)?;
                st.serialize_field("status", status)?;
                st.serialize_field("reason", reason)?;
            }
            Warning::BadContentBase { header, value, used } => {
                st.serialize_field("header", header)?;
                st.serialize_field("value", value)?;
                st.serialize_field("used", used)?;
            }
        }
        st.end()
    }
}

impl Serialize for crate::server::auth::Refusal {
    /// `{kind, message}`: `malformed`, `basic_not_allowed`, `unknown_user`,
    /// `wrong_password`, `wrong_realm`, `bad_nonce`, `unsupported` or
    /// `uri_mismatch`, and the reason's text.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use crate::server::auth::Refusal;
        let kind = match self {
            Refusal::Malformed => "malformed",
            Refusal::BasicNotAllowed => "basic_not_allowed",
            Refusal::UnknownUser => "unknown_user",
            Refusal::WrongPassword => "wrong_password",
            Refusal::WrongRealm => "wrong_realm",
            Refusal::BadNonce => "bad_nonce",
            Refusal::Unsupported => "unsupported",
            Refusal::UriMismatch => "uri_mismatch",
        };
        let mut st = s.serialize_struct("Refusal", 2)?;
        st.serialize_field("kind", kind)?;
        st.serialize_field("message", &Text(self))?;
        st.end()
    }
}

impl Serialize for CloseReason {
    /// `{kind, message}`: `teardown`, `peer_closed`, `session_timeout`,
    /// `idle_timeout`, `playback_ended`, `protocol`, `too_many_pipelined`,
    /// `not_reading`, `write_failed`, `shutdown`, `fault` or `slow_reader`, and the reason's text.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let kind = match self {
            CloseReason::Teardown => "teardown",
            CloseReason::PeerClosed => "peer_closed",
            CloseReason::SessionTimeout(_) => "session_timeout",
            CloseReason::IdleTimeout(_) => "idle_timeout",
            CloseReason::PlaybackEnded => "playback_ended",
            CloseReason::Protocol(_) => "protocol",
            CloseReason::TooManyPipelined => "too_many_pipelined",
            CloseReason::NotReading(_) => "not_reading",
            CloseReason::WriteFailed(_) => "write_failed",
            CloseReason::Shutdown => "shutdown",
            CloseReason::Fault => "fault",
            CloseReason::SlowReader => "slow_reader",
        };
        let mut st = s.serialize_struct("CloseReason", 2)?;
        st.serialize_field("kind", kind)?;
        st.serialize_field("message", &Text(self))?;
        st.end()
    }
}

#[cfg(test)]
mod tests;
