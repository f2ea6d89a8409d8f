"""zoo plugin: CycleGAN black <-> blond hair translation (Learn Generative AI with PyTorch, ch. 6).

This package imports nothing heavy: ``plugin`` builds the model spec, the torch code lives in
``networks``, ``data``, ``recipe`` and ``tasks`` and is imported only when a model is trained or run.
"""
