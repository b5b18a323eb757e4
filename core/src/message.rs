//! RTSP/1.0 message framing: requests, responses and `$`-interleaved binary
//! frames sharing one byte stream (RFC 2326 §4, §10.12).
//!
//! [`Decoder`] splits messages off a single input buffer without copying
//! payloads: bodies and interleaved frames are handed out as [`Bytes`] views of
//! the received data. Every buffer is bounded by [`Limits`]; going past a limit
//! is a typed [`FramingError`] as soon as it is known (a `Content-Length` that
//! is too large fails before the body arrives), never growth.
//!
//! This module knows nothing of sessions, CSeq matching or authentication:
//! that is the job of the client and server machines.

use std::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Why bytes from a peer are not an RTSP message or interleaved frame: the
/// stream is out of sync and the connection cannot go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FramingError {
    /// The start line and header block are longer than [`Limits::max_header_bytes`].
    #[error("header block larger than the {limit}-byte limit")]
    HeaderTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The `Content-Length` is over [`Limits::max_body_bytes`] (known before the body arrives).
    #[error("body of {len} bytes is over the {limit}-byte limit")]
    BodyTooLarge {
        /// The `Content-Length`, in bytes.
        len: u64,
        /// The limit, in bytes.
        limit: usize,
    },
    /// More header fields than [`Limits::max_headers`].
    #[error("more than {limit} header fields")]
    TooManyHeaders {
        /// The limit, in fields.
        limit: usize,
    },
    /// A start line that is neither a request line nor a status line (its
    /// first 200 characters).
    #[error("bad start line: {0:?}")]
    BadStartLine(String),
    /// A header block that does not parse (why, in words).
    #[error("bad header: {0}")]
    BadHeader(String),
    /// A `Content-Length` that is not a number (its first 40 characters),
    /// or two that differ.
    #[error("bad Content-Length: {0:?}")]
    BadContentLength(String),
    /// A byte that can start neither a message (a letter) nor an interleaved frame (`$`).
    /// The message says when it starts a TLS handshake or alert record (0x16,
    /// 0x15): the peer speaks TLS and this side does not (`rtsp://` to an
    /// RTSPS port, or a TLS client at a plain port).
    #[error("unexpected byte 0x{byte:02x} where a message should start{}", tls_hint(*byte))]
    UnexpectedByte {
        /// The byte.
        byte: u8,
    },
    /// [`encode_interleaved`] was given a payload over 65535 bytes.
    #[error("interleaved payload of {len} bytes does not fit in a frame (max 65535)")]
    InterleavedTooLarge {
        /// The payload's length, in bytes.
        len: usize,
    },
}

/// The hint of [`FramingError::UnexpectedByte`] for a byte that starts a TLS
/// record (RFC 8446 §5.1: 21 alert, 22 handshake).
fn tls_hint(byte: u8) -> &'static str {
    match byte {
        0x15 | 0x16 => {
            " (it starts a TLS record: the peer speaks TLS and this side does not; rtsps:// is RTSP over TLS)"
        }
        _ => "",
    }
}

/// Bounds on what the decoder accepts.
///
/// ```
/// use rtsp_toolkit_core::message::Limits;
/// let limits = Limits { max_body_bytes: 64 * 1024, ..Limits::default() };
/// assert_eq!(limits.max_header_bytes, 64 * 1024);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct Limits {
    /// Largest start line plus header block, blank line included (default 64 KiB).
    pub max_header_bytes: usize,
    /// Largest message body (default 1 MiB).
    pub max_body_bytes: usize,
    /// Most header fields in one message (default 128).
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: 64 * 1024,
            max_body_bytes: 1024 * 1024,
            max_headers: 128,
        }
    }
}

