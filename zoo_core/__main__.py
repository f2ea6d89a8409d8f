"""``python -m zoo_core``: the `zoo` command, for launchers that start modules (``torchrun ... -m zoo_core train``)."""

from zoo_core.cli import main

if __name__ == "__main__":
    main()
