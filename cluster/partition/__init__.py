"""One partition, sans-IO: what it is asked and answers (`api`)."""
