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
//! Access unit assembly (the rules above) is shared with H.265 and lives in
//! `super::access_unit`; aggregation packet framing and Annex B splitting
//! in `super::nal`.

use bytes::{BufMut, Bytes, BytesMut};

use super::access_unit::{malformed, unsupported, Abort, Assembler, NalKind};
use super::nal::{aggregate_run, take_sized};
use super::{DepacketizeError, SetupError, VideoCodec, VideoFrame};
use crate::rtp::RtpPacket;
use crate::sdp::Media;

pub use super::nal::split_annex_b;

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
        self.asm.push(packet, lost, push_payload)
    }

    /// The next complete access unit, oldest first.
    pub fn pull(&mut self) -> Option<VideoFrame> {
        self.asm.pull()
    }

    /// The stream ended (RTCP BYE): the access unit under way is complete
    /// even without its marker bit; [`pull`](Self::pull) gives it.
    pub fn end_of_stream(&mut self) {
        self.asm.end_of_stream();
    }
}

/// Puts the NAL units of one non-empty payload into `asm`.
fn push_payload(asm: &mut Assembler, p: &[u8]) -> Result<(), Abort> {
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
            asm.fragment(nal_kind(t), &header, t, fu & 0x80 != 0, fu & 0x40 != 0, &p[2..])
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

#[cfg(test)]
mod tests {
    use super::super::test_support::{annex_b, arbitrary_packets, media, pkt, rtp};
    use super::*;
    use proptest::prelude::*;

    const SDP: &[u8] = b"v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n\
        a=fmtp:96 packetization-mode=1;sprop-parameter-sets=Z2QADayyAoP2AiAAAAMAIAAABkHihUk=,aOvDyyLA\r\n";
    const SDP_PLAIN: &[u8] = b"v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n";

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
