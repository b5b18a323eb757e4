//! [`Input`]: everything a runtime tells the client machine.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use super::UdpSocketId;

/// Something that happened to the session, handed to
/// [`Client::handle_input`](super::Client::handle_input) with the instant it
/// happened.
///
/// Every kind of input is recorded and replayed (see [`crate::capture`]);
/// a new kind is a new variant, so the enum is `#[non_exhaustive]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Input<'a> {
    /// The runtime connected the socket.
    Connected {
        /// The socket's local address.
        local: SocketAddr,
        /// The server's address.
        peer: SocketAddr,
    },
    /// The runtime could not connect (a connection attempt that timed out
    /// is not handed in: the client's own deadline reports it).
    ConnectFailed(IoFailure<'a>),
    /// Bytes read from the connection.
    Data(&'a [u8]),
    /// The server closed the connection (a read returned 0).
    Eof,
    /// The connection broke (a read or write error).
    IoError(IoFailure<'a>),
    /// The deadline of the last [`Output::Timeout`](super::Output::Timeout) passed
    /// (an early call does nothing wrong: deadlines not reached are kept).
    Timeout,
    /// The runtime opened the UDP pair asked for by
    /// [`Output::OpenUdp`](super::Output::OpenUdp): the RTP port (RTCP is
    /// the next one), or why it could not.
    UdpOpened {
        /// The [`UdpRequest::pair`](super::UdpRequest::pair) it answers.
        pair: u16,
        /// The RTP port bound (even, above 0), or why the pair could not be opened.
        result: Result<u16, &'a str>,
    },
    /// One datagram read from a UDP socket of the session, and who sent it.
    Datagram {
        /// The socket that received it.
        socket: UdpSocketId,
        /// The sender's address.
        from: SocketAddr,
        /// The datagram's bytes.
        data: &'a [u8],
    },
    /// The user asked the session to end: TEARDOWN when a server session
    /// exists, then [`Event::Closed`](super::Event::Closed). Safe more than
    /// once and in any phase.
    Close,
    /// The user asked to pause a playing session: `PAUSE` (only while
    /// playing and with no other PAUSE or PLAY of the user's unanswered;
    /// otherwise a [`Warning::Control`](super::Warning::Control) and nothing
    /// is sent). While paused the session sends its keepalives and receiver
    /// reports but expects no media: silence is not a timeout.
    Pause,
    /// The user asked to play again: `PLAY` with `Range` and `Scale` from
    /// `range` and `scale`, while paused (resume or seek) or playing (seek).
    /// Refused like [`Input::Pause`] in other phases. The answer's
    /// `RTP-Info` sets each track's next expected sequence number, so a
    /// seek is a discontinuity, not loss.
    Play {
        /// Where to play from ([`PlayRange::resume`]: where the session is).
        range: PlayRange,
        /// The `Scale` to ask for; `None` sends none (the server's 1).
        scale: Option<Scale>,
    },
}

/// Where a later PLAY asks the media to be (`Range: npt=START-[END]`), for
/// [`Input::Play`] and the runtimes' `play_from`.
///
/// ```
/// use std::time::Duration;
/// use rtsp_toolkit_core::client::PlayRange;
/// assert_eq!(PlayRange::resume().header(), None);
/// assert_eq!(PlayRange::from(Duration::from_millis(2500)).header().as_deref(), Some("npt=2.500-"));
/// let r = PlayRange::between(Duration::from_secs(1), Duration::from_secs(3));
/// assert_eq!(r.header().as_deref(), Some("npt=1.000-3.000"));
/// assert!(PlayRange::between(Duration::from_secs(3), Duration::from_secs(1)).check().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PlayRange {
    /// Where to start, as `npt`; `None`: where the session is (no `Range`
    /// header: RFC 2326 §10.5's resume from the pause point).
    pub start: Option<Duration>,
    /// Where to stop; `None`: the end of the presentation. Needs a start.
    pub end: Option<Duration>,
}

impl PlayRange {
    /// Go on from where the session is (no `Range`).
    pub fn resume() -> PlayRange {
        PlayRange::default()
    }

    /// From `start` to the end.
    pub fn from(start: Duration) -> PlayRange {
        PlayRange {
            start: Some(start),
            end: None,
        }
    }

    /// From `start` to `end`.
    pub fn between(start: Duration, end: Duration) -> PlayRange {
        PlayRange {
            start: Some(start),
            end: Some(end),
        }
    }

    /// Why this range cannot be asked for: an end without a start, or an
    /// end not after the start.
    pub fn check(&self) -> Result<(), String> {
        match (self.start, self.end) {
            (None, Some(_)) => Err("a range with an end needs a start".into()),
            (Some(s), Some(e)) if e <= s => Err(format!(
                "the end ({}) must be after the start ({})",
                super::npt(e),
                super::npt(s)
            )),
            _ => Ok(()),
        }
    }

    /// The `Range` header's value; `None` for [`PlayRange::resume`].
    pub fn header(&self) -> Option<String> {
        let start = super::npt(self.start?);
        Some(match self.end {
            Some(end) => format!("npt={start}-{}", super::npt(end)),
            None => format!("npt={start}-"),
        })
    }
}

/// A PLAY's `Scale` (RFC 2326 §12.34): finite and not 0 (a server may
/// refuse what it does not support, such as reverse play). Compared by its
/// bits, so that [`Input`] stays `Eq`.
///
/// ```
/// use rtsp_toolkit_core::client::Scale;
/// assert_eq!(Scale::new(2.0).unwrap().get(), 2.0);
/// assert!(Scale::new(0.0).is_err() && Scale::new(f64::NAN).is_err());
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Scale(f64);

impl Scale {
    /// `value` as a scale, or why it cannot be one.
    pub fn new(value: f64) -> Result<Scale, String> {
        if value.is_finite() && value != 0.0 {
            Ok(Scale(value))
        } else {
            Err(format!("scale must be a finite number other than 0, not {value}"))
        }
    }

    /// The number.
    pub fn get(self) -> f64 {
        self.0
    }
}

impl PartialEq for Scale {
    fn eq(&self, other: &Scale) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for Scale {}

/// A user's request to a running session, queued by a
/// [`SessionControl`](crate::stop::SessionControl) and handed in by the
/// runtime as the matching [`Input`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Control {
    /// [`Input::Pause`].
    Pause,
    /// [`Input::Play`].
    Play {
        /// As in [`Input::Play`].
        range: PlayRange,
        /// As in [`Input::Play`].
        scale: Option<Scale>,
    },
}

impl Control {
    /// The input that carries it.
    pub fn input(self) -> Input<'static> {
        match self {
            Control::Pause => Input::Pause,
            Control::Play { range, scale } => Input::Play { range, scale },
        }
    }
}

