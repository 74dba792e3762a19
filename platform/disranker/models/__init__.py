"""Model loading, input formatting and tensor helpers shared by every stage."""
