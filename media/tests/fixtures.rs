//! The demuxers on the committed fixtures (`fixtures/media/`), checked
//! against the counts `ffprobe -count_packets` reports for each file.

use std::path::PathBuf;
use std::time::Duration;

use rtsp_toolkit_core::codec::g711::alaw_to_linear;
use rtsp_toolkit_core::sdp::parse_audio_specific_config;
use rtsp_toolkit_media::{open, FileKind, MediaError, MediaSource, SourceCodec, SourceSample};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/media")
        .join(name)
}

fn load(name: &str) -> MediaSource {
    open(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn track_samples(source: &MediaSource, track: usize) -> Vec<&SourceSample> {
    source.samples.iter().filter(|s| s.track == track).collect()
}

/// NAL units of a sample in 4-byte length framing; panics on bad framing.
fn nal_units(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        assert!(len > 0 && 4 + len <= rest.len(), "bad NAL framing");
        out.push(&rest[4..4 + len]);
        rest = &rest[4 + len..];
    }
    out
}

fn is_random_access(codec: &SourceCodec, data: &[u8]) -> bool {
    nal_units(data).iter().any(|nal| match codec {
        SourceCodec::H264 { .. } => nal[0] & 0x1f == 5,
        SourceCodec::H265 { .. } => (16..=23).contains(&((nal[0] >> 1) & 0x3f)),
        _ => false,
    })
}

/// Checks a video track; returns (samples, keyframes).
fn check_video(source: &MediaSource, track: usize) -> (usize, usize) {
    let t = &source.tracks[track];
    assert_eq!(t.clock_rate, 90_000);
    match &t.codec {
        SourceCodec::H264 { sps, pps } => {
            assert!(!sps.is_empty() && sps.iter().all(|s| !s.is_empty() && s[0] & 0x1f == 7));
            assert!(!pps.is_empty() && pps.iter().all(|p| !p.is_empty() && p[0] & 0x1f == 8));
        }
        SourceCodec::H265 { vps, sps, pps } => {
            for (sets, ty) in [(vps, 32), (sps, 33), (pps, 34)] {
                assert!(!sets.is_empty() && sets.iter().all(|s| !s.is_empty() && (s[0] >> 1) & 0x3f == ty));
            }
        }
        other => panic!("not video: {other:?}"),
    }
    let samples = track_samples(source, track);
    assert!(samples[0].keyframe, "first video sample is not a keyframe");
    for s in &samples {
        assert_eq!(
            s.keyframe,
            is_random_access(&t.codec, &s.data),
            "container sync flag disagrees with NAL types"
        );
        assert!(s.decode_time >= 0 && s.decode_time <= s.presentation_time);
    }
    assert!(samples.windows(2).all(|w| w[0].decode_time <= w[1].decode_time));
    let mut pts: Vec<i64> = samples.iter().map(|s| s.presentation_time).collect();
    pts.sort_unstable();
    assert!(pts[0] < 9000, "video starts at {}", pts[0]);
    assert!(pts.windows(2).all(|w| w[1] - w[0] == 3600), "25 fps spacing: {pts:?}");
    (samples.len(), samples.iter().filter(|s| s.keyframe).count())
}

/// Checks an AAC track; returns its sample count.
fn check_aac(source: &MediaSource, track: usize, expected_config: &[u8]) -> usize {
    let t = &source.tracks[track];
    let SourceCodec::Aac {
        config,
        sample_rate,
        channels,
    } = &t.codec
    else {
        panic!("not AAC: {:?}", t.codec);
    };
    assert_eq!(&config[..], expected_config);
    let asc = parse_audio_specific_config(config).unwrap();
    assert_eq!(
        (asc.sample_rate, *sample_rate, *channels, t.clock_rate),
        (44100, 44100, 2, 44100)
    );
    let samples = track_samples(source, track);
    assert!(samples.iter().all(|s| s.keyframe && !s.data.is_empty()));
    assert!(samples.iter().all(|s| s.decode_time == s.presentation_time));
    assert!(samples
        .windows(2)
        .all(|w| w[0].presentation_time < w[1].presentation_time));
    samples.len()
}

fn check_send_order(source: &MediaSource) {
    let times: Vec<Duration> = source.samples.iter().map(|s| source.send_time(s)).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "samples not in send order");
    assert!(source.samples.iter().all(|s| s.decode_time >= 0));
}

