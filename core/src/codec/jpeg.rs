//! Motion JPEG over RTP (RFC 2435): a depacketizer (RTP packets in, whole
//! JFIF images out) and a packetizer (JFIF images in, RTP payloads out).
//!
//! RFC 2435 does not carry a JPEG file: it carries the entropy-coded data of
//! one baseline scan with an 8-byte header (type, quality factor `Q`, size in
//! 8-pixel units, fragment offset), and the receiver rebuilds the headers:
//!
//! - quantization tables: computed from `Q` (1..=99) by the scaling of RFC 2435
//!   appendix A, or, for `Q` 128..=255, sent in-band in the first packet of a
//!   frame. For `Q` 128..=254 a sender may leave them out of later frames
//!   (length 0): the tables last received for that `Q` are used;
//! - Huffman tables: always the standard ones (JPEG Annex K.3, the tables
//!   RFC 2435 appendix B names); [`std_huffman`] builds them;
//! - frame and scan headers: three components (Y, Cb, Cr), Y sampled 2x1
//!   (type 0, 4:2:2) or 2x2 (type 1, 4:2:0), Cb and Cr 1x1; types 64 and 65
//!   are the same with restart markers, whose interval comes in a restart
//!   marker header after the main header of every packet.
//!
//! The [`Depacketizer`] appends fragments while their offsets follow on
//! without a gap and emits a [`VideoFrame`] (`data` from SOI to EOI, always a
//! keyframe) at the packet with the marker bit. A loss, a gap in the offsets,
//! or a new timestamp before the marker drops the frame being assembled;
//! assembly starts again at the next packet whose fragment offset is 0.
//! Images wider or taller than 2040 pixels (sent with size 0) take their size
//! from the SDP's `a=x-dimensions:W,H` when present.
//!
//! The [`Packetizer`] is for servers. It sends every image with `Q` = 255 and
//! its own quantization tables in-band, so any image it accepts goes through
//! unchanged (the entropy-coded data are not touched). It accepts what RFC 2435
//! can describe: baseline (or 8-bit extended sequential) Huffman JPEG, one
//! scan, three components with Y at 2x1 or 2x2 and Cb/Cr at 1x1 sharing one
//! 8-bit quantization table, the standard Huffman tables (or no DHT segment,
//! as in Motion JPEG files that rely on them), and a size of at most 2040x2040.
//! Anything else (progressive, grayscale, 4:4:4, optimized Huffman tables,
//! 12-bit) is refused with a [`PacketizeError`]; the stream has to be
//! re-encoded (for FFmpeg: `-c:v mjpeg -huffman default -pix_fmt yuvj420p`).

use std::collections::VecDeque;

use bytes::{BufMut, Bytes, BytesMut};

use super::{DepacketizeError, SetupError, VideoCodec, VideoFrame};
use crate::rtp::RtpPacket;
use crate::sdp::Media;

const NAME: &str = "JPEG";

/// Frames kept for [`Depacketizer::pull`] before the oldest are dropped.
const MAX_QUEUED: usize = 16;

/// Main JPEG header length (RFC 2435 §3.1).
const MAIN_HEADER_LEN: usize = 8;
/// Restart marker header length (RFC 2435 §3.1.7).
const RESTART_HEADER_LEN: usize = 4;
/// Quantization table header length, without the tables (RFC 2435 §3.1.8).
const QTABLE_HEADER_LEN: usize = 4;
/// Largest fragment offset plus one (24 bits).
const MAX_SCAN_BYTES: usize = 1 << 24;

/// JPEG markers used here.
const SOI: u8 = 0xd8;
const EOI: u8 = 0xd9;
const SOS: u8 = 0xda;
const DQT: u8 = 0xdb;
const DRI: u8 = 0xdd;
const DHT: u8 = 0xc4;
const SOF0: u8 = 0xc0;
const SOF1: u8 = 0xc1;

/// Zigzag scan position → natural (row-major) position of an 8x8 block.
const ZIGZAG: [u8; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21,
    28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54,
    47, 55, 62, 63,
];

/// The example luminance quantization table of JPEG Annex K.1 (natural order),
/// which RFC 2435 appendix A scales by `Q`.
const LUMA_QUANTIZER: [u8; 64] = [
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51,
    87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92, 49, 64, 78, 87, 103, 121, 120, 101,
    72, 92, 95, 98, 112, 100, 103, 99,
];

