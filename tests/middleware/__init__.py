"""Tests of crossgate.middleware: the lifespan shim and the dispatcher."""