/// An RTSP method. Unknown methods are kept verbatim in [`Method::Other`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    /// `OPTIONS` (RFC 2326 §10.1).
    Options,
    /// `DESCRIBE` (RFC 2326 §10.2).
    Describe,
    /// `SETUP` (RFC 2326 §10.4).
    Setup,
    /// `PLAY` (RFC 2326 §10.5).
    Play,
    /// `PAUSE` (RFC 2326 §10.6).
    Pause,
    /// `TEARDOWN` (RFC 2326 §10.7).
    Teardown,
    /// `GET_PARAMETER` (RFC 2326 §10.8).
    GetParameter,
    /// `SET_PARAMETER` (RFC 2326 §10.9).
    SetParameter,
    /// `ANNOUNCE` (RFC 2326 §10.3).
    Announce,
    /// `RECORD` (RFC 2326 §10.11).
    Record,
    /// `REDIRECT` (RFC 2326 §10.10).
    Redirect,
    /// Any other token.
    Other(String),
}

impl Method {
    /// The method as written on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Options => "OPTIONS",
            Method::Describe => "DESCRIBE",
            Method::Setup => "SETUP",
            Method::Play => "PLAY",
            Method::Pause => "PAUSE",
            Method::Teardown => "TEARDOWN",
            Method::GetParameter => "GET_PARAMETER",
            Method::SetParameter => "SET_PARAMETER",
            Method::Announce => "ANNOUNCE",
            Method::Record => "RECORD",
            Method::Redirect => "REDIRECT",
            Method::Other(s) => s,
        }
    }

    /// Parses a method token (case-sensitive, as RFC 2326 specifies).
    pub fn from_token(token: &str) -> Method {
        match token {
            "OPTIONS" => Method::Options,
            "DESCRIBE" => Method::Describe,
            "SETUP" => Method::Setup,
            "PLAY" => Method::Play,
            "PAUSE" => Method::Pause,
            "TEARDOWN" => Method::Teardown,
            "GET_PARAMETER" => Method::GetParameter,
            "SET_PARAMETER" => Method::SetParameter,
            "ANNOUNCE" => Method::Announce,
            "RECORD" => Method::Record,
            "REDIRECT" => Method::Redirect,
            other => Method::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Header fields in received order. Lookups are case-insensitive; repeated
/// names are kept (e.g. several `WWW-Authenticate`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    /// An empty header list.
    pub fn new() -> Self {
        Headers(Vec::new())
    }

    /// Appends a field.
    pub fn push(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.push((name.into(), value.into()));
    }

    /// Builder form of [`Headers::push`].
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.push(name, value);
        self
    }

    /// The first value of `name`, case-insensitively.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, in received order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All fields in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no fields.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The `CSeq` value, if present and numeric.
    pub fn cseq(&self) -> Option<u32> {
        self.get("CSeq").and_then(|v| v.trim().parse().ok())
    }
}

/// An RTSP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The Request-URI, as sent (never carries credentials).
    pub uri: String,
    /// The header fields, in order (decoded values are trimmed).
    pub headers: Headers,
    /// The body; empty when there is none. [`Request::encode`] writes its
    /// `Content-Length`.
    pub body: Bytes,
}

impl Request {
    /// Serializes the request; `Content-Length` is added when there is a body.
    pub fn encode(&self, out: &mut BytesMut) {
        out.reserve(64 + self.uri.len() + self.body.len());
        out.put_slice(self.method.as_str().as_bytes());
        out.put_u8(b' ');
        out.put_slice(self.uri.as_bytes());
        out.put_slice(b" RTSP/1.0\r\n");
        encode_headers(&self.headers, &self.body, out);
    }
}

/// An RTSP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The three-digit status code (RFC 2326 §7.1.1).
    pub status: u16,
    /// The reason phrase, trimmed; may be empty.
    pub reason: String,
    /// The header fields, in order (decoded values are trimmed).
    pub headers: Headers,
    /// The body (a DESCRIBE's SDP, ...); empty when there is none.
    /// [`Response::encode`] writes its `Content-Length`.
    pub body: Bytes,
}

