//! What the end-to-end client benches share (`benches/client.rs`: ours
//! against retina over TCP; `benches/client_udp.rs`: ours over UDP against
//! ours over TCP): a synthetic H.264 stream, a loopback RTSP server that
//! plays it, a checker of the frames a client gives, and CPU clocks.
//!
//! The stream: GOPs of 30 frames at 30 fps, an IDR slice of 250-350 KB then
//! P slices of 3-7 KB, sizes and bytes from a fixed-seed generator
//! ([`crate::rng`]), FU-A at 1400 bytes of RTP payload (written by hand
//! here), ending with an RTCP receiver report and a BYE.
//!
//! The server is a std thread with a plain `TcpListener`, one connection at
//! a time. It answers OPTIONS, DESCRIBE (one H.264 track), SETUP (TCP
//! interleaved, or UDP unicast from a pair of sockets it binds for the
//! session) and PLAY, then sends the stream:
//!
//! * unpaced ([`Server::start`] with no [`Pace`]): the whole interleaved
//!   stream in one write, as fast as the client reads; then it half-closes
//!   its side and reads until the client closes (a client that ends at the
//!   end of the connection, as retina does, ends there);
//! * paced: [`Pace::packets`] RTP packets every [`Pace::interval`], on TCP
//!   or UDP, one system call per packet or per burst ([`Pace::batched`]), the BYE on the
//!   RTCP channel or port; then it answers requests until TEARDOWN.
//!
//! It measures its own thread's CPU per connection, so that a bench can
//! subtract it from the process's.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rtsp_toolkit_driver::udp::{Gso, SendBatch};
use rtsp_toolkit_tokio::core::udp::UdpSocketId;
use rtsp_toolkit_tokio::Event;

use crate::rng::Rng;

/// A real 1920x1080 Main-profile SPS and its PPS (from a camera's DESCRIBE).
pub const SPS: &[u8] = &[
    0x67, 0x4d, 0x00, 0x2a, 0x9d, 0xa8, 0x1e, 0x00, 0x89, 0xf9, 0x66, 0xe0, 0x20, 0x20, 0x28, 0x00, 0x00, 0x03, 0x00,
    0x08, 0x00, 0x00, 0x03, 0x00, 0x7c, 0x20,
];
/// The PPS that goes with [`SPS`].
pub const PPS: &[u8] = &[0x68, 0xee, 0x3c, 0x80];

/// Frames in a GOP (one IDR, then P frames).
pub const GOP_FRAMES: usize = 30;
const MAX_RTP_PAYLOAD: usize = 1400;
const PAYLOAD_TYPE: u8 = 96;
const SSRC: u32 = 0x4b1d_cafe;
const FRAME_TICKS: u32 = 90_000 / 30;
/// Longest the server waits on a read or a write, and a bench on the server.
pub const IO_LIMIT: Duration = Duration::from_secs(10);

/// What is sent: the frames' slices and their RTP packets.
#[derive(Debug)]
pub struct Stream {
    /// Every slice NAL unit (header included, no start code), back to back.
    pub nals: Vec<u8>,
    /// Each frame's range in `nals` and whether it is an IDR.
    pub frames: Vec<(Range<usize>, bool)>,
    /// The RTP packets, back to back.
    pub rtp: Vec<u8>,
    /// Each RTP packet's range in `rtp`.
    pub packets: Vec<Range<usize>>,
    /// The compound RTCP packet that ends the stream: an empty receiver
    /// report (a compound packet starts with SR or RR), then BYE.
    pub bye: Vec<u8>,
}

