"""The Sampler lab: tinysd with any cache and quantizer, against full compute (``diffcore serve lab``)."""
