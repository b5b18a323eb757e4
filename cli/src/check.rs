//! `rtsp-toolkit check FILE|URL...`: a short session on each of many cameras,
//! a few at a time, and one line per camera: did it play, how fast did the
//! first frame come, what does it send, what was lost. The everyday task of
//! a camera installer.
//!
//! Each URL gets its own client session ([`Session`]): connect, set up,
//! play for `--duration` from the PLAY response, TEARDOWN. Its events go
//! through the probe's statistics (`report.rs`'s [`Stats`]); the row is
//! read from the resulting [`Report`], plus the picture size from the SPS
//! of the first video track (`codec::sps`). At most `--jobs` sessions run
//! at once. The table is printed in input order once every URL is done;
//! `--json` prints each row as soon as it and every row above it are done.
//!
//! A row passes (`ok`) when the session played, ended without an error and
//! gave at least one frame. Otherwise its status says what went wrong
//! ([`Status`]). URLs are shown without their credentials, and no error
//! message carries them.

use std::fmt::Write as _;
use std::io::{self, IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use rtsp_toolkit_tokio::core::codec::sps;
use rtsp_toolkit_tokio::core::stop::StopSignal;
use rtsp_toolkit_tokio::{ClientOptions, Error, Event, Session};

use rtsp_toolkit_tokio::core::duration_secs;
use serde::Serialize;

use crate::json::{self, Context};
use crate::probe::{parse_secs, parse_transport, redact, TransportArg, EXIT_INTERRUPTED};
use crate::report::{Report, Stats};
use crate::text;
use crate::{EXIT_FAILURE, EXIT_OK, EXIT_USAGE};

/// `check` arguments.
#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// rtsp:// (or rtsps://) URLs, and text files with one URL per line
    /// (blank lines and lines starting with # are skipped; `URL # comment` is fine).
    #[arg(required = true, value_name = "FILE|URL")]
    pub targets: Vec<String>,
    /// Sessions at the same time.
    #[arg(short, long, value_name = "N", default_value_t = 8,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: u16,
    /// Seconds of playing per URL, counted from the PLAY response.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_secs)]
    pub duration: Duration,
    /// Seconds to wait for the connection, each response, and media while playing.
    #[arg(long, value_name = "SECS", default_value = "4", value_parser = parse_secs)]
    pub timeout: Duration,
    /// How RTP travels: tcp (interleaved on the RTSP connection), udp, multicast,
    /// or auto (UDP, then TCP when the server refuses UDP or no RTP arrives).
    #[arg(long, value_name = "KIND", default_value = "tcp", value_parser = parse_transport)]
    pub transport: TransportArg,
    /// One JSON object per URL on stdout, then a summary object (schema: docs/CLI.md).
    #[arg(long)]
    pub json: bool,
}

/// The outcome of one URL. Every status but `Ok` fails the check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// Played, ended without an error, at least one frame.
    Ok,
    /// The server refused the credentials, or wants some (401, 403, 407).
    Auth,
    /// 404: no such stream.
    NotFound,
    /// Nothing listens on the port (TCP connection refused).
    Refused,
    /// The connection could not be made otherwise (name lookup, no route, ...).
    Unreachable,
    /// No connection, or no response, within `--timeout`; or the media
    /// stopped for that long after some frames.
    Timeout,
    /// Played, but no frame came (no RTP, e.g. blocked UDP, or no whole frame).
    NoMedia,
    /// Played, RTP came, but no track has a codec this toolkit can make frames of.
    UnsupportedCodec,
    /// Another error response (454, 461, 500, ...).
    Response,
    /// The server sent something this toolkit cannot accept.
    Protocol,
    /// The connection was closed or broke during the session.
    Connection,
    /// The URL cannot be used (bad host or port, unsupported scheme).
    BadUrl,
    /// Stopped by Ctrl-C before a frame came.
    Interrupted,
    /// Not started: Ctrl-C came first.
    Skipped,
}

impl Status {
    /// The word in the table and the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Auth => "auth",
            Status::NotFound => "not_found",
            Status::Refused => "refused",
            Status::Unreachable => "unreachable",
            Status::Timeout => "timeout",
            Status::NoMedia => "no_media",
            Status::UnsupportedCodec => "unsupported_codec",
            Status::Response => "response",
            Status::Protocol => "protocol",
            Status::Connection => "connection",
            Status::BadUrl => "bad_url",
            Status::Interrupted => "interrupted",
            Status::Skipped => "skipped",
        }
    }
}

