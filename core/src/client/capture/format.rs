//! Session captures: what a client session received, and when, in a small
//! versioned binary file that replays through the core deterministically.
//!
//! A capture holds the inputs of one [`Client`], not its outputs: the
//! connection result, every chunk of bytes read, end of stream, I/O errors,
//! timeout checks and close requests, each with its instant as an offset from
//! session start. Feeding the same inputs at the same offsets to a fresh
//! `Client` gives the same events, durations included, because the machine
//! reads no clock of its own. That is what [`replay`] does; it is how a field
//! problem becomes a test.
//!
//! This module is not a packet capture (no requests sent, no TCP details) and
//! does no file I/O: [`Recorder`] (or [`CaptureWriter`] for hand-written
//! loops) encodes into memory, and the runtime appends
//! [`Recorder::take_capture`] to the file named by
//! [`ClientOptions::capture`].
//!
//! # Format, version 1
//!
//! All integers are big-endian. Strings are UTF-8 with a `u16` length prefix.
//!
//! ```text
//! file    = magic version header_len header record*
//! magic   = "RTSPCAP" 0x00                          (8 bytes)
//! version = u16                                     (1)
//! header_len = u32                                  (at most 65536)
//! header  = flags:u8 timeout_ns:u64
//!           max_header_bytes:u32 max_body_bytes:u32 max_headers:u32
//!           url:string [forward_address:string]     (present when flag bit 3 is set)
//!           (bytes after these, up to header_len, are ignored)
//! flags   = bit 0 enable_video, bit 1 enable_audio,
//!           bit 2 the URL had credentials (never recorded themselves),
//!           bit 3 forward_address present
//! record  = kind:u8 offset_ns:u64 len:u32 payload[len]   (len at most 1 MiB)
//! kind    = 1 connected      payload: local:string peer:string (socket addresses as text)
//!           2 connect failed payload: reason (UTF-8, the rest of the record)
//!           3 input          payload: the bytes read
//!           4 eof            payload: empty
//!           5 io error       payload: reason (UTF-8)
//!           6 timeout check  payload: empty
//!           7 close request  payload: empty
//! ```
//!
//! `offset_ns` is the nanoseconds from the instant given to [`Client::new`]
//! to the instant given with that input. The URL is recorded without user
//! name and password; when it had credentials, [`replay`] uses placeholder
//! ones, which is enough because the server's answers are recorded.
//! A file cut short inside a record (a crashed recorder) is an error, not a
//! shorter capture: [`CaptureError::Truncated`] says where.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use rtsp_toolkit_core::capture::{replay, Capture, Recorder};
//! use rtsp_toolkit_core::client::{ClientOptions, Event, Output};
//!
//! let t0 = Instant::now();
//! let opts = ClientOptions { capture: Some("unused-by-core.rtspcap".into()), ..Default::default() };
//! let mut rec = Recorder::new("rtsp://127.0.0.1:8554/cam", opts, t0).unwrap();
//! rec.handle_connected(t0 + Duration::from_millis(2), "127.0.0.1:40000".parse().unwrap(), "127.0.0.1:8554".parse().unwrap());
//! rec.handle_eof(t0 + Duration::from_millis(5));
//! let mut live = Vec::new();
//! loop {
//!     match rec.poll_output() {
//!         Output::Event(e) => live.push(e),
//!         Output::Transmit(_) => {} // the runtime writes these
//!         Output::Timeout(_) | Output::Done => break,
//!     }
//! }
//! let file = rec.take_capture().unwrap(); // the runtime appends this to the file
//! let capture = Capture::parse(&file).unwrap();
//! assert_eq!(replay(&capture, ClientOptions::default(), t0).unwrap(), live);
//! ```

use std::net::SocketAddr;
use std::ops::Deref;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};

use crate::client::{Client, ClientOptions, Event, Output};
use crate::message::Limits;

/// The first 8 bytes of every capture file.
pub const MAGIC: &[u8; 8] = b"RTSPCAP\0";
/// The format version this module writes and reads.
pub const VERSION: u16 = 1;
/// Largest header block accepted.
pub const MAX_HEADER_LEN: u32 = 64 * 1024;
/// Largest record payload accepted; longer inputs are written as several
/// records with the same offset (which replays identically).
pub const MAX_RECORD_LEN: u32 = 1024 * 1024;

