"""Data sets for the zoo: MNIST IDX files, image folders, CelebA, procedural sample data.

Import submodules directly (``from zoo_core.data.mnist import load_mnist``); this package
imports nothing so that ``zoo --help`` never pays for torch.
"""
