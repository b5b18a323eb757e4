//! `serve --profile PATH=FILE`: a fault profile file gives every session of a path the camera simulator's faults
//! without a query in its URL (docs/SIMULATOR.md, "Profile files"): the drops of the profile happen (the
//! server's `fault` lines, the client's loss), another path plays clean, a URL with faults of its own takes
//! those, and a bad profile is a usage error naming its line.

mod support;

use std::time::Duration;

use support::{drain, lines, media_dir, run, spawn, temp_dir};

#[test]
fn a_profile_drops_packets_of_its_path_only() {
    let dir = temp_dir("profile");
    let profile = dir.join("lossy.toml");
    std::fs::write(&profile, "# a lossy camera\nseed = 3\ndrop = 0.1\n").unwrap();
    let media = media_dir();
    let spec = format!("h264_aac.mp4={}", profile.display());
    let mut p = spawn(&[
        "serve",
        "--dir",
        media.to_str().unwrap(),
        "--port",
        "0",
        "--json",
        "--profile",
        &spec,
    ]);
    let _err = drain(p.0.stderr.take().unwrap());
    let out = lines(p.0.stdout.take().unwrap());
    let first: serde_json::Value = serde_json::from_str(&out.recv_timeout(Duration::from_secs(10)).unwrap()).unwrap();
    let address = first["address"].as_str().unwrap().to_owned();
    let probe = |path: &str| {
        let r = run(
            &["probe", &format!("rtsp://{address}/{path}"), "--json"],
            Duration::from_secs(30),
        );
        assert_eq!(r.code(), 0, "{path}: {}", r.stderr);
        r.json()
    };
    let lost = |events: &[serde_json::Value]| -> u64 {
        events
            .iter()
            .filter(|e| e["type"] == "loss")
            .map(|e| e["lost"].as_u64().unwrap_or(0))
            .sum()
    };
    let lossy = probe("h264_aac.mp4");
    let clean = probe("h265.mp4");
    let own = probe("h264_aac.mp4?seed=1");
    std::thread::sleep(Duration::from_millis(300));
    let faults: Vec<serde_json::Value> = std::iter::from_fn(|| out.try_recv().ok())
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(&l).ok())
        .filter(|v| v["type"] == "fault")
        .collect();
    let drops = faults.iter().filter(|f| f["fault"] == "drop").count() as u64;
    assert!(drops > 20, "the profile's 10 % of the packets: {drops}");
    assert_eq!(
        lost(&lossy),
        drops,
        "the client lost what the profile dropped, over TCP"
    );
    assert_eq!(lost(&clean), 0, "another path is not affected");
    assert_eq!(lost(&own), 0, "a URL's own faults replace the profile");
}

#[test]
fn a_bad_profile_is_a_usage_error_with_its_line() {
    let dir = temp_dir("profile-bad");
    let media = media_dir();
    for (text, says) in [
        ("drop = 0.1\ndorp = 0.2\n", "line 2: unknown fault `dorp`"),
        ("stall = 3\n", "line 1: bad fault parameter stall=3"),
        ("# nothing\n", "names no fault"),
    ] {
        let file = dir.join("p.toml");
        std::fs::write(&file, text).unwrap();
        let spec = format!("a.mp4={}", file.display());
        let r = run(
            &[
                "serve",
                "--dir",
                media.to_str().unwrap(),
                "--port",
                "0",
                "--profile",
                &spec,
            ],
            Duration::from_secs(10),
        );
        assert_eq!(r.code(), 2, "{text:?}: {}", r.stderr);
        assert!(r.stderr.contains(says), "{text:?}: {}", r.stderr);
    }
    let r = run(
        &["serve", "--dir", media.to_str().unwrap(), "--profile", "a.mp4"],
        Duration::from_secs(10),
    );
    assert_eq!(r.code(), 2);
    assert!(r.stderr.contains("PATH=FILE"), "{}", r.stderr);
}
