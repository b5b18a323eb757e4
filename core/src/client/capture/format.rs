//! The capture file format: header, records, parser and encoder (described
//! in the [module docs](super)). No client logic here.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};

use crate::client::input::{Input, IoFailure, PlayRange, Scale};
use crate::client::options::{ClientOptions, TrackSelection, Transport};
use crate::client::udp::UdpSocketId;
use crate::message::Limits;

/// The first 8 bytes of every capture file.
pub const MAGIC: &[u8; 8] = b"RTSPCAP\0";
/// The format version this module writes. It reads this one, version 2
/// (whose connect-failure and I/O-error records have no error kind: they
/// replay as [`io::ErrorKind::Other`]) and version 1 (TCP only, from before
/// RTP over UDP: replayed without receiver reports, as it was recorded).
pub const VERSION: u16 = 3;
/// Largest header block accepted.
pub const MAX_HEADER_LEN: u32 = 64 * 1024;
/// Largest record payload accepted; longer inputs are written as several
/// records with the same offset (which replays identically).
pub const MAX_RECORD_LEN: u32 = 1024 * 1024;

const FLAG_VIDEO: u8 = 1;
const FLAG_AUDIO: u8 = 2;
const FLAG_CREDENTIALS: u8 = 4;
const FLAG_FORWARD: u8 = 8;

pub(super) const KIND_CONNECTED: u8 = 1;
pub(super) const KIND_CONNECT_FAILED: u8 = 2;
pub(super) const KIND_INPUT: u8 = 3;
pub(super) const KIND_EOF: u8 = 4;
pub(super) const KIND_IO_ERROR: u8 = 5;
pub(super) const KIND_TIMEOUT: u8 = 6;
pub(super) const KIND_CLOSE: u8 = 7;
pub(super) const KIND_UDP_OPENED: u8 = 8;
pub(super) const KIND_DATAGRAM: u8 = 9;
// Added in version 3 without a new version: files without them read as
// before; a build that does not know them stops at the record, with its kind.
pub(super) const KIND_PAUSE: u8 = 10;
pub(super) const KIND_PLAY: u8 = 11;

/// Why bytes are not a capture, or could not be replayed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    /// The bytes do not start with [`MAGIC`].
    #[error("not a capture file (bad magic)")]
    BadMagic,
    /// The file's format version (the `u16` after the magic) is not one this
    /// build reads (1 to [`VERSION`]).
    #[error("capture format version {0} is not supported (this build reads versions 1 to {VERSION})")]
    UnsupportedVersion(u16),
    /// The file ends inside a part of it.
    #[error("capture cut short in the {what} at byte {at}")]
    Truncated {
        /// The part cut short: `magic`, `version`, `header length`,
        /// `header`, `record` or `record payload`.
        what: &'static str,
        /// Where the bytes end (their length).
        at: usize,
    },
    /// The header length field, in bytes, is over [`MAX_HEADER_LEN`].
    #[error("capture header of {0} bytes is over the limit")]
    HeaderTooLong(u32),
    /// A record's payload length is over [`MAX_RECORD_LEN`].
    #[error("capture record at byte {at} has {len} bytes, over the limit")]
    RecordTooLong {
        /// The record's first byte, from the start of the file.
        at: usize,
        /// Its payload length field, in bytes.
        len: u32,
    },
    /// A record kind this build does not know.
    #[error("unknown capture record kind {kind} at byte {at}")]
    UnknownRecord {
        /// The record's first byte, from the start of the file.
        at: usize,
        /// The kind byte read.
        kind: u8,
    },
    /// A record whose payload does not fit its kind.
    #[error("bad capture record at byte {at}: {detail}")]
    BadRecord {
        /// The record's first byte, from the start of the file.
        at: usize,
        /// What is wrong with it.
        detail: String,
    },
    /// A header whose fields are not valid (what is wrong, in words).
    #[error("bad capture header: {0}")]
    BadHeader(String),
    /// A record's offset added to the replay's start instant overflows
    /// [`Instant`] ([`replay`](fn@super::replay)).
    #[error("record offset does not fit in an Instant")]
    OffsetOverflow,
    /// [`Client::new`](crate::client::Client::new) refused the recorded
    /// settings ([`replay`](fn@super::replay)).
    #[error("the recorded session cannot be replayed: {0}")]
    Client(crate::Error),
}

