"""Continuous-control methods: the TD3/SAC core (loop, agents, nets) and the papers built on it."""
