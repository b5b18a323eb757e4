//! Scale-out without a cluster of our own (docs/CLI.md, "Several servers behind a load balancer"): two
//! `serve` processes behind HAProxy in TCP mode on loopback, `load` through it. The sessions spread over
//! both instances (each one's `--metrics` counts its own), and killing one mid-run loses only its sessions:
//! the others keep real time, and new sessions go to the instance that is left.
//!
//! Needs `haproxy` (Debian package, installed by scripts/peers/install.sh).

mod support;

use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{run, sample, scrape, serve_with_metrics, spawn, temp_dir, wait_bounded, Proc};

const LIVE: &str = r#"rtsp_toolkit_sessions{path="h264_aac.mp4",transport="tcp"}"#;

/// HAProxy in TCP mode on a free loopback port, round robin over `backends`, with health checks so that a
/// dead instance is taken out. Returns the process and the port.
fn haproxy(backends: &[u16]) -> (Proc, u16) {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let servers: String = backends
        .iter()
        .enumerate()
        .map(|(i, p)| format!("  server s{i} 127.0.0.1:{p} check inter 500ms fall 1 rise 1\n"))
        .collect();
    let config = format!(
        "global\n  maxconn 512\ndefaults\n  mode tcp\n  timeout connect 2s\n  timeout client 60s\n  \
         timeout server 60s\nfrontend rtsp\n  bind 127.0.0.1:{port}\n  default_backend serve\nbackend serve\n  \
         balance roundrobin\n{servers}"
    );
    let dir = temp_dir("haproxy");
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, config).unwrap();
    let child = Command::new("haproxy")
        .args(["-db", "-f", path.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("haproxy (scripts/peers/install.sh installs it)");
    let proc = Proc(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "haproxy did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    (proc, port)
}

#[test]
fn sessions_spread_over_two_servers_and_a_killed_one_loses_only_its_own() {
    let (a, a_port, a_metrics) = serve_with_metrics(&[]);
    let (b, b_port, b_metrics) = serve_with_metrics(&[]);
    let (_haproxy, port) = haproxy(&[a_port, b_port]);
    let url = format!("rtsp://127.0.0.1:{port}/h264_aac.mp4?play_count=0");
    let sessions = 8;
    let load = spawn(&[
        "load",
        &url,
        "--sessions",
        &sessions.to_string(),
        "--ramp",
        "20",
        "--duration",
        "8",
        "--json",
    ]);
    // All sessions playing, spread over both instances (each instance counts its own).
    let deadline = Instant::now() + Duration::from_secs(20);
    let (on_a, on_b) = loop {
        let on_a = sample(&scrape(&a_metrics), LIVE).unwrap_or(0.0) as usize;
        let on_b = sample(&scrape(&b_metrics), LIVE).unwrap_or(0.0) as usize;
        if on_a + on_b == sessions {
            break (on_a, on_b);
        }
        assert!(
            Instant::now() < deadline,
            "{on_a} + {on_b} sessions of {sessions} playing"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(on_a >= 2 && on_b >= 2, "not spread: {on_a} on one, {on_b} on the other");
    // One instance dies mid-run.
    drop(a);
    let r = wait_bounded(load, Duration::from_secs(30));
    let report = r
        .json()
        .into_iter()
        .find(|v| v["type"] == "load_report")
        .expect("load's report");
    // Its sessions ended with an error; the other instance's held real time to the end.
    assert_eq!(report["error_count"], on_a, "{report}");
    assert_eq!(report["holding_real_time"], on_b, "{report}");
    assert_eq!(report["continuity"]["sessions_with_discontinuities"], 0, "{report}");
    assert_eq!(r.code(), 1, "load fails: some sessions were lost");
    // The balancer took the dead instance out: a new session plays, on the one left.
    let before = sample(
        &scrape(&b_metrics),
        r#"rtsp_toolkit_sessions_started_total{path="h264_aac.mp4",transport="tcp"}"#,
    );
    let probe = run(
        &["probe", &url.replace("?play_count=0", ""), "--frames", "10", "--quiet"],
        Duration::from_secs(20),
    );
    assert_eq!(probe.code(), 0, "{probe:?}");
    let after = sample(
        &scrape(&b_metrics),
        r#"rtsp_toolkit_sessions_started_total{path="h264_aac.mp4",transport="tcp"}"#,
    );
    assert_eq!(after, before.map(|n| n + 1.0));
    drop(b);
}
