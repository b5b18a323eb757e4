use proptest::prelude::*;

use super::*;
use crate::codec::test_support::{media, rtp};
use crate::codec::DEFAULT_MAX_FRAME_BYTES;

const SDP: &[u8] = b"v=0\r\nm=video 0 RTP/AVP 26\r\n";
const SDP_DYNAMIC: &[u8] = b"v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 jpeg/90000\r\n";

fn depack() -> Depacketizer {
    Depacketizer::new(&media(SDP), DEFAULT_MAX_FRAME_BYTES).unwrap()
}

/// Entropy-coded stand-in data: any bytes, with every 0xFF stuffed as in a
/// real scan, and a restart marker in the middle when `restart`.
fn scan(len: usize, seed: u8, restart: bool) -> Vec<u8> {
    let mut v = Vec::with_capacity(len + 8);
    for i in 0..len {
        let b = (i as u8).wrapping_mul(37).wrapping_add(seed);
        v.push(b);
        if b == 0xff {
            v.push(0);
        }
        if restart && i == len / 2 {
            v.extend_from_slice(&[0xff, 0xd0]);
        }
    }
    v
}

fn params(kind: u8, width: u16, height: u16, restart_interval: u16) -> FrameParams {
    FrameParams {
        kind,
        width,
        height,
        restart_interval,
        tables: quantization_tables(75).to_vec(),
    }
}

/// A JFIF image as this module writes it.
fn image(p: &FrameParams, scan: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    write_image(p, scan, &mut out);
    out.to_vec()
}

/// The main header (and restart header for types 64/65) of a hand-made packet.
fn header(offset: u32, kind: u8, q: u8, w8: u8, h8: u8) -> Vec<u8> {
    let o = offset.to_be_bytes();
    let mut v = vec![0, o[1], o[2], o[3], kind, q, w8, h8];
    if kind >= 64 {
        v.extend_from_slice(&[0, 4, 0xff, 0xff]);
    }
    v
}

fn qtable_header(tables: &[[u8; 64]]) -> Vec<u8> {
    let mut v = vec![0, 0];
    v.extend_from_slice(&((tables.len() * 64) as u16).to_be_bytes());
    for t in tables {
        v.extend_from_slice(t);
    }
    v
}

fn send(d: &mut Depacketizer, payloads: &[Bytes], seq: &mut u16, ts: u32) {
    for (i, p) in payloads.iter().enumerate() {
        d.push(&rtp(*seq, ts, i + 1 == payloads.len(), p), 0).unwrap();
        *seq = seq.wrapping_add(1);
    }
}

#[test]
fn annex_k_tables_at_q50() {
    let [luma, chroma] = quantization_tables(50);
    assert_eq!(luma[..10], [16, 11, 12, 14, 12, 10, 16, 14, 13, 14]);
    assert_eq!(luma[63], 99);
    assert_eq!(chroma[..6], [17, 18, 18, 24, 21, 24]);
    assert_eq!(chroma[63], 99);
    // Lower Q, coarser tables; clamped to 1..=255.
    let [l1, _] = quantization_tables(1);
    assert!(l1.iter().all(|&v| v == 255));
    assert_eq!(quantization_tables(0), quantization_tables(1));
    assert_eq!(quantization_tables(200), quantization_tables(99));
    let [l25, _] = quantization_tables(25);
    assert_eq!(l25[0], 32);
}

#[test]
fn standard_huffman_tables_are_consistent() {
    for (ac, chroma) in [(false, false), (false, true), (true, false), (true, true)] {
        let t = std_huffman(ac, chroma);
        let total: usize = t.counts.iter().map(|&c| usize::from(c)).sum();
        assert_eq!(total, t.symbols.len());
        let mut sorted = t.symbols.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), t.symbols.len(), "symbols are distinct");
        // Kraft: a complete prefix code less the all-ones code.
        let kraft: u64 = t
            .counts
            .iter()
            .enumerate()
            .map(|(i, &c)| u64::from(c) << (15 - i))
            .sum();
        assert!(kraft < 1 << 16);
    }
    assert_eq!(std_huffman(true, false).symbols.len(), 162);
    assert_eq!(std_huffman(true, true).symbols[161], 0xfa);
    assert_eq!(std_huffman(true, true).symbols[43], 0x17);
}

