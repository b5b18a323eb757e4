//! Test helpers shared by the codec modules' unit tests: SDP media from
//! text, RTP packets built directly or through the wire format, Annex B
//! expectations and arbitrary packet sequences for property tests.
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
