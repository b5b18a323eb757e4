//! ONVIF from the command line: `serve` sends a sidecar file's metadata
//! documents, `probe --metadata` prints a line per document and
//! `probe --save-metadata` writes them back in the sidecar format.

use std::time::Duration;

mod support;
use support::*;

const SIDECAR: &str = "\
# the motion alarm goes on and off
0.0 <tt:MetadataStream xmlns:tt=\"http://www.onvif.org/ver10/schema\"><tt:Event><wsnt:NotificationMessage><wsnt:Topic Dialect=\"x\">tns1:VideoSource/MotionAlarm</wsnt:Topic><wsnt:Message><tt:Message><tt:Data><tt:SimpleItem Name=\"State\" Value=\"true\"/></tt:Data></tt:Message></wsnt:Message></wsnt:NotificationMessage></tt:Event></tt:MetadataStream>
2.25 <tt:MetadataStream xmlns:tt=\"http://www.onvif.org/ver10/schema\"><tt:VideoAnalytics/></tt:MetadataStream>
";

/// `serve --dir DIR` on a free port, killed on drop, and its port.
fn serve(dir: &std::path::Path) -> (Proc, u16) {
    let mut p = spawn(&["serve", "--dir", dir.to_str().unwrap(), "--port", "0"]);
    let _stderr = drain(p.0.stderr.take().unwrap());
    let rx = lines(p.0.stdout.take().unwrap());
    let first = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("serve prints its address");
    let port = first
        .strip_prefix("listening on rtsp://127.0.0.1:")
        .and_then(|r| r.strip_suffix('/'))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line: {first:?}"));
    (p, port)
}

