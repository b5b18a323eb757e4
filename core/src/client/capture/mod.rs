//! Session captures: what a client session received, and when, in a small
//! versioned binary file that replays through the core deterministically.
//!
//! A capture holds the inputs of one [`Client`], not its outputs: the
//! connection result, every chunk of bytes read, end of stream, I/O errors,
//! timeout checks and close requests, each with its instant as an offset from
//! session start. Feeding the same inputs at the same offsets to a fresh
//! `Client` gives the same events, durations included, because the machine
//! reads no clock of its own. That is what [`replay`](fn@replay) does; it is how a field
//! problem becomes a test.
//!
//! This module is not a packet capture (no requests sent, no TCP details) and
//! does no file I/O: the [`Client`] records its own inputs when
//! [`ClientOptions::capture`] is set, encoding them into memory with a
//! [`CaptureWriter`], and the runtime appends [`Client::take_capture`] to
//! the file. Replay is the same input loop without sockets: one
//! [`Client::handle_input`] per record.
//!
//! # Format, version 3
//!
//! All integers are big-endian. Strings are UTF-8 with a `u16` length prefix.
//!
//! ```text
//! file    = magic version header_len header record*
//! magic   = "RTSPCAP" 0x00                          (8 bytes)
//! version = u16                                     (3; versions 1 and 2 are read too)
//! header_len = u32                                  (at most 65536)
//! header  = flags:u8 timeout_ns:u64
//!           max_header_bytes:u32 max_body_bytes:u32 max_headers:u32
//!           url:string [forward_address:string]     (present when flag bit 3 is set)
//!           transport:u8 (0 tcp, 1 udp, 2 multicast, 3 auto) rtcp_reports:u8
//!           reorder_packets:u32 reorder_window_ns:u64 udp_fallback_after_ns:u64
//!           (bytes after these, up to header_len, are ignored)
//! version 2 adds, after forward_address:
//!           transport:u8 rtcp_reports:u8 reorder_packets:u32
//!           reorder_window_ns:u64 udp_fallback_after_ns:u64
//!           [tracks:u8 (0 first of each kind, 1 all, 2 video, 3 audio,
//!            4 indexes: count:u8 index:u8*)]     (optional: absent = 0)
//! flags   = bit 0 enable_video, bit 1 enable_audio,
//!           bit 2 the URL had credentials (never recorded themselves),
//!           bit 3 forward_address present
//! record  = kind:u8 offset_ns:u64 len:u32 payload[len]   (len at most 1 MiB)
//! kind    = 1 connected      payload: local:string peer:string (socket addresses as text)
//!           2 connect failed payload: error_kind:u8 reason (UTF-8, the rest of the record)
//!           3 input          payload: the bytes read
//!           4 eof            payload: empty
//!           5 io error       payload: error_kind:u8 reason (UTF-8)
//!           6 timeout check  payload: empty
//!           7 close request  payload: empty
//!           8 UDP opened     payload: pair:u16 (0 port:u16 | 1 reason)
//!           9 datagram       payload: pair:u16 rtcp:u8 from:string the bytes
//!          10 pause request  payload: empty
//!          11 play request   payload: flags:u8 (bit 0 start, 1 end, 2 scale)
//!                            [start_ns:u64] [end_ns:u64] [scale:u64 (f64 bits)]
//! ```
//!
//! Kinds 10 and 11 (the user's `Input::Pause` and `Input::Play`) came later
//! within version 3: files without them are read as before, and a build that
//! does not know them refuses the file at that record
//! ([`CaptureError::UnknownRecord`]), never misreads it.
//!
//! `error_kind` is the failure's `std::io::ErrorKind` by a fixed code
//! (0 `Other`, 1 `NotFound`, 2 `PermissionDenied`, 3 `ConnectionRefused`,
//! 4 `ConnectionReset`, 5 `HostUnreachable`, 6 `NetworkUnreachable`,
//! 7 `ConnectionAborted`, 8 `NotConnected`, 9 `AddrInUse`,
//! 10 `AddrNotAvailable`, 11 `NetworkDown`, 12 `BrokenPipe`,
//! 13 `AlreadyExists`, 14 `WouldBlock`, 15 `InvalidInput`, 16 `InvalidData`,
//! 17 `TimedOut`, 18 `WriteZero`, 19 `Interrupted`, 20 `Unsupported`,
//! 21 `UnexpectedEof`, 22 `OutOfMemory`; any other code reads as `Other`),
//! so that a replayed session's [`ConnectionError`](crate::ConnectionError)
//! has the live one's kind.
//!
//! Versions 1 and 2 are still read. Version 2 is version 3 without
//! `error_kind` (those failures replay as `Other`); version 1 also lacks
//! the UDP records and the header fields after the URL (transport,
//! `rtcp_reports`, reorder and fallback settings), and replays as the TCP
//! session without receiver reports it was.
//!
//! `offset_ns` is the nanoseconds from the instant given to [`Client::new`]
//! to the instant given with that input. The URL is recorded without user
//! name and password; when it had credentials, [`replay`](fn@replay) uses placeholder
//! ones, which is enough because the server's answers are recorded.
//! A file cut short inside a record (a crashed recorder) is an error, not a
//! shorter capture: [`CaptureError::Truncated`] says where.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use rtsp_toolkit_core::capture::{replay, Capture};
//! use rtsp_toolkit_core::client::{Client, ClientOptions, Event, Input, Output};
//!
//! let t0 = Instant::now();
//! let opts = ClientOptions::default().with_capture("unused-by-core.rtspcap");
//! let mut rec = Client::new("rtsp://127.0.0.1:8554/cam", opts, t0).unwrap();
//! let (local, peer) = ("127.0.0.1:40000".parse().unwrap(), "127.0.0.1:8554".parse().unwrap());
//! rec.handle_input(t0 + Duration::from_millis(2), Input::Connected { local, peer });
//! rec.handle_input(t0 + Duration::from_millis(5), Input::Eof);
//! let mut live = Vec::new();
//! loop {
//!     match rec.poll_output() {
//!         Output::Event(e) => live.push(e),
//!         Output::Transmit(_) => {} // the runtime writes these
//!         Output::SendDatagram { .. } | Output::OpenUdp(_) | Output::Reconnect => {} // (UDP only)
//!         Output::Timeout(_) | Output::Done => break,
//!     }
//! }
//! let file = rec.take_capture().unwrap(); // the runtime appends this to the file
//! let capture = Capture::parse(&file).unwrap();
//! assert_eq!(replay(&capture, ClientOptions::default(), t0).unwrap(), live);
//! ```

pub(crate) mod format;
mod replay;

pub use format::{
    Capture, CaptureError, CaptureHeader, CaptureWriter, Record, RecordKind, MAGIC, MAX_HEADER_LEN, MAX_RECORD_LEN,
    VERSION,
};
pub use replay::replay;

#[cfg(test)]
mod tests;

#[cfg(doc)]
use crate::client::{Client, ClientOptions};
