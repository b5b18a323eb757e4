//! `rtsp-toolkit probe URL`: run one client session, print what happens, then
//! the report.
//!
//! The loop reads session events, a 250 ms tick (live status line and the
//! per-second summaries), Ctrl-C and the `--duration` deadline. Stopping for
//! any reason (`--frames`, `--duration`, Ctrl-C) asks the session to stop
//! (TEARDOWN) and keeps reading until it closes; media that arrives after
//! that is not counted, printed or saved, so `--frames 25` gives 25 frames.
//! Statistics are `report.rs`'s, formatting `text.rs`'s and `json.rs`'s.
//! `replay.rs` drives the same [`Probe`] with the events of a recorded
//! session instead of a live one ([`drive`] with a capture).

use std::collections::VecDeque;
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use rtsp_toolkit_tokio::core::capture::{Capture, RecordKind};
use rtsp_toolkit_tokio::core::client::{Client, Output, PortRange, TrackSelection, Transport, Tunnel};
use rtsp_toolkit_tokio::core::sdp::{Media, MediaKind};
use rtsp_toolkit_tokio::{BackchannelAudio, ClientOptions, Error, Event, LogKinds, Session, Warning};

use crate::decode::DecodeSummary;
use crate::json::{self, Context};
use crate::report::{Stats, Totals};
use crate::save::{AudioSink, MetadataSink, Sinks, VideoSink};
use crate::text;
use crate::{EXIT_FAILURE, EXIT_OK, EXIT_UNSUPPORTED, EXIT_USAGE};

