"""RAP toolkit: the Resource Adaptive Proxy, its reference balancer, and the tools around it."""

__version__ = "0.1.0"