/// The example chrominance quantization table of JPEG Annex K.1 (natural order).
const CHROMA_QUANTIZER: [u8; 64] = {
    // Only the top-left 4x4 corner (less one diagonal) differs from 99.
    const CORNER: [[u8; 4]; 4] = [[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99], [47, 66, 99, 99]];
    let mut t = [99u8; 64];
    let mut r = 0;
    while r < 4 {
        let mut c = 0;
        while c < 4 {
            t[r * 8 + c] = CORNER[r][c];
            c += 1;
        }
        r += 1;
    }
    t
};

/// The luminance and chrominance quantization tables (zigzag order, as in a
/// DQT segment) for `q` in 1..=99, by RFC 2435 appendix A: the Annex K tables
/// scaled by `5000 / q` below 50 and `200 - 2q` from 50, each entry rounded and
/// kept in 1..=255. Values outside 1..=99 are clamped into it.
///
/// ```
/// use rtsp_toolkit_core::codec::jpeg::quantization_tables;
/// let [luma, chroma] = quantization_tables(50); // the Annex K tables themselves
/// assert_eq!(luma[..4], [16, 11, 12, 14]);
/// assert_eq!(chroma[..3], [17, 18, 18]);
/// assert!(quantization_tables(99).iter().flatten().all(|&v| v == 1 || v == 2));
/// ```
pub fn quantization_tables(q: u8) -> [[u8; 64]; 2] {
    let factor = u32::from(q.clamp(1, 99));
    let scale = if factor < 50 { 5000 / factor } else { 200 - factor * 2 };
    let mut out = [[0u8; 64]; 2];
    for (i, &natural) in ZIGZAG.iter().enumerate() {
        for (table, base) in out.iter_mut().zip([&LUMA_QUANTIZER, &CHROMA_QUANTIZER]) {
            let v = (u32::from(base[usize::from(natural)]) * scale + 50) / 100;
            table[i] = v.clamp(1, 255) as u8;
        }
    }
    out
}

/// One Huffman table as a DHT segment stores it: the number of codes of each
/// length 1..=16, then the symbols in code order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HuffmanTable {
    /// Codes of length 1..=16.
    pub counts: [u8; 16],
    /// Symbols, as many as the counts add up to.
    pub symbols: Vec<u8>,
}

/// Code counts per length of the standard tables (JPEG Annex K.3):
/// luminance DC, chrominance DC, luminance AC, chrominance AC.
const DC_LUMA_COUNTS: [u8; 16] = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
const DC_CHROMA_COUNTS: [u8; 16] = [0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0];
const AC_LUMA_COUNTS: [u8; 16] = [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7d];
const AC_CHROMA_COUNTS: [u8; 16] = [0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77];

/// The standard AC tables give their frequent symbols short codes in this
/// order; every other AC symbol (run 0..=15, size 1..=10) has a 16-bit code,
/// in ascending symbol order after these.
const AC_LUMA_SHORT: [u8; 37] = [
    0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07, 0x22, 0x71, 0x14,
    0x32, 0x81, 0x91, 0xa1, 0x08, 0x23, 0x42, 0xb1, 0xc1, 0x15, 0x52, 0xd1, 0xf0, 0x24, 0x33, 0x62, 0x72, 0x82,
];
const AC_CHROMA_SHORT: [u8; 43] = [
    0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71, 0x13, 0x22, 0x32,
    0x81, 0x08, 0x14, 0x42, 0x91, 0xa1, 0xb1, 0xc1, 0x09, 0x23, 0x33, 0x52, 0xf0, 0x15, 0x62, 0x72, 0xd1, 0x0a, 0x16,
    0x24, 0x34, 0xe1, 0x25, 0xf1,
];

/// The standard Huffman table of class `ac` (false: DC) for luminance
/// (`chroma` false) or chrominance (JPEG Annex K.3, the tables RFC 2435
/// receivers assume).
///
/// ```
/// use rtsp_toolkit_core::codec::jpeg::std_huffman;
/// let t = std_huffman(true, false);
/// assert_eq!(t.symbols.len(), 162);
/// assert_eq!(t.symbols[..4], [0x01, 0x02, 0x03, 0x00]);
/// assert_eq!(std_huffman(false, true).symbols, (0..12).collect::<Vec<u8>>());
/// ```
pub fn std_huffman(ac: bool, chroma: bool) -> HuffmanTable {
    let (counts, short): (&[u8; 16], &[u8]) = match (ac, chroma) {
        (false, false) => (&DC_LUMA_COUNTS, &[]),
        (false, true) => (&DC_CHROMA_COUNTS, &[]),
        (true, false) => (&AC_LUMA_COUNTS, &AC_LUMA_SHORT),
        (true, true) => (&AC_CHROMA_COUNTS, &AC_CHROMA_SHORT),
    };
    let symbols = if ac {
        let mut symbols = short.to_vec();
        for run in 0..16u8 {
            for size in 1..=10u8 {
                let s = run << 4 | size;
                if !short.contains(&s) {
                    symbols.push(s);
                }
            }
        }
        symbols
    } else {
        (0..12).collect()
    };
    HuffmanTable {
        counts: *counts,
        symbols,
    }
}

