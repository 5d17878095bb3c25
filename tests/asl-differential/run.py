#!/usr/bin/env python3
"""Differential test: run each ASL case on `autoheal asl run` and on moto's Step Functions
interpreter, and check that both agree on the status, the output (compared as parsed JSON) or the
error name.

    python3 tests/asl-differential/run.py \
        --autoheal target/debug/autoheal --moto-server .venv/bin/moto_server

Needs boto3 (it comes with moto); when the running Python lacks it, the script re-runs itself
with the Python that sits next to --moto-server. See README.md in this folder.
"""

from __future__ import annotations

import argparse
import atexit
import fnmatch
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
CASES = HERE / "cases"
KNOWN = HERE / "known_differences.json"
ROLE_ARN = "arn:aws:iam::123456789012:role/sfn"
REGION = "us-east-1"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--autoheal", required=True, help="the autoheal CLI binary (target/debug/autoheal)")
    p.add_argument("--moto-server", required=True, help="the moto_server executable of a venv with moto[server]==5.2.5")
    p.add_argument("--case", action="append", default=[], metavar="GLOB",
                   help="only cases whose file name matches (e.g. '1*' or '*choice*'); repeatable")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per case and side (default 30)")
    p.add_argument("--verbose", "-v", action="store_true", help="print both results for every case")
    p.add_argument("--strict-known", action="store_true",
                   help="count a known difference that now agrees as a failure (to keep the list honest)")
    return p.parse_args(argv)


# ---------------------------------------------------------------- boto3 or re-exec

def ensure_boto3(moto_server: str) -> None:
    try:
        import boto3  # noqa: F401
        return
    except ImportError:
        pass
    py = Path(moto_server).resolve().parent / "python"
    if os.environ.get("ASL_DIFF_REEXEC") or not py.exists():
        sys.exit(f"boto3 is not importable and {py} does not exist: run this with the moto venv's python")
    os.environ["ASL_DIFF_REEXEC"] = "1"
    os.execv(str(py), [str(py), str(Path(__file__).resolve()), *sys.argv[1:]])


# ---------------------------------------------------------------- moto server

