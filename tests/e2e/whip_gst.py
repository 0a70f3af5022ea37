#!/usr/bin/env python3
"""Publishes into a room over WHIP with GStreamer's webrtcbin (Debian's
gstreamer1.0-plugins-bad): a test pattern in VP8 and a tone in Opus, for
SECONDS, then leaves with DELETE on the session's Location.

    python3 whip_gst.py BASE ROOM TOKEN SECONDS

Non-trickle, as WHIP's simplest clients are: the offer is posted once ICE
gathering is complete. Prints JSON: the POST's status, whether ICE and
DTLS connected (webrtcbin's connection state), the DELETE's status.
Run with Debian's Python (/usr/bin/python3, python3-gst-1.0) against a
server whose rtc.public_ip is a non-loopback address (libnice gathers no
loopback candidate). Today it fails at DTLS: docs/rooms.md says why.
"""

import json
import sys
import threading
import urllib.request

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstWebRTC", "1.0")
gi.require_version("GstSdp", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402

base, room, token, seconds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
Gst.init(None)

pipeline = Gst.parse_launch(
    "webrtcbin name=w bundle-policy=max-bundle "
    "videotestsrc is-live=true pattern=ball ! video/x-raw,width=640,height=360,framerate=30/1 "
    "! videoconvert ! vp8enc deadline=1 keyframe-max-dist=30 ! rtpvp8pay pt=96 "
    "! application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000 ! w. "
    "audiotestsrc is-live=true wave=sine freq=440 ! audioconvert ! audioresample "
    "! opusenc ! rtpopuspay pt=111 "
    "! application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000 ! w. "
)
webrtc = pipeline.get_by_name("w")
loop = GLib.MainLoop()
result = {"status": None, "connected": False, "states": []}
location = None


def fail(message):
    result["error"] = message
    loop.quit()


def post_offer():
    offer = webrtc.get_property("local-description").sdp.as_text()
    req = urllib.request.Request(
        f"{base}/v1/rooms/{room}/whip",
        data=offer.encode(),
        method="POST",
        headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(req) as r:
            result["status"] = r.status
            answer = r.read().decode()
            global location
            location = r.headers.get("Location")
    except urllib.error.HTTPError as e:
        result["status"] = e.code
        fail(e.read().decode())
        return False
    _, sdp = GstSdp.SDPMessage.new_from_text(answer)
    desc = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, sdp)
    webrtc.emit("set-remote-description", desc, Gst.Promise.new())
    return False


def on_gathering(webrtc, _pspec):
    if webrtc.get_property("ice-gathering-state") == GstWebRTC.WebRTCICEGatheringState.COMPLETE:
        GLib.idle_add(post_offer)


def on_state(webrtc, _pspec):
    state = webrtc.get_property("connection-state")
    result["states"].append(state.value_nick)
    if state == GstWebRTC.WebRTCPeerConnectionState.CONNECTED and not result["connected"]:
        result["connected"] = True
        GLib.timeout_add_seconds(seconds, loop.quit)
    elif state == GstWebRTC.WebRTCPeerConnectionState.FAILED:
        fail("the connection failed (ICE or DTLS)")


def on_offer(promise, _data):
    reply = promise.get_reply()
    offer = reply.get_value("offer")
    webrtc.emit("set-local-description", offer, Gst.Promise.new())


def on_negotiation_needed(webrtc):
    webrtc.emit("create-offer", None, Gst.Promise.new_with_change_func(on_offer, None))


webrtc.connect("on-negotiation-needed", on_negotiation_needed)
webrtc.connect("notify::ice-gathering-state", on_gathering)
webrtc.connect("notify::connection-state", on_state)
bus = pipeline.get_bus()
bus.add_signal_watch()
bus.connect("message::error", lambda _b, m: fail(str(m.parse_error()[0])))
pipeline.set_state(Gst.State.PLAYING)
threading.Timer(seconds + 30, lambda: GLib.idle_add(lambda: fail("timed out") or False)).start()
loop.run()
if location:
    req = urllib.request.Request(
        base + location, method="DELETE", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(req) as r:
            result["deleteStatus"] = r.status
    except urllib.error.HTTPError as e:
        result["deleteStatus"] = e.code
pipeline.set_state(Gst.State.NULL)
print(json.dumps(result))
sys.exit(0 if result.get("connected") else 1)
