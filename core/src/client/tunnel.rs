//! RTSP over HTTP tunnels, the client's side: the rules, without I/O.
//!
//! The scheme is QuickTime's (the one FFmpeg's `-rtsp_transport http`,
//! GStreamer's `rtsph://`, live555 and cameras use; the server's side is
//! [`crate::server::tunnel`]). A session opens two HTTP connections to the
//! server that share one `x-sessioncookie`:
//! - the **GET** half ([`get_request`]) is answered `HTTP/1.0 200 OK`
//!   ([`parse_response`]); after that head, the server's RTSP responses and
//!   interleaved media come down it exactly as on a plain RTSP connection;
//! - the **POST** half ([`post_request`]) is opened once the GET is
//!   answered, never answered itself, and carries the client's RTSP
//!   requests (and interleaved RTCP), each write in base64 on its own
//!   ([`encode`]), as FFmpeg and GStreamer write it.
//!
//! The runtime plumbing that opens the POST connection and moves the bytes
//! is the driver's (`docs/ARCHITECTURE.md`, "RTSP over HTTP tunnels
//! (client)"). Nothing here panics or allocates more than its input and
//! [`MAX_RESPONSE_HEAD`].

use base64::Engine as _;

use crate::http_head::{head_end, TUNNEL_TYPE};

/// Longest GET response head read before the tunnel is given up.
pub const MAX_RESPONSE_HEAD: usize = 8 * 1024;

/// The `Content-Length` the POST half announces. The body lasts as long as
/// the session; servers ignore the number (FFmpeg and GStreamer send this
/// same large dummy), but some proxies need one.
pub const POST_CONTENT_LENGTH: u32 = 32767;

/// The tunnel a session goes through, as the `Connect` event reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TunnelInfo {
    /// The `x-sessioncookie` both halves carried.
    pub cookie: String,
    /// The GET response's `Server` header, if any.
    pub server: Option<String>,
}

/// A fresh `x-sessioncookie` from `seed`: 22 characters of `[A-Za-z0-9]`
/// (131 bits), unpredictable when the seed is. The driver seeds it from the
/// system's randomness; tests pass fixed seeds.
///
/// ```
/// use rtsp_toolkit_core::client::tunnel::cookie;
/// assert_eq!(cookie(1).len(), 22);
/// assert_ne!(cookie(1), cookie(2));
/// assert!(cookie(7).bytes().all(|b| b.is_ascii_alphanumeric()));
/// ```
pub fn cookie(seed: u64) -> String {
    const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = crate::rand::SplitMix64::new(seed);
    (0..22)
        .map(|_| char::from(ALPHABET[(rng.next_u64() % 62) as usize]))
        .collect()
}

/// The request-target both halves use: the URL's path and query (what
/// FFmpeg and GStreamer send; servers pair the halves by cookie, not path).
pub fn request_target(url: &url::Url) -> String {
    let mut target = url.path().to_owned();
    if target.is_empty() {
        target.push('/');
    }
    if let Some(q) = url.query() {
        target.push('?');
        target.push_str(q);
    }
    target
}

/// The GET half's request head, for `target` on `host` (the `Host` header:
/// `host[:port]` as in the URL).
///
/// ```
/// use rtsp_toolkit_core::client::tunnel::get_request;
/// let head = String::from_utf8(get_request("/cam", "cam.local:8080", "abc", "ua/1")).unwrap();
/// assert!(head.starts_with("GET /cam HTTP/1.0\r\n"));
/// assert!(head.contains("\r\nx-sessioncookie: abc\r\n"));
/// assert!(head.contains("\r\nAccept: application/x-rtsp-tunnelled\r\n"));
/// assert!(head.ends_with("\r\n\r\n"));
/// ```
pub fn get_request(target: &str, host: &str, cookie: &str, user_agent: &str) -> Vec<u8> {
    format!(
        "GET {target} HTTP/1.0\r\n\
         Host: {host}\r\n\
         User-Agent: {user_agent}\r\n\
         x-sessioncookie: {cookie}\r\n\
         Accept: {TUNNEL_TYPE}\r\n\
         Pragma: no-cache\r\n\
         Cache-Control: no-cache\r\n\
         \r\n"
    )
    .into_bytes()
}

