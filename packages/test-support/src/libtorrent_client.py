#!/usr/bin/python3
"""
A real BitTorrent client (libtorrent-rasterbar 2.0, Debian's python3-libtorrent) for interop tests.

Everything is bound to 127.0.0.1; DHT, LSD, UPnP, NAT-PMP and uTP are off. Output is JSON lines on
stdout (one object per line); diagnostics go to stderr.

Subcommands:
  create   --file F --out T [--piece-length N] [--tracker URL ...]        v1-only torrent of one file
  info     --torrent T                                                    {"info_hash", "num_pieces", ...}
  download (--torrent T | --magnet URI) --save DIR (--peer 127.0.0.1:PORT ... | --tracker-only) [--timeout S]
           [--listen-port P] [--preset tuned|default|high-performance] [--setting NAME=VALUE ...]
  seed     --torrent T --save DIR [--listen-port P] [--preset default|high-performance] [--recheck]
           [--peer H:P ...] [--timeout S] [--setting NAME=VALUE ...]

--setting NAME=VALUE overrides one settings_pack entry after the preset and the loopback settings
(an integer if VALUE parses as one, else true/false or a string), e.g. out_enc_policy=0 (pe_forced).

Presets: "default" is libtorrent's default settings, "high-performance" its high_performance_seed(),
"tuned" (download only, its default there) a deep pipeline with big socket buffers for fast tests.
Every preset gets the loopback settings on top.

download: one status line per second, then a final line
  {"done": bool, "seconds": s (from add_torrent), "transfer_seconds": s (from the first payload byte),
   "bytes": n, "mib_per_s": x, "hash_failures": n, "error": str|null, "peak_rss_kib": n,
   "cpu_seconds": user+system CPU of the process (all threads) from add_torrent to the end,
   "cpu_system_seconds": its system part (page faults on fresh memory show here),
   "peers": [{"address": "ip:port", "encryption": "none"|"plaintext_encrypted"|"rc4_encrypted"}]
   (every peer seen past its handshake, as peer_info's flags last showed it)}
  exit 0 when finished/seeding, 1 on timeout or error.
seed: {"ready": true, "port": P} once listening and seeding, then one status line per second until
  SIGTERM/SIGINT (exit 0) or --timeout (exit 0, final line {"stopped": "timeout"}).
"""

import argparse
import json
import os
import resource
import signal
import sys
import time

import libtorrent as lt

LOOPBACK = "127.0.0.1"


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def log(msg):
    sys.stderr.write("[libtorrent_client] %s\n" % msg)
    sys.stderr.flush()


