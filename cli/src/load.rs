//! `rtsp-toolkit load URL --sessions N --duration S`: opens N RTSP
//! sessions (RTP over TCP, or `--transport udp`) on one URL and reports, per session, the fraction of real time
//! delivered and the setup latency; with `--server-pid`, the server's CPU
//! and RSS (from /proc) too.
//!
//! Real-time fraction of a session = media time received on its first track
//! (RTP timestamps, unrolled) / wall time since its first packet; a session
//! "holds real time" at >= 0.95. Sessions start at `--ramp` per second after
//! one warm-up session (so that the server's base RSS includes the loaded
//! file). Frames are not assembled unless `--frames`: this measures the
//! server, not our depacketizers. Use a looping URL (`?play_count=0` on our
//! server) when the duration is longer than the file.
//!
//! Ctrl-C or SIGTERM ends the measurement early and still prints the summary.
//!
//! For soak runs: `--report-every SECS` prints one line per interval (sessions
//! holding real time over that interval, `-` on the first line, which has no
//! earlier position to measure from; sessions ended, with an error, packets
//! lost, stream discontinuities, the server's RSS and CPU, and the longest
//! time any session waited between two RTP packets, which shows a stall),
//! and the summary
//! always checks every track's continuity: a sequence number that is not the
//! previous one plus one (mod 2^16) is a gap; a timestamp that steps back more
//! than half a second (B-frame reordering steps back less) or forward more
//! than five seconds is a jump. Wrap-arounds are unrolled, so crossing one is
//! not a discontinuity; the summary says how many were crossed (start the
//! server near them, `serve --initial-rtp`, to cross them early).

use clap::Args;

use crate::{EXIT_FAILURE, EXIT_OK};

#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// rtsp://[user[:password]@]host[:port]/path (add ?play_count=0 to loop on our server)
    pub url: String,
    /// Sessions to open.
    #[arg(long, default_value_t = 10)]
    pub sessions: usize,
    /// Seconds to measure after the last session started.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub duration: f64,
    /// Sessions started per second.
    #[arg(long, value_name = "PER_SEC", default_value_t = 200.0)]
    pub ramp: f64,
    /// Assemble frames in every session too (client-side cost).
    #[arg(long)]
    pub frames: bool,
    /// Server process to sample CPU and RSS from (Linux /proc).
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,
    /// Print one progress line every SECS seconds (soak runs): sessions
    /// holding real time over the interval, errors, lost packets,
    /// discontinuities, server RSS and CPU.
    #[arg(long, value_name = "SECS")]
    pub report_every: Option<f64>,
    /// How RTP travels: tcp (interleaved), udp, multicast, auto, or http (interleaved through an
    /// HTTP tunnel: each session then also has a thread for its tunnel's POST half).
    #[arg(long, value_name = "KIND", default_value = "tcp", value_parser = crate::probe::parse_transport)]
    pub transport: TransportArg,
    /// Local UDP ports for the sessions' RTP/RTCP pairs; default: any free pairs.
    #[arg(long, value_name = "FIRST-LAST", value_parser = |s: &str| s.parse::<PortRange>())]
    pub udp_ports: Option<PortRange>,
    /// rtsps:// URLs: trust the server's certificate without checking it (a test server's
    /// self-signed one). Prefer --ca-file.
    #[arg(long)]
    pub insecure: bool,
    /// rtsps:// URLs: trust the certificates this PEM file's CAs signed (instead of the system's).
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<std::path::PathBuf>,
    /// JSON lines on stdout instead of text: an `interval` object per --report-every
    /// interval, then a `load_report` object (schema: docs/CLI.md).
    #[arg(long)]
    pub json: bool,
}

struct Resolved {
    url: String,
    sessions: usize,
    duration: Duration,
    ramp: f64,
    frames: bool,
    server_pid: Option<u32>,
    report_every: Option<Duration>,
    transport: TransportArg,
    udp_ports: Option<PortRange>,
    json: bool,
    insecure: bool,
    ca_file: Option<std::path::PathBuf>,
}

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rtsp_toolkit_tokio::core::codec::TimestampUnroller;
use rtsp_toolkit_tokio::core::rtcp::RtcpPacket;
use rtsp_toolkit_tokio::{ClientOptions, Event, PortRange, Session, StopSignal};

