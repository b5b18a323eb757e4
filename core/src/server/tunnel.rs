//! RTSP over HTTP tunnels, the server's side: the rules, without I/O.
//!
//! The scheme (QuickTime's, which FFmpeg's `-rtsp_transport http`,
//! GStreamer's `rtsph://` and live555 use) takes two HTTP connections to the
//! RTSP port that share one `x-sessioncookie`:
//! - the GET half (`Accept: application/x-rtsp-tunnelled`) is answered
//!   `HTTP/1.0 200 OK` ([`GET_RESPONSE`]); after that, the server's RTSP
//!   responses and interleaved media go down it as on a plain RTSP
//!   connection;
//! - the POST half (`Content-Type: application/x-rtsp-tunnelled`) gets no
//!   answer; its body is the client's RTSP requests in base64, split anywhere
//!   ([`Base64Decoder`]), under a `Content-Length` that is a large dummy
//!   number and is ignored. Some clients open a new POST for every request.
//!
//! What is here: telling an HTTP first line from an RTSP one ([`sniff`]),
//! reading a tunnel request's head ([`parse_head`], with the cookie's rules),
//! decoding the POST body as it comes, and the limits a server holds tunnels
//! to ([`MAX_HEAD`], [`MAX_COOKIE`], [`MAX_UNPAIRED`], [`PAIRING_TIMEOUT`]).
//! The runtime pairs the halves and feeds the decoded bytes to the GET
//! connection's [`Connection`](super::Connection) (`docs/ARCHITECTURE.md`,
//! "RTSP over HTTP tunnels (server)"). Nothing here panics or allocates
//! more than its input.

use std::fmt;
use std::time::Duration;

use crate::http_head::head_end;
pub use crate::http_head::TUNNEL_TYPE;

/// Longest HTTP request head (request line and headers) a tunnel half may
/// send; past it the request is refused with `431`.
pub const MAX_HEAD: usize = 8 * 1024;

/// Longest `x-sessioncookie`, in bytes (clients send 22 to 32).
pub const MAX_COOKIE: usize = 128;

/// Most tunnel halves a server keeps waiting for their other half at once;
/// past it, a new unpaired half is answered `503`.
pub const MAX_UNPAIRED: usize = 1024;

/// How long a half waits for its other half (and a tunnel connection for
/// its request head) before it is closed.
pub const PAIRING_TIMEOUT: Duration = Duration::from_secs(10);

/// What the first bytes of a connection are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniff {
    /// RTSP (or anything that is not an HTTP `GET` or `POST`): for the
    /// connection machine.
    Rtsp,
    /// An HTTP `GET` or `POST`: a tunnel half, or a stray HTTP request.
    Http,
    /// Too few bytes to tell yet.
    NeedMore,
}

/// What the first bytes `first` of a connection are: an HTTP `GET ` or
/// `POST ` (RTSP has no `POST`, and its `GET_PARAMETER` has no space after
/// `GET`), RTSP, or too few bytes to tell (at most 5 are needed).
pub fn sniff(first: &[u8]) -> Sniff {
    let mut undecided = false;
    for word in [&b"GET "[..], b"POST "] {
        let n = first.len().min(word.len());
        if first.get(..n) == word.get(..n) {
            if n == word.len() {
                return Sniff::Http;
            }
            undecided = true;
        }
    }
    if undecided {
        Sniff::NeedMore
    } else {
        Sniff::Rtsp
    }
}

/// Which half of a tunnel a request opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Half {
    /// The GET half: the server's bytes go down it.
    Get,
    /// The POST half: the client's requests come up it, in base64.
    Post,
}

/// A tunnel half's request head, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelRequest {
    /// Which half.
    pub half: Half,
    /// The `x-sessioncookie` that pairs the halves (printable ASCII, 1 to
    /// [`MAX_COOKIE`] bytes).
    pub cookie: String,
    /// The request target as sent (informational: the RTSP requests inside
    /// name their own URLs).
    pub target: String,
}

