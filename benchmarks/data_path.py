"""dagger's data path against the library people would use instead (TorchRL), as ratios measured in one run.

On the same steps, Meta-World-reach-sized (obs 39, act 4, random float32), in segments of 50 steps:

1. append throughput (steps/s): `encode_segment` + `SegmentLog.append` (checksummed frames) vs TorchRL's
   `ReplayBuffer.extend` of the same steps as a TensorDict on `LazyTensorStorage` and on `CompressedListStorage`:
   durable as a run makes them (`--shippers` threads at once, as the buffer actor runs adds: 4, the actors' old
   max_concurrency, and 16, the buffer actor's now; each human segment acknowledged only once an fsync covered it:
   group commit; goal >= 1x LazyTensorStorage), and the whole `BufferWorker.add` a shipper waits for that way; one
   at a time with an fsync each; and without fsync;
2. batches of 256 per second: dagger's `ReplayBuffer.sample` (what the learner's buffer calls) vs TorchRL's
   `ReplayBuffer.sample(256)` on `LazyTensorStorage`;
3. learner updates per second at batch 128 on the default mlp-ensemble: `Learner.train` (fetch from the buffer,
   normalise, `policy.update`: closed-form gradients and fused Adam) and `policy.update` alone vs a plain eager
   torch loop training the same ensemble nets (autograd, Adam, MSE) on batches drawn from tensors; goals:
   Learner.train >= 1.5x, policy.update >= 0.9x.

The TensorDicts are built before TorchRL's clock starts (its best case); dagger's clock includes encoding. Each
pair is measured in interleaved rounds and each side's best is shown, so a busy machine slows both alike.
One torch thread. The table (Markdown) goes to stdout, everything else to stderr. Without torchrl the peer's
columns read n/a (`pip install -e .[bench]`).

    python benchmarks/data_path.py [--dir DIR] [--seconds 2.0]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from buffers.codec import encode_segment
from buffers.replay import ReplayBuffer
from buffers.schema import STEP_FIELDS, Segment
from buffers.segment_log import SegmentLog
from dagger.config import load_config
from dagger.nets import EnsembleMLP
from workers.buffer import BufferWorker
from workers.learner import Learner
from workers.transport import LocalEndpoint

OBS_DIM, ACT_DIM, SEG_STEPS = 39, 4, 50
BATCH = 256


def note(*args: Any) -> None:
    print(*args, file=sys.stderr, flush=True)


def make_segments(count: int, seed: int = 0) -> list[Segment]:
    """count segments of SEG_STEPS random steps, an operator's (so the replay stores them as labels)."""
    rng = np.random.default_rng(seed)
    segs = []
    for i in range(count):
        n = SEG_STEPS
        segs.append(Segment(
            robot=0, seq=i, episode=i // 10, controller="operator:0", reason="size", t_closed=float(i),
            obs=rng.random((n, OBS_DIM), np.float32), action=rng.random((n, ACT_DIM), np.float32),
            policy_action=rng.random((n, ACT_DIM), np.float32), version=np.full(n, 3, np.int64),
            spread=rng.random(n, np.float32), threshold=np.full(n, 0.02, np.float32),
            reward=rng.random(n, np.float32), success=np.zeros(n, np.bool_), constraint=np.zeros(n, np.bool_),
            done=np.zeros(n, np.bool_), step=np.arange(n, dtype=np.int64) + (i % 10) * n,
            t_wall=np.arange(n, dtype=np.float64) + i, image=np.zeros((n, 0, 0, 3), np.uint8)))
    return segs


def timed(body: Callable[[int], object], items: int, seconds: float) -> tuple[float, int]:
    """Calls body(i) for i = 0, 1, ... until `items` calls or `seconds` pass; (calls per second, calls)."""
    began = time.perf_counter()
    i = 0
    while i < items:
        body(i)
        i += 1
        if time.perf_counter() - began > seconds:
            break
    return i / (time.perf_counter() - began), i


