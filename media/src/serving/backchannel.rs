//! The server's end of the ONVIF audio backchannel: what a session's client
//! sends on its backchannel track ([`ServerOutput::Backchannel`]) written to
//! a WAV file per session (16-bit PCM, mono: the codec offered,
//! [`ServerConfig::backchannel_codec`], decoded; PCMU and PCMA at 8 kHz,
//! G.722 and AAC at 16 kHz).
//!
//! The file is `DIR/<path>-<session id>.wav`, the path's `/` replaced by
//! `_` (`cams/front.mp4` gives `cams_front.mp4-5E6F05DB084E543B.wav`). It is
//! made at the session's first packet and its header completed when the
//! connection ends. Packets go through the core's depacketizer for the
//! offered section and [`AudioDecoder`] (AAC: Symphonia's decoder, no
//! cargo feature needed), in arrival order (TCP interleaved: the order
//! sent). A packet of another payload type than the one offered is dropped
//! and logged once; an access unit that does not decode is logged and
//! skipped (a gap in the file, not the end of it).
//!
//! [`ServerOutput::Backchannel`]: rtsp_toolkit_core::server::ServerOutput::Backchannel
//! [`ServerConfig::backchannel_codec`]: rtsp_toolkit_core::server::ServerConfig::backchannel_codec

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use rtsp_toolkit_core::client::BackchannelCodec;
use rtsp_toolkit_core::codec::{Depacketizer, Frame, SequenceTracker};
use rtsp_toolkit_core::rtp::RtpPacket;

use crate::audio::{AudioDecoder, PcmFrame, WavWriter};

/// Largest access unit taken from the backchannel (AAC frames are a few
/// hundred bytes).
const MAX_FRAME_BYTES: usize = 64 * 1024;

/// The WAV file of one connection's backchannel, made at the first packet.
#[derive(Debug, Default)]
pub(super) struct BackchannelWav {
    writer: Option<Writer>,
    /// A write failed or the decoder could not be made: logged once, then quiet.
    failed: bool,
    /// A packet of another payload type was logged.
    foreign_logged: bool,
}

/// The open file and what turns packets into its samples.
#[derive(Debug)]
struct Writer {
    file: PathBuf,
    wav: WavWriter<BufWriter<File>>,
    payload_type: u8,
    depacketizer: Depacketizer,
    decoder: AudioDecoder,
    sequence: SequenceTracker,
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

impl Writer {
    fn open(dir: &Path, session_id: &str, path: &str, codec: BackchannelCodec) -> Result<Writer, String> {
        let media = codec.offered_media("");
        let depacketizer = Depacketizer::new(&media, MAX_FRAME_BYTES).map_err(|e| e.to_string())?;
        let decoder = AudioDecoder::from_media(&media, None).map_err(|e| e.to_string())?;
        let file = dir.join(file_name(path, session_id));
        let wav = File::create(&file)
            .and_then(|f| {
                WavWriter::new(
                    BufWriter::new(f),
                    decoder.output_sample_rate(),
                    decoder.output_channels(),
                )
            })
            .map_err(|e| format!("{}: {e}", file.display()))?;
        tracing::info!(file = %file.display(), codec = codec.encoding_name(), "backchannel audio");
        Ok(Writer {
            file,
            wav,
            payload_type: media.payload_type,
            depacketizer,
            decoder,
            sequence: SequenceTracker::new(),
        })
    }

    fn write(&mut self, frames: &[PcmFrame]) -> std::io::Result<()> {
        frames.iter().try_for_each(|f| self.wav.write_frame(f))
    }

    /// Depacketizes and decodes `packet` into the file.
    fn packet(&mut self, packet: &RtpPacket) -> std::io::Result<()> {
        let lost = self.sequence.observe(packet.sequence_number);
        if let Err(e) = self.depacketizer.push(packet, lost) {
            tracing::debug!(error = %e, "backchannel packet dropped");
        }
        while let Some(frame) = self.depacketizer.pull() {
            let Frame::Audio(frame) = frame else { continue };
            match self.decoder.feed(&frame) {
                Ok(pcm) => self.write(&pcm)?,
                Err(e) => tracing::debug!(error = %e, "backchannel audio frame skipped"),
            }
        }
        Ok(())
    }
}

impl BackchannelWav {
    /// Appends the audio of `packet`, of `codec` (`dir`: where the files
    /// go; `None`: dropped).
    pub(super) fn packet(
        &mut self,
        dir: Option<&Path>,
        codec: BackchannelCodec,
        session_id: &str,
        path: &str,
        packet: &RtpPacket,
    ) {
        let Some(dir) = dir else { return };
        if self.failed {
            return;
        }
        if self.writer.is_none() {
            match Writer::open(dir, session_id, path, codec) {
                Ok(w) => self.writer = Some(w),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot write the backchannel audio");
                    self.failed = true;
                    return;
                }
            }
        }
        let Some(w) = self.writer.as_mut() else { return };
        if packet.payload_type != w.payload_type {
            if !self.foreign_logged {
                tracing::info!(
                    pt = packet.payload_type,
                    "backchannel audio of an unknown payload type dropped"
                );
                self.foreign_logged = true;
            }
            return;
        }
        if let Err(e) = w.packet(packet) {
            tracing::warn!(file = %w.file.display(), error = %e, "cannot write the backchannel audio");
            self.failed = true;
        }
    }

