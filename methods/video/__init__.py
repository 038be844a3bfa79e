"""VPDD: video tokenizer, discrete diffusion, video predictor and action model."""
