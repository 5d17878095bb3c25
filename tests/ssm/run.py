#!/usr/bin/env python3
"""Tests of the SSM Command documents in ssm/: their parameters and patterns, and their scripts run
in bash against fake hosts (PATH shims plus a fake /proc), with every diagnostics document parsed
and classified by the real `autoheal diagnose`.

    .venv/bin/python tests/ssm/run.py [--autoheal target/debug/autoheal] [-k NAME] [-v]

Prints one line per check and ends with `N passed, M failed` (exit 1 on any failure). Needs bash,
coreutils and PyYAML (a tiny built-in reader covers the documents when PyYAML is missing).
See README.md in this folder for how the fake hosts work.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SSM = ROOT / "ssm"
IDS_RS = ROOT / "tasks" / "core" / "src" / "ids.rs"
DOCS = ("diagnostics", "restart_services", "verify_health")
BASH = shutil.which("bash") or "/bin/bash"
SH = shutil.which("sh") or "/bin/sh"
# Real tools the scripts may use (everything else a script runs must be a shim of the fake host).
REAL_TOOLS = ("timeout", "grep", "find", "realpath", "date")
# Real tools the shims use, by absolute path (never on the scripts' PATH).
SHIM_TOOLS = {name: shutil.which(name) for name in ("sleep", "cat", "cp")}

# ---------------------------------------------------------------- results


class Results:
    def __init__(self, verbose: bool) -> None:
        self.lines: list[tuple[bool, str]] = []
        self.verbose = verbose

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        self.lines.append((bool(ok), f"{'PASS' if ok else 'FAIL'} {name}" + ("" if ok or not detail else f": {detail}")))
        return bool(ok)

    def eq(self, name: str, actual, expected) -> bool:
        return self.check(name, actual == expected, f"expected {expected!r}, got {actual!r}")


# ---------------------------------------------------------------- YAML


def load_yaml(path: Path):
    text = path.read_text()
    try:
        import yaml  # type: ignore

        return yaml.safe_load(text)
    except ImportError:
        return MiniYaml(text).parse()


class MiniYaml:
    """Just enough YAML for these documents: block mappings and sequences, `|`/`|-`/`>-` block
    scalars, double-quoted scalars, `[a, b]` flow lists. Used only when PyYAML is missing."""

    def __init__(self, text: str) -> None:
        self.lines = text.split("\n")
        self.i = 0

    @staticmethod
    def indent(line: str) -> int:
        return len(line) - len(line.lstrip(" "))

    def skip_blank(self) -> None:
        while self.i < len(self.lines) and (not self.lines[self.i].strip() or self.lines[self.i].strip() == "---"
                                             or self.lines[self.i].lstrip().startswith("#")):
            self.i += 1

    def parse(self):
        self.skip_blank()
        return self.node(self.indent(self.lines[self.i]))

    def scalar(self, s: str):
        s = s.strip()
        if s.startswith('"'):
            return json.loads(s)
        if s.startswith("[") and s.endswith("]"):
            return [self.scalar(x) for x in s[1:-1].split(",") if x.strip()]
        return s

    def block(self, style: str, ind: int) -> str:
        out: list[str] = []
        while self.i < len(self.lines) and (not self.lines[self.i].strip() or self.indent(self.lines[self.i]) > ind):
            out.append(self.lines[self.i])
            self.i += 1
        while out and not out[-1].strip():
            out.pop()
        base = min((self.indent(l) for l in out if l.strip()), default=0)
        body = [l[base:] for l in out]
        if style.startswith(">"):
            return " ".join(l.strip() for l in body)
        return "\n".join(body) + ("" if style.endswith("-") else "\n")

    def value(self, rest: str, ind: int):
        rest = rest.strip()
        if rest in ("|", "|-", ">", ">-"):
            self.i += 1
            return self.block(rest, ind)
        if rest:
            self.i += 1
            return self.scalar(rest)
        self.i += 1
        self.skip_blank()
        return self.node(self.indent(self.lines[self.i]))

    def node(self, ind: int):
        self.skip_blank()
        if self.lines[self.i].lstrip().startswith("- "):
            items = []
            while self.i < len(self.lines):
                self.skip_blank()
                if self.i >= len(self.lines):
                    break
                line = self.lines[self.i]
                if self.indent(line) != ind or not line.lstrip().startswith("- "):
                    break
                rest = line.lstrip()[2:]
                if re.match(r"^[A-Za-z_][\w]*:( |$)", rest):
                    self.lines[self.i] = " " * (ind + 2) + rest
                    items.append(self.node(ind + 2))
                else:
                    items.append(self.value(rest, ind))
            return items
        mapping = {}
        while self.i < len(self.lines):
            self.skip_blank()
            if self.i >= len(self.lines):
                break
            line = self.lines[self.i]
            if self.indent(line) != ind:
                break
            key, _, rest = line.strip().partition(":")
            mapping[key] = self.value(rest, ind)
        return mapping


# ---------------------------------------------------------------- documents


def documents() -> dict[str, dict]:
    return {name: load_yaml(SSM / f"{name}.yml") for name in DOCS}


def script_of(doc: dict) -> str:
    return "\n".join(doc["mainSteps"][0]["inputs"]["runCommand"])


def rust_patterns() -> dict[str, str]:
    text = IDS_RS.read_text()
    out = {}
    for name in ("SERVICE_NAME", "CLEANUP_PATH", "HEALTH_CHECK_PATH"):
        m = re.search(r'pub const %s: &str = r"([^"]*)";' % name, text)
        if not m:
            raise SystemExit(f"cannot find patterns::{name} in {IDS_RS}")
        out[name] = m.group(1)
    # The list forms, when ids.rs defines them too.
    for name in ("SERVICE_NAME_LIST", "CLEANUP_PATH_LIST"):
        m = re.search(r'pub const %s: &str =\s*r"([^"]*)";' % name, text)
        if m:
            out[name] = m.group(1)
    return out


def list_pattern(single: str, sep: str, max_more: int = 15) -> str:
    core = single[1:-1]  # drop ^ and $
    return f"^({core}({sep}{core}){{0,{max_more}}})?$"


def shared_blocks(script: str) -> dict[str, str]:
    return {m.group(1): m.group(0) for m in
            re.finditer(r"# --- begin shared: (\w+) ---\n.*?# --- end shared: \1 ---", script, re.S)}


INJECTIONS = ["; rm -rf /", "$(reboot)", "`id`", "a\nb", "../../etc", "nginx|cat", "'quoted'"]


def static_checks(r: Results, docs: dict[str, dict]) -> None:
    pats = rust_patterns()
    services_list = list_pattern(pats["SERVICE_NAME"], "[ ,]")
    paths_list = list_pattern(pats["CLEANUP_PATH"], " ")
    for const, built in (("SERVICE_NAME_LIST", services_list), ("CLEANUP_PATH_LIST", paths_list)):
        if const in pats:
            r.eq(f"static patterns::{const} is the list built from its item pattern", pats[const], built)
    scripts = {n: script_of(d) for n, d in docs.items()}
    for name, doc in docs.items():
        script = scripts[name]
        r.eq(f"static {name}: schemaVersion 2.2", doc.get("schemaVersion"), "2.2")
        steps = doc.get("mainSteps", [])
        r.check(f"static {name}: one aws:runShellScript step",
                len(steps) == 1 and steps[0].get("action") == "aws:runShellScript", str(steps)[:200])
        params = doc.get("parameters", {})
        for pname, p in params.items():
            pat = p.get("allowedPattern")
            ok = (p.get("type") == "String" and isinstance(pat, str) and p.get("interpolationType") == "ENV_VAR"
                  and isinstance(p.get("default"), str) and re.fullmatch(pat, p["default"]) is not None)
            r.check(f"static {name}: parameter {pname} has type String, allowedPattern, ENV_VAR and a default it allows",
                    ok, json.dumps(p)[:300])
            r.check(f"static {name}: parameter {pname} is used as \"$SSM_{pname}\"", f'"$SSM_{pname}"' in script)
        r.check(f"static {name}: script never uses {{{{ }}}} interpolation", "{{" not in script)
        used = set(re.findall(r"\$\{?SSM_(\w+)", script))
        r.check(f"static {name}: every $SSM_ variable is a parameter", used <= set(params), str(used - set(params)))
        quoted = re.compile(r'"\$SSM_\w+"|"\$\{SSM_\w+\+x\}"')
        spans = [m.span() for m in quoted.finditer(script)]
        loose = [m.start() for m in re.finditer(r"\$\{?SSM_", script)
                 if not any(a < m.start() < b for a, b in spans)]
        r.check(f"static {name}: every $SSM_ use is double-quoted", not loose,
                "; ".join(script[max(0, i - 30):i + 30].replace("\n", " ") for i in loose[:3]))
        r.check(f"static {name}: script starts with #!/bin/bash", script.startswith("#!/bin/bash\n"))
        for const, var in (("SERVICE_NAME", "SERVICE_NAME_PATTERN"), ("CLEANUP_PATH", "CLEANUP_PATH_PATTERN"),
                           ("HEALTH_CHECK_PATH", "HEALTH_CHECK_PATH_PATTERN")):
            r.check(f"static {name}: {var} equals patterns::{const}", f"{var}='{pats[const]}'" in script)
        if "Services" in params:
            r.eq(f"static {name}: Services allowedPattern is the list of patterns::SERVICE_NAME",
                 params["Services"]["allowedPattern"], services_list)
        if "HealthCheckPath" in params:
            r.eq(f"static {name}: HealthCheckPath allowedPattern equals patterns::HEALTH_CHECK_PATH",
                 params["HealthCheckPath"]["allowedPattern"], pats["HEALTH_CHECK_PATH"])
        if "CleanupPaths" in params:
            r.eq(f"static {name}: CleanupPaths allowedPattern is the list of patterns::CLEANUP_PATH",
                 params["CleanupPaths"]["allowedPattern"], paths_list)
        # Every parameter pattern rejects every injection string.
        for pname, p in params.items():
            accepted = [s for s in INJECTIONS if re.fullmatch(p["allowedPattern"], s)]
            r.check(f"injection {name}: {pname} allowedPattern rejects all {len(INJECTIONS)} strings", not accepted,
                    f"accepted {accepted!r}")
        r.check(f"static {name}: bash -n", subprocess.run([BASH, "-n"], input=script, text=True,
                                                          capture_output=True).returncode == 0)
    # Injection strings against the Rust patterns themselves.
    for const in ("SERVICE_NAME", "CLEANUP_PATH", "HEALTH_CHECK_PATH"):
        for s in INJECTIONS:
            r.check(f"injection patterns::{const} rejects {s!r}", re.fullmatch(pats[const], s) is None)
    # The list pattern accepts a single name exactly when the name pattern does.
    samples = ["app", "nginx.service", "a@b_c-d.e", "x" * 128, "x" * 129, "-app", ".app", "app service", "", "app/x"]
    for s in samples:
        if " " in s or s == "":
            continue
        r.check(f"static Services list pattern agrees with patterns::SERVICE_NAME on {s[:20]!r}",
                (re.fullmatch(services_list, s) is None) == (re.fullmatch(pats["SERVICE_NAME"], s) is None))
    r.check("static Services list pattern accepts 'app nginx.service,db' and rejects 17 names",
            re.fullmatch(services_list, "app nginx.service,db") is not None
            and re.fullmatch(services_list, " ".join(["a"] * 17)) is None)
    # The shared helper blocks are the same text in every document.
    blocks = {n: shared_blocks(s) for n, s in scripts.items()}
    for block in sorted(set().union(*[set(b) for b in blocks.values()])):
        holders = [n for n in DOCS if block in blocks[n]]
        texts = {blocks[n][block] for n in holders}
        r.check(f"static shared block '{block}' is identical in {', '.join(holders)}", len(texts) == 1)


# ---------------------------------------------------------------- fake hosts

SHIM_HEAD = """#!/bin/bash
me=${0##*/}
H=$FAKE_HOST
printf '%s\\n' "$me $*" >>"$H/calls.log"
[ -e "$H/hang/$me" ] && exec @sleep@ 30
out() { [ -f "$H/$1" ] && @cat@ "$H/$1"; return 0; }
"""

SHIMS = {
    # systemd: units/<name> holds `systemctl show` output; units/<name>.after-restart the state a
    # restart leaves, units/<name>.restart-exit the exit status of the restart.
    "systemctl": """
cmd=; unit=
for a in "$@"; do
  case $a in -*) ;; *) if [ -z "$cmd" ]; then cmd=$a; else unit=$a; fi ;; esac
