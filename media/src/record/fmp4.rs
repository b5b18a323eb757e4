//! The fragmented MP4 writer (ISO/IEC 14496-12): `ftyp` and a `moov` with
//! empty sample tables and an `mvex`, then one `moof` + `mdat` per fragment.
//!
//! Every `traf` says `default-base-is-moof` and carries a `tfdt` with its
//! first decode time; its version 1 `trun` lists each sample's duration,
//! size, flags and (video) signed composition offset. The `mehd` in `mvex`
//! gets the recording's duration at the end; a recording cut short has 0
//! there, and players take the duration from the fragments.

use std::io::{self, Seek, SeekFrom, Write};

use super::params::VideoKind;
use super::{Codec, Output, Run, TrackHeader};

/// The movie timescale (`mvhd`, `mehd`): milliseconds.
const MOVIE_TIMESCALE: u32 = 1000;

/// `sample_flags` of a sync sample: depends on no other (I picture).
const SYNC: u32 = 0x0200_0000;
/// `sample_flags` of other samples: depends on others, not a sync sample.
const NON_SYNC: u32 = 0x0101_0000;

/// The fMP4 writer's state between fragments.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    sequence: u32,
    /// Where the `mehd` duration field is in the file.
    mehd_at: Option<u64>,
}

/// Writes a box: size, type, what `body` writes.
fn boxed(out: &mut Vec<u8>, kind: &[u8; 4], body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(kind);
    body(out);
    let size = (out.len() - start) as u32;
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
}

/// Writes a full box (with version and flags).
fn full(out: &mut Vec<u8>, kind: &[u8; 4], version: u8, flags: u32, body: impl FnOnce(&mut Vec<u8>)) {
    boxed(out, kind, |out| {
        out.extend_from_slice(&((u32::from(version) << 24) | (flags & 0x00ff_ffff)).to_be_bytes());
        body(out);
    });
}

