"""End-to-end Ray pipeline throughput on the demo corpus against the decode floor, same run.

Runs ``pipelines/build_dataset.py`` as a user would (a fresh local Ray on ``--cpus`` CPUs, so
Ray's start-up is included) over the demo corpus served on loopback (generated videos encoded
like real uploads, 5 s GOPs, half with no keyframe at their cuts, plus real footage), and
prints seconds of source video per wall-second next to the decode floor on the same CPUs,
their ratio (target <= 2), the ratio to a stricter floor that only decodes (no 256 px scale of
every frame, which the analysis pass no longer does), and the peak memory (PSS, so shared object-store pages count once)
of the whole job: the driver, Ray's daemons and workers, ffmpeg. Target < 4 GiB.

``--marginal-copies N`` also runs N copies and prints the *marginal* ratio, (wall at N - wall at
``--copies``) / (floor at N - floor at ``--copies``): what one more video costs against decoding
it, which is what a million clips cost, and the fixed seconds (Ray's start-up, the actors'
start, shutdown) that the ratio at small ``--copies`` pays once.

``--with-text`` also runs the default config (the SmolLM2 summariser on) once, and prints its
wall next to the text-off wall and the summariser's own seconds, and when each run's last ffmpeg
(the clip stage's work) ended: when clipping does not wait for the model, it ends at about the
same second with the summariser on as off, and the text-on wall is near max(text-off wall,
summariser time + its load), not their sum.

    .venv/bin/python bench/pipeline_throughput.py [--cpus 2] [--repeat 2] [--copies 4] [--marginal-copies 12] [--with-text]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
from curate_throughput import multiply_sources
from floor import decode_floor

from curate.demo.corpus import build_corpus
from curate.demo.server import serve_directory, write_source_list
from curate.probe import probe

ROOT = Path(__file__).resolve().parent.parent


class PeakMemory:
    """Samples the PSS and the CPU seconds of a process tree until stopped.

    CPU is counted per process as its own time plus that of the children it has waited for
    (so the short-lived ffmpeg runs of a stage count in the stage's worker), grouped by what
    the process is: the driver, Ray's daemons, each kind of Ray worker. The breakdown kept is
    the last sample's, taken moments before the job exits. ``last_ffmpeg_s`` is when an ffmpeg
    (the clip stage's decode pass or cut) was last seen running, from the start: when clipping
    ended, whatever the text stages still did after it.
    """

    def __init__(self, pid: int, interval_s: float = 0.5):
        self.pid, self.interval_s, self.peak = pid, interval_s, 0
        self.cpu_by_kind: dict[str, float] = {}
        self.started, self.last_ffmpeg_s = time.monotonic(), 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _kind(self, proc: psutil.Process) -> str:
        if proc.pid == self.pid:
            return "driver"
        try:
            cmd = proc.cmdline()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return "other"
        head = (cmd[0] if cmd else proc.name()).split()[0]
        if head.startswith("ray::"):
            return head.split(".")[0].split(":")[-1] or "ray worker"
        joined = " ".join(cmd)
        for daemon in ("gcs_server", "raylet", "dashboard", "log_monitor", "monitor.py", "runtime_env", "agent"):
            if daemon in joined:
                return f"ray daemon ({daemon})"
        return proc.name()

    def _sample(self) -> None:
        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        total, cpu = 0, {}
        for proc in procs:
            try:
                total += proc.memory_full_info().pss
                t = proc.cpu_times()
                kind = self._kind(proc)
                if proc.name() == "ffmpeg":
                    self.last_ffmpeg_s = time.monotonic() - self.started
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            cpu[kind] = cpu.get(kind, 0.0) + t.user + t.system + t.children_user + t.children_system
        self.peak = max(self.peak, total)
        if sum(cpu.values()) >= sum(self.cpu_by_kind.values()):
            self.cpu_by_kind = cpu

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


NO_TEXT = ["text.vlm.backend=none", "text.llm.backend=none"]


def run_pipeline(sources: Path, cpus: int, overrides: list[str]) -> tuple[float, PeakMemory, dict]:
    out = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    cmd = [sys.executable, str(ROOT / "pipelines" / "build_dataset.py"), "--sources", str(sources), "--output",
           str(out / "ds"), "--config", str(ROOT / "configs" / "demo.yaml"), "--quiet", f"ray.num_cpus={cpus}",
           *overrides]
    try:
        started = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with PeakMemory(proc.pid) as memory:
            if proc.wait() != 0:
                raise SystemExit(f"pipeline failed: {' '.join(cmd)}")
        wall = time.monotonic() - started
        return wall, memory, json.loads((out / "ds" / "stats.json").read_text())
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _marginal(corpus: dict, base_url: str, videos: list[Path], args: argparse.Namespace, floor: float, wall: float) -> dict:
    """Wall and floor at ``--marginal-copies``; their differences from the ``--copies`` run give the
    cost of each extra video with every fixed cost (Ray start-up, actor start, shutdown) cancelled."""
    sources = Path(tempfile.mkdtemp()) / "sources.txt"
    write_source_list(corpus, base_url, sources)
    multiply_sources(sources, args.marginal_copies)
    floors, walls = [], []
    for _ in range(args.repeat):
        floors.append(decode_floor(videos * args.marginal_copies, args.cpus))
        walls.append(run_pipeline(sources, args.cpus, [*NO_TEXT, *args.overrides])[0])
    big_floor, big_wall = min(floors), min(walls)
    return {"copies": args.marginal_copies, "decode_floor_s": round(big_floor, 2), "pipeline_wall_s": round(big_wall, 2),
            "ratio": round(big_wall / big_floor, 2),
            "marginal_ratio": round((big_wall - wall) / (big_floor - floor), 2),
            "fixed_s": round(wall - floor * (big_wall - wall) / (big_floor - floor), 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--corpus", type=Path, default=ROOT / "demo-out-corpus")
    parser.add_argument("--copies", type=int, default=1, help="each demo URL this many times (distinct URLs), to amortise start-up")
    parser.add_argument("--marginal-copies", type=int, default=0,
                        help="also run at this many copies and print the marginal ratio: what each extra video costs "
                             "against the floor, Ray's fixed start-up and shutdown cancelled out")  # fmt: skip
    parser.add_argument("--with-text", action="store_true", help="also run the default config (summariser on) once")
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value", help="pipeline config overrides to compare settings")
    args = parser.parse_args()
    corpus = build_corpus(args.corpus)
    videos = sorted(args.corpus.glob("*.mp4"))
    seconds = sum(probe(v).duration for v in videos) * args.copies
    floors, decodes, walls, peaks, stats, cpu_by_kind, clipping_done = [], [], [], [], {}, {}, 0.0
    with serve_directory(args.corpus) as base_url:
        sources = Path(tempfile.mkdtemp()) / "sources.txt"
        write_source_list(corpus, base_url, sources)
        multiply_sources(sources, args.copies)
        for _ in range(args.repeat):
            floors.append(decode_floor(videos * args.copies, args.cpus))
            decodes.append(decode_floor(videos * args.copies, args.cpus, scale=False))
            wall, memory, stats = run_pipeline(sources, args.cpus, [*NO_TEXT, *args.overrides])
            walls.append(wall)
            peaks.append(memory.peak)
            if wall <= min(walls):
                cpu_by_kind, clipping_done = memory.cpu_by_kind, memory.last_ffmpeg_s
        text = run_pipeline(sources, args.cpus, args.overrides) if args.with_text else None
        marginal = _marginal(corpus, base_url, videos, args, min(floors), min(walls)) if args.marginal_copies else None
    floor, wall = min(floors), min(walls)
    result = {
        "videos": len(videos),
        "seconds_of_video": round(seconds, 1),
        "cpus": args.cpus,
        "copies": args.copies,
        "decode_floor_s": round(floor, 2),
        "pipeline_wall_s": round(wall, 2),
        "ratio": round(wall / floor, 2),
        "decode_only_floor_s": round(min(decodes), 2),
        "ratio_to_decode_only": round(wall / min(decodes), 2),
        "video_s_per_wall_s": round(seconds / wall, 1),
        "floor_video_s_per_wall_s": round(seconds / floor, 1),
        "peak_job_pss_gib": round(max(peaks) / 1024**3, 2),
        "clips": stats.get("funnel", {}).get("clips"),
        "stage_s": stats.get("run", {}).get("stage_s"),
        "stage_cpu_s": stats.get("run", {}).get("stage_cpu_s"),
        "preroll_s": stats.get("run", {}).get("preroll_s"),
        "job_cpu_s": round(sum(cpu_by_kind.values()), 1),
        "job_cpu_s_by_process": {k: round(v, 1) for k, v in sorted(cpu_by_kind.items(), key=lambda kv: -kv[1])},
        "all_floor_s": [round(x, 2) for x in floors],
        "all_pipeline_s": [round(x, 2) for x in walls],
    }
    if marginal is not None:
        result["marginal"] = marginal
    if text is not None:
        run = text[2].get("run", {})
        result["with_text"] = {"wall_s": round(text[0], 2), "text_off_wall_s": round(wall, 2),
                               "summariser_s": run.get("stage_s", {}).get("text"), "stage_cpu_s": run.get("stage_cpu_s"),
                               "clipping_done_s": round(text[1].last_ffmpeg_s, 1),
                               "text_off_clipping_done_s": round(clipping_done, 1),
                               "peak_job_pss_gib": round(text[1].peak / 1024**3, 2)}
    print(json.dumps(result, indent=2))
    print(f"pipeline {wall:.1f} s vs decode floor {floor:.1f} s: ratio {wall / floor:.2f} (target <= 2.0); "
          f"peak memory {max(peaks) / 1024**3:.2f} GiB (target < 4)")
    if marginal is not None:
        print(f"each extra video: {marginal['marginal_ratio']:.2f}x its decode floor; fixed cost {marginal['fixed_s']:.0f} s "
              f"(ratio {marginal['ratio']:.2f} at --copies {marginal['copies']})")
    if text is not None:
        print(f"with the summariser on: {text[0]:.1f} s (text off {wall:.1f} s); the last clip was cut at "
              f"{text[1].last_ffmpeg_s:.0f} s (text off {clipping_done:.0f} s): clipping waits for the model only if these differ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
