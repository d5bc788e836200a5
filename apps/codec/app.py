"""The image codec's app alone. Same as `uv run diffcore serve codec`."""

from diffcore.hub import main

if __name__ == "__main__":
    main(["codec"])
