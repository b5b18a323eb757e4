//! Recording a client session's frames into a file: fragmented MP4 or
//! Matroska, stream copy (no transcoding) of every video and audio track.
//!
//! A [`Recorder`] is told the tracks (each set-up [`Track`] with its SDP
//! [`Media`]), then fed the session's [`VideoFrameEvent`]s and
//! [`AudioFrameEvent`]s as they come; [`Recorder::on_event`] does all of
//! that from the session's [`Event`]s. [`Recorder::finish`] writes what is
//! left and completes the file's index and duration.
//!
//! | codec | MP4 sample entry | Matroska `CodecID` |
//! |---|---|---|
//! | H.264 | `avc1` + `avcC` | `V_MPEG4/ISO/AVC` |
//! | H.265 | `hvc1` + `hvcC` | `V_MPEGH/ISO/HEVC` |
//! | AAC (`MPEG4-GENERIC`, `MP4A-LATM`) | `mp4a` + `esds` | `A_AAC` |
//! | G.711 (`PCMA`, `PCMU`) | `alaw`, `ulaw` | `A_MS/ACM` (WAVEFORMATEX 6, 7) |
//! | MJPEG (`JPEG`) | `jpeg` | `V_MJPEG` |
//!
//! Other codecs (no depacketizer in the core: L16, Opus, ...) are not
//! recorded; [`Recorder::add_track`] says so, and the rest of the session is
//! still recorded. G.711 in MP4 uses the QuickTime-style `alaw`/`ulaw`
//! sample entries: FFmpeg (and so VLC, mpv) reads them, browsers may ignore
//! that track and play the video; Matroska's `A_MS/ACM` is what FFmpeg's own
//! Matroska muxer writes for G.711. MJPEG in MP4 likewise uses QuickTime's
//! `jpeg` sample entry (each sample one JPEG image, no configuration box),
//! which FFmpeg reads; its size is the first image's.
//!
//! # Why our own writer
//! The crates compared (docs/CLI.md has the table): `mp4` (writes only
//! progressive MP4 with the index at the end, so a killed recording does not
//! play, and keeps the whole index in memory), `mp4-atom` (box codec only:
//! fragmenting, timestamps and composition offsets would still be ours;
//! needs Rust 1.88), `muxide` (fragmented MP4, but one video and one audio
//! track, no G.711; needs Rust 1.86), `shiguredo_mp4` (sans-IO, no
//! dependencies, fragmented segments, but one track per kind and Rust 1.93),
//! and for Matroska `webm` (a libwebm C++ binding for WebM codecs) or
//! `media-format-matroska` (new, pulls a family of crates). None covers
//! any number of tracks, G.711 and this workspace's Rust 1.85, so the two
//! writers here are small (`fmp4` and `mkv`), written from ISO/IEC 14496-12
//! and -15 and the Matroska specification (RFC 9559).
//!
//! # Timing
//! Every track's times are in its RTP clock (MP4: the track's timescale is
//! the clock rate; Matroska: milliseconds). The first frame written of any
//! track is at decode time 0, and the other tracks start where their first
//! frame falls on a common clock. That clock is NTP time by the RTCP sender
//! reports when some track has one by the time the header is written (the
//! first fragment, a second or so in); a track that has no report of its own
//! by its first fragment is placed by its arrival times, mapped to NTP
//! through a track that has one. Without any sender report, every track is
//! placed by its arrival times. [`RecordSummary::alignment`] says which.
//! Arrival is taken as the least delay seen (arrival minus media time over
//! the frames so far), so a frame that came late does not shift its track;
//! for video it is compared with decode times (servers send in decode order),
//! which with B-frames can be off by a frame or two of the encoder's own
//! reorder delay.
//!
//! Video RTP timestamps are presentation times and frames arrive in decode
//! order. Decode times are the presentation times sorted within a window of
//! [`REORDER_WINDOW`] frames, less the reorder delay of the first frames (the
//! largest amount by which a frame's sorted slot comes after its own
//! presentation time; 0 without B-frames): they increase, and composition
//! offsets are not negative (a deeper reordering later is still written,
//! with a negative offset in MP4's version 1 `trun`). Matroska blocks carry
//! the presentation time directly. A video track starts at its first
//! keyframe; frames before it are counted in [`RecordedTrack::skipped`].
//!
//! # Parameter sets
//! The sample entry / `CodecPrivate` holds the parameter sets of the first
//! keyframe (or the SDP's when the stream has none). Samples are a stream
//! copy, so parameter sets sent in-band stay in them, and a decoder that
//! reads in-band sets (FFmpeg's do) follows a mid-stream change, such as a
//! new resolution, from there; [`RecordedTrack::parameter_changes`] counts
//! such changes. A new sample entry per change is not possible in a
//! fragmented MP4, whose `moov` is written first.
//!
//! # Memory and fragments
//! Frames are written in fragments (MP4 `moof`+`mdat`, Matroska clusters)
//! about every [`FRAGMENT`] at a keyframe of the first video track (of the
//! first track without video), and at the latest after [`MAX_FRAGMENT`] or
//! [`MAX_FRAGMENT_BYTES`].
//! Only the current fragment is held in memory, plus an index of a few
//! bytes per fragment. After each fragment the writer is flushed, so a
//! recording cut short (process killed) plays up to its last whole
//! fragment; [`Recorder::finish`] adds the duration (MP4 `mehd`, Matroska
//! `Duration`) and, for Matroska, the segment size, a seek head and cues.

