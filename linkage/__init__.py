"""Cross-agency record linkage: one person index from agency extracts."""

PROGRESS_LOGGER = "linkage.progress"  # one line per stage; the CLI shows it on the console
