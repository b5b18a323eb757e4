//! Sans-IO core of rtsp-toolkit.
//!
//! Everything here is a pure function or a state machine that takes bytes and
//! [`std::time::Instant`]s in and gives bytes, events and deadlines out. There
//! are no sockets, no async, no clock reads, no filesystem and no threads in
//! this crate: the runtimes (`rtsp-toolkit-tokio`, ...) move bytes and time
//! between a socket and these machines, so the same input gives the same
//! events on every runtime and in replays.
//!
//! Modules, each usable on its own:
//! - [`message`]: RTSP/1.0 requests, responses and `$`-interleaved frames on one byte stream.
//! - [`sdp`]: session descriptions and the per-media parameters the depacketizers need.
//! - [`auth`]: Basic and Digest (MD5) client authentication.
//! - [`rtp`], [`rtcp`]: RFC 3550 packet parsing.
//! - [`codec`]: depacketizers (RTP → frames) and packetizers (frames → RTP) per codec.
//! - [`client`]: the client session machine (OPTIONS → DESCRIBE → SETUP → PLAY → TEARDOWN).
//! - [`server`]: the per-connection server machine (requests in, responses and paced RTP out).
//! - [`capture`]: a file format recording what a client received, and its offline replay.
//! - [`prelude`]: the names every runtime crate re-exports.
//! - [`source`]: a demuxed media file as the server plays it.
//! - [`stop`]: a stop signal usable from threads and async code alike.
//!
//! # Serialization (feature `serde`)
//!
//! With the `serde` feature (off by default; the runtimes forward it as their
//! own `serde` feature), every event ([`client::Event`] and all it carries,
//! the server's [`server::ServerEvent`]), every error ([`Error`] and the
//! errors inside it) and [`client::TrackStats`] are `Serialize`; the options
//! ([`ClientOptions`], [`client::Transport`], [`client::PortRange`],
//! [`client::LogKinds`], [`message::Limits`], [`server::ServerConfig`]) and
//! the plain values (SDP, [`client::Track`], [`client::TransportKind`],
//! [`message::Headers`], [`message::Method`], codecs, report blocks) are
//! also `Deserialize`. Events carry media payloads and errors, which a
//! reader cannot rebuild, so they are `Serialize` only. The JSON of
//! `rtsp-toolkit probe --json` (its schema is in `docs/CLI.md`) is this
//! serialization, so the two never differ. The forms, chosen for JSON:
//!
//! - **Durations** are seconds as an `f64`, in fields whose name ends in
//!   `_s` (`recv_tick_s`, `elapsed_s`; [`ClientOptions::timeout`] is
//!   `timeout_s`): what a script divides and compares without knowing
//!   Rust's `{secs, nanos}`. Exact to the nanosecond under about 104 days;
//!   the module `duration_secs` does the same for one's own types.
//! - **Media payloads** (RTP payloads, frame data, RTCP packets of unknown
//!   types) are their size in bytes (`size`), never the bytes: a JSON line
//!   per packet stays short, and a payload's bytes are no use as text.
//!   RTSP bodies and SDES items, which are text by their protocol, are
//!   strings (invalid UTF-8 replaced by U+FFFD). No base64 anywhere.
//! - **Enums** are tagged inside the object: [`client::Event`] and
//!   [`server::ServerEvent`] by `type` (`connect`, `rtsp`, `rtp`, `rtcp`,
//!   `rtcp_sent`, `fallback`, `video`, `audio`, `loss`, `warning`,
//!   `closed`; `request`, `session_started`, ...), RTCP packets and track
//!   transports by `kind` (`sr`, `rr`, `sdes`, `bye`, `other`; `tcp`,
//!   `udp`, `multicast`); option enums are lowercase strings (`"udp"`).
//! - **Events** are flat objects: an RTP event is `{track, channel, seq,
//!   timestamp, ssrc, marker, payload_type, size, recv_tick_s}`, a frame
//!   event has its frame's fields beside `track` and `recv_tick_s`. A
//!   warning is `{kind, track, message}` and its own fields.
//! - **Errors** inside events are their message (`error`, a string or
//!   `null`); the `closed` event adds `error_kind` (`connection`,
//!   `timeout`, `protocol`, `response`, `config`). An [`Error`] on its own
//!   is `{kind, message}` and its kind's fields (`io_kind`, the
//!   `std::io::ErrorKind`'s name, for a connection error); the other error
//!   types are their message.
//! - **Addresses** are text (`"127.0.0.1:8554"`), port ranges and group
//!   ranges too (`"5000-5999"`); [`client::LogKinds`] is a list of names
//!   (`["rtsp", "rtcp"]`); [`message::Headers`] a list of `[name, value]`
//!   pairs in received order (names repeat).
//! - **Options** read with every field optional (the default fills in
//!   what is missing) and unknown fields refused, so that a misspelt
//!   option in a configuration file is an error, not ignored.
//!
//! ```
//! # #[cfg(feature = "serde")] {
//! use std::time::Duration;
//! use rtsp_toolkit_core::client::{ClosedEvent, ClientOptions, Event, Transport};
//! let e = Event::Closed(ClosedEvent { session_elapsed: Duration::from_millis(1500), error: None });
//! assert_eq!(
//!     serde_json::to_string(&e).unwrap(),
//!     r#"{"type":"closed","session_elapsed_s":1.5,"error":null,"error_kind":null}"#
//! );
//! let opts: ClientOptions = serde_json::from_str(r#"{"transport": "udp", "timeout_s": 2.5}"#).unwrap();
//! assert_eq!((opts.transport, opts.timeout), (Transport::Udp, Duration::from_millis(2500)));
//! # }
//! ```

#![warn(missing_docs)]

pub mod auth;
pub mod client;
pub mod codec;
#[cfg(feature = "serde")]
pub mod duration_secs;
pub mod error;
mod http_head;
pub mod message;
pub(crate) mod mpeg4_audio;
pub mod prelude;
mod rand;
pub mod rtcp;
pub mod rtp;
pub mod sdp;
#[cfg(feature = "serde")]
mod serde_impls;
pub mod server;
pub mod source;
pub mod stop;
pub mod tls;
pub mod udp;

pub use client::capture;
pub use client::{Client, ClientOptions, Input, IoFailure, Output};
pub use error::{ConnectionError, Error, ProtocolError};
pub use message::FramingError;