/// The session settings a replay needs, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureHeader {
    /// The session URL without credentials.
    pub url: String,
    /// Whether the URL had a user name (and maybe a password).
    pub had_credentials: bool,
    /// [`ClientOptions::enable_video`].
    pub enable_video: bool,
    /// [`ClientOptions::enable_audio`].
    pub enable_audio: bool,
    /// [`ClientOptions::timeout`] (recorded in nanoseconds).
    pub timeout: Duration,
    /// [`ClientOptions::forward_address`]: it names the Connect event's target.
    pub forward_address: Option<String>,
    /// [`ClientOptions::limits`] (each bound recorded as a `u32`, saturated).
    pub limits: Limits,
    /// [`ClientOptions::transport`].
    pub transport: Transport,
    /// [`ClientOptions::reorder_packets`].
    pub reorder_packets: usize,
    /// [`ClientOptions::reorder_window`].
    pub reorder_window: Duration,
    /// [`ClientOptions::udp_fallback_after`].
    pub udp_fallback_after: Duration,
    /// [`ClientOptions::rtcp_reports`].
    pub rtcp_reports: bool,
    /// [`ClientOptions::tracks`] (files without it: the default).
    pub tracks: TrackSelection,
    /// [`ClientOptions::start`] (files without it: none).
    pub start: Option<Duration>,
    /// [`ClientOptions::end`] (files without it: none).
    pub end: Option<Duration>,
    /// [`ClientOptions::scale`], as its shortest decimal text (it reads back
    /// to the same number; files without it: none).
    pub scale: Option<String>,
}

impl CaptureHeader {
    /// The header for a session of `url` (without credentials) whose
    /// caller-given URL had credentials or not, with options `o`.
    pub fn for_options(url: &str, had_credentials: bool, o: &ClientOptions) -> CaptureHeader {
        CaptureHeader {
            url: url.to_owned(),
            had_credentials,
            enable_video: o.enable_video,
            enable_audio: o.enable_audio,
            timeout: o.timeout,
            forward_address: o.forward_address.clone(),
            limits: o.limits,
            transport: o.transport,
            reorder_packets: o.reorder_packets,
            reorder_window: o.reorder_window,
            udp_fallback_after: o.udp_fallback_after,
            rtcp_reports: o.rtcp_reports,
            tracks: o.tracks.clone(),
            start: o.start,
            end: o.end,
            scale: o.scale.map(|s| s.to_string()),
        }
    }

    /// `options` with the recorded fields put in; logging, labels and the
    /// user agent stay the caller's. `capture` is cleared.
    pub fn apply(&self, options: ClientOptions) -> ClientOptions {
        ClientOptions {
            enable_video: self.enable_video,
            enable_audio: self.enable_audio,
            timeout: self.timeout,
            forward_address: self.forward_address.clone(),
            limits: self.limits,
            capture: None,
            transport: self.transport,
            reorder_packets: self.reorder_packets,
            reorder_window: self.reorder_window,
            udp_fallback_after: self.udp_fallback_after,
            rtcp_reports: self.rtcp_reports,
            tracks: self.tracks.clone(),
            start: self.start,
            end: self.end,
            scale: self.scale.as_deref().and_then(|s| s.parse().ok()),
            ..options
        }
    }

    /// The URL to replay with: the recorded one, with placeholder
    /// credentials when the original had some (so 401s are retried as live).
    pub fn replay_url(&self) -> String {
        if !self.had_credentials {
            return self.url.clone();
        }
        match url::Url::parse(&self.url) {
            Ok(mut u) => {
                let _ = u.set_username("replay");
                let _ = u.set_password(Some("replay"));
                u.to_string()
            }
            Err(_) => self.url.clone(),
        }
    }

