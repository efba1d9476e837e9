"""mel -> audio: the one interface (Griffin-Lim or learned), the Vocos-style network, its losses,
training stage and side-by-side scoring."""

# what the vocoder stage writes in models/vocoder (names only here: importing them loads no torch)
VOCODER_FILE = "vocoder.pt"
EVALUATION_FILE = "evaluation.json"  # the side-by-side scores on held-out clips
