"""The learned parts of the two codecs, all working on tinysd's scaled latents.

* :class:`OscarHyperCodec` — OSCAR's per-rate hyper-encoders (Guo et al. 2025):
  each rate maps the latent to a coarse grid of vectors, vector-quantizes them
  against its own codebook, and decodes the code indices back to a latent. The
  rate is fixed by the grid stride and the codebook size:
  ``bpp = log2(K) / (4·stride)²`` (the autoencoder downsamples by 4). Written
  here because no well-kept library has a VQ hyper-encoder on diffusers latents.
* :class:`LatentHyperprior` — RDEIC's compression module (Li et al. 2024): a
  scale hyperprior (Ballé et al. 2018) whose entropy models are compressai's
  ``EntropyBottleneck`` / ``GaussianConditional`` (rANS-coded), on the latent.
* :class:`PixelHyperprior` — the non-diffusion baseline: compressai's own
  ``ScaleHyperprior`` architecture on pixels, trained by us on the same photos.
"""

from __future__ import annotations

import copy
import math
import warnings

import torch
import torch.nn.functional as F

with warnings.catch_warnings():  # compressai scripts helpers with torch.jit.script, deprecated in torch 2.15; not ours
    warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
    from compressai.entropy_models import EntropyBottleneck, GaussianConditional
    from compressai.layers import GDN
    from compressai.models import CompressionModel, ScaleHyperprior
    from compressai.models.utils import conv, deconv
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from diffcore.prior.models import DOWNSAMPLE, LATENT_CHANNELS

#: precision of the index CDFs (compressai's rANS coder works at 16 bits)
INDEX_PRECISION = 16
#: probability mass of the rANS coder's escape symbol, which a valid index never uses
INDEX_ESCAPE_MASS = 2.0**-15


