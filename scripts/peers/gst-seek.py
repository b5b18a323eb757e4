#!/usr/bin/python3
"""Third-party seek for tests: GStreamer's rtspsrc plays an H.264 RTSP URL, seeks once, and counts frames.

rtspsrc (TCP) ! rtph264depay ! h264parse ! fakesink (sync). After --after seconds of playing, a flushing
key-unit seek to --to seconds (rtspsrc sends PAUSE, then PLAY with `Range: npt=T-`); every buffer that reaches
the sink after the seek is counted until EOS. Prints `seek True|False`, then `frames N` and `error ...` lines;
exits 0 at EOS, 1 on an error or when --limit seconds pass first.

Usage: gst-seek.py URL --to SECONDS [--after SECONDS] [--limit SECONDS]
Needs Debian's /usr/bin/python3 with python3-gi (see install.sh).
"""
import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("url")
    ap.add_argument("--to", type=float, required=True)
    ap.add_argument("--after", type=float, default=1.0)
    ap.add_argument("--limit", type=float, default=30.0)
    args = ap.parse_args()
    Gst.init(None)
    pipeline = Gst.parse_launch(
        f"rtspsrc location={args.url} protocols=tcp name=s s. ! rtph264depay ! h264parse ! fakesink name=sink sync=true")
    state = {"seeked": False, "frames": 0, "ok": False}
    sink = pipeline.get_by_name("sink")
    sink.set_property("signal-handoffs", True)

    def on_handoff(_sink, _buf, _pad):
        if state["seeked"]:
            state["frames"] += 1

    sink.connect("handoff", on_handoff)
    loop = GLib.MainLoop()

    def seek():
        ok = pipeline.seek_simple(Gst.Format.TIME, Gst.SeekFlags.FLUSH | Gst.SeekFlags.KEY_UNIT,
                                  int(args.to * Gst.SECOND))
        state["seeked"] = True
        print(f"seek {ok}", flush=True)
        return False

    def on_message(_bus, msg):
        if msg.type == Gst.MessageType.EOS:
            state["ok"] = True
            loop.quit()
        elif msg.type == Gst.MessageType.ERROR:
            print(f"error {msg.parse_error()}", flush=True)
            loop.quit()

    bus = pipeline.get_bus()
    bus.add_signal_watch()
    bus.connect("message", on_message)
    pipeline.set_state(Gst.State.PLAYING)
    GLib.timeout_add(int(args.after * 1000), seek)
    GLib.timeout_add(int(args.limit * 1000), loop.quit)
    loop.run()
    pipeline.set_state(Gst.State.NULL)
    print(f"frames {state['frames']}", flush=True)
    sys.exit(0 if state["ok"] else 1)


if __name__ == "__main__":
    main()