/// Options of a probe (shared by `probe` and `demo`).
#[derive(Debug, Clone, Args)]
pub struct ProbeOptions {
    /// Do not set up the video track.
    #[arg(long, help_heading = "Session", conflicts_with = "no_audio")]
    pub no_video: bool,
    /// Do not set up the audio track.
    #[arg(long, help_heading = "Session")]
    pub no_audio: bool,
    /// Which tracks to set up: all, video, audio, or SDP media indexes such as 0,2
    /// (default: the first video and the first audio track).
    #[arg(long, value_name = "SEL", value_parser = parse_tracks, help_heading = "Session",
          conflicts_with_all = ["no_video", "no_audio"])]
    pub tracks: Option<TrackSelection>,
    /// User name for authentication (the password comes from RTSP_PASSWORD or
    /// --password-file; keeps it out of the URL, shell history and `ps`).
    #[arg(long, value_name = "NAME", help_heading = "Session")]
    pub user: Option<String>,
    /// Read the password for --user from the first line of FILE.
    #[arg(long, value_name = "FILE", requires = "user", help_heading = "Session")]
    pub password_file: Option<PathBuf>,
    /// Add a header field to every request (repeatable), e.g. --header 'Require: onvif-replay'.
    #[arg(long = "header", value_name = "'NAME: VALUE'", value_parser = parse_header, help_heading = "Session")]
    pub headers: Vec<(String, String)>,
    /// The User-Agent header (default: rtsp-toolkit/VERSION).
    #[arg(long, value_name = "TEXT", help_heading = "Session")]
    pub user_agent: Option<String>,
    /// Seconds to wait for the connection, each response, and media while playing.
    #[arg(long, value_name = "SECS", default_value = "4", value_parser = parse_secs, help_heading = "Session")]
    pub timeout: Duration,
    /// Connect to HOST:PORT instead of the URL's host, keeping the URL in requests
    /// (a relay, tunnel or forwarded port).
    #[arg(long, value_name = "HOST:PORT", help_heading = "Session")]
    pub forward: Option<String>,
    /// Send FILE.wav (any rate, mono or stereo; converted to the track's codec: PCMU/PCMA,
    /// G.722, or AAC when built with the `decode` feature) to the camera on
    /// the ONVIF audio backchannel, in real time from PLAY: asks with `Require:
    /// www.onvif.org/ver20/backchannel` and sets up the server's a=sendonly audio track.
    /// Without --duration or --frames, the probe stops once the file is sent.
    #[arg(long, value_name = "FILE.wav", help_heading = "Session")]
    pub backchannel: Option<PathBuf>,
    /// Label for this session in log lines and JSON (`session_id`).
    #[arg(long, value_name = "ID", help_heading = "Session")]
    pub session_id: Option<String>,
    /// Prefix for this session's output lines (`prefix` in JSON).
    #[arg(long, value_name = "TEXT", help_heading = "Session")]
    pub log_prefix: Option<String>,

    /// How RTP travels: tcp (interleaved on the RTSP connection), udp, multicast,
    /// auto (UDP, then TCP when the server refuses UDP or no RTP arrives), or http
    /// (interleaved through an RTSP-over-HTTP tunnel to the URL's port; HTTPS for rtsps://).
    #[arg(long, value_name = "KIND", default_value = "tcp", value_parser = parse_transport, help_heading = "Transport")]
    pub transport: TransportArg,
    /// Local UDP ports for RTP/RTCP (an even/odd pair per track); default: any free pair.
    #[arg(long, value_name = "FIRST-LAST", value_parser = parse_ports, help_heading = "Transport")]
    pub udp_ports: Option<PortRange>,
    /// Longest a UDP packet waits for the ones before it, in milliseconds (0: no reordering).
    #[arg(long, value_name = "MS", default_value_t = 100, help_heading = "Transport")]
    pub reorder_window: u64,
    /// Most UDP packets held for reordering per track.
    #[arg(long, value_name = "N", default_value_t = 256,
          value_parser = clap::value_parser!(u64).range(1..=32768), help_heading = "Transport")]
    pub reorder_packets: u64,
    /// With --transport auto: seconds without RTP after PLAY before falling back to TCP.
    #[arg(long, value_name = "SECS", default_value = "3", value_parser = parse_secs, help_heading = "Transport")]
    pub udp_fallback_after: Duration,
    /// Send no RTCP receiver reports (and no BYE at the end).
    #[arg(long, help_heading = "Transport")]
    pub no_rtcp_reports: bool,

    /// rtsps://: trust the CA certificates of this PEM file instead of the system's roots.
    #[arg(long, value_name = "PEM", help_heading = "TLS (rtsps://)")]
    pub ca_file: Option<PathBuf>,
    /// rtsps://: accept exactly the server certificate with this SHA-256 fingerprint
    /// (64 hex digits, colons allowed), whoever signed it.
    #[arg(long, value_name = "HEX", value_parser = parse_fingerprint, help_heading = "TLS (rtsps://)")]
    pub tls_fingerprint: Option<String>,
    /// rtsps://: accept any server certificate (self-signed cameras): encrypted, but not
    /// authenticated; a warning is logged.
    #[arg(long, help_heading = "TLS (rtsps://)", conflicts_with_all = ["tls_fingerprint", "ca_file"])]
    pub insecure: bool,

    /// Ask the server to start at SECS into the presentation (PLAY `Range: npt=SECS-`); servers
    /// start at a keyframe at or before it, as the PLAY line's Range says.
    #[arg(long, value_name = "SECS", value_parser = parse_npt, help_heading = "Session")]
    pub start: Option<Duration>,
    /// Ask the server to end the media at SECS into the presentation (`Range: npt=START-SECS`).
    #[arg(long, value_name = "SECS", value_parser = parse_npt, help_heading = "Session")]
    pub end: Option<Duration>,
    /// Ask for the media S times as fast (PLAY `Scale: S`; servers may refuse it).
    #[arg(long, value_name = "S", value_parser = parse_scale, help_heading = "Session")]
    pub scale: Option<f64>,

    /// Stop after SECS seconds of playing (counted from the PLAY response).
    #[arg(long, value_name = "SECS", value_parser = parse_secs, help_heading = "Stop")]
    pub duration: Option<Duration>,
    /// Stop after N video frames (audio frames when there is no video).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..), help_heading = "Stop")]
    pub frames: Option<u64>,

    /// Write the video as a raw Annex B stream (plays in ffplay), from the first keyframe.
    #[arg(long, value_name = "FILE", conflicts_with = "no_video", help_heading = "Save")]
    pub save_video: Option<PathBuf>,
    /// Write the audio decoded to PCM s16le as a WAV file.
    #[arg(long, value_name = "FILE.wav", conflicts_with = "no_audio", help_heading = "Save")]
    pub save_audio: Option<PathBuf>,
    /// Resample the saved audio to HZ (default: keep the source rate).
    #[arg(long, value_name = "HZ", requires = "save_audio",
          value_parser = clap::value_parser!(u32).range(1000..=384_000), help_heading = "Save")]
    pub audio_rate: Option<u32>,
    /// Write every ONVIF metadata document as a line `<seconds> <xml>` (seconds from the
    /// first document, line breaks in a document replaced by spaces): the sidecar format that
    /// `serve` reads (docs/CLI.md). Sets up the first metadata track, as --metadata does.
    #[arg(long, value_name = "FILE", help_heading = "Save")]
    pub save_metadata: Option<PathBuf>,
    /// Record every received video and audio track (stream copy) into a fragmented MP4 (.mp4)
    /// or Matroska (.mkv) file; a recording cut short plays up to its last fragment.
    #[arg(long, value_name = "FILE.mp4|FILE.mkv", help_heading = "Save")]
    pub record: Option<PathBuf>,
    /// Decode the video and write its first picture (from the first keyframe) as a PNG
    /// (needs a build with `--features decode`).
    #[arg(long, value_name = "FILE.png", conflicts_with = "no_video", help_heading = "Save")]
    pub save_first_frame: Option<PathBuf>,
    /// Decode every video frame; the report adds decoded pictures, resolution and decode errors
    /// (needs a build with `--features decode`).
    #[arg(long, conflicts_with = "no_video", help_heading = "Save")]
    pub decode: bool,
    /// Record the session (what was received, and when) to FILE, for `rtsp-toolkit replay FILE`.
    #[arg(long, value_name = "FILE", help_heading = "Save")]
    pub capture: Option<PathBuf>,

    /// Also set up the first ONVIF metadata track (`vnd.onvif.metadata`); each document
    /// gets a line (size, root element, first event topic).
    #[arg(long, help_heading = "Output")]
    pub metadata: bool,
    /// One JSON object per line per event on stdout, then a report object (schema: docs/CLI.md).
    #[arg(long, help_heading = "Output")]
    pub json: bool,
    /// Text: only the report and errors, no event lines.
    #[arg(short, long, help_heading = "Output", conflicts_with = "json")]
    pub quiet: bool,
    /// Text: also print a line per RTP and RTCP packet.
    #[arg(long, help_heading = "Output")]
    pub rtp: bool,
    /// Text: also print the SDP and/or every request's and response's header fields
    /// (`sdp`, `headers`, or `sdp,headers`; `-v` shows both). Credentials are masked.
    #[arg(long, value_name = "WHAT", value_delimiter = ',', value_parser = ["sdp", "headers"], help_heading = "Output")]
    pub show: Vec<String>,
    /// Set from the global -v: show the SDP and the headers.
    #[arg(skip)]
    pub verbose: bool,
    /// Text: print the first N frames of each track, then a summary line per second.
    #[arg(long, value_name = "N", default_value_t = 5, help_heading = "Output")]
    pub frame_lines: u64,
}

/// `--transport`: how RTP travels ([`Transport`]), or `http`: interleaved
/// through an RTSP-over-HTTP tunnel ([`Tunnel::Http`]; over TLS for `rtsps://`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransportArg {
    /// The RTP transport asked for in SETUP.
    pub transport: Transport,
    /// Whether the connection goes through an HTTP tunnel.
    pub tunnel: Tunnel,
}

impl TransportArg {
    /// The name on the command line and in JSON (`tcp`, `udp`, `multicast`, `auto`, `http`).
    pub fn as_str(self) -> &'static str {
        if self.tunnel == Tunnel::Http {
            "http"
        } else {
            self.transport.as_str()
        }
    }
}

impl std::fmt::Display for TransportArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