    fn encode(&self, out: &mut BytesMut) {
        let mut body = BytesMut::new();
        let mut flags = 0;
        for (on, bit) in [
            (self.enable_video, FLAG_VIDEO),
            (self.enable_audio, FLAG_AUDIO),
            (self.had_credentials, FLAG_CREDENTIALS),
            (self.forward_address.is_some(), FLAG_FORWARD),
        ] {
            if on {
                flags |= bit;
            }
        }
        body.put_u8(flags);
        body.put_u64(duration_ns(self.timeout));
        for v in [
            self.limits.max_header_bytes,
            self.limits.max_body_bytes,
            self.limits.max_headers,
        ] {
            body.put_u32(u32::try_from(v).unwrap_or(u32::MAX));
        }
        put_string(&mut body, &self.url);
        if let Some(f) = &self.forward_address {
            put_string(&mut body, f);
        }
        body.put_u8(match self.transport {
            Transport::Tcp => 0,
            Transport::Udp => 1,
            Transport::Multicast => 2,
            Transport::Auto => 3,
        });
        body.put_u8(u8::from(self.rtcp_reports));
        body.put_u32(u32::try_from(self.reorder_packets).unwrap_or(u32::MAX));
        body.put_u64(duration_ns(self.reorder_window));
        body.put_u64(duration_ns(self.udp_fallback_after));
        // Optional since version 2 (readers ignore trailing header bytes).
        match &self.tracks {
            TrackSelection::All => body.put_u8(1),
            TrackSelection::Video => body.put_u8(2),
            TrackSelection::Audio => body.put_u8(3),
            TrackSelection::Indexes(v) => {
                body.put_u8(4);
                let v = &v[..v.len().min(255)];
                body.put_u8(v.len() as u8);
                for &i in v {
                    body.put_u8(u8::try_from(i).unwrap_or(u8::MAX));
                }
            }
            _ => body.put_u8(0),
        }
        // Optional after the track selection: the PLAY range and scale
        // (a byte of which are present, then each).
        let flags =
            u8::from(self.start.is_some()) | u8::from(self.end.is_some()) << 1 | u8::from(self.scale.is_some()) << 2;
        if flags != 0 {
            body.put_u8(flags);
            for d in [self.start, self.end].into_iter().flatten() {
                body.put_u64(duration_ns(d));
            }
            if let Some(scale) = &self.scale {
                put_string(&mut body, scale);
            }
        }
        out.put_slice(MAGIC);
        out.put_u16(VERSION);
        out.put_u32(body.len() as u32);
        out.put_slice(&body);
    }