impl Response {
    /// Serializes the response; `Content-Length` is added when there is a body.
    pub fn encode(&self, out: &mut BytesMut) {
        out.put_slice(b"RTSP/1.0 ");
        out.put_slice(self.status.to_string().as_bytes());
        out.put_u8(b' ');
        out.put_slice(self.reason.as_bytes());
        out.put_slice(b"\r\n");
        encode_headers(&self.headers, &self.body, out);
    }
}

fn encode_headers(headers: &Headers, body: &Bytes, out: &mut BytesMut) {
    for (name, value) in headers.iter() {
        if name.eq_ignore_ascii_case("Content-Length") {
            continue;
        }
        out.put_slice(name.as_bytes());
        out.put_slice(b": ");
        out.put_slice(value.as_bytes());
        out.put_slice(b"\r\n");
    }
    if !body.is_empty() {
        out.put_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    out.put_slice(b"\r\n");
    out.put_slice(body);
}

/// The `interleaved=` channels of a `Transport` value (RFC 2326 §12.39): the
/// first transport of a list is the one chosen; `interleaved=N` alone means
/// `N-(N+1)`. `None` when there is none or it cannot be read.
pub(crate) fn parse_interleaved(transport: &str) -> Option<(u8, u8)> {
    let first = transport.split(',').next()?;
    let v = first.split(';').find_map(|p| p.trim().strip_prefix("interleaved="))?;
    let mut it = v.split('-');
    let a: u8 = it.next()?.trim().parse().ok()?;
    let b: u8 = match it.next() {
        Some(b) => b.trim().parse().ok()?,
        None => a.checked_add(1)?,
    };
    Some((a, b))
}

/// A `Session` value (RFC 2326 §12.37): the id and its `timeout=` in seconds,
/// if one is given and readable. `None` for an empty id.
pub(crate) fn parse_session(value: &str) -> Option<(&str, Option<u64>)> {
    let mut parts = value.split(';');
    let id = parts.next().unwrap_or("").trim();
    if id.is_empty() {
        return None;
    }
    let timeout = parts.find_map(|p| p.trim().strip_prefix("timeout=")?.trim().parse::<u64>().ok());
    Some((id, timeout))
}

/// Writes one `$`-interleaved frame. Payloads over 65535 bytes cannot be framed.
pub fn encode_interleaved(channel: u8, payload: &[u8], out: &mut BytesMut) -> Result<(), FramingError> {
    let len = u16::try_from(payload.len()).map_err(|_| FramingError::InterleavedTooLarge { len: payload.len() })?;
    out.reserve(4 + payload.len());
    out.put_u8(b'$');
    out.put_u8(channel);
    out.put_u16(len);
    out.put_slice(payload);
    Ok(())
}

/// One unit split off the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A request (a server receives these; a client, rarely).
    Request(Request),
    /// A response.
    Response(Response),
    /// A `$` frame: channel and payload (RTP or RTCP, decided by the session).
    Interleaved {
        /// The channel byte after the `$` (RFC 2326 §10.12).
        channel: u8,
        /// The payload (up to 65535 bytes), a view of the received bytes.
        payload: Bytes,
    },
}

/// Largest allocation the decoder grows to while payloads are held, unless a
/// single message needs more.
const MAX_BLOCK: usize = 1024 * 1024;

/// Incremental decoder for one connection's input.
///
/// ```
/// use rtsp_toolkit_core::message::{Decoder, Limits, Message};
/// let mut dec = Decoder::new(Limits::default());
/// dec.extend(b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n$\x00\x00\x02hi");
/// assert!(matches!(dec.decode().unwrap(), Some(Message::Response(r)) if r.status == 200));
/// assert!(matches!(dec.decode().unwrap(), Some(Message::Interleaved { channel: 0, .. })));
/// assert!(dec.decode().unwrap().is_none());
/// ```
#[derive(Debug)]
pub struct Decoder {
    buf: BytesMut,
    /// The allocation `buf` used before, kept (empty) for reuse once every
    /// payload split off it has been dropped.
    spare: BytesMut,
    /// Size of the last allocation made.
    block: usize,
    /// Allocations made by `make_room`.
    #[cfg(test)]
    allocations: usize,
    limits: Limits,
    /// Where the blank-line search resumes, so a header block arriving one
    /// byte at a time is scanned once, not quadratically.
    scanned: usize,
    /// Header block parsed, waiting for this many body bytes.
    pending: Option<Pending>,
}

