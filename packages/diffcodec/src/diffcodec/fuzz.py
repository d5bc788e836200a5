"""A fuzz campaign against diffcodec's decoder: ``diffcodec fuzz --minutes N``.

Seeds are real blobs: two small crops of real photos, compressed by every
method at its lowest and highest rate. Each mutant comes from one seed by one
mutation (:data:`MUTATIONS`), in three classes:

* raw damage (bit flips, overwritten, inserted or cut bytes, two blobs spliced),
  which the CRC must catch;
* resealed containers (the CRC recomputed, as a forger writes them) whose
  payloads were cut, extended, replaced by random bytes or whole random 32-bit
  words, emptied, swapped, duplicated, spliced in from another blob, or
  bit-flipped at their own size — the last runs the whole decoder;
* resealed header rewrites: the rate index, the method, other small sizes, and
  huge sizes over tiny payloads — the class of the forged 60-byte blob that
  once bought two minutes of CPU.

Every mutant is decoded in a worker subprocess, one at a time, by the codec of
its seed's method, under a time limit. Outcomes: **typed** (a diffcore /
diffcodec error: the blob is refused with a reason), **clean** (an RGB image of
the size the header announces), **crash** (any other exception, a wrong-sized
image, or the worker died, e.g. SIGSEGV in a C extension) and **hang** (no
answer within the limit: the worker is killed and restarted). Crashing and
hanging mutants are written to the findings folder. The campaign is
deterministic for a seed: the same mutants in the same order.
"""

from __future__ import annotations

import dataclasses
import heapq
import json
import os
import random
import select
import selectors
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from diffcodec.bitstream import MAX_PAYLOADS, METHODS, pack_unchecked, unpack
from diffcodec.limits import MAX_BLOBS, MAX_MINUTES, MAX_WORKERS

#: mutation kinds and their draw weights (see the module docstring for the classes)
MUTATIONS: dict[str, int] = {
    **dict.fromkeys(["flip", "overwrite", "truncate", "insert", "splice"], 1),  # raw: the CRC catches them
    **dict.fromkeys(["p-trunc", "p-extend", "p-random", "p-words", "p-empty", "p-swap", "p-count", "p-splice"], 2),
    **dict.fromkeys(["rate", "method", "size", "huge"], 1),  # resealed header rewrites
    "p-bits": 1,  # resealed, payload bits flipped at their own size: full decodes (the costly kind)
}
#: seconds a worker may take to load the codecs
_START_LIMIT_S = 300.0


def reseal(blob: bytes) -> bytes:
    """``blob`` with its last 4 bytes replaced by the CRC-32 of the rest: what a forger does after editing."""
    body = blob[:-4]
    return body + struct.pack("<I", zlib.crc32(body))


def _random_bytes(rng: random.Random, n: int) -> bytes:
    return rng.getrandbits(8 * n).to_bytes(n, "little") if n else b""


