//! Session Description Protocol (RFC 4566) parsing for RTSP clients.
//!
//! This module reads the SDP body of an RTSP `DESCRIBE` response and extracts
//! what a client needs to `SETUP` streams and configure depacketizers: the
//! media sections (`m=`), their first RTP payload type, the codec from
//! `a=rtpmap` (or the RFC 3551 static table), `a=control`, `a=fmtp`
//! parameters, and typed codec parameters for H.264 (RFC 6184), H.265
//! (RFC 7798), MPEG4-GENERIC AAC (RFC 3640) and MP4A-LATM (RFC 3016/6416).
//!
//! It is **not** a complete RFC 4566 implementation: timing (`t=`, `r=`,
//! `z=`), connection (`c=`), bandwidth (`b=`) and key (`k=`) lines are
//! ignored, and it does not produce SDP (no writer; a later change may add
//! one). Only the first format of each `m=` line is described, because an
//! RTSP server sends one payload type per media in practice. Nor does it
//! read MPEG-4 audio configuration bits itself: [`AudioConfig`],
//! [`parse_audio_specific_config`] and
//! [`audio_specific_config_from_stream_mux_config`] are the crate's one
//! AudioSpecificConfig / StreamMuxConfig parser (shared with the AAC
//! depacketizers), which this module wraps in [`SdpError`]s.
//!
//! # Tolerance
//!
//! Cameras write sloppy SDP, so the parser is lenient where the meaning is
//! still clear and strict where guessing would produce a broken stream:
//!
//! - `\r\n`, bare `\n` and bare `\r` line endings are accepted; blank lines
//!   and leading/trailing spaces and tabs on a line are ignored; a leading
//!   UTF-8 byte order mark is skipped; `v=` is not required.
//! - The first non-blank line must look like `<letter>=<value>`, otherwise
//!   the body is not SDP and [`SdpError::BadLine`] is returned. Later lines
//!   that do not look like that are skipped (logged with `tracing::debug!`).
//! - Unknown line types and attributes are ignored (attributes are kept in
//!   [`Sdp::attributes`] / [`Media::attributes`]).
//! - An `m=` line that cannot be parsed is an error ([`SdpError::BadMediaLine`]),
//!   and so is a malformed `a=rtpmap` for the media's payload type
//!   ([`SdpError::BadRtpmap`]). `a=rtpmap` / `a=fmtp` lines for other payload
//!   types are ignored whatever their content.
//! - Attribute names are matched case-insensitively.
//! - In the codec accessors ([`Media::h264`] ...), parameters that change how
//!   the stream is depacketized or decoded (packetization-mode, parameter
//!   sets, AAC lengths, `config`, `cpresent`) must be valid; purely
//!   informative ones (`profile-level-id`, `object`) become `None` when they
//!   cannot be parsed. Base64 is accepted with or without padding.
//!
//! # Limits
//!
//! Input is bounded by [`MAX_SDP_LEN`] bytes, [`MAX_LINES`] non-blank lines
//! and [`MAX_MEDIA`] media sections, so memory use is proportional to the
//! (bounded) input. Nothing in this module panics on any input.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use bytes::{BufMut, Bytes, BytesMut};

pub use crate::mpeg4_audio::AudioConfig;
use crate::mpeg4_audio::StreamMuxConfig;

/// Largest SDP body accepted by [`Sdp::parse`], in bytes (64 KiB).
pub const MAX_SDP_LEN: usize = 64 * 1024;
/// Largest number of non-blank lines accepted by [`Sdp::parse`].
pub const MAX_LINES: usize = 1024;
/// Largest number of media sections (`m=` lines) accepted by [`Sdp::parse`].
pub const MAX_MEDIA: usize = 64;

/// Standard base64 alphabet, padding optional, trailing bits tolerated.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Errors from SDP parsing and from the codec parameter accessors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// The input is larger than [`MAX_SDP_LEN`].
    #[error("SDP is too large: {len} bytes, at most {max} accepted")]
    TooLarge {
        /// Length of the input in bytes.
        len: usize,
        /// The limit ([`MAX_SDP_LEN`]).
        max: usize,
    },
    /// The input has more than [`MAX_LINES`] non-blank lines.
    #[error("SDP has more than {max} lines")]
    TooManyLines {
        /// The limit ([`MAX_LINES`]).
        max: usize,
    },
    /// The input has more than [`MAX_MEDIA`] media sections.
    #[error("SDP has more than {max} media sections")]
    TooManyMedia {
        /// The limit ([`MAX_MEDIA`]).
        max: usize,
    },
    /// The input is not valid UTF-8.
    #[error("SDP is not valid UTF-8 (invalid byte at offset {offset})")]
    NotUtf8 {
        /// Byte offset of the first invalid sequence.
        offset: usize,
    },
    /// The input has no non-blank line.
    #[error("SDP is empty")]
    Empty,
    /// The first non-blank line is not `<letter>=<value>`: the body is not SDP.
    #[error("line {line}: not an SDP `<type>=<value>` line")]
    BadLine {
        /// 1-based line number.
        line: usize,
    },
    /// An `m=` line could not be parsed.
    #[error("line {line}: bad m= line: {reason}")]
    BadMediaLine {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// The `a=rtpmap` line for a media's payload type could not be parsed.
    #[error("line {line}: bad a=rtpmap: {reason}")]
    BadRtpmap {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A base64 fmtp parameter could not be decoded.
    #[error("fmtp parameter `{param}` is not valid base64")]
    BadBase64 {
        /// Parameter name.
        param: String,
    },
    /// A hexadecimal fmtp parameter could not be decoded.
    #[error("fmtp parameter `{param}` is not valid hex")]
    BadHex {
        /// Parameter name.
        param: String,
    },
    /// A required fmtp parameter is missing.
    #[error("{codec}: missing required fmtp parameter `{param}`")]
    MissingParam {
        /// Codec (encoding name) whose parameter is missing.
        codec: String,
        /// Parameter name.
        param: String,
    },
    /// An fmtp parameter has a value out of range or of the wrong form.
    #[error("fmtp parameter `{param}`: {reason}")]
    BadParam {
        /// Parameter name.
        param: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// An MP4A-LATM StreamMuxConfig could not be parsed or is unsupported.
    #[error("bad StreamMuxConfig: {0}")]
    BadStreamMuxConfig(&'static str),
    /// An MPEG-4 AudioSpecificConfig could not be parsed or is unsupported.
    #[error("bad AudioSpecificConfig: {0}")]
    BadAudioSpecificConfig(&'static str),
}

/// A parsed session description.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Sdp {
    /// The `o=` line value, as written.
    pub origin: Option<String>,
    /// The `s=` line value, as written.
    pub session_name: Option<String>,
    /// Session-level `a=` lines (those before the first `m=`), in order.
    pub attributes: Vec<Attribute>,
    /// Media sections, in order.
    pub media: Vec<Media>,
}

/// One `a=<name>[:<value>]` line.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Attribute {
    /// Attribute name (text before the first `:`), trimmed.
    pub name: String,
    /// Text after the first `:` with surrounding spaces trimmed; `None` for a
    /// flag attribute such as `a=recvonly`.
    pub value: Option<String>,
}

/// Media type from the first field of an `m=` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaKind {
    /// `video`
    Video,
    /// `audio`
    Audio,
    /// `application` (e.g. ONVIF metadata)
    Application,
    /// Any other media type, as written.
    Other(String),
}

/// One media section (`m=` line and the lines that follow it).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Media {
    /// Media type.
    pub kind: MediaKind,
    /// Port from the `m=` line (usually 0 in RTSP).
    pub port: u16,
    /// Transport protocol from the `m=` line, e.g. `RTP/AVP`.
    pub protocol: String,
    /// The first format of the `m=` line (the RTP payload type described here).
    pub payload_type: u8,
    /// Encoding name from `a=rtpmap` exactly as written (`H264`,
    /// `MPEG4-GENERIC`, ...), or from the RFC 3551 static table when there is
    /// no rtpmap; empty when unknown.
    pub codec: String,
    /// RTP clock rate in Hz; 0 when unknown.
    pub clock_rate: u32,
    /// Channel count from the rtpmap encoding parameters (or the static
    /// table); `None` when absent.
    pub channels: Option<u16>,
    /// The first media-level `a=control` value, trimmed, not resolved
    /// against any base URL.
    pub control: Option<String>,
    /// `a=fmtp` parameters for [`Media::payload_type`], keys as written,
    /// keys and values trimmed, in order.
    pub fmtp: Vec<(String, String)>,
    /// All media-level `a=` lines, in order.
    pub attributes: Vec<Attribute>,
    /// `a=framerate` value, when present and a positive finite number.
    pub framerate: Option<f64>,
}

