"""Running Parley on several hosts: the multi-host run on one machine (`deploy/cluster.py`),
the container image and compose file, and what they share (`deploy/hosts.py`)."""