def mutate(rng: random.Random, blob: bytes, rates: int, others: list[bytes]) -> tuple[str, bytes]:
    """One mutant of the real blob ``blob`` (of a codec with ``rates`` rates) and its kind.

    ``others`` are real blobs to splice from. Only the resealed kinds keep a valid container.
    """
    header, payloads = unpack(blob)
    payloads = list(payloads)
    b = bytearray(blob)
    kind = rng.choices(list(MUTATIONS), weights=list(MUTATIONS.values()))[0]
    if kind == "flip":
        for _ in range(rng.randint(1, 3)):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        return kind, bytes(b)
    if kind == "overwrite":
        b[rng.randrange(len(b))] = rng.randrange(256)
        return kind, bytes(b)
    if kind == "truncate":
        return kind, bytes(b[: rng.randrange(len(b))])
    if kind == "insert":
        pos = rng.randrange(len(b) + 1)
        return kind, bytes(b[:pos]) + _random_bytes(rng, rng.randint(1, 8)) + bytes(b[pos:])
    if kind == "splice":
        o = rng.choice(others)
        return kind, bytes(b[: rng.randrange(len(b))]) + o[rng.randrange(len(o)) :]
    if kind == "method":
        return kind, reseal(blob[:5] + bytes([rng.choice(sorted(METHODS.values()))]) + blob[6:])
    i = rng.randrange(len(payloads))
    p = payloads[i]
    if kind == "p-trunc":
        payloads[i] = p[: rng.randrange(len(p) + 1)]
    elif kind == "p-extend":
        payloads[i] = p + _random_bytes(rng, rng.choice([1, 3, 4, 8, 64]))
    elif kind == "p-random":
        payloads[i] = _random_bytes(rng, rng.choice([1, 2, 7, 9, len(p) + 1, len(p) + 2, 1000]))
    elif kind == "p-words":  # whole 32-bit words: passes the rANS guard's length checks
        payloads[i] = _random_bytes(rng, 4 * rng.choice([0, 1, 2, 3, 5, 50, 300]))
    elif kind == "p-empty":
        payloads[i] = b""
    elif kind == "p-swap":
        payloads.reverse()
    elif kind == "p-count":
        payloads = payloads[:1] if rng.random() < 0.5 else payloads + [p] * rng.randint(1, MAX_PAYLOADS - len(payloads))
    elif kind == "p-splice":  # a payload of another real blob (other method, rate or image)
        other = unpack(rng.choice(others))[1]
        payloads[i] = rng.choice(other)
    elif kind == "p-bits":
        q = bytearray(p)
        for _ in range(rng.randint(1, 3) if q else 0):
            q[rng.randrange(len(q))] ^= 1 << rng.randrange(8)
        payloads[i] = bytes(q)
    elif kind == "rate":
        header = dataclasses.replace(header, rate=rng.choice([0, 1, rates - 1, rates, 255]))
    elif kind == "size":  # other small sizes: the payloads no longer fit, or decode to another size
        header = dataclasses.replace(header, height=rng.randint(1, 96), width=rng.randint(1, 128))
    elif kind == "huge":  # a big image over tiny payloads: must be refused before any big work
        header = dataclasses.replace(header, height=rng.choice([512, 1024, 2048]), width=rng.choice([512, 1024, 2048]))
        payloads = [q[: rng.choice([0, 1, 4, 8, 16])] for q in payloads]
    return kind, pack_unchecked(header, payloads)


def seed_blobs(weights: str | Path | None = None) -> dict[str, list[bytes]]:
    """Per method: real blobs of two small crops of real photos, at the lowest and the highest rate."""
    import numpy as np
    import skimage.data

    from diffcodec.codec import Codec

    crops = [
        np.ascontiguousarray(skimage.data.coffee()[100:148, 200:264]),  # 48×64
        np.ascontiguousarray(skimage.data.astronaut()[40:77, 180:230]),  # 37×50: padded on both sides
    ]
    out: dict[str, list[bytes]] = {}
    for method in METHODS:
        codec = Codec.load(method, path=weights)
        out[method] = [codec.compress(c, r) for c in crops for r in (0, len(codec.rates) - 1)]
    return out


# --------------------------------------------------------------------------- the worker


def _worker(weights: str | None) -> None:
    """Decode length-prefixed (method id, blob) records from stdin; answer one JSON line each on stdout."""
    proto = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)  # whatever a library prints goes to stderr, never into the protocol
    import torch

    from diffcodec.codec import Codec
    from diffcore.errors import DiffcoreError

    torch.set_num_threads(int(os.environ.get("DIFFCODEC_FUZZ_THREADS", "1")))
    methods = {v: k for k, v in METHODS.items()}
    codecs = {m: Codec.load(m, path=weights) for m in METHODS}
    proto.write(b'{"ready": true}\n')
    stdin = sys.stdin.buffer
    while head := stdin.read(5):
        method_id, n = struct.unpack("<BI", head)
        blob = stdin.read(n)
        t = time.perf_counter()
        try:
            out = codecs[methods[method_id]].decompress(blob)
            h = unpack(blob)[0]
            ok = out.mode == "RGB" and out.size == (h.width, h.height)
            answer = {"outcome": "clean"} if ok else {"outcome": "crash", "error": f"wrong image {out.mode} {out.size}"}
        except DiffcoreError as e:
            answer = {"outcome": "typed", "error": type(e).__name__}
        except Exception as e:  # an untyped error is exactly what the campaign looks for
            answer = {"outcome": "crash", "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
        answer["s"] = time.perf_counter() - t
        proto.write(json.dumps(answer).encode() + b"\n")


class _Worker:
    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, env=env)
        self.buf = b""
        self.job: tuple | None = None  # (index, method, kind, blob, deadline)
        line = self._read_line(time.monotonic() + _START_LIMIT_S)
        if line is None or not json.loads(line).get("ready"):
            self.close()
            raise RuntimeError(f"the fuzz worker did not start: {self.stderr_tail()}")

    def _read_line(self, deadline: float) -> bytes | None:
        """The worker's next answer line; None when it died or ``deadline`` passed (once per blob: no selector built)."""
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buf:
            readable, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(fd, 1 << 16) if readable else b""
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def send(self, job: tuple) -> None:
        self.job = job
        _, method, _, blob, _ = job
        self.proc.stdin.write(struct.pack("<BI", METHODS[method], len(blob)) + blob)
        self.proc.stdin.flush()

    def stderr_tail(self, n: int = 2000) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-n:]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:  # a pipe to a killed process
                pass
        self.log.close()