/// H.264 parameters from `a=fmtp` (RFC 6184).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct H264Params {
    /// `packetization-mode` (0, 1 or 2); 0 when absent.
    pub packetization_mode: u8,
    /// `profile-level-id` (3 bytes); `None` when absent or malformed.
    pub profile_level_id: Option<[u8; 3]>,
    /// SPS NAL units (nal_unit_type 7) from `sprop-parameter-sets`.
    pub sps: Vec<Bytes>,
    /// PPS NAL units (nal_unit_type 8) from `sprop-parameter-sets`.
    pub pps: Vec<Bytes>,
}

/// H.265 parameters from `a=fmtp` (RFC 7798).
///
/// NAL units from `sprop-vps`, `sprop-sps` and `sprop-pps` are classified by
/// their NAL unit type (32 VPS, 33 SPS, 34 PPS); others are ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct H265Params {
    /// VPS NAL units.
    pub vps: Vec<Bytes>,
    /// SPS NAL units.
    pub sps: Vec<Bytes>,
    /// PPS NAL units.
    pub pps: Vec<Bytes>,
    /// `sprop-max-don-diff`; 0 when absent.
    pub max_don_diff: u32,
}

/// MPEG4-GENERIC parameters from `a=fmtp` (RFC 3640).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mpeg4GenericParams {
    /// `mode` as written (`AAC-hbr`, `AAC-lbr`, ...). Required.
    pub mode: String,
    /// `sizeLength` in bits (0..=32); 0 when absent.
    pub size_length: u8,
    /// `indexLength` in bits (0..=32); 0 when absent.
    pub index_length: u8,
    /// `indexDeltaLength` in bits (0..=32); 0 when absent.
    pub index_delta_length: u8,
    /// `CTSDeltaLength` in bits (0..=32); 0 when absent.
    pub cts_delta_length: u8,
    /// `DTSDeltaLength` in bits (0..=32); 0 when absent.
    pub dts_delta_length: u8,
    /// `constantSize`, when present.
    pub constant_size: Option<u32>,
    /// Hex-decoded `config` (for AAC, the AudioSpecificConfig); empty when absent.
    pub config: Bytes,
}

/// MP4A-LATM parameters from `a=fmtp` (RFC 3016 / RFC 6416).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mp4aLatmParams {
    /// `cpresent`: whether the StreamMuxConfig is carried in-band; `true`
    /// when absent.
    pub cpresent: bool,
    /// Hex-decoded StreamMuxConfig from `config`, when present.
    pub config: Option<Bytes>,
    /// The AudioSpecificConfig extracted from [`Mp4aLatmParams::config`].
    pub audio_specific_config: Option<Bytes>,
    /// `object` (MPEG-4 audio object type); `None` when absent or malformed.
    pub object: Option<u8>,
}

impl Sdp {
    /// Parses an SDP body (see the module documentation for tolerance and
    /// limits).
    pub fn parse(text: &[u8]) -> Result<Sdp, SdpError> {
        if text.len() > MAX_SDP_LEN {
            return Err(SdpError::TooLarge {
                len: text.len(),
                max: MAX_SDP_LEN,
            });
        }
        let text = std::str::from_utf8(text).map_err(|e| SdpError::NotUtf8 {
            offset: e.valid_up_to(),
        })?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);

        let mut sdp = Sdp {
            origin: None,
            session_name: None,
            attributes: Vec::new(),
            media: Vec::new(),
        };
        let mut current: Option<MediaBuilder> = None;
        let mut seen = 0usize;
        for (number, raw) in (Lines { rest: text, number: 0 }) {
            let line = raw.trim_matches(is_space);
            if line.is_empty() {
                continue;
            }
            seen += 1;
            if seen > MAX_LINES {
                return Err(SdpError::TooManyLines { max: MAX_LINES });
            }
            let b = line.as_bytes();
            if b.len() < 2 || !b[0].is_ascii_alphabetic() || b[1] != b'=' {
                if seen == 1 {
                    return Err(SdpError::BadLine { line: number });
                }
                tracing::debug!(line = number, "skipping malformed SDP line");
                continue;
            }
            // b[1] is ASCII, so index 2 is a char boundary.
            let value = &line[2..];
            match b[0] {
                b'm' => {
                    if let Some(m) = current.take() {
                        sdp.media.push(m.finish());
                    }
                    if sdp.media.len() >= MAX_MEDIA {
                        return Err(SdpError::TooManyMedia { max: MAX_MEDIA });
                    }
                    current = Some(MediaBuilder::new(number, value)?);
                }
                b'a' => {
                    let attr = Attribute::parse(value);
                    match current.as_mut() {
                        Some(m) => m.attribute(number, attr)?,
                        None => sdp.attributes.push(attr),
                    }
                }
                b'o' if current.is_none() && sdp.origin.is_none() => {
                    sdp.origin = Some(value.to_owned());
                }
                b's' if current.is_none() && sdp.session_name.is_none() => {
                    sdp.session_name = Some(value.to_owned());
                }
                _ => {}
            }
        }
        if seen == 0 {
            return Err(SdpError::Empty);
        }
        if let Some(m) = current.take() {
            sdp.media.push(m.finish());
        }
        Ok(sdp)
    }

    /// Value of the first session-level attribute named `name`
    /// (case-insensitive); `Some("")` for a flag attribute.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        find_attribute(&self.attributes, name)
    }
}