/// The Huffman tables a baseline header lists, each with its DHT class and id
/// (`Tc << 4 | Th`): DC 0 and AC 0 for luminance, DC 1 and AC 1 for chrominance.
fn std_tables() -> [(u8, HuffmanTable); 4] {
    [
        (0x00, std_huffman(false, false)),
        (0x10, std_huffman(true, false)),
        (0x01, std_huffman(false, true)),
        (0x11, std_huffman(true, true)),
    ]
}

/// What one frame's headers need, from the RFC 2435 headers.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FrameParams {
    /// 0 (4:2:2) or 1 (4:2:0); the restart bit is in `restart_interval`.
    kind: u8,
    width: u16,
    height: u16,
    /// 0: no restart markers.
    restart_interval: u16,
    /// One or two 64-entry tables (zigzag order): luminance, chrominance.
    tables: Vec<[u8; 64]>,
}

/// Writes a JFIF image: SOI, JFIF APP0, DQT, DRI, SOF0, DHT, SOS, `scan`, EOI.
fn write_image(p: &FrameParams, scan: &[u8], out: &mut BytesMut) {
    out.reserve(700 + scan.len());
    out.put_slice(&[0xff, SOI]);
    // APP0 "JFIF\0", version 1.1, no density unit, 1:1, no thumbnail.
    out.put_slice(&[0xff, 0xe0, 0, 16, b'J', b'F', b'I', b'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0]);
    for (id, table) in p.tables.iter().enumerate() {
        out.put_slice(&[0xff, DQT, 0, 67, id as u8]);
        out.put_slice(table);
    }
    if p.restart_interval != 0 {
        out.put_slice(&[0xff, DRI, 0, 4]);
        out.put_u16(p.restart_interval);
    }
    let chroma_table = (p.tables.len() > 1) as u8;
    let y_sampling = if p.kind == 0 { 0x21 } else { 0x22 };
    out.put_slice(&[0xff, SOF0, 0, 17, 8]);
    out.put_u16(p.height);
    out.put_u16(p.width);
    out.put_slice(&[3, 1, y_sampling, 0, 2, 0x11, chroma_table, 3, 0x11, chroma_table]);
    for (class_id, t) in std_tables() {
        out.put_slice(&[0xff, DHT]);
        out.put_u16((3 + 16 + t.symbols.len()) as u16);
        out.put_u8(class_id);
        out.put_slice(&t.counts);
        out.put_slice(&t.symbols);
    }
    out.put_slice(&[0xff, SOS, 0, 12, 3, 1, 0x00, 2, 0x11, 3, 0x11, 0, 63, 0]);
    out.put_slice(scan);
    if !scan.ends_with(&[0xff, EOI]) {
        out.put_slice(&[0xff, EOI]);
    }
}

/// A frame being assembled.
#[derive(Debug)]
struct Partial {
    timestamp: u32,
    params: FrameParams,
    scan: BytesMut,
}

/// Depacketizes one RFC 2435 stream into JFIF images (see the module
/// documentation).
///
/// Completed frames wait for [`pull`](Self::pull); at most 16 are kept, and
/// if the caller does not pull, the oldest are dropped.
#[derive(Debug)]
pub struct Depacketizer {
    max_frame_bytes: usize,
    /// `a=x-dimensions`, for images whose size does not fit the header.
    dimensions: Option<(u16, u16)>,
    /// In-band tables by `Q` - 128, for frames that leave them out (`Q` < 255).
    cached_tables: Vec<(u8, Vec<[u8; 64]>)>,
    partial: Option<Partial>,
    /// Parameters of the last emitted frame, to flag changes.
    last: Option<(u8, u16, u16, u16)>,
    loss: u32,
    frames: VecDeque<VideoFrame>,
}

fn malformed(what: impl Into<String>) -> DepacketizeError {
    DepacketizeError::Malformed {
        codec: NAME,
        what: what.into(),
    }
}

fn unsupported(what: impl Into<String>) -> DepacketizeError {
    DepacketizeError::Unsupported {
        codec: NAME,
        what: what.into(),
    }
}

/// The headers of one packet.
struct PacketHeaders<'a> {
    offset: usize,
    kind: u8,
    q: u8,
    width: u16,
    height: u16,
    restart_interval: u16,
    /// In-band tables (first packet with `Q` >= 128 only); `Some(empty)` when
    /// the header is there with length 0.
    tables: Option<Vec<[u8; 64]>>,
    data: &'a [u8],
}

fn parse_packet(p: &[u8]) -> Result<PacketHeaders<'_>, DepacketizeError> {
    if p.is_empty() {
        return Err(DepacketizeError::Empty { codec: NAME });
    }
    if p.len() < MAIN_HEADER_LEN {
        return Err(malformed("shorter than the main header"));
    }
    let offset = usize::from(p[1]) << 16 | usize::from(p[2]) << 8 | usize::from(p[3]);
    // p[0], the type-specific field, tells fields of interlaced video apart;
    // each is emitted as an image of its own.
    let (kind, q) = (p[4], p[5]);
    let (width, height) = (u16::from(p[6]) * 8, u16::from(p[7]) * 8);
    let mut rest = &p[MAIN_HEADER_LEN..];
    let restart_interval = match kind {
        0 | 1 => 0,
        64 | 65 => {
            let Some((h, after)) = rest.split_first_chunk::<RESTART_HEADER_LEN>() else {
                return Err(malformed("restart marker header missing"));
            };
            rest = after;
            u16::from_be_bytes([h[0], h[1]])
        }
        t => return Err(unsupported(format!("type {t}"))),
    };
    if q == 0 || (100..128).contains(&q) {
        return Err(unsupported(format!("reserved Q value {q}")));
    }
    let mut tables = None;
    if q >= 128 && offset == 0 {
        let Some((h, after)) = rest.split_first_chunk::<QTABLE_HEADER_LEN>() else {
            return Err(malformed("quantization table header missing"));
        };
        let (precision, len) = (h[1], usize::from(u16::from_be_bytes([h[2], h[3]])));
        let Some(bytes) = after.get(..len) else {
            return Err(malformed("quantization tables truncated"));
        };
        rest = &after[len..];
        if precision != 0 {
            return Err(unsupported("16-bit quantization tables"));
        }
        if len % 64 != 0 {
            return Err(malformed(format!("quantization tables of {len} bytes")));
        }
        if q == 255 && len == 0 {
            return Err(malformed("Q 255 without quantization tables"));
        }
        // Types 0/1 use two tables (luminance, chrominance); a third or fourth is unused.
        let list = bytes
            .chunks_exact(64)
            .take(2)
            .map(|c| {
                let mut t = [0u8; 64];
                t.copy_from_slice(c);
                t
            })
            .collect();
        tables = Some(list);
    }
    Ok(PacketHeaders {
        offset,
        kind: kind & 1,
        q,
        width,
        height,
        restart_interval,
        tables,
        data: rest,
    })
}