# --------------------------------------------------------------------------- the campaign


@dataclass
class Finding:
    """A mutant that crashed or hung the decoder."""

    index: int
    method: str
    kind: str
    outcome: str
    detail: str
    blob: bytes = field(repr=False)


@dataclass
class Report:
    """What a campaign tried and what came of it."""

    tried: int = 0
    outcomes: Counter = field(default_factory=Counter)  # typed / clean / crash / hang
    errors: Counter = field(default_factory=Counter)  # typed error class -> count
    kinds: dict[str, Counter] = field(default_factory=dict)  # mutation kind -> outcomes
    methods: dict[str, Counter] = field(default_factory=dict)  # method -> outcomes
    slowest: list[tuple[float, int, str, str, int]] = field(default_factory=list)  # (s, index, method, kind, bytes)
    findings: list[Finding] = field(default_factory=list)
    seconds: float = 0.0
    workers: int = 1
    limit_s: float = 0.0
    seed: int = 0

    def add(self, index: int, method: str, kind: str, blob: bytes, answer: dict) -> None:
        outcome = answer["outcome"]
        self.tried += 1
        self.outcomes[outcome] += 1
        self.kinds.setdefault(kind, Counter())[outcome] += 1
        self.methods.setdefault(method, Counter())[outcome] += 1
        if outcome == "typed":
            self.errors[answer["error"]] += 1
        s = float(answer.get("s", self.limit_s))
        item = (s, index, method, kind, len(blob))
        if len(self.slowest) < 5:
            heapq.heappush(self.slowest, item)
        elif s > self.slowest[0][0]:
            heapq.heapreplace(self.slowest, item)
        if outcome in ("crash", "hang"):
            detail = answer.get("traceback") or answer.get("error", "")
            self.findings.append(Finding(index, method, kind, outcome, detail, blob))

    def markdown(self, machine: str) -> str:
        o = self.outcomes
        rate = self.tried / self.seconds if self.seconds else 0.0
        lines = [
            f"Fuzz campaign: seed {self.seed}, {self.workers} worker(s), {self.limit_s:g} s limit per blob, "
            f"{self.seconds / 60:.1f} min ({rate:.0f} blobs/s) on {machine}.",
            "",
            "| tried | typed | clean | crashes | hangs | slowest |",
            "|---:|---:|---:|---:|---:|---:|",
            f"| {self.tried:,} | {o['typed']:,} | {o['clean']:,} | {o['crash']:,} | {o['hang']:,} "
            f"| {max(self.slowest)[0] if self.slowest else 0:.2f} s |",
            "",
            "| mutation | tried | typed | clean | crashes | hangs |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for kind in MUTATIONS:
            c = self.kinds.get(kind, Counter())
            cells = " | ".join(f"{c[k]:,}" for k in ("typed", "clean", "crash", "hang"))
            lines.append(f"| {kind} | {c.total():,} | {cells} |")
        lines += ["", "Typed errors: " + ", ".join(f"{k} {v:,}" for k, v in self.errors.most_common()), ""]
        slow = sorted(self.slowest, reverse=True)
        lines.append("Slowest decodes: " + "; ".join(f"{s:.2f} s ({m}, {k}, {n} B)" for s, _, m, k, n in slow))
        return "\n".join(lines) + "\n"


def worker_command(weights: str | Path | None) -> list[str]:
    """The command line of one decoding worker."""
    argv = [sys.executable, "-m", "diffcodec.fuzz"]
    return argv + (["--weights", str(weights)] if weights is not None else [])


def campaign(
    *,
    blobs: int | None = None,
    minutes: float | None = None,
    seed: int = 0,
    workers: int = 1,
    limit_s: float = 10.0,
    weights: str | Path | None = None,
    seeds: dict[str, list[bytes]] | None = None,
    argv: list[str] | None = None,
    progress=None,
) -> Report:
    """Run a campaign of ``blobs`` mutants or for ``minutes`` (the first limit reached); see the module docstring.

    ``seeds`` (per method, real blobs) default to :func:`seed_blobs`; ``argv`` to
    :func:`worker_command` (tests swap in a misbehaving worker). ``progress(report)``
    is called about every 10 s.
    """
    from diffcodec.codec import Codec
    from diffcore.errors import InvalidInputError
    from diffcore.validate import check_count

    if blobs is None and minutes is None:
        raise InvalidInputError("give blobs, minutes or both")
    if blobs is not None:
        check_count(blobs, "blobs", high=MAX_BLOBS)
    if minutes is not None and not 0 < minutes <= MAX_MINUTES:
        raise InvalidInputError(f"minutes must be in (0, {MAX_MINUTES}], got {minutes!r}")
    check_count(workers, "workers", high=MAX_WORKERS)
    seeds = seed_blobs(weights) if seeds is None else seeds
    rates = {m: len(Codec.load(m, path=weights).rates) for m in seeds}
    others = [b for bs in seeds.values() for b in bs]
    pool = [(m, b) for m, bs in seeds.items() for b in bs]
    rng = random.Random(f"diffcodec-fuzz-{seed}")
    env = dict(os.environ, OMP_NUM_THREADS="1", DIFFCODEC_FUZZ_THREADS="1" if workers > 1 else "2")
    argv = worker_command(weights) if argv is None else argv
    report = Report(workers=workers, limit_s=limit_s, seed=seed)
    crew = [_Worker(argv, env) for _ in range(workers)]
    t0 = time.monotonic()  # the clock starts once the workers have loaded the codecs
    stop_at = t0 + 60 * minutes if minutes is not None else float("inf")
    index, last_progress = 0, t0
    try:
        with selectors.DefaultSelector() as sel:
            for w in crew:
                sel.register(w.proc.stdout, selectors.EVENT_READ, w)
            while True:
                now = time.monotonic()
                for w in crew:  # keep every idle worker busy while there is work
                    if w.job is None and (blobs is None or index < blobs) and now < stop_at:
                        method, base = pool[index % len(pool)]
                        kind, blob = mutate(rng, base, rates[method], others)
                        w.send((index, method, kind, blob, time.monotonic() + limit_s))
                        index += 1
                busy = [w for w in crew if w.job is not None]
                if not busy:
                    break
                wait = max(0.0, min(w.job[4] for w in busy) - time.monotonic())
                for key, _ in sel.select(wait):
                    w = key.data
                    line = w._read_line(w.job[4])
                    if line is None:  # the worker died, or the deadline passed mid-answer
                        crew[crew.index(w)] = _replace(sel, w, argv, env, report)
                        continue
                    i, method, kind, blob, _ = w.job
                    w.job = None
                    report.add(i, method, kind, blob, json.loads(line))
                now = time.monotonic()
                for w in list(crew):
                    if w.job is not None and now > w.job[4]:
                        crew[crew.index(w)] = _replace(sel, w, argv, env, report)
                if progress is not None and now - last_progress > 10:
                    last_progress = now
                    report.seconds = now - t0
                    progress(report)
    finally:
        for w in crew:
            w.close()
    report.seconds = time.monotonic() - t0
    return report


def _replace(sel, w: _Worker, argv: list[str], env: dict[str, str], report: Report) -> _Worker:
    """Record ``w``'s job as a crash (the worker died) or a hang, kill it, and start a fresh worker in its place."""
    i, method, kind, blob, _ = w.job
    sel.unregister(w.proc.stdout)
    try:  # a dying worker may still be exiting: give it a moment, so a crash is not taken for a hang
        w.proc.wait(timeout=0.5)
    except subprocess.TimeoutExpired:
        pass
    hung = w.proc.poll() is None
    if hung:  # no answer in time (or only half of one)
        detail = f"no answer within {report.limit_s:g} s"
    else:
        detail = f"the worker exited with status {w.proc.returncode}: {w.stderr_tail()}"
    w.close()
    report.add(i, method, kind, blob, {"outcome": "hang" if hung else "crash", "error": detail, "s": report.limit_s})
    fresh = _Worker(argv, env)
    sel.register(fresh.proc.stdout, selectors.EVENT_READ, fresh)
    return fresh


def write_findings(report: Report, folder: Path) -> list[Path]:
    """Each crashing or hanging mutant as ``<index>-<outcome>-<method>-<kind>.dfc`` plus a ``.txt`` with the detail."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for f in report.findings:
        stem = folder / f"{f.index:09d}-{f.outcome}-{f.method}-{f.kind}"
        stem.with_suffix(".dfc").write_bytes(f.blob)
        stem.with_suffix(".txt").write_text(f.detail + "\n")
        paths.append(stem.with_suffix(".dfc"))
    return paths


if __name__ == "__main__":
    _worker(sys.argv[2] if sys.argv[1:2] == ["--weights"] else None)
