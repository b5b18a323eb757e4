//! `rtsp-toolkit view` (cargo feature `viewer`) under a virtual X server: the window shows moving
//! video, closing it (WM_DELETE_WINDOW, as a window manager sends) or Ctrl-C sends TEARDOWN and
//! exits 0. Audio plays into ALSA's null device (a private `.asoundrc`), so no sound card is
//! needed. Needs Xvfb, xwd, ImageMagick's convert and Debian's python3 with python3-xlib
//! (scripts/peers/install.sh).
#![cfg(feature = "viewer")]

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use support::{drain, read_png, temp_dir, variance, wait_bounded, Proc, BIN};

/// Finds the viewer's window by its title and waits for it (`wait`), or asks it to close
/// (`close`), as a window manager does.
const XHELPER: &str = r#"
import sys, time
from Xlib import display, X, protocol
d = display.Display(sys.argv[1])
def find(w):
    name = w.get_wm_name()
    if isinstance(name, str) and name.startswith("rtsp-toolkit view"):
        return w
    for c in w.query_tree().children:
        r = find(c)
        if r:
            return r
deadline = time.time() + 30
w = find(d.screen().root)
while w is None and time.time() < deadline:
    time.sleep(0.2)
    w = find(d.screen().root)
if w is None:
    sys.exit("no viewer window")
if sys.argv[2] == "close":
    proto = d.intern_atom("WM_PROTOCOLS")
    delete = d.intern_atom("WM_DELETE_WINDOW")
    w.send_event(protocol.event.ClientMessage(window=w, client_type=proto, data=(32, [delete, X.CurrentTime, 0, 0, 0])))
    d.flush()
"#;

/// Xvfb on a display number it picks itself (`-displayfd`), killed on drop.
struct Xvfb {
    _proc: Proc,
    display: String,
}

impl Xvfb {
    fn start() -> Xvfb {
        let mut child = Proc(
            Command::new("Xvfb")
                .args(["-displayfd", "1", "-screen", "0", "1024x768x24", "-nolisten", "tcp"])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("Xvfb runs (apt: xvfb; scripts/peers/install.sh)"),
        );
        let mut line = String::new();
        BufReader::new(child.0.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let n: u32 = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("Xvfb -displayfd gave {line:?}"));
        Xvfb {
            _proc: child,
            display: format!(":{n}"),
        }
    }

    fn xhelper(&self, what: &str) -> Result<(), String> {
        let out = Command::new("/usr/bin/python3")
            .args(["-c", XHELPER, &self.display, what])
            .output()
            .expect("Debian's python3 with python3-xlib");
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("{what}: {}", String::from_utf8_lossy(&out.stderr)))
        }
    }

    /// Waits for the viewer's window; on failure says whether the viewer is
    /// still running and what it wrote on stderr.
    fn wait_for_window(&self, child: &mut Proc, stderr: &mpsc::Receiver<String>) {
        if let Err(e) = self.xhelper("wait") {
            let status = child.0.try_wait().unwrap();
            if status.is_none() {
                let _ = child.0.kill();
            }
            let err = stderr.recv_timeout(Duration::from_secs(2)).unwrap_or_default();
            panic!("{e}\nviewer: {status:?} (None: was still running)\nstderr:\n{err}");
        }
    }

    /// The whole screen as a PNG.
    fn screenshot(&self, path: &Path) -> (u32, u32, Vec<u8>, usize) {
        let cmd = format!(
            "xwd -root -silent -display {} | convert xwd:- png24:{}",
            self.display,
            path.display()
        );
        let ok = Command::new("sh").args(["-c", &cmd]).status().expect("sh").success();
        assert!(ok, "{cmd}");
        read_png(&std::fs::read(path).unwrap())
    }
}

/// Starts the viewer on `x` with the audio going to ALSA's null device.
fn viewer(x: &Xvfb, home: &Path, args: &[&str]) -> Proc {
    std::fs::write(home.join(".asoundrc"), "pcm.!default { type null }\n").unwrap();
    Proc(
        Command::new(BIN)
            .arg("view")
            .args(args)
            .env("DISPLAY", &x.display)
            .env("HOME", home)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run rtsp-toolkit"),
    )
}

#[test]
fn window_shows_moving_video_and_closes_with_teardown() {
    let x = Xvfb::start();
    let dir = temp_dir("view");
    let mut child = viewer(&x, &dir, &[]);
    let err = drain(child.0.stderr.take().unwrap());
    x.wait_for_window(&mut child, &err);
    // A few seconds of playing (longer on a loaded machine), then two shots a second apart.
    thread::sleep(Duration::from_secs(3));
    let start = Instant::now();
    let (w, h, first, bpp) = loop {
        let shot = x.screenshot(&dir.join("view-1.png"));
        let v = variance(&shot.2, shot.3);
        if v > 1000.0 {
            break shot;
        }
        if start.elapsed() > Duration::from_secs(15) || child.0.try_wait().unwrap().is_some() {
            let stderr = err.recv_timeout(Duration::from_secs(2)).unwrap_or_default();
            panic!(
                "the screen stays blank (variance {v}); see {}\nstderr: {stderr}",
                dir.display()
            );
        }
        thread::sleep(Duration::from_millis(500));
    };
    thread::sleep(Duration::from_secs(1));
    let (_, _, second, _) = x.screenshot(&dir.join("view-2.png"));
    assert_eq!((w, h), (1024, 768));
    let changed = first
        .chunks_exact(bpp)
        .zip(second.chunks_exact(bpp))
        .filter(|(a, b)| a[..3] != b[..3])
        .count();
    assert!(changed > 1000, "the picture does not move ({changed} pixels changed)");

    let start = Instant::now();
    x.xhelper("close").unwrap();
    let r = wait_bounded(child, Duration::from_secs(20));
    let stderr = err.recv_timeout(Duration::from_secs(5)).unwrap_or_default();
    assert_eq!(r.status.code(), Some(0), "stdout:\n{}\nstderr:\n{stderr}", r.stdout);
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(r.stdout.contains("TEARDOWN  200 OK"), "{}", r.stdout);
    assert!(r.stdout.contains("closed    stopped (TEARDOWN)"), "{}", r.stdout);
    assert!(!stderr.contains("error"), "{stderr}");
}

#[test]
fn ctrl_c_tears_down_and_exits_0() {
    let x = Xvfb::start();
    let dir = temp_dir("view-sigint");
    let mut child = viewer(&x, &dir, &["--file", "h265_aac.mkv", "--mute"]);
    let err = drain(child.0.stderr.take().unwrap());
    x.wait_for_window(&mut child, &err);
    thread::sleep(Duration::from_secs(2));
    let out = drain(child.0.stdout.take().unwrap());
    let ok = Command::new("kill")
        .args(["-INT", &child.0.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "no exit after Ctrl-C");
        thread::sleep(Duration::from_millis(50));
    };
    let stdout = out.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("TEARDOWN  200 OK"), "{stdout}");
}