impl Depacketizer {
    /// A depacketizer for the MJPEG track `media` (encoding name `JPEG`, or
    /// static payload type 26), dropping images of over `max_frame_bytes`
    /// bytes (headers included).
    ///
    /// # Errors
    ///
    /// [`SetupError::UnsupportedCodec`] when `media` is not JPEG.
    pub fn new(media: &Media, max_frame_bytes: usize) -> Result<Self, SetupError> {
        if !media.codec_is("JPEG") {
            return Err(SetupError::UnsupportedCodec(media.codec.clone()));
        }
        let dimensions = media.attribute("x-dimensions").and_then(|v| {
            let (w, h) = v.split_once(',')?;
            Some((w.trim().parse().ok()?, h.trim().parse().ok()?))
        });
        Ok(Depacketizer {
            max_frame_bytes,
            dimensions,
            cached_tables: Vec::new(),
            partial: None,
            last: None,
            loss: 0,
            frames: VecDeque::new(),
        })
    }

    /// Feeds one RTP packet; `lost` is the number of packets missing right
    /// before it. A loss drops the image being assembled; a packet that is
    /// not the start of an image (fragment offset 0) while none is being
    /// assembled is skipped silently.
    ///
    /// # Errors
    ///
    /// [`DepacketizeError::Empty`] for an empty payload,
    /// [`DepacketizeError::Unsupported`] for types other than 0, 1, 64 and 65,
    /// reserved `Q` values and 16-bit tables,
    /// [`DepacketizeError::Malformed`] for truncated headers, fragment gaps
    /// without loss, and in-band tables that are missing, and
    /// [`DepacketizeError::FrameTooLarge`] when the image outgrows the limit.
    /// After an error the image being assembled is dropped.
    pub fn push(&mut self, packet: &RtpPacket, lost: u32) -> Result<(), DepacketizeError> {
        self.loss = self.loss.saturating_add(lost);
        if lost > 0 {
            self.partial = None;
        }
        if let Some(p) = &self.partial {
            if p.timestamp != packet.timestamp {
                // The marker packet of the previous image never came.
                self.partial = None;
            }
        }
        let result = self.push_payload(packet);
        if result.is_err() {
            self.partial = None;
        }
        result
    }

