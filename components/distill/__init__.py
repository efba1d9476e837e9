"""Progressive distillation (Salimans & Ho 2022, Algorithm 2): N-step teacher -> N/2-step student."""
