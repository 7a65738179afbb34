#!/usr/bin/env python3
"""cluster_poll.py: the watching half of bench/cluster_bench.sh: when replicas serve,
and what a node's daemons take in memory. No orchestrator is asked: a replica serves
when it answers HTTP on its node, whichever system placed it.

  cluster_poll.py serving TIMEOUT PORTS NODE...
      PORTS: comma-separated ports, one per replica (the bench gives replica k of a
      service its own port, so several can share a node's host network); NODE:
      ADDR=NETNS, the node's address and its network namespace (/run/netns/NAME).
      Every 50 ms: each node's listening TCP sockets are asked of its namespace
      (inet_diag over netlink, no traffic on the link; a node whose processes were
      killed listens on nothing), and every (node, port) newly listening is sent
      `GET / HTTP/1.0` from here (0.5 s timeout);
      a port is serving from its first HTTP 200 until its socket stops listening on
      that node. Done when every port serves at once: prints
        done_ns=<ns> rounds=<n> probes=<n> cpu_s=<s>
      and one line per port: "<port> <addr> <first 200, ns>"; before exiting, every
      serving (node, port) is asked once more, and one that does not answer 200 then
      is a failure (exit 1) named on stderr.
      The run must start in a network namespace that reaches the nodes (the bench's
      client namespace on the bridge). Exit 1 on TIMEOUT seconds (what is missing on
      stderr), 2 on usage.
  cluster_poll.py listening PORTS NODE...
      NODE as above: prints "<addr> <port>" for each of PORTS a node listens on.
  cluster_poll.py mem PID...
      Memory of the daemons among PID... (a node's processes, `ip netns pids`) by
      /proc/PID/comm: dockerd, containerd, containerd-shim* (shims), edged, edge-shim;
      the containers' own processes are not counted. From /proc/PID/smaps_rollup.
      Prints "<group> <count> <rss_kib> <pss_kib>" per group present and
      "total <count> <rss_kib> <pss_kib>".
  cluster_poll.py tasks NODEMAP < `docker inspect` of tasks (JSON)
      Swarm's own view of the tasks: NODEMAP is ID=NAME,... (node ids to names).
      Prints "running=<n> last_running_ns=<ns> placement=<name>:<n>,..." over the
      tasks in state running; last_running_ns is the latest Status.Timestamp among
      them (set when the node's agent reported the container running).
  cluster_poll.py node < `docker node inspect` of one node (JSON)
      Prints "<Status.State> <UpdatedAt, ns>" (a node's UpdatedAt moves when the
      manager changes its status, e.g. marks it down).
"""
import json
import asyncio
import os
import resource
import socket
import struct
import sys
import time

ROUND_S = 0.05
PROBE_TIMEOUT_S = 0.5


CLONE_NEWNET = 0x40000000
SOCK_DIAG_BY_FAMILY = 20
TCP_LISTEN = 10


def diag_socket(netns):
    """A NETLINK_SOCK_DIAG socket of the network namespace NETNS (a /run/netns path):
    made inside it (setns of this thread and back), it keeps asking that namespace."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(netns, os.O_RDONLY)
    try:
        if libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {netns}")
        try:
            return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 4)  # NETLINK_SOCK_DIAG
        finally:
            if libc.setns(home, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back")
    finally:
        os.close(home)
        os.close(target)


def listening_ports(sock):
    """Ports of the TCP sockets in LISTEN state (IPv4 and IPv6) in SOCK's namespace, by
    an inet_diag dump: it walks the listening sockets only, where /proc/PID/net/tcp
    walks the kernel's whole established hash (2 ms a read here)."""
    ports = set()
    for family in (socket.AF_INET, socket.AF_INET6):
        # nlmsghdr + inet_diag_req_v2 (family, protocol, ext, pad, states, sockid[48])
        req = struct.pack("=IHHII", 16 + 56, SOCK_DIAG_BY_FAMILY, 0x301, 1, 0)
        req += struct.pack("=BBBBI", family, socket.IPPROTO_TCP, 0, 0, 1 << TCP_LISTEN) + bytes(48)
        sock.send(req)
        done = False
        while not done:
            data = sock.recv(65536)
            off = 0
            while off + 16 <= len(data):
                length, kind = struct.unpack_from("=IH", data, off)
                if kind == 3 or kind == 2:  # NLMSG_DONE, NLMSG_ERROR
                    done = True
                    break
                ports.add(struct.unpack_from("!H", data, off + 16 + 4)[0])
                off += (length + 3) & ~3
            if off == 0 and not done:
                break
    return ports


async def probe(addr, port):
    """True when ADDR:PORT answers GET / with HTTP 200 within the timeout."""
    writer = None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(addr, port), PROBE_TIMEOUT_S)
        writer.write(f"GET / HTTP/1.0\r\nHost: {addr}:{port}\r\n\r\n".encode())
        line = await asyncio.wait_for(reader.readline(), PROBE_TIMEOUT_S)
        parts = line.split()
        return len(parts) >= 2 and parts[0].startswith(b"HTTP/1.") and parts[1] == b"200"
    except (OSError, asyncio.TimeoutError, ValueError):
        return False
    finally:
        if writer is not None:
            writer.close()