    fn decode(r: &mut Reader<'_>, version: u16) -> Result<CaptureHeader, CaptureError> {
        let flags = r.u8("header")?;
        let timeout = Duration::from_nanos(r.u64("header")?);
        let max_header_bytes = r.u32("header")? as usize;
        let max_body_bytes = r.u32("header")? as usize;
        let max_headers = r.u32("header")? as usize;
        let url = r.string("header")?;
        let forward_address = if flags & FLAG_FORWARD != 0 {
            Some(r.string("header")?)
        } else {
            None
        };
        let defaults = ClientOptions::default();
        let (transport, rtcp_reports, reorder_packets, reorder_window, udp_fallback_after) = if version >= 2 {
            let transport = match r.u8("header")? {
                0 => Transport::Tcp,
                1 => Transport::Udp,
                2 => Transport::Multicast,
                3 => Transport::Auto,
                t => return Err(CaptureError::BadHeader(format!("unknown transport {t}"))),
            };
            let rtcp_reports = r.u8("header")? != 0;
            let reorder_packets = r.u32("header")? as usize;
            let reorder_window = Duration::from_nanos(r.u64("header")?);
            let fallback = Duration::from_nanos(r.u64("header")?);
            (transport, rtcp_reports, reorder_packets, reorder_window, fallback)
        } else {
            (
                Transport::Tcp,
                false,
                defaults.reorder_packets,
                defaults.reorder_window,
                defaults.udp_fallback_after,
            )
        };
        let tracks = if version >= 2 && r.at < r.data.len() {
            match r.u8("header")? {
                0 => TrackSelection::FirstOfEachKind,
                1 => TrackSelection::All,
                2 => TrackSelection::Video,
                3 => TrackSelection::Audio,
                4 => {
                    let n = r.u8("header")?;
                    let v = r.take(usize::from(n), "header")?;
                    TrackSelection::Indexes(v.iter().map(|&i| usize::from(i)).collect())
                }
                t => return Err(CaptureError::BadHeader(format!("unknown track selection {t}"))),
            }
        } else {
            TrackSelection::FirstOfEachKind
        };
        let (mut start, mut end, mut scale) = (None, None, None);
        if version >= 2 && r.at < r.data.len() {
            let flags = r.u8("header")?;
            if flags & 1 != 0 {
                start = Some(Duration::from_nanos(r.u64("header")?));
            }
            if flags & 2 != 0 {
                end = Some(Duration::from_nanos(r.u64("header")?));
            }
            if flags & 4 != 0 {
                scale = Some(r.string("header")?);
            }
        }
        Ok(CaptureHeader {
            start,
            end,
            scale,
            tracks,
            transport,
            rtcp_reports,
            reorder_packets,
            reorder_window,
            udp_fallback_after,
            url,
            had_credentials: flags & FLAG_CREDENTIALS != 0,
            enable_video: flags & FLAG_VIDEO != 0,
            enable_audio: flags & FLAG_AUDIO != 0,
            timeout,
            forward_address,
            limits: Limits {
                max_header_bytes,
                max_body_bytes,
                max_headers,
            },
        })
    }
}

/// One input to the client, as the runtime handed it in: the owned form of
/// an [`Input`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordKind {
    /// [`Input::Connected`].
    Connected {
        /// The socket's local address.
        local: SocketAddr,
        /// The server's address.
        peer: SocketAddr,
    },
    /// [`Input::ConnectFailed`]: the failure's kind (one the format has no
    /// code for is recorded as [`io::ErrorKind::Other`]) and reason.
    ConnectFailed {
        /// [`IoFailure::kind`].
        kind: io::ErrorKind,
        /// [`IoFailure::reason`] (cut to 4096 bytes when recorded).
        reason: String,
    },
    /// [`Input::Data`].
    Input(Bytes),
    /// [`Input::Eof`].
    Eof,
    /// [`Input::IoError`]: the failure's kind and reason.
    IoError {
        /// [`IoFailure::kind`], as for [`RecordKind::ConnectFailed`].
        kind: io::ErrorKind,
        /// [`IoFailure::reason`] (cut to 4096 bytes when recorded).
        reason: String,
    },
    /// [`Input::Timeout`].
    Timeout,
    /// [`Input::Close`].
    Close,
    /// [`Input::UdpOpened`].
    UdpOpened {
        /// The pair it answers.
        pair: u16,
        /// The RTP port bound, or why the pair could not be opened (cut to
        /// 4096 bytes when recorded).
        result: Result<u16, String>,
    },
    /// [`Input::Datagram`].
    Datagram {
        /// The socket that received it.
        socket: UdpSocketId,
        /// The sender's address.
        from: SocketAddr,
        /// The datagram's bytes.
        data: Bytes,
    },
    /// [`Input::Pause`].
    Pause,
    /// [`Input::Play`].
    Play {
        /// Where to play from.
        range: PlayRange,
        /// The scale asked for.
        scale: Option<Scale>,
    },
}

