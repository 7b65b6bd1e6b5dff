"""The daemon: scheduled evaluations. Only the pure tick schedule exists so far."""
