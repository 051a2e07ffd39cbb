"""Exporters of :class:`convexnn.network.Network` to other frameworks."""
