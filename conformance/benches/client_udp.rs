//! Client CPU per RTP packet over UDP against over TCP, side by side in one
//! run, on tokio, smol and blocking (issue 13's goal: UDP at most 1.5x TCP).
//!
//! ```text
//! cargo bench -p rtsp-toolkit-conformance --bench client_udp
//! ```
//!
//! The server is `rtsp_toolkit_conformance::bench::Server` in this process
//! (a std thread): SETUP over UDP (`client_port=a-b`) is answered with the
//! `server_port=` of a UDP pair it binds for the session, SETUP over TCP
//! with `interleaved=0-1`. The stream is [`GOPS`] GOPs of the benches'
//! synthetic H.264 (IDR slices of 250-350 KB, P slices of 3-7 KB, a
//! fixed-seed generator, FU-A at 1400 bytes of payload).
//!
//! UDP has no backpressure: a server that sends as fast as it can overruns
//! the client's receive buffer, and a bench that drops datagrams compares
//! nothing. So both transports are paced alike: the same packets at the
//! same rate, [`BURST`] packets every millisecond (20,000 packets/s, about
//! 230 Mb/s of RTP; a key frame takes about 11 ms), with one system call
//! per burst or one per packet on each transport: `tcp`, one write per
//! burst; `udp-burst`, a burst's packets in GSO sends (our server's way, and
//! GStreamer's `sendmmsg` of a buffer list); `udp`, one `send_to` per packet
//! (as FFmpeg and live555 send: the client then wakes for nearly every
//! datagram); `tcp-each`, one write per packet (`TCP_NODELAY`: the same
//! wake-ups over TCP). The goal compares each UDP link with the TCP link
//! whose sender makes as many calls (`udp-burst/tcp`, `udp/tcp-each`); the
//! summary also prints `udp/tcp`. At that rate a burst is far below the client's 2 MiB
//! receive buffer; what differs is the cost of waking, reading and handing
//! in the packets, which is what is measured. The stream ends with an RTCP BYE
//! (on the RTCP port or channel); the client answers with TEARDOWN and
//! ends with `Closed` without an error. Every pass checks every frame's size
//! and keyframe flag (the first pass of each case every byte) and panics on
//! a missing frame, a `Loss`, a `Warning` or an error.
//!
//! Measured per pass (clients run from `open` to their end on the main
//! thread; receiver reports on, the default, on both transports):
//!
//! * the process's CPU time (`CLOCK_PROCESS_CPUTIME_ID`, ns, exited helper
//!   threads included) minus the server thread's own
//!   (`/proc/thread-self/schedstat`), per RTP packet: the client's CPU
//!   per packet;
//! * the main thread's CPU time per packet (where each client runs; helper
//!   threads, such as async-io's reactor thread, are not in it);
//! * how often the main thread slept and was woken, per packet
//!   (`voluntary_ctxt_switches`);
//! * the wall time (set by the pace: about the same for every case).
//!
//! Rounds of one pass of each case (runtime x link), the order
//! rotating every round so that noise from neighbours hits all alike, at
//! least [`MIN_ROUNDS`] rounds and about `CLIENT_UDP_BENCH_SECS` seconds
//! (default 20). The summary gives medians per case and, per runtime, the
//! ratios of [`Link::PAIRS`]; lines starting with `RESULT` are for scripts.
//! `CLIENT_UDP_BENCH_RUNTIMES=smol` and `CLIENT_UDP_BENCH_TRANSPORTS=udp-burst`
//! limit the cases (to profile one, e.g. under `perf record`).
//!
//! Under `cargo test --benches` (no `--bench` argument) it runs one checked
//! pass of each case and nothing else.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use rtsp_toolkit_conformance::bench::{
    cpus, load_average, median, process_cpu, thread_cpu, thread_wakeups, Checker, Pace, Server, ServerReport, Stream,
};
use rtsp_toolkit_tokio::{ClientOptions, Transport};

/// GOPs of 30 frames in the stream (600 frames, about 7,000 RTP packets).
const GOPS: usize = 20;
/// RTP packets the server sends every [`INTERVAL`].
const BURST: usize = 20;
const INTERVAL: Duration = Duration::from_millis(1);
/// Fewest rounds of the summary.
const MIN_ROUNDS: usize = 3;
const SECS_ENV: &str = "CLIENT_UDP_BENCH_SECS";
const RUNTIMES_ENV: &str = "CLIENT_UDP_BENCH_RUNTIMES";
const TRANSPORTS_ENV: &str = "CLIENT_UDP_BENCH_TRANSPORTS";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Runtime {
    Tokio,
    Smol,
    Blocking,
}

