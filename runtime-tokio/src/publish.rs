//! Publishing a presentation to an RTSP server on tokio: the core's
//! [`Publisher`] machine over a [`TcpStream`], as the client [`Session`](crate::Session)
//! drives the client machine (`docs/ARCHITECTURE.md`, "Publishing").
//!
//! ```no_run
//! use std::sync::Arc;
//! use rtsp_toolkit_tokio::core::server::publish::{PublishEvent, PublishOptions};
//! use rtsp_toolkit_tokio::{publish::publish, StopSignal};
//!
//! # async fn run(source: Arc<rtsp_toolkit_tokio::core::source::MediaSource>) -> Result<(), rtsp_toolkit_tokio::Error> {
//! publish("rtsp://127.0.0.1:8554/live", source, PublishOptions::default(), StopSignal::new(), |e| {
//!     if let PublishEvent::Finished { packets, error, .. } = e {
//!         println!("{packets} packets sent, {error:?}");
//!     }
//! })
//! .await?;
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::time::Instant;

use rtsp_toolkit_core::server::publish::{PublishEvent, PublishInput, PublishOptions, PublishOutput, Publisher};
use rtsp_toolkit_core::source::MediaSource;
use rtsp_toolkit_core::stop::StopSignal;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::io;
use crate::Error;

/// Publishes `source` to `url` in real time (ANNOUNCE, SETUP with
/// `mode=record`, RECORD, the media interleaved, TEARDOWN), giving every
/// [`PublishEvent`] to `on_event`; the last is [`PublishEvent::Finished`],
/// which says whether it succeeded. Raising `stop` ends the media early
/// (sender reports and BYE, then TEARDOWN).
///
/// # Errors
///
/// [`Error::Config`] for a URL that cannot be published to; everything
/// else arrives as the `Finished` event.
pub async fn publish(
    url: &str,
    source: Arc<MediaSource>,
    options: PublishOptions,
    stop: StopSignal,
    mut on_event: impl FnMut(PublishEvent),
) -> Result<(), Error> {
    let timeout = options.timeout;
    let mut p = Publisher::new(
        url,
        source,
        options,
        Instant::now(),
        rtsp_toolkit_driver::random_seed(),
        rtsp_toolkit_driver::ntp_now(),
    )
    .map_err(Error::Config)?;
    let (host, port) = p.connect_target();
    let (host, port) = (host.to_owned(), port);
    let mut socket: Option<TcpStream> = None;
    let mut connecting = Some(Box::pin(TcpStream::connect((host, port))));
    let mut buf = vec![0u8; 64 * 1024];
    let mut stopping = false;
    loop {
        match p.poll_output() {
            PublishOutput::Transmit(bytes) => {
                let Some(s) = socket.as_ref() else { continue };
                if let Err(e) = io::write_all_or_stall(s, &bytes, timeout).await {
                    let reason = e.reason();
                    p.handle_input(Instant::now(), PublishInput::IoError(&reason));
                }
            }
            PublishOutput::Event(e) => on_event(e),
            PublishOutput::Done => break,
            PublishOutput::Timeout(at) => {
                let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(at));
                if let Some(conn) = connecting.as_mut() {
                    tokio::select! {
                        r = conn => {
                            connecting = None;
                            match io::connected(r) {
                                Ok((local, peer, s)) => {
                                    socket = Some(s);
                                    p.handle_input(Instant::now(), PublishInput::Connected { local, peer });
                                }
                                Err(e) => {
                                    let reason = e.to_string();
                                    p.handle_input(Instant::now(), PublishInput::ConnectFailed(&reason));
                                }
                            }
                        }
                        _ = sleep => p.handle_input(Instant::now(), PublishInput::Timeout),
                        _ = stop.stopped(), if !stopping => {
                            stopping = true;
                            p.handle_input(Instant::now(), PublishInput::Close);
                        }
                    }
                } else if let Some(s) = socket.as_ref() {
                    tokio::select! {
                        biased;
                        w = io::read_until(s, &mut buf, at) => {
                            match w.read {
                                Some(Ok(0)) => p.handle_input(w.now, PublishInput::Eof),
                                Some(Ok(n)) => p.handle_input(w.now, PublishInput::Data(&buf[..n])),
                                Some(Err(e)) => {
                                    let reason = format!("read failed: {e}");
                                    p.handle_input(w.now, PublishInput::IoError(&reason));
                                }
                                None => {}
                            }
                            if w.deadline_passed {
                                p.handle_input(w.now, PublishInput::Timeout);
                            }
                        }
                        _ = stop.stopped(), if !stopping => {
                            stopping = true;
                            p.handle_input(Instant::now(), PublishInput::Close);
                        }
                    }
                } else {
                    sleep.await;
                    p.handle_input(Instant::now(), PublishInput::Timeout);
                }
            }
        }
    }
    if let Some(mut s) = socket {
        let _ = s.shutdown().await;
    }
    Ok(())
}
