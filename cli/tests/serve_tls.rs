//! `rtsp-toolkit serve --tls-cert --tls-key [--tls-port]` and `probe
//! rtsps://` with `--ca-file`, `--tls-fingerprint` and `--insecure`: the
//! banner's rtsps:// URLs and certificate fingerprint, the TLS facts on the
//! `connect` line (text and JSON), a refused certificate's message, Basic
//! over TLS without `--allow-basic-plain`, `probe --transport http` through
//! tunnels (plain and HTTPS), and `ffprobe rtsps://` against our server. The certificates are made here (rcgen).

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use support::{drain, lines, media_dir, run, spawn, temp_dir, Proc};

/// A CA (`ca.pem`) and a server certificate for 127.0.0.1 it signed (`cert.pem`, `key.pem`).
fn make_pki(dir: &Path) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "serve_tls test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let ca = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("cert.pem"), leaf.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
}

/// The banner up to its last line.
fn banner(p: &mut Proc) -> Vec<String> {
    let out = lines(p.0.stdout.take().unwrap());
    let mut banner = Vec::new();
    while let Ok(line) = out.recv_timeout(Duration::from_secs(10)) {
        let last = line.starts_with("append ?play_count");
        banner.push(line);
        if last {
            break;
        }
    }
    banner
}

fn port_of(banner: &[String], prefix: &str) -> u16 {
    banner
        .iter()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|r| r.strip_suffix('/'))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no {prefix} in {banner:?}"))
}

