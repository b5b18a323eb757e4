//! End-to-end client benchmark: rtsp-toolkit's client on tokio, smol and
//! blocking against retina 0.4.21's client, over loopback TCP.
//!
//! ```text
//! cargo bench -p rtsp-toolkit-conformance --bench client
//! scripts/bench-client.sh [REV]      # this binary at HEAD (and at REV), alternately
//! ```
//!
//! An RTSP server inside this process (a std thread with a plain
//! `TcpListener`) answers OPTIONS, DESCRIBE (an SDP with one H.264 track),
//! SETUP (`RTP/AVP/TCP;interleaved=0-1`) and PLAY, then writes one buffer,
//! serialized before any measurement: 1,800 synthetic H.264 frames as
//! `$`-interleaved RTP (60 GOPs of 30 frames at 30 fps; IDR slices of
//! 250-350 KB, P slices of 3-7 KB, sizes and bytes from a fixed-seed
//! generator; about 26.6 MB of slice data; FU-A at 1400 bytes of RTP
//! payload, written by hand here), then an RTCP receiver report with a BYE.
//! It writes as fast as the client reads, half-closes its side, and reads
//! until the client closes. Every client ends cleanly on that: ours sees the
//! BYE, sends TEARDOWN and takes the end of the stream as the end of the
//! session (`Closed` without an error); retina ends its stream at the end of
//! the connection.
//!
//! Clients, each run from `open`/`describe` to the end of its stream on the
//! main thread:
//!
//! * `tokio`: `rtsp_toolkit_tokio::Session` on a current-thread tokio runtime,
//! * `smol`: `rtsp_toolkit_smol::Session` under `smol::block_on`,
//! * `blocking`: `rtsp_toolkit_blocking::Session`, iterated,
//! * `retina`: `retina::client::Session` (`describe`, `setup` over TCP with
//!   Annex B frames and no parameter set insertion, `play`, `demuxed`) on the
//!   same current-thread tokio runtime as `tokio`.
//!
//! Every pass counts the video frames and checks each one's size and
//! keyframe flag against what was sent (ours also puts the SDP's SPS and PPS
//! in front of the first keyframe; retina does not); the first pass of each
//! client also compares every byte. A pass that does not give exactly the
//! 1,800 frames, or ends with an error, panics.
//!
//! Measured per client:
//!
//! * throughput: MB/s of frame data (10^6 bytes of H.264 slices, the same
//!   number for every client) and frames/s, from the wall time of a pass;
//! * CPU per RTP packet: user + system time of the whole process over the
//!   pass (`/proc/self/stat`, in clock ticks of 10 ms, summed over all passes
//!   of the client) divided by the RTP packets. This includes the in-process
//!   server, whose work is the same for every client; the server thread also
//!   measures its own CPU (`/proc/thread-self/schedstat`, ns), and the
//!   difference is the client's share. The main thread's own CPU (ns) is
//!   shown too: every client runs there, but helper threads (the blocking
//!   runtime's connect thread, runtime reactor threads) are not in it.
//!
//! Criterion measures the group `client` (functions `tokio`, `smol`,
//! `blocking`, `retina`; throughput in frame data bytes). Then a summary
//! table is printed from this binary's own timing: rounds of one pass of each
//! client, the order rotating every round so that noise from neighbours hits
//! all alike, at least [`MIN_ROUNDS`] rounds and about
//! `CLIENT_BENCH_SECS` seconds (default 20); medians of the wall times, CPU
//! as above, and each of ours against retina. `CLIENT_BENCH_SUMMARY=1` skips
//! criterion (what `scripts/bench-client.sh` uses); every summary line that
//! starts with `RESULT` is for that script. `CLIENT_BENCH_CLIENTS=smol,retina`
//! limits the summary to those clients (to profile one, e.g. under
//! `perf record`).
//!
//! Under `cargo test --benches` (no `--bench` argument) it runs one checked
//! pass of each client and nothing else.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use futures_util::StreamExt;
use retina::client::{PlayOptions, SessionOptions, SetupOptions, Transport};
use retina::codec::{CodecItem, FrameFormat, ParameterSetInsertion};
use rtsp_toolkit_conformance::rng::Rng;
use rtsp_toolkit_tokio::{ClientOptions, Event};