/// Why an HTTP request on the RTSP port is not a tunnel half; each has the
/// status it is answered with ([`TunnelError::response`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TunnelError {
    /// No end of the head within [`MAX_HEAD`] bytes (`431`).
    HeadTooLarge,
    /// Not an HTTP/1.x request line, a header line without a colon, or not
    /// text (`400`).
    Malformed(&'static str),
    /// A GET without `Accept: application/x-rtsp-tunnelled`: a plain HTTP
    /// request, which this RTSP server does not serve (`400`, with a body
    /// that says so).
    NotTunnel,
    /// A POST whose `Content-Type` is not `application/x-rtsp-tunnelled` (`415`).
    WrongContentType,
    /// No `x-sessioncookie` header (`400`).
    MissingCookie,
    /// An empty cookie, one over [`MAX_COOKIE`] bytes, or one with a byte
    /// that is not printable ASCII (`400`).
    BadCookie,
}

impl TunnelError {
    /// The HTTP status code and reason phrase.
    pub fn status(&self) -> (u16, &'static str) {
        match self {
            TunnelError::HeadTooLarge => (431, "Request Header Fields Too Large"),
            TunnelError::WrongContentType => (415, "Unsupported Media Type"),
            TunnelError::Malformed(_)
            | TunnelError::NotTunnel
            | TunnelError::MissingCookie
            | TunnelError::BadCookie => (400, "Bad Request"),
        }
    }

    /// The whole HTTP response (`HTTP/1.0`, `Connection: close`, the reason
    /// in a short text body); the connection is closed after it.
    pub fn response(&self) -> Vec<u8> {
        let (code, reason) = self.status();
        error_response(code, reason, &self.to_string())
    }
}

impl fmt::Display for TunnelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TunnelError::HeadTooLarge => write!(f, "HTTP request head over {MAX_HEAD} bytes"),
            TunnelError::Malformed(why) => write!(f, "malformed HTTP request: {why}"),
            TunnelError::NotTunnel => write!(
                f,
                "this is an RTSP server: over HTTP it serves only RTSP tunnels (Accept: {TUNNEL_TYPE})"
            ),
            TunnelError::WrongContentType => write!(f, "a tunnel's POST must have Content-Type: {TUNNEL_TYPE}"),
            TunnelError::MissingCookie => write!(f, "a tunnel request needs an x-sessioncookie header"),
            TunnelError::BadCookie => write!(f, "x-sessioncookie must be 1 to {MAX_COOKIE} bytes of printable ASCII"),
        }
    }
}

impl std::error::Error for TunnelError {}

/// An HTTP/1.0 error response with `detail` as its text body, for a tunnel
/// request that is refused (`code` and `reason`, e.g. `503 Service
/// Unavailable` when [`MAX_UNPAIRED`] halves are waiting already).
pub fn error_response(code: u16, reason: &str, detail: &str) -> Vec<u8> {
    format!(
        "HTTP/1.0 {code} {reason}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{detail}\n",
        detail.len() + 1
    )
    .into_bytes()
}

/// The answer to a GET half, after which RTSP flows down its connection:
/// no caching anywhere on the way, and no length (the body lasts as long as
/// the connection).
pub const GET_RESPONSE: &[u8] = b"HTTP/1.0 200 OK\r\n\
Server: rtsp-toolkit\r\n\
Connection: close\r\n\
Cache-Control: no-store\r\n\
Pragma: no-cache\r\n\
Expires: Sun, 9 Jan 1972 00:00:00 GMT\r\n\
Content-Type: application/x-rtsp-tunnelled\r\n\
\r\n";

