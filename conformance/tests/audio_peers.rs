//! Opus, L16 and G.722 end to end:
//! - GStreamer's payloaders (`rtpopuspay`, `rtpL16pay`, `rtpg722pay`, through
//!   `scripts/peers/gst-rtsp-server.py`) against every runtime's client: the
//!   right number of frames and samples, and RTP timestamps that advance by
//!   each frame's length in the track's RTP clock (for G.722, half its 16 kHz
//!   sample count); and G.726-32 (`rtpg726pay`), which is depacketized only;
//! - our server (tokio and smol) serving Opus from Matroska/WebM and L16 and
//!   G.722 from WAV (`?codec=l16`, `?codec=g722`) to FFmpeg (every sample
//!   decoded), GStreamer's depayloaders and our clients;
//! - our G.722 codec against FFmpeg's, bit for bit.
//!
//! The media are made with ffmpeg into a temporary directory (2 s tones), so
//! no fixture is committed for them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rtsp_toolkit_conformance::events::methods;
use rtsp_toolkit_conformance::peers::{gst_ended_well, GstServer};
use rtsp_toolkit_conformance::runtimes::{self, Control};
use rtsp_toolkit_conformance::servers::{ServerRuntime, TestServer};
use rtsp_toolkit_core::client::{ClientOptions, Event};
use rtsp_toolkit_core::codec::{AudioCodec, AudioFrame};

/// Bound on one session in these tests.
const LIMIT: Duration = Duration::from_secs(30);

/// A directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("rtsp-toolkit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs ffmpeg to make `out` from a lavfi source, with `args` for the output.
fn ffmpeg(source: &str, args: &[&str], out: &Path) {
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", source])
        .args(args)
        .arg(out)
        .status()
        .expect("run ffmpeg (scripts/peers/install.sh)");
    assert!(status.success(), "ffmpeg {source} {args:?}");
}

/// 2 s tones: `tone.opus.mkv` (Opus stereo 20 ms frames), `tone.webm` (Opus
/// mono), `tone.l16.wav` (22.05 kHz stereo), `tone.g722.wav` (16 kHz mono),
/// `tone.g726.wav` (8 kHz mono).
fn make_media(dir: &Path) {
    let tone = |rate: u32| format!("sine=frequency=440:sample_rate={rate}:duration=2");
    ffmpeg(
        &tone(48000),
        &["-ac", "2", "-c:a", "libopus", "-b:a", "64k"],
        &dir.join("tone.opus.mkv"),
    );
    ffmpeg(&tone(48000), &["-ac", "1", "-c:a", "libopus"], &dir.join("tone.webm"));
    ffmpeg(&tone(22050), &["-ac", "2"], &dir.join("tone.l16.wav"));
    ffmpeg(&tone(16000), &["-ac", "1"], &dir.join("tone.g722.wav"));
    ffmpeg(&tone(8000), &["-ac", "1"], &dir.join("tone.g726.wav"));
}

/// The audio frames of a session, in order.
fn audio_frames(events: &[Event]) -> Vec<AudioFrame> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Audio(a) => Some(a.frame.clone()),
            _ => None,
        })
        .collect()
}

/// Checks that each frame's timestamp is the previous one's plus the
/// previous frame's length in RTP ticks (`ticks_per_sample` per sample),
/// and returns the total sample count. `skip` first steps are not checked.
fn check_continuity(rt: &str, frames: &[AudioFrame], ticks_per_sample: f64, skip: usize) -> u64 {
    for pair in frames.windows(2).skip(skip) {
        let step = pair[1].timestamp.wrapping_sub(pair[0].timestamp);
        let want = (f64::from(pair[0].sample_count) * ticks_per_sample).round() as u32;
        assert_eq!(step, want, "{rt}: timestamp step after {:?}", pair[0]);
        assert_eq!(pair[1].loss, 0, "{rt}");
    }
    frames.iter().map(|f| u64::from(f.sample_count)).sum()
}

