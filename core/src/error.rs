//! Errors at the session boundary.
//!
//! [`Error`] has the four kinds users of the original toolkit know
//! (connection, timeout, protocol, response). Each carries what a person needs
//! to act on it; none ever carries credentials.

use std::time::Duration;

use crate::message::Method;

/// Why a session ended, or could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The TCP connection could not be made, or broke.
    #[error("connection error: {0}")]
    Connection(String),
    /// Nothing arrived within the configured timeout.
    #[error("timeout: no {waiting_for} within {timeout:?}")]
    Timeout {
        /// What was awaited ("connection", "response to DESCRIBE", "media data", ...).
        waiting_for: String,
        timeout: Duration,
    },
    /// The peer sent something this toolkit cannot accept.
    #[error("protocol error: {0}")]
    Protocol(#[from] ProtocolError),
    /// The server answered a request with a failure status.
    #[error("{method} failed: {status} {reason}")]
    Response {
        method: Method,
        status: u16,
        reason: String,
    },
    /// The session was configured in a way that cannot work.
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// What was wrong with the bytes a peer sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    #[error("header block larger than the {limit}-byte limit")]
    HeaderTooLarge { limit: usize },
    #[error("body of {len} bytes is over the {limit}-byte limit")]
    BodyTooLarge { len: u64, limit: usize },
    #[error("more than {limit} header fields")]
    TooManyHeaders { limit: usize },
    #[error("bad start line: {0:?}")]
    BadStartLine(String),
    #[error("bad header: {0}")]
    BadHeader(String),
    #[error("bad Content-Length: {0:?}")]
    BadContentLength(String),
    #[error("unexpected byte 0x{byte:02x} where a message should start")]
    UnexpectedByte { byte: u8 },
    #[error("interleaved payload of {len} bytes does not fit in a frame (max 65535)")]
    InterleavedTooLarge { len: usize },
    #[error("bad SDP: {0}")]
    Sdp(#[from] crate::sdp::SdpError),
    #[error("authentication: {0}")]
    Auth(#[from] crate::auth::AuthError),
    #[error("{method} response has no usable {header} header: {detail}")]
    MissingHeader {
        method: Method,
        header: &'static str,
        detail: String,
    },
    #[error("server sent a {method} request, which a client does not take")]
    UnexpectedRequest { method: Method },
    #[error("no media to play: {0}")]
    NoTracks(String),
    #[error("URL: {0}")]
    Url(String),
}
