//! H.264 over RTP (RFC 6184): a depacketizer (RTP packets in, access units
//! out) and a packetizer (access units in, RTP payloads out).
//!
//! The [`Depacketizer`] understands packetization modes 0 and 1: single NAL
//! unit packets (types 1-23), STAP-A (24) and FU-A (28). The interleaved
//! mode's STAP-B, MTAP16/24 and FU-B give [`DepacketizeError::Unsupported`].
//! It emits one [`VideoFrame`] per access unit, in Annex B form. An access
//! unit ends at a packet with the marker bit, or when a packet with another
//! RTP timestamp arrives (for cameras that never set the marker). Parameter
//! sets, SEI and access unit delimiters are part of the access unit they
//! arrive with, never frames of their own: an access unit that ends without
//! any slice is carried over into the next one.
//!
//! It does **not** parse SPS/PPS contents, reorder packets, decode, or
//! check that slices form a whole picture beyond what the RTP layer shows
//! (loss, fragment continuity, and after a loss whether the access unit
//! starts with the first slice of a picture). A frame damaged by loss is
//! dropped and the loss reported on the next emitted frame.
//!
//! The [`Packetizer`] is for servers: single NAL unit packets when a NAL unit
//! fits, STAP-A for runs of small NAL units, FU-A otherwise.
//!
//! The access unit assembly shared with H.265 lives here too
//! (`Assembler`, crate-internal).

use std::collections::VecDeque;

use bytes::{BufMut, Bytes, BytesMut};

use super::{put_annex_b, DepacketizeError, SetupError, VideoCodec, VideoFrame};
use crate::rtp::RtpPacket;
use crate::sdp::Media;

const NAME: &str = "H.264";

/// NAL unit types (RFC 6184 table 3 and H.264 table 7-1) this module cares about.
const STAP_A: u8 = 24;
const STAP_B: u8 = 25;
const MTAP16: u8 = 26;
const MTAP24: u8 = 27;
const FU_A: u8 = 28;
const FU_B: u8 = 29;

/// Depacketizes one H.264 RTP stream into access units (see the module
/// documentation).
///
/// Completed frames wait for [`pull`](Self::pull); at most 16 are kept, and
/// if the caller does not pull, the oldest are dropped (with a warning).
#[derive(Debug)]
pub struct Depacketizer {
    asm: Assembler,
}

impl Depacketizer {
    /// A depacketizer for the H.264 track `media`, dropping access units of
    /// over `max_frame_bytes` bytes.
    ///
    /// The SPS and PPS of `sprop-parameter-sets`, if any, are put in front of
    /// the first keyframe when the stream has not sent parameter sets in-band
    /// before it.
    ///
    /// # Errors
    ///
    /// [`SetupError::Sdp`] when the fmtp parameters are invalid,
    /// [`SetupError::UnsupportedCodec`] when `media` is not H.264.
    pub fn new(media: &Media, max_frame_bytes: usize) -> Result<Self, SetupError> {
        let params = media
            .h264()?
            .ok_or_else(|| SetupError::UnsupportedCodec(media.codec.clone()))?;
        let sets = params
            .sps
            .into_iter()
            .map(|s| (0, s))
            .chain(params.pps.into_iter().map(|p| (1, p)))
            .collect();
        Ok(Depacketizer {
            asm: Assembler::new(VideoCodec::H264, max_frame_bytes, sets),
        })
    }

    /// Feeds one RTP packet; `lost` is the number of packets missing right
    /// before it.
    ///
    /// Frames may be ready even when this returns an error (a timestamp
    /// change can complete the previous access unit): call [`pull`](Self::pull)
    /// after every push. After an error the depacketizer drops the access
    /// unit it was assembling and resynchronizes at the next one.
    ///
    /// # Errors
    ///
    /// [`DepacketizeError::Empty`] for an empty payload,
    /// [`DepacketizeError::Unsupported`] for STAP-B, MTAP and FU-B,
    /// [`DepacketizeError::Malformed`] for reserved NAL unit types, truncated
    /// aggregation packets and broken fragment sequences, and
    /// [`DepacketizeError::FrameTooLarge`] (once per access unit) when the
    /// access unit outgrows the limit.
    pub fn push(&mut self, packet: &RtpPacket, lost: u32) -> Result<(), DepacketizeError> {
        let asm = &mut self.asm;
        let mut result = Ok(());
        if !asm.start_packet(packet.timestamp, packet.marker, lost, &mut result) {
            return result;
        }
        let payload = &packet.payload[..];
        if payload.is_empty() {
            let end = asm.end_packet(packet.marker);
            return result.and(end).and(Err(DepacketizeError::Empty { codec: NAME }));
        }
        let outcome = push_payload(asm, payload, lost);
        asm.finish_packet(packet.marker, outcome, result)
    }

    /// The next complete access unit, oldest first.
    pub fn pull(&mut self) -> Option<VideoFrame> {
        self.asm.pull()
    }
}

fn push_payload(asm: &mut Assembler, p: &[u8], lost: u32) -> Result<(), Abort> {
    match p[0] & 0x1f {
        t @ 1..=23 => asm.put_nal(nal_kind(t), &p[..1], &p[1..]),
        STAP_A => {
            let mut rest = &p[1..];
            if rest.is_empty() {
                return Err(malformed(NAME, "STAP-A without NAL units"));
            }
            while !rest.is_empty() {
                let (nal, after) = take_sized(rest, 0, NAME, "STAP-A")?;
                let t = nal[0] & 0x1f;
                if !(1..=23).contains(&t) {
                    return Err(malformed(NAME, format!("NAL unit type {t} inside STAP-A")));
                }
                asm.put_nal(nal_kind(t), &nal[..1], &nal[1..])?;
                rest = after;
            }
            Ok(())
        }
        FU_A => {
            if p.len() < 2 {
                return Err(malformed(NAME, "FU-A shorter than 2 bytes"));
            }
            let fu = p[1];
            let t = fu & 0x1f;
            if !(1..=23).contains(&t) {
                return Err(malformed(NAME, format!("FU-A of NAL unit type {t}")));
            }
            let header = [(p[0] & 0xe0) | t];
            asm.fragment(nal_kind(t), &header, t, fu & 0x80 != 0, fu & 0x40 != 0, &p[2..], lost)
        }
        STAP_B => Err(unsupported(NAME, "STAP-B")),
        MTAP16 => Err(unsupported(NAME, "MTAP16")),
        MTAP24 => Err(unsupported(NAME, "MTAP24")),
        FU_B => Err(unsupported(NAME, "FU-B")),
        t => Err(malformed(NAME, format!("reserved NAL unit type {t}"))),
    }
}

