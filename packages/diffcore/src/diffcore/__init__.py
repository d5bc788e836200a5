"""diffcore: the shared core of diffsuite.

Samplers (:mod:`diffcore.sampling`), training (:mod:`diffcore.train`), offline
data (:mod:`diffcore.data`), metrics (:mod:`diffcore.metrics`), benchmarks
(:mod:`diffcore.bench`), checkpoints (:mod:`diffcore.checkpoint`), the plugin
contract (:mod:`diffcore.plugins`) and the shared image prior tinysd
(:mod:`diffcore.zoo`). Importing this package imports nothing heavy: no
gradio, no network, no CUDA initialisation.
"""

__version__ = "0.1.0"
