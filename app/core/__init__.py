"""Use cases, authorization and the event broker: the only place that decides who may do what."""
