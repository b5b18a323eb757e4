//! Access unit assembly shared by the H.264 and H.265 depacketizers
//! (crate-internal).
//!
//! [`Assembler`] turns the NAL units and NAL unit fragments that a codec's
//! payload parser finds in RTP packets into [`VideoFrame`]s in Annex B
//! form, and owns the rules both codecs follow:
//!
//! - An access unit ends at a packet with the marker bit, or when a packet
//!   with another RTP timestamp arrives (for cameras that never set the
//!   marker).
//! - Parameter sets, SEI and access unit delimiters belong to the access
//!   unit they arrive with: an access unit that ends without any slice is
//!   carried over into the next one.
//! - Loss: an access unit damaged by loss is dropped together with the rest
//!   of its timestamp, and the count of lost packets goes on the next
//!   emitted frame. After a loss an access unit must start with the first
//!   slice of a picture. A fragment without its start is an error unless
//!   loss explains it.
//! - Out-of-band (SDP) parameter sets go in front of the first keyframe,
//!   after any leading access unit delimiters, when none came in-band before
//!   it; they count against the frame size limit like in-band bytes.
//! - At most 16 frames wait for `pull`; the oldest are dropped beyond that.
//!
//! It is **not** a payload parser: it knows neither NAL unit header layouts
//! nor packet types (STAP-A, AP, FU-A, FU, DON fields). Each codec module
//! parses its payloads, classifies its NAL unit types as [`NalKind`]s and
//! hands NAL units to [`Assembler::put_nal`] and [`Assembler::fragment`]
//! from the closure it gives [`Assembler::push`]. It does not parse
//! parameter sets, reorder packets or decode.

use std::collections::VecDeque;

use bytes::{BufMut, Bytes, BytesMut};

use super::{put_annex_b, DepacketizeError, VideoCodec, VideoFrame};
use crate::rtp::RtpPacket;

/// How a NAL unit matters to access unit assembly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NalKind {
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
pub(crate) enum Abort {
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
pub(crate) struct Assembler {
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
    /// The packet being parsed came right after lost packets (set by `push`
    /// for `fragment`).
    packet_after_loss: bool,

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
    /// An assembler for `codec` that drops access units of over
    /// `max_frame_bytes` bytes. `sdp_sets` are the out-of-band parameter
    /// sets in the order they go in front of the first keyframe, each with
    /// its [`NalKind::Param`] slot.
    pub(crate) fn new(codec: VideoCodec, max_frame_bytes: usize, sdp_sets: Vec<(usize, Bytes)>) -> Self {
        let name = match codec {
            VideoCodec::H264 => "H.264",
            VideoCodec::H265 => "H.265",
            VideoCodec::Mjpeg => "JPEG",
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
            packet_after_loss: false,
            sdp_sets,
            sdp_len,
            sdp_done: false,
            last_params: Default::default(),
        }
    }

    /// Feeds one RTP packet; `lost` is the number of packets missing right
    /// before it.
    ///
    /// Applies the timestamp, marker and loss rules, calls `parse` with the
    /// payload when it is to be used (never with an empty one), and completes
    /// the access unit at the marker bit. `parse` adds the payload's NAL
    /// units with [`put_nal`](Self::put_nal) and
    /// [`fragment`](Self::fragment); when it returns an [`Abort`], the access
    /// unit is dropped.
    ///
    /// Returns the first error: from completing the previous access unit, an
    /// empty payload ([`DepacketizeError::Empty`]), `parse`, or a marker bit
    /// inside a fragmented NAL unit. Frames may be ready even after an error.
    #[inline]
    pub(crate) fn push<F>(&mut self, packet: &RtpPacket, lost: u32, parse: F) -> Result<(), DepacketizeError>
    where
        F: FnOnce(&mut Self, &[u8]) -> Result<(), Abort>,
    {
        let mut result = Ok(());
        if !self.start_packet(packet.timestamp, packet.marker, lost, &mut result) {
            return result;
        }
        let payload = &packet.payload[..];
        if payload.is_empty() {
            let end = self.end_packet(packet.marker);
            return result.and(end).and(Err(DepacketizeError::Empty { codec: self.name }));
        }
        self.packet_after_loss = lost > 0;
        let outcome = parse(self, payload);
        self.finish_packet(packet.marker, outcome, result)
    }