#[derive(Debug)]
struct Pending {
    head_len: usize,
    body_len: usize,
    start: StartLine,
    headers: Headers,
}

#[derive(Debug)]
enum StartLine {
    Request { method: Method, uri: String },
    Response { status: u16, reason: String },
}

impl Decoder {
    /// A decoder with the given limits.
    pub fn new(limits: Limits) -> Self {
        Decoder {
            buf: BytesMut::new(),
            spare: BytesMut::new(),
            block: 0,
            #[cfg(test)]
            allocations: 0,
            limits,
            scanned: 0,
            pending: None,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Appends received bytes.
    pub fn extend(&mut self, data: &[u8]) {
        let room = self.buf.capacity() - self.buf.len();
        // When every payload split off so far has been dropped, the buffered
        // bytes (a partial message) move to the front of the allocation, so
        // that the next bytes land in memory that is still in cache. (Asking
        // for more than the room left is what makes it look before `buf`;
        // it never allocates, and moves nothing when more is buffered than
        // was split off.)
        let room = if self.buf.try_reclaim(room + 1) {
            self.buf.capacity() - self.buf.len()
        } else {
            room
        };
        if room < data.len() {
            self.make_room(data.len());
        }
        self.buf.extend_from_slice(data);
    }

    /// Makes room for `more` bytes after the buffered ones when payloads
    /// split off `buf` are still held (say, queued as events for a consumer
    /// that has not taken them yet) or it is too small: the buffered bytes
    /// move to the allocation used before, if every payload split off it
    /// has been dropped, else to a new one; the one left becomes the spare.
    /// So while a consumer holds payloads, two allocations take turns
    /// instead of a new one for every read. A new allocation has room for
    /// two reads; twice the size of the one before (up to [`MAX_BLOCK`])
    /// when the spare was still held, so that it is free again by the time
    /// it is needed.
    fn make_room(&mut self, more: usize) {
        let need = self.buf.len() + more;
        // Asking for more than the room left makes it look before `spare`.
        let free = self.spare.try_reclaim(self.spare.capacity() + 1);
        if !free || self.spare.capacity() < need.max(self.block / 4 * 3) {
            let block = if free {
                self.block
            } else {
                self.block.saturating_mul(2).min(MAX_BLOCK)
            };
            self.block = need.saturating_mul(2).max(block);
            self.spare = BytesMut::with_capacity(self.block);
            #[cfg(test)]
            {
                self.allocations += 1;
            }
        }
        self.spare.extend_from_slice(&self.buf);
        std::mem::swap(&mut self.buf, &mut self.spare);
        self.spare.clear();
    }

    /// Bytes received but not yet split into messages.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Splits the next complete message off the buffer, if there is one.
    ///
    /// After an error the stream is out of sync; the caller should close it.
    pub fn decode(&mut self) -> Result<Option<Message>, FramingError> {
        if let Some(p) = &self.pending {
            let total = p.head_len + p.body_len;
            if self.buf.len() < total {
                return Ok(None);
            }
            let p = self.pending.take().expect("checked above");
            self.buf.advance(p.head_len);
            let body = self.buf.split_to(p.body_len).freeze();
            self.scanned = 0;
            return Ok(Some(match p.start {
                StartLine::Request { method, uri } => Message::Request(Request {
                    method,
                    uri,
                    headers: p.headers,
                    body,
                }),
                StartLine::Response { status, reason } => Message::Response(Response {
                    status,
                    reason,
                    headers: p.headers,
                    body,
                }),
            }));
        }
        // Cameras sometimes put stray CR/LF between messages; skip them.
        while matches!(self.buf.first(), Some(b'\r' | b'\n')) {
            self.buf.advance(1);
        }
        let Some(&first) = self.buf.first() else {
            self.scanned = 0;
            return Ok(None);
        };
        if first == b'$' {
            if self.buf.len() < 4 {
                return Ok(None);
            }
            let channel = self.buf[1];
            let len = usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]]));
            if self.buf.len() < 4 + len {
                return Ok(None);
            }
            self.buf.advance(4);
            let payload = self.buf.split_to(len).freeze();
            return Ok(Some(Message::Interleaved { channel, payload }));
        }
        if !first.is_ascii_alphabetic() {
            return Err(FramingError::UnexpectedByte { byte: first });
        }
        let Some(head_len) = self.find_head_end()? else {
            return Ok(None);
        };
        let (start, headers) = parse_head(&self.buf[..head_len], &self.limits)?;
        let body_len = content_length(&headers)?;
        if body_len > self.limits.max_body_bytes as u64 {
            return Err(FramingError::BodyTooLarge {
                len: body_len,
                limit: self.limits.max_body_bytes,
            });
        }
        self.pending = Some(Pending {
            head_len,
            body_len: body_len as usize,
            start,
            headers,
        });
        self.decode()
    }

    /// Length of the head (start line through blank line), once complete.
    fn find_head_end(&mut self) -> Result<Option<usize>, FramingError> {
        let limit = self.limits.max_header_bytes;
        let buf = &self.buf[..];
        // Resume a little before where the last scan stopped: the terminator
        // may straddle the boundary.
        let mut i = self.scanned.saturating_sub(3);
        while let Some(off) = buf[i..].iter().position(|&b| b == b'\n') {
            let nl = i + off;
            let rest = &buf[nl + 1..];
            match rest {
                [b'\n', ..] => return self.head_found(nl + 2, limit),
                [b'\r', b'\n', ..] => return self.head_found(nl + 3, limit),
                [] | [b'\r'] => break,
                _ => i = nl + 1,
            }
            if i > limit {
                break;
            }
        }
        self.scanned = buf.len();
        if buf.len() > limit {
            return Err(FramingError::HeaderTooLarge { limit });
        }
        Ok(None)
    }

    fn head_found(&mut self, len: usize, limit: usize) -> Result<Option<usize>, FramingError> {
        if len > limit {
            return Err(FramingError::HeaderTooLarge { limit });
        }
        Ok(Some(len))
    }
}

