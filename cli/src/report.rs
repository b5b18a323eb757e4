//! Session statistics for the probe report.
//!
//! [`Stats`] takes the session's events one by one and keeps counters;
//! [`Stats::report`] turns them into a [`Report`] of plain numbers. It is pure:
//! no I/O and no clock reads (every time is the event's own `Instant`-based
//! duration), so it is tested with synthetic events. It is not an output
//! format: `text.rs` and `json.rs` render a [`Report`].
//!
//! What the numbers mean:
//! - **jitter**: RFC 3550 §6.4.1 interarrival jitter of every RTP packet of a
//!   track, from its receive tick against its RTP timestamp at the track's
//!   clock rate, in seconds (`J += (|D| - J) / 16`).
//! - **frame rate**: from the frames' RTP timestamps (media time), not from
//!   when they arrived: `(frames - 1) / (max ts - min ts)`. B-frames reorder
//!   timestamps but not their span.
//! - **bitrate**: frame payload bytes over media time (the timestamp span
//!   plus one frame).
//! - **keyframe interval**: frames and seconds (timestamp difference) from
//!   one keyframe to the next.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Serialize, Serializer};

use rtsp_toolkit_tokio::core::duration_secs;
use rtsp_toolkit_tokio::core::rtcp::RtcpPacket;
use rtsp_toolkit_tokio::core::sdp::MediaKind;
use rtsp_toolkit_tokio::{AudioCodec, Event, Track, TransportKind, VideoCodec, Warning};

/// Counters for one session, fed with [`Stats::observe`].
#[derive(Debug, Default)]
pub struct Stats {
    connect: Option<ConnectInfo>,
    methods: Vec<MethodStats>,
    tracks: Vec<TrackStats>,
    play_at: Option<Duration>,
    closed: Option<(Duration, Option<String>)>,
    warnings: u64,
    fallback: Option<String>,
}

/// The connection attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectInfo {
    pub target: String,
    pub elapsed: Duration,
    /// Local and peer address, or the error.
    pub result: Result<(SocketAddr, SocketAddr), String>,
}

impl Serialize for ConnectInfo {
    /// As the `connect` event: `{target, elapsed_s, local, peer, error}`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Repr<'a> {
            target: &'a str,
            #[serde(with = "duration_secs")]
            elapsed_s: Duration,
            local: Option<SocketAddr>,
            peer: Option<SocketAddr>,
            error: Option<&'a str>,
        }
        let (local, peer, error) = match &self.result {
            Ok((local, peer)) => (Some(*local), Some(*peer), None),
            Err(e) => (None, None, Some(e.as_str())),
        };
        Repr {
            target: &self.target,
            elapsed_s: self.elapsed,
            local,
            peer,
            error,
        }
        .serialize(s)
    }
}

#[derive(Debug)]
struct MethodStats {
    method: String,
    count: u64,
    statuses: Vec<u16>,
    min: Duration,
    max: Duration,
    total: Duration,
}

#[derive(Debug)]
struct TrackStats {
    index: usize,
    kind: String,
    codec: String,
    clock_rate: u32,
    channels: Option<u16>,
    unsupported: Option<String>,
    rtp_packets: u64,
    rtp_payload_bytes: u64,
    lost: u64,
    jitter: Jitter,
    rtp_span: TimestampSpan,
    sender_reports: u64,
    byes: u64,
    receiver_reports_sent: u64,
    transport: String,
    frames: FrameStats,
}

/// How a track's RTP travelled, for the report: `tcp (channels 0-1)`,
/// `udp (ports 50000-50001 <- 127.0.0.1:6970-6971)`, `multicast (239.1.2.3:5000-5001)`.
pub fn transport_label(t: &TransportKind) -> String {
    match t {
        TransportKind::TcpInterleaved {
            rtp_channel,
            rtcp_channel,
        } => format!("tcp (channels {rtp_channel}-{rtcp_channel})"),
        TransportKind::Udp {
            client_ports,
            server_ports,
            source,
            ..
        } => match server_ports {
            Some((a, b)) => format!("udp (ports {}-{} <- {source}:{a}-{b})", client_ports.0, client_ports.1),
            None => format!("udp (ports {}-{} <- {source})", client_ports.0, client_ports.1),
        },
        TransportKind::Multicast { group, ports, .. } => format!("multicast ({group}:{}-{})", ports.0, ports.1),
        _ => t.name().to_owned(),
    }
}

/// RFC 3550 §6.4.1 interarrival jitter, in RTP timestamp units.
#[derive(Debug, Clone, Default)]
pub struct Jitter {
    last: Option<(f64, u32)>,
    packets: u64,
    value: f64,
    max: f64,
}

