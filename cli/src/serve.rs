//! `rtsp-toolkit serve --dir DIR`: publish every media file under DIR.
//!
//! Prints `listening on rtsp://HOST:PORT/` first (so that a script that asked
//! for port 0 can read the port), then one URL per published file, and serves
//! until Ctrl-C or SIGTERM. With `--users FILE` every request but OPTIONS
//! needs a user's credentials (Digest; Basic too with `--allow-basic-plain`),
//! and the banner says so, without passwords; the rules are in
//! `rtsp_toolkit_core::server::auth`. Clients get the media interleaved on the RTSP
//! connection, over UDP (`--udp-ports` bounds the UDP ports) or from the
//! file's multicast stream (`--multicast-groups`, `--multicast-ports`,
//! `--multicast-ttl`), as they ask.
//! The protocol and the file handling are the embedded server's
//! (`rtsp_toolkit_tokio::server`); this is only its front; its log (`-v`)
//! has each request, and each receiver report of a UDP client (its loss and
//! jitter).

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use rtsp_toolkit_tokio::core::client::{BackchannelCodec, Transport};
use rtsp_toolkit_tokio::core::server::auth::{AuthConfig, Users};
use rtsp_toolkit_tokio::core::server::ServerEvent;
use rtsp_toolkit_tokio::core::server::{GroupRange, PortRange};
use rtsp_toolkit_tokio::server::{EventHook, Server, ServerBuilder, ServerOptions};
use rtsp_toolkit_tokio::ServerTlsConfig;
use serde::Serialize;

use rtsp_toolkit_media::serving::metrics::Metrics;
use rtsp_toolkit_media::serving::relay::{without_userinfo, RelaySpec};

use crate::{EXIT_FAILURE, EXIT_OK, EXIT_USAGE};

/// Most `--json` event lines held until the `server` line is printed (a
/// relay's first upstream events; more are dropped).
const MAX_HELD_LINES: usize = 256;

