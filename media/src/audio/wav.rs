//! Writing decoded audio as a 16-bit PCM WAV file.
//!
//! What it is: the canonical 44-byte RIFF/WAVE header and a [`WavWriter`] that streams samples
//! behind it and patches the two size fields when done, so a recording of unknown length needs
//! no buffering. What it is not: a WAV reader (the file sources in this crate read WAV).

use std::io::{self, Seek, SeekFrom, Write};

use super::PcmFrame;

/// Size of the header [`write_wav_header`] writes.
pub const WAV_HEADER_LEN: u32 = 44;

/// Writes a 44-byte WAV header for `data_bytes` bytes of interleaved s16le PCM.
///
/// ```
/// let mut header = Vec::new();
/// rtsp_toolkit_media::audio::write_wav_header(&mut header, 8000, 1, 16000).unwrap();
/// assert_eq!(&header[..4], b"RIFF");
/// assert_eq!(header.len(), 44);
/// ```
pub fn write_wav_header(out: &mut impl Write, sample_rate: u32, channels: u16, data_bytes: u32) -> io::Result<()> {
    let block_align = channels.saturating_mul(2);
    let byte_rate = sample_rate.saturating_mul(u32::from(block_align));
    let mut h = [0u8; WAV_HEADER_LEN as usize];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&data_bytes.saturating_add(WAV_HEADER_LEN - 8).to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes()); // WAVE_FORMAT_PCM
    h[22..24].copy_from_slice(&channels.to_le_bytes());
    h[24..28].copy_from_slice(&sample_rate.to_le_bytes());
    h[28..32].copy_from_slice(&byte_rate.to_le_bytes());
    h[32..34].copy_from_slice(&block_align.to_le_bytes());
    h[34..36].copy_from_slice(&16u16.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data_bytes.to_le_bytes());
    out.write_all(&h)
}

/// Streams s16le PCM into a WAV file, fixing the header's sizes on [`WavWriter::finish`] (or,
/// best effort, on drop).
///
/// ```
/// use std::io::Cursor;
/// use rtsp_toolkit_media::audio::{PcmFrame, WavWriter};
///
/// let mut w = WavWriter::new(Cursor::new(Vec::new()), 8000, 1).unwrap();
/// w.write_frame(&PcmFrame { timestamp: 0, sample_rate: 8000, channels: 1, samples: vec![0; 160] }).unwrap();
/// let file = w.finish().unwrap().into_inner();
/// assert_eq!(file.len(), 44 + 320);
/// ```
#[derive(Debug)]
pub struct WavWriter<W: Write + Seek> {
    inner: Option<W>,
    sample_rate: u32,
    channels: u16,
    data_bytes: u32,
    /// Where the header starts (the writer need not be at offset 0).
    start: u64,
}

impl<W: Write + Seek> WavWriter<W> {
    /// Writes a header with zero sizes at `inner`'s current position.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a zero rate or zero channels; any error of `inner`.
    pub fn new(mut inner: W, sample_rate: u32, channels: u16) -> io::Result<Self> {
        if sample_rate == 0 || channels == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("WAV needs a non-zero rate and channel count, got {sample_rate} Hz, {channels} channels"),
            ));
        }
        let start = inner.stream_position()?;
        write_wav_header(&mut inner, sample_rate, channels, 0)?;
        Ok(WavWriter {
            inner: Some(inner),
            sample_rate,
            channels,
            data_bytes: 0,
            start,
        })
    }

    /// Sample rate in the header.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// Channel count in the header.
    pub fn channels(&self) -> u16 {
        self.channels
    }

    /// PCM bytes written so far.
    pub fn data_bytes(&self) -> u32 {
        self.data_bytes
    }

    /// Appends interleaved samples.
    ///
    /// # Errors
    ///
    /// `InvalidInput` when the file would pass the 4 GiB a WAV header can describe (nothing is
    /// written then); any error of the inner writer.
    pub fn write_samples(&mut self, samples: &[i16]) -> io::Result<()> {
        let bytes = u32::try_from(samples.len() * 2)
            .ok()
            .and_then(|n| self.data_bytes.checked_add(n))
            .filter(|&total| total <= u32::MAX - WAV_HEADER_LEN)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "WAV data would exceed 4 GiB"))?;
        let mut buf = Vec::with_capacity(samples.len() * 2);
        for s in samples {
            buf.extend_from_slice(&s.to_le_bytes());
        }
        self.writer().write_all(&buf)?;
        self.data_bytes = bytes;
        Ok(())
    }

    /// Appends a decoded frame.
    ///
    /// # Errors
    ///
    /// `InvalidInput` when the frame's rate or channel count differs from the header's; as
    /// [`WavWriter::write_samples`] otherwise.
    pub fn write_frame(&mut self, frame: &PcmFrame) -> io::Result<()> {
        if frame.sample_rate != self.sample_rate || frame.channels != self.channels {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "frame is {} Hz, {} channels but the WAV file is {} Hz, {} channels",
                    frame.sample_rate, frame.channels, self.sample_rate, self.channels
                ),
            ));
        }
        self.write_samples(&frame.samples)
    }

    /// Writes the final sizes into the header, flushes, and returns the inner writer positioned
    /// at the end of the data.
    ///
    /// # Errors
    ///
    /// Any error of the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.fix_header()?;
        Ok(self.inner.take().expect("present until finish"))
    }

    fn writer(&mut self) -> &mut W {
        self.inner.as_mut().expect("present until finish")
    }

    fn fix_header(&mut self) -> io::Result<()> {
        let (start, data_bytes) = (self.start, self.data_bytes);
        let w = self.writer();
        let end = w.stream_position()?;
        w.seek(SeekFrom::Start(start + 4))?;
        w.write_all(&(data_bytes + WAV_HEADER_LEN - 8).to_le_bytes())?;
        w.seek(SeekFrom::Start(start + 40))?;
        w.write_all(&data_bytes.to_le_bytes())?;
        w.seek(SeekFrom::Start(end))?;
        w.flush()
    }
}

impl<W: Write + Seek> Drop for WavWriter<W> {
    fn drop(&mut self) {
        if self.inner.is_some() {
            if let Err(e) = self.fix_header() {
                tracing::warn!(error = %e, "could not finish WAV header on drop");
            }
        }
    }
}
