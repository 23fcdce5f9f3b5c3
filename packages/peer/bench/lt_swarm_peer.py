#!/usr/bin/python3
"""
One python3-libtorrent peer of the swarm benchmark, run inside a network namespace the benchmark
made: libtorrent's DEFAULT settings (as users run it), but for the listen address and discovery
(DHT, LSD, UPnP and NAT-PMP off, as in every real client our tests start).

  lt_swarm_peer.py --torrent T --save DIR --bind IP [--port P] [--seed]

--seed adds the torrent in seed_mode (the data is trusted, as `ezio seed --trust`); otherwise it
downloads and seeds on. Either way it runs until SIGTERM/SIGINT. JSON lines on stdout:
  {"event": "ready"}                       listening, torrent added
  {"event": "complete"}                    every piece verified (not printed in --seed mode)
  {"event": "status", ...}                 once a second
  {"event": "stopped", "uploaded": n, "downloaded": n, "hash_failures": n}   on SIGTERM
uploaded/downloaded are payload bytes (piece data), as ezio counts them.
"""

import argparse
import json
import os
import signal
import sys
import time

import libtorrent as lt

_stop = False


def _on_signal(signum, frame):
    global _stop
    _stop = True


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--torrent", required=True)
    ap.add_argument("--save", required=True)
    ap.add_argument("--bind", required=True)
    ap.add_argument("--port", type=int, default=6881)
    ap.add_argument("--seed", action="store_true")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    settings = {
        "listen_interfaces": "%s:%d" % (args.bind, args.port),
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "alert_mask": int(lt.alert.category_t.error_notification | lt.alert.category_t.status_notification),
    }
    ses = lt.session(settings)
    atp = lt.add_torrent_params()
    atp.ti = lt.torrent_info(args.torrent)
    atp.save_path = os.path.abspath(args.save)
    if args.seed:
        atp.flags |= lt.torrent_flags.seed_mode
    h = ses.add_torrent(atp)
    emit({"event": "ready"})

    complete = args.seed
    hash_failures = 0
    last = 0.0
    while not _stop:
        ses.wait_for_alert(100)
        for a in ses.pop_alerts():
            if isinstance(a, lt.hash_failed_alert):
                hash_failures += 1
        st = h.status()
        if not complete and (st.is_seeding or st.is_finished):
            complete = True
            emit({"event": "complete"})
        now = time.monotonic()
        if now - last >= 1.0:
            last = now
            emit({"event": "status", "progress": round(st.progress, 4), "peers": st.num_peers,
                  "uploaded": st.total_payload_upload, "downloaded": st.total_payload_download})
    st = h.status()
    emit({"event": "stopped", "uploaded": st.total_payload_upload, "downloaded": st.total_payload_download,
          "hash_failures": hash_failures})
    return 0


if __name__ == "__main__":
    sys.exit(main())
