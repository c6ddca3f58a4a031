"""The full fuzzing campaign: ``python fuzz/run.py --count N``.

Every target runs in its own child process (this script again, with ``--child``), so that a
hang or a memory blow-up is caught from outside: the parent kills a child whose current
input has run longer than ``--hang-seconds`` or whose RSS passes ``--memory-mb``, and
reports it as a failure with the input's label (the input itself is kept under
``fuzz/failures/``). The decoder's child also runs under an address-space rlimit.

Targets (inputs from ``tests/fuzz_strategies.py``):

* ``decode``  — ``io.decode.decode`` on damaged and crafted files, as bytes, streams and paths;
* ``library`` — ``Remover.remove`` + ``Cutout.to_bytes`` on those plus PIL images of every
  mode, numpy arrays and non-images; decodable inputs run the real model ``--budget`` times;
* ``options`` — every edge and framing option as the library's flat keywords, typed as
  Python callers pass them, at its extremes (0, negative, tiny, huge, NaN, infinities, each
  bound ± a hair), on 16–200 px photos and damaged files: a clean cleancut error or a valid
  output of the right size and type (and never an out-of-range value accepted). Real model
  runs while ``--budget`` lasts, then the stages after the network on a synthetic network
  output (cheap, so every input reaches the mask and canvas code);
* ``cli``     — ``cleancut remove`` in-process (``CliRunner``) with damaged files, small
  photos and every option as text; exit 0 with a valid file, or 1/2 with one ``error:``
  line, no traceback and no output file;
* ``http``    — ``POST /api/remove`` (``TestClient``) as raw bodies and forms with every
  option (and sometimes an uploaded background image); a valid answer or a JSON 4xx,
  never a 500;
* ``video``   — ``remove_video`` on damaged tiny clips (MP4, WebM, AVI, MKV, TS, rotated;
  truncated, bit-flipped, spliced), images and junk posing as clips, with its keywords
  valid and not, into WebM, MOV, MP4 and a frames folder: a valid output with every frame
  or a clean error with nothing left behind. Real model runs while ``--budget`` lasts, then
  a pixel limit of 1 (every frame refused before the network);
* ``http-video`` — ``POST /api/remove-video`` with those clips and every option as text
  (raw bodies and forms): a JSON 4xx at once, or a 202 job that ends (``done`` with a result
  that decodes, downloaded once; ``failed`` with a JSON error) and leaves no file behind.

The CLI and HTTP targets run the real model ``--budget`` times on decodable inputs, then
with a pixel limit of 1 (their whole path but the network).

Outcomes: ``ok`` (a correct result), ``error`` (our clear error), ``failure`` (anything
else). Prints a table and, with ``--json``, writes the counts; exits 1 on any failure.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

TARGETS = ("decode", "library", "options", "cli", "http", "video", "http-video")
FAILURES = REPO / "fuzz" / "failures"


# --------------------------------------------------------------------------- child


def _cache_dir() -> Path:
    return Path(os.environ.get("CLEANCUT_TEST_CACHE", REPO / ".cache" / "cleancut"))


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _keep(target: str, case: Any) -> str | None:
    data = case.data
    if data is None:
        return None
    FAILURES.mkdir(parents=True, exist_ok=True)
    path = FAILURES / f"{target}-{hashlib.sha256(data).hexdigest()[:16]}.bin"
    path.write_bytes(data)
    return str(path.relative_to(REPO))


def child(target: str, count: int, seed: int, budget_n: int) -> int:
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed
    from hypothesis import strategies as st

    import fuzz_strategies as fz

    tally = fz.Tally()
    budget = fz.Budget(budget_n)
    work = Path(tempfile.mkdtemp(prefix=f"cleancut-fuzz-{target}-"))
    judge: Any
    strategy: Any

    if target == "decode":
        strategy = fz.as_stream_or_path(fz.image_bytes())

        def judge(case: Any, _extra: Any) -> Any:
            return fz.judge_decode(case, work)

    elif target == "library":
        from cleancut import Remover, Settings

        settings_ = Settings.from_env(environ={}, cache_dir=_cache_dir(), offline=True)
        remover = Remover("isnet_fp16", settings=settings_).load()
        strategy = st.tuples(fz.library_inputs(), st.sampled_from(["png", "webp", "jpeg", "rgba8", "alpha8"]))

        def judge(case: Any, fmt: Any) -> Any:
            return fz.judge_library(remover, case, work, budget, fmt)

    elif target == "options":
        from cleancut import Remover, Settings

        settings_ = Settings.from_env(environ={}, cache_dir=_cache_dir(), offline=True)
        remover = Remover("isnet_fp16", settings=settings_).load()
        strategy = st.tuples(
            st.one_of(fz.photo_bytes(), fz.photo_bytes(), fz.image_bytes()),
            st.tuples(
                fz.library_option_sets(),
                st.sampled_from(fz.OPTION_TYPES),
                st.sampled_from(["png", "webp", "jpeg", "rgba8", "alpha8"]),
                st.integers(0, 2**16),
            ),
        )

        def judge(case: Any, extra: Any) -> Any:
            options, out_type, fmt, seed_ = extra
            return fz.judge_options(remover, case, options, out_type, fmt, work, budget, seed_)

    elif target == "cli":
        from click.testing import CliRunner

        from cleancut.cli import cli
        from cleancut.io.decode import decode

        runner = CliRunner()
        env = {"CLEANCUT_CACHE_DIR": str(_cache_dir()), "CLEANCUT_OFFLINE": "1"}
        strategy = st.tuples(
            st.one_of(fz.image_bytes(), fz.photo_bytes()), st.tuples(fz.option_sets(), st.booleans())
        )
        counter = [0]

        def judge(case: Any, extra: Any) -> Any:
            options, use_stdin = extra
            counter[0] += 1
            out = work / f"out-{counter[0]}.png"
            args = ["remove"]
            try:
                decode(case.data, max_pixels=100_000_000)
                decodable = True
            except Exception:
                decodable = False
            if decodable and not budget.take():
                args += ["--max-pixels", "1"]  # still the whole CLI path, minus the model
            args += fz.cli_args_for(options)
            if use_stdin:
                result = runner.invoke(cli, [*args, "-", "-o", str(out)], input=case.data, env=env)
            else:
                src = work / f"in-{counter[0]}.jpg"
                src.write_bytes(case.data)
                result = runner.invoke(cli, [*args, str(src), "-o", str(out)], env=env)
                src.unlink()
            fmt = options.get("format", "png").strip().lower()
            verdict = fz.judge_cli_result(result, out, expect_image=fmt in ("png", "webp", "jpeg", "jpg"))
            out.unlink(missing_ok=True)
            return verdict

    elif target == "http":
        from fastapi.testclient import TestClient

        from cleancut import Settings
        from cleancut.io.decode import decode
        from cleancut.server import ServerSettings, create_app

        core = Settings.from_env(environ={}, cache_dir=_cache_dir(), offline=True)
        full = TestClient(
            create_app(ServerSettings(core=core, load_in_background=False, browser=False)),
            raise_server_exceptions=False,
        )
        tiny = TestClient(
            create_app(ServerSettings(core=core, load_in_background=False, browser=False, max_pixels=1)),
            raise_server_exceptions=False,
        )
        full.__enter__()
        tiny.__enter__()
        content_types = [
            "image/jpeg",
            "image/png",
            "application/octet-stream",
            "image/x-anything",
            "text/plain",
        ]
        strategy = st.tuples(
            st.one_of(fz.image_bytes(), fz.photo_bytes()),
            st.tuples(
                fz.option_sets(),
                st.sampled_from(["raw", "raw", "form", "form-query"]),
                st.sampled_from(content_types),
                st.one_of(st.none(), st.none(), fz.photo_bytes(), fz.image_bytes()),
            ),
        )

        def judge(case: Any, extra: Any) -> Any:
            options, shape, ctype, background = extra
            try:
                decode(case.data, max_pixels=50_000_000)
                decodable = True
            except Exception:
                decodable = False
            client = full if not decodable or budget.take() else tiny
            try:
                if shape == "raw":
                    r = client.post(
                        "/api/remove", content=case.data, headers={"Content-Type": ctype}, params=options
                    )
                else:
                    files = {"file": ("x.jpg", case.data, ctype)}
                    if background is not None and "background" not in options:
                        files["background"] = ("bg.img", background.data, "application/octet-stream")
                    if shape == "form":
                        r = client.post("/api/remove", files=files, data=options)
                    else:
                        r = client.post("/api/remove", files=files, params=options)
            except Exception as exc:
                return fz.Verdict("failure", f"client raised {type(exc).__name__}: {exc}")
            return fz.judge_http_response(r)

    elif target == "video":
        from cleancut import Remover, Settings

        settings_ = Settings.from_env(environ={}, cache_dir=_cache_dir(), offline=True)
        full = Remover("isnet_fp16", settings=settings_).load()
        tiny = Remover("isnet_fp16", settings=Settings.from_env(
            environ={}, cache_dir=_cache_dir(), offline=True, max_pixels=1))  # fmt: skip
        strategy = st.tuples(fz.clip_bytes(), st.tuples(fz.clip_options(), st.sampled_from(fz.CLIP_OUTPUTS)))

        def judge(case: Any, extra: Any) -> Any:
            options, output = extra
            remover = full if fz.clip_opens(case, work) and budget.take() else tiny
            return fz.judge_clip(remover, case, options, output, work)

    elif target == "http-video":
        from fastapi.testclient import TestClient

        from cleancut import Settings
        from cleancut.server import ServerSettings, create_app

        core = Settings.from_env(environ={}, cache_dir=_cache_dir(), offline=True)
        roots = (work / "full", work / "tiny")
        for root in roots:
            root.mkdir()
        plain = {"core": core, "load_in_background": False, "browser": False}
        full = TestClient(
            create_app(ServerSettings(**plain, video_dir=roots[0])), raise_server_exceptions=False
        )
        tiny_settings = ServerSettings(**plain, video_dir=roots[1], max_pixels=1)
        tiny = TestClient(create_app(tiny_settings), raise_server_exceptions=False)
        full.__enter__()
        tiny.__enter__()
        strategy = st.tuples(
            fz.clip_bytes(),
            st.tuples(
                fz.clip_http_options(),
                st.sampled_from(["raw", "form", "form-query"]),
                st.sampled_from(
                    ["video/mp4", "video/webm", "application/octet-stream", "image/png", "text/plain"]
                ),
            ),
        )

        def judge(case: Any, extra: Any) -> Any:
            options, shape, ctype = extra
            use_full = fz.clip_opens(case, work) and budget.take()
            client, root = (full, roots[0]) if use_full else (tiny, roots[1])
            try:
                if shape == "raw":
                    headers = {"Content-Type": ctype}
                    r = client.post("/api/remove-video", content=case.data, headers=headers, params=options)
                else:
                    files = {"file": ("clip.mp4", case.data, ctype)}
                    if shape == "form":
                        r = client.post("/api/remove-video", files=files, data=options)
                    else:
                        r = client.post("/api/remove-video", files=files, params=options)
                return fz.judge_http_clip(client, r, root)
            except Exception as exc:
                return fz.Verdict("failure", f"client raised {type(exc).__name__}: {exc}")

    else:
        raise SystemExit(f"unknown target {target}")

    index = [0]

    @hseed(seed)
    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(item=strategy)
    def campaign(item: Any) -> None:
        case, extra = item if isinstance(item, tuple) else (item, None)
        index[0] += 1
        _emit({"event": "start", "i": index[0], "label": case.label[:200]})
        try:
            verdict = judge(case, extra)
        except Exception as exc:  # a bug in a judge is a failure too, never a silent pass
            verdict = fz.Verdict("failure", f"judge raised {type(exc).__name__}: {exc}")
        tally.add(target, case, verdict)
        if verdict.outcome == "failure":
            _emit(
                {
                    "event": "failure",
                    "label": case.label[:200],
                    "detail": verdict.detail,
                    "input": _keep(target, case),
                }
            )

    try:
        campaign()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    _emit(
        {
            "event": "done",
            "counts": tally.counts.get(target, {}),
            "inferences": budget.used,
            "peak_rss_mb": round(peak_kb / 1024, 1),
        }
    )
    return 0


# --------------------------------------------------------------------------- parent


def _run_target(target: str, args: argparse.Namespace) -> dict[str, Any]:
    import psutil

    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        target,
        "--count",
        str(args.count),
        "--seed",
        str(args.seed),
        "--budget",
        str(args.budget),
    ]
    if target == "decode":
        cmd += ["--address-space-mb", str(args.decode_address_space_mb)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    state: dict[str, Any] = {"current": None, "since": time.monotonic(), "failures": [], "done": None}
    lock = threading.Lock()

    def reader() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            with lock:
                if msg["event"] == "start":
                    state["current"], state["since"] = msg["label"], time.monotonic()
                elif msg["event"] == "failure":
                    state["failures"].append(msg)
                elif msg["event"] == "done":
                    state["done"] = msg

    stderr_tail: list[str] = []

    def err_reader() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            stderr_tail.append(line)
            del stderr_tail[:-50]

    threads = [threading.Thread(target=reader, daemon=True), threading.Thread(target=err_reader, daemon=True)]
    for t in threads:
        t.start()
    ps = psutil.Process(proc.pid)
    peak = 0
    killed: str | None = None
    started = time.monotonic()
    while proc.poll() is None:
        time.sleep(0.1)
        with contextlib.suppress(psutil.Error):
            peak = max(peak, ps.memory_info().rss)
        with lock:
            running_for = time.monotonic() - state["since"]
            current = state["current"]
        if peak > args.memory_mb * 2**20:
            killed = f"memory: RSS {peak / 2**20:.0f} MB over {args.memory_mb} MB during {current}"
        elif running_for > args.hang_seconds:
            killed = f"hang: {current} ran for over {args.hang_seconds} s"
        if killed:
            proc.kill()
            break
    proc.wait()
    for t in threads:
        t.join(timeout=5)
    done = state["done"]
    failures = list(state["failures"])
    if killed:
        failures.append({"label": state["current"], "detail": killed, "input": None})
    elif done is None:
        failures.append(
            {
                "label": state["current"],
                "detail": f"child died (exit {proc.returncode}): " + "".join(stderr_tail[-8:]),
                "input": None,
            }
        )
    counts = dict(done["counts"]) if done else {"ok": 0, "error": 0, "failure": 0}
    counts["failure"] = max(counts.get("failure", 0), len(failures))
    return {
        "target": target,
        "counts": counts,
        "total": sum(counts.values()),
        "inferences": done["inferences"] if done else None,
        "peak_rss_mb": round(peak / 2**20, 1),
        "seconds": round(time.monotonic() - started, 1),
        "failures": failures[:50],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=1000, help="inputs per target (decode: 10x this)")
    parser.add_argument("--decode-factor", type=int, default=10, help="decode gets count x this")
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument(
        "--budget",
        type=int,
        default=25,
        help="real inferences per model target (library, options, cli, http)",
    )
    parser.add_argument("--hang-seconds", type=float, default=30.0)
    parser.add_argument("--memory-mb", type=int, default=6000, help="RSS that counts as a blow-up")
    parser.add_argument("--decode-address-space-mb", type=int, default=8192)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--address-space-mb", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        if args.address_space_mb:
            limit = args.address_space_mb * 2**20
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        return child(args.child, args.count, args.seed, args.budget)

    results = []
    for target in [t.strip() for t in args.targets.split(",") if t.strip()]:
        if target not in TARGETS:
            parser.error(f"unknown target {target!r}; choose from {', '.join(TARGETS)}")
        sub = argparse.Namespace(**vars(args))
        if target == "decode":
            sub.count = args.count * args.decode_factor
        print(f"fuzzing {target}: {sub.count} inputs…", file=sys.stderr, flush=True)
        results.append(_run_target(target, sub))
    total = {k: sum(r["counts"].get(k, 0) for r in results) for k in ("ok", "error", "failure")}
    report = {"seed": args.seed, "results": results, "total": total, "inputs": sum(total.values())}
    print(json.dumps(report, indent=2))
    columns = ("target", "inputs", "ok", "error", "failure", "model runs", "peak RSS MB", "seconds")
    rows = [
        (
            r["target"],
            r["total"],
            r["counts"].get("ok", 0),
            r["counts"].get("error", 0),
            r["counts"].get("failure", 0),
            "-" if r["inferences"] is None else r["inferences"],
            r["peak_rss_mb"],
            r["seconds"],
        )
        for r in results
    ]
    print()
    for row in (columns, *rows):
        print(f"{row[0]:<9}" + "".join(f"{v!s:>13}" for v in row[1:]))
    print(f"{'total':<9}" + "".join(f"{v!s:>13}" for v in (report["inputs"], *total.values())))
    for r in results:
        for f in r["failures"][:10]:
            print(
                f"FAILURE {r['target']}: {f['label']}: {f['detail']}"
                + (f" [{f['input']}]" if f.get("input") else "")
            )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 1 if total["failure"] else 0


if __name__ == "__main__":
    sys.exit(main())
