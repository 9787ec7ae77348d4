"""jobgraph: run machine-learning training jobs and watch them."""