impl Jitter {
    /// One packet received at `recv_tick` with RTP timestamp `ts`, on a
    /// `clock_rate` Hz clock.
    pub fn update(&mut self, recv_tick: Duration, ts: u32, clock_rate: u32) {
        let arrival = recv_tick.as_secs_f64() * f64::from(clock_rate);
        if let Some((prev_arrival, prev_ts)) = self.last {
            // The signed 32-bit difference survives timestamp wraps.
            let d = (arrival - prev_arrival) - f64::from(ts.wrapping_sub(prev_ts) as i32);
            self.value += (d.abs() - self.value) / 16.0;
            self.max = self.max.max(self.value);
        }
        self.last = Some((arrival, ts));
        self.packets += 1;
    }

    /// The current estimate and its largest value so far, in timestamp units;
    /// `None` before two packets.
    pub fn units(&self) -> Option<(f64, f64)> {
        (self.packets >= 2).then_some((self.value, self.max))
    }
}

/// The span of 32-bit RTP timestamps, unrolled across wraps.
#[derive(Debug, Clone, Default)]
struct TimestampSpan {
    last: Option<(u32, i64)>,
    min: i64,
    max: i64,
}

impl TimestampSpan {
    fn add(&mut self, ts: u32) -> i64 {
        let ext = match self.last {
            None => {
                self.min = i64::from(ts);
                self.max = i64::from(ts);
                i64::from(ts)
            }
            Some((prev, prev_ext)) => prev_ext + i64::from(ts.wrapping_sub(prev) as i32),
        };
        self.last = Some((ts, ext));
        self.min = self.min.min(ext);
        self.max = self.max.max(ext);
        ext
    }

    fn span(&self) -> Option<i64> {
        self.last.map(|_| self.max - self.min)
    }
}

#[derive(Debug, Default)]
struct FrameStats {
    count: u64,
    bytes: u64,
    keyframes: u64,
    damaged: u64,
    first_tick: Option<Duration>,
    last_tick: Option<Duration>,
    max_gap: Duration,
    /// Extended timestamps (from the event) of the earliest and latest frame.
    min_ts: i64,
    max_ts: i64,
    last_ts: i64,
    /// Audio: samples per channel, and the duration of the frame with the
    /// latest timestamp in clock units.
    samples: u64,
    sample_rate: u32,
    channels: u16,
    last_frame_units: f64,
    /// A frame's timestamp was below the previous frame's (B-frames).
    reordered: bool,
    /// (frame number, extended timestamp) of the last keyframe.
    last_key: Option<(u64, i64)>,
    key_intervals: u64,
    key_frames_sum: u64,
    key_frames_min: u64,
    key_frames_max: u64,
    key_units_sum: i64,
}

impl FrameStats {
    fn add(&mut self, recv_tick: Duration, ext_ts: i64, bytes: usize, keyframe: bool, damaged: bool) {
        if self.count == 0 {
            self.min_ts = ext_ts;
            self.max_ts = ext_ts;
            self.first_tick = Some(recv_tick);
        }
        if self.count > 0 && ext_ts < self.last_ts {
            self.reordered = true;
        }
        self.last_ts = ext_ts;
        if let Some(last) = self.last_tick {
            self.max_gap = self.max_gap.max(recv_tick.saturating_sub(last));
        }
        self.last_tick = Some(recv_tick);
        self.min_ts = self.min_ts.min(ext_ts);
        self.max_ts = self.max_ts.max(ext_ts);
        self.bytes += bytes as u64;
        self.damaged += u64::from(damaged);
        if keyframe {
            if let Some((n, ts)) = self.last_key {
                let frames = self.count - n;
                if self.key_intervals == 0 {
                    self.key_frames_min = frames;
                }
                self.key_intervals += 1;
                self.key_frames_sum += frames;
                self.key_frames_min = self.key_frames_min.min(frames);
                self.key_frames_max = self.key_frames_max.max(frames);
                self.key_units_sum += ext_ts - ts;
            }
            self.last_key = Some((self.count, ext_ts));
            self.keyframes += 1;
        }
        self.count += 1;
    }
}

/// Cumulative counters of one track, for live rates (differences of two snapshots).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub frames: u64,
    pub frame_bytes: u64,
    pub keyframes: u64,
    pub rtp_packets: u64,
    pub rtp_bytes: u64,
    pub lost: u64,
}

