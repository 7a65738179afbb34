#!/usr/bin/env python3
"""serf_watch.py: the Serf half of bench/discovery_bench.sh: one process stamps every
agent's log lines, one process per phase waits for what the stamps show.

Serf 0.8.2 stamps nothing with sub-second resolution: its log lines carry whole seconds
("2026/12/07 21:22:37 [INFO] serf: EventMemberJoin: b 127.0.0.2"), `serf monitor` streams
the same lines, the RPC stream's member events and the event handlers' environment
(SERF_EVENT, SERF_SELF_NAME, SERF_TAG_*) carry no time at all. So the lines are stamped
as they arrive, by ONE process for all agents: each agent writes to a FIFO of its own,
this process reads them all through epoll and stamps each line with time.time_ns() when
read. How late that can be is measured, not assumed: a probe process writes its own
time_ns() into a FIFO of the same loop every 50 ms, and `lag` reports how late those
lines were stamped over a phase (the run prints it for the launch burst).

  serf_watch.py stamp DIR N          creates DIR/fifo/n1..nN, writes DIR/stamper.ready,
                                     then appends "<ns> <i> <line>" to DIR/serf.stamped
                                     for every line agent i writes (i 0: the probe's
                                     "probe <sent ns>") until killed
  serf_watch.py wait DIR TIMEOUT joined N SINCE T0 I...
                                     until every agent I... logged EventMemberJoin for N
                                     distinct members (lines stamped at or after SINCE);
                                     prints the worst agent's time since T0 and the same
                                     from the event handlers' files DIR/n<i>/serf.events
                                     ("-" when a handler had not run 5 s later, or
                                     at once with SERF_NO_HANDLER=1)
  serf_watch.py wait DIR TIMEOUT failed NAME SINCE T0 I...
                                     until every agent I... logged EventMemberFailed for
                                     NAME at or after T0; prints as above
  serf_watch.py lag DIR FROM TO      the probe's lag between FROM and TO (ns since the
                                     epoch): "max_ms p90_ms samples"
Exit status of wait: 0 seen, 1 timeout (the agents still missing on stderr), 2 usage.
"""
import os
import re
import selectors
import sys
import time


def cmd_stamp(d, n):
    fdir = os.path.join(d, "fifo")
    os.makedirs(fdir, exist_ok=True)
    sel = selectors.DefaultSelector()
    keep = []
    for i in range(1, n + 1):
        p = os.path.join(fdir, f"n{i}")
        if not os.path.exists(p):
            os.mkfifo(p, 0o600)
        r = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
        # A writer of our own: agents come and go between phases, and without one the
        # FIFO would read as end-of-file (and poll readable) once an agent exits.
        keep.append(os.open(p, os.O_WRONLY))
        sel.register(r, selectors.EVENT_READ, [i, b""])
    pr, pw = os.pipe()
    if os.fork() == 0:
        os.close(pr)
        while True:
            time.sleep(0.05)
            try:
                os.write(pw, b"probe %d\n" % time.time_ns())
            except OSError:
                os._exit(0)
    os.close(pw)
    os.set_blocking(pr, False)
    sel.register(pr, selectors.EVENT_READ, [0, b""])
    out = open(os.path.join(d, "serf.stamped"), "ab", buffering=0)
    open(os.path.join(d, "stamper.ready"), "w").close()
    while True:
        batch = []
        for key, _ in sel.select():
            now = time.time_ns()
            st = key.data
            try:
                data = os.read(key.fd, 65536)
            except BlockingIOError:
                continue
            if not data:  # the probe died: nothing else can end
                sel.unregister(key.fd)
                continue
            st[1] += data
            *whole, st[1] = st[1].split(b"\n")
            for line in whole:
                batch.append(b"%d %d %s\n" % (now, st[0], line))
        if batch:
            out.write(b"".join(batch))


