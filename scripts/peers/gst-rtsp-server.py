#!/usr/bin/python3
"""Third-party RTSP peer for tests: GStreamer's rtsp-server publishing the media files of a directory.

Every .mp4/.mkv/.webm/.wav/.aac file of --dir is served at rtsp://127.0.0.1:PORT/NAME (TCP-interleaved and
UDP transports). Video is never transcoded: H.264/H.265 are parsed and packetized with parameter sets
repeated in-band (config-interval=-1); MJPEG goes out as JPEG (rtpjpegpay, RFC 2435); AAC goes out as
MPEG4-GENERIC (rtpmp4gpay); Opus (in .mkv or
.webm) as opus/48000/2 (rtpopuspay); WAV is converted to PCMA/8000/1 (payload type 8), except that a name
ending in .l16.wav is sent as L16 at the file's rate and channels (rtpL16pay) and one ending in .g722.wav
as G.722 16 kHz mono (avenc_g722 ! rtpg722pay, payload type 9), one ending in .g726.wav as G.726-32
(avenc_g726 ! rtpg726pay). Dynamic payload types are 96, 97, ... in stream order. Media are not
shared: each client gets its own pipeline, starting from the beginning of the file.

With --multicast, the media factories also get a multicast address pool (MULTICAST_POOL below: groups
239.255.42.0-239.255.42.255, ports 5000-5999, TTL 1), so that clients can SETUP with `RTP/AVP;multicast`;
run it inside a network namespace (see conformance::netns) so nothing leaves the machine. Without it, a
multicast SETUP gets 461. GStreamer (1.22) binds the group's ports itself without SO_REUSEADDR, which keeps
a client in the same namespace from binding them ("bind failed: Address already in use"); the script sets
the flag on those sockets before each response (share_multicast_ports), so local clients can join. Even
so, with a client on the same host the stream breaks off at the first RTCP exchange (after about 2.5 s:
GStreamer's session sees a BYE on its own SSRC and the client tears down; cause not found), so use it for
the SETUP exchange (`Transport: RTP/AVP;multicast;destination=239.255.42.0;ttl=1;port=5000-5001`) and the
first packets, not as a whole-file reference. Its stderr shows a harmless GLib warning per connection
(the send-message signal's marshalling).

--protocols restricts the lower transports offered (GstRtspServer.RTSPMediaFactory.set_protocols): e.g.
`--protocols tcp` makes a server that answers a UDP SETUP with 461 Unsupported Transport. By default
GStreamer's own set is offered (UDP, UDP multicast, TCP), as before.

--tls-cert PEM --tls-key PEM makes it an RTSPS server (RTSPAuth.set_tls_certificate): every connection
speaks TLS, media interleaved on it; the URLs are printed as rtsps://. Without --user, anyone may play
(a default token with the factories' permissions).

--onvif-backchannel OUT makes it GStreamer's ONVIF server (RTSPOnvifServer, RTSPOnvifMediaFactory): to a
client that sends `Require: www.onvif.org/ver20/backchannel`, every file also offers an a=sendonly PCMU/8000
audio track, and what the client sends there is decoded and written to OUT as raw s16le, 8 kHz mono (no
header: the backchannel pipeline gets no EOS at TEARDOWN; each session truncates OUT). With
--onvif-backchannel-codec g722 the track is G722/8000 (payload type 9) instead, decoded by avdec_g722 and
written as raw s16le, 16 kHz mono; with --onvif-backchannel-codec aac it is MPEG4-GENERIC/16000 (payload
type 96, AAC-hbr, AAC-LC mono: config=1408), depacketized by rtpmp4gdepay, decoded by avdec_aac and written
as raw s16le, 16 kHz mono (the decoder's output, encoder priming included); aac-latm is the same audio as
MP4A-LATM/16000 (payload type 96, cpresent=0, config=400028103FC0), depacketized by rtpmp4adepay.

--record OUT.mkv adds a mount /record in RECORD mode (GStreamer's RTSPMediaFactory with
set_transport_mode(RECORD)) that takes a publisher's ANNOUNCE / SETUP mode=record / RECORD with one H.264
video stream (first m= section: rtph264depay) and one AAC stream (second: MPEG4-GENERIC, rtpmp4gdepay), and
writes both, stream-copied, into OUT.mkv (matroskamux; the file is finalized when the publisher tears down).
Its URL is printed after the files'. --user applies to it as to the files.

After binding, prints one URL per file and then the line "ready" (flushed), then runs until killed.

Usage: gst-rtsp-server.py --dir DIR --port PORT [--user U --password P [--auth basic|digest]]
                          [--multicast] [--protocols tcp,udp,udp-mcast] [--tls-cert PEM --tls-key PEM]
                          [--onvif-backchannel OUT [--onvif-backchannel-codec pcmu|g722|aac|aac-latm]]
                          [--record OUT.mkv]
Needs Debian's /usr/bin/python3 with python3-gi (see install.sh).
"""
import argparse
import os
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
gi.require_version("GstPbutils", "1.0")
from gi.repository import Gio, GLib, Gst, GstPbutils, GstRtsp, GstRtspServer  # noqa: E402

