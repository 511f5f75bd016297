"""Lets `python -m mlxchat` run the same command line as the `mlxchat` console script."""

from mlxchat.cli import main

if __name__ == "__main__":
    main()