/// How often sessions report their totals when `--metrics` is on.
const METRICS_PROGRESS: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Directory to publish, subdirectories included; each file is rtsp://HOST:PORT/<relative path>.
    /// Optional with --relay or --publish (a server of live paths only).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Address to listen on (0.0.0.0 for every interface).
    #[arg(long, value_name = "HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0 picks a free one).
    #[arg(long, value_name = "PORT", default_value_t = 8554)]
    pub port: u16,
    /// First RTP sequence number and RTP timestamp of every track, instead of
    /// random ones: for soak tests that must cross the wrap-arounds early
    /// (e.g. 65000:4294000000). Not for normal use (RFC 3550 wants random values).
    #[arg(long, value_name = "SEQ:TS", value_parser = parse_initial_rtp, hide_short_help = true)]
    pub initial_rtp: Option<(u16, u32)>,
    /// A session that fell behind (the server was descheduled, a client stopped reading) sends at most this
    /// many seconds of the missed media at once, then continues from there (timestamps stay continuous).
    #[arg(long, value_name = "SECS", default_value_t = 5.0, value_parser = parse_max_lag)]
    pub max_lag: f64,
    /// UDP ports for clients that ask for RTP over UDP (RTP/AVP unicast): each session track takes an even RTP
    /// port and the odd RTCP port above it from FIRST-LAST (e.g. 30000-30999 for 500 tracks). Default: any
    /// even/odd pair the OS gives. TCP-interleaved clients need none.
    #[arg(long, value_name = "FIRST-LAST", value_parser = PortRange::parse)]
    pub udp_ports: Option<PortRange>,
    /// Group addresses for clients that ask for multicast (RTP/AVP;multicast): each file being streamed to a
    /// group holds one IPv4 multicast address of FIRST-LAST while it streams.
    #[arg(long, value_name = "FIRST-LAST", value_parser = GroupRange::parse, default_value = "239.255.42.0-239.255.42.255")]
    pub multicast_groups: GroupRange,
    /// Ports of the multicast streams: track k of a file goes to the even port of pair k of FIRST-LAST (RTCP to
    /// the odd one above), on the file's group.
    #[arg(long, value_name = "FIRST-LAST", value_parser = PortRange::parse, default_value = "5004-5099")]
    pub multicast_ports: PortRange,
    /// TTL of multicast datagrams (1: this network only).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub multicast_ttl: u8,
    /// Offer no RTP over UDP (a UDP SETUP is answered 461; clients fall back to TCP). UDP media goes to the
    /// RTSP peer's address: behind a TCP proxy or port forward that is the proxy's host, so turn UDP off there.
    #[arg(long)]
    pub no_udp: bool,
    /// Offer no multicast (a multicast SETUP is answered 461).
    #[arg(long)]
    pub no_multicast: bool,
    /// Offer the ONVIF audio backchannel (an a=sendonly audio track of --backchannel-codec, to clients
    /// that send `Require: www.onvif.org/ver20/backchannel`) and write what each session sends, decoded,
    /// as DIR/<path>-<session id>.wav (16-bit PCM mono: 8 kHz for PCMU/PCMA, 16 kHz for G.722 and AAC;
    /// `/` in the path becomes `_`).
    #[arg(long, value_name = "DIR")]
    pub backchannel_dir: Option<std::path::PathBuf>,
    /// The codec of the backchannel track offered with --backchannel-dir: pcmu (PCMU/8000), pcma
    /// (PCMA/8000), g722 (G722/8000, 16 kHz audio), aac (MPEG4-GENERIC AAC-hbr, AAC-LC 16 kHz mono) or
    /// aac-latm (MP4A-LATM, the same audio).
    #[arg(long, value_name = "CODEC", value_parser = parse_backchannel_codec, default_value = "pcmu", requires = "backchannel_dir")]
    pub backchannel_codec: BackchannelCodec,
    /// Let clients publish to PATH (ANNOUNCE, SETUP mode=record, RECORD over RTP/AVP/TCP), e.g. `live` or
    /// `cams/door` (repeatable; `*`: any path). While a publisher is connected, rtsp://HOST:PORT/PATH serves
    /// its live stream to any number of readers, each from its next keyframe (a file of that name is
    /// shadowed); readers that fall 2 MiB behind are dropped. --users applies to publishers too.
    #[arg(long, value_name = "PATH")]
    pub publish: Vec<String>,
    /// Relay an upstream camera or server as live path NAME (repeatable): the server's own client pulls URL once
    /// (over --relay-transport; credentials in the URL are used, never printed) and rtsp://HOST:PORT/NAME serves it to any
    /// number of readers, each from its next keyframe. A lost upstream is opened again after 0.5 s, doubling to
    /// 30 s; readers stay on through a reconnect within 10 s (a clean discontinuity), else they get the end.
    #[arg(long, value_name = "NAME=URL", value_parser = RelaySpec::parse)]
    pub relay: Vec<RelaySpec>,
    /// Give a new reader of a --publish or --relay path the packets since the last video keyframe at once (a
    /// burst of up to one GOP, at most 4 MiB) for a first frame without waiting for the next keyframe.
    #[arg(long)]
    pub gop_cache: bool,
    /// How relays take their upstream's RTP: tcp (interleaved), udp, multicast or auto (UDP, else TCP).
    #[arg(long, value_name = "KIND", default_value = "tcp", value_parser = parse_relay_transport)]
    pub relay_transport: Transport,
    /// JSON lines on stdout instead of text: a `server` object (address, URLs), then one object per
    /// server event (request answered, session started and ended, receiver report, warning, connection
    /// closed), with the peer and the time since start (schema: docs/CLI.md).
    #[arg(long)]
    pub json: bool,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9554): sessions by path and transport,
    /// RTP sent, lag behind real time, slow readers dropped, the clients' RTCP loss and jitter, requests by
    /// status (the list: docs/CLI.md). Sessions report their totals every 5 s for it.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
    /// Ask for credentials on every request but OPTIONS (Digest SHA-256 and MD5), for every path. FILE has one
    /// `name:password` per line (`#` comments, blank lines); Apache htdigest lines `name:realm:HA1` (MD5 HA1)
    /// work too, with Digest MD5 only. 10 failures from one address within 60 s get 503 for 60 s.
    #[arg(long, value_name = "FILE")]
    pub users: Option<PathBuf>,
    /// The realm of the challenges (with --users).
    #[arg(long, value_name = "NAME", default_value = "rtsp-toolkit", requires = "users")]
    pub realm: String,
    /// Also offer and accept Basic (the password in the clear) on this plain, unencrypted server (with --users).
    /// Without it only Digest is offered.
    #[arg(long, requires = "users")]
    pub allow_basic_plain: bool,
    /// Ask for Basic alone, no Digest, as older cameras do (with --users; Basic needs TLS or
    /// --allow-basic-plain): for testing clients against such cameras.
    #[arg(long, requires = "users")]
    pub basic_only: bool,
    /// Speak RTSPS (RTSP over TLS) with this certificate chain (PEM, leaf first); with --tls-key. Without
    /// --tls-port the one listener (--port) speaks TLS only; URLs are printed as rtsps://.
    #[arg(long, value_name = "PEM", requires = "tls_key", help_heading = "TLS")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "PEM", requires = "tls_cert", help_heading = "TLS")]
    pub tls_key: Option<PathBuf>,
    /// Serve TLS on this port too, beside plain RTSP on --port (0 picks a free one).
    #[arg(long, value_name = "PORT", requires = "tls_cert", help_heading = "TLS")]
    pub tls_port: Option<u16>,
    /// The seed of the camera simulator's faults for URLs without seed=N (docs/SIMULATOR.md): the same seed
    /// drops, delays and reorders the same packets.
    #[arg(long, value_name = "N", default_value_t = 0, help_heading = "Camera simulator")]
    pub seed: u64,
    /// Give every session of PATH (a file's path as in its URL, or a --publish/--relay path) the faults of
    /// FILE when its URL asks for none itself: a TOML file with one fault per line, as in the URL query
    /// (`drop = 0.05`, `stall = "20:5"`, `quirk = ["wrong_cseq"]`; docs/SIMULATOR.md). Repeatable.
    #[arg(long, value_name = "PATH=FILE", help_heading = "Camera simulator")]
    pub profile: Vec<String>,
    /// Print every fault and quirk a URL can ask for (e.g. rtsp://HOST:PORT/a.mp4?drop=0.05&quirk=wrong_cseq),
    /// one line each, and exit.
    #[arg(long, help_heading = "Camera simulator")]
    pub list_profiles: bool,
}