    fn push_payload(&mut self, packet: &RtpPacket) -> Result<(), DepacketizeError> {
        let h = parse_packet(&packet.payload)?;
        if h.offset == 0 {
            if self.partial.take().is_some() {
                tracing::debug!("JPEG: image restarted without its marker packet; dropped");
            }
            let params = self.frame_params(&h)?;
            self.partial = Some(Partial {
                timestamp: packet.timestamp,
                params,
                scan: BytesMut::new(),
            });
        }
        let Some(partial) = self.partial.as_mut() else {
            // Waiting for the start of an image.
            return Ok(());
        };
        if h.offset != partial.scan.len() {
            return Err(malformed(format!(
                "fragment at offset {} where {} was expected",
                h.offset,
                partial.scan.len()
            )));
        }
        // Room for the headers (under 1 KiB) counts against the limit too.
        if partial.scan.len() + h.data.len() + header_len(&partial.params) > self.max_frame_bytes {
            return Err(DepacketizeError::FrameTooLarge {
                codec: NAME,
                limit: self.max_frame_bytes,
            });
        }
        partial.scan.extend_from_slice(h.data);
        if packet.marker {
            if let Some(partial) = self.partial.take() {
                self.emit(partial);
            }
        }
        Ok(())
    }

    /// The image parameters from the first packet of an image.
    fn frame_params(&mut self, h: &PacketHeaders<'_>) -> Result<FrameParams, DepacketizeError> {
        let tables = match (&h.tables, h.q) {
            (_, 1..=99) => quantization_tables(h.q).to_vec(),
            (Some(t), _) if !t.is_empty() => {
                if h.q < 255 {
                    self.cached_tables.retain(|(q, _)| *q != h.q);
                    self.cached_tables.push((h.q, t.clone()));
                }
                t.clone()
            }
            _ => match self.cached_tables.iter().find(|(q, _)| *q == h.q) {
                Some((_, t)) => t.clone(),
                None => return Err(malformed(format!("no quantization tables received for Q {}", h.q))),
            },
        };
        let (mut width, mut height) = (h.width, h.height);
        if width == 0 || height == 0 {
            let Some((w, hh)) = self.dimensions else {
                return Err(malformed("zero image size and no a=x-dimensions"));
            };
            if width == 0 {
                width = w;
            }
            if height == 0 {
                height = hh;
            }
        }
        if width == 0 || height == 0 {
            return Err(malformed("zero image size"));
        }
        Ok(FrameParams {
            kind: h.kind,
            width,
            height,
            restart_interval: h.restart_interval,
            tables,
        })
    }

    fn emit(&mut self, partial: Partial) {
        let p = &partial.params;
        let key = (p.kind, p.width, p.height, p.restart_interval);
        let new_parameters = self.last != Some(key);
        self.last = Some(key);
        let mut out = BytesMut::new();
        write_image(p, &partial.scan, &mut out);
        if self.frames.len() >= MAX_QUEUED {
            tracing::warn!("JPEG: frames not pulled; dropping the oldest");
            self.frames.pop_front();
        }
        self.frames.push_back(VideoFrame {
            codec: VideoCodec::Mjpeg,
            timestamp: partial.timestamp,
            data: out.freeze(),
            keyframe: true,
            new_parameters,
            loss: std::mem::take(&mut self.loss),
        });
    }

