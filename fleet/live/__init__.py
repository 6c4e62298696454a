"""Live instance managers: run engines (simulated or real) behind the `routes` and `scale-commands` topics."""