/// A real 1920x1080 Main-profile SPS and its PPS (from a camera's DESCRIBE).
const SPS: &[u8] = &[
    0x67, 0x4d, 0x00, 0x2a, 0x9d, 0xa8, 0x1e, 0x00, 0x89, 0xf9, 0x66, 0xe0, 0x20, 0x20, 0x28, 0x00, 0x00, 0x03, 0x00,
    0x08, 0x00, 0x00, 0x03, 0x00, 0x7c, 0x20,
];
const PPS: &[u8] = &[0x68, 0xee, 0x3c, 0x80];

const GOPS: usize = 60;
const GOP_FRAMES: usize = 30;
const FRAMES: usize = GOPS * GOP_FRAMES;
const MAX_RTP_PAYLOAD: usize = 1400;
const PAYLOAD_TYPE: u8 = 96;
const SSRC: u32 = 0x4b1d_cafe;
const FRAME_TICKS: u32 = 90_000 / 30;

/// Fewest rounds of the summary.
const MIN_ROUNDS: usize = 5;
const SECS_ENV: &str = "CLIENT_BENCH_SECS";
const SUMMARY_ENV: &str = "CLIENT_BENCH_SUMMARY";
const CLIENTS_ENV: &str = "CLIENT_BENCH_CLIENTS";
/// Longest the server waits on a read or a write, and the bench on the server.
const IO_LIMIT: Duration = Duration::from_secs(10);

/// Retina's output format matching ours: Annex B, no SPS/PPS insertion.
const RETINA_FORMAT: FrameFormat = FrameFormat {
    h26x_framing: retina::codec::h26x::Framing::AnnexB,
    parameter_set_insertion: ParameterSetInsertion::Never,
    aac_framing: retina::codec::aac::Framing::Raw,
};

/// The clients measured, in the summary's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    Tokio,
    Smol,
    Blocking,
    Retina,
}

impl Client {
    const ALL: [Client; 4] = [Client::Tokio, Client::Smol, Client::Blocking, Client::Retina];

    fn name(self) -> &'static str {
        match self {
            Client::Tokio => "tokio",
            Client::Smol => "smol",
            Client::Blocking => "blocking",
            Client::Retina => "retina",
        }
    }
}

/// What was sent: the frames' slices and the bytes on the wire.
struct Stream {
    /// Every slice NAL unit (header included, no start code), back to back.
    nals: Vec<u8>,
    /// Each frame's range in `nals` and whether it is an IDR.
    frames: Vec<(std::ops::Range<usize>, bool)>,
    /// The interleaved RTP packets and the final RTCP packet, as written
    /// after the PLAY response.
    wire: Arc<Vec<u8>>,
    rtp_packets: u64,
}

impl Stream {
    fn frame_bytes(&self) -> u64 {
        self.nals.len() as u64
    }
}

/// Appends one `$`-interleaved RTP packet on channel 0.
fn put_rtp(wire: &mut Vec<u8>, seq: u16, timestamp: u32, marker: bool, payload: &[&[u8]]) {
    let len: usize = 12 + payload.iter().map(|p| p.len()).sum::<usize>();
    wire.push(b'$');
    wire.push(0);
    wire.extend_from_slice(&u16::try_from(len).expect("packet fits").to_be_bytes());
    wire.push(0x80);
    wire.push(u8::from(marker) << 7 | PAYLOAD_TYPE);
    wire.extend_from_slice(&seq.to_be_bytes());
    wire.extend_from_slice(&timestamp.to_be_bytes());
    wire.extend_from_slice(&SSRC.to_be_bytes());
    for p in payload {
        wire.extend_from_slice(p);
    }
}

