//! H.265 over RTP (RFC 7798): a depacketizer (RTP packets in, access units
//! out) and a packetizer (access units in, RTP payloads out).
//!
//! The [`Depacketizer`] understands single NAL unit packets (types 0-47),
//! aggregation packets (AP, 48) and fragmentation units (FU, 49). PACI
//! packets (50) and the unspecified types 51-63 give
//! [`DepacketizeError::Unsupported`]. When the SDP's `sprop-max-don-diff` is
//! above 0, the DONL / DOND fields are skipped; NAL units are still taken
//! in transmission order (no reordering by decoding order number).
//!
//! It emits one [`VideoFrame`] per access unit, in Annex B form, with the
//! same rules as the H.264 depacketizer (see [`super::h264`]; both use the
//! crate's shared access unit assembler): an access unit ends at the marker
//! bit or at a timestamp change; VPS/SPS/PPS, access unit delimiters and SEI
//! belong to the access unit they arrive with; frames damaged by loss are
//! dropped and the loss reported on the next frame; the SDP's
//! `sprop-vps`/`sprop-sps`/`sprop-pps` are put in front of the first
//! keyframe (IRAP picture) when none came in-band before it.
//!
//! It does **not** parse parameter sets, decode, or handle multi-layer
//! streams specially (all layers go into the same access unit).
//!
//! The [`Packetizer`] is for servers: single NAL unit packets when a NAL unit
//! fits, APs for runs of small NAL units, FUs otherwise; never DONL fields.

use bytes::{BufMut, Bytes, BytesMut};

use super::access_unit::{malformed, unsupported, Abort, Assembler, NalKind};
use super::nal::{aggregate_run, take_sized};
use super::{DepacketizeError, SetupError, VideoCodec, VideoFrame};
use crate::rtp::RtpPacket;
use crate::sdp::Media;

pub use super::nal::split_annex_b;

const NAME: &str = "H.265";

/// Payload types of RFC 7798.
const AP: u8 = 48;
const FU: u8 = 49;
const PACI: u8 = 50;

/// Depacketizes one H.265 RTP stream into access units (see the module
/// documentation).
///
/// Completed frames wait for [`pull`](Self::pull); at most 16 are kept, and
/// if the caller does not pull, the oldest are dropped (with a warning).
#[derive(Debug)]
pub struct Depacketizer {
    asm: Assembler,
    /// DONL/DOND fields are present (`sprop-max-don-diff` > 0).
    don: bool,
}

