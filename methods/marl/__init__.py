"""Multi-agent methods: agent networks that plug into the QMIX learner (Kaleidoscope, ...)."""
