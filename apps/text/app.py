"""The text diffusion app alone. Same as `uv run diffcore serve text`."""

from diffcore.hub import main

if __name__ == "__main__":
    main(["text"])