pub(crate) fn parse_transport(s: &str) -> Result<TransportArg, String> {
    if s.eq_ignore_ascii_case("http") {
        return Ok(TransportArg {
            transport: Transport::Tcp,
            tunnel: Tunnel::Http,
        });
    }
    let transport = s
        .parse::<Transport>()
        .map_err(|_| format!("unknown transport {s:?} (expected tcp, udp, multicast, auto or http)"))?;
    Ok(TransportArg {
        transport,
        tunnel: Tunnel::None,
    })
}

/// A SHA-256 fingerprint, checked here so that a typo is a usage error.
fn parse_fingerprint(s: &str) -> Result<String, String> {
    rtsp_toolkit_tokio::core::tls::parse_fingerprint(s)?;
    Ok(s.to_owned())
}

fn parse_tracks(s: &str) -> Result<TrackSelection, String> {
    s.parse()
}

/// `Name: value` (the value may be empty; no line breaks).
fn parse_header(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?} is not a header field (expected 'Name: value')"))?;
    let name = name.trim();
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{name:?} is not a header name"));
    }
    if value.chars().any(|c| c == '\r' || c == '\n') {
        return Err("a header value cannot contain a line break".to_owned());
    }
    Ok((name.to_owned(), value.trim().to_owned()))
}

/// The password for `--user`: `--password-file`'s first line, else
/// `RTSP_PASSWORD`. Neither is an error (an empty password must be explicit).
fn password(opts: &ProbeOptions) -> Result<String, String> {
    if let Some(path) = &opts.password_file {
        let text = std::fs::read_to_string(path).map_err(|e| format!("--password-file {}: {e}", path.display()))?;
        return Ok(text.lines().next().unwrap_or("").to_owned());
    }
    match std::env::var("RTSP_PASSWORD") {
        Ok(p) => Ok(p),
        Err(std::env::VarError::NotUnicode(_)) => Err("RTSP_PASSWORD is not valid UTF-8".to_owned()),
        Err(std::env::VarError::NotPresent) => {
            Err("--user needs a password: set RTSP_PASSWORD (it may be empty) or give --password-file FILE".to_owned())
        }
    }
}

/// The client options a probe's flags ask for (shared with `check` and `capture`).
pub fn client_options(opts: &ProbeOptions) -> Result<ClientOptions, String> {
    let mut o = ClientOptions::default()
        .with_video(!opts.no_video)
        .with_audio(!opts.no_audio)
        .with_metadata(opts.metadata || opts.save_metadata.is_some())
        .with_timeout(opts.timeout)
        .with_log_prefix(opts.log_prefix.clone().unwrap_or_default())
        .with_log(LogKinds::RTSP)
        .with_transport(opts.transport.transport)
        .with_tunnel(opts.transport.tunnel)
        .with_reorder_window(Duration::from_millis(opts.reorder_window))
        .with_reorder_packets(opts.reorder_packets as usize)
        .with_udp_fallback_after(opts.udp_fallback_after)
        .with_rtcp_reports(!opts.no_rtcp_reports);
    o.forward_address = opts.forward.clone();
    o.session_id = opts.session_id.clone();
    o.udp_ports = opts.udp_ports;
    o.ca_file = opts.ca_file.clone();
    o.tls_fingerprint = opts.tls_fingerprint.clone();
    o.insecure = opts.insecure;
    if let (Some(start), Some(end)) = (opts.start, opts.end) {
        if end <= start {
            return Err(format!(
                "--end ({}) must be after --start ({})",
                end.as_secs_f64(),
                start.as_secs_f64()
            ));
        }
    }
    o = o.with_range(opts.start, opts.end).with_scale(opts.scale);
    if let Some(t) = &opts.tracks {
        o.tracks = t.clone();
    }
    if let Some(user) = &opts.user {
        o = o.with_credentials(user.clone(), password(opts)?);
    }
    for (name, value) in &opts.headers {
        o = o.with_header(name.clone(), value.clone());
    }
    if let Some(ua) = &opts.user_agent {
        o.user_agent = ua.clone();
    }
    if let Some(path) = &opts.backchannel {
        o = o.with_backchannel(backchannel_audio(path)?);
    }
    Ok(o)
}

/// The audio of `path` (a WAV file) for the backchannel: its 16-bit PCM at
/// the file's rate (as the server reads a WAV for `?codec=l16`), queued,
/// closed. The session converts it to the backchannel codec's rate (and
/// encodes AAC with FFmpeg, given here with the `decode` feature).
fn backchannel_audio(path: &std::path::Path) -> Result<BackchannelAudio, String> {
    use rtsp_toolkit_media::{FileKind, SourceCodec, WavEncoding};
    let bad = |e: &dyn std::fmt::Display| format!("--backchannel {}: {e}", path.display());
    let data = std::fs::read(path).map_err(|e| bad(&e))?;
    let source =
        rtsp_toolkit_media::from_bytes_with(data.into(), FileKind::Wav, WavEncoding::L16).map_err(|e| bad(&e))?;
    let (rate, channels) = match source.tracks.first() {
        Some(t) => match t.codec {
            SourceCodec::L16 { channels } => (t.clock_rate, channels),
            _ => return Err(bad(&"not 16-bit PCM")),
        },
        None => return Err(bad(&"no audio")),
    };
    // L16 samples are big-endian.
    let pcm: Vec<i16> = source
        .samples
        .iter()
        .flat_map(|s| s.data.chunks_exact(2).map(|b| i16::from_be_bytes([b[0], b[1]])))
        .collect();
    let audio = BackchannelAudio::new();
    audio.push_pcm(&pcm, rate, channels).map_err(|e| bad(&e))?;
    audio.close();
    // An AAC backchannel needs an encoder: FFmpeg's, with the `decode` feature
    // (without it the session warns that it cannot send AAC).
    #[cfg(feature = "decode")]
    audio.set_aac_encoder(std::sync::Arc::new(rtsp_toolkit_media::audio::FfmpegAacEncoderFactory));
    Ok(audio)
}

fn parse_ports(s: &str) -> Result<PortRange, String> {
    s.parse()
}