const FLAG_VIDEO: u8 = 1;
const FLAG_AUDIO: u8 = 2;
const FLAG_CREDENTIALS: u8 = 4;
const FLAG_FORWARD: u8 = 8;

const KIND_CONNECTED: u8 = 1;
const KIND_CONNECT_FAILED: u8 = 2;
const KIND_INPUT: u8 = 3;
const KIND_EOF: u8 = 4;
const KIND_IO_ERROR: u8 = 5;
const KIND_TIMEOUT: u8 = 6;
const KIND_CLOSE: u8 = 7;

/// Why bytes are not a capture, or could not be replayed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    #[error("not a capture file (bad magic)")]
    BadMagic,
    #[error("capture format version {0} is not supported (this build reads version {VERSION})")]
    UnsupportedVersion(u16),
    #[error("capture cut short in the {what} at byte {at}")]
    Truncated { what: &'static str, at: usize },
    #[error("capture header of {0} bytes is over the limit")]
    HeaderTooLong(u32),
    #[error("capture record at byte {at} has {len} bytes, over the limit")]
    RecordTooLong { at: usize, len: u32 },
    #[error("unknown capture record kind {kind} at byte {at}")]
    UnknownRecord { at: usize, kind: u8 },
    #[error("bad capture record at byte {at}: {detail}")]
    BadRecord { at: usize, detail: String },
    #[error("bad capture header: {0}")]
    BadHeader(String),
    #[error("record offset does not fit in an Instant")]
    OffsetOverflow,
    #[error("the recorded session cannot be replayed: {0}")]
    Client(crate::Error),
}

/// The session settings a replay needs, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureHeader {
    /// The session URL without credentials.
    pub url: String,
    /// Whether the URL had a user name (and maybe a password).
    pub had_credentials: bool,
    pub enable_video: bool,
    pub enable_audio: bool,
    pub timeout: Duration,
    /// [`ClientOptions::forward_address`]: it names the Connect event's target.
    pub forward_address: Option<String>,
    pub limits: Limits,
}

impl CaptureHeader {
    /// The header for a session of `client`, whose caller-given URL had
    /// credentials or not.
    pub fn for_client(client: &Client, had_credentials: bool) -> CaptureHeader {
        let o = client.options();
        CaptureHeader {
            url: client.url().to_owned(),
            had_credentials,
            enable_video: o.enable_video,
            enable_audio: o.enable_audio,
            timeout: o.timeout,
            forward_address: o.forward_address.clone(),
            limits: o.limits,
        }
    }

    /// `options` with the recorded fields put in; logging, labels and the
    /// user agent stay the caller's. `capture` is cleared.
    pub fn apply(&self, options: ClientOptions) -> ClientOptions {
        ClientOptions {
            enable_video: self.enable_video,
            enable_audio: self.enable_audio,
            timeout: self.timeout,
            forward_address: self.forward_address.clone(),
            limits: self.limits,
            capture: None,
            ..options
        }
    }

    /// The URL to replay with: the recorded one, with placeholder
    /// credentials when the original had some (so 401s are retried as live).
    pub fn replay_url(&self) -> String {
        if !self.had_credentials {
            return self.url.clone();
        }
        match url::Url::parse(&self.url) {
            Ok(mut u) => {
                let _ = u.set_username("replay");
                let _ = u.set_password(Some("replay"));
                u.to_string()
            }
            Err(_) => self.url.clone(),
        }
    }

