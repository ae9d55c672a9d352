"""Training: the loop with its schedules, checkpoints and export (`loop`), and streaming input (`stream`)."""
