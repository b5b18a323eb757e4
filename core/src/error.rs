//! Errors at the session boundary.
//!
//! [`Error`] has four kinds of failure (connection, timeout, protocol,
//! response), plus configuration mistakes caught before anything is sent.
//! [`ProtocolError`] is what a peer got wrong in a session; framing errors
//! (bytes that are no message at all) are the message codec's own type,
//! [`FramingError`], which it wraps. Each carries what a person needs
//! to act on it; none ever carries credentials.

use std::time::Duration;

use crate::message::{FramingError, Method};

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

/// What was wrong with what a peer sent: bytes that are no RTSP message
/// ([`FramingError`]), or a message that makes no sense for the session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The byte stream could not be split into messages.
    #[error(transparent)]
    Framing(#[from] FramingError),
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