impl Attribute {
    fn parse(value: &str) -> Attribute {
        match value.split_once(':') {
            Some((name, v)) => Attribute {
                name: name.trim_matches(is_space).to_owned(),
                value: Some(v.trim_matches(is_space).to_owned()),
            },
            None => Attribute {
                name: value.trim_matches(is_space).to_owned(),
                value: None,
            },
        }
    }
}

fn find_attribute<'a>(attrs: &'a [Attribute], name: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|a| a.name.eq_ignore_ascii_case(name))
        .map(|a| a.value.as_deref().unwrap_or(""))
}

fn is_space(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Splits on `\r\n`, `\n` or `\r`, yielding 1-based line numbers.
struct Lines<'a> {
    rest: &'a str,
    number: usize,
}

impl<'a> Iterator for Lines<'a> {
    type Item = (usize, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        self.number += 1;
        match self.rest.find(['\r', '\n']) {
            Some(i) => {
                let line = &self.rest[..i];
                let after = &self.rest[i..];
                let skip = if after.starts_with("\r\n") { 2 } else { 1 };
                self.rest = &after[skip..];
                Some((self.number, line))
            }
            None => {
                let line = self.rest;
                self.rest = "";
                Some((self.number, line))
            }
        }
    }
}

/// RFC 3551 static payload types: (encoding name, clock rate, channels).
fn static_payload_type(pt: u8) -> Option<(&'static str, u32, Option<u16>)> {
    Some(match pt {
        0 => ("PCMU", 8000, Some(1)),
        3 => ("GSM", 8000, Some(1)),
        8 => ("PCMA", 8000, Some(1)),
        9 => ("G722", 8000, Some(1)),
        10 => ("L16", 44100, Some(2)),
        11 => ("L16", 44100, Some(1)),
        14 => ("MPA", 90000, None),
        26 => ("JPEG", 90000, None),
        32 => ("MPV", 90000, None),
        33 => ("MP2T", 90000, None),
        34 => ("H263", 90000, None),
        _ => return None,
    })
}

struct MediaBuilder {
    media: Media,
    have_rtpmap: bool,
}

impl MediaBuilder {
    fn new(line: usize, value: &str) -> Result<MediaBuilder, SdpError> {
        let bad = |reason| SdpError::BadMediaLine { line, reason };
        let mut fields = value.split_ascii_whitespace();
        let kind = fields.next().ok_or(bad("missing media type"))?;
        let port = fields.next().ok_or(bad("missing port"))?;
        let protocol = fields.next().ok_or(bad("missing protocol"))?;
        let format = fields.next().ok_or(bad("missing format"))?;
        let port = port.split_once('/').map_or(port, |(p, _)| p);
        let port: u16 = port.parse().map_err(|_| bad("bad port"))?;
        let payload_type = format
            .parse::<u8>()
            .ok()
            .filter(|pt| *pt <= 127)
            .ok_or(bad("first format is not an RTP payload type (0-127)"))?;
        let kind = if kind.eq_ignore_ascii_case("video") {
            MediaKind::Video
        } else if kind.eq_ignore_ascii_case("audio") {
            MediaKind::Audio
        } else if kind.eq_ignore_ascii_case("application") {
            MediaKind::Application
        } else {
            MediaKind::Other(kind.to_owned())
        };
        Ok(MediaBuilder {
            media: Media {
                kind,
                port,
                protocol: protocol.to_owned(),
                payload_type,
                codec: String::new(),
                clock_rate: 0,
                channels: None,
                control: None,
                fmtp: Vec::new(),
                attributes: Vec::new(),
                framerate: None,
            },
            have_rtpmap: false,
        })
    }

    fn attribute(&mut self, line: usize, attr: Attribute) -> Result<(), SdpError> {
        let value = attr.value.as_deref().unwrap_or("");
        let m = &mut self.media;
        if attr.name.eq_ignore_ascii_case("rtpmap") {
            if let Some(rest) = for_payload_type(value, m.payload_type) {
                if self.have_rtpmap {
                    tracing::debug!(line, "ignoring duplicate a=rtpmap");
                } else {
                    let (name, clock, channels) =
                        parse_rtpmap(rest).map_err(|reason| SdpError::BadRtpmap { line, reason })?;
                    m.codec = name.to_owned();
                    m.clock_rate = clock;
                    m.channels = channels;
                    self.have_rtpmap = true;
                }
            }
        } else if attr.name.eq_ignore_ascii_case("fmtp") {
            if let Some(rest) = for_payload_type(value, m.payload_type) {
                for param in rest.split(';') {
                    let (k, v) = param.split_once('=').unwrap_or((param, ""));
                    let k = k.trim();
                    if !k.is_empty() {
                        m.fmtp.push((k.to_owned(), v.trim().to_owned()));
                    }
                }
            }
        } else if attr.name.eq_ignore_ascii_case("control") {
            if m.control.is_none() {
                m.control = Some(value.trim().to_owned());
            }
        } else if attr.name.eq_ignore_ascii_case("framerate") && m.framerate.is_none() {
            match value.trim().parse::<f64>() {
                Ok(f) if f.is_finite() && f > 0.0 => m.framerate = Some(f),
                _ => tracing::debug!(line, "ignoring bad a=framerate"),
            }
        }
        m.attributes.push(attr);
        Ok(())
    }

    fn finish(mut self) -> Media {
        if !self.have_rtpmap {
            if let Some((name, clock, channels)) = static_payload_type(self.media.payload_type) {
                self.media.codec = name.to_owned();
                self.media.clock_rate = clock;
                self.media.channels = channels;
            }
        }
        self.media
    }
}

/// If `value` is `<pt> <rest>` with `pt` equal to `want`, returns `rest`.
fn for_payload_type(value: &str, want: u8) -> Option<&str> {
    let value = value.trim_start();
    let (pt, rest) = value
        .split_once(|c: char| c.is_ascii_whitespace())
        .unwrap_or((value, ""));
    (pt.parse::<u8>().ok() == Some(want)).then(|| rest.trim())
}

fn parse_rtpmap(rest: &str) -> Result<(&str, u32, Option<u16>), &'static str> {
    let mut parts = rest.split('/');
    let name = parts.next().unwrap_or("").trim();
    if name.is_empty() {
        return Err("missing encoding name");
    }
    let clock = parts.next().ok_or("missing clock rate")?.trim();
    let clock: u32 = clock.parse().map_err(|_| "bad clock rate")?;
    let channels = match parts.next().map(str::trim) {
        None | Some("") => None,
        Some(c) => Some(c.parse::<u16>().map_err(|_| "bad encoding parameters")?),
    };
    Ok((name, clock, channels))
}

impl Media {
    /// Value of the first fmtp parameter named `key` (case-insensitive).
    pub fn fmtp_param(&self, key: &str) -> Option<&str> {
        self.fmtp
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// Value of the first media-level attribute named `name`
    /// (case-insensitive); `Some("")` for a flag attribute.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        find_attribute(&self.attributes, name)
    }

