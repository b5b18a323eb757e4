//! Third-party peers on loopback: GStreamer's rtsp-server serving
//! `fixtures/media` (see `scripts/peers/`).

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A free port on 127.0.0.1 (bound, then released for a peer to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a loopback port")
}

/// GStreamer's rtsp-server serving `fixtures/media` on 127.0.0.1; killed on drop.
#[derive(Debug)]
pub struct GstServer {
    child: Child,
    /// The port it listens on.
    pub port: u16,
}

impl GstServer {
    /// Starts the server, optionally with `(user, password, "basic" | "digest")`
    /// authentication. Panics (it is for tests) if it does not start within 30 s.
    pub fn start(auth: Option<(&str, &str, &str)>) -> GstServer {
        GstServer::start_with(auth, &[])
    }

    /// [`GstServer::start`] with more arguments for the script, such as
    /// `["--protocols", "tcp"]` (a server that refuses UDP with 461) or
    /// `["--multicast"]`.
    pub fn start_with(auth: Option<(&str, &str, &str)>, extra: &[&str]) -> GstServer {
        GstServer::start_on(None, auth, extra)
    }

    /// [`GstServer::start_with`] on `port` (`None`: a free one), e.g. to
    /// start it again where a client knew it.
    pub fn start_on(port: Option<u16>, auth: Option<(&str, &str, &str)>, extra: &[&str]) -> GstServer {
        let script = crate::repo_root().join("scripts/peers/gst-rtsp-server.py");
        // Debian's python3 has the `gi` bindings; a pyenv python on PATH does not.
        let python = if std::path::Path::new("/usr/bin/python3").exists() {
            "/usr/bin/python3"
        } else {
            "python3"
        };
        for _attempt in 0..3 {
            let port = port.unwrap_or_else(free_port);
            let mut cmd = Command::new(python);
            cmd.arg(&script)
                .arg("--dir")
                .arg(crate::media_dir())
                .arg("--port")
                .arg(port.to_string());
            if let Some((user, pass, kind)) = auth {
                cmd.args(["--user", user, "--password", pass, "--auth", kind]);
            }
            cmd.args(extra);
            let mut child = cmd
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("start the GStreamer RTSP server (run scripts/peers/install.sh)");
            let stdout = child.stdout.take().expect("piped stdout");
            let (tx, rx) = mpsc::channel();
            // Ends when the child's stdout closes, i.e. when it is killed.
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if line.trim() == "ready" {
                        let _ = tx.send(());
                    }
                }
            });
            if rx.recv_timeout(Duration::from_secs(30)).is_ok() {
                // `ready` is printed after attach; give the socket a moment to listen.
                for _ in 0..50 {
                    if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                        return GstServer { child, port };
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("the GStreamer RTSP server did not start (see stderr above)");
    }

    /// `rtsp://127.0.0.1:PORT/NAME`.
    pub fn url(&self, name: &str) -> String {
        format!("rtsp://127.0.0.1:{}/{name}", self.port)
    }

    /// `rtsp://USERINFO@127.0.0.1:PORT/NAME`.
    pub fn url_with(&self, userinfo: &str, name: &str) -> String {
        format!("rtsp://{userinfo}@127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for GstServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `ffprobe -rtsp_transport TRANSPORT -count_frames` of `url` (plus `extra`
/// arguments), printing `codec,frames` per stream; read the output with
/// [`parse_ffprobe_counts`].
pub fn ffprobe_count_frames(url: &str, transport: &str, extra: &[&str]) -> Command {
    let mut c = Command::new("ffprobe");
    c.args(["-v", "error", "-rtsp_transport", transport, "-count_frames"])
        .args(extra)
        .args([
            "-show_entries",
            "stream=codec_name,nb_read_frames",
            "-of",
            "csv=p=0",
            url,
        ]);
    c
}

/// (codec, frames) per stream, from [`ffprobe_count_frames`]'s output.
pub fn parse_ffprobe_counts(out: &str) -> Vec<(String, usize)> {
    out.lines()
        .filter_map(|l| l.split_once(','))
        .map(|(c, n)| (c.trim().to_owned(), n.trim().parse().unwrap_or(0)))
        .collect()
}

/// Whether a `gst-launch-1.0` run ended well: it exited 0, or it failed
/// only in GStreamer's own shutdown race after the end of the stream.
///
/// The race (GStreamer 1.22's `gstrtspsrc.c`, not the server): when
/// gst-launch stops the pipeline after EOS, rtspsrc queues PAUSE, then
/// TEARDOWN (`CMD_CLOSE`), on its task thread; when the thread is already
/// sending the PAUSE (or when the 100 ms `teardown-timeout` passes while it
/// sends the TEARDOWN), the next command flushes the connection, which
/// cancels the write, and `gstrtspconnection.c` reports a write that
/// failed before its first byte as `GST_RTSP_EEOF`: gst-launch prints
/// "Could not send message. (Received end-of-file)" and exits 1 although
/// every frame and the EOS came. Under load it happens about once in 50
/// runs, on any server. Such a run counts as ended well when its output
/// has `Got EOS` and every error in it is that one; the caller still checks
/// the frames.
pub fn gst_ended_well(status: std::process::ExitStatus, stdout: &str, stderr: &str) -> bool {
    if status.success() {
        return true;
    }
    let all = format!("{stdout}\n{stderr}");
    let errors: Vec<&str> = all.lines().filter(|l| l.starts_with("ERROR:")).collect();
    all.contains("Got EOS")
        && !errors.is_empty()
        && errors.iter().all(|l| l.contains("Could not send message"))
        && all.contains("Received end-of-file")
}

/// Buffers that reached the fakesink, from `gst-launch-1.0 -v ... ! fakesink
/// silent=false` output: the frames GStreamer received.
pub fn gst_fakesink_frames(out: &str) -> usize {
    out.lines()
        .filter(|l| l.contains("fakesink0") && l.contains("chain"))
        .count()
}

/// What `ffprobe -count_frames` counts in each fixture of `fixtures/media`
/// served whole: (file, [(ffprobe codec name, frames)]).
pub const FFPROBE_COUNTS: &[(&str, &[(&str, usize)])] = &[
    ("h264_aac.mp4", &[("h264", 125), ("aac", 216)]),
    ("h264_bframes.mp4", &[("h264", 125), ("aac", 216)]),
    ("h265_aac.mkv", &[("hevc", 125), ("aac", 217)]),
    ("h265.mp4", &[("hevc", 125)]),
    ("tone.aac", &[("aac", 217)]),
    ("pcm_16k_mono.wav", &[("pcm_alaw", 250)]),
];

/// Runs `cmd` until it ends or `limit` passes (then it is killed): its stdout
/// and stderr, whatever its exit status (for peers stopped by time, such as
/// `gst-launch-1.0` on a live stream).
pub fn run_bounded(mut cmd: Command, limit: Duration) -> (String, String) {
    use std::io::Read;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the peer");
    let read = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = read(Box::new(child.stdout.take().expect("piped stdout")));
    let err = read(Box::new(child.stderr.take().expect("piped stderr")));
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    (out.join().unwrap_or_default(), err.join().unwrap_or_default())
}

/// `gst-launch-1.0 -v` of GStreamer's `rtspsrc` over TCP on `url`, its H.264
/// track depayloaded and parsed into a `fakesink` that prints every buffer
/// (count them with [`gst_fakesink_frames`]).
pub fn gst_rtspsrc_h264(url: &str) -> Command {
    let mut c = Command::new("gst-launch-1.0");
    c.arg("-v").args(
        format!("rtspsrc location={url} protocols=tcp name=s s. ! rtph264depay ! h264parse ! fakesink silent=false")
            .split(' '),
    );
    c
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;

    use super::gst_ended_well;

    #[test]
    fn only_the_shutdown_race_after_eos_ends_well() {
        let (ok, failed) = (ExitStatus::from_raw(0), ExitStatus::from_raw(256));
        let eos = "Got EOS from element \"pipeline0\".\nExecution ended after 0:00:05.1\n";
        let race = "ERROR: from element /GstPipeline:pipeline0/GstRTSPSrc:s: Could not send message.\n\
                    Additional debug info:\n../gst/rtsp/gstrtspsrc.c(6766): gst_rtspsrc_try_send (): \
                    /GstPipeline:pipeline0/GstRTSPSrc:s:\nReceived end-of-file\n";
        assert!(gst_ended_well(ok, "", ""));
        assert!(gst_ended_well(failed, eos, race));
        assert!(!gst_ended_well(failed, "", race), "no EOS: the stream did not end");
        assert!(!gst_ended_well(failed, eos, ""), "another failure");
        let other = format!("{race}ERROR: from element /GstPipeline:pipeline0/GstRTSPSrc:s: Unauthorized\n");
        assert!(!gst_ended_well(failed, eos, &other), "another error too");
        let refused = race.replace("Received end-of-file", "Connection refused");
        assert!(!gst_ended_well(failed, eos, &refused));
    }
}
