//! A scriptable hostile RTSP server, for testing how the client copes with
//! servers that break the rules.
//!
//! By default [`HostileServer`] behaves: it answers OPTIONS, DESCRIBE (an SDP
//! with one H.264 video track, and optionally a PCMA audio track), SETUP (TCP
//! interleaved), PLAY, GET_PARAMETER and TEARDOWN, and after PLAY streams a
//! list of H.264 access units packetized by the core's
//! [`Packetizer`](rtsp_toolkit_core::codec::h264::Packetizer), ending with an
//! RTCP BYE. A [`Plan`] then makes it misbehave in one or more ways: decorated
//! RTP headers, junk on an unused channel, and the
//! [`Misbehaviour`]s (oversized or endless responses,
//! silence, a close inside a frame, refused credentials).
//!
//! It is not a general RTSP server (see the core's `server` module for that):
//! it serves one connection on 127.0.0.1, parses only what it needs from the
//! requests, and gives up after [`SERVE_LIMIT`]. Every loop in it is bounded
//! in time and in bytes; it is for tests, so it panics on setup errors.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use rtsp_toolkit_core::codec::h264::{split_annex_b, Packetizer};
use rtsp_toolkit_core::message::Method;
use rtsp_toolkit_core::rtp::RtpHeader;

/// Longest the server waits for its connection, and serves it.
pub const SERVE_LIMIT: Duration = Duration::from_secs(30);
/// Most bytes an endless response writes before the server gives up and goes silent.
pub const ENDLESS_CAP: u64 = 16 * 1024 * 1024;
/// `Content-Length` of [`Misbehaviour::HugeContentLength`]: 2^40.
pub const HUGE_CONTENT_LENGTH: u64 = 1 << 40;
/// The server's session id.
pub const SESSION_ID: &str = "hostile42";
/// The RTP clock ticks between two access units (30 frames per second at 90 kHz).
pub const VIDEO_TICKS: u32 = 3000;
/// First video RTP timestamp.
pub const VIDEO_TS0: u32 = 0x1234_0000;
/// First video RTP sequence number: the sequence wraps within a few hundred packets.
pub const VIDEO_SEQ0: u16 = 65_400;
/// PCMA bytes (samples) per audio packet: 20 ms at 8 kHz.
pub const AUDIO_SAMPLES: usize = 160;
const VIDEO_SSRC: u32 = 0x0bad_cafe;
const AUDIO_SSRC: u32 = 0x0bad_beef;
const POLL: Duration = Duration::from_millis(5);

/// Which challenge a 401 carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    /// Digest MD5 with `qop="auth"`.
    Digest,
}

/// One way to misbehave. Several may be combined in a [`Plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Misbehaviour {
    /// Instead of the response to this method: a head with `Content-Length: 2^40`, then silence.
    HugeContentLength(Method),
    /// Instead of the response to this method: a status line, then header lines without end.
    EndlessHeaders(Method),
    /// Instead of the response to this method: a status line, then one header line without end.
    LongHeaderLine(Method),
    /// After this many whole access units: half of the next one's packets, half of one more
    /// packet's bytes, then close.
    CloseInside(usize),
    /// Answer this method with 401, with or without valid credentials.
    Unauthorized(Method),
}

/// Interleaved frames on a channel no track uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Junk {
    /// The channels, used in turn.
    pub channels: [u8; 2],
    /// One junk frame after every `every` video packets.
    pub every: usize,
}

/// What the server does.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The video track's access units, Annex B, sent after PLAY at [`VIDEO_TICKS`] apart.
    pub aus: Vec<Bytes>,
    /// The SDP also has a PCMA/8000 audio track; when the client sets it up, one audio packet
    /// of [`AUDIO_SAMPLES`] follows each access unit.
    pub audio: bool,
    /// Between access units (zero: all at once).
    pub pace: Duration,
    /// Largest RTP payload the packetizer makes.
    pub max_payload: usize,
    /// Every RTP packet carries two CSRCs, a header extension and padding.
    pub decorate: bool,
    pub junk: Option<Junk>,
    /// An RTCP BYE on every set-up track after the last access unit.
    pub bye: bool,
    /// Demand these credentials (`user`, `password`) on every request, with [`Plan::challenge`].
    pub credentials: Option<(String, String)>,
    pub challenge: Challenge,
    pub misbehaviour: Vec<Misbehaviour>,
}