mod fmp4;
mod mkv;
mod params;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fs::File;
use std::io::{self, BufWriter, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use rtsp_toolkit_core::client::{AudioFrameEvent, Event, Track, VideoFrameEvent};
use rtsp_toolkit_core::codec::h264::split_annex_b;
use rtsp_toolkit_core::rtcp::RtcpPacket;
use rtsp_toolkit_core::sdp::{self, Media, MediaKind};

use params::{ParameterSets, SpsInfo, VideoKind};

/// Fragments are cut at a keyframe of the lead track once they hold this much.
pub const FRAGMENT: Duration = Duration::from_secs(1);
/// A fragment is cut even without a keyframe once a track holds this much.
pub const MAX_FRAGMENT: Duration = Duration::from_secs(3);
/// A fragment is cut once the frames held reach this many bytes, whatever their duration.
pub const MAX_FRAGMENT_BYTES: usize = 32 * 1024 * 1024;
/// Video frames looked ahead to derive decode times from presentation times;
/// B-frame reordering deeper than this still gives increasing decode times.
pub const REORDER_WINDOW: usize = 8;
/// How long (of media buffered on other tracks) the header waits for a video
/// track's first keyframe before using the SDP's parameter sets, or leaving
/// the track out when there are none.
pub const KEYFRAME_WAIT: Duration = Duration::from_secs(5);

/// The container formats the recorder writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordFormat {
    /// Fragmented MP4 (ISO BMFF with `moof` fragments): `.mp4`.
    Mp4,
    /// Matroska: `.mkv`.
    Mkv,
}

impl RecordFormat {
    /// The format for a path's extension (`.mp4`, `.mkv`, case-insensitive).
    ///
    /// ```
    /// use rtsp_toolkit_media::record::RecordFormat;
    /// use std::path::Path;
    /// assert_eq!(RecordFormat::from_path(Path::new("cam.MKV")), Some(RecordFormat::Mkv));
    /// assert_eq!(RecordFormat::from_path(Path::new("cam.mov")), None);
    /// ```
    pub fn from_path(path: &Path) -> Option<RecordFormat> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "mp4" => Some(RecordFormat::Mp4),
            "mkv" => Some(RecordFormat::Mkv),
            _ => None,
        }
    }

    /// `"mp4"` or `"mkv"`.
    pub fn name(self) -> &'static str {
        match self {
            RecordFormat::Mp4 => "mp4",
            RecordFormat::Mkv => "mkv",
        }
    }
}

/// Why a recording could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The extension is not `.mp4` or `.mkv`.
    #[error("unsupported recording format {} (expected .mp4 or .mkv)", path.display())]
    UnsupportedExtension {
        /// The path given.
        path: PathBuf,
    },
    /// Creating or writing the file failed.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Why a track is not recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("track {track} ({codec}) is not recorded: {reason}")]
pub struct NotRecorded {
    /// The track's index (as in the session's events).
    pub track: usize,
    /// Its encoding name from the SDP.
    pub codec: String,
    /// Why.
    pub reason: String,
}

/// How the tracks' start times were aligned (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alignment {
    /// Not decided yet (no header written).
    Pending,
    /// By the RTCP sender reports' NTP times.
    SenderReports,
    /// By the arrival time of each track's first frame.
    Arrival,
}

/// What was recorded of one track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedTrack {
    /// The track's index (as in the session's events).
    pub track: usize,
    /// `video` or `audio`.
    pub kind: &'static str,
    /// The codec as an RFC 6381 string (`avc1.64001f`, `hvc1.1.6.L93.90`,
    /// `mp4a.40.2`) or `alaw` / `ulaw`.
    pub codec: String,
    /// Frames written.
    pub frames: u64,
    /// Sample bytes written.
    pub bytes: u64,
    /// Video frames before the first keyframe, not written.
    pub skipped: u64,
    /// Frames not written because their timestamp went backwards (audio) or
    /// out of the container's range.
    pub dropped: u64,
    /// In-band parameter sets that differed from the ones before.
    pub parameter_changes: u64,
    /// Width and height from the first SPS (video).
    pub resolution: Option<(u32, u32)>,
    /// From the track's first to its last written frame's end.
    pub duration: Duration,
}

/// What a recording holds so far ([`Recorder::summary`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSummary {
    /// The container.
    pub format: RecordFormat,
    /// The tracks that are recorded, in track order.
    pub tracks: Vec<RecordedTrack>,
    /// Tracks that are not (or no longer) recorded, and why.
    pub not_recorded: Vec<NotRecorded>,
    /// Fragments (MP4) or clusters (Matroska) written.
    pub fragments: u64,
    /// Bytes written to the file.
    pub bytes: u64,
    /// The longest track's end.
    pub duration: Duration,
    /// How the tracks were aligned.
    pub alignment: Alignment,
}

/// The codec configuration a container writes in its header.
#[derive(Debug, Clone)]
pub(crate) enum Codec {
    Video {
        kind: VideoKind,
        /// `avcC` / `hvcC` payload.
        record: Vec<u8>,
        width: u32,
        height: u32,
    },
    Aac {
        /// AudioSpecificConfig.
        config: Vec<u8>,
        sample_rate: u32,
        channels: u16,
    },
    G711 {
        alaw: bool,
        sample_rate: u32,
        channels: u16,
    },
    /// Whole JPEG images; the size of the first.
    Mjpeg { width: u32, height: u32 },
    /// Opus packets, 48 kHz (Matroska only).
    Opus { channels: u16 },
    /// 16-bit little-endian PCM, from L16 (Matroska only).
    Pcm { sample_rate: u32, channels: u16 },
}

/// One track as the containers see it.
#[derive(Debug, Clone)]
pub(crate) struct TrackHeader {
    /// 1-based number in the file (MP4 track_ID, Matroska TrackNumber).
    pub(crate) number: u32,
    pub(crate) codec: Codec,
    /// Ticks per second of the sample times (the RTP clock rate).
    pub(crate) timescale: u32,
}

impl TrackHeader {
    pub(crate) fn is_video(&self) -> bool {
        matches!(self.codec, Codec::Video { .. } | Codec::Mjpeg { .. })
    }
}