#[test]
fn q_factor_frame_of_two_packets() {
    let mut d = Depacketizer::new(&media(SDP_DYNAMIC), DEFAULT_MAX_FRAME_BYTES).unwrap();
    let data = scan(300, 1, false);
    let mut first = header(0, 1, 50, 40, 30);
    first.extend_from_slice(&data[..100]);
    let mut second = header(100, 1, 50, 40, 30);
    second.extend_from_slice(&data[100..]);
    d.push(&rtp(1, 9000, false, &first), 0).unwrap();
    assert!(d.pull().is_none());
    d.push(&rtp(2, 9000, true, &second), 0).unwrap();
    let f = d.pull().unwrap();
    assert!(d.pull().is_none());
    assert_eq!(f.codec, VideoCodec::Mjpeg);
    assert_eq!(f.timestamp, 9000);
    assert!(f.keyframe && f.new_parameters);
    let p = FrameParams {
        kind: 1,
        width: 320,
        height: 240,
        restart_interval: 0,
        tables: quantization_tables(50).to_vec(),
    };
    assert_eq!(f.data[..], image(&p, &data)[..]);
    assert!(f.data.starts_with(&[0xff, 0xd8]) && f.data.ends_with(&[0xff, 0xd9]));
    assert_eq!(f.data.len(), header_len(&p) + data.len());
    // The same parameters again: no longer new.
    let mut only = header(0, 1, 50, 40, 30);
    only.extend_from_slice(&data);
    d.push(&rtp(3, 12000, true, &only), 0).unwrap();
    assert!(!d.pull().unwrap().new_parameters);
}

#[test]
fn restart_types_write_dri() {
    let mut d = depack();
    let data = scan(50, 2, true);
    let mut p = header(0, 64, 80, 2, 2);
    p.extend_from_slice(&data);
    d.push(&rtp(1, 0, true, &p), 0).unwrap();
    let f = d.pull().unwrap();
    let expected = FrameParams {
        kind: 0,
        width: 16,
        height: 16,
        restart_interval: 4,
        tables: quantization_tables(80).to_vec(),
    };
    assert_eq!(f.data[..], image(&expected, &data)[..]);
    assert!(f.data.windows(6).any(|w| w == [0xff, 0xdd, 0, 4, 0, 4]));
    // SOF0 with Y at 2x1.
    assert!(f.data.windows(5).any(|w| w == [3, 1, 0x21, 0, 2]));
    // Too short for the restart marker header.
    assert!(matches!(
        d.push(&rtp(2, 10, true, &[0, 0, 0, 0, 65, 80, 2, 2, 0]), 0),
        Err(DepacketizeError::Malformed { .. })
    ));
}

#[test]
fn in_band_tables_are_cached_per_q() {
    let mut d = depack();
    let tables = [[3u8; 64], [4u8; 64]];
    let data = scan(40, 3, false);
    let mut p = header(0, 0, 128, 2, 2);
    p.extend(qtable_header(&tables));
    p.extend_from_slice(&data);
    d.push(&rtp(1, 0, true, &p), 0).unwrap();
    let f = d.pull().unwrap();
    let mut expected = params(0, 16, 16, 0);
    expected.tables = tables.to_vec();
    assert_eq!(f.data[..], image(&expected, &data)[..]);
    // Later frames may leave the tables out (length 0).
    let mut p = header(0, 0, 128, 2, 2);
    p.extend(qtable_header(&[]));
    p.extend_from_slice(&data);
    d.push(&rtp(2, 3000, true, &p), 0).unwrap();
    assert_eq!(d.pull().unwrap().data[..], image(&expected, &data)[..]);
    // Not for another Q, nor for Q 255.
    let mut p = header(0, 0, 129, 2, 2);
    p.extend(qtable_header(&[]));
    p.extend_from_slice(&data);
    assert!(matches!(
        d.push(&rtp(3, 6000, true, &p), 0),
        Err(DepacketizeError::Malformed { .. })
    ));
    let mut p = header(0, 0, 255, 2, 2);
    p.extend(qtable_header(&[]));
    assert!(matches!(
        d.push(&rtp(4, 9000, true, &p), 0),
        Err(DepacketizeError::Malformed { .. })
    ));
    assert!(d.pull().is_none());
    // 16-bit tables and truncated tables.
    let mut p = header(0, 0, 255, 2, 2);
    p.extend_from_slice(&[0, 1, 0, 128]);
    p.extend_from_slice(&[1; 128]);
    assert!(matches!(
        d.push(&rtp(5, 9000, true, &p), 0),
        Err(DepacketizeError::Unsupported { .. })
    ));
    let mut p = header(0, 0, 255, 2, 2);
    p.extend_from_slice(&[0, 0, 0, 128, 1, 2]);
    assert!(matches!(
        d.push(&rtp(6, 9000, true, &p), 0),
        Err(DepacketizeError::Malformed { .. })
    ));
}