/// Plays `url` to its end on every runtime at once; the frames of each.
fn play_all(url: &str) -> Vec<(&'static str, Vec<AudioFrame>)> {
    runtimes::at_once(|runtime| {
        let run = runtimes::run(runtime, url, ClientOptions::default(), Control::within(LIMIT));
        let rt = run.runtime.name();
        let m = methods(&run.events);
        assert_eq!(
            m.first().map(|(m, s)| (m.as_str(), *s)),
            Some(("OPTIONS", 200)),
            "{rt}: {m:?}"
        );
        assert!(m.iter().any(|(m, s)| m == "PLAY" && *s == 200), "{rt}: {m:?}");
        (rt, audio_frames(&run.events))
    })
}

#[test]
fn opus_l16_g722_and_g726_from_gstreamer() {
    let dir = TempDir::new("audio-peers");
    make_media(&dir.0);
    // The script's last --dir wins: serve the temporary directory.
    let server = GstServer::start_with(None, &["--dir", dir.0.to_str().unwrap()]);

    // Opus: 20 ms packets (960 samples at 48 kHz) with the 48 kHz clock.
    for (name, channels) in [("tone.opus.mkv", 2), ("tone.webm", 1)] {
        for (rt, frames) in play_all(&server.url(name)) {
            assert!(!frames.is_empty(), "{rt} {name}");
            assert!(frames.iter().all(|f| f.codec == AudioCodec::Opus), "{rt} {name}");
            assert!(
                frames
                    .iter()
                    .all(|f| f.sample_rate == 48000 && f.sample_count == 960 && f.channels == channels),
                "{rt} {name}: {:?}",
                frames.first()
            );
            // The first step is shorter: the container's timestamps count
            // from after the encoder's pre-skip (Matroska CodecDelay).
            let samples = check_continuity(rt, &frames, 1.0, 1);
            // 2 s, plus the encoder's pre-skip rounded up to a packet.
            assert!(
                (96_000..=96_000 + 2 * 960).contains(&samples),
                "{rt} {name}: {samples} samples"
            );
        }
    }

    // L16: every sample of the 22.05 kHz stereo file, with its rate and channels.
    for (rt, frames) in play_all(&server.url("tone.l16.wav")) {
        assert!(frames.iter().all(|f| f.codec == AudioCodec::L16), "{rt}");
        assert!(
            frames.iter().all(|f| (f.sample_rate, f.channels) == (22050, 2)),
            "{rt}: {:?}",
            frames.first()
        );
        assert!(
            frames.iter().all(|f| f.data.len() == 4 * f.sample_count as usize),
            "{rt}"
        );
        assert_eq!(check_continuity(rt, &frames, 1.0, 0), 44_100, "{rt}");
    }

    // G.722: 16 kHz samples on the 8000 Hz clock, one byte per two samples.
    for (rt, frames) in play_all(&server.url("tone.g722.wav")) {
        assert!(frames.iter().all(|f| f.codec == AudioCodec::G722), "{rt}");
        assert!(
            frames.iter().all(|f| (f.sample_rate, f.channels) == (16000, 1)),
            "{rt}: {:?}",
            frames.first()
        );
        assert!(
            frames.iter().all(|f| 2 * f.data.len() == f.sample_count as usize),
            "{rt}"
        );
        assert_eq!(check_continuity(rt, &frames, 0.5, 0), 32_000, "{rt}");
    }

    // G.726-32: 4-bit codes, two samples a byte, 8000 Hz.
    for (rt, frames) in play_all(&server.url("tone.g726.wav")) {
        assert!(frames.iter().all(|f| f.codec == AudioCodec::G726), "{rt}");
        assert!(frames.iter().all(|f| (f.sample_rate, f.channels) == (8000, 1)), "{rt}");
        assert!(
            frames.iter().all(|f| 2 * f.data.len() == f.sample_count as usize),
            "{rt}"
        );
        assert_eq!(check_continuity(rt, &frames, 1.0, 0), 16_000, "{rt}");
    }
}