/// One sample ready to write; times in the track's timescale, from the
/// recording's start.
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    pub(crate) dts: u64,
    /// Presentation minus decode time.
    pub(crate) cts: i32,
    pub(crate) duration: u32,
    pub(crate) keyframe: bool,
    /// Video: NAL units with 4-byte big-endian lengths. Audio: the frame.
    pub(crate) data: Bytes,
}

/// The samples of one track in one fragment.
#[derive(Debug)]
pub(crate) struct Run<'a> {
    pub(crate) track: &'a TrackHeader,
    pub(crate) samples: &'a [Sample],
}

/// The per-format writer.
#[derive(Debug)]
enum Container {
    Mp4(fmp4::Writer),
    Mkv(mkv::Writer),
}

/// The codec of a track as set up, before its configuration is complete.
#[derive(Debug, Clone)]
enum Setup {
    Video {
        kind: VideoKind,
        sdp_sets: ParameterSets,
    },
    Aac {
        config: Vec<u8>,
        sample_rate: u32,
        channels: u16,
    },
    G711 {
        alaw: bool,
        channels: u16,
    },
    Mjpeg,
    Opus {
        channels: u16,
    },
    /// L16: the frames are byte-swapped to little-endian PCM.
    L16 {
        channels: u16,
    },
}

/// A sample with its decode time assigned, times in RTP ticks (unrolled).
#[derive(Debug)]
struct Timed {
    dts: i64,
    pts: i64,
    keyframe: bool,
    data: Bytes,
    /// Audio: the frame's own length in ticks, for the last sample.
    own_duration: Option<i64>,
}

/// A sample with its duration, waiting for its fragment; RTP ticks.
#[derive(Debug)]
struct Complete {
    dts: i64,
    pts: i64,
    duration: i64,
    keyframe: bool,
    data: Bytes,
}

/// The receive state of one recorded track.
#[derive(Debug)]
struct TrackRec {
    index: usize,
    codec_name: String,
    setup: Setup,
    clock: u32,
    /// Set when the header is written (or the track dropped).
    header: Option<TrackHeader>,
    dropped_track: bool,
    /// The unrolled RTP time of the first frame received.
    first_ext: Option<i64>,
    /// The least arrival time (ns since the session's start) minus media time
    /// (ns since `first_ext`) of the frames so far: when media time 0 would
    /// have arrived with the least delay. Video uses decode times.
    transit: Option<i128>,
    /// Video: presentation minus decode time of the first frames' worst
    /// reordering, fixed at the first frame's release (0 without B-frames).
    reorder_delay: Option<i64>,
    /// The latest sender report: (NTP timestamp, RTP timestamp).
    sr: Option<(u64, u32)>,
    /// File time = RTP ticks + shift; set at the track's first fragment.
    shift: Option<i64>,
    started: bool,
    /// Parameter sets of the first keyframe, then the latest seen.
    first_sets: ParameterSets,
    last_sets: ParameterSets,
    resolution: Option<(u32, u32)>,
    /// Video: frames waiting for their decode time (presentation time,
    /// keyframe, data, arrival), and their presentation times as a min-heap.
    waiting: VecDeque<(i64, bool, Bytes, Duration)>,
    heap: BinaryHeap<Reverse<i64>>,
    last_dts: Option<i64>,
    timed: Option<Timed>,
    last_duration: Option<i64>,
    complete: Vec<Complete>,
    stats: RecordedTrack,
    end: Option<u64>,
    begin: Option<u64>,
}

impl TrackRec {
    fn is_video(&self) -> bool {
        matches!(self.setup, Setup::Video { .. } | Setup::Mjpeg)
    }

    /// Ticks of the complete samples (first decode time to last end).
    fn buffered(&self) -> i64 {
        match (self.complete.first(), self.complete.last()) {
            (Some(a), Some(b)) => b.dts + b.duration - a.dts,
            _ => 0,
        }
    }

    fn ticks(&self, d: Duration) -> i64 {
        (d.as_nanos() as i64).saturating_mul(i64::from(self.clock)) / 1_000_000_000
    }

    /// Counts a frame's arrival `recv` for media time `ext` in `transit`.
    fn arrived(&mut self, ext: i64, recv: Duration) {
        let first = *self.first_ext.get_or_insert(ext);
        let media_ns = i128::from(ext - first) * 1_000_000_000 / i128::from(self.clock);
        let t = recv.as_nanos() as i128 - media_ns;
        self.transit = Some(self.transit.map_or(t, |m| m.min(t)));
    }

    /// Assigns a decode time to the oldest waiting video frame: the smallest
    /// presentation time waiting, less the reorder delay (so that offsets
    /// are not negative), and after the one before.
    fn release_one(&mut self) {
        if self.reorder_delay.is_none() {
            let pts: Vec<i64> = self.waiting.iter().map(|w| w.0).collect();
            let mut sorted = pts.clone();
            sorted.sort_unstable();
            // Only the first half: near the window's end, later frames that sort before are missing.
            let half = pts.len().div_ceil(2);
            let delay = sorted
                .iter()
                .zip(&pts)
                .take(half)
                .map(|(s, p)| s - p)
                .max()
                .unwrap_or(0);
            self.reorder_delay = Some(delay.max(0));
        }
        let Some((pts, keyframe, data, recv)) = self.waiting.pop_front() else {
            return;
        };
        let smallest = self.heap.pop().map(|Reverse(p)| p).unwrap_or(pts) - self.reorder_delay.unwrap_or(0);
        let dts = match self.last_dts {
            Some(last) if smallest <= last => last + 1,
            _ => smallest,
        };
        self.arrived(dts, recv);
        self.push_timed(Timed {
            dts,
            pts,
            keyframe,
            data,
            own_duration: None,
        });
    }