impl Plan {
    /// A well-behaved server streaming `aus` on one video track, then BYE.
    pub fn video(aus: Vec<Bytes>) -> Plan {
        Plan {
            aus,
            audio: false,
            pace: Duration::ZERO,
            max_payload: 1400,
            decorate: false,
            junk: None,
            bye: true,
            credentials: None,
            challenge: Challenge::Basic,
            misbehaviour: Vec::new(),
        }
    }

    /// The same plan, also misbehaving in way `m`.
    pub fn with(mut self, m: Misbehaviour) -> Plan {
        self.misbehaviour.push(m);
        self
    }

    /// The RTP packets of each access unit as the server makes them.
    pub fn video_packets(&self) -> Vec<Vec<Bytes>> {
        let mut packetizer = Packetizer::new(self.max_payload);
        let mut seq = VIDEO_SEQ0;
        self.aus
            .iter()
            .enumerate()
            .map(|(i, au)| {
                let ts = video_timestamp(i);
                packetizer
                    .packetize(&split_annex_b(au))
                    .into_iter()
                    .map(|(payload, marker)| {
                        let header = RtpHeader {
                            sequence_number: seq,
                            timestamp: ts,
                            ssrc: VIDEO_SSRC,
                            marker,
                            payload_type: 96,
                        };
                        seq = seq.wrapping_add(1);
                        rtp_packet(&header, &payload, self.decorate)
                    })
                    .collect()
            })
            .collect()
    }

    /// The payload of the audio packet sent after access unit `i`.
    pub fn audio_payload(i: usize) -> Bytes {
        (0..AUDIO_SAMPLES).map(|k| (i * 31 + k * 7) as u8 | 0x01).collect()
    }

    fn has(&self, m: &Misbehaviour) -> bool {
        self.misbehaviour.contains(m)
    }

    fn sdp(&self) -> String {
        let mut s = String::from(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=hostile\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\na=control:*\r\n\
             m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n\
             a=fmtp:96 packetization-mode=1;profile-level-id=42c01e\r\na=control:trackID=0\r\n",
        );
        if self.audio {
            s.push_str("m=audio 0 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=control:trackID=1\r\n");
        }
        s
    }
}

/// The RTP timestamp of access unit `i`.
pub fn video_timestamp(i: usize) -> u32 {
    VIDEO_TS0.wrapping_add((i as u32).wrapping_mul(VIDEO_TICKS))
}

/// `count` synthetic H.264 access units, Annex B with 4-byte start codes: an
/// IDR with SPS and PPS every `idr_every`, P slices between. P access units
/// are `size` bytes of slice, IDR slices twice that, so that each spans
/// several FU-A packets. The bytes never form a start code.
pub fn synthetic_aus(count: usize, idr_every: usize, size: usize) -> Vec<Bytes> {
    (0..count)
        .map(|i| {
            let key = i % idr_every.max(1) == 0;
            synthetic_au(i, key, if key { 2 * size } else { size })
        })
        .collect()
}

/// One synthetic access unit (see [`synthetic_aus`]) with a slice of `size` bytes.
pub fn synthetic_au(i: usize, key: bool, size: usize) -> Bytes {
    let mut au = BytesMut::with_capacity(size + 32);
    if key {
        au.put_slice(&[0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x41, 0x41, 0xfb, 0x01, 0x10]);
        au.put_slice(&[0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80]);
    }
    au.put_slice(&[0, 0, 0, 1]);
    // IDR or non-IDR slice header byte; the body's first bit set: first_mb_in_slice = 0.
    au.put_u8(if key { 0x65 } else { 0x41 });
    au.put_u8(0x88);
    for k in 2..size.max(2) {
        au.put_u8(((i * 131 + k * 17) % 251) as u8 + 1);
    }
    au.freeze()
}

/// A request as the server saw it.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub method: String,
    pub uri: String,
    pub cseq: Option<u32>,
    pub headers: Vec<(String, String)>,
    /// From the connection's accept to the request's arrival.
    pub at: Duration,
}

impl SeenRequest {
    /// The first value of header `name`, case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// How the connection ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum End {
    /// No client connected.
    #[default]
    NoConnection,
    /// The client closed it (or reset it).
    ClientClosed,
    /// TEARDOWN answered, then closed.
    TornDown,
    /// Closed by [`Misbehaviour::CloseInside`].
    ClosedInsideFrame,
    /// A write failed (the client is gone).
    WriteFailed,
    /// Stopped by the test, or [`SERVE_LIMIT`] passed.
    Stopped,
}

