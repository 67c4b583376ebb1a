"""Times a stream of server-sent events: time to the first event and to the end of the stream.

    python3 scripts/stream-timing.py URL [RUNS]

Each run opens a connection, sends GET URL (with `x-agent-identity-user: bench`) and reads the
answer line by line. Prints the median, minimum and maximum of both figures over RUNS (20), in
milliseconds, and the number of events of the last run.
"""

import http.client
import statistics
import sys
import time
import urllib.parse


def one(url):
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    started = time.perf_counter()
    connection.request("GET", parts.path, headers={"x-agent-identity-user": "bench"})
    response = connection.getresponse()
    if response.status != 200:
        raise SystemExit(f"{url}: status {response.status}")
    first, events = None, 0
    while True:
        line = response.readline()
        if not line:
            break
        if line.startswith(b"data:"):
            events += 1
            if first is None:
                first = time.perf_counter() - started
    total = time.perf_counter() - started
    connection.close()
    return first * 1e3, total * 1e3, events


def main():
    url = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    results = [one(url) for _ in range(runs)]
    firsts = [r[0] for r in results]
    totals = [r[1] for r in results]
    print(
        f"first event median {statistics.median(firsts):.2f} ms "
        f"(min {min(firsts):.2f}, max {max(firsts):.2f}); "
        f"whole stream median {statistics.median(totals):.1f} ms "
        f"(min {min(totals):.1f}, max {max(totals):.1f}); events {results[-1][2]}"
    )


main()