    /// Writes what the decoder still holds and completes the file's header
    /// (the connection ended).
    pub(super) fn finish(&mut self) {
        if let Some(mut w) = self.writer.take() {
            let rest = w.decoder.flush();
            if let Err(e) = w.write(&rest).and_then(|()| w.wav.finish()).and_then(|mut b| b.flush()) {
                tracing::warn!(file = %w.file.display(), error = %e, "cannot complete the backchannel WAV");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtsp_toolkit_core::codec::g711;

    #[test]
    fn file_names_keep_the_path_in_one_component() {
        assert_eq!(file_name("cams/front.mp4", "AB12"), "cams_front.mp4-AB12.wav");
        assert_eq!(file_name("a\\b\n", "x"), "a_b_-x.wav");
    }

    fn packet(seq: u16, pt: u8, payload: &[u8]) -> RtpPacket {
        let mut b = bytes::BytesMut::new();
        rtsp_toolkit_core::rtp::RtpHeader {
            sequence_number: seq,
            timestamp: u32::from(seq) * 1024,
            ssrc: 1,
            marker: true,
            payload_type: pt,
        }
        .write_packet(payload, &mut b);
        RtpPacket::parse(b.freeze()).unwrap()
    }

    /// The files of `dir` after `packets` of a session offered `codec`: (name, rate, samples).
    fn wav_of(codec: BackchannelCodec, packets: &[RtpPacket]) -> Vec<(String, u32, Vec<i16>)> {
        let dir = std::env::temp_dir().join(format!("rtsp-toolkit-bc-wav-{codec:?}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut w = BackchannelWav::default();
        for p in packets {
            w.packet(Some(&dir), codec, "S1", "a/b.wav", p);
        }
        w.finish();
        let out = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| {
                let path = e.unwrap().path();
                let data = std::fs::read(&path).unwrap();
                let rate = u32::from_le_bytes(data[24..28].try_into().unwrap());
                let samples = data[44..]
                    .chunks_exact(2)
                    .map(|b| i16::from_le_bytes([b[0], b[1]]))
                    .collect();
                (path.file_name().unwrap().to_string_lossy().into_owned(), rate, samples)
            })
            .collect();
        let _ = std::fs::remove_dir_all(&dir);
        out
    }

    #[test]
    fn each_offered_codec_is_decoded_and_other_payload_types_dropped() {
        // PCMA: its codes decoded; a PCMU packet (the wrong payload type) dropped.
        let codes = [0xd5u8, 0x55, 0x2a, 0xaa];
        let got = wav_of(
            BackchannelCodec::Pcma,
            &[packet(1, 8, &codes), packet(2, 0, &[0xff; 4]), packet(3, 8, &codes)],
        );
        let expected: Vec<i16> = codes.iter().chain(&codes).map(|&c| g711::alaw_to_linear(c)).collect();
        assert_eq!(got, [("a_b.wav-S1.wav".to_owned(), 8000, expected)]);
        // G.722: 16 kHz, two samples per code.
        let got = wav_of(BackchannelCodec::G722, &[packet(1, 9, &[0xfa; 160])]);
        assert_eq!((got[0].1, got[0].2.len()), (16_000, 320));
    }

    #[test]
    fn undecodable_aac_leaves_a_gap_not_a_panic() {
        for (codec, payload) in [
            // AAC-hbr: one 6-byte AU that is not AAC.
            (BackchannelCodec::Aac, &[0x00, 0x10, 0x00, 0x30, 1, 2, 3, 4, 5, 6][..]),
            // LATM: a 6-byte AU that is not AAC, and a truncated element.
            (BackchannelCodec::AacLatm, &[6, 1, 2, 3, 4, 5, 6][..]),
            (BackchannelCodec::AacLatm, &[200, 1][..]),
        ] {
            let got = wav_of(codec, &[packet(1, 96, payload), packet(2, 96, &[])]);
            assert_eq!(got.len(), 1, "{codec:?}: the file is made at the first packet");
            assert_eq!(got[0].1, 16_000);
            assert!(got[0].2.len() <= 2048, "{codec:?}: {} samples", got[0].2.len());
        }
    }
}