/// `serve --list-profiles`: every fault parameter and quirk, one line each.
pub fn list_profiles() -> String {
    use rtsp_toolkit_tokio::core::server::faults::{Quirk, FAULTS};
    use std::fmt::Write as _;
    let mut s = String::from(
        "faults: URL query parameters, next to play_count (e.g. rtsp://HOST:PORT/clip.mp4?drop=0.05&seed=1)\n",
    );
    for (name, value, what) in FAULTS {
        let _ = writeln!(s, "  {:<32}{what}", format!("{name}={value}"));
    }
    s.push_str("quirks: quirk=NAME[,NAME...]\n");
    for q in Quirk::ALL {
        let _ = writeln!(s, "  {:<32}{}", q.name(), q.description());
    }
    s.push_str("each fault done is a `fault` line of serve --json; docs/SIMULATOR.md has what each reproduces\n");
    s.push_str("profile files (serve --profile PATH=FILE): the same names, one `name = value` per line (TOML)\n");
    s
}

/// `--profile PATH=FILE`: the path and the faults of its file.
fn read_profile(spec: &str) -> Result<(String, rtsp_toolkit_tokio::core::server::faults::Faults), String> {
    use rtsp_toolkit_tokio::core::server::profile::{parse_profile, MAX_PROFILE_BYTES};
    let (path, file) = spec
        .split_once('=')
        .ok_or_else(|| format!("--profile {spec}: expected PATH=FILE"))?;
    let path = path.trim().trim_matches('/');
    if path.is_empty() {
        return Err(format!("--profile {spec}: no PATH"));
    }
    let size = std::fs::metadata(file)
        .map_err(|e| format!("--profile {file}: {e}"))?
        .len();
    if size > MAX_PROFILE_BYTES as u64 {
        return Err(format!("--profile {file}: larger than {MAX_PROFILE_BYTES} bytes"));
    }
    let text = std::fs::read_to_string(file).map_err(|e| format!("--profile {file}: {e}"))?;
    let faults = parse_profile(&text).map_err(|e| format!("--profile {file}: {e}"))?;
    Ok((path.to_owned(), faults))
}

/// The TLS settings of `--tls-cert --tls-key`, read and checked.
fn tls_config(args: &ServeArgs) -> Result<Option<ServerTlsConfig>, String> {
    match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => ServerTlsConfig::from_pem_files(cert, key)
            .map(Some)
            .map_err(|e| format!("--tls-cert/--tls-key: {e}")),
        _ => Ok(None),
    }
}

