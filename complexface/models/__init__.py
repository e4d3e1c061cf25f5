"""Training modules: contrastive CLIP-style models (expression CLIP, CLIP) and SD LoRA, and their inputs."""
