//! RTCP packet parsing and writing (RFC 3550 §6).
//!
//! [`parse_compound`] splits a compound RTCP packet by each packet's length
//! field and decodes sender reports, receiver reports, source descriptions
//! and BYE packets; every other packet type (APP, RTPFB, PSFB, XR, unknown)
//! is kept as [`RtcpPacket::Other`] with its raw body. SDES item values and
//! `Other` bodies are zero-copy slices of the input.
//!
//! The `encode_*` functions write sender reports, receiver reports, SDES
//! CNAME packets and BYE packets; appending several to one buffer makes a
//! compound packet.
//!
//! This module does **not** compute statistics (loss, jitter, round-trip
//! time), schedule reports, or check the compound-packet rules of §6.1 (such
//! as "the first packet is an SR or RR"): it accepts what peers actually send.

use bytes::{BufMut, Bytes, BytesMut};

/// Most packets [`parse_compound`] accepts in one compound packet.
pub const MAX_PACKETS_PER_COMPOUND: usize = 64;

/// Seconds from the NTP epoch (1900-01-01) to the Unix epoch (1970-01-01).
pub const NTP_UNIX_OFFSET_SECONDS: u64 = 2_208_988_800;

const PT_SR: u8 = 200;
const PT_RR: u8 = 201;
const PT_SDES: u8 = 202;
const PT_BYE: u8 = 203;
const REPORT_BLOCK_LEN: usize = 24;
const MAX_COUNT: usize = 31;

/// Why an RTCP compound packet could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtcpError {
    /// The input was empty.
    #[error("empty RTCP packet")]
    Empty,
    /// Fewer than 4 bytes were left where an RTCP header should start.
    #[error("RTCP header truncated at offset {offset}: {available} bytes left, 4 needed")]
    TruncatedHeader {
        /// Offset of the packet in the compound packet.
        offset: usize,
        /// Bytes left from `offset`.
        available: usize,
    },
    /// The version field is not 2.
    #[error("RTCP version {0} is not supported (only version 2)")]
    BadVersion(u8),
    /// A packet's length field points past the end of the compound packet.
    #[error("RTCP packet at offset {offset} declares {declared} bytes but only {available} remain")]
    LengthOverrun {
        /// Offset of the packet in the compound packet.
        offset: usize,
        /// Length from the header, in bytes, including the header.
        declared: usize,
        /// Bytes left from `offset`.
        available: usize,
    },
    /// The padding bit is set but the padding count is zero or larger than the body.
    #[error("RTCP padding count {count} is invalid with a {available}-byte body")]
    BadPadding {
        /// The padding count (last byte of the packet).
        count: u8,
        /// Body bytes (after the 4-byte header) the padding was taken from.
        available: usize,
    },
    /// More packets than [`MAX_PACKETS_PER_COMPOUND`].
    #[error("RTCP compound packet has more than {MAX_PACKETS_PER_COMPOUND} packets")]
    TooManyPackets,
    /// A packet's body is shorter than its type and count require.
    #[error("RTCP packet type {packet_type} needs {needed} body bytes but has {len}")]
    BodyTooShort {
        /// The packet type.
        packet_type: u8,
        /// Bytes needed by the fixed fields and the count.
        needed: usize,
        /// Body bytes present (after header, without padding).
        len: usize,
    },
    /// An SDES packet's chunks or items do not fit its body.
    #[error("malformed RTCP SDES packet: {0}")]
    MalformedSdes(&'static str),
    /// A BYE packet's reason does not fit its body.
    #[error("malformed RTCP BYE packet: reason of {declared} bytes but only {available} remain")]
    MalformedBye {
        /// Reason length from the packet.
        declared: usize,
        /// Bytes left for the reason.
        available: usize,
    },
}

/// One reception report block (RFC 3550 §6.4.1), in an SR or RR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ReportBlock {
    /// The source this block reports on.
    pub ssrc: u32,
    /// Fraction of packets lost since the last report, in 1/256ths.
    pub fraction_lost: u8,
    /// Cumulative packets lost (24-bit signed; duplicates can make it negative).
    /// Writing clamps it to the 24-bit range.
    pub cumulative_lost: i32,
    /// Extended highest sequence number received (cycles in the high 16 bits).
    pub highest_sequence: u32,
    /// Interarrival jitter, in timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last SR received (LSR).
    pub last_sr: u32,
    /// Delay since that SR, in 1/65536 seconds (DLSR).
    pub delay_since_last_sr: u32,
}