fn assert_duration(source: &MediaSource, expected: Duration, tolerance: Duration) {
    let d = source.duration;
    assert!(
        d.abs_diff(expected) <= tolerance,
        "duration {d:?}, expected {expected:?}"
    );
}

#[test]
fn h264_aac_mp4() {
    let source = load("h264_aac.mp4");
    assert_eq!(source.tracks.len(), 2);
    // ffprobe: 125 video packets (5 keyframes); 217 AAC packets, of which the
    // first is priming cut by the edit list (FFmpeg decodes 216).
    assert_eq!(check_video(&source, 0), (125, 5));
    assert_eq!(check_aac(&source, 1, &[0x12, 0x10, 0x56, 0xe5, 0x00]), 216);
    let audio = track_samples(&source, 1);
    assert_eq!(audio[0].presentation_time, 0);
    assert!(audio
        .windows(2)
        .all(|w| w[1].presentation_time - w[0].presentation_time == 1024));
    check_send_order(&source);
    assert_duration(&source, Duration::from_secs(5), Duration::from_millis(30));
}

#[test]
fn h264_samples_are_views_of_the_file() {
    let path = fixture("h264_aac.mp4");
    let data = bytes::Bytes::from(std::fs::read(&path).unwrap());
    let range = data.as_ptr_range();
    let source = rtsp_toolkit_media::from_bytes(data.clone(), FileKind::Mp4).unwrap();
    for s in &source.samples {
        let p = s.data.as_ptr_range();
        assert!(range.start <= p.start && p.end <= range.end, "sample copied");
    }
    if let SourceCodec::H264 { sps, pps } = &source.tracks[0].codec {
        assert!(range.contains(&sps[0].as_ptr()) && range.contains(&pps[0].as_ptr()));
    }
}

#[test]
fn h264_bframes_mp4() {
    let source = load("h264_bframes.mp4");
    assert_eq!(check_video(&source, 0), (125, 3));
    let video = track_samples(&source, 0);
    assert!(
        video.iter().any(|s| s.presentation_time != s.decode_time),
        "B-frames need ctts"
    );
    assert_eq!(check_aac(&source, 1, &[0x12, 0x10, 0x56, 0xe5, 0x00]), 216);
    check_send_order(&source);
    // Decode times start at 0; the 2-frame reorder delay moves the start of presentation to 80 ms.
    assert_eq!(video[0].decode_time, 0);
    assert_duration(&source, Duration::from_millis(5080), Duration::from_millis(30));
}

#[test]
fn h265_mp4() {
    let source = load("h265.mp4");
    assert_eq!(source.tracks.len(), 1);
    assert_eq!(check_video(&source, 0), (125, 5));
    check_send_order(&source);
    assert_duration(&source, Duration::from_secs(5), Duration::from_millis(100));
}

#[test]
fn h265_aac_mkv() {
    let source = load("h265_aac.mkv");
    assert_eq!(source.tracks.len(), 2);
    // ffprobe -count_packets: hevc 125 (5 keyframes), aac 217.
    assert_eq!(check_video(&source, 0), (125, 5));
    assert_eq!(check_aac(&source, 1, &[0x12, 0x10, 0x56, 0xe5, 0x00]), 217);
    let audio = track_samples(&source, 1);
    assert!(audio
        .windows(2)
        .all(|w| w[1].presentation_time - w[0].presentation_time == 1024));
    check_send_order(&source);
    assert_duration(&source, Duration::from_millis(5063), Duration::from_millis(60));
}