#[test]
fn probe_prints_and_saves_the_documents_of_a_served_sidecar() {
    let dir = temp_dir("onvif-metadata");
    std::fs::copy(media_dir().join("h264_aac.mp4"), dir.join("clip.mp4")).unwrap();
    std::fs::write(dir.join("clip.meta"), SIDECAR).unwrap();
    let (_server, port) = serve(&dir);
    let url = format!("rtsp://127.0.0.1:{port}/clip.mp4");
    let saved = dir.join("saved.meta");
    let r = run(
        &["probe", &url, "--save-metadata", saved.to_str().unwrap()],
        Duration::from_secs(30),
    );
    assert_eq!(r.code(), 0, "{r:?}");
    let lines: Vec<&str> = r.stdout.lines().filter(|l| l.contains("meta 2")).collect();
    assert_eq!(lines.len(), 2, "{}", r.stdout);
    assert!(
        lines[0].contains("<tt:MetadataStream>") && lines[0].contains("topic tns1:VideoSource/MotionAlarm"),
        "{}",
        lines[0]
    );
    assert!(!lines[1].contains("topic"), "{}", lines[1]);
    assert!(
        r.stdout.contains("application  vnd.onvif.metadata/90000"),
        "{}",
        r.stdout
    );
    // Saved in the sidecar format, times from the first document.
    let expected: String = SIDECAR
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let (t, doc) = l.split_once(' ').unwrap();
            format!("{:.6} {doc}\n", t.parse::<f64>().unwrap())
        })
        .collect();
    assert_eq!(std::fs::read_to_string(&saved).unwrap(), expected);

    // JSON: a `metadata` line per document, with the document.
    let r = run(&["probe", &url, "--metadata", "--json"], Duration::from_secs(30));
    assert_eq!(r.code(), 0, "{r:?}");
    let docs: Vec<serde_json::Value> = r.json().into_iter().filter(|v| v["type"] == "metadata").collect();
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0]["track"], 2);
    assert_eq!(docs[0]["topic"], "tns1:VideoSource/MotionAlarm");
    assert_eq!(docs[1]["root"], "tt:MetadataStream");
    assert_eq!(
        docs[1]["extended_timestamp"].as_i64().unwrap() - docs[0]["extended_timestamp"].as_i64().unwrap(),
        2 * 90_000 + 22_500
    );
    assert!(docs[1]["xml"]
        .as_str()
        .unwrap()
        .ends_with("<tt:VideoAnalytics/></tt:MetadataStream>"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn probe_sends_a_wav_file_on_the_backchannel_of_serve() {
    let dir = temp_dir("onvif-backchannel");
    let received = dir.join("received");
    std::fs::create_dir_all(&received).unwrap();
    std::fs::copy(media_dir().join("h264_aac.mp4"), dir.join("clip.mp4")).unwrap();
    // 1.2 s of a 500 Hz square wave, 8 kHz mono.
    let samples: Vec<i16> = (0..9600).map(|i| if i / 8 % 2 == 0 { 8000 } else { -8000 }).collect();
    let mut wav = Vec::new();
    rtsp_toolkit_media::audio::write_wav_header(&mut wav, 8000, 1, (samples.len() * 2) as u32).unwrap();
    wav.extend(samples.iter().flat_map(|s| s.to_le_bytes()));
    let input = dir.join("talk.wav");
    std::fs::write(&input, wav).unwrap();

    let mut p = spawn(&[
        "serve",
        "--dir",
        dir.to_str().unwrap(),
        "--port",
        "0",
        "--backchannel-dir",
        received.to_str().unwrap(),
    ]);
    let _stderr = drain(p.0.stderr.take().unwrap());
    let rx = lines(p.0.stdout.take().unwrap());
    let first = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("serve prints its address");
    let port: u16 = first
        .strip_prefix("listening on rtsp://127.0.0.1:")
        .and_then(|r| r.strip_suffix('/'))
        .and_then(|p| p.parse().ok())
        .unwrap();
    let url = format!("rtsp://127.0.0.1:{port}/clip.mp4");
    let r = run(
        &["probe", &url, "--backchannel", input.to_str().unwrap(), "-q"],
        Duration::from_secs(30),
    );
    assert_eq!(r.code(), 0, "{r:?}");
    assert!(r.stdout.contains("stopped (--backchannel sent)"), "{}", r.stdout);
    // The server writes the WAV when the connection ends.
    let mut got = Vec::new();
    for _ in 0..100 {
        let files: Vec<_> = std::fs::read_dir(&received)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        if let [f] = &files[..] {
            got = std::fs::read(f).unwrap();
            if got.len() == 44 + 2 * samples.len() && got[40..44] != [0; 4] {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(got.len(), 44 + 2 * samples.len(), "the whole file, at 8 kHz");
    // A-law then mu-law: each sample within the two codecs' quantization.
    let back: Vec<i16> = got[44..]
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    for (a, b) in samples.iter().zip(&back) {
        assert!((i32::from(*a) - i32::from(*b)).abs() <= 512, "{a} vs {b}");
    }
    drop(p);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Without the `decode` feature the CLI has no AAC encoder: against an AAC
/// backchannel, `probe --backchannel` says so (a `backchannel` warning) and
/// sends nothing; the server writes no file.
#[cfg(not(feature = "decode"))]
#[test]
fn probe_without_the_decode_feature_warns_that_it_cannot_send_aac() {
    let dir = temp_dir("onvif-backchannel-aac-nofeature");
    let received = dir.join("received");
    std::fs::create_dir_all(&received).unwrap();
    std::fs::copy(media_dir().join("h264_aac.mp4"), dir.join("clip.mp4")).unwrap();
    let mut wav = Vec::new();
    rtsp_toolkit_media::audio::write_wav_header(&mut wav, 16000, 1, 3200).unwrap();
    wav.extend([0u8; 3200]);
    let input = dir.join("talk.wav");
    std::fs::write(&input, wav).unwrap();
    let server = Serve::start_in(
        &dir,
        &[
            "--backchannel-dir",
            received.to_str().unwrap(),
            "--backchannel-codec",
            "aac",
        ],
    );
    let r = run(
        &[
            "probe",
            &server.url("clip.mp4"),
            "--backchannel",
            input.to_str().unwrap(),
            "--duration",
            "1",
            "--json",
        ],
        Duration::from_secs(30),
    );
    assert_eq!(r.code(), 0, "{r:?}");
    let warnings: Vec<serde_json::Value> = r
        .json()
        .into_iter()
        .filter(|v| v["type"] == "warning" && v["kind"] == "backchannel")
        .collect();
    assert_eq!(warnings.len(), 1, "{}", r.stdout);
    let reason = warnings[0]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("no AAC encoder was given") && reason.contains("`decode` feature"),
        "{reason}"
    );
    server.stop();
    assert_eq!(std::fs::read_dir(&received).unwrap().count(), 0, "nothing received");
    let _ = std::fs::remove_dir_all(&dir);
}