    /// A sample with a decode time: the one before it gets its duration.
    fn push_timed(&mut self, t: Timed) {
        let next = t.dts;
        self.last_dts = Some(next);
        if let Some(prev) = self.timed.replace(t) {
            let duration = next - prev.dts;
            self.last_duration = Some(duration);
            self.complete.push(Complete {
                dts: prev.dts,
                pts: prev.pts,
                duration,
                keyframe: prev.keyframe,
                data: prev.data,
            });
        }
    }

    /// At the end: every waiting frame gets its decode time, the last one a
    /// duration of its own (audio) or of the one before (video).
    fn drain(&mut self) {
        while !self.waiting.is_empty() {
            self.release_one();
        }
        if let Some(last) = self.timed.take() {
            let duration = last
                .own_duration
                .or(self.last_duration)
                .unwrap_or_else(|| i64::from(self.clock) / 25)
                .max(1);
            self.complete.push(Complete {
                dts: last.dts,
                pts: last.pts,
                duration,
                keyframe: last.keyframe,
                data: last.data,
            });
        }
    }
}

/// Writes a session's tracks into a fragmented MP4 or Matroska file.
///
/// ```no_run
/// use rtsp_toolkit_media::record::Recorder;
/// # fn events() -> Vec<rtsp_toolkit_core::client::Event> { Vec::new() }
/// let mut recorder = Recorder::create("cam.mp4".as_ref())?;
/// for event in events() {
///     recorder.on_event(&event)?; // DESCRIBE, SETUP, RTCP and frames
/// }
/// let summary = recorder.finish()?;
/// println!("{} fragments, {:?}", summary.fragments, summary.duration);
/// # Ok::<(), rtsp_toolkit_media::record::RecordError>(())
/// ```
#[derive(Debug)]
pub struct Recorder<W: Write + Seek> {
    out: W,
    format: RecordFormat,
    container: Container,
    tracks: Vec<TrackRec>,
    not_recorded: Vec<NotRecorded>,
    /// New notes for [`Recorder::take_notes`].
    notes: Vec<String>,
    /// The SDP media of the last DESCRIBE ([`Recorder::on_event`]).
    sdp_media: Vec<Media>,
    /// Written: header, then fragments.
    header_written: bool,
    /// The common clock's zero, in nanoseconds of that clock.
    origin: Option<i128>,
    /// NTP minus arrival time, when aligning by sender reports.
    ntp_offset: Option<i128>,
    alignment: Alignment,
    fragments: u64,
    position: u64,
    finished: bool,
}

impl Recorder<BufWriter<File>> {
    /// Creates (truncates) the file at `path`, the format chosen by its
    /// extension ([`RecordFormat::from_path`]).
    pub fn create(path: &Path) -> Result<Self, RecordError> {
        let format =
            RecordFormat::from_path(path).ok_or_else(|| RecordError::UnsupportedExtension { path: path.to_owned() })?;
        let file = File::create(path)?;
        Ok(Recorder::new(BufWriter::new(file), format))
    }
}

impl<W: Write + Seek> Recorder<W> {
    /// A recorder writing `format` to `out`, which should be empty and at its
    /// start (the header is patched at [`Recorder::finish`] by seeking).
    pub fn new(out: W, format: RecordFormat) -> Self {
        Recorder {
            out,
            format,
            container: match format {
                RecordFormat::Mp4 => Container::Mp4(fmp4::Writer::default()),
                RecordFormat::Mkv => Container::Mkv(mkv::Writer::default()),
            },
            tracks: Vec::new(),
            not_recorded: Vec::new(),
            notes: Vec::new(),
            sdp_media: Vec::new(),
            header_written: false,
            origin: None,
            ntp_offset: None,
            alignment: Alignment::Pending,
            fragments: 0,
            position: 0,
            finished: false,
        }
    }

    /// The container format.
    pub fn format(&self) -> RecordFormat {
        self.format
    }