/// How an H.264 NAL unit type matters to access unit assembly.
fn nal_kind(t: u8) -> NalKind {
    match t {
        // Non-IDR slice, data partition A, IDR slice: first_mb_in_slice is
        // the first ue(v) of the body, so its first bit is set iff it is 0.
        1 | 2 => NalKind::Vcl {
            key: false,
            first_flag: true,
        },
        5 => NalKind::Vcl {
            key: true,
            first_flag: true,
        },
        3 | 4 => NalKind::Vcl {
            key: false,
            first_flag: false,
        },
        7 => NalKind::Param(0),
        8 => NalKind::Param(1),
        9 => NalKind::Aud,
        _ => NalKind::Other,
    }
}

/// Splits a 2-byte-size-prefixed NAL unit (after `skip` bytes of DON
/// fields) off the front of an aggregation packet's `rest`; returns the NAL
/// unit (at least 1 byte) and what follows it.
pub(super) fn take_sized<'a>(
    rest: &'a [u8],
    skip: usize,
    codec: &'static str,
    what: &str,
) -> Result<(&'a [u8], &'a [u8]), Abort> {
    if rest.len() < skip + 2 {
        return Err(malformed(codec, format!("{what}: truncated NAL unit size")));
    }
    let size = usize::from(u16::from_be_bytes([rest[skip], rest[skip + 1]]));
    let rest = &rest[skip + 2..];
    if size == 0 || size > rest.len() {
        return Err(malformed(
            codec,
            format!("{what}: NAL unit size {size} with {} bytes left", rest.len()),
        ));
    }
    Ok(rest.split_at(size))
}

pub(super) fn malformed(codec: &'static str, what: impl Into<String>) -> Abort {
    Abort::Error(DepacketizeError::Malformed {
        codec,
        what: what.into(),
    })
}

pub(super) fn unsupported(codec: &'static str, what: impl Into<String>) -> Abort {
    Abort::Error(DepacketizeError::Unsupported {
        codec,
        what: what.into(),
    })
}

/// Packetizes H.264 access units into RTP payloads (RFC 6184, packetization
/// mode 1, without interleaving).
#[derive(Debug, Clone)]
pub struct Packetizer {
    max_payload: usize,
}

impl Packetizer {
    /// A packetizer whose RTP payloads are at most `max_payload` bytes (1400
    /// suits most networks). Values below 3 are raised to 3, the smallest
    /// FU-A that carries data.
    pub fn new(max_payload: usize) -> Self {
        Packetizer {
            max_payload: max_payload.max(3),
        }
    }

    /// Packetizes one access unit, given as NAL units without start codes
    /// (see [`split_annex_b`]). Returns the RTP payloads in order with their
    /// marker bits; only the last one has the marker set. Empty NAL units are
    /// skipped.
    ///
    /// A NAL unit that fits in `max_payload` is sent as it is (no copy: the
    /// payload shares its memory); runs of small NAL units (such as SPS + PPS)
    /// are aggregated into STAP-A packets; larger NAL units are split into
    /// FU-A fragments (one allocation per NAL unit).
    pub fn packetize(&mut self, nals: &[Bytes]) -> Vec<(Bytes, bool)> {
        let max = self.max_payload;
        let mut out = Vec::new();
        let mut i = 0;
        while i < nals.len() {
            if nals[i].is_empty() {
                i += 1;
                continue;
            }
            let (end, count, size) = aggregate_run(nals, i, max, 1);
            if count >= 2 {
                let mut stap = BytesMut::with_capacity(size);
                let (mut f_nri, mut nri) = (0u8, 0u8);
                for nal in nals[i..end].iter().filter(|n| !n.is_empty()) {
                    f_nri |= nal[0] & 0x80;
                    nri = nri.max(nal[0] & 0x60);
                }
                stap.put_u8(f_nri | nri | STAP_A);
                for nal in nals[i..end].iter().filter(|n| !n.is_empty()) {
                    stap.put_u16(nal.len() as u16); // aggregate_run keeps sizes <= 0xffff
                    stap.put_slice(nal);
                }
                out.push((stap.freeze(), false));
                i = end;
                continue;
            }
            let nal = &nals[i];
            if nal.len() <= max {
                out.push((nal.clone(), false));
            } else {
                let header = nal[0];
                let indicator = (header & 0xe0) | FU_A;
                let body = &nal[1..];
                let chunk = max - 2;
                let pieces = body.len().div_ceil(chunk);
                let mut buf = BytesMut::with_capacity(body.len() + 2 * pieces);
                for (n, data) in body.chunks(chunk).enumerate() {
                    let mut fu = header & 0x1f;
                    if n == 0 {
                        fu |= 0x80;
                    }
                    if n + 1 == pieces {
                        fu |= 0x40;
                    }
                    buf.put_u8(indicator);
                    buf.put_u8(fu);
                    buf.put_slice(data);
                    out.push((buf.split().freeze(), false));
                }
            }
            i += 1;
        }
        if let Some(last) = out.last_mut() {
            last.1 = true;
        }
        out
    }
}

/// The run of NAL units from `nals[start]` that fits in one aggregation
/// packet of at most `max` bytes with a `header`-byte payload header (the
/// NAL unit header size; shorter NAL units are skipped): returns (end index,
/// NAL units in the run, packet size).
pub(super) fn aggregate_run(nals: &[Bytes], start: usize, max: usize, header: usize) -> (usize, usize, usize) {
    let mut size = header;
    let mut count = 0;
    let mut end = start;
    while end < nals.len() {
        let len = nals[end].len();
        if len >= header {
            if len > 0xffff || size + 2 + len > max {
                break;
            }
            size += 2 + len;
            count += 1;
        }
        end += 1;
    }
    (end, count, size)
}

/// Splits Annex B data (NAL units each preceded by a `00 00 01` or
/// `00 00 00 01` start code) into NAL units without start codes, as slices
/// of `data` (no copy). Trailing zero bytes of each NAL unit (the extra zero
/// of a 4-byte start code, trailing_zero_8bits) are removed; empty NAL units
/// are skipped. Data without any start code is returned as one NAL unit.
///
/// ```
/// use bytes::Bytes;
/// use rtsp_toolkit_core::codec::h264::split_annex_b;
/// let au = Bytes::from_static(&[0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4]);
/// let nals = split_annex_b(&au);
/// assert_eq!(nals, [&[0x67, 1, 2][..], &[0x68, 3][..], &[0x65, 4][..]]);
/// ```
pub fn split_annex_b(data: &Bytes) -> Vec<Bytes> {
    let b = &data[..];
    let mut nals = Vec::new();
    let mut push = |from: usize, to: usize| {
        let mut to = to;
        while to > from && b[to - 1] == 0 {
            to -= 1;
        }
        if to > from {
            nals.push(data.slice(from..to));
        }
    };
    let mut nal_start = 0;
    let mut i = 0;
    // Looks at b[i + 2] first: a byte above 1 there rules out a start code
    // beginning at i, i + 1 or i + 2.
    while i + 2 < b.len() {
        let c = b[i + 2];
        if c > 1 {
            i += 3;
        } else if c == 0 {
            i += 1;
        } else if b[i] == 0 && b[i + 1] == 0 {
            push(nal_start, i);
            i += 3;
            nal_start = i;
        } else {
            i += 3;
        }
    }
    push(nal_start, b.len());
    nals
}

