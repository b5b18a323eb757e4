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

pub mod auth;
pub mod client;
pub mod codec;
pub mod error;
pub mod message;
pub(crate) mod mpeg4_audio;
pub mod prelude;
mod rand;
pub mod rtcp;
pub mod rtp;
pub mod sdp;
pub mod server;
pub mod source;
pub mod stop;
pub mod udp;

pub use client::capture;
pub use client::{Client, ClientOptions, Input, Output};
pub use error::{ConnectionError, Error, ProtocolError};
pub use message::FramingError;