/// A position in seconds, 0 allowed.
fn parse_npt(s: &str) -> Result<Duration, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(v.is_finite() && (0.0..1e9).contains(&v)) {
        return Err(format!("{s} must be a number of seconds from 0"));
    }
    Ok(Duration::from_secs_f64(v))
}

/// A `Scale`: finite, not 0.
fn parse_scale(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v != 0.0 => Ok(v),
        _ => Err(format!(
            "{s:?} is not a scale (a number other than 0, such as 2 or 0.5)"
        )),
    }
}

pub(crate) fn parse_secs(s: &str) -> Result<Duration, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(v.is_finite() && v > 0.0 && v < 1e9) {
        return Err(format!("{s} must be a positive number of seconds"));
    }
    Ok(Duration::from_secs_f64(v))
}

/// Why the probe asked the session to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopReason {
    Frames,
    Duration,
    Interrupt,
    OutputClosed,
    /// A replayed capture: the recorded session was asked to stop here
    /// (the capture holds the request, not its reason).
    Recorded,
    /// `--backchannel`: the whole file was sent (and neither `--duration`
    /// nor `--frames` was given).
    BackchannelSent,
}

impl StopReason {
    fn name(self) -> &'static str {
        match self {
            StopReason::Frames => "frames",
            StopReason::Duration => "duration",
            StopReason::Interrupt => "interrupt",
            StopReason::OutputClosed => "output_closed",
            StopReason::Recorded => "recorded",
            StopReason::BackchannelSent => "backchannel_sent",
        }
    }
}

/// How often the status line may be redrawn, and the tick of the loop.
const TICK: Duration = Duration::from_millis(250);

/// Where lines go: stdout for events and the report, stderr for errors and
/// the live status line (only on a terminal, only in text mode).
struct Out {
    json: bool,
    quiet: bool,
    prefix: String,
    ctx: Context,
    stdout: io::BufWriter<io::Stdout>,
    broken: bool,
    status: bool,
    status_shown: bool,
}

impl Out {
    /// An event line (text or JSON).
    fn line(&mut self, line: &str) {
        if self.broken {
            return;
        }
        self.clear_status();
        let r = if self.prefix.is_empty() || self.json {
            writeln!(self.stdout, "{line}")
        } else {
            writeln!(self.stdout, "{}{line}", self.prefix)
        };
        if r.is_err() {
            self.broken = true;
        }
    }

    /// A text line (nothing in JSON or quiet mode).
    fn text(&mut self, line: &str) {
        if !self.json && !self.quiet {
            self.line(line);
        }
    }

    fn flush(&mut self) {
        if !self.broken && self.stdout.flush().is_err() {
            self.broken = true;
        }
    }

    fn clear_status(&mut self) {
        if self.status_shown {
            // The status line lives on stderr; stdout may be the same terminal.
            let _ = write!(io::stderr(), "\r\x1b[2K");
            self.status_shown = false;
        }
    }

    fn draw_status(&mut self, line: &str) {
        if !self.status {
            return;
        }
        self.flush();
        let _ = write!(io::stderr(), "\r\x1b[2K{line}");
        let _ = io::stderr().flush();
        self.status_shown = true;
    }

    /// `error: ...` on stderr, one line.
    fn error(&mut self, message: &str) {
        self.flush();
        self.clear_status();
        let p = self.prefix.trim_end();
        if p.is_empty() {
            eprintln!("error: {message}");
        } else {
            eprintln!("error: {p} {message}");
        }
    }

    fn note(&mut self, message: &str) {
        if self.json {
            return;
        }
        self.flush();
        self.clear_status();
        eprintln!("{}{message}", self.prefix);
    }
}

/// Frame lines printed so far per track, and the per-second summary state.
struct Live {
    printed: Vec<u64>,
    numbers: Vec<u64>,
    summarising: bool,
    last_summary: (Instant, Vec<Totals>),
    window: VecDeque<(Instant, Vec<Totals>)>,
}

/// One probe's state between events.
pub(crate) struct Probe<'a> {
    opts: &'a ProbeOptions,
    out: Out,
    start: Instant,
    stats: Stats,
    live: Live,
    /// The URL as the events give it (no credentials), for the report.
    url: String,
    url_from_events: bool,
    stop_reason: Option<StopReason>,
    /// When `--duration` runs out (set at the PLAY response).
    deadline: Option<tokio::time::Instant>,
    closed_error: Option<Error>,
    byes_on_all: bool,
    unsupported: Vec<String>,
    sdp_media: Vec<Media>,
    video_sink: Option<Sinks<VideoSink>>,
    audio_sink: Option<Sinks<AudioSink>>,
    /// `--save-metadata`: the documents of every metadata track, in arrival order.
    metadata_sink: Option<MetadataSink>,
    /// `--backchannel`: the audio being sent, to stop once it is all out.
    backchannel: Option<BackchannelAudio>,
    recorder: Option<crate::record::RecordSink>,
    #[cfg(feature = "decode")]
    decoder: Option<crate::decode::FrameDecoder>,
    write_error: Option<String>,
}

/// Runs a probe of `url` to its end and returns the exit code.
pub async fn run(url: &str, opts: &ProbeOptions) -> u8 {
    if opts.insecure {
        // The library logs it too, at a level the CLI shows only with -v.
        eprintln!("warning: --insecure: the server's TLS certificate is not checked (encrypted, not authenticated)");
    }
    drive(url, opts, None).await
}