class MotoServer:
    """moto_server on 127.0.0.1 and a free port; stopped by its PID whatever happens."""

    def __init__(self, exe: str):
        self.exe = exe
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.log = tempfile.TemporaryFile()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc = subprocess.Popen([self.exe, "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        atexit.register(self.stop)
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"moto_server exited with {self.proc.returncode}:\n"
                                   + self.log.read().decode(errors="replace")[-2000:])
            try:
                with urllib.request.urlopen(self.url + "/moto-api/data.json", timeout=2) as r:
                    r.read()
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not answer on {self.url} within 30 s")
                time.sleep(0.1)
        body = json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode()
        req = urllib.request.Request(self.url + "/moto-api/config", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            r.read()

    def stop(self) -> None:
        p, self.proc = self.proc, None
        if p is None or p.poll() is not None:
            return
        p.terminate()  # SIGTERM to this PID only
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)


# ---------------------------------------------------------------- the two sides

def result(status: str, output=None, error=None, cause=None, detail=None) -> dict:
    r = {"status": status}
    if status == "SUCCEEDED":
        r["output"] = output
    if error is not None:
        r["error"] = error
    if cause is not None:
        r["cause"] = cause
    if detail is not None:
        r["detail"] = detail
    return r


def run_ours(autoheal: str, def_file: Path, in_file: Path, exec_name: str, timeout: float) -> dict:
    cmd = [autoheal, "asl", "run", "--definition", str(def_file), "--input", str(in_file),
           "--name", exec_name, "--json"]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return result("TIMEOUT", detail=f"autoheal did not finish in {timeout:.0f} s")
    if p.returncode == 2:
        # bad usage or input: the definition did not parse or validate
        return result("INVALID_DEFINITION", detail=(p.stderr or p.stdout).strip()[-500:])
    try:
        out = json.loads(p.stdout)
    except json.JSONDecodeError:
        return result("CLI_ERROR", detail=f"exit {p.returncode}: {(p.stderr or p.stdout).strip()[-500:]}")
    status = out.get("status")
    expected_code = 0 if status == "SUCCEEDED" else 1
    if p.returncode != expected_code:
        return result("CLI_ERROR", detail=f"status {status} but exit code {p.returncode}")
    return result(status, output=out.get("output"), error=out.get("error"), cause=out.get("cause"))


class Moto:
    def __init__(self, url: str):
        import boto3
        from botocore.config import Config

        self.client = boto3.client("stepfunctions", region_name=REGION, endpoint_url=url,
                                   aws_access_key_id="testing", aws_secret_access_key="testing",
                                   config=Config(retries={"max_attempts": 1}))

    def run(self, name: str, definition: dict, inp, exec_name: str, timeout: float) -> dict:
        from botocore.exceptions import ClientError

        c = self.client
        try:
            sm = c.create_state_machine(name=name, definition=json.dumps(definition), roleArn=ROLE_ARN)
        except ClientError as e:
            return result("INVALID_DEFINITION", detail=str(e)[-500:])
        arn = sm["stateMachineArn"]
        try:
            ex = c.start_execution(stateMachineArn=arn, name=exec_name, input=json.dumps(inp))
            deadline = time.monotonic() + timeout
            while True:
                d = c.describe_execution(executionArn=ex["executionArn"])
                if d["status"] != "RUNNING":
                    break
                if time.monotonic() > deadline:
                    c.stop_execution(executionArn=ex["executionArn"])
                    return result("TIMEOUT", detail=f"moto execution still RUNNING after {timeout:.0f} s")
                time.sleep(0.05)
            status = d["status"]
            if status == "SUCCEEDED":
                raw = d.get("output")
                try:
                    return result(status, output=json.loads(raw))
                except (TypeError, json.JSONDecodeError):
                    return result("SUCCEEDED_WITHOUT_JSON_OUTPUT", detail=f"output {raw!r}")
            error, cause = d.get("error"), d.get("cause")
            if error is None:
                # fall back to the history's last event
                events = c.get_execution_history(executionArn=ex["executionArn"], reverseOrder=True)["events"]
                for ev in events:
                    det = ev.get("executionFailedEventDetails") or ev.get("executionTimedOutEventDetails")
                    if det:
                        error, cause = det.get("error"), det.get("cause")
                        break
            return result(status, error=error, cause=cause)
        finally:
            try:
                c.delete_state_machine(stateMachineArn=arn)
            except ClientError:
                pass


def agree(ours: dict, moto: dict) -> bool:
    if ours["status"] != moto["status"]:
        return False
    if ours["status"] == "SUCCEEDED":
        return ours.get("output") == moto.get("output")
    if ours["status"] in ("FAILED", "TIMED_OUT", "ABORTED"):
        return ours.get("error") == moto.get("error")
    return ours["status"] == "INVALID_DEFINITION"


def short(r: dict, limit: int = 700) -> str:
    s = json.dumps(r, sort_keys=True)
    return s if len(s) <= limit else s[:limit] + "…"


# ---------------------------------------------------------------- main

def main(argv: list[str]) -> int:
    args = parse_args(argv)
    ensure_boto3(args.moto_server)
    autoheal = str(Path(args.autoheal).resolve())
    if not os.access(autoheal, os.X_OK):
        print(f"--autoheal {args.autoheal}: not an executable file", file=sys.stderr)
        return 2
    known: dict[str, str] = json.loads(KNOWN.read_text()) if KNOWN.exists() else {}
    files = sorted(CASES.glob("*.json"))
    if args.case:
        files = [f for f in files if any(fnmatch.fnmatch(f.name, g) for g in args.case)]
    if not files:
        print("no cases matched", file=sys.stderr)
        return 2
    stale = sorted(set(known) - {f.name for f in sorted(CASES.glob("*.json"))})
    for name in stale:
        print(f"WARNING  known_differences.json names {name}, which is not a case")

    # SIGTERM/SIGHUP end the run through the finally below, which stops moto_server.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: sys.exit(128 + signum))

    started = time.monotonic()
    server = MotoServer(args.moto_server)
    passed = failed = skipped = now_agree = 0
    try:
        server.start()
        moto = Moto(server.url)
        with tempfile.TemporaryDirectory(prefix="asl-diff-") as tmp:
            for f in files:
                stem = f.stem
                try:
                    spec = json.loads(f.read_text())
                    definition, inp = spec["definition"], spec.get("input", {})
                except (json.JSONDecodeError, KeyError) as e:
                    print(f"FAIL     {f.name}: unreadable case: {e}")
                    failed += 1
                    continue
                def_file = Path(tmp) / f"{stem}.json"  # our state machine name is the file stem
                in_file = Path(tmp) / f"{stem}.input.json"
                def_file.write_text(json.dumps(definition, indent=2))
                in_file.write_text(json.dumps(inp))
                exec_name = f"exec-{stem}"[:80]
                t0 = time.monotonic()
                ours = run_ours(autoheal, def_file, in_file, exec_name, args.timeout)
                theirs = moto.run(stem, definition, inp, exec_name, args.timeout)
                dt = time.monotonic() - t0
                same = agree(ours, theirs)
                if f.name in known:
                    if same:
                        now_agree += 1
                        print(f"NOW-AGREES {f.name}: listed in known_differences.json but both sides agree; remove it")
                        if args.strict_known:
                            failed += 1
                        else:
                            passed += 1
                    else:
                        skipped += 1
                        print(f"KNOWN    {f.name}: {known[f.name]}")
                        if args.verbose:
                            print(f"           ours: {short(ours)}\n           moto: {short(theirs)}")
                elif same:
                    passed += 1
                    print(f"PASS     {f.name} ({dt:.1f}s)")
                    if args.verbose:
                        print(f"           both: {short(ours)}")
                else:
                    failed += 1
                    print(f"FAIL     {f.name}\n           ours: {short(ours)}\n           moto: {short(theirs)}")
                sys.stdout.flush()
    finally:
        server.stop()
    took = time.monotonic() - started
    print(f"# {len(files)} cases in {took:.1f}s" + (f"; {now_agree} known difference(s) now agree" if now_agree else ""))
    print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
