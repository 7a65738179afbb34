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
  cluster_view.py counters DIR IFACE I...      sum of each counter over nodes I...
  cluster_view.py show DIR IFACE I...          one line per node: state, supernode,
                                               version, members, blacklist, drops
  cluster_view.py supernode_history DIR T I... per node, the supernodes its
                                               cluster.supernode events after T named

Times: T0, K and T in ns since the epoch; event times are RFC 3339 with nanoseconds.
"""
import json
import os
import re
import sys
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
    summary = " ".join(f"supernode={s}:{len(v)}nodes" for s, v in sups.items())
    if len(sups) > 1:
        bad.append("supernodes differ: " + "; ".join(f"{s} on {v}" for s, v in sups.items()))
    print(f"{summary} problems=[{', '.join(bad)}]" if bad else f"{summary} members={n}")
    return 1 if bad else 0


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
    if cmd == "counters":
        return cmd_counters(d, a[3], a[4:])
    if cmd == "show":
        return cmd_show(d, a[3], a[4:])
    if cmd == "supernode_history":
        return cmd_supernode_history(d, int(a[3]), a[4:])
    print(f"unknown command {cmd!r}\n{__doc__}", file=sys.stderr)
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv))
