"""The planner network: scene encoder + DiffusionDrive's cascade diffusion decoder (Liao et al. 2025, §3.3).

One class serves the three planners we compare, so they have the same size:

- ``kind="anchored"`` (DiffusionDrive): K trajectory queries start from the
  k-means anchors (stored as the ``anchors`` buffer) noised to a small timestep.
- ``kind="vanilla"``: the same network without anchors; queries start from pure
  Gaussian noise, as in a vanilla diffusion policy (Chi et al. 2023).
- ``kind="regression"``: one query, no noise, no timestep: a single-mode
  regression planner.

The decoder is DiffusionDrive's: each of its layers takes trajectory queries
carrying a (noisy) trajectory and applies cross-attention to the agent and lane
tokens, cross-attention to the ego/route token, an FFN and a timestep
modulation ``x·(1 + scale) + shift``; heads then give a per-mode confidence
logit and per-pose offsets added to the layer's input trajectory. The next
layer refines the previous layer's detached output ("cascade"). Trajectories
are handled in normalised units (:meth:`normalise`), clamped to [-1, 1] as in
the reference implementation. ``prediction_type="sample"``: the network
predicts the clean trajectory.
"""

from __future__ import annotations

import math

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from diffcore.errors import InvalidInputError
from diffdrive.scene import AGENT_DIM, EGO_DIM, LANE_POINTS, LANES, MAX_AGENTS

KINDS = ("anchored", "vanilla", "regression")


def _mlp(i: int, h: int, o: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(i, h), nn.GELU(), nn.Linear(h, o))


def sine_embed(x: torch.Tensor, freqs: int) -> torch.Tensor:
    """Sinusoidal features of normalised coordinates: (..., D) -> (..., D·2·freqs)."""
    f = (2.0 ** torch.arange(freqs, device=x.device, dtype=x.dtype)) * math.pi  # (F,)
    ang = x[..., None] * f  # (..., D, F)
    return torch.cat([ang.sin(), ang.cos()], dim=-1).flatten(-2)