impl RecordKind {
    /// The input this record stands for, as the client takes it.
    pub fn as_input(&self) -> Input<'_> {
        match self {
            RecordKind::Connected { local, peer } => Input::Connected {
                local: *local,
                peer: *peer,
            },
            RecordKind::ConnectFailed { kind, reason } => Input::ConnectFailed(IoFailure::new(*kind, reason)),
            RecordKind::Input(data) => Input::Data(data),
            RecordKind::Eof => Input::Eof,
            RecordKind::IoError { kind, reason } => Input::IoError(IoFailure::new(*kind, reason)),
            RecordKind::Timeout => Input::Timeout,
            RecordKind::Close => Input::Close,
            RecordKind::UdpOpened { pair, result } => Input::UdpOpened {
                pair: *pair,
                result: result.as_ref().map(|p| *p).map_err(String::as_str),
            },
            RecordKind::Datagram { socket, from, data } => Input::Datagram {
                socket: *socket,
                from: *from,
                data,
            },
            RecordKind::Pause => Input::Pause,
            RecordKind::Play { range, scale } => Input::Play {
                range: *range,
                scale: *scale,
            },
        }
    }
}

/// An input and when it was handed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// From session start (recorded in nanoseconds).
    pub offset: Duration,
    /// The input.
    pub kind: RecordKind,
}

/// A whole capture, read into memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capture {
    /// The recorded session settings.
    pub header: CaptureHeader,
    /// The inputs, in the order they were handed in.
    pub records: Vec<Record>,
}

impl Capture {
    /// Reads a capture. Total: any bytes give `Ok` or a typed error, and no
    /// allocation is larger than the input.
    ///
    /// ```
    /// use rtsp_toolkit_core::capture::{Capture, CaptureError};
    /// assert_eq!(Capture::parse(b"GIF89a"), Err(CaptureError::BadMagic));
    /// ```
    pub fn parse(data: &[u8]) -> Result<Capture, CaptureError> {
        let mut r = Reader { data, at: 0 };
        if data.len() < MAGIC.len() {
            return if MAGIC.starts_with(data) {
                Err(CaptureError::Truncated {
                    what: "magic",
                    at: data.len(),
                })
            } else {
                Err(CaptureError::BadMagic)
            };
        }
        if r.take(MAGIC.len(), "magic")? != MAGIC {
            return Err(CaptureError::BadMagic);
        }
        let version = r.u16("version")?;
        if !(1..=VERSION).contains(&version) {
            return Err(CaptureError::UnsupportedVersion(version));
        }
        let header_len = r.u32("header length")?;
        if header_len > MAX_HEADER_LEN {
            return Err(CaptureError::HeaderTooLong(header_len));
        }
        let header_bytes = r.take(header_len as usize, "header")?;
        let header = CaptureHeader::decode(
            &mut Reader {
                data: header_bytes,
                at: 0,
            },
            version,
        )
        .map_err(|e| match e {
            CaptureError::Truncated { .. } => CaptureError::BadHeader("header fields run past its length".into()),
            other => other,
        })?;
        let mut records = Vec::new();
        while r.at < data.len() {
            records.push(Record::decode(&mut r, version)?);
        }
        Ok(Capture { header, records })
    }

    /// The file bytes of this capture (what a [`CaptureWriter`] would have
    /// written for it).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = BytesMut::new();
        self.header.encode(&mut out);
        for r in &self.records {
            r.encode(&mut out);
        }
        out.to_vec()
    }

    /// Everything the server sent, in order (the concatenated input records).
    pub fn received(&self) -> BytesMut {
        let mut out = BytesMut::new();
        for r in &self.records {
            if let RecordKind::Input(b) = &r.kind {
                out.extend_from_slice(b);
            }
        }
        out
    }
}

impl Record {
    fn encode(&self, out: &mut BytesMut) {
        encode_record(self.offset, self.kind.as_input(), out);
    }

