//! `rtsp-toolkit view [URL]`: the live video in a window, a status bar, and the audio.
//!
//! Needs the cargo feature `viewer`; without it the command says how to build with it. Without a
//! URL it plays the bundled sample from the embedded server (looped, `?play_count=0`), like
//! `demo`.
//!
//! Three threads besides the async runtime, each owning what is not `Send`:
//! - the session loop (async): events, Ctrl-C, the status numbers;
//! - `view-decode`: the [`VideoDecoder`] (libavcodec), frames in, RGB pictures out;
//! - `view-window`: the window (minifb, X11), the audio decoder and player (cpal), and the clock
//!   that shows each picture when its RTP timestamp is due, so the video plays at its real
//!   frame rate (a short fixed delay absorbs arrival jitter and B-frame reordering).
//!
//! Closing the window, `Q`/`Esc`, or Ctrl-C stops the session (TEARDOWN) and exits 0; `M`
//! mutes. When the stream ends or fails, the window stays open with the last picture and the
//! reason until it is closed. What it is not: a jitter buffer with clock recovery or an A/V
//! sync engine (audio plays as it arrives).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

/// Options of `view`.
#[derive(Debug, Clone, Args)]
pub struct ViewArgs {
    /// rtsp://[user[:password]@]host[:port]/path [default: the bundled sample, served on loopback]
    pub url: Option<String>,
    /// Without URL: the media directory to serve [default: the bundled fixtures/media].
    #[arg(long, value_name = "DIR", conflicts_with = "url")]
    pub dir: Option<PathBuf>,
    /// Without URL: the file to play, relative to the directory.
    #[arg(long, value_name = "NAME", default_value = "h264_aac.mp4", conflicts_with = "url")]
    pub file: String,
    /// Do not set up the audio track.
    #[arg(long)]
    pub no_audio: bool,
    /// Start muted (M toggles).
    #[arg(long)]
    pub mute: bool,
    /// Seconds to wait for the connection, each response, and media while playing.
    #[arg(long, value_name = "SECS", default_value = "4", value_parser = parse_secs)]
    pub timeout: Duration,
    /// Connect to HOST:PORT instead of the URL's host, keeping the URL in requests.
    #[arg(long, value_name = "HOST:PORT")]
    pub forward: Option<String>,
    /// How RTP travels: tcp (interleaved), udp, multicast, auto (UDP, then TCP), or http (an HTTP tunnel).
    #[arg(long, value_name = "KIND", default_value = "tcp", value_parser = crate::probe::parse_transport)]
    pub transport: crate::probe::TransportArg,
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(v.is_finite() && v > 0.0 && v < 1e9) {
        return Err(format!("{s} must be a positive number of seconds"));
    }
    Ok(Duration::from_secs_f64(v))
}

#[cfg(not(feature = "viewer"))]
pub async fn run(_args: &ViewArgs) -> u8 {
    eprintln!(
        "error: view: this build has no viewer; build with `cargo run --release -p rtsp-toolkit --features viewer \
         -- view` (needs FFmpeg's and ALSA's development packages, see docs/CLI.md)"
    );
    crate::EXIT_USAGE
}

#[cfg(feature = "viewer")]
pub use imp::run;

#[cfg(feature = "viewer")]
mod imp {
    use std::collections::VecDeque;
    use std::net::{Ipv4Addr, SocketAddr};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{mpsc, Arc, Mutex, PoisonError};
    use std::thread;
    use std::time::{Duration, Instant};

    use minifb::{Key, KeyRepeat, ScaleMode, Window, WindowOptions};
    use rtsp_toolkit_media::audio::{AudioDecoder, Player};
    use rtsp_toolkit_media::video::{Picture, PixelFormat, VideoDecodeError, VideoDecoder};
    use rtsp_toolkit_tokio::core::sdp::{Media, MediaKind};
    use rtsp_toolkit_tokio::server::ServerBuilder;
    use rtsp_toolkit_tokio::{AudioFrame, ClientOptions, Error, Event, LogKinds, Session, VideoFrame};

    use super::ViewArgs;
    use crate::{EXIT_FAILURE, EXIT_OK, EXIT_USAGE};

