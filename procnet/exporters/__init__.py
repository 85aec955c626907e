"""Metrics for the monitoring people already run: Prometheus and OpenTelemetry.

- :mod:`procnet.exporters.prometheus`: a prometheus-client collector
  (``procnet[prometheus]``), served by ``procnet --serve`` or written once by
  ``procnet --format prom``;
- :mod:`procnet.exporters.otel`: observable gauges on an OpenTelemetry
  ``Meter`` (``procnet[otel]``);
- :mod:`procnet.exporters.tally`: what both report -- listeners and socket
  counts, kept up to date from one :class:`procnet.Poller` at the cost of what
  changed since the last poll;
- :mod:`procnet.exporters.netns`: which network namespace a socket is in.

Importing this package imports neither metrics library.
"""