    fn decode(r: &mut Reader<'_>, version: u16) -> Result<Record, CaptureError> {
        let at = r.at;
        let kind = r.u8("record")?;
        let offset = Duration::from_nanos(r.u64("record")?);
        let len = r.u32("record")?;
        if len > MAX_RECORD_LEN {
            return Err(CaptureError::RecordTooLong { at, len });
        }
        let payload = r.take(len as usize, "record payload")?;
        let bad = |detail: &str| CaptureError::BadRecord {
            at,
            detail: detail.to_owned(),
        };
        let text = |p: &[u8]| {
            std::str::from_utf8(p)
                .map(str::to_owned)
                .map_err(|_| bad("reason is not UTF-8"))
        };
        // Version 3 puts the failure's kind in front of the reason.
        let failure = |p: &[u8]| -> Result<(io::ErrorKind, String), CaptureError> {
            match p.split_first() {
                Some((code, reason)) if version >= 3 => Ok((kind_of_code(*code), text(reason)?)),
                None if version >= 3 => Err(bad("truncated error kind")),
                _ => Ok((io::ErrorKind::Other, text(p)?)),
            }
        };
        let empty = |k: RecordKind| {
            if payload.is_empty() {
                Ok(k)
            } else {
                Err(bad("payload on a record that has none"))
            }
        };
        let kind = match kind {
            KIND_CONNECTED => {
                let mut p = Reader { data: payload, at: 0 };
                let mut addr = || -> Result<SocketAddr, CaptureError> {
                    let s = p.string("address").map_err(|_| bad("truncated address"))?;
                    s.parse().map_err(|_| bad("bad socket address"))
                };
                let (local, peer) = (addr()?, addr()?);
                RecordKind::Connected { local, peer }
            }
            KIND_CONNECT_FAILED => {
                let (kind, reason) = failure(payload)?;
                RecordKind::ConnectFailed { kind, reason }
            }
            KIND_INPUT => RecordKind::Input(Bytes::copy_from_slice(payload)),
            KIND_EOF => empty(RecordKind::Eof)?,
            KIND_IO_ERROR => {
                let (kind, reason) = failure(payload)?;
                RecordKind::IoError { kind, reason }
            }
            KIND_TIMEOUT => empty(RecordKind::Timeout)?,
            KIND_CLOSE => empty(RecordKind::Close)?,
            KIND_UDP_OPENED => {
                let mut p = Reader { data: payload, at: 0 };
                let pair = p.u16("pair").map_err(|_| bad("truncated pair"))?;
                let result = match p.u8("result").map_err(|_| bad("truncated result"))? {
                    0 => Ok(p.u16("port").map_err(|_| bad("truncated port"))?),
                    _ => Err(text(&payload[p.at..])?),
                };
                RecordKind::UdpOpened { pair, result }
            }
            KIND_DATAGRAM => {
                let mut p = Reader { data: payload, at: 0 };
                let pair = p.u16("pair").map_err(|_| bad("truncated pair"))?;
                let rtcp = p.u8("socket").map_err(|_| bad("truncated socket"))? != 0;
                let from = p.string("address").map_err(|_| bad("truncated address"))?;
                let from = from.parse().map_err(|_| bad("bad socket address"))?;
                RecordKind::Datagram {
                    socket: UdpSocketId { pair, rtcp },
                    from,
                    data: Bytes::copy_from_slice(&payload[p.at..]),
                }
            }
            KIND_PAUSE => empty(RecordKind::Pause)?,
            KIND_PLAY => {
                let mut p = Reader { data: payload, at: 0 };
                let flags = p.u8("play").map_err(|_| bad("truncated play flags"))?;
                let mut time = |bit: u8| -> Result<Option<Duration>, CaptureError> {
                    if flags & bit == 0 {
                        return Ok(None);
                    }
                    let ns = p.u64("play").map_err(|_| bad("truncated play range"))?;
                    Ok(Some(Duration::from_nanos(ns)))
                };
                let range = PlayRange {
                    start: time(1)?,
                    end: time(2)?,
                };
                let scale = if flags & 4 != 0 {
                    let bits = p.u64("play").map_err(|_| bad("truncated play scale"))?;
                    Some(Scale::new(f64::from_bits(bits)).map_err(|e| bad(&e))?)
                } else {
                    None
                };
                if p.at != payload.len() {
                    return Err(bad("trailing bytes after play"));
                }
                RecordKind::Play { range, scale }
            }
            kind => return Err(CaptureError::UnknownRecord { at, kind }),
        };
        Ok(Record { offset, kind })
    }
}

