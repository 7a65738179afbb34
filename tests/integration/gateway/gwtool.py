#!/usr/bin/env python3
"""Client-side tools for gateway_e2e.sh (python3 standard library plus `cryptography`).

  gwtool.py loop URL --count N --seconds S [--post-every K]
      N requests spread over S seconds, one connection each (every K-th a POST with a
      unique body). Prints a JSON summary: statuses by method, the serving nodes (the
      "node=<name>" a test service prints), and every non-200 with its body.
  gwtool.py burst URL --count N
      N GETs released at the same instant (a barrier); JSON: status, body, seconds each.
  gwtool.py slowloris HOST:PORT --conns N --seconds S
      N connections that dribble a request head one byte every 0.5 s; JSON: how many the
      server closed before S seconds passed.
  gwtool.py sniff OUT
      captures every frame on every interface of the current network namespace
      (AF_PACKET) until SIGTERM; writes the frames to OUT and a JSON summary to OUT.json
      (frames, TCP bytes to or from port 8083 per address pair).
  gwtool.py find FILE MARKER...
      JSON {marker: found} for each marker in FILE's bytes.
  gwtool.py jwt-show TOKEN
  gwtool.py jwt-resign KEY_PEM TOKEN [--set CLAIM=VALUE]... [--exp-offset S] [--fresh-key]
      re-signs TOKEN's header and claims (changed as asked) with KEY_PEM (ES256), or with a
      new P-256 key (--fresh-key: a signature the account key does not verify).
"""
import argparse
import base64
import http.client
import json
import signal
import socket
import struct
import sys
import threading
import time
import urllib.parse