fn make_stream() -> Stream {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut nals = Vec::new();
    let mut frames = Vec::with_capacity(FRAMES);
    let mut wire = Vec::new();
    let mut seq: u16 = 0xff00;
    let mut timestamp: u32 = 0x1000_0000;
    let mut rtp_packets = 0;
    for i in 0..FRAMES {
        let keyframe = i % GOP_FRAMES == 0;
        let (size, header, first) = if keyframe {
            (rng.range(250_000, 350_000), 0x65, 0x88)
        } else {
            (rng.range(3_000, 7_000), 0x41, 0x9a)
        };
        let start = nals.len();
        // NAL header, then a slice header whose first bit is set (first_mb_in_slice = 0).
        nals.extend_from_slice(&[header, first]);
        rng.append(size - 2, true, &mut nals);
        let nal = &nals[start..];
        if nal.len() <= MAX_RTP_PAYLOAD {
            put_rtp(&mut wire, seq, timestamp, true, &[nal]);
            seq = seq.wrapping_add(1);
            rtp_packets += 1;
        } else {
            // FU-A: indicator (F, NRI, type 28), header (S, E, type), then a fragment.
            let indicator = (header & 0xe0) | 28;
            let chunks: Vec<&[u8]> = nal[1..].chunks(MAX_RTP_PAYLOAD - 2).collect();
            let last = chunks.len() - 1;
            for (k, chunk) in chunks.into_iter().enumerate() {
                let fu = u8::from(k == 0) << 7 | u8::from(k == last) << 6 | (header & 0x1f);
                put_rtp(&mut wire, seq, timestamp, k == last, &[&[indicator, fu], chunk]);
                seq = seq.wrapping_add(1);
                rtp_packets += 1;
            }
        }
        frames.push((start..nals.len(), keyframe));
        timestamp = timestamp.wrapping_add(FRAME_TICKS);
    }
    // RTCP on channel 1: an empty receiver report (a compound packet starts
    // with SR or RR), then BYE for our SSRC.
    let ssrc = SSRC.to_be_bytes();
    let rtcp = [&[0x80, 201, 0, 1][..], &ssrc[..], &[0x81, 203, 0, 1][..], &ssrc[..]].concat();
    wire.extend_from_slice(&[b'$', 1, 0, rtcp.len() as u8]);
    wire.extend_from_slice(&rtcp);
    Stream {
        nals,
        frames,
        wire: Arc::new(wire),
        rtp_packets,
    }
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

/// What the server did on one connection.
#[derive(Debug)]
struct ServerReport {
    /// CPU time of the server thread on this connection.
    cpu: Duration,
    /// The request methods, in order.
    methods: Vec<String>,
    /// Whether the whole stream was written.
    played: bool,
    error: Option<String>,
}

/// The loopback server: one connection at a time, a report for each.
struct Server {
    addr: SocketAddr,
    reports: Receiver<ServerReport>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(wire: Arc<Vec<u8>>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().expect("local address");
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, reports) = mpsc::channel();
        let flag = stop.clone();
        let sdp = sdp();
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
                        error: None,
                    };
                    if let Err(e) = serve(conn, addr, &sdp, &wire, &mut report) {
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

    fn url(&self) -> String {
        format!("rtsp://{}/bench", self.addr)
    }

    /// The report of the connection that just ended (blocking this thread).
    fn report(&self) -> ServerReport {
        match self.reports.recv_timeout(IO_LIMIT * 2) {
            Ok(r) => r,
            Err(e) => panic!("no report from the server: {e}"),
        }
    }

    /// The same, letting the current tokio runtime run meanwhile (a client's
    /// background task may still be closing the connection).
    async fn report_async(&self) -> ServerReport {
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

/// Serves one connection: answers requests until PLAY, writes the stream,
/// half-closes, then reads until the client closes.
fn serve(mut conn: TcpStream, addr: SocketAddr, sdp: &str, wire: &[u8], report: &mut ServerReport) -> io::Result<()> {
    conn.set_nodelay(true)?;
    conn.set_read_timeout(Some(IO_LIMIT))?;
    conn.set_write_timeout(Some(IO_LIMIT))?;
    let base = format!("rtsp://{addr}/bench/");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let body = header(&head, "content-length")
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if buf.len() < end + 4 + body {
                break;
            }
            buf.drain(..end + 4 + body);
            let method = head.split(' ').next().unwrap_or("").to_owned();
            let cseq = header(&head, "cseq").unwrap_or("0").to_owned();
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
                "SETUP" => format!(
                    "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n\
                     Transport: RTP/AVP/TCP;unicast;interleaved=0-1;ssrc={SSRC:08X}\r\n\
                     Session: 4b1dcafe;timeout=60\r\n\r\n"
                ),
                "PLAY" => format!("RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nSession: 4b1dcafe\r\nRange: npt=0.000-\r\n\r\n"),
                _ => format!("RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nSession: 4b1dcafe\r\n\r\n"),
            };
            conn.write_all(response.as_bytes())?;
            match method.as_str() {
                "PLAY" => {
                    conn.write_all(wire)?;
                    report.played = true;
                    conn.shutdown(Shutdown::Write)?;
                    // Whatever the client still sends (TEARDOWN) is read and
                    // dropped, so that its close is not a reset.
                    loop {
                        match conn.read(&mut chunk) {
                            Ok(0) | Err(_) => return Ok(()),
                            Ok(_) => {}
                        }
                    }
                }
                "TEARDOWN" => return Ok(()),
                _ => {}
            }
        }
        match conn.read(&mut chunk)? {
            0 => return Ok(()),
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

// ---------------------------------------------------------------------------
// CPU time (std only: the workspace forbids unsafe code, so no getrusage).

/// User + system CPU time of the whole process, in clock ticks (fields 14
/// and 15 of `/proc/self/stat`; exited threads included).
fn process_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // The fields after the command name in parentheses start at field 3.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

/// Clock ticks per second (`getconf CLK_TCK`; Linux's user-visible tick is 100).
fn ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .unwrap_or(100.0)
}

/// CPU time of the calling thread (`/proc/thread-self/schedstat`, ns).
fn thread_cpu() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse().ok()))
        .map(Duration::from_nanos)
        .unwrap_or_default()
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "n/a".to_owned())
}

