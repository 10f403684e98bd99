"""Training data in memory, the shared fit loop, and the teacher's training run."""
