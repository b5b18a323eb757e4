//! `rtsp-toolkit load URL --sessions N --duration S`: opens N RTSP/TCP
//! sessions on one URL and reports, per session, the fraction of real time
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
}

struct Resolved {
    url: String,
    sessions: usize,
    duration: Duration,
    ramp: f64,
    frames: bool,
    server_pid: Option<u32>,
}

use std::time::{Duration, Instant};

use rtsp_toolkit_tokio::{ClientOptions, Event, Session, StopSignal};

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

async fn one_session(url: String, frames: bool, stop: StopSignal) -> Stats {
    let opts = ClientOptions {
        assemble_frames: frames,
        timeout: Duration::from_secs(10),
        ..Default::default()
    };
    let mut stats = Stats::default();
    let mut session = match Session::open_with_stop(&url, opts, stop) {
        Ok(s) => s,
        Err(e) => {
            stats.error = Some(e.to_string());
            return stats;
        }
    };
    let mut unroll = rtsp_toolkit_tokio::core::codec::TimestampUnroller::new();
    while let Some(e) = session.next_event().await {
        match e {
            Event::Method(m) if m.method.as_str() == "PLAY" => stats.setup = Some(m.session_elapsed),
            Event::Method(m) if m.method.as_str() == "SETUP" && stats.clock_rate == 0 => {
                stats.clock_rate = m.track.as_ref().map_or(0, |t| t.clock_rate)
            }
            Event::Rtp(r) => {
                stats.packets += 1;
                stats.bytes += r.packet.payload.len() as u64;
                if r.track == 0 {
                    let now = Instant::now();
                    let ts = unroll.extend(r.packet.timestamp);
                    stats.first.get_or_insert((now, ts));
                    stats.last = Some((now, ts));
                }
            }
            Event::Loss(l) => stats.lost += u64::from(l.lost),
            Event::Closed(c) => stats.error = c.error.map(|e| e.to_string()),
            _ => {}
        }
    }
    stats
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Runs the load and prints the summary; exit 0 when every session held real time.
pub async fn run(args: &LoadArgs) -> u8 {
    let args = Resolved {
        url: args.url.clone(),
        sessions: args.sessions.max(1),
        duration: Duration::from_secs_f64(args.duration.max(0.1)),
        ramp: args.ramp,
        frames: args.frames,
        server_pid: args.server_pid,
    };
    let start = Instant::now();
    let stop = StopSignal::new();
    let mut tasks = Vec::with_capacity(args.sessions);
    // One session first, so that the server has loaded the file before the
    // base RSS is read: the base is the server with the file and no load.
    tasks.push(tokio::spawn(one_session(args.url.clone(), args.frames, stop.clone())));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let base = args.server_pid.and_then(proc_usage);
    for i in 1..args.sessions {
        let due = start + Duration::from_secs(1) + Duration::from_secs_f64(i as f64 / args.ramp.max(0.001));
        tokio::time::sleep_until(due.into()).await;
        tasks.push(tokio::spawn(one_session(args.url.clone(), args.frames, stop.clone())));
    }
    let ramped = Instant::now();
    eprintln!(
        "{} sessions started in {:.1} s; measuring for {:?}",
        args.sessions,
        (ramped - start).as_secs_f64(),
        args.duration
    );
    let mid = args.server_pid.and_then(proc_usage);
    tokio::time::sleep(args.duration).await;
    let end = Instant::now();
    let last = args.server_pid.and_then(proc_usage);
    stop.stop();
    let mut results = Vec::with_capacity(tasks.len());
    for t in tasks {
        results.push(t.await.unwrap_or_default());
    }
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
    let wall = (end - ramped).as_secs_f64();
    println!("url                 {}", args.url);
    println!(
        "sessions            {} (ramp {}/s, measured {:.1} s after the last started)",
        args.sessions, args.ramp, wall
    );
    println!("holding real time   {held} of {} (fraction >= 0.95)", fractions.len());
    println!(
        "real-time fraction  min {:.3}  p5 {:.3}  median {:.3}  max {:.3}",
        percentile(&fractions, 0.0),
        percentile(&fractions, 0.05),
        percentile(&fractions, 0.5),
        percentile(&fractions, 1.0)
    );
    println!(
        "setup latency ms    p50 {:.1}  p95 {:.1}  max {:.1}  ({} sessions reached PLAY)",
        percentile(&setups, 0.5),
        percentile(&setups, 0.95),
        percentile(&setups, 1.0),
        setups.len()
    );
    println!(
        "received            {:.1} Mb/s of RTP payload in all, {lost} packets lost",
        bytes as f64 * 8.0 / 1e6 / (end - start).as_secs_f64()
    );
    println!("session errors      {}", errors.len());
    for e in errors.iter().take(5) {
        println!("  {e}");
    }
    if let (Some((cpu0, rss0)), Some((cpu1, rss1)), Some((cpu2, rss2))) = (base, mid, last) {
        let _ = (cpu0, rss1);
        println!(
            "server              CPU {:.0}% of one core over the measurement, RSS {} KiB with the file loaded and one session, {} KiB at the end: {:.1} KiB per session beyond that base",
            (cpu2 - cpu1) / (end - ramped).as_secs_f64() * 100.0,
            rss0,
            rss2,
            (rss2 as f64 - rss0 as f64) / (args.sessions.max(2) - 1) as f64
        );
    }
    if held < fractions.len() {
        EXIT_FAILURE
    } else {
        EXIT_OK
    }
}