impl Stream {
    /// `gops` GOPs of [`GOP_FRAMES`] frames, the same on every run.
    pub fn synthetic(gops: usize) -> Stream {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut s = Stream {
            nals: Vec::new(),
            frames: Vec::with_capacity(gops * GOP_FRAMES),
            rtp: Vec::new(),
            packets: Vec::new(),
            bye: Vec::new(),
        };
        let mut seq: u16 = 0xff00;
        let mut timestamp: u32 = 0x1000_0000;
        for i in 0..gops * GOP_FRAMES {
            let keyframe = i % GOP_FRAMES == 0;
            let (size, header, first) = if keyframe {
                (rng.range(250_000, 350_000), 0x65, 0x88)
            } else {
                (rng.range(3_000, 7_000), 0x41, 0x9a)
            };
            let start = s.nals.len();
            // NAL header, then a slice header whose first bit is set (first_mb_in_slice = 0).
            s.nals.extend_from_slice(&[header, first]);
            rng.append(size - 2, true, &mut s.nals);
            let nal = &s.nals[start..];
            if nal.len() <= MAX_RTP_PAYLOAD {
                put_rtp(&mut s.rtp, &mut s.packets, seq, timestamp, true, &[nal]);
                seq = seq.wrapping_add(1);
            } else {
                // FU-A: indicator (F, NRI, type 28), header (S, E, type), then a fragment.
                let indicator = (header & 0xe0) | 28;
                let chunks: Vec<&[u8]> = nal[1..].chunks(MAX_RTP_PAYLOAD - 2).collect();
                let last = chunks.len() - 1;
                for (k, chunk) in chunks.into_iter().enumerate() {
                    let fu = u8::from(k == 0) << 7 | u8::from(k == last) << 6 | (header & 0x1f);
                    put_rtp(
                        &mut s.rtp,
                        &mut s.packets,
                        seq,
                        timestamp,
                        k == last,
                        &[&[indicator, fu], chunk],
                    );
                    seq = seq.wrapping_add(1);
                }
            }
            s.frames.push((start..s.nals.len(), keyframe));
            timestamp = timestamp.wrapping_add(FRAME_TICKS);
        }
        let ssrc = SSRC.to_be_bytes();
        s.bye = [&[0x80, 201, 0, 1][..], &ssrc[..], &[0x81, 203, 0, 1][..], &ssrc[..]].concat();
        s
    }

    /// Bytes of H.264 slices (the same for every client).
    pub fn frame_bytes(&self) -> u64 {
        self.nals.len() as u64
    }

    /// How many RTP packets carry the frames.
    pub fn rtp_packets(&self) -> u64 {
        self.packets.len() as u64
    }

    /// The stream as `$`-interleaved data (RTP on channel 0, the final RTCP
    /// on channel 1), and where each RTP packet ends in it.
    pub fn interleaved(&self) -> (Vec<u8>, Vec<usize>) {
        let mut wire = Vec::with_capacity(self.rtp.len() + 4 * self.packets.len() + 4 + self.bye.len());
        let mut ends = Vec::with_capacity(self.packets.len());
        for p in &self.packets {
            put_interleaved(&mut wire, 0, &self.rtp[p.clone()]);
            ends.push(wire.len());
        }
        put_interleaved(&mut wire, 1, &self.bye);
        (wire, ends)
    }
}

/// Appends one RTP packet to `rtp` and its range to `packets`.
fn put_rtp(
    rtp: &mut Vec<u8>,
    packets: &mut Vec<Range<usize>>,
    seq: u16,
    timestamp: u32,
    marker: bool,
    payload: &[&[u8]],
) {
    let start = rtp.len();
    rtp.push(0x80);
    rtp.push(u8::from(marker) << 7 | PAYLOAD_TYPE);
    rtp.extend_from_slice(&seq.to_be_bytes());
    rtp.extend_from_slice(&timestamp.to_be_bytes());
    rtp.extend_from_slice(&SSRC.to_be_bytes());
    for p in payload {
        rtp.extend_from_slice(p);
    }
    packets.push(start..rtp.len());
}

fn put_interleaved(wire: &mut Vec<u8>, channel: u8, packet: &[u8]) {
    wire.push(b'$');
    wire.push(channel);
    wire.extend_from_slice(&u16::try_from(packet.len()).expect("packet fits").to_be_bytes());
    wire.extend_from_slice(packet);
}