#[test]
fn tone_aac() {
    let source = load("tone.aac");
    assert_eq!(check_aac(&source, 0, &[0x12, 0x10]), 217);
    let audio = track_samples(&source, 0);
    assert!(audio
        .iter()
        .enumerate()
        .all(|(i, s)| s.presentation_time == i as i64 * 1024));
    // Headers stripped: no sample starts with an ADTS syncword.
    assert!(audio.iter().all(|s| !(s.data[0] == 0xff && s.data[1] & 0xf0 == 0xf0)));
    assert_duration(
        &source,
        Duration::from_nanos(217 * 1024 * 1_000_000_000 / 44100),
        Duration::from_millis(1),
    );
}

/// Zero crossings per second of the decoded A-law samples.
fn crossing_rate(samples: &[&SourceSample]) -> f64 {
    let pcm: Vec<i16> = samples
        .iter()
        .flat_map(|s| s.data.iter().map(|&a| alaw_to_linear(a)))
        .collect();
    let crossings = pcm.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
    crossings as f64 / (pcm.len() as f64 / 8000.0)
}

fn check_pcma(source: &MediaSource, seconds: u64) -> Vec<&SourceSample> {
    assert_eq!(source.tracks.len(), 1);
    assert_eq!(source.tracks[0].codec, SourceCodec::Pcma);
    assert_eq!(source.tracks[0].clock_rate, 8000);
    let samples = track_samples(source, 0);
    assert_eq!(samples.len() as u64, seconds * 50);
    for (i, s) in samples.iter().enumerate() {
        assert_eq!(s.data.len(), 160);
        assert_eq!((s.decode_time, s.presentation_time), (i as i64 * 160, i as i64 * 160));
    }
    assert_duration(source, Duration::from_secs(seconds), Duration::from_millis(20));
    samples
}

#[test]
fn wav_16k_mono_tone_survives() {
    let source = load("pcm_16k_mono.wav");
    let samples = check_pcma(&source, 5);
    let middle = &samples[10..240];
    let peak = middle
        .iter()
        .flat_map(|s| s.data.iter().map(|&a| alaw_to_linear(a).unsigned_abs()))
        .max()
        .unwrap();
    assert!(peak > 1000, "tone became silence (peak {peak})");
    // A 1 kHz sine crosses zero 2000 times a second.
    let rate = crossing_rate(middle);
    assert!((1900.0..2100.0).contains(&rate), "zero-crossing rate {rate}");
}

#[test]
fn wav_44k_stereo() {
    let source = load("pcm_44k_stereo.wav");
    let samples = check_pcma(&source, 2);
    // 440 Hz sine: 880 crossings a second.
    let rate = crossing_rate(&samples[5..95]);
    assert!((840.0..920.0).contains(&rate), "zero-crossing rate {rate}");
}

#[test]
fn errors_are_typed() {
    let err = open(&fixture("README.md")).unwrap_err();
    assert!(matches!(err, MediaError::UnsupportedExtension { .. }), "{err}");
    let err = open(&fixture("missing.mp4")).unwrap_err();
    assert!(matches!(err, MediaError::Io { .. }), "{err}");
    // A WAV read as MP4 is malformed, not a panic.
    let wav = std::fs::read(fixture("pcm_16k_mono.wav")).unwrap();
    let err = rtsp_toolkit_media::from_bytes(wav.into(), FileKind::Mp4).unwrap_err();
    assert!(matches!(err, MediaError::Malformed(_)), "{err}");
}

#[test]
fn truncated_mkv_plays_what_is_there() {
    let data = std::fs::read(fixture("h265_aac.mkv")).unwrap();
    let cut = data.len() * 6 / 10;
    let source = rtsp_toolkit_media::from_bytes(data[..cut].to_vec().into(), FileKind::Mkv).unwrap();
    let video = track_samples(&source, 0).len();
    let audio = track_samples(&source, 1).len();
    assert!(
        (40..125).contains(&video) && (80..217).contains(&audio),
        "{video} video, {audio} audio"
    );
    check_send_order(&source);
}
