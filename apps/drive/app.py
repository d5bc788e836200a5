"""The driving planner's app alone. Same as `uv run diffcore serve drive`."""

from diffcore.hub import main

if __name__ == "__main__":
    main(["drive"])