    /// Applies the timestamp and loss rules for a packet about to be used.
    /// Returns whether its payload should be parsed; an error from completing
    /// the previous access unit goes into `result`.
    #[inline]
    fn start_packet(&mut self, ts: u32, marker: bool, lost: u32, result: &mut Result<(), DepacketizeError>) -> bool {
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
    fn finish_packet(
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
    fn end_packet(&mut self, marker: bool) -> Result<(), DepacketizeError> {
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

    /// The sender says the stream ended (RTCP BYE): the access unit being
    /// assembled is complete, marker bit or not (a sender that never sets
    /// the marker ends each access unit only by the next timestamp, which
    /// the last one never sees). One with a fragmented NAL unit still open
    /// is dropped.
    pub(crate) fn end_of_stream(&mut self) {
        if !self.active {
            return;
        }
        if self.open.is_some() {
            self.reset_au();
        } else {
            self.finish_au();
        }
    }

    /// The next complete access unit.
    #[inline]
    pub(crate) fn pull(&mut self) -> Option<VideoFrame> {
        self.ready.pop_front()
    }

    /// Appends one whole NAL unit given as header and body.
    #[inline]
    pub(crate) fn put_nal(&mut self, kind: NalKind, header: &[u8], body: &[u8]) -> Result<(), Abort> {
        self.begin_nal(kind, header, body.first().copied(), 0)?;
        self.append(body)?;
        self.end_nal();
        Ok(())
    }

    /// Appends one fragment of a NAL unit (FU-A / FU). `header` is the
    /// reconstructed NAL unit header, `nal_type` its type (fragments of one
    /// NAL unit must agree on it), `start` / `end` the fragment's S and E
    /// bits, `data` the fragment's bytes. A fragment without a start is an
    /// error, or [`Abort::Silent`] when the packet came right after a loss.
    #[inline]
    pub(crate) fn fragment(
        &mut self,
        kind: NalKind,
        header: &[u8],
        nal_type: u8,
        start: bool,
        end: bool,
        data: &[u8],
    ) -> Result<(), Abort> {
        if start {
            self.begin_nal(kind, header, data.first().copied(), nal_type)?;
        } else {
            match self.open {
                None if self.packet_after_loss => return Err(Abort::Silent),
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

    #[inline]
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

    #[inline]
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

/// An [`Abort`] for a malformed payload.
pub(crate) fn malformed(codec: &'static str, what: impl Into<String>) -> Abort {
    Abort::Error(DepacketizeError::Malformed {
        codec,
        what: what.into(),
    })
}

/// An [`Abort`] for a payload of a kind this crate does not handle.
pub(crate) fn unsupported(codec: &'static str, what: impl Into<String>) -> Abort {
    Abort::Error(DepacketizeError::Unsupported {
        codec,
        what: what.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{annex_b, pkt};
    use super::*;

    const SLICE: NalKind = NalKind::Vcl {
        key: false,
        first_flag: true,
    };
    const KEY: NalKind = NalKind::Vcl {
        key: true,
        first_flag: true,
    };

    /// A first slice (body's first bit set), a later slice, a parameter set.
    const FIRST: &[u8] = &[0x41, 0x80, 1];
    const SECOND: &[u8] = &[0x41, 0x40, 2];
    const PARAM: &[u8] = &[0x67, 3];

    fn asm() -> Assembler {
        Assembler::new(VideoCodec::H264, 1 << 20, Vec::new())
    }

    /// Pushes one packet whose payload is one whole NAL unit of `kind`.
    fn nal(
        a: &mut Assembler,
        ts: u32,
        marker: bool,
        lost: u32,
        kind: NalKind,
        n: &[u8],
    ) -> Result<(), DepacketizeError> {
        a.push(&pkt(ts, marker, n), lost, |a, p| a.put_nal(kind, &p[..1], &p[1..]))
    }

    /// Pushes one fragment of a NAL unit of type 1 (`data` after the header).
    fn frag(
        a: &mut Assembler,
        ts: u32,
        marker: bool,
        lost: u32,
        s: bool,
        e: bool,
        data: &[u8],
    ) -> Result<(), DepacketizeError> {
        a.push(&pkt(ts, marker, data), lost, |a, p| {
            a.fragment(SLICE, &[0x41], 1, s, e, p)
        })
    }

    fn frames(a: &mut Assembler) -> Vec<VideoFrame> {
        std::iter::from_fn(|| a.pull()).collect()
    }

    #[test]
    fn ends_at_the_marker_or_a_timestamp_change() {
        let mut a = asm();
        nal(&mut a, 0, false, 0, KEY, FIRST).unwrap();
        nal(&mut a, 0, true, 0, SLICE, SECOND).unwrap();
        nal(&mut a, 3000, false, 0, SLICE, FIRST).unwrap();
        assert_eq!(frames(&mut a).len(), 1);
        nal(&mut a, 6000, true, 0, SLICE, FIRST).unwrap();
        let f = frames(&mut a);
        assert_eq!(f.iter().map(|f| f.timestamp).collect::<Vec<_>>(), [3000, 6000]);
        assert_eq!(f[0].data, annex_b(&[FIRST]));
        assert_eq!(f[0].codec, VideoCodec::H264);
        assert!(!f[0].keyframe && !f[0].new_parameters && f[0].loss == 0);
    }

    #[test]
    fn access_unit_without_slice_is_carried_over() {
        let mut a = asm();
        nal(&mut a, 0, true, 0, NalKind::Param(0), PARAM).unwrap();
        assert!(a.pull().is_none());
        nal(&mut a, 3000, true, 0, KEY, FIRST).unwrap();
        let f = a.pull().unwrap();
        assert_eq!((f.timestamp, &f.data[..]), (3000, &annex_b(&[PARAM, FIRST])[..]));
        assert!(f.keyframe && f.new_parameters);
        // The same parameter set again is not new.
        nal(&mut a, 6000, false, 0, NalKind::Param(0), PARAM).unwrap();
        nal(&mut a, 6000, true, 0, KEY, FIRST).unwrap();
        assert!(!a.pull().unwrap().new_parameters);
        // Carried units from before a loss are dropped with it.
        nal(&mut a, 9000, true, 0, NalKind::Other, &[6, 1]).unwrap();
        nal(&mut a, 12000, true, 2, SLICE, FIRST).unwrap();
        let f = a.pull().unwrap();
        assert_eq!((&f.data[..], f.loss), (&annex_b(&[FIRST])[..], 2));
    }

    #[test]
    fn sdp_sets_go_after_leading_delimiters_of_the_first_keyframe() {
        let sets = vec![(0, Bytes::from_static(PARAM)), (1, Bytes::from_static(&[0x68, 4]))];
        let mut a = Assembler::new(VideoCodec::H264, 1 << 20, sets);
        nal(&mut a, 0, true, 0, SLICE, FIRST).unwrap();
        assert_eq!(a.pull().unwrap().data, annex_b(&[FIRST]));
        nal(&mut a, 3000, false, 0, NalKind::Aud, &[9, 0xf0]).unwrap();
        nal(&mut a, 3000, true, 0, KEY, FIRST).unwrap();
        let f = a.pull().unwrap();
        assert_eq!(f.data, annex_b(&[&[9, 0xf0], PARAM, &[0x68, 4], FIRST]));
        assert!(f.keyframe && f.new_parameters);
        nal(&mut a, 6000, true, 0, KEY, FIRST).unwrap();
        assert_eq!(a.pull().unwrap().data, annex_b(&[FIRST]));
        // They count against the limit.
        let sets = vec![(0, Bytes::from_static(PARAM))];
        let mut a = Assembler::new(VideoCodec::H264, 4 + PARAM.len() + 4 + FIRST.len() - 1, sets);
        assert!(matches!(
            nal(&mut a, 0, true, 0, KEY, FIRST),
            Err(DepacketizeError::FrameTooLarge { codec: "H.264", .. })
        ));
        assert!(a.pull().is_none());
    }

    #[test]
    fn loss_drops_the_access_unit_and_the_rest_of_its_timestamp() {
        let mut a = asm();
        nal(&mut a, 0, false, 0, SLICE, FIRST).unwrap();
        nal(&mut a, 0, false, 1, SLICE, SECOND).unwrap();
        nal(&mut a, 0, true, 0, SLICE, SECOND).unwrap();
        assert!(a.pull().is_none());
        nal(&mut a, 3000, true, 0, SLICE, FIRST).unwrap();
        let f = a.pull().unwrap();
        assert_eq!((f.timestamp, f.loss), (3000, 1));
        // After a loss, an access unit must start with a picture's first slice.
        nal(&mut a, 6000, true, 3, SLICE, SECOND).unwrap();
        assert!(a.pull().is_none());
        // Without loss, a later slice first is accepted.
        nal(&mut a, 9000, true, 0, SLICE, SECOND).unwrap();
        assert_eq!(a.pull().unwrap().loss, 3);
    }

    #[test]
    fn fragments() {
        let mut a = asm();
        frag(&mut a, 0, false, 0, true, false, &[0x80, 1]).unwrap();
        frag(&mut a, 0, false, 0, false, false, &[2]).unwrap();
        frag(&mut a, 0, true, 0, false, true, &[3]).unwrap();
        assert_eq!(a.pull().unwrap().data, annex_b(&[&[0x41, 0x80, 1, 2, 3]]));
        // A continuation without a start: an error, silent after a loss.
        assert!(matches!(
            frag(&mut a, 3000, true, 0, false, true, &[3]),
            Err(DepacketizeError::Malformed { .. })
        ));
        assert_eq!(frag(&mut a, 6000, true, 1, false, true, &[3]), Ok(()));
        // Another NAL unit type in the middle.
        frag(&mut a, 9000, false, 0, true, false, &[0x80]).unwrap();
        let other = a.push(&pkt(9000, false, &[1]), 0, |a, p| {
            a.fragment(SLICE, &[0x42], 2, false, true, p)
        });
        assert!(matches!(other, Err(DepacketizeError::Malformed { .. })));
        // A marker bit inside a fragmented NAL unit.
        frag(&mut a, 12000, false, 0, true, false, &[0x80]).unwrap();
        assert!(matches!(
            frag(&mut a, 12000, true, 0, false, false, &[1]),
            Err(DepacketizeError::Malformed { .. })
        ));
        // A new timestamp while one is open.
        frag(&mut a, 15000, false, 0, true, false, &[0x80]).unwrap();
        assert!(matches!(
            nal(&mut a, 18000, true, 0, SLICE, FIRST),
            Err(DepacketizeError::Malformed { .. })
        ));
        let f = frames(&mut a);
        assert_eq!(
            f.iter().map(|f| (f.timestamp, f.loss)).collect::<Vec<_>>(),
            [(18000, 1)]
        );
    }

    #[test]
    fn parse_errors_empty_payloads_and_the_size_limit() {
        let mut a = Assembler::new(VideoCodec::H265, 12, Vec::new());
        nal(&mut a, 0, false, 0, SLICE, FIRST).unwrap();
        let r = a.push(&pkt(0, false, &[1]), 0, |_, _| Err(malformed("H.265", "bad")));
        assert!(matches!(r, Err(DepacketizeError::Malformed { codec: "H.265", .. })));
        // The rest of that timestamp is dropped without parsing.
        let r = a.push(&pkt(0, true, &[1]), 0, |_, _| unreachable!("discarded packet parsed"));
        assert_eq!(r, Ok(()));
        assert!(a.pull().is_none());
        // An empty payload is never parsed.
        let r = a.push(&pkt(3000, true, &[]), 0, |_, _| unreachable!("empty payload parsed"));
        assert_eq!(r, Err(DepacketizeError::Empty { codec: "H.265" }));
        // 4 + 3 fits in 12; another 4 + 3 does not.
        nal(&mut a, 6000, false, 0, SLICE, FIRST).unwrap();
        assert_eq!(
            nal(&mut a, 6000, true, 0, SLICE, SECOND),
            Err(DepacketizeError::FrameTooLarge {
                codec: "H.265",
                limit: 12
            })
        );
        nal(&mut a, 9000, true, 0, SLICE, FIRST).unwrap();
        let f = frames(&mut a);
        assert_eq!(
            f.iter().map(|f| (f.codec, f.timestamp)).collect::<Vec<_>>(),
            [(VideoCodec::H265, 9000)]
        );
    }

    #[test]
    fn at_most_sixteen_frames_wait() {
        let mut a = asm();
        for n in 0..20u32 {
            nal(&mut a, n * 3000, true, 0, SLICE, FIRST).unwrap();
        }
        let f = frames(&mut a);
        assert_eq!(f.len(), MAX_READY);
        assert_eq!(f[0].timestamp, 4 * 3000);
    }
}