#[test]
fn serve_speaks_rtsps_beside_plain_rtsp_and_probe_checks_the_certificate() {
    let dir = temp_dir("serve-tls");
    make_pki(&dir);
    let users = dir.join("users");
    std::fs::write(&users, "alice:PW-1\n").unwrap();
    let path = |f: &str| dir.join(f).to_str().unwrap().to_owned();
    let media = media_dir();
    let mut p = spawn(&[
        "serve",
        "--dir",
        media.to_str().unwrap(),
        "--port",
        "0",
        "--tls-port",
        "0",
        "--tls-cert",
        &path("cert.pem"),
        "--tls-key",
        &path("key.pem"),
        "--users",
        users.to_str().unwrap(),
    ]);
    let _stderr = drain(p.0.stderr.take().unwrap());
    let banner = banner(&mut p);
    let text = banner.join("\n");
    let plain = port_of(&banner, "listening on rtsp://127.0.0.1:");
    let tls = port_of(&banner, "listening on rtsps://127.0.0.1:");
    let fingerprint = banner
        .iter()
        .find_map(|l| l.strip_prefix("TLS certificate SHA-256 "))
        .unwrap_or_else(|| panic!("{text}"))
        .to_owned();
    assert!(
        text.contains(&format!("rtsps://127.0.0.1:{tls}/h264_aac.mp4")),
        "{text}"
    );
    assert!(
        text.contains(&format!("rtsp://127.0.0.1:{plain}/h264_aac.mp4")),
        "{text}"
    );
    assert!(text.contains("and Basic over TLS"), "{text}");
    // Each file is counted once, though it has a URL on each listener.
    let files = std::fs::read_dir(&media)
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            let name = name.to_string_lossy();
            [".mp4", ".mkv", ".wav", ".aac"].iter().any(|x| name.ends_with(x))
        })
        .count();
    assert!(text.contains(&format!("({files} files)")), "{files}: {text}");

    let url = format!("rtsps://alice:PW-1@127.0.0.1:{tls}/h264_aac.mp4");
    let ca = path("ca.pem");
    let r = run(
        &["probe", &url, "--frames", "5", "--ca-file", &ca],
        Duration::from_secs(20),
    );
    assert_eq!(r.code(), 0, "{r:?}");
    let connect = r
        .stdout
        .lines()
        .find(|l| l.contains("connect"))
        .unwrap_or_default()
        .to_owned();
    assert!(connect.contains("TLSv1.3 TLS13_"), "{connect}");
    assert!(
        connect.contains(&format!("certificate SHA-256 {fingerprint}")),
        "{connect}"
    );

    let r = run(
        &[
            "probe",
            &url,
            "--frames",
            "5",
            "--tls-fingerprint",
            &fingerprint,
            "--json",
        ],
        Duration::from_secs(20),
    );
    assert_eq!(r.code(), 0, "{r:?}");
    let lines = r.json();
    let connect = lines.iter().find(|l| l["type"] == "connect").expect("a connect line");
    assert_eq!(connect["tls"]["version"], "TLSv1.3", "{connect}");
    assert_eq!(connect["tls"]["peer_fingerprint"], fingerprint.as_str(), "{connect}");

    let r = run(&["probe", &url, "--frames", "5", "--insecure"], Duration::from_secs(20));
    assert_eq!(r.code(), 0, "{r:?}");
    assert!(r.stderr.contains("insecure"), "the warning: {r:?}");

    // Not trusted: the system's roots do not know the test CA.
    let r = run(&["probe", &url, "--frames", "5"], Duration::from_secs(20));
    assert_ne!(r.code(), 0, "{r:?}");
    assert!(r.stderr.contains("unknown issuer"), "{r:?}");
    let r = run(&["probe", &url, "--tls-fingerprint", "12:34"], Duration::from_secs(20));
    assert_eq!(r.code(), 2, "a usage error: {r:?}");

    // Basic is offered over TLS without --allow-basic-plain; not on the plain port.
    let shown = |url: &str| {
        let r = run(
            &["probe", url, "--frames", "1", "--ca-file", &ca, "--show", "headers"],
            Duration::from_secs(20),
        );
        assert_eq!(r.code(), 0, "{r:?}");
        r.stdout
    };
    assert!(shown(&url).contains("< WWW-Authenticate: Basic"), "over TLS");
    let plain_url = format!("rtsp://alice:PW-1@127.0.0.1:{plain}/h264_aac.mp4");
    let headers = shown(&plain_url);
    assert!(headers.contains("< WWW-Authenticate: Digest"), "{headers}");
    assert!(!headers.contains("< WWW-Authenticate: Basic"), "{headers}");

    // Through HTTP tunnels (--transport http): over TLS (HTTPS) and plain, Digest inside.
    for url in [url.as_str(), plain_url.as_str()] {
        let r = run(
            &["probe", url, "--frames", "5", "--ca-file", &ca, "--transport", "http"],
            Duration::from_secs(20),
        );
        assert_eq!(r.code(), 0, "{r:?}");
        let connect = r.stdout.lines().find(|l| l.contains("connect")).unwrap_or_default();
        assert!(connect.contains("HTTP tunnel (x-sessioncookie "), "{connect}");
        assert_eq!(connect.contains("TLSv1.3"), url.starts_with("rtsps:"), "{connect}");
    }
    let r = run(
        &["probe", &plain_url, "--frames", "5", "--transport", "http", "--json"],
        Duration::from_secs(20),
    );
    assert_eq!(r.code(), 0, "{r:?}");
    let lines = r.json();
    let connect = lines.iter().find(|l| l["type"] == "connect").expect("a connect line");
    assert_eq!(connect["tunnel"]["server"], "rtsp-toolkit", "{connect}");
    assert_eq!(
        connect["tunnel"]["cookie"].as_str().map(str::len),
        Some(22),
        "{connect}"
    );
    let r = run(&["probe", &plain_url, "--transport", "sctp"], Duration::from_secs(20));
    assert_eq!(r.code(), 2, "a usage error: {r:?}");
    assert!(r.stderr.contains("auto or http"), "{r:?}");

    // FFmpeg's RTSPS client (TLS through gnutls/openssl), checking the certificate.
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-tls_verify", "1", "-ca_file", &ca])
        .args(["-show_entries", "stream=codec_name", "-of", "csv=p=0"])
        .arg(format!("rtsps://alice:PW-1@127.0.0.1:{tls}/h264_aac.mp4"))
        .output()
        .expect("ffprobe (FFmpeg) is installed: .ci/run installs it");
    let streams = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        streams.split_whitespace().collect::<Vec<_>>(),
        ["h264", "aac"],
        "{streams}"
    );

    drop(p);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn serve_with_a_bad_certificate_is_a_usage_error() {
    let dir = temp_dir("serve-bad-tls");
    std::fs::write(dir.join("cert.pem"), "not a certificate\n").unwrap();
    std::fs::write(dir.join("key.pem"), "not a key\n").unwrap();
    let media = media_dir();
    let r = run(
        &[
            "serve",
            "--dir",
            media.to_str().unwrap(),
            "--port",
            "0",
            "--tls-cert",
            dir.join("cert.pem").to_str().unwrap(),
            "--tls-key",
            dir.join("key.pem").to_str().unwrap(),
        ],
        Duration::from_secs(10),
    );
    assert_eq!(r.code(), 2, "{r:?}");
    assert!(r.stderr.contains("--tls-cert/--tls-key"), "{r:?}");
    let _ = std::fs::remove_dir_all(dir);
}