def request(url, method="GET", body=None, timeout=15.0):
    """(status, body text, headers dict) or (0, error text, {})."""
    u = urllib.parse.urlsplit(url)
    target = u.path + ("?" + u.query if u.query else "")
    try:
        conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)
        headers = {"Content-Type": "text/plain"} if body is not None else {}
        conn.request(method, target, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read().decode("utf-8", "replace")
        hdrs = {k.lower(): v for k, v in resp.getheaders()}
        conn.close()
        return resp.status, data, hdrs
    except Exception as e:  # noqa: BLE001 - the status 0 line says what happened
        return 0, "%s: %s" % (type(e).__name__, e), {}


def node_of(body):
    for word in body.split():
        if word.startswith("node="):
            return word[5:]
    return body.strip()[:20]


def cmd_loop(a):
    period = a.seconds / max(a.count, 1)
    summary = {"GET": {}, "POST": {}, "nodes": {}, "failures": []}
    lock = threading.Lock()
    threads = []
    start = time.monotonic()

    def one(i):
        post = a.post_every > 0 and i % a.post_every == a.post_every - 1
        method = "POST" if post else "GET"
        t0 = time.monotonic()
        status, body, hdrs = request(a.url, method, ("post-%d" % i) if post else None)
        with lock:
            st = summary[method]
            st[str(status)] = st.get(str(status), 0) + 1
            if status == 200:
                n = node_of(body)
                summary["nodes"][n] = summary["nodes"].get(n, 0) + 1
            else:
                summary["failures"].append({
                    "i": i, "method": method, "status": status, "body": body[:300],
                    "content_type": hdrs.get("content-type", ""),
                    "at": round(t0 - start, 3), "took": round(time.monotonic() - t0, 3)})

    for i in range(a.count):
        delay = start + i * period - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        # A thread per request: a slow try (a retry after a timeout) must not hold back
        # the following requests of the loop.
        t = threading.Thread(target=one, args=(i,))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    summary["seconds"] = round(time.monotonic() - start, 2)
    print(json.dumps(summary))


def cmd_burst(a):
    barrier = threading.Barrier(a.count)
    out = [None] * a.count

    def one(i):
        barrier.wait()
        t0 = time.monotonic()
        status, body, _ = request(a.url, timeout=a.timeout)
        out[i] = {"status": status, "body": body.strip()[:200],
                  "seconds": round(time.monotonic() - t0, 3)}

    threads = [threading.Thread(target=one, args=(i,)) for i in range(a.count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps(out))


def cmd_slowloris(a):
    host, port = a.address.rsplit(":", 1)
    head = b"GET /loc/who HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"s" * 4096
    socks = []
    for _ in range(a.conns):
        s = socket.create_connection((host, int(port)), timeout=2)
        s.setblocking(False)
        socks.append(s)
    closed = set()
    end = time.monotonic() + a.seconds
    pos = 0
    while time.monotonic() < end and pos < len(head):
        for i, s in enumerate(socks):
            if i in closed:
                continue
            try:
                s.send(head[pos:pos + 1])
                # A server that gave up on us answers (408) or closes: either ends it.
                data = s.recv(4096)
                if data == b"" or data:
                    closed.add(i)
            except BlockingIOError:
                pass
            except OSError:
                closed.add(i)
        pos += 1
        time.sleep(0.5)
    for s in socks:
        s.close()
    print(json.dumps({"conns": a.conns, "closed_by_server": len(closed)}))


def cmd_sniff(a):
    eth_p_all = 0x0003
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(eth_p_all))
    s.settimeout(0.2)
    frames = []
    size = 0
    pairs = {}
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print("sniffing", flush=True)
    while not stop.is_set():
        try:
            f = s.recv(65535)
        except socket.timeout:
            continue
        except InterruptedError:
            continue
        if size < 256 << 20:
            frames.append(f)
            size += len(f)
        # Ethernet II + IPv4 + TCP: count bytes to or from port 8083 per address pair.
        if len(f) >= 34 and f[12:14] == b"\x08\x00" and f[23] == 6:
            ihl = (f[14] & 0x0F) * 4
            if len(f) >= 14 + ihl + 4:
                sport, dport = struct.unpack("!HH", f[14 + ihl:18 + ihl])
                if 8083 in (sport, dport):
                    src = socket.inet_ntoa(f[26:30])
                    dst = socket.inet_ntoa(f[30:34])
                    key = "-".join(sorted([src, dst]))
                    pairs[key] = pairs.get(key, 0) + len(f)
    with open(a.out, "wb") as fh:
        for f in frames:
            fh.write(f)
    with open(a.out + ".json", "w") as fh:
        json.dump({"frames": len(frames), "bytes": size, "tcp8083_bytes": pairs}, fh)


def cmd_find(a):
    data = open(a.file, "rb").read()
    print(json.dumps({m: m.encode() in data for m in a.markers}))


def b64d(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def b64e(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def cmd_jwt_show(a):
    h, p, _ = a.token.split(".")
    print(json.dumps({"header": json.loads(b64d(h)), "claims": json.loads(b64d(p))}))


def cmd_jwt_resign(a):
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    h, p, _ = a.token.split(".")
    header = json.loads(b64d(h))
    claims = json.loads(b64d(p))
    for kv in a.set or []:
        k, v = kv.split("=", 1)
        claims[k] = v
    if a.exp_offset is not None:
        now = int(time.time())
        claims["exp"] = now + a.exp_offset
        claims["iat"] = min(claims.get("iat", now), claims["exp"] - 60)
        if "nbf" in claims:
            claims["nbf"] = claims["iat"]
    if a.fresh_key:
        key = ec.generate_private_key(ec.SECP256R1())
    else:
        key = serialization.load_pem_private_key(open(a.key, "rb").read(), password=None)
    signing_input = (b64e(json.dumps(header, separators=(",", ":")).encode()) + "." +
                     b64e(json.dumps(claims, separators=(",", ":")).encode()))
    der = key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    print(signing_input + "." + b64e(r.to_bytes(32, "big") + s.to_bytes(32, "big")))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("loop")
    p.add_argument("url")
    p.add_argument("--count", type=int, default=200)
    p.add_argument("--seconds", type=float, default=5)
    p.add_argument("--post-every", type=int, default=0)
    p = sub.add_parser("burst")
    p.add_argument("url")
    p.add_argument("--count", type=int, default=10)
    p.add_argument("--timeout", type=float, default=30)
    p = sub.add_parser("slowloris")
    p.add_argument("address")
    p.add_argument("--conns", type=int, default=20)
    p.add_argument("--seconds", type=float, default=5)
    p = sub.add_parser("sniff")
    p.add_argument("out")
    p = sub.add_parser("find")
    p.add_argument("file")
    p.add_argument("markers", nargs="+")
    p = sub.add_parser("jwt-show")
    p.add_argument("token")
    p = sub.add_parser("jwt-resign")
    p.add_argument("key")
    p.add_argument("token")
    p.add_argument("--set", action="append")
    p.add_argument("--exp-offset", type=int)
    p.add_argument("--fresh-key", action="store_true")
    a = ap.parse_args()
    {"loop": cmd_loop, "burst": cmd_burst, "slowloris": cmd_slowloris, "sniff": cmd_sniff,
     "find": cmd_find, "jwt-show": cmd_jwt_show, "jwt-resign": cmd_jwt_resign}[a.cmd](a)


if __name__ == "__main__":
    main()