/// One line of the result.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Without credentials.
    pub url: String,
    pub status: Status,
    /// Why it failed (the session's error), or a remark on a row that
    /// passed (a track with an unsupported codec).
    pub message: Option<String>,
    /// From session start (connection, setup, PLAY) to the first frame of any track.
    pub first_frame: Option<Duration>,
    pub play_at: Option<Duration>,
    /// SDP encoding names of the set-up tracks, in track order.
    pub codecs: Vec<String>,
    /// Width and height from the first video track's SPS.
    pub resolution: Option<(u32, u32)>,
    /// The first video track's frame rate.
    pub frame_rate: Option<f64>,
    /// Sum over the tracks of the frame bitrate (the RTP payload bitrate for
    /// a track without frames).
    pub bitrate: Option<f64>,
    pub frames: u64,
    pub rtp_packets: u64,
    pub lost: u64,
    pub session_elapsed: Option<Duration>,
}

impl Row {
    /// `lost / (received + lost)` in percent, 0 without packets.
    pub fn loss_percent(&self) -> f64 {
        let expected = self.rtp_packets + self.lost;
        if expected == 0 {
            0.0
        } else {
            self.lost as f64 * 100.0 / expected as f64
        }
    }

    fn empty(url: &str, status: Status, message: Option<String>) -> Row {
        Row {
            url: redact(url),
            status,
            message,
            first_frame: None,
            play_at: None,
            codecs: Vec::new(),
            resolution: None,
            frame_rate: None,
            bitrate: None,
            frames: 0,
            rtp_packets: 0,
            lost: 0,
            session_elapsed: None,
        }
    }
}

/// The URLs of `targets`: each one that starts with `rtsp://` or `rtsps://`
/// as is, every other one read as a file of URLs.
pub fn read_targets(targets: &[String]) -> Result<Vec<String>, String> {
    let mut urls = Vec::new();
    for t in targets {
        if is_url(t) {
            urls.push(t.clone());
            continue;
        }
        let content = std::fs::read_to_string(t)
            .map_err(|e| format!("{t}: not an rtsp:// URL, and cannot be read as a file of URLs: {e}"))?;
        urls.extend(parse_list(t, &content)?);
    }
    if urls.is_empty() {
        return Err("no URLs to check".into());
    }
    Ok(urls)
}

/// The URLs of a list file: one per line; blank lines and `#` comments
/// (whole lines, or after the URL) are skipped.
fn parse_list(name: &str, content: &str) -> Result<Vec<String>, String> {
    let mut urls = Vec::new();
    for (i, line) in content.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        let url = words.next().unwrap_or_default();
        let rest = words.next();
        if !is_url(url) || rest.is_some_and(|w| !w.starts_with('#')) {
            return Err(format!(
                "{name}:{}: expected one rtsp:// URL (and maybe a # comment), got {:?}",
                i + 1,
                redact(line)
            ));
        }
        urls.push(url.to_owned());
    }
    Ok(urls)
}

fn is_url(s: &str) -> bool {
    let lower = s.get(..8).unwrap_or(s).to_ascii_lowercase();
    lower.starts_with("rtsp://") || lower.starts_with("rtsps://")
}