/// Everything the report shows, as plain numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub connect: Option<ConnectInfo>,
    /// From session start to the PLAY response.
    pub play_at: Option<Duration>,
    /// In the order first seen.
    pub methods: Vec<MethodRow>,
    pub tracks: Vec<TrackReport>,
    /// Time from session start to the first video frame of any track.
    pub first_video_frame: Option<Duration>,
    pub first_audio_frame: Option<Duration>,
    /// From session start to the close; `None` if the session had not closed.
    pub session_elapsed: Option<Duration>,
    /// Why the session ended, if it ended with an error.
    pub error: Option<String>,
    pub warnings: u64,
    /// Why the session fell back from UDP to TCP, if it did.
    pub fallback: Option<String>,
}

/// Timing of one RTSP method (JSON: `{method, count, statuses, min_s, avg_s, max_s}`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MethodRow {
    pub method: String,
    pub count: u64,
    /// Distinct statuses in the order first seen (a 401 then a 200, say).
    pub statuses: Vec<u16>,
    #[serde(rename = "min_s", with = "duration_secs")]
    pub min: Duration,
    #[serde(rename = "avg_s", with = "duration_secs")]
    pub avg: Duration,
    #[serde(rename = "max_s", with = "duration_secs")]
    pub max: Duration,
}

/// The statistics of one set-up track (JSON: the `tracks` objects of the
/// report, `docs/CLI.md`; fields in that order).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrackReport {
    #[serde(rename = "track")]
    pub index: usize,
    /// `video`, `audio`, `application` or the SDP's word.
    pub kind: String,
    /// The SDP encoding name.
    pub codec: String,
    pub clock_rate: u32,
    pub channels: Option<u16>,
    /// Why no frames could be made, when the codec is not supported.
    pub unsupported: Option<String>,
    pub rtp_packets: u64,
    pub rtp_payload_bytes: u64,
    /// RTP payload bitrate over the RTP timestamp span (b/s); `None` under two timestamps.
    #[serde(rename = "rtp_bitrate_bps")]
    pub rtp_bitrate: Option<f64>,
    /// RTP packets missing from the sequence.
    pub lost: u64,
    /// `lost / (received + lost)`, in percent.
    pub loss_percent: f64,
    /// RFC 3550 interarrival jitter at the end of the session, and its peak, in seconds.
    #[serde(rename = "jitter_s")]
    pub jitter: Option<f64>,
    #[serde(rename = "max_jitter_s")]
    pub max_jitter: Option<f64>,
    pub sender_reports: u64,
    pub byes: u64,
    /// RTCP receiver reports this client sent on the track.
    pub receiver_reports_sent: u64,
    /// How the track's RTP travelled ([`transport_label`]).
    pub transport: String,
    pub frames: u64,
    pub keyframes: u64,
    /// Frames that followed a packet loss.
    pub damaged_frames: u64,
    pub frame_bytes: u64,
    /// From session start to the first frame.
    #[serde(rename = "first_frame_s", with = "duration_secs::option")]
    pub first_frame: Option<Duration>,
    /// From the PLAY response to the first frame.
    #[serde(rename = "first_frame_after_play_s", with = "duration_secs::option")]
    pub first_frame_after_play: Option<Duration>,
    /// Media time covered by the frames, in seconds.
    #[serde(rename = "media_duration_s")]
    pub media_duration: Option<f64>,
    /// Frames per second of media time.
    pub frame_rate: Option<f64>,
    /// Frame payload bits per second of media time.
    #[serde(rename = "bitrate_bps")]
    pub bitrate: Option<f64>,
    /// JSON: four fields, `null` without an interval ([`keyframe_fields`]).
    #[serde(flatten, serialize_with = "keyframe_fields")]
    pub keyframe_interval: Option<KeyframeInterval>,
    /// Frame timestamps went backwards (B-frames sent in decode order), which
    /// RFC 3550 jitter counts as arrival variation.
    pub timestamps_reordered: bool,
    /// The longest wait between two frames' arrival.
    #[serde(rename = "max_frame_gap_s", with = "duration_secs::option")]
    pub max_frame_gap: Option<Duration>,
    /// Audio: samples per channel, sample rate, channels.
    pub samples: u64,
    pub sample_rate: Option<u32>,
    pub audio_channels: Option<u16>,
}

/// Distance between keyframes.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyframeInterval {
    pub frames_avg: f64,
    pub frames_min: u64,
    pub frames_max: u64,
    /// Average, from the keyframes' timestamps.
    pub seconds_avg: f64,
}

