"""Model-agnostic training machinery (a model, an objective, a batch source) and the teacher stage."""