#[test]
fn loss_inside_a_frame_drops_it_and_restarts_at_offset_zero() {
    let mut p = Packetizer::new(200);
    let img = image(&params(1, 64, 48, 0), &scan(1000, 4, false));
    let payloads = p.packetize(&img).unwrap();
    assert!(payloads.len() >= 5);
    let mut d = depack();
    // Frame 1 loses its third packet.
    for (i, pl) in payloads.iter().enumerate() {
        if i == 2 {
            continue;
        }
        d.push(&rtp(i as u16, 0, i + 1 == payloads.len(), pl), u32::from(i == 3))
            .unwrap();
    }
    assert!(d.pull().is_none());
    // Frame 2 arrives whole and carries the loss.
    let mut seq = payloads.len() as u16;
    send(&mut d, &payloads, &mut seq, 3000);
    let f = d.pull().unwrap();
    assert_eq!((f.loss, f.timestamp), (1, 3000));
    assert_eq!(f.data[..], img[..]);
    // Losing the first packet: the rest of that frame is skipped silently.
    for (i, pl) in payloads.iter().enumerate().skip(1) {
        d.push(&rtp(seq, 6000, i + 1 == payloads.len(), pl), u32::from(i == 1))
            .unwrap();
        seq = seq.wrapping_add(1);
    }
    assert!(d.pull().is_none());
    // Losing the marker packet: the next frame's first packet restarts.
    for pl in &payloads[..payloads.len() - 1] {
        d.push(&rtp(seq, 9000, false, pl), 0).unwrap();
        seq = seq.wrapping_add(1);
    }
    seq = seq.wrapping_add(1);
    for (i, pl) in payloads.iter().enumerate() {
        d.push(&rtp(seq, 12000, i + 1 == payloads.len(), pl), u32::from(i == 0))
            .unwrap();
        seq = seq.wrapping_add(1);
    }
    let f = d.pull().unwrap();
    assert_eq!((f.loss, f.timestamp), (2, 12000));
    assert!(d.pull().is_none());
}

#[test]
fn reordering_and_timestamp_change_drop_the_frame() {
    let mut p = Packetizer::new(200);
    let img = image(&params(0, 32, 32, 0), &scan(600, 5, false));
    let payloads = p.packetize(&img).unwrap();
    let mut d = depack();
    d.push(&rtp(0, 0, false, &payloads[0]), 0).unwrap();
    assert!(matches!(
        d.push(&rtp(2, 0, false, &payloads[2]), 0),
        Err(DepacketizeError::Malformed { .. })
    ));
    // The rest of the frame is skipped.
    d.push(&rtp(1, 0, false, &payloads[1]), 0).unwrap();
    d.push(&rtp(3, 0, true, &payloads[payloads.len() - 1]), 0).unwrap();
    assert!(d.pull().is_none());
    // A new timestamp before the marker: the old frame is dropped, the new one starts.
    d.push(&rtp(4, 100, false, &payloads[0]), 0).unwrap();
    let mut seq = 5;
    send(&mut d, &payloads, &mut seq, 200);
    assert_eq!(d.pull().unwrap().timestamp, 200);
    assert!(d.pull().is_none());
}

