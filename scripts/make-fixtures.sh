#!/usr/bin/env bash
# Generate the small test media (fixtures) with FFmpeg, then print an ffprobe summary of each file.
#   make-fixtures.sh DIR [--big]
# Idempotent: files that already exist (non-empty) are kept, so committed fixtures stay byte-identical.
# Sources are FFmpeg's lavfi testsrc2 (video, 320x240 25 fps) and sine (audio); all files are 5 s
# except pcm_44k_stereo.wav (2 s, to keep the committed fixtures small). --big adds big_1080p.mp4
# (1920x1080 H.264 ~4 Mb/s, 20 s, ~10 MB; not committed).
set -euo pipefail
usage() { echo "usage: $0 DIR [--big]" >&2; exit 2; }
[ $# -ge 1 ] || usage
dir=$1; shift
big=no
for arg in "$@"; do
  case "$arg" in --big) big=yes ;; *) usage ;; esac
done

command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || {
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null
}

mkdir -p "$dir"
cd "$dir"

# make OUT FFMPEG_ARGS... : encode into a temporary file, rename on success; skip if OUT exists.
make() {
  local out=$1; shift
  [ -s "$out" ] && return 0
  local tmp="$out.tmp.${out##*.}"
  ffmpeg -hide_banner -nostdin -loglevel error -y "$@" -fflags +bitexact -map_metadata -1 "$tmp"
  mv "$tmp" "$out"
  echo "made $out"
}

video=(-f lavfi -i testsrc2=size=320x240:rate=25)
tone=(-f lavfi -i sine=frequency=440:sample_rate=44100)
x264=(-c:v libx264 -preset medium -crf 30 -pix_fmt yuv420p -flags +bitexact)
x265=(-c:v libx265 -preset medium -crf 32 -pix_fmt yuv420p -x265-params log-level=error)
aac=(-c:a aac -b:a 64k -ar 44100 -ac 2)

make h264_aac.mp4       "${video[@]}" "${tone[@]}" -t 5 "${x264[@]}" -bf 0 -g 25 "${aac[@]}"
make h264_bframes.mp4   "${video[@]}" "${tone[@]}" -t 5 "${x264[@]}" -bf 2 -g 50 "${aac[@]}"
make h265_aac.mkv       "${video[@]}" "${tone[@]}" -t 5 "${x265[@]}" -g 25 "${aac[@]}"
make h265.mp4           "${video[@]}" -t 5 "${x265[@]}" -g 25 -tag:v hvc1
make pcm_16k_mono.wav   -f lavfi -i sine=frequency=1000:sample_rate=16000 -t 5 -c:a pcm_s16le -ac 1
make pcm_44k_stereo.wav "${tone[@]}" -t 2 -c:a pcm_s16le -ar 44100 -ac 2
make tone.aac           "${tone[@]}" -t 5 "${aac[@]}" -f adts
if [ "$big" = yes ]; then
  make big_1080p.mp4 -f lavfi -i testsrc2=size=1920x1080:rate=25 -t 20 -c:v libx264 -preset veryfast \
       -b:v 4M -maxrate 4M -bufsize 8M -bf 0 -g 50 -pix_fmt yuv420p
fi

# Summary; fails if a file cannot be read.
for f in *.mp4 *.mkv *.wav *.aac; do
  [ -e "$f" ] || continue
  case "$f" in *.tmp.*) continue ;; esac
  summary=$(ffprobe -v error \
      -show_entries stream=codec_name,profile,width,height,r_frame_rate,has_b_frames,sample_rate,channels \
      -show_entries format=duration,size -of compact=p=0 "$f" | paste -sd' ')
  echo "$f: $summary"
done
du -ch -- *.mp4 *.mkv *.wav *.aac 2>/dev/null | tail -n1
