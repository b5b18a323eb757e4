//! Errors at the session boundary.
//!
//! [`Error`] has four kinds of failure (connection, timeout, protocol,
//! response), plus configuration mistakes caught before anything is sent.
//! [`ConnectionError`] is a connection that could not be made or broke: its
//! [`std::io::ErrorKind`] and the `std::io::Error` behind it.
//! [`ProtocolError`] is what a peer got wrong in a session; framing errors
//! (bytes that are no message at all) are the message codec's own type,
//! [`FramingError`], which it wraps. Each carries what a person needs
//! to act on it; none ever carries credentials.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use crate::message::{FramingError, Method};

/// Why a session ended, or could not start.
///
/// `Clone`, `PartialEq` and `Eq`, so that it can travel in events and be
/// compared in tests and replays: a [`ConnectionError`] compares by its
/// kind and message, not by the `std::io::Error` it keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The TCP connection could not be made, or broke (also: the UDP ports
    /// of a track could not be opened). Its [`ConnectionError::kind`] tells
    /// "refused" from "reset" from "unreachable"; a connection attempt that
    /// takes too long is an [`Error::Timeout`] instead. `source()` is the
    /// `std::io::Error`, when there was one.
    Connection(ConnectionError),
    /// Nothing arrived within the configured timeout.
    Timeout {
        /// What was awaited ("connection", "response to DESCRIBE", "media data", ...).
        waiting_for: String,
        /// The timeout that passed ([`ClientOptions::timeout`](crate::ClientOptions::timeout)).
        timeout: Duration,
    },
    /// The peer sent something this toolkit cannot accept.
    Protocol(ProtocolError),
    /// The server answered a request with a failure status.
    Response {
        /// The request's method.
        method: Method,
        /// The response's status code (not 2xx).
        status: u16,
        /// The response's reason phrase; after a 401 that could not be
        /// answered, with why in parentheses (no credentials, or rejected).
        reason: String,
    },
    /// The session was configured in a way that cannot work.
    Config(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Connection(e) => write!(f, "connection error: {e}"),
            Error::Timeout { waiting_for, timeout } => write!(f, "timeout: no {waiting_for} within {timeout:?}"),
            Error::Protocol(e) => write!(f, "protocol error: {e}"),
            Error::Response { method, status, reason } => write!(f, "{method} failed: {status} {reason}"),
            Error::Config(e) => write!(f, "invalid configuration: {e}"),
        }
    }
}

impl std::error::Error for Error {
    /// [`Error::Connection`]: the `std::io::Error` (not the
    /// [`ConnectionError`] around it, whose text is this error's own);
    /// [`Error::Protocol`]: the [`ProtocolError`].
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Connection(e) => e.io_error().map(|e| e as &(dyn std::error::Error + 'static)),
            Error::Protocol(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ProtocolError> for Error {
    fn from(e: ProtocolError) -> Error {
        Error::Protocol(e)
    }
}

impl From<ConnectionError> for Error {
    fn from(e: ConnectionError) -> Error {
        Error::Connection(e)
    }
}

/// A connection that could not be made, or broke: what kind of failure it
/// was ([`ConnectionError::kind`]: `ConnectionRefused`, `ConnectionReset`,
/// `HostUnreachable`, `UnexpectedEof` when the server closed the
/// connection, ...), the message a person reads, and the `std::io::Error`
/// behind it ([`ConnectionError::io_error`], also its `source()`).
///
/// It is `Clone`, and compares (`PartialEq`) by kind and message only, so
/// that a session replayed from a capture (see [`crate::capture`]), which
/// records the kind and the message but cannot record the `io::Error`
/// itself, gives events equal to the live ones.
///
/// ```
/// use std::io;
/// use rtsp_toolkit_core::error::{ConnectionError, Error};
///
/// let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
/// let e = Error::Connection(ConnectionError::with_source("cannot connect to 127.0.0.1:1: refused", refused));
/// assert!(matches!(&e, Error::Connection(c) if c.kind() == io::ErrorKind::ConnectionRefused));
/// assert_eq!(e.to_string(), "connection error: cannot connect to 127.0.0.1:1: refused");
/// let source = std::error::Error::source(&e).unwrap();
/// assert_eq!(source.downcast_ref::<io::Error>().unwrap().kind(), io::ErrorKind::ConnectionRefused);
/// ```
#[derive(Debug, Clone)]
pub struct ConnectionError {
    kind: io::ErrorKind,
    message: String,
    source: Option<Arc<io::Error>>,
}

impl ConnectionError {
    /// A failure of `kind` described by `message`, with no `std::io::Error`
    /// behind it (such as the server closing the connection mid-session:
    /// [`io::ErrorKind::UnexpectedEof`]).
    pub fn new(kind: io::ErrorKind, message: impl Into<String>) -> ConnectionError {
        ConnectionError {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// `message`, caused by `error` (whose kind it takes).
    pub fn with_source(message: impl Into<String>, error: io::Error) -> ConnectionError {
        ConnectionError {
            kind: error.kind(),
            message: message.into(),
            source: Some(Arc::new(error)),
        }
    }

    /// All parts given (a `kind` other than the source's, for one).
    pub(crate) fn from_parts(kind: io::ErrorKind, message: String, source: Option<io::Error>) -> ConnectionError {
        ConnectionError {
            kind,
            message,
            source: source.map(Arc::new),
        }
    }

    /// What kind of failure it was, to tell "refused" from "reset" or
    /// "unreachable" without reading the message.
    pub fn kind(&self) -> io::ErrorKind {
        self.kind
    }

    /// What a person reads (without the `connection error: ` of
    /// [`Error::Connection`]'s text).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The `std::io::Error` behind it, when there was one.
    pub fn io_error(&self) -> Option<&io::Error> {
        self.source.as_deref()
    }
}

impl PartialEq for ConnectionError {
    /// By kind and message; the `io::Error` is not compared.
    fn eq(&self, other: &ConnectionError) -> bool {
        self.kind == other.kind && self.message == other.message
    }
}

impl Eq for ConnectionError {}

impl fmt::Display for ConnectionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConnectionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.io_error().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// What was wrong with what a peer sent: bytes that are no RTSP message
/// ([`FramingError`]), or a message that makes no sense for the session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The byte stream could not be split into messages.
    #[error(transparent)]
    Framing(#[from] FramingError),
    /// The SDP of a DESCRIBE response could not be parsed.
    #[error("bad SDP: {0}")]
    Sdp(#[from] crate::sdp::SdpError),
    /// A `401` challenge could not be answered (the [`AuthError`](crate::auth::AuthError) says why).
    #[error("authentication: {0}")]
    Auth(#[from] crate::auth::AuthError),
    /// A response lacks a header the session needs, or has one it cannot use.
    #[error("{method} response has no usable {header} header: {detail}")]
    MissingHeader {
        /// The request's method.
        method: Method,
        /// The header's name (`Session`, `Transport`, ...).
        header: &'static str,
        /// What is missing or wrong, in words.
        detail: String,
    },
    /// The server sent a request that a client does not take.
    #[error("server sent a {method} request, which a client does not take")]
    UnexpectedRequest {
        /// The request's method.
        method: Method,
    },
    /// The SDP has no media section the track selection asks for (what was
    /// asked and what there is, in words).
    #[error("no media to play: {0}")]
    NoTracks(String),
    /// A URL that cannot be used (why, in words).
    #[error("URL: {0}")]
    Url(String),
}