/// The authentication of `--users FILE`: the file read and checked.
fn auth_config(args: &ServeArgs) -> Result<Option<AuthConfig>, String> {
    let Some(path) = &args.users else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path).map_err(|e| format!("--users {}: {e}", path.display()))?;
    let users = Users::parse(&text).map_err(|e| format!("--users {}: {e}", path.display()))?;
    if users.is_empty() {
        return Err(format!("--users {}: no users in the file", path.display()));
    }
    if args.realm.is_empty() || args.realm.chars().any(|c| c.is_control() || c == '"' || c == '\\') {
        return Err("--realm: a non-empty name without quotes, backslashes or control characters".to_owned());
    }
    if let Some((name, realm)) = users.other_realms(&args.realm).first() {
        return Err(format!(
            "--users {}: the htdigest line of {name:?} is for realm {realm:?}, not {:?} (--realm)",
            path.display(),
            args.realm
        ));
    }
    if args.basic_only && !args.allow_basic_plain && args.tls_cert.is_none() {
        return Err(
            "--basic-only: Basic sends the password in the clear; it needs TLS (--tls-cert) or --allow-basic-plain"
                .to_owned(),
        );
    }
    if args.basic_only && !args.allow_basic_plain && args.tls_port.is_some() {
        return Err(
            "--basic-only with --tls-port: the plain port could log no one in; add --allow-basic-plain or drop --tls-port"
                .to_owned(),
        );
    }
    let mut auth = AuthConfig::new(users);
    auth.realm = args.realm.clone();
    auth.allow_basic = args.allow_basic_plain;
    auth.offer_digest = !args.basic_only;
    Ok(Some(auth))
}

/// The banner's line about authentication (never a password).
fn auth_banner(auth: &AuthConfig, tls: bool) -> String {
    let digest = if !auth.offer_digest {
        "no Digest (--basic-only)"
    } else if auth.users.has_htdigest() {
        "Digest MD5"
    } else {
        "Digest SHA-256/MD5"
    };
    let basic = if auth.allow_basic {
        " and Basic (in the clear: --allow-basic-plain)"
    } else if tls {
        " and Basic over TLS"
    } else {
        ""
    };
    format!(
        "authentication on: {} user{}, realm \"{}\", {digest}{basic}; OPTIONS is open",
        auth.users.len(),
        if auth.users.len() == 1 { "" } else { "s" },
        auth.realm
    )
}

/// Seconds, finite and not negative.
fn parse_max_lag(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=86_400.0).contains(&v) => Ok(v),
        Ok(_) => Err("expected seconds from 0 to 86400".to_owned()),
        Err(e) => Err(format!("expected seconds: {e}")),
    }
}

/// `SEQ:TS` as (u16, u32).
fn parse_initial_rtp(s: &str) -> Result<(u16, u32), String> {
    let (seq, ts) = s.split_once(':').ok_or("expected SEQ:TS, e.g. 65000:4294000000")?;
    let seq = seq.trim().parse::<u16>().map_err(|e| format!("SEQ (0..=65535): {e}"))?;
    let ts = ts
        .trim()
        .parse::<u32>()
        .map_err(|e| format!("TS (0..=4294967295): {e}"))?;
    Ok((seq, ts))
}

/// Resolves `host:port` to one socket address.
pub async fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    if let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    match tokio::net::lookup_host((host, port)).await {
        Ok(mut addrs) => addrs.next().ok_or_else(|| format!("{host} has no address")),
        Err(e) => Err(format!("cannot resolve {host}: {e}")),
    }
}

/// The URLs people can use: an unspecified address (0.0.0.0, ::) is shown as loopback.
pub fn shown_urls(urls: Vec<String>, local: SocketAddr) -> Vec<String> {
    if !local.ip().is_unspecified() {
        return urls;
    }
    let shown = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), local.port());
    urls.into_iter()
        .map(|u| u.replacen(&local.to_string(), &shown.to_string(), 1))
        .collect()
}

