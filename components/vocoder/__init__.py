"""mel -> audio: the one interface (Griffin-Lim or learned), the Vocos-style network, its losses,
training stage and side-by-side scoring."""