// ---------------------------------------------------------------------------
// Access unit assembly, shared with H.265.

/// How a NAL unit matters to access unit assembly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NalKind {
    /// A parameter set, remembered in this slot (H.264: 0 SPS, 1 PPS;
    /// H.265: 0 VPS, 1 SPS, 2 PPS).
    Param(usize),
    /// An access unit delimiter (stays first when SDP parameter sets are inserted).
    Aud,
    /// A slice (VCL NAL unit). `key`: IDR / IRAP. `first_flag`: the first
    /// bit of the NAL unit body is set iff this is the picture's first slice.
    Vcl { key: bool, first_flag: bool },
    /// Anything else (SEI, filler, ...).
    Other,
}

/// Why a packet's payload was not used. Either way the access unit being
/// assembled is dropped.
#[derive(Debug)]
pub(super) enum Abort {
    /// An expected consequence of packet loss: no error to report.
    Silent,
    /// A problem worth reporting.
    Error(DepacketizeError),
}

/// Parameter set slots (VPS, SPS, PPS at most).
const PARAM_SLOTS: usize = 3;
/// Frames kept for `pull`; older ones are dropped when the caller does not pull.
const MAX_READY: usize = 16;
/// Smallest and initial capacity reserved for an access unit.
const MIN_RESERVE: usize = 16 * 1024;
const INITIAL_RESERVE: usize = 64 * 1024;

/// Per-stream state of a NAL unit being written (a fragmented one while an
/// FU is in progress).
#[derive(Debug, Clone, Copy)]
struct OpenNal {
    kind: NalKind,
    /// Offset of the NAL unit header in `buf`.
    start: usize,
    /// NAL unit type, to check FU continuity.
    nal_type: u8,
}

/// Assembles access units in Annex B form from NAL units and NAL unit
/// fragments, applying the timestamp / marker / loss rules shared by the
/// H.264 and H.265 depacketizers. Payload bytes are copied once, into one
/// buffer per access unit carved out of a reused allocation.
#[derive(Debug)]
pub(super) struct Assembler {
    codec: VideoCodec,
    name: &'static str,
    max_frame_bytes: usize,
    /// The access unit being assembled (or carried over), Annex B.
    buf: BytesMut,
    /// The allocation used before `buf`'s, kept for reuse once every frame
    /// carved out of it is dropped (empty).
    spare: BytesMut,
    /// Size of the last allocation made for `buf`.
    block: usize,
    /// Capacity to have available when an access unit starts.
    reserve: usize,
    ready: VecDeque<VideoFrame>,
    /// Packets lost since the last emitted frame.
    loss: u32,
    /// Packets with this timestamp are dropped (rest of a damaged access unit).
    discard: Option<u32>,

    // The access unit being assembled.
    /// `buf` holds an access unit that accepts packets of timestamp `ts`.
    active: bool,
    /// `buf` holds NAL units without any slice, waiting for the next access unit.
    carry: bool,
    ts: u32,
    /// The access unit started right after lost packets.
    after_loss: bool,
    has_vcl: bool,
    keyframe: bool,
    /// Offsets in `buf` of the last parameter set of each slot.
    params: [Option<(usize, usize)>; PARAM_SLOTS],
    /// Where SDP parameter sets go: after leading access unit delimiters.
    insert_at: usize,
    non_aud_seen: bool,
    /// Bytes of SDP parameter sets that will be inserted (counted against the limit).
    extra: usize,
    open: Option<OpenNal>,

    // Stream state.
    /// Parameter sets from the SDP, with their slots.
    sdp_sets: Vec<(usize, Bytes)>,
    /// Their Annex B size.
    sdp_len: usize,
    /// A keyframe or in-band parameter sets have been emitted: SDP sets are
    /// no longer inserted.
    sdp_done: bool,
    /// The parameter sets of each slot last emitted.
    last_params: [Vec<u8>; PARAM_SLOTS],
}

impl Assembler {
    pub(super) fn new(codec: VideoCodec, max_frame_bytes: usize, sdp_sets: Vec<(usize, Bytes)>) -> Self {
        let name = match codec {
            VideoCodec::H264 => "H.264",
            VideoCodec::H265 => "H.265",
        };
        let sdp_len = sdp_sets.iter().map(|(_, s)| s.len() + 4).sum();
        Assembler {
            codec,
            name,
            max_frame_bytes,
            buf: BytesMut::new(),
            spare: BytesMut::new(),
            block: 0,
            reserve: INITIAL_RESERVE.min(max_frame_bytes),
            ready: VecDeque::with_capacity(4),
            loss: 0,
            discard: None,
            active: false,
            carry: false,
            ts: 0,
            after_loss: false,
            has_vcl: false,
            keyframe: false,
            params: [None; PARAM_SLOTS],
            insert_at: 0,
            non_aud_seen: false,
            extra: 0,
            open: None,
            sdp_sets,
            sdp_len,
            sdp_done: false,
            last_params: Default::default(),
        }
    }

    /// Applies the timestamp and loss rules for a packet about to be used.
    /// Returns whether its payload should be parsed; an error from completing
    /// the previous access unit goes into `result`.
    #[inline]
    pub(super) fn start_packet(
        &mut self,
        ts: u32,
        marker: bool,
        lost: u32,
        result: &mut Result<(), DepacketizeError>,
    ) -> bool {
        self.loss = self.loss.saturating_add(lost);
        if self.active && ts != self.ts {
            if lost > 0 {
                // The lost packets may have been this access unit's end.
                tracing::debug!(codec = self.name, "dropping access unit before lost packets");
                self.reset_au();
            } else if self.open.is_some() {
                self.reset_au();
                *result = Err(DepacketizeError::Malformed {
                    codec: self.name,
                    what: "fragmented NAL unit without end before a new timestamp".into(),
                });
            } else {
                self.finish_au();
            }
        }
        if let Some(d) = self.discard {
            if d == ts {
                if marker {
                    self.discard = None;
                }
                return false;
            }
            self.discard = None;
        }
        if lost > 0 && self.active {
            // Loss inside the access unit being assembled.
            tracing::debug!(codec = self.name, ts, "dropping access unit damaged by loss");
            self.abort(marker);
            return false;
        }
        if !self.active {
            self.begin_au(ts, lost > 0);
        }
        true
    }

