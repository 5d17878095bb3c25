#!/usr/bin/env python3
"""`make bench`, Lambda section: each bootstrap built by `make build-lambdas`, started against a
local Lambda Runtime API (this script, on 127.0.0.1, a free port), answering one event.

Reports per function: the zipped size, the init time (start to the first GET .../next), the
time to answer the event, and the peak RSS (VmHWM) — goals: zip <= 6 MB, init <= 15 ms,
RSS <= 20 MB. The event is one the handler rejects without calling AWS (an empty object: each
task answers InvalidInput, the trigger ignores it), so the figures are the runtime's and the
handler's own, not the network's. Writes "lambdas" into bench/results.json.
"""
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Api(http.server.BaseHTTPRequestHandler):
    """The two calls of the Runtime API a bootstrap makes for one invocation."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802
        st = self.server.state
        if st.get("served"):
            st["second_get"] = time.monotonic()
            time.sleep(5)  # the next invocation never comes; the bench stops the process
            return
        st["first_get"] = time.monotonic()
        st["served"] = True
        body = b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Lambda-Runtime-Aws-Request-Id", "bench-1")
        self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 30000))
        self.send_header(
            "Lambda-Runtime-Invoked-Function-Arn",
            "arn:aws:lambda:us-east-1:123456789012:function:bench",
        )
        self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):  # noqa: N802
        n = int(self.headers.get("Content-Length", "0"))
        payload = self.rfile.read(n)
        st = self.server.state
        st["answered"] = time.monotonic()
        st["kind"] = "error" if self.path.endswith("/error") else "response"
        st["payload"] = payload.decode("utf-8", "replace")[:300]
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peak_rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def measure(name, bootstrap):
    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Api)
    server.state = {}
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {
        "PATH": "/usr/bin:/bin",
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}",
        "AWS_LAMBDA_FUNCTION_NAME": f"autoheal-{name}",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/bench",
        "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AUTOHEAL_STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:autoheal",
    }
    start = time.monotonic()
    proc = subprocess.Popen([bootstrap], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    rss = None
    deadline = start + 10
    while time.monotonic() < deadline:
        if "second_get" in server.state or proc.poll() is not None:
            break
        rss = peak_rss_kib(proc.pid) or rss
        time.sleep(0.002)
    rss = peak_rss_kib(proc.pid) or rss
    proc.kill()
    proc.wait()
    server.shutdown()
    st = server.state
    if "answered" not in st:
        err = proc.stderr.read().decode("utf-8", "replace")[-400:] if proc.stderr else ""
        raise SystemExit(f"{name}: the bootstrap answered no event: {err}")
    return {
        "init_ms": round((st["first_get"] - start) * 1000, 1),
        "answer_ms": round((st["answered"] - st["first_get"]) * 1000, 1),
        "peak_rss_mib": round(rss / 1024, 1) if rss else None,
        "answer": st["kind"],
    }


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "bench", "results.json")
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    lambdas = os.path.join(target, "lambda")
    if not os.path.isdir(lambdas):
        raise SystemExit(f"{lambdas}: no Lambda builds; run `make build-lambdas` first")
    rows = {}
    for name in sorted(os.listdir(lambdas)):
        d = os.path.join(lambdas, name)
        bootstrap = os.path.join(d, "bootstrap")
        if not os.path.isfile(bootstrap):
            continue
        zipped = os.path.join(d, "bootstrap.zip")
        row = measure(name, bootstrap)
        row["zip_mb"] = round(os.path.getsize(zipped) / 1e6, 2) if os.path.isfile(zipped) else None
        row["binary_mb"] = round(os.path.getsize(bootstrap) / 1e6, 2)
        rows[name] = row
    print(f"\n{'lambda bootstrap (x86_64, one event from a local Runtime API)':<44} {'zip MB':>7} {'init ms':>8} {'answer ms':>10} {'RSS MiB':>8}")
    for name, r in rows.items():
        print(f"{name:<44} {r['zip_mb'] or 0:>7.2f} {r['init_ms']:>8.1f} {r['answer_ms']:>10.1f} {r['peak_rss_mib'] or 0:>8.1f}")
    try:
        with open(out) as f:
            allr = json.load(f)
    except (OSError, ValueError):
        allr = {}
    allr["lambdas"] = {"functions": rows, "goals": {"zip_mb": 6, "init_ms": 15, "peak_rss_mib": 20}}
    with open(out, "w") as f:
        json.dump(allr, f, indent=2)
        f.write("\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
