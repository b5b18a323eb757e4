//! A server process that is stopped for a while (SIGSTOP, as when the machine
//! descheduled it) catches up: by default it sends what fell due at once;
//! with `--max-lag 0.5` at most 0.5 s of it, then real time again (and says
//! so on stderr). Either way sequence numbers and timestamps are continuous
//! and our probe receives the stream across the stall without loss or error.
//! And a probe stopped for longer than its timeout must take the data waiting
//! in its socket when it resumes, not report a timeout.

use std::process::Command;
use std::thread;
use std::time::Duration;

use serde_json::Value;

mod support;
use support::*;

/// Sends a signal with the shell's `kill` (present on every Debian, unlike procps).
fn signal(pid: u32, sig: &str) {
    let ok = Command::new("sh")
        .args(["-c", &format!("kill -{sig} {pid}")])
        .status()
        .expect("sh")
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

/// Resumes a stopped process when dropped (a failing test must not leave it stopped).
struct Resume(u32);

impl Drop for Resume {
    fn drop(&mut self) {
        signal(self.0, "CONT");
    }
}

/// After `after`, stops the process for `stopped`, then resumes it.
fn stop_for(pid: u32, after: Duration, stopped: Duration) {
    thread::sleep(after);
    signal(pid, "STOP");
    let _resume = Resume(pid);
    thread::sleep(stopped);
}

/// Serves with `extra` options, stops the server 2 s into a 6 s probe for
/// 2 s (under the probe's 4 s timeout), checks that nothing was lost and
/// gives the seconds of audio that arrived within 200 ms after the stall,
/// and the server's stderr.
fn server_stopped_for_two_seconds(extra: &[&str]) -> (f64, String) {
    let serve = Serve::start_with(extra);
    let probe = spawn(&[
        "probe",
        &serve.url("h264_aac.mp4?play_count=0"),
        "--duration",
        "6",
        "--json",
    ]);
    stop_for(serve.pid(), Duration::from_secs(2), Duration::from_secs(2));
    let r = wait_bounded(probe, Duration::from_secs(30));
    let server_log = serve.stop();

    assert_eq!(r.code(), 0, "stderr: {}", r.stderr);
    let events = r.json();
    let report = events.last().unwrap();
    assert_eq!(report["type"], "report");
    assert!(report["error"].is_null(), "{report}");
    assert_eq!(report["stopped_by"], "duration");

    // Audio RTP (track 1): one AAC frame of 1024 samples at 44.1 kHz per packet.
    let audio: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "rtp" && e["track"] == 1)
        .collect();
    assert!(audio.len() > 100, "{} audio packets", audio.len());
    let tick = |e: &Value| e["recv_tick_s"].as_f64().unwrap();
    // Nothing lost: consecutive sequence numbers, timestamps a frame apart
    // (the 5 s file loops: its last frame may be shorter).
    for w in audio.windows(2) {
        let (a, b) = (w[0], w[1]);
        let seq = |e: &Value| e["seq"].as_u64().unwrap() as u16;
        assert_eq!(seq(b), seq(a).wrapping_add(1), "{a} {b}");
        let step = (b["timestamp"].as_u64().unwrap() as u32).wrapping_sub(a["timestamp"].as_u64().unwrap() as u32);
        assert!((1..=1024).contains(&step), "timestamp step {step}: {a} {b}");
    }
    assert!(!events.iter().any(|e| e["type"] == "loss"), "no loss event");

    // The stall is there: a gap of more than 1.5 s between two packets.
    let gap = audio
        .windows(2)
        .position(|w| tick(w[1]) - tick(w[0]) > 1.5)
        .unwrap_or_else(|| panic!("no stall seen; the probe saw packets all along"));
    let resumed_at = tick(audio[gap + 1]);
    let burst = audio[gap + 1..].iter().filter(|e| tick(e) <= resumed_at + 0.2).count();
    (burst as f64 * 1024.0 / 44100.0, server_log)
}

#[test]
fn a_stopped_server_catches_up_in_one_burst_without_loss() {
    // By default (max_lag 5 s) the 2 s that fell due go out at once.
    let (burst_s, log) = server_stopped_for_two_seconds(&[]);
    assert!(burst_s >= 1.5, "{burst_s:.2} s of audio within 200 ms of the resume");
    assert!(!log.contains("fell behind"), "{log}");
}

#[test]
fn with_max_lag_a_stopped_server_bursts_only_that_much() {
    // At most the 0.5 s it may catch up plus those 200 ms (a burst of the
    // whole stall would be 2 s of audio, about 86 frames).
    let (burst_s, log) = server_stopped_for_two_seconds(&["--max-lag", "0.5"]);
    assert!(burst_s <= 1.0, "{burst_s:.2} s of audio within 200 ms of the resume");
    assert!(
        log.contains("fell behind its schedule"),
        "the server says it skipped ahead: {log}"
    );
}

/// The other side: our probe stopped for 5 s, longer than its 4 s timeout.
/// The server kept sending (the socket buffers hold those seconds), so the
/// data waiting when it resumes must count before "no data within the
/// timeout" does: no timeout, no loss.
#[test]
fn a_stopped_client_takes_the_waiting_data_before_its_timeout() {
    let serve = Serve::start();
    let probe = spawn(&[
        "probe",
        &serve.url("h264_aac.mp4?play_count=0"),
        "--duration",
        "8",
        "--json",
    ]);
    stop_for(probe.0.id(), Duration::from_secs(2), Duration::from_secs(5));
    let r = wait_bounded(probe, Duration::from_secs(30));
    assert_eq!(r.code(), 0, "stderr: {}", r.stderr);
    let events = r.json();
    let report = events.last().unwrap();
    assert!(report["error"].is_null(), "{report}");
    assert_eq!(report["stopped_by"], "duration");
    assert!(!events.iter().any(|e| e["type"] == "loss"), "no loss event");
    // The stall is visible in the receive ticks.
    let ticks: Vec<f64> = events
        .iter()
        .filter(|e| e["type"] == "rtp")
        .map(|e| e["recv_tick_s"].as_f64().unwrap())
        .collect();
    assert!(
        ticks.windows(2).any(|w| w[1] - w[0] > 4.0),
        "the probe was stopped for 5 s"
    );
}