EXTENSIONS = (".mp4", ".mkv", ".webm", ".wav", ".aac")
HOST = "127.0.0.1"
# --multicast: (first group, last group, first port, last port, TTL).
MULTICAST_POOL = ("239.255.42.0", "239.255.42.255", 5000, 5999, 1)
PROTOCOLS = {
    "tcp": GstRtsp.RTSPLowerTrans.TCP,
    "udp": GstRtsp.RTSPLowerTrans.UDP,
    "udp-mcast": GstRtsp.RTSPLowerTrans.UDP_MCAST,
}


def payloader_for(caps, index):
    """Parser + payloader for one demuxed stream, or None if the stream is not served."""
    pt = 96 + index
    if caps.startswith("video/x-h264"):
        return f"h264parse config-interval=-1 ! rtph264pay name=pay{index} pt={pt} config-interval=-1"
    if caps.startswith("video/x-h265"):
        return f"h265parse config-interval=-1 ! rtph265pay name=pay{index} pt={pt} config-interval=-1"
    if caps.startswith("audio/mpeg"):
        return f"aacparse ! rtpmp4gpay name=pay{index} pt={pt}"
    if caps.startswith("image/jpeg"):
        # MJPEG (e.g. V_MJPEG in Matroska) as RFC 2435 `JPEG/90000`.
        return f"jpegparse ! rtpjpegpay name=pay{index} pt={pt}"
    if caps.startswith("audio/x-opus"):
        return f"opusparse ! rtpopuspay name=pay{index} pt={pt}"
    return None


def launch_line(path):
    """gst-rtsp-server launch description for one file, chosen by its extension and streams."""
    src = 'filesrc location="{}"'.format(path.replace('"', '\\"'))
    ext = os.path.splitext(path)[1].lower()
    if path.lower().endswith(".l16.wav"):
        return f"( {src} ! wavparse ! audioconvert ! audio/x-raw,format=S16BE ! rtpL16pay name=pay0 pt=96 )"
    if path.lower().endswith(".g726.wav"):
        return (f"( {src} ! wavparse ! audioconvert ! audioresample ! audio/x-raw,rate=8000,channels=1"
                " ! avenc_g726 bitrate=32000 ! rtpg726pay name=pay0 pt=96 )")
    if path.lower().endswith(".g722.wav"):
        return (f"( {src} ! wavparse ! audioconvert ! audioresample ! audio/x-raw,rate=16000,channels=1"
                " ! avenc_g722 ! rtpg722pay name=pay0 pt=9 )")
    if ext == ".wav":
        return (f"( {src} ! wavparse ! audioconvert ! audioresample"
                " ! audio/x-raw,rate=8000,channels=1 ! alawenc ! rtppcmapay name=pay0 pt=8 )")
    if ext == ".aac":
        return f"( {src} ! aacparse ! rtpmp4gpay name=pay0 pt=96 )"

    demuxer = "qtdemux" if ext == ".mp4" else "matroskademux"
    discoverer = GstPbutils.Discoverer.new(5 * Gst.SECOND)
    info = discoverer.discover_uri(Gst.filename_to_uri(path))
    streams = list(info.get_video_streams()) + list(info.get_audio_streams())
    branches = []
    for stream in streams:
        chain = payloader_for(stream.get_caps().to_string(), len(branches))
        if chain:
            branches.append(f"demux. ! queue ! {chain}")
    if not branches:
        raise ValueError(f"{path}: no H.264/H.265/MJPEG/AAC/Opus stream")
    return f"( {src} ! {demuxer} name=demux " + " ".join(branches) + " )"