use crate::probe::TransportArg;

/// Continuity of one track's RTP stream.
#[derive(Debug, Default, Clone)]
struct Continuity {
    clock_rate: u32,
    last_seq: Option<u16>,
    unroll: TimestampUnroller,
    /// Previous and highest extended timestamps.
    last_ts: Option<(i64, i64)>,
    /// Sequence numbers that were not the previous plus one.
    seq_gaps: u64,
    /// Timestamps more than 0.5 s behind the highest so far, or more than
    /// 5 s ahead of the previous one.
    ts_jumps: u64,
    seq_wraps: u64,
    ts_wraps: u64,
}

impl Continuity {
    fn packet(&mut self, seq: u16, ts: u32) {
        if let Some(prev) = self.last_seq {
            if seq != prev.wrapping_add(1) {
                self.seq_gaps += 1;
            } else if seq == 0 {
                self.seq_wraps += 1;
            }
        }
        self.last_seq = Some(seq);
        let ext = self.unroll.extend(ts);
        let rate = i64::from(self.clock_rate.max(1));
        if let Some((prev, max)) = self.last_ts {
            if ext < max - rate / 2 || ext > prev + 5 * rate {
                self.ts_jumps += 1;
            }
            if ext.div_euclid(1 << 32) > max.div_euclid(1 << 32) {
                self.ts_wraps += 1;
            }
            self.last_ts = Some((ext, max.max(ext)));
        } else {
            self.last_ts = Some((ext, ext));
        }
    }
}

#[derive(Debug, Default, Clone)]
struct Stats {
    setup: Option<Duration>,
    first: Option<(Instant, i64)>,
    last: Option<(Instant, i64)>,
    clock_rate: u32,
    bytes: u64,
    packets: u64,
    lost: u64,
    error: Option<String>,
    /// Per track, by track index.
    tracks: Vec<Continuity>,
    /// The session's event stream ended.
    ended: bool,
    /// When the last RTP packet (any track) arrived.
    last_arrival: Option<Instant>,
    /// Longest time between two RTP packets since the last progress line,
    /// and over the whole run.
    gap_interval: Duration,
    gap_max: Duration,
    /// Receiver reports the session sent, and what the last one said of
    /// track 0: (cumulative lost, jitter in seconds, highest fraction lost
    /// of any report in 1/256).
    reports_sent: u64,
    reported: Option<(i64, f64, u8)>,
}

impl Stats {
    /// Media seconds received per wall second, measured up to `end`.
    fn fraction(&self, end: Instant) -> f64 {
        let (Some((t0, ts0)), Some((_, ts1))) = (self.first, self.last) else {
            return 0.0;
        };
        let wall = end.saturating_duration_since(t0).as_secs_f64();
        // Too short to say anything (e.g. a session that got one burst).
        if wall < 1.0 || self.clock_rate == 0 {
            return 0.0;
        }
        ((ts1 - ts0) as f64 / f64::from(self.clock_rate)) / wall
    }

    fn track(&mut self, index: usize) -> &mut Continuity {
        if self.tracks.len() <= index {
            self.tracks.resize_with(index + 1, Continuity::default);
        }
        &mut self.tracks[index]
    }

    fn sum(&self, f: impl Fn(&Continuity) -> u64) -> u64 {
        self.tracks.iter().map(f).sum()
    }
}

type Shared = Arc<Mutex<Stats>>;

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, Stats> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// (utime+stime in seconds, RSS in KiB) of a process, from /proc.
fn proc_usage(pid: u32) -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((ticks / 100.0, rss))
}

/// What every session of a run is asked for.
#[derive(Debug, Clone)]
struct SessionSpec {
    frames: bool,
    transport: TransportArg,
    udp_ports: Option<PortRange>,
    insecure: bool,
    ca_file: Option<std::path::PathBuf>,
}

