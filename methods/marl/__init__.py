"""Value-based multi-agent RL (QMIX / VDN, EPyMARL style) on MPE; see qmix.py."""