/// What the server saw and did.
#[derive(Debug, Clone, Default)]
pub struct Log {
    pub requests: Vec<SeenRequest>,
    /// Whole video RTP packets written.
    pub video_packets: usize,
    pub audio_packets: usize,
    pub junk_frames: usize,
    /// Bytes of the misbehaving response (huge, endless or long-lined) written.
    pub hostile_bytes: u64,
    pub end: End,
}

impl Log {
    /// The request methods in order.
    pub fn methods(&self) -> Vec<&str> {
        self.requests.iter().map(|r| r.method.as_str()).collect()
    }
}

/// The server; stopped (and its thread joined) on drop or [`HostileServer::finish`].
#[derive(Debug)]
pub struct HostileServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Log>>,
}

impl HostileServer {
    /// Listens on a free 127.0.0.1 port and serves one connection following `plan`.
    pub fn start(plan: Plan) -> HostileServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("hostile-server".into())
            .spawn(move || serve(listener, &plan, &flag))
            .expect("spawn the hostile server");
        HostileServer {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    /// `rtsp://[user:password@]127.0.0.1:PORT/hostile`.
    pub fn url(&self, credentials: Option<(&str, &str)>) -> String {
        match credentials {
            Some((u, p)) => format!("rtsp://{u}:{p}@{}/hostile", self.addr),
            None => format!("rtsp://{}/hostile", self.addr),
        }
    }

    /// Stops serving (if still) and returns the log. Waits up to about 2 s
    /// for the connection to end by itself first.
    pub fn finish(mut self) -> Log {
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.thread.as_ref().is_some_and(|t| !t.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
        self.join()
    }

    fn join(&mut self) -> Log {
        self.stop.store(true, Ordering::SeqCst);
        self.thread
            .take()
            .map(|t| t.join().expect("hostile server thread"))
            .unwrap_or_default()
    }
}

impl Drop for HostileServer {
    fn drop(&mut self) {
        self.join();
    }
}

/// The connection and what has happened on it.
struct Conn<'a> {
    plan: &'a Plan,
    stream: TcpStream,
    accepted: Instant,
    deadline: Instant,
    stop: &'a AtomicBool,
    log: Log,
    /// Video RTP packets per access unit.
    packets: Vec<Vec<Bytes>>,
    /// (RTP, RTCP) channels the client set up: video, audio.
    video: Option<(u8, u8)>,
    audio: Option<(u8, u8)>,
    /// Streaming: the next access unit and when it is due.
    next_au: Option<(usize, Instant)>,
    audio_seq: u16,
    since_junk: usize,
    silent: bool,
}

/// `Err`: the connection ends, this way.
type Step = Result<(), End>;

fn serve(listener: TcpListener, plan: &Plan, stop: &AtomicBool) -> Log {
    let deadline = Instant::now() + SERVE_LIMIT;
    listener.set_nonblocking(true).expect("nonblocking listener");
    let stream = loop {
        if stop.load(Ordering::SeqCst) || Instant::now() >= deadline {
            return Log::default();
        }
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(POLL),
            Err(_) => return Log::default(),
        }
    };
    let setup = stream
        .set_nonblocking(false)
        .and_then(|()| stream.set_read_timeout(Some(POLL)))
        .and_then(|()| stream.set_write_timeout(Some(Duration::from_secs(2))))
        .and_then(|()| stream.set_nodelay(true));
    if setup.is_err() {
        return Log {
            end: End::ClientClosed,
            ..Log::default()
        };
    }
    let packets = plan.video_packets();
    let mut conn = Conn {
        plan,
        stream,
        accepted: Instant::now(),
        deadline,
        stop,
        log: Log::default(),
        packets,
        video: None,
        audio: None,
        next_au: None,
        audio_seq: 1000,
        since_junk: 0,
        silent: false,
    };
    let end = match conn.run() {
        Ok(()) => End::Stopped,
        Err(e) => e,
    };
    conn.log.end = end;
    conn.log
}

