//! End-to-end client benchmark: rtsp-toolkit's client on tokio, smol and
//! blocking against retina 0.4.21's client, over loopback TCP.
//!
//! ```text
//! cargo bench -p rtsp-toolkit-conformance --bench client
//! scripts/bench-client.sh [REV]      # this binary at HEAD (and at REV), alternately
//! ```
//!
//! An RTSP server inside this process (a std thread with a plain
//! `TcpListener`; the server, the stream and the frame checker are
//! `rtsp_toolkit_conformance::bench`, shared with `client_udp.rs`) answers OPTIONS, DESCRIBE (an SDP with one H.264 track),
//! SETUP (`RTP/AVP/TCP;interleaved=0-1`) and PLAY, then writes one buffer,
//! serialized before any measurement: 1,800 synthetic H.264 frames as
//! `$`-interleaved RTP (60 GOPs of 30 frames at 30 fps; IDR slices of
//! 250-350 KB, P slices of 3-7 KB, sizes and bytes from a fixed-seed
//! generator; about 26.6 MB of slice data; FU-A at 1400 bytes of RTP
//! payload), then an RTCP receiver report with a BYE.
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

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use futures_util::StreamExt;
use retina::client::{PlayOptions, SessionOptions, SetupOptions, Transport};
use retina::codec::{CodecItem, FrameFormat, ParameterSetInsertion};
use rtsp_toolkit_conformance::bench::{
    cpus, load_average, median, process_ticks, thread_cpu, ticks_per_second, Checker, Server, Stream, IO_LIMIT,
};
use rtsp_toolkit_tokio::ClientOptions;

const GOPS: usize = 60;
const FRAMES: usize = GOPS * rtsp_toolkit_conformance::bench::GOP_FRAMES;
/// Fewest rounds of the summary.
const MIN_ROUNDS: usize = 5;
const SECS_ENV: &str = "CLIENT_BENCH_SECS";
const SUMMARY_ENV: &str = "CLIENT_BENCH_SUMMARY";
const CLIENTS_ENV: &str = "CLIENT_BENCH_CLIENTS";

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

// ---------------------------------------------------------------------------
// The clients.

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
    stream: Arc<Stream>,
    server: Server,
    url: String,
    rt: tokio::runtime::Runtime,
}

impl Bench {
    fn new() -> Bench {
        let stream = Arc::new(Stream::synthetic(GOPS));
        let server = Server::start(stream.clone(), None);
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
        let mut check = Checker::new(&self.stream, client.name(), client != Client::Retina, full);
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
        check.finish(client != Client::Retina);
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
    let packets = s.rtp_packets() as f64;
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
        s.rtp_packets()
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
        bench.stream.rtp_packets(),
        bench.stream.interleaved().0.len()
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
