//! Motion JPEG (RFC 2435) end to end, on Matroska `V_MJPEG` clips that each
//! test makes with FFmpeg in a temporary directory:
//! - GStreamer's rtsp-server (`jpegparse ! rtpjpegpay`, the project's peer
//!   script) against our client on every runtime: every image arrives, and
//!   every image decodes (FFmpeg) to the same pixels as the file's;
//! - our server (tokio and smol) against `ffprobe -count_frames`, GStreamer's
//!   `rtspsrc ! rtpjpegdepay`, and our client on every runtime, likewise;
//! - a clip our packetizer cannot send (FFmpeg's default optimized Huffman
//!   tables) is refused when the file is opened, with the reason.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::Duration;

use rtsp_toolkit_conformance::peers::{
    ffprobe_count_frames, gst_ended_well, gst_fakesink_frames, parse_ffprobe_counts, GstServer,
};
use rtsp_toolkit_conformance::runtimes::{self, Control, Run};
use rtsp_toolkit_conformance::servers::{ServerRuntime, TestServer};
use rtsp_toolkit_core::client::{ClientOptions, Event};
use rtsp_toolkit_core::codec::VideoCodec;

rtsp_toolkit_conformance::on_every_server!(
    #[test]
    third_party_clients_and_ours_get_every_image
);

/// Images in each clip: 2 s at 10 fps.
const FRAMES: usize = 20;
/// Bound on one session (the clip plays for 2 s).
const LIMIT: Duration = Duration::from_secs(30);

/// A directory removed when dropped (also when the test fails).
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("rtsp-toolkit-mjpeg-{}-{name}", std::process::id()));
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

/// Runs `cmd` (bounded by its own arguments' sizes and timeouts); its stdout.
fn output(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run a peer (scripts/peers/install.sh)");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    // GStreamer's own race at its shutdown after EOS is not a failure.
    assert!(gst_ended_well(out.status, &stdout, &stderr), "{cmd:?}: {stderr}");
    stdout.into_owned()
}

/// `dir/name`: FRAMES images of 320x240 MJPEG in Matroska, 4:2:0, with the
/// standard Huffman tables unless `optimized_huffman`.
fn make_clip(dir: &Path, name: &str, optimized_huffman: bool) -> PathBuf {
    let path = dir.join(name);
    let frames = FRAMES.to_string();
    output(
        Command::new("ffmpeg")
            .args([
                "-v",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=320x240:rate=10",
                "-frames:v",
                &frames,
                "-c:v",
                "mjpeg",
                "-q:v",
                "6",
                "-pix_fmt",
                "yuvj420p",
                "-huffman",
                if optimized_huffman { "optimal" } else { "default" },
            ])
            .arg(&path),
    );
    path
}

/// The MD5 of every decoded picture of `path` (FFmpeg's framemd5), in order;
/// `format` forces the input format (`mjpeg` for concatenated JPEG images).
fn picture_md5s(path: &Path, format: Option<&str>) -> Vec<String> {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error"]);
    if let Some(f) = format {
        cmd.args(["-f", f]);
    }
    cmd.arg("-i").arg(path).args(["-f", "framemd5", "-"]);
    output(&mut cmd)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit(',').next())
        .map(|s| s.trim().to_owned())
        .collect()
}

/// Checks one client run: FRAMES MJPEG images on track 0, each a keyframe
/// without loss, whose pictures are `expected` (written to `dir` to decode).
fn check_run(run: &Run, dir: &Path, expected: &[String], what: &str) {
    let rt = run.runtime.name();
    let frames: Vec<_> = run
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Video(v) => Some(&v.frame),
            _ => None,
        })
        .collect();
    assert_eq!(frames.len(), FRAMES, "{what} on {rt}");
    assert!(
        frames
            .iter()
            .all(|f| f.codec == VideoCodec::Mjpeg && f.keyframe && f.loss == 0),
        "{what} on {rt}"
    );
    assert!(frames
        .iter()
        .all(|f| f.data.starts_with(&[0xff, 0xd8]) && f.data.ends_with(&[0xff, 0xd9])));
    let path = dir.join(format!("received-{rt}.mjpeg"));
    let joined: Vec<u8> = frames.iter().flat_map(|f| f.data.iter().copied()).collect();
    std::fs::write(&path, joined).unwrap();
    assert_eq!(
        picture_md5s(&path, Some("mjpeg")),
        expected,
        "{what} on {rt}: the pictures differ"
    );
}

/// Our client on every runtime at once, for the clip's length and a margin.
fn our_clients(url: &str) -> Vec<Run> {
    runtimes::at_once(|runtime| {
        let control = Control::within(LIMIT).stop_after(Duration::from_secs(6));
        runtimes::run(runtime, url, ClientOptions::default(), control)
    })
}

#[test]
fn our_client_receives_mjpeg_from_gstreamer() {
    let dir = TempDir::new("gst");
    let media = TempDir::new("gst-media");
    let clip = make_clip(&media.0, "clip.mkv", false);
    let expected = picture_md5s(&clip, None);
    assert_eq!(expected.len(), FRAMES);
    // The script's --dir is the last one given.
    let server = GstServer::start_with(None, &["--dir", media.0.to_str().unwrap()]);
    for run in our_clients(&server.url("clip.mkv")) {
        let describe = run.events.iter().find_map(|e| match e {
            Event::Method(m) if m.method.as_str() == "DESCRIBE" => m.sdp.clone(),
            _ => None,
        });
        assert!(describe.unwrap().media[0].codec_is("JPEG"));
        check_run(&run, &dir.0, &expected, "from GStreamer");
    }
}

fn third_party_clients_and_ours_get_every_image(runtime: ServerRuntime) {
    let media = TempDir::new(&format!("ours-{}", runtime.name()));
    let clip = make_clip(&media.0, "clip.mkv", false);
    make_clip(&media.0, "optimized.mkv", true);
    let expected = picture_md5s(&clip, None);
    let server = TestServer::start(runtime, &media.0);
    let url = server.url("clip.mkv");
    // All at once: pacing is real time.
    let ffprobe = {
        let mut cmd = ffprobe_count_frames(&url, "tcp", &[]);
        thread::spawn(move || output(&mut cmd))
    };
    let gstreamer = {
        let pipeline =
            format!("rtspsrc location={url} protocols=tcp name=s s. ! rtpjpegdepay ! jpegdec ! fakesink silent=false");
        let mut cmd = Command::new("timeout");
        cmd.args(["40", "gst-launch-1.0", "-v"]).args(pipeline.split(' '));
        thread::spawn(move || output(&mut cmd))
    };
    let runs = our_clients(&url);
    let dir = TempDir::new(&format!("ours-recv-{}", runtime.name()));
    for run in &runs {
        check_run(run, &dir.0, &expected, "from our server");
    }
    assert_eq!(
        parse_ffprobe_counts(&ffprobe.join().unwrap()),
        [("mjpeg".to_owned(), FRAMES)]
    );
    let out = gstreamer.join().unwrap();
    assert_eq!(gst_fakesink_frames(&out), FRAMES);
    assert!(out.contains("Got EOS"), "GStreamer: no EOS");
    // Optimized Huffman tables cannot be sent (RFC 2435 implies the standard ones).
    let err = rtsp_toolkit_media::open(&media.0.join("optimized.mkv")).unwrap_err();
    assert!(err.to_string().contains("Huffman"), "{err}");
    server.shutdown();
}
