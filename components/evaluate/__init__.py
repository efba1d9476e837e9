"""Evaluation: generative-audio metrics (FAD, KID, IS with bootstrap intervals) and their inputs."""
