"""Per-stage state of the live pipeline, pure (explicit event time, no I/O): what each Faust agent calls.

One module per stage (predict, control = route + scale, density, forecast, archive), the per-service control
state they keep (service_router, service_scaler, fleet_state), and the offline driver that replays their
decisions from the archive (decision_replay).
"""
