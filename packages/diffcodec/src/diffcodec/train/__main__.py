"""``python -m diffcodec.train ARGS`` = ``diffcore train codec ARGS``."""

if __name__ == "__main__":  # importing this module (e.g. walking the package) must not start a training run
    from diffcodec.train import main

    main()
