"""Schedule search for UNet caches: profile, DP schedule, evolved Pareto front, residual correction.

A uniform cache (DeepCache every N steps) recomputes where nothing changes
and reuses where features move fast. The searched schedule decides per call:

* :func:`profile` runs full-compute sampling on calibration noise and records,
  per call, the output of every module a cache would reuse, and each module's
  FLOPs (``torch.utils.flop_counter``).
* :func:`dp_schedule` picks the ``K`` recompute calls minimising the change
  accumulated between each reused feature and the truth, by dynamic
  programming over segments (the DP of DDT's shared self-condition, Wang et
  al. 2025, and of CacheQuant, Liu et al. 2025).
* :func:`evolve_schedules` searches recompute masks by a genetic algorithm,
  measuring each candidate's real output error, and returns the Pareto front
  of (FLOPs, error) (ECAD, Aggarwal et al. 2025, uses genetic search over
  cache schedules the same way).
* :func:`fit_correction` fits, per reused call and channel, the linear map
  ``a·f_r + b`` from the cached feature to the true one (ERTACache's offline
  residual rectification, Qiu et al. 2025, in its closed least-squares form).

A result is a :class:`CacheSchedule`, a JSON artifact bound to the model's
hash, sampler and step count; ``diffcore.cache.apply(model, schedule)`` runs it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from diffusers.hooks import HookRegistry, ModelHook
from torch.utils.flop_counter import FlopCounterMode

from diffcore.cache.core import CacheHandle, apply, register_cache
from diffcore.cache.reuse import ReusePolicy, apply_reuse, check_module_names, topmost
from diffcore.checkpoint import model_hash
from diffcore.errors import ArtifactMismatchError, CheckpointError, InvalidInputError
from diffcore.hooks import remove_hook
from diffcore.sampling.loop import ModelDenoiser, sample

SCHEDULE_FORMAT = "diffcore.cache_schedule/1"


@dataclass(frozen=True)
class Calibration:
    """The sampling run a schedule is fitted on: sampler, steps and calibration noise.

    ``noise`` is ``x_T`` (B, C, H, W); use seeds that are not the ones you
    evaluate on. ``cond``/``guidance`` as in :func:`diffcore.sampling.sample`.
    """

    sampler: str
    steps: int
    noise: torch.Tensor
    cond: Any = None
    guidance: float | None = None
    base_config: Mapping[str, Any] | None = None

    def run(self, model: torch.nn.Module) -> torch.Tensor:
        """Sample once (the model's active cache, if any, applies); the final latents."""
        return sample(
            model,
            self.sampler,
            self.noise,
            steps=self.steps,
            cond=self.cond,
            guidance=self.guidance,
            progress=False,
            base_config=self.base_config,
        )


def _leaves(out: Any) -> list[torch.Tensor]:
    """The tensors of a module output (a tensor, or nested tuples of tensors as down blocks return)."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _leaves(o)]
    return []


def _map_leaves(out: Any, fn: Any, counter: list[int] | None = None) -> Any:
    counter = [0] if counter is None else counter
    if isinstance(out, torch.Tensor):
        counter[0] += 1
        return fn(counter[0] - 1, out)
    if isinstance(out, (tuple, list)):
        return type(out)(_map_leaves(o, fn, counter) for o in out)
    return out


@dataclass
class Profile:
    """What :func:`profile` measured on full-compute sampling.

    ``features[name][i]`` lists the output tensors of module ``name`` at call
    ``i``; ``change[name]`` (num_calls,) is the relative L1 change of those
    outputs from the previous call (0 at call 0); ``flops_full`` the FLOPs of
    one model call; ``flops_module[name]`` those of the module within it;
    ``final`` the full-compute final latents.
    """

    calibration: Calibration
    modules: tuple[str, ...]
    features: dict[str, list[list[torch.Tensor]]]
    change: dict[str, torch.Tensor]
    flops_full: int
    flops_module: dict[str, int]
    final: torch.Tensor
    model_hash: str
    model_class: str

    @property
    def num_calls(self) -> int:
        return len(next(iter(self.features.values())))

    @functools.cached_property
    def pair_cost(self) -> torch.Tensor:
        """(n, n): ``[r, s]`` the relative L1 distance of the features reused from call r to the true ones at s."""
        n = self.num_calls
        cost = torch.zeros(n, n, dtype=torch.float64)
        for m in self.modules:
            f = [torch.cat([t.flatten() for t in leaves]) for leaves in self.features[m]]  # per call, all outputs
            stack = torch.stack(f).double().cpu()  # (n, D)
            norms = stack.abs().sum(1)  # (n,)
            for r in range(n):
                cost[r] += (stack - stack[r]).abs().sum(1) / (norms + 1e-12)
        return cost.triu(1)

    def flops_ratio(self, recompute: Sequence[bool]) -> float:
        """FLOPs of a run with this recompute mask over full compute's."""
        saved = sum(self.flops_module[m] for m in self.modules)
        cached_calls = sum(1 for r in recompute if not r)
        return 1.0 - cached_calls * saved / (len(recompute) * self.flops_full)


def _rel_l1(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> float:
    num = sum(float((x - y).abs().sum()) for x, y in zip(a, b))
    den = sum(float(y.abs().sum()) for y in b) + 1e-12
    return num / den


class _RecordHook(ModelHook):
    def __init__(self, sink: list[list[torch.Tensor]]) -> None:
        super().__init__()
        self.sink = sink

    def post_forward(self, module: torch.nn.Module, output: Any) -> Any:
        self.sink.append([t.detach().clone() for t in _leaves(output)])
        return output


@torch.no_grad()
def profile(model: torch.nn.Module, calibration: Calibration, reuse: Any) -> Profile:
    """Record per-call features and per-module FLOPs of full-compute sampling.

    Args:
        model: a diffusers UNet with no cache applied.
        calibration: the run to profile.
        reuse: what a cached call reuses: a cache config with ``bind`` (e.g.
            ``DeepCacheConfig(branch=0)``, whose deep branch is then
            scheduled) or an explicit sequence of module names.
    """
    names = tuple(reuse) if isinstance(reuse, (list, tuple)) else tuple(reuse.bind(model).modules)
    check_module_names(model, names)
    if not names:
        raise InvalidInputError("nothing to schedule: the reuse set is empty")
    mods = topmost(names)
    modules = dict(model.named_modules())
    sinks: dict[str, list[list[torch.Tensor]]] = {m: [] for m in mods}
    hook_name = "diffcore_profile"
    for m in mods:
        HookRegistry.check_if_exists_or_initialize(modules[m]).register_hook(_RecordHook(sinks[m]), hook_name)
    try:
        final = calibration.run(model)
    finally:
        for m in mods:
            remove_hook(modules[m], hook_name)
    change = {}
    for m, feats in sinks.items():
        change[m] = torch.tensor([0.0] + [_rel_l1(feats[i - 1], feats[i]) for i in range(1, len(feats))])
    # FLOPs of one call, per module (FlopCounterMode keys modules as "<Class>.<dotted name>")
    counter = FlopCounterMode(display=False)
    x = calibration.noise
    cond = calibration.cond[0] if isinstance(calibration.cond, tuple) else calibration.cond
    with counter:
        ModelDenoiser(model)(x, torch.full((x.shape[0],), 500, dtype=torch.long, device=x.device), cond)
    per = {k.split(".", 1)[1]: sum(v.values()) for k, v in counter.get_flop_counts().items() if "." in k}
    flops_full = int(counter.get_total_flops())
    if calibration.guidance is not None:
        flops_full *= 2
        per = {k: 2 * v for k, v in per.items()}
    return Profile(
        calibration=calibration,
        modules=mods,
        features=sinks,
        change=change,
        flops_full=flops_full,
        flops_module={m: int(per.get(m, 0)) for m in mods},
        final=final,
        model_hash=model_hash(model),
        model_class=type(model).__name__,
    )


@dataclass(frozen=True)
class CacheSchedule:
    """A searched cache schedule: which calls recompute, which modules cached calls reuse.

    A JSON artifact bound to the model (``model_hash``) and the run
    (``sampler``, ``steps``, ``num_calls``) it was fitted on. ``corrections``
    (optional, ERTACache) maps ``module -> {call: [[a…], [b…]] per output tensor}``.
    """

    model_hash: str
    model_class: str
    sampler: str
    steps: int
    modules: tuple[str, ...]
    recompute: tuple[bool, ...]
    corrections: dict[str, dict[int, list[list[list[float]]]]] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (isinstance(self.model_hash, str) and isinstance(self.model_class, str) and isinstance(self.sampler, str)):
            raise InvalidInputError("model_hash, model_class and sampler must be strings")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise InvalidInputError(f"steps must be a positive int, got {self.steps!r}")
        if not self.modules or not all(isinstance(m, str) for m in self.modules):
            raise InvalidInputError(f"modules must be a non-empty tuple of module names, got {self.modules!r}")
        if not self.recompute or not all(isinstance(r, bool) for r in self.recompute) or not self.recompute[0]:
            raise InvalidInputError("recompute must be a tuple of bools starting with True (nothing is cached before call 0)")
        if not isinstance(self.meta, dict) or not (self.corrections is None or isinstance(self.corrections, dict)):
            raise InvalidInputError("meta must be a dict and corrections a dict or None")

    @property
    def num_calls(self) -> int:
        return len(self.recompute)

    @property
    def recompute_calls(self) -> tuple[int, ...]:
        return tuple(i for i, r in enumerate(self.recompute) if r)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["format"] = SCHEDULE_FORMAT
        return d

    def save(self, path: str | Path) -> Path:
        """Write the schedule as JSON (atomically)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> CacheSchedule:
        """Read a schedule JSON; a malformed file raises :class:`CheckpointError`."""
        try:
            d = json.loads(Path(path).read_text())
            if d.pop("format", None) != SCHEDULE_FORMAT:
                raise ValueError(f"not a {SCHEDULE_FORMAT} file")
            corr = d.get("corrections")
            if corr is not None:
                d["corrections"] = {m: {int(k): v for k, v in per.items()} for m, per in corr.items()}
            d["modules"] = tuple(d["modules"])
            d["recompute"] = tuple(bool(r) for r in d["recompute"])
            return cls(**d)
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as e:
            raise CheckpointError(f"{path} is not a readable cache schedule ({e}); refit it with diffcore.cache.search") from e

    def bind(self, model: torch.nn.Module) -> ReusePolicy:
        got = model_hash(model)
        if got != self.model_hash:
            raise ArtifactMismatchError(
                f"this schedule was fitted on a {self.model_class} with hash {self.model_hash}, not on this "
                f"{type(model).__name__} (hash {got}): refit it on this model (profile → dp_schedule / evolve_schedules)"
            )
        return _SchedulePolicy(self)


class _SchedulePolicy(ReusePolicy):
    def __init__(self, schedule: CacheSchedule) -> None:
        self.schedule, self.modules, self._set = schedule, schedule.modules, frozenset(schedule.modules)
        self._corr = None
        if schedule.corrections:
            self._corr = {
                m: {c: [(torch.tensor(a), torch.tensor(b)) for a, b in leaves] for c, leaves in per.items()}
                for m, per in schedule.corrections.items()
            }

    def check_run(self, num_calls: int | None, sampler: str | None) -> None:
        s = self.schedule
        if num_calls is not None and num_calls != s.num_calls:
            raise ArtifactMismatchError(
                f"this schedule was fitted for {s.sampler} with {s.steps} steps ({s.num_calls} model calls); "
                f"the run makes {num_calls} calls: sample with sampler={s.sampler!r}, steps={s.steps}, or refit"
            )
        if sampler is not None and sampler != s.sampler:
            raise ArtifactMismatchError(
                f"this schedule was fitted for sampler {s.sampler!r}, not {sampler!r}: sample with {s.sampler!r} or refit"
            )

    def reuse_at(self, call: int, num_calls: int | None) -> frozenset[str]:
        if call >= self.schedule.num_calls:
            raise ArtifactMismatchError(f"this schedule covers {self.schedule.num_calls} model calls; call {call} is past it")
        return frozenset() if self.schedule.recompute[call] else self._set

    def correct(self, name: str, call: int, out: Any) -> Any:
        if self._corr is None or name not in self._corr or call not in self._corr[name]:
            return out
        coefs = self._corr[name][call]

        def fix(k: int, t: torch.Tensor) -> torch.Tensor:
            a, b = (v.to(t.device, t.dtype).view(1, -1, *([1] * (t.ndim - 2))) for v in coefs[k])
            return a * t + b  # (B, C, …): per-channel affine

        return _map_leaves(out, fix)


@register_cache(CacheSchedule)
def _apply(model: torch.nn.Module, schedule: CacheSchedule, handle: CacheHandle) -> None:
    apply_reuse(model, schedule.bind(model), handle)


def _schedule(prof: Profile, recompute: Sequence[bool], method: str, **meta: Any) -> CacheSchedule:
    rec = tuple(bool(r) for r in recompute)
    return CacheSchedule(
        model_hash=prof.model_hash,
        model_class=prof.model_class,
        sampler=prof.calibration.sampler,
        steps=prof.calibration.steps,
        modules=prof.modules,
        recompute=rec,
        meta={"method": method, "flops_ratio": prof.flops_ratio(rec), **meta},
    )


def dp_schedule(prof: Profile, k: int) -> CacheSchedule:
    """The ``k`` recompute calls (call 0 among them) minimising accumulated feature change (DDT / CacheQuant DP).

    Minimises ``Σ_s cost(r(s), s)`` over cached calls ``s``, where ``r(s)`` is
    the last recompute call before ``s`` and ``cost`` the relative L1 change
    of the reused features between them, measured in :func:`profile`; exact,
    O(k·n²).
    """
    n = prof.num_calls
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n:
        raise InvalidInputError(f"k (recompute calls) must be an int in [1, {n}], got {k!r}")
    cost = prof.pair_cost
    # seg[r, e]: cost of recomputing at r and reusing r's features for calls r+1..e
    seg = torch.zeros(n, n, dtype=torch.float64)
    for r in range(n):
        seg[r, r + 1 :] = torch.cumsum(cost[r, r + 1 :], 0)
    inf = float("inf")
    best = [[inf] * n for _ in range(k + 1)]  # best[j][e]: j recomputes covering calls 0..e
    back = [[-1] * n for _ in range(k + 1)]
    for e in range(n):
        best[1][e] = float(seg[0, e])
    for j in range(2, k + 1):
        for e in range(j - 1, n):
            for r in range(j - 1, e + 1):  # last recompute at r; calls 0..r-1 covered by j-1 recomputes
                v = best[j - 1][r - 1] + float(seg[r, e])
                if v < best[j][e]:
                    best[j][e], back[j][e] = v, r
    recompute = [False] * n
    recompute[0] = True
    e, j = n - 1, k
    while j > 1:
        r = back[j][e]
        recompute[r] = True
        e, j = r - 1, j - 1
    return _schedule(prof, recompute, "dp", k=k, accumulated_change=best[k][n - 1])


def uniform_mask(n: int, interval: int) -> list[bool]:
    """DeepCache's uniform schedule as a recompute mask."""
    return [i % interval == 0 for i in range(n)]


@torch.no_grad()
def schedule_error(model: torch.nn.Module, prof: Profile, recompute: Sequence[bool]) -> float:
    """Relative L2 of the final latents, with this recompute mask, against full compute on the calibration run."""
    sched = _schedule(prof, recompute, "candidate")
    with apply(model, sched):
        out = prof.calibration.run(model)
    return float((out - prof.final).norm() / prof.final.norm())


def _dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] <= b[0] and a[1] <= b[1] and a != b


def _fronts(points: list[tuple[float, float]]) -> list[list[int]]:
    """Non-dominated sorting (NSGA-II): index lists, best front first."""
    remaining = set(range(len(points)))
    fronts = []
    while remaining:
        front = [i for i in remaining if not any(_dominates(points[j], points[i]) for j in remaining if j != i)]
        fronts.append(sorted(front, key=lambda i: points[i]))
        remaining -= set(front)
    return fronts


def _crowding(points: list[tuple[float, float]], front: list[int]) -> dict[int, float]:
    dist = {i: 0.0 for i in front}
    for d in range(2):
        order = sorted(front, key=lambda i: points[i][d])
        span = (points[order[-1]][d] - points[order[0]][d]) or 1.0
        dist[order[0]] = dist[order[-1]] = float("inf")
        for a, b, c in zip(order, order[1:], order[2:]):
            dist[b] += (points[c][d] - points[a][d]) / span
    return dist


@torch.no_grad()
def evolve_schedules(
    model: torch.nn.Module,
    prof: Profile,
    *,
    population: int = 16,
    generations: int = 8,
    mutation: float | None = None,
    seed: int = 0,
    seeds_from: Sequence[Sequence[bool]] = (),
    progress: bool = False,
) -> list[CacheSchedule]:
    """Genetic search (NSGA-II) over recompute masks; the Pareto front of (FLOPs, error vs full compute).

    Each candidate is scored by really sampling the calibration run with it
    (:func:`schedule_error`), so the error includes how cache errors
    propagate through the sampler, which the DP's feature distance does not.
    The first population holds the uniform schedules (intervals 2–8), the DP
    schedules for as many recomputes, ``seeds_from`` and random masks. Half the
    children shift one recompute call of a parent to a neighbouring step (same
    FLOPs: the move that refines a good schedule); the other half come from
    one-point crossover and bit flips (``mutation`` per call, default 1/n).

    Returns:
        The non-dominated schedules, by increasing FLOPs, with ``meta``
        holding ``flops_ratio`` and ``error`` (calibration relative L2).
    """
    n = prof.num_calls
    rng = random.Random(seed)
    flip = 1.0 / n if mutation is None else mutation  # per-call flip probability: one flip per child on average
    scores: dict[tuple[bool, ...], tuple[float, float]] = {}

    def fix(mask: Sequence[bool]) -> tuple[bool, ...]:
        return (True, *tuple(bool(m) for m in mask[1:]))

    def score(mask: tuple[bool, ...]) -> tuple[float, float]:
        if mask not in scores:
            scores[mask] = (prof.flops_ratio(mask), schedule_error(model, prof, mask))
        return scores[mask]

    pop: list[tuple[bool, ...]] = []
    for interval in range(2, 9):
        u = fix(uniform_mask(n, interval))
        pop += [u, dp_schedule(prof, sum(u)).recompute]
    pop += [fix(m) for m in seeds_from]
    while len(pop) < population:
        p = rng.uniform(0.15, 0.6)
        pop.append(fix([rng.random() < p for _ in range(n)]))
    pop = list(dict.fromkeys(pop))
    for gen in range(generations + 1):
        points = [score(m) for m in pop]
        fronts = _fronts(points)
        if gen == generations:
            break
        rank = {i: r for r, f in enumerate(fronts) for i in f}
        crowd: dict[int, float] = {}
        for f in fronts:
            crowd.update(_crowding(points, f))

        def pick(pop: list = pop, rank: dict = rank, crowd: dict = crowd) -> tuple[bool, ...]:
            """Binary tournament on this generation's (rank, crowding)."""
            a, b = rng.randrange(len(pop)), rng.randrange(len(pop))
            better = a if (rank[a], -crowd[a]) < (rank[b], -crowd[b]) else b
            return pop[better]

        def shift(mask: list[bool]) -> None:
            """Move one recompute call a step earlier or later: same FLOPs, a neighbouring schedule."""
            calls = [i for i in range(1, n) if mask[i]]
            if not calls:
                return
            i = rng.choice(calls)
            j = i + rng.choice((-1, 1))
            if 0 < j < n and not mask[j]:
                mask[i], mask[j] = False, True

        children = []
        while len(children) < population:
            if rng.random() < 0.5:  # refine: a parent with one recompute moved
                child = list(pick())
                shift(child)
            else:  # explore: one-point crossover (keeps runs of recomputes together) and bit flips
                pa, pb = pick(), pick()
                cut = rng.randrange(1, n)
                child = list(pa[:cut] + pb[cut:])
                for i in range(1, n):
                    if rng.random() < flip:
                        child[i] = not child[i]
            children.append(fix(child))
        merged = list(dict.fromkeys(pop + children))
        mpoints = [score(m) for m in merged]
        survivors: list[tuple[bool, ...]] = []
        for f in _fronts(mpoints):
            if len(survivors) + len(f) <= population:
                survivors += [merged[i] for i in f]
            else:
                cd = _crowding(mpoints, f)
                survivors += [merged[i] for i in sorted(f, key=lambda i: -cd[i])[: population - len(survivors)]]
                break
        pop = survivors
        if progress:
            print(f"generation {gen + 1}/{generations}: front of {len(fronts[0])}, {len(scores)} schedules scored")
    # the front over everything ever scored
    allm = list(scores)
    allp = [scores[m] for m in allm]
    front = _fronts(allp)[0]
    return [_schedule(prof, allm[i], "evolved", error=allp[i][1]) for i in sorted(front, key=lambda i: allp[i][0])]


@torch.no_grad()
def fit_correction(prof: Profile, schedule: CacheSchedule, *, ridge: float = 1e-3) -> CacheSchedule:
    """ERTACache's residual correction: per cached call and channel, the least-squares ``a·f_r + b ≈ f_s``.

    ``f_r`` is a module's output at the recompute call ``r`` a cached call
    ``s`` reuses and ``f_s`` the true output at ``s``, both from the profile's
    full-compute run. ``a`` is shrunk toward 1 by ``ridge`` (relative to the
    channel variance) so flat channels keep the plain cache. Returns the
    schedule with ``corrections`` filled in.
    """
    if schedule.modules != prof.modules or schedule.num_calls != prof.num_calls:
        raise ArtifactMismatchError("the schedule and the profile cover different modules or run lengths")
    corrections: dict[str, dict[int, list[list[list[float]]]]] = {}
    last = 0
    for s in range(prof.num_calls):
        if schedule.recompute[s]:
            last = s
            continue
        for m in prof.modules:
            leaves = []
            for fr, fs in zip(prof.features[m][last], prof.features[m][s]):
                c = fr.shape[1]
                xr = fr.transpose(0, 1).reshape(c, -1).double()  # (C, B·H·W)
                xs = fs.transpose(0, 1).reshape(c, -1).double()
                mr, ms = xr.mean(1, keepdim=True), xs.mean(1, keepdim=True)
                var = ((xr - mr) ** 2).mean(1)
                cov = ((xr - mr) * (xs - ms)).mean(1)
                lam = ridge * var.mean() + 1e-12
                a = (cov + lam) / (var + lam)
                b = ms.squeeze(1) - a * mr.squeeze(1)
                leaves.append([[round(float(v), 6) for v in a], [round(float(v), 6) for v in b]])
            corrections.setdefault(m, {})[s] = leaves
    return dataclasses.replace(schedule, corrections=corrections, meta={**schedule.meta, "corrected": True})
