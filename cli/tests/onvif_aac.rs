//! The ONVIF audio backchannel with AAC (cargo feature `decode`: the
//! client's AAC encoder is FFmpeg's): `probe --backchannel FILE.wav` into
//! `serve --backchannel-codec aac` and into GStreamer's ONVIF server
//! (`scripts/peers/gst-rtsp-server.py --onvif-backchannel-codec aac`, its
//! `rtpmp4gdepay ! avdec_aac`); what each decodes is what was sent, within
//! the codec's loss, once aligned by the encoder's delay. Both AAC
//! packetizations: MPEG4-GENERIC AAC-hbr (`aac`) and MP4A-LATM (`aac-latm`,
//! GStreamer's `rtpmp4adepay`).
#![cfg(feature = "decode")]

mod support;

use std::path::Path;
use std::time::Duration;

use support::*;

/// 1.5 s at 16 kHz mono: a sweep from 200 Hz to 2 kHz under a 311 Hz tone
/// (nothing periodic, so one delay aligns it).
fn talk() -> Vec<i16> {
    (0..24_000)
        .map(|i| {
            let t = f64::from(i) / 16_000.0;
            let tau = 2.0 * std::f64::consts::PI;
            let sweep = (tau * (200.0 * t + 1800.0 * t * t / 3.0)).sin();
            (sweep * 6000.0 + (tau * 311.0 * t).sin() * 3000.0) as i16
        })
        .collect()
}

fn write_wav(path: &Path, samples: &[i16], rate: u32) {
    let mut wav = Vec::new();
    rtsp_toolkit_media::audio::write_wav_header(&mut wav, rate, 1, (samples.len() * 2) as u32).unwrap();
    wav.extend(samples.iter().flat_map(|s| s.to_le_bytes()));
    std::fs::write(path, wav).unwrap();
}

/// The delay (0..=4096 samples) at which `got` best matches `sent`
/// (least squared error over `sent[1000..len - 1000]`), and that error
/// relative to the signal's energy.
fn align(sent: &[i16], got: &[i16]) -> (usize, f64) {
    let range = 1000..sent.len() - 1000;
    let energy: f64 = sent[range.clone()].iter().map(|&s| f64::from(s).powi(2)).sum();
    (0..=4096)
        .filter(|lag| lag + range.end <= got.len())
        .map(|lag| {
            let err: f64 = range
                .clone()
                .map(|i| (f64::from(got[lag + i]) - f64::from(sent[i])).powi(2))
                .sum();
            (lag, err / energy)
        })
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or((usize::MAX, f64::INFINITY))
}

fn samples(raw: &[u8]) -> Vec<i16> {
    raw.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect()
}

#[test]
fn probe_sends_aac_on_the_backchannel_of_serve_and_the_wav_matches() {
    aac_into_serve("aac", "MPEG4-GENERIC/16000");
}

#[test]
fn probe_sends_aac_latm_on_the_backchannel_of_serve_and_the_wav_matches() {
    aac_into_serve("aac-latm", "MP4A-LATM/16000");
}