    /// Ends a packet whose payload was parsed: on success completes the
    /// access unit at the marker; on failure drops it. Returns the first error.
    #[inline]
    pub(super) fn finish_packet(
        &mut self,
        marker: bool,
        outcome: Result<(), Abort>,
        result: Result<(), DepacketizeError>,
    ) -> Result<(), DepacketizeError> {
        match outcome {
            Ok(()) => result.and(self.end_packet(marker)),
            Err(abort) => {
                self.abort(marker);
                match abort {
                    Abort::Silent => result,
                    Abort::Error(e) => {
                        tracing::debug!(error = %e, "dropping access unit");
                        result.and(Err(e))
                    }
                }
            }
        }
    }

    /// Completes the access unit at a marker bit.
    #[inline]
    pub(super) fn end_packet(&mut self, marker: bool) -> Result<(), DepacketizeError> {
        if !marker || !self.active {
            return Ok(());
        }
        if self.open.is_some() {
            self.abort(true);
            return Err(DepacketizeError::Malformed {
                codec: self.name,
                what: "marker bit inside a fragmented NAL unit".into(),
            });
        }
        self.finish_au();
        Ok(())
    }

    /// The next complete access unit.
    #[inline]
    pub(super) fn pull(&mut self) -> Option<VideoFrame> {
        self.ready.pop_front()
    }

    /// Appends one whole NAL unit given as header and body.
    pub(super) fn put_nal(&mut self, kind: NalKind, header: &[u8], body: &[u8]) -> Result<(), Abort> {
        self.begin_nal(kind, header, body.first().copied(), 0)?;
        self.append(body)?;
        self.end_nal();
        Ok(())
    }

    /// Appends one fragment of a NAL unit (FU-A / FU). `header` is the
    /// reconstructed NAL unit header, `nal_type` its type, `data` the
    /// fragment's bytes. `lost` tells whether a missing start is explained by
    /// loss (no error then).
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub(super) fn fragment(
        &mut self,
        kind: NalKind,
        header: &[u8],
        nal_type: u8,
        start: bool,
        end: bool,
        data: &[u8],
        lost: u32,
    ) -> Result<(), Abort> {
        if start {
            self.begin_nal(kind, header, data.first().copied(), nal_type)?;
        } else {
            match self.open {
                None if lost > 0 => return Err(Abort::Silent),
                None => return Err(malformed(self.name, "fragment without a start fragment")),
                Some(o) if o.nal_type != nal_type => {
                    return Err(malformed(self.name, "fragment of another NAL unit type"))
                }
                Some(_) => {}
            }
        }
        self.append(data)?;
        if end {
            self.end_nal();
        }
        Ok(())
    }

    fn begin_nal(&mut self, kind: NalKind, header: &[u8], first: Option<u8>, nal_type: u8) -> Result<(), Abort> {
        if self.open.is_some() {
            return Err(malformed(self.name, "fragmented NAL unit interrupted"));
        }
        if let NalKind::Vcl { key, first_flag } = kind {
            if !self.has_vcl {
                // After a loss, the first slice must start a picture;
                // otherwise the picture's beginning was lost.
                if self.after_loss && first_flag && first.is_some_and(|b| b & 0x80 == 0) {
                    tracing::debug!(codec = self.name, "dropping access unit without its first slice");
                    return Err(Abort::Silent);
                }
                self.has_vcl = true;
            }
            if key {
                self.keyframe = true;
                if self.extra == 0 && self.wants_sdp_sets() {
                    self.extra = self.sdp_len;
                }
            }
        }
        if !self.non_aud_seen && kind != NalKind::Aud {
            self.non_aud_seen = true;
            self.insert_at = self.buf.len();
        }
        self.check_room(4 + header.len())?;
        self.buf.put_slice(&[0, 0, 0, 1]);
        self.open = Some(OpenNal {
            kind,
            start: self.buf.len(),
            nal_type,
        });
        self.buf.put_slice(header);
        Ok(())
    }

    #[inline]
    fn append(&mut self, data: &[u8]) -> Result<(), Abort> {
        self.check_room(data.len())?;
        self.buf.put_slice(data);
        Ok(())
    }

    fn end_nal(&mut self) {
        if let Some(OpenNal {
            kind: NalKind::Param(slot),
            start,
            ..
        }) = self.open.take()
        {
            self.params[slot] = Some((start, self.buf.len()));
        }
    }

    #[inline]
    fn check_room(&self, more: usize) -> Result<(), Abort> {
        if self.buf.len() + self.extra + more > self.max_frame_bytes {
            return Err(Abort::Error(DepacketizeError::FrameTooLarge {
                codec: self.name,
                limit: self.max_frame_bytes,
            }));
        }
        Ok(())
    }

    fn has_params(&self) -> bool {
        self.params.iter().any(Option::is_some)
    }

    /// Whether a keyframe completed now would get the SDP parameter sets.
    fn wants_sdp_sets(&self) -> bool {
        !self.sdp_done && !self.sdp_sets.is_empty() && !self.has_params()
    }

    fn begin_au(&mut self, ts: u32, after_loss: bool) {
        if after_loss && self.carry {
            // The carried NAL units came before the loss; they may belong
            // with what was lost.
            self.reset_au();
        }
        if !self.carry {
            self.after_loss = after_loss;
            // `buf` is empty here. When every frame carved out of its
            // allocation has been dropped, start again at the front: the
            // same memory is rewritten while it is still in cache. (Asking
            // for more than the spare capacity is what makes it look
            // before `buf`; it never allocates.)
            let _ = self.buf.try_reclaim(self.buf.capacity() + 1);
            if self.buf.capacity() < self.reserve {
                // A frame carved out of `buf` is still held (say, queued as
                // an event), or `buf` is too small. Take the spare allocation
                // if every frame carved out of it has been dropped, else a
                // new one; the current allocation becomes the spare. Two
                // allocations used in turn, instead of a fresh one each time,
                // keep the allocator from handing memory back to the system
                // and faulting it in again.
                let free = self.spare.try_reclaim(self.spare.capacity() + 1);
                std::mem::swap(&mut self.buf, &mut self.spare);
                // Each has room for a couple of access units; twice as many
                // (up to four) once the spare turned out to be still held, so
                // that it is free by the time it is needed again. (A free
                // spare much smaller than that is replaced too.)
                let two = self.reserve.saturating_mul(2);
                let block = if free { self.block } else { self.block.saturating_mul(2) };
                self.block = block.clamp(two, two.saturating_mul(2));
                if !free || self.buf.capacity() < self.block / 4 * 3 {
                    self.buf = BytesMut::with_capacity(self.block);
                }
            }
        }
        self.carry = false;
        self.active = true;
        self.ts = ts;
    }