async fn one_session(url: String, spec: SessionSpec, stop: StopSignal, shared: Shared) {
    let opts = {
        let mut o = ClientOptions::default()
            .with_assemble_frames(spec.frames)
            .with_timeout(Duration::from_secs(10))
            .with_transport(spec.transport.transport)
            .with_tunnel(spec.transport.tunnel);
        o.udp_ports = spec.udp_ports;
        o = o.with_insecure(spec.insecure);
        if let Some(ca) = spec.ca_file {
            o = o.with_ca_file(ca);
        }
        o
    };
    let mut session = match Session::open_with_stop(&url, opts, stop) {
        Ok(s) => s,
        Err(e) => {
            let mut stats = lock(&shared);
            stats.error = Some(e.to_string());
            stats.ended = true;
            return;
        }
    };
    let mut unroll = TimestampUnroller::new();
    while let Some(e) = session.next_event().await {
        let mut stats = lock(&shared);
        match e {
            Event::Method(m) if m.method.as_str() == "PLAY" => stats.setup = Some(m.session_elapsed),
            Event::Method(m) if m.method.as_str() == "SETUP" => {
                if let Some(t) = m.track.as_ref() {
                    if stats.clock_rate == 0 {
                        stats.clock_rate = t.clock_rate;
                    }
                    stats.track(t.index).clock_rate = t.clock_rate;
                }
            }
            Event::Rtp(r) => {
                let now = Instant::now();
                if let Some(prev) = stats.last_arrival.replace(now) {
                    let gap = now.saturating_duration_since(prev);
                    stats.gap_interval = stats.gap_interval.max(gap);
                    stats.gap_max = stats.gap_max.max(gap);
                }
                stats.packets += 1;
                stats.bytes += r.packet.payload.len() as u64;
                stats
                    .track(r.track)
                    .packet(r.packet.sequence_number, r.packet.timestamp);
                if r.track == 0 {
                    let ts = unroll.extend(r.packet.timestamp);
                    stats.first.get_or_insert((now, ts));
                    stats.last = Some((now, ts));
                }
            }
            Event::Loss(l) => stats.lost += u64::from(l.lost),
            Event::RtcpSent(r) => {
                stats.reports_sent += 1;
                let block = r.packets.iter().find_map(|p| match p {
                    RtcpPacket::ReceiverReport(rr) => rr.reports.first().copied(),
                    _ => None,
                });
                let rate = stats.tracks.get(r.track).map_or(0, |t| t.clock_rate);
                if let (Some(b), 0, true) = (block, r.track, rate > 0) {
                    let worst = stats.reported.map_or(0, |p| p.2).max(b.fraction_lost);
                    let jitter = f64::from(b.jitter) / f64::from(rate);
                    stats.reported = Some((i64::from(b.cumulative_lost), jitter, worst));
                }
            }
            Event::Closed(c) => stats.error = c.error.map(|e| e.to_string()),
            _ => {}
        }
    }
    lock(&shared).ended = true;
}

