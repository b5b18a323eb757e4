//! Our file server with `--users` (authentication) on loopback, on both
//! server runtimes: our clients (Digest SHA-256, and MD5 when the user file
//! has htdigest lines), ffprobe (FFmpeg 5.1: Digest MD5), GStreamer's
//! rtspsrc (Digest MD5 without qop) and a raw client (Basic with
//! `allow_basic`) get in with the right password, and FFmpeg, GStreamer and
//! our clients with Basic when the server asks for Basic alone; with a wrong one they get
//! 401 and nothing is served (no session, no RTP). The rate limit and the
//! hostile headers are in `hostile_client.rs`; the exact nonce timings in
//! the core's unit tests.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rtsp_toolkit_conformance::events::{closed_error, methods, rtp_per_track};
use rtsp_toolkit_conformance::peers::{
    ffprobe_count_frames, gst_ended_well, gst_fakesink_frames, parse_ffprobe_counts,
};
use rtsp_toolkit_conformance::runtimes::{self, Control, StopWhen};
use rtsp_toolkit_conformance::servers::{ServerRuntime, TestServer};
use rtsp_toolkit_core::client::ClientOptions;
use rtsp_toolkit_core::server::auth::{AuthConfig, Users};
use rtsp_toolkit_core::server::ServerEvent;
use rtsp_toolkit_core::Error;
use rtsp_toolkit_media::serving::{EventHook, ServerOptions};

rtsp_toolkit_conformance::on_every_server!(
    #[test]
    our_clients_log_in_with_digest_sha256,
    our_clients_log_in_with_digest_md5_for_htdigest_users,
    our_clients_with_a_wrong_password_get_nothing,
    ffprobe_logs_in_with_digest,
    ffprobe_with_a_wrong_password_gets_nothing,
    gstreamer_logs_in_with_digest,
    basic_only_with_allow_basic,
    a_basic_only_server_logs_in_ffprobe_gstreamer_and_our_clients,
);

/// The user file of these tests: a password with a space and a colon.
const USERS: &str = "# test users\nalice:wonder land:1\n\nbob:builder\n";
/// Bound on one session or tool run.
const LIMIT: Duration = Duration::from_secs(40);

/// The events of a server, as its hook saw them.
type Seen = Arc<Mutex<Vec<ServerEvent>>>;

fn start(runtime: ServerRuntime, users: &str, f: impl FnOnce(&mut AuthConfig)) -> (TestServer, Seen) {
    let mut auth = AuthConfig::new(Users::parse(users).expect("a valid user file"));
    f(&mut auth);
    let seen: Seen = Arc::default();
    let hook = {
        let seen = seen.clone();
        EventHook::new(move |_, e| seen.lock().unwrap().push(e.clone()))
    };
    let options = ServerOptions {
        auth: Some(auth),
        events: Some(hook),
        ..ServerOptions::default()
    };
    let server = TestServer::with_options(runtime, rtsp_toolkit_conformance::media_dir(), options);
    (server, seen)
}

/// The (method, status) of every request the server answered.
fn answered(seen: &Seen) -> Vec<(String, u16)> {
    seen.lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Request { method, status, .. } => Some((method.as_str().to_owned(), *status)),
            _ => None,
        })
        .collect()
}

/// Whether a session started (a PLAY went through).
fn played(seen: &Seen) -> bool {
    seen.lock()
        .unwrap()
        .iter()
        .any(|e| matches!(e, ServerEvent::SessionStarted { .. }))
}