class CascadeLayer(nn.Module):
    """One DiffusionDrive decoder layer: agent/map cross-attention, ego cross-attention, FFN, time modulation, heads."""

    def __init__(self, d: int, heads: int, ffn: int, horizon: int, pose_dim: int, freqs: int) -> None:
        super().__init__()
        self.freqs = freqs
        self.traj_enc = _mlp(horizon * pose_dim * 2 * freqs, d, d)
        self.scene_attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.ego_attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.ffn = _mlp(d, ffn, d)
        self.norms = nn.ModuleList(nn.LayerNorm(d) for _ in range(3))
        self.modulation = nn.Sequential(nn.Mish(), nn.Linear(d, 2 * d))
        self.cls_head = _mlp(d, d, 1)
        self.reg_head = _mlp(d, d, horizon * pose_dim)

    def forward(
        self,
        q: torch.Tensor,
        traj: torch.Tensor,
        base: torch.Tensor,
        scene: torch.Tensor,
        pad: torch.Tensor,
        ego: torch.Tensor,
        temb: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        B, K, H, P = traj.shape
        q = q + self.traj_enc(sine_embed(traj, self.freqs).reshape(B, K, -1))  # (B, K, d)
        q = self.norms[0](q + self.scene_attn(q, scene, scene, key_padding_mask=pad, need_weights=False)[0])
        q = self.norms[1](q + self.ego_attn(q, ego, ego, need_weights=False)[0])
        q = self.norms[2](q + self.ffn(q))
        scale, shift = self.modulation(temb)[:, None].chunk(2, dim=-1)  # (B, 1, d) each
        q = q * (1 + scale) + shift
        logits = self.cls_head(q).squeeze(-1)  # (B, K)
        out = base + self.reg_head(q).reshape(B, K, H, P)  # offsets on the base trajectory
        return q, out, logits


class DrivePlanner(ModelMixin, ConfigMixin):
    """Scene encoder + cascade trajectory decoder.

    Args:
        kind: ``"anchored"`` (DiffusionDrive), ``"vanilla"`` (diffusion from pure noise) or ``"regression"``.
        num_modes: trajectory queries K (anchors for ``anchored``; samples for ``vanilla``; 1 for ``regression``).
        horizon: poses per trajectory (one every 0.5 s).
        pose_dim: 3 — x, y (m), heading (rad), ego frame.
        d_model: token width.
        heads: attention heads.
        ffn: FFN hidden width.
        decoder_layers: cascade depth (2 in DiffusionDrive).
        freqs: sine-embedding frequencies per coordinate.
        norm_center, norm_scale: trajectory normalisation ``(p - center) / scale`` per pose dim.
    """

    @register_to_config
    def __init__(
        self,
        *,
        kind: str = "anchored",
        num_modes: int = 20,
        horizon: int = 8,
        pose_dim: int = 3,
        d_model: int = 128,
        heads: int = 4,
        ffn: int = 256,
        decoder_layers: int = 2,
        freqs: int = 4,
        norm_center: tuple[float, ...] = (75.0, 0.0, 0.0),
        norm_scale: tuple[float, ...] = (75.0, 20.0, 0.5),
    ) -> None:
        super().__init__()
        if kind not in KINDS:
            raise InvalidInputError(f"kind must be one of {KINDS}, got {kind!r}")
        if num_modes < 1 or (kind == "regression" and num_modes != 1):
            raise InvalidInputError(f"num_modes must be >= 1 (exactly 1 for regression), got {num_modes}")
        if len(norm_center) != pose_dim or len(norm_scale) != pose_dim:
            raise InvalidInputError(f"norm_center and norm_scale need {pose_dim} values each")
        d = d_model
        self.register_buffer("anchors", torch.zeros(num_modes, horizon, pose_dim))  # metres/rad, ego frame
        self.register_buffer("center", torch.tensor(norm_center, dtype=torch.float32), persistent=False)
        self.register_buffer("scale", torch.tensor(norm_scale, dtype=torch.float32), persistent=False)
        from diffdrive.sampling import make_scheduler

        self.register_buffer("alphas_cumprod", make_scheduler().alphas_cumprod.float(), persistent=False)
        self.ego_enc = _mlp(EGO_DIM, d, d)
        self.agent_enc = _mlp(AGENT_DIM, d, d)
        self.lane_enc = _mlp(LANE_POINTS * 3, d, d)
        self.type_emb = nn.Parameter(torch.zeros(3, d))
        self.encoder = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(d, heads, ffn, dropout=0.0, batch_first=True, norm_first=True),
            num_layers=1,
            enable_nested_tensor=False,
        )
        self.query = nn.Parameter(torch.zeros(num_modes, d))
        self.time_proj = Timesteps(d, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_emb = TimestepEmbedding(d, d)
        self.layers = nn.ModuleList(CascadeLayer(d, heads, ffn, horizon, pose_dim, freqs) for _ in range(decoder_layers))

    # ------------------------------------------------------------ units

    def normalise(self, traj: torch.Tensor) -> torch.Tensor:
        return (traj - self.center) / self.scale

    def denormalise(self, traj: torch.Tensor) -> torch.Tensor:
        return traj * self.scale + self.center

    # ------------------------------------------------------------ network

    def encode(self, scenes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Scene vectors (B, SCENE_DIM) -> scene tokens (B, A+L, d), their padding mask, ego token (B, 1, d)."""
        B = scenes.shape[0]
        a0 = EGO_DIM + MAX_AGENTS * AGENT_DIM
        ego = scenes[:, :EGO_DIM] * torch.tensor([1 / 30, 1, 1 / 4, 1 / 8, 1 / 8] + [1] * (EGO_DIM - 5), device=scenes.device)
        agents = scenes[:, EGO_DIM:a0].reshape(B, MAX_AGENTS, AGENT_DIM)
        agents = agents * torch.tensor([1, 1 / 50, 1 / 10, 1 / 30, 1 / 10, 1, 1], device=scenes.device)
        lanes = scenes[:, a0:].reshape(B, LANES, LANE_POINTS, 3)
        lane_present = lanes[..., 0, 0] > 0.5  # (B, L)
        lanes = (lanes * torch.tensor([1, 1 / 50, 1 / 10], device=scenes.device)).flatten(2)
        tokens = torch.cat(
            [
                self.ego_enc(ego)[:, None] + self.type_emb[0],
                self.agent_enc(agents) + self.type_emb[1],
                self.lane_enc(lanes) + self.type_emb[2],
            ],
            dim=1,
        )  # (B, 1+A+L, d)
        pad = torch.cat([torch.zeros(B, 1, dtype=torch.bool, device=scenes.device), agents[..., 0] < 0.5, ~lane_present], 1)
        tokens = self.encoder(tokens, src_key_padding_mask=pad)
        return tokens[:, 1:], pad[:, 1:], tokens[:, :1]

    def decode(
        self, ctx: tuple[torch.Tensor, torch.Tensor, torch.Tensor], traj: torch.Tensor, t: torch.Tensor
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Normalised (noisy) trajectories (B, K, H, P) at timesteps t (B,) -> per layer (clean prediction, logits)."""
        scene, pad, ego = ctx
        B = traj.shape[0]
        temb = self.time_emb(self.time_proj(t.reshape(-1).expand(B).float()).to(traj.dtype))  # (B, d)
        q = self.query.expand(B, -1, -1)
        outs = []
        cur = traj.clamp(-1, 1)
        base = cur
        if self.config.kind == "vanilla":
            # From pure noise an offset on the input is a poor parametrisation (the net would have to cancel the
            # noise from its sine features); the vanilla policy's first layer predicts around sqrt(abar_t)·x_t,
            # which is the input near t = 0 and ~0 at t = 1000. Anchored inputs sit near the answer, and the
            # reference adds offsets to them directly.
            abar = self.alphas_cumprod[t.reshape(-1).long().expand(B)].to(traj.dtype)  # (B,)
            base = abar.sqrt()[:, None, None, None] * cur
        for layer in self.layers:
            q, pred, logits = layer(q, cur, base, scene, pad, ego, temb)
            outs.append((pred, logits))
            cur = base = pred.detach().clamp(-1, 1)
        return outs

    def forward(self, scenes: torch.Tensor, traj: torch.Tensor, t: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return self.decode(self.encode(scenes), traj, t)