def peak_rss_kib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_times():
    """(utime + stime, stime) of this process, all threads, from /proc/self/stat."""
    with open("/proc/self/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS


def preset_settings(preset):
    """The settings a preset starts from (the loopback settings go on top)."""
    if preset == "default":
        return {}
    if preset == "high-performance":
        return dict(lt.high_performance_seed())
    if preset == "tuned":
        return download_settings()
    raise SystemExit("unknown preset %s" % preset)


def loopback_settings(listen_port):
    """Settings every client started by the tests gets: loopback only, no discovery, TCP only."""
    return {
        "listen_interfaces": "%s:%d" % (LOOPBACK, listen_port),
        "outgoing_interfaces": LOOPBACK,
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_ip_notifier": False,
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "enable_outgoing_tcp": True,
        "enable_incoming_tcp": True,
        "allow_multiple_connections_per_ip": True,
        "min_reconnect_time": 1,
        "peer_connect_timeout": 5,
        "smooth_connects": False,
        "connection_speed": 200,
        "close_redundant_connections": False,
        "anonymous_mode": False,
        "user_agent": "ezio-interop-libtorrent/" + lt.__version__,
        "alert_mask": int(
            lt.alert.category_t.error_notification
            | lt.alert.category_t.status_notification
            | lt.alert.category_t.storage_notification
            | lt.alert.category_t.peer_notification
            | lt.alert.category_t.connect_notification
        ),
    }


def download_settings():
    """Loopback throughput: deep request pipelines, big socket/disk buffers."""
    return {
        "max_out_request_queue": 1500,
        "max_allowed_in_request_queue": 2000,
        "request_queue_time": 3,
        "whole_pieces_threshold": 20,
        "max_queued_disk_bytes": 64 * 1024 * 1024,
        "aio_threads": 8,
        "hashing_threads": 4,
        "checking_mem_usage": 2048,
        "cache_size": 65536,  # 16 KiB blocks; ignored by the 2.0 mmap backend but harmless
        "recv_socket_buffer_size": 4 * 1024 * 1024,
        "send_socket_buffer_size": 4 * 1024 * 1024,
        "piece_timeout": 20,
        "request_timeout": 30,
    }


def make_session(settings):
    known = lt.default_settings()
    pack = {}
    for k, v in settings.items():
        if k in known:
            pack[k] = v
        else:
            log("setting %s unknown to libtorrent %s, skipped" % (k, lt.__version__))
    return lt.session(pack)


def load_torrent(path, strip_trackers=False):
    with open(path, "rb") as f:
        data = f.read()
    if not strip_trackers:
        return lt.torrent_info(lt.bdecode(data))
    d = lt.bdecode(data)
    d.pop(b"announce", None)
    d.pop(b"announce-list", None)
    return lt.torrent_info(d)


def v1_hash(ti):
    return str(ti.info_hashes().v1)


def parse_peer(s):
    host, _, port = s.rpartition(":")
    if host != LOOPBACK:
        raise SystemExit("peer %s: only %s is allowed" % (s, LOOPBACK))
    return (host, int(port))


def wait_listen(ses, deadline):
    """Waits for listen_succeeded_alert (TCP) and returns the actual port, or None."""
    while time.monotonic() < deadline:
        ses.wait_for_alert(100)
        for a in ses.pop_alerts():
            if isinstance(a, lt.listen_succeeded_alert):
                if a.socket_type == lt.socket_type_t.tcp:
                    return a.port
            elif isinstance(a, lt.listen_failed_alert):
                log("listen failed: %s" % a.message())
                return None
        port = ses.listen_port()
        if port:
            return port
    return None


def setting_value(text):
    if text in ("true", "false"):
        return text == "true"
    try:
        return int(text)
    except ValueError:
        return text


def apply_settings(settings, overrides):
    for item in overrides or []:
        name, _, value = item.partition("=")
        settings[name] = setting_value(value)


def peer_encryption(p):
    if p.flags & lt.peer_info.rc4_encrypted:
        return "rc4_encrypted"
    if p.flags & lt.peer_info.plaintext_encrypted:
        return "plaintext_encrypted"
    return "none"


def record_peers(h, seen):
    """Remembers, per peer past its handshake, how its connection is encrypted."""
    for p in h.get_peer_info():
        if p.flags & lt.peer_info.connecting or p.flags & lt.peer_info.handshake:
            continue
        seen["%s:%d" % (p.ip[0], p.ip[1])] = peer_encryption(p)


def connected_endpoints(h):
    out = set()
    for p in h.get_peer_info():
        # 'connecting' peers are not connected yet
        if p.flags & lt.peer_info.connecting or p.flags & lt.peer_info.handshake:
            continue
        out.add((p.ip[0], p.ip[1]))
    return out


# ---------------------------------------------------------------------------------------------- create


def cmd_create(args):
    fs = lt.file_storage()
    lt.add_files(fs, os.path.abspath(args.file))
    flags = lt.create_torrent.v1_only if hasattr(lt.create_torrent, "v1_only") else 0
    ct = lt.create_torrent(fs, args.piece_length, flags=flags)
    for i, url in enumerate(args.tracker or []):
        ct.add_tracker(url, i)
    ct.set_creator("ezio interop tests")
    lt.set_piece_hashes(ct, os.path.dirname(os.path.abspath(args.file)))
    data = lt.bencode(ct.generate())
    with open(args.out, "wb") as f:
        f.write(data)
    ti = lt.torrent_info(args.out)
    emit({"info_hash": v1_hash(ti), "num_pieces": ti.num_pieces(), "piece_length": ti.piece_length()})
    return 0


# ------------------------------------------------------------------------------------------------ info


def cmd_info(args):
    ti = load_torrent(args.torrent)
    fs = ti.files()
    files = [{"path": fs.file_path(i), "size": fs.file_size(i)} for i in range(fs.num_files())]
    emit(
        {
            "info_hash": v1_hash(ti),
            "num_pieces": ti.num_pieces(),
            "piece_length": ti.piece_length(),
            "total_size": ti.total_size(),
            "name": ti.name(),
            "files": files,
            "trackers": [t.url for t in ti.trackers()],
        }
    )
    return 0


# -------------------------------------------------------------------------------------------- download


def cmd_download(args):
    if not args.torrent and not args.magnet:
        raise SystemExit("download: give --torrent T or --magnet URI")
    if not args.peer and not args.tracker_only and not args.magnet:
        raise SystemExit("download: give --peer 127.0.0.1:PORT (repeatable) or --tracker-only")
    peers = [parse_peer(p) for p in (args.peer or [])]
    settings = preset_settings(args.preset)
    settings.update(loopback_settings(args.listen_port))
    apply_settings(settings, args.setting)
    ses = make_session(settings)
    start = time.monotonic()
    deadline = start + args.timeout
    seen_peers = {}
    hash_failures = 0
    error = None
    first_byte_at = None

    port = wait_listen(ses, min(deadline, start + 10))
    if port is None:
        emit({"done": False, "seconds": 0, "bytes": 0, "mib_per_s": 0, "hash_failures": 0,
              "error": "listen failed", "peak_rss_kib": peak_rss_kib()})
        return 1

    if args.magnet:
        # BEP 9: the metadata comes from the peers (x.pe in the link, or --peer).
        atp = lt.parse_magnet_uri(args.magnet)
        if not args.tracker_only:
            atp.trackers = []
        ti = None
    else:
        ti = load_torrent(args.torrent, strip_trackers=not args.tracker_only)
        atp = lt.add_torrent_params()
        atp.ti = ti
    atp.save_path = os.path.abspath(args.save)
    atp.flags = (atp.flags & ~lt.torrent_flags.auto_managed & ~lt.torrent_flags.paused) | (
        lt.torrent_flags.disable_dht | lt.torrent_flags.disable_lsd | lt.torrent_flags.disable_pex
    )
    h = ses.add_torrent(atp)
    added = time.monotonic()
    cpu_at_add, sys_at_add = cpu_times()
    total = ti.total_size() if ti is not None else 0
    if ti is not None:
        log("downloading %s (%d bytes, %d pieces) on port %d from %s" % (
            v1_hash(ti), total, ti.num_pieces(), port, peers or "trackers"))
    else:
        log("downloading magnet %s on port %d from %s" % (args.magnet, port, peers or "the link"))

    last_dial = 0.0
    last_report = time.monotonic()
    done = False
    while True:
        now = time.monotonic()
        if now >= deadline:
            error = "timeout after %ss" % args.timeout
            break
        st = h.status()
        record_peers(h, seen_peers)
        if st.is_seeding or st.is_finished or st.state in (
            lt.torrent_status.states.seeding,
            lt.torrent_status.states.finished,
        ):
            done = True
            break
        if st.errc.value() != 0:
            error = "torrent error: %s" % st.errc.message()
            break
        if peers and now - last_dial >= 0.5:
            last_dial = now
            connected = connected_endpoints(h)
            for p in peers:
                if p not in connected:
                    h.connect_peer(p)
        if first_byte_at is None and st.total_payload_download > 0:
            first_byte_at = now
        if now - last_report >= 1.0:
            last_report = now
            emit({
                "t": round(now - start, 3),
                "progress": round(st.progress, 6),
                "state": str(st.state),
                "bytes": st.total_wanted_done,
                "download_rate": st.download_payload_rate,
                "upload_rate": st.upload_payload_rate,
                "num_peers": st.num_peers,
                "hash_failures": hash_failures,
            })
        ses.wait_for_alert(50)
        for a in ses.pop_alerts():
            if isinstance(a, lt.hash_failed_alert):
                hash_failures += 1
                log("hash failed: piece %d" % a.piece_index)
            elif isinstance(a, (lt.torrent_error_alert, lt.file_error_alert)):
                log(a.message())
                error = a.message()
            elif isinstance(a, lt.peer_error_alert) or isinstance(a, lt.peer_disconnected_alert):
                log(a.message())
        if error is not None:
            break

    end = time.monotonic()
    cpu_now, sys_now = cpu_times()
    cpu = cpu_now - cpu_at_add
    cpu_sys = sys_now - sys_at_add
    # drain remaining alerts for a last count of hash failures
    for a in ses.pop_alerts():
        if isinstance(a, lt.hash_failed_alert):
            hash_failures += 1
    st = h.status()
    if ti is None and st.has_metadata:
        total = h.torrent_file().total_size()
    seconds = end - added
    transfer_seconds = (end - first_byte_at) if first_byte_at is not None else None
    nbytes = st.total_wanted_done
    emit({
        "done": done,
        "seconds": round(seconds, 3),
        "transfer_seconds": round(transfer_seconds, 3) if transfer_seconds is not None else None,
        "bytes": nbytes,
        "total": total,
        "mib_per_s": round(nbytes / (1024 * 1024) / seconds, 3) if seconds > 0 else 0,
        "transfer_mib_per_s": round(nbytes / (1024 * 1024) / transfer_seconds, 3) if transfer_seconds else None,
        "hash_failures": hash_failures,
        "payload_downloaded": st.total_payload_download,
        "error": None if done else (error or "not finished"),
        "peak_rss_kib": peak_rss_kib(),
        "cpu_seconds": round(cpu, 3),
        "cpu_system_seconds": round(cpu_sys, 3),
        "peers": [{"address": a, "encryption": e} for a, e in sorted(seen_peers.items())],
    })
    # Best effort: flush files before exiting
    try:
        ses.remove_torrent(h)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 2:
            ses.wait_for_alert(100)
            if any(isinstance(a, lt.torrent_removed_alert) for a in ses.pop_alerts()):
                break
    except Exception as e:  # noqa: BLE001
        log("remove_torrent: %s" % e)
    return 0 if done else 1


# ------------------------------------------------------------------------------------------------ seed

_stop = False


def _on_signal(signum, frame):
    global _stop
    _stop = True


def cmd_seed(args):
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    settings = preset_settings("high-performance" if args.high_performance else args.preset)
    settings.update(loopback_settings(args.listen_port))
    apply_settings(settings, args.setting)
    ses = make_session(settings)
    start = time.monotonic()
    deadline = start + args.timeout
    port = wait_listen(ses, min(deadline, start + 10))
    if port is None:
        emit({"ready": False, "error": "listen failed"})
        return 1

    ti = load_torrent(args.torrent, strip_trackers=args.no_trackers)
    atp = lt.add_torrent_params()
    atp.ti = ti
    atp.save_path = os.path.abspath(args.save)
    flags = (atp.flags & ~lt.torrent_flags.auto_managed & ~lt.torrent_flags.paused) | (
        lt.torrent_flags.disable_dht | lt.torrent_flags.disable_lsd | lt.torrent_flags.disable_pex
    )
    if not args.recheck:
        flags |= lt.torrent_flags.seed_mode
    atp.flags = flags
    h = ses.add_torrent(atp)
    peers = [parse_peer(p) for p in (args.peer or [])]

    ready = False
    last_report = time.monotonic()
    last_dial = 0.0
    while not _stop:
        now = time.monotonic()
        if now >= deadline:
            emit({"stopped": "timeout"})
            break
        st = h.status()
        if st.errc.value() != 0:
            emit({"ready": False, "error": st.errc.message()})
            return 1
        if not ready and (st.is_seeding or st.state == lt.torrent_status.states.seeding):
            ready = True
            emit({"ready": True, "port": port, "info_hash": v1_hash(ti)})
        elif not ready and st.state in (
            lt.torrent_status.states.downloading,
            lt.torrent_status.states.downloading_metadata,
        ) and not args.allow_partial:
            emit({"ready": False, "error": "data in %s does not match the torrent (progress %.4f)" % (
                args.save, st.progress)})
            return 1
        if ready and peers and now - last_dial >= 0.5:
            last_dial = now
            connected = connected_endpoints(h)
            for p in peers:
                if p not in connected:
                    h.connect_peer(p)
        if ready and now - last_report >= 1.0:
            last_report = now
            emit({
                "t": round(now - start, 3),
                "state": str(st.state),
                "upload_rate": st.upload_payload_rate,
                "uploaded": st.total_payload_upload,
                "num_peers": st.num_peers,
            })
        ses.wait_for_alert(100)
        for a in ses.pop_alerts():
            if isinstance(a, (lt.torrent_error_alert, lt.file_error_alert, lt.hash_failed_alert)):
                log(a.message())
    return 0


# ------------------------------------------------------------------------------------------------ main


def main(argv):
    ap = argparse.ArgumentParser(prog="libtorrent_client.py")
    sub = ap.add_subparsers(dest="cmd", required=True)

    c = sub.add_parser("create")
    c.add_argument("--file", required=True)
    c.add_argument("--out", required=True)
    c.add_argument("--piece-length", type=int, default=256 * 1024)
    c.add_argument("--tracker", action="append")

    i = sub.add_parser("info")
    i.add_argument("--torrent", required=True)

    d = sub.add_parser("download")
    d.add_argument("--torrent")
    d.add_argument("--magnet", help="a magnet link instead of --torrent (metadata from the peers, BEP 9)")
    d.add_argument("--save", required=True)
    d.add_argument("--peer", action="append", help="127.0.0.1:PORT, repeatable")
    d.add_argument("--tracker-only", action="store_true", help="no --peer: use the torrent's trackers")
    d.add_argument("--timeout", type=float, default=60)
    d.add_argument("--listen-port", type=int, default=0)
    d.add_argument("--preset", choices=["tuned", "default", "high-performance"], default="tuned")
    d.add_argument("--setting", action="append", help="NAME=VALUE, a settings_pack override (repeatable)")

    s = sub.add_parser("seed")
    s.add_argument("--torrent", required=True)
    s.add_argument("--save", required=True)
    s.add_argument("--listen-port", type=int, default=0)
    s.add_argument("--preset", choices=["default", "high-performance"], default="default")
    s.add_argument("--high-performance", action="store_true", help="the same as --preset high-performance")
    s.add_argument("--recheck", action="store_true", help="hash-check the data instead of seed_mode")
    s.add_argument("--allow-partial", action="store_true", help="with --recheck: seed whatever is there")
    s.add_argument("--no-trackers", action="store_true", help="ignore the torrent's announce URLs")
    s.add_argument("--peer", action="append", help="also dial 127.0.0.1:PORT (repeatable)")
    s.add_argument("--timeout", type=float, default=600)
    s.add_argument("--setting", action="append", help="NAME=VALUE, a settings_pack override (repeatable)")

    args = ap.parse_args(argv)
    if args.cmd == "create":
        return cmd_create(args)
    if args.cmd == "info":
        return cmd_info(args)
    if args.cmd == "download":
        return cmd_download(args)
    if args.cmd == "seed":
        return cmd_seed(args)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