/// Standard base64 with padding, for `sprop-parameter-sets`.
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * k) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn sdp() -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=client bench\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\na=control:*\r\n\
         m=video 0 RTP/AVP {PAYLOAD_TYPE}\r\na=rtpmap:{PAYLOAD_TYPE} H264/90000\r\n\
         a=fmtp:{PAYLOAD_TYPE} packetization-mode=1;profile-level-id=4d002a;sprop-parameter-sets={},{}\r\n\
         a=control:trackID=0\r\n",
        base64(SPS),
        base64(PPS)
    )
}

// ---------------------------------------------------------------------------
// The server.

/// How a paced server sends: `packets` RTP packets every `interval`, on an
/// absolute schedule (a late burst is sent at once, not skipped). Without
/// `batched`, one system call per packet: one `send_to` over UDP, one
/// `write` over TCP (the socket has `TCP_NODELAY`, so each goes out on its
/// own). With `batched`, a burst in as few calls as it fits: one `write`
/// over TCP; over UDP, GSO sends (`driver::udp::SendBatch`), as our server
/// sends a frame and as GStreamer's `multiudpsink` sends a buffer list with
/// `sendmmsg`.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    pub packets: usize,
    pub interval: Duration,
    pub batched: bool,
}

/// What the server did on one connection.
#[derive(Debug)]
pub struct ServerReport {
    /// CPU time of the server thread on this connection.
    pub cpu: Duration,
    /// The request methods, in order.
    pub methods: Vec<String>,
    /// Whether the whole stream was sent.
    pub played: bool,
    /// Whether it went over UDP.
    pub udp: bool,
    /// Bursts that started later than their time by more than one interval.
    pub late_bursts: usize,
    pub error: Option<String>,
}

/// The loopback server: one connection at a time, a report for each.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    reports: Receiver<ServerReport>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// What every connection serves.
struct Content {
    stream: Arc<Stream>,
    sdp: String,
    wire: Vec<u8>,
    ends: Vec<usize>,
    pace: Option<Pace>,
}