pub async fn run(args: &ServeArgs) -> u8 {
    if args.list_profiles {
        print!("{}", list_profiles());
        return EXIT_OK;
    }
    // Live paths only: an empty directory of this run's own is the file root.
    let empty = (args.dir.is_none() && (!args.relay.is_empty() || !args.publish.is_empty())).then(EmptyDir::new);
    let dir = match (&args.dir, &empty) {
        (Some(d), _) => d.as_path(),
        (None, Some(Ok(e))) => e.0.as_path(),
        (None, Some(Err(e))) => {
            eprintln!("error: cannot make an empty media root: {e}");
            return EXIT_FAILURE;
        }
        (None, None) => {
            eprintln!("error: --dir DIR is required (unless the server has only --relay or --publish paths)");
            return EXIT_USAGE;
        }
    };
    if !dir.is_dir() {
        eprintln!("error: --dir {}: not a directory", dir.display());
        return EXIT_USAGE;
    }
    let addr = match resolve(&args.host, args.port).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: --host: {e}");
            return EXIT_USAGE;
        }
    };
    let auth = match auth_config(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let tls = match tls_config(args) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let banner = auth.as_ref().map(|a| auth_banner(a, tls.is_some()));
    let mut options = ServerOptions {
        auth,
        ..ServerOptions::default()
    };
    options.config.initial_rtp = args.initial_rtp;
    options.config.max_lag = Duration::from_secs_f64(args.max_lag);
    options.config.udp_ports = args.udp_ports;
    options.config.multicast_groups = args.multicast_groups;
    options.config.multicast_ports = args.multicast_ports;
    options.config.multicast_ttl = args.multicast_ttl;
    options.config.udp = !args.no_udp;
    options.config.multicast = !args.no_multicast;
    options.config.fault_seed = args.seed;
    for spec in &args.profile {
        match read_profile(spec) {
            Ok(p) => options.config.profiles.push(p),
            Err(e) => {
                eprintln!("error: {e}");
                return EXIT_USAGE;
            }
        }
    }
    options.config.publish.clone_from(&args.publish);
    options.gop_cache = args.gop_cache;
    options.relays = args
        .relay
        .iter()
        .map(|r| RelaySpec {
            transport: args.relay_transport,
            ..r.clone()
        })
        .collect();
    if let Some(dir) = &args.backchannel_dir {
        if !dir.is_dir() {
            eprintln!("error: --backchannel-dir {}: not a directory", dir.display());
            return EXIT_USAGE;
        }
        options.backchannel_dir = Some(dir.clone());
        options.config.backchannel_codec = args.backchannel_codec;
    }
    let metrics = args.metrics.map(|_| Arc::new(Metrics::new()));
    if metrics.is_some() {
        options.config.progress_interval = Some(METRICS_PROGRESS);
    }
    // The `--json` event lines that come before the `server` line, printed after it.
    let held_lines: Arc<std::sync::Mutex<Option<Vec<String>>>> = Arc::new(std::sync::Mutex::new(Some(Vec::new())));
    if args.json || metrics.is_some() {
        let start = std::time::Instant::now();
        let (json, metrics) = (args.json, metrics.clone());
        let held = held_lines.clone();
        options.events = Some(EventHook::new(move |peer, event| {
            if let Some(m) = &metrics {
                m.record(peer, event);
            }
            if json {
                let line = event_line(start.elapsed(), peer, event);
                // Until the `server` line is out (a relay reports its upstream at once), lines wait.
                let mut held = held.lock().unwrap_or_else(|p| p.into_inner());
                match held.as_mut() {
                    Some(waiting) if waiting.len() < MAX_HELD_LINES => waiting.push(line),
                    Some(_) => {}
                    None => {
                        let _ = writeln!(std::io::stdout().lock(), "{line}");
                    }
                }
            }
        }));
    }
    let metrics_listener = match args.metrics {
        Some(a) => match tokio::net::TcpListener::bind(a).await {
            Ok(l) => Some(l),
            Err(e) => {
                eprintln!("error: --metrics: cannot listen on {a}: {e}");
                return EXIT_FAILURE;
            }
        },
        None => None,
    };
    let metrics_addr = metrics_listener.as_ref().and_then(|l| l.local_addr().ok());
    // TLS: on the one listener, or on a second server beside the plain one
    // (--tls-port), which shares the root and the options but not the
    // connection count, the UDP session registry or the auth's nonces. Basic
    // is accepted over TLS: the password is not in the clear there.
    let with_tls = |mut options: ServerOptions, tls: ServerTlsConfig| {
        options.tls = Some(tls);
        if let Some(auth) = &mut options.auth {
            auth.allow_basic = true;
        }
        options
    };
    let (main_options, tls_side) = match (tls, args.tls_port) {
        (Some(tls), Some(port)) => match resolve(&args.host, port).await {
            Ok(a) => (options.clone(), Some((with_tls(options, tls), a))),
            Err(e) => {
                eprintln!("error: --host: {e}");
                return EXIT_USAGE;
            }
        },
        (Some(tls), None) => (with_tls(options, tls), None),
        (None, _) => (options, None),
    };
    let main_scheme = if main_options.tls.is_some() { "rtsps" } else { "rtsp" };
    let fingerprint = main_options
        .tls
        .as_ref()
        .or(tls_side.as_ref().and_then(|(o, _)| o.tls.as_ref()))
        .map(|t| t.fingerprint().to_owned());
    let server = match bind(dir, main_options, addr).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let tls_server = match tls_side {
        Some((options, a)) => match bind(dir, options, a).await {
            Ok(s) => Some(s),
            Err(code) => return code,
        },
        None => None,
    };
    let local = server.local_addr();
    let mut urls = shown_urls(server.urls(), local);
    // Each file once, whatever the number of listeners.
    let files = urls.len();
    if let Some(t) = &tls_server {
        urls.extend(shown_urls(t.urls(), t.local_addr()));
    }
    let tls_url = tls_server.as_ref().map(|t| format!("rtsps://{}/", t.local_addr()));
    let metrics_url = metrics_addr.map(|a| format!("http://{a}/metrics"));
    if let (Some(listener), Some(m)) = (metrics_listener, metrics) {
        let states = std::iter::once(server.state().clone())
            .chain(tls_server.as_ref().map(|t| t.state().clone()))
            .collect();
        tokio::spawn(crate::metrics_http::serve(listener, m, states));
    }
    if args.json {
        #[derive(Serialize)]
        struct Listening<'a> {
            address: SocketAddr,
            url: String,
            root: String,
            urls: &'a [String],
            /// The banner's line about authentication, `null` without `--users`.
            authentication: Option<&'a str>,
            /// `--tls-port`'s listener, `null` without it.
            tls_url: Option<&'a str>,
            /// The TLS certificate's SHA-256 (what clients pin), `null` without TLS.
            tls_fingerprint: Option<&'a str>,
            /// `--metrics`' URL, `null` without it.
            metrics_url: Option<&'a str>,
            /// The live paths: `--relay`'s and `--publish`'s (without `*`), `{url, source}`.
            live: Vec<LiveUrl>,
        }
        #[derive(Serialize)]
        struct LiveUrl {
            url: String,
            source: String,
        }
        let first = crate::json::line(
            "server",
            &Default::default(),
            &Listening {
                address: local,
                url: format!("{main_scheme}://{local}/"),
                root: server.root().display().to_string(),
                urls: &urls,
                authentication: banner.as_deref(),
                tls_url: tls_url.as_deref(),
                tls_fingerprint: fingerprint.as_deref(),
                metrics_url: metrics_url.as_deref(),
                live: live_urls(args, main_scheme, local)
                    .into_iter()
                    .map(|(url, source)| LiveUrl { url, source })
                    .collect(),
            },
        );
        let mut held = held_lines.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{first}");
        for line in held.take().unwrap_or_default() {
            let _ = writeln!(out, "{line}");
        }
        let _ = out.flush();
    } else {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on {main_scheme}://{local}/");
        if let Some(u) = &tls_url {
            let _ = writeln!(out, "listening on {u}");
        }
        if let Some(fp) = &fingerprint {
            let _ = writeln!(out, "TLS certificate SHA-256 {fp}");
        }
        if let Some(u) = &metrics_url {
            let _ = writeln!(out, "metrics on {u}");
        }
        if local.ip().is_unspecified() {
            let _ = writeln!(
                out,
                "(every interface; from another machine use this machine's address)"
            );
        }
        if args.dir.is_some() {
            let _ = writeln!(out, "serving {} ({files} files)", server.root().display());
        } else {
            let _ = writeln!(out, "serving live paths only (no --dir)");
        }
        if let Some(b) = &banner {
            let _ = writeln!(out, "{b}");
        }
        for u in &urls {
            let _ = writeln!(out, "  {u}");
        }
        let live = live_urls(args, main_scheme, local);
        for (u, source) in &live {
            let _ = writeln!(out, "  {u}  ({source})");
        }
        if urls.is_empty() && live.is_empty() {
            let _ = writeln!(out, "  (nothing to publish: no .mp4 .mkv .webm .wav .aac files)");
        }
        if args.dir.is_some() {
            let _ = writeln!(
                out,
                "append ?play_count=N to a URL to play it N times (0: loop), ?codec=l16 or ?codec=g722 to a .wav URL for L16 or G.722 instead of PCMA, faults such as ?drop=0.05 (serve --list-profiles); Ctrl-C stops"
            );
        } else {
            let _ = writeln!(out, "Ctrl-C stops");
        }
        let _ = out.flush();
    }
    wait_for_signal().await;
    let connections = server.connections() + tls_server.as_ref().map_or(0, |t| t.connections());
    eprintln!("stopping: closing {connections} connections");
    if args.json {
        #[derive(Serialize)]
        struct Stopping {
            connections: usize,
        }
        let line = crate::json::line("stopping", &Default::default(), &Stopping { connections });
        let _ = writeln!(std::io::stdout().lock(), "{line}");
    }
    server.shutdown();
    if let Some(t) = &tls_server {
        t.shutdown();
    }
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        server.wait().await;
        if let Some(t) = tls_server {
            t.wait().await;
        }
    })
    .await;
    EXIT_OK
}