/// Runs ffmpeg with `args` (raw formats in and out) and returns its stdout.
fn ffmpeg_pipe(args: &[&str], input: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut child = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error"])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run ffmpeg");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "ffmpeg {args:?}");
    out.stdout
}

fn s16le(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

fn from_s16le(bytes: &[u8]) -> Vec<i16> {
    bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// Signal-to-noise ratio of `got` against `want`, in dB, after `delay` samples.
fn snr_db(want: &[i16], got: &[i16], delay: usize) -> f64 {
    let n = want.len().min(got.len().saturating_sub(delay));
    let (mut signal, mut noise) = (0f64, 0f64);
    for i in 0..n {
        let (w, g) = (f64::from(want[i]), f64::from(got[i + delay]));
        signal += w * w;
        noise += (w - g) * (w - g);
    }
    10.0 * (signal / noise.max(1.0)).log10()
}

/// Our G.722 codec against FFmpeg's (which passes the ITU-T test
/// sequences): bit for bit the same samples from FFmpeg's codes and the same
/// codes from the same samples; FFmpeg decodes ours back to the tones.
#[test]
fn g722_codec_matches_ffmpeg() {
    use rtsp_toolkit_core::codec::g722::{Decoder, Encoder};
    // 1 s of two tones at 16 kHz.
    let pcm: Vec<i16> = (0..16_000)
        .map(|i| {
            let t = f64::from(i) / 16_000.0;
            ((2.0 * std::f64::consts::PI * 440.0 * t).sin() * 9000.0
                + (2.0 * std::f64::consts::PI * 5200.0 * t).sin() * 3000.0) as i16
        })
        .collect();
    let raw = ["-f", "s16le", "-ar", "16000", "-ac", "1"];
    let g722 = ["-f", "g722"];
    let theirs: Vec<&str> = raw.iter().chain(&["-i", "-", "-f", "g722", "-"]).copied().collect();
    let their_codes = ffmpeg_pipe(&theirs, &s16le(&pcm));
    let decode: Vec<&str> = g722.iter().chain(&["-i", "-", "-f", "s16le", "-"]).copied().collect();
    let their_decode = from_s16le(&ffmpeg_pipe(&decode, &their_codes));

    let mut ours = Vec::new();
    Decoder::new().decode(&their_codes, &mut ours);
    assert_eq!(ours.len(), their_decode.len());
    let first_diff = ours.iter().zip(&their_decode).position(|(a, b)| a != b);
    assert_eq!(
        first_diff,
        None,
        "our decoder differs from FFmpeg's (SNR {:.1} dB)",
        snr_db(&their_decode, &ours, 0)
    );

    let mut our_codes = Vec::new();
    Encoder::new().encode(&pcm, &mut our_codes);
    assert_eq!(our_codes.len(), 8000);
    let back = from_s16le(&ffmpeg_pipe(&decode, &our_codes));
    let snr = (0..40).map(|d| snr_db(&pcm, &back, d)).fold(f64::MIN, f64::max);
    assert!(snr > 20.0, "FFmpeg decodes our codes at {snr:.1} dB SNR");
    assert_eq!(our_codes, their_codes, "our encoder differs from FFmpeg's");
}

/// Runs `cmd` with a deadline; its output (it must succeed).
fn run_for(mut cmd: Command) -> Vec<u8> {
    let (tx, rx) = std::sync::mpsc::channel();
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the tool");
    let id = child.id();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(LIMIT) {
        Ok(out) => {
            let out = out.expect("the tool's output");
            let (stdout, stderr) = (
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
            );
            // GStreamer's own race at its shutdown after EOS is not a failure.
            assert!(gst_ended_well(out.status, &stdout, &stderr), "{cmd:?}: {stderr}");
            out.stdout
        }
        Err(_) => {
            let _ = Command::new("kill").arg(id.to_string()).status();
            panic!("{cmd:?} did not finish within {LIMIT:?}");
        }
    }
}

/// Packets in an Opus file, by ffprobe on the file itself.
fn opus_packets(path: &Path) -> usize {
    let mut c = Command::new("ffprobe");
    c.args([
        "-v",
        "error",
        "-count_packets",
        "-show_entries",
        "stream=nb_read_packets",
        "-of",
        "csv=p=0",
    ])
    .arg(path);
    String::from_utf8_lossy(&run_for(c))
        .trim()
        .parse()
        .expect("a packet count")
}

/// What FFmpeg decodes from `url` (over TCP), as s16le at the stream's rate
/// and channels: the number of samples per channel.
fn ffmpeg_samples(url: &str, channels: usize) -> usize {
    let mut c = Command::new("ffmpeg");
    c.args([
        "-hide_banner",
        "-loglevel",
        "error",
        "-rtsp_transport",
        "tcp",
        "-i",
        url,
        "-f",
        "s16le",
        "-",
    ]);
    run_for(c).len() / 2 / channels
}

/// GStreamer's `rtspsrc` with `depay` into a fakesink: the buffers it got.
fn gst_buffers(url: &str, depay: &str) -> usize {
    let mut c = Command::new("gst-launch-1.0");
    c.arg("-v")
        .args(format!("rtspsrc location={url} protocols=tcp ! {depay} ! fakesink silent=false").split(' '));
    rtsp_toolkit_conformance::peers::gst_fakesink_frames(&String::from_utf8_lossy(&run_for(c)))
}

// One test per server runtime (`tokio_server::`, `smol_server::`), so that the
// two run side by side.
rtsp_toolkit_conformance::on_every_server!(
    #[test]
    our_server_serves_opus_l16_and_g722
);

fn our_server_serves_opus_l16_and_g722(runtime: ServerRuntime) {
    let rt = runtime.name();
    let dir = TempDir::new(&format!("audio-server-{rt}"));
    make_media(&dir.0);
    let packets = opus_packets(&dir.0.join("tone.opus.mkv"));
    let server = TestServer::start(runtime, &dir.0);
    let opus = server.url("tone.opus.mkv");
    let webm = server.url("tone.webm");
    let l16 = server.url("tone.l16.wav?codec=l16");
    let g722 = server.url("tone.g722.wav?codec=g722");

    // FFmpeg: every Opus packet; every L16 and G.722 sample decoded.
    let out = run_for(rtsp_toolkit_conformance::peers::ffprobe_count_frames(&opus, "tcp", &[]));
    let counts = rtsp_toolkit_conformance::peers::parse_ffprobe_counts(&String::from_utf8_lossy(&out));
    assert_eq!(counts, [("opus".to_owned(), packets)], "{rt}");
    assert_eq!(ffmpeg_samples(&l16, 2), 44_100, "{rt}: L16 samples");
    assert_eq!(ffmpeg_samples(&g722, 1), 32_000, "{rt}: G.722 samples");

    // GStreamer's depayloaders: one buffer per RTP packet (20 ms each
    // for Opus and G.722; L16 20 ms samples of 1764 bytes are cut to fit
    // the payload limit).
    assert_eq!(gst_buffers(&opus, "rtpopusdepay"), packets, "{rt}");
    assert_eq!(gst_buffers(&g722, "rtpg722depay"), 100, "{rt}");
    let l16_buffers = gst_buffers(&l16, "rtpL16depay");
    assert!((100..=400).contains(&l16_buffers), "{rt}: {l16_buffers} L16 buffers");

    // Our clients: the same frames, with continuous timestamps.
    for (name, url, channels) in [("opus", &opus, 2), ("webm", &webm, 1)] {
        for (crt, frames) in play_all(url) {
            assert_eq!(frames.len(), packets, "{rt}/{crt} {name}");
            assert!(frames
                .iter()
                .all(|f| f.codec == AudioCodec::Opus && f.channels == channels));
            check_continuity(crt, &frames, 1.0, 1);
        }
    }
    for (crt, frames) in play_all(&l16) {
        assert!(frames
            .iter()
            .all(|f| (f.codec, f.sample_rate, f.channels) == (AudioCodec::L16, 22050, 2)));
        assert_eq!(check_continuity(crt, &frames, 1.0, 0), 44_100, "{rt}/{crt}");
    }
    for (crt, frames) in play_all(&g722) {
        assert!(frames
            .iter()
            .all(|f| (f.codec, f.sample_rate, f.channels) == (AudioCodec::G722, 16000, 1)));
        assert_eq!(check_continuity(crt, &frames, 0.5, 0), 32_000, "{rt}/{crt}");
    }
    // Without the parameter a WAV file is PCMA as before; an unknown
    // codec is not found.
    for (crt, frames) in play_all(&server.url("tone.l16.wav")) {
        assert!(frames.iter().all(|f| f.codec == AudioCodec::Pcma), "{crt}");
    }
    let run = runtimes::run(
        runtimes::Runtime::Tokio,
        &server.url("tone.l16.wav?codec=mp3"),
        ClientOptions::default(),
        Control::within(LIMIT),
    );
    assert!(methods(&run.events).contains(&("DESCRIBE".to_owned(), 404)), "{rt}");
    server.shutdown();
}

/// The Opus decode of the media crate (the `opus-decoder` crate) against
/// FFmpeg's, on the packets of an FFmpeg-encoded file (read by our Matroska
/// reader): the same audio, 312 samples (the pre-skip FFmpeg drops) later.
#[test]
fn opus_decode_matches_ffmpeg() {
    use rtsp_toolkit_media::audio::AudioDecoder;
    let dir = TempDir::new("audio-opus-decode");
    make_media(&dir.0);
    for (name, channels) in [("tone.opus.mkv", 2u16), ("tone.webm", 1)] {
        let path = dir.0.join(name);
        let source = rtsp_toolkit_media::open(&path).unwrap();
        let mut decoder = AudioDecoder::new(AudioCodec::Opus, None, 48000, channels, None).unwrap();
        let mut ours = Vec::new();
        for s in &source.samples {
            let frame = AudioFrame {
                codec: AudioCodec::Opus,
                timestamp: s.presentation_time as u32,
                data: s.data.clone(),
                sample_count: rtsp_toolkit_core::codec::opus::packet_samples(&s.data).unwrap(),
                sample_rate: 48000,
                channels,
                loss: 0,
            };
            for pcm in decoder.feed(&frame).unwrap() {
                assert_eq!(pcm.sample_count() as u32, frame.sample_count);
                ours.extend(pcm.samples.iter().step_by(usize::from(channels)));
            }
        }
        let mut c = Command::new("ffmpeg");
        c.args(["-hide_banner", "-loglevel", "error", "-i"])
            .arg(&path)
            .args(["-f", "s16le", "-ac", "1", "-ar", "48000", "-"]);
        let theirs = from_s16le(&run_for(c));
        // FFmpeg drops the encoder's pre-skip; find that delay.
        let (delay, snr) = (0..1000)
            .step_by(8)
            .map(|d| (d, snr_db(&theirs[..90_000], &ours, d)))
            .fold((0, f64::MIN), |best, x| if x.1 > best.1 { x } else { best });
        let (delay, snr) = (delay.saturating_sub(8)..delay + 8)
            .map(|d| (d, snr_db(&theirs[..90_000], &ours, d)))
            .fold((delay, snr), |best, x| if x.1 > best.1 { x } else { best });
        // About 85 dB: the same decode within rounding.
        assert!(snr > 60.0, "{name}: {snr:.1} dB at delay {delay}");
    }
}