/// A track's keyframe interval in the report's JSON: `keyframe_interval_frames`
/// (the average), `keyframe_interval_frames_min`, `keyframe_interval_frames_max`
/// and `keyframe_interval_s`, each `null` under two keyframes.
fn keyframe_fields<S: Serializer>(k: &Option<KeyframeInterval>, s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Fields {
        keyframe_interval_frames: Option<f64>,
        keyframe_interval_frames_min: Option<u64>,
        keyframe_interval_frames_max: Option<u64>,
        keyframe_interval_s: Option<f64>,
    }
    Fields {
        keyframe_interval_frames: k.as_ref().map(|k| k.frames_avg),
        keyframe_interval_frames_min: k.as_ref().map(|k| k.frames_min),
        keyframe_interval_frames_max: k.as_ref().map(|k| k.frames_max),
        keyframe_interval_s: k.as_ref().map(|k| k.seconds_avg),
    }
    .serialize(s)
}

/// The short name of a video codec (the JSON and text name).
pub fn video_codec_name(c: VideoCodec) -> &'static str {
    match c {
        VideoCodec::H264 => "H264",
        VideoCodec::H265 => "H265",
        VideoCodec::Mjpeg => "MJPEG",
    }
}

/// The short name of an audio codec (the JSON and text name).
pub fn audio_codec_name(c: AudioCodec) -> &'static str {
    match c {
        AudioCodec::Aac => "AAC",
        AudioCodec::AacLatm => "AAC-LATM",
        AudioCodec::Pcma => "PCMA",
        AudioCodec::Pcmu => "PCMU",
        AudioCodec::Opus => "OPUS",
        AudioCodec::L16 => "L16",
        AudioCodec::G722 => "G722",
        AudioCodec::G726 => "G726",
    }
}

/// `video`, `audio`, ...
pub fn kind_name(kind: &MediaKind) -> &str {
    match kind {
        MediaKind::Video => "video",
        MediaKind::Audio => "audio",
        MediaKind::Application => "application",
        MediaKind::Other(s) => s,
    }
}

impl Stats {
    /// Empty counters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one event.
    pub fn observe(&mut self, event: &Event) {
        match event {
            Event::Connect(c) => {
                self.connect = Some(ConnectInfo {
                    target: c.target.clone(),
                    elapsed: c.elapsed,
                    result: c.result.clone().map_err(|e| e.to_string()),
                })
            }
            Event::Method(m) => {
                let name = m.method.as_str();
                let row = match self.methods.iter_mut().position(|r| r.method == name) {
                    Some(i) => &mut self.methods[i],
                    None => {
                        self.methods.push(MethodStats {
                            method: name.to_owned(),
                            count: 0,
                            statuses: Vec::new(),
                            min: m.elapsed,
                            max: m.elapsed,
                            total: Duration::ZERO,
                        });
                        self.methods.last_mut().expect("just pushed")
                    }
                };
                row.count += 1;
                row.min = row.min.min(m.elapsed);
                row.max = row.max.max(m.elapsed);
                row.total += m.elapsed;
                if !row.statuses.contains(&m.status) {
                    row.statuses.push(m.status);
                }
                if let Some(track) = &m.track {
                    self.add_track(track);
                }
                if m.method.as_str() == "PLAY" && m.is_success() && self.play_at.is_none() {
                    self.play_at = Some(m.session_elapsed);
                }
            }
            Event::Rtp(r) => {
                if let Some(t) = self.tracks.get_mut(r.track) {
                    t.rtp_packets += 1;
                    t.rtp_payload_bytes += r.packet.payload.len() as u64;
                    t.jitter.update(r.recv_tick, r.packet.timestamp, t.clock_rate);
                    t.rtp_span.add(r.packet.timestamp);
                }
            }
            Event::RtcpSent(r) => {
                if let Some(t) = self.tracks.get_mut(r.track) {
                    t.receiver_reports_sent += 1;
                }
            }
            Event::Fallback(f) => self.fallback = Some(f.reason.clone()),
            Event::Rtcp(r) => {
                if let Some(t) = self.tracks.get_mut(r.track) {
                    for p in &r.packets {
                        match p {
                            RtcpPacket::SenderReport(_) => t.sender_reports += 1,
                            RtcpPacket::Bye(_) => t.byes += 1,
                            _ => {}
                        }
                    }
                }
            }
            Event::Video(v) => {
                if let Some(t) = self.tracks.get_mut(v.track) {
                    let f = &v.frame;
                    t.frames
                        .add(v.recv_tick, v.extended_timestamp, f.data.len(), f.keyframe, f.loss > 0);
                }
            }
            Event::Audio(a) => {
                if let Some(t) = self.tracks.get_mut(a.track) {
                    let f = &a.frame;
                    let fs = &mut t.frames;
                    let latest = fs.count == 0 || a.extended_timestamp >= fs.max_ts;
                    fs.add(a.recv_tick, a.extended_timestamp, f.data.len(), false, f.loss > 0);
                    fs.samples += u64::from(f.sample_count);
                    fs.sample_rate = f.sample_rate;
                    fs.channels = f.channels;
                    if latest && f.sample_rate > 0 {
                        fs.last_frame_units =
                            f64::from(f.sample_count) * f64::from(t.clock_rate) / f64::from(f.sample_rate);
                    }
                }
            }
            Event::Metadata(m) => {
                if let Some(t) = self.tracks.get_mut(m.track) {
                    let f = &m.frame;
                    t.frames
                        .add(m.recv_tick, m.extended_timestamp, f.data.len(), false, f.loss > 0);
                }
            }
            Event::Loss(l) => {
                if let Some(t) = self.tracks.get_mut(l.track) {
                    t.lost = t.lost.max(l.total_lost);
                }
            }
            Event::Warning(w) => {
                self.warnings += 1;
                if let Warning::UnsupportedCodec { track, codec } = w {
                    if let Some(t) = self.tracks.get_mut(*track) {
                        t.unsupported = Some(codec.clone());
                    } else {
                        // The warning comes before the SETUP event that adds the track.
                        self.pending_unsupported(*track, codec);
                    }
                }
            }
            Event::Closed(c) => self.closed = Some((c.session_elapsed, c.error.as_ref().map(|e| e.to_string()))),
            _ => {}
        }
    }