async def serving(timeout_s, ports, nodes):
    nodes = [(addr, diag_socket(netns)) for addr, netns in nodes]
    deadline = time.monotonic() + timeout_s
    want = set(ports)
    serving_on = {}  # port -> (addr, first ns)
    probed = set()  # (addr, port) already answered 200 while listening
    rounds = probes = 0
    while True:
        rounds += 1
        listen = {addr: listening_ports(sock) & want for addr, sock in nodes}
        # A port whose socket is gone from its node serves no more (killed, moved).
        for port, (addr, _) in list(serving_on.items()):
            if port not in listen[addr]:
                del serving_on[port]
                probed.discard((addr, port))
        todo = [(a, p) for a, ps in listen.items() for p in ps
                if p not in serving_on and (a, p) not in probed]
        if todo:
            probes += len(todo)
            results = await asyncio.gather(*(probe(a, p) for a, p in todo))
            now = time.time_ns()
            for (a, p), ok in zip(todo, results):
                if ok and p not in serving_on:
                    serving_on[p] = (a, now)
                    probed.add((a, p))
        if len(serving_on) == len(want):
            done = max(ns for _, ns in serving_on.values())
            break
        if time.monotonic() > deadline:
            missing = sorted(want - set(serving_on))
            print(f"serving: {len(serving_on)}/{len(want)} ports serve after {timeout_s}s; "
                  f"not serving: {missing[:20]}{' ...' if len(missing) > 20 else ''}; listening: "
                  + ", ".join(f"{a} {sorted(ps)[:10]}" for a, ps in listen.items()), file=sys.stderr)
            return 1
        await asyncio.sleep(ROUND_S)
    # Once more, all of them: what was seen serving still serves.
    check = sorted((a, p) for p, (a, _) in serving_on.items())
    results = await asyncio.gather(*(probe(a, p) for a, p in check))
    bad = [f"{a}:{p}" for (a, p), ok in zip(check, results) if not ok]
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print(f"done_ns={done} rounds={rounds} probes={probes + len(check)} cpu_s={ru.ru_utime + ru.ru_stime:.3f}")
    for p in sorted(serving_on):
        print(p, *serving_on[p])
    if bad:
        print(f"serving: seen serving but no 200 on the final check: {bad}", file=sys.stderr)
        return 1
    return 0


GROUPS = {"dockerd": "dockerd", "containerd": "containerd", "edged": "edged", "edge-shim": "edge-shim"}


def mem(pids):
    tot = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
            group = GROUPS.get(comm) or ("shims" if comm.startswith("containerd-shim") else None)
            if group is None:
                continue
            rss = pss = 0
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss = int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss = int(line.split()[1])
        except (OSError, ValueError):
            continue
        c, r, p = tot.get(group, (0, 0, 0))
        tot[group] = (c + 1, r + rss, p + pss)
    all_ = [0, 0, 0]
    for group in sorted(tot):
        print(group, *tot[group])
        all_ = [x + y for x, y in zip(all_, tot[group])]
    print("total", *all_)
    return 0


def rfc3339_ns(text):
    """ns since the epoch of Docker's RFC 3339 UTC time (nanoseconds, 'Z')."""
    import calendar
    text = text.rstrip("Z")
    whole, _, frac = text.partition(".")
    secs = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
    return secs * 1_000_000_000 + int((frac + "000000000")[:9])


def tasks(nodemap):
    names = dict(p.split("=", 1) for p in nodemap.split(",") if p)
    running = [t for t in json.load(sys.stdin) if t.get("Status", {}).get("State") == "running"]
    per = {}
    for t in running:
        name = names.get(t.get("NodeID", ""), t.get("NodeID", "?")[:8])
        per[name] = per.get(name, 0) + 1
    last = max((rfc3339_ns(t["Status"]["Timestamp"]) for t in running), default=0)
    print(f"running={len(running)} last_running_ns={last} placement="
          + ",".join(f"{k}:{v}" for k, v in sorted(per.items(), key=lambda kv: (len(kv[0]), kv[0]))))
    return 0


def node():
    n = json.load(sys.stdin)[0]
    print(n["Status"]["State"], rfc3339_ns(n["UpdatedAt"]))
    return 0


def main(argv):
    try:
        if argv[1] == "serving" and len(argv) >= 5:
            ports = [int(p) for p in argv[3].split(",") if p]
            nodes = [tuple(n.split("=", 1)) for n in argv[4:]]
            return asyncio.run(serving(float(argv[2]), ports, nodes))
        if argv[1] == "listening" and len(argv) >= 4:
            want = {int(p) for p in argv[2].split(",") if p}
            for n in argv[3:]:
                addr, netns = n.split("=", 1)
                for p in sorted(listening_ports(diag_socket(netns)) & want):
                    print(addr, p)
            return 0
        if argv[1] == "mem":
            return mem(argv[2:])
        if argv[1] == "tasks":
            return tasks(argv[2] if len(argv) > 2 else "")
        if argv[1] == "node":
            return node()
    except (IndexError, KeyError, ValueError) as e:
        print(f"cluster_poll.py: {e}", file=sys.stderr)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