/// Appends the record of `input` handed in `offset` after the start; a long
/// `Data` becomes several records with the same offset (which replays
/// identically).
fn encode_record(offset: Duration, input: Input<'_>, out: &mut BytesMut) {
    let ns = duration_ns(offset);
    let mut put = |kind: u8, payload: &[u8]| {
        out.put_u8(kind);
        out.put_u64(ns);
        out.put_u32(payload.len() as u32);
        out.put_slice(payload);
    };
    match input {
        Input::Connected { local, peer } => {
            let mut p = BytesMut::new();
            put_string(&mut p, &local.to_string());
            put_string(&mut p, &peer.to_string());
            put(KIND_CONNECTED, &p);
        }
        Input::ConnectFailed(f) => put(KIND_CONNECT_FAILED, &failure_payload(f)),
        Input::Data([]) => put(KIND_INPUT, &[]),
        Input::Data(data) => {
            for chunk in data.chunks(MAX_RECORD_LEN as usize) {
                put(KIND_INPUT, chunk);
            }
        }
        Input::Eof => put(KIND_EOF, &[]),
        Input::IoError(f) => put(KIND_IO_ERROR, &failure_payload(f)),
        Input::Timeout => put(KIND_TIMEOUT, &[]),
        Input::Close => put(KIND_CLOSE, &[]),
        Input::UdpOpened { pair, result } => {
            let mut p = BytesMut::new();
            p.put_u16(pair);
            match result {
                Ok(port) => {
                    p.put_u8(0);
                    p.put_u16(port);
                }
                Err(reason) => {
                    p.put_u8(1);
                    p.put_slice(clip(reason).as_bytes());
                }
            }
            put(KIND_UDP_OPENED, &p);
        }
        Input::Datagram { socket, from, data } => {
            // A datagram is at most 64 KiB: one record.
            let mut p = BytesMut::with_capacity(data.len() + 64);
            p.put_u16(socket.pair);
            p.put_u8(u8::from(socket.rtcp));
            put_string(&mut p, &from.to_string());
            p.put_slice(&data[..data.len().min(MAX_RECORD_LEN as usize - 64)]);
            put(KIND_DATAGRAM, &p);
        }
        Input::Pause => put(KIND_PAUSE, &[]),
        Input::Play { range, scale } => {
            let mut p = BytesMut::with_capacity(25);
            let flags =
                u8::from(range.start.is_some()) | u8::from(range.end.is_some()) << 1 | u8::from(scale.is_some()) << 2;
            p.put_u8(flags);
            for d in [range.start, range.end].into_iter().flatten() {
                p.put_u64(duration_ns(d));
            }
            if let Some(s) = scale {
                p.put_u64(s.get().to_bits());
            }
            put(KIND_PLAY, &p);
        }
    }
}

/// Sans-IO encoder of a capture: the header at creation, then one record per
/// call; [`CaptureWriter::take`] hands out what was encoded since the last
/// call, to be appended to the file.
#[derive(Debug)]
pub struct CaptureWriter {
    start: Instant,
    out: BytesMut,
}

impl CaptureWriter {
    /// A capture of a session that started at `start` (the instant given to
    /// [`Client::new`](crate::client::Client::new)).
    pub fn new(header: &CaptureHeader, start: Instant) -> CaptureWriter {
        let mut out = BytesMut::new();
        header.encode(&mut out);
        CaptureWriter { start, out }
    }

