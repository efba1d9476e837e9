"""Diffusion models on mel-spectrograms: the math (pure functions), the 1D U-Net, the DDIM sampler."""