    /// The next complete image, oldest first.
    pub fn pull(&mut self) -> Option<VideoFrame> {
        self.frames.pop_front()
    }
}

/// Bytes [`write_image`] adds around the scan data.
fn header_len(p: &FrameParams) -> usize {
    let huffman: usize = std_tables().iter().map(|(_, t)| 4 + 1 + 16 + t.symbols.len()).sum();
    2 + 18 + 69 * p.tables.len() + if p.restart_interval != 0 { 6 } else { 0 } + 19 + huffman + 14 + 2
}

/// The width and height in the frame header (SOF) of the JPEG image `jpeg`;
/// `None` when there is none before the first scan or the segments cannot be
/// walked.
///
/// ```
/// use rtsp_toolkit_core::codec::jpeg::dimensions;
/// let sof = [0xff, 0xd8, 0xff, 0xc0, 0, 11, 8, 0, 240, 1, 64, 1, 1, 0x11, 0];
/// assert_eq!(dimensions(&sof), Some((320, 240)));
/// assert_eq!(dimensions(&[0xff, 0xd8, 0xff, 0xd9]), None);
/// ```
pub fn dimensions(jpeg: &[u8]) -> Option<(u16, u16)> {
    if jpeg.get(..2)? != [0xff, SOI] {
        return None;
    }
    let mut pos = 2;
    // Each segment moves `pos` forward by at least 4 bytes.
    loop {
        while jpeg.get(pos + 1) == Some(&0xff) {
            pos += 1;
        }
        let (&0xff, &marker) = (jpeg.get(pos)?, jpeg.get(pos + 1)?) else {
            return None;
        };
        if marker == SOS || marker == EOI {
            return None;
        }
        let len = usize::from(u16::from_be_bytes([*jpeg.get(pos + 2)?, *jpeg.get(pos + 3)?]));
        if matches!(marker, 0xc0..=0xcf) && !matches!(marker, DHT | 0xc8 | 0xcc) {
            let b = jpeg.get(pos + 4..pos + 9)?;
            return Some((u16::from_be_bytes([b[3], b[4]]), u16::from_be_bytes([b[1], b[2]])));
        }
        pos += 2 + len.max(2);
    }
}

/// Why a JPEG image cannot be sent as RFC 2435.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PacketizeError {
    /// Not a well-formed JPEG image (no SOI, truncated segments, no scan).
    #[error("JPEG: malformed image: {0}")]
    Malformed(String),
    /// A valid JPEG image that RFC 2435 cannot describe.
    #[error("JPEG: cannot be sent over RTP (RFC 2435): {0}")]
    Unsupported(String),
}

/// What the packetizer needs from a JFIF image.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Image<'a> {
    params: FrameParams,
    /// The entropy-coded data from after SOS up to (not including) EOI.
    scan: &'a [u8],
}

fn bad(what: impl Into<String>) -> PacketizeError {
    PacketizeError::Malformed(what.into())
}

fn refuse(what: impl Into<String>) -> PacketizeError {
    PacketizeError::Unsupported(what.into())
}

