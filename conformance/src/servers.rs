//! Our file server on each runtime that has one (tokio, smol), started on a
//! free loopback port: the one server runner of the tests that every server
//! must pass the same way.
//!
//! A [`TestServer`] runs on threads of its own (a tokio runtime, or threads
//! polling the smol server's `wait`), so a test drives its clients however
//! it likes: from a tokio test, a smol `block_on`, or plain threads.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;

use rtsp_toolkit_media::serving::ServerOptions;

/// Defines one test per test body and server runtime: for each `name`
/// given, `tokio_server::name` and `smol_server::name` call
/// `name(ServerRuntime::Tokio)` and `name(ServerRuntime::Smol)`, a function
/// of the calling test file. With `#[test]` the bodies are plain functions;
/// with `#[tokio::test]` they are `async fn`s, run on a two-thread tokio
/// runtime (the calling crate needs `tokio` with its `macros`).
///
/// ```ignore
/// rtsp_toolkit_conformance::on_every_server!(#[tokio::test] plays_whole, refuses_traversal);
///
/// async fn plays_whole(runtime: ServerRuntime) {
///     let server = TestServer::start(runtime, rtsp_toolkit_conformance::media_dir());
///     // ...
/// }
/// ```
#[macro_export]
macro_rules! on_every_server {
    (#[test] $($test:ident),* $(,)?) => {
        mod tokio_server {
            $(
                #[test]
                fn $test() {
                    super::$test($crate::servers::ServerRuntime::Tokio);
                }
            )*
        }
        mod smol_server {
            $(
                #[test]
                fn $test() {
                    super::$test($crate::servers::ServerRuntime::Smol);
                }
            )*
        }
    };
    (#[tokio::test] $($test:ident),* $(,)?) => {
        mod tokio_server {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test($crate::servers::ServerRuntime::Tokio).await;
                }
            )*
        }
        mod smol_server {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test($crate::servers::ServerRuntime::Smol).await;
                }
            )*
        }
    };
}

/// A runtime crate with a file server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerRuntime {
    /// `rtsp_toolkit_tokio::server`, on a multi-thread tokio runtime of its own.
    Tokio,
    /// `rtsp_toolkit_smol::server`, its `wait` polled on two threads.
    Smol,
}

impl ServerRuntime {
    /// Every runtime with a server.
    pub const ALL: [ServerRuntime; 2] = [ServerRuntime::Tokio, ServerRuntime::Smol];

    /// Its name, lower case.
    pub fn name(self) -> &'static str {
        match self {
            ServerRuntime::Tokio => "tokio",
            ServerRuntime::Smol => "smol",
        }
    }
}

/// Threads per server: as many as the tests' machines have cores.
const THREADS: usize = 2;

enum Running {
    Tokio {
        runtime: tokio::runtime::Runtime,
        server: rtsp_toolkit_tokio::Server,
    },
    Smol {
        server: Arc<rtsp_toolkit_smol::Server>,
        threads: Vec<thread::JoinHandle<()>>,
    },
}

