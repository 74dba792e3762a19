"""The large language model teacher: its fine-tuning objectives (``losses``)."""