/// Runs a probe of `url` to its end and returns the exit code: a live
/// session, or with `replay`, the events of a recorded one (`replay.rs`),
/// through the same event handling and report.
pub(crate) async fn drive(url: &str, opts: &ProbeOptions, replay: Option<&Capture>) -> u8 {
    let prefix = match (&opts.log_prefix, &opts.session_id) {
        (Some(p), Some(id)) => format!("[{p} {id}] "),
        (Some(p), None) => format!("[{p}] "),
        (None, Some(id)) => format!("[{id}] "),
        (None, None) => String::new(),
    };
    let mut out = Out {
        json: opts.json,
        quiet: opts.quiet,
        prefix,
        ctx: Context {
            session_id: opts.session_id.clone(),
            prefix: opts.log_prefix.clone(),
        },
        stdout: io::BufWriter::new(io::stdout()),
        broken: false,
        status: !opts.json && io::stderr().is_terminal(),
        status_shown: false,
    };
    // Files are created before connecting, so that a bad path is a usage error.
    let video_sink = match opts
        .save_video
        .as_deref()
        .map(|p| VideoSink::create(p).map(|s| Sinks::new(p, s)))
        .transpose()
    {
        Ok(s) => s,
        Err(e) => {
            out.error(&format!("--save-video: {e}"));
            return EXIT_USAGE;
        }
    };
    let audio_sink = match opts
        .save_audio
        .as_deref()
        .map(|p| AudioSink::create(p, opts.audio_rate).map(|s| Sinks::new(p, s)))
        .transpose()
    {
        Ok(s) => s,
        Err(e) => {
            out.error(&format!("--save-audio: {e}"));
            return EXIT_USAGE;
        }
    };
    let metadata_sink = match opts.save_metadata.as_deref().map(MetadataSink::create).transpose() {
        Ok(s) => s,
        Err(e) => {
            out.error(&format!("--save-metadata: {e}"));
            return EXIT_USAGE;
        }
    };
    let recorder = match opts
        .record
        .as_deref()
        .map(crate::record::RecordSink::create)
        .transpose()
    {
        Ok(r) => r,
        Err(e) => {
            out.error(&format!("--record: {e}"));
            return EXIT_USAGE;
        }
    };
    #[cfg(feature = "decode")]
    let decoder = if opts.decode || opts.save_first_frame.is_some() {
        match crate::decode::FrameDecoder::new(opts.decode, opts.save_first_frame.as_deref()) {
            Ok(d) => Some(d),
            Err(e) => {
                out.error(&format!("--save-first-frame: {e}"));
                return EXIT_USAGE;
            }
        }
    } else {
        None
    };
    #[cfg(not(feature = "decode"))]
    if opts.decode || opts.save_first_frame.is_some() {
        let flag = if opts.decode { "--decode" } else { "--save-first-frame" };
        out.error(&format!(
            "{flag}: this build has no video decoding; build with `--features decode` \
             (needs FFmpeg's development packages, see docs/CLI.md)"
        ));
        return EXIT_USAGE;
    }
    let options = match client_options(opts) {
        Ok(o) => o,
        Err(e) => {
            out.error(&e);
            return EXIT_USAGE;
        }
    };
    // Written by the runtime as it drives the session (`capture`, `probe --capture`).
    let mut options = options;
    options.capture = opts.capture.clone();
    let start = Instant::now();
    let mut p = Probe {
        opts,
        out,
        start,
        stats: Stats::new(),
        live: Live {
            printed: Vec::new(),
            numbers: Vec::new(),
            summarising: false,
            last_summary: (start, Vec::new()),
            window: VecDeque::new(),
        },
        url: redact(url),
        url_from_events: false,
        stop_reason: None,
        deadline: None,
        closed_error: None,
        byes_on_all: false,
        unsupported: Vec::new(),
        sdp_media: Vec::new(),
        video_sink,
        audio_sink,
        metadata_sink,
        backchannel: options.backchannel.clone(),
        recorder,
        #[cfg(feature = "decode")]
        decoder,
        write_error: None,
    };
    if let Some(capture) = replay {
        return replay_events(p, capture, options);
    }
    let mut session = match Session::open(url, options) {
        Ok(s) => s,
        Err(e) => {
            p.out.error(&match e {
                Error::Config(m) => m,
                other => other.to_string(),
            });
            return EXIT_USAGE;
        }
    };

    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut ctrl_c = Box::pin(crate::serve::wait_for_signal());
    let mut interrupts = 0u32;
    loop {
        let stopping = p.stop_reason.is_some();
        tokio::select! {
            event = session.next_event() => {
                let Some(event) = event else { break };
                p.on_event(&event);
                if p.stop_reason.is_some() && !stopping {
                    session.stop();
                }
            }
            _ = tick.tick() => {
                p.on_tick();
                if p.stop_reason.is_some() && !stopping {
                    session.stop();
                }
            }
            _ = &mut ctrl_c => {
                interrupts += 1;
                if interrupts >= 2 {
                    p.out.note("interrupted again: aborting without waiting for TEARDOWN");
                    return EXIT_INTERRUPTED;
                }
                ctrl_c = Box::pin(crate::serve::wait_for_signal());
                if !stopping {
                    p.stop_reason = Some(StopReason::Interrupt);
                    session.stop();
                }
                p.out.note("stopping (TEARDOWN); Ctrl-C again to abort");
            }
            _ = sleep_until(p.deadline), if p.deadline.is_some() && !stopping => {
                p.stop_reason = Some(StopReason::Duration);
                session.stop();
            }
        }
    }
    p.finish()
}