/// A sender report (PT 200).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SenderReport {
    /// The sender's SSRC.
    pub ssrc: u32,
    /// 64-bit NTP wallclock timestamp: seconds since 1900 in the high 32
    /// bits, fraction in the low 32 bits.
    pub ntp_timestamp: u64,
    /// The RTP timestamp corresponding to `ntp_timestamp`.
    pub rtp_timestamp: u32,
    /// Sender's packet count.
    pub packet_count: u32,
    /// Sender's payload octet count.
    pub octet_count: u32,
    /// Reception report blocks.
    pub reports: Vec<ReportBlock>,
}

impl SenderReport {
    /// The NTP timestamp as seconds since the Unix epoch, assuming NTP era 0
    /// (1900–2036). Negative for timestamps before 1970 (e.g. senders that
    /// put a zero or a media clock here).
    pub fn ntp_unix_seconds(&self) -> f64 {
        let seconds = (self.ntp_timestamp >> 32) as f64;
        let fraction = (self.ntp_timestamp & 0xffff_ffff) as f64 / 4_294_967_296.0;
        seconds - NTP_UNIX_OFFSET_SECONDS as f64 + fraction
    }
}

/// A receiver report (PT 201).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReceiverReport {
    /// The reporter's SSRC.
    pub ssrc: u32,
    /// Reception report blocks.
    pub reports: Vec<ReportBlock>,
}

/// SDES item type of CNAME (canonical name).
pub const SDES_CNAME: u8 = 1;

/// One item in an SDES chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct SdesItem {
    /// Item type (1 CNAME, 2 NAME, 3 EMAIL, 4 PHONE, 5 LOC, 6 TOOL, 7 NOTE, 8 PRIV).
    pub item_type: u8,
    /// Raw item value (UTF-8 per the RFC, but not checked); a slice of the input.
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::duration_secs::lossy_text"))]
    pub value: Bytes,
}

/// One chunk of an SDES packet (PT 202): a source and its items.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct SdesChunk {
    /// The SSRC or CSRC described.
    pub ssrc: u32,
    /// The items, in packet order, without the terminating null item.
    pub items: Vec<SdesItem>,
}

impl SdesChunk {
    /// The CNAME item's value, if present and valid UTF-8.
    pub fn cname(&self) -> Option<&str> {
        self.items
            .iter()
            .find(|i| i.item_type == SDES_CNAME)
            .and_then(|i| std::str::from_utf8(&i.value).ok())
    }
}

/// A BYE packet (PT 203).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Bye {
    /// The sources leaving.
    pub ssrcs: Vec<u32>,
    /// The reason for leaving, if given and not empty (invalid UTF-8 replaced).
    pub reason: Option<String>,
}

/// One packet of a compound RTCP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtcpPacket {
    /// PT 200.
    SenderReport(SenderReport),
    /// PT 201.
    ReceiverReport(ReceiverReport),
    /// PT 202.
    SourceDescription(Vec<SdesChunk>),
    /// PT 203.
    Bye(Bye),
    /// Any other packet type (APP 204, RTPFB 205, PSFB 206, XR 207, unknown).
    Other {
        /// The packet type.
        packet_type: u8,
        /// The 5-bit count / subtype field.
        count: u8,
        /// The body after the 4-byte header, without padding; a slice of the input.
        payload: Bytes,
    },
}

