"""Train a ReCoNet style model: ``python train.py style=candy`` (same as ``reconet-train``)."""

from reconet.cli.train import main

if __name__ == "__main__":
    main()
