//! Media files as [`MediaSource`]s for the rtsp-toolkit server.
//!
//! This crate reads a file (`.mp4`, `.mkv`, `.wav`, `.aac`) and demuxes it
//! into the plain data the sans-IO server machine plays: tracks with the
//! codec parameters their SDP needs, and every access unit with its decode
//! and presentation time, in send order. See [`MediaSource`] for the
//! contract.
//!
//! What each format gives:
//!
//! | file | tracks | samples |
//! |---|---|---|
//! | MP4 (progressive) | H.264 (`avc1`/`avc3`), H.265 (`hvc1`/`hev1`), AAC (`mp4a`) | views of the file |
//! | Matroska / WebM | H.264, H.265, MJPEG (`V_MJPEG`), AAC (`A_AAC*`) | views of the file |
//! | ADTS `.aac` | AAC | views of the file (headers stripped) |
//! | WAV | G.711 A-law 8 kHz mono, re-encoded from PCM | views of one encoded buffer |
//! | `NAME.meta` beside any of them | ONVIF metadata ([`sidecar`]) | one XML document each |
//!
//! H.264 and H.265 samples are NAL units each prefixed by a 4-byte big-endian length;
//! when the container already uses 4-byte lengths (the usual case) they are
//! the file's bytes, otherwise they are rewritten once at load. MJPEG samples
//! are whole JPEG images. Tracks with
//! other codecs are skipped (logged with `tracing::info!`), never
//! transcoded; a file with no playable track is
//! [`MediaError::NoSupportedTrack`]. The per-format modules document their
//! timing rules (edit lists, Matroska decode times, resampling).
//!
//! For the server runtimes: [`library`] (the files a server publishes: root
//! confinement, the shared source cache, URLs) and [`serving`] (its options
//! and the state its connections share), so that a runtime's server is only
//! a loop that moves bytes, datagrams, time and lookups (the UDP port pairs
//! of UDP sessions are bound by `rtsp_toolkit_driver::udp`).
//!
//! Decode helpers for clients: [`audio`] (AAC and G.711 to PCM, WAV writing, playback behind the
//! `playback` feature) and, behind the `decode` feature, `video` (H.264, H.265 and MJPEG to RGB or YUV
//! pictures through FFmpeg's libavcodec). [`record`] writes a session's frames into a fragmented
//! MP4 or Matroska file (stream copy).
//!
//! What it is not: a streaming reader (the whole file is read at once), a
//! transcoder (except WAV → A-law, which RTSP peers can't play as PCM at
//! arbitrary rates), or a general container library.
//!
//! # Memory
//! A source holds one buffer with the whole file (WAV: the encoded A-law
//! stream instead) plus a sample table of about 60 bytes per sample; sample
//! data are reference-counted [`Bytes`] views of that buffer. The server is
//! meant to build a source once per path and share it between sessions as
//! `Arc<MediaSource>`, so playing a file to many clients costs one copy of
//! it. Parsing allocates at most a bounded multiple of the input size: every
//! count read from a file is checked against the bytes it covers before
//! anything is reserved, so the worst case (a crafted file of 1-byte samples)
//! is a few dozen bytes of table per input byte.
//!
//! # Times
//! Each track's times are in its own clock (90000 for video, the sample rate
//! for AAC, 8000 for A-law). If any decode time would be negative (B-frame
//! reorder delay after an MP4 edit list, Matroska's derived decode times),
//! every track is shifted by the same amount of time so the earliest decode
//! time is 0; presentation then starts at that delay (80 ms for the 2-frame
//! B-frame fixtures), which keeps decode time ≤ presentation time.
//!
//! ```no_run
//! use std::path::Path;
//! let source = rtsp_toolkit_media::open(Path::new("fixtures/media/h264_aac.mp4"))?;
//! for track in &source.tracks {
//!     println!("{:?} at {} Hz", track.codec, track.clock_rate);
//! }
//! println!("{} samples, {:?}", source.samples.len(), source.duration);
//! # Ok::<(), rtsp_toolkit_media::MediaError>(())
//! ```

#![warn(missing_docs)]

use std::path::{Path, PathBuf};

use bytes::Bytes;
pub use rtsp_toolkit_core::source::{MediaSource, SourceCodec, SourceSample, SourceTrack};

mod adts;
pub mod audio;
pub mod library;
mod mkv;
mod mp4;
mod nal;
mod reader;
pub mod record;
pub mod serving;
pub mod sidecar;
mod timeline;
pub mod tls;
#[cfg(feature = "decode")]
pub mod video;
mod wav;

/// RTP clock rate of every video track.
const VIDEO_CLOCK: u32 = 90_000;

/// The container formats this crate reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// ISO base media file (`.mp4`).
    Mp4,
    /// Matroska or WebM (`.mkv`, `.webm`).
    Mkv,
    /// RIFF WAVE with PCM audio (`.wav`).
    Wav,
    /// AAC in ADTS framing (`.aac`).
    Aac,
}

