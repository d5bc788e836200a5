"""Range calibrators: min-max, percentile and MSE-optimal clipping.

A calibrator turns observed values into a clipping range ``[lo, hi]`` (activations,
asymmetric) or a per-channel ``absmax`` (weights, symmetric); the quantizer then
uses ``scale = (hi − lo) / (2^b − 1)`` or ``scale = absmax / (2^(b−1) − 1)``.

- ``minmax``: the observed extremes; exact, but one outlier widens every step.
- ``percentile``: the ``p``-th / ``(100 − p)``-th percentile (clip the tail).
- ``mse``: the clip ratio ``α`` on a grid minimising ``E[(x − Q_α(x))²]``, the
  quantization-error objective of Banner et al. 2019 / Nagel et al. 2021 §3.4,
  searched on a grid — the range initialisation of BRECQ-style PTQ that
  Q-Diffusion (Li et al. 2023) builds on. Per layer it is MSE-optimal; end to
  end, clipping activations can cost more than it saves (see the tinysd numbers).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from diffcore.errors import InvalidInputError

#: clip ratios tried by the MSE search: a log grid (heavy tails want α ≪ 1), then a linear refinement
MSE_COARSE = torch.logspace(-3, 0, 25)  # activations: ratio 1.33 between neighbours
MSE_COARSE_WEIGHT = torch.linspace(0.3, 1.0, 15)  # weights are not heavy-tailed: clip at most 70 %
MSE_FINE = 11  # refinement points between the coarse best's neighbours
#: values an observer keeps exactly at each end of every observed tensor (extremes decide min-max and percentiles)
TAIL = 128
#: values drawn at random from the rest of every observed tensor
PER_CALL = 1 << 11
#: middle values an observer keeps across calls (a seeded random subsample, reweighted)
RESERVOIR = 1 << 13


def act_qparams(lo: float, hi: float, bits: int) -> tuple[float, int]:
    """Asymmetric ``(scale, zero_point)`` for the range ``[lo, hi]`` widened to contain 0."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = max((hi - lo) / (2**bits - 1), 1e-8)
    zero_point = int(min(max(round(-lo / scale), 0), 2**bits - 1))
    return scale, zero_point


def fake_quant_values(x: torch.Tensor, scale: float, zero_point: int, bits: int) -> torch.Tensor:
    """Asymmetric per-tensor fake quantization ``(clamp(round(x/s) + z, 0, 2^b − 1) − z)·s``."""
    y = torch.fake_quantize_per_tensor_affine(x.float(), scale, zero_point, 0, 2**bits - 1)
    return y.to(x.dtype)


def _refine(errors: Callable[[torch.Tensor], torch.Tensor], coarse: torch.Tensor) -> torch.Tensor:
    """The clip ratio minimising ``errors``: best of the coarse grid, then a linear grid around it.

    ``errors(alphas)`` maps (A,) or (A, O) ratios to (A, O) errors (O = 1 for a
    tensor-wide range); returns the best ratio per entry, (O,).
    """
    best = coarse[errors(coarse).argmin(dim=0)]  # (O,)
    step = float((coarse[1:] / coarse[:-1]).max())
    fine = (best[None] * torch.linspace(1 / step, step, MSE_FINE)[:, None]).clamp(max=1.0)  # (F, O)
    return fine.gather(0, errors(fine).argmin(dim=0, keepdim=True)).squeeze(0)


def act_range(
    values: torch.Tensor,
    *,
    method: str,
    bits: int,
    percentile: float = 99.99,
    weights: torch.Tensor | None = None,
) -> tuple[float, float]:
    """The clip range ``[lo, hi]`` a calibrator picks for activations.

    Args:
        values: observed values, any shape; they must include the extremes.
        method: ``"minmax"``, ``"percentile"`` or ``"mse"``.
        bits: activation bits.
        percentile: the upper percentile for ``"percentile"``.
        weights: how many observed values each entry of ``values`` stands for
            (a stratified subsample, see :class:`RangeObserver`); default all 1.
    """
    v = values.detach().flatten().float()
    if v.numel() == 0:
        raise InvalidInputError("no values to calibrate on")
    w = torch.ones_like(v) if weights is None else weights.detach().flatten().float()
    lo, hi = float(v.min()), float(v.max())
    if method == "minmax":
        return lo, hi
    if method == "percentile":
        order = v.argsort()
        cdf = w[order].cumsum(0) / w.sum()  # (N,)
        q = torch.tensor([1.0 - percentile / 100.0, percentile / 100.0])
        idx = torch.searchsorted(cdf, q).clamp(max=v.numel() - 1)
        p_lo, p_hi = v[order][idx].tolist()
        return p_lo, p_hi
    if method == "mse":
        qmax = 2**bits - 1
        vc, wc = v[:, None], (w / w.sum())[:, None]  # (N, 1)

        def errors(alphas: torch.Tensor) -> torch.Tensor:  # (A,) or (A, 1) -> (A, 1)
            a = alphas.reshape(1, -1)  # (1, A)
            a_lo, a_hi = a * min(lo, 0.0), a * max(hi, 0.0)
            s = ((a_hi - a_lo) / qmax).clamp_min(1e-8)
            z = (-a_lo / s).round().clamp(0, qmax)
            return ((((vc / s).round() + z).clamp(0, qmax) - z).mul(s).sub(vc).square() * wc).sum(dim=0)[:, None]

        a = float(_refine(errors, MSE_COARSE))
        return a * lo, a * hi
    raise InvalidInputError(f"calibrator must be minmax, percentile or mse; got {method!r}")