    /// Records an input handed to the client at `now`.
    pub fn record(&mut self, now: Instant, input: Input<'_>) {
        encode_record(now.saturating_duration_since(self.start), input, &mut self.out);
    }

    /// The bytes encoded since the last call (the header first).
    pub fn take(&mut self) -> Bytes {
        self.out.split().freeze()
    }

    /// How many encoded bytes wait for [`CaptureWriter::take`].
    pub fn pending(&self) -> usize {
        self.out.len()
    }
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn put_string(out: &mut BytesMut, s: &str) {
    let s = crate::rtcp::truncate_utf8(s, u16::MAX as usize);
    out.put_u16(s.len() as u16);
    out.put_slice(s.as_bytes());
}

/// Reasons are short in practice; the cut keeps a record under its limit.
fn clip(s: &str) -> &str {
    crate::rtcp::truncate_utf8(s, 4096)
}

/// A connect-failure or I/O-error record's payload: the kind's code, then the reason.
fn failure_payload(f: IoFailure<'_>) -> Vec<u8> {
    let reason = clip(f.reason).as_bytes();
    let mut p = Vec::with_capacity(1 + reason.len());
    p.push(code_of_kind(f.kind));
    p.extend_from_slice(reason);
    p
}

/// The `io::ErrorKind`s a capture records, by code (the index): those a
/// network session meets. Code 0, and every kind not listed, is
/// [`io::ErrorKind::Other`]. New kinds are appended; codes never change.
const IO_KINDS: [io::ErrorKind; 23] = [
    io::ErrorKind::Other,
    io::ErrorKind::NotFound,
    io::ErrorKind::PermissionDenied,
    io::ErrorKind::ConnectionRefused,
    io::ErrorKind::ConnectionReset,
    io::ErrorKind::HostUnreachable,
    io::ErrorKind::NetworkUnreachable,
    io::ErrorKind::ConnectionAborted,
    io::ErrorKind::NotConnected,
    io::ErrorKind::AddrInUse,
    io::ErrorKind::AddrNotAvailable,
    io::ErrorKind::NetworkDown,
    io::ErrorKind::BrokenPipe,
    io::ErrorKind::AlreadyExists,
    io::ErrorKind::WouldBlock,
    io::ErrorKind::InvalidInput,
    io::ErrorKind::InvalidData,
    io::ErrorKind::TimedOut,
    io::ErrorKind::WriteZero,
    io::ErrorKind::Interrupted,
    io::ErrorKind::Unsupported,
    io::ErrorKind::UnexpectedEof,
    io::ErrorKind::OutOfMemory,
];

fn code_of_kind(kind: io::ErrorKind) -> u8 {
    IO_KINDS.iter().position(|k| *k == kind).unwrap_or(0) as u8
}

fn kind_of_code(code: u8) -> io::ErrorKind {
    IO_KINDS.get(usize::from(code)).copied().unwrap_or(io::ErrorKind::Other)
}

/// `kind` as a capture records it: itself, or [`io::ErrorKind::Other`] for
/// a kind the format has no code for. The client reports this kind, so that
/// a replayed session's errors equal the live ones.
pub(crate) fn portable_kind(kind: io::ErrorKind) -> io::ErrorKind {
    kind_of_code(code_of_kind(kind))
}
/// A cursor over borrowed bytes; every read is bounds-checked.
struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], CaptureError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.data.len())
            .ok_or(CaptureError::Truncated {
                what,
                at: self.data.len(),
            })?;
        let s = &self.data[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], CaptureError> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, CaptureError> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, CaptureError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, CaptureError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, CaptureError> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    fn string(&mut self, what: &'static str) -> Result<String, CaptureError> {
        let len = self.u16(what)? as usize;
        let bytes = self.take(len, what)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| CaptureError::BadHeader(format!("{what}: not UTF-8")))
    }
}
