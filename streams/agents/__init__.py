"""One thin Faust agent per stage (predict, route, density, forecast, scale, archive); the logic they call is
pure and lives in ``streams/stages/`` (one module per stage), the policies in ``streams/policies/``."""