    /// Adds a set-up track with its SDP media. Tracks must be added before
    /// their first frame, and before the file's header is written (the first
    /// fragment): a later track is [`NotRecorded`]. Adding a track index twice
    /// is a no-op.
    pub fn add_track(&mut self, track: &Track, media: &Media) -> Result<(), NotRecorded> {
        if self.tracks.iter().any(|t| t.index == track.index) {
            return Ok(());
        }
        let not = |reason: &str| NotRecorded {
            track: track.index,
            codec: media.codec.clone(),
            reason: reason.to_owned(),
        };
        if self.header_written || self.finished {
            return Err(not("it was set up after the recording started"));
        }
        if track.clock_rate == 0 {
            return Err(not("the SDP gives no clock rate"));
        }
        let setup = if media.codec_is("H264") || media.codec_is("H265") {
            let (kind, sdp_sets) = if media.codec_is("H264") {
                let p = media.h264().ok().flatten();
                let sets = p.map(|p| ParameterSets {
                    vps: Vec::new(),
                    sps: p.sps,
                    pps: p.pps,
                });
                (VideoKind::H264, sets.unwrap_or_default())
            } else {
                let p = media.h265().ok().flatten();
                let sets = p.map(|p| ParameterSets {
                    vps: p.vps,
                    sps: p.sps,
                    pps: p.pps,
                });
                (VideoKind::H265, sets.unwrap_or_default())
            };
            Setup::Video { kind, sdp_sets }
        } else if media.codec_is("MPEG4-GENERIC") || media.codec_is("MP4A-LATM") {
            let Some(config) = media.audio_specific_config() else {
                return Err(not("the SDP has no AAC AudioSpecificConfig"));
            };
            let parsed =
                sdp::parse_audio_specific_config(&config).map_err(|e| not(&format!("AudioSpecificConfig: {e}")))?;
            let channels = match parsed.channels {
                0 => media.channels.unwrap_or(2),
                c => u16::from(c),
            };
            Setup::Aac {
                config: config.to_vec(),
                sample_rate: parsed.extension_sample_rate.unwrap_or(parsed.sample_rate),
                channels,
            }
        } else if media.codec_is("PCMA") || media.codec_is("PCMU") {
            Setup::G711 {
                alaw: media.codec_is("PCMA"),
                channels: media.channels.unwrap_or(1).max(1),
            }
        } else if media.codec_is("JPEG") {
            Setup::Mjpeg
        } else if media.codec_is("opus") || media.codec_is("L16") {
            if self.format != RecordFormat::Mkv {
                return Err(not("Opus and L16 are recorded in Matroska only (use a .mkv file)"));
            }
            if media.codec_is("opus") {
                let channels = rtsp_toolkit_core::codec::opus::Depacketizer::new(media)
                    .map_err(|e| not(&e.to_string()))?
                    .channels();
                Setup::Opus { channels }
            } else {
                Setup::L16 {
                    channels: media.channels.unwrap_or(1).max(1),
                }
            }
        } else if rtsp_toolkit_core::codec::g726::code_bits(&media.codec).is_some() {
            return Err(not("recording G.726 is not supported"));
        } else if media.codec_is("G722") {
            return Err(not(
                "G.722 has no codec id in MP4 or Matroska that players read (--save-audio writes it as WAV)",
            ));
        } else {
            let why = match media.kind {
                MediaKind::Video | MediaKind::Audio => "no depacketizer for this codec, so no frames to record",
                _ => "only video and audio tracks are recorded",
            };
            return Err(not(why));
        };
        let kind = if matches!(setup, Setup::Video { .. } | Setup::Mjpeg) {
            "video"
        } else {
            "audio"
        };
        self.tracks.push(TrackRec {
            index: track.index,
            codec_name: media.codec.clone(),
            setup,
            clock: track.clock_rate,
            header: None,
            dropped_track: false,
            first_ext: None,
            transit: None,
            reorder_delay: None,
            sr: None,
            shift: None,
            started: false,
            first_sets: ParameterSets::default(),
            last_sets: ParameterSets::default(),
            resolution: None,
            waiting: VecDeque::new(),
            heap: BinaryHeap::new(),
            last_dts: None,
            timed: None,
            last_duration: None,
            complete: Vec::new(),
            stats: RecordedTrack {
                track: track.index,
                kind,
                codec: media.codec.to_ascii_lowercase(),
                frames: 0,
                bytes: 0,
                skipped: 0,
                dropped: 0,
                parameter_changes: 0,
                resolution: None,
                duration: Duration::ZERO,
            },
            end: None,
            begin: None,
        });
        self.tracks.sort_by_key(|t| t.index);
        Ok(())
    }

    /// An RTCP sender report of `track`: its NTP time and the RTP time that
    /// corresponds to it.
    pub fn sender_report(&mut self, track: usize, ntp_timestamp: u64, rtp_timestamp: u32) {
        if let Some(t) = self.tracks.iter_mut().find(|t| t.index == track) {
            t.sr = Some((ntp_timestamp, rtp_timestamp));
        }
    }

    /// Feeds a session event: DESCRIBE's SDP and each SETUP's track (via
    /// [`Recorder::add_track`]; a track that is not recorded is a note for
    /// [`Recorder::take_notes`]), RTCP sender reports, and the frames.
    /// Other events are ignored.
    pub fn on_event(&mut self, event: &Event) -> Result<(), RecordError> {
        match event {
            Event::Method(m) => {
                if let Some(sdp) = &m.sdp {
                    self.sdp_media = sdp.media.clone();
                }
                if let Some(t) = &m.track {
                    if let Some(media) = self.sdp_media.get(t.media_index).cloned() {
                        if let Err(e) = self.add_track(t, &media) {
                            self.notes.push(e.to_string());
                            if !self.not_recorded.contains(&e) {
                                self.not_recorded.push(e);
                            }
                        }
                    }
                }
                Ok(())
            }
            Event::Rtcp(r) => {
                for p in &r.packets {
                    if let RtcpPacket::SenderReport(sr) = p {
                        self.sender_report(r.track, sr.ntp_timestamp, sr.rtp_timestamp);
                    }
                }
                Ok(())
            }
            Event::Video(v) => self.video(v),
            Event::Audio(a) => self.audio(a),
            _ => Ok(()),
        }
    }