done
u=${unit%.service}
case $cmd in
  show)
    if [ -z "$unit" ]; then echo "Version=252.16-1.amzn2023"; exit 0; fi
    if [ -f "$H/units/$u" ]; then out "units/$u"; else printf 'Id=%s.service\\nLoadState=not-found\\nActiveState=inactive\\nSubState=dead\\nNRestarts=0\\n' "$u"; fi ;;
  restart)
    if [ ! -f "$H/units/$u" ]; then echo "Failed to restart $u.service: Unit $u.service not found." >&2; exit 5; fi
    [ -f "$H/units/$u.after-restart" ] && @cp@ "$H/units/$u.after-restart" "$H/units/$u"
    [ -f "$H/units/$u.restart-exit" ] && exit "$(@cat@ "$H/units/$u.restart-exit")"
    exit 0 ;;
  *) echo "fake systemctl: unsupported: $*" >&2; exit 1 ;;
esac
""",
    # SysV: sysv/<name> holds + or -; sysv/<name>.after-restart the state a restart leaves.
    "service": """
if [ "$1" = --status-all ]; then
  for f in "$H"/sysv/*; do
    case $f in *.after-restart) continue ;; esac
    [ -f "$f" ] && printf ' [ %s ]  %s\\n' "$(@cat@ "$f")" "${f##*/}"
  done
  exit 0
fi
case $2 in
  restart)
    [ -f "$H/sysv/$1" ] || { echo "$1: unrecognized service" >&2; exit 1; }
    [ -f "$H/sysv/$1.after-restart" ] && @cp@ "$H/sysv/$1.after-restart" "$H/sysv/$1"
    exit 0 ;;
  status) [ "$(@cat@ "$H/sysv/$1" 2>/dev/null)" = + ] && exit 0; exit 3 ;;