    /// Pictures are shown this long after the first one arrived, relative to their timestamps.
    const PLAYOUT_DELAY: Duration = Duration::from_millis(150);
    /// Video area of a new window (the window can be resized; pictures are scaled to fit).
    const INITIAL_SIZE: (usize, usize) = (640, 480);
    /// Status bar under the video: a 16 px headline and four 8 px lines.
    const BAR_HEIGHT: usize = 88;

    /// What the status bar shows, shared by the threads.
    #[derive(Debug, Default)]
    struct Status {
        url: String,
        video_codec: Option<String>,
        audio: Option<String>,
        /// The last timing of each method, in the order first seen.
        methods: Vec<(String, Duration)>,
        lost: u64,
        /// Video payload bitrate over the last second of arrivals.
        bitrate_bps: f64,
        decode_errors: u64,
        audio_note: Option<String>,
        state: State,
    }

    #[derive(Debug, Default, Clone, PartialEq)]
    enum State {
        #[default]
        Connecting,
        Playing(Instant),
        Stopping,
        Ended(String),
        Failed(String),
    }

    type Shared = Arc<Mutex<Status>>;

    fn lock(s: &Shared) -> std::sync::MutexGuard<'_, Status> {
        s.lock().unwrap_or_else(PoisonError::into_inner)
    }

    enum VideoMsg {
        Setup(Box<Media>),
        Frame(VideoFrame),
    }

    enum AudioMsg {
        Setup(Box<Media>),
        Frame(AudioFrame),
    }

    /// Runs the viewer until the window is closed or Ctrl-C; the exit code.
    pub async fn run(args: &ViewArgs) -> u8 {
        let mut server = None;
        let url = match &args.url {
            Some(u) => u.clone(),
            None => match start_server(args).await {
                Ok((s, url)) => {
                    println!("embedded RTSP server on rtsp://{}/, playing {url}", s.local_addr());
                    server = Some(s);
                    url
                }
                Err(code) => return code,
            },
        };
        let code = view(args, &url).await;
        if let Some(s) = server {
            s.shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(3), s.wait()).await;
        }
        code
    }

    async fn start_server(args: &ViewArgs) -> Result<(rtsp_toolkit_tokio::server::Server, String), u8> {
        let Some(dir) = args.dir.clone().or_else(crate::demo::bundled_media) else {
            eprintln!("error: the bundled sample media (fixtures/media) was not found; pass a URL or --dir DIR");
            return Err(EXIT_USAGE);
        };
        let server = match ServerBuilder::new(&dir)
            .bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
        {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: cannot start the embedded server on {}: {e}", dir.display());
                return Err(EXIT_FAILURE);
            }
        };
        let wanted = format!("/{}", args.file.trim_start_matches('/'));
        match server.urls().into_iter().find(|u| u.ends_with(&wanted)) {
            // Looped, so the window has something to show until it is closed.
            Some(u) => Ok((server, format!("{u}?play_count=0"))),
            None => {
                eprintln!(
                    "error: --file {}: not published from {}",
                    args.file,
                    server.root().display()
                );
                server.shutdown();
                Err(EXIT_USAGE)
            }
        }
    }

    async fn view(args: &ViewArgs, url: &str) -> u8 {
        let options = {
            let mut o = ClientOptions::default()
                .with_audio(!args.no_audio)
                .with_timeout(args.timeout)
                .with_log(LogKinds::RTSP)
                .with_transport(args.transport.transport)
                .with_tunnel(args.transport.tunnel);
            o.forward_address = args.forward.clone();
            o
        };
        let mut session = match Session::open(url, options) {
            Ok(s) => s,
            Err(e) => {
                eprintln!(
                    "error: {}",
                    match e {
                        Error::Config(m) => m,
                        other => other.to_string(),
                    }
                );
                return EXIT_USAGE;
            }
        };
        let status: Shared = Arc::new(Mutex::new(Status {
            url: crate::probe::redact(url),
            ..Status::default()
        }));
        let (video_tx, video_rx) = mpsc::channel::<VideoMsg>();
        let (audio_tx, audio_rx) = mpsc::channel::<AudioMsg>();
        let (picture_tx, picture_rx) = mpsc::channel::<Picture>();
        // The window thread says it closed (and why, if it could not open).
        let (closed_tx, mut closed_rx) = tokio::sync::mpsc::unbounded_channel::<Option<String>>();
        let close = Arc::new(AtomicBool::new(false));

        let decode = {
            let status = status.clone();
            thread::Builder::new()
                .name("view-decode".into())
                .spawn(move || decode_thread(video_rx, picture_tx, status))
        };
        let window = {
            let status = status.clone();
            let close = close.clone();
            let muted = args.mute;
            thread::Builder::new().name("view-window".into()).spawn(move || {
                let error = window_thread(picture_rx, audio_rx, status, close, muted).err();
                let _ = closed_tx.send(error);
            })
        };
        let (Ok(decode), Ok(window)) = (decode, window) else {
            eprintln!("error: cannot start the viewer's threads");
            return EXIT_FAILURE;
        };

        let mut sdp_media: Vec<Media> = Vec::new();
        let mut arrivals: VecDeque<(Instant, usize)> = VecDeque::new();
        let mut video_track = None;
        let mut audio_track = None;
        let mut session_error: Option<Error> = None;
        let mut window_error: Option<String> = None;
        let mut session_done = false;
        let mut window_done = false;
        let mut stop_deadline: Option<tokio::time::Instant> = None;
        let mut ctrl_c = Box::pin(crate::serve::wait_for_signal());
        let mut interrupts = 0u32;
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);

        while !(session_done && window_done) {
            tokio::select! {
                event = session.next_event(), if !session_done => {
                    let Some(event) = event else {
                        session_done = true;
                        continue;
                    };
                    match event {
                        Event::Connect(c) => println!("{}", crate::text::connect(&c)),
                        Event::Method(m) => {
                            println!("{}", crate::text::method(&m));
                            if let Some(sdp) = &m.sdp {
                                sdp_media = sdp.media.clone();
                            }
                            let mut s = lock(&status);
                            let name = m.method.as_str().to_owned();
                            match s.methods.iter_mut().find(|(n, _)| *n == name) {
                                Some(row) => row.1 = m.elapsed,
                                None => s.methods.push((name, m.elapsed)),
                            }
                            if let Some(t) = &m.track {
                                let media = sdp_media.get(t.media_index).cloned();
                                match (&t.kind, media) {
                                    (MediaKind::Video, Some(media)) if video_track.is_none() => {
                                        video_track = Some(t.index);
                                        s.video_codec = Some(t.codec.clone());
                                        let _ = video_tx.send(VideoMsg::Setup(Box::new(media)));
                                    }
                                    (MediaKind::Audio, Some(media)) if audio_track.is_none() => {
                                        audio_track = Some(t.index);
                                        let channels = t.channels.map(|c| format!("/{c}")).unwrap_or_default();
                                        s.audio = Some(format!("{} {}{channels}", t.codec, t.clock_rate));
                                        let _ = audio_tx.send(AudioMsg::Setup(Box::new(media)));
                                    }
                                    _ => {}
                                }
                            }
                            if m.method.as_str() == "PLAY" && m.is_success() && s.state == State::Connecting {
                                s.state = State::Playing(Instant::now());
                            }
                        }
                        Event::Video(v) if Some(v.track) == video_track => {
                            arrivals.push_back((Instant::now(), v.frame.data.len()));
                            let _ = video_tx.send(VideoMsg::Frame(v.frame));
                        }
                        Event::Audio(a) if Some(a.track) == audio_track => {
                            let _ = audio_tx.send(AudioMsg::Frame(a.frame));
                        }
                        Event::Loss(l) => lock(&status).lost += u64::from(l.lost),
                        Event::Closed(c) => {
                            let mut s = lock(&status);
                            let how = match (&c.error, &s.state) {
                                (Some(e), _) => format!("error: {e}"),
                                (None, State::Stopping) => "stopped (TEARDOWN)".to_owned(),
                                (None, _) => "the stream ended".to_owned(),
                            };
                            println!("{}", crate::text::line(c.session_elapsed, "closed", &how));
                            s.state = match &c.error {
                                Some(e) => {
                                    eprintln!("error: {e}");
                                    State::Failed(e.to_string())
                                }
                                None if s.state == State::Stopping => State::Stopping,
                                None => State::Ended("the stream ended".to_owned()),
                            };
                            session_error = c.error;
                        }
                        _ => {}
                    }
                }
                closed = closed_rx.recv(), if !window_done => {
                    window_done = true;
                    window_error = closed.flatten();
                    if !session_done {
                        lock(&status).state = State::Stopping;
                        session.stop();
                        stop_deadline = Some(tokio::time::Instant::now() + args.timeout + Duration::from_secs(1));
                    }
                }
                _ = &mut ctrl_c => {
                    interrupts += 1;
                    if interrupts >= 2 {
                        eprintln!("interrupted again: aborting without waiting for TEARDOWN");
                        return crate::probe::EXIT_INTERRUPTED;
                    }
                    ctrl_c = Box::pin(crate::serve::wait_for_signal());
                    close.store(true, Ordering::Relaxed);
                    if !session_done {
                        lock(&status).state = State::Stopping;
                        session.stop();
                        stop_deadline = Some(tokio::time::Instant::now() + args.timeout + Duration::from_secs(1));
                    }
                }
                _ = tick.tick() => {
                    let now = Instant::now();
                    while arrivals.front().is_some_and(|(t, _)| now - *t > Duration::from_secs(1)) {
                        arrivals.pop_front();
                    }
                    let bytes: usize = arrivals.iter().map(|(_, n)| n).sum();
                    lock(&status).bitrate_bps = bytes as f64 * 8.0;
                    if stop_deadline.is_some_and(|d| tokio::time::Instant::now() > d) {
                        // TEARDOWN unanswered: the session's own timeout should have ended it.
                        session_done = true;
                    }
                }
            }
        }
        drop(video_tx);
        drop(audio_tx);
        let _ = tokio::task::spawn_blocking(move || {
            let _ = window.join();
            let _ = decode.join();
        })
        .await;
        if let Some(e) = window_error {
            eprintln!("error: {e}");
            return EXIT_FAILURE;
        }
        if session_error.is_some() {
            return EXIT_FAILURE;
        }
        EXIT_OK
    }

    /// Frames in, pictures out, until the session loop hangs up.
    fn decode_thread(frames: mpsc::Receiver<VideoMsg>, pictures: mpsc::Sender<Picture>, status: Shared) {
        let mut decoder: Option<VideoDecoder> = None;
        for msg in frames {
            match msg {
                VideoMsg::Setup(media) => match VideoDecoder::from_sdp(&media, PixelFormat::Rgb24) {
                    Ok(d) => decoder = Some(d),
                    Err(e) => lock(&status).state = State::Failed(e.to_string()),
                },
                VideoMsg::Frame(frame) => {
                    let Some(d) = decoder.as_mut() else { continue };
                    match d.feed(&frame) {
                        Ok(out) => {
                            for p in out {
                                if pictures.send(p).is_err() {
                                    return;
                                }
                            }
                        }
                        Err(VideoDecodeError::WaitingForKeyframe) => {}
                        Err(_) => lock(&status).decode_errors += 1,
                    }
                }
            }
        }
    }

    /// Shows pictures when their timestamps are due: the first one [`PLAYOUT_DELAY`] after it
    /// arrives, the others at the same offsets as their RTP timestamps (90 kHz).
    #[derive(Debug, Default)]
    struct Clock {
        base: Option<(Instant, u32)>,
    }

    impl Clock {
        fn due(&mut self, timestamp: u32, now: Instant) -> Instant {
            let (at, ts0) = *self.base.get_or_insert((now + PLAYOUT_DELAY, timestamp));
            let offset = f64::from(timestamp.wrapping_sub(ts0) as i32) / 90_000.0;
            let due = if offset >= 0.0 {
                at + Duration::from_secs_f64(offset)
            } else {
                at.checked_sub(Duration::from_secs_f64(-offset)).unwrap_or(at)
            };
            // A jump (a new stream, a wrap, a camera reset): start over from this picture.
            if due > now + Duration::from_secs(3) || now.saturating_duration_since(due) > Duration::from_secs(3) {
                self.base = Some((now + PLAYOUT_DELAY, timestamp));
                return now + PLAYOUT_DELAY;
            }
            due
        }
    }

    /// The window, the audio and the pacing, until the window is closed or `close` is raised.
    fn window_thread(
        pictures: mpsc::Receiver<Picture>,
        audio: mpsc::Receiver<AudioMsg>,
        status: Shared,
        close: Arc<AtomicBool>,
        mut muted: bool,
    ) -> Result<(), String> {
        let title = format!("rtsp-toolkit view - {}", lock(&status).url);
        let mut window = Window::new(
            &title,
            INITIAL_SIZE.0,
            INITIAL_SIZE.1 + BAR_HEIGHT,
            WindowOptions {
                resize: true,
                scale_mode: ScaleMode::UpperLeft,
                ..WindowOptions::default()
            },
        )
        .map_err(|e| format!("cannot open a window (is DISPLAY set?): {e}"))?;
        window.set_target_fps(100);

        let mut player = None;
        let mut audio_decoder = None;
        let mut queue: VecDeque<Picture> = VecDeque::new();
        let mut clock = Clock::default();
        let mut current: Option<Picture> = None;
        let mut shown: VecDeque<Instant> = VecDeque::new();
        let mut buffer: Vec<u32> = Vec::new();
        let mut size = (0, 0);
        let mut dirty = true;

        while window.is_open() && !close.load(Ordering::Relaxed) {
            if window.is_key_pressed(Key::Escape, KeyRepeat::No) || window.is_key_pressed(Key::Q, KeyRepeat::No) {
                break;
            }
            if window.is_key_pressed(Key::M, KeyRepeat::No) {
                muted = !muted;
            }
            // Audio: decode and queue as it arrives.
            while let Ok(msg) = audio.try_recv() {
                match msg {
                    AudioMsg::Setup(media) => {
                        match AudioDecoder::from_media(&media, None) {
                            Ok(d) => audio_decoder = Some(d),
                            Err(e) => lock(&status).audio_note = Some(format!("audio not decoded: {e}")),
                        }
                        match Player::open_default() {
                            Ok(p) => {
                                let mut s = lock(&status);
                                let to = format!(" -> {} Hz {} ch", p.device_sample_rate(), p.device_channels());
                                if let Some(a) = s.audio.as_mut() {
                                    a.push_str(&to);
                                }
                                player = Some(p);
                            }
                            Err(e) => lock(&status).audio_note = Some(format!("no audio output: {e}")),
                        }
                    }
                    AudioMsg::Frame(frame) => {
                        let (Some(d), Some(p)) = (audio_decoder.as_mut(), player.as_mut()) else {
                            continue;
                        };
                        let Ok(pcm) = d.feed(&frame) else { continue };
                        if muted {
                            continue;
                        }
                        for f in &pcm {
                            if let Err(e) = p.play(f) {
                                lock(&status).audio_note = Some(format!("audio output: {e}"));
                            }
                        }
                    }
                }
            }
            // Video: the latest picture that is due.
            queue.extend(pictures.try_iter());
            let now = Instant::now();
            while let Some(p) = queue.front() {
                if clock.due(p.timestamp, now) > now {
                    break;
                }
                current = queue.pop_front();
                shown.push_back(now);
                dirty = true;
            }
            while shown.front().is_some_and(|t| now - *t > Duration::from_secs(1)) {
                shown.pop_front();
            }

            let (w, h) = window.get_size();
            let (w, h) = (w.max(64), h.max(BAR_HEIGHT + 16));
            if (w, h) != size {
                size = (w, h);
                buffer = vec![0; w * h];
                dirty = true;
            }
            let video_h = h - BAR_HEIGHT;
            if dirty {
                if let Some(p) = &current {
                    draw_picture(&mut buffer, w, video_h, p);
                }
                dirty = false;
            }
            let fps = shown.len() as f64;
            draw_bar(&mut buffer, w, video_h, &lock(&status), current.as_ref(), fps, muted);
            window
                .update_with_buffer(&buffer, w, h)
                .map_err(|e| format!("window update: {e}"))?;
        }
        Ok(())
    }

    /// `p` scaled (nearest neighbour) to fit `w` x `h`, centred, black around it.
    fn draw_picture(buffer: &mut [u32], w: usize, h: usize, p: &Picture) {
        let (pw, ph) = (p.width as usize, p.height as usize);
        buffer[..w * h].fill(0);
        if pw == 0 || ph == 0 || p.data.len() < pw * ph * 3 {
            return;
        }
        // Fit by the smaller ratio.
        let (dw, dh) = if w * ph <= h * pw {
            (w, (ph * w / pw).max(1))
        } else {
            ((pw * h / ph).max(1), h)
        };
        let (x0, y0) = ((w - dw) / 2, (h - dh) / 2);
        let xs: Vec<usize> = (0..dw).map(|x| x * pw / dw).collect();
        for y in 0..dh {
            let src = &p.data[(y * ph / dh) * pw * 3..][..pw * 3];
            let row = &mut buffer[(y0 + y) * w + x0..][..dw];
            for (out, &sx) in row.iter_mut().zip(&xs) {
                let px = &src[sx * 3..sx * 3 + 3];
                *out = (u32::from(px[0]) << 16) | (u32::from(px[1]) << 8) | u32::from(px[2]);
            }
        }
    }

    const BAR_BG: u32 = 0x00_20_20_24;
    const TEXT: u32 = 0x00_f0_f0_f0;
    const DIM: u32 = 0x00_a8_b0_b8;
    const WARN: u32 = 0x00_ff_70_60;
    const GOOD: u32 = 0x00_80_e0_90;

    fn draw_bar(
        buffer: &mut [u32],
        w: usize,
        top: usize,
        s: &Status,
        picture: Option<&Picture>,
        fps: f64,
        muted: bool,
    ) {
        buffer[top * w..].fill(BAR_BG);
        let codec = s.video_codec.as_deref().unwrap_or("video");
        let resolution = picture
            .map(|p| format!("{}x{}", p.width, p.height))
            .unwrap_or_else(|| "-".to_owned());
        let headline = format!(
            "{codec} {resolution}  {fps:.0} fps  {}",
            crate::text::bitrate(s.bitrate_bps)
        );
        let x = draw_text(buffer, w, 8, top + 6, &headline, TEXT, 2);
        let lost_color = if s.lost > 0 { WARN } else { GOOD };
        draw_text(buffer, w, x + 16, top + 6, &format!("lost {}", s.lost), lost_color, 2);

        let audio = match (&s.audio, &s.audio_note) {
            (_, Some(note)) => note.clone(),
            (Some(a), None) => format!("audio {a}"),
            (None, None) => "no audio".to_owned(),
        };
        let line2 = format!("{audio} | decode errors {}", s.decode_errors);
        draw_text(buffer, w, 8, top + 28, &line2, DIM, 1);
        let methods: Vec<String> = s
            .methods
            .iter()
            .map(|(m, d)| format!("{m} {}", crate::text::dur(*d)))
            .collect();
        draw_text(buffer, w, 8, top + 42, &methods.join("  "), DIM, 1);
        let (state, color) = match &s.state {
            State::Connecting => (format!("connecting to {}", s.url), DIM),
            State::Playing(since) => (
                format!("playing {}  {:.0} s", s.url, since.elapsed().as_secs_f64()),
                GOOD,
            ),
            State::Stopping => ("stopping (TEARDOWN)".to_owned(), DIM),
            State::Ended(why) => (format!("{why}: close the window to exit"), TEXT),
            State::Failed(why) => (format!("error: {why}"), WARN),
        };
        draw_text(buffer, w, 8, top + 58, &state, color, 1);
        let (keys, color) = if muted {
            ("MUTED - M unmutes, Q or Esc quits", WARN)
        } else {
            ("M mutes, Q or Esc quits", DIM)
        };
        draw_text(buffer, w, 8, top + 72, keys, color, 1);
    }

    /// Draws `text` with the 8x8 font at `scale`, clipped to the buffer; returns the x after it.
    fn draw_text(buffer: &mut [u32], w: usize, x: usize, y: usize, text: &str, color: u32, scale: usize) -> usize {
        let h = buffer.len() / w.max(1);
        let mut cx = x;
        for ch in text.chars() {
            let glyph = font8x8::legacy::BASIC_LEGACY
                .get(ch as usize)
                .copied()
                .unwrap_or(font8x8::legacy::BASIC_LEGACY[usize::from(b'?')]);
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..8 {
                    if bits & (1 << col) == 0 {
                        continue;
                    }
                    for dy in 0..scale {
                        for dx in 0..scale {
                            let (px, py) = (cx + col * scale + dx, y + row * scale + dy);
                            if px < w && py < h {
                                buffer[py * w + px] = color;
                            }
                        }
                    }
                }
            }
            cx += 8 * scale;
        }
        cx
    }
}
