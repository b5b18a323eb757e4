//! Flags for daily use: `--show sdp,headers` (and `-v`), `--user` with the
//! password from `RTSP_PASSWORD` or `--password-file`, `--header`,
//! `--user-agent`, and `--tracks`. Against our server and GStreamer's.

use std::process::{Command, Stdio};
use std::time::Duration;

mod support;
use support::*;

/// `rtsp-toolkit ARGS` with extra environment variables, bounded in time.
fn run_env(args: &[&str], env: &[(&str, &str)], limit: Duration) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rtsp-toolkit"));
    cmd.args(args)
        .env_remove("RUST_LOG")
        .env_remove("RTSP_PASSWORD")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    wait_bounded(Proc(cmd.spawn().expect("run rtsp-toolkit")), limit)
}

#[test]
fn show_prints_the_sdp_and_every_header_and_v_does_too() {
    let serve = Serve::start();
    let url = serve.url("h264_aac.mp4");
    for show in [&["--show", "sdp,headers"][..], &["-v"][..]] {
        let mut args = vec![
            "probe",
            &url,
            "--frames",
            "3",
            "--header",
            "X-Test: yes",
            "--user-agent",
            "cam-check/7",
        ];
        args.extend_from_slice(show);
        let r = run(&args, Duration::from_secs(20));
        assert_eq!(r.code(), 0, "{r:?}");
        let out = &r.stdout;
        for needle in [
            "> OPTIONS rtsp://127.0.0.1:",
            "> CSeq: 1",
            "> User-Agent: cam-check/7",
            "> X-Test: yes",
            "> Accept: application/sdp",
            "< RTSP/1.0 200 OK",
            "< Content-Type: application/sdp",
            "> Transport: RTP/AVP/TCP;unicast;interleaved=0-1",
            "| v=0",
            "| m=video 0 RTP/AVP 96",
            "| a=rtpmap:97 MPEG4-GENERIC/44100/2",
        ] {
            assert!(out.contains(needle), "{show:?}: no {needle:?} in:\n{out}");
        }
    }
    // Only what was asked for.
    let r = run(
        &["probe", &url, "--frames", "3", "--show", "sdp"],
        Duration::from_secs(20),
    );
    assert_eq!(r.code(), 0, "{r:?}");
    assert!(
        r.stdout.contains("| m=video") && !r.stdout.contains("> CSeq"),
        "{}",
        r.stdout
    );
    let r = run(&["probe", &url, "--frames", "3"], Duration::from_secs(20));
    assert!(
        !r.stdout.contains("| m=video") && !r.stdout.contains("> CSeq"),
        "{}",
        r.stdout
    );
    // A header the session writes itself is a usage error.
    let r = run(&["probe", &url, "--header", "Session: 1"], Duration::from_secs(20));
    assert_eq!(r.code(), 2, "{r:?}");
    assert!(r.stderr.contains("Session"), "{}", r.stderr);
    let r = run(&["probe", &url, "--header", "no colon"], Duration::from_secs(20));
    assert_eq!(r.code(), 2, "{r:?}");
    serve.stop();
}

#[test]
fn user_with_password_from_the_environment_or_a_file() {
    let gst = rtsp_toolkit_conformance::peers::GstServer::start(Some(("bob", "S3CRETPW", "digest")));
    let url = gst.url("h264_aac.mp4");
    let dir = temp_dir("password-file");
    let file = dir.join("pw");
    std::fs::write(&file, "S3CRETPW\n").unwrap();
    let wrong = dir.join("wrong");
    std::fs::write(&wrong, "nope\n").unwrap();
    let file = file.to_str().unwrap();

    type Env<'a> = Vec<(&'a str, &'a str)>;
    let ok: [(Vec<&str>, Env); 2] = [
        (vec!["--user", "bob"], vec![("RTSP_PASSWORD", "S3CRETPW")]),
        (vec!["--user", "bob", "--password-file", file], vec![]),
    ];
    for (flags, env) in ok {
        let mut args = vec!["probe", &url, "--frames", "3", "--show", "headers", "-vvv"];
        args.extend_from_slice(&flags);
        let r = run_env(&args, &env, Duration::from_secs(30));
        assert_eq!(r.code(), 0, "{flags:?}: {r:?}");
        assert!(r.stdout.contains("> Authorization: Digest ***"), "{}", r.stdout);
        for text in [&r.stdout, &r.stderr] {
            assert!(!text.contains("S3CRETPW"), "password printed with {flags:?}:\n{text}");
            assert!(!text.contains("response=\""), "digest response printed with {flags:?}");
        }
    }
    // A wrong password is a 401 (exit 1); a missing one a usage error.
    let wrong = wrong.to_str().unwrap();
    let r = run_env(
        &["probe", &url, "--user", "bob", "--password-file", wrong],
        &[],
        Duration::from_secs(30),
    );
    assert_eq!(r.code(), 1, "{r:?}");
    assert!(r.stderr.contains("401"), "{}", r.stderr);
    let r = run_env(&["probe", &url, "--user", "bob"], &[], Duration::from_secs(30));
    assert_eq!(r.code(), 2, "{r:?}");
    assert!(r.stderr.contains("RTSP_PASSWORD"), "{}", r.stderr);
    // --user wins over the URL's credentials.
    let in_url = gst.url_with("mallory:wrong", "h264_aac.mp4");
    let r = run_env(
        &["probe", &in_url, "--user", "bob", "--frames", "3", "-q"],
        &[("RTSP_PASSWORD", "S3CRETPW")],
        Duration::from_secs(30),
    );
    assert_eq!(r.code(), 0, "{r:?}");
    let _ = std::fs::remove_dir_all(dir);
}

