"""One thin Faust agent per stage (predict, route, density, forecast, scale, archive); the logic they call is
pure and lives next to them in ``streams/`` (``route_state``, ``scale_state``, ``predict_batch``, ...)."""