/// A file server running on one runtime. Dropping it shuts it down without
/// waiting.
pub struct TestServer {
    runtime: ServerRuntime,
    local_addr: SocketAddr,
    running: Option<Running>,
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer")
            .field("runtime", &self.runtime)
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl TestServer {
    /// Serves `root` with the default options on `127.0.0.1:0`. Panics (it
    /// is for tests) when the server cannot start.
    pub fn start(runtime: ServerRuntime, root: impl Into<PathBuf>) -> TestServer {
        TestServer::with_options(runtime, root, ServerOptions::default())
    }

    /// Serves `root` with `options` on `127.0.0.1:0`.
    pub fn with_options(runtime: ServerRuntime, root: impl Into<PathBuf>, options: ServerOptions) -> TestServer {
        let root = root.into();
        let addr: SocketAddr = "127.0.0.1:0".parse().expect("an address");
        // Started on a thread of its own: a tokio runtime cannot be entered
        // from the tokio test that may be calling.
        let running = thread::scope(|s| {
            s.spawn(|| match runtime {
                ServerRuntime::Tokio => {
                    let rt = tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(THREADS)
                        .enable_all()
                        .build()
                        .expect("a tokio runtime");
                    let server = rt
                        .block_on(
                            rtsp_toolkit_tokio::ServerBuilder::new(&root)
                                .options(options)
                                .bind(addr),
                        )
                        .unwrap_or_else(|e| panic!("tokio server on {}: {e}", root.display()));
                    Running::Tokio { runtime: rt, server }
                }
                ServerRuntime::Smol => {
                    let server =
                        smol::block_on(rtsp_toolkit_smol::ServerBuilder::new(&root).options(options).bind(addr))
                            .unwrap_or_else(|e| panic!("smol server on {}: {e}", root.display()));
                    let server = Arc::new(server);
                    let threads = (0..THREADS)
                        .map(|i| {
                            let server = server.clone();
                            thread::Builder::new()
                                .name(format!("smol server {i}"))
                                .spawn(move || smol::block_on(server.wait()))
                                .expect("spawn a server thread")
                        })
                        .collect();
                    Running::Smol { server, threads }
                }
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        });
        let local_addr = match &running {
            Running::Tokio { server, .. } => server.local_addr(),
            Running::Smol { server, .. } => server.local_addr(),
        };
        TestServer {
            runtime,
            local_addr,
            running: Some(running),
        }
    }

    /// The runtime it runs on.
    pub fn runtime(&self) -> ServerRuntime {
        self.runtime
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `rtsp://ADDR/<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("rtsp://{}/{}", self.local_addr, path.trim_start_matches('/'))
    }

    /// The status of a DESCRIBE of `url` without credentials, sent on a
    /// connection of its own (0 when no answer came within 2 s).
    pub fn describe_status(&self, url: &str) -> u16 {
        use std::io::{Read, Write};
        let timeout = std::time::Duration::from_secs(2);
        let Ok(mut s) = std::net::TcpStream::connect_timeout(&self.local_addr, timeout) else {
            return 0;
        };
        let _ = s.set_read_timeout(Some(timeout));
        let _ = write!(s, "DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\n\r\n");
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n])
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    }

    /// Waits (at most `limit`) until a DESCRIBE of `url` is answered
    /// `status` (200: a live path became live; 404: it ended). Panics past
    /// the limit.
    pub fn wait_for_describe(&self, url: &str, status: u16, limit: std::time::Duration) {
        let deadline = std::time::Instant::now() + limit;
        while self.describe_status(url) != status {
            assert!(
                std::time::Instant::now() < deadline,
                "DESCRIBE {url} was not answered {status} within {limit:?}"
            );
            thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// The server's `urls()`.
    pub fn urls(&self) -> Vec<String> {
        match self.running() {
            Running::Tokio { server, .. } => server.urls(),
            Running::Smol { server, .. } => server.urls(),
        }
    }

    /// The server's canonical media root.
    pub fn root(&self) -> &Path {
        match self.running() {
            Running::Tokio { server, .. } => server.root(),
            Running::Smol { server, .. } => server.root(),
        }
    }

    /// Connections open now.
    pub fn connections(&self) -> usize {
        match self.running() {
            Running::Tokio { server, .. } => server.connections(),
            Running::Smol { server, .. } => server.connections(),
        }
    }

    /// RTSP-over-HTTP tunnels open now, paired or waiting for their other
    /// half (the server's `state().tunnels()`).
    pub fn tunnels(&self) -> usize {
        match self.running() {
            Running::Tokio { server, .. } => server.state().tunnels(),
            Running::Smol { server, .. } => server.state().tunnels(),
        }
    }

    /// Stops accepting and closes every connection.
    pub fn shutdown(&self) {
        match self.running() {
            Running::Tokio { server, .. } => server.shutdown(),
            Running::Smol { server, .. } => server.shutdown(),
        }
    }

    /// The server's `wait()`: returns once it stopped and its connections
    /// closed (bounded by the server's own drain wait). Any executor.
    pub async fn wait(mut self) {
        match self.running.take().expect("running until waited for") {
            Running::Tokio { runtime, server } => {
                let _ = runtime.spawn(server.wait()).await;
                runtime.shutdown_background();
            }
            Running::Smol { server, threads } => {
                server.wait().await;
                // The threads poll the same `wait`, which has returned.
                for t in threads {
                    let _ = t.join();
                }
            }
        }
    }

    fn running(&self) -> &Running {
        self.running.as_ref().expect("running until waited for")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        match self.running.take() {
            Some(Running::Tokio { runtime, server }) => {
                server.shutdown();
                runtime.shutdown_background();
            }
            Some(Running::Smol { server, .. }) => server.shutdown(),
            None => {}
        }
    }
}