    /// Whether [`Media::codec`] equals `name`, ignoring ASCII case.
    pub fn codec_is(&self, name: &str) -> bool {
        self.codec.eq_ignore_ascii_case(name)
    }

    /// H.264 parameters; `Ok(None)` when the codec is not `H264`.
    pub fn h264(&self) -> Result<Option<H264Params>, SdpError> {
        if !self.codec_is("H264") {
            return Ok(None);
        }
        let packetization_mode = match self.fmtp_param("packetization-mode") {
            None => 0,
            Some(v) => v
                .parse::<u8>()
                .ok()
                .filter(|m| *m <= 2)
                .ok_or_else(|| bad_param("packetization-mode", "expected 0, 1 or 2"))?,
        };
        let profile_level_id = self.fmtp_param("profile-level-id").and_then(|v| {
            let id = decode_hex_bytes(v).and_then(|b| <[u8; 3]>::try_from(b).ok());
            if id.is_none() {
                tracing::debug!(value = v, "ignoring malformed profile-level-id");
            }
            id
        });
        let mut nals = Vec::new();
        if let Some(v) = self.fmtp_param("sprop-parameter-sets") {
            decode_base64_list("sprop-parameter-sets", v, &mut nals)?;
        }
        let (mut sps, mut pps) = (Vec::new(), Vec::new());
        for nal in nals {
            match nal[0] & 0x1f {
                7 => sps.push(nal),
                8 => pps.push(nal),
                t => tracing::debug!(nal_type = t, "ignoring NAL unit in sprop-parameter-sets"),
            }
        }
        Ok(Some(H264Params {
            packetization_mode,
            profile_level_id,
            sps,
            pps,
        }))
    }

    /// H.265 parameters; `Ok(None)` when the codec is not `H265`.
    pub fn h265(&self) -> Result<Option<H265Params>, SdpError> {
        if !self.codec_is("H265") {
            return Ok(None);
        }
        let mut nals = Vec::new();
        for param in ["sprop-vps", "sprop-sps", "sprop-pps"] {
            if let Some(v) = self.fmtp_param(param) {
                decode_base64_list(param, v, &mut nals)?;
            }
        }
        let (mut vps, mut sps, mut pps) = (Vec::new(), Vec::new(), Vec::new());
        for nal in nals {
            if nal.len() < 2 {
                tracing::debug!("ignoring truncated H.265 parameter set");
                continue;
            }
            match (nal[0] >> 1) & 0x3f {
                32 => vps.push(nal),
                33 => sps.push(nal),
                34 => pps.push(nal),
                t => tracing::debug!(nal_type = t, "ignoring NAL unit in sprop-*ps"),
            }
        }
        let max_don_diff = match self.fmtp_param("sprop-max-don-diff") {
            None => 0,
            Some(v) => v
                .parse::<u32>()
                .map_err(|_| bad_param("sprop-max-don-diff", "not a number"))?,
        };
        Ok(Some(H265Params {
            vps,
            sps,
            pps,
            max_don_diff,
        }))
    }

    /// MPEG4-GENERIC parameters; `Ok(None)` when the codec is not
    /// `MPEG4-GENERIC`. `mode` is required; lengths must be at most 32.
    pub fn mpeg4_generic(&self) -> Result<Option<Mpeg4GenericParams>, SdpError> {
        if !self.codec_is("MPEG4-GENERIC") {
            return Ok(None);
        }
        let mode = match self.fmtp_param("mode") {
            Some(m) if !m.is_empty() => m.to_owned(),
            _ => {
                return Err(SdpError::MissingParam {
                    codec: "MPEG4-GENERIC".to_owned(),
                    param: "mode".to_owned(),
                })
            }
        };
        let length = |key: &str| -> Result<u8, SdpError> {
            match self.fmtp_param(key) {
                None => Ok(0),
                Some(v) => match v.parse::<u8>() {
                    Ok(n) if n <= 32 => Ok(n),
                    Ok(_) => Err(bad_param(key, "must be at most 32")),
                    Err(_) => Err(bad_param(key, "not a number")),
                },
            }
        };
        let constant_size = match self.fmtp_param("constantSize") {
            None => None,
            Some(v) => Some(
                v.parse::<u32>()
                    .map_err(|_| bad_param("constantSize", "not a number"))?,
            ),
        };
        let config = match self.fmtp_param("config") {
            None => Bytes::new(),
            Some(v) => decode_hex("config", v)?,
        };
        Ok(Some(Mpeg4GenericParams {
            mode,
            size_length: length("sizeLength")?,
            index_length: length("indexLength")?,
            index_delta_length: length("indexDeltaLength")?,
            cts_delta_length: length("CTSDeltaLength")?,
            dts_delta_length: length("DTSDeltaLength")?,
            constant_size,
            config,
        }))
    }

    /// MP4A-LATM parameters; `Ok(None)` when the codec is not `MP4A-LATM`.
    /// `config` is required when `cpresent=0`; when present, its
    /// AudioSpecificConfig is extracted (see
    /// [`audio_specific_config_from_stream_mux_config`]).
    pub fn mp4a_latm(&self) -> Result<Option<Mp4aLatmParams>, SdpError> {
        if !self.codec_is("MP4A-LATM") {
            return Ok(None);
        }
        let cpresent = match self.fmtp_param("cpresent") {
            None => true,
            Some("1") => true,
            Some("0") => false,
            Some(_) => return Err(bad_param("cpresent", "expected 0 or 1")),
        };
        let config = match self.fmtp_param("config") {
            Some(v) if !v.is_empty() => Some(decode_hex("config", v)?),
            _ => None,
        };
        if !cpresent && config.is_none() {
            return Err(SdpError::MissingParam {
                codec: "MP4A-LATM".to_owned(),
                param: "config".to_owned(),
            });
        }
        let audio_specific_config = match &config {
            Some(c) => Some(audio_specific_config_from_stream_mux_config(c)?),
            None => None,
        };
        let object = self.fmtp_param("object").and_then(|v| v.parse::<u8>().ok());
        Ok(Some(Mp4aLatmParams {
            cpresent,
            config,
            audio_specific_config,
            object,
        }))
    }

    /// Out-of-band parameter sets in Annex B form, each prefixed with
    /// `00 00 00 01`: SPS then PPS for H.264, VPS, SPS then PPS for H.265.
    /// `None` for other codecs, when there are none, or on a parameter error.
    pub fn parameter_sets_annex_b(&self) -> Option<Bytes> {
        let sets: Vec<Bytes> = if let Ok(Some(p)) = self.h264() {
            p.sps.into_iter().chain(p.pps).collect()
        } else if let Ok(Some(p)) = self.h265() {
            p.vps.into_iter().chain(p.sps).chain(p.pps).collect()
        } else {
            return None;
        };
        if sets.is_empty() {
            return None;
        }
        let len = sets.iter().map(|s| s.len() + 4).sum();
        let mut out = BytesMut::with_capacity(len);
        for s in &sets {
            out.put_slice(&[0, 0, 0, 1]);
            out.put_slice(s);
        }
        Some(out.freeze())
    }