def backchannel_line(out, codec="pcmu"):
    """The ONVIF backchannel pipeline: PCMU/8000 RTP in, raw s16le 8 kHz mono to `out`;
    or G722/8000 RTP in, raw s16le 16 kHz mono; or MPEG4-GENERIC/16000 (AAC-LC mono, AAC-hbr)
    in, decoded by avdec_aac, raw s16le 16 kHz mono; or the same in MP4A-LATM (rtpmp4adepay)."""
    # Unbuffered: each decoded buffer is in OUT at once, so a reader sees what arrived (stdio's buffer
    # would hold the last few KiB until the pipeline closes).
    sink = 'filesink location="{}" sync=false async=false buffer-mode=unbuffered'.format(out.replace('"', '\\"'))
    if codec == "aac-latm":
        caps = ("application/x-rtp,media=audio,payload=96,clock-rate=16000,encoding-name=MP4A-LATM,"
                "cpresent=(string)0,config=(string)400028103FC0,object=(string)2,profile-level-id=(string)15")
        return (f'( capsfilter caps="{caps}" name=depay_backchannel ! rtpmp4adepay ! avdec_aac'
                f" ! audioconvert ! audioresample ! audio/x-raw,format=S16LE,rate=16000,channels=1 ! {sink} )")
    if codec == "aac":
        caps = ("application/x-rtp,media=audio,payload=96,clock-rate=16000,encoding-name=MPEG4-GENERIC,"
                "streamtype=(string)5,profile-level-id=(string)15,mode=(string)AAC-hbr,config=(string)1408,"
                "sizelength=(string)13,indexlength=(string)3,indexdeltalength=(string)3")
        return (f'( capsfilter caps="{caps}" name=depay_backchannel ! rtpmp4gdepay ! avdec_aac'
                f" ! audioconvert ! audioresample ! audio/x-raw,format=S16LE,rate=16000,channels=1 ! {sink} )")
    if codec == "g722":
        caps = "application/x-rtp,media=audio,payload=9,clock-rate=8000,encoding-name=G722"
        return (f'( capsfilter caps="{caps}" name=depay_backchannel ! rtpg722depay ! avdec_g722'
                f" ! audioconvert ! audio/x-raw,format=S16LE,rate=16000,channels=1 ! {sink} )")
    caps = "application/x-rtp,media=audio,payload=0,clock-rate=8000,encoding-name=PCMU"
    return (f'( capsfilter caps="{caps}" name=depay_backchannel ! rtppcmudepay ! mulawdec'
            f" ! audioconvert ! audio/x-raw,format=S16LE,rate=8000,channels=1 ! {sink} )")


def make_auth(user, password, method):
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string("media.factory.role", user)
    if method == "digest":
        auth.add_digest(user, password, token)
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
    else:
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.BASIC)
    return auth