impl Server {
    /// Starts the server thread on a loopback port.
    pub fn start(stream: Arc<Stream>, pace: Option<Pace>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().expect("local address");
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, reports) = mpsc::channel();
        let flag = stop.clone();
        let (wire, ends) = stream.interleaved();
        let content = Content {
            stream,
            sdp: sdp(),
            wire,
            ends,
            pace,
        };
        let thread = std::thread::Builder::new()
            .name("bench server".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if flag.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let before = thread_cpu();
                    let mut report = ServerReport {
                        cpu: Duration::ZERO,
                        methods: Vec::new(),
                        played: false,
                        udp: false,
                        late_bursts: 0,
                        error: None,
                    };
                    if let Err(e) = serve(conn, addr, &content, &mut report) {
                        report.error = Some(e.to_string());
                    }
                    report.cpu = thread_cpu().saturating_sub(before);
                    if tx.send(report).is_err() {
                        break;
                    }
                }
            })
            .expect("spawn the server thread");
        Server {
            addr,
            reports,
            stop,
            thread: Some(thread),
        }
    }

    /// The URL to open.
    pub fn url(&self) -> String {
        format!("rtsp://{}/bench", self.addr)
    }

    /// The report of the connection that just ended (blocking this thread).
    pub fn report(&self) -> ServerReport {
        match self.reports.recv_timeout(IO_LIMIT * 2) {
            Ok(r) => r,
            Err(e) => panic!("no report from the server: {e}"),
        }
    }

    /// The same, letting the current tokio runtime run meanwhile (a client's
    /// background task may still be closing the connection).
    pub async fn report_async(&self) -> ServerReport {
        let deadline = Instant::now() + IO_LIMIT * 2;
        loop {
            match self.reports.try_recv() {
                Ok(r) => return r,
                Err(TryRecvError::Empty) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err(e) => panic!("no report from the server: {e}"),
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One request's head, read by [`read_request`].
struct Request {
    method: String,
    cseq: String,
    head: String,
}

/// The next request on `conn` (`$`-interleaved data in between, such as a
/// client's receiver reports, is skipped); `None` at the end of the
/// connection.
fn read_request(conn: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<Option<Request>> {
    let mut chunk = [0u8; 4096];
    loop {
        if buf.first() == Some(&b'$') {
            if buf.len() >= 4 {
                let len = 4 + usize::from(u16::from_be_bytes([buf[2], buf[3]]));
                if buf.len() >= len {
                    buf.drain(..len);
                    continue;
                }
            }
        } else if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let body = header(&head, "content-length")
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + body {
                buf.drain(..end + 4 + body);
                let method = head.split(' ').next().unwrap_or("").to_owned();
                let cseq = header(&head, "cseq").unwrap_or("0").to_owned();
                return Ok(Some(Request { method, cseq, head }));
            }
        }
        match conn.read(&mut chunk)? {
            0 => return Ok(None),
            n => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// The value of header `name` (lower case) in a request head.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The UDP side of a session: the server's pair and the client's ports.
struct UdpPeer {
    rtp: UdpSocket,
    rtcp: UdpSocket,
    client_rtp: SocketAddr,
    client_rtcp: SocketAddr,
}

/// `client_port=a-b` of a SETUP's `Transport` header, on the client's IP.
fn client_ports(transport: &str, ip: std::net::IpAddr) -> Option<(SocketAddr, SocketAddr)> {
    let v = transport
        .split(';')
        .find_map(|p| p.trim().strip_prefix("client_port="))?;
    let (a, b) = v.split_once('-')?;
    Some((
        SocketAddr::new(ip, a.trim().parse().ok()?),
        SocketAddr::new(ip, b.trim().parse().ok()?),
    ))
}

/// Serves one connection (see the module docs).
fn serve(mut conn: TcpStream, addr: SocketAddr, content: &Content, report: &mut ServerReport) -> io::Result<()> {
    conn.set_nodelay(true)?;
    conn.set_read_timeout(Some(IO_LIMIT))?;
    conn.set_write_timeout(Some(IO_LIMIT))?;
    let client_ip = conn.peer_addr()?.ip();
    let base = format!("rtsp://{addr}/bench/");
    let sdp = &content.sdp;
    let mut udp: Option<UdpPeer> = None;
    let mut buf = Vec::new();
    while let Some(Request { method, cseq, head }) = read_request(&mut conn, &mut buf)? {
        report.methods.push(method.clone());
        let response = match method.as_str() {
            "OPTIONS" => format!(
                "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n\
                 Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER\r\n\r\n"
            ),
            "DESCRIBE" => format!(
                "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nContent-Base: {base}\r\n\
                 Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
                sdp.len()
            ),
            "SETUP" => {
                let transport = header(&head, "transport").unwrap_or("");
                let transport = match client_ports(transport, client_ip) {
                    Some((client_rtp, client_rtcp)) if !transport.to_ascii_uppercase().contains("TCP") => {
                        let rtp = UdpSocket::bind("127.0.0.1:0")?;
                        let rtcp = UdpSocket::bind("127.0.0.1:0")?;
                        let t = format!(
                            "RTP/AVP;unicast;client_port={}-{};server_port={}-{};ssrc={SSRC:08X}",
                            client_rtp.port(),
                            client_rtcp.port(),
                            rtp.local_addr()?.port(),
                            rtcp.local_addr()?.port()
                        );
                        udp = Some(UdpPeer {
                            rtp,
                            rtcp,
                            client_rtp,
                            client_rtcp,
                        });
                        t
                    }
                    _ => format!("RTP/AVP/TCP;unicast;interleaved=0-1;ssrc={SSRC:08X}"),
                };
                format!(
                    "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nTransport: {transport}\r\n\
                     Session: 4b1dcafe;timeout=60\r\n\r\n"
                )
            }
            "PLAY" => format!("RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nSession: 4b1dcafe\r\nRange: npt=0.000-\r\n\r\n"),
            _ => format!("RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nSession: 4b1dcafe\r\n\r\n"),
        };
        conn.write_all(response.as_bytes())?;
        match method.as_str() {
            "PLAY" => {
                report.udp = udp.is_some();
                match (&udp, content.pace) {
                    (Some(peer), pace) => play_udp(peer, content, pace, report)?,
                    (None, Some(pace)) => play_tcp_paced(&mut conn, content, pace, report)?,
                    (None, None) => {
                        conn.write_all(&content.wire)?;
                        report.played = true;
                        conn.shutdown(Shutdown::Write)?;
                        // Whatever the client still sends (TEARDOWN) is read
                        // and dropped, so that its close is not a reset.
                        let mut chunk = [0u8; 4096];
                        loop {
                            match conn.read(&mut chunk) {
                                Ok(0) | Err(_) => return Ok(()),
                                Ok(_) => {}
                            }
                        }
                    }
                }
            }
            "TEARDOWN" => return Ok(()),
            _ => {}
        }
    }
    Ok(())
}

/// Sleeps until burst `k` of `pace` after `start` is due; counts it late
/// when it is more than one interval behind.
fn wait_burst(start: Instant, k: usize, pace: Pace, report: &mut ServerReport) {
    let due = start + pace.interval * u32::try_from(k).unwrap_or(u32::MAX);
    let now = Instant::now();
    if now < due {
        std::thread::sleep(due - now);
    } else if now - due > pace.interval {
        report.late_bursts += 1;
    }
}

fn play_tcp_paced(conn: &mut TcpStream, content: &Content, pace: Pace, report: &mut ServerReport) -> io::Result<()> {
    let start = Instant::now();
    let mut from = 0;
    for (k, burst) in content.ends.chunks(pace.packets.max(1)).enumerate() {
        wait_burst(start, k, pace, report);
        if pace.batched {
            let to = *burst.last().expect("chunks are not empty");
            conn.write_all(&content.wire[from..to])?;
            from = to;
            continue;
        }
        for &to in burst {
            conn.write_all(&content.wire[from..to])?;
            from = to;
        }
    }
    // The RTCP BYE.
    conn.write_all(&content.wire[from..])?;
    report.played = true;
    Ok(())
}

fn play_udp(peer: &UdpPeer, content: &Content, pace: Option<Pace>, report: &mut ServerReport) -> io::Result<()> {
    let s = &content.stream;
    let start = Instant::now();
    let per_burst = pace.map_or(s.packets.len().max(1), |p| p.packets.max(1));
    let gso = pace
        .filter(|p| p.batched)
        .and_then(|_| Gso::new(socket2::SockRef::from(&peer.rtp)).ok());
    for (k, burst) in s.packets.chunks(per_burst).enumerate() {
        if let Some(pace) = pace {
            wait_burst(start, k, pace, report);
        }
        let Some(gso) = gso.as_ref() else {
            for p in burst {
                peer.rtp.send_to(&s.rtp[p.clone()], peer.client_rtp)?;
            }
            continue;
        };
        let id = UdpSocketId::rtp(0);
        let mut batch: Option<SendBatch> = None;
        for p in burst {
            let data = &s.rtp[p.clone()];
            if let Some(b) = batch.as_mut() {
                if b.push(id, peer.client_rtp, data, gso.max_segments()) {
                    continue;
                }
            }
            if let Some(b) = batch.replace(SendBatch::new(id, peer.client_rtp, data)) {
                send_all(gso, &peer.rtp, &b)?;
            }
        }
        if let Some(b) = batch {
            send_all(gso, &peer.rtp, &b)?;
        }
    }
    peer.rtcp.send_to(&s.bye, peer.client_rtcp)?;
    report.played = true;
    Ok(())
}

/// One GSO send of `batch`, retried while the socket buffer is full (the
/// bench must not lose datagrams).
fn send_all(gso: &Gso, socket: &UdpSocket, batch: &SendBatch) -> io::Result<()> {
    for _ in 0..10_000 {
        match gso.send(socket2::SockRef::from(socket), batch) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_micros(50)),
            r => return r,
        }
    }
    Err(io::Error::new(
        io::ErrorKind::TimedOut,
        "the socket took no datagram for 0.5 s",
    ))
}

// ---------------------------------------------------------------------------
// Checking what a client gives.

/// Checks the frames of one pass as they arrive, against what was sent.
#[derive(Debug)]
pub struct Checker<'a> {
    stream: &'a Stream,
    name: &'a str,
    /// The client puts the SDP's parameter sets in front of the first
    /// keyframe (ours does; retina does not).
    params_first: bool,
    /// Compare every byte, not only sizes and keyframe flags.
    full: bool,
    frames: usize,
    closed: bool,
}

impl<'a> Checker<'a> {
    pub fn new(stream: &'a Stream, name: &'a str, params_first: bool, full: bool) -> Self {
        Checker {
            stream,
            name,
            params_first,
            full,
            frames: 0,
            closed: false,
        }
    }

    /// The next frame: panics unless it is the one sent (size, keyframe
    /// flag, and with `full` every byte).
    pub fn frame(&mut self, data: &[u8], keyframe: bool) {
        let name = self.name;
        let i = self.frames;
        let Some((range, key)) = self.stream.frames.get(i) else {
            panic!("{name}: more than {} frames", self.stream.frames.len());
        };
        assert_eq!(keyframe, *key, "{name}: frame {i}: keyframe flag");
        let slice = &self.stream.nals[range.clone()];
        let want = 4 + slice.len();
        let params = 4 + SPS.len() + 4 + PPS.len();
        let with_params = self.params_first && i == 0 && data.len() == want + params;
        if !with_params {
            assert_eq!(data.len(), want, "{name}: frame {i}: size");
        }
        if self.full {
            let mut expected = Vec::with_capacity(data.len());
            if with_params {
                for nal in [SPS, PPS] {
                    expected.extend_from_slice(&[0, 0, 0, 1]);
                    expected.extend_from_slice(nal);
                }
            }
            expected.extend_from_slice(&[0, 0, 0, 1]);
            expected.extend_from_slice(slice);
            assert!(data == expected, "{name}: frame {i}: data differs from what was sent");
        }
        self.frames += 1;
    }

    /// One of our client's events: a frame is checked; a loss, a warning,
    /// a failed request or an error at the end panics.
    pub fn event(&mut self, event: Event) {
        let name = self.name;
        match event {
            Event::Video(v) => self.frame(&v.frame.data, v.frame.keyframe),
            Event::Closed(c) => {
                assert!(c.error.is_none(), "{name}: closed with an error: {c:?}");
                self.closed = true;
            }
            Event::Loss(l) => panic!("{name}: loss: {l:?}"),
            Event::Warning(w) => panic!("{name}: warning: {w:?}"),
            Event::Method(m) => assert!(
                (200..300).contains(&m.status),
                "{name}: {} answered {}",
                m.method,
                m.status
            ),
            _ => {}
        }
    }

    /// The end of the pass: every frame came (and with `closed`, a clean `Closed` event).
    pub fn finish(self, closed: bool) {
        let name = self.name;
        assert_eq!(self.frames, self.stream.frames.len(), "{name}: frame count");
        if closed {
            assert!(self.closed, "{name}: no Closed event");
        }
    }
}

// ---------------------------------------------------------------------------
// CPU time (the workspace forbids unsafe code: /proc and rustix's safe calls).

/// User + system CPU time of the whole process, in clock ticks (fields 14
/// and 15 of `/proc/self/stat`; exited threads included).
pub fn process_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // The fields after the command name in parentheses start at field 3.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

/// Clock ticks per second (`getconf CLK_TCK`; Linux's user-visible tick is 100).
pub fn ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .unwrap_or(100.0)
}

/// CPU time of the whole process (`CLOCK_PROCESS_CPUTIME_ID`, ns; exited
/// threads included): finer than [`process_ticks`].
pub fn process_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// CPU time of the calling thread (`/proc/thread-self/schedstat`, ns).
pub fn thread_cpu() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse().ok()))
        .map(Duration::from_nanos)
        .unwrap_or_default()
}

/// Times the calling thread gave up the CPU to wait (`voluntary_ctxt_switches`
/// of `/proc/thread-self/status`): how often it slept and was woken.
pub fn thread_wakeups() -> u64 {
    std::fs::read_to_string("/proc/thread-self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The 1, 5 and 15 minute load averages.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "n/a".to_owned())
}

/// The median (sorts `v`); `v` must not be empty.
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// CPUs this process may use.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