/// The POST half's request head (its body follows, for as long as the
/// session lasts).
///
/// ```
/// use rtsp_toolkit_core::client::tunnel::post_request;
/// let head = String::from_utf8(post_request("/cam", "cam.local", "abc", "ua/1")).unwrap();
/// assert!(head.starts_with("POST /cam HTTP/1.0\r\n"));
/// assert!(head.contains("\r\nContent-Type: application/x-rtsp-tunnelled\r\n"));
/// assert!(head.contains("\r\nContent-Length: 32767\r\n"));
/// ```
pub fn post_request(target: &str, host: &str, cookie: &str, user_agent: &str) -> Vec<u8> {
    format!(
        "POST {target} HTTP/1.0\r\n\
         Host: {host}\r\n\
         User-Agent: {user_agent}\r\n\
         x-sessioncookie: {cookie}\r\n\
         Content-Type: {TUNNEL_TYPE}\r\n\
         Pragma: no-cache\r\n\
         Cache-Control: no-cache\r\n\
         Content-Length: {POST_CONTENT_LENGTH}\r\n\
         Expires: Sun, 9 Jan 1972 00:00:00 GMT\r\n\
         \r\n"
    )
    .into_bytes()
}

/// One write of the POST body: `plain` in base64 with its padding, so that
/// the server can decode each request as soon as it arrives.
///
/// ```
/// assert_eq!(rtsp_toolkit_core::client::tunnel::encode(b"OPTIONS"), b"T1BUSU9OUw==");
/// ```
pub fn encode(plain: &[u8]) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.encode(plain).into_bytes()
}

/// The GET half's answer: its status, and what it says about the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelResponse {
    /// The status code (`200` opens the tunnel).
    pub status: u16,
    /// The reason phrase, as received.
    pub reason: String,
    /// The `Server` header, if any.
    pub server: Option<String>,
}

/// Why the GET half did not open a tunnel.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TunnelResponseError {
    /// No complete head within [`MAX_RESPONSE_HEAD`] bytes.
    HeadTooLarge,
    /// Not an HTTP response (an RTSP server that does not tunnel answers
    /// `RTSP/1.0 ...`, or nothing sensible).
    NotHttp(String),
    /// An HTTP answer other than 200: the server refused the tunnel.
    Refused {
        /// The status code.
        status: u16,
        /// The reason phrase.
        reason: String,
    },
}

impl std::fmt::Display for TunnelResponseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TunnelResponseError::HeadTooLarge => write!(
                f,
                "HTTP tunnel: no complete response head in the first {MAX_RESPONSE_HEAD} bytes"
            ),
            TunnelResponseError::NotHttp(line) => {
                write!(f, "HTTP tunnel: the answer to the GET is not HTTP: {line:?}")
            }
            TunnelResponseError::Refused { status, reason } => {
                let hint = match status {
                    401 | 407 => {
                        " (HTTP authentication of the tunnel itself is not supported; RTSP authentication inside it is)"
                    }
                    404 | 405 | 501 => " (the server may not accept tunnels on this port)",
                    _ => "",
                };
                write!(f, "HTTP tunnel refused: {status} {reason}{hint}")
            }
        }
    }
}

impl std::error::Error for TunnelResponseError {}