#[test]
fn too_large_frame() {
    let img = image(&params(0, 32, 32, 0), &scan(2000, 6, false));
    let payloads = Packetizer::new(500).packetize(&img).unwrap();
    let mut d = Depacketizer::new(&media(SDP), img.len() - 1).unwrap();
    let mut errors = 0;
    for (i, pl) in payloads.iter().enumerate() {
        if let Err(e) = d.push(&rtp(i as u16, 0, i + 1 == payloads.len(), pl), 0) {
            assert_eq!(
                e,
                DepacketizeError::FrameTooLarge {
                    codec: "JPEG",
                    limit: img.len() - 1
                }
            );
            errors += 1;
        }
    }
    assert_eq!(errors, 1);
    assert!(d.pull().is_none());
    // Exactly at the limit is fine.
    let mut d = Depacketizer::new(&media(SDP), img.len()).unwrap();
    let mut seq = 0;
    send(&mut d, &payloads, &mut seq, 0);
    assert_eq!(d.pull().unwrap().data.len(), img.len());
}

#[test]
fn unsupported_and_malformed_packets() {
    let mut d = depack();
    assert_eq!(
        d.push(&rtp(0, 0, true, &[]), 0),
        Err(DepacketizeError::Empty { codec: "JPEG" })
    );
    assert!(matches!(
        d.push(&rtp(1, 0, true, &[0; 7]), 0),
        Err(DepacketizeError::Malformed { .. })
    ));
    for (kind, q) in [(2, 50), (63, 50), (66, 50), (128, 50), (0, 0), (1, 100), (1, 127)] {
        let p = header(0, kind, q, 2, 2);
        assert!(
            matches!(
                d.push(&rtp(2, 0, true, &p), 0),
                Err(DepacketizeError::Unsupported { .. })
            ),
            "type {kind} Q {q}"
        );
    }
    // Zero size without a=x-dimensions.
    assert!(matches!(
        d.push(&rtp(3, 0, true, &header(0, 0, 50, 0, 2)), 0),
        Err(DepacketizeError::Malformed { .. })
    ));
    assert!(d.pull().is_none());
    assert!(matches!(
        Depacketizer::new(
            &media(b"v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"),
            100
        ),
        Err(SetupError::UnsupportedCodec(_))
    ));
}

#[test]
fn large_images_take_their_size_from_x_dimensions() {
    let sdp = b"v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 JPEG/90000\r\na=x-dimensions:2560,1440\r\n";
    let mut d = Depacketizer::new(&media(sdp), DEFAULT_MAX_FRAME_BYTES).unwrap();
    let data = scan(10, 7, false);
    let mut p = header(0, 1, 60, 0, 180);
    p.extend_from_slice(&data);
    d.push(&rtp(0, 0, true, &p), 0).unwrap();
    let f = d.pull().unwrap();
    // SOF0: height 1440, width 2560.
    assert!(f
        .data
        .windows(9)
        .any(|w| w == [0xff, 0xc0, 0, 17, 8, 0x05, 0xa0, 0x0a, 0x00]));
}

#[test]
fn packetizer_headers() {
    let p = params(1, 64, 48, 0);
    let img = image(&p, &scan(500, 8, false));
    let out = Packetizer::new(300).packetize(&img).unwrap();
    assert!(out.iter().all(|b| b.len() <= 300));
    // Type 1, Q 255, 8x6 blocks; in-band tables of 128 bytes in the first packet only.
    assert_eq!(out[0][..12], [0, 0, 0, 0, 1, 255, 8, 6, 0, 0, 0, 128]);
    assert_eq!(out[0][12..76], p.tables[0]);
    let first_data = 300 - 8 - 4 - 128;
    assert_eq!(out[1][..8], [0, 0, 0, first_data as u8, 1, 255, 8, 6]);
    // With restart markers: type 65 and a restart header in every packet.
    let img = image(&params(1, 64, 48, 2), &scan(500, 8, true));
    let out = Packetizer::new(300).packetize(&img).unwrap();
    assert!(out.iter().all(|b| b[4] == 65 && b[8..12] == [0, 2, 0xff, 0xff]));
    assert_eq!(Packetizer::new(0).max_payload, Packetizer::MIN_PAYLOAD);
    // The smallest payloads still carry the image.
    let out = Packetizer::new(0).packetize(&img).unwrap();
    let mut d = depack();
    let mut seq = 0;
    send(&mut d, &out, &mut seq, 0);
    assert_eq!(d.pull().unwrap().data[..], img[..]);
}

