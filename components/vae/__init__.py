"""The VAE family (RAVE's two-stage recipe, Caillon & Esling 2021, on the pipeline's normalised
log-mels and through the configured vocoder): stage 1 trains an encoder and decoder with a spectral
reconstruction loss plus a KL term whose weight warms up; stage 2 freezes the encoder and fine-tunes
the decoder against a critic. A clip is one decoder pass from z ~ N(0, I)."""

VAE = "vae"  # the family's name: its model files' marker, its stage, its config section