/// Reads the headers of a JFIF image up to its scan (see the module
/// documentation for what is accepted).
fn parse_image(jpeg: &[u8]) -> Result<Image<'_>, PacketizeError> {
    if jpeg.get(..2) != Some(&[0xff, SOI]) {
        return Err(bad("no SOI marker"));
    }
    let mut pos = 2;
    let mut qtables: [Option<[u8; 64]>; 4] = [None; 4];
    let mut restart_interval = 0u16;
    let mut frame: Option<Sof> = None;
    let std = std_tables();
    loop {
        // Markers may be preceded by fill bytes 0xFF.
        while jpeg.get(pos) == Some(&0xff) && jpeg.get(pos + 1) == Some(&0xff) {
            pos += 1;
        }
        let (Some(&0xff), Some(&marker)) = (jpeg.get(pos), jpeg.get(pos + 1)) else {
            return Err(bad(format!("no marker at byte {pos}")));
        };
        pos += 2;
        if marker == EOI {
            return Err(bad("no scan"));
        }
        if (0xd0..=0xd7).contains(&marker) || marker == 0x01 {
            continue;
        }
        let Some(len) = jpeg
            .get(pos..pos + 2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
        else {
            return Err(bad("truncated segment"));
        };
        let Some(body) = jpeg.get(pos + 2..pos + len.max(2)) else {
            return Err(bad(format!("segment {marker:#04x} truncated")));
        };
        if len < 2 {
            return Err(bad("segment length under 2"));
        }
        pos += len;
        match marker {
            DQT => {
                let mut b = body;
                while let Some((&pq_tq, rest)) = b.split_first() {
                    if pq_tq >> 4 != 0 {
                        return Err(refuse("16-bit quantization tables"));
                    }
                    let Some(t) = rest.get(..64) else {
                        return Err(bad("DQT truncated"));
                    };
                    let mut table = [0u8; 64];
                    table.copy_from_slice(t);
                    qtables[usize::from(pq_tq & 3)] = Some(table);
                    b = &rest[64..];
                }
            }
            DHT => {
                let mut b = body;
                while let Some((&tc_th, rest)) = b.split_first() {
                    let Some(counts) = rest.get(..16) else {
                        return Err(bad("DHT truncated"));
                    };
                    let n: usize = counts.iter().map(|&c| usize::from(c)).sum();
                    let Some(symbols) = rest.get(16..16 + n) else {
                        return Err(bad("DHT truncated"));
                    };
                    let standard = std
                        .iter()
                        .any(|(id, t)| *id == tc_th && t.counts == counts && t.symbols == symbols);
                    if !standard {
                        return Err(refuse("Huffman tables other than the standard ones"));
                    }
                    b = &rest[16 + n..];
                }
            }
            DRI => {
                let Some(b) = body.get(..2) else {
                    return Err(bad("DRI truncated"));
                };
                restart_interval = u16::from_be_bytes([b[0], b[1]]);
            }
            SOF0 | SOF1 => {
                if body.len() < 6 {
                    return Err(bad("SOF truncated"));
                }
                if body[0] != 8 {
                    return Err(refuse(format!("{}-bit samples", body[0])));
                }
                let height = u16::from_be_bytes([body[1], body[2]]);
                let width = u16::from_be_bytes([body[3], body[4]]);
                if body[5] != 3 {
                    return Err(refuse(format!("{} components (3, YCbCr, are needed)", body[5])));
                }
                let Some(c) = body.get(6..15) else {
                    return Err(bad("SOF truncated"));
                };
                frame = Some(Sof {
                    width,
                    height,
                    components: [(c[0], c[1], c[2]), (c[3], c[4], c[5]), (c[6], c[7], c[8])],
                });
            }
            0xc2..=0xcf if marker != DHT && marker != 0xc8 && marker != 0xcc => {
                return Err(refuse(format!(
                    "SOF{} (only baseline sequential Huffman JPEG)",
                    marker - 0xc0
                )));
            }
            SOS => {
                let Some(frame) = frame else {
                    return Err(bad("SOS before SOF"));
                };
                return image_from(jpeg, pos, body, &frame, &qtables, restart_interval);
            }
            _ => {} // APPn, COM, DNL, ...: not carried.
        }
    }
}

/// A three-component frame header.
struct Sof {
    width: u16,
    height: u16,
    /// (component id, sampling `H << 4 | V`, quantization table id), in order.
    components: [(u8, u8, u8); 3],
}