/// Parses a compound RTCP packet (or a single one) into its packets.
///
/// Each packet must be version 2 and its length must fit in what is left;
/// padding (P bit) is removed from the packet that carries it. Bytes in an
/// SR/RR body after the report blocks (profile-specific extensions) are
/// ignored.
///
/// # Errors
///
/// [`RtcpError`] on an empty input, truncation, a bad version, length
/// overrun, bad padding, a body too short for its count, or more than
/// [`MAX_PACKETS_PER_COMPOUND`] packets.
pub fn parse_compound(data: &Bytes) -> Result<Vec<RtcpPacket>, RtcpError> {
    if data.is_empty() {
        return Err(RtcpError::Empty);
    }
    let mut packets = Vec::new();
    let mut offset = 0;
    while offset < data.len() {
        if packets.len() == MAX_PACKETS_PER_COMPOUND {
            return Err(RtcpError::TooManyPackets);
        }
        let available = data.len() - offset;
        if available < 4 {
            return Err(RtcpError::TruncatedHeader { offset, available });
        }
        let b0 = data[offset];
        let version = b0 >> 6;
        if version != 2 {
            return Err(RtcpError::BadVersion(version));
        }
        let has_padding = b0 & 0x20 != 0;
        let count = b0 & 0x1f;
        let packet_type = data[offset + 1];
        let words = usize::from(u16::from_be_bytes([data[offset + 2], data[offset + 3]]));
        let declared = (words + 1) * 4;
        if declared > available {
            return Err(RtcpError::LengthOverrun {
                offset,
                declared,
                available,
            });
        }
        let end = offset + declared;
        let mut body = data.slice(offset + 4..end);
        if has_padding {
            let pad = body.last().copied().unwrap_or(0);
            if pad == 0 || usize::from(pad) > body.len() {
                return Err(RtcpError::BadPadding {
                    count: pad,
                    available: body.len(),
                });
            }
            body.truncate(body.len() - usize::from(pad));
        }
        packets.push(parse_one(packet_type, count, body)?);
        offset = end;
    }
    Ok(packets)
}

fn parse_one(packet_type: u8, count: u8, body: Bytes) -> Result<RtcpPacket, RtcpError> {
    let n = usize::from(count);
    let need = |needed: usize| {
        if body.len() < needed {
            Err(RtcpError::BodyTooShort {
                packet_type,
                needed,
                len: body.len(),
            })
        } else {
            Ok(())
        }
    };
    match packet_type {
        PT_SR => {
            need(24 + n * REPORT_BLOCK_LEN)?;
            Ok(RtcpPacket::SenderReport(SenderReport {
                ssrc: be_u32(&body, 0),
                ntp_timestamp: (u64::from(be_u32(&body, 4)) << 32) | u64::from(be_u32(&body, 8)),
                rtp_timestamp: be_u32(&body, 12),
                packet_count: be_u32(&body, 16),
                octet_count: be_u32(&body, 20),
                reports: parse_report_blocks(&body[24..], n),
            }))
        }
        PT_RR => {
            need(4 + n * REPORT_BLOCK_LEN)?;
            Ok(RtcpPacket::ReceiverReport(ReceiverReport {
                ssrc: be_u32(&body, 0),
                reports: parse_report_blocks(&body[4..], n),
            }))
        }
        PT_SDES => parse_sdes(&body, n).map(RtcpPacket::SourceDescription),
        PT_BYE => {
            need(4 * n)?;
            let ssrcs = (0..n).map(|i| be_u32(&body, 4 * i)).collect();
            let rest = &body[4 * n..];
            let reason = match rest.first() {
                None | Some(0) => None,
                Some(&len) => {
                    let len = usize::from(len);
                    let text = rest.get(1..1 + len).ok_or(RtcpError::MalformedBye {
                        declared: len,
                        available: rest.len() - 1,
                    })?;
                    Some(String::from_utf8_lossy(text).into_owned())
                }
            };
            Ok(RtcpPacket::Bye(Bye { ssrcs, reason }))
        }
        _ => Ok(RtcpPacket::Other {
            packet_type,
            count,
            payload: body,
        }),
    }
}