# -- 1. append ---------------------------------------------------------------------------------------------------
def dagger_append(segs: list[Segment], directory: Path, durable: bool, seconds: float) -> float:
    with SegmentLog(directory) as log:
        rate, _ = timed(lambda i: log.append(encode_segment(segs[i]), durable=durable), len(segs), seconds)
    return rate * SEG_STEPS


def concurrent(body: Callable[[int], object], items: int, seconds: float, threads: int) -> float:
    """body(i) for i = 0 .. items-1 from `threads` threads at once (each takes the next i) until all are done or
    `seconds` pass; calls per second."""
    lock, next_item = threading.Lock(), iter(range(items))
    start = threading.Barrier(threads + 1)
    done = [0] * threads

    def shipper(k: int) -> None:
        start.wait()
        while time.perf_counter() - began <= seconds:
            with lock:
                i = next(next_item, None)
            if i is None:
                return
            body(i)
            done[k] += 1

    workers = [threading.Thread(target=shipper, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    began = time.perf_counter()
    start.wait()
    for w in workers:
        w.join()
    return sum(done) / (time.perf_counter() - began)


def dagger_group_append(segs: list[Segment], directory: Path, seconds: float, shippers: int) -> float:
    """Durable appends as a run makes them: `shippers` threads at once (the buffer actor's concurrency), each
    appending one human segment and acknowledged only once an fsync covered it (group commit)."""
    with SegmentLog(directory) as log:
        def ship(i: int) -> None:
            with log.coming():  # as ReplayBuffer.add does: a leader waits for frames being encoded
                end = log.append(encode_segment(segs[i]))
            log.sync(end)

        rate = concurrent(ship, len(segs), seconds, shippers)
    return rate * SEG_STEPS


def dagger_buffer_add(segs: list[Segment], directory: Path, seconds: float, shippers: int) -> float:
    """The whole durable add a shipper waits for: BufferWorker.add([human segment]) from `shippers` threads at once
    (log, group commit, then the in-memory storage and transition store)."""
    buffer = BufferWorker(directory, seed=0)
    try:
        rate = concurrent(lambda i: buffer.add([segs[i]]), len(segs), seconds, shippers)
    finally:
        buffer.close()
    return rate * SEG_STEPS


def as_tensordicts(segs: list[Segment]) -> list[Any]:
    from tensordict import TensorDict
    # every step field but the (empty, state-only) camera image: the same steps the segment log holds
    return [TensorDict({name: torch.from_numpy(getattr(seg, name)) for name in STEP_FIELDS if name != "image"},
                       batch_size=[len(seg)]) for seg in segs]


def torchrl_buffer(storage: str, capacity: int, batch_size: int | None = None) -> Any:
    from torchrl.data import CompressedListStorage, LazyTensorStorage
    from torchrl.data import ReplayBuffer as TorchRLBuffer
    made = LazyTensorStorage(capacity) if storage == "lazy" else CompressedListStorage(capacity)
    return TorchRLBuffer(storage=made, batch_size=batch_size)


def torchrl_append(tds: list[Any], storage: str, seconds: float) -> float:
    rb = torchrl_buffer(storage, len(tds) * SEG_STEPS)
    rb.extend(tds[0])  # first extend allocates (lazy storage): not timed, and the peer's best case
    rate, _ = timed(lambda i: rb.extend(tds[1 + i]), len(tds) - 1, seconds)
    return rate * SEG_STEPS


# -- 3. learner updates ------------------------------------------------------------------------------------------
class DaggerLearner:
    """Learner.train (fetch from the buffer, normalise, policy.update) and policy.update alone, default config of
    task reach (mlp-ensemble, batch 128)."""

    def __init__(self, segs: list[Segment], directory: Path) -> None:
        self.cfg = load_config(None, ["task=reach"])
        self.buffer = BufferWorker(directory, seed=0)
        self.buffer.add(segs)
        self.learner = Learner(self.cfg, OBS_DIM, ACT_DIM, LocalEndpoint(self.buffer))
        self.learner.train(20)  # warm: first calls allocate

    def train(self, updates: int) -> float:
        began = time.perf_counter()
        self.learner.train(updates)
        return updates / (time.perf_counter() - began)

    def update(self, updates: int) -> float:
        p, batch = self.learner.policy, self.cfg.learner.batch_size
        data = self.buffer.sample(updates * p.members * batch)
        assert data is not None
        parts = {k: v.reshape(updates, p.members, batch, *v.shape[1:]) for k, v in data.items() if k != "normalizer"}
        began = time.perf_counter()
        for i in range(updates):
            p.update({k: v[i] for k, v in parts.items()}, None, self.learner.needs, self.cfg.gate.tau_sup)
        return updates / (time.perf_counter() - began)


class PlainTorch:
    """The same ensemble nets, Adam and MSE, each member its own batch of 128 drawn from (normalised) tensors."""

    def __init__(self, segs: list[Segment]) -> None:
        cfg = load_config(None, ["task=reach"])
        self.policy, self.batch = cfg.policy, cfg.learner.batch_size
        obs = torch.from_numpy(np.concatenate([s.obs for s in segs]))
        act = torch.from_numpy(np.concatenate([s.action for s in segs]))
        self.obs, self.act = (obs - obs.mean(0)) / obs.std(0), (act - act.mean(0)) / act.std(0)
        self.net = EnsembleMLP(self.policy.members, [OBS_DIM] + [self.policy.hidden] * self.policy.layers + [ACT_DIM],
                               seed=0)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=self.policy.lr)
        self.train(20)

    def step(self) -> None:
        idx = torch.randint(0, len(self.obs), (self.policy.members, self.batch))
        loss = ((self.net(self.obs[idx]) - self.act[idx]) ** 2).mean()
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        loss.item()  # as the learner reads its loss

    def train(self, updates: int) -> float:
        began = time.perf_counter()
        for _ in range(updates):
            self.step()
        return updates / (time.perf_counter() - began)


def ratio(ours: float | None, theirs: float | None) -> str:
    return "n/a" if ours is None or theirs is None else f"{ours / theirs:.2f}x"


def num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=None, help="where the segment logs go, kept (default: a temporary dir, "
                                                    "removed); fsync cost depends on its disk")
    parser.add_argument("--seconds", type=float, default=2.0, help="time box of each measure, over all rounds")
    parser.add_argument("--segments", type=int, default=2000, help="segments of 50 steps generated")
    parser.add_argument("--updates", type=int, default=300, help="learner updates timed per round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; each side's best is shown")
    parser.add_argument("--shippers", default="4,16", help="concurrent durable appends, comma-separated: a row each "
                                                           "(the buffer actor's max_concurrency on Ray is 16)")
    args = parser.parse_args()
    shippers = [int(n) for n in str(args.shippers).split(",")]
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    try:
        import tensordict  # noqa: F401
        import torchrl  # noqa: F401
        have_torchrl = True
        for handler in logging.getLogger("torchrl").handlers:  # its info lines go to stdout: to stderr instead
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(sys.stderr)
    except ImportError as e:
        note(f"torchrl is not installed ({e}); the peer's columns read n/a: pip install -e .[bench]")
        have_torchrl = False
    root = Path(args.dir or tempfile.mkdtemp(prefix="data-path-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    segs = make_segments(args.segments)
    note(f"{len(segs)} segments x {SEG_STEPS} steps, obs {OBS_DIM}, act {ACT_DIM}; logs under {root} "
         f"({os.statvfs(root).f_bsize} B blocks); one torch thread; {args.seconds:g} s per measure over "
         f"{args.rounds} rounds")
    tds = as_tensordicts(segs) if have_torchrl else []

    # each pair is measured in interleaved rounds, best of each side: a busy machine slows both alike
    best: dict[str, float] = {}

    def keep(name: str, rate: float) -> None:
        best[name] = max(best.get(name, 0.0), rate)

    box = args.seconds / args.rounds
    per_round = len(segs) // args.rounds
    for r in range(args.rounds):
        note(f"round {r + 1}/{args.rounds}: append ...")
        part = slice(r * per_round, (r + 1) * per_round)
        keep("durable", dagger_append(segs[part], root / f"durable-{r}", True, box))
        for n in shippers:
            keep(f"group{n}", dagger_group_append(segs[part], root / f"group-{r}-{n}", box, n))
            keep(f"buffer_add{n}", dagger_buffer_add(segs[part], root / f"buffer-{r}-{n}", box, n))
        keep("buffered", dagger_append(segs[part], root / f"buffered-{r}", False, box))
        if have_torchrl:
            keep("lazy", torchrl_append(tds[part], "lazy", box))
            keep("compressed", torchrl_append(tds[part], "compressed", box))
    note("sampling ...")
    with ReplayBuffer(root / "replay") as replay:
        replay.add(segs)
        rb: Any = torchrl_buffer("lazy", len(tds) * SEG_STEPS, batch_size=BATCH) if have_torchrl else None
        for td in tds:  # none without torchrl
            rb.extend(td)
        for _ in range(args.rounds):
            keep("ours_sample", timed(lambda _: replay.sample(BATCH), 1 << 30, box)[0])
            if rb is not None:
                keep("theirs_sample", timed(lambda _: rb.sample(), 1 << 30, box)[0])
    note("learner ...")
    learner, plain = DaggerLearner(segs, root / "learner"), PlainTorch(segs)
    for _ in range(args.rounds):
        keep("train", learner.train(args.updates))
        keep("update", learner.update(args.updates))
        keep("plain", plain.train(args.updates))
    learner.buffer.close()
    if args.dir is None:
        shutil.rmtree(root, ignore_errors=True)

    def got(name: str) -> float | None:
        return best.get(name)

    rows: list[tuple[str, str, float | None, str, float | None, float | None]] = []
    for n in shippers:
        rows.append((f"durable append, {n} shippers at once (steps/s)", "SegmentLog group commit", got(f"group{n}"),
                     "extend, LazyTensorStorage", got("lazy"), 1.0))
    for n in shippers:
        rows.append((f"durable add, {n} shippers at once (steps/s)", "BufferWorker.add", got(f"buffer_add{n}"),
                     "extend, LazyTensorStorage", got("lazy"), None))
    rows += [("append, fsync per segment, one at a time (steps/s)", "SegmentLog durable=True", got("durable"),
             "extend, LazyTensorStorage", got("lazy"), None),
            ("append, fsync per segment, one at a time (steps/s)", "SegmentLog durable=True", got("durable"),
             "extend, CompressedListStorage", got("compressed"), None),
            ("append, no fsync (steps/s)", "SegmentLog durable=False", got("buffered"),
             "extend, LazyTensorStorage", got("lazy"), None),
            ("append, no fsync (steps/s)", "SegmentLog durable=False", got("buffered"),
             "extend, CompressedListStorage", got("compressed"), None),
            (f"sample {BATCH} (batches/s)", "ReplayBuffer.sample", got("ours_sample"),
             "sample, LazyTensorStorage", got("theirs_sample"), None),
            ("updates at batch 128 (updates/s)", "Learner.train", got("train"), "plain torch loop", got("plain"), 1.5),
            ("updates at batch 128 (updates/s)", "policy.update", got("update"), "plain torch loop", got("plain"), 0.9)]

    print("| measure | dagger | dagger | peer | peer | dagger / peer | goal |")
    print("| --- | --- | ---: | --- | ---: | ---: | --- |")
    for measure, ours_name, ours, peer_name, theirs, goal in rows:
        aim = "" if goal is None else f">= {goal:g}x"
        if goal is not None and ours is not None and theirs is not None:
            aim += " (met)" if ours / theirs >= goal else " (short)"
        print(f"| {measure} | {ours_name} | {num(ours)} | {peer_name} | {num(theirs)} | {ratio(ours, theirs)} | "
              f"{aim} |", flush=True)


if __name__ == "__main__":
    main()