    /// Emits the access unit (or carries it over if it has no slice).
    fn finish_au(&mut self) {
        self.active = false;
        if !self.has_vcl {
            self.carry = !self.buf.is_empty();
            return;
        }
        let mut new_parameters = false;
        for (slot, range) in self.params.iter().enumerate() {
            if let Some((start, end)) = *range {
                let nal = &self.buf[start..end];
                if self.last_params[slot] != nal {
                    new_parameters = true;
                    self.last_params[slot].clear();
                    self.last_params[slot].extend_from_slice(nal);
                }
            }
        }
        if self.keyframe && self.wants_sdp_sets() {
            // The SDP's parameter sets go in at `insert_at`, in `buf` itself:
            // the rest of the access unit moves up to make room, so the
            // frame is carved out of the reused allocation like any other.
            let end = self.buf.len();
            self.buf.resize(end + self.sdp_len, 0);
            self.buf.copy_within(self.insert_at..end, self.insert_at + self.sdp_len);
            let mut sets = BytesMut::with_capacity(self.sdp_len);
            for (slot, nal) in &self.sdp_sets {
                put_annex_b(&mut sets, nal);
                self.last_params[*slot].clear();
                self.last_params[*slot].extend_from_slice(nal);
            }
            self.buf[self.insert_at..self.insert_at + self.sdp_len].copy_from_slice(&sets);
            new_parameters = true;
        }
        let data = self.buf.split().freeze();
        if self.keyframe || self.has_params() {
            self.sdp_done = true;
        }
        let decayed = self.reserve - self.reserve / 256;
        self.reserve = data.len().max(decayed).max(MIN_RESERVE).min(self.max_frame_bytes);
        if self.ready.len() >= MAX_READY {
            tracing::warn!(codec = self.name, "frames not pulled; dropping the oldest");
            self.ready.pop_front();
        }
        self.ready.push_back(VideoFrame {
            codec: self.codec,
            timestamp: self.ts,
            data,
            keyframe: self.keyframe,
            new_parameters,
            loss: std::mem::take(&mut self.loss),
        });
        self.reset_au();
    }

    /// Drops the access unit; unless it ended here (`marker`), also the rest
    /// of its packets.
    fn abort(&mut self, marker: bool) {
        let ts = self.ts;
        self.reset_au();
        if !marker {
            self.discard = Some(ts);
        }
    }