esac
exit 1
""",
    "pgrep": """
name=${@: -1}
# Like the kernel's comm, process names are cut to 15 characters.
while read -r p; do [ "${p:0:15}" = "$name" ] && { echo 4242; exit 0; }; done <"$H/processes"
exit 1
""",
    "ss": 'out ss.txt\n',
    "df": 'case " $* " in *" -i "*) out df-i.txt ;; *) out df.txt ;; esac\n',
    "dmesg": 'out dmesg.txt\n',
    "nproc": 'out nproc.txt\n',
    "getent": '[ -f "$H/dns_ok" ] && { echo "52.94.0.10      $2"; exit 0; }; exit 2\n',
    "ip": 'case " $* " in *" -6 "*) out route6.txt ;; *) out route4.txt ;; esac\n',
    # curl.txt: one line per call ("EXIT CODE SECONDS"); the last line repeats. IMDS is unreachable.
    "curl": """
case " $* " in *169.254.169.254*) echo "curl: (7) Failed to connect to 169.254.169.254" >&2; exit 7 ;; esac
mapfile -t L <"$H/curl.txt"
set -- ${L[0]}
[ "${#L[@]}" -gt 1 ] && printf '%s\\n' "${L[@]:1}" >"$H/curl.txt"
[ -n "${4:-}" ] && @sleep@ "$4"
printf '%s %s' "$2" "$3"
[ "$1" = 7 ] && echo "curl: (7) Failed to connect to 127.0.0.1: Connection refused" >&2
[ "$1" = 28 ] && echo "curl: (28) Operation timed out" >&2
exit "$1"
""",
    "journalctl": 'echo "Vacuuming done, freed 24.0M of archived journals from /var/log/journal/ec2abc." >&2\n',
    "logrotate": 'exit 0\n',
    "rpm": '[ -f "$H/agent-version" ] && { out agent-version; exit 0; }; echo "package amazon-ssm-agent is not installed"; exit 1\n',
    "snap": """
[ -f "$H/snap-agent-version" ] || { echo "error: no matching snaps installed" >&2; exit 1; }
echo "Name              Version        Rev    Tracking         Publisher  Notes"
echo "amazon-ssm-agent  $(@cat@ "$H/snap-agent-version")  9565   latest/stable/…  aws✓       classic"
""",
    # The CPU sample reads /proc/stat, sleeps 1 s, reads it again: the fake sleep moves the second
    # snapshot (proc/stat.next) into place, so the script sees the CPU as busy as the case wants.
    "sleep": """
