"""The diffsuite hub: a tab per installed domain. Same as `uv run diffsuite`."""

from diffcore.hub import main

if __name__ == "__main__":
    main()
