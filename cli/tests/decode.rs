//! `probe --decode` and `probe --save-first-frame` (cargo feature `decode`) against the embedded
//! server: the picture counts `ffprobe -count_frames` gives on the same URLs, the resolution, and a
//! PNG that opens and is not blank. Needs ffprobe (scripts/peers/install.sh).
#![cfg(feature = "decode")]

mod support;

use std::process::Command;
use std::thread;
use std::time::Duration;

use serde_json::Value;
use support::{read_png, run, temp_dir, variance, Serve};

const VIDEO_FIXTURES: [&str; 4] = ["h264_aac.mp4", "h264_bframes.mp4", "h265.mp4", "h265_aac.mkv"];

/// `(pictures, width, height)` of the first video stream, by `ffprobe -count_frames` over RTSP/TCP.
fn ffprobe_video(url: &str) -> (u64, u32, u32) {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-rtsp_transport",
            "tcp",
            "-count_frames",
            "-select_streams",
            "v:0",
        ])
        .args([
            "-show_entries",
            "stream=width,height,nb_read_frames",
            "-of",
            "default=nw=1",
            url,
        ])
        .output()
        .expect("ffprobe runs (scripts/peers/install.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |k: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("ffprobe {url}: no {k} in {text:?}"))
    };
    (field("nb_read_frames"), field("width") as u32, field("height") as u32)
}

fn report(stdout: &str) -> Value {
    let last = stdout.lines().last().expect("output");
    let v: Value = serde_json::from_str(last).unwrap();
    assert_eq!(v["type"], "report", "{last}");
    v
}

#[test]
fn decoded_pictures_match_ffprobe_counts_and_resolution() {
    let serve = Serve::start();
    // The fixtures play in real time (5 s each): all at once, ours and ffprobe's side by side.
    let handles: Vec<_> = VIDEO_FIXTURES
        .iter()
        .map(|name| {
            let url = serve.url(name);
            thread::spawn(move || {
                let theirs = {
                    let url = url.clone();
                    thread::spawn(move || ffprobe_video(&url))
                };
                let r = run(
                    &["probe", &url, "--decode", "--json", "--timeout", "10"],
                    Duration::from_secs(60),
                );
                assert_eq!(r.status.code(), Some(0), "{url}: {}", r.stderr);
                (url, report(&r.stdout), theirs.join().unwrap())
            })
        })
        .collect();
    for h in handles {
        let (url, report, (frames, width, height)) = h.join().unwrap();
        let d = &report["decode"];
        assert_eq!(d["pictures"], frames, "{url}: {d}");
        assert_eq!(
            (d["width"].as_u64(), d["height"].as_u64()),
            (Some(width.into()), Some(height.into())),
            "{url}"
        );
        assert_eq!(
            (d["errors"].as_u64(), d["skipped"].as_u64()),
            (Some(0), Some(0)),
            "{url}: {d}"
        );
        assert_eq!(d["all_frames"], true);
        assert_eq!(
            report["tracks"][0]["frames"], frames,
            "{url}: every frame decoded to one picture"
        );
    }
}

#[test]
fn first_frame_png_has_the_stream_resolution_and_is_not_blank() {
    let serve = Serve::start();
    let dir = temp_dir("first-frame");
    for name in ["h264_bframes.mp4", "h265.mp4"] {
        let png = dir.join(format!("{name}.png"));
        let url = serve.url(name);
        let r = run(
            &[
                "probe",
                &url,
                "--save-first-frame",
                png.to_str().unwrap(),
                "--frames",
                "10",
                "--no-audio",
            ],
            Duration::from_secs(30),
        );
        assert_eq!(r.status.code(), Some(0), "{name}: {}", r.stderr);
        assert!(r.stdout.contains("first frame: 320x240 PNG to"), "{}", r.stdout);
        let (w, h, pixels, bpp) = read_png(&std::fs::read(&png).unwrap());
        assert_eq!((w, h), (320, 240), "{name}");
        let v = variance(&pixels, bpp);
        assert!(v > 1000.0, "{name}: a blank picture (variance {v})");
    }
}

/// MJPEG (RFC 2435) from the embedded server, on a Matroska clip made with FFmpeg: every image
/// decodes, the first one is saved as a PNG, and `--save-video` writes the images as a `.mjpeg`
/// stream that FFmpeg reads.
#[test]
fn mjpeg_decodes_and_saves() {
    let dir = temp_dir("mjpeg");
    let media = dir.join("media");
    std::fs::create_dir_all(&media).unwrap();
    let made = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=10",
        ])
        .args([
            "-frames:v",
            "20",
            "-c:v",
            "mjpeg",
            "-huffman",
            "default",
            "-pix_fmt",
            "yuvj420p",
        ])
        .arg(media.join("clip.mkv"))
        .output()
        .expect("ffmpeg runs");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let serve = Serve::start_in(&media, &[]);
    let url = serve.url("clip.mkv");
    let r = run(
        &["probe", &url, "--decode", "--json", "--timeout", "10"],
        Duration::from_secs(60),
    );
    assert_eq!(r.status.code(), Some(0), "{}", r.stderr);
    let report = report(&r.stdout);
    let d = &report["decode"];
    assert_eq!(
        (
            d["pictures"].as_u64(),
            d["width"].as_u64(),
            d["height"].as_u64(),
            d["errors"].as_u64()
        ),
        (Some(20), Some(320), Some(240), Some(0)),
        "{d}"
    );
    assert_eq!(report["tracks"][0]["codec"], "JPEG", "{report}");

    let png = dir.join("first.png");
    let video = dir.join("clip.mjpeg");
    let r = run(
        &[
            "probe",
            &url,
            "--save-first-frame",
            png.to_str().unwrap(),
            "--save-video",
            video.to_str().unwrap(),
            "--frames",
            "5",
        ],
        Duration::from_secs(30),
    );
    assert_eq!(r.status.code(), Some(0), "{}", r.stderr);
    assert!(r.stdout.contains("first frame: 320x240 PNG to"), "{}", r.stdout);
    let (w, h, pixels, bpp) = read_png(&std::fs::read(&png).unwrap());
    assert_eq!((w, h), (320, 240));
    assert!(variance(&pixels, bpp) > 1000.0, "a blank picture");
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-f",
            "mjpeg",
            "-count_frames",
            "-show_entries",
            "stream=nb_read_frames",
        ])
        .args(["-of", "csv=p=0"])
        .arg(&video)
        .output()
        .expect("ffprobe runs");
    assert_eq!(String::from_utf8_lossy(&probe.stdout).trim(), "5");
}

#[test]
fn save_first_frame_fails_cleanly_without_video() {
    let serve = Serve::start();
    let dir = temp_dir("no-video");
    let png = dir.join("none.png");
    let r = run(
        &[
            "probe",
            &serve.url("tone.aac"),
            "--save-first-frame",
            png.to_str().unwrap(),
        ],
        Duration::from_secs(30),
    );
    assert_eq!(r.status.code(), Some(1), "{}", r.stdout);
    assert!(
        r.stderr.contains("no picture: no video track was set up"),
        "{}",
        r.stderr
    );
    assert!(!png.exists(), "the empty file is removed");
}