/// Runs the check; the exit code.
pub async fn run(args: &CheckArgs) -> u8 {
    let urls = match read_targets(&args.targets) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let start = Instant::now();
    let args = Arc::new(args.clone());
    let interrupt = StopSignal::new();
    let mut rows: Vec<Option<Row>> = vec![None; urls.len()];
    let mut printed = 0;
    let mut next = 0;
    let mut set = tokio::task::JoinSet::new();
    let mut stdout = io::BufWriter::new(io::stdout());
    let progress = !args.json && io::stderr().is_terminal();
    let mut ctrl_c = Box::pin(crate::serve::wait_for_signal());
    loop {
        while set.len() < usize::from(args.jobs) && next < urls.len() && !interrupt.is_stopped() {
            let (i, url, args, interrupt) = (next, urls[next].clone(), args.clone(), interrupt.clone());
            set.spawn(async move { (i, check_one(i, &url, &args, &interrupt).await) });
            next += 1;
        }
        if progress {
            let done = rows.iter().filter(|r| r.is_some()).count();
            eprint!("\r\x1b[2Kchecking: {done}/{} done, {} running", urls.len(), set.len());
            let _ = io::stderr().flush();
        }
        tokio::select! {
            joined = set.join_next() => {
                let Some(joined) = joined else { break };
                let (i, row) = match joined {
                    Ok(r) => r,
                    // A session task cannot panic by design; if one did, say so and fail.
                    Err(e) => {
                        eprintln!("error: a check task failed: {e}");
                        return EXIT_FAILURE;
                    }
                };
                rows[i] = Some(row);
                if args.json {
                    // Rows go out in input order, each once every row above it is done.
                    while let Some(Some(r)) = rows.get(printed) {
                        let _ = writeln!(stdout, "{}", json_row(r));
                        printed += 1;
                    }
                    let _ = stdout.flush();
                }
            }
            _ = &mut ctrl_c => {
                if interrupt.is_stopped() {
                    eprintln!("\ninterrupted again: aborting without waiting for TEARDOWN");
                    return EXIT_INTERRUPTED;
                }
                interrupt.stop();
                ctrl_c = Box::pin(crate::serve::wait_for_signal());
                if progress {
                    eprintln!();
                }
                eprintln!("stopping (TEARDOWN); Ctrl-C again to abort");
            }
        }
    }
    if progress {
        eprint!("\r\x1b[2K");
    }
    let rows: Vec<Row> = rows
        .into_iter()
        .zip(&urls)
        .map(|(r, url)| r.unwrap_or_else(|| Row::empty(url, Status::Skipped, Some("not started (Ctrl-C)".into()))))
        .collect();
    let elapsed = start.elapsed();
    let out = if args.json {
        let mut s = String::new();
        for r in &rows[printed..] {
            let _ = writeln!(s, "{}", json_row(r));
        }
        let _ = writeln!(s, "{}", json_summary(&rows, elapsed));
        s
    } else {
        format!("{}\n{}\n", table(&rows), summary_line(&rows, elapsed))
    };
    let _ = stdout.write_all(out.as_bytes());
    let _ = stdout.flush();
    if rows.iter().all(|r| r.status == Status::Ok) {
        EXIT_OK
    } else {
        EXIT_FAILURE
    }
}

