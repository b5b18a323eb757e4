//! Conformance test support for rtsp-toolkit (not published).
//!
//! Shared by the end-to-end tests of every runtime crate, so that they test
//! the same things the same way:
//! - [`peers`]: GStreamer's rtsp-server (a real third-party implementation)
//!   started on a free loopback port;
//! - [`script`]: a loopback server that plays back a committed capture;
//! - [`hostile`]: a scriptable misbehaving server, for the client's hostile-server tests;
//! - [`fuzzing`]: the fuzz targets' entry points, also replayed by `tests/fuzz_corpus.rs`;
//! - [`runtimes`]: one URL run on tokio, smol or blocking, its events collected
//!   with a deadline (the runner of the cross-runtime tests);
//! - [`servers`]: our file server on tokio or smol on a loopback port (the
//!   runner of the tests every server must pass);
//! - [`impair`]: an RTSP-aware relay that drops, duplicates, reorders, delays
//!   and jitters RTP over UDP on a seeded schedule, and reports what it did;
//! - [`netns`]: one test body run inside a fresh network namespace (multicast);
//! - [`bench`]: the synthetic stream, loopback server, frame checker and CPU
//!   clocks of the end-to-end client benches;
//! - [`events`]: event normalization (for comparing runtimes) and a one-line
//!   summary per event (for comparing a replay with the live session).
//!
//! The tests themselves are in `tests/`; `examples/record.rs` records the
//! captures of `fixtures/captures/`.

pub mod bench;
pub mod events;
pub mod fuzzing;
pub mod hostile;
pub mod impair;
pub mod netns;
pub mod peers;
pub mod rng;
pub mod runtimes;
pub mod script;
pub mod servers;

use std::path::PathBuf;

/// The workspace root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("conformance/ is in the workspace root")
        .to_path_buf()
}

/// `fixtures/media`: the files the GStreamer peer serves.
pub fn media_dir() -> PathBuf {
    repo_root().join("fixtures/media")
}

/// `fixtures/captures`: committed session captures.
pub fn captures_dir() -> PathBuf {
    repo_root().join("fixtures/captures")
}

/// The examples of `docs/RUNTIMES.md`, compiled as doc tests so they stay true.
#[doc = include_str!("../../docs/RUNTIMES.md")]
#[cfg(doctest)]
pub struct RuntimesDoctests;
