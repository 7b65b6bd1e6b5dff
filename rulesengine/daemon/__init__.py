"""The daemon: scheduled evaluations. schedule (the pure tick schedule), watermarks
(per model, in the store), tick (one model at one tick, recorded in one transaction),
loop (the service), lock (one daemon per state file), logs (text or JSON lines)."""
