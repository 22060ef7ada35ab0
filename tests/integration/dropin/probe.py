#!/usr/bin/env python3
"""What an unmodified Python program sees of its connects (dropin_test.cpp).

probe.py MODE HOST PORT [SECONDS]

Prints one line "RESULT LOCAL_ADDRESS BODY" (RESULT "ok") or "RESULT ELAPSED"
(an errno name, or "timeout"), and exits 0 whatever the connect did: the test
reads the line. ELAPSED is in seconds.

Modes:
  blocking         socket.create_connection, a blocking connect(); then GET /
  asyncio          asyncio.open_connection, a non-blocking connect; then GET /
  nonblocking      a raw non-blocking socket's connect(), finished with select()
  sndtimeo         a blocking connect() with SO_SNDTIMEO = SECONDS
  asyncio-timeout  asyncio.wait_for(open_connection, SECONDS)
  dns              a resolver of the program's own, as dnspython or c-ares are: an A query
                   for upstream.dropin.test sent over a UDP socket connect()ed to the
                   name server at HOST:PORT; prints "ok ADDRESS LOCAL_ADDRESS"
"""
import asyncio
import errno
import select
import socket
import struct
import sys
import time

REQUEST = b"GET / HTTP/1.0\r\nHost: upstream\r\n\r\n"


def body_of(response):
    head, _, body = response.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        return "bad-response:" + head.split(b"\r\n")[0].decode(errors="replace")
    return body.decode().strip()


def read_all(sock):
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def error_line(err, t0):
    name = errno.errorcode.get(err.errno, str(err.errno)) if err.errno else type(err).__name__
    return f"{name} {time.monotonic() - t0:.3f}"


def blocking(host, port):
    t0 = time.monotonic()
    try:
        sock = socket.create_connection((host, port))
    except OSError as err:
        return error_line(err, t0)
    with sock:
        sock.settimeout(10)
        sock.sendall(REQUEST)
        return f"ok {sock.getsockname()[0]} {body_of(read_all(sock))}"


def family_of(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def nonblocking(host, port):
    t0 = time.monotonic()
    sock = socket.socket(family_of(host), socket.SOCK_STREAM)
    with sock:
        sock.setblocking(False)
        err = sock.connect_ex((host, port))
        if err == errno.EINPROGRESS:
            select.select([], [sock], [], 10)
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            return error_line(OSError(err, ""), t0)
        sock.setblocking(True)
        sock.settimeout(10)
        sock.sendall(REQUEST)
        return f"ok {sock.getsockname()[0]} {body_of(read_all(sock))}"


def sndtimeo(host, port, seconds):
    sock = socket.socket(family_of(host), socket.SOCK_STREAM)
    with sock:
        whole = int(seconds)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO,
                        struct.pack("ll", whole, int((seconds - whole) * 1e6)))
        t0 = time.monotonic()
        try:
            sock.connect((host, port))
        except OSError as err:
            return error_line(err, t0)
        return f"ok {sock.getsockname()[0]} connected"


async def fetch(host, port):
    reader, writer = await asyncio.open_connection(host, port)
    local = writer.get_extra_info("sockname")[0]
    writer.write(REQUEST)
    response = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    await writer.wait_closed()
    return f"ok {local} {body_of(response)}"


def run_asyncio(host, port):
    t0 = time.monotonic()
    try:
        return asyncio.run(fetch(host, port))
    except OSError as err:
        return error_line(err, t0)


def asyncio_timeout(host, port, seconds):
    async def attempt():
        t0 = time.monotonic()
        try:
            await asyncio.wait_for(asyncio.open_connection(host, port), seconds)
        except asyncio.TimeoutError:
            return f"timeout {time.monotonic() - t0:.3f}"
        except OSError as err:
            return error_line(err, t0)
        return "ok connected"
    return asyncio.run(attempt())


def dns(host, port):
    t0 = time.monotonic()
    name = b"".join(bytes([len(label)]) + label for label in b"upstream.dropin.test".split(b".")) + b"\0"
    query = struct.pack(">HHHHHH", 0x2a2a, 0x0100, 1, 0, 0, 0) + name + struct.pack(">HH", 1, 1)
    try:
        with socket.socket(family_of(host), socket.SOCK_DGRAM) as sock:
            sock.settimeout(5)
            sock.connect((host, port))
            sock.send(query)
            answer = sock.recv(512)
            local = sock.getsockname()[0]
    except OSError as err:
        return error_line(err, t0)
    if answer[:2] != query[:2] or struct.unpack(">H", answer[6:8])[0] < 1:
        return "bad-answer " + answer.hex()
    return f"ok {socket.inet_ntoa(answer[-4:])} {local}"


def main():
    mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    seconds = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
    modes = {
        "blocking": lambda: blocking(host, port),
        "asyncio": lambda: run_asyncio(host, port),
        "nonblocking": lambda: nonblocking(host, port),
        "sndtimeo": lambda: sndtimeo(host, port, seconds),
        "asyncio-timeout": lambda: asyncio_timeout(host, port, seconds),
        "dns": lambda: dns(host, port),
    }
    print(modes[mode](), flush=True)


if __name__ == "__main__":
    main()
