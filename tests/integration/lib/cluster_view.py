#!/usr/bin/env python3
"""cluster_view.py: what a set of edged nodes says about their clusters.

Reads the files the shell side saved: <dir>/<i>.json (`edgectl cluster -o json` of node
i) and <dir>/<i>.events (the node's /api/v1/events, NDJSON). Used by
tests/integration/cluster_e2e.sh and bench/discovery_bench.sh.

  cluster_view.py agree DIR IFACE N I...       exit 0 when nodes I... all show one
                                               cluster on IFACE with the same supernode
                                               and N members; prints what they show
  cluster_view.py converge DIR IFACE T0 I...   per node, when its view became final
                                               (its last event the view needed; one from
                                               before T0, e.g. a node already up, counts
                                               as T0); prints max seconds since T0 and
                                               since the last node.started of the nodes
                                               (the protocol's part, without the launch
                                               and start-up of the slowest process)
  cluster_view.py failover DIR IFACE K I...    per node, its first cluster.supernode
                                               event for the current supernode after K;
                                               prints max seconds since K
  cluster_view.py supernode_events DIR T I...  count of cluster.supernode events after T
  cluster_view.py blacklist DIR IFACE NAME ADDR I...  exit 0 when every node I... has
                                               ADDR in its blacklist and node NAME not in
                                               its members; prints the entries
  cluster_view.py one_supernode DIR IFACE I...  exit 0 when exactly one of nodes I... is in
                                               state supernode on IFACE and it is the
                                               supernode every node names; prints it
  cluster_view.py counters DIR IFACE I...      sum of each counter over nodes I...
  cluster_view.py show DIR IFACE I...          one line per node: state, supernode,
                                               version, members, blacklist, drops
  cluster_view.py supernode_history DIR T I... per node, the supernodes its
                                               cluster.supernode events after T named
  cluster_view.py wait DIR IFACE N TIMEOUT SOCK I[:PID]...
                                               watches nodes I... until they agree (as
                                               `agree`) or TIMEOUT seconds pass, then saves
                                               <DIR>/<i>.json and <DIR>/<i>.events for the
                                               commands above; see cmd_wait

Times: T0, K and T in ns since the epoch; event times are RFC 3339 with nanoseconds.
"""
import errno
import json
import os
import re
import resource
import selectors
import socket
import sys
import time
from datetime import datetime, timezone