    /// Notes since the last call: tracks that are not recorded, and why.
    pub fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }

    fn track_pos(&self, index: usize) -> Option<usize> {
        self.tracks.iter().position(|t| t.index == index && !t.dropped_track)
    }

    /// Adds a video frame (an Annex B access unit, or an MJPEG image).
    pub fn video(&mut self, v: &VideoFrameEvent) -> Result<(), RecordError> {
        let Some(i) = self.track_pos(v.track) else {
            return Ok(());
        };
        if self.finished {
            return Ok(());
        }
        let t = &mut self.tracks[i];
        let kind = match t.setup {
            Setup::Video { kind, .. } => kind,
            Setup::Mjpeg => return self.mjpeg(i, v),
            _ => return Ok(()),
        };
        t.first_ext.get_or_insert(v.extended_timestamp);
        if !t.started {
            if !v.frame.keyframe {
                t.stats.skipped += 1;
                return Ok(());
            }
            t.started = true;
        }
        let nals = split_annex_b(&v.frame.data);
        let sets = ParameterSets::from_nals(kind, &nals);
        if !sets.is_empty() {
            if t.first_sets.is_empty() {
                t.first_sets = sets.clone();
                t.last_sets = sets;
            } else if changed(&t.last_sets, &sets) {
                t.stats.parameter_changes += 1;
                merge(&mut t.last_sets, sets);
            }
        }
        let mut data = BytesMut::with_capacity(v.frame.data.len() + 4 * nals.len());
        for nal in &nals {
            data.put_u32(nal.len() as u32);
            data.put_slice(nal);
        }
        t.waiting
            .push_back((v.extended_timestamp, v.frame.keyframe, data.freeze(), v.recv_tick));
        t.heap.push(Reverse(v.extended_timestamp));
        if t.waiting.len() > REORDER_WINDOW {
            t.release_one();
        }
        self.after_frame(i)
    }

    /// Adds an MJPEG frame of track `i` (one whole JPEG image, every one a keyframe).
    fn mjpeg(&mut self, i: usize, v: &VideoFrameEvent) -> Result<(), RecordError> {
        let t = &mut self.tracks[i];
        t.first_ext.get_or_insert(v.extended_timestamp);
        if t.resolution.is_none() {
            // The track's size: the first image's frame header.
            let Some((w, h)) = rtsp_toolkit_core::codec::jpeg::dimensions(&v.frame.data) else {
                t.stats.skipped += 1;
                return Ok(());
            };
            t.resolution = Some((u32::from(w), u32::from(h)));
        }
        t.started = true;
        t.waiting
            .push_back((v.extended_timestamp, true, v.frame.data.clone(), v.recv_tick));
        t.heap.push(Reverse(v.extended_timestamp));
        if t.waiting.len() > REORDER_WINDOW {
            t.release_one();
        }
        self.after_frame(i)
    }

    /// Adds an audio frame (one AAC access unit, or G.711 samples).
    pub fn audio(&mut self, a: &AudioFrameEvent) -> Result<(), RecordError> {
        let Some(i) = self.track_pos(a.track) else {
            return Ok(());
        };
        if self.finished {
            return Ok(());
        }
        let t = &mut self.tracks[i];
        if t.is_video() || a.frame.data.is_empty() {
            return Ok(());
        }
        t.started = true;
        if t.last_dts.is_some_and(|last| a.extended_timestamp <= last) {
            t.stats.dropped += 1;
            return Ok(());
        }
        t.arrived(a.extended_timestamp, a.recv_tick);
        let own = if a.frame.sample_rate > 0 {
            i64::from(a.frame.sample_count) * i64::from(t.clock) / i64::from(a.frame.sample_rate)
        } else {
            i64::from(a.frame.sample_count)
        };
        let data = if matches!(t.setup, Setup::L16 { .. }) {
            // Matroska's A_PCM/INT/LIT: little-endian samples.
            let mut le = a.frame.data.to_vec();
            for pair in le.chunks_exact_mut(2) {
                pair.swap(0, 1);
            }
            Bytes::from(le)
        } else {
            a.frame.data.clone()
        };
        t.push_timed(Timed {
            dts: a.extended_timestamp,
            pts: a.extended_timestamp,
            keyframe: true,
            data,
            own_duration: Some(own.max(1)),
        });
        self.after_frame(i)
    }

    /// Whether the track at `i` is the one whose keyframes cut fragments.
    fn is_lead(&self, i: usize) -> bool {
        let lead = self
            .tracks
            .iter()
            .position(|t| t.is_video() && !t.dropped_track)
            .or_else(|| self.tracks.iter().position(|t| !t.dropped_track));
        lead == Some(i)
    }

    /// After a frame of track `i`: cut a fragment when one is due.
    fn after_frame(&mut self, i: usize) -> Result<(), RecordError> {
        let t = &self.tracks[i];
        let held: usize = self.tracks.iter().flat_map(|t| &t.complete).map(|c| c.data.len()).sum();
        let over = held >= MAX_FRAGMENT_BYTES || self.tracks.iter().any(|t| t.buffered() >= t.ticks(MAX_FRAGMENT));
        // A keyframe of the lead track that just got its duration starts the next fragment.
        let keyframe_cut =
            self.is_lead(i) && t.complete.len() >= 2 && t.complete.last().is_some_and(|c| c.keyframe) && {
                let (first, last) = (&t.complete[0], &t.complete[t.complete.len() - 1]);
                last.dts - first.dts >= t.ticks(FRAGMENT)
            };
        if !(keyframe_cut || over) {
            return Ok(());
        }
        if !self.header_written && !self.try_header(false)? {
            return Ok(());
        }
        let keep_last = if keyframe_cut { Some(i) } else { None };
        self.write_fragment(keep_last)
    }

    /// Writes the header if every track's configuration is known (or, with
    /// `force`, or once a video track waited [`KEYFRAME_WAIT`], without the
    /// tracks that have none). Whether it was written.
    fn try_header(&mut self, force: bool) -> Result<bool, RecordError> {
        let waited = force || self.tracks.iter().any(|t| t.buffered() >= t.ticks(KEYFRAME_WAIT));
        // A video track waits for its first keyframe (its parameter sets), up to KEYFRAME_WAIT.
        let ready = waited || self.tracks.iter().all(|t| !t.is_video() || t.started);
        if !ready {
            return Ok(false);
        }
        let mut number = 0;
        for t in self.tracks.iter_mut() {
            match header_for(t) {
                Ok(codec) => {
                    number += 1;
                    if let Codec::Video { width, height, .. } | Codec::Mjpeg { width, height } = &codec {
                        t.resolution = Some((*width, *height));
                        t.stats.resolution = t.resolution;
                    }
                    t.stats.codec = codec_label(&codec, t);
                    t.header = Some(TrackHeader {
                        number,
                        codec,
                        timescale: t.clock,
                    });
                }
                Err(reason) => {
                    t.dropped_track = true;
                    t.complete.clear();
                    t.waiting.clear();
                    t.heap.clear();
                    t.timed = None;
                    let e = NotRecorded {
                        track: t.index,
                        codec: t.codec_name.clone(),
                        reason,
                    };
                    self.notes.push(e.to_string());
                    self.not_recorded.push(e);
                }
            }
        }
        self.fix_origin();
        let headers: Vec<TrackHeader> = self.tracks.iter().filter_map(|t| t.header.clone()).collect();
        let base = self.position;
        let bytes = match &mut self.container {
            Container::Mp4(w) => w.header(&headers, base),
            Container::Mkv(w) => w.header(&headers, base),
        };
        self.put(&bytes)?;
        self.header_written = true;
        Ok(true)
    }

    /// Chooses the common clock and its zero from the tracks that have frames.
    fn fix_origin(&mut self) {
        // NTP minus arrival, from the first track with frames and a sender report.
        self.ntp_offset = self.tracks.iter().find_map(|t| {
            let ntp = ntp_time_of(t, t.first_ext?)?;
            Some(ntp - t.transit?)
        });
        self.alignment = if self.ntp_offset.is_some() {
            Alignment::SenderReports
        } else {
            Alignment::Arrival
        };
        let starts: Vec<i128> = self
            .tracks
            .iter()
            .filter(|t| !t.dropped_track)
            .filter_map(|t| {
                let first_dts = t.complete.first()?.dts;
                self.common_time(t, first_dts)
            })
            .collect();
        self.origin = starts.into_iter().min();
    }

    /// Nanoseconds on the common clock of RTP time `ext` of track `t`.
    fn common_time(&self, t: &TrackRec, ext: i64) -> Option<i128> {
        let ticks_ns = |delta: i64| i128::from(delta) * 1_000_000_000 / i128::from(t.clock);
        if self.ntp_offset.is_some() {
            if let Some(ntp) = ntp_time_of(t, ext) {
                return Some(ntp);
            }
        }
        Some(t.transit? + self.ntp_offset.unwrap_or(0) + ticks_ns(ext - t.first_ext?))
    }

    /// Writes the complete samples of every track as one fragment. With
    /// `keep_last`, that track's last sample (a keyframe) stays for the next.
    fn write_fragment(&mut self, keep_last: Option<usize>) -> Result<(), RecordError> {
        let mut taken: Vec<(usize, Vec<Complete>)> = Vec::new();
        for (i, t) in self.tracks.iter_mut().enumerate() {
            if t.header.is_none() || t.complete.is_empty() {
                continue;
            }
            let mut samples = std::mem::take(&mut t.complete);
            if keep_last == Some(i) {
                if let Some(last) = samples.pop() {
                    t.complete.push(last);
                }
            }
            if !samples.is_empty() {
                taken.push((i, samples));
            }
        }
        if taken.is_empty() {
            return Ok(());
        }
        // Shifts of tracks that start in this fragment.
        for (i, samples) in &taken {
            if self.tracks[*i].shift.is_some() {
                continue;
            }
            let t = &self.tracks[*i];
            let first = samples[0].dts;
            let origin = match self.origin {
                Some(o) => o,
                None => {
                    let o = self.common_time(t, first).unwrap_or(0);
                    self.origin = Some(o);
                    o
                }
            };
            let start_ns = self.common_time(t, first).unwrap_or(origin) - origin;
            let start = (start_ns.max(0) * i128::from(t.clock) / 1_000_000_000) as i64;
            self.tracks[*i].shift = Some(start - first);
        }
        let mut runs: Vec<(usize, Vec<Sample>)> = Vec::with_capacity(taken.len());
        for (i, samples) in taken {
            let t = &mut self.tracks[i];
            let shift = t.shift.unwrap_or(0);
            let mut out = Vec::with_capacity(samples.len());
            for c in samples {
                let dts = c.dts + shift;
                let cts = c.pts - c.dts;
                let (Ok(dts), Ok(cts), Ok(duration)) =
                    (u64::try_from(dts), i32::try_from(cts), u32::try_from(c.duration))
                else {
                    t.stats.dropped += 1;
                    continue;
                };
                t.stats.frames += 1;
                t.stats.bytes += c.data.len() as u64;
                t.begin.get_or_insert(dts);
                t.end = Some(dts + u64::from(duration));
                out.push(Sample {
                    dts,
                    cts,
                    duration,
                    keyframe: c.keyframe,
                    data: c.data,
                });
            }
            if !out.is_empty() {
                runs.push((i, out));
            }
        }
        let refs: Vec<Run<'_>> = runs
            .iter()
            .filter_map(|(i, s)| {
                Some(Run {
                    track: self.tracks[*i].header.as_ref()?,
                    samples: s,
                })
            })
            .collect();
        if refs.is_empty() {
            return Ok(());
        }
        let position = self.position;
        let (output, count) = match &mut self.container {
            Container::Mp4(w) => (w.fragment(&refs), 1),
            Container::Mkv(w) => w.clusters(&refs, position),
        };
        for piece in &output.pieces {
            self.out.write_all(piece)?;
            self.position += piece.len() as u64;
        }
        self.out.flush()?;
        self.fragments += count;
        Ok(())
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), RecordError> {
        self.out.write_all(bytes)?;
        self.position += bytes.len() as u64;
        self.out.flush()?;
        Ok(())
    }

    /// Writes every frame still held, then the duration and index; the
    /// summary. Frames after this are ignored; a second call only returns the
    /// summary.
    pub fn finish(&mut self) -> Result<RecordSummary, RecordError> {
        if self.finished {
            return Ok(self.summary());
        }
        self.finished = true;
        for t in self.tracks.iter_mut() {
            t.drain();
        }
        // No track at all (the session never set one up): the file stays empty.
        if !self.header_written && !self.tracks.is_empty() {
            self.try_header(true)?;
        }
        self.write_fragment(None)?;
        let ends: Vec<(u32, u64, u32)> = self
            .tracks
            .iter()
            .filter_map(|t| Some((t.header.as_ref()?.number, t.end?, t.clock)))
            .collect();
        let position = self.position;
        match &mut self.container {
            Container::Mp4(w) => w.finish(&mut self.out, &ends)?,
            Container::Mkv(w) => w.finish(&mut self.out, &ends, position)?,
        }
        self.out.flush()?;
        self.position = self.out.stream_position()?;
        Ok(self.summary())
    }

    /// What was written so far.
    pub fn summary(&self) -> RecordSummary {
        let tracks: Vec<RecordedTrack> = self
            .tracks
            .iter()
            .filter(|t| !t.dropped_track)
            .map(|t| {
                let mut s = t.stats.clone();
                if let (Some(b), Some(e)) = (t.begin, t.end) {
                    s.duration = ticks_to_duration(e.saturating_sub(b), t.clock);
                }
                s
            })
            .collect();
        let duration = self
            .tracks
            .iter()
            .filter_map(|t| Some(ticks_to_duration(t.end?, t.clock)))
            .max()
            .unwrap_or_default();
        RecordSummary {
            format: self.format,
            tracks,
            not_recorded: self.not_recorded.clone(),
            fragments: self.fragments,
            bytes: self.position,
            duration,
            alignment: self.alignment,
        }
    }

    /// The writer back (after [`Recorder::finish`]).
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// The container configuration of a track at header time, or why it has none.
fn header_for(t: &TrackRec) -> Result<Codec, String> {
    match &t.setup {
        Setup::Video { kind, sdp_sets } => {
            let sets = if t.started && t.first_sets.complete(*kind) {
                &t.first_sets
            } else if sdp_sets.complete(*kind) {
                sdp_sets
            } else if t.started {
                return Err("no parameter sets (SPS/PPS) in the SDP or the stream".to_owned());
            } else {
                return Err(format!(
                    "no keyframe within {} s and no parameter sets in the SDP",
                    KEYFRAME_WAIT.as_secs()
                ));
            };
            let info: SpsInfo =
                params::parse_sps(*kind, sets).ok_or_else(|| "its SPS could not be parsed".to_owned())?;
            let record = params::config_record(*kind, sets, &info)
                .ok_or_else(|| "its parameter sets are too large".to_owned())?;
            Ok(Codec::Video {
                kind: *kind,
                record,
                width: info.width,
                height: info.height,
            })
        }
        Setup::Aac {
            config,
            sample_rate,
            channels,
        } => Ok(Codec::Aac {
            config: config.clone(),
            sample_rate: *sample_rate,
            channels: *channels,
        }),
        Setup::G711 { alaw, channels } => Ok(Codec::G711 {
            alaw: *alaw,
            sample_rate: t.clock,
            channels: *channels,
        }),
        Setup::Mjpeg => match t.resolution {
            Some((width, height)) => Ok(Codec::Mjpeg { width, height }),
            None => Err(format!("no readable JPEG image within {} s", KEYFRAME_WAIT.as_secs())),
        },
        Setup::Opus { channels } => Ok(Codec::Opus { channels: *channels }),
        Setup::L16 { channels } => Ok(Codec::Pcm {
            sample_rate: t.clock,
            channels: *channels,
        }),
    }
}