/// An I/O failure, as a runtime hands it in ([`Input::ConnectFailed`],
/// [`Input::IoError`]): it becomes the session's
/// [`Error::Connection`](crate::Error::Connection), whose
/// [`ConnectionError`](crate::ConnectionError) has this kind and the
/// `std::io::Error` rebuilt from it.
///
/// ```
/// use std::io;
/// use rtsp_toolkit_core::client::IoFailure;
/// let e = io::Error::from(io::ErrorKind::ConnectionReset);
/// let reason = format!("read failed: {e}");
/// let failure = IoFailure::from_io(&e, &reason);
/// assert_eq!(failure.kind, io::ErrorKind::ConnectionReset);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoFailure<'a> {
    /// What kind of failure (`ConnectionRefused`, `ConnectionReset`, ...).
    /// Captures record it; kinds outside the set they know are recorded,
    /// and reported, as [`io::ErrorKind::Other`].
    pub kind: io::ErrorKind,
    /// What a person reads: the `io::Error`'s text, perhaps with what was
    /// being done (`read failed: ...`).
    pub reason: &'a str,
    /// The operating system's error code, when it was one
    /// (`io::Error::raw_os_error`): the session's error then keeps an
    /// `io::Error` equal to the original. Not recorded in captures (codes
    /// differ between systems), so a replay's `io::Error` is built from the
    /// kind and reason.
    pub os_code: Option<i32>,
}

impl<'a> IoFailure<'a> {
    /// A failure of `kind` with no OS error code.
    pub fn new(kind: io::ErrorKind, reason: &'a str) -> IoFailure<'a> {
        IoFailure {
            kind,
            reason,
            os_code: None,
        }
    }

    /// `error`'s kind and OS code, with `reason` as the text (often
    /// `error.to_string()`, perhaps with context).
    pub fn from_io(error: &io::Error, reason: &'a str) -> IoFailure<'a> {
        IoFailure {
            kind: error.kind(),
            reason,
            os_code: error.raw_os_error(),
        }
    }

    /// The `std::io::Error` this failure stands for: the OS error of its
    /// code, else one of its kind with its reason as the text.
    pub fn to_io_error(&self) -> io::Error {
        match self.os_code {
            Some(code) => io::Error::from_raw_os_error(code),
            None => io::Error::new(self.kind, self.reason.to_owned()),
        }
    }
}