    fn pending_unsupported(&mut self, track: usize, codec: &str) {
        while self.tracks.len() <= track {
            let index = self.tracks.len();
            self.tracks.push(TrackStats::new(index));
        }
        self.tracks[track].unsupported = Some(codec.to_owned());
    }

    fn add_track(&mut self, track: &Track) {
        while self.tracks.len() <= track.index {
            let index = self.tracks.len();
            self.tracks.push(TrackStats::new(index));
        }
        let t = &mut self.tracks[track.index];
        t.kind = kind_name(&track.kind).to_owned();
        t.codec = track.codec.clone();
        t.clock_rate = track.clock_rate;
        t.channels = track.channels;
        t.transport = transport_label(&track.transport);
    }

    /// Whether a video track was set up.
    pub fn has_video(&self) -> bool {
        self.tracks.iter().any(|t| t.kind == "video")
    }

    /// When the PLAY response arrived, from session start.
    pub fn play_at(&self) -> Option<Duration> {
        self.play_at
    }

    /// (index, kind, codec) of each set-up track.
    pub fn tracks(&self) -> impl Iterator<Item = (usize, &str, &str)> {
        self.tracks.iter().map(|t| (t.index, t.kind.as_str(), t.codec.as_str()))
    }

    /// Cumulative counters per track, in track order.
    pub fn totals(&self) -> Vec<Totals> {
        self.tracks
            .iter()
            .map(|t| Totals {
                frames: t.frames.count,
                frame_bytes: t.frames.bytes,
                keyframes: t.frames.keyframes,
                rtp_packets: t.rtp_packets,
                rtp_bytes: t.rtp_payload_bytes,
                lost: t.lost,
            })
            .collect()
    }

    /// The statistics so far.
    pub fn report(&self) -> Report {
        let tracks: Vec<TrackReport> = self.tracks.iter().map(|t| t.report(self.play_at)).collect();
        let first = |kind: &str| {
            tracks
                .iter()
                .filter(|t| t.kind == kind)
                .filter_map(|t| t.first_frame)
                .min()
        };
        Report {
            connect: self.connect.clone(),
            play_at: self.play_at,
            methods: self
                .methods
                .iter()
                .map(|m| MethodRow {
                    method: m.method.clone(),
                    count: m.count,
                    statuses: m.statuses.clone(),
                    min: m.min,
                    avg: m.total / u32::try_from(m.count).unwrap_or(u32::MAX).max(1),
                    max: m.max,
                })
                .collect(),
            first_video_frame: first("video"),
            first_audio_frame: first("audio"),
            tracks,
            session_elapsed: self.closed.as_ref().map(|c| c.0),
            error: self.closed.as_ref().and_then(|c| c.1.clone()),
            warnings: self.warnings,
            fallback: self.fallback.clone(),
        }
    }
}

impl TrackStats {
    fn new(index: usize) -> Self {
        TrackStats {
            index,
            kind: String::new(),
            codec: String::new(),
            clock_rate: 0,
            channels: None,
            unsupported: None,
            rtp_packets: 0,
            rtp_payload_bytes: 0,
            lost: 0,
            jitter: Jitter::default(),
            rtp_span: TimestampSpan::default(),
            sender_reports: 0,
            byes: 0,
            receiver_reports_sent: 0,
            transport: String::new(),
            frames: FrameStats::default(),
        }
    }

