#!/usr/bin/env python3
"""Hostile clients against a running `bylaw serve` on 127.0.0.1 (loopback only, every loop
bounded): idle connections, slow headers, slow bodies, oversized headers, many concurrent large
bodies. Prints one JSON object per phase with its start and end (epoch seconds) and the
server's RSS; run.sh probes with well-formed reviews from a separate process meanwhile (a
prober in this event loop would measure the attackers' own CPU use).

usage: load.py --port PORT --pid PID [--review FILE] [--seconds N] [--connections N]
"""
import argparse
import asyncio
import json
import ssl
import time

LOOPBACK = "127.0.0.1"


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


HANDSHAKES = None


async def open_tls(port):
    # Python's TLS is slow: a few dozen handshakes at a time keep the attack steady.
    global HANDSHAKES
    if HANDSHAKES is None:
        HANDSHAKES = asyncio.Semaphore(32)
    async with HANDSHAKES:
        return await asyncio.wait_for(
            asyncio.open_connection(LOOPBACK, port, ssl=context(), server_hostname="localhost"), 30)


def request_head(path, length, extra=""):
    return (f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n{extra}\r\n").encode()


async def post(port, path, body, timeout):
    """One review on a fresh connection; (HTTP status or None, seconds)."""
    started = time.monotonic()
    try:
        reader, writer = await open_tls(port)
        writer.write(request_head(path, len(body)) + body)
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
        writer.close()
        return int(line.split()[1]), time.monotonic() - started
    except (OSError, asyncio.TimeoutError, ValueError, IndexError, ssl.SSLError):
        return None, time.monotonic() - started


async def prober(port, review, stop, results):
    while not stop.is_set():
        status, seconds = await post(port, "/validate/fail?timeout=10s", review, 12)
        results.append((status, seconds))
        await asyncio.sleep(0.05)


async def hold(port, payload, stop, opened):
    """Opens a TLS connection, sends `payload` (possibly partial), then holds it."""
    try:
        reader, writer = await open_tls(port)
    except (OSError, ssl.SSLError):
        return
    opened.append(1)
    try:
        if payload:
            writer.write(payload)
            await writer.drain()
        while not stop.is_set():
            await asyncio.sleep(0.2)
            if reader.at_eof():
                break
    except (OSError, ssl.SSLError):
        pass
    finally:
        writer.close()


async def slow_headers(port, stop, opened):
    """Sends a header line byte by byte, one every 0.5 s."""
    try:
        reader, writer = await open_tls(port)
    except (OSError, ssl.SSLError):
        return
    opened.append(1)
    try:
        for byte in b"POST /validate/fail HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"a" * 200:
            if stop.is_set() or reader.at_eof():
                break
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.5)
    except (OSError, ssl.SSLError):
        pass
    finally:
        writer.close()


BIG_BODY = None


async def big_body(port, size, results):
    """A review of about `size` bytes, written in 64 KiB chunks (the body is shared, so a
    thousand of these cost the client little memory)."""
    global BIG_BODY
    if BIG_BODY is None or len(BIG_BODY) < size:
        BIG_BODY = (b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"big","x":"'
                    + b"x" * size + b'"}}')
    body = memoryview(BIG_BODY)
    started = time.monotonic()
    try:
        reader, writer = await open_tls(port)
        writer.write(request_head("/validate/ignore?timeout=10s", len(body)))
        for at in range(0, len(body), 65536):
            if reader.at_eof():
                break
            writer.write(body[at:at + 65536])
            await asyncio.wait_for(writer.drain(), 15)
        line = await asyncio.wait_for(reader.readline(), 15)
        writer.close()
        results.append(int(line.split()[1]) if line else "closed")
    except (OSError, asyncio.TimeoutError, ValueError, IndexError, ssl.SSLError) as error:
        results.append(type(error).__name__)
    return time.monotonic() - started


async def phase(name, port, pid, review, seconds, attackers):
    stop = asyncio.Event()
    rss = []
    begun = time.time()
    tasks = [asyncio.create_task(a(stop)) for a in attackers]
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        rss.append(rss_kib(pid))
        await asyncio.sleep(0.5)
    stop.set()
    await asyncio.wait(tasks, timeout=30)
    for task in tasks:
        task.cancel()
    return {
        "phase": name,
        "start": round(begun, 3),
        "end": round(time.time(), 3),
        "rss_kib_max": max(rss),
        "rss_kib_last": rss[-1],
    }


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--review", default="examples/admission-reviews/03-create-pod-privileged.json")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--bodies", type=int, default=1000)
    args = parser.parse_args()
    with open(args.review, "rb") as f:
        review = f.read()
    port, pid, n = args.port, args.pid, args.connections
    report = {"rss_kib_start": rss_kib(pid), "phases": []}

    opened = []
    report["phases"].append(await phase(
        f"{n} idle TLS connections", port, pid, review, args.seconds,
        [lambda stop: hold(port, b"", stop, opened) for _ in range(n)]))
    report["phases"][-1]["connections_opened"] = len(opened)

    opened = []
    report["phases"].append(await phase(
        f"{n // 4} slow-header clients", port, pid, review, args.seconds,
        [lambda stop: slow_headers(port, stop, opened) for _ in range(n // 4)]))

    opened = []
    partial = request_head("/validate/fail?timeout=30s", 3 * 1024 * 1024) + b'{"apiVersion":'
    report["phases"].append(await phase(
        f"{n // 4} slow-body clients (3 MiB announced, 14 bytes sent)", port, pid, review,
        args.seconds, [lambda stop: hold(port, partial, stop, opened) for _ in range(n // 4)]))

    huge_header = (b"POST /validate/fail HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * (1 << 20) +
                   b"\r\nContent-Length: 2\r\n\r\n{}")
    statuses = []

    async def oversized(stop):
        try:
            reader, writer = await open_tls(port)
            writer.write(huge_header)
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), 10)
            statuses.append(line.split()[1].decode() if line else "closed")
            writer.close()
        except (OSError, ssl.SSLError, asyncio.TimeoutError, IndexError) as error:
            statuses.append(type(error).__name__)

    report["phases"].append(await phase(
        "50 requests with a 1 MiB header", port, pid, review, args.seconds,
        [oversized for _ in range(50)]))
    report["phases"][-1]["answers"] = sorted(set(statuses))

    big = []
    report["phases"].append(await phase(
        f"{args.bodies} concurrent 3 MiB bodies", port, pid, review, max(args.seconds, 20),
        [lambda stop: big_body(port, 3 * 1024 * 1024 - 200, big) for _ in range(args.bodies)]))
    counts = {}
    for status in big:
        counts[str(status)] = counts.get(str(status), 0) + 1
    report["phases"][-1]["big_body_answers"] = counts
    report["rss_kib_end"] = rss_kib(pid)
    print(json.dumps(report, indent=2))


asyncio.run(main())
