"""The image codec as a domain: ``diffcore serve codec``, ``bench codec``, ``train codec``, ``smoke codec``."""

from diffcore.plugins import Domain

domain = Domain(
    name="codec",
    title="Image codec",
    paper=(
        "Guo et al. 2025, OSCAR: One-Step Diffusion Codec Across Multiple Bit-rates; "
        "Li et al. 2024, RDEIC: Accelerating Diffusion-Based Extreme Image Compression with Relay Residual Diffusion"
    ),
    module="diffcodec",
    load="diffcodec.codec:Codec.load",
)