/// Reads a big-endian u32; callers have checked `buf.len() >= at + 4`.
fn be_u32(buf: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

/// Parses `n` report blocks; callers have checked the length.
fn parse_report_blocks(buf: &[u8], n: usize) -> Vec<ReportBlock> {
    buf.chunks_exact(REPORT_BLOCK_LEN)
        .take(n)
        .map(|b| {
            // Sign-extend the 24-bit cumulative loss.
            let cumulative_lost = i32::from_be_bytes([b[5], b[6], b[7], 0]) >> 8;
            ReportBlock {
                ssrc: be_u32(b, 0),
                fraction_lost: b[4],
                cumulative_lost,
                highest_sequence: be_u32(b, 8),
                jitter: be_u32(b, 12),
                last_sr: be_u32(b, 16),
                delay_since_last_sr: be_u32(b, 20),
            }
        })
        .collect()
}

fn parse_sdes(body: &Bytes, n: usize) -> Result<Vec<SdesChunk>, RtcpError> {
    let mut chunks = Vec::with_capacity(n);
    let mut pos = 0;
    for _ in 0..n {
        if body.len() - pos < 4 {
            return Err(RtcpError::MalformedSdes("fewer chunks than the source count"));
        }
        let ssrc = be_u32(body, pos);
        pos += 4;
        let mut items = Vec::new();
        loop {
            let item_type = *body
                .get(pos)
                .ok_or(RtcpError::MalformedSdes("chunk has no terminating null item"))?;
            if item_type == 0 {
                pos += 1;
                break;
            }
            let len = usize::from(
                *body
                    .get(pos + 1)
                    .ok_or(RtcpError::MalformedSdes("item length missing"))?,
            );
            let start = pos + 2;
            let end = start + len;
            if end > body.len() {
                return Err(RtcpError::MalformedSdes("item runs past the end of the packet"));
            }
            items.push(SdesItem {
                item_type,
                value: body.slice(start..end),
            });
            pos = end;
        }
        // Chunks start on 32-bit boundaries; the null padding may be cut
        // short by the end of the body.
        pos = pos.div_ceil(4) * 4;
        pos = pos.min(body.len());
        chunks.push(SdesChunk { ssrc, items });
    }
    Ok(chunks)
}

fn write_header(out: &mut BytesMut, count: usize, packet_type: u8, body_len: usize) {
    // body_len is always a multiple of 4 and far below 256 KiB here.
    let words = u16::try_from(body_len / 4).unwrap_or(u16::MAX);
    out.put_u8(0x80 | (count as u8 & 0x1f));
    out.put_u8(packet_type);
    out.put_u16(words);
}

fn write_report_block(block: &ReportBlock, out: &mut BytesMut) {
    let lost = block.cumulative_lost.clamp(-0x80_0000, 0x7f_ffff);
    let lost = lost.to_be_bytes();
    out.put_u32(block.ssrc);
    out.put_u8(block.fraction_lost);
    out.put_slice(&lost[1..]);
    out.put_u32(block.highest_sequence);
    out.put_u32(block.jitter);
    out.put_u32(block.last_sr);
    out.put_u32(block.delay_since_last_sr);
}

fn write_receiver_reports(ssrc: u32, blocks: &[ReportBlock], out: &mut BytesMut) {
    for group in blocks.chunks(MAX_COUNT) {
        write_header(out, group.len(), PT_RR, 4 + group.len() * REPORT_BLOCK_LEN);
        out.put_u32(ssrc);
        for block in group {
            write_report_block(block, out);
        }
    }
}

/// Appends a sender report to `out`.
///
/// An SR holds at most 31 report blocks; further blocks go into receiver
/// reports (with the same SSRC) appended right after it, as RFC 3550 §6.4.2
/// says.
pub fn encode_sender_report(sr: &SenderReport, out: &mut BytesMut) {
    let (first, rest) = sr.reports.split_at(sr.reports.len().min(MAX_COUNT));
    out.reserve(28 + sr.reports.len() * REPORT_BLOCK_LEN + rest.len().div_ceil(MAX_COUNT) * 8);
    write_header(out, first.len(), PT_SR, 24 + first.len() * REPORT_BLOCK_LEN);
    out.put_u32(sr.ssrc);
    out.put_u64(sr.ntp_timestamp);
    out.put_u32(sr.rtp_timestamp);
    out.put_u32(sr.packet_count);
    out.put_u32(sr.octet_count);
    for block in first {
        write_report_block(block, out);
    }
    write_receiver_reports(sr.ssrc, rest, out);
}

/// Appends a receiver report to `out`.
///
/// More than 31 report blocks are split over several RR packets. An RR with
/// no blocks is still written (a receiver with nothing to report sends one).
pub fn encode_receiver_report(rr: &ReceiverReport, out: &mut BytesMut) {
    if rr.reports.is_empty() {
        write_header(out, 0, PT_RR, 4);
        out.put_u32(rr.ssrc);
    } else {
        write_receiver_reports(rr.ssrc, &rr.reports, out);
    }
}

/// Appends an SDES packet with one chunk holding a CNAME item to `out`.
///
/// A CNAME longer than 255 bytes is cut at the last character boundary
/// before 255 bytes.
pub fn encode_sdes_cname(ssrc: u32, cname: &str, out: &mut BytesMut) {
    let cname = truncate_utf8(cname, 255);
    // SSRC + type + length + text + null terminator, padded to 32 bits.
    let chunk_len = (4 + 2 + cname.len() + 1).div_ceil(4) * 4;
    out.reserve(4 + chunk_len);
    write_header(out, 1, PT_SDES, chunk_len);
    out.put_u32(ssrc);
    out.put_u8(SDES_CNAME);
    out.put_u8(cname.len() as u8);
    out.put_slice(cname.as_bytes());
    out.put_bytes(0, chunk_len - 6 - cname.len());
}

/// Appends a BYE packet for `ssrcs` with an optional reason to `out`.
///
/// More than 31 SSRCs are split over several BYE packets, the reason going
/// in the last one. A reason longer than 255 bytes is cut at the last
/// character boundary before 255 bytes; an empty reason is left out.
pub fn encode_bye(ssrcs: &[u32], reason: Option<&str>, out: &mut BytesMut) {
    let reason = reason.map(|r| truncate_utf8(r, 255)).filter(|r| !r.is_empty());
    let groups = ssrcs.len().div_ceil(MAX_COUNT).max(1);
    for g in 0..groups {
        let group = ssrcs.get(g * MAX_COUNT..).unwrap_or(&[]);
        let group = &group[..group.len().min(MAX_COUNT)];
        let reason = reason.filter(|_| g + 1 == groups);
        let reason_len = reason.map_or(0, |r| (1 + r.len()).div_ceil(4) * 4);
        let body_len = 4 * group.len() + reason_len;
        out.reserve(4 + body_len);
        write_header(out, group.len(), PT_BYE, body_len);
        for ssrc in group {
            out.put_u32(*ssrc);
        }
        if let Some(r) = reason {
            out.put_u8(r.len() as u8);
            out.put_slice(r.as_bytes());
            out.put_bytes(0, reason_len - 1 - r.len());
        }
    }
}

/// `s` cut to at most `max` bytes, at a character boundary.
pub(crate) fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn block(ssrc: u32) -> ReportBlock {
        ReportBlock {
            ssrc,
            fraction_lost: 12,
            cumulative_lost: -3,
            highest_sequence: 0x0001_ffff,
            jitter: 77,
            last_sr: 0x1234_5678,
            delay_since_last_sr: 65536,
        }
    }

    fn sr(reports: Vec<ReportBlock>) -> SenderReport {
        SenderReport {
            ssrc: 0x1111_2222,
            ntp_timestamp: 0xe8f0_1234_8000_0000,
            rtp_timestamp: 90_000,
            packet_count: 10,
            octet_count: 12_345,
            reports,
        }
    }

    #[test]
    fn sender_report_round_trip() {
        for n in [0, 1, 31] {
            let report = sr((0..n).map(block).collect());
            let mut out = BytesMut::new();
            encode_sender_report(&report, &mut out);
            assert_eq!(out.len(), 28 + 24 * n as usize);
            let packets = parse_compound(&out.freeze()).unwrap();
            assert_eq!(packets, vec![RtcpPacket::SenderReport(report)]);
        }
    }

    #[test]
    fn sender_report_overflow_goes_to_receiver_reports() {
        let report = sr((0..70).map(block).collect());
        let mut out = BytesMut::new();
        encode_sender_report(&report, &mut out);
        let packets = parse_compound(&out.freeze()).unwrap();
        assert_eq!(packets.len(), 3);
        let mut all = Vec::new();
        match &packets[0] {
            RtcpPacket::SenderReport(s) => all.extend_from_slice(&s.reports),
            p => panic!("{p:?}"),
        }
        for p in &packets[1..] {
            match p {
                RtcpPacket::ReceiverReport(r) => {
                    assert_eq!(r.ssrc, report.ssrc);
                    all.extend_from_slice(&r.reports);
                }
                p => panic!("{p:?}"),
            }
        }
        assert_eq!(all, report.reports);
    }

    #[test]
    fn receiver_report_round_trip() {
        for n in [0u32, 2] {
            let rr = ReceiverReport {
                ssrc: 5,
                reports: (0..n).map(block).collect(),
            };
            let mut out = BytesMut::new();
            encode_receiver_report(&rr, &mut out);
            let packets = parse_compound(&out.freeze()).unwrap();
            assert_eq!(packets, vec![RtcpPacket::ReceiverReport(rr)]);
        }
    }

    #[test]
    fn cumulative_lost_is_clamped_and_sign_extended() {
        let mut b = block(1);
        b.cumulative_lost = i32::MAX;
        let rr = ReceiverReport {
            ssrc: 1,
            reports: vec![
                b,
                ReportBlock {
                    cumulative_lost: i32::MIN,
                    ..b
                },
            ],
        };
        let mut out = BytesMut::new();
        encode_receiver_report(&rr, &mut out);
        match &parse_compound(&out.freeze()).unwrap()[0] {
            RtcpPacket::ReceiverReport(r) => {
                assert_eq!(r.reports[0].cumulative_lost, 0x7f_ffff);
                assert_eq!(r.reports[1].cumulative_lost, -0x80_0000);
            }
            p => panic!("{p:?}"),
        }
    }

    #[test]
    fn bye_round_trip() {
        let mut out = BytesMut::new();
        encode_bye(&[1, 2], Some("teardown"), &mut out);
        assert_eq!(out.len() % 4, 0);
        let packets = parse_compound(&out.freeze()).unwrap();
        assert_eq!(
            packets,
            vec![RtcpPacket::Bye(Bye {
                ssrcs: vec![1, 2],
                reason: Some("teardown".into()),
            })]
        );

        let mut out = BytesMut::new();
        encode_bye(&[7], None, &mut out);
        assert_eq!(&out[..], &[0x81, 203, 0, 1, 0, 0, 0, 7]);
        let packets = parse_compound(&out.freeze()).unwrap();
        assert_eq!(
            packets,
            vec![RtcpPacket::Bye(Bye {
                ssrcs: vec![7],
                reason: None,
            })]
        );
    }

    #[test]
    fn bye_many_ssrcs_and_long_reason() {
        let ssrcs: Vec<u32> = (0..40).collect();
        let reason = "é".repeat(200); // 400 bytes, cut to 254
        let mut out = BytesMut::new();
        encode_bye(&ssrcs, Some(&reason), &mut out);
        let packets = parse_compound(&out.freeze()).unwrap();
        assert_eq!(packets.len(), 2);
        let (RtcpPacket::Bye(a), RtcpPacket::Bye(b)) = (&packets[0], &packets[1]) else {
            panic!("{packets:?}");
        };
        assert_eq!(a.ssrcs, (0..31).collect::<Vec<_>>());
        assert_eq!(a.reason, None);
        assert_eq!(b.ssrcs, (31..40).collect::<Vec<_>>());
        assert_eq!(b.reason.as_deref(), Some(&reason[..254]));
    }

    #[test]
    fn empty_bye() {
        let mut out = BytesMut::new();
        encode_bye(&[], None, &mut out);
        assert_eq!(
            parse_compound(&out.freeze()).unwrap(),
            vec![RtcpPacket::Bye(Bye::default())]
        );
    }

    /// SR with no report blocks followed by SDES with a CNAME, as a camera
    /// (e.g. a GStreamer or Live555 server) sends them.
    #[test]
    fn compound_sr_sdes() {
        let data = Bytes::from_static(&[
            // SR, RC=0, length 6
            0x80, 0xc8, 0x00, 0x06, //
            0x5a, 0x3c, 0x1e, 0x0f, // SSRC
            0xe9, 0x7a, 0x6c, 0x2b, // NTP seconds
            0x40, 0x00, 0x00, 0x00, // NTP fraction (0.25)
            0x00, 0x01, 0x5f, 0x90, // RTP timestamp 90000
            0x00, 0x00, 0x00, 0x64, // packet count 100
            0x00, 0x01, 0x86, 0xa0, // octet count 100000
            // SDES, SC=1, length 7
            0x81, 0xca, 0x00, 0x07, //
            0x5a, 0x3c, 0x1e, 0x0f, // SSRC
            0x01, 0x0e, b'u', b's', b'e', b'r', b'@', b'c', b'a', b'm', b'e', b'r', b'a', b'.', b'l',
            b'n', // CNAME "user@camera.ln" (14 bytes)
            0x06, 0x02, b'g', b's', // TOOL "gs"
            0x00, 0x00, 0x00, 0x00, // null item + padding to 32 bits
        ]);
        let packets = parse_compound(&data).unwrap();
        assert_eq!(packets.len(), 2);
        let RtcpPacket::SenderReport(s) = &packets[0] else {
            panic!("{packets:?}");
        };
        assert_eq!(s.ssrc, 0x5a3c_1e0f);
        assert_eq!(s.rtp_timestamp, 90_000);
        assert_eq!(s.packet_count, 100);
        assert_eq!(s.octet_count, 100_000);
        assert!(s.reports.is_empty());
        let expected = (0xe97a_6c2bu64 - NTP_UNIX_OFFSET_SECONDS) as f64 + 0.25;
        assert!((s.ntp_unix_seconds() - expected).abs() < 1e-6);
        let RtcpPacket::SourceDescription(chunks) = &packets[1] else {
            panic!("{packets:?}");
        };
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].ssrc, 0x5a3c_1e0f);
        assert_eq!(chunks[0].cname(), Some("user@camera.ln"));
        assert_eq!(chunks[0].items.len(), 2);
        assert_eq!(chunks[0].items[1].item_type, 6);
        assert_eq!(&chunks[0].items[1].value[..], b"gs");
    }

    #[test]
    fn sdes_encode_round_trip() {
        for name in ["", "a", "ab", "abc", "cam@10.0.0.1"] {
            let mut out = BytesMut::new();
            encode_sender_report(&sr(vec![]), &mut out);
            encode_sdes_cname(42, name, &mut out);
            assert_eq!(out.len() % 4, 0);
            let packets = parse_compound(&out.freeze()).unwrap();
            let RtcpPacket::SourceDescription(chunks) = &packets[1] else {
                panic!("{packets:?}");
            };
            assert_eq!(chunks[0].ssrc, 42);
            assert_eq!(chunks[0].cname(), Some(name));
        }
    }

    #[test]
    fn sdes_multiple_chunks() {
        let data = Bytes::from_static(&[
            0x82, 0xca, 0x00, 0x04, //
            0, 0, 0, 1, 1, 1, b'x', 0, // chunk 1: CNAME "x", null
            0, 0, 0, 2, 0, 0, 0, 0, // chunk 2: no items
        ]);
        let packets = parse_compound(&data).unwrap();
        assert_eq!(
            packets,
            vec![RtcpPacket::SourceDescription(vec![
                SdesChunk {
                    ssrc: 1,
                    items: vec![SdesItem {
                        item_type: 1,
                        value: Bytes::from_static(b"x")
                    }]
                },
                SdesChunk { ssrc: 2, items: vec![] },
            ])]
        );
    }

    #[test]
    fn other_packets_and_padding() {
        // PSFB (206) PLI with FMT=1, padded with 4 bytes.
        let data = Bytes::from_static(&[0xa1, 0xce, 0x00, 0x03, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 4]);
        let packets = parse_compound(&data).unwrap();
        assert_eq!(
            packets,
            vec![RtcpPacket::Other {
                packet_type: 206,
                count: 1,
                payload: Bytes::from_static(&[0, 0, 0, 1, 0, 0, 0, 2]),
            }]
        );
    }

    #[test]
    fn errors() {
        assert_eq!(parse_compound(&Bytes::new()), Err(RtcpError::Empty));
        assert_eq!(
            parse_compound(&Bytes::from_static(&[0x80, 0xc9, 0])),
            Err(RtcpError::TruncatedHeader {
                offset: 0,
                available: 3
            })
        );
        assert_eq!(
            parse_compound(&Bytes::from_static(&[0x40, 0xc9, 0, 0])),
            Err(RtcpError::BadVersion(1))
        );
        assert_eq!(
            parse_compound(&Bytes::from_static(&[0x80, 0xc9, 0, 1, 0, 0])),
            Err(RtcpError::LengthOverrun {
                offset: 0,
                declared: 8,
                available: 6
            })
        );
        // RR claiming one report block with only the SSRC present.
        assert_eq!(
            parse_compound(&Bytes::from_static(&[0x81, 0xc9, 0, 1, 0, 0, 0, 1])),
            Err(RtcpError::BodyTooShort {
                packet_type: 201,
                needed: 28,
                len: 4
            })
        );
        // SR too short for its fixed fields.
        assert_eq!(
            parse_compound(&Bytes::from_static(&[0x80, 0xc8, 0, 1, 0, 0, 0, 1])),
            Err(RtcpError::BodyTooShort {
                packet_type: 200,
                needed: 24,
                len: 4
            })
        );
        // Padding bit with zero count, and with count larger than the body.
        assert_eq!(
            parse_compound(&Bytes::from_static(&[0xa0, 0xcc, 0, 1, 0, 0, 0, 0])),
            Err(RtcpError::BadPadding { count: 0, available: 4 })
        );
        assert_eq!(
            parse_compound(&Bytes::from_static(&[0xa0, 0xcc, 0, 1, 0, 0, 0, 5])),
            Err(RtcpError::BadPadding { count: 5, available: 4 })
        );
        assert_eq!(
            parse_compound(&Bytes::from_static(&[0xa0, 0xcc, 0, 0])),
            Err(RtcpError::BadPadding { count: 0, available: 0 })
        );
        // BYE whose reason overruns.
        assert_eq!(
            parse_compound(&Bytes::from_static(&[0x81, 0xcb, 0, 2, 0, 0, 0, 1, 9, b'a', 0, 0])),
            Err(RtcpError::MalformedBye {
                declared: 9,
                available: 3
            })
        );
        // SDES with a missing null terminator / too many chunks.
        assert!(matches!(
            parse_compound(&Bytes::from_static(&[0x81, 0xca, 0, 2, 0, 0, 0, 1, 1, 2, b'a', b'b'])),
            Err(RtcpError::MalformedSdes(_))
        ));
        assert!(matches!(
            parse_compound(&Bytes::from_static(&[0x82, 0xca, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0])),
            Err(RtcpError::MalformedSdes(_))
        ));
    }

    #[test]
    fn truncated_valid_compound_is_error() {
        let mut out = BytesMut::new();
        encode_sender_report(&sr(vec![block(1)]), &mut out);
        encode_sdes_cname(1, "cname", &mut out);
        encode_bye(&[1], Some("bye"), &mut out);
        let full = out.freeze();
        assert_eq!(parse_compound(&full).unwrap().len(), 3);
        for cut in 1..full.len() {
            let part = full.slice(..cut);
            // Cuts on a packet boundary give fewer packets; the rest must fail.
            if cut == 52 || cut == 52 + 16 {
                assert!(parse_compound(&part).is_ok(), "cut {cut}");
            } else {
                assert!(parse_compound(&part).is_err(), "cut {cut}");
            }
        }
    }

    #[test]
    fn too_many_packets() {
        let mut out = BytesMut::new();
        for _ in 0..MAX_PACKETS_PER_COMPOUND {
            encode_receiver_report(&ReceiverReport::default(), &mut out);
        }
        let ok = out.clone().freeze();
        assert_eq!(parse_compound(&ok).unwrap().len(), MAX_PACKETS_PER_COMPOUND);
        encode_receiver_report(&ReceiverReport::default(), &mut out);
        assert_eq!(parse_compound(&out.freeze()), Err(RtcpError::TooManyPackets));
    }

    #[test]
    fn ntp_unix_seconds() {
        let s = SenderReport {
            ntp_timestamp: NTP_UNIX_OFFSET_SECONDS << 32 | 0x8000_0000,
            ..SenderReport::default()
        };
        assert_eq!(s.ntp_unix_seconds(), 0.5);
    }

    proptest! {
        #[test]
        fn parse_compound_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_compound(&Bytes::from(data));
        }

        /// Mostly valid headers, to reach the per-type parsers.
        #[test]
        fn parse_typed_never_panics(
            count in 0u8..32, pt in 200u8..208, pad in any::<bool>(),
            body in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let mut body = body;
            body.truncate(body.len() / 4 * 4);
            let mut data = vec![0x80 | (u8::from(pad) << 5) | count, pt];
            data.extend_from_slice(&((body.len() / 4) as u16).to_be_bytes());
            data.extend_from_slice(&body);
            let _ = parse_compound(&Bytes::from(data));
        }

        #[test]
        fn sender_report_round_trips(
            ssrc in any::<u32>(), ntp in any::<u64>(), rtp in any::<u32>(),
            blocks in proptest::collection::vec(
                (any::<u32>(), any::<u8>(), -0x80_0000i32..0x80_0000, any::<u32>()), 0..5),
        ) {
            let report = SenderReport {
                ssrc, ntp_timestamp: ntp, rtp_timestamp: rtp, packet_count: 1, octet_count: 2,
                reports: blocks.into_iter().map(|(s, f, c, h)| ReportBlock {
                    ssrc: s, fraction_lost: f, cumulative_lost: c, highest_sequence: h,
                    ..ReportBlock::default()
                }).collect(),
            };
            let mut out = BytesMut::new();
            encode_sender_report(&report, &mut out);
            prop_assert_eq!(
                parse_compound(&out.freeze()).unwrap(),
                vec![RtcpPacket::SenderReport(report)]
            );
        }
    }
}