[ -f "$H/proc/stat.next" ] && @cp@ "$H/proc/stat.next" "$H/proc/stat"
exec @sleep@ "$@"
""",
}

ALL_TOOLS = ("systemctl", "pgrep", "ss", "df", "dmesg", "nproc", "getent", "ip", "curl", "rpm", "sleep")


def stat_pair(busy: float, steal: float = 0.0) -> tuple[str, str]:
    """Two /proc/stat snapshots 1000 ticks apart with the given busy and steal percentages."""
    base = [150000, 20, 50000, 9000000, 3000, 0, 800, 100, 0, 0]
    busy_t, steal_t = round(busy * 10), round(steal * 10)
    user = busy_t - steal_t
    delta = [user, 0, 0, 1000 - busy_t, 0, 0, 0, steal_t, 0, 0]
    def line(vals):
        return ("cpu  " + " ".join(map(str, vals)) + "\ncpu0 1 2 3 4 5 6 7 8 0 0\nintr 12345\nctxt 999\n"
                "btime 1760000000\nprocesses 4242\n")
    return line(base), line([a + b for a, b in zip(base, delta)])


def meminfo(total_mb: int, avail_mb: int, swap_total_mb: int = 0, swap_free_mb: int = 0) -> str:
    kb = lambda mb: mb * 1024
    return (f"MemTotal:       {kb(total_mb)} kB\nMemFree:         {kb(avail_mb) // 2} kB\n"
            f"MemAvailable:   {kb(avail_mb)} kB\nBuffers:           2048 kB\nCached:          409600 kB\n"
            f"SwapCached:            0 kB\nSwapTotal:       {kb(swap_total_mb)} kB\nSwapFree:        {kb(swap_free_mb)} kB\n"
            "HugePages_Total:       0\n")


def unit(active: str, sub: str, restarts: int = 0, load: str = "loaded") -> str:
    # Not in the order asked for: the script must parse by key, as systemd prints its own order.
    return f"NRestarts={restarts}\nId=x.service\nLoadState={load}\nActiveState={active}\nSubState={sub}\n"


DF_HEADER = "Filesystem     1024-blocks    Used Available Capacity Mounted on\n"
DFI_HEADER = "Filesystem      Inodes  IUsed   IFree IUse% Mounted on\n"


def al2023_host() -> dict:
    """A healthy Amazon Linux 2023 host running app.service on port 8080."""
    s1, s2 = stat_pair(7.5, 0.2)
    return {
        "tools": set(ALL_TOOLS),
        "units/app": unit("active", "running"),
        "units/amazon-ssm-agent": unit("active", "running"),
        "agent-version": "3.3.1142.0",
        "ss.txt": ("LISTEN 0      128          0.0.0.0:22        0.0.0.0:*    users:((\"sshd\",pid=1201,fd=3))\n"
                   "LISTEN 0      4096            [::]:22           [::]:*    users:((\"sshd\",pid=1201,fd=4))\n"
                   "LISTEN 0      511          0.0.0.0:8080      0.0.0.0:*    users:((\"app\",pid=2301,fd=7))\n"
                   "LISTEN 0      4096   127.0.0.53%lo:53        0.0.0.0:*    users:((\"systemd-resolve\",pid=800,fd=14))\n"),
        "curl.txt": "0 200 0.004211\n",
        "df.txt": DF_HEADER + ("devtmpfs             4096       0      4096       0% /dev\n"
                               "tmpfs             1995260       0   1995260       0% /dev/shm\n"
                               "/dev/nvme0n1p1    8310764 3407412   4903352      41% /\n"
                               "/dev/nvme0n1p128    10202    1310      8892      13% /boot/efi\n"
                               "/dev/nvme1n1     20961280 2515352  18445928      12% /var/log\n"),
        "df-i.txt": DFI_HEADER + ("devtmpfs         498815    299  498516    1% /dev\n"
                                  "/dev/nvme0n1p1  4194240 251654 3942586    6% /\n"
                                  "/dev/nvme0n1p128       0      0       0     - /boot/efi\n"
                                  "/dev/nvme1n1   10485760  10485 10475275    1% /var/log\n"),
        "dmesg.txt": ("[    0.000000] Linux version 6.1.112-122.189.amzn2023.x86_64\n"
                      "[    1.234567] nvme nvme0: 2/0/0 default/read/poll queues\n"
                      "[    3.141592] XFS (nvme0n1p1): Mounting V5 Filesystem\n"),
        "nproc.txt": "2\n",
        "dns_ok": "",
        "route4.txt": "default via 172.31.16.1 dev ens5 proto dhcp src 172.31.20.5 metric 512\n",
        "route6.txt": "",
        "processes": "amazon-ssm-agent\nsshd\napp\n",
        "proc/uptime": "86400.52 171234.10\n",
        "proc/loadavg": "0.40 0.30 0.20 1/234 5678\n",
        "proc/meminfo": meminfo(3900, 2900),
        "proc/stat": s1,
        "proc/stat.next": s2,
        "proc/cpuinfo": "processor\t: 0\nprocessor\t: 1\n",
        "proc/mounts": ("/dev/nvme0n1p1 / xfs rw,seclabel,noatime,attr2,inode64 0 0\n"
                        "devtmpfs /dev devtmpfs rw,seclabel,nosuid,size=4096k 0 0\n"
                        "tmpfs /dev/shm tmpfs rw,seclabel,nosuid,nodev 0 0\n"
                        "/dev/nvme0n1p128 /boot/efi vfat rw,noatime,fmask=0077 0 0\n"
                        "/dev/nvme1n1 /var/log xfs rw,seclabel,noatime 0 0\n"),
    }


DIAG_PARAMS = {"Services": "app", "HealthCheckPort": "8080", "HealthCheckProtocol": "HTTP",
               "HealthCheckPath": "/healthz", "ExpectedCodes": "200-299", "ProbeTimeoutSeconds": "5"}


class FakeHost:
    def __init__(self, spec: dict, root: Path) -> None:
        self.dir = root
        (root / "bin").mkdir(parents=True)
        (root / "real").mkdir()
        for sub in ("proc", "units", "sysv", "hang"):
            (root / sub).mkdir()
        (root / "processes").write_text("")
        for tool in spec.get("tools", ()):
            body = (SHIM_HEAD + SHIMS[tool])
            for name, path in SHIM_TOOLS.items():
                body = body.replace(f"@{name}@", path)
            p = root / "bin" / tool
            p.write_text(body)
            p.chmod(0o755)
        for tool in REAL_TOOLS:
            real = shutil.which(tool)
            if real:
                (root / "real" / tool).symlink_to(real)
        for rel, content in spec.items():
            if rel == "tools":
                continue
            p = root / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                p.write_bytes(content)
            else:
                p.write_text(content)

    def env(self, params: dict[str, str]) -> dict[str, str]:
        env = {"PATH": f"{self.dir / 'bin'}:{self.dir / 'real'}", "FAKE_HOST": str(self.dir),
               "AUTOHEAL_PROC_ROOT": str(self.dir / "proc"), "HOME": str(self.dir)}
        env.update({f"SSM_{k}": v for k, v in params.items()})
        return env

    def run(self, script: Path, params: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
        # As the SSM agent does: `sh -c <path>`, so the #!/bin/bash line picks the shell. The script
        # files are written before any case runs: exec-ing a file another thread has open for
        # writing fails with ETXTBSY.
        return subprocess.run([SH, "-c", str(script)], env=self.env(params), capture_output=True,
                              timeout=timeout, cwd=self.dir)

    def calls(self) -> list[str]:
        p = self.dir / "calls.log"
        return [c.rstrip() for c in p.read_text().splitlines()] if p.exists() else []


# Commands diagnostics may run: read-only ones only.
READ_ONLY = [
    r"systemctl show( --property=\S+)*( -- \S+)?", r"service --status-all", r"pgrep -x \S+", r"ss -ltnpH",
    r"df -P( -i)? -l", r"dmesg", r"nproc", r"getent hosts \S+", r"ip( -6)? route show default",
    r"rpm -q --qf %\{VERSION\} amazon-ssm-agent", r"snap list amazon-ssm-agent",
    r"curl -sS -g -k --noproxy \* -A autoheal-probe -o /dev/null -w %\{http_code\} %\{time_total\} "
    r"--connect-timeout \d+ --max-time \d+ https?://127\.0\.0\.1:\d+/\S*",
    r"curl -sS -f --noproxy \* -m 2 (-X PUT )?-H .* http://169\.254\.169\.254/latest/\S+", r"sleep 1",
]


# ---------------------------------------------------------------- autoheal diagnose

try:  # jsonschema comes with moto in .venv; without it the schema check is skipped (the parser still runs)
    import jsonschema  # type: ignore

    SCHEMA_VALIDATOR = jsonschema.Draft202012Validator(json.loads((SSM / "diagnostics.schema.json").read_text()))
except ImportError:
    SCHEMA_VALIDATOR = None


def diagnose(autoheal: str, stdout: bytes | None, *extra: str) -> dict:
    args = [autoheal, "diagnose", "--json", *extra]
    if stdout is not None:
        args += ["--diagnostics", "-"]
    p = subprocess.run(args, input=stdout or b"", capture_output=True, timeout=30)
    if p.returncode != 0:
        return {"class": None, "cli_error": p.stderr.decode(errors="replace")[:300]}
    return json.loads(p.stdout)


# ---------------------------------------------------------------- diagnostics cases


def case_specs(tcp_port_open: int, tcp_port_closed: int) -> list[dict]:
    cases = []

    def add(name, spec, expect_class, rule=None, params=None, extra=(), checks=None, max_seconds=None):
        cases.append({"name": name, "spec": spec, "class": expect_class, "rule": rule,
                      "params": {**DIAG_PARAMS, **(params or {})}, "extra": extra, "checks": checks or (),
                      "max_seconds": max_seconds})

    h = al2023_host()
    add("healthy", h, "Unknown", None, params={"Services": "app,amazon-ssm-agent"}, checks=[
        ("services", lambda d: d["services"], [{"name": "app", "active_state": "active", "sub_state": "running", "restarts": 0},
                                               {"name": "amazon-ssm-agent", "active_state": "active", "sub_state": "running", "restarts": 0}]),
        ("cpu", lambda d: d["cpu"], {"busy_percent": 7.5, "cores": 2, "steal_percent": 0.2}),
        ("memory", lambda d: d["memory"], {"total_mb": 3900, "available_mb": 2900, "swap_total_mb": 0, "swap_used_mb": 0}),
        ("load", lambda d: d["load"], {"one": 0.4, "five": 0.3, "fifteen": 0.2}),
        ("uptime", lambda d: d["uptime_s"], 86400),
        ("ports", lambda d: d["listening_ports"], [{"port": 22, "process": "sshd"}, {"port": 8080, "process": "app"},
                                                   {"port": 53, "process": "systemd-resolve"}]),
        ("probe", lambda d: d["health_probe"], {"protocol": "http", "port": 8080, "path": "/healthz", "ok": True,
                                                "status_code": 200, "latency_ms": 4}),
        ("disks (block devices only)", lambda d: d["disks"], [
            {"mount": "/", "used_percent": 41, "inodes_used_percent": 6, "read_only": False},
            {"mount": "/boot/efi", "used_percent": 13, "read_only": False},
            {"mount": "/var/log", "used_percent": 12, "inodes_used_percent": 1, "read_only": False}]),
        ("dmesg", lambda d: d["dmesg"], {"io_errors": 0, "oom_kills": 0, "lines": []}),
        ("agent", lambda d: d["ssm_agent"], {"active_state": "active", "version": "3.3.1142.0"}),
        ("network", lambda d: d["network"], {"dns_ok": True, "default_route": True}),
        ("timed_out_checks", lambda d: d["timed_out_checks"], []),
    ])
    add("local_ok_lb_fails", al2023_host(), "Network", "network.local-ok-lb-fails",
        extra=("--elb-reason", "Target.Timeout"))

    h = al2023_host()
    h["units/app"] = unit("failed", "failed", 5)
    h["ss.txt"] = "\n".join(l for l in h["ss.txt"].splitlines() if ":8080" not in l) + "\n"
    h["curl.txt"] = "7 000 0.000312\n"
    add("app_crash", h, "Application", "app.service-down", checks=[
        ("service failed", lambda d: d["services"][0], {"name": "app", "active_state": "failed", "sub_state": "failed", "restarts": 5}),
        ("probe refused", lambda d: d["health_probe"].get("error"), "connection_refused"),
        ("8080 not listening", lambda d: any(p["port"] == 8080 for p in d["listening_ports"]), False),
    ])

    h = al2023_host()
    h["curl.txt"] = "28 000 5.001234\n"
    add("app_hang", h, "Application", "app.hung", checks=[
        ("probe timeout", lambda d: (d["health_probe"]["ok"], d["health_probe"].get("error"), d["health_probe"]["latency_ms"]),
         (False, "timeout", 5001)),
    ])

    h = al2023_host()
    h["curl.txt"] = "0 503 0.012\n"
    add("dependency_outage_https", h, "Application", "app.error-status", params={"HealthCheckProtocol": "HTTPS"}, checks=[
        ("status 503, no error", lambda d: (d["health_probe"]["ok"], d["health_probe"].get("status_code"), "error" in d["health_probe"]),
         (False, 503, False)),
    ])

    # Ubuntu 24.04: /dev/root, snaps on read-only squashfs loop devices, the agent as a snap.
    h = al2023_host()
    del h["units/amazon-ssm-agent"], h["agent-version"]
    h["units/snap.amazon-ssm-agent.amazon-ssm-agent"] = unit("active", "running")
    h["snap-agent-version"] = "3.3.987.0"
    h["tools"] = set(ALL_TOOLS) | {"snap"}
    h["df.txt"] = DF_HEADER + ("/dev/root         7941576 7941576         0     100% /\n"
                               "/dev/loop0          26752   26752         0     100% /snap/amazon-ssm-agent/9565\n"
                               "/dev/loop1          65536   65536         0     100% /snap/core22/1380\n"
                               "/dev/nvme0n1p15    106832    6186    100646       6% /boot/efi\n"
                               "tmpfs              401000     900    400100       1% /run\n")
    h["df-i.txt"] = DFI_HEADER + ("/dev/root      1032192 254311  777881   25% /\n"
                                  "/dev/loop0         16     16       0  100% /snap/amazon-ssm-agent/9565\n"
                                  "/dev/nvme0n1p15       0      0       0     - /boot/efi\n")
    h["proc/mounts"] = ("/dev/root / ext4 rw,relatime,discard,errors=remount-ro 0 0\n"
                        "/dev/loop0 /snap/amazon-ssm-agent/9565 squashfs ro,nodev,relatime 0 0\n"
                        "/dev/loop1 /snap/core22/1380 squashfs ro,nodev,relatime 0 0\n"
                        "/dev/nvme0n1p15 /boot/efi vfat rw,relatime 0 0\n")
    add("disk_full_ubuntu", h, "DiskFull", "disk.full", checks=[
        ("snaps excluded, / full", lambda d: [(x["mount"], x["used_percent"], x["read_only"]) for x in d["disks"]],
         [("/", 100, False), ("/boot/efi", 6, False)]),
        ("snap agent", lambda d: d["ssm_agent"], {"active_state": "active", "version": "3.3.987.0"}),
    ])

    h = al2023_host()
    h["proc/meminfo"] = meminfo(3900, 60, 1024, 10)
    h["proc/loadavg"] = "3.10 2.20 1.30 3/250 6000\n"
    h["dmesg.txt"] += ("[86000.111111] app invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP), order=0\n"
                       "[86000.111222] oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),task=app,pid=2301,uid=1000\n"
                       "[86000.111333] Out of memory: Killed process 2301 (app) total-vm:4000000kB, anon-rss:3500000kB\n")
    add("oom", h, "ResourceBottleneck", "memory.exhausted", checks=[
        ("memory", lambda d: d["memory"], {"total_mb": 3900, "available_mb": 60, "swap_total_mb": 1024, "swap_used_mb": 1014}),
        ("oom kills", lambda d: (d["dmesg"]["oom_kills"], d["dmesg"]["io_errors"], len(d["dmesg"]["lines"])), (3, 0, 3)),
    ])

    h = al2023_host()
    h["proc/stat"], h["proc/stat.next"] = stat_pair(99.5, 1.5)
    add("cpu_saturated", h, "ResourceBottleneck", "cpu.saturated", checks=[
        ("cpu", lambda d: d["cpu"], {"busy_percent": 99.5, "cores": 2, "steal_percent": 1.5}),
    ])

    h = al2023_host()
    h["df.txt"] += "/dev/nvme2n1     51474912 1200000  50274912       3% /data\n"
    h["df-i.txt"] += "/dev/nvme2n1    3276800   1200 3275600    1% /data\n"
    h["proc/mounts"] += "/dev/nvme2n1 /data ext4 ro,relatime 0 0\n"
    h["dmesg.txt"] += ("[86100.000001] blk_update_request: I/O error, dev nvme2n1, sector 123456 op 0x1:(WRITE)\n"
                       "[86100.000002] Buffer I/O error on dev nvme2n1, logical block 15432, lost async page write\n"
                       "[86100.000003] EXT4-fs error (device nvme2n1): ext4_journal_check_start:83: Detected aborted journal\n"
                       "[86100.000004] EXT4-fs (nvme2n1): Remounting filesystem read-only\n"
                       "[    5.000000] blk_update_request: I/O error, dev fd0, sector 0 op 0x0:(READ)\n"
                       "[    5.100000] Buffer I/O error on dev sr0, logical block 0, async page read\n")
    add("disk_corruption", h, "DiskCorruption", "disk.read-only-or-io-errors", checks=[
        ("read-only /data", lambda d: [x["mount"] for x in d["disks"] if x["read_only"]], ["/data"]),
        ("io errors", lambda d: d["dmesg"]["io_errors"], 4),
    ])

    h = al2023_host()
    h["route4.txt"] = ""
    del h["dns_ok"]
    add("network_misconfig", h, "Network", "network.no-route-or-dns", checks=[
        ("network", lambda d: d["network"], {"dns_ok": False, "default_route": False}),
    ])

    # No systemd (a container, or an init without it): `service --status-all` and pgrep.
    h = al2023_host()
    h["tools"] = set(ALL_TOOLS) - {"systemctl"} | {"service"}
    h["sysv/app"] = "+"
    h["sysv/cron"] = "-"
    add("no_systemd", h, "Application", "app.service-down", params={"Services": "app cron.service missing"}, checks=[
        ("services", lambda d: [(s["name"], s["active_state"]) for s in d["services"]],
         [("app", "active"), ("cron.service", "inactive"), ("missing", "not-found")]),
        ("agent via pgrep", lambda d: d["ssm_agent"]["active_state"], "active"),
    ])

    # Only the last hour of the kernel log counts: an OOM kill from a day ago classifies nothing.
    h = al2023_host()
    h["dmesg.txt"] += ("[ 1200.000001] app invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP), order=0\n"
                       "[ 1200.000002] Out of memory: Killed process 77 (app) total-vm:4000000kB, anon-rss:3500000kB\n")
    add("old_oom", h, "Unknown", None, checks=[
        ("old lines not counted", lambda d: d["dmesg"], {"io_errors": 0, "oom_kills": 0, "lines": []}),
    ])

    # A resolver that never answers is reported as broken, not hidden behind a default.
    h = al2023_host()
    h["hang/getent"] = ""
    add("dns_hangs", h, "Network", "network.no-route-or-dns", max_seconds=14, checks=[
        ("network", lambda d: d["network"], {"dns_ok": False, "default_route": True}),
        ("timed_out_checks", lambda d: d["timed_out_checks"], ["network.dns"]),
    ])

    # A check that hangs: df never returns (a stale network mount); the rest is still reported.
    h = al2023_host()
    h["hang/df"] = ""
    add("df_hangs", h, "Unknown", None, max_seconds=14, checks=[
        ("timed_out_checks", lambda d: d["timed_out_checks"], ["disks"]),
        ("disks default", lambda d: d["disks"], []),
        ("rest reported", lambda d: (d["health_probe"]["ok"], d["cpu"]["busy_percent"]), (True, 7.5)),
    ])

    # Hostile output: quotes, backslashes, control characters, invalid UTF-8, long and many lines.
    h = al2023_host()
    nasty = [b"[%d.0] blk_update_request: I/O error, dev xvdf, sector %d" % (86000 + i, i) for i in range(30)]
    nasty += [b'[86101.0] EXT4-fs error "quoted" \\back\\slash \x01\x07\x1b[31m I/O error\tx\r',
             b'[86102.0] Buffer I/O error \xff\xfe\xc3\x28 invalid utf-8 }{ ] [ ' + b'A' * 2000,
             b'[86103.0] Out of memory: Killed process 1 ("ev\\il")']
    h["dmesg.txt"] = b"\n".join(nasty) + b"\n"
    h["ss.txt"] = 'LISTEN 0 128 0.0.0.0:8080 0.0.0.0:* users:(("a\\"pp\\\\",pid=1,fd=3))\nLISTEN 0 1 0.0.0.0:99999 0.0.0.0:*\n'
    h["df.txt"] += "/dev/nvme3n1      1000     10      990       1% /mnt/my disk\n"
    h["proc/mounts"] += "/dev/nvme3n1 /mnt/my\\040disk ext4 rw 0 0\n"
    add("hostile_output", h, "DiskCorruption", "disk.read-only-or-io-errors", checks=[
        ("20 lines, each <= 512 bytes, ASCII", lambda d: (len(d["dmesg"]["lines"]), max(len(l.encode()) for l in d["dmesg"]["lines"]) <= 512,
                                                    all(l.isascii() for l in d["dmesg"]["lines"])), (20, True, True)),
        ("counts", lambda d: (d["dmesg"]["io_errors"], d["dmesg"]["oom_kills"]), (32, 1)),
        ("the last 20 lines, escaped", lambda d: (d["dmesg"]["lines"][-3], d["dmesg"]["lines"][-1]),
         ('[86101.0] EXT4-fs error "quoted" \\back\\slash ???[31m I/O error?x?', '[86103.0] Out of memory: Killed process 1 ("ev\\il")')),
        ("process name kept, bad port dropped", lambda d: d["listening_ports"], [{"port": 8080, "process": 'a\\"pp\\\\'}]),
        ("mount with a space", lambda d: "/mnt/my disk" in [x["mount"] for x in d["disks"]], True),
    ])

    # TCP health checks against real sockets on this machine (bash /dev/tcp).
    h = al2023_host()
    add("tcp_probe_ok", h, "Unknown", None, params={"HealthCheckProtocol": "TCP", "HealthCheckPort": str(tcp_port_open)}, checks=[
        ("probe", lambda d: {k: v for k, v in d["health_probe"].items() if k != "latency_ms"},
         {"protocol": "tcp", "port": tcp_port_open, "ok": True}),
    ])
    h = al2023_host()
    add("tcp_probe_refused", h, "Application", "app.port-closed",
        params={"Services": "", "HealthCheckProtocol": "TCP", "HealthCheckPort": str(tcp_port_closed)}, checks=[
            ("probe", lambda d: (d["health_probe"]["ok"], d["health_probe"].get("error")), (False, "connection_refused")),
        ])

    # A bare host: none of the tools, only /proc. Fallbacks and safe defaults, still a valid document.
    h = al2023_host()
    h["tools"] = {"sleep"}
    h["proc/net/tcp"] = ("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
                         "   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1\n"
                         "   1: 0100007F:1F90 0100007F:C000 01 00000000:00000000 00:00000000 00000000     0        0 2 1\n")
    h["proc/net/route"] = ("Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
                           "ens5\t00000000\t0110A8C0\t0003\t0\t0\t512\t00000000\t0\t0\t0\n")
    add("bare_host", h, "Application", "app.port-closed",
        params={"HealthCheckPort": str(tcp_port_closed)}, checks=[
            ("ports from /proc/net/tcp", lambda d: d["listening_ports"], [{"port": 22}]),
            ("route from /proc/net/route", lambda d: d["network"], {"dns_ok": True, "default_route": True}),
            ("cores from /proc/cpuinfo", lambda d: d["cpu"]["cores"], 2),
            ("timed_out_checks", lambda d: sorted(d["timed_out_checks"]),
             sorted(["services", "health_probe", "disks", "dmesg", "network.dns"])),
        ])
    return cases


def run_diag_case(case: dict, script: Path, autoheal: str, tmp: Path) -> list[tuple[bool, str, str]]:
    out = []
    host = FakeHost(case["spec"], tmp / case["name"])
    t0 = time.monotonic()
    p = host.run(script, case["params"])
    took = time.monotonic() - t0
    n = f"diagnostics {case['name']}"
    out.append((p.returncode == 0, f"{n}: exit 0", f"exit {p.returncode}: {p.stderr.decode(errors='replace')[-400:]}"))
    text = p.stdout.decode("utf-8", errors="replace")
    try:
        doc = json.loads(text)
        one = text.strip().count("\n") == 0 and p.stdout.isascii()
        out.append((one, f"{n}: stdout is exactly one JSON document (one ASCII line)", text[:200]))
    except ValueError as e:
        out.append((False, f"{n}: stdout is one JSON document", f"{e}: {text[:300]!r}"))
        return out
    out.append((len(p.stdout) < 24000, f"{n}: fits SSM's 24,000-character stdout", str(len(p.stdout))))
    out.append((b"command not found" not in p.stderr, f"{n}: uses no command outside the fake host",
                p.stderr.decode(errors="replace")[-300:]))
    if SCHEMA_VALIDATOR is not None:
        errors = sorted(SCHEMA_VALIDATOR.iter_errors(doc), key=str)
        out.append((not errors, f"{n}: matches ssm/diagnostics.schema.json", str(errors[0].message if errors else "")))
    diag = diagnose(autoheal, p.stdout, *case["extra"])
    out.append(("diagnostics_error" not in diag and "cli_error" not in diag, f"{n}: autoheal accepts the document",
                str(diag.get("diagnostics_error") or diag.get("cli_error"))))
    out.append((diag.get("class") == case["class"] and diag.get("rule_id") == case["rule"],
                f"{n}: classified {case['class']}" + (f" ({case['rule']})" if case["rule"] else ""),
                f"got {diag.get('class')} ({diag.get('rule_id')})"))
    for label, get, want in case["checks"]:
        try:
            got = get(doc)
        except Exception as e:  # noqa: BLE001 - a missing field is a failed check
            got = f"<{type(e).__name__}: {e}>"
        out.append((got == want, f"{n}: {label}", f"expected {want!r}, got {got!r}"))
    bad = [c for c in host.calls() if not any(re.fullmatch(rx, c) for rx in READ_ONLY)]
    out.append((not bad, f"{n}: ran read-only commands only", "; ".join(bad[:3])))
    if case["max_seconds"]:
        out.append((took <= case["max_seconds"], f"{n}: finished within {case['max_seconds']} s", f"{took:.1f} s"))
    return out


def run_diag_refusals(script: Path, tmp: Path) -> list[tuple[bool, str, str]]:
    out = []
    bad = {"Services": INJECTIONS + ["ok nginx;reboot"], "HealthCheckPath": ["/$(reboot)", "/a b", "healthz"],
           "HealthCheckPort": ["80; id", "70000"], "ExpectedCodes": ["200;id"], "HealthCheckProtocol": ["UDP"]}
    i = 0
    for param, values in bad.items():
        for v in values:
            i += 1
            host = FakeHost(al2023_host(), tmp / f"refuse{i}")
            p = host.run(script, {**DIAG_PARAMS, param: v})
            touched = host.calls()
            out.append((p.returncode == 2 and p.stdout == b"" and not touched,
                        f"injection diagnostics script refuses {param}={v!r} before running anything",
                        f"exit {p.returncode}, stdout {p.stdout[:80]!r}, calls {touched[:3]}"))
    host = FakeHost(al2023_host(), tmp / "old-agent")
    p = host.run(script, {})
    out.append((p.returncode == 3 and p.stdout == b"" and b"3.3.2746.0" in p.stderr,
                "diagnostics: an agent without ENV_VAR interpolation gets a clear error (exit 3)",
                f"exit {p.returncode} {p.stderr[-200:]!r}"))
    return out


# ---------------------------------------------------------------- restart and verify cases


def restart_cases(script: Path, tmp: Path) -> list[tuple[bool, str, str]]:
    out = []

    def run(name: str, spec: dict, params: dict) -> tuple[FakeHost, subprocess.CompletedProcess, dict | None]:
        host = FakeHost(spec, tmp / name)
        p = host.run(script, {"Services": "", "Cleanup": "false", "CleanupPaths": "", "JournalVacuumSize": "500M", **params})
        try:
            res = json.loads(p.stdout)
            if p.stdout.strip().count(b"\n"):
                res = None
        except ValueError:
            res = None
        out.append((res is not None, f"restart {name}: stdout is one JSON result", repr(p.stdout[:200])))
        return host, p, res

    # Restarts fine, after a cleanup.
    h = al2023_host()
    h["units/app"] = unit("failed", "failed", 3)
    h["units/app.after-restart"] = unit("active", "running", 0)
    h["tools"] = set(ALL_TOOLS) | {"journalctl", "logrotate"}
    clean = tmp / "cleanme"
    (clean / "sub").mkdir(parents=True)
    old, new, old2 = clean / "old.log", clean / "new.log", clean / "sub" / "old.gz"
    old.write_bytes(b"x" * (2 * 1024 * 1024))
    old2.write_bytes(b"y" * 1000)
    new.write_bytes(b"z" * (3 * 1024 * 1024))
    week = time.time() - 7 * 86400
    os.utime(old, (week, week))
    os.utime(old2, (week, week))
    host, p, res = run("ok_with_cleanup", h, {"Services": "app", "Cleanup": "true", "CleanupPaths": f"{clean}/",
                                              "JournalVacuumSize": "200M"})
    out.append((p.returncode == 0, "restart ok_with_cleanup: exit 0", f"exit {p.returncode} {p.stderr[-300:]!r}"))
    if res:
        out.append((res.get("ok") is True and res.get("services") == [{"name": "app", "restarted": True, "active_state": "active"}],
                    "restart ok_with_cleanup: app restarted and active, ok true", json.dumps(res)))
        c = res.get("cleanup", {})
        out.append((c.get("performed") is True and c.get("freed_mb") == 26 and c.get("errors") == [],
                    "restart ok_with_cleanup: cleanup performed, freed 24 MiB journal + 2 MiB files", json.dumps(c)))
    out.append((not old.exists() and not old2.exists() and new.exists(),
                 "restart ok_with_cleanup: deleted only files older than a day", f"old {old.exists()} old2 {old2.exists()} new {new.exists()}"))
    calls = host.calls()
    out.append(("journalctl --vacuum-size=200M" in calls and "systemctl restart -- app" in calls
                and calls.index("journalctl --vacuum-size=200M") < calls.index("systemctl restart -- app"),
                "restart ok_with_cleanup: vacuumed the journal, then restarted with systemctl", "; ".join(calls[-6:])))

    # Stays failed.
    h = al2023_host()
    h["units/app"] = unit("failed", "failed", 3)
    h["units/app.after-restart"] = unit("failed", "failed", 4)
    h["units/app.restart-exit"] = "1"
    t0 = time.monotonic()
    host, p, res = run("stays_failed", h, {"Services": "app"})
    took = time.monotonic() - t0
    out.append((p.returncode == 1, "restart stays_failed: exit 1 (HealFailed)", f"exit {p.returncode}"))
    if res:
        out.append((res.get("ok") is False and res.get("services") == [{"name": "app", "restarted": False, "active_state": "failed"}],
                    "restart stays_failed: reported as not back", json.dumps(res)))
    out.append((took < 10, "restart stays_failed: gives up early on a failed unit", f"{took:.1f} s"))

    # A unit that does not exist, next to one that restarts fine.
    h = al2023_host()
    host, p, res = run("missing_unit", h, {"Services": "app ghost"})
    out.append((p.returncode == 1, "restart missing_unit: exit 1", f"exit {p.returncode}"))
    if res:
        out.append((res.get("services") == [{"name": "app", "restarted": True, "active_state": "active"},
                                            {"name": "ghost", "restarted": False, "active_state": "not-found"}],
                    "restart missing_unit: app back, ghost not-found", json.dumps(res)))

    # No systemd: `service NAME restart`, state from `service --status-all`.
    h = al2023_host()
    h["tools"] = set(ALL_TOOLS) - {"systemctl"} | {"service"}
    h["sysv/app"] = "-"
    h["sysv/app.after-restart"] = "+"
    host, p, res = run("no_systemd", h, {"Services": "app"})
    out.append((p.returncode == 0 and res is not None and res.get("ok") is True and "service app restart" in host.calls(),
                "restart no_systemd: service app restart, back", f"exit {p.returncode} {res} {host.calls()[-3:]}"))

    # Refused parameters: nothing runs, nothing is deleted.
    link_dir = tmp / "links"
    link_dir.mkdir()
    (link_dir / "sys").symlink_to("/proc/sys/kernel")
    refusals = [({"CleanupPaths": "/etc"}, "protected"), ({"CleanupPaths": "/tmp/../etc"}, "'..'"),
                ({"CleanupPaths": "/var"}, "protected"), ({"CleanupPaths": "/usr/local/app/logs"}, "protected"),
                ({"CleanupPaths": "/"}, "does not match"), ({"CleanupPaths": "/tmp/a;rm"}, "does not match"),
                ({"Services": "amazon-ssm-agent"}, "SSM agent"), ({"Services": "snap.amazon-ssm-agent.amazon-ssm-agent.service"}, "SSM agent"),
                ({"Services": "app;reboot"}, "does not match"), ({"Services": "a\nb"}, "control"),
                ({"CleanupPaths": "/tmp/a,/tmp/b"}, "spaces"), ({"Cleanup": "yes"}, "true or false"), ({"JournalVacuumSize": "1T"}, "500M")]
    for i, (params, why) in enumerate(refusals):
        host, p, res = run(f"refuse{i}", al2023_host(), {"Services": "app", "Cleanup": "true", **params})
        acted = host.calls()
        out.append((p.returncode == 2 and res is not None and res.get("ok") is False and why in res.get("error", "") and not acted,
                    f"injection restart refuses {params!r} ({why}) and does nothing",
                    f"exit {p.returncode} {res} calls {acted[:3]}"))
    # A path that passes every check but resolves (symlink) into a system tree: skipped, reported.
    host, p, res = run("symlink_escape", al2023_host(), {"Cleanup": "true", "CleanupPaths": str(link_dir / "sys")})
    out.append((p.returncode == 0 and res is not None and any("protected" in e for e in res["cleanup"]["errors"]),
                "restart symlink_escape: a path resolving into /proc is skipped and reported", f"exit {p.returncode} {res}"))
    return out


def verify_cases(script: Path, tmp: Path) -> list[tuple[bool, str, str]]:
    out = []
    base = {"Services": "app", "HealthCheckPort": "8080", "HealthCheckProtocol": "HTTP", "HealthCheckPath": "/healthz",
            "ExpectedCodes": "200", "ProbeTimeoutSeconds": "2", "Attempts": "3", "IntervalSeconds": "1"}

    def run(name, spec, params):
        host = FakeHost(spec, tmp / name)
        p = host.run(script, {**base, **params})
        try:
            res = json.loads(p.stdout)
        except ValueError:
            res = None
        return p, res

    p, res = run("healthy", al2023_host(), {})
    out.append((p.returncode == 0 and res and res["healthy"] is True and res["attempts"] == 1
                and res["probe"] == {"protocol": "http", "port": 8080, "path": "/healthz", "ok": True, "status_code": 200, "latency_ms": 4}
                and res["services"] == [{"name": "app", "active_state": "active", "sub_state": "running", "restarts": 0}],
                "verify healthy: exit 0 on the first attempt", f"exit {p.returncode} {res}"))
    h = al2023_host()
    h["curl.txt"] = "7 000 0.0003\n0 200 0.0051\n"
    p, res = run("recovers", h, {})
    out.append((p.returncode == 0 and res and res["healthy"] is True and res["attempts"] == 2,
                "verify recovers: refused, then 200 on attempt 2", f"exit {p.returncode} {res}"))
    h = al2023_host()
    h["curl.txt"] = "0 503 0.01\n"
    p, res = run("unhealthy", h, {"Attempts": "2"})
    out.append((p.returncode == 1 and res and res["healthy"] is False and res["attempts"] == 2
                and res["probe"].get("status_code") == 503,
                "verify unhealthy: 503 twice, exit 1", f"exit {p.returncode} {res}"))
    h = al2023_host()
    h["units/app"] = unit("failed", "failed", 2)
    p, res = run("service_down", h, {"Attempts": "1"})
    out.append((p.returncode == 1 and res and res["healthy"] is False and res["probe"]["ok"] is True,
                "verify service_down: the probe passes but the unit is failed, exit 1", f"exit {p.returncode} {res}"))
    p, res = run("refused", al2023_host(), {"HealthCheckPath": "/$(id)"})
    out.append((p.returncode == 2 and res and res["healthy"] is False and "refused" in res.get("error", ""),
                "injection verify refuses HealthCheckPath='/$(id)'", f"exit {p.returncode} {res}"))
    return out


# ---------------------------------------------------------------- main


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--autoheal", default=str(ROOT / "target" / "debug" / "autoheal"), help="the autoheal CLI binary")
    ap.add_argument("-k", dest="only", default="", help="only diagnostics cases whose name contains this")
    ap.add_argument("-v", "--verbose", action="store_true", help="also print the passing checks' details")
    args = ap.parse_args(argv)
    if not Path(args.autoheal).exists():
        print(f"autoheal binary not found: {args.autoheal} (cargo build -p autoheal)", file=sys.stderr)
        return 2
    missing = [t for t, p in SHIM_TOOLS.items() if not p] + [t for t in REAL_TOOLS[:4] if not shutil.which(t)]
    if missing:
        print(f"missing host tools: {missing}", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    r = Results(args.verbose)
    docs = documents()
    static_checks(r, docs)

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    open_port, closed_port = listener.getsockname()[1], free_port()

    with tempfile.TemporaryDirectory(prefix="autoheal-ssm-") as tmpdir:
        tmp = Path(tmpdir)
        scripts = {}
        for n, d in docs.items():
            scripts[n] = tmp / f"{n}.sh"
            scripts[n].write_text(script_of(d))
            scripts[n].chmod(0o755)
        cases = [c for c in case_specs(open_port, closed_port) if args.only in c["name"]]
        jobs = [lambda c=c: run_diag_case(c, scripts["diagnostics"], args.autoheal, tmp) for c in cases]
        if not args.only:
            jobs += [lambda: run_diag_refusals(scripts["diagnostics"], tmp / "refusals"),
                     lambda: restart_cases(scripts["restart_services"], tmp / "restart"),
                     lambda: verify_cases(scripts["verify_health"], tmp / "verify")]
        with ThreadPoolExecutor(max_workers=6) as pool:
            for lines in pool.map(lambda f: f(), jobs):
                for ok, name, detail in lines:
                    r.check(name, ok, detail)
    listener.close()

    # SSM could not deliver the command: no document at all, the classifier works from the rest.
    if not args.only:
        d = diagnose(args.autoheal, None, "--ssm-command", "undeliverable", "--agent", "connection_lost")
        r.check("agent: undeliverable command, connection lost, no diagnostics -> AgentFailure (agent.unreachable-host-ok)",
                d.get("class") == "AgentFailure" and d.get("rule_id") == "agent.unreachable-host-ok"
                and "diagnostics_error" not in d, json.dumps(d)[:300])

    passed = sum(1 for ok, _ in r.lines if ok)
    failed = len(r.lines) - passed
    for ok, line in r.lines:
        print(line)
    print(f"({time.monotonic() - t0:.1f} s)", file=sys.stderr)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
