"""Runtimes: the engines that run jobs (local processes, Kubernetes)."""