fn parse_head(head: &[u8], limits: &Limits) -> Result<(StartLine, Headers), FramingError> {
    let line_end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    let line = trim_cr(&head[..line_end]);
    let line = std::str::from_utf8(line).map_err(|_| FramingError::BadStartLine(lossy(line)))?;
    let start = parse_start_line(line)?;
    let block = &head[(line_end + 1).min(head.len())..];
    let headers = parse_header_block(block, limits.max_headers)?;
    Ok((start, headers))
}

fn parse_start_line(line: &str) -> Result<StartLine, FramingError> {
    let bad = || FramingError::BadStartLine(line.chars().take(200).collect());
    if let Some(rest) = line.strip_prefix("RTSP/") {
        // "RTSP/1.0 200 OK": status line, parsed by hand (httparse only knows HTTP).
        let mut parts = rest.splitn(3, ' ');
        let version = parts.next().ok_or_else(bad)?;
        if !version.starts_with("1.") && !version.starts_with("2.") {
            return Err(bad());
        }
        let code = parts.next().ok_or_else(bad)?;
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let status: u16 = code.parse().map_err(|_| bad())?;
        let reason = parts.next().unwrap_or("").trim().to_owned();
        return Ok(StartLine::Response { status, reason });
    }
    let mut parts = line.split(' ').filter(|p| !p.is_empty());
    let (Some(method), Some(uri), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    if !version.starts_with("RTSP/") || !method.bytes().all(|b| b.is_ascii_alphabetic() || b == b'_') {
        return Err(bad());
    }
    Ok(StartLine::Request {
        method: Method::from_token(method),
        uri: uri.to_owned(),
    })
}

fn parse_header_block(block: &[u8], max_headers: usize) -> Result<Headers, FramingError> {
    let mut storage = vec![httparse::EMPTY_HEADER; max_headers.min(1024)];
    match httparse::parse_headers(block, &mut storage) {
        Ok(httparse::Status::Complete((_, parsed))) => {
            let mut headers = Headers(Vec::with_capacity(parsed.len()));
            for h in parsed.iter() {
                headers.push(h.name, String::from_utf8_lossy(h.value).trim().to_owned());
            }
            Ok(headers)
        }
        Ok(httparse::Status::Partial) => Err(FramingError::BadHeader("incomplete header block".into())),
        Err(httparse::Error::TooManyHeaders) => Err(FramingError::TooManyHeaders { limit: max_headers }),
        Err(e) => Err(FramingError::BadHeader(e.to_string())),
    }
}

fn content_length(headers: &Headers) -> Result<u64, FramingError> {
    let mut found: Option<u64> = None;
    for v in headers.get_all("Content-Length") {
        let n = v
            .trim()
            .parse::<u64>()
            .map_err(|_| FramingError::BadContentLength(v.chars().take(40).collect()))?;
        // Two different lengths: which one frames the message is ambiguous
        // (the classic request-smuggling shape), so neither is trusted.
        if found.is_some_and(|f| f != n) {
            return Err(FramingError::BadContentLength(
                "conflicting Content-Length headers".into(),
            ));
        }
        found = Some(n);
    }
    Ok(found.unwrap_or(0))
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(&b[..b.len().min(200)]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8]) -> Result<Vec<Message>, FramingError> {
        let mut d = Decoder::new(Limits::default());
        d.extend(input);
        let mut out = vec![];
        while let Some(m) = d.decode()? {
            out.push(m);
        }
        Ok(out)
    }

    #[test]
    fn response_with_body_then_interleaved() {
        let input = b"RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Type: application/sdp\r\nContent-Length: 5\r\n\r\nv=0\r\n$\x01\x00\x03abc";
        let msgs = decode_all(input).unwrap();
        assert_eq!(msgs.len(), 2);
        let Message::Response(r) = &msgs[0] else { panic!() };
        assert_eq!((r.status, r.reason.as_str()), (200, "OK"));
        assert_eq!(r.headers.cseq(), Some(2));
        assert_eq!(r.headers.get("content-type"), Some("application/sdp"));
        assert_eq!(&r.body[..], b"v=0\r\n");
        assert_eq!(
            msgs[1],
            Message::Interleaved {
                channel: 1,
                payload: Bytes::from_static(b"abc")
            }
        );
    }

    #[test]
    fn every_split_point_gives_same_messages() {
        let input: &[u8] = b"RTSP/1.0 401 Unauthorized\r\nCSeq: 3\r\nWWW-Authenticate: Basic realm=\"x\"\r\n\r\n$\x00\x00\x04abcdOPTIONS rtsp://h/ RTSP/1.0\r\nCSeq: 9\r\n\r\nRTSP/1.0 200 OK\nCSeq: 4\n\n";
        let whole = decode_all(input).unwrap();
        assert_eq!(whole.len(), 4);
        for split in 0..input.len() {
            let mut d = Decoder::new(Limits::default());
            let mut got = vec![];
            d.extend(&input[..split]);
            while let Some(m) = d.decode().unwrap() {
                got.push(m);
            }
            d.extend(&input[split..]);
            while let Some(m) = d.decode().unwrap() {
                got.push(m);
            }
            assert_eq!(got, whole, "split at {split}");
        }
    }

    /// `count` interleaved frames of `len` bytes; frame `i` is filled with `i as u8`.
    fn frames(count: usize, len: usize) -> Vec<u8> {
        let mut out = BytesMut::new();
        for i in 0..count {
            encode_interleaved(0, &vec![i as u8; len], &mut out).unwrap();
        }
        out.to_vec()
    }

    #[test]
    fn held_payloads_make_two_allocations_take_turns() {
        let input = frames(4000, 1400);
        for lag in [0, 40, 400] {
            let mut d = Decoder::new(Limits::default());
            let mut held = std::collections::VecDeque::new();
            let mut i = 0usize;
            let mut after_half = 0;
            for (k, piece) in input.chunks(64 * 1024).enumerate() {
                if k == input.len() / (2 * 64 * 1024) {
                    after_half = d.allocations;
                }
                d.extend(piece);
                while let Some(m) = d.decode().unwrap() {
                    let Message::Interleaved { payload, .. } = m else {
                        panic!()
                    };
                    held.push_back((i, payload));
                    i += 1;
                    if held.len() > lag {
                        // Held payloads keep their bytes whatever the decoder reuses.
                        let (n, p) = held.pop_front().unwrap();
                        assert!(
                            p.len() == 1400 && p.iter().all(|&b| b == n as u8),
                            "lag {lag}: frame {n}"
                        );
                    }
                }
            }
            assert_eq!(i, 4000);
            for (n, p) in held {
                assert!(p.iter().all(|&b| b == n as u8), "lag {lag}: frame {n}");
            }
            // A few allocations while the sizes settle, none in the second half.
            assert!(d.allocations <= 6, "lag {lag}: {} allocations", d.allocations);
            assert_eq!(d.allocations, after_half, "lag {lag}: allocating in the second half");
        }
    }

    #[test]
    fn byte_at_a_time() {
        let input = b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nContent-Length: 3\r\n\r\nabc";
        let mut d = Decoder::new(Limits::default());
        let mut got = None;
        for b in input.iter() {
            d.extend(&[*b]);
            if let Some(m) = d.decode().unwrap() {
                got = Some(m);
            }
        }
        assert!(matches!(got, Some(Message::Response(r)) if &r.body[..] == b"abc"));
    }

    #[test]
    fn request_round_trip() {
        let req = Request {
            method: Method::Setup,
            uri: "rtsp://127.0.0.1/a.mp4/stream=0".into(),
            headers: Headers::new()
                .with("CSeq", "3")
                .with("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1"),
            body: Bytes::new(),
        };
        let mut out = BytesMut::new();
        req.encode(&mut out);
        assert_eq!(
            &out[..],
            b"SETUP rtsp://127.0.0.1/a.mp4/stream=0 RTSP/1.0\r\nCSeq: 3\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n"
        );
        let msgs = decode_all(&out).unwrap();
        assert_eq!(msgs, vec![Message::Request(req)]);
    }

    #[test]
    fn response_round_trip_with_body() {
        let resp = Response {
            status: 404,
            reason: "Not Found".into(),
            headers: Headers::new().with("CSeq", "1").with("Content-Length", "4"),
            body: Bytes::from_static(b"nope"),
        };
        let mut out = BytesMut::new();
        resp.encode(&mut out);
        assert_eq!(decode_all(&out).unwrap(), vec![Message::Response(resp)]);
    }

    #[test]
    fn huge_content_length_fails_before_body() {
        let err = decode_all(b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nContent-Length: 1099511627776\r\n\r\n").unwrap_err();
        assert_eq!(
            err,
            FramingError::BodyTooLarge {
                len: 1 << 40,
                limit: 1024 * 1024
            }
        );
        assert!(matches!(
            decode_all(b"RTSP/1.0 200 OK\r\nContent-Length: -1\r\n\r\n"),
            Err(FramingError::BadContentLength(_))
        ));
        assert!(matches!(
            decode_all(b"RTSP/1.0 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"),
            Err(FramingError::BadContentLength(_))
        ));
        // The same value twice is harmless.
        assert!(decode_all(b"RTSP/1.0 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab").is_ok());
    }

    #[test]
    fn endless_header_block_fails_at_limit() {
        let limits = Limits {
            max_header_bytes: 1024,
            ..Limits::default()
        };
        let mut d = Decoder::new(limits);
        d.extend(b"RTSP/1.0 200 OK\r\n");
        let mut fed = 0;
        let err = loop {
            d.extend(b"X-Junk: 0123456789\r\n");
            fed += 1;
            match d.decode() {
                Ok(None) => assert!(fed < 100, "no error after {fed} lines"),
                Ok(Some(m)) => panic!("unexpected {m:?}"),
                Err(e) => break e,
            }
        };
        assert_eq!(err, FramingError::HeaderTooLarge { limit: 1024 });
        assert!(d.buffered() <= 1024 + 64);
    }

    #[test]
    fn one_long_header_line_fails_at_limit() {
        let mut d = Decoder::new(Limits::default());
        d.extend(b"RTSP/1.0 200 OK\r\nX: ");
        d.extend(&vec![b'a'; 70 * 1024]);
        assert_eq!(d.decode(), Err(FramingError::HeaderTooLarge { limit: 64 * 1024 }));
    }

    #[test]
    fn too_many_headers() {
        let mut input = b"RTSP/1.0 200 OK\r\n".to_vec();
        for i in 0..200 {
            input.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        input.extend_from_slice(b"\r\n");
        assert_eq!(decode_all(&input), Err(FramingError::TooManyHeaders { limit: 128 }));
    }

    #[test]
    fn garbage_is_typed_error() {
        assert_eq!(decode_all(b"\x00\x01"), Err(FramingError::UnexpectedByte { byte: 0 }));
        // A TLS alert where a plain answer was expected says so.
        let e = decode_all(b"\x15\x03\x03\x00\x02\x02\x46").unwrap_err();
        assert!(e.to_string().contains("the peer speaks TLS"), "{e}");
        assert!(!FramingError::UnexpectedByte { byte: 0 }.to_string().contains("TLS"));
        assert!(matches!(
            decode_all(b"RTSP/1.0 2x0 OK\r\n\r\n"),
            Err(FramingError::BadStartLine(_))
        ));
        assert!(matches!(
            decode_all(b"HELLO\r\n\r\n"),
            Err(FramingError::BadStartLine(_))
        ));
        assert!(matches!(
            decode_all(b"RTSP/1.0 200 OK\r\nno colon here\r\n\r\n"),
            Err(FramingError::BadHeader(_))
        ));
    }

    #[test]
    fn interleaved_encode_limits() {
        let mut out = BytesMut::new();
        encode_interleaved(2, &[1, 2, 3], &mut out).unwrap();
        assert_eq!(&out[..], b"$\x02\x00\x03\x01\x02\x03");
        assert!(encode_interleaved(0, &vec![0; 70000], &mut out).is_err());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..2048), split in 0usize..2048) {
            let limits = Limits { max_header_bytes: 512, max_body_bytes: 512, max_headers: 16 };
            let mut d = Decoder::new(limits);
            let split = split.min(data.len());
            for chunk in [&data[..split], &data[split..]] {
                d.extend(chunk);
                loop {
                    match d.decode() {
                        Ok(Some(Message::Response(r))) => proptest::prop_assert!(r.body.len() <= 512),
                        Ok(Some(Message::Request(r))) => proptest::prop_assert!(r.body.len() <= 512),
                        Ok(Some(_)) => {}
                        Ok(None) | Err(_) => break,
                    }
                }
            }
        }

        #[test]
        fn structured_fragments_never_panic(parts in proptest::collection::vec(proptest::sample::select(vec![
            "RTSP/1.0 200 OK\r\n", "CSeq: 1\r\n", "Content-Length: 4\r\n", "Content-Length: 99999999999\r\n",
            "\r\n", "\n", "$\x00\x00\x02", "ab", "OPTIONS * RTSP/1.0\r\n", ":\r\n", "\r", "RTSP/1.0 ",
        ]), 0..40)) {
            let mut d = Decoder::new(Limits { max_header_bytes: 256, max_body_bytes: 1024, max_headers: 8 });
            for p in parts {
                d.extend(p.as_bytes());
                while let Ok(Some(_)) = d.decode() {}
            }
        }
    }
}