/// Prints a progress line every `every` until `stop` (soak runs).
async fn report_loop(
    every: Duration,
    all: Arc<Mutex<Vec<Shared>>>,
    server_pid: Option<u32>,
    start: Instant,
    json: bool,
) {
    let mut prev_ts: Vec<Option<i64>> = Vec::new();
    let mut prev_cpu = server_pid.and_then(proc_usage).map(|u| u.0);
    let mut prev_at = Instant::now();
    if !json {
        println!("report: elapsed_s sessions holding_real_time ended errors lost seq_gaps ts_jumps seq_wraps ts_wraps server_rss_kib server_cpu_pct max_gap_ms");
    }
    loop {
        tokio::time::sleep(every).await;
        let now = Instant::now();
        let interval = (now - prev_at).as_secs_f64();
        prev_at = now;
        let sessions: Vec<Shared> = all.lock().unwrap_or_else(|p| p.into_inner()).clone();
        prev_ts.resize(sessions.len(), None);
        let (mut held, mut measured, mut ended, mut errors, mut lost) = (0usize, 0usize, 0usize, 0usize, 0u64);
        let (mut gaps, mut jumps, mut seq_wraps, mut ts_wraps) = (0u64, 0u64, 0u64, 0u64);
        let mut max_gap = Duration::ZERO;
        for (i, s) in sessions.iter().enumerate() {
            let mut st = lock(s);
            max_gap = max_gap.max(std::mem::take(&mut st.gap_interval));
            if let (Some(prev), Some((_, ts)), true) = (prev_ts[i], st.last, st.clock_rate > 0) {
                let media = (ts - prev) as f64 / f64::from(st.clock_rate);
                measured += 1;
                if media / interval >= 0.95 {
                    held += 1;
                }
            }
            prev_ts[i] = st.last.map(|l| l.1);
            ended += usize::from(st.ended);
            errors += usize::from(st.error.is_some());
            lost += st.lost;
            gaps += st.sum(|t| t.seq_gaps);
            jumps += st.sum(|t| t.ts_jumps);
            seq_wraps += st.sum(|t| t.seq_wraps);
            ts_wraps += st.sum(|t| t.ts_wraps);
        }
        let usage = server_pid.and_then(proc_usage);
        if json {
            let cpu = match (usage, prev_cpu) {
                (Some((cpu1, _)), Some(cpu0)) => Some(round1((cpu1 - cpu0) / interval * 100.0)),
                _ => None,
            };
            prev_cpu = usage.map(|u| u.0);
            let line = serde_json::json!({
                "elapsed_s": round3((now - start).as_secs_f64()),
                "sessions": sessions.len(),
                "holding_real_time": (measured > 0).then_some(held),
                "ended": ended,
                "errors": errors,
                "lost": lost,
                "seq_gaps": gaps,
                "ts_jumps": jumps,
                "seq_wraps": seq_wraps,
                "ts_wraps": ts_wraps,
                "server_rss_kib": usage.map(|u| u.1),
                "server_cpu_pct": cpu,
                "max_gap_ms": max_gap.as_millis() as u64,
            });
            println!("{}", crate::json::line("interval", &Default::default(), &line));
            continue;
        }
        let (rss, cpu) = match (usage, prev_cpu) {
            (Some((cpu1, rss)), Some(cpu0)) => (rss.to_string(), format!("{:.1}", (cpu1 - cpu0) / interval * 100.0)),
            (Some((_, rss)), None) => (rss.to_string(), "-".to_owned()),
            _ => ("-".to_owned(), "-".to_owned()),
        };
        prev_cpu = usage.map(|u| u.0);
        // The first line has no earlier position to measure from.
        let held = if measured == 0 {
            "-".to_owned()
        } else {
            held.to_string()
        };
        println!(
            "report: {:.0} {} {held} {ended} {errors} {lost} {gaps} {jumps} {seq_wraps} {ts_wraps} {rss} {cpu} {}",
            (now - start).as_secs_f64(),
            sessions.len(),
            max_gap.as_millis(),
        );
    }
}

/// `v` to 3 decimals, `None` when not finite (JSON has no NaN).
fn round3(v: f64) -> Option<f64> {
    v.is_finite().then(|| (v * 1000.0).round() / 1000.0)
}

