//! `probe --record FILE.mp4|FILE.mkv` against the embedded server, checked by FFmpeg: every
//! fixture recorded to both formats plays with no decode error, with the frame counts the probe
//! reported (those `ffprobe` gets over RTSP) and the fixtures' duration; B-frame video keeps its
//! presentation order; a mid-stream resolution change decodes; a recording killed with SIGKILL
//! plays up to its last fragment. Needs ffprobe and ffmpeg (scripts/peers/install.sh).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use rtsp_toolkit_conformance::peers::FFPROBE_COUNTS;
use serde_json::Value;
use support::{lines, media_dir, run, spawn, temp_dir, wait_bounded, Proc, Serve};

/// `ffprobe -count_frames` of a file: (streams as JSON, format duration, stderr).
fn ffprobe(path: &Path) -> (Vec<Value>, f64, String) {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-show_streams",
            "-show_format",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs (scripts/peers/install.sh installs it)");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let duration = v["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .unwrap_or(-1.0);
    let streams = v["streams"].as_array().cloned().unwrap_or_default();
    (streams, duration, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// `ffmpeg -v error -i FILE -f null -`: decodes every stream; its error output.
fn ffmpeg_decode_errors(path: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    let mut e = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        e.push_str(&format!("(exit {:?})", out.status.code()));
    }
    e
}

/// Presentation times (seconds) of `what` (`frame`: decoded, in presentation order; `packet`:
/// in file order) of the first video stream.
fn video_times(path: &Path, what: &str) -> Vec<f64> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .arg(format!("{what}=pts_time"))
        .args(["-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(',').next()?.trim().parse().ok())
        .collect()
}

fn nb_read_frames(stream: &Value) -> u64 {
    stream["nb_read_frames"]
        .as_str()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn report(stdout: &str) -> Value {
    let last = stdout.lines().last().expect("output");
    let v: Value = serde_json::from_str(last).unwrap();
    assert_eq!(v["type"], "report", "{last}");
    v
}

/// Records `url` into `path` to the end of the stream; the JSON report.
fn record(url: &str, path: &Path, extra: &[&str]) -> Value {
    let mut args = vec![
        "probe",
        url,
        "--json",
        "--timeout",
        "10",
        "--record",
        path.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let r = run(&args, Duration::from_secs(60));
    assert_eq!(r.status.code(), Some(0), "{url} -> {}: {}", path.display(), r.stderr);
    report(&r.stdout)
}

/// (ffprobe codec name, frames) of each stream.
type Counts = &'static [(&'static str, usize)];

#[test]
fn every_fixture_recorded_to_mp4_and_mkv_plays_with_the_frames_received() {
    let serve = Serve::start();
    let dir = temp_dir("record-all");
    // The fixtures play in real time (5 s each): every recording at once.
    let jobs: Vec<(&str, Counts, PathBuf)> = FFPROBE_COUNTS
        .iter()
        .flat_map(|(name, counts)| ["mp4", "mkv"].map(|ext| (*name, *counts, dir.join(format!("{name}.{ext}")))))
        .collect();
    let handles: Vec<_> = jobs
        .into_iter()
        .map(|(name, counts, path)| {
            let url = serve.url(name);
            thread::spawn(move || {
                let rep = record(&url, &path, &[]);
                (name, counts, path, rep)
            })
        })
        .collect();
    for h in handles {
        let (name, counts, path, rep) = h.join().unwrap();
        let (streams, duration, errors) = ffprobe(&path);
        assert_eq!(errors, "", "{}: ffprobe errors", path.display());
        let decode = ffmpeg_decode_errors(&path);
        assert_eq!(decode, "", "{}: decode errors", path.display());
        let got: Vec<(String, u64)> = streams
            .iter()
            .map(|s| (s["codec_name"].as_str().unwrap_or("").to_owned(), nb_read_frames(s)))
            .collect();
        let want: Vec<(String, u64)> = counts.iter().map(|(c, n)| (c.to_string(), *n as u64)).collect();
        assert_eq!(got, want, "{}: streams and decoded frames", path.display());
        // Every frame the probe received is in the file, track by track.
        let reported: Vec<u64> = rep["tracks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["frames"].as_u64().unwrap())
            .collect();
        let decoded: Vec<u64> = got.iter().map(|g| g.1).collect();
        assert_eq!(
            decoded,
            reported,
            "{}: frames recorded = frames received",
            path.display()
        );
        assert!(
            (4.9..=5.2).contains(&duration),
            "{}: duration {duration} (the fixtures are 5 s)",
            path.display()
        );
        if name == "h264_aac.mp4" || name == "h265.mp4" {
            let v = &streams[0];
            assert_eq!((v["width"].as_u64(), v["height"].as_u64()), (Some(320), Some(240)));
        }
    }
}

#[test]
fn b_frames_keep_their_presentation_order() {
    let serve = Serve::start();
    let dir = temp_dir("record-bframes");
    let jobs: Vec<(String, PathBuf, PathBuf)> = ["h264_bframes.mp4", "h265_aac.mkv"]
        .iter()
        .flat_map(|name| {
            ["mp4", "mkv"].map(|ext| {
                (
                    serve.url(name),
                    media_dir().join(name),
                    dir.join(format!("{name}.{ext}")),
                )
            })
        })
        .collect();
    let handles: Vec<_> = jobs
        .into_iter()
        .map(|(url, source, path)| {
            thread::spawn(move || {
                record(&url, &path, &["--no-audio"]);
                (source, path)
            })
        })
        .collect();
    for h in handles {
        let (source, path) = h.join().unwrap();
        let frames = video_times(&path, "frame");
        assert_eq!(frames.len(), 125, "{}", path.display());
        // Decoded pictures come out 40 ms apart, as in the source file.
        let theirs = video_times(&source, "frame");
        let steps = |t: &[f64]| {
            t.windows(2)
                .map(|w| ((w[1] - w[0]) * 1000.0).round() as i64)
                .collect::<Vec<_>>()
        };
        assert_eq!(steps(&frames), steps(&theirs), "{}: presentation steps", path.display());
        assert!(
            steps(&frames).iter().all(|&s| s == 40),
            "{}: {:?}",
            path.display(),
            steps(&frames)
        );
        // In file (decode) order the presentation times are not sorted: the B-frames are there,
        // and sorted they are the decoded pictures' times.
        let mut packets = video_times(&path, "packet");
        assert!(
            packets.windows(2).any(|w| w[1] < w[0]),
            "{}: no reordering",
            path.display()
        );
        packets.sort_by(f64::total_cmp);
        let ms = |t: &[f64]| t.iter().map(|x| (x * 1000.0).round() as i64).collect::<Vec<_>>();
        assert_eq!(ms(&packets), ms(&frames), "{}", path.display());
    }
}

#[test]
fn frames_limit_and_usage_errors() {
    let serve = Serve::start();
    let dir = temp_dir("record-frames");
    let path = dir.join("forty.mp4");
    let rep = record(&serve.url("h264_bframes.mp4"), &path, &["--frames", "40"]);
    assert_eq!(rep["tracks"][0]["frames"], 40);
    let (streams, _, errors) = ffprobe(&path);
    assert_eq!(errors, "");
    assert_eq!(nb_read_frames(&streams[0]), 40, "exactly the frames counted");
    assert_eq!(ffmpeg_decode_errors(&path), "");

    // Bad extension or path: usage errors, before connecting (nothing listens on port 1).
    for bad in [dir.join("x.avi"), dir.join("no/such/dir/x.mp4")] {
        let r = run(
            &["probe", "rtsp://127.0.0.1:1/x", "--record", bad.to_str().unwrap()],
            Duration::from_secs(10),
        );
        assert_eq!(r.code(), 2, "{}: {}", bad.display(), r.stderr);
        assert!(r.stderr.contains("--record"), "{}", r.stderr);
    }
    assert!(!dir.join("x.avi").exists());
}

#[test]
fn a_killed_recording_plays_up_to_its_last_fragment() {
    let serve = Serve::start();
    let dir = temp_dir("record-killed");
    let handles: Vec<_> = ["mp4", "mkv"]
        .into_iter()
        .map(|ext| {
            let url = serve.url("h264_aac.mp4");
            let path = dir.join(format!("killed.{ext}"));
            thread::spawn(move || {
                let mut p = spawn(&["probe", &url, "--record", path.to_str().unwrap(), "-q"]);
                // Two fragments (a keyframe every second) on disk, then SIGKILL mid-stream.
                let deadline = Instant::now() + Duration::from_secs(15);
                while std::fs::metadata(&path).map_or(0, |m| m.len()) < 60_000 {
                    assert!(Instant::now() < deadline, "{}: nothing written", path.display());
                    assert!(p.0.try_wait().unwrap().is_none(), "the probe ended early");
                    thread::sleep(Duration::from_millis(20));
                }
                thread::sleep(Duration::from_millis(300));
                p.0.kill().unwrap();
                let status = p.0.wait().unwrap();
                assert_eq!(status.code(), None, "killed by a signal");
                path
            })
        })
        .collect();
    for h in handles {
        let path = h.join().unwrap();
        let (streams, _, _) = ffprobe(&path);
        let video = nb_read_frames(&streams[0]);
        assert!((25..125).contains(&video), "{}: {video} video frames", path.display());
        assert!(nb_read_frames(&streams[1]) > 0, "{}: audio", path.display());
        // Only the tail may be cut (the kill can land while a fragment is being written).
        let errors = ffmpeg_decode_errors(&path);
        assert!(
            errors.is_empty() || errors.contains("partial file") || errors.contains("File ended prematurely"),
            "{}: {errors}",
            path.display()
        );
    }
}

/// `serve --dir DIR --port 0`; the process and its base URL.
fn serve_dir(dir: &Path) -> (Proc, String) {
    let mut p = spawn(&["serve", "--dir", dir.to_str().unwrap(), "--port", "0"]);
    let rx: mpsc::Receiver<String> = lines(p.0.stdout.take().unwrap());
    let first = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("serve prints its address");
    let base = first.strip_prefix("listening on ").expect("address line").to_owned();
    (p, base)
}

#[test]
fn a_resolution_change_mid_stream_decodes() {
    let dir = temp_dir("record-resize");
    // 2 s at 320x240 then 2 s at 160x120, one H.264 stream (parameter sets in-band), in Matroska.
    for (size, name) in [("320x240", "a.h264"), ("160x120", "b.h264")] {
        let ok = Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg(format!("testsrc2=size={size}:rate=25"))
            .args([
                "-t", "2", "-c:v", "libx264", "-bf", "0", "-g", "25", "-pix_fmt", "yuv420p",
            ])
            .arg(dir.join(name))
            .status()
            .expect("ffmpeg runs");
        assert!(ok.success());
    }
    let mut both = std::fs::read(dir.join("a.h264")).unwrap();
    both.extend(std::fs::read(dir.join("b.h264")).unwrap());
    std::fs::write(dir.join("ab.h264"), both).unwrap();
    let served = dir.join("served");
    std::fs::create_dir_all(&served).unwrap();
    let ok = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-r", "25", "-i"])
        .arg(dir.join("ab.h264"))
        .args(["-c", "copy"])
        .arg(served.join("resize.mkv"))
        .status()
        .expect("ffmpeg runs");
    assert!(ok.success());
    let (server, base) = serve_dir(&served);
    for ext in ["mp4", "mkv"] {
        let path = dir.join(format!("resize.{ext}"));
        let mut args = vec!["probe".to_owned(), format!("{base}resize.mkv")];
        args.extend(["--record", path.to_str().unwrap(), "--timeout", "10"].map(String::from));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = wait_bounded(spawn(&args), Duration::from_secs(60));
        assert_eq!(r.code(), 0, "{}", r.stderr);
        assert!(r.stdout.contains("in-band parameter set changes: 1"), "{}", r.stdout);
        assert_eq!(ffmpeg_decode_errors(&path), "", "{}", path.display());
        let out = Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-select_streams",
                "v:0",
                "-show_entries",
                "frame=width,height",
                "-of",
                "csv=p=0",
            ])
            .arg(&path)
            .output()
            .unwrap();
        let sizes: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.split(',').take(2).collect::<Vec<_>>().join("x"))
            .collect();
        let count = |s: &str| sizes.iter().filter(|x| x.as_str() == s).count();
        assert_eq!((count("320x240"), count("160x120")), (50, 50), "{}", path.display());
    }
    drop(server);
}

