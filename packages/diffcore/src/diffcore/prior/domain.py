"""The prior as a domain: ``diffcore serve prior``, ``bench prior``, ``train prior``, ``smoke prior``."""

from diffcore.plugins import Domain

domain = Domain(
    name="prior",
    title="Prior",
    paper="Rombach et al. 2022, High-Resolution Image Synthesis with Latent Diffusion Models (as tinysd)",
    module="diffcore.prior",
    load="diffcore.zoo:load_tinysd",
    train="diffcore.prior.recipe:main",
)