def load_view(d, i):
    try:
        with open(os.path.join(d, f"{i}.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def cluster_on(view, iface):
    if not view:
        return None
    for c in view.get("clusters", []):
        if c.get("interface") == iface:
            return c
    return None


def load_events(d, i):
    out = []
    try:
        with open(os.path.join(d, f"{i}.events")) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
    except OSError:
        pass
    return out


_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)?$")


def event_ns(e):
    """Nanoseconds since the epoch of an event's time, or None."""
    t = e.get("time")
    if isinstance(t, (int, float)):
        return int(t * 1e9) if t < 1e12 else int(t)
    if not isinstance(t, str):
        return None
    m = _RFC3339.match(t)
    if not m:
        return None
    base = datetime.fromisoformat(m.group(1) + (m.group(3) or "Z").replace("Z", "+00:00"))
    if base.tzinfo is None:
        base = base.replace(tzinfo=timezone.utc)
    frac = (m.group(2) or "0")[:9].ljust(9, "0")
    return int(base.timestamp()) * 1_000_000_000 + int(frac)


def names_of(view, c):
    """node_id -> name over the members of cluster c (and the node itself)."""
    out = {m.get("node_id"): m.get("name") for m in c.get("members", [])}
    out[view.get("node_id")] = view.get("node_name")
    return out


def is_node(e, node_id, name):
    return e.get("node") in (node_id, name)


def cmd_agree(d, iface, n, nodes):
    sups, bad = {}, []
    for i in nodes:
        v = load_view(d, i)
        c = cluster_on(v, iface)
        if c is None:
            bad.append(f"n{i}: no cluster on {iface}" + ("" if v else " (no answer)"))
            continue
        sup = c.get("supernode_id")
        members = c.get("members", [])
        sup_name = next((m.get("name") for m in members if m.get("node_id") == sup), sup)
        sups.setdefault(sup_name, []).append(i)
        if len(members) != n:
            bad.append(f"n{i}: {len(members)} members")
        if c.get("state") not in ("member", "supernode"):
            bad.append(f"n{i}: state {c.get('state')}")
    summary = " ".join(f"supernode={s or '(none)'}:{len(v)}nodes" for s, v in sups.items())
    if len(sups) > 1:
        bad.append("supernodes differ: " + "; ".join(
            f"{s or '(none)'} on {_few(v)}" for s, v in sorted(sups.items(), key=lambda kv: -len(kv[1]))))
    if bad and len(nodes) > 6:
        states, sizes = {}, {}
        for i in nodes:
            c = cluster_on(load_view(d, i), iface) or {}
            states[c.get("state", "no-answer")] = states.get(c.get("state", "no-answer"), 0) + 1
            k = len(c.get("members", []))
            sizes[k] = sizes.get(k, 0) + 1
        summary += (" states:" + ",".join(f"{k}={v}" for k, v in sorted(states.items())) +
                    " members:nodes " + ",".join(f"{k}:{v}" for k, v in sorted(sizes.items(), reverse=True)[:8]))
    if len(bad) > 12:  # 200 nodes: the first ones and a count, not a page
        bad = bad[:12] + [f"... {len(bad) - 12} more"]
    print(f"{summary} problems=[{', '.join(bad)}]" if bad else f"{summary} members={n}")
    return 1 if bad else 0


def _few(nodes, k=8):
    return "[" + ",".join(f"n{i}" for i in nodes[:k]) + (f",... {len(nodes)} nodes" if len(nodes) > k else "") + "]"


def cmd_converge(d, iface, t0, nodes):
    worst, worst_abs, last_start, report, missing = 0, t0, t0, [], []
    for i in nodes:
        v = load_view(d, i)
        c = cluster_on(v, iface)
        if c is None:
            missing.append(f"n{i}:no-view")
            continue
        ev = load_events(d, i)
        sup = c.get("supernode_id")
        names = names_of(v, c)
        last = None
        started = [event_ns(e) for e in ev if e.get("type") == "node.started"]
        started = [t for t in started if t is not None]
        last_start = max([last_start] + started)
        need = [("cluster.supernode", sup)] + [
            ("cluster.member_joined", m.get("node_id"))
            for m in c.get("members", [])
            if m.get("node_id") != v.get("node_id")
        ]
        for typ, nid in need:
            ts = [event_ns(e) for e in ev if e.get("type") == typ and is_node(e, nid, names.get(nid))]
            ts = [t for t in ts if t is not None]
            if not ts:
                missing.append(f"n{i}:{typ}({names.get(nid, nid)})")
                continue
            # A node that was up before T0 (the settled first node) has part of its view
            # from then: that part was ready at T0.
            last = max(last or t0, max(ts))
        if last is not None:
            worst = max(worst, last - t0)
            worst_abs = max(worst_abs, last)
            report.append(f"n{i}={(last - t0) / 1e9:.3f}")
    print(f"{worst / 1e9:.3f} {max(0, worst_abs - last_start) / 1e9:.3f}")
    print("per-node: " + " ".join(report), file=sys.stderr)
    if missing:
        print("events missing: " + " ".join(missing[:20]), file=sys.stderr)
        return 2
    return 0


def cmd_failover(d, iface, k, nodes):
    worst, report, missing = 0, [], []
    for i in nodes:
        v = load_view(d, i)
        c = cluster_on(v, iface)
        if c is None:
            missing.append(f"n{i}:no-view")
            continue
        sup = c.get("supernode_id")
        names = names_of(v, c)
        ts = [event_ns(e) for e in load_events(d, i)
              if e.get("type") == "cluster.supernode" and is_node(e, sup, names.get(sup))]
        ts = [t for t in ts if t is not None and t >= k]
        if not ts:
            missing.append(f"n{i}")
            continue
        worst = max(worst, min(ts) - k)
        report.append(f"n{i}={(min(ts) - k) / 1e9:.3f}")
    print(f"{worst / 1e9:.3f}")
    print("per-node: " + " ".join(report), file=sys.stderr)
    if missing:
        print("no cluster.supernode event after the kill on: " + " ".join(missing), file=sys.stderr)
        return 2
    return 0


def cmd_supernode_events(d, t, nodes):
    n, seen = 0, []
    for i in nodes:
        for e in load_events(d, i):
            ts = event_ns(e)
            if e.get("type") == "cluster.supernode" and ts is not None and ts > t:
                n += 1
                seen.append(f"n{i}->{e.get('node')}")
    print(n)
    if seen:
        print("cluster.supernode events: " + " ".join(seen[:20]), file=sys.stderr)
    return 0


def cmd_blacklist(d, iface, name, addr, nodes):
    bad, shown = [], []
    for i in nodes:
        c = cluster_on(load_view(d, i), iface)
        if c is None:
            bad.append(f"n{i}: no cluster on {iface}")
            continue
        entries = [b for b in c.get("blacklist", []) if b.get("address") == addr]
        if not entries:
            bad.append(f"n{i}: no blacklist entry for {addr}")
        else:
            shown.append(f"n{i}: reason={entries[0].get('reason')!r}")
        if any(m.get("name") == name for m in c.get("members", [])):
            bad.append(f"n{i}: {name} is still a member")
    print("; ".join(shown + bad))
    return 1 if bad else 0


def cmd_one_supernode(d, iface, nodes):
    claim, named = [], set()
    for i in nodes:
        v = load_view(d, i)
        c = cluster_on(v, iface)
        if c is None:
            print(f"n{i}: no cluster on {iface}")
            return 1
        named.add(c.get("supernode_id"))
        if c.get("state") == "supernode":
            claim.append((i, v.get("node_id")))
    if len(claim) == 1 and named == {claim[0][1]}:
        print(f"one supernode: n{claim[0][0]}")
        return 0
    print(f"nodes in state supernode: {' '.join(f'n{i}' for i, _ in claim) or 'none'}; "
          f"supernodes named: {len(named)}")
    return 1


def cmd_counters(d, iface, nodes):
    tot = {}
    for i in nodes:
        c = cluster_on(load_view(d, i), iface)
        for k, v in ((c or {}).get("counters") or {}).items():
            if isinstance(v, (int, float)):
                tot[k] = tot.get(k, 0) + v
    print(" ".join(f"{k}={v}" for k, v in sorted(tot.items())))
    return 0


def member_name(c, node_id):
    return next((m.get("name") for m in c.get("members", []) if m.get("node_id") == node_id),
                node_id)


def cmd_show(d, iface, nodes):
    for i in nodes:
        v = load_view(d, i)
        c = cluster_on(v, iface)
        if c is None:
            print(f"n{i} " + ("no cluster on " + iface if v else "no answer"))
            continue
        k = c.get("counters") or {}
        members = ",".join(sorted(m.get("name", "?") for m in c.get("members", [])))
        bl = ",".join(f"{b.get('address')}" for b in c.get("blacklist", []))
        print(f"n{i} state={c.get('state')} cluster={c.get('cluster_id')} "
              f"supernode={member_name(c, c.get('supernode_id'))} version={c.get('version')} "
              f"members={members or '-'} blacklist={bl or '-'} "
              f"dropped_malformed={k.get('dropped_malformed')} dropped_forged={k.get('dropped_forged')}")
    return 0


def cmd_supernode_history(d, t, nodes):
    names = {}
    for i in nodes:
        v = load_view(d, i)
        if v:
            names[v.get("node_id")] = v.get("node_name")
            for c in v.get("clusters", []):
                for m in c.get("members", []):
                    names[m.get("node_id")] = m.get("name")
    for i in nodes:
        seq = [names.get(e.get("node"), e.get("node")) for e in load_events(d, i)
               if e.get("type") == "cluster.supernode" and (event_ns(e) or 0) > t]
        print(f"n{i}: {' '.join(seq)}")
    return 0


# ---------------------------------------------------------------- wait

class _Http:
    """One GET over a node's unix socket, read without blocking: the whole answer."""

    def __init__(self, path, target):
        self.path = path
        self.req = f"GET {target} HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n".encode()
        self.sock, self.buf, self.head, self.body = None, b"", None, bytearray()
        self.chunked, self.length, self.done, self.error = False, None, False, None

    def start(self):
        """True when connected and the request is written (a node that is not up yet, or
        whose backlog is full, refuses: the caller tries again later)."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(self.path)
            s.send(self.req)  # a few dozen bytes: the socket buffer takes them whole
        except OSError:
            s.close()
            return False
        self.sock = s
        return True

    def feed(self):
        """Reads what is there; returns False once the answer is complete or failed."""
        try:
            data = self.sock.recv(262144)
        except BlockingIOError:
            return True
        except OSError as e:
            self.error = str(e)
            return False
        if not data:
            if self.head is not None and not self.chunked and self.length is None:
                self.done = True
            elif not self.done:
                self.error = "connection closed"
            return False
        self.buf += data
        if self.head is None:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return True
            self.head, self.buf = self.buf[:end].decode("latin-1"), self.buf[end + 4:]
            status = self.head.split(" ", 2)
            if len(status) < 2 or status[1] != "200":
                self.error = "answer " + self.head.split("\r\n", 1)[0]
                return False
            for h in self.head.split("\r\n")[1:]:
                k, _, v = h.partition(":")
                k, v = k.strip().lower(), v.strip().lower()
                if k == "transfer-encoding" and "chunked" in v:
                    self.chunked = True
                elif k == "content-length":
                    self.length = int(v)
        if self.chunked:
            while True:
                eol = self.buf.find(b"\r\n")
                if eol < 0:
                    break
                size = int(self.buf[:eol].split(b";")[0] or b"0", 16)
                if len(self.buf) < eol + 2 + size + 2:
                    break
                self._data(self.buf[eol + 2:eol + 2 + size])
                self.buf = self.buf[eol + 2 + size + 2:]
                if size == 0:
                    self.done = True
                    return False
        else:
            self._data(self.buf)
            self.buf = b""
            if self.length is not None and len(self.body) >= self.length:
                self.done = True
                return False
        return True

    def _data(self, b):
        self.body += b

    def close(self):
        if self.sock:
            self.sock.close()
            self.sock = None


class _Node:
    def __init__(self, i, pid, path):
        self.i, self.pid, self.path = i, pid, path
        self.events, self.seen_seq = [], 0
        self.view = None

    def on_event(self, line):
        try:
            e = json.loads(line)
        except ValueError:
            return
        if not isinstance(e, dict) or e.get("seq", 0) <= self.seen_seq:
            return
        self.seen_seq = e.get("seq", 0)
        self.events.append(e)

    def alive(self):
        if not self.pid:
            return True
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False


ROUND_S = 0.5  # between two rounds of fetches
PROBES = 8     # at most this many nodes fetched in a round before the confirming one


def _view_ok(view, iface, n):
    c = cluster_on(view, iface)
    if c is None or c.get("state") not in ("member", "supernode"):
        return None
    if len(c.get("members", [])) != n:
        return None
    return c.get("supernode_id") or None


def _fetch_all(sel, group, target, timeout):
    """GETs `target` from every node of `group` at once (non-blocking, over their unix
    sockets); returns {node: body or None} once all answered or `timeout` passed."""
    out, live = {}, []
    for x in group:
        h = _Http(x.path, target)
        if h.start():
            sel.register(h.sock, selectors.EVENT_READ, (x, h))
            live.append(h)
        else:
            out[x] = None
    end = time.monotonic() + timeout
    while live and time.monotonic() < end:
        for key, _ in sel.select(timeout=0.1):
            x, h = key.data
            if h.feed():
                continue
            sel.unregister(h.sock)
            h.close()
            live.remove(h)
            out[x] = bytes(h.body) if h.done else None
    for h in live:
        sel.unregister(h.sock)
        h.close()
    return out


def cmd_wait(d, iface, n, timeout, sock, nodes):
    """Waits until nodes I... agree, from one process that costs the nodes next to nothing:
    the figures come from the nodes' own events (converge, failover), so the watcher only
    has to notice agreement, and it shares 2 cores with the nodes it watches (following
    every node's event stream and fetching growing views during a launch of 100 nodes
    took the launch loop from 1.8 s to 2.9 s). Every 0.5 s it fetches the views of a few
    nodes (first: the first node listed; later: up to 8 that did not agree yet). When all
    of those show one cluster on IFACE with N members and the same supernode, it fetches
    every node's view at once and checks them (the same instant's answers, as `agree`
    expects); any node that disagrees becomes one to probe. Once they agree, it fetches
    every node's events (all at once, 10 s at most) and saves views and events.
    SOCK: a node's API socket with {} for its number. I:PID: the node's edged; a pid that
    exited or is a zombie ends the wait at once. Exit 0 when they agree, 1 when not
    (timeout, a node exited), with what they show on stdout and the watcher's own cost
    (CPU seconds, fetches, bytes) on stderr."""
    t_start, wall0 = time.monotonic(), time.time_ns()
    deadline = t_start + timeout
    sel = selectors.DefaultSelector()
    ns = []
    for a in nodes:
        i, _, pid = a.partition(":")
        ns.append(_Node(i, int(pid) if pid else 0, sock.replace("{}", i)))
    fetches, rx_bytes, result, why = 0, 0, None, ""
    probe = ns[:1]

    def fetch_views(group):
        nonlocal fetches, rx_bytes
        got = _fetch_all(sel, group, "/api/v1/cluster", max(0.5, min(5.0, deadline - time.monotonic())))
        fetches += len(group)
        for x, body in got.items():
            x.view = None
            if body is not None:
                rx_bytes += len(body)
                try:
                    x.view = json.loads(body)
                except ValueError:
                    pass

    while result is None:
        t_round = time.monotonic()
        dead = [x.i for x in ns if not x.alive()]
        if dead:
            result, why = 1, "edged exited: " + " ".join(f"n{i}" for i in dead)
            break
        fetch_views(probe)
        sups = {_view_ok(x.view, iface, n) for x in probe}
        if len(sups) == 1 and None not in sups:
            fetch_views(ns)
            sups = {_view_ok(x.view, iface, n) for x in ns}
            if len(sups) == 1 and None not in sups:
                result = 0
                break
            sup = next(iter(sups - {None}), None)
            probe = [x for x in ns if _view_ok(x.view, iface, n) != sup or sup is None][:PROBES]
        if time.monotonic() >= deadline:
            result, why = 1, f"no agreement after {timeout:g}s"
            if len(probe) < len(ns):
                fetch_views(ns)  # what everyone shows, for the message below
            break
        time.sleep(max(0.0, ROUND_S - (time.monotonic() - t_round)))
    seen_ns = time.time_ns()

    # Every node's events, all at once, 10 s at most (200 overloaded nodes asked one
    # after the other could take minutes).
    for x, body in _fetch_all(sel, ns, "/api/v1/events", 10.0).items():
        for line in (body or b"").split(b"\n"):
            if line.strip():
                x.on_event(line)
    os.makedirs(d, exist_ok=True)
    for x in ns:
        if x.view is not None:
            with open(os.path.join(d, f"{x.i}.json"), "w") as f:
                json.dump(x.view, f)
        else:
            try:
                os.unlink(os.path.join(d, f"{x.i}.json"))
            except OSError:
                pass
        with open(os.path.join(d, f"{x.i}.events"), "w") as f:
            for e in x.events:
                f.write(json.dumps(e) + "\n")
    if why:
        print(why + ": ", end="")
    shown = cmd_agree(d, iface, n, [x.i for x in ns])
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print(f"watch: seen_ns={seen_ns} wall_s={(seen_ns - wall0) / 1e9:.3f} "
          f"cpu_s={ru.ru_utime + ru.ru_stime:.3f} cluster_fetches={fetches} "
          f"rx_bytes={rx_bytes}", file=sys.stderr)
    return 0 if result == 0 and shown == 0 else 1


def main(a):
    if len(a) < 3:
        print(__doc__, file=sys.stderr)
        return 64
    cmd, d = a[1], a[2]
    if cmd == "agree":
        return cmd_agree(d, a[3], int(a[4]), a[5:])
    if cmd == "converge":
        return cmd_converge(d, a[3], int(a[4]), a[5:])
    if cmd == "failover":
        return cmd_failover(d, a[3], int(a[4]), a[5:])
    if cmd == "supernode_events":
        return cmd_supernode_events(d, int(a[3]), a[4:])
    if cmd == "blacklist":
        return cmd_blacklist(d, a[3], a[4], a[5], a[6:])
    if cmd == "one_supernode":
        return cmd_one_supernode(d, a[3], a[4:])
    if cmd == "counters":
        return cmd_counters(d, a[3], a[4:])
    if cmd == "show":
        return cmd_show(d, a[3], a[4:])
    if cmd == "supernode_history":
        return cmd_supernode_history(d, int(a[3]), a[4:])
    if cmd == "wait":
        return cmd_wait(d, a[3], int(a[4]), float(a[5]), a[6], a[7:])
    print(f"unknown command {cmd!r}\n{__doc__}", file=sys.stderr)
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv))
