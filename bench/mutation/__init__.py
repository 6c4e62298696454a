"""Mutation testing of the control core: ``python -m bench.mutation --list|--run`` (see docs/mutation.md)."""