def parse_protocols(text):
    """`tcp,udp,udp-mcast` (any non-empty subset) -> GstRtsp.RTSPLowerTrans flags."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in PROTOCOLS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated subset of {', '.join(PROTOCOLS)}, got {text!r}")
    flags = PROTOCOLS[names[0]]
    for name in names[1:]:
        flags |= PROTOCOLS[name]
    return flags


def multicast_pool():
    pool = GstRtspServer.RTSPAddressPool()
    first, last, port_min, port_max, ttl = MULTICAST_POOL
    if not pool.add_range(first, last, port_min, port_max, ttl):
        raise RuntimeError(f"cannot add the multicast range {MULTICAST_POOL}")
    return pool


SOL_SOCKET, SO_REUSEADDR = 1, 2  # Linux


def share_multicast_ports(client, *_):
    """Before each response, set SO_REUSEADDR on the multicast sockets of the client's sessions.

    gst-rtsp-server binds the group's ports itself without it, which keeps every client on the same
    host (same network namespace) from binding them; Linux checks the flag of the bound socket at the
    time of the client's bind, so setting it before the SETUP reply leaves lets the client bind. (The
    signal's session argument is not usable from Python in 1.22: every session of the pool is visited.)
    """
    pool = client.get_session_pool()
    if pool is None:
        return
    for session in pool.filter(None):
        for sm in session.filter(None):
            media = sm.get_media()
            for i in range(media.n_streams()):
                stream = media.get_stream(i)
                for sock in (stream.get_rtp_multicast_socket(Gio.SocketFamily.IPV4),
                             stream.get_rtcp_multicast_socket(Gio.SocketFamily.IPV4)):
                    if sock is not None:
                        sock.set_option(SOL_SOCKET, SO_REUSEADDR, 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--dir", required=True, help="directory of media files to publish")
    ap.add_argument("--port", type=int, default=8554)
    ap.add_argument("--user")
    ap.add_argument("--password", default="")
    ap.add_argument("--auth", choices=("basic", "digest"), default="basic")
    ap.add_argument("--multicast", action="store_true",
                    help="give the media a multicast address pool (239.255.42.0-255, ports 5000-5999, TTL 1)")
    ap.add_argument("--protocols", type=parse_protocols, metavar="tcp,udp,udp-mcast",
                    help="lower transports offered (default: GStreamer's, i.e. all three)")
    ap.add_argument("--tls-cert", help="serve RTSPS with this certificate (PEM); needs --tls-key")
    ap.add_argument("--tls-key", help="the private key of --tls-cert (PEM)")
    ap.add_argument("--onvif-backchannel", metavar="OUT",
                    help="ONVIF server with a PCMU backchannel; received audio to OUT (raw s16le 8 kHz mono)")
    ap.add_argument("--onvif-backchannel-codec", choices=("pcmu", "g722", "aac", "aac-latm"), default="pcmu",
                    help="the backchannel's codec (g722, aac, aac-latm: OUT is raw s16le 16 kHz mono)")
    ap.add_argument("--record", metavar="OUT.mkv",
                    help="a RECORD-mode mount /record (H.264 + AAC) written to OUT.mkv")
    args = ap.parse_args()
    if bool(args.tls_cert) != bool(args.tls_key):
        ap.error("--tls-cert and --tls-key go together")

    Gst.init(None)
    onvif = args.onvif_backchannel is not None
    server = GstRtspServer.RTSPOnvifServer() if onvif else GstRtspServer.RTSPServer()
    server.set_address(HOST)
    server.set_service(str(args.port))
    role = args.user
    if args.user:
        server.set_auth(make_auth(args.user, args.password, args.auth))
    if args.tls_cert:
        auth = server.get_auth()
        if auth is None:
            # No credentials asked: a default token whose role the factories let in.
            role = "anonymous"
            auth = GstRtspServer.RTSPAuth()
            token = GstRtspServer.RTSPToken()
            token.set_string("media.factory.role", role)
            auth.set_default_token(token)
        auth.set_tls_certificate(Gio.TlsCertificate.new_from_files(args.tls_cert, args.tls_key))
        server.set_auth(auth)
    scheme = "rtsps" if args.tls_cert else "rtsp"

    mounts = server.get_mount_points()
    urls = []
    for name in sorted(os.listdir(args.dir)):
        path = os.path.abspath(os.path.join(args.dir, name))
        if not os.path.isfile(path) or not name.lower().endswith(EXTENSIONS) or ".tmp." in name:
            continue
        factory = GstRtspServer.RTSPOnvifMediaFactory() if onvif else GstRtspServer.RTSPMediaFactory()
        factory.set_launch(launch_line(path))
        if onvif:
            factory.set_backchannel_launch(
                backchannel_line(os.path.abspath(args.onvif_backchannel), args.onvif_backchannel_codec))
            factory.set_media_gtype(GstRtspServer.RTSPOnvifMedia)
        factory.set_shared(False)
        if args.multicast:
            factory.set_address_pool(multicast_pool())
        if args.protocols is not None:
            factory.set_protocols(args.protocols)
        if role:
            perms = GstRtspServer.RTSPPermissions()
            perms.add_permission_for_role(role, "media.factory.access", True)
            perms.add_permission_for_role(role, "media.factory.construct", True)
            factory.set_permissions(perms)
        if args.tls_cert:
            factory.set_protocols(GstRtsp.RTSPLowerTrans.TCP)
        mounts.add_factory("/" + name, factory)
        urls.append(f"{scheme}://{HOST}:{args.port}/{name}")

    if args.record:
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_transport_mode(GstRtspServer.RTSPTransportMode.RECORD)
        out = os.path.abspath(args.record)
        factory.set_launch(
            "( matroskamux name=mux ! filesink location=%s "
            "rtph264depay name=depay0 ! h264parse ! queue ! mux. "
            "rtpmp4gdepay name=depay1 ! aacparse ! queue ! mux. )" % out)
        factory.set_latency(100)
        if role:
            perms = GstRtspServer.RTSPPermissions()
            perms.add_permission_for_role(role, "media.factory.access", True)
            perms.add_permission_for_role(role, "media.factory.construct", True)
            factory.set_permissions(perms)
        mounts.add_factory("/record", factory)
        urls.append(f"{scheme}://{HOST}:{args.port}/record")

    if args.multicast:
        server.connect("client-connected",
                       lambda _server, client: client.connect("send-message", share_multicast_ports))
    if server.attach(None) == 0:
        print(f"cannot listen on {HOST}:{args.port}", file=sys.stderr, flush=True)
        return 1
    for url in urls:
        print(url)
    print("ready", flush=True)
    GLib.MainLoop().run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