fn u16be(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn u32be(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn u64be(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// The unity transformation matrix of `mvhd` and `tkhd`.
fn matrix(out: &mut Vec<u8>) {
    for v in [0x0001_0000u32, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000] {
        u32be(out, v);
    }
}

impl Writer {
    /// `ftyp` and `moov`, to be written at file offset `base`.
    pub(crate) fn header(&mut self, tracks: &[TrackHeader], base: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(1024);
        boxed(&mut out, b"ftyp", |o| {
            o.extend_from_slice(b"iso5");
            u32be(o, 512);
            for brand in [b"iso5", b"iso6", b"mp41"] {
                o.extend_from_slice(brand);
            }
        });
        let mut mehd_in_moov = 0;
        boxed(&mut out, b"moov", |o| {
            full(o, b"mvhd", 0, 0, |o| {
                u32be(o, 0); // creation_time
                u32be(o, 0); // modification_time
                u32be(o, MOVIE_TIMESCALE);
                u32be(o, 0); // duration: in the fragments
                u32be(o, 0x0001_0000); // rate 1.0
                u16be(o, 0x0100); // volume 1.0
                o.extend_from_slice(&[0; 10]);
                matrix(o);
                o.extend_from_slice(&[0; 24]); // pre_defined
                u32be(o, tracks.iter().map(|t| t.number).max().unwrap_or(0) + 1);
            });
            for t in tracks {
                trak(o, t);
            }
            boxed(o, b"mvex", |o| {
                full(o, b"mehd", 1, 0, |o| {
                    mehd_in_moov = o.len();
                    u64be(o, 0);
                });
                for t in tracks {
                    full(o, b"trex", 0, 0, |o| {
                        u32be(o, t.number);
                        u32be(o, 1); // default_sample_description_index
                        u32be(o, 0); // default_sample_duration
                        u32be(o, 0); // default_sample_size
                        u32be(o, 0); // default_sample_flags
                    });
                }
            });
        });
        self.mehd_at = Some(base + mehd_in_moov as u64);
        out
    }

    /// One `moof` + `mdat` with the samples of every run.
    pub(crate) fn fragment(&mut self, runs: &[Run<'_>]) -> Output {
        self.sequence = self.sequence.wrapping_add(1);
        let mut moof = Vec::with_capacity(64 + runs.iter().map(|r| 16 * r.samples.len() + 64).sum::<usize>());
        // Where each trun's data_offset goes, to fill in once the moof's size is known.
        let mut offsets = Vec::with_capacity(runs.len());
        boxed(&mut moof, b"moof", |o| {
            full(o, b"mfhd", 0, 0, |o| u32be(o, self.sequence));
            for run in runs {
                let video = run.track.is_video();
                boxed(o, b"traf", |o| {
                    // default-base-is-moof
                    full(o, b"tfhd", 0, 0x02_0000, |o| u32be(o, run.track.number));
                    full(o, b"tfdt", 1, 0, |o| u64be(o, run.samples.first().map_or(0, |s| s.dts)));
                    // data offset, duration, size, flags (and composition offset for video)
                    let flags = if video { 0x0f01 } else { 0x0701 };
                    full(o, b"trun", 1, flags, |o| {
                        u32be(o, run.samples.len() as u32);
                        offsets.push(o.len());
                        u32be(o, 0);
                        for s in run.samples {
                            u32be(o, s.duration);
                            u32be(o, s.data.len() as u32);
                            u32be(o, if s.keyframe { SYNC } else { NON_SYNC });
                            if video {
                                o.extend_from_slice(&s.cts.to_be_bytes());
                            }
                        }
                    });
                });
            }
        });
        let data_len: usize = runs.iter().flat_map(|r| r.samples).map(|s| s.data.len()).sum();
        let large = data_len as u64 + 8 > u64::from(u32::MAX);
        let mdat_header = if large { 16 } else { 8 };
        let mut at = moof.len() + mdat_header;
        for (run, offset) in runs.iter().zip(offsets) {
            moof[offset..offset + 4].copy_from_slice(&(at as u32).to_be_bytes());
            at += run.samples.iter().map(|s| s.data.len()).sum::<usize>();
        }
        let mut head = moof;
        if large {
            u32be(&mut head, 1);
            head.extend_from_slice(b"mdat");
            u64be(&mut head, data_len as u64 + 16);
        } else {
            u32be(&mut head, data_len as u32 + 8);
            head.extend_from_slice(b"mdat");
        }
        let mut output = Output::default();
        output.push(head);
        for s in runs.iter().flat_map(|r| r.samples) {
            output.push(s.data.clone());
        }
        output
    }

    /// Writes the duration into `mehd`: `ends` holds each track's
    /// (number, end in its timescale, timescale).
    pub(crate) fn finish<W: Write + Seek>(&mut self, out: &mut W, ends: &[(u32, u64, u32)]) -> io::Result<()> {
        let Some(at) = self.mehd_at else { return Ok(()) };
        let ms = ends
            .iter()
            .map(|&(_, end, scale)| (u128::from(end) * u128::from(MOVIE_TIMESCALE)).div_ceil(u128::from(scale.max(1))))
            .max()
            .unwrap_or(0);
        out.flush()?;
        out.seek(SeekFrom::Start(at))?;
        out.write_all(&(ms.min(u128::from(u64::MAX)) as u64).to_be_bytes())?;
        out.seek(SeekFrom::End(0))?;
        Ok(())
    }
}

/// A `trak` with an empty sample table.
fn trak(o: &mut Vec<u8>, t: &TrackHeader) {
    let (width, height) = match t.codec {
        Codec::Video { width, height, .. } | Codec::Mjpeg { width, height } => (width, height),
        _ => (0, 0),
    };
    let video = t.is_video();
    boxed(o, b"trak", |o| {
        // flags: enabled, in movie
        full(o, b"tkhd", 0, 3, |o| {
            u32be(o, 0);
            u32be(o, 0);
            u32be(o, t.number);
            u32be(o, 0); // reserved
            u32be(o, 0); // duration
            o.extend_from_slice(&[0; 8]);
            u16be(o, 0); // layer
            u16be(o, 0); // alternate_group
            u16be(o, if video { 0 } else { 0x0100 });
            u16be(o, 0);
            matrix(o);
            u32be(o, width << 16);
            u32be(o, height << 16);
        });
        boxed(o, b"mdia", |o| {
            full(o, b"mdhd", 0, 0, |o| {
                u32be(o, 0);
                u32be(o, 0);
                u32be(o, t.timescale);
                u32be(o, 0);
                u16be(o, 0x55c4); // language "und"
                u16be(o, 0);
            });
            full(o, b"hdlr", 0, 0, |o| {
                u32be(o, 0);
                o.extend_from_slice(if video { b"vide" } else { b"soun" });
                o.extend_from_slice(&[0; 12]);
                o.extend_from_slice(if video { b"VideoHandler\0" } else { b"SoundHandler\0" });
            });
            boxed(o, b"minf", |o| {
                if video {
                    full(o, b"vmhd", 0, 1, |o| o.extend_from_slice(&[0; 8]));
                } else {
                    full(o, b"smhd", 0, 0, |o| u32be(o, 0));
                }
                boxed(o, b"dinf", |o| {
                    full(o, b"dref", 0, 0, |o| {
                        u32be(o, 1);
                        full(o, b"url ", 0, 1, |_| {}); // media in this file
                    });
                });
                boxed(o, b"stbl", |o| {
                    full(o, b"stsd", 0, 0, |o| {
                        u32be(o, 1);
                        sample_entry(o, t);
                    });
                    full(o, b"stts", 0, 0, |o| u32be(o, 0));
                    full(o, b"stsc", 0, 0, |o| u32be(o, 0));
                    full(o, b"stsz", 0, 0, |o| {
                        u32be(o, 0);
                        u32be(o, 0);
                    });
                    full(o, b"stco", 0, 0, |o| u32be(o, 0));
                });
            });
        });
    });
}

/// The fields of a visual sample entry (ISO/IEC 14496-12 `VisualSampleEntry`) before its boxes.
fn visual_entry_fields(o: &mut Vec<u8>, width: u32, height: u32) {
    o.extend_from_slice(&[0; 6]);
    u16be(o, 1); // data_reference_index
    o.extend_from_slice(&[0; 16]); // pre_defined, reserved
    u16be(o, width.min(0xffff) as u16);
    u16be(o, height.min(0xffff) as u16);
    u32be(o, 0x0048_0000); // 72 dpi
    u32be(o, 0x0048_0000);
    u32be(o, 0);
    u16be(o, 1); // frame_count
    o.extend_from_slice(&[0; 32]); // compressorname
    u16be(o, 0x0018); // depth
    u16be(o, 0xffff); // pre_defined -1
}

/// The one sample entry of a track's `stsd`.
fn sample_entry(o: &mut Vec<u8>, t: &TrackHeader) {
    match &t.codec {
        Codec::Mjpeg { width, height } => {
            // QuickTime's JPEG entry: every sample is a whole image, no configuration.
            boxed(o, b"jpeg", |o| visual_entry_fields(o, *width, *height));
        }
        Codec::Video {
            kind,
            record,
            width,
            height,
        } => {
            let (name, config) = match kind {
                VideoKind::H264 => (b"avc1", b"avcC"),
                VideoKind::H265 => (b"hvc1", b"hvcC"),
            };
            boxed(o, name, |o| {
                visual_entry_fields(o, *width, *height);
                boxed(o, config, |o| o.extend_from_slice(record));
            });
        }
        Codec::Aac {
            config,
            sample_rate,
            channels,
        } => {
            boxed(o, b"mp4a", |o| {
                audio_entry_fields(o, *channels, 16, *sample_rate);
                full(o, b"esds", 0, 0, |o| esds(o, config));
            });
        }
        Codec::G711 {
            alaw,
            sample_rate,
            channels,
        } => {
            boxed(o, if *alaw { b"alaw" } else { b"ulaw" }, |o| {
                audio_entry_fields(o, *channels, 16, *sample_rate);
            });
        }
        // Refused when the track is added to an MP4 recording (Matroska only).
        Codec::Opus { .. } | Codec::Pcm { .. } => {}
    }
}

/// The AudioSampleEntry fields before its boxes.
fn audio_entry_fields(o: &mut Vec<u8>, channels: u16, sample_size: u16, rate: u32) {
    o.extend_from_slice(&[0; 6]);
    u16be(o, 1); // data_reference_index
    o.extend_from_slice(&[0; 8]);
    u16be(o, channels);
    u16be(o, sample_size);
    u16be(o, 0);
    u16be(o, 0);
    // 16.16; rates above 65535 Hz do not fit, the decoder config has them.
    u32be(o, if rate <= 0xffff { rate << 16 } else { 0 });
}

/// An MPEG-4 descriptor: tag, size (7 bits a byte), body.
fn descriptor(o: &mut Vec<u8>, tag: u8, body: &[u8]) {
    o.push(tag);
    let len = body.len() as u32;
    let mut started = false;
    for shift in [21, 14, 7] {
        let part = (len >> shift) & 0x7f;
        if part != 0 || started {
            o.push(0x80 | part as u8);
            started = true;
        }
    }
    o.push((len & 0x7f) as u8);
    o.extend_from_slice(body);
}

/// The `esds` body: ES_Descriptor with the AudioSpecificConfig.
fn esds(o: &mut Vec<u8>, asc: &[u8]) {
    let mut dsi = Vec::new();
    descriptor(&mut dsi, 0x05, asc);
    let mut dcd = vec![
        0x40, // Audio ISO/IEC 14496-3
        0x15, // streamType audio (5) << 2 | upStream 0 | reserved 1
        0, 0, 0, // bufferSizeDB
    ];
    dcd.extend_from_slice(&0u32.to_be_bytes()); // maxBitrate
    dcd.extend_from_slice(&0u32.to_be_bytes()); // avgBitrate
    dcd.extend_from_slice(&dsi);
    let mut es = vec![0, 0, 0]; // ES_ID 0, flags 0
    descriptor(&mut es, 0x04, &dcd);
    descriptor(&mut es, 0x06, &[0x02]); // SLConfigDescriptor predefined MP4
    descriptor(o, 0x03, &es);
}
