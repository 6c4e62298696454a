"""llama.cpp as a real serving engine: the built ``llama-server`` (``scripts/setup_engine.sh``) and the tiny
random-weight Llama models the project writes itself (no hub downloads)."""
