"""The tinysd prior's app alone. Same as `uv run diffcore serve prior`."""

from diffcore.hub import main

if __name__ == "__main__":
    main(["prior"])
