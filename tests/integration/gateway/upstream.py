#!/usr/bin/env python3
"""Test upstreams for gateway_e2e.sh: servers that a route points at.

    upstream.py MODE HOST:PORT

Modes:
  global    a well-behaved HTTP/1.1 server standing in for the central API gateway:
            200, body "global <method> <target>\\n" (keep-alive, Content-Length)
  garbage   reads the request head, answers bytes that are not HTTP, closes
  huge      answers a status line followed by ~1 MiB of headers, never ends the head
  silent    reads the request and never answers (the connection stays open)

Runs until killed; one thread per connection so a stuck client never blocks another.
"""
import socket
import sys
import threading


def read_head(conn):
    data = b""
    while b"\r\n\r\n" not in data and len(data) < 65536:
        chunk = conn.recv(4096)
        if not chunk:
            return None
        data += chunk
    return data


def serve_global(conn):
    while True:
        head = read_head(conn)
        if head is None:
            return
        line = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
        hdrs = head.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower()
        length = 0
        for h in hdrs.split("\r\n")[1:]:
            if h.startswith("content-length:"):
                length = int(h.split(":", 1)[1])
        rest = head.split(b"\r\n\r\n", 1)[1]
        while len(rest) < length:
            chunk = conn.recv(65536)
            if not chunk:
                return
            rest += chunk
        body = ("global %s %s\n" % (line[0], line[1] if len(line) > 1 else "")).encode()
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\n\r\n" + body)


def serve_garbage(conn):
    if read_head(conn) is not None:
        conn.sendall(b"\x00\x01SPEAKING NOT-HTTP \xff\xfe garbage garbage\r\n\r\n" * 4)


def serve_huge(conn):
    if read_head(conn) is None:
        return
    conn.sendall(b"HTTP/1.1 200 OK\r\n")
    line = b"X-Huge-%06d: " + b"a" * 1000 + b"\r\n"
    try:
        for i in range(1024):
            conn.sendall(line % i)
    except OSError:
        return  # the gateway gave up on us: what it should do
    threading.Event().wait(30)


def serve_silent(conn):
    read_head(conn)
    threading.Event().wait(120)


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("global", "garbage", "huge", "silent"):
        sys.exit("usage: upstream.py global|garbage|huge|silent HOST:PORT")
    handler = {"global": serve_global, "garbage": serve_garbage, "huge": serve_huge,
               "silent": serve_silent}[sys.argv[1]]
    host, port = sys.argv[2].rsplit(":", 1)
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, int(port)))
    srv.listen(128)
    print("listening", sys.argv[1], sys.argv[2], flush=True)

    def run(conn):
        try:
            handler(conn)
        except OSError:
            pass
        finally:
            conn.close()

    while True:
        conn, _ = srv.accept()
        threading.Thread(target=run, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
