"""GAN baselines from the reference papers: WaveGAN (waveforms) and SpecGAN (log-mels), trained with
WGAN-GP through the same loop as the diffusion models and scored with the same ruler."""

MODEL_FAMILY_KEY = "family"  # in every model file; absent in files written before the GANs: diffusion
DIFFUSION = "diffusion"