impl Probe<'_> {
    pub(crate) fn on_event(&mut self, event: &Event) {
        let media = matches!(
            event,
            Event::Rtp(_) | Event::Rtcp(_) | Event::Video(_) | Event::Audio(_) | Event::Metadata(_) | Event::Loss(_)
        );
        if media && self.stop_reason.is_some() {
            // Asked to stop: what is still in flight is not counted.
            return;
        }
        self.stats.observe(event);
        if let Some(r) = self.recorder.as_mut() {
            match r.event(event) {
                Ok(notes) => notes.iter().for_each(|n| self.out.note(&format!("warning: {n}"))),
                Err(e) => self.write_error = Some(e),
            }
        }
        if self.opts.json {
            if let Some(line) = json::event_line(&self.out.ctx, event) {
                self.out.line(&line);
            }
        }
        match event {
            Event::Connect(c) => self.out.text(&text::connect(c)),
            Event::Method(m) => {
                self.out.text(&text::method(m));
                if self.show("headers") {
                    for l in text::headers(m) {
                        self.out.text(&l);
                    }
                }
                if self.show("sdp") {
                    for l in text::body(m) {
                        self.out.text(&l);
                    }
                }
                if !self.url_from_events {
                    self.url = m.url.clone();
                    self.url_from_events = true;
                }
                if let Some(sdp) = &m.sdp {
                    self.sdp_media = sdp.media.clone();
                }
                #[cfg(feature = "decode")]
                if let (Some(d), Some(t)) = (self.decoder.as_mut(), &m.track) {
                    if let Some(media) = self.sdp_media.get(t.media_index) {
                        d.setup(t, media);
                    }
                }
                if let (Some(sinks), Some(t)) = (self.video_sink.as_mut(), &m.track) {
                    if t.kind == MediaKind::Video {
                        if let Err(e) = sinks.add(t.index, VideoSink::create) {
                            self.write_error = Some(format!("--save-video for track {}: {e}", t.index));
                        }
                    }
                }
                if let (Some(sinks), Some(t)) = (self.audio_sink.as_mut(), &m.track) {
                    if let Some(media) = self.sdp_media.get(t.media_index).filter(|_| t.kind == MediaKind::Audio) {
                        let rate = self.opts.audio_rate;
                        match sinks.add(t.index, |p| AudioSink::create(p, rate)) {
                            Ok(sink) => {
                                if let Err(e) = sink.track(t.index, media) {
                                    let note = format!(
                                        "warning: track {} ({}) cannot be decoded for --save-audio: {e}",
                                        t.index, t.codec
                                    );
                                    self.out.note(&note);
                                }
                            }
                            Err(e) => self.write_error = Some(format!("--save-audio for track {}: {e}", t.index)),
                        }
                    }
                }
                if let (Some(sink), Some(t)) = (self.metadata_sink.as_mut(), &m.track) {
                    sink.track(t.index, t.clock_rate);
                }
                if m.method.as_str() == "PLAY" && m.is_success() {
                    if let Some(d) = self.opts.duration {
                        self.deadline = Some(tokio::time::Instant::now() + d);
                    }
                    self.live.last_summary = (Instant::now(), self.stats.totals());
                }
                self.out.flush();
            }
            Event::Rtp(r) if self.opts.rtp => self.out.text(&text::rtp(r)),
            Event::Rtcp(r) if self.opts.rtp => self.out.text(&text::rtcp(r)),
            Event::RtcpSent(r) if self.opts.rtp => self.out.text(&text::rtcp_sent(r)),
            Event::Fallback(f) => self.out.text(&text::fallback(f)),
            Event::Video(v) => {
                let n = bump(&mut self.live.numbers, v.track);
                if bump_if(&mut self.live.printed, v.track, self.opts.frame_lines) {
                    self.out.text(&text::video(v, n));
                } else {
                    self.live.summarising = true;
                }
                if let Some(sink) = self.video_sink.as_mut().and_then(|s| s.get(v.track)) {
                    if let Err(e) = sink.frame(v) {
                        self.write_error = Some(format!("writing {}: {e}", sink.path().display()));
                    }
                }
                #[cfg(feature = "decode")]
                if let Some(d) = self.decoder.as_mut() {
                    if let Err(e) = d.frame(v) {
                        self.write_error = Some(e);
                    }
                }
                self.check_frames(v.track);
            }
            Event::Audio(a) => {
                let n = bump(&mut self.live.numbers, a.track);
                if bump_if(&mut self.live.printed, a.track, self.opts.frame_lines) {
                    self.out.text(&text::audio(a, n));
                } else {
                    self.live.summarising = true;
                }
                if let Some(sink) = self.audio_sink.as_mut().and_then(|s| s.get(a.track)) {
                    if let Err(e) = sink.frame(a) {
                        self.write_error = Some(format!("writing {}: {e}", sink.path().display()));
                    }
                }
                if !self.stats.has_video() {
                    self.check_frames(a.track);
                }
            }
            Event::Metadata(m) => {
                // One line per document: documents are few, and each is news.
                let n = bump(&mut self.live.numbers, m.track);
                self.out.text(&text::metadata(m, n));
                if let Some(sink) = self.metadata_sink.as_mut() {
                    if let Err(e) = sink.document(m) {
                        self.write_error = Some(format!("writing {}: {e}", sink.path().display()));
                    }
                }
            }
            Event::Loss(l) => self.out.text(&text::loss(l)),
            Event::Warning(w) => {
                if let Warning::UnsupportedCodec { track, codec } = w {
                    self.unsupported
                        .push(format!("track {track}: unsupported codec {codec}"));
                }
                self.out.text(&text::warning(self.start.elapsed(), w));
            }
            Event::Closed(c) => {
                self.closed_error = c.error.clone();
                self.byes_on_all =
                    self.stats.play_at().is_some() && self.stats.report().tracks.iter().all(|t| t.byes > 0);
                let how = match &c.error {
                    Some(e) => format!("error: {e}"),
                    None => self.ended_how(),
                };
                self.out.text(&text::line(c.session_elapsed, "closed", &how));
                self.out.flush();
            }
            _ => {}
        }
        if (self.write_error.is_some() || self.out.broken) && self.stop_reason.is_none() {
            self.stop_reason = Some(StopReason::OutputClosed);
        }
    }

    /// Whether `--show` (or `-v`) asks for `what` (`sdp`, `headers`).
    fn show(&self, what: &str) -> bool {
        self.opts.verbose || self.opts.show.iter().any(|w| w == what)
    }

    /// Stops at `--frames N` frames of `track`.
    fn check_frames(&mut self, track: usize) {
        let Some(limit) = self.opts.frames else { return };
        if self.stats.totals().get(track).is_some_and(|t| t.frames >= limit) {
            self.stop_reason.get_or_insert(StopReason::Frames);
        }
    }

    /// How a session without error ended, in words.
    fn ended_how(&self) -> String {
        match self.stop_reason {
            Some(r) => format!("stopped ({})", stop_label(r, self.opts)),
            None if self.byes_on_all => "the server ended the stream (RTCP BYE)".to_owned(),
            None => "ended".to_owned(),
        }
    }

    /// Every 250 ms: the per-second summary line and the status line.
    fn on_tick(&mut self) {
        if self.backchannel.as_ref().is_some_and(BackchannelAudio::is_done)
            && self.opts.duration.is_none()
            && self.opts.frames.is_none()
        {
            self.stop_reason.get_or_insert(StopReason::BackchannelSent);
        }
        let now = Instant::now();
        let totals = self.stats.totals();
        self.live.window.push_back((now, totals.clone()));
        while self.live.window.len() > 1 && now - self.live.window[0].0 > Duration::from_millis(1100) {
            self.live.window.pop_front();
        }
        let since = now - self.live.last_summary.0;
        if self.stats.play_at().is_some() && self.stop_reason.is_none() && since >= Duration::from_millis(950) {
            if self.live.summarising {
                let secs = since.as_secs_f64();
                let parts: Vec<String> = self
                    .stats
                    .tracks()
                    .zip(totals.iter().enumerate())
                    .map(|((_, kind, _), (i, t))| {
                        let before = self.live.last_summary.1.get(i).copied().unwrap_or_default();
                        text::activity(kind, t, &before, secs)
                    })
                    .collect();
                self.out
                    .text(&text::line(self.start.elapsed(), "summary", &parts.join(" | ")));
            }
            self.live.last_summary = (now, totals.clone());
        }
        self.out.flush();
        if self.out.status {
            let line = status_line(
                &self.stats,
                &totals,
                &self.live,
                self.start.elapsed(),
                self.stop_reason.is_some(),
            );
            self.out.draw_status(&line);
        }
    }

    /// Replay: the recorded session was asked to stop here; media after
    /// this is not counted, as in the live probe after its stop.
    pub(crate) fn stop_recorded(&mut self) {
        self.stop_reason.get_or_insert(StopReason::Recorded);
    }

    /// A line on stderr (not in JSON mode).
    pub(crate) fn note(&mut self, message: &str) {
        self.out.note(message);
    }

    /// An `error: ...` line on stderr.
    pub(crate) fn error(&mut self, message: &str) {
        self.out.error(message);
    }

    /// Closes the files, prints the report and the error line; the exit code.
    pub(crate) fn finish(mut self) -> u8 {
        self.out.clear_status();
        for sink in self.video_sink.iter_mut().flat_map(Sinks::all) {
            if let Err(e) = sink.finish() {
                self.write_error
                    .get_or_insert(format!("writing {}: {e}", sink.path().display()));
            }
        }
        for sink in self.audio_sink.iter_mut().flat_map(Sinks::all) {
            if let Err(e) = sink.finish() {
                self.write_error
                    .get_or_insert(format!("writing {}: {e}", sink.path().display()));
            }
        }
        if let Some(sink) = self.metadata_sink.as_mut() {
            if let Err(e) = sink.finish() {
                self.write_error
                    .get_or_insert(format!("writing {}: {e}", sink.path().display()));
            }
        }
        if let Some(Err(e)) = self.recorder.as_mut().map(|r| r.finish()) {
            self.write_error.get_or_insert(e);
        }
        #[cfg(feature = "decode")]
        if let Some(d) = self.decoder.as_mut() {
            // Only after a session that played: a refused connection is its own error.
            if let Err(e) = d.finish() {
                if self.closed_error.is_none() || d.summary().pictures > 0 {
                    self.write_error.get_or_insert(e);
                }
            }
        }
        let decode = self.decode_summary();
        let report = self.stats.report();
        if self.opts.json {
            let stopped_by = self.stop_reason.map(StopReason::name);
            self.out.line(&json::report_line(
                &self.out.ctx,
                &self.url,
                stopped_by,
                &report,
                decode.as_ref(),
            ));
        } else if self.stats.play_at().is_some() {
            self.text_report(&report, decode.as_ref());
        }
        self.out.flush();

        if let Some(e) = &self.closed_error {
            self.out.error(&e.to_string());
            return EXIT_FAILURE;
        }
        if let Some(e) = self.write_error.take() {
            self.out.error(&e);
            return EXIT_FAILURE;
        }
        if !self.unsupported.is_empty() {
            let message = format!("{}: no frames, RTP statistics only", self.unsupported.join("; "));
            self.out.error(&message);
            return EXIT_UNSUPPORTED;
        }
        EXIT_OK
    }

    /// What `--decode` / `--save-first-frame` gave, for the report.
    fn decode_summary(&self) -> Option<DecodeSummary> {
        #[cfg(feature = "decode")]
        return self.decoder.as_ref().map(|d| d.summary().clone());
        #[cfg(not(feature = "decode"))]
        None
    }

    fn text_report(&mut self, report: &crate::report::Report, decode: Option<&DecodeSummary>) {
        let how = match &self.closed_error {
            Some(_) => "ended with an error".to_owned(),
            None => self.ended_how(),
        };
        if !self.out.quiet {
            self.out.line("");
        }
        for l in text::report(&self.url, &how, report).lines() {
            self.out.line(l);
        }
        let mut saved = Vec::new();
        for s in self.video_sink.iter_mut().flat_map(Sinks::all) {
            let mut m = format!(
                "video: {} frames, {} to {}",
                s.frames,
                text::bytes(s.bytes),
                s.path().display()
            );
            if s.skipped > 0 {
                m.push_str(&format!(" ({} frames before the first keyframe skipped)", s.skipped));
            }
            saved.push(m);
        }
        for s in self.audio_sink.iter_mut().flat_map(Sinks::all) {
            let secs = if s.sample_rate > 0 {
                s.samples as f64 / f64::from(s.sample_rate)
            } else {
                0.0
            };
            let mut m = format!(
                "audio: {secs:.3} s of PCM s16le, {} Hz, {} ch to {}",
                s.sample_rate,
                s.channels,
                s.path().display()
            );
            if s.errors > 0 {
                m.push_str(&format!(" ({} frames could not be decoded)", s.errors));
            }
            saved.push(m);
        }
        if let Some(r) = &self.recorder {
            saved.extend(r.saved_lines());
        }
        if let Some(path) = &self.opts.capture {
            let size = std::fs::metadata(path)
                .map(|m| text::bytes(m.len()))
                .unwrap_or_default();
            saved.push(format!(
                "capture: {size} to {} (rtsp-toolkit replay FILE)",
                path.display()
            ));
        }
        if let Some(d) = decode {
            if let Some(path) = &d.first_frame {
                let size = d.resolution.map(|(w, h)| format!("{w}x{h} ")).unwrap_or_default();
                saved.push(format!("first frame: {size}PNG to {}", path.display()));
            }
            if d.all_frames {
                self.out.line("");
                for l in d.text_lines() {
                    self.out.line(&l);
                }
            }
        }
        if !saved.is_empty() {
            self.out.line("");
            for (i, m) in saved.iter().enumerate() {
                self.out
                    .line(&format!("  {:<14}{m}", if i == 0 { "saved" } else { "" }));
            }
        }
    }
}

