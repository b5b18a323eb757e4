//! Test helpers shared by the codec modules' unit tests: SDP media from
//! text, RTP packets built directly or through the wire format, Annex B
//! expectations, stand-in access units and arbitrary packet sequences for
//! property tests.
//!
//! It is compiled for tests only and is **not** a fixture library: no codec
//! knowledge beyond Annex B start codes.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use crate::rtp::{RtpHeader, RtpPacket};
use crate::sdp::{Media, Sdp};

/// The first media section of the SDP `sdp` (which must parse).
pub(crate) fn media(sdp: &[u8]) -> Media {
    Sdp::parse(sdp).unwrap().media.remove(0)
}

/// An RTP packet (payload type 96, sequence number 0) built directly.
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

/// `nals`, each prefixed with a 4-byte start code.
pub(crate) fn annex_b(nals: &[&[u8]]) -> Vec<u8> {
    let mut v = Vec::new();
    for n in nals {
        v.extend_from_slice(&[0, 0, 0, 1]);
        v.extend_from_slice(n);
    }
    v
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

/// The audio media section made of `m=audio 0 RTP/AVP 97` and `lines`.
pub(crate) fn audio_media(lines: &str) -> Media {
    let text = format!("v=0\r\nm=audio 0 RTP/AVP 97\r\n{lines}");
    Sdp::parse(text.as_bytes()).unwrap().media.remove(0)
}

/// An RTP packet (payload type 97) built directly, sharing `payload`.
pub(crate) fn audio_packet(seq: u16, ts: u32, marker: bool, payload: impl Into<Bytes>) -> RtpPacket {
    RtpPacket {
        sequence_number: seq,
        timestamp: ts,
        ssrc: 0x1234,
        marker,
        payload_type: 97,
        csrc_count: 0,
        extension: None,
        padding: 0,
        payload: payload.into(),
    }
}

/// `len` bytes of a pattern that differs by `seed`: a stand-in access unit.
pub(crate) fn access_unit(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Arbitrary audio packets: (timestamp, marker, payload, lost).
pub(crate) fn arbitrary_audio_packets() -> impl Strategy<Value = Vec<(u32, bool, Vec<u8>, u32)>> {
    proptest::collection::vec(
        (
            0u32..4,
            any::<bool>(),
            proptest::collection::vec(any::<u8>(), 0..200),
            0u32..3,
        ),
        0..30,
    )
}
