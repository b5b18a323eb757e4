//! `rtsp-toolkit serve --metrics ADDR`: the Prometheus endpoint shows live
//! sessions by path and transport while they play, what they sent, and the
//! closes; it answers nothing but `GET`/`HEAD /metrics`.

mod support;

use std::time::{Duration, Instant};

use support::{drain, http, lines, media_dir, sample, scrape, serve_with_metrics, spawn};

#[test]
fn metrics_show_live_sessions_what_they_sent_and_how_they_ended() {
    let (_serve, port, addr) = serve_with_metrics(&[]);
    let url = format!("rtsp://127.0.0.1:{port}/h264_aac.mp4?play_count=0");
    let tcp = spawn(&["probe", &url, "--duration", "30", "--quiet"]);
    let udp = spawn(&["probe", &url, "--transport", "udp", "--duration", "30", "--quiet"]);
    let tcp_l = r#"{path="h264_aac.mp4",transport="tcp"}"#;
    let udp_l = r#"{path="h264_aac.mp4",transport="udp"}"#;
    // Both playing, and a progress report (every 5 s) counted their packets.
    let deadline = Instant::now() + Duration::from_secs(25);
    let live = loop {
        let s = scrape(&addr);
        let playing = sample(&s, &format!("rtsp_toolkit_sessions{tcp_l}")) == Some(1.0)
            && sample(&s, &format!("rtsp_toolkit_sessions{udp_l}")) == Some(1.0);
        let counted = sample(&s, &format!("rtsp_toolkit_rtp_packets_sent_total{tcp_l}")).unwrap_or(0.0) > 0.0
            && sample(&s, &format!("rtsp_toolkit_rtp_packets_sent_total{udp_l}")).unwrap_or(0.0) > 0.0;
        if playing && counted {
            break s;
        }
        assert!(Instant::now() < deadline, "no live sessions counted:\n{s}");
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(sample(&live, "rtsp_toolkit_connections"), Some(2.0), "{live}");
    assert_eq!(
        sample(&live, r#"rtsp_toolkit_requests_total{method="PLAY",status="200"}"#),
        Some(2.0)
    );
    assert!(sample(&live, &format!("rtsp_toolkit_rtp_payload_bytes_sent_total{tcp_l}")).unwrap() > 10_000.0);
    // The clients stop (killed: their connections close without TEARDOWN). The TCP session ends with its
    // connection; the UDP one plays on without it (detached) until it times out, and still counts.
    drop((tcp, udp));
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let s = scrape(&addr);
        if sample(&s, &format!("rtsp_toolkit_sessions{tcp_l}")) == Some(0.0) {
            break s;
        }
        assert!(Instant::now() < deadline, "session not ended:\n{s}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        sample(&after, &format!("rtsp_toolkit_sessions{udp_l}")),
        Some(1.0),
        "{after}"
    );
    assert_eq!(sample(&after, "rtsp_toolkit_connections"), Some(1.0), "{after}");
    // The last report counted everything sent: at least what the live scrape showed.
    let series = format!("rtsp_toolkit_rtp_packets_sent_total{tcp_l}");
    assert!(sample(&after, &series) >= sample(&live, &series), "{after}");
    for l in [tcp_l, udp_l] {
        assert_eq!(
            sample(&after, &format!("rtsp_toolkit_sessions_started_total{l}")),
            Some(1.0)
        );
    }
    assert_eq!(
        sample(&after, r#"rtsp_toolkit_connections_closed_total{reason="peer_closed"}"#),
        Some(1.0),
        "{after}"
    );
}

#[test]
fn the_endpoint_answers_only_get_and_head_of_metrics() {
    let (_serve, _port, addr) = serve_with_metrics(&[]);
    let head = http(&addr, "HEAD /metrics HTTP/1.1\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.ends_with("\r\n\r\n"), "HEAD has no body: {head}");
    assert!(http(&addr, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n").starts_with("HTTP/1.1 405 "));
    assert!(http(&addr, "GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 "));
    assert!(http(&addr, "NOT HTTP\r\n\r\n").starts_with("HTTP/1.1 400 "));
    let big = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n", "a".repeat(9000));
    assert!(http(&addr, &big).starts_with("HTTP/1.1 431 "));
    // Still serving.
    scrape(&addr);
}

#[test]
fn json_server_line_names_the_metrics_url_and_progress_events_follow() {
    let media = media_dir();
    let mut p = spawn(&[
        "serve",
        "--dir",
        media.to_str().unwrap(),
        "--port",
        "0",
        "--metrics",
        "127.0.0.1:0",
        "--json",
    ]);
    let _stderr = drain(p.0.stderr.take().unwrap());
    let out = lines(p.0.stdout.take().unwrap());
    let first: serde_json::Value = serde_json::from_str(&out.recv_timeout(Duration::from_secs(10)).unwrap()).unwrap();
    assert_eq!(first["type"], "server");
    let metrics = first["metrics_url"].as_str().unwrap();
    assert!(
        metrics.starts_with("http://127.0.0.1:") && metrics.ends_with("/metrics"),
        "{first}"
    );
    let url = format!("{}h264_aac.mp4", first["url"].as_str().unwrap());
    let r = support::run(&["probe", &url, "--frames", "20", "--quiet"], Duration::from_secs(20));
    assert_eq!(r.code(), 0, "{r:?}");
    // The session's last progress report comes just before its connection's `closed`.
    let mut types = Vec::new();
    while let Ok(line) = out.recv_timeout(Duration::from_secs(5)) {
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let t = v["type"].as_str().unwrap().to_owned();
        if t == "progress" {
            assert_eq!(
                (v["path"].as_str(), v["transport"].as_str()),
                (Some("h264_aac.mp4"), Some("tcp"))
            );
            assert!(v["packets"].as_u64().unwrap() > 0, "{v}");
        }
        if t == "session_started" {
            assert_eq!(v["transport"], "tcp");
        }
        let closed = t == "closed";
        types.push(t);
        if closed {
            break;
        }
    }
    let n = types.len();
    assert!(
        n >= 2 && types[n - 2] == "progress" && types[n - 1] == "closed",
        "{types:?}"
    );
}