/// Segments of `img` with the marker `marker` replaced by `with` (marker and body).
fn replace_segment(img: &[u8], marker: u8, with: &[u8]) -> Vec<u8> {
    let mut pos = 2;
    while img[pos + 1] != marker {
        let len = usize::from(u16::from_be_bytes([img[pos + 2], img[pos + 3]]));
        pos += 2 + len;
    }
    let len = usize::from(u16::from_be_bytes([img[pos + 2], img[pos + 3]]));
    [&img[..pos], with, &img[pos + 2 + len..]].concat()
}

#[test]
fn packetizer_refuses_what_rfc_2435_cannot_carry() {
    let img = image(&params(0, 64, 48, 0), &scan(100, 9, false));
    let refused = |jpeg: &[u8]| matches!(Packetizer::check(jpeg), Err(PacketizeError::Unsupported(_)));
    let malformed = |jpeg: &[u8]| matches!(Packetizer::check(jpeg), Err(PacketizeError::Malformed(_)));
    assert!(Packetizer::check(&img).is_ok());
    // Progressive.
    let sof = |marker: u8, comps: &[u8], w: u16| {
        let mut s = vec![0xff, marker, 0, 8 + comps.len() as u8, 8, 0, 48];
        s.extend_from_slice(&w.to_be_bytes());
        s.push((comps.len() / 3) as u8);
        s.extend_from_slice(comps);
        s
    };
    let yuv422 = [1, 0x21, 0, 2, 0x11, 1, 3, 0x11, 1];
    assert!(refused(&replace_segment(&img, SOF0, &sof(0xc2, &yuv422, 64))));
    assert!(Packetizer::check(&replace_segment(&img, SOF0, &sof(0xc1, &yuv422, 64))).is_ok());
    // Grayscale, 4:4:4, chroma tables apart, too wide.
    assert!(refused(&replace_segment(&img, SOF0, &sof(0xc0, &[1, 0x11, 0], 64))));
    assert!(refused(&replace_segment(
        &img,
        SOF0,
        &sof(0xc0, &[1, 0x11, 0, 2, 0x11, 1, 3, 0x11, 1], 64)
    )));
    assert!(refused(&replace_segment(
        &img,
        SOF0,
        &sof(0xc0, &[1, 0x21, 0, 2, 0x11, 1, 3, 0x11, 0], 64)
    )));
    assert!(refused(&replace_segment(&img, SOF0, &sof(0xc0, &yuv422, 2048))));
    // A quantization table that is not defined.
    assert!(malformed(&replace_segment(
        &img,
        SOF0,
        &sof(0xc0, &[1, 0x21, 2, 2, 0x11, 1, 3, 0x11, 1], 64)
    )));
    // Optimized Huffman tables.
    let mut dht = vec![0xff, DHT, 0, 3 + 16 + 2, 0x00];
    dht.extend_from_slice(&[0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    assert!(refused(&replace_segment(&img, DHT, &dht)));
    // Without any DHT: the standard tables are implied.
    let mut stripped = img.clone();
    while stripped.windows(2).any(|w| w == [0xff, DHT]) {
        stripped = replace_segment(&stripped, DHT, &[]);
    }
    assert_eq!(
        Packetizer::new(1400).packetize(&stripped).unwrap(),
        Packetizer::new(1400).packetize(&img).unwrap()
    );
    // 16-bit tables, 12-bit samples, two scans, not a JPEG, truncated.
    let mut dqt16 = vec![0xff, DQT, 0, 131, 0x10];
    dqt16.extend_from_slice(&[1; 128]);
    assert!(refused(&replace_segment(&img, DQT, &dqt16)));
    let mut sof12 = sof(0xc0, &yuv422, 64);
    sof12[4] = 12;
    assert!(refused(&replace_segment(&img, SOF0, &sof12)));
    let mut two_scans = img[..img.len() - 2].to_vec();
    two_scans.extend_from_slice(&[0xff, SOS, 0, 8, 1, 1, 0, 0, 63, 0, 0xff, 0xd9]);
    assert!(refused(&two_scans));
    assert!(malformed(b"GIF89a"));
    assert!(malformed(&img[..30]));
    assert!(malformed(&[0xff, 0xd8, 0xff, 0xd9]));
}

#[test]
fn dropped_frames_are_not_queued_forever() {
    let img = image(&params(0, 16, 16, 0), &scan(10, 10, false));
    let payloads = Packetizer::new(1400).packetize(&img).unwrap();
    let mut d = depack();
    let mut seq = 0;
    for i in 0..40 {
        send(&mut d, &payloads, &mut seq, i * 3000);
    }
    let mut n = 0;
    while d.pull().is_some() {
        n += 1;
    }
    assert_eq!(n, MAX_QUEUED);
}

fn frame_params() -> impl Strategy<Value = FrameParams> {
    (
        0u8..2,
        1u16..=255,
        1u16..=255,
        prop_oneof![Just(0u16), 1u16..100],
        prop_oneof![Just(None), (1u8..=99).prop_map(Some)],
    )
        .prop_map(|(kind, w8, h8, restart_interval, q)| FrameParams {
            kind,
            width: w8 * 8,
            height: h8 * 8,
            restart_interval,
            tables: quantization_tables(q.unwrap_or(42)).to_vec(),
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn round_trip(
        frames in proptest::collection::vec((frame_params(), 0usize..5000, any::<u8>()), 1..5),
        max_payload in 100usize..1500,
    ) {
        let mut p = Packetizer::new(max_payload);
        let mut d = depack();
        let mut seq = 0u16;
        for (n, (params, len, seed)) in frames.iter().enumerate() {
            let img = image(params, &scan(*len, *seed, params.restart_interval != 0));
            let ts = 3000 * n as u32;
            let payloads = p.packetize(&img).unwrap();
            prop_assert!(payloads.iter().all(|b| b.len() <= max_payload.max(Packetizer::MIN_PAYLOAD)));
            send(&mut d, &payloads, &mut seq, ts);
            let f = d.pull().expect("one frame per image");
            prop_assert!(d.pull().is_none());
            prop_assert_eq!(&f.data[..], &img[..]);
            prop_assert_eq!((f.timestamp, f.keyframe, f.loss), (ts, true, 0));
        }
    }

    #[test]
    fn arbitrary_packets_never_panic(
        packets in proptest::collection::vec(
            (
                proptest::collection::vec(any::<u8>(), 0..200),
                any::<bool>(),
                0u8..3,
                prop_oneof![4 => Just(0u8), 1 => 1u8..4],
                0u8..4,
            ),
            0..60,
        ),
        limit in 0usize..3000,
    ) {
        let mut d = Depacketizer::new(&media(SDP), limit).unwrap();
        let mut ts = 0u32;
        for (i, (mut payload, marker, step, lost, shape)) in packets.into_iter().enumerate() {
            // Make most payloads look like RFC 2435 headers.
            if payload.len() >= 8 && shape > 0 {
                payload[4] = [0, 1, 64, 65][usize::from(shape)];
                payload[5] = [50, 128, 255, 99][usize::from(shape)];
                if shape == 3 {
                    payload[1..4].fill(0);
                }
            }
            ts = ts.wrapping_add(u32::from(step) * 1000);
            let _ = d.push(&rtp(i as u16, ts, marker, &payload), u32::from(lost));
            while let Some(f) = d.pull() {
                prop_assert!(f.data.len() <= limit);
                prop_assert!(f.data.starts_with(&[0xff, 0xd8]));
                prop_assert!(f.data.ends_with(&[0xff, 0xd9]));
            }
        }
    }

    #[test]
    fn arbitrary_images_never_panic(data in proptest::collection::vec(any::<u8>(), 0..400), prefix in any::<bool>()) {
        let data = if prefix { [&[0xff, 0xd8][..], &data].concat() } else { data };
        let _ = Packetizer::new(200).packetize(&data);
    }
}