    /// The AudioSpecificConfig: MPEG4-GENERIC `config`, or the one inside the
    /// MP4A-LATM StreamMuxConfig. `None` for other codecs, when absent, or on
    /// a parameter error.
    pub fn audio_specific_config(&self) -> Option<Bytes> {
        if let Ok(Some(p)) = self.mpeg4_generic() {
            return (!p.config.is_empty()).then_some(p.config);
        }
        self.mp4a_latm().ok().flatten()?.audio_specific_config
    }
}

fn bad_param(param: &str, reason: &'static str) -> SdpError {
    SdpError::BadParam {
        param: param.to_owned(),
        reason,
    }
}

/// Decodes a comma-separated list of base64 items, skipping empty ones.
fn decode_base64_list(param: &str, value: &str, out: &mut Vec<Bytes>) -> Result<(), SdpError> {
    for item in value.split(',') {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let nal = BASE64.decode(item).map_err(|_| SdpError::BadBase64 {
            param: param.to_owned(),
        })?;
        if !nal.is_empty() {
            out.push(Bytes::from(nal));
        }
    }
    Ok(())
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn decode_hex_bytes(value: &str) -> Option<Vec<u8>> {
    let b = value.trim().as_bytes();
    let pairs = b.chunks_exact(2);
    if !pairs.remainder().is_empty() {
        return None;
    }
    pairs
        .map(|p| Some((hex_digit(p[0])? << 4) | hex_digit(p[1])?))
        .collect()
}

fn decode_hex(param: &str, value: &str) -> Result<Bytes, SdpError> {
    decode_hex_bytes(value)
        .map(Bytes::from)
        .ok_or_else(|| SdpError::BadHex {
            param: param.to_owned(),
        })
}

/// Parses an MPEG-4 AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1) for the
/// AAC object types 1, 2, 3, 4, 6 and 7 (optionally with explicit SBR/PS
/// signalling). Trailing bits are ignored.
pub fn parse_audio_specific_config(asc: &[u8]) -> Result<AudioConfig, SdpError> {
    AudioConfig::parse(asc).map_err(SdpError::BadAudioSpecificConfig)
}

/// Extracts the AudioSpecificConfig from an MP4A-LATM StreamMuxConfig
/// (ISO/IEC 14496-3 1.7.3), realigned to a byte boundary and zero-padded.
///
/// Only `audioMuxVersion` 0 with one program and one layer is supported,
/// and the AudioSpecificConfig must be one [`parse_audio_specific_config`]
/// understands, with a channel configuration other than 0.
pub fn audio_specific_config_from_stream_mux_config(config: &[u8]) -> Result<Bytes, SdpError> {
    StreamMuxConfig::parse(config)
        .map(|c| c.audio_specific_config())
        .map_err(SdpError::BadStreamMuxConfig)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const GSTREAMER: &str = "v=0\r\n\
o=- 1188340656180883 1 IN IP4 127.0.0.1\r\n\
s=Session streamed with GStreamer\r\n\
i=rtsp-server\r\n\
t=0 0\r\n\
a=tool:GStreamer\r\n\
a=type:broadcast\r\n\
a=control:*\r\n\
a=range:npt=now-5\r\n\
m=video 0 RTP/AVP 96\r\n\
c=IN IP4 0.0.0.0\r\n\
a=rtpmap:96 H264/90000\r\n\
a=framerate:25\r\n\
a=fmtp:96 packetization-mode=1;sprop-parameter-sets=Z2QADazZQUH7ARAAAAMAEAAAAwMo8UKZYA==,aOvjyyLA;profile-level-id=64000D;level-asymmetry-allowed=1\r\n\
a=control:stream=0\r\n\
a=ts-refclk:local\r\n\
a=mediaclk:sender\r\n\
m=audio 0 RTP/AVP 97\r\n\
c=IN IP4 0.0.0.0\r\n\
a=rtpmap:97 MPEG4-GENERIC/44100/2\r\n\
a=fmtp:97 streamtype=5;profile-level-id=2;mode=AAC-hbr;config=1210;sizelength=13;indexlength=3;indexdeltalength=3\r\n\
a=control:stream=1\r\n";

    const SPS: [u8; 25] = [
        0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00,
        0x03, 0x03, 0x28, 0xf1, 0x42, 0x99, 0x60,
    ];
    const PPS: [u8; 6] = [0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];

    #[test]
    fn gstreamer_h264_aac() {
        let sdp = Sdp::parse(GSTREAMER.as_bytes()).unwrap();
        assert_eq!(sdp.origin.as_deref(), Some("- 1188340656180883 1 IN IP4 127.0.0.1"));
        assert_eq!(sdp.session_name.as_deref(), Some("Session streamed with GStreamer"));
        assert_eq!(sdp.attribute("control"), Some("*"));
        assert_eq!(sdp.attribute("tool"), Some("GStreamer"));
        assert_eq!(sdp.attribute("range"), Some("npt=now-5"));
        assert_eq!(sdp.attributes.len(), 4);
        assert_eq!(sdp.media.len(), 2);

        let v = &sdp.media[0];
        assert_eq!(v.kind, MediaKind::Video);
        assert_eq!(v.port, 0);
        assert_eq!(v.protocol, "RTP/AVP");
        assert_eq!(v.payload_type, 96);
        assert_eq!(v.codec, "H264");
        assert!(v.codec_is("h264"));
        assert_eq!(v.clock_rate, 90000);
        assert_eq!(v.channels, None);
        assert_eq!(v.control.as_deref(), Some("stream=0"));
        assert_eq!(v.framerate, Some(25.0));
        assert_eq!(v.attributes.len(), 6);
        assert_eq!(v.attribute("mediaclk"), Some("sender"));
        assert_eq!(v.fmtp_param("PROFILE-level-ID"), Some("64000D"));
        assert_eq!(v.fmtp_param("level-asymmetry-allowed"), Some("1"));
        let h = v.h264().unwrap().unwrap();
        assert_eq!(h.packetization_mode, 1);
        assert_eq!(h.profile_level_id, Some([0x64, 0x00, 0x0d]));
        assert_eq!(h.sps, vec![Bytes::from_static(&SPS)]);
        assert_eq!(h.pps, vec![Bytes::from_static(&PPS)]);
        assert_eq!(h.sps[0][0] & 0x1f, 7);
        assert_eq!(h.pps[0][0] & 0x1f, 8);
        let mut annex_b = vec![0, 0, 0, 1];
        annex_b.extend_from_slice(&SPS);
        annex_b.extend_from_slice(&[0, 0, 0, 1]);
        annex_b.extend_from_slice(&PPS);
        assert_eq!(v.parameter_sets_annex_b().unwrap(), annex_b);
        assert_eq!(v.h265(), Ok(None));
        assert_eq!(v.mpeg4_generic(), Ok(None));
        assert_eq!(v.mp4a_latm(), Ok(None));
        assert_eq!(v.audio_specific_config(), None);

        let a = &sdp.media[1];
        assert_eq!(a.kind, MediaKind::Audio);
        assert_eq!(a.payload_type, 97);
        assert_eq!(a.codec, "MPEG4-GENERIC");
        assert_eq!(a.clock_rate, 44100);
        assert_eq!(a.channels, Some(2));
        assert_eq!(a.control.as_deref(), Some("stream=1"));
        assert_eq!(a.framerate, None);
        let p = a.mpeg4_generic().unwrap().unwrap();
        assert_eq!(
            p,
            Mpeg4GenericParams {
                mode: "AAC-hbr".into(),
                size_length: 13,
                index_length: 3,
                index_delta_length: 3,
                cts_delta_length: 0,
                dts_delta_length: 0,
                constant_size: None,
                config: Bytes::from_static(&[0x12, 0x10]),
            }
        );
        assert_eq!(a.parameter_sets_annex_b(), None);
        let asc = a.audio_specific_config().unwrap();
        assert_eq!(&asc[..], &[0x12, 0x10]);
        assert_eq!(
            parse_audio_specific_config(&asc).unwrap(),
            AudioConfig {
                object_type: 2,
                sample_rate: 44100,
                channels: 2,
                channel_configuration: 2,
                frame_length: 1024,
                extension_sample_rate: None,
            }
        );
    }

    #[test]
    fn bare_lf_and_cr_line_endings() {
        let lf = GSTREAMER.replace("\r\n", "\n");
        let cr = GSTREAMER.replace("\r\n", "\r");
        let crlf = Sdp::parse(GSTREAMER.as_bytes()).unwrap();
        assert_eq!(Sdp::parse(lf.as_bytes()).unwrap(), crlf);
        assert_eq!(Sdp::parse(cr.as_bytes()).unwrap(), crlf);
    }

    const VPS_B64: &str = "QAEMAf//AWAAAAMAkAAAAwAAAwB4lZgJ";
    const SPS_B64: &str = "QgEBAWAAAAMAkAAAAwAAAwB4oAUCAWlllZpJMrwFqAgICCAAAAMAIAAAAwMh";
    const PPS_B64: &str = "RAHBcrRiQA==";

    #[test]
    fn h265() {
        let text = format!(
            "v=0\n\
             o=- 0 0 IN IP4 10.0.0.2\n\
             s=Media Presentation\n\
             t=0 0\n\
             m=video 0 RTP/AVP 96\n\
             a=rtpmap:96 H265/90000\n\
             a=fmtp:96 sprop-vps={VPS_B64}; sprop-sps={SPS_B64}; sprop-pps={PPS_B64}; sprop-max-don-diff=2\n\
             a=control:trackID=1\n"
        );
        let sdp = Sdp::parse(text.as_bytes()).unwrap();
        let m = &sdp.media[0];
        assert_eq!(m.fmtp_param("sprop-pps"), Some(PPS_B64));
        let p = m.h265().unwrap().unwrap();
        assert_eq!(p.vps.len(), 1);
        assert_eq!(p.sps.len(), 1);
        assert_eq!(p.pps.len(), 1);
        assert_eq!(&p.vps[0][..2], &[0x40, 0x01]);
        assert_eq!(&p.sps[0][..2], &[0x42, 0x01]);
        assert_eq!(&p.pps[0][..], &[0x44, 0x01, 0xc1, 0x72, 0xb4, 0x62, 0x40]);
        assert_eq!(p.max_don_diff, 2);
        assert_eq!(m.h264(), Ok(None));
        let annex_b = m.parameter_sets_annex_b().unwrap();
        let mut expected = Vec::new();
        for nal in [&p.vps[0], &p.sps[0], &p.pps[0]] {
            expected.extend_from_slice(&[0, 0, 0, 1]);
            expected.extend_from_slice(nal);
        }
        assert_eq!(annex_b, expected);
    }

    #[test]
    fn pcma_static_payload_type() {
        let text = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=Audio\r\nm=audio 0 RTP/AVP 8\r\na=control:track1\r\n";
        let sdp = Sdp::parse(text.as_bytes()).unwrap();
        let m = &sdp.media[0];
        assert_eq!(m.codec, "PCMA");
        assert_eq!(m.clock_rate, 8000);
        assert_eq!(m.channels, Some(1));
        assert_eq!(m.control.as_deref(), Some("track1"));
        assert_eq!(m.audio_specific_config(), None);
        assert_eq!(m.parameter_sets_annex_b(), None);
    }

    #[test]
    fn unknown_dynamic_payload_type() {
        let sdp = Sdp::parse(b"m=application 0 RTP/AVP 107\n").unwrap();
        let m = &sdp.media[0];
        assert_eq!(m.kind, MediaKind::Application);
        assert_eq!(m.codec, "");
        assert_eq!(m.clock_rate, 0);
        assert_eq!(m.channels, None);
    }

    #[test]
    fn mp4a_latm() {
        // config=400024203fc0, StreamMuxConfig bits:
        //   0x40 0x00      = 0 1 000000 0000 000 | 0
        //     audioMuxVersion=0, allStreamsSameTimeFraming=1, numSubFrames=0,
        //     numProgram=0, numLayer=0; AudioSpecificConfig starts at bit 15.
        //   ASC bits from bit 15: 0 | 00100100 | 00100000 | ...
        //     = 00010 0100 0010 0 0 0 ...
        //     audioObjectType=2 (AAC-LC), samplingFrequencyIndex=4 (44100),
        //     channelConfiguration=2, frameLengthFlag=0, dependsOnCoreCoder=0,
        //     extensionFlag=0: 16 bits = 0001 0010 0001 0000 = 0x12 0x10.
        let text = "v=0\r\ns=LATM\r\nm=audio 0 RTP/AVP 96\r\n\
                    a=rtpmap:96 MP4A-LATM/44100/2\r\n\
                    a=fmtp:96 profile-level-id=15;object=2;cpresent=0;config=400024203fc0\r\n";
        let sdp = Sdp::parse(text.as_bytes()).unwrap();
        let m = &sdp.media[0];
        let p = m.mp4a_latm().unwrap().unwrap();
        assert!(!p.cpresent);
        assert_eq!(p.object, Some(2));
        assert_eq!(p.config.as_deref(), Some(&[0x40, 0x00, 0x24, 0x20, 0x3f, 0xc0][..]));
        assert_eq!(p.audio_specific_config.as_deref(), Some(&[0x12, 0x10][..]));
        assert_eq!(m.audio_specific_config().as_deref(), Some(&[0x12, 0x10][..]));
        let c = parse_audio_specific_config(&[0x12, 0x10]).unwrap();
        assert_eq!(
            (c.object_type, c.sample_rate, c.channels, c.frame_length),
            (2, 44100, 2, 1024)
        );
    }

    #[test]
    fn latm_defaults_and_errors() {
        let media = |fmtp: &str| {
            let text = format!("m=audio 0 RTP/AVP 96\na=rtpmap:96 MP4A-LATM/90000\na=fmtp:96 {fmtp}\n");
            Sdp::parse(text.as_bytes()).unwrap().media.remove(0)
        };
        let p = media("object=2").mp4a_latm().unwrap().unwrap();
        assert!(p.cpresent);
        assert_eq!(p.config, None);
        assert_eq!(p.audio_specific_config, None);
        assert_eq!(
            media("cpresent=0").mp4a_latm(),
            Err(SdpError::MissingParam {
                codec: "MP4A-LATM".into(),
                param: "config".into()
            })
        );
        assert_eq!(
            media("cpresent=0;config=c00024203fc0").mp4a_latm(),
            Err(SdpError::BadStreamMuxConfig("audioMuxVersion 1 unsupported"))
        );
        assert_eq!(
            media("config=4000").mp4a_latm(),
            Err(SdpError::BadStreamMuxConfig("truncated"))
        );
        assert!(matches!(media("config=4g").mp4a_latm(), Err(SdpError::BadHex { .. })));
        assert!(matches!(
            media("cpresent=2").mp4a_latm(),
            Err(SdpError::BadParam { .. })
        ));
    }

    #[test]
    fn stream_mux_config_realignment() {
        // Same as above with an explicit 24-bit sampling frequency (16000 Hz):
        // ASC = 00010 1111 <0x003e80 in 24 bits> 0001 0 0 0 (40 bits = 5 bytes).
        let asc = [0x17, 0x80, 0x1f, 0x40, 0x08];
        let c = parse_audio_specific_config(&asc).unwrap();
        assert_eq!((c.object_type, c.sample_rate, c.channels), (2, 16000, 1));
        // Prefix with the 15 StreamMuxConfig bits 0 1 000000 0000 000.
        let mut bits: Vec<u8> = vec![0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        for b in asc {
            bits.extend((0..8).rev().map(|i| (b >> i) & 1));
        }
        bits.extend([1, 0, 1]); // trailing StreamMuxConfig bits, not part of the ASC
        let mut smc = vec![0u8; bits.len().div_ceil(8)];
        for (i, bit) in bits.iter().enumerate() {
            smc[i / 8] |= bit << (7 - i % 8);
        }
        assert_eq!(audio_specific_config_from_stream_mux_config(&smc).unwrap(), &asc[..]);
    }

    #[test]
    fn audio_specific_config_variants() {
        // AAC-LC 48000 stereo, frameLengthFlag=1: 00010 0011 0010 1 0 0 = 0x11 0x94
        let c = parse_audio_specific_config(&[0x11, 0x94]).unwrap();
        assert_eq!((c.sample_rate, c.channels, c.frame_length), (48000, 2, 960));
        // HE-AAC explicit: 00101 0110 (24000) 0010 | 0011 (48000) | 00010 | 0 0 0
        // = 0010 1011 0001 0001 1000 1000 0000 0000
        let c = parse_audio_specific_config(&[0x2b, 0x11, 0x88, 0x00]).unwrap();
        assert_eq!(c.object_type, 2);
        assert_eq!(c.sample_rate, 24000);
        assert_eq!(c.extension_sample_rate, Some(48000));
        assert_eq!(
            parse_audio_specific_config(&[0x12]),
            Err(SdpError::BadAudioSpecificConfig("truncated"))
        );
        assert_eq!(
            parse_audio_specific_config(&[]),
            Err(SdpError::BadAudioSpecificConfig("truncated"))
        );
        // object type 8 (CELP)
        assert_eq!(
            parse_audio_specific_config(&[0x42, 0x10]),
            Err(SdpError::BadAudioSpecificConfig("unsupported audio object type"))
        );
    }

    #[test]
    fn rtpmap_and_fmtp_for_first_payload_type_only() {
        let text = "m=video 0 RTP/AVP 97 96\n\
                    a=rtpmap:96 H264/90000\n\
                    a=rtpmap:97 H265/90000\n\
                    a=rtpmap:98 garbage\n\
                    a=fmtp:96 packetization-mode=1\n\
                    a=fmtp:97  sprop-vps = QAEMAQ== ; ; flag ;sprop-max-don-diff=0\n\
                    a=control: rtsp://cam/track1 \n\
                    a=framerate:abc\n";
        let sdp = Sdp::parse(text.as_bytes()).unwrap();
        let m = &sdp.media[0];
        assert_eq!(m.payload_type, 97);
        assert_eq!(m.codec, "H265");
        assert_eq!(
            m.fmtp,
            vec![
                ("sprop-vps".to_owned(), "QAEMAQ==".to_owned()),
                ("flag".to_owned(), String::new()),
                ("sprop-max-don-diff".to_owned(), "0".to_owned()),
            ]
        );
        assert_eq!(m.control.as_deref(), Some("rtsp://cam/track1"));
        assert_eq!(m.framerate, None);
        assert_eq!(m.h265().unwrap().unwrap().vps.len(), 1);
    }

    #[test]
    fn tolerance() {
        // No v=, trailing whitespace, blank lines, junk lines, BOM, unknown types.
        let text = "\u{feff}\n  s=Cam  \n\nthis is junk\nx=unknown\nm=video 554/2 RTP/AVP 26\n= \nb=AS:5000\n";
        let sdp = Sdp::parse(text.as_bytes()).unwrap();
        assert_eq!(sdp.session_name.as_deref(), Some("Cam"));
        assert_eq!(sdp.media[0].port, 554);
        assert_eq!(sdp.media[0].codec, "JPEG");
        assert_eq!(sdp.media[0].clock_rate, 90000);
        // Base64 without padding.
        let text = "m=video 0 RTP/AVP 96\na=rtpmap:96 H264/90000\na=fmtp:96 sprop-parameter-sets=Z0IA,aM4\n";
        let h = Sdp::parse(text.as_bytes()).unwrap().media[0].h264().unwrap().unwrap();
        assert_eq!(h.packetization_mode, 0);
        assert_eq!(h.profile_level_id, None);
        assert_eq!(h.sps, vec![Bytes::from_static(&[0x67, 0x42, 0x00])]);
        assert_eq!(h.pps, vec![Bytes::from_static(&[0x68, 0xce])]);
    }

    #[test]
    fn errors() {
        let parse = |s: &str| Sdp::parse(s.as_bytes());
        assert_eq!(parse(""), Err(SdpError::Empty));
        assert_eq!(parse("\r\n  \n"), Err(SdpError::Empty));
        assert_eq!(parse("<html>\n</html>\n"), Err(SdpError::BadLine { line: 1 }));
        assert_eq!(Sdp::parse(b"\x00\x01\x02garbage"), Err(SdpError::BadLine { line: 1 }));
        assert_eq!(Sdp::parse(b"v=0\ns=\xff\xfe\n"), Err(SdpError::NotUtf8 { offset: 6 }));
        let huge = vec![b'a'; MAX_SDP_LEN + 1];
        assert_eq!(
            Sdp::parse(&huge),
            Err(SdpError::TooLarge {
                len: MAX_SDP_LEN + 1,
                max: MAX_SDP_LEN
            })
        );
        assert_eq!(
            parse(&"a=x\n".repeat(MAX_LINES + 1)),
            Err(SdpError::TooManyLines { max: MAX_LINES })
        );
        assert!(parse(&"m=audio 0 RTP/AVP 0\n".repeat(MAX_MEDIA)).is_ok());
        assert_eq!(
            parse(&"m=audio 0 RTP/AVP 0\n".repeat(MAX_MEDIA + 1)),
            Err(SdpError::TooManyMedia { max: MAX_MEDIA })
        );
        assert_eq!(
            parse("v=0\nm=video 0 RTP/AVP\n"),
            Err(SdpError::BadMediaLine {
                line: 2,
                reason: "missing format"
            })
        );
        assert!(matches!(
            parse("v=0\n\nm=video x RTP/AVP 96\n"),
            Err(SdpError::BadMediaLine { line: 3, .. })
        ));
        assert!(matches!(
            parse("m=video 0 RTP/AVP 200\n"),
            Err(SdpError::BadMediaLine { line: 1, .. })
        ));
        assert_eq!(
            parse("m=video 0 RTP/AVP 96\na=rtpmap:96 H264\n"),
            Err(SdpError::BadRtpmap {
                line: 2,
                reason: "missing clock rate"
            })
        );

        let media = |rtpmap: &str, fmtp: &str| {
            let text = format!("m=video 0 RTP/AVP 96\na=rtpmap:96 {rtpmap}\na=fmtp:96 {fmtp}\n");
            Sdp::parse(text.as_bytes()).unwrap().media.remove(0)
        };
        let m = media("H264/90000", "sprop-parameter-sets=Z2QA!!,aOvjyyLA");
        assert_eq!(
            m.h264(),
            Err(SdpError::BadBase64 {
                param: "sprop-parameter-sets".into()
            })
        );
        assert_eq!(m.parameter_sets_annex_b(), None);
        assert!(matches!(
            media("H264/90000", "packetization-mode=3").h264(),
            Err(SdpError::BadParam { .. })
        ));
        assert_eq!(
            media("H265/90000", "sprop-sps=@@@").h265(),
            Err(SdpError::BadBase64 {
                param: "sprop-sps".into()
            })
        );
        let m = media("mpeg4-generic/44100/2", "mode=AAC-hbr;config=12z0");
        assert_eq!(m.mpeg4_generic(), Err(SdpError::BadHex { param: "config".into() }));
        assert_eq!(m.audio_specific_config(), None);
        assert_eq!(
            media("MPEG4-GENERIC/44100/2", "mode=AAC-hbr;config=121").mpeg4_generic(),
            Err(SdpError::BadHex { param: "config".into() })
        );
        assert_eq!(
            media("MPEG4-GENERIC/44100/2", "config=1210;sizelength=13").mpeg4_generic(),
            Err(SdpError::MissingParam {
                codec: "MPEG4-GENERIC".into(),
                param: "mode".into()
            })
        );
        assert_eq!(
            media("MPEG4-GENERIC/44100/2", "mode=AAC-hbr;sizelength=33").mpeg4_generic(),
            Err(SdpError::BadParam {
                param: "sizeLength".into(),
                reason: "must be at most 32"
            })
        );
        let p = media("MPEG4-GENERIC/48000", "mode=AAC-lbr;constantSize=6;CTSDeltaLength=2")
            .mpeg4_generic()
            .unwrap()
            .unwrap();
        assert_eq!(p.constant_size, Some(6));
        assert_eq!(p.cts_delta_length, 2);
        assert!(p.config.is_empty());
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            SdpError::BadMediaLine {
                line: 3,
                reason: "bad port"
            }
            .to_string(),
            "line 3: bad m= line: bad port"
        );
        assert_eq!(
            SdpError::MissingParam {
                codec: "MPEG4-GENERIC".into(),
                param: "mode".into()
            }
            .to_string(),
            "MPEG4-GENERIC: missing required fmtp parameter `mode`"
        );
    }

    fn exercise(sdp: &Sdp) {
        let _ = sdp.attribute("control");
        for m in &sdp.media {
            let _ = m.fmtp_param("config");
            let _ = m.attribute("control");
            let _ = m.codec_is("H264");
            let _ = m.h264();
            let _ = m.h265();
            let _ = m.mpeg4_generic();
            let _ = m.mp4a_latm();
            let _ = m.parameter_sets_annex_b();
            if let Some(asc) = m.audio_specific_config() {
                let _ = parse_audio_specific_config(&asc);
            }
        }
    }

    const FRAGMENTS: &[&str] = &[
        "v=0",
        "m=",
        "m=video 0 RTP/AVP 96",
        "m=audio 0 RTP/AVP 97 8",
        "m=audio 0 RTP/AVP 8",
        "a=rtpmap:",
        "a=rtpmap:96 ",
        "a=rtpmap:97 ",
        "H264/90000",
        "H265/90000",
        "MPEG4-GENERIC/44100/2",
        "MP4A-LATM/90000",
        "a=fmtp:",
        "a=fmtp:96 ",
        "a=fmtp:97 ",
        "sprop-parameter-sets=",
        "sprop-vps=",
        "sprop-sps=",
        "sprop-pps=",
        "QAEMAQ==",
        "Z2QA",
        "aOvjyyLA",
        "mode=AAC-hbr",
        "config=",
        "1210",
        "400024203fc0",
        "cpresent=0",
        "sizelength=",
        "13",
        "99",
        "packetization-mode=",
        "1",
        ";",
        "=",
        ",",
        " ",
        "/",
        ":",
        "a=control:",
        "a=framerate:",
        "25",
        "\r\n",
        "\n",
        "\r",
        "x",
        "\u{e9}",
    ];

    proptest! {
        #[test]
        fn parse_arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
            if let Ok(sdp) = Sdp::parse(&data) {
                exercise(&sdp);
            }
        }

        #[test]
        fn parse_fragments(parts in proptest::collection::vec(proptest::sample::select(FRAGMENTS), 0..80)) {
            let text = parts.concat();
            if let Ok(sdp) = Sdp::parse(text.as_bytes()) {
                exercise(&sdp);
            }
        }

        #[test]
        fn parse_fmtp_values(
            codec in proptest::sample::select(&["H264", "H265", "MPEG4-GENERIC", "MP4A-LATM"][..]),
            key in proptest::sample::select(&[
                "sprop-parameter-sets", "sprop-vps", "sprop-sps", "sprop-pps", "config",
                "mode", "sizelength", "cpresent", "packetization-mode", "profile-level-id",
            ][..]),
            value in "[0-9a-fA-F+/=,]{0,40}",
        ) {
            let text = format!("m=video 0 RTP/AVP 96\na=rtpmap:96 {codec}/90000\na=fmtp:96 mode=x;{key}={value}\n");
            let sdp = Sdp::parse(text.as_bytes()).unwrap();
            exercise(&sdp);
        }

        #[test]
        fn asc_arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..16)) {
            let _ = parse_audio_specific_config(&data);
            if let Ok(asc) = audio_specific_config_from_stream_mux_config(&data) {
                prop_assert!(parse_audio_specific_config(&asc).is_ok());
            }
        }
    }
}