/// Reads a tunnel half's request head from the start of `buf`: the request
/// and the length of the head (the bytes after it are a POST's body), or
/// `Ok(None)` while the head is not complete (and under [`MAX_HEAD`]).
///
/// Lines end with CRLF or LF; header names match in any case; a GET must
/// accept [`TUNNEL_TYPE`] (besides others), a POST must be of that type;
/// both need a valid `x-sessioncookie`.
pub fn parse_head(buf: &[u8]) -> Result<Option<(TunnelRequest, usize)>, TunnelError> {
    let window = buf.get(..buf.len().min(MAX_HEAD)).unwrap_or_default();
    let Some(len) = head_end(window) else {
        return if buf.len() >= MAX_HEAD {
            Err(TunnelError::HeadTooLarge)
        } else {
            Ok(None)
        };
    };
    let head = window.get(..len).unwrap_or_default();
    let text = std::str::from_utf8(head).map_err(|_| TunnelError::Malformed("the head is not UTF-8"))?;
    let mut lines = text.lines();
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ').filter(|p| !p.is_empty());
    let (method, target, version) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(v), None) => (m, t, v),
        _ => return Err(TunnelError::Malformed("the request line is not METHOD TARGET HTTP/1.x")),
    };
    if version != "HTTP/1.0" && version != "HTTP/1.1" {
        return Err(TunnelError::Malformed("not HTTP/1.0 or HTTP/1.1"));
    }
    let half = match method {
        "GET" => Half::Get,
        "POST" => Half::Post,
        _ => return Err(TunnelError::Malformed("a tunnel request is a GET or a POST")),
    };
    let (mut cookie, mut accept, mut content_type) = (None, false, None);
    for line in lines {
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(TunnelError::Malformed("a header line without a colon"));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("x-sessioncookie") {
            cookie.get_or_insert(value);
        } else if name.eq_ignore_ascii_case("accept") {
            accept |= value
                .split(',')
                .any(|t| media_type(t).eq_ignore_ascii_case(TUNNEL_TYPE));
        } else if name.eq_ignore_ascii_case("content-type") {
            content_type.get_or_insert(media_type(value));
        }
    }
    match half {
        Half::Get if !accept => return Err(TunnelError::NotTunnel),
        Half::Post if !content_type.is_some_and(|t| t.eq_ignore_ascii_case(TUNNEL_TYPE)) => {
            return Err(TunnelError::WrongContentType)
        }
        _ => {}
    }
    let cookie = cookie.ok_or(TunnelError::MissingCookie)?;
    if cookie.is_empty() || cookie.len() > MAX_COOKIE || !cookie.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(TunnelError::BadCookie);
    }
    let request = TunnelRequest {
        half,
        cookie: cookie.to_owned(),
        target: target.to_owned(),
    };
    Ok(Some((request, len)))
}

/// A media type without its parameters and spaces (`text/plain; q=1` → `text/plain`).
fn media_type(value: &str) -> &str {
    value.split(';').next().unwrap_or_default().trim()
}

/// Why a POST body is not base64.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base64Error {
    /// A byte that is neither of the base64 alphabet, `=`, nor whitespace.
    InvalidByte(u8),
    /// `=` where it cannot be (before the third character of a group of
    /// four, or followed by data in its group).
    BadPadding,
}

impl fmt::Display for Base64Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Base64Error::InvalidByte(b) => write!(f, "byte 0x{b:02x} is not base64"),
            Base64Error::BadPadding => f.write_str("misplaced base64 padding"),
        }
    }
}

impl std::error::Error for Base64Error {}

/// A POST body's base64 decoded as it arrives (standard alphabet).
///
/// Chunks may split a group of four characters anywhere; whitespace is
/// skipped wherever it is; a padded group ends one encoded piece and the
/// next may follow at once (clients encode each request on its own). After
/// an error the decoder stays failed: the POST is to be refused. Written here
/// rather than taken from the `base64` crate (which the client's Basic auth
/// uses): that crate decodes whole inputs, and this must carry a partial
/// group from one chunk to the next.
#[derive(Debug, Clone, Default)]
pub struct Base64Decoder {
    /// The 6-bit values of the group so far, high first.
    bits: u32,
    /// Characters of the group so far (padding included).
    n: u8,
    /// `=` in the group so far.
    pad: u8,
    failed: Option<Base64Error>,
}

