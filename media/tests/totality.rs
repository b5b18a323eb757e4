//! `from_bytes` is total: arbitrary, truncated and bit-flipped inputs give
//! `Ok` or a typed `Err`, never a panic.

use std::sync::OnceLock;

use bytes::Bytes;
use proptest::prelude::*;
use rtsp_toolkit_media::{from_bytes, FileKind};

const KINDS: [FileKind; 4] = [FileKind::Mp4, FileKind::Mkv, FileKind::Wav, FileKind::Aac];

fn fixtures() -> &'static [(FileKind, Vec<u8>)] {
    static FIXTURES: OnceLock<Vec<(FileKind, Vec<u8>)>> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/media");
        [
            (FileKind::Mp4, "h264_aac.mp4"),
            (FileKind::Mp4, "h264_bframes.mp4"),
            (FileKind::Mp4, "h265.mp4"),
            (FileKind::Mkv, "h265_aac.mkv"),
            (FileKind::Wav, "pcm_16k_mono.wav"),
            (FileKind::Wav, "pcm_44k_stereo.wav"),
            (FileKind::Aac, "tone.aac"),
        ]
        .into_iter()
        .map(|(kind, name)| (kind, std::fs::read(dir.join(name)).unwrap()))
        .collect()
    })
}

/// Checks the invariants any `Ok` result must have.
fn check(data: Vec<u8>, kind: FileKind) {
    let len = data.len();
    if let Ok(source) = from_bytes(Bytes::from(data), kind) {
        assert!(!source.tracks.is_empty());
        assert!(source
            .samples
            .iter()
            .all(|s| s.track < source.tracks.len() && s.decode_time >= 0));
        // Sample data never exceeds a small multiple of the input.
        let total: usize = source.samples.iter().map(|s| s.data.len()).sum();
        assert!(total <= 8 * len + 160 * 4, "{total} bytes of samples from {len} bytes");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..2048), kind in 0..4usize) {
        check(data, KINDS[kind]);
    }

    #[test]
    fn arbitrary_bytes_after_a_valid_start(
        fixture in 0..7usize,
        keep in 0..512usize,
        tail in proptest::collection::vec(any::<u8>(), 0..1024),
    ) {
        let (kind, data) = &fixtures()[fixture];
        let mut data = data[..keep.min(data.len())].to_vec();
        data.extend(tail);
        check(data, *kind);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn truncated_fixtures(fixture in 0..7usize, cut in any::<prop::sample::Index>()) {
        let (kind, data) = &fixtures()[fixture];
        check(data[..cut.index(data.len() + 1)].to_vec(), *kind);
    }

    #[test]
    fn bit_flipped_fixtures(
        fixture in 0..7usize,
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 0..8u8), 1..16),
        header_only in any::<bool>(),
    ) {
        let (kind, data) = &fixtures()[fixture];
        let mut data = data.clone();
        // Half the cases aim at the first 4 KiB, where most headers and tables are
        // (the MP4 fixtures keep `moov` at the end, so also flip there).
        let len = data.len();
        for (index, bit) in flips {
            let i = if header_only {
                let i = index.index(8192);
                if i < 4096 { i.min(len - 1) } else { len - 1 - (i - 4096).min(len - 1) }
            } else {
                index.index(len)
            };
            data[i] ^= 1 << bit;
        }
        check(data, *kind);
    }
}
