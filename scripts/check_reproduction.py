"""Check that a code change moved no number: run the demo and one evidence script per task,
fingerprint every metric they write, and compare two fingerprints.

    python scripts/check_reproduction.py run --out /tmp/repro_before      # on the old commit
    python scripts/check_reproduction.py run --out /tmp/repro_after       # on the new commit
    python scripts/check_reproduction.py compare /tmp/repro_before/fingerprint.json \
        /tmp/repro_after/fingerprint.json

Every job runs in its own process with one torch / OpenMP thread, so the numbers depend only on
the code, the seed and the CPU (another CPU type may move them slightly; compare runs made on
one machine). The fingerprint holds every number found in the jobs' ``metrics.json``,
``runs.jsonl``, ``results.json`` and ``summary.json`` files, with timing fields (wall clock,
seconds, throughput) left out. ``compare`` prints each differing number and exits 1 if any
differ, 0 if all are identical. ``run --only demo weak`` runs a subset.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable

# (job, task it stands for, argv with {out} for the job's output folder)
JOBS: list[tuple[str, str, list[str]]] = [
    ("demo", "grounding (MMN, make demo)", [PY, "-m", "vidlang.cli.main", "demo", "--out", "{out}"]),
    ("mmn", "grounding (MMN vs 2D-TAN)",
     [PY, str(ROOT / "scripts/run_mmn_evidence.py"), "--out", "{out}", "--seeds", "0",
      "--preset", "tiny", "--epochs", "2", "--threads", "1"]),
    ("weak", "weak grounding (CPL vs CCR)",
     [PY, str(ROOT / "scripts/run_weak_evidence.py"), "--out", "{out}", "--quick", "--jobs", "1"]),
    ("retrieval", "retrieval and MCQA (multi-level, DMAE)",
     [PY, str(ROOT / "scripts/run_retrieval_evidence.py"), "--out", "{out}", "--quick"]),
    ("claims", "retrieval claims (NegNCE, TPM-CL)",
     [PY, str(ROOT / "scripts/run_claims_evidence.py"), "--table", "tpmcl", "--out", "{out}", "--quick"]),
    ("tempclr", "sequence alignment (TempCLR)",
     [PY, str(ROOT / "scripts/run_tempclr_evidence.py"), "--out", "{out}", "--quick"]),
]
METRIC_FILES = {"metrics.json", "runs.jsonl", "results.json", "summary.json"}
TIMING_INSIDE = ("time", "second", "wall", "elapsed", "throughput", "per_s", "minutes")
TIMING_ENDS = ("_s", "_sec", "_ms")


def _is_timing(key: str) -> bool:
    k = key.lower()
    return any(w in k for w in TIMING_INSIDE) or k.endswith(TIMING_ENDS)


def _numbers(obj: Any, prefix: str, out: dict[str, Any]) -> None:
    """Flatten every number (and short string label) under ``obj`` into ``out``."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not _is_timing(str(k)):
                _numbers(v, f"{prefix}.{k}", out)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _numbers(v, f"{prefix}[{i}]", out)
    elif isinstance(obj, bool) or obj is None:
        out[prefix] = obj
    elif isinstance(obj, (int, float)):
        out[prefix] = obj


def fingerprint(folder: Path) -> dict[str, Any]:
    """Every metric number written under ``folder``, keyed by relative file and JSON path."""
    out: dict[str, Any] = {}
    for f in sorted(folder.rglob("*")):
        if f.name not in METRIC_FILES or not f.is_file():
            continue
        rel = str(f.relative_to(folder))
        if f.suffix == ".jsonl":
            for i, line in enumerate(f.read_text().splitlines()):
                if line.strip():
                    _numbers(json.loads(line), f"{rel}:{i + 1}", out)
        else:
            _numbers(json.loads(f.read_text()), rel, out)
    return out


def run(out: Path, only: list[str] | None) -> int:
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result: dict[str, Any] = {"commit": _commit(), "jobs": {}}
    for name, task, argv in JOBS:
        if only and name not in only:
            continue
        job_out = out / name
        cmd = [a.replace("{out}", str(job_out)) for a in argv]
        print(f"[{name}] {task}: {' '.join(cmd[1:])}", flush=True)
        t0 = time.perf_counter()
        with open(out / f"{name}.log", "w") as log:
            rc = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT).returncode
        took = time.perf_counter() - t0
        numbers = fingerprint(job_out) if job_out.is_dir() else {}
        print(f"[{name}] exit {rc}, {took:.0f} s, {len(numbers)} numbers", flush=True)
        if rc != 0:
            print(f"[{name}] failed: see {out / (name + '.log')}", file=sys.stderr)
            return 1
        result["jobs"][name] = {"task": task, "numbers": numbers}
    (out / "fingerprint.json").write_text(json.dumps(result, indent=1, sort_keys=True))
    print(f"wrote {out / 'fingerprint.json'}")
    return 0


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _load_fingerprint(path: Path) -> dict[str, Any] | None:
    """A fingerprint file's content, or None after printing one line saying what is wrong."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        print(f"{path}: cannot read it ({exc.strerror or exc}); make one with `run --out DIR`")
        return None
    except json.JSONDecodeError as exc:
        print(f"{path}: not JSON (line {exc.lineno}: {exc.msg})")
        return None
    if not isinstance(data, dict) or not isinstance(data.get("jobs"), dict):
        print(f"{path}: not a fingerprint (no 'jobs' object); make one with `run --out DIR`")
        return None
    return data


def compare(a_path: Path, b_path: Path) -> int:
    """Exit status: 0 identical, 1 some number differs, 2 a file is missing or malformed."""
    a, b = _load_fingerprint(a_path), _load_fingerprint(b_path)
    if a is None or b is None:
        return 2
    differ = 0
    for job in sorted(set(a["jobs"]) | set(b["jobs"])):
        na = a["jobs"].get(job, {}).get("numbers")
        nb = b["jobs"].get(job, {}).get("numbers")
        if na is None or nb is None:
            print(f"{job}: only in {'the first' if nb is None else 'the second'} fingerprint")
            differ += 1
            continue
        bad = [k for k in sorted(set(na) | set(nb)) if na.get(k, "<absent>") != nb.get(k, "<absent>")]
        for k in bad[:20]:
            print(f"{job}: {k}: {na.get(k, '<absent>')} != {nb.get(k, '<absent>')}")
        if len(bad) > 20:
            print(f"{job}: ... and {len(bad) - 20} more")
        print(f"{job}: {len(na)} numbers, {'identical' if not bad else f'{len(bad)} differ'}")
        differ += len(bad)
    print(f"{a.get('commit', a_path)} vs {b.get('commit', b_path)}: {'identical' if not differ else f'{differ} differences'}")
    return 1 if differ else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run the jobs and write OUT/fingerprint.json")
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--only", nargs="*", choices=[j[0] for j in JOBS])
    c = sub.add_parser("compare", help="compare two fingerprint.json files")
    c.add_argument("a", type=Path)
    c.add_argument("b", type=Path)
    args = p.parse_args()
    if args.cmd == "run":
        return run(args.out, args.only)
    return compare(args.a, args.b)


if __name__ == "__main__":
    raise SystemExit(main())