impl Base64Decoder {
    /// A decoder at the start of a body.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes `input` onto the end of `out` (at most `input.len() * 3 / 4 + 3`
    /// bytes more).
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), Base64Error> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        out.reserve(input.len() / 4 * 3 + 3);
        for &b in input {
            if let Err(e) = self.push(b, out) {
                self.failed = Some(e);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Whether the body so far ended on a whole group (nothing held back).
    pub fn is_aligned(&self) -> bool {
        self.n == 0
    }

    fn push(&mut self, b: u8, out: &mut Vec<u8>) -> Result<(), Base64Error> {
        if matches!(b, b' ' | b'\t' | b'\r' | b'\n') {
            return Ok(());
        }
        if b == b'=' {
            if self.n < 2 {
                return Err(Base64Error::BadPadding);
            }
            self.pad += 1;
            self.bits <<= 6;
        } else {
            if self.pad > 0 {
                return Err(Base64Error::BadPadding);
            }
            let v = sextet(b).ok_or(Base64Error::InvalidByte(b))?;
            self.bits = (self.bits << 6) | u32::from(v);
        }
        self.n += 1;
        if self.n == 4 {
            let [_, a, b, c] = self.bits.to_be_bytes();
            let whole = [a, b, c];
            let keep = 3usize.saturating_sub(usize::from(self.pad));
            out.extend_from_slice(whole.get(..keep).unwrap_or_default());
            self.bits = 0;
            self.n = 0;
            self.pad = 0;
        }
        Ok(())
    }
}

/// The value of a base64 character.
fn sextet(b: u8) -> Option<u8> {
    match b {
        b'A'..=b'Z' => Some(b - b'A'),
        b'a'..=b'z' => Some(b - b'a' + 26),
        b'0'..=b'9' => Some(b - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(data: &[u8]) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(data)
    }

    #[test]
    fn sniffs_http_from_rtsp_in_five_bytes() {
        assert_eq!(sniff(b""), Sniff::NeedMore);
        assert_eq!(sniff(b"GE"), Sniff::NeedMore);
        assert_eq!(sniff(b"POST"), Sniff::NeedMore);
        assert_eq!(sniff(b"GET /"), Sniff::Http);
        assert_eq!(sniff(b"POST /x HTTP/1.0"), Sniff::Http);
        assert_eq!(sniff(b"GET_PARAMETER rtsp://x RTSP/1.0"), Sniff::Rtsp);
        assert_eq!(sniff(b"OPTIONS * RTSP/1.0"), Sniff::Rtsp);
        assert_eq!(sniff(b"$\x00\x00\x04"), Sniff::Rtsp);
        assert_eq!(sniff(b"P"), Sniff::NeedMore);
        assert_eq!(sniff(b"PLAY "), Sniff::Rtsp);
    }

    const GET: &str = "GET /h264_aac.mp4 HTTP/1.0\r\nx-sessioncookie: abc123XYZ\r\nAccept: application/x-rtsp-tunnelled\r\nPragma: no-cache\r\n\r\n";

    #[test]
    fn reads_both_halves() {
        let (req, len) = parse_head(GET.as_bytes()).unwrap().unwrap();
        assert_eq!(len, GET.len());
        assert_eq!(req.half, Half::Get);
        assert_eq!(req.cookie, "abc123XYZ");
        assert_eq!(req.target, "/h264_aac.mp4");
        let post = "POST /h264_aac.mp4 HTTP/1.1\nX-SessionCookie: abc123XYZ\nContent-Type: Application/X-RTSP-Tunnelled\nContent-Length: 32767\n\nT1BUSU9O";
        let (req, len) = parse_head(post.as_bytes()).unwrap().unwrap();
        assert_eq!(req.half, Half::Post);
        assert_eq!(&post[len..], "T1BUSU9O");
        // Incomplete heads wait, however split.
        for cut in 0..GET.len() {
            assert_eq!(parse_head(&GET.as_bytes()[..cut]), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn refuses_what_is_not_a_tunnel_half() {
        let err = |s: &str| parse_head(s.as_bytes()).unwrap_err();
        assert_eq!(err("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), TunnelError::NotTunnel);
        assert_eq!(
            err("GET / HTTP/1.1\r\nAccept: text/html, application/x-rtsp-tunnelled;q=1\r\n\r\n"),
            TunnelError::MissingCookie
        );
        assert_eq!(
            err("POST / HTTP/1.1\r\nx-sessioncookie: a\r\nContent-Type: text/plain\r\n\r\n"),
            TunnelError::WrongContentType
        );
        assert_eq!(
            err("GET / RTSP/1.0\r\n\r\n"),
            TunnelError::Malformed("not HTTP/1.0 or HTTP/1.1")
        );
        assert_eq!(
            err("GET /\r\n\r\n"),
            TunnelError::Malformed("the request line is not METHOD TARGET HTTP/1.x")
        );
        assert_eq!(
            err("GET / HTTP/1.0\r\nno colon\r\n\r\n"),
            TunnelError::Malformed("a header line without a colon")
        );
        let long = GET.replace("abc123XYZ", &"c".repeat(MAX_COOKIE + 1));
        assert_eq!(err(&long), TunnelError::BadCookie);
        assert_eq!(err(&GET.replace("abc123XYZ", "a b")), TunnelError::BadCookie);
        assert_eq!(err(&GET.replace("abc123XYZ", "")), TunnelError::BadCookie);
        assert_eq!(err(&GET.replace("abc123XYZ", "\u{e9}")), TunnelError::BadCookie);
        assert!(parse_head(GET.replace("abc123XYZ", &"c".repeat(MAX_COOKIE)).as_bytes()).is_ok());
        let huge = format!("GET / HTTP/1.0\r\nX: {}", "y".repeat(MAX_HEAD));
        assert_eq!(err(&huge), TunnelError::HeadTooLarge);
        assert_eq!(
            parse_head(&[0xff, b'\n', b'\n']),
            Err(TunnelError::Malformed("the head is not UTF-8"))
        );
        let r = TunnelError::NotTunnel.response();
        assert!(r.starts_with(b"HTTP/1.0 400 Bad Request\r\n"));
    }

    #[test]
    fn decodes_base64_split_anywhere() {
        let requests: [&[u8]; 3] = [
            b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n",
            b"DESCRIBE x RTSP/1.0\r\n\r\n",
            b"a",
        ];
        let body: String = requests.iter().map(|r| encode(r)).collect::<Vec<_>>().join("\r\n");
        let want: Vec<u8> = requests.concat();
        for step in 1..9 {
            let mut d = Base64Decoder::new();
            let mut out = Vec::new();
            for chunk in body.as_bytes().chunks(step) {
                d.decode(chunk, &mut out).unwrap();
            }
            assert_eq!(out, want, "chunks of {step}");
            assert!(d.is_aligned());
        }
    }

    #[test]
    fn refuses_garbage_base64_for_good() {
        let mut d = Base64Decoder::new();
        let mut out = Vec::new();
        assert_eq!(d.decode(b"QUJD!", &mut out), Err(Base64Error::InvalidByte(b'!')));
        assert_eq!(out, b"ABC");
        assert_eq!(d.decode(b"QUJD", &mut out), Err(Base64Error::InvalidByte(b'!')));
        for bad in [&b"Q==="[..], b"=", b"QU=J"] {
            assert_eq!(
                Base64Decoder::new().decode(bad, &mut out),
                Err(Base64Error::BadPadding),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn our_clients_requests_are_accepted() {
        let c = crate::client::tunnel::cookie(42);
        let get = crate::client::tunnel::get_request("/a?x=1", "h:1", &c, "ua");
        let (req, len) = parse_head(&get).unwrap().unwrap();
        assert_eq!(
            (req.half, req.cookie.as_str(), req.target.as_str(), len),
            (Half::Get, c.as_str(), "/a?x=1", get.len())
        );
        let post = crate::client::tunnel::post_request("/a", "h", &c, "ua");
        let (req, _) = parse_head(&post).unwrap().unwrap();
        assert_eq!((req.half, req.cookie), (Half::Post, c));
    }

    #[test]
    fn our_clients_writes_decode_one_after_another() {
        let mut d = Base64Decoder::new();
        let mut out = Vec::new();
        for chunk in [&b"OPTIONS rtsp://h/ RTSP/1.0\r\n"[..], b"C", b"Seq: 1\r\n\r\n"] {
            d.decode(&crate::client::tunnel::encode(chunk), &mut out).unwrap();
        }
        assert_eq!(out, b"OPTIONS rtsp://h/ RTSP/1.0\r\nCSeq: 1\r\n\r\n");
    }
}