impl FileKind {
    /// The kind for a path's extension, compared case-insensitively.
    ///
    /// ```
    /// use rtsp_toolkit_media::FileKind;
    /// use std::path::Path;
    /// assert_eq!(FileKind::from_path(Path::new("a/Clip.MP4")), Some(FileKind::Mp4));
    /// assert_eq!(FileKind::from_path(Path::new("a/clip.avi")), None);
    /// ```
    pub fn from_path(path: &Path) -> Option<FileKind> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "mp4" => FileKind::Mp4,
            "mkv" | "webm" => FileKind::Mkv,
            "wav" => FileKind::Wav,
            "aac" => FileKind::Aac,
            _ => return None,
        })
    }
}

/// Why a file could not be turned into a [`MediaSource`].
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The path's extension is not one of `.mp4`, `.mkv`, `.webm`, `.wav`, `.aac`.
    #[error("unsupported file type {} (expected .mp4, .mkv, .webm, .wav or .aac)", path.display())]
    UnsupportedExtension {
        /// The file.
        path: PathBuf,
    },
    /// The file is well-formed enough to read, but none of its tracks can be
    /// played; `skipped` says why for each.
    #[error("no playable track (skipped: {})", if skipped.is_empty() { "none found".to_owned() } else { skipped.join("; ") })]
    NoSupportedTrack {
        /// Why each track was skipped.
        skipped: Vec<String>,
    },
    /// The file is damaged or not what its extension says.
    #[error("malformed file: {0}")]
    Malformed(String),
}

pub(crate) fn malformed(why: impl Into<String>) -> MediaError {
    MediaError::Malformed(why.into())
}

/// The encoding a WAV file is served in (the server's `?codec=` query
/// parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum WavEncoding {
    /// G.711 A-law, 8 kHz mono (`pcma`, the default).
    #[default]
    Pcma,
    /// L16 at the file's rate and channel count (`l16`).
    L16,
    /// G.722, 16 kHz mono (`g722`).
    G722,
}

impl WavEncoding {
    /// The encoding a `?codec=` value names (ASCII case-insensitive), if any.
    ///
    /// ```
    /// use rtsp_toolkit_media::WavEncoding;
    /// assert_eq!(WavEncoding::from_name("L16"), Some(WavEncoding::L16));
    /// assert_eq!(WavEncoding::from_name("opus"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<WavEncoding> {
        Some(match name.to_ascii_lowercase().as_str() {
            "pcma" => WavEncoding::Pcma,
            "l16" => WavEncoding::L16,
            "g722" => WavEncoding::G722,
            _ => return None,
        })
    }
}

/// Reads and demuxes the file at `path`, choosing the format by extension
/// (see [`FileKind::from_path`]).
///
/// The whole file is read into one buffer; sample data are views of it.
/// When the file has an ONVIF metadata sidecar (`NAME.meta`, see
/// [`sidecar`]), its documents are one more track.
pub fn open(path: &Path) -> Result<MediaSource, MediaError> {
    open_with(path, WavEncoding::default())
}

/// [`open`], with WAV audio served in `encoding` (other kinds of file do
/// not look at it).
pub fn open_with(path: &Path, encoding: WavEncoding) -> Result<MediaSource, MediaError> {
    let kind = FileKind::from_path(path).ok_or_else(|| MediaError::UnsupportedExtension { path: path.to_owned() })?;
    let data = std::fs::read(path).map_err(|source| MediaError::Io {
        path: path.to_owned(),
        source,
    })?;
    sidecar::attach_file(from_bytes_with(Bytes::from(data), kind, encoding)?, path)
}

/// Demuxes a file already in memory.
///
/// Total: any input gives `Ok` or a typed `Err`, never a panic, and memory
/// use is bounded by a small multiple of `data.len()`.
///
/// ```
/// use bytes::Bytes;
/// use rtsp_toolkit_media::{from_bytes, FileKind, MediaError};
/// let err = from_bytes(Bytes::from_static(b"not a wav"), FileKind::Wav).unwrap_err();
/// assert!(matches!(err, MediaError::Malformed(_)));
/// ```
pub fn from_bytes(data: Bytes, kind: FileKind) -> Result<MediaSource, MediaError> {
    from_bytes_with(data, kind, WavEncoding::default())
}

/// [`from_bytes`], with WAV audio served in `encoding`.
pub fn from_bytes_with(data: Bytes, kind: FileKind, encoding: WavEncoding) -> Result<MediaSource, MediaError> {
    let (tracks, skipped) = match kind {
        FileKind::Mp4 => mp4::demux(&data)?,
        FileKind::Mkv => mkv::demux(&data)?,
        FileKind::Wav => wav::demux(&data, encoding)?,
        FileKind::Aac => adts::demux(&data)?,
    };
    timeline::finish(tracks, skipped)
}
