//! `rtsp-toolkit`: probe an RTSP URL, check many cameras, capture and replay a
//! session, serve a directory, run the demo, or view a stream (feature
//! `viewer`).
//!
//! This file is the command line only (arguments, logging, exit codes); each
//! command is its own module. The reference is `docs/CLI.md`.

#![warn(missing_docs)]

mod check;
mod decode;
mod demo;
mod json;
mod load;
mod metrics_http;
mod probe;
mod publish;
mod record;
mod replay;
mod report;
mod save;
mod serve;
mod text;
mod view;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Success; for `probe`, the session ended cleanly (the stream ended, or it
/// was stopped by `--frames`, `--duration` or Ctrl-C).
pub const EXIT_OK: u8 = 0;
/// The session ended with an error (connection, timeout, protocol,
/// response such as 401), or a file could not be written.
pub const EXIT_FAILURE: u8 = 1;
/// Bad usage: arguments, URL, options (clap uses 2 as well).
pub const EXIT_USAGE: u8 = 2;
/// The session ran but a track's codec is not supported: it got RTP
/// statistics and no frames.
pub const EXIT_UNSUPPORTED: u8 = 3;

#[derive(Debug, Parser)]
#[command(
    name = "rtsp-toolkit",
    version,
    about = "RTSP client diagnostics and a file server: protocol timing, frames, jitter, loss",
    long_about = "RTSP client diagnostics and a file server.\n\n\
        `probe` runs a client session and prints every RTSP exchange with its timing, the frames \
        (summarised when frequent), then a report: per-method timing, time to first frame, frame rate, \
        bitrate, keyframe interval, lost packets and RFC 3550 jitter. `check` runs a short session on each \
        of many cameras and prints one row per camera. `capture` records a session to a file, and `replay` \
        shows it again offline through the same report. `serve` publishes media files over RTSP. `demo` \
        serves the bundled sample media on loopback and probes it.",
    after_help = "Exit status: 0 ok (also when stopped by Ctrl-C), 1 session error, 2 usage error, \
        3 unsupported codec (RTP statistics only), 130 aborted by a second Ctrl-C.\n\
        Reference and the --json schema: docs/CLI.md"
)]
struct Cli {
    /// More log output on stderr (-v: info, -vv: debug, -vvv: trace); RUST_LOG overrides.
    /// For probe and demo, -v also shows the SDP and the headers (as --show sdp,headers).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

/// `relay URL`: the upstream, its path, and serve's options.
#[derive(Debug, Clone, clap::Args)]
struct RelayArgs {
    /// rtsp://[user[:password]@]host[:port]/path of the camera or server to relay.
    url: String,
    /// The path readers ask for: rtsp://HOST:PORT/NAME.
    #[arg(long, value_name = "NAME", default_value = "stream")]
    name: String,
    #[command(flatten)]
    serve: serve::ServeArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a client session on URL and report what happened.
    #[command(
        after_help = "Credentials: --user NAME with the password in RTSP_PASSWORD or --password-file FILE, or in the URL:\n\
            rtsp://user:password@host/path (percent-encode @ : / in them). They are never printed or logged.\n\n\
            Examples:\n  \
            rtsp-toolkit probe rtsp://192.0.2.10/stream1 --duration 10\n  \
            rtsp-toolkit probe rtsp://cam/live --frames 100 --save-video cam.h264 --save-audio cam.wav\n  \
            rtsp-toolkit probe rtsp://cam/live --user admin --password-file ~/.cam-password --show sdp,headers --frames 1\n  \
            rtsp-toolkit probe rtsp://cam/live --json --duration 5 | jq -c 'select(.type==\"rtsp\")'"
    )]
    Probe {
        /// rtsp://[user[:password]@]host[:port]/path
        url: String,
        #[command(flatten)]
        options: probe::ProbeOptions,
    },
    /// Publish every media file under a directory (.mp4 .mkv .webm .wav .aac) over RTSP.
    Serve(serve::ServeArgs),
    /// Serve the bundled sample media on a free loopback port and probe one file.
    Demo(demo::DemoArgs),
    /// Open many sessions on one URL and report real-time delivery and setup latency.
    Load(load::LoadArgs),
    /// Push a media file to an RTSP server in real time, as a camera publishing to a recorder
    /// (ANNOUNCE, SETUP mode=record, RECORD, RTP over the connection, TEARDOWN).
    #[command(
        after_help = "Exit status: 0 published to the end (or stopped with Ctrl-C), 1 failed (refused, \
            connection lost, no answer in time), 2 usage (a file that cannot be read or published, a bad URL).\n\
            Credentials in URLs are never printed.\n\nExamples:\n  \
            rtsp-toolkit publish cam.mp4 rtsp://127.0.0.1:8554/live\n  \
            rtsp-toolkit publish cam.mkv rtsp://user:pass@recorder/cam1 --count 0"
    )]
    Publish(publish::PublishArgs),
    /// Relay an RTSP camera or server: pull URL once and serve it to any number of readers at
    /// rtsp://HOST:PORT/NAME (as `serve --relay NAME=URL`, with serve's options).
    #[command(after_help = "Examples:\n  \
        rtsp-toolkit relay rtsp://user:pass@192.0.2.10/stream1 --port 8554\n  \
        rtsp-toolkit relay rtsp://cam/live --name door --json")]
    Relay(RelayArgs),
    /// Show the live video in a window with a status bar, and play the audio
    /// (without URL: the bundled sample from the embedded server; needs a build with `--features viewer`).
    #[command(after_help = "Keys: M mutes, Q or Esc closes (TEARDOWN, exit 0); so do closing the window and Ctrl-C.")]
    View(view::ViewArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) on stdout.
    #[command(after_help = "Examples:\n  \
        rtsp-toolkit completions bash > ~/.local/share/bash-completion/completions/rtsp-toolkit\n  \
        rtsp-toolkit completions zsh > \"${fpath[1]}/_rtsp-toolkit\"\n  \
        rtsp-toolkit completions fish > ~/.config/fish/completions/rtsp-toolkit.fish")]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Check many cameras: a short session on each, a few at a time, one table row per URL.
    #[command(
        after_help = "A row passes (status ok) when the session played, ended without an error and gave a frame; \
            otherwise its status says why: auth, not_found, refused, unreachable, timeout, no_media, \
            unsupported_codec, response, protocol, connection, bad_url, interrupted, skipped.\n\
            Exit status: 0 all passed, 1 any failed, 2 usage (a list file that cannot be read, a line that is not a URL).\n\
            Credentials in URLs are never printed.\n\nExamples:\n  \
            rtsp-toolkit check cameras.txt --jobs 16 --duration 3\n  \
            rtsp-toolkit check rtsp://192.0.2.10/stream1 rtsp://192.0.2.11/stream1 --json | jq -c 'select(.ok|not)'"
    )]
    Check(check::CheckArgs),
    /// Run a probe of URL and record the session to FILE for `replay` (same as `probe URL --capture FILE`).
    #[command(
        after_help = "The file holds what the client received and when (not what it sent; never the credentials), \
            for `rtsp-toolkit replay FILE` here or on another machine. Every probe option applies.\n\nExamples:\n  \
            rtsp-toolkit capture rtsp://cam/live cam.rtspcap --duration 10\n  \
            rtsp-toolkit replay cam.rtspcap --json | jq 'select(.type==\"report\")'"
    )]
    Capture(replay::CaptureArgs),
    /// Replay a capture offline (no network) through the probe's event lines and report.
    #[command(
        after_help = "The events and their timings are the recorded session's, so the report is the live one. \
            A capture stopped by --duration or Ctrl-C replays up to the stop request (stopped_by: recorded); \
            give the same --frames N to a capture made with --frames N.\n\
            Exit status: as probe's for the recorded session; 2 when FILE cannot be read or is not a capture."
    )]
    Replay(replay::ReplayArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version exit 0, usage errors 2.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { EXIT_OK });
        }
    };
    if let Command::Completions { shell } = cli.command {
        use clap::CommandFactory;
        let mut cmd = Cli::command();
        clap_complete::generate(shell, &mut cmd, "rtsp-toolkit", &mut std::io::stdout());
        return ExitCode::from(EXIT_OK);
    }
    // `serve` shows the server's warnings (a client that does not read, ...);
    // the others print their own lines and report a session error once.
    let quiet_level = if matches!(cli.command, Command::Serve(_) | Command::Relay(_)) {
        "warn"
    } else {
        "error"
    };
    init_logging(cli.verbose, quiet_level);
    // libavcodec's own messages duplicate the decode errors the commands count; -vv shows them.
    #[cfg(feature = "decode")]
    rtsp_toolkit_media::video::set_ffmpeg_logging(cli.verbose >= 2);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let verbose = cli.verbose >= 1;
    let code = runtime.block_on(async {
        match cli.command {
            Command::Probe { url, mut options } => {
                options.verbose = verbose;
                probe::run(&url, &options).await
            }
            Command::Serve(args) => serve::run(&args).await,
            Command::Demo(mut args) => {
                args.probe.verbose = verbose;
                demo::run(&args).await
            }
            Command::Load(args) => load::run(&args).await,
            Command::Publish(args) => publish::run(&args).await,
            Command::Relay(mut args) => {
                let spec = format!("{}={}", args.name, args.url);
                match rtsp_toolkit_media::serving::relay::RelaySpec::parse(&spec) {
                    Ok(spec) => {
                        args.serve.relay.push(spec);
                        serve::run(&args.serve).await
                    }
                    Err(e) => {
                        eprintln!("error: {e}");
                        EXIT_USAGE
                    }
                }
            }
            Command::View(args) => view::run(&args).await,
            Command::Completions { .. } => EXIT_OK,
            Command::Check(args) => check::run(&args).await,
            Command::Capture(args) => replay::run_capture(&args).await,
            Command::Replay(args) => replay::run_replay(&args).await,
        }
    });
    // Background tasks (a session's TEARDOWN, server connections) are done or
    // not worth waiting for.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    ExitCode::from(code)
}

/// Logs (`tracing`) go to stderr, at `quiet_level` without `-v`.
fn init_logging(verbose: u8, quiet_level: &str) {
    let default = match verbose {
        0 => quiet_level,
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