/// Reads the GET half's response head from the start of `buf`: the
/// response (status 200) and the head's length (the bytes after it are
/// RTSP), or `Ok(None)` while the head is incomplete and under
/// [`MAX_RESPONSE_HEAD`]. Lines end with CRLF or LF; header names match in
/// any case. A status other than 200 is [`TunnelResponseError::Refused`].
///
/// ```
/// use rtsp_toolkit_core::client::tunnel::parse_response;
/// let (r, len) = parse_response(b"HTTP/1.0 200 OK\r\nServer: cam\r\n\r\nRTSP/1.0").unwrap().unwrap();
/// assert_eq!((r.status, r.server.as_deref(), len), (200, Some("cam"), 32));
/// assert_eq!(parse_response(b"HTTP/1.0 200 OK\r\n"), Ok(None));
/// assert!(parse_response(b"HTTP/1.1 404 Not Found\r\n\r\n").is_err());
/// ```
pub fn parse_response(buf: &[u8]) -> Result<Option<(TunnelResponse, usize)>, TunnelResponseError> {
    let window = buf.get(..buf.len().min(MAX_RESPONSE_HEAD)).unwrap_or_default();
    // A first line that cannot start an HTTP response fails at once (an
    // RTSP server answering the GET with `RTSP/1.0 400`, or garbage).
    let first_line_end = window.iter().position(|&b| b == b'\n');
    let first = window.get(..first_line_end.unwrap_or(window.len())).unwrap_or_default();
    let prefix = b"HTTP/1.";
    let n = first.len().min(prefix.len());
    if first.get(..n) != prefix.get(..n) {
        return Err(TunnelResponseError::NotHttp(printable(first)));
    }
    let Some(len) = head_end(window) else {
        return if buf.len() >= MAX_RESPONSE_HEAD {
            Err(TunnelResponseError::HeadTooLarge)
        } else {
            Ok(None)
        };
    };
    let head = String::from_utf8_lossy(window.get(..len).unwrap_or_default());
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let status = parts.next().and_then(|s| s.parse::<u16>().ok());
    let reason = parts.next().unwrap_or_default().trim().to_owned();
    let status = match status {
        Some(s) if (version == "HTTP/1.0" || version == "HTTP/1.1") && (100..1000).contains(&s) => s,
        _ => return Err(TunnelResponseError::NotHttp(printable(status_line.as_bytes()))),
    };
    if status != 200 {
        return Err(TunnelResponseError::Refused { status, reason });
    }
    let server = lines
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("server"))
        .map(|(_, v)| v.trim().to_owned());
    Ok(Some((TunnelResponse { status, reason, server }, len)))
}

/// At most 80 characters of `line`, for an error message.
fn printable(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line.get(..line.len().min(80)).unwrap_or_default());
    text.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses() {
        // Byte by byte: incomplete until the blank line.
        let full = b"HTTP/1.1 200 OK\nServer: GStreamer RTSP server\nCache-Control: no-store\n\n\x24\x00";
        for cut in 0..full.len() - 2 {
            assert_eq!(parse_response(&full[..cut]), Ok(None), "cut {cut}");
        }
        let (r, len) = parse_response(full).unwrap().unwrap();
        assert_eq!(len, full.len() - 2);
        assert_eq!(r.server.as_deref(), Some("GStreamer RTSP server"));
        // Refusals and non-HTTP answers say what they are.
        let e = parse_response(b"HTTP/1.0 401 Unauthorized\r\n\r\n").unwrap_err();
        assert!(e.to_string().contains("401 Unauthorized"), "{e}");
        let e = parse_response(b"RTSP/1.0 400 Bad Request\r\n").unwrap_err();
        assert!(matches!(e, TunnelResponseError::NotHttp(_)), "{e:?}");
        assert!(matches!(parse_response(b"HTX"), Err(TunnelResponseError::NotHttp(_))));
        assert!(matches!(
            parse_response(b"HTTP/1.0 abc OK\r\n\r\n"),
            Err(TunnelResponseError::NotHttp(_))
        ));
        let mut big = b"HTTP/1.0 200 OK\r\n".to_vec();
        big.resize(MAX_RESPONSE_HEAD + 10, b'a');
        assert_eq!(parse_response(&big), Err(TunnelResponseError::HeadTooLarge));
    }

    #[test]
    fn targets() {
        let u = url::Url::parse("rtsp://h:1/a/b.mp4?play_count=2").unwrap();
        assert_eq!(request_target(&u), "/a/b.mp4?play_count=2");
        let u = url::Url::parse("rtsp://h").unwrap();
        assert_eq!(request_target(&u), "/");
    }
}