/// Nothing was served: no SETUP, PLAY or DESCRIBE succeeded, no session;
/// some request was answered 401 (its event may follow the response's
/// bytes by a moment: waited for, 2 s at most).
fn assert_nothing_served(seen: &Seen, who: &str) {
    for _ in 0..200 {
        if answered(seen).iter().any(|(_, s)| *s == 401) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let a = answered(seen);
    assert!(
        !a.iter()
            .any(|(m, s)| *s == 200 && ["DESCRIBE", "SETUP", "PLAY"].contains(&m.as_str())),
        "{who}: {a:?}"
    );
    assert!(!played(seen), "{who}");
    assert!(a.iter().any(|(_, s)| *s == 401), "{who}: {a:?}");
}

fn url(server: &TestServer, userinfo: &str, name: &str) -> String {
    format!("rtsp://{userinfo}@{}/{name}", server.local_addr())
}

/// Every client runtime at once, each stopped after 50 RTP packets.
fn our_clients_play(server: &TestServer, userinfo: &str) {
    let url = url(server, userinfo, "h264_aac.mp4");
    let runs = runtimes::at_once(|runtime| {
        let control = Control::within(LIMIT).stop_when(StopWhen::Rtp(50));
        runtimes::run(runtime, &url, ClientOptions::default(), control)
    });
    for run in runs {
        let rt = run.runtime.name();
        let m = methods(&run.events);
        assert_eq!(
            &m[..3],
            [
                ("OPTIONS".into(), 200),
                ("DESCRIBE".into(), 401),
                ("DESCRIBE".into(), 200)
            ],
            "{rt}"
        );
        assert!(m.contains(&("PLAY".into(), 200)), "{rt}: {m:?}");
        assert_eq!(closed_error(&run.events), None, "{rt}");
        assert!(rtp_per_track(&run.events)[0] > 0, "{rt}");
    }
}

fn our_clients_log_in_with_digest_sha256(runtime: ServerRuntime) {
    let (server, seen) = start(runtime, USERS, |_| {});
    our_clients_play(&server, "alice:wonder%20land%3A1");
    // Nothing was refused as wrong; the 401s were the first tries.
    assert!(!seen
        .lock()
        .unwrap()
        .iter()
        .any(|e| matches!(e, ServerEvent::AuthFailed { .. })));
    server.shutdown();
}

fn our_clients_log_in_with_digest_md5_for_htdigest_users(runtime: ServerRuntime) {
    // An htdigest line for carol, password sesame (HA1 = MD5 of
    // carol:rtsp-toolkit:sesame): only Digest MD5 is offered.
    let ha1 = rtsp_toolkit_core::auth::Algorithm::Md5.hex(&[b"carol:rtsp-toolkit:sesame"]);
    let users = format!("carol:rtsp-toolkit:{ha1}\n");
    let (server, _seen) = start(runtime, &users, |_| {});
    our_clients_play(&server, "carol:sesame");
    server.shutdown();
}

fn our_clients_with_a_wrong_password_get_nothing(runtime: ServerRuntime) {
    let (server, seen) = start(runtime, USERS, |_| {});
    let url = url(&server, "alice:wonder%20land", "h264_aac.mp4");
    let runs =
        runtimes::at_once(|runtime| runtimes::run(runtime, &url, ClientOptions::default(), Control::within(LIMIT)));
    for run in runs {
        let rt = run.runtime.name();
        assert!(
            matches!(closed_error(&run.events), Some(Error::Response { status: 401, .. })),
            "{rt}: {:?}",
            run.events.last()
        );
        assert_eq!(rtp_per_track(&run.events), [0, 0], "{rt}");
    }
    assert_nothing_served(&seen, "our clients");
    let failures = || -> Vec<ServerEvent> {
        seen.lock()
            .unwrap()
            .iter()
            .filter(|e| matches!(e, ServerEvent::AuthFailed { .. }))
            .cloned()
            .collect()
    };
    // The event of the last refusal may follow its 401's bytes by a moment
    // (the clients are done when they read it): waited for, 2 s at most.
    for _ in 0..200 {
        if failures().len() >= 3 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let failures = failures();
    assert_eq!(failures.len(), 3, "one refused retry per client: {failures:?}");
    assert!(!format!("{failures:?}").contains("wonder"), "{failures:?}");
    server.shutdown();
}

/// Runs a command with a deadline (it is killed after it).
fn run_for(mut cmd: Command, limit: Duration) -> Output {
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the tool runs");
    let id = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.expect("the tool's output"),
        Err(_) => {
            let _ = Command::new("kill").arg(id.to_string()).status();
            panic!("the tool did not finish within {limit:?}");
        }
    }
}

fn ffprobe_logs_in_with_digest(runtime: ServerRuntime) {
    let (server, seen) = start(runtime, USERS, |_| {});
    let out = run_for(
        ffprobe_count_frames(&url(&server, "bob:builder", "h264_aac.mp4"), "tcp", &[]),
        LIMIT,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        parse_ffprobe_counts(&String::from_utf8_lossy(&out.stdout)),
        [("h264".to_owned(), 125), ("aac".to_owned(), 216)]
    );
    let a = answered(&seen);
    assert_eq!(&a[..2], [("OPTIONS".into(), 200), ("DESCRIBE".into(), 401)], "{a:?}");
    assert!(a.contains(&("PLAY".into(), 200)), "{a:?}");
    server.shutdown();
}

fn ffprobe_with_a_wrong_password_gets_nothing(runtime: ServerRuntime) {
    let (server, seen) = start(runtime, USERS, |_| {});
    let out = run_for(
        ffprobe_count_frames(&url(&server, "bob:wrong", "h264_aac.mp4"), "tcp", &[]),
        LIMIT,
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("401"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_nothing_served(&seen, "ffprobe");
    server.shutdown();
}

fn gstreamer_logs_in_with_digest(runtime: ServerRuntime) {
    let (server, seen) = start(runtime, USERS, |_| {});
    let pipeline = |addr: SocketAddr, user: &str, password: &str| {
        let mut c = Command::new("gst-launch-1.0");
        c.arg("-v").args(
            format!(
                "rtspsrc location=rtsp://{}/h264_aac.mp4 protocols=tcp user-id={user} user-pw={password} name=s \
                 s. ! rtph264depay ! h264parse ! fakesink silent=false",
                addr
            )
            .split(' '),
        );
        c
    };
    let out = run_for(pipeline(server.local_addr(), "bob", "builder"), LIMIT);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(gst_ended_well(out.status, &stdout, &stderr), "{stderr}");
    assert_eq!(gst_fakesink_frames(&stdout), 125);
    assert!(stdout.contains("Got EOS"));
    assert!(played(&seen));
    server.shutdown();

    let (server, seen) = start(runtime, USERS, |_| {});
    let out = run_for(pipeline(server.local_addr(), "bob", "wrong"), LIMIT);
    assert!(!out.status.success() || gst_fakesink_frames(&String::from_utf8_lossy(&out.stdout)) == 0);
    assert_nothing_served(&seen, "GStreamer");
    server.shutdown();
}

/// One request on a fresh connection; the response head and body as text.
fn exchange(addr: SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut buf = vec![0u8; 16 * 1024];
    let mut got = Vec::new();
    // Until the head and the body of Content-Length are in.
    for _ in 0..100 {
        let n = s.read(&mut buf).unwrap_or(0);
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        if let Some(head_end) = text.find("\r\n\r\n") {
            let len = text[..head_end]
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if got.len() >= head_end + 4 + len {
                break;
            }
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

fn basic_only_with_allow_basic(runtime: ServerRuntime) {
    // base64("bob:builder")
    let describe = |addr: SocketAddr| {
        format!(
            "DESCRIBE rtsp://{addr}/h264_aac.mp4 RTSP/1.0\r\nCSeq: 2\r\nAuthorization: Basic Ym9iOmJ1aWxkZXI=\r\n\r\n"
        )
    };
    let (server, seen) = start(runtime, USERS, |_| {});
    let r = exchange(server.local_addr(), &describe(server.local_addr()));
    assert!(r.starts_with("RTSP/1.0 401 "), "{r}");
    assert!(!r.contains("Basic realm"), "no Basic offered without allow_basic: {r}");
    assert!(r.contains("algorithm=SHA-256") && r.contains("algorithm=MD5"), "{r}");
    assert_nothing_served(&seen, "Basic without allow_basic");
    server.shutdown();

    let (server, _seen) = start(runtime, USERS, |a| a.allow_basic = true);
    let r = exchange(
        server.local_addr(),
        &format!("OPTIONS rtsp://{}/ RTSP/1.0\r\nCSeq: 1\r\n\r\n", server.local_addr()),
    );
    assert!(r.starts_with("RTSP/1.0 200 OK"), "OPTIONS needs no credentials: {r}");
    let r = exchange(
        server.local_addr(),
        &format!(
            "DESCRIBE rtsp://{}/h264_aac.mp4 RTSP/1.0\r\nCSeq: 2\r\n\r\n",
            server.local_addr()
        ),
    );
    assert!(r.contains("WWW-Authenticate: Basic realm=\"rtsp-toolkit\""), "{r}");
    let r = exchange(server.local_addr(), &describe(server.local_addr()));
    assert!(r.starts_with("RTSP/1.0 200 OK"), "{r}");
    assert!(r.contains("m=video"), "{r}");
    server.shutdown();
}

/// A server that asks for Basic alone (`offer_digest` off, `serve
/// --basic-only`), as older cameras do: FFmpeg, GStreamer and our clients
/// log in with Basic; a wrong password gets nothing.
fn a_basic_only_server_logs_in_ffprobe_gstreamer_and_our_clients(runtime: ServerRuntime) {
    let basic_only = |a: &mut AuthConfig| {
        a.allow_basic = true;
        a.offer_digest = false;
    };
    let (server, seen) = start(runtime, USERS, basic_only);
    let r = exchange(
        server.local_addr(),
        &format!(
            "DESCRIBE rtsp://{}/h264_aac.mp4 RTSP/1.0\r\nCSeq: 2\r\n\r\n",
            server.local_addr()
        ),
    );
    assert!(
        r.contains("WWW-Authenticate: Basic realm=") && !r.contains("Digest"),
        "{r}"
    );
    let out = run_for(
        ffprobe_count_frames(&url(&server, "bob:builder", "h264_aac.mp4"), "tcp", &[]),
        LIMIT,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        parse_ffprobe_counts(&String::from_utf8_lossy(&out.stdout)),
        [("h264".to_owned(), 125), ("aac".to_owned(), 216)]
    );
    let mut c = Command::new("gst-launch-1.0");
    c.arg("-v").args(
        format!(
            "rtspsrc location=rtsp://{}/h264_aac.mp4 protocols=tcp user-id=bob user-pw=builder name=s \
             s. ! rtph264depay ! h264parse ! fakesink silent=false",
            server.local_addr()
        )
        .split(' '),
    );
    let out = run_for(c, LIMIT);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(gst_ended_well(out.status, &stdout, &stderr), "{stderr}");
    assert_eq!(gst_fakesink_frames(&stdout), 125);
    our_clients_play(&server, "alice:wonder%20land%3A1");
    assert!(played(&seen));
    server.shutdown();

    let (server, seen) = start(runtime, USERS, basic_only);
    let out = run_for(
        ffprobe_count_frames(&url(&server, "bob:wrong", "h264_aac.mp4"), "tcp", &[]),
        LIMIT,
    );
    assert!(!out.status.success());
    assert_nothing_served(&seen, "ffprobe with a wrong Basic password");
    server.shutdown();
}