/// The track lines of a text report: `track N  KIND  CODEC`.
fn report_tracks(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("track ") && l.starts_with("  track"))
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn tracks_selects_any_set_of_tracks() {
    let serve = Serve::start();
    let url = serve.url("h265_aac.mkv");
    let cases: [(&str, &[&str]); 5] = [
        ("all", &["track 0 video", "track 1 audio"]),
        ("video", &["track 0 video"]),
        ("audio", &["track 0 audio"]),
        ("1", &["track 0 audio"]),
        ("1,0", &["track 0 video", "track 1 audio"]),
    ];
    for (sel, want) in cases {
        let r = run(
            &["probe", &url, "--tracks", sel, "--frames", "5", "-q"],
            Duration::from_secs(20),
        );
        assert_eq!(r.code(), 0, "--tracks {sel}: {r:?}");
        assert_eq!(report_tracks(&r.stdout), want, "--tracks {sel}:\n{}", r.stdout);
    }
    // The JSON report lists the same tracks; saved audio comes from the audio track.
    let dir = temp_dir("tracks");
    let wav = dir.join("a.wav");
    let r = run(
        &[
            "probe",
            &url,
            "--tracks",
            "all",
            "--frames",
            "10",
            "--json",
            "--save-audio",
            wav.to_str().unwrap(),
        ],
        Duration::from_secs(20),
    );
    assert_eq!(r.code(), 0, "{r:?}");
    let report = r.json().pop().unwrap();
    assert_eq!(report["tracks"].as_array().unwrap().len(), 2, "{report}");
    assert!(std::fs::metadata(&wav).unwrap().len() > 44, "audio was saved");

    // A track the SDP does not have is a clear session error.
    let r = run(&["probe", &url, "--tracks", "0,5"], Duration::from_secs(20));
    assert_eq!(r.code(), 1, "{r:?}");
    assert!(
        r.stderr.contains("track 5") && r.stderr.contains("2 media"),
        "{}",
        r.stderr
    );
    // Bad selections and conflicts are usage errors.
    for args in [vec!["--tracks", "x"], vec!["--tracks", "all", "--no-audio"]] {
        let mut a = vec!["probe", url.as_str()];
        a.extend_from_slice(&args);
        assert_eq!(run(&a, Duration::from_secs(20)).code(), 2, "{args:?}");
    }
    serve.stop();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn completions_for_every_shell() {
    for (shell, marker) in [
        ("bash", "_rtsp__toolkit()"),
        ("zsh", "#compdef rtsp-toolkit"),
        ("fish", "complete -c rtsp-toolkit"),
        ("elvish", "rtsp-toolkit"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let r = run(&["completions", shell], Duration::from_secs(20));
        assert_eq!(r.code(), 0, "{shell}: {r:?}");
        assert!(r.stdout.contains(marker), "{shell}: no {marker:?}");
        for flag in ["--tracks", "--show", "--user", "--password-file", "--transport"] {
            assert!(r.stdout.contains(flag.trim_start_matches('-')), "{shell}: no {flag}");
        }
    }
    // The bash script is valid bash.
    let script = run(&["completions", "bash"], Duration::from_secs(20)).stdout;
    let dir = temp_dir("completions");
    let path = dir.join("rtsp-toolkit.bash");
    std::fs::write(&path, script).unwrap();
    let ok = Command::new("bash").arg("-n").arg(&path).status().expect("bash");
    assert!(ok.success(), "bash -n rejects the completion script");
    assert_eq!(run(&["completions", "tcsh"], Duration::from_secs(20)).code(), 2);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn load_json_is_interval_lines_and_a_report() {
    let serve = Serve::start();
    let url = format!(
        "rtsp://user:S3CRETPW@127.0.0.1:{}/h264_aac.mp4?play_count=0",
        serve.port
    );
    let r = run(
        &[
            "load",
            &url,
            "--sessions",
            "2",
            "--duration",
            "1.5",
            "--report-every",
            "1",
            "--json",
        ],
        Duration::from_secs(30),
    );
    assert!(
        !r.stdout.contains("S3CRETPW") && !r.stderr.contains("S3CRETPW"),
        "{r:?}"
    );
    let lines = r.json();
    let (report, intervals) = lines.split_last().expect("output");
    assert!(!intervals.is_empty(), "{r:?}");
    for i in intervals {
        assert_eq!(i["type"], "interval", "{i}");
        for key in [
            "elapsed_s",
            "sessions",
            "ended",
            "errors",
            "lost",
            "seq_gaps",
            "max_gap_ms",
        ] {
            assert!(i[key].is_number(), "{key} in {i}");
        }
        assert!(i["holding_real_time"].is_null() || i["holding_real_time"].is_u64());
    }
    assert_eq!(report["type"], "load_report", "{report}");
    assert_eq!(report["sessions"], 2);
    assert_eq!(report["transport"], "tcp");
    assert_eq!(report["setup_latency_ms"]["reached_play"], 2, "{report}");
    assert_eq!(report["error_count"], 0, "{report}");
    assert_eq!(report["continuity"]["seq_gaps"], 0, "{report}");
    assert!(report["receiver_reports"]["sent"].as_u64().unwrap() > 0, "{report}");
    assert!(
        report["url"].as_str().unwrap().starts_with("rtsp://127.0.0.1:"),
        "{report}"
    );
    assert!(
        report["real_time_fraction"]["median"].as_f64().unwrap() > 0.5,
        "{report}"
    );
    // The exit status is the report's verdict.
    let passed = report["passed"].as_bool().unwrap();
    assert_eq!(r.code() == 0, passed, "{r:?}");
    serve.stop();
}

#[test]
fn serve_json_is_a_server_line_then_one_line_per_event() {
    let dir = media_dir();
    let mut p = spawn(&["serve", "--dir", dir.to_str().unwrap(), "--port", "0", "--json"]);
    let rx = lines(p.0.stdout.take().unwrap());
    let next = |what: &str| -> serde_json::Value {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("serve --json printed no {what}"));
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{what}: {e}: {line}"))
    };
    let first = next("server line");
    assert_eq!(first["type"], "server", "{first}");
    let url = first["url"].as_str().unwrap().to_owned();
    assert!(first["urls"].as_array().unwrap().len() >= 7, "{first}");
    let r = run(
        &["probe", &format!("{url}h264_aac.mp4"), "--frames", "3", "-q"],
        Duration::from_secs(20),
    );
    assert_eq!(r.code(), 0, "{r:?}");
    let mut seen = Vec::new();
    loop {
        let e = next("event");
        assert!(e["t_s"].as_f64().unwrap() >= 0.0, "{e}");
        let kind = e["type"].as_str().unwrap().to_owned();
        if kind == "request" {
            assert!(e["peer"].as_str().unwrap().starts_with("127.0.0.1:"), "{e}");
            seen.push(format!("{} {}", e["method"].as_str().unwrap(), e["status"]));
        } else {
            seen.push(kind.clone());
        }
        if kind == "closed" {
            assert_eq!(e["reason"]["kind"], "teardown", "{e}");
            break;
        }
    }
    assert_eq!(
        seen,
        [
            "OPTIONS 200",
            "DESCRIBE 200",
            "SETUP 200",
            "SETUP 200",
            "PLAY 200",
            "session_started",
            "TEARDOWN 200",
            "closed"
        ]
    );
    // SIGTERM: a last line, then exit 0.
    let pid = p.0.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert_eq!(next("stopping line")["type"], "stopping");
    let run = wait_bounded(p, Duration::from_secs(10));
    assert_eq!(run.code(), 0, "{run:?}");
}