/// `replay`: drives a fresh client through the recorded inputs, handing its events to
/// `p`, then prints the report (`Probe::finish`); the exit code.
///
/// `options` are the probe's (logging, labels); the recorded settings
/// replace the rest. The instant standing for the session's start is any
/// instant: every event's durations are offsets from it.
fn replay_events(mut p: Probe<'_>, capture: &Capture, options: ClientOptions) -> u8 {
    let t0 = Instant::now();
    let options = capture.header.apply(options);
    let mut client = match Client::new(&capture.header.replay_url(), options, t0) {
        Ok(c) => c,
        Err(e) => {
            p.error(&format!("the recorded session cannot be replayed: {e}"));
            return EXIT_FAILURE;
        }
    };
    let mut done = drain(&mut client, &mut p);
    for record in &capture.records {
        if done {
            break;
        }
        if record.kind == RecordKind::Close {
            p.stop_recorded();
        }
        let Some(now) = t0.checked_add(record.offset) else {
            p.error("the capture has a record offset too large to replay");
            return EXIT_FAILURE;
        };
        client.handle_input(now, record.kind.as_input());
        done = drain(&mut client, &mut p);
    }
    if !done {
        p.note("note: the capture ends before the session did (the recording was cut short)");
    }
    p.finish()
}

/// Hands the ready events to the probe; whether the client is done.
fn drain(client: &mut Client, p: &mut Probe<'_>) -> bool {
    loop {
        match client.poll_output() {
            Output::Event(e) => p.on_event(&e),
            Output::Timeout(_) => return false,
            Output::Done => return true,
            // What the session sent or asked the runtime to do is not
            // replayed: the inputs that followed it are in the capture.
            _ => {}
        }
    }
}

