"""Training either model: the crop dataset and the training run (resume, logs, checkpoints)."""