/// One session on `url`: plays for `--duration` from the PLAY response (or
/// until it ends, fails, or `interrupt` is raised); its row.
async fn check_one(index: usize, url: &str, args: &CheckArgs, interrupt: &StopSignal) -> Row {
    let options = ClientOptions::default()
        .with_timeout(args.timeout)
        .with_transport(args.transport.transport)
        .with_tunnel(args.transport.tunnel)
        // Tells the sessions apart in `-v` log lines.
        .with_session_id(format!("#{}", index + 1));
    let mut session = match Session::open(url, options) {
        Ok(s) => s,
        Err(e) => {
            let message = match e {
                Error::Config(m) => m,
                other => other.to_string(),
            };
            return Row::empty(url, Status::BadUrl, Some(message));
        }
    };
    let mut stats = Stats::new();
    let mut resolution: Option<(usize, (u32, u32))> = None;
    let mut error = None;
    let mut deadline: Option<tokio::time::Instant> = None;
    let mut stopping = false;
    let mut interrupted = false;
    loop {
        tokio::select! {
            event = session.next_event() => {
                let Some(event) = event else { break };
                let media = matches!(
                    event,
                    Event::Rtp(_) | Event::Rtcp(_) | Event::Video(_) | Event::Audio(_) | Event::Loss(_)
                );
                if media && stopping {
                    // As in `probe`: what arrives after the stop is not counted.
                    continue;
                }
                stats.observe(&event);
                match &event {
                    Event::Method(m) if m.method.as_str() == "PLAY" && m.is_success() && deadline.is_none() => {
                        deadline = Some(tokio::time::Instant::now() + args.duration);
                    }
                    Event::Video(v) if v.frame.new_parameters && resolution.is_none_or(|(t, _)| v.track <= t) => {
                        if let Some(size) = sps::resolution(v.frame.codec, &v.frame.data) {
                            resolution = Some((v.track, size));
                        }
                    }
                    Event::Closed(c) => error = c.error.clone(),
                    _ => {}
                }
            }
            _ = sleep_until(deadline), if deadline.is_some() && !stopping => {
                stopping = true;
                session.stop();
            }
            _ = interrupt.stopped(), if !stopping => {
                stopping = true;
                interrupted = true;
                session.stop();
            }
        }
    }
    row(
        url,
        &stats.report(),
        error.as_ref(),
        resolution.map(|r| r.1),
        interrupted,
    )
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// The row of a finished session.
fn row(url: &str, report: &Report, error: Option<&Error>, resolution: Option<(u32, u32)>, interrupted: bool) -> Row {
    let (status, message) = judge(report, error, interrupted);
    let video = report.tracks.iter().find(|t| t.kind == "video");
    let bitrates: Vec<f64> = report
        .tracks
        .iter()
        .filter_map(|t| t.bitrate.or(t.rtp_bitrate))
        .collect();
    Row {
        url: redact(url),
        status,
        message,
        first_frame: report.tracks.iter().filter_map(|t| t.first_frame).min(),
        play_at: report.play_at,
        codecs: report.tracks.iter().map(|t| t.codec.clone()).collect(),
        resolution,
        frame_rate: video.and_then(|t| t.frame_rate),
        bitrate: (!bitrates.is_empty()).then(|| bitrates.iter().sum()),
        frames: report.tracks.iter().map(|t| t.frames).sum(),
        rtp_packets: report.tracks.iter().map(|t| t.rtp_packets).sum(),
        lost: report.tracks.iter().map(|t| t.lost).sum(),
        session_elapsed: report.session_elapsed,
    }
}

/// The status of a finished session and its message.
fn judge(report: &Report, error: Option<&Error>, interrupted: bool) -> (Status, Option<String>) {
    let frames: u64 = report.tracks.iter().map(|t| t.frames).sum();
    let unsupported: Vec<String> = report
        .tracks
        .iter()
        .filter_map(|t| {
            t.unsupported
                .as_ref()
                .map(|c| format!("track {}: unsupported codec {c}", t.index))
        })
        .collect();
    let connected = report.connect.as_ref().is_some_and(|c| c.result.is_ok());
    if let Some(e) = error {
        let status = match e {
            Error::Response {
                status: 401 | 403 | 407,
                ..
            } => Status::Auth,
            Error::Response { status: 404, .. } => Status::NotFound,
            Error::Response { .. } => Status::Response,
            Error::Connection(_) if connected => Status::Connection,
            Error::Connection(c) if c.kind() == io::ErrorKind::ConnectionRefused => Status::Refused,
            Error::Connection(_) => Status::Unreachable,
            Error::Timeout { .. } if report.play_at.is_some() && frames == 0 => Status::NoMedia,
            Error::Timeout { .. } => Status::Timeout,
            Error::Protocol(_) => Status::Protocol,
            Error::Config(_) => Status::BadUrl,
            _ => Status::Protocol,
        };
        return (status, Some(e.to_string()));
    }
    if frames > 0 {
        let note = (!unsupported.is_empty()).then(|| format!("{} (RTP only)", unsupported.join("; ")));
        return (Status::Ok, note);
    }
    if interrupted {
        return (
            Status::Interrupted,
            Some("stopped by Ctrl-C before a frame came".into()),
        );
    }
    if !unsupported.is_empty() {
        return (
            Status::UnsupportedCodec,
            Some(format!("{}: no frames, RTP statistics only", unsupported.join("; "))),
        );
    }
    let how = if report.play_at.is_none() {
        "the session ended before PLAY"
    } else if report.tracks.iter().any(|t| t.rtp_packets > 0) {
        "RTP packets but no whole frame"
    } else {
        "no RTP packets"
    };
    (Status::NoMedia, Some(how.to_owned()))
}

/// Short codec names for the table (`MPEG4-GENERIC` is AAC).
fn short_codec(sdp_name: &str) -> &str {
    match sdp_name.to_ascii_uppercase().as_str() {
        "MPEG4-GENERIC" => "AAC",
        "MP4A-LATM" => "AAC-LATM",
        _ => sdp_name,
    }
}

/// The table, aligned (a header line and one line per row, no trailing spaces).
fn table(rows: &[Row]) -> String {
    const HEADERS: [&str; 9] = [
        "URL",
        "STATUS",
        "FIRST FRAME",
        "CODECS",
        "RESOLUTION",
        "FPS",
        "BITRATE",
        "LOSS",
        "ERROR",
    ];
    // Right-aligned: the numbers.
    const RIGHT: [bool; 9] = [false, false, true, false, true, true, true, true, false];
    let dash = || "-".to_owned();
    let cells: Vec<[String; 9]> = rows
        .iter()
        .map(|r| {
            [
                r.url.clone(),
                r.status.name().to_owned(),
                r.first_frame.map_or_else(dash, text::dur),
                if r.codecs.is_empty() {
                    dash()
                } else {
                    r.codecs.iter().map(|c| short_codec(c)).collect::<Vec<_>>().join(",")
                },
                r.resolution.map_or_else(dash, |(w, h)| format!("{w}x{h}")),
                r.frame_rate.map_or_else(dash, |f| format!("{f:.2}")),
                r.bitrate.map_or_else(dash, text::bitrate),
                if r.rtp_packets + r.lost == 0 {
                    dash()
                } else {
                    format!("{:.2} %", r.loss_percent())
                },
                r.message.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let mut widths = HEADERS.map(|h| h.chars().count());
    for c in &cells {
        for (w, cell) in widths.iter_mut().zip(c) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 9]| {
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            let pad = widths[i].saturating_sub(cell.chars().count());
            if RIGHT[i] {
                s.push_str(&" ".repeat(pad));
                s.push_str(cell);
            } else {
                s.push_str(cell);
                s.push_str(&" ".repeat(pad));
            }
        }
        s.trim_end().to_owned()
    };
    let mut out = line(HEADERS);
    for c in &cells {
        out.push('\n');
        out.push_str(&line([&c[0], &c[1], &c[2], &c[3], &c[4], &c[5], &c[6], &c[7], &c[8]]));
    }
    out
}

/// `3 of 5 passed; failed: 1 auth, 1 refused (6.204 s)`.
fn summary_line(rows: &[Row], elapsed: Duration) -> String {
    let passed = rows.iter().filter(|r| r.status == Status::Ok).count();
    let mut s = format!("\n{passed} of {} passed", rows.len());
    let failed = status_counts(rows)
        .into_iter()
        .filter(|(st, _)| *st != Status::Ok)
        .map(|(st, n)| format!("{n} {}", st.name()))
        .collect::<Vec<_>>();
    if !failed.is_empty() {
        let _ = write!(s, "; failed: {}", failed.join(", "));
    }
    let _ = write!(s, " ({})", text::dur(elapsed));
    s
}

/// How many rows have each status, in the order of [`Status`].
fn status_counts(rows: &[Row]) -> Vec<(Status, usize)> {
    let mut counts: Vec<(Status, usize)> = Vec::new();
    for r in rows {
        match counts.iter_mut().find(|(s, _)| *s == r.status) {
            Some((_, n)) => *n += 1,
            None => counts.push((r.status, 1)),
        }
    }
    counts.sort();
    counts
}

/// `{"type":"check", ...}`: one URL.
fn json_row(r: &Row) -> String {
    #[derive(Serialize)]
    struct RowJson<'a> {
        url: &'a str,
        status: &'a str,
        ok: bool,
        error: Option<&'a str>,
        note: Option<&'a str>,
        #[serde(with = "duration_secs::option")]
        first_frame_s: Option<Duration>,
        #[serde(with = "duration_secs::option")]
        play_s: Option<Duration>,
        codecs: &'a [String],
        width: Option<u32>,
        height: Option<u32>,
        frame_rate: Option<f64>,
        bitrate_bps: Option<f64>,
        frames: u64,
        rtp_packets: u64,
        lost: u64,
        loss_percent: f64,
        #[serde(with = "duration_secs::option")]
        session_elapsed_s: Option<Duration>,
    }
    let ok = r.status == Status::Ok;
    let finite = |v: Option<f64>| v.filter(|v| v.is_finite());
    json::line(
        "check",
        &Context::default(),
        &RowJson {
            url: &r.url,
            status: r.status.name(),
            ok,
            error: if ok { None } else { r.message.as_deref() },
            note: if ok { r.message.as_deref() } else { None },
            first_frame_s: r.first_frame,
            play_s: r.play_at,
            codecs: &r.codecs,
            width: r.resolution.map(|(w, _)| w),
            height: r.resolution.map(|(_, h)| h),
            frame_rate: finite(r.frame_rate),
            bitrate_bps: finite(r.bitrate),
            frames: r.frames,
            rtp_packets: r.rtp_packets,
            lost: r.lost,
            loss_percent: r.loss_percent(),
            session_elapsed_s: r.session_elapsed,
        },
    )
}

/// `{"type":"check_summary", ...}`: the last line.
fn json_summary(rows: &[Row], elapsed: Duration) -> String {
    #[derive(Serialize)]
    struct Summary {
        urls: usize,
        passed: usize,
        failed: usize,
        /// Rows per status, in the order of [`Status`] (serde_json's map
        /// keeps the keys sorted; the order carries no meaning).
        statuses: std::collections::BTreeMap<&'static str, usize>,
        #[serde(with = "duration_secs")]
        elapsed_s: Duration,
    }
    let passed = rows.iter().filter(|r| r.status == Status::Ok).count();
    json::line(
        "check_summary",
        &Context::default(),
        &Summary {
            urls: rows.len(),
            passed,
            failed: rows.len() - passed,
            statuses: status_counts(rows).into_iter().map(|(s, n)| (s.name(), n)).collect(),
            elapsed_s: elapsed,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{ConnectInfo, TrackReport};
    use rtsp_toolkit_tokio::core::message::Method;

    fn report(connected: bool, play: bool, tracks: Vec<TrackReport>) -> Report {
        Report {
            connect: Some(ConnectInfo {
                target: "h:554".into(),
                elapsed: Duration::from_millis(1),
                result: if connected {
                    Ok(("127.0.0.1:1".parse().unwrap(), "127.0.0.1:554".parse().unwrap()))
                } else {
                    Err("refused".into())
                },
            }),
            play_at: play.then_some(Duration::from_millis(10)),
            methods: Vec::new(),
            tracks,
            first_video_frame: None,
            first_audio_frame: None,
            session_elapsed: Some(Duration::from_secs(5)),
            error: None,
            warnings: 0,
            fallback: None,
        }
    }

    /// A track report from the statistics of a few events.
    fn track(kind: &str, codec: &str, frames: u64, rtp: u64, unsupported: Option<&str>) -> TrackReport {
        TrackReport {
            index: 0,
            kind: kind.into(),
            codec: codec.into(),
            clock_rate: 90000,
            channels: None,
            unsupported: unsupported.map(str::to_owned),
            rtp_packets: rtp,
            rtp_payload_bytes: 0,
            lost: 0,
            loss_percent: 0.0,
            jitter: None,
            max_jitter: None,
            rtp_bitrate: None,
            sender_reports: 0,
            byes: 0,
            receiver_reports_sent: 0,
            transport: String::new(),
            frames,
            keyframes: 0,
            damaged_frames: 0,
            frame_bytes: 0,
            first_frame: (frames > 0).then_some(Duration::from_millis(20)),
            first_frame_after_play: None,
            media_duration: None,
            frame_rate: None,
            bitrate: None,
            keyframe_interval: None,
            timestamps_reordered: false,
            max_frame_gap: None,
            samples: 0,
            sample_rate: None,
            audio_channels: None,
        }
    }

    fn status(r: &Report, e: Option<Error>) -> Status {
        judge(r, e.as_ref(), false).0
    }

    #[test]
    fn statuses_from_errors_and_media() {
        let good = report(true, true, vec![track("video", "H264", 10, 12, None)]);
        assert_eq!(judge(&good, None, false), (Status::Ok, None));
        let resp = |status| Error::Response {
            method: Method::Describe,
            status,
            reason: "x".into(),
        };
        let setup = report(true, false, Vec::new());
        assert_eq!(status(&setup, Some(resp(401))), Status::Auth);
        assert_eq!(status(&setup, Some(resp(404))), Status::NotFound);
        assert_eq!(status(&setup, Some(resp(500))), Status::Response);
        let refused = report(false, false, Vec::new());
        let e = Error::Connection(rtsp_toolkit_tokio::ConnectionError::new(
            io::ErrorKind::ConnectionRefused,
            "cannot connect to h:554: Connection refused (os error 111)",
        ));
        assert_eq!(status(&refused, Some(e)), Status::Refused);
        let e = Error::Connection(rtsp_toolkit_tokio::ConnectionError::new(
            io::ErrorKind::Other,
            "cannot connect to h:554: failed to lookup address",
        ));
        assert_eq!(status(&refused, Some(e)), Status::Unreachable);
        let e = Error::Connection(rtsp_toolkit_tokio::ConnectionError::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed by the server while playing",
        ));
        assert_eq!(status(&good, Some(e)), Status::Connection);
        let timeout = |what: &str| Error::Timeout {
            waiting_for: what.into(),
            timeout: Duration::from_secs(4),
        };
        assert_eq!(status(&setup, Some(timeout("response to OPTIONS"))), Status::Timeout);
        let silent = report(true, true, vec![track("video", "H264", 0, 0, None)]);
        assert_eq!(status(&silent, Some(timeout("data while playing"))), Status::NoMedia);
        assert_eq!(
            status(&good, Some(timeout("data while playing"))),
            Status::Timeout,
            "stalled"
        );
        assert_eq!(judge(&silent, None, false).1.as_deref(), Some("no RTP packets"));
        assert_eq!(judge(&silent, None, true).0, Status::Interrupted);
    }

    #[test]
    fn unsupported_codec_fails_only_without_frames() {
        let vp8 = track("video", "VP8", 0, 50, Some("VP8"));
        let r = report(true, true, vec![vp8.clone()]);
        assert_eq!(status(&r, None), Status::UnsupportedCodec);
        let mut aac = track("audio", "MPEG4-GENERIC", 40, 40, None);
        aac.index = 1;
        let r = report(true, true, vec![vp8, aac]);
        let (s, note) = judge(&r, None, false);
        assert_eq!(s, Status::Ok);
        assert_eq!(note.as_deref(), Some("track 0: unsupported codec VP8 (RTP only)"));
    }

    #[test]
    fn url_lists() {
        let list = "# cameras\n\nrtsp://a/1\n  RTSP://b/2   # lobby\nrtsps://c/3\n";
        assert_eq!(
            parse_list("l", list).unwrap(),
            ["rtsp://a/1", "RTSP://b/2", "rtsps://c/3"]
        );
        let e = parse_list("cams.txt", "rtsp://a/1\nhttp://u:pw@b/2\n").unwrap_err();
        assert!(e.starts_with("cams.txt:2:") && !e.contains("pw"), "{e}");
        assert!(parse_list("l", "rtsp://a/1 rtsp://b/2").is_err());
        assert!(read_targets(&["rtsp://x/1".into()]).is_ok());
        assert!(read_targets(&["/nonexistent/list.txt".into()]).is_err());
    }

    #[test]
    fn table_is_aligned_and_json_rows_have_every_field() {
        let mut ok = Row::empty("rtsp://user:pw@cam-1/live", Status::Ok, None);
        ok.first_frame = Some(Duration::from_millis(123));
        ok.codecs = vec!["H264".into(), "MPEG4-GENERIC".into()];
        ok.resolution = Some((1920, 1080));
        ok.frame_rate = Some(25.0);
        ok.bitrate = Some(4_000_000.0);
        ok.rtp_packets = 99;
        ok.lost = 1;
        let bad = Row::empty("rtsp://10.0.0.2/x", Status::Refused, Some("connection refused".into()));
        let t = table(&[ok.clone(), bad.clone()]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(
            lines[1].starts_with("rtsp://cam-1/live  "),
            "credentials removed: {}",
            lines[1]
        );
        let col = |l: &str, word: &str| l.find(word).unwrap();
        assert_eq!(col(lines[0], "STATUS"), col(lines[1], "ok"));
        assert_eq!(col(lines[0], "STATUS"), col(lines[2], "refused"));
        assert!(lines[1].contains("H264,AAC") && lines[1].contains("1920x1080") && lines[1].contains("1.00 %"));
        assert!(lines[2].ends_with("connection refused"));
        // Right-aligned numbers end under the end of their header.
        let end = |l: &str, word: &str| l.find(word).unwrap() + word.len();
        assert_eq!(end(lines[0], "FPS"), end(lines[1], "25.00"));

        let j = json_row(&ok);
        for key in [
            "\"type\":\"check\"",
            "\"status\":\"ok\"",
            "\"ok\":true",
            "\"error\":null",
            "\"width\":1920",
            "\"codecs\":[\"H264\",\"MPEG4-GENERIC\"]",
            "\"loss_percent\":1",
        ] {
            assert!(j.contains(key), "{key} in {j}");
        }
        let j = json_row(&bad);
        assert!(
            j.contains("\"error\":\"connection refused\"") && j.contains("\"width\":null"),
            "{j}"
        );
        let s = json_summary(&[ok.clone(), bad.clone(), bad], Duration::from_secs(2));
        assert!(
            s.contains("\"passed\":1,\"failed\":2,\"statuses\":{\"ok\":1,\"refused\":2}"),
            "{s}"
        );
        assert_eq!(
            summary_line(&[ok], Duration::from_secs(2)).trim(),
            "1 of 1 passed (2.000 s)"
        );
    }
}