/// Exit status after a second Ctrl-C (128 + SIGINT, as shells report it).
pub const EXIT_INTERRUPTED: u8 = 130;

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn stop_label(r: StopReason, opts: &ProbeOptions) -> String {
    match r {
        StopReason::Frames => format!("--frames {}", opts.frames.unwrap_or_default()),
        StopReason::Duration => format!(
            "--duration {}",
            opts.duration.map(|d| d.as_secs_f64()).unwrap_or_default()
        ),
        StopReason::Interrupt => "Ctrl-C".to_owned(),
        StopReason::OutputClosed => "output failed".to_owned(),
        StopReason::Recorded => "as recorded".to_owned(),
        StopReason::BackchannelSent => "--backchannel sent".to_owned(),
    }
}

/// The next frame number of `track` (1-based).
fn bump(counts: &mut Vec<u64>, track: usize) -> u64 {
    if counts.len() <= track {
        counts.resize(track + 1, 0);
    }
    counts[track] += 1;
    counts[track]
}

/// Counts a printed line for `track` if fewer than `limit` were printed.
fn bump_if(counts: &mut Vec<u64>, track: usize, limit: u64) -> bool {
    if counts.len() <= track {
        counts.resize(track + 1, 0);
    }
    if counts[track] < limit {
        counts[track] += 1;
        true
    } else {
        false
    }
}

fn status_line(stats: &Stats, totals: &[Totals], live: &Live, elapsed: Duration, stopping: bool) -> String {
    let mut s = format!("{:>7.1}s ", elapsed.as_secs_f64());
    if stopping {
        s.push_str(" stopping…");
        return s;
    }
    if stats.play_at().is_none() {
        s.push_str(" setting up…");
        return s;
    }
    let (t0, before) = live
        .window
        .front()
        .map(|(t, v)| (*t, v.as_slice()))
        .unwrap_or((Instant::now(), &[]));
    let secs = live.window.back().map(|(t, _)| (*t - t0).as_secs_f64()).unwrap_or(0.0);
    let mut lost = 0;
    for ((_, kind, _), (i, now)) in stats.tracks().zip(totals.iter().enumerate()) {
        let b = before.get(i).copied().unwrap_or_default();
        let rate = |x: u64| if secs > 0.0 { x as f64 / secs } else { 0.0 };
        let data = if now.frames > 0 {
            now.frame_bytes - b.frame_bytes
        } else {
            now.rtp_bytes - b.rtp_bytes
        };
        s.push_str(&format!(
            " │ {kind} {} fr {:.1}/s {}",
            now.frames,
            rate(now.frames - b.frames),
            text::bitrate(rate(data) * 8.0)
        ));
        lost += now.lost;
    }
    s.push_str(&format!(" │ lost {lost} │ Ctrl-C stops"));
    s
}

/// `rtsp://user:pw@host/x` → `rtsp://host/x`, for the report before any event
/// carried the clean URL.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_userinfo() {
        assert_eq!(redact("rtsp://u:p@h:554/a@b"), "rtsp://h:554/a@b");
        assert_eq!(redact("rtsp://u:p%40x@h/x"), "rtsp://h/x");
        assert_eq!(redact("rtsp://h/x"), "rtsp://h/x");
    }

    #[test]
    fn seconds() {
        assert_eq!(parse_secs("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_secs("0").is_err() && parse_secs("x").is_err() && parse_secs("-1").is_err());
    }
}
