"""Measurement: exact MAC counts (``macs``), phase timing (``timing``), the machine and the
process (``system``), thread pools (``threads``) and energy backends (``energy``)."""
