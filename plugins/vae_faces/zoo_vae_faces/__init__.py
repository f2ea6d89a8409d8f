"""zoo plugin: the face VAE of Learn Generative AI with PyTorch, ch. 7."""
