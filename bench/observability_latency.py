#!/usr/bin/env python3
"""Round trips of the observability plane against a running `flowline serve` (issue 12).

Measures, client side over HTTP on loopback: a `ping` routed to a worker through its control block's
mailbox (POST /nodes/{node}/requests), and a live settings change from the HTTP request to the worker's
acknowledgement that it applied it between two frames (PATCH /settings/{node}). Prints p50/p99/max.

    python3 bench/observability_latency.py --url http://127.0.0.1:PORT --node add --field constant -n 300
"""
import argparse
import json
import statistics
import time
import urllib.request


def call(url, method, path, body):
    data = json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, method=method, headers={"Content-Type": "application/json"})
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=30) as response:
        reply = json.loads(response.read())
    return (time.perf_counter() - start) * 1e6, reply


def summary(name, samples):
    samples = sorted(samples)
    p = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))]
    print(f"{name:<28} n={len(samples):<5} p50={p(0.50):8.0f} us  p99={p(0.99):8.0f} us  max={samples[-1]:8.0f} us  mean={statistics.mean(samples):8.0f} us")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--node", default="add")
    parser.add_argument("--field", default="constant")
    parser.add_argument("-n", type=int, default=300)
    args = parser.parse_args()
    for _ in range(20):  # warm up the JIT and the connection paths
        call(args.url, "POST", f"/nodes/{args.node}/requests", {"op": "ping"})
    http, mailbox = [], []
    for _ in range(args.n):
        elapsed, reply = call(args.url, "POST", f"/nodes/{args.node}/requests", {"op": "ping", "timeout_ms": 5000})
        http.append(elapsed)
        mailbox.append(reply["elapsed_us"])
    summary("ping (HTTP round trip)", http)
    summary("ping (mailbox, server side)", mailbox)
    patches = []
    for i in range(args.n):
        elapsed, reply = call(args.url, "PATCH", f"/settings/{args.node}", {args.field: float(i % 7 + 1)})
        assert reply["applied"] and reply["applied_by"] == "live", reply
        patches.append(elapsed)
    summary("settings change to ack", patches)


if __name__ == "__main__":
    main()