/// `probe --backchannel` into `serve --backchannel-codec CODEC`, whose
/// section is `rtpmap`.
fn aac_into_serve(codec: &str, rtpmap: &str) {
    let dir = temp_dir(&format!("onvif-{codec}-backchannel"));
    let received = dir.join("received");
    std::fs::create_dir_all(&received).unwrap();
    std::fs::copy(media_dir().join("h264_aac.mp4"), dir.join("clip.mp4")).unwrap();
    let sent = talk();
    let input = dir.join("talk.wav");
    write_wav(&input, &sent, 16_000);
    let server = Serve::start_in(
        &dir,
        &[
            "--backchannel-dir",
            received.to_str().unwrap(),
            "--backchannel-codec",
            codec,
        ],
    );
    let r = run(
        &[
            "probe",
            &server.url("clip.mp4"),
            "--backchannel",
            input.to_str().unwrap(),
        ],
        Duration::from_secs(30),
    );
    assert_eq!(r.code(), 0, "{r:?}");
    assert!(r.stdout.contains("stopped (--backchannel sent)"), "{}", r.stdout);
    assert!(r.stdout.contains(rtpmap), "{}", r.stdout);
    assert!(!r.stdout.contains("warning"), "{}", r.stdout);
    // The server completes the WAV when the connection ends: 16 kHz mono,
    // 24 frames (23.4 of audio, the last padded) and the encoder's one of delay.
    let mut wav = Vec::new();
    for _ in 0..100 {
        let files: Vec<_> = std::fs::read_dir(&received)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        if let [f] = &files[..] {
            wav = std::fs::read(f).unwrap();
            if wav.len() > 44 && wav[40..44] != [0; 4] {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(wav.len() > 44, "no WAV");
    assert_eq!(u32::from_le_bytes(wav[24..28].try_into().unwrap()), 16_000);
    assert_eq!(u16::from_le_bytes(wav[22..24].try_into().unwrap()), 1);
    let got = samples(&wav[44..]);
    assert_eq!(got.len(), 25 * 1024, "every access unit decoded, once");
    let (lag, err) = align(&sent, &got);
    assert_eq!(lag, 1024, "one frame of encoder delay");
    assert!(err < 0.02, "relative squared error {err}");
    server.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn probe_sends_aac_into_gstreamers_onvif_server() {
    aac_into_gstreamer("aac", "MPEG4-GENERIC/16000");
}

#[test]
fn probe_sends_aac_latm_into_gstreamers_onvif_server() {
    aac_into_gstreamer("aac-latm", "MP4A-LATM/16000");
}

/// `probe --backchannel` into GStreamer's ONVIF server with
/// `--onvif-backchannel-codec CODEC`, whose section is `rtpmap`.
fn aac_into_gstreamer(codec: &str, rtpmap: &str) {
    let dir = temp_dir(&format!("onvif-{codec}-gst"));
    let out = dir.join("received.raw");
    let sent = talk();
    let input = dir.join("talk.wav");
    // At 8 kHz: the session converts it to the track's 16 kHz.
    let sent8: Vec<i16> = sent.iter().step_by(2).copied().collect();
    write_wav(&input, &sent8, 8000);
    let gst = rtsp_toolkit_conformance::peers::GstServer::start_with(
        None,
        &[
            "--onvif-backchannel",
            out.to_str().unwrap(),
            "--onvif-backchannel-codec",
            codec,
        ],
    );
    let r = run(
        &[
            "probe",
            &gst.url("h264_aac.mp4"),
            "--backchannel",
            input.to_str().unwrap(),
        ],
        Duration::from_secs(30),
    );
    assert_eq!(r.code(), 0, "{r:?}");
    assert!(r.stdout.contains("stopped (--backchannel sent)"), "{}", r.stdout);
    assert!(r.stdout.contains(rtpmap), "{}", r.stdout);
    assert!(!r.stdout.contains("warning"), "{}", r.stdout);
    // GStreamer writes as it decodes; wait for the last access units.
    let mut raw = Vec::new();
    for _ in 0..100 {
        raw = std::fs::read(&out).unwrap_or_default();
        if raw.len() >= 2 * (sent.len() + 1024) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(gst);
    let got = samples(&raw);
    assert!(got.len() >= sent.len(), "{} of {} samples", got.len(), sent.len());
    // Converted 8 -> 16 kHz by interpolation, then AAC: the tones below 4 kHz survive.
    let (lag, err) = align(&sent, &got);
    eprintln!("GStreamer {codec}: delay {lag}, relative squared error {err}");
    assert!(lag <= 2048, "delay {lag}");
    assert!(err < 0.05, "relative squared error {err} at delay {lag}");
    let _ = std::fs::remove_dir_all(&dir);
}