def stamped_lines(d, since, pos=0):
    """(lines after byte pos: (ns, i, text)), new pos."""
    out = []
    try:
        with open(os.path.join(d, "serf.stamped"), "rb") as f:
            f.seek(pos)
            data = f.read()
    except OSError:
        return out, pos
    end = data.rfind(b"\n") + 1
    for line in data[:end].split(b"\n"):
        p = line.split(b" ", 2)
        if len(p) == 3 and p[0].isdigit() and int(p[0]) >= since:
            out.append((int(p[0]), p[1].decode(), p[2].decode("utf-8", "replace")))
    return out, pos + end


def handler_time(d, i, since, want):
    """First time agent i's event handler saw what want(event, names) accepts."""
    try:
        with open(os.path.join(d, f"n{i}", "serf.events")) as f:
            for line in f:
                p = line.split()
                if len(p) >= 2 and p[0].isdigit() and int(p[0]) >= since and want(p[1], p[2:]):
                    return int(p[0])
    except OSError:
        pass
    return None


def handler_joined(d, i, since, n):
    seen = set()
    try:
        with open(os.path.join(d, f"n{i}", "serf.events")) as f:
            for line in f:
                p = line.split()
                if len(p) >= 2 and p[0].isdigit() and int(p[0]) >= since and p[1] == "member-join":
                    seen.update(p[2:])
                    if len(seen) >= n:
                        return int(p[0])
    except OSError:
        pass
    return None


def cmd_wait(d, timeout, what, arg, since, t0, nodes):
    deadline = time.monotonic() + timeout
    want = set(nodes)
    seen = {i: set() for i in nodes}
    t_log = {}
    pos = 0
    join_re = re.compile(r"EventMemberJoin: (\S+)")
    while True:
        lines, pos = stamped_lines(d, since, pos)
        for ns, i, text in lines:
            if i not in want or i in t_log:
                continue
            if what == "joined":
                m = join_re.search(text)
                if m:
                    seen[i].add(m.group(1))
                    if len(seen[i]) >= int(arg):
                        t_log[i] = ns
            elif ns >= t0 and f"EventMemberFailed: {arg} " in text:
                t_log[i] = ns
        if len(t_log) == len(want):
            break
        if time.monotonic() > deadline:
            missing = [f"n{i}" + (f"({len(seen[i])} members)" if what == "joined" else "")
                       for i in nodes if i not in t_log]
            print(f"not seen after {timeout:g}s on {len(missing)} agents: {' '.join(missing[:30])}",
                  file=sys.stderr)
            return 1
        time.sleep(0.2)
    worst_log = max(t_log.values()) - t0
    if os.environ.get("SERF_NO_HANDLER") == "1":  # the agents run no event handler
        print(f"{worst_log / 1e9:.3f} -")
        return 0
    # Serf runs handlers after a quiet second of coalescing: give them 5 s more.
    h_deadline = time.monotonic() + 5
    while True:
        if what == "joined":
            t_h = [handler_joined(d, i, since, int(arg)) for i in nodes]
        else:
            t_h = [handler_time(d, i, t0, lambda ev, names: ev == "member-failed" and arg in names)
                   for i in nodes]
        if None not in t_h or time.monotonic() > h_deadline:
            break
        time.sleep(0.3)
    h = f"{(max(t_h) - t0) / 1e9:.3f}" if None not in t_h else "-"
    print(f"{worst_log / 1e9:.3f} {h}")
    return 0


def cmd_lag(d, frm, to):
    lags = []
    lines, _ = stamped_lines(d, frm)
    for ns, i, text in lines:
        if i == "0" and ns <= to and text.startswith("probe "):
            lags.append(ns - int(text.split()[1]))
    if not lags:
        print("- - 0")
        return 0
    lags.sort()
    print(f"{lags[-1] / 1e6:.1f} {lags[int((len(lags) - 1) * 0.9)] / 1e6:.1f} {len(lags)}")
    return 0


def main(a):
    try:
        if a[1] == "stamp":
            return cmd_stamp(a[2], int(a[3]))
        if a[1] == "wait":
            return cmd_wait(a[2], float(a[3]), a[4], a[5], int(a[6]), int(a[7]), a[8:])
        if a[1] == "lag":
            return cmd_lag(a[2], int(a[3]), int(a[4]))
    except (IndexError, ValueError):
        pass
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
