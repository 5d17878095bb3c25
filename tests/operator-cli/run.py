#!/usr/bin/env python3
"""The operator CLI (`autoheal` built with `--features aws`) against a real moto server.

    .venv/bin/python tests/operator-cli/run.py --autoheal target/debug/autoheal-aws-cli \
        --moto-server .venv/bin/moto_server

moto 5.2.5 on 127.0.0.1 and a free port (started and stopped by PID, the differential suite's
harness). What moto is faithful for is checked here end to end, through the real binary:
  - `start --target-group`: one execution per group and minute; a second start is reported as
    already running, not duplicated; a start with no policy is refused (exit 2);
  - `replay --execution-arn` of a succeeded execution: a new `<name>-replay-1`, then `-2`, with the
    stored input; `--mode redrive` refuses with the reason (exit 2);
  - `approve` with a token Step Functions does not know: exit 2 with the fix;
  - `incidents list --table`: the stack's table read through DynamoDB;
  - `worker`: polls (moto has no activity tasks: its GetActivityTask answers 500, which the
    worker counts and backs off from), and on SIGTERM stops and prints its stats, exit 0.
Prints "N passed, M failed"; exits 1 if any failed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TG = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef"


def load_moto_server():
    spec = importlib.util.spec_from_file_location("differential", HERE.parent / "asl-differential" / "run.py")
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod.MotoServer


class Suite:
    def __init__(self, autoheal: str, env: dict[str, str]):
        self.autoheal = autoheal
        self.env = env
        self.passed = 0
        self.failed = 0

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([self.autoheal, *args], capture_output=True, text=True,
                              env=self.env, timeout=timeout, stdin=subprocess.DEVNULL)

    def check(self, name: str, ok: bool, detail: str = "") -> None:
        if ok:
            self.passed += 1
            print(f"ok: {name}")
        else:
            self.failed += 1
            print(f"FAILED: {name}\n{detail}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--autoheal", required=True, help="autoheal built with --features aws")
    p.add_argument("--moto-server", required=True)
    a = p.parse_args()

    import boto3  # the moto venv has it

    moto = load_moto_server()(a.moto_server)
    moto.start()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and not k.startswith("AUTOHEAL_")}
        env.update({
            "AWS_ENDPOINT_URL": moto.url,
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_EC2_METADATA_DISABLED": "true",
        })
        kw = dict(endpoint_url=moto.url, region_name="us-east-1",
                  aws_access_key_id="test", aws_secret_access_key="test")
        sfn = boto3.client("stepfunctions", **kw)
        ddb = boto3.client("dynamodb", **kw)
        machine = sfn.create_state_machine(
            name="autoheal",
            definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}),
            roleArn="arn:aws:iam::123456789012:role/sfn",
        )["stateMachineArn"]
        env["AUTOHEAL_STATE_MACHINE_ARN"] = machine
        s = Suite(a.autoheal, env)
        work = Path(tempfile.mkdtemp(prefix="autoheal-operator-"))
        policy = work / "policy.json"
        policy.write_text(json.dumps({"dry_run": True}))

        # ---- start
        r = s.run("start", "--target-group", TG)
        s.check("start without a policy is refused", r.returncode == 2 and "--policy" in r.stderr, r.stderr)
        r = s.run("start", "--target-group", TG, "--policy", str(policy), "--json")
        first = json.loads(r.stdout) if r.returncode == 0 else {}
        s.check("start --target-group starts one execution",
                r.returncode == 0 and len(first.get("started", [])) == 1, r.stdout + r.stderr)
        r = s.run("start", "--target-group", TG, "--policy", str(policy), "--json")
        again = json.loads(r.stdout) if r.returncode == 0 else {}
        s.check("a second start in the same minute is not a second execution",
                r.returncode == 0 and (again.get("already_running") or again.get("started")) == first.get("started")
                and len(sfn.list_executions(stateMachineArn=machine)["executions"]) == 1,
                r.stdout + r.stderr)
        arn = (first.get("started") or [""])[0]
        for _ in range(50):
            if sfn.describe_execution(executionArn=arn)["status"] != "RUNNING":
                break
            time.sleep(0.1)
        stored_input = json.loads(sfn.describe_execution(executionArn=arn)["input"])
        s.check("the execution's input carries the scope and the chosen policy",
                stored_input.get("scope", {}).get("target_group_arn") == TG
                and stored_input.get("policy") == {"dry_run": True}, json.dumps(stored_input))

        # ---- replay
        name = arn.rsplit(":", 1)[-1]
        r = s.run("replay", "--execution-arn", arn, "--json")
        out = json.loads(r.stdout) if r.returncode == 0 else {}
        s.check("replay of a succeeded execution restarts it as <name>-replay-1",
                out.get("replay") == "restarted" and out.get("name") == f"{name}-replay-1", r.stdout + r.stderr)
        if out.get("execution_arn"):
            replayed = sfn.describe_execution(executionArn=out["execution_arn"])
            s.check("the replay runs with the stored input",
                    json.loads(replayed["input"]) == stored_input, replayed.get("input", ""))
        r = s.run("replay", "--execution-arn", arn, "--mode", "restart", "--json")
        out = json.loads(r.stdout) if r.returncode == 0 else {}
        s.check("a second replay takes the next free name", out.get("name") == f"{name}-replay-2", r.stdout + r.stderr)
        r = s.run("replay", "--execution-arn", arn, "--mode", "redrive")
        s.check("redrive of a succeeded execution is refused with the reason",
                r.returncode == 2 and "cannot redrive" in r.stderr and "--mode restart" in r.stderr, r.stderr)
        r = s.run("replay", "--execution-arn", machine.replace(":stateMachine:", ":execution:") + ":nope")
        s.check("replay of an unknown execution names it", r.returncode == 2 and "no execution" in r.stderr, r.stderr)

        # ---- approvals
        r = s.run("approve", "--token", "AAAAnot-a-real-token")
        s.check("approve with a token Step Functions does not know: exit 2 with the fix",
                r.returncode == 2 and "not valid here" in r.stderr, r.stderr)

        # ---- incidents over DynamoDB
        ddb.create_table(
            TableName="autoheal-incidents",
            AttributeDefinitions=[{"AttributeName": "incident_id", "AttributeType": "S"},
                                  {"AttributeName": "instance_id", "AttributeType": "S"},
                                  {"AttributeName": "detected_at", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "incident_id", "KeyType": "HASH"}],
            GlobalSecondaryIndexes=[{"IndexName": "InstanceId-Timestamp",
                                     "KeySchema": [{"AttributeName": "instance_id", "KeyType": "HASH"},
                                                   {"AttributeName": "detected_at", "KeyType": "RANGE"}],
                                     "Projection": {"ProjectionType": "ALL"}}],
            BillingMode="PAY_PER_REQUEST",
        )
        r = s.run("incidents", "list", "--table", "autoheal-incidents")
        s.check("incidents list --table reads the stack's table",
                r.returncode == 0 and "0 incident(s) in DynamoDB table autoheal-incidents" in r.stdout,
                r.stdout + r.stderr)
        r = s.run("incidents", "show", "web-i-0123456789abcdef0-1", "--table", "autoheal-incidents")
        s.check("incidents show of an unknown id names it and the list command",
                r.returncode == 2 and "no incident" in r.stderr and "--table autoheal-incidents" in r.stderr,
                r.stderr)

        # ---- worker: polls, then SIGTERM stops it cleanly
        activity = sfn.create_activity(name="autoheal-detect")["activityArn"]
        proc = subprocess.Popen([a.autoheal, "worker", "--activity", f"detect={activity}", "--name", "w1"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                stdin=subprocess.DEVNULL)
        time.sleep(3)
        proc.send_signal(signal.SIGTERM)  # this PID only
        try:
            stdout, stderr = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
        stats = {}
        for line in stdout.splitlines():
            try:
                stats = json.loads(line).get("stats", {})
            except json.JSONDecodeError:
                pass
        s.check("worker polls, and on SIGTERM stops and prints its stats",
                proc.returncode == 0 and stats.get("polls", 0) >= 1 and stats.get("tasks") == 0,
                f"exit {proc.returncode}\n{stdout}\n{stderr}")
    finally:
        moto.stop()
    print(f"\n{s.passed} passed, {s.failed} failed")
    return 1 if s.failed else 0


if __name__ == "__main__":
    sys.exit(main())
