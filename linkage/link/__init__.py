"""The Splink model over canonical records: its specification and its training."""