impl Depacketizer {
    /// A depacketizer for the H.265 track `media`, dropping access units of
    /// over `max_frame_bytes` bytes.
    ///
    /// The VPS, SPS and PPS of `sprop-vps`, `sprop-sps` and `sprop-pps`, if
    /// any, are put in front of the first keyframe when the stream has not
    /// sent parameter sets in-band before it.
    ///
    /// # Errors
    ///
    /// [`SetupError::Sdp`] when the fmtp parameters are invalid,
    /// [`SetupError::UnsupportedCodec`] when `media` is not H.265.
    pub fn new(media: &Media, max_frame_bytes: usize) -> Result<Self, SetupError> {
        let params = media
            .h265()?
            .ok_or_else(|| SetupError::UnsupportedCodec(media.codec.clone()))?;
        let sets = (params.vps.into_iter().map(|s| (0, s)))
            .chain(params.sps.into_iter().map(|s| (1, s)))
            .chain(params.pps.into_iter().map(|s| (2, s)))
            .collect();
        Ok(Depacketizer {
            asm: Assembler::new(VideoCodec::H265, max_frame_bytes, sets),
            don: params.max_don_diff > 0,
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
    /// [`DepacketizeError::Unsupported`] for PACI and types 51-63,
    /// [`DepacketizeError::Malformed`] for truncated packets and broken
    /// fragment sequences, and [`DepacketizeError::FrameTooLarge`] (once per
    /// access unit) when the access unit outgrows the limit.
    pub fn push(&mut self, packet: &RtpPacket, lost: u32) -> Result<(), DepacketizeError> {
        let don = self.don;
        self.asm.push(packet, lost, |asm, p| push_payload(asm, p, don))
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

fn nal_type(header0: u8) -> u8 {
    (header0 >> 1) & 0x3f
}

/// Puts the NAL units of one non-empty payload into `asm`; `don`: DONL /
/// DOND fields are present.
fn push_payload(asm: &mut Assembler, p: &[u8], don: bool) -> Result<(), Abort> {
    if p.len() < 2 {
        return Err(malformed(NAME, "payload shorter than the 2-byte payload header"));
    }
    match nal_type(p[0]) {
        t @ 0..=47 => {
            let body = if don { 4 } else { 2 };
            if p.len() < body {
                return Err(malformed(NAME, "single NAL unit packet without DONL"));
            }
            asm.put_nal(nal_kind(t), &p[..2], &p[body..])
        }
        AP => {
            let mut rest = &p[2..];
            if rest.is_empty() {
                return Err(malformed(NAME, "AP without NAL units"));
            }
            let mut skip = if don { 2 } else { 0 }; // DONL, then DOND
            while !rest.is_empty() {
                let (nal, after) = take_sized(rest, skip, NAME, "AP")?;
                if nal.len() < 2 {
                    return Err(malformed(NAME, "AP: NAL unit shorter than its header"));
                }
                let t = nal_type(nal[0]);
                if t > 47 {
                    return Err(malformed(NAME, format!("NAL unit type {t} inside AP")));
                }
                asm.put_nal(nal_kind(t), &nal[..2], &nal[2..])?;
                rest = after;
                skip = if don { 1 } else { 0 };
            }
            Ok(())
        }
        FU => {
            if p.len() < 3 {
                return Err(malformed(NAME, "FU shorter than 3 bytes"));
            }
            let fu = p[2];
            let (start, end, t) = (fu & 0x80 != 0, fu & 0x40 != 0, fu & 0x3f);
            if t > 47 {
                return Err(malformed(NAME, format!("FU of NAL unit type {t}")));
            }
            let data = if start && don { 5 } else { 3 };
            if p.len() < data {
                return Err(malformed(NAME, "FU start without DONL"));
            }
            let header = [(p[0] & 0x81) | (t << 1), p[1]];
            asm.fragment(nal_kind(t), &header, t, start, end, &p[data..])
        }
        PACI => Err(unsupported(NAME, "PACI")),
        t => Err(unsupported(NAME, format!("NAL unit type {t}"))),
    }
}

/// How an H.265 NAL unit type matters to access unit assembly.
fn nal_kind(t: u8) -> NalKind {
    match t {
        // Slice segments: first_slice_segment_in_pic_flag is the first bit
        // of the body for the defined types.
        0..=9 | 16..=21 => NalKind::Vcl {
            key: (16..=23).contains(&t),
            first_flag: true,
        },
        // Reserved VCL types (22 and 23 are reserved IRAP types).
        10..=15 | 22..=31 => NalKind::Vcl {
            key: (16..=23).contains(&t),
            first_flag: false,
        },
        32 => NalKind::Param(0),
        33 => NalKind::Param(1),
        34 => NalKind::Param(2),
        35 => NalKind::Aud,
        _ => NalKind::Other,
    }
}

/// Packetizes H.265 access units into RTP payloads (RFC 7798, without
/// DONL: `sprop-max-don-diff` 0).
#[derive(Debug, Clone)]
pub struct Packetizer {
    max_payload: usize,
}

impl Packetizer {
    /// A packetizer whose RTP payloads are at most `max_payload` bytes (1400
    /// suits most networks). Values below 4 are raised to 4, the smallest FU
    /// that carries data.
    pub fn new(max_payload: usize) -> Self {
        Packetizer {
            max_payload: max_payload.max(4),
        }
    }

    /// Packetizes one access unit, given as NAL units without start codes
    /// (see [`split_annex_b`]). Returns the RTP payloads in order with their
    /// marker bits; only the last one has the marker set. NAL units shorter
    /// than the 2-byte NAL unit header are skipped.
    ///
    /// A NAL unit that fits in `max_payload` is sent as it is (no copy: the
    /// payload shares its memory); runs of small NAL units (such as VPS, SPS
    /// and PPS) are aggregated into APs; larger NAL units are split into FUs
    /// (one allocation per NAL unit).
    pub fn packetize(&mut self, nals: &[Bytes]) -> Vec<(Bytes, bool)> {
        let max = self.max_payload;
        let mut out = Vec::new();
        let mut i = 0;
        while i < nals.len() {
            if nals[i].len() < 2 {
                if !nals[i].is_empty() {
                    tracing::warn!("skipping a 1-byte H.265 NAL unit");
                }
                i += 1;
                continue;
            }
            let (end, count, size) = aggregate_run(nals, i, max, 2);
            if count >= 2 {
                let run = || nals[i..end].iter().filter(|n| n.len() >= 2);
                let f = run().fold(0, |f, n| f | (n[0] & 0x80));
                let layer = run().map(|n| ((n[0] & 1) << 5) | (n[1] >> 3)).min().unwrap_or(0);
                let tid = run().map(|n| n[1] & 7).min().unwrap_or(0);
                let mut ap = BytesMut::with_capacity(size);
                ap.put_u8(f | (AP << 1) | (layer >> 5));
                ap.put_u8(((layer & 0x1f) << 3) | tid);
                for nal in run() {
                    ap.put_u16(nal.len() as u16); // aggregate_run keeps sizes <= 0xffff
                    ap.put_slice(nal);
                }
                out.push((ap.freeze(), false));
                i = end;
                continue;
            }
            let nal = &nals[i];
            if nal.len() <= max {
                out.push((nal.clone(), false));
            } else {
                let header = [(nal[0] & 0x81) | (FU << 1), nal[1]];
                let t = nal_type(nal[0]);
                let body = &nal[2..];
                let chunk = max - 3;
                let pieces = body.len().div_ceil(chunk);
                let mut buf = BytesMut::with_capacity(body.len() + 3 * pieces);
                for (n, data) in body.chunks(chunk).enumerate() {
                    let mut fu = t;
                    if n == 0 {
                        fu |= 0x80;
                    }
                    if n + 1 == pieces {
                        fu |= 0x40;
                    }
                    buf.put_slice(&header);
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
    use super::super::DEFAULT_MAX_FRAME_BYTES;
    use super::*;
    use proptest::prelude::*;

    const SDP_PLAIN: &[u8] = b"v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H265/90000\r\n";
    const SDP: &[u8] = b"v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H265/90000\r\n\
        a=fmtp:96 sprop-vps=QAEMAf//AWAAAAMAkAAAAwAAAwB4lZgJ; \
        sprop-sps=QgEBAWAAAAMAkAAAAwAAAwB4oAUCAWlllZpJMrwFqAgICCAAAAMAIAAAAwMh; sprop-pps=RAHBcrRiQA==\r\n";
    const SDP_DON: &[u8] = b"v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H265/90000\r\n\
        a=fmtp:96 sprop-max-don-diff=2\r\n";

    const VPS: &[u8] = &[0x40, 0x01, 0x0c, 0x01];
    const SPS: &[u8] = &[0x42, 0x01, 0x01, 0x01, 0x60];
    const PPS: &[u8] = &[0x44, 0x01, 0xc1, 0x72];
    const AUD: &[u8] = &[0x46, 0x01, 0x50];
    /// IDR_W_RADL, first slice segment.
    const IDR: &[u8] = &[0x26, 0x01, 0xaf, 0x08, 0x44];
    /// TRAIL_R, first slice segment.
    const TRAIL: &[u8] = &[0x02, 0x01, 0xd0, 0x11];
    /// TRAIL_R, not the first slice segment.
    const TRAIL_SECOND: &[u8] = &[0x02, 0x01, 0x50, 0x11];

    fn depack(sdp: &[u8]) -> Depacketizer {
        Depacketizer::new(&media(sdp), 1 << 20).unwrap()
    }

    fn frames(d: &mut Depacketizer) -> Vec<VideoFrame> {
        std::iter::from_fn(|| d.pull()).collect()
    }

    /// FU packets for `nal`, with a DONL in the first when `donl` is given.
    fn fu(nal: &[u8], pieces: usize, donl: Option<u16>) -> Vec<Vec<u8>> {
        let body = &nal[2..];
        let chunk = body.len().div_ceil(pieces);
        let n = body.chunks(chunk).count();
        body.chunks(chunk)
            .enumerate()
            .map(|(i, c)| {
                let mut p = vec![(nal[0] & 0x81) | (49 << 1), nal[1], nal_type(nal[0])];
                if i == 0 {
                    p[2] |= 0x80;
                    if let Some(d) = donl {
                        p.extend_from_slice(&d.to_be_bytes());
                    }
                }
                if i + 1 == n {
                    p[2] |= 0x40;
                }
                p.extend_from_slice(c);
                p
            })
            .collect()
    }

    fn ap(nals: &[&[u8]], don: bool) -> Vec<u8> {
        let mut p = vec![48 << 1, 0x01];
        for (i, n) in nals.iter().enumerate() {
            if don {
                if i == 0 {
                    p.extend_from_slice(&[0x12, 0x34]);
                } else {
                    p.push(1);
                }
            }
            p.extend_from_slice(&(n.len() as u16).to_be_bytes());
            p.extend_from_slice(n);
        }
        p
    }

    #[test]
    fn single_nal_access_unit() {
        let mut d = depack(SDP_PLAIN);
        d.push(&pkt(5, true, TRAIL), 0).unwrap();
        let f = frames(&mut d);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].data, annex_b(&[TRAIL]));
        assert_eq!(f[0].codec, VideoCodec::H265);
        assert_eq!(f[0].timestamp, 5);
        assert!(!f[0].keyframe && !f[0].new_parameters);
    }

    #[test]
    fn separate_parameter_set_packets_join_the_irap() {
        let mut d = depack(SDP_PLAIN);
        for p in [AUD, VPS, SPS, PPS] {
            d.push(&pkt(0, false, p), 0).unwrap();
        }
        d.push(&pkt(0, true, IDR), 0).unwrap();
        let f = frames(&mut d);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].data, annex_b(&[AUD, VPS, SPS, PPS, IDR]));
        assert!(f[0].keyframe && f[0].new_parameters);
        // Same again: not new. A CRA is a keyframe too.
        for p in [VPS, SPS, PPS] {
            d.push(&pkt(3000, false, p), 0).unwrap();
        }
        let cra = [21 << 1, 0x01, 0x80];
        d.push(&pkt(3000, true, &cra), 0).unwrap();
        let f = frames(&mut d);
        assert!(f[0].keyframe && !f[0].new_parameters);
    }

    #[test]
    fn ap_then_fu() {
        let mut d = depack(SDP_PLAIN);
        d.push(&pkt(0, false, &ap(&[VPS, SPS, PPS], false)), 0).unwrap();
        let idr: Vec<u8> = IDR.iter().copied().chain((0..100).map(|i| i as u8)).collect();
        let frags = fu(&idr, 5, None);
        assert_eq!(frags.len(), 5);
        for (i, f) in frags.iter().enumerate() {
            d.push(&pkt(0, i == 4, f), 0).unwrap();
        }
        let f = frames(&mut d);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].data, annex_b(&[VPS, SPS, PPS, &idr]));
        assert!(f[0].keyframe && f[0].new_parameters);
    }

    #[test]
    fn donl() {
        let mut d = depack(SDP_DON);
        d.push(&pkt(0, false, &ap(&[VPS, SPS, PPS], true)), 0).unwrap();
        let idr: Vec<u8> = IDR.iter().copied().chain((0..40).map(|i| i as u8)).collect();
        for (i, f) in fu(&idr, 3, Some(7)).iter().enumerate() {
            d.push(&pkt(0, i == 2, f), 0).unwrap();
        }
        let single = [&TRAIL[..2], &[0, 8], &TRAIL[2..]].concat();
        d.push(&pkt(3000, true, &single), 0).unwrap();
        let f = frames(&mut d);
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].data, annex_b(&[VPS, SPS, PPS, &idr]));
        assert_eq!(f[1].data, annex_b(&[TRAIL]));
        // Missing DONL.
        assert!(d.push(&pkt(6000, true, &[0x02, 0x01, 0]), 0).is_err());
        assert!(d.push(&pkt(6000, true, &[49 << 1, 0x01, 0x81, 0]), 0).is_err());
    }

    #[test]
    fn timestamp_change_without_marker() {
        let mut d = depack(SDP_PLAIN);
        d.push(&pkt(0, false, IDR), 0).unwrap();
        d.push(&pkt(3000, false, TRAIL), 0).unwrap();
        d.push(&pkt(6000, true, TRAIL), 0).unwrap();
        let f = frames(&mut d);
        assert_eq!(f.iter().map(|f| f.timestamp).collect::<Vec<_>>(), [0, 3000, 6000]);
        assert!(f[0].keyframe && !f[1].keyframe);
    }

    #[test]
    fn loss() {
        let mut d = depack(SDP_PLAIN);
        let nal: Vec<u8> = TRAIL.iter().copied().chain(std::iter::repeat_n(3, 60)).collect();
        let frags = fu(&nal, 4, None);
        d.push(&pkt(0, false, &frags[0]), 0).unwrap();
        d.push(&pkt(0, false, &frags[2]), 1).unwrap();
        d.push(&pkt(0, true, &frags[3]), 0).unwrap();
        assert!(d.pull().is_none());
        // Loss at the boundary, then a second slice segment without the first: dropped.
        d.push(&pkt(3000, true, TRAIL_SECOND), 2).unwrap();
        assert!(d.pull().is_none());
        d.push(&pkt(6000, true, TRAIL), 0).unwrap();
        let f = frames(&mut d);
        assert_eq!(f.iter().map(|f| (f.timestamp, f.loss)).collect::<Vec<_>>(), [(6000, 3)]);
        d.push(&pkt(9000, true, TRAIL), 5).unwrap();
        assert_eq!(d.pull().unwrap().loss, 5);
    }

    #[test]
    fn interrupted_fu() {
        let mut d = depack(SDP_PLAIN);
        let nal: Vec<u8> = TRAIL.iter().copied().chain(std::iter::repeat_n(3, 60)).collect();
        let frags = fu(&nal, 3, None);
        d.push(&pkt(0, false, &frags[0]), 0).unwrap();
        assert!(d.push(&pkt(0, false, &frags[0]), 0).is_err());
        d.push(&pkt(0, false, &frags[1]), 0).unwrap();
        d.push(&pkt(0, true, &frags[2]), 0).unwrap();
        assert!(d.pull().is_none());
        d.push(&pkt(3000, true, TRAIL), 0).unwrap();
        assert_eq!(frames(&mut d).len(), 1);
    }

    #[test]
    fn too_large_frame() {
        let mut d = Depacketizer::new(&media(SDP_PLAIN), 40).unwrap();
        let nal: Vec<u8> = TRAIL.iter().copied().chain(std::iter::repeat_n(3, 60)).collect();
        let frags = fu(&nal, 3, None);
        d.push(&pkt(0, false, &frags[0]), 0).unwrap();
        assert!(matches!(
            d.push(&pkt(0, false, &frags[1]), 0),
            Err(DepacketizeError::FrameTooLarge {
                codec: "H.265",
                limit: 40
            })
        ));
        d.push(&pkt(0, true, &frags[2]), 0).unwrap();
        assert!(d.pull().is_none());
        d.push(&pkt(3000, true, TRAIL), 0).unwrap();
        assert_eq!(d.pull().unwrap().data, annex_b(&[TRAIL]));
    }

    #[test]
    fn unsupported_and_malformed() {
        let mut d = depack(SDP_PLAIN);
        assert!(matches!(
            d.push(&pkt(0, true, &[50 << 1, 1, 0, 0]), 0),
            Err(DepacketizeError::Unsupported { .. })
        ));
        assert!(matches!(
            d.push(&pkt(0, true, &[63 << 1, 1, 0, 0]), 0),
            Err(DepacketizeError::Unsupported { .. })
        ));
        assert_eq!(
            d.push(&pkt(0, true, &[]), 0),
            Err(DepacketizeError::Empty { codec: "H.265" })
        );
        for bad in [
            &[0x02][..],
            &[49 << 1, 1],
            &[48 << 1, 1],
            &[48 << 1, 1, 0, 5, 2, 1],
            &[48 << 1, 1, 0, 1, 2],
        ] {
            assert!(
                matches!(d.push(&pkt(0, true, bad), 0), Err(DepacketizeError::Malformed { .. })),
                "{bad:?}"
            );
        }
        assert!(d.pull().is_none());
    }

    #[test]
    fn sdp_parameter_sets_before_first_keyframe() {
        let m = media(SDP);
        let sets = m.parameter_sets_annex_b().unwrap();
        let mut d = Depacketizer::new(&m, 1 << 20).unwrap();
        d.push(&pkt(0, false, AUD), 0).unwrap();
        d.push(&pkt(0, true, IDR), 0).unwrap();
        let f = d.pull().unwrap();
        let expected = [&annex_b(&[AUD])[..], &sets[..], &annex_b(&[IDR])[..]].concat();
        assert_eq!(f.data, expected);
        assert!(f.keyframe && f.new_parameters);
        d.push(&pkt(3000, true, IDR), 0).unwrap();
        assert_eq!(d.pull().unwrap().data, annex_b(&[IDR]));

        // In-band sets first: the SDP ones are not used.
        let mut d = Depacketizer::new(&m, 1 << 20).unwrap();
        d.push(&pkt(0, false, &ap(&[VPS, SPS, PPS], false)), 0).unwrap();
        d.push(&pkt(0, true, IDR), 0).unwrap();
        assert_eq!(d.pull().unwrap().data, annex_b(&[VPS, SPS, PPS, IDR]));
    }

    #[test]
    fn packetizer_shapes() {
        let mut p = Packetizer::new(14);
        let idr: Vec<u8> = (0..20).map(|i| if i < 2 { IDR[i as usize] } else { i }).collect();
        let nals = [
            Bytes::from_static(VPS),
            Bytes::from_static(&[0x42, 0x03, 9]), // SPS, TID 2
            Bytes::from_static(&[0x44]),          // too short, skipped
            Bytes::from(idr),
        ];
        let out = p.packetize(&nals);
        assert_eq!(out.len(), 3);
        assert_eq!(
            &out[0].0[..],
            &[0x60, 0x01, 0, 4, 0x40, 0x01, 0x0c, 0x01, 0, 3, 0x42, 0x03, 9]
        );
        assert_eq!(&out[1].0[..3], &[0x62, 0x01, 0x80 | 19]);
        assert_eq!(out[1].0.len(), 14);
        assert_eq!(&out[2].0[..], &[0x62, 0x01, 0x40 | 19, 13, 14, 15, 16, 17, 18, 19]);
        assert_eq!(out.iter().map(|o| o.1).collect::<Vec<_>>(), [false, false, true]);
        // A NAL unit that fits goes as it is, without copying.
        let out = p.packetize(&nals[..1]);
        assert_eq!(out[0].0.as_ptr(), nals[0].as_ptr());
        assert!(out[0].1);
    }

    fn access_unit() -> impl Strategy<Value = (Vec<Vec<u8>>, bool)> {
        let header = |t: u8, layer: u8, tid: u8| [(t << 1) | (layer >> 5), ((layer & 0x1f) << 3) | tid];
        let nal = (
            0u8..=47,
            0u8..64,
            1u8..8,
            proptest::collection::vec(any::<u8>(), 0..5000),
        )
            .prop_map(move |(t, layer, tid, body)| [&header(t, layer, tid)[..], &body].concat());
        let slice = (
            prop_oneof![Just(1u8), Just(19), Just(21), 0u8..32],
            proptest::collection::vec(any::<u8>(), 0..5000),
        )
            .prop_map(move |(t, body)| [&header(t, 0, 1)[..], &body].concat());
        (
            proptest::collection::vec(nal, 0..4),
            slice,
            proptest::collection::vec(any::<u8>(), 0..3),
        )
            .prop_map(move |(mut nals, slice, small)| {
                if !small.is_empty() {
                    nals.insert(0, [&header(39, 0, 1)[..], &small].concat());
                }
                nals.push(slice);
                let key = nals.iter().any(|n| (16..=23).contains(&nal_type(n[0])));
                (nals, key)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn arbitrary_packets_never_panic(
            packets in arbitrary_packets(),
            limit in 0usize..400,
            sdp in prop_oneof![Just(SDP), Just(SDP_PLAIN), Just(SDP_DON)],
        ) {
            let mut d = Depacketizer::new(&media(sdp), limit).unwrap();
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
            let mut d = Depacketizer::new(&media(SDP_PLAIN), DEFAULT_MAX_FRAME_BYTES).unwrap();
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
}