    fn reset_au(&mut self) {
        self.buf.clear();
        self.active = false;
        self.carry = false;
        self.after_loss = false;
        self.has_vcl = false;
        self.keyframe = false;
        self.params = [None; PARAM_SLOTS];
        self.insert_at = 0;
        self.non_aud_seen = false;
        self.extra = 0;
        self.open = None;
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::rtp::{RtpHeader, RtpPacket};
    use crate::sdp::Sdp;
    use proptest::prelude::*;

    const SDP: &[u8] = b"v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n\
        a=fmtp:96 packetization-mode=1;sprop-parameter-sets=Z2QADayyAoP2AiAAAAMAIAAABkHihUk=,aOvDyyLA\r\n";
    const SDP_PLAIN: &[u8] = b"v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n";

    pub(crate) fn media(sdp: &[u8]) -> Media {
        Sdp::parse(sdp).unwrap().media.remove(0)
    }

    pub(crate) fn pkt(ts: u32, marker: bool, payload: &[u8]) -> RtpPacket {
        RtpPacket {
            sequence_number: 0,
            timestamp: ts,
            ssrc: 1,
            marker,
            payload_type: 96,
            csrc_count: 0,
            extension: None,
            padding: 0,
            payload: Bytes::copy_from_slice(payload),
        }
    }

    pub(crate) fn annex_b(nals: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        for n in nals {
            v.extend_from_slice(&[0, 0, 0, 1]);
            v.extend_from_slice(n);
        }
        v
    }

    fn depack() -> Depacketizer {
        Depacketizer::new(&media(SDP_PLAIN), 1 << 20).unwrap()
    }

    fn frames(d: &mut Depacketizer) -> Vec<VideoFrame> {
        std::iter::from_fn(|| d.pull()).collect()
    }

    const SPS: &[u8] = &[0x67, 0x64, 0x00, 0x0d, 0xac];
    const PPS: &[u8] = &[0x68, 0xeb, 0xc3];
    const IDR: &[u8] = &[0x65, 0x88, 0x84, 0x00, 0x33];
    const P1: &[u8] = &[0x41, 0x9a, 0x02, 0x03];
    /// A non-IDR slice that is not the picture's first (first_mb_in_slice = 1).
    const P_SECOND: &[u8] = &[0x41, 0x40, 0x05];

    fn fu_a(nal: &[u8], pieces: usize) -> Vec<Vec<u8>> {
        let body = &nal[1..];
        let chunk = body.len().div_ceil(pieces);
        let n = body.chunks(chunk).count();
        body.chunks(chunk)
            .enumerate()
            .map(|(i, c)| {
                let mut p = vec![(nal[0] & 0xe0) | 28, nal[0] & 0x1f];
                if i == 0 {
                    p[1] |= 0x80;
                }
                if i + 1 == n {
                    p[1] |= 0x40;
                }
                p.extend_from_slice(c);
                p
            })
            .collect()
    }

    fn stap_a(nals: &[&[u8]]) -> Vec<u8> {
        let mut p = vec![0x78];
        for n in nals {
            p.extend_from_slice(&(n.len() as u16).to_be_bytes());
            p.extend_from_slice(n);
        }
        p
    }

    #[test]
    fn single_nal_access_unit() {
        let mut d = depack();
        d.push(&pkt(1000, true, P1), 0).unwrap();
        let f = frames(&mut d);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].data, annex_b(&[P1]));
        assert_eq!(f[0].timestamp, 1000);
        assert_eq!(f[0].codec, VideoCodec::H264);
        assert!(!f[0].keyframe);
        assert!(!f[0].new_parameters);
        assert_eq!(f[0].loss, 0);
    }

    #[test]
    fn separate_parameter_set_packets_join_the_idr() {
        let mut d = depack();
        d.push(&pkt(0, false, SPS), 0).unwrap();
        d.push(&pkt(0, false, PPS), 0).unwrap();
        assert!(d.pull().is_none());
        d.push(&pkt(0, true, IDR), 0).unwrap();
        let f = frames(&mut d);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].data, annex_b(&[SPS, PPS, IDR]));
        assert!(f[0].keyframe);
        assert!(f[0].new_parameters);

        // Same parameter sets again: not new.
        for p in [SPS, PPS] {
            d.push(&pkt(3000, false, p), 0).unwrap();
        }
        d.push(&pkt(3000, true, IDR), 0).unwrap();
        let f = frames(&mut d);
        assert!(f[0].keyframe && !f[0].new_parameters);

        // A changed SPS: new.
        let sps2 = [0x67, 0x64, 0x00, 0x1f];
        d.push(&pkt(6000, false, &sps2), 0).unwrap();
        d.push(&pkt(6000, true, IDR), 0).unwrap();
        assert!(frames(&mut d)[0].new_parameters);
    }

    #[test]
    fn parameter_sets_with_their_own_marker_are_carried_over() {
        let mut d = depack();
        d.push(&pkt(0, true, SPS), 0).unwrap();
        d.push(&pkt(0, true, PPS), 0).unwrap();
        d.push(&pkt(10, true, IDR), 0).unwrap();
        let f = frames(&mut d);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].data, annex_b(&[SPS, PPS, IDR]));
        assert_eq!(f[0].timestamp, 10);
    }

    #[test]
    fn stap_a_then_fu_a() {
        let mut d = depack();
        d.push(&pkt(0, false, &stap_a(&[SPS, PPS])), 0).unwrap();
        let idr: Vec<u8> = IDR.iter().copied().chain((0..100).map(|i| i as u8)).collect();
        let frags = fu_a(&idr, 3);
        for (i, f) in frags.iter().enumerate() {
            d.push(&pkt(0, i + 1 == frags.len(), f), 0).unwrap();
        }
        let f = frames(&mut d);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].data, annex_b(&[SPS, PPS, &idr]));
        assert!(f[0].keyframe && f[0].new_parameters);
    }

    #[test]
    fn fu_a_across_five_packets() {
        let mut d = depack();
        let nal: Vec<u8> = P1.iter().copied().chain(std::iter::repeat_n(7, 50)).collect();
        let frags = fu_a(&nal, 5);
        assert_eq!(frags.len(), 5);
        for (i, f) in frags.iter().enumerate() {
            d.push(&pkt(90, i == 4, f), 0).unwrap();
            assert_eq!(d.pull().is_some(), i == 4);
        }
        d.push(&pkt(180, true, P1), 0).unwrap();
        assert_eq!(frames(&mut d).len(), 1);
    }

    #[test]
    fn timestamp_change_without_marker() {
        let mut d = depack();
        d.push(&pkt(0, false, SPS), 0).unwrap();
        d.push(&pkt(0, false, IDR), 0).unwrap();
        assert!(d.pull().is_none());
        d.push(&pkt(3000, false, P1), 0).unwrap();
        let f = frames(&mut d);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].data, annex_b(&[SPS, IDR]));
        assert_eq!(f[0].timestamp, 0);
        // A timestamp change completing one AU while the new packet has the marker: two frames.
        d.push(&pkt(6000, true, P1), 0).unwrap();
        let f = frames(&mut d);
        assert_eq!(f.iter().map(|f| f.timestamp).collect::<Vec<_>>(), [3000, 6000]);
    }

    #[test]
    fn loss_inside_fu_a_drops_the_frame() {
        let mut d = depack();
        let nal: Vec<u8> = IDR.iter().copied().chain(std::iter::repeat_n(7, 50)).collect();
        let frags = fu_a(&nal, 5);
        d.push(&pkt(0, false, &frags[0]), 0).unwrap();
        d.push(&pkt(0, false, &frags[1]), 0).unwrap();
        d.push(&pkt(0, false, &frags[3]), 1).unwrap(); // frags[2] lost
        d.push(&pkt(0, true, &frags[4]), 0).unwrap();
        assert!(d.pull().is_none());
        d.push(&pkt(3000, true, P1), 0).unwrap();
        let f = frames(&mut d);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].timestamp, 3000);
        assert_eq!(f[0].loss, 1);
        // The count restarts.
        d.push(&pkt(6000, true, P1), 0).unwrap();
        assert_eq!(d.pull().unwrap().loss, 0);
    }

    #[test]
    fn loss_of_the_marker_packet_without_more_of_the_same_timestamp() {
        let mut d = depack();
        d.push(&pkt(0, false, IDR), 0).unwrap();
        // The marker packet of ts 0 is lost; next AU starts fine.
        d.push(&pkt(3000, true, P1), 2).unwrap();
        let f = frames(&mut d);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].timestamp, 3000);
        assert_eq!(f[0].loss, 2);
    }

    #[test]
    fn loss_at_a_frame_boundary() {
        let mut d = depack();
        d.push(&pkt(0, true, P1), 0).unwrap();
        d.push(&pkt(6000, true, P1), 3).unwrap();
        let f = frames(&mut d);
        assert_eq!(
            f.iter().map(|f| (f.timestamp, f.loss)).collect::<Vec<_>>(),
            [(0, 0), (6000, 3)]
        );
    }

    #[test]
    fn loss_of_the_first_slice() {
        let mut d = depack();
        d.push(&pkt(0, true, P1), 0).unwrap();
        // First slice of ts 3000 lost; the second slice must not make a frame.
        d.push(&pkt(3000, true, P_SECOND), 1).unwrap();
        d.push(&pkt(6000, true, P1), 0).unwrap();
        let f = frames(&mut d);
        assert_eq!(
            f.iter().map(|f| (f.timestamp, f.loss)).collect::<Vec<_>>(),
            [(0, 0), (6000, 1)]
        );
        // Without loss, a second slice is fine (ASO is not second-guessed).
        d.push(&pkt(9000, true, P_SECOND), 0).unwrap();
        assert!(d.pull().is_some());
    }

    #[test]
    fn loss_then_fragment_continuation_is_silent() {
        let mut d = depack();
        let nal: Vec<u8> = P1.iter().copied().chain(std::iter::repeat_n(7, 50)).collect();
        let frags = fu_a(&nal, 3);
        d.push(&pkt(0, false, &frags[1]), 4).unwrap();
        d.push(&pkt(0, true, &frags[2]), 0).unwrap();
        d.push(&pkt(3000, true, P1), 0).unwrap();
        let f = frames(&mut d);
        assert_eq!(f.iter().map(|f| (f.timestamp, f.loss)).collect::<Vec<_>>(), [(3000, 4)]);
    }

    #[test]
    fn interrupted_fu_a() {
        let mut d = depack();
        let nal: Vec<u8> = P1.iter().copied().chain(std::iter::repeat_n(7, 50)).collect();
        let frags = fu_a(&nal, 3);
        d.push(&pkt(0, false, &frags[0]), 0).unwrap();
        // A new start while one is in progress, no loss reported.
        assert!(matches!(
            d.push(&pkt(0, false, &frags[0]), 0),
            Err(DepacketizeError::Malformed { .. })
        ));
        d.push(&pkt(0, false, &frags[1]), 0).unwrap();
        d.push(&pkt(0, true, &frags[2]), 0).unwrap();
        assert!(d.pull().is_none());
        // Start without end, then a new timestamp.
        d.push(&pkt(3000, false, &frags[0]), 0).unwrap();
        assert!(matches!(
            d.push(&pkt(6000, true, P1), 0),
            Err(DepacketizeError::Malformed { .. })
        ));
        assert_eq!(frames(&mut d).iter().map(|f| f.timestamp).collect::<Vec<_>>(), [6000]);
        // Continuation without start, no loss.
        assert!(matches!(
            d.push(&pkt(9000, false, &frags[1]), 0),
            Err(DepacketizeError::Malformed { .. })
        ));
        d.push(&pkt(9000, true, &frags[2]), 0).unwrap();
        assert!(d.pull().is_none());
        // Marker on a middle fragment.
        d.push(&pkt(12000, false, &frags[0]), 0).unwrap();
        assert!(d.push(&pkt(12000, true, &frags[1]), 0).is_err());
        d.push(&pkt(15000, true, P1), 0).unwrap();
        assert_eq!(frames(&mut d).iter().map(|f| f.timestamp).collect::<Vec<_>>(), [15000]);
    }

    #[test]
    fn too_large_frame() {
        let mut d = Depacketizer::new(&media(SDP_PLAIN), 100).unwrap();
        let big: Vec<u8> = P1.iter().copied().chain(std::iter::repeat_n(1, 200)).collect();
        let frags = fu_a(&big, 4);
        d.push(&pkt(0, false, &frags[0]), 0).unwrap();
        assert_eq!(
            d.push(&pkt(0, false, &frags[1]), 0),
            Err(DepacketizeError::FrameTooLarge {
                codec: "H.264",
                limit: 100
            })
        );
        d.push(&pkt(0, false, &frags[2]), 0).unwrap();
        d.push(&pkt(0, true, &frags[3]), 0).unwrap();
        assert!(d.pull().is_none());
        d.push(&pkt(3000, true, P1), 0).unwrap();
        assert_eq!(d.pull().unwrap().data, annex_b(&[P1]));
        // Exactly at the limit is fine.
        let fit: Vec<u8> = P1
            .iter()
            .copied()
            .chain(std::iter::repeat_n(1, 96 - P1.len()))
            .collect();
        d.push(&pkt(6000, true, &fit), 0).unwrap();
        assert_eq!(d.pull().unwrap().data.len(), 100);
    }

    #[test]
    fn unsupported_and_malformed() {
        let mut d = depack();
        for t in [25u8, 26, 27, 29] {
            assert!(
                matches!(
                    d.push(&pkt(0, true, &[0x60 | t, 1, 2, 3]), 0),
                    Err(DepacketizeError::Unsupported { .. })
                ),
                "type {t}"
            );
        }
        for t in [0u8, 30, 31] {
            assert!(matches!(
                d.push(&pkt(0, true, &[t, 1, 2]), 0),
                Err(DepacketizeError::Malformed { .. })
            ));
        }
        assert_eq!(
            d.push(&pkt(0, true, &[]), 0),
            Err(DepacketizeError::Empty { codec: "H.264" })
        );
        assert!(matches!(
            d.push(&pkt(0, true, &[0x7c]), 0),
            Err(DepacketizeError::Malformed { .. })
        ));
        assert!(matches!(
            d.push(&pkt(0, true, &[0x78, 0, 9, 0x67]), 0),
            Err(DepacketizeError::Malformed { .. })
        ));
        assert!(matches!(
            d.push(&pkt(0, true, &[0x78, 0]), 0),
            Err(DepacketizeError::Malformed { .. })
        ));
        assert!(d.pull().is_none());
        // A malformed packet drops its AU and the rest of that timestamp.
        d.push(&pkt(3000, false, P1), 0).unwrap();
        assert!(d.push(&pkt(3000, false, &[0x78, 0, 9, 0x67]), 0).is_err());
        d.push(&pkt(3000, true, P1), 0).unwrap();
        assert!(d.pull().is_none());
        d.push(&pkt(6000, true, P1), 0).unwrap();
        assert!(d.pull().is_some());
    }

    #[test]
    fn sdp_parameter_sets_before_first_keyframe() {
        let m = media(SDP);
        let p = m.h264().unwrap().unwrap();
        let (sps, pps) = (p.sps[0].clone(), p.pps[0].clone());
        let mut d = Depacketizer::new(&m, 1 << 20).unwrap();
        d.push(&pkt(0, true, P1), 0).unwrap();
        let f = d.pull().unwrap();
        assert_eq!(f.data, annex_b(&[P1]));
        assert!(!f.new_parameters);
        // An AUD stays first.
        let aud = [0x09, 0xf0];
        d.push(&pkt(3000, false, &aud), 0).unwrap();
        d.push(&pkt(3000, true, IDR), 0).unwrap();
        let f = d.pull().unwrap();
        assert_eq!(f.data, annex_b(&[&aud, &sps, &pps, IDR]));
        assert!(f.keyframe && f.new_parameters);
        // Only for the first keyframe.
        d.push(&pkt(6000, true, IDR), 0).unwrap();
        let f = d.pull().unwrap();
        assert_eq!(f.data, annex_b(&[IDR]));
        assert!(!f.new_parameters);
        // In-band sets equal to the SDP ones are not new.
        d.push(&pkt(9000, false, &stap_a(&[&sps, &pps])), 0).unwrap();
        d.push(&pkt(9000, true, IDR), 0).unwrap();
        assert!(!d.pull().unwrap().new_parameters);
    }

    #[test]
    fn sdp_parameter_sets_not_used_when_in_band() {
        let mut d = Depacketizer::new(&media(SDP), 1 << 20).unwrap();
        d.push(&pkt(0, false, SPS), 0).unwrap();
        d.push(&pkt(0, false, PPS), 0).unwrap();
        d.push(&pkt(0, true, IDR), 0).unwrap();
        assert_eq!(d.pull().unwrap().data, annex_b(&[SPS, PPS, IDR]));
    }

    #[test]
    fn sdp_parameter_sets_count_against_the_limit() {
        let m = media(SDP);
        let sdp_len = m.parameter_sets_annex_b().unwrap().len();
        let mut d = Depacketizer::new(&m, sdp_len + 4 + IDR.len() - 1).unwrap();
        assert!(matches!(
            d.push(&pkt(0, true, IDR), 0),
            Err(DepacketizeError::FrameTooLarge { .. })
        ));
        assert!(d.pull().is_none());
    }

    #[test]
    fn not_h264() {
        let m = media(b"v=0\r\nm=audio 0 RTP/AVP 0\r\n");
        assert!(matches!(
            Depacketizer::new(&m, 100),
            Err(SetupError::UnsupportedCodec(_))
        ));
    }

    #[test]
    fn packetizer_shapes() {
        let mut p = Packetizer::new(10);
        let sps = Bytes::from_static(&[0x67, 1]);
        let pps = Bytes::from_static(&[0x68, 2]);
        let idr = Bytes::from((0..20).map(|i| if i == 0 { 0x65 } else { i }).collect::<Vec<u8>>());
        let out = p.packetize(&[sps.clone(), pps.clone(), idr.clone()]);
        assert_eq!(&out[0].0[..], &[0x78, 0, 2, 0x67, 1, 0, 2, 0x68, 2]);
        // 19 body bytes in chunks of 8.
        assert_eq!(out.len(), 4);
        assert_eq!(&out[1].0[..2], &[0x7c, 0x85]);
        assert_eq!(&out[2].0[..2], &[0x7c, 0x05]);
        assert_eq!(&out[3].0[..], &[0x7c, 0x45, 17, 18, 19]);
        assert!(out.iter().all(|(b, _)| b.len() <= 10));
        assert_eq!(out.iter().map(|o| o.1).collect::<Vec<_>>(), [false, false, false, true]);
        // A NAL unit that fits goes as it is, without copying.
        let out = p.packetize(std::slice::from_ref(&sps));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0.as_ptr(), sps.as_ptr());
        assert!(out[0].1);
        assert!(p.packetize(&[]).is_empty());
    }

    #[test]
    fn split_annex_b_cases() {
        let d = Bytes::from_static(&[0, 0, 1, 0x67, 0, 0, 0, 0, 1, 0x68, 0, 0, 3, 1, 0, 0, 1]);
        assert_eq!(split_annex_b(&d), [&[0x67][..], &[0x68, 0, 0, 3, 1][..]]);
        assert!(split_annex_b(&Bytes::new()).is_empty());
        assert!(split_annex_b(&Bytes::from_static(&[0, 0, 0, 1])).is_empty());
        assert_eq!(split_annex_b(&Bytes::from_static(&[0x41, 1])), [&[0x41, 1][..]]);
        let d = Bytes::from_static(&[0, 0, 1, 0x41, 0, 1, 0x00, 0x02]);
        assert_eq!(split_annex_b(&d), [&[0x41, 0, 1, 0, 2][..]]);
    }

    /// Builds RTP packets via the wire format.
    pub(crate) fn rtp(seq: u16, ts: u32, marker: bool, payload: &[u8]) -> RtpPacket {
        let mut out = BytesMut::new();
        RtpHeader {
            sequence_number: seq,
            timestamp: ts,
            ssrc: 7,
            marker,
            payload_type: 96,
        }
        .write_packet(payload, &mut out);
        RtpPacket::parse(out.freeze()).unwrap()
    }

    /// Arbitrary packets: (payload, marker, timestamp step, lost).
    pub(crate) fn arbitrary_packets() -> impl Strategy<Value = Vec<(Vec<u8>, bool, u8, u8)>> {
        proptest::collection::vec(
            (
                proptest::collection::vec(any::<u8>(), 0..60),
                any::<bool>(),
                0u8..3,
                prop_oneof![4 => Just(0u8), 1 => 1u8..4],
            ),
            0..60,
        )
    }

    fn access_unit() -> impl Strategy<Value = (Vec<Vec<u8>>, bool)> {
        let nal = (1u8..=23, 0u8..4, proptest::collection::vec(any::<u8>(), 0..5000)).prop_map(|(t, nri, body)| {
            let mut n = vec![(nri << 5) | t];
            n.extend(body);
            n
        });
        let slice =
            (any::<bool>(), 0u8..4, proptest::collection::vec(any::<u8>(), 0..5000)).prop_map(|(key, nri, body)| {
                let mut n = vec![(nri.max(1) << 5) | if key { 5 } else { 1 }];
                n.extend(body);
                n
            });
        (
            proptest::collection::vec(nal, 0..4),
            slice,
            proptest::collection::vec(any::<u8>(), 0..3),
        )
            .prop_map(|(mut nals, slice, small)| {
                // Some small NAL units to exercise STAP-A.
                if !small.is_empty() {
                    nals.insert(0, [vec![0x06], small].concat());
                }
                nals.push(slice);
                let key = nals.iter().any(|n| n[0] & 0x1f == 5);
                (nals, key)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn arbitrary_packets_never_panic(
            packets in arbitrary_packets(),
            limit in 0usize..400,
            with_sdp in any::<bool>(),
        ) {
            let mut d = Depacketizer::new(&media(if with_sdp { SDP } else { SDP_PLAIN }), limit).unwrap();
            let mut ts = 0u32;
            for (i, (payload, marker, step, lost)) in packets.iter().enumerate() {
                ts = ts.wrapping_add(u32::from(*step) * 1000);
                let _ = d.push(&rtp(i as u16, ts, *marker, payload), u32::from(*lost));
                while let Some(f) = d.pull() {
                    prop_assert!(f.data.len() <= limit);
                    prop_assert!(f.data.starts_with(&[0, 0, 0, 1]));
                }
            }
        }

        #[test]
        fn round_trip(aus in proptest::collection::vec(access_unit(), 1..6), max_payload in 100usize..1500) {
            let mut p = Packetizer::new(max_payload);
            let mut d = Depacketizer::new(&media(SDP_PLAIN), DEFAULT_LIMIT).unwrap();
            let mut seq = 0u16;
            for (n, (nals, key)) in aus.iter().enumerate() {
                let ts = 3000 * n as u32;
                let nals: Vec<Bytes> = nals.iter().map(|n| Bytes::from(n.clone())).collect();
                for (payload, marker) in p.packetize(&nals) {
                    prop_assert!(payload.len() <= max_payload);
                    d.push(&rtp(seq, ts, marker, &payload), 0).unwrap();
                    seq = seq.wrapping_add(1);
                }
                let f = d.pull().expect("one frame per access unit");
                prop_assert!(d.pull().is_none());
                let expected = annex_b(&nals.iter().map(|n| &n[..]).collect::<Vec<_>>());
                prop_assert_eq!(&f.data[..], &expected[..]);
                prop_assert_eq!(f.keyframe, *key);
                prop_assert_eq!(f.timestamp, ts);
            }
        }
    }

    const DEFAULT_LIMIT: usize = super::super::DEFAULT_MAX_FRAME_BYTES;
}