impl Runtime {
    const ALL: [Runtime; 3] = [Runtime::Tokio, Runtime::Smol, Runtime::Blocking];

    fn name(self) -> &'static str {
        match self {
            Runtime::Tokio => "tokio",
            Runtime::Smol => "smol",
            Runtime::Blocking => "blocking",
        }
    }
}

/// How the packets travel: UDP with one `send_to` per packet (the receiver
/// wakes for nearly every datagram), UDP with a burst's packets in GSO sends
/// (as our server and GStreamer's `sendmmsg` send them), TCP with one write
/// per burst, or TCP with one write per packet (`TCP_NODELAY`: the TCP
/// counterpart of `udp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Udp,
    UdpBurst,
    Tcp,
    TcpEach,
}

impl Link {
    const ALL: [Link; 4] = [Link::Udp, Link::UdpBurst, Link::Tcp, Link::TcpEach];

    fn name(self) -> &'static str {
        match self {
            Link::Udp => "udp",
            Link::UdpBurst => "udp-burst",
            Link::Tcp => "tcp",
            Link::TcpEach => "tcp-each",
        }
    }

    fn transport(self) -> Transport {
        match self {
            Link::Tcp | Link::TcpEach => Transport::Tcp,
            Link::Udp | Link::UdpBurst => Transport::Udp,
        }
    }

    /// Whether the server sends a burst in as few calls as it fits.
    fn batched(self) -> bool {
        matches!(self, Link::UdpBurst | Link::Tcp)
    }

    /// The UDP links, each with the TCP link whose sender makes as many
    /// system calls per burst.
    const PAIRS: [(Link, Link); 4] = [
        (Link::UdpBurst, Link::Tcp),
        (Link::Udp, Link::TcpEach),
        (Link::Udp, Link::Tcp),
        (Link::TcpEach, Link::Tcp),
    ];
}

/// One runtime on one link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Case {
    runtime: Runtime,
    link: Link,
}

impl Case {
    fn name(self) -> String {
        format!("{}/{}", self.runtime.name(), self.link.name())
    }
}

/// One measured pass.
#[derive(Debug, Clone, Copy)]
struct Pass {
    wall: Duration,
    /// CPU time of the whole process over the pass.
    process_cpu: Duration,
    server_cpu: Duration,
    /// CPU time of the main thread (where the client runs) over the pass.
    main_cpu: Duration,
    /// Times the main thread slept and was woken over the pass.
    main_wakeups: u64,
    late_bursts: usize,
}

/// What a pass needs.
struct Bench {
    stream: Arc<Stream>,
    /// One system call per packet.
    server: Server,
    /// Bursts in one write (TCP) or GSO sends (UDP).
    burst_server: Server,
    rt: tokio::runtime::Runtime,
}

impl Bench {
    fn new() -> Bench {
        let stream = Arc::new(Stream::synthetic(GOPS));
        let pace = Pace {
            packets: BURST,
            interval: INTERVAL,
            batched: false,
        };
        let server = Server::start(stream.clone(), Some(pace));
        let burst_server = Server::start(stream.clone(), Some(Pace { batched: true, ..pace }));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        Bench {
            stream,
            server,
            burst_server,
            rt,
        }
    }