impl Conn<'_> {
    fn live(&self) -> bool {
        !self.stop.load(Ordering::SeqCst) && Instant::now() < self.deadline
    }

    fn run(&mut self) -> Step {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        while self.live() {
            // The client's own RTCP (receiver reports, the BYE before
            // TEARDOWN) comes as `$` frames between requests: skipped.
            while buf.first() == Some(&b'$') && buf.len() >= 4 {
                let len = 4 + usize::from(u16::from_be_bytes([buf[2], buf[3]]));
                if buf.len() < len {
                    break;
                }
                buf.drain(..len);
            }
            if buf.first() == Some(&b'$') {
                // The rest of a frame is still on its way.
            } else if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                // Client requests have no body: a request ends at the blank line.
                let head: Vec<u8> = buf.drain(..end + 4).collect();
                let req = self.parse(&head);
                self.log.requests.push(req.clone());
                if !self.silent {
                    self.answer(&req)?;
                }
                continue;
            }
            if !self.silent {
                self.stream_due()?;
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(End::ClientClosed),
                // Bounded: a client that floods is cut off.
                Ok(_) if buf.len() > 1024 * 1024 => return Err(End::ClientClosed),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(End::ClientClosed),
            }
        }
        Ok(())
    }

    fn parse(&self, head: &[u8]) -> SeenRequest {
        let text = String::from_utf8_lossy(head);
        let mut lines = text.split("\r\n");
        let mut start = lines.next().unwrap_or("").split(' ');
        let method = start.next().unwrap_or("").to_owned();
        let uri = start.next().unwrap_or("").to_owned();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let cseq = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("CSeq"))
            .and_then(|(_, v)| v.parse().ok());
        SeenRequest {
            method,
            uri,
            cseq,
            headers,
            at: self.accepted.elapsed(),
        }
    }

    fn answer(&mut self, req: &SeenRequest) -> Step {
        let plan = self.plan;
        let method = Method::from_token(&req.method);
        let cseq = req.cseq.unwrap_or(0);
        let mut head = Vec::<(String, String)>::new();
        let mut h = |n: &str, v: String| head.push((n.to_owned(), v));
        let refused = plan.has(&Misbehaviour::Unauthorized(method.clone()));
        if refused || !self.authorized(req) {
            h("CSeq", cseq.to_string());
            h("WWW-Authenticate", self.challenge());
            return self.respond(401, "Unauthorized", head, b"");
        }
        if plan.has(&Misbehaviour::HugeContentLength(method.clone())) {
            let bytes = format!(
                "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nContent-Type: application/sdp\r\nContent-Length: {HUGE_CONTENT_LENGTH}\r\n\r\nv=0\r\n"
            );
            self.write(bytes.as_bytes())?;
            self.log.hostile_bytes += bytes.len() as u64;
            self.silent = true;
            return Ok(());
        }
        if plan.has(&Misbehaviour::EndlessHeaders(method.clone())) {
            self.write(format!("RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n").as_bytes())?;
            let line = format!("X-Padding: {}\r\n", "p".repeat(100));
            return self.endless(line.repeat(64).as_bytes());
        }
        if plan.has(&Misbehaviour::LongHeaderLine(method.clone())) {
            self.write(format!("RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nX-Long: ").as_bytes())?;
            return self.endless(&[b'l'; 8192]);
        }
        h("CSeq", cseq.to_string());
        let session = SESSION_ID.to_owned();
        match method {
            Method::Options => {
                h(
                    "Public",
                    "OPTIONS, DESCRIBE, SETUP, PLAY, GET_PARAMETER, TEARDOWN".into(),
                );
                self.respond(200, "OK", head, b"")
            }
            Method::Describe => {
                let sdp = plan.sdp();
                h("Content-Base", format!("rtsp://{}/hostile/", self.local_addr()));
                h("Content-Type", "application/sdp".into());
                self.respond(200, "OK", head, sdp.as_bytes())
            }
            Method::Setup => {
                let requested = req.header("Transport").and_then(interleaved);
                let audio = req.uri.ends_with("trackID=1");
                let channels = requested.unwrap_or(if audio { (2, 3) } else { (0, 1) });
                if audio {
                    self.audio = Some(channels);
                } else {
                    self.video = Some(channels);
                }
                let (a, b) = channels;
                h("Transport", format!("RTP/AVP/TCP;unicast;interleaved={a}-{b}"));
                h("Session", session);
                self.respond(200, "OK", head, b"")
            }
            Method::Play => {
                h("Session", session);
                h("Range", "npt=0.000-".into());
                self.respond(200, "OK", head, b"")?;
                if self.next_au.is_none() {
                    self.next_au = Some((0, Instant::now()));
                }
                Ok(())
            }
            Method::GetParameter => {
                h("Session", session);
                self.respond(200, "OK", head, b"")
            }
            Method::Teardown => {
                h("Session", session);
                self.respond(200, "OK", head, b"")?;
                self.close();
                Err(End::TornDown)
            }
            _ => self.respond(501, "Not Implemented", head, b""),
        }
    }

    fn local_addr(&self) -> String {
        self.stream
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|_| "127.0.0.1".into())
    }

    fn challenge(&self) -> String {
        match self.plan.challenge {
            Challenge::Basic => "Basic realm=\"hostile\"".into(),
            Challenge::Digest => "Digest realm=\"hostile\", nonce=\"0123456789abcdef\", qop=\"auth\"".into(),
        }
    }

    /// Whether `req` carries the plan's credentials (always, when there are none). Digest
    /// answers are taken on the user name alone: this server does not compute MD5.
    fn authorized(&self, req: &SeenRequest) -> bool {
        let Some((user, password)) = &self.plan.credentials else {
            return true;
        };
        let Some(auth) = req.header("Authorization") else {
            return false;
        };
        match self.plan.challenge {
            Challenge::Basic => auth == format!("Basic {}", base64(format!("{user}:{password}").as_bytes())),
            Challenge::Digest => auth.starts_with("Digest ") && auth.contains(&format!("username=\"{user}\"")),
        }
    }

    fn respond(&mut self, status: u16, reason: &str, head: Vec<(String, String)>, body: &[u8]) -> Step {
        let mut out = format!("RTSP/1.0 {status} {reason}\r\n");
        for (n, v) in head {
            out.push_str(&format!("{n}: {v}\r\n"));
        }
        if !body.is_empty() {
            out.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(body);
        self.write(&bytes)
    }

    /// Writes `piece` over and over until the client gives up (the write
    /// fails), [`ENDLESS_CAP`] is reached, or the server is stopped; then
    /// goes silent, so a client that waits is seen to wait.
    fn endless(&mut self, piece: &[u8]) -> Step {
        while self.live() && self.log.hostile_bytes < ENDLESS_CAP {
            self.write(piece)?;
            self.log.hostile_bytes += piece.len() as u64;
        }
        self.silent = true;
        Ok(())
    }

    fn write(&mut self, bytes: &[u8]) -> Step {
        self.stream.write_all(bytes).map_err(|_| End::WriteFailed)
    }

    fn interleaved(&mut self, channel: u8, payload: &[u8]) -> Step {
        let mut frame = Vec::with_capacity(4 + payload.len());
        frame.push(b'$');
        frame.push(channel);
        frame.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        frame.extend_from_slice(payload);
        self.write(&frame)
    }

    /// Sends the access units that are due.
    fn stream_due(&mut self) -> Step {
        while let Some((i, due)) = self.next_au {
            if i > self.plan.aus.len() || Instant::now() < due || !self.live() {
                return Ok(());
            }
            if i == self.plan.aus.len() {
                self.next_au = Some((i + 1, due));
                if self.plan.bye {
                    self.send_byes()?;
                }
                return Ok(());
            }
            if self.plan.has(&Misbehaviour::CloseInside(i)) {
                return self.close_inside(i);
            }
            self.send_au(i)?;
            self.next_au = Some((i + 1, due + self.plan.pace));
        }
        Ok(())
    }

    fn send_au(&mut self, i: usize) -> Step {
        let Some((channel, _)) = self.video else {
            return Ok(());
        };
        for k in 0..self.packets[i].len() {
            let packet = self.packets[i][k].clone();
            self.interleaved(channel, &packet)?;
            self.log.video_packets += 1;
            self.since_junk += 1;
            if let Some(junk) = self.plan.junk {
                if self.since_junk >= junk.every {
                    self.since_junk = 0;
                    let ch = junk.channels[self.log.junk_frames % 2];
                    let payload: Vec<u8> = (0..37 + self.log.junk_frames % 5).map(|b| b as u8 ^ 0xa5).collect();
                    self.interleaved(ch, &payload)?;
                    self.log.junk_frames += 1;
                }
            }
        }
        if let Some((channel, _)) = self.audio {
            let header = RtpHeader {
                sequence_number: self.audio_seq,
                timestamp: (i * AUDIO_SAMPLES) as u32,
                ssrc: AUDIO_SSRC,
                marker: i == 0,
                payload_type: 8,
            };
            self.audio_seq = self.audio_seq.wrapping_add(1);
            let packet = rtp_packet(&header, &Plan::audio_payload(i), self.plan.decorate);
            self.interleaved(channel, &packet)?;
            self.log.audio_packets += 1;
        }
        Ok(())
    }

    fn send_byes(&mut self) -> Step {
        for (track, ssrc) in [(self.video, VIDEO_SSRC), (self.audio, AUDIO_SSRC)] {
            if let Some((_, rtcp)) = track {
                let mut bye = vec![0x81, 203, 0, 1];
                bye.extend_from_slice(&ssrc.to_be_bytes());
                self.interleaved(rtcp, &bye)?;
            }
        }
        Ok(())
    }

    /// Half of access unit `i`'s packets, then half of the next packet's bytes, then close.
    fn close_inside(&mut self, i: usize) -> Step {
        let Some((channel, _)) = self.video else {
            return Ok(());
        };
        let packets = self.packets[i].clone();
        let whole = packets.len() / 2;
        for p in &packets[..whole] {
            self.interleaved(channel, p)?;
            self.log.video_packets += 1;
        }
        let next = &packets[whole];
        let mut frame = vec![b'$', channel];
        frame.extend_from_slice(&(next.len() as u16).to_be_bytes());
        frame.extend_from_slice(next);
        frame.truncate(frame.len() / 2);
        self.write(&frame)?;
        self.close();
        Err(End::ClosedInsideFrame)
    }

    /// Half-closes, then waits briefly for the client to close, so nothing
    /// the client still sends turns the close into a reset.
    fn close(&mut self) {
        let _ = self.stream.flush();
        let _ = self.stream.shutdown(Shutdown::Write);
        let deadline = Instant::now() + Duration::from_secs(1);
        let mut sink = [0u8; 1024];
        while Instant::now() < deadline && self.live() {
            match self.stream.read(&mut sink) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    }
}

/// An RTP packet; `decorate` adds two CSRCs, a one-word header extension
/// and 1 to 7 bytes of padding, none of which changes the payload.
fn rtp_packet(header: &RtpHeader, payload: &[u8], decorate: bool) -> Bytes {
    let mut out = BytesMut::new();
    if !decorate {
        header.write_packet(payload, &mut out);
        return out.freeze();
    }
    header.write(&mut out);
    // V=2, P, X, CC=2.
    out[0] = 0x80 | 0x20 | 0x10 | 2;
    out.put_u32(0x1111_1111);
    out.put_u32(0x2222_2222);
    out.put_u16(0xbede);
    out.put_u16(1);
    out.put_slice(&[0x10, 0xab, 0xcd, 0x00]);
    out.put_slice(payload);
    let padding = (header.sequence_number % 7) as u8 + 1;
    for _ in 1..padding {
        out.put_u8(0);
    }
    out.put_u8(padding);
    out.freeze()
}

/// The `interleaved=a-b` channels of a Transport header.
fn interleaved(transport: &str) -> Option<(u8, u8)> {
    let v = transport
        .split(';')
        .find_map(|p| p.trim().strip_prefix("interleaved="))?;
    let (a, b) = v.split_once('-')?;
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

/// Standard base64 with padding (for checking Basic credentials).
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * k)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtsp_toolkit_core::rtp::RtpPacket;

    #[test]
    fn base64_matches_rfc_4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"user:pass"), "dXNlcjpwYXNz");
    }

    #[test]
    fn decorated_packets_parse_to_the_same_payload() {
        let plan = Plan::video(synthetic_aus(3, 2, 3000));
        let clean = plan.video_packets();
        let decorated = Plan { decorate: true, ..plan }.video_packets();
        assert!(clean[0].len() >= 3, "an IDR spans several packets");
        for (a, b) in clean.iter().flatten().zip(decorated.iter().flatten()) {
            let a = RtpPacket::parse(a.clone()).unwrap();
            let b = RtpPacket::parse(b.clone()).unwrap();
            assert_eq!((b.csrc_count, b.extension.is_some()), (2, true));
            assert!(b.padding > 0);
            assert_eq!(
                (a.payload, a.sequence_number, a.marker),
                (b.payload, b.sequence_number, b.marker)
            );
        }
    }

    #[test]
    fn synthetic_aus_have_no_start_code_inside_a_nal() {
        let au = synthetic_au(7, true, 5000);
        let nals = split_annex_b(&au);
        assert_eq!(nals.len(), 3);
        assert_eq!(nals[2].len(), 5000);
    }
}