// ---------------------------------------------------------------------------
// The clients.

/// Checks the frames of one pass as they arrive.
struct Checker<'a> {
    stream: &'a Stream,
    client: Client,
    /// Compare every byte, not only sizes and keyframe flags.
    full: bool,
    frames: usize,
    closed: bool,
}

impl<'a> Checker<'a> {
    fn new(stream: &'a Stream, client: Client, full: bool) -> Self {
        Checker {
            stream,
            client,
            full,
            frames: 0,
            closed: false,
        }
    }

    fn frame(&mut self, data: &[u8], keyframe: bool) {
        let name = self.client.name();
        let i = self.frames;
        let Some((range, key)) = self.stream.frames.get(i) else {
            panic!("{name}: more than {FRAMES} frames");
        };
        assert_eq!(keyframe, *key, "{name}: frame {i}: keyframe flag");
        let slice = &self.stream.nals[range.clone()];
        let want = 4 + slice.len();
        // Ours puts the SDP's parameter sets in front of the first keyframe.
        let params = 4 + SPS.len() + 4 + PPS.len();
        let with_params = self.client != Client::Retina && i == 0 && data.len() == want + params;
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

    /// One of our events.
    fn event(&mut self, event: Event) {
        let name = self.client.name();
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

    fn finish(self) {
        let name = self.client.name();
        assert_eq!(self.frames, FRAMES, "{name}: frame count");
        if self.client != Client::Retina {
            assert!(self.closed, "{name}: no Closed event");
        }
    }
}

/// One measured pass.
#[derive(Debug, Clone, Copy)]
struct Pass {
    wall: Duration,
    /// Process CPU ticks from open to the server's report.
    ticks: u64,
    server_cpu: Duration,
    /// CPU time of the main thread (where the client runs) over the pass.
    main_cpu: Duration,
}

/// What a pass needs.
struct Bench {
    stream: Stream,
    server: Server,
    url: String,
    rt: tokio::runtime::Runtime,
}

impl Bench {
    fn new() -> Bench {
        let stream = make_stream();
        let server = Server::start(stream.wire.clone());
        let url = server.url();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        Bench {
            stream,
            server,
            url,
            rt,
        }
    }

    /// Runs `client` once from open to the end of its stream; panics unless
    /// every frame arrived as sent and the session ended cleanly.
    fn pass(&self, client: Client, full: bool) -> Pass {
        let mut check = Checker::new(&self.stream, client, full);
        let ticks = process_ticks();
        let main_cpu = thread_cpu();
        let url = self.url.as_str();
        let (wall, report) = match client {
            Client::Tokio => self.rt.block_on(async {
                let start = Instant::now();
                let mut session = rtsp_toolkit_tokio::Session::open(url, ClientOptions::default()).expect("open");
                while let Some(event) = session.next().await {
                    check.event(event);
                }
                let wall = start.elapsed();
                drop(session);
                (wall, self.server.report_async().await)
            }),
            Client::Smol => {
                let start = Instant::now();
                smol::block_on(async {
                    let mut session = rtsp_toolkit_smol::Session::open(url, ClientOptions::default()).expect("open");
                    while let Some(event) = session.next().await {
                        check.event(event);
                    }
                });
                (start.elapsed(), self.server.report())
            }
            Client::Blocking => {
                let start = Instant::now();
                for event in rtsp_toolkit_blocking::Session::open(url, ClientOptions::default()).expect("open") {
                    check.event(event);
                }
                (start.elapsed(), self.server.report())
            }
            Client::Retina => self.rt.block_on(async {
                let start = Instant::now();
                retina_session(url, &mut check).await;
                let wall = start.elapsed();
                (wall, self.server.report_async().await)
            }),
        };
        let main_cpu = thread_cpu().saturating_sub(main_cpu);
        let ticks = process_ticks() - ticks;
        let name = client.name();
        assert!(report.error.is_none(), "{name}: server: {:?}", report.error);
        assert!(report.played, "{name}: the server did not play ({:?})", report.methods);
        check.finish();
        Pass {
            wall,
            ticks,
            server_cpu: report.cpu,
            main_cpu,
        }
    }
}

async fn retina_session(url: &str, check: &mut Checker<'_>) {
    let url = url::Url::parse(url).expect("URL");
    let mut session = retina::client::Session::describe(url, SessionOptions::default())
        .await
        .expect("retina DESCRIBE");
    let setup = SetupOptions::default()
        .transport(Transport::Tcp(Default::default()))
        .frame_format(RETINA_FORMAT);
    session.setup(0, setup).await.expect("retina SETUP");
    let demuxed = session
        .play(PlayOptions::default())
        .await
        .expect("retina PLAY")
        .demuxed()
        .expect("retina demuxed");
    let mut demuxed = std::pin::pin!(demuxed);
    loop {
        let item = tokio::time::timeout(IO_LIMIT, demuxed.next())
            .await
            .expect("retina: an item within the limit");
        match item {
            None => break,
            Some(Ok(CodecItem::VideoFrame(f))) => check.frame(f.data(), f.is_random_access_point()),
            Some(Ok(CodecItem::Rtcp(_))) => {}
            Some(Ok(other)) => panic!("retina: unexpected item {other:?}"),
            Some(Err(e)) => panic!("retina: {e}"),
        }
    }
}

// ---------------------------------------------------------------------------
// Summary.

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One client's passes, reduced.
#[derive(Debug, Clone, Copy)]
struct Row {
    passes: usize,
    wall: f64,
    process_us_per_packet: f64,
    server_us_per_packet: f64,
    main_us_per_packet: f64,
}

impl Row {
    fn client_us_per_packet(&self) -> f64 {
        self.process_us_per_packet - self.server_us_per_packet
    }
}

fn summary(bench: &Bench, clients: &[Client], secs: f64) {
    let tick = 1.0 / ticks_per_second();
    let load_before = load_average();
    let mut passes: Vec<Vec<Pass>> = vec![Vec::new(); clients.len()];
    let start = Instant::now();
    let mut round = 0;
    while round < MIN_ROUNDS || start.elapsed().as_secs_f64() < secs {
        for k in 0..clients.len() {
            let i = (round + k) % clients.len();
            passes[i].push(bench.pass(clients[i], false));
        }
        round += 1;
    }
    let load_after = load_average();
    let s = &bench.stream;
    let packets = s.rtp_packets as f64;
    let rows: Vec<Row> = passes
        .iter()
        .map(|p| {
            let per_packet = |secs: f64| secs * 1e6 / (p.len() as f64 * packets);
            let ticks: u64 = p.iter().map(|p| p.ticks).sum();
            Row {
                passes: p.len(),
                wall: median(&mut p.iter().map(|p| p.wall.as_secs_f64()).collect::<Vec<_>>()),
                process_us_per_packet: per_packet(ticks as f64 * tick),
                server_us_per_packet: per_packet(p.iter().map(|p| p.server_cpu.as_secs_f64()).sum()),
                main_us_per_packet: per_packet(p.iter().map(|p| p.main_cpu.as_secs_f64()).sum()),
            }
        })
        .collect();
    let mb = s.frame_bytes() as f64 / 1e6;
    println!();
    println!(
        "client summary: {FRAMES} frames, {mb:.3} MB of frame data (MB = 10^6 bytes of H.264 slices), {} RTP \
         packets; {round} rounds of one pass per client, order rotating; wall time: median; CPU: sum over all \
         passes / packets",
        s.rtp_packets
    );
    println!(
        "load average (1/5/15 min): {load_before} before, {load_after} after; {} CPUs",
        cpus()
    );
    let columns = [
        "passes",
        "ms/pass",
        "MB/s",
        "frames/s",
        "proc us/pkt",
        "srv us/pkt",
        "cli us/pkt",
        "main us/pkt",
        "x retina",
        "cpu x ret",
    ];
    print!("{:<9}", "client");
    for c in columns {
        print!(" {c:>11}");
    }
    println!();
    // Without retina in the run, the ratios are against the row itself (1.00x).
    let retina = clients.iter().position(|c| *c == Client::Retina);
    for (i, (client, row)) in clients.iter().zip(&rows).enumerate() {
        let retina = rows[retina.unwrap_or(i)];
        println!(
            "{:<9} {:>11} {:>11.1} {:>11.1} {:>11.0} {:>11.3} {:>11.3} {:>11.3} {:>11.3} {:>10.2}x {:>10.2}x",
            client.name(),
            row.passes,
            row.wall * 1e3,
            mb / row.wall,
            FRAMES as f64 / row.wall,
            row.process_us_per_packet,
            row.server_us_per_packet,
            row.client_us_per_packet(),
            row.main_us_per_packet,
            retina.wall / row.wall,
            retina.client_us_per_packet() / row.client_us_per_packet()
        );
    }
    println!(
        "(proc: the whole process, in-process server included, from {:.0} ms clock ticks; srv: the server \
         thread alone, the same work for every client; cli = proc - srv; main: the main thread alone, where each \
         client runs (helper threads not included); x retina: throughput over retina's; cpu x ret: retina's cli \
         CPU per packet over this client's)",
        tick * 1e3
    );
    for (client, row) in clients.iter().zip(&rows) {
        println!(
            "RESULT {} mbps={:.2} fps={:.1} proc_us_pkt={:.4} srv_us_pkt={:.4} cli_us_pkt={:.4} main_us_pkt={:.4} \
             passes={}",
            client.name(),
            mb / row.wall,
            FRAMES as f64 / row.wall,
            row.process_us_per_packet,
            row.server_us_per_packet,
            row.client_us_per_packet(),
            row.main_us_per_packet,
            row.passes
        );
    }
    println!("RESULT load {load_before} / {load_after}");
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn main() {
    // Like criterion: `cargo bench` passes `--bench`; `cargo test --benches` does not.
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|a| a == flag || a.starts_with(&format!("{flag}=")));
    if has("--list") {
        return;
    }
    let benchmarking = has("--bench") && !has("--test") && !has("--profile-time");
    let bench = Bench::new();
    println!(
        "client bench: {FRAMES} frames, {} bytes of frame data, {} RTP packets, {} bytes on the wire",
        bench.stream.frame_bytes(),
        bench.stream.rtp_packets,
        bench.stream.wire.len()
    );
    // One checked pass of each client, every byte compared.
    for client in Client::ALL {
        let p = bench.pass(client, true);
        println!("{:<8}: {FRAMES} frames checked in {:?}", client.name(), p.wall);
    }
    if !benchmarking {
        return;
    }
    if std::env::var_os(SUMMARY_ENV).is_none() {
        let mut c = Criterion::default()
            .sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(5))
            .configure_from_args();
        let mut g = c.benchmark_group("client");
        g.throughput(Throughput::Bytes(bench.stream.frame_bytes()));
        for client in Client::ALL {
            g.bench_function(client.name(), |b| b.iter(|| bench.pass(client, false)));
        }
        g.finish();
        c.final_summary();
    }
    let secs = std::env::var(SECS_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20.0);
    let clients: Vec<Client> = match std::env::var(CLIENTS_ENV) {
        Ok(list) => list
            .split(',')
            .map(|name| {
                Client::ALL
                    .into_iter()
                    .find(|c| c.name() == name.trim())
                    .unwrap_or_else(|| panic!("{CLIENTS_ENV}: unknown client {name:?}"))
            })
            .collect(),
        Err(_) => Client::ALL.to_vec(),
    };
    summary(&bench, &clients, secs);
}
