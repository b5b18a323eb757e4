//! Process helpers shared by the CLI's tests (`cli.rs`, `decode.rs`, `view.rs`): bounded waits,
//! children killed on drop, the embedded server on a free port.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_rtsp-toolkit");

pub fn media_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/media")
}

/// A fresh empty directory under the target dir for one test's files.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A child process killed when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[derive(Debug)]
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Reads a pipe to the end on a thread.
impl Run {
    /// The exit code (the process was not killed by a signal).
    pub fn code(&self) -> i32 {
        self.status.code().expect("exited, not killed by a signal")
    }

    /// stdout as JSON lines.
    pub fn json(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }
}

pub fn drain(mut r: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        let _ = tx.send(String::from_utf8_lossy(&buf).into_owned());
    });
    rx
}

/// Reads a pipe line by line on a thread, each line as it comes.
pub fn lines(r: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    rx
}

/// Waits for the child up to `limit`, killing it (and failing) after that. Pipes already taken
/// read as empty.
pub fn wait_bounded(mut child: Proc, limit: Duration) -> Run {
    let out = child.0.stdout.take().map(drain);
    let err = child.0.stderr.take().map(drain);
    let read = |r: &Option<mpsc::Receiver<String>>, wait: u64| {
        r.as_ref()
            .and_then(|r| r.recv_timeout(Duration::from_secs(wait)).ok())
            .unwrap_or_default()
    };
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > limit {
            let _ = child.0.kill();
            let (stdout, stderr) = (read(&out, 2), read(&err, 2));
            panic!("the process did not finish within {limit:?}\nstdout:\n{stdout}\nstderr:\n{stderr}");
        }
        thread::sleep(Duration::from_millis(20));
    };
    Run {
        status,
        stdout: read(&out, 5),
        stderr: read(&err, 5),
    }
}

pub fn spawn(args: &[&str]) -> Proc {
    Proc(
        Command::new(BIN)
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run rtsp-toolkit"),
    )
}

pub fn run(args: &[&str], limit: Duration) -> Run {
    wait_bounded(spawn(args), limit)
}

/// `rtsp-toolkit serve` of the fixtures on a free port, killed on drop.
pub struct Serve {
    proc: Proc,
    stderr: mpsc::Receiver<String>,
    pub port: u16,
}

impl Serve {
    pub fn start() -> Serve {
        Serve::start_with(&[])
    }

    /// With more `serve` options.
    pub fn start_with(extra: &[&str]) -> Serve {
        Serve::start_in(&media_dir(), extra)
    }

    /// Serving `dir` instead of the fixtures, with more `serve` options.
    pub fn start_in(dir: &Path, extra: &[&str]) -> Serve {
        let mut args = vec!["serve", "--dir", dir.to_str().unwrap(), "--port", "0"];
        args.extend_from_slice(extra);
        let mut p = spawn(&args);
        let stderr = drain(p.0.stderr.take().unwrap());
        let rx = lines(p.0.stdout.take().unwrap());
        let first = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("serve prints its address");
        let port = first
            .strip_prefix("listening on rtsp://127.0.0.1:")
            .and_then(|r| r.strip_suffix('/'))
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line: {first:?}"));
        Serve { proc: p, stderr, port }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.proc.0.id()
    }

    /// Kills the server and returns what it wrote on stderr.
    pub fn stop(self) -> String {
        drop(self.proc);
        self.stderr.recv_timeout(Duration::from_secs(5)).unwrap_or_default()
    }

    pub fn url(&self, name: &str) -> String {
        format!("rtsp://127.0.0.1:{}/{name}", self.port)
    }
}

/// Decodes a PNG: (width, height, RGB or RGBA bytes, bytes per pixel).
pub fn read_png(data: &[u8]) -> (u32, u32, Vec<u8>, usize) {
    let mut reader = png::Decoder::new(std::io::Cursor::new(data))
        .read_info()
        .expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("a sane size")];
    let info = reader.next_frame(&mut buf).expect("a PNG frame");
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let bpp = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("unexpected PNG colour type {other:?}"),
    };
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf, bpp)
}

/// Variance of the colour channels of an RGB(A) picture: 0 for a flat (blank) picture.
pub fn variance(pixels: &[u8], bpp: usize) -> f64 {
    let values: Vec<f64> = pixels
        .chunks_exact(bpp)
        .flat_map(|p| p[..3].iter().map(|&b| f64::from(b)))
        .collect();
    let mean = values.iter().sum::<f64>() / values.len().max(1) as f64;
    values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len().max(1) as f64
}

/// `serve --metrics 127.0.0.1:0` with `extra`; the process, its RTSP port and the metrics address.
pub fn serve_with_metrics(extra: &[&str]) -> (Proc, u16, String) {
    let media = media_dir();
    let mut args = vec![
        "serve",
        "--dir",
        media.to_str().unwrap(),
        "--port",
        "0",
        "--metrics",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    let mut p = spawn(&args);
    let _stderr = drain(p.0.stderr.take().unwrap());
    let out = lines(p.0.stdout.take().unwrap());
    let (mut port, mut metrics) = (None, None);
    while let Ok(line) = out.recv_timeout(Duration::from_secs(10)) {
        if let Some(p) = line
            .strip_prefix("listening on rtsp://127.0.0.1:")
            .and_then(|r| r.strip_suffix('/'))
        {
            port = p.parse().ok();
        }
        if let Some(m) = line
            .strip_prefix("metrics on http://")
            .and_then(|r| r.strip_suffix("/metrics"))
        {
            metrics = Some(m.to_owned());
        }
        if line.starts_with("append ?play_count") {
            break;
        }
    }
    (p, port.expect("the RTSP port"), metrics.expect("the metrics address"))
}

/// One HTTP request to `addr`; the whole answer.
pub fn http(addr: &str, request: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    answer
}

/// The value of the sample line `series` in a scrape.
pub fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

pub fn scrape(addr: &str) -> String {
    let answer = http(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.contains("Content-Type: text/plain; version=0.0.4"), "{answer}");
    answer
}
