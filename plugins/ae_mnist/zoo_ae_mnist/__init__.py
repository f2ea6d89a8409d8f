"""zoo plugin: the MNIST autoencoder of Learn Generative AI with PyTorch, ch. 7.

This package imports nothing heavy: ``plugin`` builds the model spec, ``networks``,
``recipe`` and ``tasks`` hold the torch code and are imported only on demand.
"""
