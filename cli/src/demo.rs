//! `rtsp-toolkit demo`: the whole toolkit on a machine with no camera.
//!
//! Binds the embedded server on a free loopback port serving the bundled
//! sample media (`fixtures/media`, or `--dir`), prints its URLs, probes one
//! file (`h264_aac.mp4` by default) until the server ends the stream, prints
//! the report and shuts the server down. Every probe option works here too
//! (`--json`, `--save-video`, `--frames`, ...).

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use rtsp_toolkit_tokio::server::ServerBuilder;

use crate::json::{self, Context};
use crate::probe::{self, ProbeOptions};
use crate::{EXIT_FAILURE, EXIT_USAGE};

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Media directory to serve [default: the bundled fixtures/media].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// File to probe, relative to the directory.
    #[arg(long, value_name = "NAME", default_value = "h264_aac.mp4")]
    pub file: String,
    #[command(flatten)]
    pub probe: ProbeOptions,
}

/// The bundled sample media: next to the sources this binary was built from,
/// else `fixtures/media` above the executable or in the current directory.
pub fn bundled_media() -> Option<PathBuf> {
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/media");
    let mut candidates = vec![built];
    if let Ok(exe) = std::env::current_exe() {
        candidates.extend(exe.ancestors().skip(1).map(|a| a.join("fixtures/media")));
    }
    candidates.push(PathBuf::from("fixtures/media"));
    candidates.into_iter().find(|p| p.is_dir())
}

pub async fn run(args: &DemoArgs) -> u8 {
    let Some(dir) = args.dir.clone().or_else(bundled_media) else {
        eprintln!("error: the bundled sample media (fixtures/media) was not found; pass --dir DIR");
        return EXIT_USAGE;
    };
    if !dir.is_dir() {
        eprintln!("error: --dir {}: not a directory", dir.display());
        return EXIT_USAGE;
    }
    let server = match ServerBuilder::new(&dir)
        .bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot start the embedded server: {e}");
            return EXIT_FAILURE;
        }
    };
    let urls = server.urls();
    let wanted = format!("/{}", args.file.trim_start_matches('/'));
    let Some(url) = urls.iter().find(|u| u.ends_with(&wanted)).cloned() else {
        eprintln!(
            "error: --file {}: not published from {} (published: {})",
            args.file,
            server.root().display(),
            urls.iter()
                .filter_map(|u| u
                    .rsplit_once(&format!("{}/", server.local_addr()))
                    .map(|(_, p)| p.to_owned()))
                .collect::<Vec<_>>()
                .join(", ")
        );
        server.shutdown();
        return EXIT_USAGE;
    };
    {
        let mut out = std::io::stdout().lock();
        if args.probe.json {
            let ctx = Context {
                session_id: args.probe.session_id.clone(),
                prefix: args.probe.log_prefix.clone(),
            };
            let line = json::server_line(&ctx, server.local_addr(), server.root(), &urls, &url);
            let _ = writeln!(out, "{line}");
        } else {
            let _ = writeln!(
                out,
                "embedded RTSP server on rtsp://{}/ serving {}:",
                server.local_addr(),
                server.root().display()
            );
            for u in &urls {
                let _ = writeln!(out, "  {u}");
            }
            let _ = writeln!(out, "\nprobe {url}\n");
        }
        let _ = out.flush();
    }
    let code = probe::run(&url, &args.probe).await;
    server.shutdown();
    let _ = tokio::time::timeout(Duration::from_secs(3), server.wait()).await;
    code
}