/// The image whose scan header (`sos`, the segment body) ends at `scan_start`.
fn image_from<'a>(
    jpeg: &'a [u8],
    scan_start: usize,
    sos: &[u8],
    frame: &Sof,
    qtables: &[Option<[u8; 64]>; 4],
    restart_interval: u16,
) -> Result<Image<'a>, PacketizeError> {
    let Sof {
        width,
        height,
        components: comps,
    } = *frame;
    let kind = match comps[0].1 {
        0x21 => 0,
        0x22 => 1,
        s => {
            return Err(refuse(format!(
                "Y sampling {}x{} (2x1 or 2x2 are needed)",
                s >> 4,
                s & 15
            )))
        }
    };
    if comps[1].1 != 0x11 || comps[2].1 != 0x11 {
        return Err(refuse("Cb/Cr sampling other than 1x1"));
    }
    if comps[1].2 != comps[2].2 {
        return Err(refuse("Cb and Cr with different quantization tables"));
    }
    let mut tables = Vec::with_capacity(2);
    for id in [comps[0].2, comps[1].2] {
        match qtables.get(usize::from(id)).copied().flatten() {
            Some(t) => tables.push(t),
            None => return Err(bad(format!("quantization table {id} not defined"))),
        }
    }
    if width == 0 || height == 0 || width > 2040 || height > 2040 {
        return Err(refuse(format!("size {width}x{height} (1 to 2040 pixels each way)")));
    }
    // SOS: 3 components in SOF order with tables DC/AC 0 for Y and 1 for Cb/Cr, a full spectral range.
    let expected = [3, comps[0].0, 0x00, comps[1].0, 0x11, comps[2].0, 0x11, 0, 63, 0];
    if sos != expected {
        return Err(refuse(
            "a scan other than one interleaved Y/Cb/Cr scan with Huffman tables 0 (Y) and 1 (Cb, Cr)",
        ));
    }
    // The entropy-coded data end at the first marker that is neither a
    // stuffed 0xFF00 nor a restart marker.
    let data = &jpeg[scan_start..];
    let mut end = data.len();
    let mut i = 0;
    while i + 1 < data.len() {
        if data[i] == 0xff {
            let next = data[i + 1];
            if next != 0x00 && next != 0xff && !(0xd0..=0xd7).contains(&next) {
                if next != EOI {
                    return Err(refuse(format!("marker {next:#04x} after the scan (several scans)")));
                }
                end = i;
                break;
            }
        }
        i += 1;
    }
    let scan = &data[..end];
    if scan.len() >= MAX_SCAN_BYTES {
        return Err(refuse("over 16 MiB of entropy-coded data"));
    }
    Ok(Image {
        params: FrameParams {
            kind,
            width,
            height,
            restart_interval,
            tables,
        },
        scan,
    })
}

/// Cuts JFIF images into RFC 2435 payloads, for a server (see the module
/// documentation for which images it accepts).
#[derive(Debug, Clone)]
pub struct Packetizer {
    max_payload: usize,
}

impl Packetizer {
    /// Smallest payload: the headers of a first packet (main, restart and
    /// quantization table headers, two tables) and one byte of data.
    pub const MIN_PAYLOAD: usize = MAIN_HEADER_LEN + RESTART_HEADER_LEN + QTABLE_HEADER_LEN + 128 + 1;

    /// A packetizer whose payloads are at most `max_payload` bytes (raised
    /// to [`Packetizer::MIN_PAYLOAD`]).
    pub fn new(max_payload: usize) -> Self {
        Packetizer {
            max_payload: max_payload.max(Self::MIN_PAYLOAD),
        }
    }

    /// Checks that `jpeg` can be sent, without packetizing it.
    ///
    /// # Errors
    ///
    /// As [`Packetizer::packetize`].
    pub fn check(jpeg: &[u8]) -> Result<(), PacketizeError> {
        parse_image(jpeg).map(|_| ())
    }

    /// The RTP payloads of one image, in order; the last one takes the
    /// marker bit. Every payload is a fresh buffer.
    ///
    /// # Errors
    ///
    /// [`PacketizeError::Malformed`] when `jpeg` is not a readable JPEG
    /// image, [`PacketizeError::Unsupported`] when RFC 2435 cannot carry it.
    pub fn packetize(&mut self, jpeg: &[u8]) -> Result<Vec<Bytes>, PacketizeError> {
        let image = parse_image(jpeg)?;
        let p = &image.params;
        let restart = p.restart_interval != 0;
        let mut main = [0u8; MAIN_HEADER_LEN];
        main[4] = p.kind | if restart { 64 } else { 0 };
        main[5] = 255;
        main[6] = (p.width.div_ceil(8)) as u8;
        main[7] = (p.height.div_ceil(8)) as u8;
        let mut out = Vec::with_capacity(image.scan.len() / self.max_payload + 1);
        let mut offset = 0;
        loop {
            let mut header = BytesMut::with_capacity(self.max_payload);
            let o = offset as u32;
            main[1..4].copy_from_slice(&o.to_be_bytes()[1..]);
            header.put_slice(&main);
            if restart {
                header.put_u16(p.restart_interval);
                header.put_u16(0xffff); // F = L = 1, count 0x3FFF: not split on restart intervals.
            }
            if offset == 0 {
                header.put_slice(&[0, 0]);
                header.put_u16(64 * p.tables.len() as u16);
                for t in &p.tables {
                    header.put_slice(t);
                }
            }
            let room = self.max_payload.saturating_sub(header.len()).max(1);
            let end = (offset + room).min(image.scan.len());
            header.put_slice(&image.scan[offset..end]);
            out.push(header.freeze());
            offset = end;
            if offset >= image.scan.len() {
                break;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