def weight_absmax(w: torch.Tensor, *, method: str, bits: int, percentile: float = 99.99) -> torch.Tensor:
    """Per-output-channel clip value for symmetric weight quantization.

    Args:
        w: a weight, output channels first: (O, ...).
        method, bits, percentile: as :func:`act_range`.

    Returns:
        (O,) clip values ``c``; the quantizer uses ``scale = c / (2^(b−1) − 1)``.
    """
    w2 = w.detach().flatten(1).float().abs()  # (O, K)
    amax = w2.amax(dim=1)  # (O,)
    if method == "minmax":
        return amax
    if method == "percentile":
        return torch.quantile(w2, percentile / 100.0, dim=1).clamp_max(amax)
    if method == "mse":
        qmax = 2 ** (bits - 1) - 1
        signed = w.detach().flatten(1).float()  # (O, K)

        chunk = max(1, (1 << 24) // signed.numel())  # ratios per pass: keeps the (a, O, K) temporaries bounded

        def errors(alphas: torch.Tensor) -> torch.Tensor:  # (A,) or (A, O) -> (A, O)
            out = []
            for part in alphas.split(chunk):
                c = (part.reshape(part.shape[0], -1) * amax).clamp_min(1e-12)[:, :, None]  # (a, O, 1)
                s = c / qmax
                out.append(((signed / s).round().clamp(-qmax, qmax) * s - signed).square().mean(dim=2))  # (a, O)
            return torch.cat(out)

        return _refine(errors, MSE_COARSE_WEIGHT) * amax
    raise InvalidInputError(f"calibrator must be minmax, percentile or mse; got {method!r}")


class RangeObserver:
    """A stratified sample of everything a layer input showed: exact tails, a reweighted random middle.

    Of every observed tensor the ``TAIL`` smallest and largest values are kept
    exactly (weight 1) and ``PER_CALL`` of the others at random, each weighted
    by how many it stands for; so min-max and extreme percentiles are exact and
    the MSE objective is estimated from a fixed-size sample however much was seen.
    """

    def __init__(self, seed: int = 0) -> None:
        self.values: list[torch.Tensor] = []
        self.weights: list[torch.Tensor] = []
        self.count = 0  # entries held
        self._gen = torch.Generator().manual_seed(seed)

    def _stratify(self, v: torch.Tensor, w: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``TAIL`` values at each end of ``v`` kept as they are, ``n`` of the rest drawn at random and reweighted.

        The middle draw is with replacement; the drawn weights are rescaled to
        sum to the middle's total weight (a ratio estimator of weighted sums).
        """
        ends = torch.cat([v.topk(TAIL).indices, v.topk(TAIL, largest=False).indices])  # (2·TAIL,)
        in_tail = torch.zeros(v.numel(), dtype=torch.bool)
        in_tail[ends] = True
        draw = torch.randint(v.numel(), (n,), generator=self._gen)
        draw = draw[~in_tail[draw]]  # (≤ n,)
        mid_total = w.sum() - w[ends].sum()
        mid_w = w[draw] * (mid_total / w[draw].sum().clamp_min(1e-12))
        return torch.cat([v[ends], v[draw]]), torch.cat([w[ends], mid_w])

    def observe(self, x: torch.Tensor) -> None:
        v = x.detach().flatten().float().cpu()  # (N,)
        w = torch.ones_like(v)
        if v.numel() > 2 * TAIL + PER_CALL:
            v, w = self._stratify(v, w, PER_CALL)
        self.values.append(v)
        self.weights.append(w)
        self.count += v.numel()
        if self.count > 4 * RESERVOIR:
            self._compact()

    def _compact(self) -> None:
        v, w = torch.cat(self.values), torch.cat(self.weights)
        if v.numel() > 2 * TAIL + RESERVOIR:
            v, w = self._stratify(v, w, RESERVOIR)
        self.values, self.weights, self.count = [v], [w], v.numel()

    @property
    def seen(self) -> bool:
        return self.count > 0

    def qparams(self, *, method: str, bits: int, percentile: float) -> tuple[float, int]:
        """``(scale, zero_point)`` for what was observed."""
        self._compact()
        lo, hi = act_range(self.values[0], method=method, bits=bits, percentile=percentile, weights=self.weights[0])
        return act_qparams(lo, hi, bits)