    /// Runs `case` once from open to the end of its session; panics unless
    /// every frame arrived as sent over the transport asked for and the
    /// session ended cleanly.
    fn pass(&self, case: Case, full: bool) -> Pass {
        let name = case.name();
        let mut check = Checker::new(&self.stream, &name, true, full);
        let opts = ClientOptions::default().with_transport(case.link.transport());
        let server = if case.link.batched() {
            &self.burst_server
        } else {
            &self.server
        };
        let url = server.url();
        let process = process_cpu();
        let main_cpu = thread_cpu();
        let main_wakeups = thread_wakeups();
        let url = url.as_str();
        let start = Instant::now();
        let (wall, report): (Duration, ServerReport) = match case.runtime {
            Runtime::Tokio => self.rt.block_on(async {
                let mut session = rtsp_toolkit_tokio::Session::open(url, opts).expect("open");
                while let Some(event) = session.next().await {
                    check.event(event);
                }
                let wall = start.elapsed();
                drop(session);
                (wall, server.report_async().await)
            }),
            Runtime::Smol => {
                smol::block_on(async {
                    let mut session = rtsp_toolkit_smol::Session::open(url, opts).expect("open");
                    while let Some(event) = session.next().await {
                        check.event(event);
                    }
                });
                (start.elapsed(), server.report())
            }
            Runtime::Blocking => {
                for event in rtsp_toolkit_blocking::Session::open(url, opts).expect("open") {
                    check.event(event);
                }
                (start.elapsed(), server.report())
            }
        };
        let main_cpu = thread_cpu().saturating_sub(main_cpu);
        let main_wakeups = thread_wakeups().saturating_sub(main_wakeups);
        let process = process_cpu().saturating_sub(process);
        assert!(report.error.is_none(), "{name}: server: {:?}", report.error);
        assert!(report.played, "{name}: the server did not play ({:?})", report.methods);
        assert_eq!(
            report.udp,
            case.link.transport() == Transport::Udp,
            "{name}: the session went over the other transport"
        );
        assert_eq!(
            report.methods.last().map(String::as_str),
            Some("TEARDOWN"),
            "{name}: no TEARDOWN at the end ({:?})",
            report.methods
        );
        check.finish(true);
        Pass {
            wall,
            process_cpu: process,
            server_cpu: report.cpu,
            main_cpu,
            main_wakeups,
            late_bursts: report.late_bursts,
        }
    }
}

/// One case's passes, reduced to medians (µs per RTP packet).
#[derive(Debug, Clone, Copy)]
struct Row {
    passes: usize,
    wall_ms: f64,
    process: f64,
    server: f64,
    client: f64,
    main: f64,
    /// Main thread wakeups per RTP packet.
    wakeups: f64,
    late_bursts: usize,
}

fn reduce(passes: &[Pass], packets: f64) -> Row {
    let per_packet =
        |f: &dyn Fn(&Pass) -> f64| median(&mut passes.iter().map(|p| f(p) * 1e6 / packets).collect::<Vec<_>>());
    Row {
        passes: passes.len(),
        wall_ms: median(&mut passes.iter().map(|p| p.wall.as_secs_f64() * 1e3).collect::<Vec<_>>()),
        process: per_packet(&|p| p.process_cpu.as_secs_f64()),
        server: per_packet(&|p| p.server_cpu.as_secs_f64()),
        client: per_packet(&|p| p.process_cpu.saturating_sub(p.server_cpu).as_secs_f64()),
        main: per_packet(&|p| p.main_cpu.as_secs_f64()),
        wakeups: median(
            &mut passes
                .iter()
                .map(|p| p.main_wakeups as f64 / packets)
                .collect::<Vec<_>>(),
        ),
        late_bursts: passes.iter().map(|p| p.late_bursts).sum(),
    }
}