def pad_to(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad the last two dims up to a multiple of ``multiple`` by edge replication (any size, even 1 px)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    return F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x


class _ResBlock(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.SiLU(), nn.Conv2d(ch, ch, 3, padding=1), nn.SiLU(), nn.Conv2d(ch, ch, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class _VQRate(nn.Module):
    """One OSCAR rate: latent -> grid of code indices -> latent."""

    def __init__(self, stride: int, codebook_size: int, code_dim: int, hidden: int, channels: int) -> None:
        super().__init__()
        self.stride, self.codebook_size = stride, codebook_size
        # the capacity sits on the coarse grid; one residual block refines at full latent resolution
        self.enc = nn.Sequential(
            nn.Conv2d(channels, hidden, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(hidden, hidden, stride, stride=stride),
            _ResBlock(hidden),
            _ResBlock(hidden),
            nn.SiLU(),
            nn.Conv2d(hidden, code_dim, 1),
        )
        self.codebook = nn.Parameter(torch.randn(codebook_size, code_dim) * 0.1)
        # quantized CDF of the index distribution (K symbols + compressai's escape symbol), 16-bit precision
        self.register_buffer("index_cdf", torch.zeros(codebook_size + 2, dtype=torch.int32))
        self.dec = nn.Sequential(
            nn.Conv2d(code_dim, hidden, 1),
            _ResBlock(hidden),
            _ResBlock(hidden),
            nn.ConvTranspose2d(hidden, hidden, stride, stride=stride),
            _ResBlock(hidden),
            nn.SiLU(),
            nn.Conv2d(hidden, channels, 3, padding=1),
        )

    def nearest(self, e: torch.Tensor) -> torch.Tensor:
        """(B, D, h, w) encoder output -> (B, h, w) nearest code indices (L2)."""
        flat = e.permute(0, 2, 3, 1).reshape(-1, e.shape[1])
        cb = self.codebook
        d = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ cb.t() + cb.pow(2).sum(1)[None]
        return d.argmin(1).view(e.shape[0], e.shape[2], e.shape[3])

    def lookup(self, idx: torch.Tensor) -> torch.Tensor:
        return self.codebook[idx].permute(0, 3, 1, 2)  # (B, D, h, w)


class OscarHyperCodec(ModelMixin, ConfigMixin):
    """OSCAR's hyper-encoders/decoders, one per rate, each with its own VQ codebook.

    Args:
        strides: grid stride of each rate, in latent pixels (×4 in image pixels).
        codebook_sizes: codebook size of each rate (powers of two).
        code_dim: dimension of each code vector.
        hidden: channels of the conv layers.
        timesteps: the calibrated pseudo timestep ``t(rate)`` of each rate (set by training).
    """

    @register_to_config
    def __init__(
        self,
        strides: tuple[int, ...] = (4, 4, 3, 2),
        codebook_sizes: tuple[int, ...] = (256, 4096, 4096, 4096),
        code_dim: int = 8,
        hidden: int = 64,
        latent_channels: int = LATENT_CHANNELS,
        timesteps: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__()
        if len(strides) != len(codebook_sizes):
            raise ValueError("strides and codebook_sizes need one entry per rate")
        for k in codebook_sizes:
            if k < 2 or k & (k - 1):
                raise ValueError(f"codebook sizes must be powers of two >= 2, got {k}")
        self.rates = nn.ModuleList(_VQRate(s, k, code_dim, hidden, latent_channels) for s, k in zip(strides, codebook_sizes))

    def bits_per_index(self, rate: int) -> int:
        return int(math.log2(self.config.codebook_sizes[rate]))

    @torch.no_grad()
    def fit_index_prior(self, rate: int, counts: torch.Tensor) -> None:
        """Set ``rate``'s index distribution from index counts (add-one smoothed, so every index stays codable)."""
        from compressai.entropy_models.entropy_models import pmf_to_quantized_cdf

        k = self.config.codebook_sizes[rate]
        pmf = (counts.double() + 1) / (counts.sum().double() + k)
        pmf = torch.cat([pmf * (1 - INDEX_ESCAPE_MASS), torch.tensor([INDEX_ESCAPE_MASS], dtype=torch.float64)])
        self.rates[rate].index_cdf.copy_(pmf_to_quantized_cdf(pmf.float(), INDEX_PRECISION))

    def index_cdf(self, rate: int) -> torch.Tensor:
        """``rate``'s quantized index CDF (K + 2 int32 entries); all zero before :meth:`fit_index_prior`."""
        return self.rates[rate].index_cdf

    def index_bits(self, rate: int) -> torch.Tensor:
        """Ideal code length in bits of each index under ``rate``'s distribution, (K,)."""
        cdf = self.index_cdf(rate).double()
        return -torch.log2((cdf[1:-1] - cdf[:-2]) / 2**INDEX_PRECISION)

    def nominal_bpp(self, rate: int) -> float:
        s = self.config.strides[rate] * DOWNSAMPLE
        return self.bits_per_index(rate) / (s * s)

    def grid(self, rate: int, h: int, w: int) -> tuple[int, int]:
        """Index grid for a latent of h×w."""
        s = self.config.strides[rate]
        return -(-h // s), -(-w // s)

    def encode(self, z: torch.Tensor, rate: int) -> torch.Tensor:
        """Scaled latents (B, 4, h, w) -> code indices (B, ⌈h/s⌉, ⌈w/s⌉), int64."""
        r = self.rates[rate]
        return r.nearest(r.enc(pad_to(z, r.stride)))

    def decode(self, idx: torch.Tensor, rate: int, size: tuple[int, int]) -> torch.Tensor:
        """Code indices -> decoded latents (B, 4, h, w) cropped to ``size``."""
        r = self.rates[rate]
        return r.dec(r.lookup(idx))[..., : size[0], : size[1]]

    def forward(self, z: torch.Tensor, rate: int) -> dict[str, torch.Tensor]:
        """Training pass: straight-through VQ (van den Oord et al. 2017) with commitment 0.25."""
        r = self.rates[rate]
        e = r.enc(pad_to(z, r.stride))
        idx = r.nearest(e.detach())
        q = r.lookup(idx)
        vq = F.mse_loss(q, e.detach()) + 0.25 * F.mse_loss(e, q.detach())
        z_hat = r.dec(e + (q - e).detach())[..., : z.shape[-2], : z.shape[-1]]
        return {"z_hat": z_hat, "vq_loss": vq, "indices": idx, "codes": e.detach()}


class LatentHyperprior(CompressionModel):
    """RDEIC's compression module: a scale hyperprior on tinysd's scaled latents.

    ``y = g_a(z)`` (stride 2 on the latent: one vector per 8×8 pixels),
    hyper-latent ``w = h_a(y)`` (4 more), both rANS-coded by compressai's entropy
    models; ``c = g_s(ŷ)`` is the compressed latent the diffusion starts from.
    """

    def __init__(self, N: int = 64, M: int = 48, channels: int = LATENT_CHANNELS) -> None:
        super().__init__()
        self.N, self.M = N, M
        self.entropy_bottleneck = EntropyBottleneck(N)
        self.g_a = nn.Sequential(conv(channels, N, 3, 1), GDN(N), conv(N, N, 3, 1), GDN(N), conv(N, M, 5, 2))
        self.g_s = nn.Sequential(
            deconv(M, N, 5, 2), GDN(N, inverse=True), conv(N, N, 3, 1), GDN(N, inverse=True), conv(N, channels, 3, 1)
        )
        self.h_a = nn.Sequential(
            conv(M, N, 3, 1), nn.ReLU(inplace=True), conv(N, N, 5, 2), nn.ReLU(inplace=True), conv(N, N, 5, 2)
        )
        self.h_s = nn.Sequential(
            deconv(N, N, 5, 2), nn.ReLU(inplace=True), deconv(N, N, 5, 2), nn.ReLU(inplace=True), conv(N, M, 3, 1)
        )
        self.gaussian_conditional = GaussianConditional(None)

    #: latent side multiple the transforms need (y: /2, w: /8)
    multiple = 8

    def scales(self, w_hat: torch.Tensor) -> torch.Tensor:
        """Scales of y from the decoded hyper-latent, computed in float64 (on a copy of ``h_s``, so
        concurrent calls share nothing) so that the encoder's and decoder's scale indices agree
        whatever the thread count."""
        return copy.deepcopy(self.h_s).double()(w_hat.double()).abs().float()

    def forward(self, z: torch.Tensor) -> dict:
        y = self.g_a(z)
        w = self.h_a(torch.abs(y))
        w_hat, w_lik = self.entropy_bottleneck(w)
        scales = self.h_s(w_hat).abs()
        y_hat, y_lik = self.gaussian_conditional(y, scales)
        return {"c": self.g_s(y_hat), "likelihoods": {"y": y_lik, "z": w_lik}}

    def compress(self, z: torch.Tensor) -> tuple[list[bytes], list[bytes], tuple[int, int]]:
        """Padded latents (1, 4, h, w) -> (y strings, w strings, w shape)."""
        return _hyper_compress(self, z)

    def decompress(self, y_strings: list[bytes], w_strings: list[bytes], w_shape: tuple[int, int]) -> torch.Tensor:
        """The strings back to the compressed latent c (1, 4, 8·wh, 8·ww)."""
        return _hyper_decompress(self, y_strings, w_strings, w_shape)


class PixelHyperprior(ScaleHyperprior):
    """compressai's ``ScaleHyperprior`` (Ballé et al. 2018) on pixels: the learned non-diffusion baseline.

    The same float64 scale path as :class:`LatentHyperprior`, so its bitstreams
    decode identically whatever the thread count.
    """

    multiple = 64

    def scales(self, w_hat: torch.Tensor) -> torch.Tensor:
        return copy.deepcopy(self.h_s).double()(w_hat.double()).float()

    def compress(self, x: torch.Tensor) -> tuple[list[bytes], list[bytes], tuple[int, int]]:
        return _hyper_compress(self, x)

    def decompress(self, y_strings: list[bytes], w_strings: list[bytes], w_shape: tuple[int, int]) -> torch.Tensor:
        return _hyper_decompress(self, y_strings, w_strings, w_shape).clamp(-1, 1)


def _hyper_compress(m: CompressionModel, x: torch.Tensor) -> tuple[list[bytes], list[bytes], tuple[int, int]]:
    """A scale hyperprior's encoder: rANS strings of y and of the hyper-latent, and the hyper-latent's shape."""
    y = m.g_a(x)
    w = m.h_a(torch.abs(y))
    w_strings = m.entropy_bottleneck.compress(w)
    w_hat = m.entropy_bottleneck.decompress(w_strings, w.shape[-2:])
    idx = m.gaussian_conditional.build_indexes(m.scales(w_hat))
    return m.gaussian_conditional.compress(y, idx), w_strings, tuple(w.shape[-2:])


def _hyper_decompress(m: CompressionModel, y_strings: list[bytes], w_strings: list[bytes], w_shape: tuple[int, int]):
    """The strings back through the entropy models and the synthesis transform ``g_s``."""
    w_hat = m.entropy_bottleneck.decompress(w_strings, w_shape)
    idx = m.gaussian_conditional.build_indexes(m.scales(w_hat))
    return m.g_s(m.gaussian_conditional.decompress(y_strings, idx, w_hat.dtype))
