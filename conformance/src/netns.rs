//! One test body run inside a fresh network namespace, for the multicast
//! tests: whatever they send stays inside a namespace that only has `lo`.
//!
//! [`run`] re-executes the current test binary under `unshare --net`, asking
//! libtest for that one test only (`--exact NAME --nocapture`) with
//! [`INSIDE_ENV`] set to its name. In the child, [`run`] sees the variable,
//! brings `lo` up with multicast on and a route for `224.0.0.0/4` through it
//! (source address 127.0.0.1),
//! and runs the body; in the parent it waits (at most the given limit) and
//! fails the test if the child failed, printing the child's output.
//!
//! Creating a namespace needs root (CI runs as root). Without it — not root,
//! or `unshare` refused — [`run`] fails with a clear message when the
//! environment variable `CI` is set, and otherwise prints a skip line and
//! returns [`Outcome::Skipped`].
//!
//! ```no_run
//! use rtsp_toolkit_conformance::netns;
//!
//! #[test]
//! fn multicast_stays_inside() {
//!     netns::run(|| {
//!         // Runs in the namespace: only `lo`, multicast on.
//!     });
//! }
//! ```

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Set (to the test's name) in the re-executed test binary.
pub const INSIDE_ENV: &str = "RTSP_TOOLKIT_NETNS_INSIDE";
/// Longest [`run`] waits for the child test.
pub const DEFAULT_LIMIT: Duration = Duration::from_secs(300);

/// What [`run`] did in the calling (outer) process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The body ran in a namespace and passed (in the child), or this is the
    /// child and the body returned.
    Passed,
    /// No namespace could be made here (the reason); the body did not run.
    Skipped(String),
}

/// Runs `body` in a fresh network namespace; the test's name is libtest's
/// name of the current thread (the test's path, e.g. `netns::tests::lo_only`).
/// Panics if the body failed in the child, or (with `CI` set) if no
/// namespace can be made.
pub fn run(body: impl FnOnce()) -> Outcome {
    let name = std::thread::current()
        .name()
        .filter(|n| *n != "main")
        .map(str::to_string);
    match name {
        Some(name) => run_named(&name, DEFAULT_LIMIT, body),
        None => panic!(
            "netns::run: no test name on this thread (run with more than one test thread, \
             or call netns::run_named)"
        ),
    }
}

/// [`run`] for the test called `name` (its full libtest path), waiting at
/// most `limit` for the child.
pub fn run_named(name: &str, limit: Duration, body: impl FnOnce()) -> Outcome {
    if std::env::var(INSIDE_ENV).as_deref() == Ok(name) {
        setup_inside();
        body();
        return Outcome::Passed;
    }
    if let Err(reason) = can_unshare() {
        if std::env::var_os("CI").is_some() {
            panic!("{name}: needs a network namespace but {reason} (CI is set, so this fails)");
        }
        println!("SKIPPED {name}: needs a network namespace, but {reason}");
        return Outcome::Skipped(reason);
    }
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => panic!("{name}: cannot find the test binary: {e}"),
    };
    let mut child = Command::new("unshare")
        .arg("--net")
        .arg("--")
        .arg(&exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(INSIDE_ENV, name)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{name}: cannot start unshare: {e}"));
    let readers: Vec<_> = [
        child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
        child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|mut pipe| {
        // Ends when the child's end closes (it exited or was killed).
        std::thread::spawn(move || {
            let mut out = Vec::new();
            let _ = pipe.read_to_end(&mut out);
            String::from_utf8_lossy(&out).into_owned()
        })
    })
    .collect();
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let output: Vec<String> = readers.into_iter().map(|r| r.join().unwrap_or_default()).collect();
    // Through print! so that libtest shows it with the test's own output.
    for text in &output {
        print!("{text}");
    }
    match status {
        None => panic!("{name}: the test in the network namespace ran past {limit:?} and was killed"),
        Some(s) if !s.success() => {
            panic!("{name}: the test in the network namespace failed ({s}); its output is above")
        }
        Some(_) => {}
    }
    // A filter that matched nothing also exits 0: insist the test ran.
    if !output.iter().any(|o| o.contains("1 passed")) {
        panic!("{name}: the child ran no test of that exact name (is the name the full test path?)");
    }
    Outcome::Passed
}

/// Whether this process may create a network namespace; the reason if not.
fn can_unshare() -> Result<(), String> {
    if !is_root() {
        return Err("this process is not root".into());
    }
    match Command::new("unshare")
        .args(["--net", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("`unshare --net true` failed ({s})")),
        Err(e) => Err(format!("`unshare` cannot run ({e})")),
    }
}

/// Effective uid 0, from `/proc/self/status`.
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// `ip`, wherever it is (root's PATH has it; a bare one may not).
fn ip_binary() -> &'static str {
    ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("ip")
}

/// In the new namespace: `lo` up, multicast on, `224.0.0.0/4` routed through
/// it with source address 127.0.0.1.
fn setup_inside() {
    let ip = ip_binary();
    for args in [
        &["link", "set", "lo", "up"][..],
        &["link", "set", "lo", "multicast", "on"],
        // `src`: a sender bound to 0.0.0.0 would otherwise send from 0.0.0.0
        // (127.0.0.1 is host-scoped, so not picked for a multicast route), and
        // a receiver filtering on the server's address would drop it.
        &["route", "add", "224.0.0.0/4", "dev", "lo", "src", "127.0.0.1"],
    ] {
        let out = Command::new(ip)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {ip}: {e}"));
        assert!(
            out.status.success(),
            "`ip {}` failed in the namespace: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The network interfaces of the current namespace, as the kernel lists them
/// (`ip -o link show`; `/sys/class/net` would show the namespace sysfs was
/// mounted in, which `unshare --net` does not remount).
pub fn interfaces() -> Vec<String> {
    let out = match Command::new(ip_binary()).args(["-o", "link", "show"]).output() {
        Ok(out) => out,
        Err(_) => return Vec::new(),
    };
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or_default().to_string())
        .collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, UdpSocket};

    #[test]
    fn multicast_on_lo_inside_a_namespace() {
        let outcome = run(|| {
            assert_eq!(interfaces(), ["lo"], "only lo in the namespace");

            let group = Ipv4Addr::new(239, 255, 42, 7);
            let rx = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
            rx.join_multicast_v4(&group, &Ipv4Addr::LOCALHOST).unwrap();
            rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let port = rx.local_addr().unwrap().port();
            // From a socket bound to 127.0.0.1 and from one bound to the
            // wildcard (as servers bind): both arrive from 127.0.0.1.
            for bind in [Ipv4Addr::LOCALHOST, Ipv4Addr::UNSPECIFIED] {
                let tx = UdpSocket::bind((bind, 0)).unwrap();
                tx.set_multicast_ttl_v4(1).unwrap();
                tx.set_multicast_loop_v4(true).unwrap();
                tx.send_to(b"hello group", (group, port)).unwrap();
                let mut buf = [0u8; 64];
                let (n, from) = rx.recv_from(&mut buf).expect("the multicast datagram arrives");
                assert_eq!(&buf[..n], b"hello group");
                assert_eq!(from.ip(), Ipv4Addr::LOCALHOST, "sent from {bind}");
            }
        });
        println!("netns outcome: {outcome:?}");
    }
}