    fn encode(&self, out: &mut BytesMut) {
        let mut body = BytesMut::new();
        let mut flags = 0;
        for (on, bit) in [
            (self.enable_video, FLAG_VIDEO),
            (self.enable_audio, FLAG_AUDIO),
            (self.had_credentials, FLAG_CREDENTIALS),
            (self.forward_address.is_some(), FLAG_FORWARD),
        ] {
            if on {
                flags |= bit;
            }
        }
        body.put_u8(flags);
        body.put_u64(duration_ns(self.timeout));
        for v in [
            self.limits.max_header_bytes,
            self.limits.max_body_bytes,
            self.limits.max_headers,
        ] {
            body.put_u32(u32::try_from(v).unwrap_or(u32::MAX));
        }
        put_string(&mut body, &self.url);
        if let Some(f) = &self.forward_address {
            put_string(&mut body, f);
        }
        out.put_slice(MAGIC);
        out.put_u16(VERSION);
        out.put_u32(body.len() as u32);
        out.put_slice(&body);
    }

    fn decode(r: &mut Reader<'_>) -> Result<CaptureHeader, CaptureError> {
        let flags = r.u8("header")?;
        let timeout = Duration::from_nanos(r.u64("header")?);
        let max_header_bytes = r.u32("header")? as usize;
        let max_body_bytes = r.u32("header")? as usize;
        let max_headers = r.u32("header")? as usize;
        let url = r.string("header")?;
        let forward_address = if flags & FLAG_FORWARD != 0 {
            Some(r.string("header")?)
        } else {
            None
        };
        Ok(CaptureHeader {
            url,
            had_credentials: flags & FLAG_CREDENTIALS != 0,
            enable_video: flags & FLAG_VIDEO != 0,
            enable_audio: flags & FLAG_AUDIO != 0,
            timeout,
            forward_address,
            limits: Limits {
                max_header_bytes,
                max_body_bytes,
                max_headers,
            },
        })
    }
}

/// One input to the client, as the runtime handed it in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordKind {
    /// [`Client::handle_connected`].
    Connected { local: SocketAddr, peer: SocketAddr },
    /// [`Client::handle_connect_failed`].
    ConnectFailed(String),
    /// [`Client::handle_input`].
    Input(Bytes),
    /// [`Client::handle_eof`].
    Eof,
    /// [`Client::handle_io_error`].
    IoError(String),
    /// [`Client::handle_timeout`].
    Timeout,
    /// [`Client::close`].
    Close,
}

/// An input and when it was handed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// From session start.
    pub offset: Duration,
    pub kind: RecordKind,
}

/// A whole capture, read into memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capture {
    pub header: CaptureHeader,
    pub records: Vec<Record>,
}

impl Capture {
    /// Reads a capture. Total: any bytes give `Ok` or a typed error, and no
    /// allocation is larger than the input.
    ///
    /// ```
    /// use rtsp_toolkit_core::capture::{Capture, CaptureError};
    /// assert_eq!(Capture::parse(b"GIF89a"), Err(CaptureError::BadMagic));
    /// ```
    pub fn parse(data: &[u8]) -> Result<Capture, CaptureError> {
        let mut r = Reader { data, at: 0 };
        if data.len() < MAGIC.len() {
            return if MAGIC.starts_with(data) {
                Err(CaptureError::Truncated {
                    what: "magic",
                    at: data.len(),
                })
            } else {
                Err(CaptureError::BadMagic)
            };
        }
        if r.take(MAGIC.len(), "magic")? != MAGIC {
            return Err(CaptureError::BadMagic);
        }
        let version = r.u16("version")?;
        if version != VERSION {
            return Err(CaptureError::UnsupportedVersion(version));
        }
        let header_len = r.u32("header length")?;
        if header_len > MAX_HEADER_LEN {
            return Err(CaptureError::HeaderTooLong(header_len));
        }
        let header_bytes = r.take(header_len as usize, "header")?;
        let header = CaptureHeader::decode(&mut Reader {
            data: header_bytes,
            at: 0,
        })
        .map_err(|e| match e {
            CaptureError::Truncated { .. } => CaptureError::BadHeader("header fields run past its length".into()),
            other => other,
        })?;
        let mut records = Vec::new();
        while r.at < data.len() {
            records.push(Record::decode(&mut r)?);
        }
        Ok(Capture { header, records })
    }

