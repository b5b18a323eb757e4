//! The server's end of the ONVIF audio backchannel: what a session's client
//! sends on its backchannel track ([`ServerOutput::Backchannel`]) written to
//! a WAV file per session (16-bit PCM, 8 kHz mono, G.711 decoded).
//!
//! The file is `DIR/<path>-<session id>.wav`, the path's `/` replaced by
//! `_` (`cams/front.mp4` gives `cams_front.mp4-5E6F05DB084E543B.wav`). It is
//! made at the session's first packet and its header completed when the
//! connection ends. Packets are written in arrival order (TCP interleaved:
//! the order sent); a payload type other than PCMU (0) or PCMA (8) is
//! dropped and logged once.
//!
//! [`ServerOutput::Backchannel`]: rtsp_toolkit_core::server::ServerOutput::Backchannel

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use rtsp_toolkit_core::codec::g711;
use rtsp_toolkit_core::rtp::RtpPacket;

use crate::audio::WavWriter;

/// The WAV file of one connection's backchannel, made at the first packet.
#[derive(Debug, Default)]
pub(super) struct BackchannelWav {
    writer: Option<(PathBuf, WavWriter<BufWriter<File>>)>,
    /// A write failed or a payload type was unknown: logged once, then quiet.
    failed: bool,
    pcm: Vec<i16>,
}

/// The file name for `path`'s session `session_id`.
pub(super) fn file_name(path: &str, session_id: &str) -> String {
    let path: String = path
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    format!("{path}-{session_id}.wav")
}

impl BackchannelWav {
    /// Appends the audio of `packet` (`dir`: where the files go; `None`: dropped).
    pub(super) fn packet(&mut self, dir: Option<&Path>, session_id: &str, path: &str, packet: &RtpPacket) {
        let Some(dir) = dir else { return };
        if self.failed {
            return;
        }
        self.pcm.clear();
        match packet.payload_type {
            0 => self.pcm.extend(packet.payload.iter().map(|&c| g711::ulaw_to_linear(c))),
            8 => self.pcm.extend(packet.payload.iter().map(|&c| g711::alaw_to_linear(c))),
            pt => {
                tracing::info!(pt, "backchannel audio of an unknown payload type dropped");
                self.failed = true;
                return;
            }
        }
        if self.writer.is_none() {
            let file = dir.join(file_name(path, session_id));
            match File::create(&file).and_then(|f| WavWriter::new(BufWriter::new(f), 8000, 1)) {
                Ok(w) => {
                    tracing::info!(file = %file.display(), "backchannel audio");
                    self.writer = Some((file, w));
                }
                Err(e) => {
                    tracing::warn!(file = %file.display(), error = %e, "cannot write the backchannel audio");
                    self.failed = true;
                    return;
                }
            }
        }
        if let Some((file, w)) = self.writer.as_mut() {
            if let Err(e) = w.write_samples(&self.pcm) {
                tracing::warn!(file = %file.display(), error = %e, "cannot write the backchannel audio");
                self.failed = true;
            }
        }
    }

    /// Completes the file's header (the connection ended).
    pub(super) fn finish(&mut self) {
        if let Some((file, w)) = self.writer.take() {
            if let Err(e) = w.finish().and_then(|mut b| b.flush()) {
                tracing::warn!(file = %file.display(), error = %e, "cannot complete the backchannel WAV");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_keep_the_path_in_one_component() {
        assert_eq!(file_name("cams/front.mp4", "AB12"), "cams_front.mp4-AB12.wav");
        assert_eq!(file_name("a\\b\n", "x"), "a_b_-x.wav");
    }
}
