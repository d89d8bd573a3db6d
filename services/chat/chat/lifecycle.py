"""Process-wide state that health checks report: set while a ws process drains for shutdown."""

draining = False