/// `v` to 1 decimal, as the text shows it.
fn round1(v: f64) -> Option<f64> {
    v.is_finite().then(|| (v * 10.0).round() / 10.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Runs the load and prints the summary; exit 0 when every session held real
/// time, none ended with an error and no stream had a discontinuity.
pub async fn run(args: &LoadArgs) -> u8 {
    let args = Resolved {
        url: args.url.clone(),
        sessions: args.sessions.max(1),
        duration: Duration::from_secs_f64(args.duration.max(0.1)),
        ramp: args.ramp,
        frames: args.frames,
        server_pid: args.server_pid,
        report_every: args
            .report_every
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(|s| Duration::from_secs_f64(s.max(0.1))),
        transport: args.transport,
        udp_ports: args.udp_ports,
        json: args.json,
        insecure: args.insecure,
        ca_file: args.ca_file.clone(),
    };
    let start = Instant::now();
    let stop = StopSignal::new();
    let mut tasks = Vec::with_capacity(args.sessions);
    let all: Arc<Mutex<Vec<Shared>>> = Arc::new(Mutex::new(Vec::with_capacity(args.sessions)));
    let spawn = |tasks: &mut Vec<tokio::task::JoinHandle<()>>| {
        let shared = Shared::default();
        all.lock().unwrap_or_else(|p| p.into_inner()).push(shared.clone());
        let spec = SessionSpec {
            frames: args.frames,
            transport: args.transport,
            udp_ports: args.udp_ports,
            insecure: args.insecure,
            ca_file: args.ca_file.clone(),
        };
        tasks.push(tokio::spawn(one_session(args.url.clone(), spec, stop.clone(), shared)));
    };
    let reporter = args
        .report_every
        .map(|every| tokio::spawn(report_loop(every, all.clone(), args.server_pid, start, args.json)));
    // One session first, so that the server has loaded the file before the
    // base RSS is read: the base is the server with the file and no load.
    spawn(&mut tasks);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let base = args.server_pid.and_then(proc_usage);
    for i in 1..args.sessions {
        let due = start + Duration::from_secs(1) + Duration::from_secs_f64(i as f64 / args.ramp.max(0.001));
        tokio::time::sleep_until(due.into()).await;
        spawn(&mut tasks);
    }
    let ramped = Instant::now();
    eprintln!(
        "{} sessions started in {:.1} s; measuring for {:?}",
        args.sessions,
        (ramped - start).as_secs_f64(),
        args.duration
    );
    let mid = args.server_pid.and_then(proc_usage);
    // Ctrl-C or SIGTERM ends the measurement early, with the summary.
    tokio::select! {
        _ = tokio::time::sleep(args.duration) => {}
        _ = crate::serve::wait_for_signal() => eprintln!("interrupted: summary of the measurement so far"),
    }
    let end = Instant::now();
    let last = args.server_pid.and_then(proc_usage);
    stop.stop();
    if let Some(r) = reporter {
        r.abort();
    }
    for t in tasks {
        let _ = t.await;
    }
    let results: Vec<Stats> = all
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|s| lock(s).clone())
        .collect();
    let mut fractions: Vec<f64> = results.iter().map(|s| s.fraction(end)).collect();
    fractions.sort_by(f64::total_cmp);
    let mut setups: Vec<f64> = results
        .iter()
        .filter_map(|s| s.setup)
        .map(|d| d.as_secs_f64() * 1000.0)
        .collect();
    setups.sort_by(f64::total_cmp);
    let held = fractions.iter().filter(|f| **f >= 0.95).count();
    let errors: Vec<&String> = results.iter().filter_map(|s| s.error.as_ref()).collect();
    let bytes: u64 = results.iter().map(|s| s.bytes).sum();
    let lost: u64 = results.iter().map(|s| s.lost).sum();
    // The text summary; with --json, one `load_report` object instead.
    let text = !args.json;
    macro_rules! say {
        ($($t:tt)*) => {
            if text {
                println!($($t)*);
            }
        };
    }
    let wall = (end - ramped).as_secs_f64();
    say!("url                 {}", crate::probe::redact(&args.url));
    say!(
        "sessions            {} (ramp {}/s, measured {:.1} s after the last started)",
        args.sessions,
        args.ramp,
        wall
    );
    say!("holding real time   {held} of {} (fraction >= 0.95)", fractions.len());
    say!(
        "real-time fraction  min {:.3}  p5 {:.3}  median {:.3}  max {:.3}",
        percentile(&fractions, 0.0),
        percentile(&fractions, 0.05),
        percentile(&fractions, 0.5),
        percentile(&fractions, 1.0)
    );
    say!(
        "setup latency ms    p50 {:.1}  p95 {:.1}  max {:.1}  ({} sessions reached PLAY)",
        percentile(&setups, 0.5),
        percentile(&setups, 0.95),
        percentile(&setups, 1.0),
        setups.len()
    );
    say!(
        "received            {:.1} Mb/s of RTP payload in all, {lost} packets lost",
        bytes as f64 * 8.0 / 1e6 / (end - start).as_secs_f64()
    );
    let gaps: u64 = results.iter().map(|s| s.sum(|t| t.seq_gaps)).sum();
    let jumps: u64 = results.iter().map(|s| s.sum(|t| t.ts_jumps)).sum();
    let broken = results
        .iter()
        .filter(|s| s.sum(|t| t.seq_gaps + t.ts_jumps) > 0)
        .count();
    let seq_wrapped = results.iter().filter(|s| s.sum(|t| t.seq_wraps) > 0).count();
    let ts_wrapped = results.iter().filter(|s| s.sum(|t| t.ts_wraps) > 0).count();
    say!(
        "continuity          {gaps} sequence gaps, {jumps} timestamp jumps ({broken} sessions with any); wraps crossed: sequence in {seq_wrapped} sessions ({} in all), timestamp in {ts_wrapped} ({} in all)",
        results.iter().map(|s| s.sum(|t| t.seq_wraps)).sum::<u64>(),
        results.iter().map(|s| s.sum(|t| t.ts_wraps)).sum::<u64>(),
    );
    let max_gap = results.iter().map(|s| s.gap_max).max().unwrap_or_default();
    let p99_gap = {
        let mut g: Vec<f64> = results.iter().map(|s| s.gap_max.as_secs_f64() * 1000.0).collect();
        g.sort_by(f64::total_cmp);
        percentile(&g, 0.99)
    };
    say!(
        "arrival gaps        longest {:.0} ms (p99 of each session's longest: {p99_gap:.0} ms)",
        max_gap.as_secs_f64() * 1000.0
    );
    let reported: Vec<(i64, f64, u8)> = results.iter().filter_map(|s| s.reported).collect();
    let mut jitters: Vec<f64> = reported.iter().map(|r| r.1 * 1000.0).collect();
    jitters.sort_by(f64::total_cmp);
    say!(
        "receiver reports    {} sent by {} sessions ({}); as they reported track 0: {} packets lost in all, worst fraction lost {:.1} %, jitter ms p50 {:.2}  p95 {:.2}  max {:.2}",
        results.iter().map(|s| s.reports_sent).sum::<u64>(),
        results.iter().filter(|s| s.reports_sent > 0).count(),
        args.transport,
        reported.iter().map(|r| r.0).sum::<i64>(),
        f64::from(reported.iter().map(|r| r.2).max().unwrap_or(0)) * 100.0 / 256.0,
        percentile(&jitters, 0.5),
        percentile(&jitters, 0.95),
        percentile(&jitters, 1.0)
    );
    say!("session errors      {}", errors.len());
    for e in errors.iter().take(5) {
        say!("  {e}");
    }
    if let (Some((cpu0, rss0)), Some((cpu1, rss1)), Some((cpu2, rss2))) = (base, mid, last) {
        let _ = (cpu0, rss1);
        say!(
            "server              CPU {:.0}% of one core over the measurement, RSS {} KiB with the file loaded and one session, {} KiB at the end: {:.1} KiB per session beyond that base",
            (cpu2 - cpu1) / (end - ramped).as_secs_f64() * 100.0,
            rss0,
            rss2,
            (rss2 as f64 - rss0 as f64) / (args.sessions.max(2) - 1) as f64
        );
    }
    let passed = held == fractions.len() && errors.is_empty() && gaps + jumps == 0;
    if args.json {
        let server = match (base, mid, last) {
            (Some((_, rss0)), Some((cpu1, _)), Some((cpu2, rss2))) => serde_json::json!({
                "cpu_pct": round1((cpu2 - cpu1) / (end - ramped).as_secs_f64() * 100.0),
                "base_rss_kib": rss0,
                "end_rss_kib": rss2,
                "rss_kib_per_session": round1((rss2 as f64 - rss0 as f64) / (args.sessions.max(2) - 1) as f64),
            }),
            _ => serde_json::Value::Null,
        };
        let report = serde_json::json!({
            "url": crate::probe::redact(&args.url),
            "transport": args.transport.as_str(),
            "sessions": args.sessions,
            "ramp_per_s": args.ramp,
            "measured_s": round3(wall),
            "holding_real_time": held,
            "real_time_fraction": {
                "min": round3(percentile(&fractions, 0.0)),
                "p5": round3(percentile(&fractions, 0.05)),
                "median": round3(percentile(&fractions, 0.5)),
                "max": round3(percentile(&fractions, 1.0)),
            },
            "setup_latency_ms": {
                "p50": round3(percentile(&setups, 0.5)),
                "p95": round3(percentile(&setups, 0.95)),
                "max": round3(percentile(&setups, 1.0)),
                "reached_play": setups.len(),
            },
            "received_mbps": round3(bytes as f64 * 8.0 / 1e6 / (end - start).as_secs_f64()),
            "lost": lost,
            "continuity": {
                "seq_gaps": gaps,
                "ts_jumps": jumps,
                "sessions_with_discontinuities": broken,
                "seq_wraps": results.iter().map(|s| s.sum(|t| t.seq_wraps)).sum::<u64>(),
                "ts_wraps": results.iter().map(|s| s.sum(|t| t.ts_wraps)).sum::<u64>(),
                "sessions_crossing_seq_wrap": seq_wrapped,
                "sessions_crossing_ts_wrap": ts_wrapped,
            },
            "arrival_gap_ms": {
                "longest": round3(max_gap.as_secs_f64() * 1000.0),
                "p99_of_session_longest": round3(p99_gap),
            },
            "receiver_reports": {
                "sent": results.iter().map(|s| s.reports_sent).sum::<u64>(),
                "sessions": results.iter().filter(|s| s.reports_sent > 0).count(),
                "reported_lost": reported.iter().map(|r| r.0).sum::<i64>(),
                "worst_fraction_lost_pct": round1(f64::from(reported.iter().map(|r| r.2).max().unwrap_or(0)) * 100.0 / 256.0),
                "jitter_ms": {
                    "p50": round3(percentile(&jitters, 0.5)),
                    "p95": round3(percentile(&jitters, 0.95)),
                    "max": round3(percentile(&jitters, 1.0)),
                },
            },
            "error_count": errors.len(),
            "errors": errors.iter().take(5).collect::<Vec<_>>(),
            "server": server,
            "passed": passed,
        });
        println!("{}", crate::json::line("load_report", &Default::default(), &report));
    }
    if !passed {
        EXIT_FAILURE
    } else {
        EXIT_OK
    }
}

#[cfg(test)]
mod tests {
    use super::Continuity;

    fn track(rate: u32) -> Continuity {
        Continuity {
            clock_rate: rate,
            ..Default::default()
        }
    }

    #[test]
    fn wraps_are_not_discontinuities() {
        let mut t = track(90_000);
        let mut ts = u32::MAX - 6_000;
        for seq in [65_533u16, 65_534, 65_535, 0, 1, 2] {
            t.packet(seq, ts);
            ts = ts.wrapping_add(3_000);
        }
        assert_eq!((t.seq_gaps, t.ts_jumps, t.seq_wraps, t.ts_wraps), (0, 0, 1, 1));
    }

    #[test]
    fn gaps_and_jumps_are_counted_and_b_frames_are_not() {
        let mut t = track(90_000);
        t.packet(10, 900_000);
        t.packet(11, 909_000); // B-frame order: forward,
        t.packet(12, 903_000); // back a little: fine
        t.packet(14, 912_000); // a lost packet
        t.packet(15, 0); // back 10 s
        t.packet(16, 1_000_000); // forward 11 s
        assert_eq!((t.seq_gaps, t.ts_jumps, t.seq_wraps), (1, 2, 0));
    }
}