/// The RFC 6381 codec string of a configured track.
fn codec_label(codec: &Codec, t: &TrackRec) -> String {
    match codec {
        Codec::Video { kind, .. } => {
            let sets = if t.first_sets.complete(*kind) {
                &t.first_sets
            } else if let Setup::Video { sdp_sets, .. } = &t.setup {
                sdp_sets
            } else {
                &t.first_sets
            };
            match params::parse_sps(*kind, sets) {
                Some(info) => params::codec_string(*kind, sets, &info),
                None => t.codec_name.to_ascii_lowercase(),
            }
        }
        Codec::Aac { config, .. } => {
            let object = config.first().map_or(2, |b| b >> 3);
            format!("mp4a.40.{object}")
        }
        Codec::G711 { alaw: true, .. } => "alaw".to_owned(),
        Codec::G711 { alaw: false, .. } => "ulaw".to_owned(),
        Codec::Mjpeg { .. } => "mjpeg".to_owned(),
        Codec::Opus { .. } => "opus".to_owned(),
        Codec::Pcm { .. } => "pcm_s16le".to_owned(),
    }
}

/// Whether `new` has a parameter set that `old` does not.
fn changed(old: &ParameterSets, new: &ParameterSets) -> bool {
    let differs = |o: &[Bytes], n: &[Bytes]| n.iter().any(|s| !o.contains(s));
    differs(&old.vps, &new.vps) || differs(&old.sps, &new.sps) || differs(&old.pps, &new.pps)
}