/// MJPEG (served from a Matroska `V_MJPEG` clip made with FFmpeg) records to MP4 (`jpeg`) and
/// Matroska (`V_MJPEG`): every image, decoding to the same pictures as the source clip's.
#[test]
fn mjpeg_records_to_mp4_and_mkv() {
    let dir = temp_dir("record-mjpeg");
    let served = dir.join("served");
    std::fs::create_dir_all(&served).unwrap();
    let ok = Command::new("ffmpeg")
        .args([
            "-nostdin",
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
        .arg(served.join("clip.mkv"))
        .status()
        .expect("ffmpeg runs");
    assert!(ok.success());
    let md5s = |path: &Path| -> Vec<String> {
        let out = Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-i"])
            .arg(path)
            .args(["-f", "framemd5", "-"])
            .output()
            .expect("ffmpeg runs");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.rsplit(',').next().map(|m| m.trim().to_owned()))
            .collect()
    };
    let expected = md5s(&served.join("clip.mkv"));
    assert_eq!(expected.len(), 20);
    let (server, base) = serve_dir(&served);
    for ext in ["mp4", "mkv"] {
        let path = dir.join(format!("clip.{ext}"));
        let report = record(&format!("{base}clip.mkv"), &path, &[]);
        assert_eq!(report["tracks"][0]["frames"], 20, "{ext}: {report}");
        let (streams, _, stderr) = ffprobe(&path);
        assert_eq!(streams[0]["codec_name"], "mjpeg", "{ext}: {stderr}");
        assert_eq!(nb_read_frames(&streams[0]), 20, "{ext}");
        assert_eq!(ffmpeg_decode_errors(&path), "", "{ext}");
        assert_eq!(md5s(&path), expected, "{ext}: the pictures differ");
    }
    drop(server);
}