fn summary(bench: &Bench, cases: &[Case], secs: f64) {
    let load_before = load_average();
    let mut passes: Vec<Vec<Pass>> = vec![Vec::new(); cases.len()];
    let start = Instant::now();
    let mut round = 0;
    while round < MIN_ROUNDS || start.elapsed().as_secs_f64() < secs {
        for k in 0..cases.len() {
            let i = (round + k) % cases.len();
            passes[i].push(bench.pass(cases[i], false));
        }
        round += 1;
    }
    let load_after = load_average();
    let packets = bench.stream.rtp_packets() as f64;
    let rows: Vec<Row> = passes.iter().map(|p| reduce(p, packets)).collect();
    println!();
    println!(
        "client over UDP vs TCP: {} frames, {} RTP packets, paced at {BURST} packets every {INTERVAL:?} on both \
         transports; {round} rounds of one pass per case, order rotating; medians per pass",
        bench.stream.frames.len(),
        bench.stream.rtp_packets()
    );
    println!(
        "load average (1/5/15 min): {load_before} before, {load_after} after; {} CPUs",
        cpus()
    );
    let columns = [
        "passes",
        "ms/pass",
        "proc us/pkt",
        "srv us/pkt",
        "cli us/pkt",
        "main us/pkt",
        "wakeups/pkt",
        "late bursts",
    ];
    print!("{:<14}", "case");
    for c in columns {
        print!(" {c:>11}");
    }
    println!();
    for (case, row) in cases.iter().zip(&rows) {
        println!(
            "{:<14} {:>11} {:>11.1} {:>11.3} {:>11.3} {:>11.3} {:>11.3} {:>11.3} {:>11}",
            case.name(),
            row.passes,
            row.wall_ms,
            row.process,
            row.server,
            row.client,
            row.main,
            row.wakeups,
            row.late_bursts
        );
    }
    println!(
        "(proc: the whole process, CLOCK_PROCESS_CPUTIME_ID; srv: the server thread alone; cli = proc - srv, the \
         client's share; main: the main thread alone, where each client runs; wakeups: times the main thread slept \
         and was woken, per packet; late bursts: server bursts sent more than one interval late, all passes)"
    );
    let row = |runtime: Runtime, link: Link| cases.iter().position(|c| *c == Case { runtime, link }).map(|i| rows[i]);
    for runtime in Runtime::ALL {
        for (a, b) in Link::PAIRS {
            let (Some(x), Some(y)) = (row(runtime, a), row(runtime, b)) else {
                continue;
            };
            println!(
                "{:<9} {}/{} client CPU per packet: {:.2}x ({:.3} / {:.3} us), main thread: {:.2}x",
                runtime.name(),
                a.name(),
                b.name(),
                x.client / y.client,
                x.client,
                y.client,
                x.main / y.main
            );
        }
    }
    for (case, row) in cases.iter().zip(&rows) {
        println!(
            "RESULT {} {} proc_us_pkt={:.4} srv_us_pkt={:.4} cli_us_pkt={:.4} main_us_pkt={:.4} wakeups_pkt={:.4} \
             ms_pass={:.1} passes={} late_bursts={}",
            case.runtime.name(),
            case.link.name(),
            row.process,
            row.server,
            row.client,
            row.main,
            row.wakeups,
            row.wall_ms,
            row.passes,
            row.late_bursts
        );
    }
    for runtime in Runtime::ALL {
        for (a, b) in Link::PAIRS {
            if let (Some(x), Some(y)) = (row(runtime, a), row(runtime, b)) {
                println!(
                    "RESULT {} {}/{} cli={:.3} main={:.3}",
                    runtime.name(),
                    a.name(),
                    b.name(),
                    x.client / y.client,
                    x.main / y.main
                );
            }
        }
    }
    println!("RESULT load {load_before} / {load_after}");
}

/// The names in environment variable `var` (comma separated), or all of `all`.
fn chosen<T: Copy>(var: &str, all: &[T], name: impl Fn(T) -> &'static str) -> Vec<T> {
    match std::env::var(var) {
        Ok(list) => list
            .split(',')
            .map(|n| {
                all.iter()
                    .copied()
                    .find(|x| name(*x) == n.trim())
                    .unwrap_or_else(|| panic!("{var}: unknown name {n:?}"))
            })
            .collect(),
        Err(_) => all.to_vec(),
    }
}

fn main() {
    // Like criterion: `cargo bench` passes `--bench`; `cargo test --benches` does not.
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|a| a == flag || a.starts_with(&format!("{flag}=")));
    if has("--list") {
        return;
    }
    let benchmarking = has("--bench") && !has("--test");
    let bench = Bench::new();
    println!(
        "client_udp bench: {} frames, {} bytes of frame data, {} RTP packets, {BURST} packets every {INTERVAL:?}",
        bench.stream.frames.len(),
        bench.stream.frame_bytes(),
        bench.stream.rtp_packets()
    );
    let runtimes = chosen(RUNTIMES_ENV, &Runtime::ALL, Runtime::name);
    let links = chosen(TRANSPORTS_ENV, &Link::ALL, Link::name);
    let cases: Vec<Case> = runtimes
        .iter()
        .flat_map(|&runtime| links.iter().map(move |&link| Case { runtime, link }))
        .collect();
    // One checked pass of each case, every byte compared.
    for &case in &cases {
        let p = bench.pass(case, true);
        println!(
            "{:<14}: {} frames checked in {:?}",
            case.name(),
            bench.stream.frames.len(),
            p.wall
        );
    }
    if !benchmarking {
        return;
    }
    let secs = std::env::var(SECS_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20.0);
    summary(&bench, &cases, secs);
}