    fn report(&self, play_at: Option<Duration>) -> TrackReport {
        let clock = f64::from(self.clock_rate);
        let f = &self.frames;
        let n = f.count;
        let span_s = (clock > 0.0 && n > 0).then(|| (f.max_ts - f.min_ts) as f64 / clock);
        let audio = f.sample_rate > 0;
        // Media time covered: the timestamp span plus the last frame's own duration.
        let media_duration = match span_s {
            Some(span) if audio => Some(span + f.last_frame_units / clock),
            Some(span) if n >= 2 && span > 0.0 => Some(span * n as f64 / (n - 1) as f64),
            _ => None,
        };
        let frame_rate = match (span_s, media_duration) {
            (Some(span), _) if !audio && n >= 2 && span > 0.0 => Some((n - 1) as f64 / span),
            (_, Some(d)) if audio && d > 0.0 => Some(n as f64 / d),
            _ => None,
        };
        let bitrate = media_duration.filter(|d| *d > 0.0).map(|d| f.bytes as f64 * 8.0 / d);
        let rtp_bitrate = self
            .rtp_span
            .span()
            .filter(|s| *s > 0 && clock > 0.0)
            .map(|s| self.rtp_payload_bytes as f64 * 8.0 / (s as f64 / clock));
        let keyframe_interval = (f.key_intervals > 0).then(|| KeyframeInterval {
            frames_avg: f.key_frames_sum as f64 / f.key_intervals as f64,
            frames_min: f.key_frames_min,
            frames_max: f.key_frames_max,
            seconds_avg: if clock > 0.0 {
                f.key_units_sum as f64 / f.key_intervals as f64 / clock
            } else {
                0.0
            },
        });
        let expected = self.rtp_packets + self.lost;
        let jitter = self.jitter.units().filter(|_| clock > 0.0);
        TrackReport {
            index: self.index,
            kind: self.kind.clone(),
            codec: self.codec.clone(),
            clock_rate: self.clock_rate,
            channels: self.channels,
            unsupported: self.unsupported.clone(),
            rtp_packets: self.rtp_packets,
            rtp_payload_bytes: self.rtp_payload_bytes,
            lost: self.lost,
            loss_percent: if expected > 0 {
                self.lost as f64 * 100.0 / expected as f64
            } else {
                0.0
            },
            jitter: jitter.map(|j| j.0 / clock),
            max_jitter: jitter.map(|j| j.1 / clock),
            rtp_bitrate,
            sender_reports: self.sender_reports,
            receiver_reports_sent: self.receiver_reports_sent,
            transport: self.transport.clone(),
            byes: self.byes,
            frames: n,
            keyframes: f.keyframes,
            damaged_frames: f.damaged,
            frame_bytes: f.bytes,
            first_frame: f.first_tick,
            first_frame_after_play: f.first_tick.zip(play_at).map(|(t, p)| t.saturating_sub(p)),
            media_duration,
            frame_rate,
            bitrate,
            keyframe_interval,
            timestamps_reordered: f.reordered,
            max_frame_gap: (n >= 2).then_some(f.max_gap),
            samples: f.samples,
            sample_rate: audio.then_some(f.sample_rate),
            audio_channels: audio.then_some(f.channels),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use rtsp_toolkit_tokio::core::client::{ClosedEvent, ConnectEvent, LossEvent, MethodEvent, TransportKind};
    use rtsp_toolkit_tokio::core::message::{Headers, Method};
    use rtsp_toolkit_tokio::core::rtp::RtpPacket;
    use rtsp_toolkit_tokio::{AudioFrame, AudioFrameEvent, RtpEvent, VideoFrame, VideoFrameEvent};

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn method(name: Method, status: u16, elapsed: Duration, at: Duration, track: Option<Track>) -> Event {
        Event::Method(Box::new(MethodEvent {
            method: name,
            url: "rtsp://h/x".into(),
            cseq: 1,
            status,
            reason: "OK".into(),
            request_headers: Headers::new(),
            headers: Headers::new(),
            body: Bytes::new(),
            sdp: None,
            track,
            elapsed,
            session_elapsed: at,
        }))
    }

    fn track(index: usize, kind: MediaKind, codec: &str, clock_rate: u32) -> Track {
        Track {
            index,
            media_index: index,
            kind,
            codec: codec.into(),
            payload_type: 96,
            clock_rate,
            channels: None,
            control_url: String::new(),
            transport: TransportKind::TcpInterleaved {
                rtp_channel: 0,
                rtcp_channel: 1,
            },
        }
    }

    fn rtp(track: usize, seq: u16, ts: u32, len: usize, at: Duration) -> Event {
        Event::Rtp(RtpEvent {
            track,
            channel: 0,
            packet: RtpPacket {
                sequence_number: seq,
                timestamp: ts,
                ssrc: 1,
                marker: true,
                payload_type: 96,
                csrc_count: 0,
                extension: None,
                padding: 0,
                payload: Bytes::from(vec![0u8; len]),
            },
            recv_tick: at,
        })
    }

    fn video(ts: u32, len: usize, key: bool, at: Duration) -> Event {
        Event::Video(VideoFrameEvent {
            track: 0,
            frame: VideoFrame {
                codec: VideoCodec::H264,
                timestamp: ts,
                data: Bytes::from(vec![0u8; len]),
                keyframe: key,
                new_parameters: key,
                loss: 0,
            },
            extended_timestamp: i64::from(ts),
            recv_tick: at,
        })
    }

    fn audio(ts: u32, at: Duration) -> Event {
        Event::Audio(AudioFrameEvent {
            track: 1,
            frame: AudioFrame {
                codec: AudioCodec::Aac,
                timestamp: ts,
                data: Bytes::from(vec![0u8; 100]),
                sample_count: 1024,
                sample_rate: 48000,
                channels: 2,
                loss: 0,
            },
            extended_timestamp: i64::from(ts),
            recv_tick: at,
        })
    }

    /// Two tracks set up, PLAY answered at 10 ms.
    fn playing() -> Stats {
        let mut s = Stats::new();
        s.observe(&Event::Connect(ConnectEvent {
            target: "h:554".into(),
            elapsed: ms(1),
            result: Ok(("127.0.0.1:1".parse().unwrap(), "127.0.0.1:554".parse().unwrap())),
            tls: None,
            tunnel: None,
        }));
        s.observe(&method(Method::Options, 200, ms(1), ms(2), None));
        s.observe(&method(Method::Describe, 401, ms(2), ms(4), None));
        s.observe(&method(Method::Describe, 200, ms(4), ms(8), None));
        let v = track(0, MediaKind::Video, "H264", 90000);
        let a = track(1, MediaKind::Audio, "MPEG4-GENERIC", 48000);
        s.observe(&method(Method::Setup, 200, ms(1), ms(9), Some(v)));
        s.observe(&method(Method::Setup, 200, ms(1), ms(9), Some(a)));
        s.observe(&method(Method::Play, 200, ms(1), ms(10), None));
        s
    }

    #[test]
    fn method_table_min_avg_max_and_statuses() {
        let r = playing().report();
        let d = r.methods.iter().find(|m| m.method == "DESCRIBE").unwrap();
        assert_eq!((d.count, d.min, d.avg, d.max), (2, ms(2), ms(3), ms(4)));
        assert_eq!(d.statuses, vec![401, 200]);
        assert_eq!(r.methods[0].method, "OPTIONS", "first-seen order");
        assert_eq!(r.play_at, Some(ms(10)));
    }

    #[test]
    fn video_rate_bitrate_keyframes() {
        let mut s = playing();
        // 50 frames at 25 fps (3600 ticks), 1000 bytes each, a keyframe every 10 frames.
        for i in 0..50u32 {
            s.observe(&video(1000 + i * 3600, 1000, i % 10 == 0, ms(30 + u64::from(i) * 40)));
        }
        let r = s.report();
        let t = &r.tracks[0];
        assert_eq!((t.frames, t.keyframes), (50, 5));
        assert!((t.frame_rate.unwrap() - 25.0).abs() < 1e-9);
        assert!((t.media_duration.unwrap() - 2.0).abs() < 1e-9);
        assert!((t.bitrate.unwrap() - 200_000.0).abs() < 1e-6, "50 kB over 2 s");
        let k = t.keyframe_interval.as_ref().unwrap();
        assert_eq!((k.frames_min, k.frames_max), (10, 10));
        assert!((k.frames_avg - 10.0).abs() < 1e-9 && (k.seconds_avg - 0.4).abs() < 1e-9);
        assert_eq!(t.first_frame, Some(ms(30)));
        assert_eq!(t.first_frame_after_play, Some(ms(20)));
        assert_eq!(r.first_video_frame, Some(ms(30)));
        assert_eq!(t.max_frame_gap, Some(ms(40)));
    }

    #[test]
    fn b_frame_reordering_keeps_the_rate() {
        let mut s = playing();
        // Decode order I P B B P B B ... : presentation timestamps reordered.
        let order = [0u32, 3, 1, 2, 6, 4, 5, 9, 7, 8];
        for (i, k) in order.iter().enumerate() {
            s.observe(&video(k * 3000, 10, i == 0, ms(i as u64 * 33)));
        }
        let t = &s.report().tracks[0];
        assert!((t.frame_rate.unwrap() - 30.0).abs() < 1e-9);
        assert!(t.timestamps_reordered);
    }

    #[test]
    fn audio_duration_includes_the_last_frame() {
        let mut s = playing();
        for i in 0..10u32 {
            s.observe(&audio(i * 1024, ms(20 + u64::from(i) * 21)));
        }
        let t = &s.report().tracks[1];
        let d = t.media_duration.unwrap();
        assert!((d - 10.0 * 1024.0 / 48000.0).abs() < 1e-9, "{d}");
        assert!((t.frame_rate.unwrap() - 48000.0 / 1024.0).abs() < 1e-9);
        assert_eq!(t.samples, 10240);
        assert_eq!(t.sample_rate, Some(48000));
        assert!(t.keyframe_interval.is_none());
        assert_eq!(s.report().first_audio_frame, Some(ms(20)));
    }

    #[test]
    fn jitter_is_zero_for_perfect_pacing_and_follows_rfc3550() {
        let mut s = playing();
        for i in 0..100u16 {
            s.observe(&rtp(0, i, u32::from(i) * 3600, 100, ms(10 + u64::from(i) * 40)));
        }
        let t = &s.report().tracks[0];
        assert!(t.jitter.unwrap().abs() < 1e-9);
        assert_eq!((t.rtp_packets, t.rtp_payload_bytes), (100, 10_000));
        // 100 packets * 100 bytes over 99 * 40 ms of timestamps.
        assert!((t.rtp_bitrate.unwrap() - 80_000.0 / 3.96).abs() < 1e-6);

        // One packet 10 ms late: D = 900 units (10 ms at 90 kHz), then -900 back on time.
        let mut j = Jitter::default();
        j.update(ms(0), 0, 90000);
        j.update(ms(50), 3600, 90000);
        assert!((j.units().unwrap().0 - 900.0 / 16.0).abs() < 1e-6);
        j.update(ms(80), 7200, 90000);
        let expected = 900.0 / 16.0 + (900.0 - 900.0 / 16.0) / 16.0;
        assert!((j.units().unwrap().0 - expected).abs() < 1e-6);
        assert!((j.units().unwrap().1 - expected).abs() < 1e-6);
    }

    #[test]
    fn jitter_survives_timestamp_wrap() {
        let mut j = Jitter::default();
        j.update(ms(0), u32::MAX - 1799, 90000);
        j.update(ms(40), 1800, 90000);
        assert!(j.units().unwrap().0.abs() < 1e-9);
    }

    #[test]
    fn loss_and_close() {
        let mut s = playing();
        s.observe(&rtp(0, 1, 0, 10, ms(20)));
        s.observe(&rtp(0, 5, 3600, 10, ms(60)));
        s.observe(&Event::Loss(LossEvent {
            track: 0,
            lost: 3,
            sequence_number: 5,
            total_lost: 3,
            recv_tick: ms(60),
        }));
        s.observe(&Event::Closed(ClosedEvent {
            session_elapsed: ms(100),
            error: Some(rtsp_toolkit_tokio::Error::Connection(
                rtsp_toolkit_tokio::ConnectionError::new(std::io::ErrorKind::ConnectionReset, "reset"),
            )),
        }));
        let r = s.report();
        assert_eq!(r.tracks[0].lost, 3);
        assert!((r.tracks[0].loss_percent - 60.0).abs() < 1e-9);
        assert_eq!(r.session_elapsed, Some(ms(100)));
        assert_eq!(r.error.as_deref(), Some("connection error: reset"));
        assert_eq!(s.totals()[0].lost, 3);
    }

    #[test]
    fn unsupported_codec_before_its_setup_event() {
        let mut s = Stats::new();
        s.observe(&Event::Warning(Warning::UnsupportedCodec {
            track: 0,
            codec: "VP8".into(),
        }));
        s.observe(&method(
            Method::Setup,
            200,
            ms(1),
            ms(3),
            Some(track(0, MediaKind::Video, "VP8", 90000)),
        ));
        let r = s.report();
        assert_eq!(r.tracks[0].unsupported.as_deref(), Some("VP8"));
        assert_eq!(r.tracks[0].codec, "VP8");
        assert!(s.has_video());
        assert!(r.tracks[0].frame_rate.is_none() && r.tracks[0].jitter.is_none());
    }
}
