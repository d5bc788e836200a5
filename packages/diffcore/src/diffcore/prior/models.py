"""tinysd: the shared image prior, a small latent diffusion model.

It plays the role Stable Diffusion plays in the papers: a diffusers
``AutoencoderKL`` (×4 downsampling, 4 latent channels) and a diffusers
``UNet2DModel`` trained on its latents with SD's noise schedule. Both are stock
diffusers classes, so every diffusers tool (schedulers, hooks, LoRA) applies.
"""

from __future__ import annotations

from diffusers import AutoencoderKL, UNet2DModel

#: downsampling factor of the autoencoder
DOWNSAMPLE = 4
#: latent channels
LATENT_CHANNELS = 4

AUTOENCODER_CONFIG: dict = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 3,  # two downsamplings: x4
    up_block_types=("UpDecoderBlock2D",) * 3,
    block_out_channels=(32, 64, 96),
    layers_per_block=1,
    latent_channels=LATENT_CHANNELS,
    norm_num_groups=16,
    mid_block_add_attention=False,  # convolutional only: any image size, linear cost
    sample_size=64,
)

#: tinysd v2: a wider, deeper encoder and decoder at the half- and quarter-resolution
#: levels, where chroma and texture are coded; the full-resolution level stays at
#: 32 channels, so decoding a 512² image costs about what v1 costs
AUTOENCODER_V2_CONFIG: dict = dict(
    AUTOENCODER_CONFIG,
    block_out_channels=(32, 64, 128),
    layers_per_block=2,
)

UNET_CONFIG: dict = dict(
    sample_size=32,
    in_channels=LATENT_CHANNELS,
    out_channels=LATENT_CHANNELS,
    down_block_types=("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"),
    up_block_types=("AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
    block_out_channels=(64, 128, 128),
    layers_per_block=1,
    attention_head_dim=32,
    norm_num_groups=32,
)

#: the noise schedule the UNet is trained with (Stable Diffusion's), as a
#: diffusers scheduler config; samplers are built from it
SCHEDULER_CONFIG: dict = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    prediction_type="epsilon",
    timestep_spacing="trailing",
    clip_sample=False,
    set_alpha_to_one=True,
    steps_offset=0,
)


def build_autoencoder(version: int = 2) -> AutoencoderKL:
    """A freshly initialised tinysd autoencoder (``version`` 1 or 2)."""
    if version not in (1, 2):
        raise ValueError(f"tinysd autoencoder version must be 1 or 2, got {version}")
    return AutoencoderKL(**(AUTOENCODER_V2_CONFIG if version == 2 else AUTOENCODER_CONFIG))


def build_unet() -> UNet2DModel:
    """A freshly initialised tinysd denoiser."""
    return UNet2DModel(**UNET_CONFIG)