/// `new`'s sets replace those of the same kinds in `old`.
fn merge(old: &mut ParameterSets, new: ParameterSets) {
    if !new.vps.is_empty() {
        old.vps = new.vps;
    }
    if !new.sps.is_empty() {
        old.sps = new.sps;
    }
    if !new.pps.is_empty() {
        old.pps = new.pps;
    }
}

/// Nanoseconds since the NTP epoch of RTP time `ext` of `t`, by its sender report.
fn ntp_time_of(t: &TrackRec, ext: i64) -> Option<i128> {
    let (ntp, rtp) = t.sr?;
    let first_ext = t.first_ext?;
    // The report's RTP time, unrolled next to the first frame's.
    let sr_ext = first_ext + i64::from(rtp.wrapping_sub(first_ext as u32) as i32);
    let ntp_ns = i128::from(ntp >> 32) * 1_000_000_000 + ((i128::from(ntp & 0xffff_ffff) * 1_000_000_000) >> 32);
    Some(ntp_ns + i128::from(ext - sr_ext) * 1_000_000_000 / i128::from(t.clock))
}

fn ticks_to_duration(ticks: u64, clock: u32) -> Duration {
    if clock == 0 {
        return Duration::ZERO;
    }
    Duration::from_nanos((u128::from(ticks) * 1_000_000_000 / u128::from(clock)).min(u128::from(u64::MAX)) as u64)
}

/// The bytes of one fragment in order: headers the writer made, and the
/// samples' data as they are (written without copying them together).
#[derive(Debug, Default)]
pub(crate) struct Output {
    pub(crate) pieces: Vec<Bytes>,
}

impl Output {
    pub(crate) fn push(&mut self, bytes: impl Into<Bytes>) {
        self.pieces.push(bytes.into());
    }
}

#[cfg(test)]
mod tests;