/// An empty directory of this process's own, removed on drop: the file root
/// of a server of live paths only.
struct EmptyDir(PathBuf);

impl EmptyDir {
    fn new() -> std::io::Result<EmptyDir> {
        let dir = std::env::temp_dir().join(format!("rtsp-toolkit-live-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(EmptyDir(dir))
    }
}

impl Drop for EmptyDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// `rtsp://ADDR/PATH` of every live path: (URL, what feeds it).
fn live_urls(args: &ServeArgs, scheme: &str, local: SocketAddr) -> Vec<(String, String)> {
    let relays = args.relay.iter().map(|r| {
        (
            format!("{scheme}://{local}/{}", r.name),
            format!("relay of {}", without_userinfo(&r.url)),
        )
    });
    let published = args.publish.iter().filter(|p| p.as_str() != "*").map(|p| {
        (
            format!("{scheme}://{local}/{}", p.trim_matches('/')),
            "publish here".to_owned(),
        )
    });
    relays.chain(published).collect()
}

/// Starts a server of `dir` with `options` on `addr`; the exit code when it cannot.
async fn bind(dir: &std::path::Path, options: ServerOptions, addr: SocketAddr) -> Result<Server, u8> {
    ServerBuilder::new(dir).options(options).bind(addr).await.map_err(|e| {
        eprintln!("error: cannot listen on {addr}: {e}");
        EXIT_FAILURE
    })
}

/// `serve --json`'s line for a server event: the event's own serialization
/// (its `type` first), with `t_s` (seconds since the server started) and the
/// connection's `peer` (`null` for a multicast stream's events) in front.
fn event_line(elapsed: Duration, peer: Option<SocketAddr>, event: &ServerEvent) -> String {
    let mut fields = match serde_json::to_value(event) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    let kind = match fields.remove("type") {
        Some(serde_json::Value::String(t)) => t,
        _ => "event".to_owned(),
    };
    let mut body = serde_json::Map::new();
    body.insert(
        "t_s".into(),
        serde_json::json!((elapsed.as_secs_f64() * 1e6).round() / 1e6),
    );
    body.insert("peer".into(), serde_json::json!(peer.map(|p| p.to_string())));
    body.extend(fields);
    crate::json::line(&kind, &Default::default(), &body)
}

/// Ctrl-C, or SIGTERM on Unix.
pub(crate) async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// `--relay-transport`.
fn parse_relay_transport(s: &str) -> Result<Transport, String> {
    s.parse::<Transport>()
        .map_err(|_| format!("unknown transport {s:?} (expected tcp, udp, multicast or auto)"))
}

/// `--backchannel-codec`.
fn parse_backchannel_codec(s: &str) -> Result<BackchannelCodec, String> {
    match s.to_ascii_lowercase().as_str() {
        "pcmu" => Ok(BackchannelCodec::Pcmu),
        "pcma" => Ok(BackchannelCodec::Pcma),
        "g722" => Ok(BackchannelCodec::G722),
        "aac" => Ok(BackchannelCodec::Aac),
        "aac-latm" => Ok(BackchannelCodec::AacLatm),
        _ => Err(format!("{s:?}: one of pcmu, pcma, g722, aac, aac-latm")),
    }
}

#[cfg(test)]
mod tests {
    use super::{auth_banner, auth_config, parse_initial_rtp, parse_max_lag, GroupRange, PortRange, ServeArgs};
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn users_file(name: &str, text: &str) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("rtsp-toolkit-users-{}-{name}", std::process::id()));
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn users_realm_and_basic_flags() {
        let p = users_file("ok", "# users\nalice:s3cret pw\n\nbob:x\n");
        let args = Cli::try_parse_from(["t", "--dir", ".", "--users", p.to_str().unwrap(), "--realm", "cams"])
            .unwrap()
            .serve;
        let auth = auth_config(&args).unwrap().unwrap();
        assert_eq!(auth.realm, "cams");
        assert!(!auth.allow_basic);
        let banner = auth_banner(&auth, false);
        assert_eq!(
            banner,
            "authentication on: 2 users, realm \"cams\", Digest SHA-256/MD5; OPTIONS is open"
        );
        assert!(!banner.contains("s3cret"));
        let args = Cli::try_parse_from(["t", "--dir", ".", "--users", p.to_str().unwrap(), "--allow-basic-plain"])
            .unwrap()
            .serve;
        let auth = auth_config(&args).unwrap().unwrap();
        assert!(auth.allow_basic && auth_banner(&auth, false).contains("Basic"));
        // --basic-only: Basic alone, and only where Basic may go.
        let parse = |extra: &[&str]| {
            let mut argv = vec!["t", "--dir", ".", "--users", p.to_str().unwrap(), "--basic-only"];
            argv.extend_from_slice(extra);
            auth_config(&Cli::try_parse_from(argv).unwrap().serve)
        };
        let auth = parse(&["--allow-basic-plain"]).unwrap().unwrap();
        assert!(auth.allow_basic && !auth.offer_digest);
        assert!(auth_banner(&auth, false).contains("no Digest (--basic-only) and Basic"));
        assert!(parse(&[]).unwrap_err().contains("needs TLS"));
        let tls = ["--tls-cert", "c.pem", "--tls-key", "k.pem"];
        assert!(parse(&tls).unwrap().is_some(), "Basic over TLS");
        assert!(parse(&[&tls[..], &["--tls-port", "0"]].concat())
            .unwrap_err()
            .contains("--tls-port"));
        // --realm, --allow-basic-plain and --basic-only need --users.
        assert!(Cli::try_parse_from(["t", "--dir", ".", "--basic-only"]).is_err());
        assert!(Cli::try_parse_from(["t", "--dir", ".", "--allow-basic-plain"]).is_err());
        assert!(Cli::try_parse_from(["t", "--dir", ".", "--realm", "x"]).is_err());
        let _ = std::fs::remove_file(p);
    }

    #[test]
    fn bad_user_files_are_usage_errors_without_passwords() {
        for (name, text, want) in [
            ("empty", "# nobody\n", "no users"),
            ("nocolon", "alice\n", "line 1"),
            ("twice", "a:hunter2\na:hunter2\n", "line 2"),
            ("realm", "c:other:0123456789abcdef0123456789abcdef\n", "realm \"other\""),
        ] {
            let p = users_file(name, text);
            let args = Cli::try_parse_from(["t", "--dir", ".", "--users", p.to_str().unwrap()])
                .unwrap()
                .serve;
            let e = auth_config(&args).unwrap_err();
            assert!(e.contains(want), "{name}: {e}");
            assert!(!e.contains("hunter2"), "{e}");
            let _ = std::fs::remove_file(p);
        }
        let args = Cli::try_parse_from(["t", "--dir", ".", "--users", "/nonexistent/users"])
            .unwrap()
            .serve;
        assert!(auth_config(&args).is_err());
    }

    #[test]
    fn max_lag_parses_seconds() {
        assert_eq!(parse_max_lag("0.5"), Ok(0.5));
        assert_eq!(parse_max_lag("0"), Ok(0.0));
        assert!(parse_max_lag("-1").is_err());
        assert!(parse_max_lag("inf").is_err());
        assert!(parse_max_lag("NaN").is_err());
        assert!(parse_max_lag("x").is_err());
    }

    #[test]
    fn udp_ports_parse_a_range_with_a_pair() {
        assert_eq!(PortRange::parse("30000-30999").map(|r| r.len()), Ok(500));
        assert!(PortRange::parse("30001-30001").is_err());
        assert!(PortRange::parse("30000").is_err());
    }

    #[test]
    fn multicast_groups_parse_a_range_of_multicast_addresses() {
        assert_eq!(
            GroupRange::parse("239.255.42.0-239.255.42.255").map(|r| r.len()),
            Ok(256)
        );
        assert!(GroupRange::parse("10.0.0.1-10.0.0.9").is_err());
        assert!(GroupRange::parse("239.0.0.9-239.0.0.1").is_err());
    }

    #[test]
    fn initial_rtp_parses_seq_and_ts() {
        assert_eq!(parse_initial_rtp("65000:4294000000"), Ok((65000, 4_294_000_000)));
        assert!(parse_initial_rtp("65536:0").is_err());
        assert!(parse_initial_rtp("1:4294967296").is_err());
        assert!(parse_initial_rtp("12").is_err());
    }
}