    /// The file bytes of this capture (what a [`CaptureWriter`] would have
    /// written for it).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = BytesMut::new();
        self.header.encode(&mut out);
        for r in &self.records {
            r.encode(&mut out);
        }
        out.to_vec()
    }

    /// Everything the server sent, in order (the concatenated input records).
    pub fn received(&self) -> BytesMut {
        let mut out = BytesMut::new();
        for r in &self.records {
            if let RecordKind::Input(b) = &r.kind {
                out.extend_from_slice(b);
            }
        }
        out
    }
}

impl Record {
    fn encode(&self, out: &mut BytesMut) {
        let ns = duration_ns(self.offset);
        let mut put = |kind: u8, payload: &[u8]| {
            out.put_u8(kind);
            out.put_u64(ns);
            out.put_u32(payload.len() as u32);
            out.put_slice(payload);
        };
        match &self.kind {
            RecordKind::Connected { local, peer } => {
                let mut p = BytesMut::new();
                put_string(&mut p, &local.to_string());
                put_string(&mut p, &peer.to_string());
                put(KIND_CONNECTED, &p);
            }
            RecordKind::ConnectFailed(reason) => put(KIND_CONNECT_FAILED, clip(reason).as_bytes()),
            RecordKind::Input(data) if data.is_empty() => put(KIND_INPUT, &[]),
            RecordKind::Input(data) => {
                for chunk in data.chunks(MAX_RECORD_LEN as usize) {
                    put(KIND_INPUT, chunk);
                }
            }
            RecordKind::Eof => put(KIND_EOF, &[]),
            RecordKind::IoError(reason) => put(KIND_IO_ERROR, clip(reason).as_bytes()),
            RecordKind::Timeout => put(KIND_TIMEOUT, &[]),
            RecordKind::Close => put(KIND_CLOSE, &[]),
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Record, CaptureError> {
        let at = r.at;
        let kind = r.u8("record")?;
        let offset = Duration::from_nanos(r.u64("record")?);
        let len = r.u32("record")?;
        if len > MAX_RECORD_LEN {
            return Err(CaptureError::RecordTooLong { at, len });
        }
        let payload = r.take(len as usize, "record payload")?;
        let bad = |detail: &str| CaptureError::BadRecord {
            at,
            detail: detail.to_owned(),
        };
        let text = |p: &[u8]| {
            std::str::from_utf8(p)
                .map(str::to_owned)
                .map_err(|_| bad("reason is not UTF-8"))
        };
        let empty = |k: RecordKind| {
            if payload.is_empty() {
                Ok(k)
            } else {
                Err(bad("payload on a record that has none"))
            }
        };
        let kind = match kind {
            KIND_CONNECTED => {
                let mut p = Reader { data: payload, at: 0 };
                let mut addr = || -> Result<SocketAddr, CaptureError> {
                    let s = p.string("address").map_err(|_| bad("truncated address"))?;
                    s.parse().map_err(|_| bad("bad socket address"))
                };
                let (local, peer) = (addr()?, addr()?);
                RecordKind::Connected { local, peer }
            }
            KIND_CONNECT_FAILED => RecordKind::ConnectFailed(text(payload)?),
            KIND_INPUT => RecordKind::Input(Bytes::copy_from_slice(payload)),
            KIND_EOF => empty(RecordKind::Eof)?,
            KIND_IO_ERROR => RecordKind::IoError(text(payload)?),
            KIND_TIMEOUT => empty(RecordKind::Timeout)?,
            KIND_CLOSE => empty(RecordKind::Close)?,
            kind => return Err(CaptureError::UnknownRecord { at, kind }),
        };
        Ok(Record { offset, kind })
    }
}

/// Sans-IO encoder of a capture: the header at creation, then one record per
/// call; [`CaptureWriter::take`] hands out what was encoded since the last
/// call, to be appended to the file.
#[derive(Debug)]
pub struct CaptureWriter {
    start: Instant,
    out: BytesMut,
}

impl CaptureWriter {
    /// A capture of a session that started at `start` (the instant given to
    /// [`Client::new`]).
    pub fn new(header: &CaptureHeader, start: Instant) -> CaptureWriter {
        let mut out = BytesMut::new();
        header.encode(&mut out);
        CaptureWriter { start, out }
    }

    /// Records an input handed to the client at `now`.
    pub fn record(&mut self, now: Instant, kind: RecordKind) {
        Record {
            offset: now.saturating_duration_since(self.start),
            kind,
        }
        .encode(&mut self.out);
    }

    /// The bytes encoded since the last call (the header first).
    pub fn take(&mut self) -> Bytes {
        self.out.split().freeze()
    }

    /// How many encoded bytes wait for [`CaptureWriter::take`].
    pub fn pending(&self) -> usize {
        self.out.len()
    }
}

/// A [`Client`] that records its inputs when [`ClientOptions::capture`] is
/// set. It has the same `handle_*` methods; read-only access to the client
/// goes through `Deref`. Runtimes use it in place of `Client` and append
/// [`Recorder::take_capture`] to the capture file now and then.
#[derive(Debug)]
pub struct Recorder {
    client: Client,
    writer: Option<CaptureWriter>,
}

impl Recorder {
    /// As [`Client::new`]; records when `opts.capture` is `Some`.
    pub fn new(url: &str, opts: ClientOptions, now: Instant) -> Result<Recorder, crate::Error> {
        let record = opts.capture.is_some();
        let client = Client::new(url, opts, now)?;
        let writer = record.then(|| {
            let had_credentials = url::Url::parse(url).is_ok_and(|u| !u.username().is_empty());
            CaptureWriter::new(&CaptureHeader::for_client(&client, had_credentials), now)
        });
        Ok(Recorder { client, writer })
    }

    /// Whether inputs are being recorded.
    pub fn is_recording(&self) -> bool {
        self.writer.is_some()
    }

    /// Encoded capture bytes not yet taken (`None` when not recording or
    /// nothing is new).
    pub fn take_capture(&mut self) -> Option<Bytes> {
        self.writer
            .as_mut()
            .filter(|w| w.pending() > 0)
            .map(CaptureWriter::take)
    }

    /// Stops recording (e.g. after the capture file failed); returns what was
    /// not taken yet.
    pub fn stop_recording(&mut self) -> Option<Bytes> {
        self.writer.take().map(|mut w| w.take())
    }

    /// Writes the capture bytes not yet taken to `out` (the capture file).
    /// On a write error recording stops, so a full disk does not end the
    /// session; the error is returned for the runtime to log.
    pub fn write_capture(&mut self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        let Some(bytes) = self.take_capture() else {
            return Ok(());
        };
        out.write_all(&bytes).inspect_err(|_| self.writer = None)
    }

    fn record(&mut self, now: Instant, kind: impl FnOnce() -> RecordKind) {
        if let Some(w) = &mut self.writer {
            w.record(now, kind());
        }
    }

    /// [`Client::handle_connected`], recorded.
    pub fn handle_connected(&mut self, now: Instant, local: SocketAddr, peer: SocketAddr) {
        self.record(now, || RecordKind::Connected { local, peer });
        self.client.handle_connected(now, local, peer);
    }

    /// [`Client::handle_connect_failed`], recorded.
    pub fn handle_connect_failed(&mut self, now: Instant, reason: &str) {
        self.record(now, || RecordKind::ConnectFailed(reason.to_owned()));
        self.client.handle_connect_failed(now, reason);
    }

    /// [`Client::handle_input`], recorded.
    pub fn handle_input(&mut self, now: Instant, data: &[u8]) {
        self.record(now, || RecordKind::Input(Bytes::copy_from_slice(data)));
        self.client.handle_input(now, data);
    }

    /// [`Client::handle_eof`], recorded.
    pub fn handle_eof(&mut self, now: Instant) {
        self.record(now, || RecordKind::Eof);
        self.client.handle_eof(now);
    }

    /// [`Client::handle_io_error`], recorded.
    pub fn handle_io_error(&mut self, now: Instant, reason: &str) {
        self.record(now, || RecordKind::IoError(reason.to_owned()));
        self.client.handle_io_error(now, reason);
    }

    /// [`Client::handle_timeout`], recorded.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.record(now, || RecordKind::Timeout);
        self.client.handle_timeout(now);
    }

    /// [`Client::close`], recorded.
    pub fn close(&mut self, now: Instant) {
        self.record(now, || RecordKind::Close);
        self.client.close(now);
    }

    /// [`Client::poll_output`] (outputs are not recorded: they follow from the inputs).
    pub fn poll_output(&mut self) -> Output {
        self.client.poll_output()
    }

    /// The client, e.g. to hand it on after recording.
    pub fn into_client(self) -> Client {
        self.client
    }
}

impl Deref for Recorder {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

/// Runs a fresh [`Client`] through the recorded inputs, each at
/// `t0 + offset`, and returns every event it gives, in order: the events of
/// the live session, durations included.
///
/// `options` supplies what is not recorded (logging, labels); the recorded
/// settings replace the rest (see [`CaptureHeader::apply`]). `t0` stands for
/// the session's start (any instant: only offsets from it matter; the core
/// reads no clock). Replay stops at the end of the records or when the
/// client is done.
pub fn replay(capture: &Capture, options: ClientOptions, t0: Instant) -> Result<Vec<Event>, CaptureError> {
    let opts = capture.header.apply(options);
    let mut client = Client::new(&capture.header.replay_url(), opts, t0).map_err(CaptureError::Client)?;
    let mut events = Vec::new();
    let mut done = drain(&mut client, &mut events);
    for record in &capture.records {
        if done {
            break;
        }
        let now = t0.checked_add(record.offset).ok_or(CaptureError::OffsetOverflow)?;
        match &record.kind {
            RecordKind::Connected { local, peer } => client.handle_connected(now, *local, *peer),
            RecordKind::ConnectFailed(reason) => client.handle_connect_failed(now, reason),
            RecordKind::Input(data) => client.handle_input(now, data),
            RecordKind::Eof => client.handle_eof(now),
            RecordKind::IoError(reason) => client.handle_io_error(now, reason),
            RecordKind::Timeout => client.handle_timeout(now),
            RecordKind::Close => client.close(now),
        }
        done = drain(&mut client, &mut events);
    }
    Ok(events)
}

/// Collects the ready events; whether the client is done.
fn drain(client: &mut Client, events: &mut Vec<Event>) -> bool {
    loop {
        match client.poll_output() {
            Output::Transmit(_) => {}
            Output::Event(e) => events.push(e),
            Output::Timeout(_) => return false,
            Output::Done => return true,
        }
    }
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn put_string(out: &mut BytesMut, s: &str) {
    let s = crate::rtcp::truncate_utf8(s, u16::MAX as usize);
    out.put_u16(s.len() as u16);
    out.put_slice(s.as_bytes());
}

/// Reasons are short in practice; the cut keeps a record under its limit.
fn clip(s: &str) -> &str {
    crate::rtcp::truncate_utf8(s, 4096)
}

/// A cursor over borrowed bytes; every read is bounds-checked.
struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], CaptureError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.data.len())
            .ok_or(CaptureError::Truncated {
                what,
                at: self.data.len(),
            })?;
        let s = &self.data[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], CaptureError> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, CaptureError> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, CaptureError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, CaptureError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, CaptureError> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    fn string(&mut self, what: &'static str) -> Result<String, CaptureError> {
        let len = self.u16(what)? as usize;
        let bytes = self.take(len, what)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| CaptureError::BadHeader(format!("{what}: not UTF-8")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\na=control:*\r\n\
                       m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:stream=0\r\n";

    fn response(cseq: u32, extra: &str, body: &str) -> String {
        format!(
            "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n{extra}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    /// A scripted session through a recorder: the live events and the file.
    fn live_session(url: &str) -> (Vec<Event>, Bytes) {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let opts = ClientOptions {
            enable_audio: false,
            timeout: Duration::from_millis(1500),
            capture: Some("x".into()),
            ..Default::default()
        };
        let mut rec = Recorder::new(url, opts, t0).unwrap();
        let mut events = Vec::new();
        let mut file = BytesMut::new();
        let mut step = |rec: &mut Recorder, events: &mut Vec<Event>| {
            loop {
                match rec.poll_output() {
                    Output::Event(e) => events.push(e),
                    Output::Transmit(_) => {}
                    _ => break,
                }
            }
            if let Some(b) = rec.take_capture() {
                file.extend_from_slice(&b);
            }
        };
        rec.handle_connected(ms(1), addr("127.0.0.1:5000"), addr("127.0.0.1:554"));
        step(&mut rec, &mut events);
        rec.handle_input(ms(3), response(1, "Public: OPTIONS, DESCRIBE\r\n", "").as_bytes());
        step(&mut rec, &mut events);
        let describe = response(2, "Content-Type: application/sdp\r\n", SDP);
        // Split across two reads at different instants.
        rec.handle_input(ms(5), &describe.as_bytes()[..20]);
        rec.handle_input(ms(7), &describe.as_bytes()[20..]);
        step(&mut rec, &mut events);
        rec.handle_input(
            ms(9),
            response(
                3,
                "Session: abc;timeout=60\r\nTransport: RTP/AVP/TCP;interleaved=0-1\r\n",
                "",
            )
            .as_bytes(),
        );
        step(&mut rec, &mut events);
        let mut play = response(4, "Session: abc\r\n", "").into_bytes();
        play.extend_from_slice(&[b'$', 0, 0, 12, 0x80, 96, 0, 1, 0, 0, 0, 9, 0, 0, 0, 7]);
        rec.handle_input(ms(11), &play);
        step(&mut rec, &mut events);
        rec.handle_timeout(ms(900));
        step(&mut rec, &mut events);
        rec.close(ms(1000));
        step(&mut rec, &mut events);
        rec.handle_timeout(ms(2600));
        step(&mut rec, &mut events);
        (events, file.freeze())
    }

    #[test]
    fn replay_gives_the_live_events_with_durations() {
        let (live, file) = live_session("rtsp://user:pw@127.0.0.1/cam");
        assert!(matches!(live.last(), Some(Event::Closed(_))));
        assert!(live.iter().any(|e| matches!(e, Event::Rtp(_))));
        let capture = Capture::parse(&file).unwrap();
        assert_eq!(capture.header.url, "rtsp://127.0.0.1/cam");
        assert!(capture.header.had_credentials);
        assert!(!file.windows(2).any(|w| w == b"pw"), "password recorded");
        assert_eq!(
            replay(&capture, ClientOptions::default(), Instant::now()).unwrap(),
            live
        );
    }

    #[test]
    fn round_trip_of_every_record_kind() {
        let capture = Capture {
            header: CaptureHeader {
                url: "rtsp://[::1]:8554/a b".into(),
                had_credentials: false,
                enable_video: true,
                enable_audio: false,
                timeout: Duration::from_nanos(1_234_567_891),
                forward_address: Some("relay:1554".into()),
                limits: Limits::default(),
            },
            records: vec![
                Record {
                    offset: Duration::from_nanos(5),
                    kind: RecordKind::Connected {
                        local: addr("[::1]:4000"),
                        peer: addr("[::1]:8554"),
                    },
                },
                Record {
                    offset: Duration::from_nanos(6),
                    kind: RecordKind::ConnectFailed("refused".into()),
                },
                Record {
                    offset: Duration::from_millis(7),
                    kind: RecordKind::Input(Bytes::from_static(b"RTSP/1.0")),
                },
                Record {
                    offset: Duration::from_millis(8),
                    kind: RecordKind::Eof,
                },
                Record {
                    offset: Duration::from_millis(9),
                    kind: RecordKind::IoError("reset".into()),
                },
                Record {
                    offset: Duration::from_millis(10),
                    kind: RecordKind::Timeout,
                },
                Record {
                    offset: Duration::from_secs(11),
                    kind: RecordKind::Close,
                },
            ],
        };
        let bytes = capture.encode();
        assert_eq!(Capture::parse(&bytes).unwrap(), capture);
        // Every strict prefix is an error, never a panic or a shorter capture
        // (except prefixes ending exactly at a record boundary).
        for n in 0..bytes.len() {
            if let Ok(c) = Capture::parse(&bytes[..n]) {
                assert!(c.records.len() < capture.records.len());
            }
        }
    }

    #[test]
    fn long_input_is_split_and_replays_the_same() {
        let w = CaptureHeader {
            url: "rtsp://h/".into(),
            had_credentials: false,
            enable_video: true,
            enable_audio: true,
            timeout: Duration::from_secs(1),
            forward_address: None,
            limits: Limits::default(),
        };
        let t0 = Instant::now();
        let mut writer = CaptureWriter::new(&w, t0);
        let big = Bytes::from(vec![7u8; MAX_RECORD_LEN as usize + 10]);
        writer.record(t0, RecordKind::Input(big.clone()));
        let c = Capture::parse(&writer.take()).unwrap();
        assert_eq!(c.records.len(), 2);
        assert_eq!(c.received(), big);
    }

    #[test]
    fn typed_errors() {
        let mut good = Capture {
            header: CaptureHeader {
                url: "rtsp://h/".into(),
                had_credentials: false,
                enable_video: true,
                enable_audio: true,
                timeout: Duration::from_secs(1),
                forward_address: None,
                limits: Limits::default(),
            },
            records: vec![],
        }
        .encode();
        let mut v2 = good.clone();
        v2[9] = 2;
        assert_eq!(Capture::parse(&v2), Err(CaptureError::UnsupportedVersion(2)));
        assert!(matches!(Capture::parse(b"RTSP"), Err(CaptureError::Truncated { .. })));
        let mut huge = good.clone();
        huge[10..14].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(Capture::parse(&huge), Err(CaptureError::HeaderTooLong(u32::MAX)));
        let at = good.len();
        good.extend_from_slice(&[9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(Capture::parse(&good), Err(CaptureError::UnknownRecord { at, kind: 9 }));
        good[at] = KIND_INPUT;
        good[at + 9..at + 13].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(
            Capture::parse(&good),
            Err(CaptureError::RecordTooLong { at, len: u32::MAX })
        );
    }

    fn arb_kind() -> impl Strategy<Value = RecordKind> {
        prop_oneof![
            (any::<[u8; 4]>(), any::<u16>(), any::<u16>()).prop_map(|(ip, a, b)| RecordKind::Connected {
                local: SocketAddr::from((ip, a)),
                peer: SocketAddr::from(([127, 0, 0, 1], b)),
            }),
            "[a-z ]{0,20}".prop_map(RecordKind::ConnectFailed),
            proptest::collection::vec(any::<u8>(), 0..64).prop_map(|v| RecordKind::Input(v.into())),
            Just(RecordKind::Eof),
            "\\PC{0,20}".prop_map(RecordKind::IoError),
            Just(RecordKind::Timeout),
            Just(RecordKind::Close),
        ]
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Capture::parse(&data);
        }

        #[test]
        fn arbitrary_records_after_a_valid_header_never_panic(
            tail in proptest::collection::vec(any::<u8>(), 0..512),
        ) {
            let mut data = Capture {
                header: CaptureHeader {
                    url: "rtsp://h/".into(),
                    had_credentials: true,
                    enable_video: true,
                    enable_audio: true,
                    timeout: Duration::from_secs(1),
                    forward_address: None,
                    limits: Limits::default(),
                },
                records: vec![],
            }
            .encode();
            data.extend_from_slice(&tail);
            if let Ok(c) = Capture::parse(&data) {
                // Whatever parses also replays without panicking.
                let _ = replay(&c, ClientOptions::default(), Instant::now());
            }
        }

        #[test]
        fn records_round_trip(
            kinds in proptest::collection::vec((any::<u64>(), arb_kind()), 0..16),
            video in any::<bool>(),
            creds in any::<bool>(),
            timeout_ns in 1u64..u64::MAX,
        ) {
            let capture = Capture {
                header: CaptureHeader {
                    url: "rtsp://127.0.0.1:1/x".into(),
                    had_credentials: creds,
                    enable_video: video,
                    enable_audio: true,
                    timeout: Duration::from_nanos(timeout_ns),
                    forward_address: None,
                    limits: Limits::default(),
                },
                records: kinds
                    .into_iter()
                    .map(|(ns, kind)| Record { offset: Duration::from_nanos(ns), kind })
                    .collect(),
            };
            prop_assert_eq!(Capture::parse(&capture.encode()).unwrap(), capture);
        }
    }
}
