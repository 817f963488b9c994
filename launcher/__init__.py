"""What `make run` runs: the servers and services of one machine, supervised."""
